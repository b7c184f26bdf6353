//! What a switch's forwarding batch hands to captures and mirrors, and the
//! one check that keeps it free when there are none.
//!
//! Each switch has a [`SwitchTaps`]: a flag, read once per batch with a
//! relaxed load, and a table by port number of the port's taps (captures and
//! mirror destinations, for received and for delivered frames), published
//! as an immutable snapshot like the port table. With the flag clear, the
//! batch does nothing more. With it set, [`tap_batch`] runs once per batch,
//! before delivery: received frames of the source and the frames each
//! destination is about to get are appended to captures
//! ([`super::sink::CaptureSink`]) and delivered to mirror destinations.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use arc_swap::ArcSwap;
use switch_port::protocol::capture::{DIR_RX, DIR_TX};

use super::sink::CaptureSink;
use crate::bridge::forward::MAX_BATCH;
use crate::bridge::lookup::PortId;
use crate::bridge::port::{FrameRef, Port};
use crate::bridge::switch::Switch;
use crate::clock::realtime_ns;

/// Where a port's frames also go.
#[derive(Clone)]
pub enum Tap {
    /// A capture.
    Capture(Arc<CaptureSink>),
    /// A mirror's destination port.
    Mirror(PortId),
}

/// The taps of one port.
#[derive(Clone, Default)]
pub struct PortTaps {
    /// For frames received from the port.
    pub rx: Vec<Tap>,
    /// For frames delivered to the port.
    pub tx: Vec<Tap>,
}

/// The taps of a switch's ports, by port number.
#[derive(Default)]
pub struct TapTable {
    ports: Vec<PortTaps>,
}

impl TapTable {
    /// Adds `tap` to port `id`'s received (`rx`) or delivered frames.
    pub fn add(&mut self, id: PortId, rx: bool, tap: Tap) {
        let i = id as usize;
        if self.ports.len() <= i {
            self.ports.resize_with(i + 1, PortTaps::default);
        }
        let port = &mut self.ports[i];
        if rx {
            port.rx.push(tap);
        } else {
            port.tx.push(tap);
        }
    }

    /// The taps of port `id`, if it has any.
    #[inline]
    pub fn get(&self, id: PortId) -> Option<&PortTaps> {
        self.ports.get(id as usize)
    }

    fn is_empty(&self) -> bool {
        self.ports
            .iter()
            .all(|p| p.rx.is_empty() && p.tx.is_empty())
    }
}

/// A switch's taps.
#[derive(Default)]
pub struct SwitchTaps {
    active: AtomicBool,
    table: ArcSwap<TapTable>,
}

impl SwitchTaps {
    /// Whether any port of the switch has a tap: the forwarding batch's one
    /// check.
    #[inline]
    pub fn active(&self) -> bool {
        self.active.load(Ordering::Relaxed)
    }

    /// Publishes a new table.
    pub fn set(&self, table: TapTable) {
        let any = !table.is_empty();
        self.table.store(Arc::new(table));
        self.active.store(any, Ordering::Release);
    }
}

/// `0, 1, ..., MAX_BATCH - 1`: every frame of a batch.
static ALL: [u16; MAX_BATCH] = {
    let mut all = [0u16; MAX_BATCH];
    let mut i = 0;
    while i < MAX_BATCH {
        all[i] = i as u16;
        i += 1;
    }
    all
};

/// Hands one batch to the switch's taps: the first `received` of `frames`
/// were received from `source` (the VLAN batch appends re-tagged copies
/// after them); `per_destination[d]` for `d` in `touched` are about to be
/// delivered to port `d`. A mirror never sends a frame back to the port it
/// came from; its copies are captured as frames delivered to its
/// destination.
pub fn tap_batch(
    switch: &Switch,
    source: &Port,
    frames: &[FrameRef],
    received: usize,
    touched: &[PortId],
    per_destination: &[Vec<u16>],
) {
    let table = switch.taps().table.load();
    let ports = switch.ports();
    let ts = realtime_ns();
    // A mirror's copies are delivered frames of its destination too: that
    // port's captures see them (its own mirrors do not: no chains).
    let mirror = |dst: PortId, which: &[u16]| {
        if dst == source.id {
            return;
        }
        if let Some(port) = ports.get(dst) {
            port.io.deliver(frames, which, &port.counters);
            for tap in table.get(dst).map_or(&[][..], |t| &t.tx[..]) {
                if let Tap::Capture(sink) = tap {
                    sink.push(DIR_TX, ts, frames, which);
                }
            }
        }
    };
    if let Some(taps) = table.get(source.id) {
        let all = &ALL[..received.min(frames.len()).min(MAX_BATCH)];
        for tap in &taps.rx {
            match tap {
                Tap::Capture(sink) => sink.push(DIR_RX, ts, frames, all),
                Tap::Mirror(dst) => mirror(*dst, all),
            }
        }
    }
    for &dest in touched {
        let Some(taps) = table.get(dest) else {
            continue;
        };
        let Some(which) = per_destination.get(dest as usize) else {
            continue;
        };
        for tap in &taps.tx {
            match tap {
                Tap::Capture(sink) => sink.push(DIR_TX, ts, frames, which),
                Tap::Mirror(dst) if *dst != dest => mirror(*dst, which),
                Tap::Mirror(_) => {}
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::Ordering;

    use switch_port::eventfd::EventFd;
    use switch_port::layout::Layout;
    use switch_port::mac::MacAddr;
    use switch_port::names::{PortName, SwitchName};
    use switch_port::protocol::capture::{RecordHeader, RECORD_HEADER};
    use switch_port::protocol::{MirrorInfo, PortKind, TapDirection};
    use switch_port::region::Region;
    use switch_port::ring::Slot;

    use super::*;
    use crate::bridge::forward::{forward_batch, Scratch};
    use crate::bridge::learning::LearningTable;
    use crate::bridge::shm_port::ShmPort;
    use crate::capture::config::TapConfig;

    struct TestPort {
        port: Arc<Port>,
        region: Arc<Region>,
        next_tx: u32,
    }

    fn add(switch: &Switch, name: &str) -> TestPort {
        let region = Arc::new(Region::create(name, Layout::new(64, 2048).unwrap()).unwrap());
        let shm = ShmPort::new(
            region.clone(),
            EventFd::new().unwrap(),
            EventFd::new().unwrap(),
        );
        let name = PortName::parse(name).unwrap();
        let port = switch
            .add_port(|id| Port::new(name, id, PortKind::Shm, Box::new(shm)))
            .unwrap();
        TestPort {
            port,
            region,
            next_tx: 0,
        }
    }

    /// Sends one broadcast frame of 60 bytes from `p`, source `src`.
    fn send(p: &mut TestPort, src: MacAddr) {
        let ring = p.region.tx_ring();
        let i = p.next_tx;
        let buf = p.region.buffer(i).unwrap();
        // SAFETY: buffer i of the test's own region holds 2048 bytes.
        let frame = unsafe { std::slice::from_raw_parts_mut(buf.as_ptr(), 60) };
        frame[0..6].copy_from_slice(&MacAddr::BROADCAST.0);
        frame[6..12].copy_from_slice(&src.0);
        frame[12..14].copy_from_slice(&0x88b5u16.to_be_bytes());
        ring.write_slot(
            i,
            Slot {
                buf: i,
                len: 60,
                flags: 0,
            },
        );
        p.next_tx = ring.advance(i, 1);
        ring.head().store(p.next_tx, Ordering::Release);
    }

    fn received(p: &TestPort) -> u32 {
        let ring = p.region.rx_ring();
        ring.distance(
            ring.head().load(Ordering::Relaxed),
            ring.tail().load(Ordering::Acquire),
        )
    }

    #[test]
    fn captures_and_mirrors_see_their_frames_and_nothing_loops() {
        let name = SwitchName::parse("vale0").unwrap();
        let sw = Switch::new(name.clone(), Box::new(LearningTable::new(64, 300)), 8);
        let mut a = add(&sw, "vale0:a");
        let b = add(&sw, "vale0:b");
        let mut m = add(&sw, "vale0:m");
        let mut config = TapConfig::default();
        let sink = Arc::new(CaptureSink::new(
            PortName::parse("vale0:b").unwrap(),
            TapDirection::Tx,
            65535,
            1 << 20,
        ));
        config.add_capture(0, sink.clone());
        let at_m = Arc::new(CaptureSink::new(
            PortName::parse("vale0:m").unwrap(),
            TapDirection::Both,
            65535,
            1 << 20,
        ));
        config.add_capture(0, at_m.clone());
        config
            .add_mirror(MirrorInfo {
                switch: name.clone(),
                name: "m1".into(),
                src: vec![PortName::parse("vale0:b").unwrap()],
                dir: TapDirection::Tx,
                dst: PortName::parse("vale0:m").unwrap(),
            })
            .unwrap();
        assert!(!sw.taps().active());
        sw.taps().set(config.table(&name, &sw.ports()));
        assert!(sw.taps().active());
        let mut scratch = Scratch::new();
        // a floods to b and m: b's capture and mirror see it, so m gets
        // its own copy and the mirror's.
        send(&mut a, MacAddr::local(1));
        forward_batch(&sw, &a.port, &mut scratch, 0);
        assert_eq!((received(&b), received(&m)), (1, 2));
        assert_eq!(sink.captured(), 1);
        // m's capture sees both: the flooded frame and the mirror's copy.
        assert_eq!(at_m.captured(), 2);
        // m floods to a and b: the frame to b is not mirrored back to m.
        send(&mut m, MacAddr::local(3));
        forward_batch(&sw, &m.port, &mut scratch, 0);
        assert_eq!((received(&a), received(&b), received(&m)), (1, 2, 2));
        assert_eq!(sink.captured(), 2);
        assert_eq!(at_m.captured(), 3, "m's own frame, received");
        let mut out = Vec::new();
        sink.take(&mut out);
        let h = RecordHeader::decode(out[..RECORD_HEADER].try_into().unwrap()).unwrap();
        assert_eq!((h.orig_len, h.cap_len, h.dir), (60, 60, DIR_TX));
        // No taps: the flag is clear again.
        sw.taps().set(TapTable::default());
        assert!(!sw.taps().active());
    }
}
