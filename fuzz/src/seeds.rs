//! The seed inputs checked in under `fuzz/seeds/TARGET/`, built in each
//! target's encoding from the scenarios of the hostile unit tests: working
//! rings with frames both ways, checksum offload and TSO contexts, bad ring
//! bases, indices and descriptors, CSB mappings and scribbles, ports with bad
//! slots and indices, malformed control messages, minimal PVH images.
//! `cargo test --manifest-path fuzz/Cargo.toml -- --ignored write_seeds`
//! rewrites them; the `seeds_run_clean` test runs every target on them.

use crate::input::Encoder;

/// Every target's seeds: (target, name, bytes).
pub fn all() -> Vec<(&'static str, &'static str, Vec<u8>)> {
    let mut out = Vec::new();
    for (name, bytes) in e1000() {
        out.push(("e1000", name, bytes));
    }
    for (name, bytes) in csb() {
        out.push(("csb", name, bytes));
    }
    for (name, bytes) in offload() {
        out.push(("offload", name, bytes));
    }
    for (name, bytes) in port_rings() {
        out.push(("port_rings", name, bytes));
    }
    for (name, bytes) in control() {
        out.push(("control", name, bytes));
    }
    for (name, bytes) in pvh_elf() {
        out.push(("pvh_elf", name, bytes));
    }
    for (name, bytes) in vxlan() {
        out.push(("vxlan", name, bytes));
    }
    for (name, bytes) in frames() {
        out.push(("frames", name, bytes));
    }
    for (name, bytes) in nic_checksum() {
        out.push(("nic_checksum", name, bytes));
    }
    for (name, bytes) in vxlan_outer() {
        out.push(("vxlan_outer", name, bytes));
    }
    out
}

/// An Ethernet frame to `destination`, `len` bytes.
fn frame(destination: [u8; 6], len: usize) -> Vec<u8> {
    let mut f = destination.to_vec();
    f.extend_from_slice(&[0x02, 0, 0, 0, 0, 9, 0x08, 0x00]);
    while f.len() < len {
        f.push(f.len() as u8);
    }
    f
}

/// An Ethernet + IPv4 + TCP frame of `len` bytes (for offloads and TSO).
fn tcp_frame(len: usize) -> Vec<u8> {
    let mut f = vec![0x02, 0, 0, 0, 0, 2, 0x02, 0, 0, 0, 0, 9, 0x08, 0x00];
    let ip_len = (len - 14) as u16;
    f.extend_from_slice(&[0x45, 0]);
    f.extend_from_slice(&ip_len.to_be_bytes());
    f.extend_from_slice(&[0, 0, 0x40, 0, 64, 6, 0, 0, 10, 0, 0, 1, 10, 0, 0, 2]);
    f.extend_from_slice(&[
        0x30, 0x39, 0, 80, 0, 0, 0, 1, 0, 0, 0, 0, 0x50, 0x18, 0xFF, 0xFF, 0, 0, 0, 0,
    ]);
    while f.len() < len {
        f.push(f.len() as u8);
    }
    f
}

mod e1000_ops {
    use crate::e1000::op;
    use crate::input::Encoder;
    use e1000_spec::desc::tx::cmd;

    /// Rings: TX at 0x10000 (`tx` descriptors), RX at 0x20000, RX buffers
    /// from 0x100000.
    pub fn setup(e: &mut Encoder, tx: u8, rx: u8, rctl: u32) {
        e.u8(op::SETUP)
            .u16(0x1000)
            .u8(tx / 8 - 1)
            .u16(0x2000)
            .u8(rx / 8 - 1)
            .u16(0x4000)
            .u32(rctl)
            .u32(1 << 3);
    }

    /// A legacy TX descriptor at `index` for `len` bytes at `addr`.
    pub fn legacy(e: &mut Encoder, index: u16, addr: u32, len: u16, command: u8) {
        e.u8(op::TX_DESC).u16(index).bool(false).u32(addr);
        e.u16(len).u8(0).u8(command).u32(0);
    }

    /// Raw TX descriptor bytes at `index`.
    pub fn raw(e: &mut Encoder, index: u16, d: [u8; 16]) {
        e.u8(op::TX_DESC).u16(index).bool(true).raw(&d);
    }

    pub fn mem(e: &mut Encoder, addr: u32, bytes: &[u8]) {
        e.u8(op::MEM).u32(addr).run(bytes);
    }

    pub fn tail(e: &mut Encoder, tx: bool, value: u16) {
        e.u8(op::TAIL).bool(tx).u16(value);
    }

    pub fn deliver(e: &mut Encoder, ours: bool, bytes: &[u8]) {
        e.u8(op::FRAME).u8(if ours { 0 } else { 1 }).run(bytes);
    }

    pub fn write(e: &mut Encoder, selector: u8, value: u32) {
        e.u8(op::MMIO_WRITE).u8(selector).u32(value);
    }

    pub const EOP_RS: u8 = cmd::EOP | cmd::RS | cmd::IFCS;
}

fn e1000() -> Vec<(&'static str, Vec<u8>)> {
    use e1000_ops::*;
    use e1000_spec::regs::rctl;
    let mut seeds = Vec::new();

    // Frames both ways through working rings, moderation on.
    let mut e = Encoder::new();
    e.u8(0b0001_0010).u8(0);
    setup(&mut e, 64, 64, rctl::BAM | rctl::SECRC);
    for i in 0..4u16 {
        let addr = 0x8_0000 + u32::from(i) * 0x800;
        mem(
            &mut e,
            addr,
            &frame([0x02, 0, 0, 0, 0, 2], 60 + usize::from(i) * 100),
        );
        legacy(&mut e, i, addr, 60 + i * 100, EOP_RS);
    }
    tail(&mut e, true, 4);
    tail(&mut e, false, 63);
    deliver(&mut e, true, &frame(crate::e1000::MAC, 64));
    deliver(&mut e, false, &frame([0xFF; 6], 1514));
    e.u8(crate::e1000::op::TIMER).u32(200_000);
    seeds.push(("rings", e.bytes));

    // Checksum offload and TSO: a context, then data descriptors.
    let mut e = Encoder::new();
    e.u8(0b0001_0000).u8(0);
    setup(&mut e, 16, 16, rctl::BAM);
    let f = tcp_frame(3000);
    mem(&mut e, 0x8_0000, &f[..1500]);
    mem(&mut e, 0x8_1000, &f[1500..]);
    let mut ctx = [0u8; 16];
    ctx[..8].copy_from_slice(&[14, 24, 33, 0, 34, 50, 0, 0]);
    let paylen = (3000 - 54) as u32;
    let dword = paylen | (0x01u32 | 0x02 | 0x04 | 0x20 | 0x08) << 24;
    ctx[8..12].copy_from_slice(&dword.to_le_bytes());
    ctx[13] = 54;
    ctx[14..16].copy_from_slice(&1000u16.to_le_bytes());
    raw(&mut e, 0, ctx);
    for (i, (addr, len, last)) in [(0x8_0000u32, 1500u32, false), (0x8_1000, 1500, true)]
        .into_iter()
        .enumerate()
    {
        let mut d = [0u8; 16];
        d[..8].copy_from_slice(&u64::from(addr).to_le_bytes());
        let command: u32 = 0x20 | 0x04 | 0x08 | if last { 0x01 } else { 0 };
        let dword = len | 1 << 20 | command << 24;
        d[8..12].copy_from_slice(&dword.to_le_bytes());
        d[13] = 0x03;
        raw(&mut e, i as u16 + 1, d);
    }
    tail(&mut e, true, 3);
    seeds.push(("tso", e.bytes));

    // Hostile: bad ring bases and lengths, indices past the ring, null and
    // out-of-RAM buffers, descriptors in holes, bus mastering off.
    let mut e = Encoder::new();
    e.u8(0b0001_0011).u8(2).u16(0x10).u16(0x80);
    setup(&mut e, 8, 8, rctl::BAM | rctl::LPE);
    legacy(&mut e, 0, 0, 60, EOP_RS);
    legacy(&mut e, 1, 0x8000_0000, 60, EOP_RS);
    legacy(&mut e, 2, 0x10_0000, 0xFFFF, 0x08);
    tail(&mut e, true, 3);
    e.u8(crate::e1000::op::RX_DESC).u16(2).u32(0xC000_0000);
    deliver(&mut e, true, &frame(crate::e1000::MAC, 9000));
    write(&mut e, 15, 0x0F00_0000); // TDT past the ring
    write(&mut e, 22, 0x1234_5678); // TDLEN unaligned
    e.u8(crate::e1000::op::BUS_MASTER).bool(false);
    e.u8(crate::e1000::op::PROCESS);
    e.u8(crate::e1000::op::BUS_MASTER).bool(true);
    e.u8(crate::e1000::op::MMIO_ODD)
        .u32(0x3818)
        .u8(2)
        .bool(true)
        .u64(5);
    e.u8(crate::e1000::op::IO_WRITE).u8(0).u8(4).u32(0x3818);
    e.u8(crate::e1000::op::IO_WRITE).u8(4).u8(4).u32(2);
    e.u8(crate::e1000::op::RESET);
    seeds.push(("hostile", e.bytes));

    // The CSB: mapped, indices published there, scribbled.
    let mut e = Encoder::new();
    e.u8(0b0001_0001).u8(0);
    setup(&mut e, 32, 32, rctl::BAM);
    mem(&mut e, 0x3000 + 12, &1u32.to_le_bytes());
    e.u8(crate::e1000::op::CSB_MAP).u32(0x3000);
    for i in 0..2u16 {
        let addr = 0x8_0000 + u32::from(i) * 0x800;
        mem(&mut e, addr, &frame([0x02, 0, 0, 0, 0, 2], 60));
        legacy(&mut e, i, addr, 60, EOP_RS);
    }
    e.u8(crate::e1000::op::CSB_FIELD).u8(0).u32(2);
    e.u8(crate::e1000::op::CSB_FIELD).u8(4).u32(31);
    tail(&mut e, true, 0);
    e.u8(crate::e1000::op::CSB_WORKER).bool(false).bool(true);
    e.u8(crate::e1000::op::CSB_FIELD).u8(0).u32(0xFFFF);
    e.u8(crate::e1000::op::CSB_WORKER).bool(true).bool(false);
    deliver(&mut e, true, &frame(crate::e1000::MAC, 100));
    seeds.push(("csb", e.bytes));
    seeds
}

fn csb() -> Vec<(&'static str, Vec<u8>)> {
    use crate::csb::op;
    let mut seeds = Vec::new();
    let mut e = Encoder::new();
    e.bool(false);
    e.u8(op::SETUP)
        .u16(0x1000)
        .u8(3)
        .u16(0x2000)
        .u8(3)
        .u16(0x4000)
        .u32(1 << 15)
        .u16(3)
        .u8(0);
    for i in 0..4u16 {
        let addr = 0x8_0000 + u32::from(i) * 0x800;
        e.u8(op::MEM).u32(addr).run(&frame([0xFF; 6], 60));
        e.u8(op::TX_DESC).u16(i).bool(false).u32(addr);
        e.u16(60).u8(0).u8(0x0B).u32(0).u8(0);
    }
    e.u8(op::TDT_KICK).u16(4).u8(1).u8(1).u32(1);
    e.u8(op::FRAME).run(&frame(crate::e1000::MAC, 64)).u8(0);
    e.u8(op::ON_KICK).u8(0);
    e.u8(op::BEGIN_POLLING).u8(0);
    e.u8(op::POLL).u8(2).u8(4).u32(16).u8(0).u32(7);
    e.u8(op::TRY_SLEEP).bool(true).u8(0);
    e.u8(op::POLL_ONCE).u8(1).u8(3).u32(0);
    e.u8(op::THREADED)
        .u8(3)
        .u8(0)
        .u32(5)
        .u8(4)
        .u32(31)
        .u8(40)
        .u32(6)
        .u8(0);
    e.u8(op::BUS_MASTER).bool(false).u8(0);
    e.u8(op::BUS_MASTER).bool(true).u8(0);
    e.u8(op::TIMER).u8(0);
    seeds.push(("worker", e.bytes));
    seeds
}

fn port_rings() -> Vec<(&'static str, Vec<u8>)> {
    use crate::port_rings::op;
    let mut seeds = Vec::new();
    let mut e = Encoder::new();
    e.u8(0b100).u8(0).u8(0b11);
    // p0 broadcasts, then unicasts to p1 once learned.
    e.u8(op::PUBLISH)
        .u8(0)
        .u8(1)
        .u8(0)
        .u8(0)
        .run(&[0x08, 0x00, 1, 2, 3, 4, 5, 6, 7, 8]);
    e.u8(op::FORWARD).u8(0);
    e.u8(op::PUBLISH)
        .u8(1)
        .u8(1)
        .u8(1)
        .u8(0)
        .run(&[0x08, 0x00, 9, 9, 9]);
    e.u8(op::FORWARD).u8(1);
    e.u8(op::PUBLISH)
        .u8(0)
        .u8(2)
        .u8(2)
        .u8(0)
        .run(&[0x08, 0x00, 1])
        .u8(2)
        .u8(1)
        .u32(9999)
        .run(&[0x08, 0x00]);
    e.u8(op::FORWARD).u8(0);
    // A bad slot length, a runt, an index past the ring, a consumed RX ring.
    e.u8(op::PUBLISH)
        .u8(2)
        .u8(2)
        .u8(0)
        .u8(2)
        .u16(4000)
        .run(&[1])
        .u8(0)
        .u8(2)
        .u16(3)
        .run(&[]);
    e.u8(op::INDEX).u8(1).u8(0x80).u32(1000);
    e.u8(op::FORWARD).u8(2);
    e.u8(op::CONSUME).u8(1).u8(5);
    e.u8(op::SLOT).u8(1).bool(true).u16(3).u32(7777).u16(60);
    e.u8(op::NIC)
        .u8(2)
        .run(&frame([0xFF; 6], 60))
        .run(&[1, 2, 3]);
    e.u8(op::FORWARD).u8(3);
    e.u8(op::BUFFER)
        .u8(0)
        .u32(64)
        .u16(0)
        .run(&frame([0xFF; 6], 64));
    e.u8(op::RACE)
        .u8(2)
        .u8(0)
        .u8(0)
        .u32(3)
        .u8(1)
        .u8(0xC0)
        .u32(0x0001_3C05);
    e.u8(op::REMOVE).u8(1);
    e.u8(op::PUBLISH).u8(0).u8(1).u8(2).u8(0).run(&[0x08, 0x00]);
    e.u8(op::FORWARD).u8(0);
    seeds.push(("forward", e.bytes));
    seeds
}

fn control() -> Vec<(&'static str, Vec<u8>)> {
    use crate::control::op;
    let mut seeds = Vec::new();
    let mut e = Encoder::new();
    e.u8(op::TEMPLATE).u8(0).u8(0).u16(64).u16(32).u8(0);
    e.u8(op::TEMPLATE).u8(2).u8(1).u16(128).u16(32).u8(0);
    e.u8(op::TEMPLATE).u8(4).u8(0).u16(0).u16(0).u8(0);
    e.u8(op::TEMPLATE).u8(5).u8(1).u16(0).u16(0).u8(3);
    e.u8(op::TEMPLATE).u8(3).u8(1).u16(0).u16(0).u8(0);
    e.u8(op::FRAMED)
        .u16(1)
        .u8(0)
        .run(b"{\"request\":\"status\"}");
    e.u8(op::FRAMED).u16(1).u8(2).run(b"{not json");
    e.u8(op::FRAMED).u16(2).u8(0).run(b"{}");
    seeds.push(("requests", e.bytes));

    let mut e = Encoder::new();
    e.u8(op::TEMPLATE).u8(8).u8(0).u16(0).u16(0).u8(0);
    e.u8(op::HEADER)
        .u16(1)
        .u32(100)
        .u32(0)
        .run(b"{\"request\":\"list\"}");
    e.u8(op::RAW).u8(1).run(b"VSWC\x01\x00\x01\x00");
    seeds.push(("framing", e.bytes));

    let mut e = Encoder::new();
    e.u8(op::CLIENT)
        .u16(2)
        .u8(3)
        .run(b"{\"response\":\"done\"}")
        .u16(0);
    e.u8(op::CLIENT)
        .u16(2)
        .u8(0)
        .run(b"{\"response\":\"error\",\"code\":\"bad_request\",\"message\":\"x\"}")
        .u16(5);
    let layout = switch_port::layout::Layout::new(64, 128).unwrap();
    let mut header = vec![0u8; switch_port::layout::REGION_HEADER_SIZE];
    layout.write_header(&mut header);
    e.u8(op::REGION).u32(layout.region_len as u32).run(&header);
    header[12] = 0x80;
    e.u8(op::REGION).u32(layout.region_len as u32).run(&header);
    seeds.push(("client", e.bytes));
    seeds
}

/// A minimal ELF64 PVH image: one PT_LOAD of `code` at 1 MiB and a PT_NOTE
/// with the Xen PHYS32_ENTRY note.
pub fn pvh_image(code: &[u8], paddr: u64, mem_extra: u64) -> Vec<u8> {
    let mut note = Vec::new();
    note.extend_from_slice(&4u32.to_le_bytes());
    note.extend_from_slice(&4u32.to_le_bytes());
    note.extend_from_slice(&18u32.to_le_bytes());
    note.extend_from_slice(b"Xen\0");
    note.extend_from_slice(&(paddr as u32).to_le_bytes());
    let phoff = 64u64;
    let code_off = phoff + 2 * 56;
    let note_off = code_off + code.len() as u64;
    let mut f = Vec::new();
    f.extend_from_slice(&[0x7F, b'E', b'L', b'F', 2, 1, 1, 0]);
    f.extend_from_slice(&[0; 8]);
    f.extend_from_slice(&2u16.to_le_bytes()); // ET_EXEC
    f.extend_from_slice(&62u16.to_le_bytes()); // x86-64
    f.extend_from_slice(&1u32.to_le_bytes());
    f.extend_from_slice(&paddr.to_le_bytes()); // e_entry
    f.extend_from_slice(&phoff.to_le_bytes());
    f.extend_from_slice(&0u64.to_le_bytes()); // e_shoff
    f.extend_from_slice(&0u32.to_le_bytes());
    f.extend_from_slice(&64u16.to_le_bytes());
    f.extend_from_slice(&56u16.to_le_bytes());
    f.extend_from_slice(&2u16.to_le_bytes());
    f.extend_from_slice(&64u16.to_le_bytes());
    f.extend_from_slice(&0u16.to_le_bytes());
    f.extend_from_slice(&0u16.to_le_bytes());
    let phdr = |f: &mut Vec<u8>, kind: u32, off: u64, addr: u64, filesz: u64, memsz: u64| {
        f.extend_from_slice(&kind.to_le_bytes());
        f.extend_from_slice(&5u32.to_le_bytes());
        f.extend_from_slice(&off.to_le_bytes());
        f.extend_from_slice(&addr.to_le_bytes());
        f.extend_from_slice(&addr.to_le_bytes());
        f.extend_from_slice(&filesz.to_le_bytes());
        f.extend_from_slice(&memsz.to_le_bytes());
        f.extend_from_slice(&16u64.to_le_bytes());
    };
    let len = code.len() as u64;
    phdr(&mut f, 1, code_off, paddr, len, len + mem_extra);
    phdr(&mut f, 4, note_off, 0, note.len() as u64, note.len() as u64);
    f.extend_from_slice(code);
    f.extend_from_slice(&note);
    f
}

fn pvh_elf() -> Vec<(&'static str, Vec<u8>)> {
    let with_cmdline = |cmdline: &[u8], image: Vec<u8>| {
        let mut e = Encoder::new();
        e.run(cmdline).raw(&image);
        e.bytes
    };
    vec![
        (
            "minimal",
            with_cmdline(b"rx count=10", pvh_image(&[0xF4; 64], 0x10_0000, 0x1000)),
        ),
        (
            "bss_past_ram",
            with_cmdline(b"", pvh_image(&[0x90; 16], 0x1F_F000, 0x10_0000)),
        ),
        (
            "low",
            with_cmdline(&[b'x'; 300], pvh_image(&[0xF4; 4096], 0x1000, 0)),
        ),
    ]
}

fn vxlan() -> Vec<(&'static str, Vec<u8>)> {
    use crate::vxlan::op;
    let mut seeds = Vec::new();
    // Our VNI from two remotes (learned), the neighbour's VNI (parked and
    // taken), an unknown VNI, a header without the flag, a runt, a
    // datagram past the slot, one from our own address; a tick between.
    let mut e = Encoder::new();
    e.u8(1).u8(3).u8(4).u8(1);
    let datagram = |e: &mut Encoder, from: u8, vni: u8, body: &[u8]| {
        e.u8(op::DATAGRAM).u8(from).u8(vni + 1).run(body);
    };
    datagram(&mut e, 2, 1, &frame([0xFF; 6], 60));
    datagram(&mut e, 3, 1, &frame([0x02, 0, 0, 0, 0, 9], 100));
    datagram(&mut e, 2, 2, &frame([0x02, 0, 0, 0, 0, 1], 60));
    datagram(&mut e, 2, 3, &frame([0xFF; 6], 60));
    e.u8(op::RECEIVE);
    e.u8(op::TICK).u8(5);
    let mut bad = switch_user::tunnel::header::encode(1).to_vec();
    bad[0] = 0;
    bad.extend_from_slice(&frame([0xFF; 6], 60));
    e.u8(op::DATAGRAM).u8(2).u8(0).run(&bad);
    datagram(&mut e, 2, 1, &[0x02, 0, 0]);
    datagram(&mut e, 2, 1, &frame([0xFF; 6], 200));
    datagram(&mut e, 1, 1, &frame([0xFF; 6], 64));
    seeds.push(("tunnel", e.bytes));
    seeds
}

fn frames() -> Vec<(&'static str, Vec<u8>)> {
    use crate::frames::op;
    let mut seeds = Vec::new();
    // Each port broadcasts (everyone learns), then unicasts: untagged from
    // the access ports, tagged 10 / 20 / priority-tagged / unknown VID and
    // native from the trunk, QinQ, a tag cut short, a runt, a frame of the
    // whole buffer.
    let mut e = Encoder::new();
    let built = |e: &mut Encoder, kind: u8, dst: u8, tags: &[u16], payload: &[u8]| {
        e.u8(kind | ((tags.len() as u8) << 3)).u8(dst);
        for &t in tags {
            e.bool(false).u16(t);
        }
        e.u16(0x0800).run(payload);
    };
    for port in 0..6u8 {
        e.u8(op::SEND).u8(port).u8(0);
        built(&mut e, 1, 0, &[], &[1, 2, 3]);
        e.u8(op::FORWARD).u8(port);
    }
    e.u8(op::SEND).u8(0).u8(1);
    built(&mut e, 1, 4, &[], &[0x45; 46]);
    built(&mut e, 1, 0, &[10], &[0x45; 46]);
    e.u8(op::FORWARD).u8(0);
    e.u8(op::SEND).u8(2).u8(8);
    built(&mut e, 1, 1, &[10], &[0x45; 46]);
    built(&mut e, 1, 2, &[0x2000 | 20], &[0x45; 46]);
    built(&mut e, 1, 0, &[0], &[0x45; 46]);
    built(&mut e, 1, 0, &[4095], &[0x45; 46]);
    built(&mut e, 1, 0, &[30], &[0x45; 46]);
    built(&mut e, 1, 6, &[], &[0x45; 46]);
    built(&mut e, 1, 0, &[10, 20], &[0x45; 46]);
    e.u8(0x21 | 1 << 3)
        .u8(0)
        .bool(false)
        .u16(10)
        .u16(0x0800)
        .run(&[])
        .u8(16);
    e.u8(0).run(&[0xff; 10]);
    e.u8(op::FORWARD).u8(2);
    e.u8(op::SEND).u8(3).u8(0);
    e.u8(0).run(&frame([0xFF; 6], 2048));
    e.u8(op::TICK).u8(10);
    e.u8(op::FORWARD).u8(4);
    seeds.push(("vlans", e.bytes));
    seeds
}

fn nic_checksum() -> Vec<(&'static str, Vec<u8>)> {
    // Partial TCP and UDP over IPv4 and IPv6 (one tagged), finished ones,
    // one cut short, a raw TCP frame.
    let mut e = Encoder::new();
    let addrs4 = [10, 0, 0, 1, 10, 0, 0, 2];
    let mut addrs6 = [0u8; 32];
    addrs6[0] = 0xfd;
    addrs6[15] = 1;
    addrs6[16] = 0xfd;
    addrs6[31] = 2;
    let ports = [
        0x30, 0x39, 0, 80, 0, 0, 0, 1, 0, 0, 0, 0, 0x50, 0x18, 0xff, 0xff,
    ];
    for (kind, addrs) in [
        (0x04u8, &addrs4[..]),
        (0x06, &addrs4[..]),
        (0x05, &addrs6[..]),
        (0x07, &addrs6[..]),
        (0x0c, &addrs4[..]),
        (0x24, &addrs4[..]),
        (0x27, &addrs6[..]),
    ] {
        e.u8(kind).run(&[0x61; 100]).raw(addrs);
        if kind & 2 == 0 {
            e.raw(&ports).raw(&[0; 4]);
        } else {
            e.raw(&ports[..8]);
        }
    }
    e.u8(0x44)
        .run(&[0x62; 40])
        .raw(&addrs4)
        .raw(&ports)
        .raw(&[0; 4])
        .u16(60);
    e.u8(0).run(&tcp_frame(200));
    vec![("checksums", e.bytes)]
}

fn vxlan_outer() -> Vec<(&'static str, Vec<u8>)> {
    // Built datagrams to us (left as built, then changed in the IP header
    // length and the fragment bits), one to another port, one raw frame.
    let mut e = Encoder::new();
    let src = u32::from_be_bytes([192, 0, 2, 2]);
    e.u8(1)
        .u32(src)
        .u8(0)
        .u16(40000)
        .bool(true)
        .run(&[0x08, 0, 0, 0, 0, 0, 42, 0])
        .u8(0);
    e.u8(1)
        .u32(src)
        .u8(0)
        .u16(40001)
        .bool(true)
        .run(&[0x61; 64])
        .u8(2);
    e.u16(14).u8(0x4f).u16(20).u8(0x20);
    e.u8(1)
        .u32(src)
        .u8(0)
        .u16(40002)
        .bool(false)
        .u16(53)
        .run(&[0x62; 20])
        .u8(0);
    e.u8(0).run(&frame([2, 0, 0, 0, 0, 1], 60));
    vec![("datagrams", e.bytes)]
}

/// The `offload` target: a working hand-over (rings of 16, the CSB at
/// 0x1000), two frames out and two in, the hand-back; then the same frames
/// with the guest scribbling the host half and a JSON hand-over that lies.
fn offload() -> Vec<(&'static str, Vec<u8>)> {
    use crate::offload::op;
    use e1000_spec::csb::field;
    use e1000_spec::desc::tx::cmd;
    use e1000_spec::regs::{rctl, tctl};

    fn csb_field(e: &mut Encoder, which: u8, value: u32) {
        e.u8(op::CSB_FIELD).u8(which).u32(value);
    }
    let frame = |seed: u8| -> Vec<u8> {
        let mut f = vec![
            0x52, 0x54, 0x00, 0x12, 0x34, 0x56, 2, 0, 0, 0, 0, 9, 0x88, 0xB5,
        ];
        f.extend((0..46).map(|i| seed.wrapping_add(i)));
        f
    };
    let mut e = Encoder::new();
    e.u16(0).u16(0);
    // Registers by selector: 2 TCTL, 3 TDBAL, 5 TDLEN, 8 RCTL, 9 RDBAL, 11 RDLEN.
    e.u8(op::HANDOVER).u16(0x1000 / 64).u8(6);
    e.u8(2).u32(tctl::EN).u8(3).u32(0x2000).u8(5).u32(256);
    e.u8(8)
        .u32(rctl::EN | rctl::BAM | rctl::SECRC)
        .u8(9)
        .u32(0x3000)
        .u8(11)
        .u32(256);
    e.raw(&[0; 32]).bool(false);
    csb_field(&mut e, 2, 1); // guest_csb_on
    for i in 0..2u64 {
        let mut d = [0u8; 16];
        d[..8].copy_from_slice(&(0x5000 + i * 2048).to_le_bytes());
        d[8..10].copy_from_slice(&60u16.to_le_bytes());
        d[11] = cmd::EOP | cmd::RS;
        e.u8(op::MEM).u32(0x2000 + i as u32 * 16).run(&d);
        e.u8(op::MEM)
            .u32(0x5000 + i as u32 * 2048)
            .run(&frame(i as u8));
        let mut r = [0u8; 16];
        r[..8].copy_from_slice(&(0x8000 + i * 2048).to_le_bytes());
        e.u8(op::MEM).u32(0x3000 + i as u32 * 16).run(&r);
    }
    csb_field(&mut e, 0, 2); // guest_tdt
    e.u8(op::TRANSMIT).u16(2048).u8(64);
    csb_field(&mut e, 3, 2); // guest_rdt
    csb_field(&mut e, 4, 1); // guest_need_rxkick
    let broadcast = |seed: u8| {
        let mut f = frame(seed);
        f[..6].fill(0xFF);
        f
    };
    e.u8(op::RECEIVE)
        .u8(2)
        .run(&broadcast(7))
        .run(&broadcast(8));
    e.u8(op::PREPARE_SLEEP).bool(true);
    e.u8(op::ENTER_POLLING).u8(op::GUEST_ON);
    let working = e.bytes.clone();
    e.u8(op::HAND_BACK);
    let mut seeds = vec![("working", e.bytes)];

    let mut e = Encoder { bytes: working };
    csb_field(&mut e, 5, 0xFFFF); // host_tdh scribbled
    csb_field(&mut e, 7, 99); // host_rdh scribbled
    csb_field(&mut e, 0, 40); // guest_tdt out of range
    e.u8(op::TRANSMIT).u16(64).u8(1);
    let lie = format!(
        r#"{{"csb_address":4096,"registers":[[{},4294967295],[{},7]],"tx":{{"checksum":{{"ipcss":0,"ipcso":0,"ipcse":0,"tucss":0,"tucso":0,"tucse":0,"paylen":0,"tucmd":0,"hdrlen":0,"mss":0}},"tso":{{"ipcss":255,"ipcso":255,"ipcse":65535,"tucss":255,"tucso":255,"tucse":65535,"paylen":4294967295,"tucmd":255,"hdrlen":255,"mss":1}},"tso_resume":[0,4294967295]}}}}"#,
        e1000_spec::regs::TDLEN,
        e1000_spec::regs::TCTL
    );
    e.u8(op::HANDOVER_JSON).run(lie.as_bytes());
    e.u8(op::TRANSMIT).u16(2048).u8(8).u8(op::HAND_BACK);
    seeds.push(("hostile", e.bytes));
    let _ = field::GUEST_TDT;
    seeds
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::all;

    /// Rewrites `seeds/` from the encoders above.
    #[test]
    #[ignore]
    fn write_seeds() {
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("seeds");
        for (target, name, bytes) in all() {
            let dir = root.join(target);
            std::fs::create_dir_all(&dir).unwrap();
            std::fs::write(dir.join(name), bytes).unwrap();
        }
    }

    /// Every target runs its seeds without a finding.
    #[test]
    fn seeds_run_clean() {
        for (target, name, bytes) in all() {
            eprintln!("{target}/{name}");
            match target {
                "e1000" => crate::e1000::run(&bytes),
                "csb" => crate::csb::run(&bytes),
                "offload" => crate::offload::run(&bytes),
                "port_rings" => crate::port_rings::run(&bytes),
                "control" => crate::control::run(&bytes),
                "pvh_elf" => crate::pvh_elf::run(&bytes),
                "vxlan" => crate::vxlan::run(&bytes),
                "frames" => crate::frames::run(&bytes),
                "vxlan_outer" => crate::vxlan_outer::run(&bytes),
                _ => crate::nic_checksum::run(&bytes),
            }
        }
    }
}
