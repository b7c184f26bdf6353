//! `chaos`: writes hostile values to the device, as a misbehaving or
//! malicious guest would, for the VMM's robustness tests: descriptor
//! addresses outside RAM and in MMIO, lengths past buffers and past the end
//! of RAM, zero and huge lengths, TX chains without EOP, ring bases and
//! lengths misaligned, outside RAM or zero, head/tail out of range, unknown
//! registers and odd-sized accesses, EEPROM/PHY/read-only registers, an
//! interrupt storm through ICS, garbage in CTRL/RCTL, a reset under load,
//! and the I/O BAR's IOADDR/IODATA window. When the device advertises the
//! CSB extension: CSB addresses outside RAM, in MMIO and unaligned (which
//! the device must ignore: it must not write the page then), a valid CSB
//! with guest_tdt/guest_rdt out of range, flags flipping quickly, the host
//! half scribbled on and the block laid over the TX ring, then the CSB
//! set up sanely again and a few frames sent through it, which must
//! complete without a reset. Then it resets the device, brings it up as
//! usual, sends `count` (default 8) valid frames and checks they complete:
//! the device must have survived.

use super::{print_result, setup_for, wait_for_tx, wait_until, Env};
use crate::counters::COUNTERS;
use crate::driver::Driver;
use crate::e1000::desc::{RxDesc, TxDesc};
use crate::irq::{self, with_driver};
use crate::port::{inb, inl, outb, outl};
use crate::tsc::{self, Deadline};
use crate::{println, EXIT_OK, EXIT_WORKLOAD};
use e1000_spec::csb::{self, field, CSBAH, CSBAL, NONE};
use e1000_spec::desc::tx::cmd;
use e1000_spec::regs::*;
use testframe::{FrameTemplate, Kind};

/// Valid frames sent after the chaos when `count=` is not given.
pub const DEFAULT_COUNT: u64 = 8;
/// Pause after each step, so that a device that works asynchronously has
/// processed it.
const SETTLE_MS: u64 = 5;
/// Pause after the RX steps, for frames from a peer to hit the bad buffers.
const RX_EXPOSURE_MS: u64 = 20;
/// Assumed end of RAM when the start info has no memory map.
const DEFAULT_RAM_TOP: u64 = 64 << 20;
const CMD: u8 = cmd::EOP | cmd::IFCS | cmd::RS;
/// Valid frames sent through the CSB once it is sane again.
const CSB_SANE_FRAMES: u64 = 4;
/// How long those frames may take.
const CSB_SANE_MS: u64 = 500;
/// Rounds of quick flag flipping on a mapped CSB.
const CSB_FLIP_ROUNDS: u32 = 20_000;
/// A TDT and an RDT kick every this many flipping rounds.
const CSB_FLIP_KICK_EVERY: u32 = 1000;

/// What the CSB steps found.
#[derive(Default)]
struct CsbChaos {
    /// The device wrote into the page while its address was invalid.
    invalid_taken: u64,
    /// The sane CSB could not be set up (the device did not take it).
    take_failed: u64,
    /// Valid frames sent through the sane CSB.
    sent: u64,
    /// Of those, not completed in time.
    not_completed: u64,
}

fn desc(addr: u64, length: u16, cmd: u8) -> TxDesc {
    TxDesc {
        addr,
        length,
        cmd,
        ..TxDesc::default()
    }
}

/// Puts the RX ring back to a sane state: every buffer the driver's own,
/// RDH 0, RDT giving all but one, receiver on.
fn rx_sane(d: &mut Driver) {
    d.rx.reset();
    d.nic.setup_rx(&d.rx, true);
}

/// Whether any word of the driver's CSB page is non-zero (it was zeroed
/// before the device was given invalid addresses).
fn csb_page_touched(d: &Driver) -> bool {
    (0..csb::SIZE).step_by(4).any(|off| d.csb.load(off) != 0)
}

/// Puts the TX ring back to a sane, empty state (TDH = TDT = 0).
fn tx_sane(d: &mut Driver) {
    d.nic.regs.write(TCTL, 0);
    d.tx.abandon();
    d.nic.setup_tx(&d.tx);
}

/// Queues `descs` at the ring's tail and publishes them.
fn tx_send(d: &mut Driver, descs: &[TxDesc]) {
    tx_sane(d);
    for &x in descs {
        d.tx.push_raw(x);
    }
    d.tx.publish(&d.nic.regs);
}

/// Points the RX ring's descriptors at `addrs` (cycled) and enables the
/// receiver with `rctl`.
fn rx_with_buffers(d: &mut Driver, addrs: &[u64], rctl: u32) {
    d.nic.regs.write(RCTL, 0);
    for i in 0..d.rx.size() {
        let addr = addrs[i as usize % addrs.len()];
        d.rx.write_desc(
            i,
            RxDesc {
                addr,
                ..RxDesc::default()
            },
        );
    }
    d.nic.setup_rx(&d.rx, false);
    d.nic.regs.write(RCTL, rctl);
}

struct Chaos<'a> {
    env: &'a Env<'a>,
    steps: u32,
    ram_top: u64,
}

impl Chaos<'_> {
    fn step(&mut self, name: &str, settle_ms: u64, f: impl FnOnce(&mut Driver, u64)) {
        self.steps += 1;
        if !self.env.config.quiet {
            println!("chaos: step {}: {}", self.steps, name);
        }
        let ram_top = self.ram_top;
        with_driver(|d| f(d, ram_top));
        wait_until(tsc::now() + tsc::ms_to_ticks(settle_ms));
    }
}

/// Runs the workload; returns the exit code.
pub fn run(env: &Env) -> u8 {
    let config = env.config;
    let ram_top = if env.info.ram_top != 0 {
        env.info.ram_top
    } else {
        DEFAULT_RAM_TOP
    };
    let bar0 = env.pci.bar0;
    let quiet = config.quiet;
    let baseline = COUNTERS.snapshot();
    let start = tsc::now();
    let template = FrameTemplate::new(config.dst, env.mac, Kind::Data, config.size);
    with_driver(|d| {
        d.count_only = true;
        // The register steps below mean registers: no CSB.
        if d.csb_on() {
            d.detach_csb();
            d.nic.set_csb_address(0);
        }
    });
    let mut chaos = Chaos {
        env,
        steps: 0,
        ram_top,
    };

    chaos.step("TX buffers outside RAM", SETTLE_MS, |d, top| {
        tx_send(
            d,
            &[
                desc(top, 60, CMD),
                desc(top + 0x1000_0000, 60, CMD),
                desc(0xFFFF_FFFF_FFFF_F000, 60, CMD),
                desc(1 << 52, 60, CMD),
                desc(0xC000_0000, 60, CMD),
            ],
        )
    });
    chaos.step(
        "TX buffers in MMIO (own BAR0, LAPIC, IOAPIC)",
        SETTLE_MS,
        |d, _| {
            tx_send(
                d,
                &[
                    desc(bar0, 256, CMD),
                    desc(bar0 + 0x1FFF0, 64, CMD),
                    desc(0xFEE0_0000, 64, CMD),
                    desc(0xFEC0_0000, 64, CMD),
                ],
            )
        },
    );
    chaos.step(
        "TX lengths past the buffer and past the end of RAM",
        SETTLE_MS,
        |d, top| {
            let last_buf = d.tx.buffer_addr(d.tx.size() - 1);
            tx_send(
                d,
                &[
                    desc(top - 32, 1514, CMD),
                    desc(top - 1, 0xFFFF, CMD),
                    desc(last_buf, 16288, CMD),
                    desc(last_buf, 0xFFFF, CMD),
                ],
            )
        },
    );
    chaos.step("TX zero lengths", SETTLE_MS, |d, _| {
        let buf = d.tx.buffer_addr(0);
        tx_send(
            d,
            &[desc(buf, 0, CMD), desc(buf, 0, cmd::RS), desc(buf, 60, CMD)],
        )
    });
    chaos.step(
        "TX huge chain: 40 x 64 KiB descriptors, one packet",
        SETTLE_MS,
        |d, _| {
            let buf = d.tx.buffer_addr(0);
            let mut chain = [desc(buf, 0xFFFF, cmd::IFCS | cmd::RS); 40];
            chain[39].cmd |= cmd::EOP;
            tx_send(d, &chain)
        },
    );
    chaos.step(
        "TX chain without EOP filling the ring",
        SETTLE_MS,
        |d, _| {
            tx_sane(d);
            let buf = d.tx.buffer_addr(0);
            while d.tx.free() > 0 {
                d.tx.push_raw(desc(buf, 60, cmd::IFCS | cmd::RS));
            }
            d.tx.publish(&d.nic.regs);
        },
    );
    chaos.step("TX ring base and length misaligned", SETTLE_MS, |d, _| {
        tx_sane(d);
        let r = d.nic.regs;
        r.write(TCTL, 0);
        r.write(TDBAL, d.tx.base() as u32 + 3);
        r.write(TDLEN, 100);
        r.write(TDH, 0);
        r.write(TCTL, tctl::EN | tctl::PSP);
        r.write(TDT, 1);
        r.write(TDT, 5);
    });
    chaos.step(
        "TX ring outside RAM and crossing its end",
        SETTLE_MS,
        |d, top| {
            let r = d.nic.regs;
            r.write(TCTL, 0);
            r.write(TDBAH, 0xFFFF_FFFF);
            r.write(TDBAL, 0xFFFF_F000);
            r.write(TDLEN, 0x1_0000);
            r.write(TDH, 0);
            r.write(TCTL, tctl::EN | tctl::PSP);
            r.write(TDT, 10);
            r.write(TCTL, 0);
            r.write(TDBAH, 0);
            r.write(TDBAL, (top - 4096) as u32);
            r.write(TDLEN, 0xF_FF80);
            r.write(TDH, 0);
            r.write(TCTL, tctl::EN | tctl::PSP);
            r.write(TDT, 1000);
        },
    );
    chaos.step("TX zero-length ring", SETTLE_MS, |d, _| {
        tx_sane(d);
        let r = d.nic.regs;
        r.write(TDLEN, 0);
        r.write(TDH, 0);
        r.write(TDT, 1);
        r.write(TDT, 0xFFFF);
    });
    chaos.step("TX head and tail out of range", SETTLE_MS, |d, _| {
        tx_sane(d);
        let r = d.nic.regs;
        let size = d.tx.size();
        r.write(TDH, 0xFFFF_FFFF);
        r.write(TDT, 0x7FFF_FFFF);
        r.write(TDH, 0);
        r.write(TDT, size + 5);
        r.write(TDH, size);
        r.write(TDT, 0);
    });
    chaos.step(
        "RX buffers outside RAM, at its end and at 0",
        RX_EXPOSURE_MS,
        |d, top| {
            let receive = rctl::EN | rctl::UPE | rctl::MPE | rctl::BAM | rctl::SECRC;
            rx_with_buffers(
                d,
                &[top - 100, top, 1 << 40, 0xFFFF_FFFF_FFFF_0000, 0],
                receive,
            );
        },
    );
    chaos.step(
        "RX ring misaligned, zero, outside RAM; RDT out of range",
        RX_EXPOSURE_MS,
        |d, top| {
            let r = d.nic.regs;
            let base = d.rx.base() as u32;
            for (bal, bah, len, rdt) in [
                (base + 5, 0, 100, 3),
                (base, 0, 0, 1),
                (0xFFFF_0000, 0xFFFF, 0x1000, 10),
                ((top - 2048) as u32, 0, 0x8000, 500),
                (base, 0, d.rx.len_bytes(), 0xFFFF_FFFF),
            ] {
                r.write(RCTL, 0);
                r.write(RDBAL, bal);
                r.write(RDBAH, bah);
                r.write(RDLEN, len);
                r.write(RDH, 0);
                r.write(RDT, rdt);
                r.write(RCTL, rctl::EN | rctl::UPE | rctl::BAM);
            }
        },
    );
    chaos.step(
        "RCTL all ones (loopback, long packets, 16 KiB buffers)",
        RX_EXPOSURE_MS,
        |d, top| {
            rx_with_buffers(d, &[top - 2048], u32::MAX);
            d.nic.regs.write(RCTL, 0);
        },
    );
    chaos.step(
        "unknown registers and odd-sized accesses",
        SETTLE_MS,
        |d, _| {
            let r = d.nic.regs;
            for off in [0x0004, 0x0FFC, 0x1000, 0x5A00, 0x8000, 0x1_0000, 0x1_FFFC] {
                r.write(off, 0xDEAD_BEEF);
                let back = r.read(off);
                chaos_note(
                    quiet,
                    format_args!("reg {off:#07x} <- 0xdeadbeef, reads {back:#010x}"),
                );
            }
            r.write_sized(0x0001, 1, 0xAA);
            r.write_sized(IMS + 2, 2, 0xFFFF);
            r.write_sized(TDT - 2, 4, 0xFFFF_FFFF);
            r.write_sized(0x1_FFFE, 4, 0x1234_5678);
            r.write_sized(0x1_FFFF, 2, 0xABCD);
            let a = r.read_sized(0x0003, 4);
            let b = r.read_sized(0x1_FFFE, 4);
            let c = r.read_sized(0x0009, 1);
            chaos_note(quiet, format_args!("odd reads: {a:#x} {b:#x} {c:#x}"));
        },
    );
    chaos.step(
        "EEPROM/PHY out of range, writes to read-only registers",
        SETTLE_MS,
        |d, _| {
            let r = d.nic.regs;
            r.write(EERD, 0xFF << eerd::ADDR_SHIFT | eerd::START);
            let eerd = r.read(EERD);
            r.write(EERD, u32::MAX);
            // Read register 31 of PHY 31.
            r.write(
                MDIC,
                mdic::OP_READ | 31 << mdic::PHY_SHIFT | 31 << mdic::REG_SHIFT,
            );
            let mdic = r.read(MDIC);
            r.write(MDIC, u32::MAX);
            r.write(STATUS, u32::MAX);
            r.write(ICR, u32::MAX);
            chaos_note(
                quiet,
                format_args!("EERD word 255 -> {eerd:#x}, MDIC PHY 31 -> {mdic:#x}"),
            );
        },
    );
    chaos.step("interrupt storm through ICS", SETTLE_MS, |d, _| {
        let r = d.nic.regs;
        d.nic.enable_interrupts(u32::MAX);
        for _ in 0..3 {
            r.write(ICS, u32::MAX);
        }
        d.nic.disable_interrupts(u32::MAX);
        d.nic.enable_interrupts(d.irq_mask());
    });
    chaos.step("CTRL garbage", SETTLE_MS, |d, _| {
        let r = d.nic.regs;
        r.write(CTRL, !ctrl::RST & !ctrl::PHY_RST);
        r.write(CTRL, ctrl::SLU | ctrl::ASDE | ctrl::FD);
    });
    let mut csb_chaos = CsbChaos::default();
    if env.pci.has_csb() {
        chaos.step(
            "CSB outside RAM, across its end, in MMIO",
            SETTLE_MS,
            |d, top| {
                d.csb.clear();
                let bar0 = env.pci.bar0;
                for addr in [
                    top,
                    top - 2048,
                    top + 0x1000_0000,
                    1 << 40,
                    0xFFFF_FFFF_FFFF_F000,
                    bar0,
                    0xFEE0_0000,
                ] {
                    d.nic.set_csb_address(addr);
                    let back =
                        (d.nic.regs.read(CSBAH) as u64) << 32 | d.nic.regs.read(CSBAL) as u64;
                    if back != addr {
                        chaos_note(quiet, format_args!("CSB {addr:#x} reads back {back:#x}"));
                    }
                }
                if csb_page_touched(d) {
                    csb_chaos.invalid_taken += 1;
                }
            },
        );
        chaos.step("CSB unaligned", SETTLE_MS, |d, _| {
            d.csb.clear();
            let page = d.csb.addr();
            for addr in [page + 4, page + 32, page + 63, page | 1 << 44] {
                d.nic.set_csb_address(addr);
                d.nic.regs.write(TDT, 0);
            }
            // High half first, then the low half alone: still invalid.
            d.nic.regs.write(CSBAH, 0xFFFF_FFFF);
            d.nic.regs.write(CSBAL, page as u32);
            d.nic.regs.write(CSBAH, 0);
            if csb_page_touched(d) {
                csb_chaos.invalid_taken += 1;
                chaos_note(quiet, format_args!("the device wrote into an unmapped CSB"));
            }
            d.nic.set_csb_address(0);
        });
        chaos.step(
            "CSB valid; guest_tdt/guest_rdt out of range, flags flipping, host half scribbled",
            SETTLE_MS,
            |d, _| {
                tx_sane(d);
                rx_sane(d);
                d.map_csb();
                let taken = d.csb.host_needs_txkick();
                d.csb.set_on(true);
                let r = d.nic.regs;
                let size = d.tx.size();
                for bad in [size, size + 1, 4096, 0x1_0000, 0x7FFF_FFFF, u32::MAX] {
                    d.csb.store(field::GUEST_TDT, bad);
                    d.csb.store(field::GUEST_RDT, bad);
                    r.write(TDT, 0);
                    r.write(RDT, 0);
                }
                for i in 0..CSB_FLIP_ROUNDS {
                    d.csb.store(field::GUEST_NEED_TXKICK, i & 1);
                    d.csb.store(field::GUEST_NEED_RXKICK, (i >> 1) & 1);
                    d.csb.store(field::GUEST_CSB_ON, ((i >> 2) & 1) ^ 1);
                    d.csb
                        .store(field::GUEST_TXKICK_AT, i.wrapping_mul(2_654_435_761));
                    d.csb.store(field::GUEST_USE_MSIX, i & 8);
                    let index = match i % 3 {
                        0 => i % size,
                        1 => size + i,
                        _ => u32::MAX - i,
                    };
                    d.csb.store(field::GUEST_TDT, index);
                    d.csb.store(field::GUEST_RDT, index ^ 0x155);
                    if i % CSB_FLIP_KICK_EVERY == 0 {
                        r.write(TDT, index);
                        r.write(RDT, index);
                    }
                }
                // The device's half belongs to the device: scribble on it.
                for (off, value) in [
                    (field::HOST_TDH, u32::MAX),
                    (field::HOST_NEED_TXKICK, 0),
                    (field::HOST_RDH, 0x8000_0000),
                    (field::HOST_NEED_RXKICK, 7),
                    (field::HOST_RXKICK_AT, 12345),
                ] {
                    d.csb.store(off, value);
                }
                r.write(TDT, 1);
                r.write(RDT, 1);
                // The block laid over the TX descriptor ring (valid: page
                // aligned, in RAM), kicked, then moved back while in use.
                d.nic.set_csb_address(d.tx.base());
                r.write(TDT, 3);
                d.nic.set_csb_address(d.csb.addr());
                d.csb.store(field::GUEST_CSB_ON, 1);
                d.csb.store(field::GUEST_TDT, NONE);
                r.write(TDT, 0);
                chaos_note(
                    quiet,
                    format_args!(
                        "CSB mapped at {:#x}, host half written: {taken}",
                        d.csb.addr()
                    ),
                );
            },
        );
        chaos.step(
            "CSB sane again: valid frames through it",
            SETTLE_MS,
            |d, _| {
                d.csb.set_on(false);
                d.nic.set_csb_address(0);
                tx_sane(d);
                rx_sane(d);
                if d.enable_csb().is_err() {
                    csb_chaos.take_failed += 1;
                    chaos_note(quiet, format_args!("the device did not take the sane CSB"));
                    return;
                }
                let Some(template) = &template else { return };
                let len = template.len() as u16;
                // Straight through the ring (attached to the CSB), whatever
                // the run's TX mode: one publication of all of them.
                for seq in 0..CSB_SANE_FRAMES {
                    template.write(d.tx.next_buffer(), seq, tsc::now_ns());
                    d.tx.push(len);
                }
                d.tx.publish(&d.nic.regs);
                csb_chaos.sent = CSB_SANE_FRAMES;
                let deadline = Deadline::after_ms(CSB_SANE_MS);
                while d.tx.in_flight() > 0 && !deadline.passed() {
                    d.tx.reclaim();
                    core::hint::spin_loop();
                }
                csb_chaos.not_completed = d.tx.in_flight() as u64;
                chaos_note(
                    quiet,
                    format_args!(
                        "{} of {} frames completed through the CSB",
                        CSB_SANE_FRAMES - csb_chaos.not_completed,
                        CSB_SANE_FRAMES
                    ),
                );
                // Left on: the next step resets the device under it.
            },
        );
    }
    chaos.step("reset while frames are queued", SETTLE_MS, |d, _| {
        let buf = d.tx.buffer_addr(0);
        tx_send(d, &[desc(buf, 60, CMD); 16]);
        d.nic.regs.write(CTRL, ctrl::RST);
    });
    if let Some(io) = env.pci.io_base {
        chaos.step(
            "I/O BAR: IOADDR out of range, unknown ports",
            SETTLE_MS,
            |_, _| {
                // SAFETY: the e1000's own I/O BAR (IOADDR at +0, IODATA at +4).
                let values = unsafe {
                    let (ioaddr, iodata) = (io + IOADDR as u16, io + IODATA as u16);
                    outl(ioaddr, u32::MAX);
                    let a = inl(iodata);
                    outl(ioaddr, MMIO_SIZE);
                    outl(iodata, 0xDEAD_BEEF);
                    outl(ioaddr, 0x3);
                    outl(iodata, 0xDEAD_BEEF);
                    outl(ioaddr, TDT);
                    outl(iodata, 0x7FFF);
                    outb(io + 1, 0xFF);
                    let b = inb(io + 9);
                    let c = inl(io + 0x3C);
                    outl(io + 0x3C, 0);
                    (a, b, c)
                };
                chaos_note(
                    quiet,
                    format_args!(
                        "I/O BAR reads: {:#x} {:#x} {:#x}",
                        values.0, values.1, values.2
                    ),
                );
            },
        );
    }

    // Recovery: a normal bring-up, then valid frames that must complete.
    if !config.quiet {
        println!("chaos: {} steps done, resetting the device", chaos.steps);
    }
    let setup = setup_for(config);
    let recovered = with_driver(|d| {
        d.count_only = false;
        d.start(setup)
    });
    let (mac_ok, link_up, reset_ok) = match recovered {
        Ok(up) => (up.mac == env.mac, up.link_up, true),
        Err(_) => (false, false, false),
    };
    let count = config
        .count
        .unwrap_or(DEFAULT_COUNT)
        .min(with_driver(|d| d.tx.free()) as u64);
    let mut sent = 0;
    if let (true, Some(template)) = (reset_ok, &template) {
        let len = template.len() as u16;
        with_driver(|d| {
            for seq in 0..count {
                template.write(d.tx.next_buffer(), seq, tsc::now_ns());
                d.queue_frame(len);
            }
            d.flush_tx();
        });
        sent = count;
    }
    let drain = Deadline::after_ms(1000);
    let not_completed = loop {
        let token = irq::idle_token();
        let in_flight = with_driver(|d| {
            d.service_tx();
            d.tx.in_flight()
        }) as u64;
        if in_flight == 0 || drain.passed() {
            break in_flight;
        }
        wait_for_tx(token, u32::MAX);
    };
    let frames = sent - not_completed;
    let csb_ok =
        csb_chaos.invalid_taken == 0 && csb_chaos.take_failed == 0 && csb_chaos.not_completed == 0;
    let ok = reset_ok && mac_ok && sent > 0 && not_completed == 0 && csb_ok;
    let ticks = tsc::now() - start;
    let steps = chaos.steps;
    print_result(env, &baseline, |o| {
        o.u64("frames", frames)
            .u64("bytes", frames * config.size as u64)
            .f64("seconds", tsc::ticks_to_secs(ticks), 6)
            .f64("pps", 0.0, 1)
            .u64("steps", steps as u64)
            .bool("recovered", ok)
            .bool("link_up", link_up)
            .bool("csb_steps", env.pci.has_csb())
            .u64("csb_frames", csb_chaos.sent - csb_chaos.not_completed)
            .object("errors", |e| {
                e.u64("not_completed", not_completed)
                    .u64("reset_failed", !reset_ok as u64)
                    .u64("mac_changed", (reset_ok && !mac_ok) as u64)
                    .u64("csb_invalid_taken", csb_chaos.invalid_taken)
                    .u64("csb_take_failed", csb_chaos.take_failed)
                    .u64("csb_not_completed", csb_chaos.not_completed);
            });
    });
    if ok {
        EXIT_OK
    } else {
        EXIT_WORKLOAD
    }
}

fn chaos_note(quiet: bool, what: core::fmt::Arguments) {
    if !quiet {
        println!("chaos:   {what}");
    }
}
