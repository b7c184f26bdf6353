//! The probes with a peer (the test process on the other end of the link):
//! receive filtering in several RCTL configurations, and what the peer
//! receives of frames sent with the transmit offloads.
//!
//! Receive phases: the guest programs RCTL, sends READY(phase) and records
//! every frame that arrives until the peer's MARKER(phase), a unicast to
//! our address that every configuration accepts. The peer answers each
//! READY once with the same script of filter frames (ids chosen by the
//! test: unicast, multicast, broadcast, long and short frames) and the
//! marker, so both VMMs see the same input. READY is sent again after
//! [`READY_RETRY_MS`] without the marker (QEMU holds received frames back
//! for a second after every RCTL write, so the marker can be late).

use super::frames::{self, kind, Context, Control};
use super::probe::Doc;
use crate::e1000::desc::{TxDesc, BUF_SIZE, RCTL_BSIZE};
use crate::e1000::regs::Regs;
use crate::e1000::rx::RxRing;
use crate::e1000::tx::TxRing;
use crate::tsc::Deadline;
use e1000_spec::desc::context::tucmd;
use e1000_spec::desc::data::popts;
use e1000_spec::desc::tx::cmd;
use e1000_spec::regs::*;

/// How long a phase waits for its marker before sending READY again.
pub const READY_RETRY_MS: u64 = 3000;
/// READY attempts per phase.
pub const READY_TRIES: u32 = 3;
/// How long a transmitted frame may take to complete.
pub const TX_DONE_MS: u64 = 1000;
/// The multicast address whose MTA bit the guest sets.
pub const MCAST_IN: [u8; 6] = [0x01, 0x00, 0x5e, 0x00, 0x00, 0x01];

/// The receive configurations, by name.
pub const PHASES: [(&str, u32); 5] = [
    ("bam", rctl::EN | rctl::BAM | rctl::SECRC),
    ("no_bam", rctl::EN | rctl::SECRC),
    ("upe", rctl::EN | rctl::UPE | rctl::SECRC),
    ("mpe_lpe", rctl::EN | rctl::MPE | rctl::LPE | rctl::SECRC),
    ("crc_kept", rctl::EN | rctl::BAM),
];

/// The device, its rings and the two addresses.
pub struct Link<'a> {
    /// The registers.
    pub regs: &'a Regs,
    /// The TX ring.
    pub tx: TxRing,
    /// The RX ring.
    pub rx: RxRing,
    /// Our address.
    pub mac: [u8; 6],
    /// The peer's address.
    pub peer: [u8; 6],
    /// READY frames sent again.
    pub ready_retries: u64,
    /// Frames whose TX descriptors did not complete in time.
    pub tx_timeouts: u64,
}

impl Link<'_> {
    /// Programs the filters (RA0 = our address, the MTA with
    /// [`MCAST_IN`]'s bit), the TX ring (enabled, PSP) and the RX ring
    /// (receiver off).
    pub fn setup(&mut self) {
        let r = self.regs;
        let m = self.mac;
        r.write(RA, u32::from_le_bytes([m[0], m[1], m[2], m[3]]));
        r.write(RA + 4, u16::from_le_bytes([m[4], m[5]]) as u32 | rah::AV);
        for i in 0..MTA_LEN {
            r.write(MTA + 4 * i, 0);
        }
        let bit = frames::mta_index(MCAST_IN, 0) as u32;
        r.write(MTA + 4 * (bit >> 5), 1 << (bit & 31));
        self.tx.reset();
        r.write(TDBAL, self.tx.base() as u32);
        r.write(TDBAH, (self.tx.base() >> 32) as u32);
        r.write(TDLEN, self.tx.len_bytes());
        r.write(TDH, 0);
        r.write(TDT, 0);
        r.write(TIPG, 10 | 8 << tipg::IPGR1_SHIFT | 6 << tipg::IPGR2_SHIFT);
        r.write(
            TCTL,
            tctl::EN | tctl::PSP | 0x0F << tctl::CT_SHIFT | 0x40 << tctl::COLD_SHIFT,
        );
        self.rx.reset();
        r.write(RCTL, 0);
        r.write(RDBAL, self.rx.base() as u32);
        r.write(RDBAH, (self.rx.base() >> 32) as u32);
        r.write(RDLEN, self.rx.len_bytes());
        r.write(RDH, 0);
        r.write(RDT, self.rx.initial_tail());
    }

    /// Queues `descs` (the frame already in place) with RS set in each (so
    /// that every one is written back and reclaimed), publishes them and
    /// waits for their DD bits; returns whether they all came.
    fn send_descs(&mut self, descs: &[TxDesc]) -> bool {
        for &d in descs {
            self.tx.push_raw(TxDesc {
                cmd: d.cmd | cmd::RS,
                ..d
            });
        }
        self.tx.publish(self.regs);
        let deadline = Deadline::after_ms(TX_DONE_MS);
        let mut done = 0;
        while done < descs.len() as u32 {
            done += self.tx.reclaim();
            if deadline.passed() {
                self.tx_timeouts += 1;
                return false;
            }
        }
        true
    }

    /// The buffer of the next TX descriptor and its address.
    fn tx_buffer(&mut self) -> (&mut [u8; BUF_SIZE], u64) {
        let index = self.tx.tail();
        let addr = self.tx.buffer_addr(index);
        (self.tx.buffer(index), addr)
    }

    /// Writes an IPv4 TCP (`tcp`) or UDP frame of `payload` bytes of
    /// pattern `seed` into the next TX buffer, its L4 checksum seeded with
    /// the pseudo-header sum, and returns its one data descriptor asking
    /// for both checksums.
    fn checksum_frame(&mut self, tcp: bool, payload: usize, seed: u8) -> TxDesc {
        let (mac, peer) = (self.mac, self.peer);
        let (buf, addr) = self.tx_buffer();
        let len = frames::write_ipv4(buf, peer, mac, tcp, payload, seed, None);
        let pseudo = frames::pseudo_seed(tcp, (len - frames::L3_END) as u16);
        let at = frames::L3_END + if tcp { 16 } else { 6 };
        buf[at..at + 2].copy_from_slice(&pseudo.to_be_bytes());
        frames::data_desc(
            addr,
            len as u32,
            cmd::EOP | cmd::IFCS | cmd::RS,
            popts::IXSM | popts::TXSM,
        )
    }

    /// Sends a control frame to the peer.
    fn send_control(&mut self, kind: u8, phase: u8) {
        let (mac, peer) = (self.mac, self.peer);
        let (buf, addr) = self.tx_buffer();
        let len = frames::write_control(buf, peer, mac, Control { kind, phase, id: 0 });
        self.send_descs(&[legacy(addr, len, 0)]);
    }

    /// Runs every receive phase; writes `rx` (an object per phase).
    pub fn receive_phases(&mut self, o: Doc) {
        o.object("rx", |o| {
            for (phase, &(name, rctl_value)) in PHASES.iter().enumerate() {
                self.regs.write(RCTL, rctl_value | RCTL_BSIZE);
                o.object(name, |o| {
                    o.hex("rctl", rctl_value | RCTL_BSIZE, 8);
                    self.receive_phase(o, phase as u8, rctl_value & rctl::SECRC == 0);
                });
            }
            self.regs.write(RCTL, 0);
        });
    }

    fn receive_phase(&mut self, o: Doc, phase: u8, crc_kept: bool) {
        let mut got_marker = false;
        o.array("frames", |a| {
            'tries: for attempt in 0..READY_TRIES {
                if attempt > 0 {
                    self.ready_retries += 1;
                }
                self.send_control(kind::READY, phase);
                let deadline = Deadline::after_ms(READY_RETRY_MS);
                while !deadline.passed() {
                    let Some(c) = self.rx.poll() else {
                        core::hint::spin_loop();
                        continue;
                    };
                    let frame = self.rx.frame(&c);
                    let control = frames::parse_control(frame);
                    let marker =
                        control.is_some_and(|x| x.kind == kind::MARKER && x.phase == phase);
                    let (body, fcs) = if crc_kept && frame.len() >= 4 {
                        let (b, f) = frame.split_at(frame.len() - 4);
                        (b, Some(u32::from_le_bytes([f[0], f[1], f[2], f[3]])))
                    } else {
                        (frame, None)
                    };
                    let (id, hash) = (control.map_or(255, |x| x.id), frames::fnv1a(body));
                    let kind_char = control.map_or('?', |x| x.kind as char);
                    let phase_of = control.map_or(255, |x| x.phase);
                    a.object(|f| {
                        f.display("kind", kind_char)
                            .u64("phase", phase_of as u64)
                            .u64("id", id as u64)
                            .u64("len", c.len as u64)
                            .hex("status", c.status as u32, 2)
                            .hex("errors", c.errors as u32, 2)
                            .hex("body_fnv", hash, 8);
                        if let Some(fcs) = fcs {
                            f.hex("fcs", fcs, 8);
                        }
                    });
                    self.rx.release();
                    if marker {
                        got_marker = true;
                        break 'tries;
                    }
                }
            }
        });
        o.bool("marker", got_marker);
        self.rx.publish(self.regs);
    }

    /// Sends the TX offload frames (the peer records what arrives); writes
    /// `tx`: each frame's name and whether its descriptors completed.
    pub fn transmit_offloads(&mut self, o: Doc) {
        o.object("tx", |o| {
            let (mac, peer) = (self.mac, self.peer);
            let legacy_cmd = cmd::EOP | cmd::IFCS | cmd::RS;

            // A plain frame, then one shorter than the minimum (PSP is set).
            let (buf, addr) = self.tx_buffer();
            let len = frames::write_ipv4(buf, peer, mac, false, 18, 0x10, None);
            o.bool("plain", self.send_descs(&[legacy(addr, len, 0)]));
            let (buf, addr) = self.tx_buffer();
            let len = frames::write_ipv4(buf, peer, mac, false, 0, 0x11, None);
            o.bool("short", self.send_descs(&[legacy(addr, len, 0)]));

            // Legacy checksum insertion (IC, CSS, CSO): the UDP checksum.
            let (buf, addr) = self.tx_buffer();
            let len = frames::write_ipv4(buf, peer, mac, false, 60, 0x12, None);
            let mut d = legacy(addr, len, cmd::IC);
            d.css = frames::L3_END as u8;
            d.cso = (frames::L3_END + 6) as u8;
            d.cmd = legacy_cmd | cmd::IC;
            o.bool("legacy_ic", self.send_descs(&[d]));

            // Context + data: IP and TCP checksums.
            let tcp_ctx = Context {
                ipcss: 14,
                ipcso: 24,
                ipcse: 33,
                tucss: frames::L3_END as u8,
                tucso: (frames::L3_END + 16) as u8,
                tucmd: tucmd::TCP | tucmd::IP,
                ..Context::default()
            };
            let data = self.checksum_frame(true, 146, 0x13);
            o.bool("tcp_csum", self.send_descs(&[tcp_ctx.desc(), data]));

            // Context + data: IP and UDP checksums.
            let udp_ctx = Context {
                tucso: (frames::L3_END + 6) as u8,
                tucmd: tucmd::IP,
                ..tcp_ctx
            };
            let data = self.checksum_frame(false, 80, 0x14);
            o.bool("udp_csum", self.send_descs(&[udp_ctx.desc(), data]));

            // TSO: 1200 bytes of TCP payload in segments of 500, the
            // header and the payload in two data descriptors (as Linux
            // does), IP total length 0 and the TCP checksum seeded without
            // a length.
            let hdrlen = frames::L3_END + 20;
            let payload = 1200;
            let tso_ctx = Context {
                paylen: payload as u32,
                hdrlen: hdrlen as u8,
                mss: 500,
                tucmd: tucmd::TCP | tucmd::IP | tucmd::TSE,
                ..tcp_ctx
            };
            let (buf, addr) = self.tx_buffer();
            let len = frames::write_ipv4(buf, peer, mac, true, payload, 0x15, Some(0));
            let seed = frames::pseudo_seed(true, 0);
            buf[frames::L3_END + 16..frames::L3_END + 18].copy_from_slice(&seed.to_be_bytes());
            let dcmd = cmd::IFCS | cmd::TSE;
            let head = frames::data_desc(addr, hdrlen as u32, dcmd, popts::IXSM | popts::TXSM);
            let rest = frames::data_desc(
                addr + hdrlen as u64,
                (len - hdrlen) as u32,
                dcmd | cmd::EOP | cmd::RS,
                popts::IXSM | popts::TXSM,
            );
            o.bool("tso", self.send_descs(&[tso_ctx.desc(), head, rest]));

            // A data descriptor without a new context: the last checksum
            // context (UDP) still applies after a TSO context.
            let data = self.checksum_frame(false, 40, 0x16);
            o.bool("udp_csum_kept_context", self.send_descs(&[data]));

            // One frame in three legacy descriptors.
            let (buf, addr) = self.tx_buffer();
            let len = frames::write_ipv4(buf, peer, mac, false, 100, 0x17, None);
            let parts = [
                legacy(addr, 20, 0),
                legacy(addr + 20, 40, 0),
                legacy(addr + 60, len - 60, 0),
            ];
            let mut parts = parts;
            parts[0].cmd = cmd::IFCS;
            parts[1].cmd = cmd::IFCS;
            o.bool("three_descriptors", self.send_descs(&parts));

            // VLAN tag insertion (CTRL.VME, VLE, the tag in `special`).
            let ctrl_value = self.regs.read(CTRL);
            self.regs.write(CTRL, ctrl_value | ctrl::VME);
            let (buf, addr) = self.tx_buffer();
            let len = frames::write_ipv4(buf, peer, mac, false, 30, 0x18, None);
            let mut d = legacy(addr, len, cmd::VLE);
            d.special = 0x2123;
            o.bool("vlan_insert", self.send_descs(&[d]));
            self.regs.write(CTRL, ctrl_value);
        });
    }

    /// Tells the peer the exchange is over.
    pub fn end(&mut self) {
        self.send_control(kind::END, 0);
    }
}

/// A legacy descriptor for `len` bytes at `addr`: EOP, IFCS, RS and
/// `extra` command bits.
fn legacy(addr: u64, len: usize, extra: u8) -> TxDesc {
    TxDesc {
        addr,
        length: len as u16,
        cmd: cmd::EOP | cmd::IFCS | cmd::RS | extra,
        ..TxDesc::default()
    }
}
