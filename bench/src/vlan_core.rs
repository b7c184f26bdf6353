//! VLAN push and pop in the forwarding core, in process, beside the plain
//! core cases of [`crate::switch_core`]: one source port, one destination
//! port, learned unicast of one flow, on a switch with VLAN ports (so the
//! batch of `bridge/vlan.rs` runs). *Push*: the source is an access port of
//! VLAN 10 sending untagged frames, the destination a trunk of VLAN 10 (a
//! tag is inserted into every frame). *Pop*: the source is the trunk
//! sending tagged frames, the destination the access port.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Result;
use switch_port::eventfd::EventFd;
use switch_port::layout::{Layout, DEFAULT_BUF_SIZE, DEFAULT_RING_SIZE};
use switch_port::mac::MacAddr;
use switch_port::names::{PortName, SwitchName};
use switch_port::protocol::{PortKind, VlanMode};
use switch_port::region::Region;
use switch_port::ring::Slot;
use switch_user::bridge::forward::{forward_batch, Scratch};
use switch_user::bridge::learning::LearningTable;
use switch_user::bridge::lookup::EthHeader;
use switch_user::bridge::port::Port;
use switch_user::bridge::shm_port::ShmPort;
use switch_user::bridge::switch::Switch;

use crate::cpu_cost::CpuWindow;
use crate::report::Case;

const VID: u16 = 10;

/// Which way the tag goes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Direction {
    /// Access to trunk: a tag pushed on every frame.
    Push,
    /// Trunk to access: the tag popped from every frame.
    Pop,
}

impl Direction {
    fn name(self) -> &'static str {
        match self {
            Direction::Push => "core vlan push (access->trunk) unicast 1->1 one flow",
            Direction::Pop => "core vlan pop (trunk->access) unicast 1->1 one flow",
        }
    }
}

struct BenchPort {
    port: Arc<Port>,
    shm: Arc<ShmPort>,
}

fn make_port(switch: &Switch, name: &str, mode: &VlanMode) -> Result<BenchPort> {
    let layout = Layout::new(DEFAULT_RING_SIZE, DEFAULT_BUF_SIZE)?;
    let pname = PortName::parse(name)?;
    let region = Arc::new(Region::create(name, layout)?);
    let shm = Arc::new(ShmPort::new(region, EventFd::new()?, EventFd::new()?));
    let port = switch.add_port(|id| {
        let port = Port::new(pname, id, PortKind::Shm, Box::new(shm.clone()));
        port.vlan.set(Some(mode));
        port
    })?;
    Ok(BenchPort { port, shm })
}

/// Fills every TX buffer of `port` with a `size`-byte frame (counting the
/// tag when `tagged`) from `src` to `dst`.
fn fill_tx(port: &BenchPort, size: usize, dst: MacAddr, src: MacAddr, tagged: bool) {
    let region = port.shm.region();
    let layout = *region.layout();
    for i in 0..layout.ring_size {
        let buf = region.buffer(i).expect("in range");
        // SAFETY: buffer i lies inside the region and holds buf_size >= size bytes.
        let frame = unsafe { std::slice::from_raw_parts_mut(buf.as_ptr(), size) };
        frame.fill(0x5a);
        frame[0..6].copy_from_slice(&dst.0);
        frame[6..12].copy_from_slice(&src.0);
        let mut at = 12;
        if tagged {
            frame[12..14].copy_from_slice(&0x8100u16.to_be_bytes());
            frame[14..16].copy_from_slice(&VID.to_be_bytes());
            at = 16;
        }
        frame[at..at + 2].copy_from_slice(&0x88b5u16.to_be_bytes());
        region.tx_ring().write_slot(
            i,
            Slot {
                buf: i,
                len: size as u16,
                flags: 0,
            },
        );
    }
}

/// Measures one direction with `size`-byte frames (as sent) for about
/// `duration`.
pub fn run(direction: Direction, size: usize, duration: Duration) -> Result<Case> {
    let switch = Switch::new(
        SwitchName::parse("vale0")?,
        Box::new(LearningTable::new(4096, 300)),
        254,
    );
    switch.set_vlan_aware(true);
    let access = VlanMode::Access { vlan: VID };
    let trunk = VlanMode::Trunk {
        vlans: vec![VID],
        native: None,
    };
    let a = make_port(&switch, "vale0:vlan-access", &access)?;
    let t = make_port(&switch, "vale0:vlan-trunk", &trunk)?;
    let (source, dest) = match direction {
        Direction::Push => (&a, &t),
        Direction::Pop => (&t, &a),
    };
    let (src_mac, dst_mac) = (MacAddr::local(0x0001_0000), MacAddr::local(0x0002_0000));
    // The destination host is known behind the destination port.
    let header = EthHeader {
        dst: MacAddr::BROADCAST,
        src: dst_mac,
        ethertype: 0x88b5,
        vlan: VID,
    };
    switch.lookup().lookup(&header, dest.port.id, 0);
    fill_tx(source, size, dst_mac, src_mac, direction == Direction::Pop);
    let mut scratch = Scratch::new();
    let before = dest.port.counters.snapshot().tx_packets;
    let mut input = 0u64;
    let cpu = CpuWindow::start();
    let start = Instant::now();
    let mut rounds = 0u64;
    loop {
        let tx = source.shm.region().tx_ring();
        tx.head()
            .store(tx.tail().load(Ordering::Acquire), Ordering::Release);
        input += forward_batch(&switch, &source.port, &mut scratch, 0) as u64;
        let rx = dest.shm.region().rx_ring();
        rx.head()
            .store(rx.tail().load(Ordering::Acquire), Ordering::Release);
        rounds += 1;
        if rounds.is_multiple_of(64) && start.elapsed() >= duration {
            break;
        }
    }
    let seconds = start.elapsed().as_secs_f64();
    let delivered = dest.port.counters.snapshot().tx_packets - before;
    anyhow::ensure!(
        delivered == input,
        "the VLAN core benchmark delivered {delivered} of {input} frames: {:?} {:?}",
        source.port.counters.snapshot(),
        dest.port.counters.snapshot()
    );
    Ok(
        Case::new(direction.name(), "core", size, input as f64 / seconds)
            .with_cpu(cpu.ns_per_packet(input))
            .with("threads", 1),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn push_and_pop_deliver_every_frame() {
        for direction in [Direction::Push, Direction::Pop] {
            let case = run(direction, 64, Duration::from_millis(20)).unwrap();
            assert!(case.mpps > 0.0, "{direction:?}");
        }
    }
}
