//! 802.1Q VLANs: each port's mode ([`PortVlan`]), the tag operations, and
//! the forwarding batch of a switch that has VLAN ports.
//!
//! A port without a mode is in no VLAN (VLAN 0 inside the switch): frames
//! pass as they are, tagged or not, among such ports only, exactly as on a
//! switch without VLANs. An *access* port (`--vlan N`) carries VLAN N
//! untagged; a *trunk* (`--trunk 10,20,native=1`) carries the listed VLANs
//! tagged and its native VLAN, if any, untagged.
//!
//! On the way in, a frame gets its VLAN from the source port's mode: an
//! untagged frame the access VLAN or the native one, a tagged frame (TPID
//! 0x8100) on a trunk its VID if the trunk carries it. Any other frame (a
//! tagged frame on an access port, a VID the trunk does not carry, an
//! untagged frame on a trunk without a native VLAN, a priority tag with VID
//! 0, a tag cut short) is dropped and counted as `drop_vlan`. Learning and
//! lookup are per (VLAN, MAC), flooding reaches only the ports that carry
//! the frame's VLAN, and a frame for a port leaves in the port's form:
//! tagged on a trunk (the tag as it came, PCP and DEI included, or a new one
//! with priority 0), untagged elsewhere.
//!
//! A switch takes this path ([`forward_batch`]) only while it has a VLAN
//! port ([`super::switch::Switch::vlan_aware`]); a switch of untagged ports
//! keeps the plain batch of [`super::forward`].

use std::sync::atomic::{AtomicBool, AtomicU16, AtomicU64, Ordering};

use switch_port::mac::MacAddr;
use switch_port::protocol::VlanMode;

use super::forward::MAX_BATCH;
use super::lookup::{Destination, EthHeader, PortId};
use super::port::{FrameRef, Lane, Port};
use super::switch::Switch;
use crate::clock::monotonic_ns;
use crate::counters::DropReason;

/// The 802.1Q tag protocol identifier.
pub const TPID: u16 = 0x8100;
/// Bytes of an 802.1Q tag.
pub const TAG_LEN: usize = 4;
/// The VID bits of a tag control word.
pub const VID_MASK: u16 = 0x0FFF;

const WORDS: usize = 4096 / 64;

/// The VLAN mode of a port, read by the forwarding threads without locks.
/// VLAN 0 stands for "none".
#[derive(Debug)]
pub struct PortVlan {
    /// A mode is set (else the port is in no VLAN).
    configured: AtomicBool,
    /// Trunk (else access).
    trunk: AtomicBool,
    /// The VLAN of untagged frames: the access VLAN or the native one (0:
    /// none).
    untagged: AtomicU16,
    /// The VLANs a trunk carries tagged, one bit each.
    tagged: [AtomicU64; WORDS],
}

impl Default for PortVlan {
    fn default() -> Self {
        PortVlan {
            configured: AtomicBool::new(false),
            trunk: AtomicBool::new(false),
            untagged: AtomicU16::new(0),
            tagged: std::array::from_fn(|_| AtomicU64::new(0)),
        }
    }
}

/// How a frame came in: its VLAN inside the switch and whether it carried
/// a tag (then its control word).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Ingress {
    /// The VLAN (0: none).
    pub vlan: u16,
    /// The tag control word it carried (PCP, DEI, VID), if tagged.
    pub tci: Option<u16>,
}

impl PortVlan {
    /// Sets the mode (`None`: no VLAN). The mode must be valid
    /// ([`VlanMode::validate`]).
    pub fn set(&self, mode: Option<&VlanMode>) {
        for w in &self.tagged {
            w.store(0, Ordering::Relaxed);
        }
        let (trunk, untagged) = match mode {
            None => (false, 0),
            Some(VlanMode::Access { vlan }) => (false, *vlan & VID_MASK),
            Some(VlanMode::Trunk { vlans, native }) => {
                for &v in vlans {
                    let v = (v & VID_MASK) as usize;
                    self.tagged[v / 64].fetch_or(1 << (v % 64), Ordering::Relaxed);
                }
                (true, native.unwrap_or(0) & VID_MASK)
            }
        };
        self.trunk.store(trunk, Ordering::Relaxed);
        self.untagged.store(untagged, Ordering::Relaxed);
        self.configured.store(mode.is_some(), Ordering::Release);
    }

    /// The mode, as set.
    pub fn mode(&self) -> Option<VlanMode> {
        if !self.configured.load(Ordering::Acquire) {
            return None;
        }
        let untagged = self.untagged.load(Ordering::Relaxed);
        if !self.trunk.load(Ordering::Relaxed) {
            return Some(VlanMode::Access { vlan: untagged });
        }
        let vlans = (1..4095u16).filter(|&v| self.carries_tagged(v)).collect();
        Some(VlanMode::Trunk {
            vlans,
            native: (untagged != 0).then_some(untagged),
        })
    }

    /// Whether a mode is set.
    #[inline]
    pub fn configured(&self) -> bool {
        self.configured.load(Ordering::Acquire)
    }

    /// The VLANs the port carries (0 for a port in none).
    pub fn vlans(&self) -> Vec<u16> {
        let mut out: Vec<u16> = (1..4095u16).filter(|&v| self.carries_tagged(v)).collect();
        let untagged = self.untagged.load(Ordering::Relaxed);
        if untagged != 0 || !self.configured() {
            out.push(untagged);
        }
        out.sort_unstable();
        out.dedup();
        out
    }

    #[inline]
    fn carries_tagged(&self, vid: u16) -> bool {
        let v = (vid & VID_MASK) as usize;
        self.trunk.load(Ordering::Relaxed)
            && self.tagged[v / 64].load(Ordering::Relaxed) & (1 << (v % 64)) != 0
    }

    /// The VLAN of a frame from this port with header `h` (the first 18
    /// bytes, or fewer for a shorter frame), or `None` when the port does
    /// not carry it (the frame is dropped).
    #[inline]
    pub fn ingress(&self, h: &[u8]) -> Option<Ingress> {
        if !self.configured() {
            return Some(Ingress { vlan: 0, tci: None });
        }
        match parse_tag(h) {
            Tag::Untagged => match self.untagged.load(Ordering::Relaxed) {
                0 => None,
                vlan => Some(Ingress { vlan, tci: None }),
            },
            Tag::Tagged(tci) => {
                let vid = tci & VID_MASK;
                (vid != 0 && self.carries_tagged(vid)).then_some(Ingress {
                    vlan: vid,
                    tci: Some(tci),
                })
            }
            Tag::Short => None,
        }
    }

    /// How a frame of `vlan` leaves through this port: `Some(true)` tagged,
    /// `Some(false)` untagged, `None` not at all (the port does not carry
    /// the VLAN).
    #[inline]
    pub fn egress(&self, vlan: u16) -> Option<bool> {
        if !self.configured() {
            return (vlan == 0).then_some(false);
        }
        if vlan != 0 && self.untagged.load(Ordering::Relaxed) == vlan {
            Some(false)
        } else if vlan != 0 && self.carries_tagged(vlan) {
            Some(true)
        } else {
            None
        }
    }
}

/// What the bytes after the addresses say.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Tag {
    /// No 802.1Q tag.
    Untagged,
    /// A tag with this control word.
    Tagged(u16),
    /// A tag TPID but fewer than 18 bytes.
    Short,
}

/// Reads the 802.1Q tag of a frame (`frame` is at least its first 14
/// bytes; 18 are needed for a tag).
#[inline]
pub fn parse_tag(frame: &[u8]) -> Tag {
    if frame.len() < 14 || u16::from_be_bytes([frame[12], frame[13]]) != TPID {
        return Tag::Untagged;
    }
    if frame.len() < 18 {
        return Tag::Short;
    }
    Tag::Tagged(u16::from_be_bytes([frame[14], frame[15]]))
}

/// Writes `frame` with the tag `tci` inserted after its addresses into `out`.
pub fn push_tag(frame: &[u8], tci: u16, out: &mut Vec<u8>) {
    out.clear();
    out.extend_from_slice(&frame[..12]);
    out.extend_from_slice(&TPID.to_be_bytes());
    out.extend_from_slice(&tci.to_be_bytes());
    out.extend_from_slice(&frame[12..]);
}

/// Writes `frame` (tagged, at least 18 bytes) without its tag into `out`.
pub fn pop_tag(frame: &[u8], out: &mut Vec<u8>) {
    out.clear();
    out.extend_from_slice(&frame[..12]);
    out.extend_from_slice(&frame[12 + TAG_LEN..]);
}

const NO_ALT: u16 = u16::MAX;

/// The previous frame of a batch: its first bytes (and how many), how it
/// came in and where it went.
type Seen = ([u8; 18], usize, Option<Ingress>, Option<Destination>);

/// Per-thread buffers of the VLAN batch.
#[derive(Default)]
pub struct VlanScratch {
    /// The frames read, then the other forms built for some of them.
    frames: Vec<FrameRef>,
    ingress: Vec<Ingress>,
    /// Per frame read: the index of its other form in `frames`, if built.
    alt: Vec<u16>,
    /// Per frame read: where it goes (`None`: dropped for its VLAN).
    decided: Vec<Option<Destination>>,
    /// Memory of the other forms (kept across batches).
    buffers: Vec<Vec<u8>>,
    per_destination: Vec<Vec<u16>>,
    touched: Vec<PortId>,
}

impl VlanScratch {
    fn push(&mut self, dest: PortId, frame: u16) {
        let d = dest as usize;
        if d >= self.per_destination.len() {
            self.per_destination.resize_with(d + 1, Vec::new);
        }
        let list = &mut self.per_destination[d];
        if list.is_empty() {
            self.touched.push(dest);
        }
        list.push(frame);
    }

    /// The index of frame `i` in the form a port wants (`tagged`), built
    /// on first use.
    fn form(&mut self, i: usize, tagged: bool) -> u16 {
        let ing = self.ingress[i];
        if ing.tci.is_some() == tagged {
            return i as u16;
        }
        if self.alt[i] != NO_ALT {
            return self.alt[i];
        }
        let n = self.frames.len() - self.ingress.len();
        if self.buffers.len() <= n {
            self.buffers.resize_with(n + 1, Vec::new);
        }
        let frame = self.frames[i];
        // SAFETY: a received frame is readable for `len` bytes until the
        // source's release, which comes after delivery.
        let bytes = unsafe { std::slice::from_raw_parts(frame.ptr, frame.len as usize) };
        let out = &mut self.buffers[n];
        match ing.tci {
            None => push_tag(bytes, ing.vlan, out),
            Some(_) => pop_tag(bytes, out),
        }
        let index = self.frames.len() as u16;
        self.frames.push(FrameRef {
            ptr: out.as_ptr(),
            len: out.len() as u32,
            readable: out.len() as u32,
        });
        self.alt[i] = index;
        index
    }
}

/// Forwards one batch from `source` on a switch with VLAN ports (see the
/// module doc); otherwise as [`super::forward::forward_batch`]. Returns the
/// number of frames read.
pub fn forward_batch(switch: &Switch, source: &Port, s: &mut VlanScratch, now: u32) -> usize {
    forward_lane(switch, source, Lane::All, s, now)
}

/// [`forward_batch`] from one receive lane of `source` (see
/// [`super::port::PortIo::lanes`]).
pub fn forward_lane(
    switch: &Switch,
    source: &Port,
    lane: Lane,
    s: &mut VlanScratch,
    now: u32,
) -> usize {
    s.frames.clear();
    s.ingress.clear();
    s.alt.clear();
    s.decided.clear();
    let n = source.receive_from(lane, &mut s.frames, MAX_BATCH);
    if n == 0 {
        source.release_from(lane);
        return 0;
    }
    let table = switch.ports();
    let lookup = switch.lookup();
    let (mut same_port, mut filtered, mut nowhere) = (0u64, 0u64, 0u64);
    let (mut spoofed, mut storm, mut wrong_vlan) = (0u64, 0u64, 0u64);
    let locked = source.security.mac();
    let storm_limited = source.security.storm_limited();
    let mut flood_clock: Option<u64> = None;
    // Classify every frame first: `form` appends to `frames` later. A frame
    // whose first 18 bytes equal the previous frame's goes where that one
    // went (as in the plain batch: learning it again would change nothing).
    let mut previous: Option<Seen> = None;
    // The source address and VLAN of the last frame looked up, when its
    // answer was not `Spoofed` (see `Lookup::lookup_seen_source`).
    let mut seen_source: Option<(MacAddr, u16)> = None;
    for i in 0..n {
        let frame = s.frames[i];
        let mut h = [0u8; 18];
        let len = (frame.len as usize).min(18);
        // SAFETY: PortIo::receive returns frames readable for `len >= 14`
        // bytes until release.
        unsafe { std::ptr::copy_nonoverlapping(frame.ptr, h.as_mut_ptr(), len) };
        let (ingress, decided) = match previous {
            Some((seen, seen_len, ingress, decided)) if seen_len == len && seen == h => {
                (ingress, decided)
            }
            _ => {
                let ingress = source.vlan.ingress(&h[..len]);
                let decided = ingress.map(|ingress| {
                    let mut header = EthHeader::parse(h[..14].try_into().unwrap_or(&[0; 14]));
                    header.vlan = ingress.vlan;
                    if locked.is_some_and(|mac| mac != header.src) {
                        Destination::Spoofed
                    } else if seen_source == Some((header.src, header.vlan)) {
                        lookup.lookup_seen_source(&header, source.id, now)
                    } else {
                        let dest = lookup.lookup(&header, source.id, now);
                        seen_source =
                            (dest != Destination::Spoofed).then_some((header.src, header.vlan));
                        dest
                    }
                });
                previous = Some((h, len, ingress, decided));
                (ingress, decided)
            }
        };
        if ingress.is_none() {
            wrong_vlan += 1;
        }
        s.ingress
            .push(ingress.unwrap_or(Ingress { vlan: 0, tci: None }));
        s.alt.push(NO_ALT);
        s.decided.push(decided);
    }
    for i in 0..n {
        let Some(destination) = s.decided[i] else {
            continue;
        };
        let vlan = s.ingress[i].vlan;
        match destination {
            Destination::Port(dest) if dest == source.id => same_port += 1,
            Destination::Port(dest) if table.get(dest).is_some() => {
                match table.get(dest).and_then(|p| p.vlan.egress(vlan)) {
                    Some(tagged) => {
                        let f = s.form(i, tagged);
                        s.push(dest, f);
                    }
                    None => wrong_vlan += 1,
                }
            }
            Destination::Drop => filtered += 1,
            Destination::Spoofed => spoofed += 1,
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
                    if port.id == source.id {
                        continue;
                    }
                    if let Some(tagged) = port.vlan.egress(vlan) {
                        let f = s.form(i, tagged);
                        s.push(port.id, f);
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
            &s.frames,
            n,
            &s.touched,
            &s.per_destination,
        );
    }
    for t in 0..s.touched.len() {
        let dest = s.touched[t];
        let list = &mut s.per_destination[dest as usize];
        if let Some(port) = table.get(dest) {
            port.io.deliver(&s.frames, list, &port.counters);
        }
        list.clear();
    }
    s.touched.clear();
    source.release_from(lane);
    let c = &source.counters;
    c.add_drops(DropReason::SamePort, same_port);
    c.add_drops(DropReason::Filtered, filtered);
    c.add_drops(DropReason::NoDestination, nowhere);
    c.add_drops(DropReason::Spoofed, spoofed);
    c.add_drops(DropReason::Storm, storm);
    c.add_drops(DropReason::Vlan, wrong_vlan);
    n
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frame(tag: Option<u16>) -> Vec<u8> {
        let mut f = vec![0xff; 6];
        f.extend_from_slice(&[2, 0, 0, 0, 0, 1]);
        if let Some(tci) = tag {
            f.extend_from_slice(&TPID.to_be_bytes());
            f.extend_from_slice(&tci.to_be_bytes());
        }
        f.extend_from_slice(&0x0800u16.to_be_bytes());
        f.extend((0..46).map(|i| i as u8));
        f
    }

    #[test]
    fn push_and_pop_are_inverse_and_keep_the_payload() {
        let plain = frame(None);
        let mut tagged = Vec::new();
        // PCP 5, DEI 1, VID 10.
        let tci = 5 << 13 | 1 << 12 | 10;
        push_tag(&plain, tci, &mut tagged);
        assert_eq!(tagged, frame(Some(tci)));
        assert_eq!(parse_tag(&tagged), Tag::Tagged(tci));
        let mut back = Vec::new();
        pop_tag(&tagged, &mut back);
        assert_eq!(back, plain);
        assert_eq!(parse_tag(&plain), Tag::Untagged);
        assert_eq!(parse_tag(&tagged[..16]), Tag::Short);
    }

    fn port(mode: &str) -> PortVlan {
        let p = PortVlan::default();
        let m = match mode.strip_prefix("access ") {
            Some(v) => VlanMode::Access {
                vlan: v.parse().unwrap(),
            },
            None => VlanMode::parse_trunk(mode).unwrap(),
        };
        p.set(Some(&m));
        assert_eq!(p.mode(), Some(m));
        p
    }

    #[test]
    fn ports_take_and_give_frames_as_their_mode_says() {
        let none = PortVlan::default();
        let access = port("access 10");
        let trunk = port("10,20,native=1");
        let bare = port("10,20");
        let (plain, t10, t30, t0) = (
            frame(None),
            frame(Some(3 << 13 | 10)),
            frame(Some(30)),
            frame(Some(0)),
        );
        let ing = |p: &PortVlan, f: &[u8]| p.ingress(&f[..18]).map(|i| i.vlan);
        // No mode: everything passes in VLAN 0, tags and all.
        assert_eq!((ing(&none, &plain), ing(&none, &t10)), (Some(0), Some(0)));
        assert_eq!(none.egress(0), Some(false));
        assert_eq!(none.egress(10), None);
        // Access: untagged only.
        assert_eq!((ing(&access, &plain), ing(&access, &t10)), (Some(10), None));
        assert_eq!((access.egress(10), access.egress(20)), (Some(false), None));
        assert_eq!(access.egress(0), None);
        // Trunk: listed tags, untagged as native, others dropped.
        assert_eq!(
            trunk.ingress(&t10[..18]),
            Some(Ingress {
                vlan: 10,
                tci: Some(3 << 13 | 10)
            })
        );
        assert_eq!((ing(&trunk, &plain), ing(&trunk, &t30)), (Some(1), None));
        assert_eq!(ing(&trunk, &t0), None, "priority tags are dropped");
        assert_eq!(ing(&bare, &plain), None, "no native VLAN");
        assert_eq!(
            (trunk.egress(10), trunk.egress(1), trunk.egress(30)),
            (Some(true), Some(false), None)
        );
        assert_eq!(trunk.ingress(&t10[..16]), None, "a cut tag");
        assert_eq!(trunk.vlans(), vec![1, 10, 20]);
        assert_eq!(none.vlans(), vec![0]);
        none.set(None);
        assert_eq!(none.mode(), None);
    }

    mod batch {
        use std::sync::atomic::Ordering;
        use std::sync::Arc;

        use switch_port::eventfd::EventFd;
        use switch_port::layout::Layout;
        use switch_port::names::{PortName, SwitchName};
        use switch_port::protocol::PortKind;
        use switch_port::region::Region;
        use switch_port::ring::Slot;

        use super::*;
        use crate::bridge::learning::LearningTable;
        use crate::bridge::shm_port::ShmPort;

        struct TestPort {
            port: Arc<Port>,
            region: Arc<Region>,
            next_tx: u32,
        }

        fn add(sw: &Switch, name: &str, mode: Option<VlanMode>) -> TestPort {
            let region = Arc::new(Region::create(name, Layout::new(64, 2048).unwrap()).unwrap());
            let shm = Arc::new(ShmPort::new(
                region.clone(),
                EventFd::new().unwrap(),
                EventFd::new().unwrap(),
            ));
            shm.set_client(true);
            if mode.is_some() {
                sw.set_vlan_aware(true);
            }
            let name = PortName::parse(name).unwrap();
            let port = sw
                .add_port(|id| {
                    let p = Port::new(name, id, PortKind::Shm, Box::new(shm));
                    p.vlan.set(mode.as_ref());
                    p
                })
                .unwrap();
            TestPort {
                port,
                region,
                next_tx: 0,
            }
        }

        fn send(p: &mut TestPort, bytes: &[u8]) {
            let ring = p.region.tx_ring();
            let i = p.next_tx;
            let buf = p.region.buffer(i).unwrap();
            // SAFETY: buffer i of the test's own region holds 2048 bytes.
            unsafe { std::ptr::copy_nonoverlapping(bytes.as_ptr(), buf.as_ptr(), bytes.len()) };
            ring.write_slot(
                i,
                Slot {
                    buf: i,
                    len: bytes.len() as u16,
                    flags: 0,
                },
            );
            p.next_tx = ring.advance(i, 1);
            ring.head().store(p.next_tx, Ordering::Release);
        }

        /// Takes every frame waiting in `p`'s RX ring.
        fn take(p: &TestPort) -> Vec<Vec<u8>> {
            let ring = p.region.rx_ring();
            let mut head = ring.head().load(Ordering::Relaxed);
            let tail = ring.tail().load(Ordering::Acquire);
            let mut out = Vec::new();
            while head != tail {
                let slot = ring.read_slot(head);
                let buf = p.region.buffer(slot.buf).unwrap();
                // SAFETY: the switch wrote `len` bytes into this buffer.
                out.push(unsafe {
                    std::slice::from_raw_parts(buf.as_ptr(), slot.len as usize).to_vec()
                });
                head = ring.advance(head, 1);
            }
            ring.head().store(head, Ordering::Release);
            out
        }

        #[test]
        fn one_batch_of_mixed_vlans_goes_each_its_way() {
            let sw = Switch::new(
                SwitchName::parse("vale0").unwrap(),
                Box::new(LearningTable::new(64, 300)),
                8,
            );
            let mut t = add(
                &sw,
                "vale0:vt",
                Some(VlanMode::parse_trunk("10,20,native=1").unwrap()),
            );
            let a = add(&sw, "vale0:va", Some(VlanMode::Access { vlan: 10 }));
            let c = add(&sw, "vale0:vc", Some(VlanMode::Access { vlan: 20 }));
            let n = add(&sw, "vale0:vn", Some(VlanMode::Access { vlan: 1 }));
            let u = add(&sw, "vale0:vu", None);
            // One batch: two identical VLAN-10 frames (the second reuses
            // the first's lookup), VLAN 20, native, an unknown VID.
            let frames = [
                frame(Some(10)),
                frame(Some(10)),
                frame(Some(2 << 13 | 20)),
                frame(None),
                frame(Some(30)),
            ];
            for f in &frames {
                send(&mut t, f);
            }
            let mut scratch = VlanScratch::default();
            assert_eq!(forward_batch(&sw, &t.port, &mut scratch, 0), 5);
            assert_eq!(take(&a), vec![frame(None), frame(None)]);
            assert_eq!(take(&c), vec![frame(None)]);
            assert_eq!(take(&n), vec![frame(None)]);
            assert!(take(&u).is_empty());
            let ct = t.port.counters.snapshot();
            assert_eq!((ct.rx_packets, ct.drop_vlan), (5, 1));
            // The VLAN-less port is alone: its frame goes nowhere, tags and
            // all, and a frame too short for its tag is dropped on a trunk.
            let mut u = u;
            send(&mut u, &frame(Some(10)));
            forward_batch(&sw, &u.port, &mut scratch, 0);
            assert_eq!(u.port.counters.snapshot().drop_no_destination, 1);
            send(&mut t, &frame(Some(10))[..16]);
            forward_batch(&sw, &t.port, &mut scratch, 0);
            assert_eq!(t.port.counters.snapshot().drop_vlan, 2);
            assert!(take(&a).is_empty());
            // Once the last VLAN port is gone the switch takes the plain
            // path again.
            for p in [&t, &a, &c, &n] {
                sw.remove_port(p.port.id);
            }
            sw.set_vlan_aware(false);
            assert!(!sw.vlan_aware());
        }
    }

    #[test]
    fn bad_vlan_ids_are_refused() {
        for bad in ["0", "4095", "5000", "x", "native=0", ""] {
            assert!(VlanMode::parse_trunk(bad).is_err(), "{bad}");
        }
        assert!(VlanMode::Access { vlan: 4095 }.validate().is_err());
        assert!(VlanMode::Access { vlan: 0 }.validate().is_err());
        assert!(VlanMode::Access { vlan: 4094 }.validate().is_ok());
    }
}
