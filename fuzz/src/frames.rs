//! The `frames` target: arbitrary frames (any length up to the buffer size,
//! any bytes: 802.1Q and QinQ tags, VID 0 and 4095, tags cut short) sent by
//! well-behaved shared-memory clients into a VLAN-aware switch of access,
//! trunk (with and without a native VLAN) and untagged ports, forwarded
//! with the real batch ([`forward_batch`] over [`ShmPort`]s and the real
//! learning table).
//!
//! Checked after every batch, against a model of the VLAN rules (which
//! VLAN a frame enters, in which form it leaves each port): the frames a
//! port received are frames of the batch, in batch order, each in that
//! port's form (untagged on an access port and for a trunk's native VLAN,
//! tagged with its VLAN otherwise, as it came on a port in no VLAN) and of
//! a VLAN the port carries;
//! every frame read is delivered somewhere or counted as a drop by the
//! source (or by a destination too small for it), runts are counted as
//! runts; the bytes after a frame in the receiver's buffer are zeros or what
//! the buffer held before (nothing of other traffic). Always: no crash.

use std::sync::atomic::Ordering;
use std::sync::Arc;

use switch_port::eventfd::EventFd;
use switch_port::layout::Layout;
use switch_port::mac::MacAddr;
use switch_port::names::{PortName, SwitchName};
use switch_port::protocol::{PortKind, VlanMode};
use switch_port::region::Region;
use switch_port::ring::Slot;
use switch_user::bridge::forward::{forward_batch, Scratch};
use switch_user::bridge::learning::LearningTable;
use switch_user::bridge::port::Port;
use switch_user::bridge::shm_port::ShmPort;
use switch_user::bridge::switch::Switch;
use switch_user::bridge::vlan::{TAG_LEN, TPID, VID_MASK};

use crate::input::Input;

/// Operation codes (modulo [`op::COUNT`]).
pub mod op {
    /// A client sends frames: port u8, count u8 (1-16), then per frame:
    /// kind u8 (low 2 bits 0: the whole frame is a run; else built:
    /// destination u8 (0 broadcast, 1-6 that port's MAC, else 6 bytes),
    /// source (bit 2: any of 8 addresses by u8, else the port's), `kind >>
    /// 3 & 3` tags (each: QinQ TPID bool, TCI u16), EtherType u16, payload
    /// run; bit 5: cut to a length u8).
    pub const SEND: u8 = 0;
    /// One batch from a port: port u8.
    pub const FORWARD: u8 = 1;
    /// The clock advances: seconds u8.
    pub const TICK: u8 = 2;
    /// Number of operation codes.
    pub const COUNT: u8 = 3;
}

/// Buffer size of every port.
pub const BUF: usize = 2048;
/// Ring size of every port.
const RING: u32 = 64;
/// Fill of receive buffers before the switch writes them.
const FILL: u8 = 0xEE;

/// The ports' modes: access 10, access 20, trunk 10,20 native 1, trunk
/// 10,30 without a native VLAN, no VLAN, access 1.
fn modes() -> Vec<Option<VlanMode>> {
    vec![
        Some(VlanMode::Access { vlan: 10 }),
        Some(VlanMode::Access { vlan: 20 }),
        Some(VlanMode::Trunk {
            vlans: vec![10, 20],
            native: Some(1),
        }),
        Some(VlanMode::Trunk {
            vlans: vec![10, 30],
            native: None,
        }),
        None,
        Some(VlanMode::Access { vlan: 1 }),
    ]
}

struct Client {
    port: Arc<Port>,
    region: Arc<Region>,
    mode: Option<VlanMode>,
    next_tx: u32,
    pending: Vec<Vec<u8>>,
}

/// How a frame enters through a port of `mode`: its VLAN and whether it
/// carries a tag; `None`: dropped.
fn ingress(mode: &Option<VlanMode>, f: &[u8]) -> Option<(u16, bool)> {
    let tagged = f.len() >= 14 && u16::from_be_bytes([f[12], f[13]]) == TPID;
    match mode {
        None => Some((0, tagged)),
        Some(VlanMode::Access { vlan }) => (!tagged).then_some((*vlan, false)),
        Some(VlanMode::Trunk { vlans, native }) => {
            if !tagged {
                return native.map(|n| (n, false));
            }
            if f.len() < 18 {
                return None;
            }
            let vid = u16::from_be_bytes([f[14], f[15]]) & VID_MASK;
            (vid != 0 && vlans.contains(&vid)).then_some((vid, true))
        }
    }
}

/// How a frame of `vlan` leaves through a port of `mode`: tagged or not;
/// `None`: not at all.
fn egress(mode: &Option<VlanMode>, vlan: u16) -> Option<bool> {
    match mode {
        None => (vlan == 0).then_some(false),
        Some(VlanMode::Access { vlan: v }) => (*v == vlan).then_some(false),
        Some(VlanMode::Trunk { vlans, native }) => {
            if *native == Some(vlan) {
                Some(false)
            } else {
                vlans.contains(&vlan).then_some(true)
            }
        }
    }
}

/// The bytes of frame `f` (entered as `vlan`, `tagged`) leaving `tagged_out`.
fn form(f: &[u8], vlan: u16, tagged: bool, tagged_out: bool) -> Vec<u8> {
    match (tagged, tagged_out) {
        (false, true) => {
            let mut out = f[..12].to_vec();
            out.extend_from_slice(&TPID.to_be_bytes());
            out.extend_from_slice(&vlan.to_be_bytes());
            out.extend_from_slice(&f[12..]);
            out
        }
        (true, false) if vlan != 0 => {
            let mut out = f[..12].to_vec();
            out.extend_from_slice(&f[12 + TAG_LEN..]);
            out
        }
        _ => f.to_vec(),
    }
}

struct Harness {
    switch: Switch,
    clients: Vec<Client>,
    scratch: Scratch,
    now: u32,
}

impl Harness {
    fn new() -> Harness {
        let switch = Switch::new(
            SwitchName::parse("vale0").unwrap(),
            Box::new(LearningTable::new(64, 300)),
            8,
        );
        switch.set_vlan_aware(true);
        let clients = modes()
            .into_iter()
            .enumerate()
            .map(|(k, mode)| {
                let name = format!("vale0:p{k}");
                let region = Arc::new(
                    Region::create(&name, Layout::new(RING, BUF as u32).unwrap()).unwrap(),
                );
                let shm = ShmPort::new(
                    region.clone(),
                    EventFd::new().unwrap(),
                    EventFd::new().unwrap(),
                );
                shm.set_client(true);
                let port = switch
                    .add_port(|id| {
                        let p = Port::new(
                            PortName::parse(&name).unwrap(),
                            id,
                            PortKind::Shm,
                            Box::new(shm),
                        );
                        p.vlan.set(mode.as_ref());
                        p
                    })
                    .unwrap();
                let c = Client {
                    port,
                    region,
                    mode,
                    next_tx: 0,
                    pending: Vec::new(),
                };
                c.fill_rx();
                c
            })
            .collect();
        Harness {
            switch,
            clients,
            scratch: Scratch::new(),
            now: 0,
        }
    }

    /// Reads one frame's description and publishes it from port `p`.
    fn send(&mut self, p: usize, input: &mut Input) {
        if self.clients[p].pending.len() as u32 >= RING - 1 {
            self.forward(p);
        }
        let kind = input.u8();
        let mut f = Vec::new();
        if kind & 3 == 0 {
            f.extend_from_slice(input.run(BUF));
        } else {
            match input.u8() {
                0 => f.extend_from_slice(&MacAddr::BROADCAST.0),
                d @ 1..=6 => f.extend_from_slice(&MacAddr::local(u32::from(d)).0),
                _ => f.extend_from_slice(input.bytes(6)),
            }
            f.resize(6, 0);
            let src = if kind & 4 != 0 {
                1 + u32::from(input.u8() % 8)
            } else {
                1 + p as u32
            };
            f.extend_from_slice(&MacAddr::local(src).0);
            for _ in 0..(kind >> 3) & 3 {
                let tpid: u16 = if input.bool() { 0x88a8 } else { TPID };
                f.extend_from_slice(&tpid.to_be_bytes());
                f.extend_from_slice(&input.u16().to_be_bytes());
            }
            f.extend_from_slice(&input.u16().to_be_bytes());
            f.extend_from_slice(input.run(BUF));
            if kind & 0x20 != 0 {
                f.truncate(usize::from(input.u8()));
            }
            f.truncate(BUF);
        }
        let c = &mut self.clients[p];
        let ring = c.region.tx_ring();
        let i = c.next_tx;
        let buf = c.region.buffer(i).unwrap();
        // SAFETY: buffer i of the client's region holds BUF >= len bytes
        // and the switch does not use it until the slot is published.
        unsafe { std::ptr::copy_nonoverlapping(f.as_ptr(), buf.as_ptr(), f.len()) };
        ring.write_slot(
            i,
            Slot {
                buf: i,
                len: f.len() as u16,
                flags: 0,
            },
        );
        c.next_tx = ring.advance(i, 1);
        ring.head().store(c.next_tx, Ordering::Release);
        c.pending.push(f);
    }

    /// Forwards one batch from port `s` and checks what every port got.
    fn forward(&mut self, s: usize) {
        let sent = std::mem::take(&mut self.clients[s].pending);
        let before: Vec<_> = self
            .clients
            .iter()
            .map(|c| c.port.counters.snapshot())
            .collect();
        let n = forward_batch(
            &self.switch,
            &self.clients[s].port,
            &mut self.scratch,
            self.now,
        );
        let after: Vec<_> = self
            .clients
            .iter()
            .map(|c| c.port.counters.snapshot())
            .collect();
        let runts = sent.iter().filter(|f| f.len() < 14).count();
        assert_eq!(n, sent.len() - runts, "frames read");
        let (b, a) = (&before[s], &after[s]);
        assert_eq!(a.drop_runt - b.drop_runt, runts as u64, "runts counted");
        assert_eq!(a.rx_packets - b.rx_packets, n as u64);
        let read: Vec<&Vec<u8>> = sent.iter().filter(|f| f.len() >= 14).collect();
        let source_mode = self.clients[s].mode.clone();
        let entered: Vec<Option<(u16, bool)>> =
            read.iter().map(|f| ingress(&source_mode, f)).collect();
        let mut delivered = vec![false; read.len()];
        let mut dest_drops = 0u64;
        for (r, c) in self.clients.iter().enumerate() {
            let got = c.take_rx();
            let (b, a) = (&before[r], &after[r]);
            dest_drops += a.drop_too_long - b.drop_too_long + a.drop_ring_full - b.drop_ring_full;
            if r == s {
                assert!(got.is_empty(), "a frame went back to its source");
                continue;
            }
            // A port gets its frames in batch order: each is the next frame
            // of the batch that has this form for it. Identical frames of a
            // batch go the same way until learning (of the source's own
            // addresses, on the source) turns the later ones into same-port
            // drops, so the earliest match is the frame delivered.
            let mut next = 0;
            for bytes in got {
                let found = (next..read.len()).find(|&i| {
                    entered[i].is_some_and(|(vlan, tagged)| {
                        egress(&c.mode, vlan)
                            .is_some_and(|out| form(read[i], vlan, tagged, out) == bytes)
                    })
                });
                let Some(i) = found else {
                    panic!(
                        "port {r} ({:?}) got {bytes:02x?}, not the next frame of the batch in \
                         its form for a VLAN it carries; batch from port {s} \
                         ({source_mode:?}): {read:02x?}",
                        c.mode
                    );
                };
                delivered[i] = true;
                next = i + 1;
            }
        }
        let (b, a) = (&before[s], &after[s]);
        let source_drops = (a.drop_same_port - b.drop_same_port)
            + (a.drop_filtered - b.drop_filtered)
            + (a.drop_no_destination - b.drop_no_destination)
            + (a.spoofed - b.spoofed)
            + (a.drop_storm - b.drop_storm)
            + (a.drop_vlan - b.drop_vlan);
        let wrong_vlan = entered.iter().filter(|e| e.is_none()).count() as u64;
        assert!(
            a.drop_vlan - b.drop_vlan >= wrong_vlan,
            "frames of VLANs the source does not carry not all counted"
        );
        let reached = delivered.iter().filter(|d| **d).count() as u64;
        let n = n as u64;
        assert!(
            reached + source_drops <= n && n <= reached + source_drops + dest_drops,
            "{n} frames read, {reached} delivered, {source_drops} dropped by the source, \
             {dest_drops} by destinations"
        );
    }
}

impl Client {
    /// Fills every receive buffer with [`FILL`].
    fn fill_rx(&self) {
        let rx = self.region.rx_ring();
        for i in 0..rx.size() {
            self.fill(rx.read_slot(i).buf);
        }
    }

    fn fill(&self, buf: u32) {
        if let Some(b) = self.region.buffer(buf) {
            // SAFETY: a buffer of BUF bytes inside the region, not in use.
            unsafe { std::ptr::write_bytes(b.as_ptr(), FILL, BUF) };
        }
    }

    /// Takes the frames waiting in the RX ring, checks what follows each in
    /// its buffer, and refills the buffers.
    fn take_rx(&self) -> Vec<Vec<u8>> {
        let ring = self.region.rx_ring();
        let mut head = ring.head().load(Ordering::Relaxed);
        let tail = ring.tail().load(Ordering::Acquire);
        assert!(tail < ring.size(), "RX tail {tail} outside the ring");
        let mut out = Vec::new();
        while head != tail {
            let slot = ring.read_slot(head);
            let len = usize::from(slot.len);
            assert!(len <= BUF, "{slot:?} past its buffer");
            let buf = self.region.buffer(slot.buf).expect("buffer in the region");
            // SAFETY: the switch wrote this buffer of BUF bytes and has
            // published it; nothing writes it now.
            let all = unsafe { std::slice::from_raw_parts(buf.as_ptr(), BUF) };
            let leaked = all[len..].iter().position(|&x| x != 0 && x != FILL);
            assert!(
                leaked.is_none(),
                "bytes of other traffic after a {len}-byte frame at {}",
                len + leaked.unwrap_or(0)
            );
            out.push(all[..len].to_vec());
            self.fill(slot.buf);
            head = ring.advance(head, 1);
        }
        ring.head().store(head, Ordering::Release);
        out
    }
}

/// Runs one input.
pub fn run(data: &[u8]) {
    let mut input = Input::new(data);
    let mut h = Harness::new();
    let ports = h.clients.len() as u8;
    while !input.done() {
        match input.u8() % op::COUNT {
            op::SEND => {
                let p = usize::from(input.u8() % ports);
                for _ in 0..1 + input.u8() % 16 {
                    h.send(p, &mut input);
                }
            }
            op::FORWARD => {
                let p = usize::from(input.u8() % ports);
                h.forward(p);
            }
            _ => h.now = h.now.saturating_add(u32::from(input.u8())),
        }
    }
    for p in 0..h.clients.len() {
        h.forward(p);
    }
}
