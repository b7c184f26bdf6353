//! The `port_rings` target: three shared-memory client ports and a fake NIC
//! port on one switch, forwarding through the real bridge
//! ([`forward_batch`] over [`ShmPort`]s), while the input plays hostile
//! clients: it publishes frames with any slot (buffer index, length), moves
//! or overwrites ring indices and need-kick flags, rewrites slots and buffers
//! between batches, and scribbles on every ring from another thread during
//! batches.
//!
//! Checked after every batch forwarded without a concurrent scribbler:
//! every frame delivered to a port (read back from its RX ring: the slots
//! the switch just published, whose buffers are distinct) is byte for byte
//! a frame the source port offered in one of its TX slots (or the fake NIC
//! queued), and fits its buffer; nothing is delivered back to the source;
//! a published RX tail is inside the ring. Always: no crash or hang.

use std::collections::{HashSet, VecDeque};
use std::os::fd::RawFd;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use switch_port::eventfd::EventFd;
use switch_port::layout::Layout;
use switch_port::mac::MacAddr;
use switch_port::names::{PortName, SwitchName};
use switch_port::protocol::PortKind;
use switch_port::region::Region;
use switch_port::ring::{RingView, Slot};
use switch_user::bridge::forward::{forward_batch, Scratch, MAX_BATCH};
use switch_user::bridge::learning::LearningTable;
use switch_user::bridge::port::{FrameRef, Port, PortIo, MIN_FRAME};
use switch_user::bridge::shm_port::ShmPort;
use switch_user::bridge::switch::Switch;
use switch_user::counters::PortCounters;

use crate::input::Input;

/// Operation codes (modulo [`op::COUNT`]).
pub mod op {
    /// A client publishes frames: port u8, count u8 (1-16), then per frame:
    /// destination u8 (0 broadcast, 1-4 that port's MAC, else as given),
    /// slot mode u8 (0 its own buffer; 1 buffer u32; 2 length u16 as given),
    /// [buffer u32 | length u16], run (the frame after the addresses).
    pub const PUBLISH: u8 = 0;
    /// One batch from a port: port u8 (3 is the NIC).
    pub const FORWARD: u8 = 1;
    /// A client returns RX slots: port u8, count u8.
    pub const CONSUME: u8 = 2;
    /// A client stores a ring field: port u8, field u8 (ring, which), value u32.
    pub const INDEX: u8 = 3;
    /// A client rewrites a slot: port u8, rx bool, index u16, buf u32, len u16.
    pub const SLOT: u8 = 4;
    /// A client rewrites buffer bytes: port u8, buffer u32, offset u16, run.
    pub const BUFFER: u8 = 5;
    /// Frames arrive at the fake NIC: count u8, then each a run.
    pub const NIC: u8 = 6;
    /// A batch from every port while another thread scribbles on the rings:
    /// count u8, then port u8, field u8, value u32 each.
    pub const RACE: u8 = 7;
    /// A port leaves the switch: port u8.
    pub const REMOVE: u8 = 8;
    /// Number of operation codes.
    pub const COUNT: u8 = 9;
}

/// Shared-memory ports.
const SHM_PORTS: usize = 3;
/// The NIC's index among the ports.
const NIC: usize = SHM_PORTS;
/// Frames the fake NIC holds at most.
const NIC_QUEUE: usize = 1024;

/// A NIC port whose frames come from the input.
#[derive(Default)]
struct FakeNic {
    state: Mutex<NicState>,
}

#[derive(Default)]
struct NicState {
    queue: VecDeque<Vec<u8>>,
    /// Frames handed out by the last `receive`, alive until `release`
    /// (lengths rounded up to a cache line: `readable`).
    held: Vec<Box<[u8]>>,
    delivered: Vec<Vec<u8>>,
}

impl PortIo for FakeNic {
    fn receive(&self, batch: &mut Vec<FrameRef>, max: usize, _c: &PortCounters) -> usize {
        let mut st = self.state.lock().unwrap();
        assert!(st.held.is_empty(), "receive before release");
        let mut taken = 0;
        while taken < max {
            let Some(frame) = st.queue.pop_front() else {
                break;
            };
            if frame.len() < MIN_FRAME as usize {
                continue;
            }
            let mut held = vec![0u8; frame.len().next_multiple_of(64)].into_boxed_slice();
            held[..frame.len()].copy_from_slice(&frame);
            batch.push(FrameRef {
                ptr: held.as_ptr(),
                len: frame.len() as u32,
                readable: held.len() as u32,
            });
            st.held.push(held);
            taken += 1;
        }
        taken
    }

    fn release(&self, _c: &PortCounters) {
        self.state.lock().unwrap().held.clear();
    }

    fn deliver(&self, frames: &[FrameRef], which: &[u16], _c: &PortCounters) -> usize {
        let mut st = self.state.lock().unwrap();
        for &i in which {
            let frame = frames[usize::from(i)];
            assert!(frame.len >= MIN_FRAME && frame.len <= frame.readable);
            // SAFETY: the bridge hands out frames readable for `len` bytes
            // until the source's release (FrameRef's contract).
            let bytes = unsafe { std::slice::from_raw_parts(frame.ptr, frame.len as usize) };
            st.delivered.push(bytes.to_vec());
        }
        which.len()
    }

    fn wake_fd(&self) -> Option<RawFd> {
        None
    }

    fn arm(&self) -> bool {
        !self.state.lock().unwrap().queue.is_empty()
    }

    fn disarm(&self) {}
}

/// A client port: its region (the client's view of it) and the bridge's port.
struct Client {
    region: Arc<Region>,
    port: Arc<Port>,
    next_tx: u32,
    mac: MacAddr,
}

struct Harness {
    switch: Switch,
    clients: Vec<Client>,
    nic: Arc<FakeNic>,
    nic_port: Arc<Port>,
    scratch: Scratch,
}

/// Runs one input.
pub fn run(data: &[u8]) {
    let mut input = Input::new(data);
    let mut h = Harness::new(&mut input);
    while !input.done() {
        h.step(&mut input);
    }
}

fn ring_field(ring: RingView<'_>, which: u8) -> &std::sync::atomic::AtomicU32 {
    match which % 5 {
        0 => ring.head(),
        1 => ring.cur(),
        2 => ring.tail(),
        3 => ring.consumer_needs_kick(),
        _ => ring.producer_needs_kick(),
    }
}

impl Harness {
    fn new(input: &mut Input) -> Self {
        let switch = Switch::new(
            SwitchName::parse("vale0").unwrap(),
            Box::new(LearningTable::new(64, 300)),
            8,
        );
        let mut clients = Vec::new();
        for i in 0..SHM_PORTS {
            let geometry = input.u8();
            let ring = 64 << (geometry & 1);
            let buf = [128, 256, 2048, 192][usize::from(geometry >> 1) % 4];
            let name = format!("vale0:p{i}");
            let region = Arc::new(Region::create(&name, Layout::new(ring, buf).unwrap()).unwrap());
            let shm = ShmPort::new(
                Arc::clone(&region),
                EventFd::new().unwrap(),
                EventFd::new().unwrap(),
            );
            let port_name = PortName::parse(&name).unwrap();
            let port = switch
                .add_port(|id| Port::new(port_name, id, PortKind::Shm, Box::new(shm)))
                .unwrap();
            clients.push(Client {
                region,
                port,
                next_tx: 0,
                mac: MacAddr::local(i as u32 + 1),
            });
        }
        let nic = Arc::new(FakeNic::default());
        let io = Arc::clone(&nic);
        let nic_port = switch
            .add_port(|id| {
                Port::new(
                    PortName::parse("vale0:eth0").unwrap(),
                    id,
                    PortKind::Nic,
                    Box::new(io),
                )
            })
            .unwrap();
        Self {
            switch,
            clients,
            nic,
            nic_port,
            scratch: Scratch::new(),
        }
    }

    fn mac(&self, index: usize) -> MacAddr {
        self.clients
            .get(index)
            .map_or(MacAddr::local(99), |c| c.mac)
    }

    fn step(&mut self, input: &mut Input) {
        match input.u8() % op::COUNT {
            op::PUBLISH => self.publish(input),
            op::FORWARD => {
                let source = usize::from(input.u8()) % (SHM_PORTS + 1);
                self.forward(source, true);
            }
            op::CONSUME => {
                let c = &self.clients[usize::from(input.u8()) % SHM_PORTS];
                let rx = c.region.rx_ring();
                let head = rx.head().load(Ordering::Relaxed);
                rx.head()
                    .store(rx.advance(head, u32::from(input.u8())), Ordering::Release);
            }
            op::INDEX => {
                let c = &self.clients[usize::from(input.u8()) % SHM_PORTS];
                let which = input.u8();
                let ring = if which & 0x80 != 0 {
                    c.region.rx_ring()
                } else {
                    c.region.tx_ring()
                };
                ring_field(ring, which).store(input.u32(), Ordering::Release);
            }
            op::SLOT => {
                let c = &self.clients[usize::from(input.u8()) % SHM_PORTS];
                let ring = if input.bool() {
                    c.region.rx_ring()
                } else {
                    c.region.tx_ring()
                };
                let index = u32::from(input.u16());
                let slot = Slot {
                    buf: input.u32() % (c.region.layout().num_bufs + 4),
                    len: input.u16(),
                    flags: 0,
                };
                ring.write_slot(index, slot);
            }
            op::BUFFER => {
                let c = &self.clients[usize::from(input.u8()) % SHM_PORTS];
                let buf = input.u32() % c.region.layout().num_bufs;
                let offset = usize::from(input.u16());
                let bytes = input.run(4096);
                write_buffer(&c.region, buf, offset, bytes);
            }
            op::NIC => {
                for _ in 0..input.u8() % 16 {
                    let frame = input.run(2000).to_vec();
                    let mut st = self.nic.state.lock().unwrap();
                    if st.queue.len() < NIC_QUEUE {
                        st.queue.push_back(frame);
                    }
                }
            }
            op::RACE => {
                let writes: Vec<(u8, u8, u32)> = (0..input.u8() % 16)
                    .map(|_| (input.u8(), input.u8(), input.u32()))
                    .collect();
                self.race(&writes);
            }
            _ => {
                let index = usize::from(input.u8()) % (SHM_PORTS + 1);
                let id = if index == NIC {
                    self.nic_port.id
                } else {
                    self.clients[index].port.id
                };
                self.switch.remove_port(id);
            }
        }
    }

    fn publish(&mut self, input: &mut Input) {
        let index = usize::from(input.u8()) % SHM_PORTS;
        let count = input.u8() % 16 + 1;
        for _ in 0..count {
            let destination = match input.u8() {
                0 => MacAddr::BROADCAST,
                d @ 1..=4 => self.mac(usize::from(d) - 1),
                _ => MacAddr(crate::e1000::pad::<6>(input.bytes(6))),
            };
            let mode = input.u8() % 3;
            let c = &mut self.clients[index];
            let layout = *c.region.layout();
            let tx = c.region.tx_ring();
            let slot_index = c.next_tx;
            let home = layout.ring_size + slot_index;
            let buf = if mode == 1 {
                input.u32() % (layout.num_bufs + 4)
            } else {
                home % layout.num_bufs
            };
            let given_len = (mode == 2).then(|| input.u16());
            let body = input.run(layout.buf_size as usize);
            let mut frame = Vec::with_capacity(12 + body.len());
            frame.extend_from_slice(&destination.0);
            frame.extend_from_slice(&c.mac.0);
            frame.extend_from_slice(body);
            frame.truncate(layout.buf_size as usize);
            if buf < layout.num_bufs {
                write_buffer(&c.region, buf, 0, &frame);
            }
            let len = given_len.unwrap_or(frame.len() as u16);
            tx.write_slot(slot_index, Slot { buf, len, flags: 0 });
            c.next_tx = tx.advance(slot_index, 1);
            tx.head().store(c.next_tx, Ordering::Release);
        }
    }

    /// The frames `source` offers: every TX slot's bytes (a shm port), or the
    /// queued frames (the NIC).
    fn offered(&self, source: usize) -> HashSet<Vec<u8>> {
        if source == NIC {
            let st = self.nic.state.lock().unwrap();
            return st.queue.iter().take(MAX_BATCH).cloned().collect();
        }
        let region = &self.clients[source].region;
        let layout = region.layout();
        let tx = region.tx_ring();
        (0..tx.size())
            .filter_map(|i| {
                let slot = tx.read_slot(i);
                let buffer = region.buffer(slot.buf)?;
                (u32::from(slot.len) <= layout.buf_size).then(|| {
                    // SAFETY: buffer `slot.buf` lies inside the region and
                    // holds buf_size >= len bytes; no other thread writes it
                    // now.
                    unsafe { std::slice::from_raw_parts(buffer.as_ptr(), usize::from(slot.len)) }
                        .to_vec()
                })
            })
            .collect()
    }

    /// One batch from `source`; with `check`, verifies what was delivered.
    fn forward(&mut self, source: usize, check: bool) {
        let port = if source == NIC {
            Arc::clone(&self.nic_port)
        } else {
            Arc::clone(&self.clients[source].port)
        };
        let offered = if check {
            self.offered(source)
        } else {
            HashSet::new()
        };
        let before: Vec<u64> = self
            .clients
            .iter()
            .map(|c| c.port.counters.snapshot().tx_packets)
            .collect();
        let nic_before = self.nic.state.lock().unwrap().delivered.len();
        forward_batch(&self.switch, &port, &mut self.scratch, 0);
        if !check {
            return;
        }
        for (i, c) in self.clients.iter().enumerate() {
            let delivered = c.port.counters.snapshot().tx_packets - before[i];
            if i == source {
                assert_eq!(delivered, 0, "frames delivered back to their source");
            }
            if delivered > 0 {
                check_delivered(c, delivered as u32, &offered);
            }
        }
        let st = self.nic.state.lock().unwrap();
        if source == NIC {
            assert_eq!(st.delivered.len(), nic_before, "frames back to the NIC");
        }
        for frame in &st.delivered[nic_before..] {
            assert!(offered.contains(frame), "the NIC got a frame nobody sent");
        }
        drop(st);
        self.nic.state.lock().unwrap().delivered.clear();
    }

    /// A batch from every port while another thread scribbles on the rings.
    fn race(&mut self, writes: &[(u8, u8, u32)]) {
        let stop = AtomicBool::new(false);
        let regions: Vec<Arc<Region>> =
            self.clients.iter().map(|c| Arc::clone(&c.region)).collect();
        std::thread::scope(|scope| {
            scope.spawn(|| {
                let mut rounds = 0;
                while !stop.load(Ordering::Relaxed) && !writes.is_empty() && rounds < 100_000 {
                    for &(port, which, value) in writes {
                        let region = &regions[usize::from(port) % SHM_PORTS];
                        let ring = if which & 0x80 != 0 {
                            region.rx_ring()
                        } else {
                            region.tx_ring()
                        };
                        if which & 0x40 != 0 {
                            ring.write_slot(
                                value >> 16,
                                Slot {
                                    buf: value & 0xFF,
                                    len: (value >> 8) as u16 & 0xFFF,
                                    flags: 0,
                                },
                            );
                        } else {
                            ring_field(ring, which).store(value, Ordering::Release);
                        }
                    }
                    rounds += 1;
                }
            });
            for source in 0..=SHM_PORTS {
                self.forward(source, false);
            }
            stop.store(true, Ordering::Relaxed);
        });
        self.nic.state.lock().unwrap().delivered.clear();
    }
}

/// Checks the `count` frames just delivered to `c`.
fn check_delivered(c: &Client, count: u32, offered: &HashSet<Vec<u8>>) {
    let rx = c.region.rx_ring();
    let layout = c.region.layout();
    let tail = rx.tail().load(Ordering::Acquire);
    assert!(
        tail < rx.size(),
        "published RX tail {tail} outside the ring"
    );
    let slots: Vec<Slot> = (1..=count)
        .map(|k| rx.read_slot(tail.wrapping_sub(k)))
        .collect();
    let mut buffers: Vec<u32> = slots.iter().map(|s| s.buf).collect();
    buffers.sort_unstable();
    buffers.dedup();
    let distinct = buffers.len() == slots.len();
    for slot in slots {
        assert!(
            u32::from(slot.len) <= layout.buf_size,
            "{slot:?} past its buffer"
        );
        let buffer = c
            .region
            .buffer(slot.buf)
            .expect("the switch published a buffer outside the region");
        if distinct {
            // SAFETY: the buffer lies inside the region with buf_size >= len
            // bytes; nothing writes it now.
            let bytes =
                unsafe { std::slice::from_raw_parts(buffer.as_ptr(), usize::from(slot.len)) };
            assert!(
                offered.contains(bytes),
                "delivered a frame nobody published: {slot:?}"
            );
        }
    }
}

/// Writes `bytes` into buffer `buf` of `region` at `offset` (clipped).
fn write_buffer(region: &Region, buf: u32, offset: usize, bytes: &[u8]) {
    let size = region.layout().buf_size as usize;
    let Some(buffer) = region.buffer(buf) else {
        return;
    };
    let offset = offset.min(size);
    let n = bytes.len().min(size - offset);
    // SAFETY: `offset + n <= buf_size`, inside buffer `buf` of the region.
    unsafe { std::ptr::copy_nonoverlapping(bytes.as_ptr(), buffer.as_ptr().add(offset), n) };
}
