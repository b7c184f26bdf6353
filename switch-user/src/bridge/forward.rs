//! The forwarding batch: read up to [`MAX_BATCH`] frames from one source port,
//! look every frame up, group the frames per destination, then deliver each
//! group with one call (one lock, one publish per destination), decide the
//! kicks of all destinations after one fence, and finally give the source
//! its slots back.
//!
//! Memory latency is what grows with the number of addresses and ports, so
//! the batch hides it: the forwarding function prefetches the table entries
//! of the frame a few frames ahead of the one looked up, and a
//! destination prepares (prefetches its ring's indices and slots, then the
//! buffers its frames will fill) a few destinations before its turn. Only
//! ports that receive frames of the batch are touched.
//!
//! Port security is applied here, before a frame is looked up: a frame whose
//! source address is not its port's locked one ([`Port::security`]) or is
//! pinned to another port is dropped as `spoofed` (and never learned), and a
//! frame to be flooded past the port's storm cap is dropped as `drop_storm`.

use std::sync::atomic::{fence, Ordering};

use switch_port::mac::MacAddr;

use super::lookup::{Destination, EthHeader, Lookup, PortId};
use super::port::{FrameRef, Lane, Port};
use super::prefetch;
use super::switch::{PortTable, Switch};
use crate::clock::monotonic_ns;
use crate::counters::DropReason;

/// Most frames read from a source at once.
pub const MAX_BATCH: usize = 512;
/// How many frames ahead of the one looked up the forwarding function is
/// asked to prefetch (see [`Lookup::prefetch`]): enough to cover a miss to
/// memory, few enough that the lines are still cached when used.
const PREFETCH_AHEAD: usize = 8;
/// How many destinations ahead of the one delivered to are prepared (see
/// [`super::port::PortIo::prepare`]).
const PREPARE_AHEAD: usize = 8;

/// Per-thread buffers reused across batches.
#[derive(Default)]
pub struct Scratch {
    frames: Vec<FrameRef>,
    per_destination: Vec<Vec<u16>>,
    /// Destinations of this batch, in the order first seen.
    touched: Vec<PortId>,
    vlan: super::vlan::VlanScratch,
    /// Destinations published that still need their kick decision.
    to_kick: Vec<PortId>,
}

impl Scratch {
    /// Empty scratch space.
    pub fn new() -> Scratch {
        Scratch {
            frames: Vec::with_capacity(MAX_BATCH),
            per_destination: Vec::new(),
            touched: Vec::new(),
            vlan: Default::default(),
            to_kick: Vec::new(),
        }
    }

    /// Asks the `t`-th destination of the batch, if any, to prepare for its
    /// frames.
    #[inline]
    fn prepare(&self, table: &PortTable, t: usize) {
        if let Some(&dest) = self.touched.get(t) {
            if let Some(port) = table.get(dest) {
                prefetch::write((&raw const port.counters).cast());
                port.io.prepare(self.per_destination[dest as usize].len());
            }
        }
    }

    /// [`Scratch::prepare`]'s earlier step (see
    /// [`super::port::PortIo::prepare_early`]).
    #[inline]
    fn prepare_early(&self, table: &PortTable, t: usize) {
        if let Some(&dest) = self.touched.get(t) {
            if let Some(port) = table.get(dest) {
                port.io
                    .prepare_early(self.per_destination[dest as usize].len());
            }
        }
    }

    #[inline]
    fn push(&mut self, dest: PortId, frame: u16) {
        let d = dest as usize;
        if d >= self.per_destination.len() {
            self.per_destination
                .resize_with(d + 1, || Vec::with_capacity(MAX_BATCH));
        }
        let list = &mut self.per_destination[d];
        if list.is_empty() {
            self.touched.push(dest);
        }
        list.push(frame);
    }
}

/// Asks the forwarding function to prefetch what it will read for frames
/// a few ahead of the one being looked up; a frame with the same header as
/// the one before it is skipped (its lookup will be reused).
struct Ahead {
    /// Whether the forwarding function wants the hints at all.
    on: bool,
    last: Option<[u8; 14]>,
}

impl Ahead {
    #[inline]
    fn prefetch(&mut self, lookup: &dyn Lookup, frames: &[FrameRef], i: usize) {
        let Some(frame) = frames.get(i).filter(|_| self.on) else {
            return;
        };
        // SAFETY: PortIo::receive only returns frames of at least 14 bytes
        // readable until release.
        let bytes = unsafe { frame.header() };
        if self.last != Some(bytes) {
            self.last = Some(bytes);
            lookup.prefetch(&EthHeader::parse(&bytes));
        }
    }
}

/// Forwards one batch from `source`, a port of `switch`. Returns the number
/// of frames read from the source (0 when it had none). A switch with VLAN
/// ports forwards with [`super::vlan::forward_batch`] instead.
pub fn forward_batch(switch: &Switch, source: &Port, scratch: &mut Scratch, now: u32) -> usize {
    forward_lane(switch, source, Lane::All, scratch, now)
}

/// [`forward_batch`] from one receive lane of `source` (a NIC queue: see
/// [`super::port::PortIo::lanes`]).
pub fn forward_lane(
    switch: &Switch,
    source: &Port,
    lane: Lane,
    scratch: &mut Scratch,
    now: u32,
) -> usize {
    if switch.vlan_aware() {
        return super::vlan::forward_lane(switch, source, lane, &mut scratch.vlan, now);
    }
    scratch.frames.clear();
    let n = source.receive_from(lane, &mut scratch.frames, MAX_BATCH);
    if n == 0 {
        source.release_from(lane);
        return 0;
    }
    let table = switch.ports();
    let lookup = switch.lookup();
    let (mut same_port, mut filtered, mut nowhere) = (0u64, 0u64, 0u64);
    let (mut spoofed, mut storm) = (0u64, 0u64);
    let locked = source.security.mac();
    let storm_limited = source.security.storm_limited();
    let mut flood_clock: Option<u64> = None;
    // Frames of a burst share their header: a frame whose 14 header bytes
    // (destination, source, EtherType) equal the previous frame's in this
    // batch goes where that one went, without asking the lookup again
    // (learning the same source on the same port at the same `now` would
    // change nothing). Any other frame is looked up: a new source is learned
    // even when its destination repeats the previous frame's.
    let mut previous: Option<([u8; 14], Destination)> = None;
    // The source address of the last frame looked up, when its answer was
    // not `Spoofed`: a frame from the same address only needs its
    // destination found (see `Lookup::lookup_seen_source`).
    let mut seen_source: Option<MacAddr> = None;
    let mut ahead = Ahead {
        on: lookup.prefetch_useful(),
        last: None,
    };
    for i in 0..PREFETCH_AHEAD {
        ahead.prefetch(lookup, &scratch.frames, i);
    }
    for i in 0..scratch.frames.len() {
        ahead.prefetch(lookup, &scratch.frames, i + PREFETCH_AHEAD);
        let frame = scratch.frames[i];
        // SAFETY: PortIo::receive only returns frames of at least 14 bytes
        // readable until release.
        let bytes = unsafe { frame.header() };
        let destination = match previous {
            Some((seen, dest)) if seen == bytes => dest,
            _ => {
                let header = EthHeader::parse(&bytes);
                let dest = if locked.is_some_and(|mac| mac != header.src) {
                    Destination::Spoofed
                } else if seen_source == Some(header.src) {
                    lookup.lookup_seen_source(&header, source.id, now)
                } else {
                    let dest = lookup.lookup(&header, source.id, now);
                    seen_source = (dest != Destination::Spoofed).then_some(header.src);
                    dest
                };
                previous = Some((bytes, dest));
                dest
            }
        };
        match destination {
            Destination::Port(dest) if dest == source.id => same_port += 1,
            Destination::Port(dest) if table.get(dest).is_some() => scratch.push(dest, i as u16),
            Destination::Drop => filtered += 1,
            Destination::Spoofed => spoofed += 1,
            // Flood, or a learned port that has just gone away.
            _ => {
                if storm_limited {
                    let now_ns = *flood_clock.get_or_insert_with(monotonic_ns);
                    if !source.security.admit_flood(now_ns) {
                        storm += 1;
                        continue;
                    }
                }
                let mut copies = 0;
                for port in &table.active {
                    if port.id != source.id {
                        scratch.push(port.id, i as u16);
                        copies += 1;
                    }
                }
                if copies == 0 {
                    nowhere += 1;
                }
            }
        }
    }
    if switch.taps().active() {
        crate::capture::taps::tap_batch(
            switch,
            source,
            &scratch.frames,
            scratch.frames.len(),
            &scratch.touched,
            &scratch.per_destination,
        );
    }
    // Each destination is asked to prepare in two steps before its turn, so
    // the misses overlap: 16 destinations ahead it starts loading its ring's
    // indices and next slots, 8 ahead it reads those (now cached) and starts
    // loading the buffers its frames will fill. Each is published without a
    // fence, then one fence serves every kick decision.
    for t in 0..2 * PREPARE_AHEAD {
        scratch.prepare_early(&table, t);
    }
    for t in 0..PREPARE_AHEAD {
        scratch.prepare(&table, t);
    }
    for t in 0..scratch.touched.len() {
        scratch.prepare_early(&table, t + 2 * PREPARE_AHEAD);
        scratch.prepare(&table, t + PREPARE_AHEAD);
        let dest = scratch.touched[t];
        let list = &mut scratch.per_destination[dest as usize];
        if let Some(port) = table.get(dest) {
            if port
                .io
                .deliver_unkicked(&scratch.frames, list, &port.counters)
            {
                scratch.to_kick.push(dest);
            }
        }
        list.clear();
    }
    scratch.touched.clear();
    if !scratch.to_kick.is_empty() {
        fence(Ordering::SeqCst);
        for dest in scratch.to_kick.drain(..) {
            if let Some(port) = table.get(dest) {
                port.io.kick_if_waiting(&port.counters);
            }
        }
    }
    source.release_from(lane);
    source.counters.add_drops(DropReason::SamePort, same_port);
    source.counters.add_drops(DropReason::Filtered, filtered);
    source
        .counters
        .add_drops(DropReason::NoDestination, nowhere);
    source.counters.add_drops(DropReason::Spoofed, spoofed);
    source.counters.add_drops(DropReason::Storm, storm);
    n
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::Ordering;
    use std::sync::Arc;

    use switch_port::eventfd::EventFd;
    use switch_port::layout::Layout;
    use switch_port::mac::MacAddr;
    use switch_port::names::{PortName, SwitchName};
    use switch_port::protocol::PortKind;
    use switch_port::region::Region;
    use switch_port::ring::Slot;

    use super::*;
    use crate::bridge::learning::LearningTable;
    use crate::bridge::lookup::{FdbEntry, Lookup};
    use crate::bridge::shm_port::ShmPort;

    struct TestPort {
        port: Arc<Port>,
        region: Arc<Region>,
        shm: Arc<ShmPort>,
        next_tx: u32,
    }

    fn add(switch: &Switch, name: &str, ring: u32, buf: u32) -> TestPort {
        let region = Arc::new(Region::create(name, Layout::new(ring, buf).unwrap()).unwrap());
        let shm = Arc::new(ShmPort::new(
            region.clone(),
            EventFd::new().unwrap(),
            EventFd::new().unwrap(),
        ));
        let name = PortName::parse(name).unwrap();
        let port = switch
            .add_port(|id| Port::new(name, id, PortKind::Shm, Box::new(shm.clone())))
            .unwrap();
        TestPort {
            port,
            region,
            shm,
            next_tx: 0,
        }
    }

    fn send(p: &mut TestPort, dst: MacAddr, src: MacAddr, len: usize, slot: Option<Slot>) {
        send_typed(p, dst, src, 0x88b5, len, slot);
    }

    fn send_typed(
        p: &mut TestPort,
        dst: MacAddr,
        src: MacAddr,
        ethertype: u16,
        len: usize,
        slot: Option<Slot>,
    ) {
        let ring = p.region.tx_ring();
        let i = p.next_tx;
        let buf = p.region.buffer(i).unwrap();
        // SAFETY: buffer i of the test's own region holds at least `len` bytes.
        let frame = unsafe { std::slice::from_raw_parts_mut(buf.as_ptr(), len.max(14)) };
        frame[0..6].copy_from_slice(&dst.0);
        frame[6..12].copy_from_slice(&src.0);
        frame[12..14].copy_from_slice(&ethertype.to_be_bytes());
        ring.write_slot(
            i,
            slot.unwrap_or(Slot {
                buf: i,
                len: len as u16,
                flags: 0,
            }),
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

    fn switch() -> Switch {
        Switch::new(
            SwitchName::parse("vale0").unwrap(),
            Box::new(LearningTable::new(64, 300)),
            8,
        )
    }

    #[test]
    fn floods_learns_and_counts_drop_reasons() {
        let sw = switch();
        let mut a = add(&sw, "vale0:a", 64, 2048);
        let b = add(&sw, "vale0:b", 64, 2048);
        let small = add(&sw, "vale0:small", 64, 128);
        let (ma, mb) = (MacAddr::local(1), MacAddr::local(2));
        let mut scratch = Scratch::new();
        // Broadcast reaches b and small, not a.
        send(&mut a, MacAddr::BROADCAST, ma, 60, None);
        // Too long for `small` (128-byte buffers), fine for b.
        send(&mut a, MacAddr::BROADCAST, ma, 1000, None);
        // A runt, a bad buffer index and a length past the buffer.
        send(&mut a, MacAddr::BROADCAST, ma, 10, None);
        send(
            &mut a,
            MacAddr::BROADCAST,
            ma,
            60,
            Some(Slot {
                buf: 9999,
                len: 60,
                flags: 0,
            }),
        );
        send(
            &mut a,
            MacAddr::BROADCAST,
            ma,
            60,
            Some(Slot {
                buf: 1,
                len: 4000,
                flags: 0,
            }),
        );
        // Unicast to a's own address comes back to a: dropped as same-port.
        send(&mut a, ma, ma, 60, None);
        assert_eq!(forward_batch(&sw, &a.port, &mut scratch, 0), 3);
        assert_eq!(received(&b), 2);
        assert_eq!(received(&small), 1);
        assert_eq!(received(&a), 0);
        let ca = a.port.counters.snapshot();
        assert_eq!(
            (
                ca.rx_packets,
                ca.drop_runt,
                ca.drop_bad_slot,
                ca.drop_same_port
            ),
            (3, 1, 2, 1)
        );
        assert_eq!(small.port.counters.snapshot().drop_too_long, 1);
        // The TX slots were all returned: tail is one behind the next slot.
        let tx = a.region.tx_ring();
        assert_eq!(tx.tail().load(Ordering::Relaxed), tx.advance(a.next_tx, 63));
        // b is unknown: unicast to it floods; once learned it goes to b only.
        send(&mut a, mb, ma, 60, None);
        forward_batch(&sw, &a.port, &mut scratch, 0);
        assert_eq!((received(&b), received(&small)), (3, 2));
        let mut b = b;
        send(&mut b, ma, mb, 60, None);
        forward_batch(&sw, &b.port, &mut scratch, 0);
        assert_eq!(received(&a), 1);
        send(&mut a, mb, ma, 60, None);
        forward_batch(&sw, &a.port, &mut scratch, 0);
        assert_eq!((received(&b), received(&small)), (4, 2));
    }

    #[test]
    fn a_batch_to_many_ports_kicks_exactly_the_waiting_clients() {
        let sw = switch();
        let mut a = add(&sw, "vale0:a", 64, 2048);
        let mut dests: Vec<TestPort> = (0..5)
            .map(|i| add(&sw, &format!("vale0:d{i}"), 64, 2048))
            .collect();
        let mut scratch = Scratch::new();
        // Clients 1 and 3 sleep waiting for frames.
        for i in [1, 3] {
            dests[i]
                .region
                .rx_ring()
                .consumer_needs_kick()
                .store(1, Ordering::Relaxed);
        }
        // Each destination learns its address, then a sends to all of them,
        // interleaved, in one batch.
        for (i, d) in dests.iter_mut().enumerate() {
            send(
                d,
                MacAddr::BROADCAST,
                MacAddr::local(10 + i as u32),
                60,
                None,
            );
            forward_batch(&sw, &d.port, &mut scratch, 0);
        }
        let before: Vec<u64> = dests
            .iter()
            .map(|d| d.port.counters.snapshot().kicks_sent)
            .collect();
        for round in 0..3 {
            for i in 0..5 {
                send(
                    &mut a,
                    MacAddr::local(10 + i),
                    MacAddr::local(1),
                    60 + round,
                    None,
                );
            }
        }
        assert_eq!(forward_batch(&sw, &a.port, &mut scratch, 0), 15);
        for (i, d) in dests.iter().enumerate() {
            let kicks = d.port.counters.snapshot().kicks_sent - before[i];
            assert_eq!(kicks, u64::from(i == 1 || i == 3), "port d{i}");
            // The four others' broadcasts, then three frames of the batch.
            assert_eq!(d.port.counters.snapshot().tx_packets, 7, "d{i}");
        }
    }

    #[test]
    fn full_destination_drops_and_a_lone_port_counts_no_destination() {
        let sw = switch();
        let mut a = add(&sw, "vale0:a", 64, 2048);
        let mut scratch = Scratch::new();
        send(&mut a, MacAddr::BROADCAST, MacAddr::local(1), 60, None);
        forward_batch(&sw, &a.port, &mut scratch, 0);
        assert_eq!(a.port.counters.snapshot().drop_no_destination, 1);
        let b = add(&sw, "vale0:b", 64, 2048);
        for _ in 0..63 {
            send(&mut a, MacAddr::BROADCAST, MacAddr::local(1), 60, None);
        }
        forward_batch(&sw, &a.port, &mut scratch, 0);
        for _ in 0..10 {
            send(&mut a, MacAddr::BROADCAST, MacAddr::local(1), 60, None);
        }
        forward_batch(&sw, &a.port, &mut scratch, 0);
        let cb = b.port.counters.snapshot();
        assert_eq!(cb.tx_packets, 63, "a 64-slot ring holds 63 frames");
        assert_eq!(cb.drop_ring_full, 10);
        // A client head out of range is counted and nothing is delivered.
        b.region.rx_ring().head().store(1000, Ordering::Release);
        send(&mut a, MacAddr::BROADCAST, MacAddr::local(1), 60, None);
        forward_batch(&sw, &a.port, &mut scratch, 0);
        let cb = b.port.counters.snapshot();
        assert_eq!((cb.bad_index, cb.drop_ring_full), (1, 11));
    }

    /// The port `mac` is learned on, if any.
    fn learned_on(sw: &Switch, mac: MacAddr) -> Option<PortId> {
        sw.lookup()
            .entries(0)
            .iter()
            .find(|e| e.mac == mac)
            .map(|e| e.port)
    }

    #[test]
    fn a_second_source_in_one_batch_is_learned() {
        let sw = switch();
        let mut a = add(&sw, "vale0:a", 64, 2048);
        let mut b = add(&sw, "vale0:b", 64, 2048);
        let c = add(&sw, "vale0:c", 64, 2048);
        let (m1, m2, mb) = (MacAddr::local(1), MacAddr::local(2), MacAddr::local(3));
        let mut scratch = Scratch::new();
        // One batch, two sources behind a, the second after a run of the first.
        for src in [m1, m1, m2, m2, m1] {
            send(&mut a, MacAddr::BROADCAST, src, 60, None);
        }
        assert_eq!(forward_batch(&sw, &a.port, &mut scratch, 0), 5);
        assert_eq!((received(&b), received(&c)), (5, 5));
        assert_eq!(learned_on(&sw, m1), Some(a.port.id));
        assert_eq!(learned_on(&sw, m2), Some(a.port.id));
        // Both now go to a alone.
        send(&mut b, m2, mb, 60, None);
        send(&mut b, m1, mb, 60, None);
        forward_batch(&sw, &b.port, &mut scratch, 0);
        assert_eq!((received(&a), received(&c)), (2, 5));
    }

    #[test]
    fn a_new_source_behind_a_repeated_destination_is_learned() {
        let sw = switch();
        let mut a = add(&sw, "vale0:a", 64, 2048);
        let mut b = add(&sw, "vale0:b", 64, 2048);
        let mut c = add(&sw, "vale0:c", 64, 2048);
        let (m1, m2, mb, mc) = (
            MacAddr::local(1),
            MacAddr::local(2),
            MacAddr::local(3),
            MacAddr::local(4),
        );
        let mut scratch = Scratch::new();
        send(&mut b, MacAddr::BROADCAST, mb, 60, None);
        forward_batch(&sw, &b.port, &mut scratch, 0);
        // Same destination three times; the source changes after the first.
        for src in [m1, m2, m2] {
            send(&mut a, mb, src, 60, None);
        }
        forward_batch(&sw, &a.port, &mut scratch, 0);
        assert_eq!((received(&b), received(&c)), (3, 1));
        assert_eq!(learned_on(&sw, m2), Some(a.port.id));
        // A frame to m2 goes to a only: it was learned, not flooded.
        send(&mut c, m2, mc, 60, None);
        forward_batch(&sw, &c.port, &mut scratch, 0);
        assert_eq!((received(&a), received(&b)), (2, 3));
    }

    #[test]
    fn a_moved_address_is_followed() {
        let sw = switch();
        let mut a = add(&sw, "vale0:a", 64, 2048);
        let mut b = add(&sw, "vale0:b", 64, 2048);
        let mut c = add(&sw, "vale0:c", 64, 2048);
        let (m1, mb) = (MacAddr::local(1), MacAddr::local(2));
        let mut scratch = Scratch::new();
        send(&mut b, MacAddr::BROADCAST, mb, 60, None);
        forward_batch(&sw, &b.port, &mut scratch, 0);
        send(&mut a, mb, m1, 60, None);
        send(&mut a, mb, m1, 60, None);
        forward_batch(&sw, &a.port, &mut scratch, 0);
        assert_eq!(learned_on(&sw, m1), Some(a.port.id));
        // The same header, now from c: the address moved, and the header
        // seen last in a's batch is not reused for c's.
        send(&mut c, mb, m1, 60, None);
        send(&mut c, mb, m1, 60, None);
        forward_batch(&sw, &c.port, &mut scratch, 0);
        assert_eq!(learned_on(&sw, m1), Some(c.port.id));
        assert_eq!(sw.lookup().stats().moved, 1);
        assert_eq!(received(&b), 4);
        let (a_before, c_before) = (received(&a), received(&c));
        send(&mut b, m1, mb, 60, None);
        forward_batch(&sw, &b.port, &mut scratch, 0);
        assert_eq!((received(&a), received(&c)), (a_before, c_before + 1));
    }

    /// A lookup that records every call and answers as a learning table.
    struct Recording {
        inner: LearningTable,
        calls: std::sync::Mutex<Vec<(EthHeader, PortId)>>,
    }

    impl Lookup for Arc<Recording> {
        fn lookup(&self, header: &EthHeader, source: PortId, now: u32) -> Destination {
            self.calls.lock().unwrap().push((*header, source));
            self.inner.lookup(header, source, now)
        }
        fn forget_port(&self, port: PortId) {
            self.inner.forget_port(port)
        }
        fn forget_learned(&self, port: PortId) {
            self.inner.forget_learned(port)
        }
        fn age(&self, now: u32) {
            self.inner.age(now)
        }
        fn entries(&self, now: u32) -> Vec<FdbEntry> {
            self.inner.entries(now)
        }
        fn stats(&self) -> switch_port::protocol::LookupStats {
            self.inner.stats()
        }
    }

    #[test]
    fn the_lookup_sees_every_change_of_header_in_frame_order() {
        let recording = Arc::new(Recording {
            inner: LearningTable::new(64, 300),
            calls: std::sync::Mutex::new(Vec::new()),
        });
        let sw = Switch::new(
            SwitchName::parse("vale0").unwrap(),
            Box::new(recording.clone()),
            8,
        );
        let mut a = add(&sw, "vale0:a", 64, 2048);
        let b = add(&sw, "vale0:b", 64, 2048);
        let (m1, m2, mb) = (MacAddr::local(1), MacAddr::local(2), MacAddr::local(3));
        let h = |dst: MacAddr, src: MacAddr, ethertype: u16| EthHeader {
            vlan: 0,
            dst,
            src,
            ethertype,
        };
        let (h1, h2, h3) = (h(mb, m1, 0x0800), h(mb, m2, 0x0800), h(mb, m2, 0x86dd));
        let mut scratch = Scratch::new();
        // A run of h1, a new source (h2), a new EtherType (h3), h1 again.
        for x in [h1, h1, h2, h2, h3, h1] {
            send_typed(&mut a, x.dst, x.src, x.ethertype, 60, None);
        }
        assert_eq!(forward_batch(&sw, &a.port, &mut scratch, 7), 6);
        // The next batch asks again, even for the header seen last.
        send_typed(&mut a, h1.dst, h1.src, h1.ethertype, 60, None);
        assert_eq!(forward_batch(&sw, &a.port, &mut scratch, 7), 1);
        let calls = recording.calls.lock().unwrap().clone();
        let id = a.port.id;
        assert_eq!(
            calls,
            vec![(h1, id), (h2, id), (h3, id), (h1, id), (h1, id)]
        );
        // Every frame went where the lookup said (flood: b is unknown).
        assert_eq!(received(&b), 7);
    }

    #[test]
    fn a_port_without_client_neither_sends_nor_queues() {
        let sw = switch();
        let mut a = add(&sw, "vale0:a", 64, 2048);
        let mut b = add(&sw, "vale0:b", 64, 2048);
        let mut scratch = Scratch::new();
        b.shm.set_client(false);
        send(&mut a, MacAddr::BROADCAST, MacAddr::local(1), 60, None);
        send(&mut b, MacAddr::BROADCAST, MacAddr::local(2), 60, None);
        forward_batch(&sw, &a.port, &mut scratch, 0);
        assert_eq!(forward_batch(&sw, &b.port, &mut scratch, 0), 0);
        assert_eq!((received(&a), received(&b)), (0, 0));
        assert_eq!(b.port.counters.snapshot().drop_no_client, 1);
        assert!(!b.port.io.arm(), "nothing to read without a client");
    }

    #[test]
    fn a_locked_port_cannot_spoof_and_its_address_cannot_be_taken() {
        let sw = switch();
        let mut victim = add(&sw, "vale0:victim", 64, 2048);
        let mut thief = add(&sw, "vale0:thief", 64, 2048);
        let other = add(&sw, "vale0:other", 64, 2048);
        let (mv, mt) = (MacAddr::local(1), MacAddr::local(2));
        victim.port.security.set_mac(Some(mv));
        assert!(sw.lookup().pin(mv, 0, victim.port.id));
        let mut scratch = Scratch::new();
        // The victim sending as another address is dropped.
        send(&mut victim, MacAddr::BROADCAST, mt, 60, None);
        send(&mut victim, MacAddr::BROADCAST, mv, 60, None);
        forward_batch(&sw, &victim.port, &mut scratch, 0);
        assert_eq!(victim.port.counters.snapshot().spoofed, 1);
        assert_eq!((received(&thief), received(&other)), (1, 1));
        // The thief sending as the victim is dropped and moves nothing.
        send(&mut thief, MacAddr::BROADCAST, mv, 60, None);
        forward_batch(&sw, &thief.port, &mut scratch, 0);
        assert_eq!(thief.port.counters.snapshot().spoofed, 1);
        assert_eq!(received(&other), 1);
        // Unicast to the victim still goes to the victim only.
        send(&mut thief, mv, mt, 60, None);
        forward_batch(&sw, &thief.port, &mut scratch, 0);
        assert_eq!((received(&victim), received(&other)), (1, 1));
    }

    /// A batch of one source to many destinations learns the source once
    /// and finds each destination; a pinned address in the middle of the
    /// batch is still refused, and the source after it still delivered.
    #[test]
    fn one_source_to_many_destinations_with_a_spoofed_frame_between() {
        let sw = switch();
        let mut a = add(&sw, "vale0:a", 64, 2048);
        let mut b = add(&sw, "vale0:b", 64, 2048);
        let c = add(&sw, "vale0:c", 64, 2048);
        let (ma, mb, mc) = (MacAddr::local(1), MacAddr::local(2), MacAddr::local(3));
        let mut scratch = Scratch::new();
        // b and c make themselves known; c's address is pinned to c.
        assert!(sw.lookup().pin(mc, 0, c.port.id));
        send(&mut b, MacAddr::BROADCAST, mb, 60, None);
        forward_batch(&sw, &b.port, &mut scratch, 0);
        let (b0, c0) = (received(&b), received(&c));
        send(&mut a, mb, ma, 60, None);
        send(&mut a, mc, ma, 61, None);
        send(&mut a, mb, mc, 62, None);
        send(&mut a, mb, ma, 63, None);
        send(&mut a, mc, ma, 64, None);
        assert_eq!(forward_batch(&sw, &a.port, &mut scratch, 0), 5);
        assert_eq!((received(&b) - b0, received(&c) - c0), (2, 2));
        assert_eq!(a.port.counters.snapshot().spoofed, 1);
        assert_eq!(sw.lookup().stats().learned, 2, "mb and ma, once each");
        // a's address was learned: a frame to it goes to a only.
        let a0 = received(&a);
        send(&mut b, ma, mb, 60, None);
        forward_batch(&sw, &b.port, &mut scratch, 0);
        assert_eq!((received(&a) - a0, received(&c) - c0), (1, 2));
    }

    #[test]
    fn a_pinned_address_stays_pinned_while_its_port_is_renewed() {
        let sw = switch();
        let victim = add(&sw, "vale0:victim", 64, 2048);
        let mut thief = add(&sw, "vale0:thief", 64, 2048);
        let other = add(&sw, "vale0:other", 64, 2048);
        let mv = MacAddr::local(1);
        victim.port.security.set_mac(Some(mv));
        assert!(sw.lookup().pin(mv, 0, victim.port.id));
        let learned = MacAddr::local(9);
        sw.lookup().lookup(
            &EthHeader::parse(&{
                let mut h = [0u8; 14];
                h[..6].copy_from_slice(&MacAddr::BROADCAST.0);
                h[6..12].copy_from_slice(&learned.0);
                h
            }),
            victim.port.id,
            0,
        );
        // The victim's client left: the port gets new memory (same number),
        // and nothing is pinned again yet.
        let fresh = add(&switch(), "vale0:fresh", 64, 2048);
        let renewed = sw
            .replace_port(victim.port.id, |_| {
                Port::succeed(&victim.port, Box::new(fresh.shm.clone()))
            })
            .unwrap();
        assert_eq!(renewed.id, victim.port.id);
        // What the old port learned is forgotten; its pinned address is not,
        // so the thief cannot take it in the meantime.
        let entries = sw.lookup().entries(0);
        assert_eq!(entries.len(), 1, "{entries:?}");
        assert_eq!((entries[0].mac, entries[0].port), (mv, victim.port.id));
        let mut scratch = Scratch::new();
        send(&mut thief, MacAddr::BROADCAST, mv, 60, None);
        send(&mut thief, mv, mv, 60, None);
        forward_batch(&sw, &thief.port, &mut scratch, 0);
        let c = thief.port.counters.snapshot();
        assert_eq!((c.spoofed, c.drop_same_port), (2, 0), "{c:?}");
        assert_eq!(received(&other), 0);
    }

    #[test]
    fn storm_control_drops_floods_past_the_cap_but_not_unicast() {
        let sw = switch();
        let mut a = add(&sw, "vale0:a", 1024, 2048);
        let mut b = add(&sw, "vale0:b", 1024, 2048);
        let (ma, mb) = (MacAddr::local(1), MacAddr::local(2));
        let mut scratch = Scratch::new();
        send(&mut b, MacAddr::BROADCAST, mb, 60, None);
        forward_batch(&sw, &b.port, &mut scratch, 0);
        a.port.security.set_storm_pps(100);
        for _ in 0..50 {
            send(&mut a, MacAddr::BROADCAST, ma, 60, None);
        }
        for _ in 0..50 {
            send(&mut a, mb, ma, 60, None);
        }
        forward_batch(&sw, &a.port, &mut scratch, 0);
        // The bucket holds a tenth of a second's worth: 10 floods.
        let c = a.port.counters.snapshot();
        assert_eq!(c.drop_storm, 40);
        assert_eq!(received(&b), 60);
    }
}
