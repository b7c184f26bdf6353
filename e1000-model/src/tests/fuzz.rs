//! Random abuse: 200 000 steps of random register writes (any offset, any
//! value), ring set-ups, descriptors, frames, CSB mappings and scribbles,
//! bus-master flips and timer ticks, over a small guest memory. Nothing may
//! panic, the errors must be counted, and the device must work afterwards.
//!
//! The sequence comes from `E1000_FUZZ_SEED` (decimal or 0x-hex; a fixed
//! default without it) and runs `E1000_FUZZ_STEPS` steps (default 200 000),
//! so a failure found with one seed is replayed with the same seed.
//! `cargo xtask test` also runs it in the test profile, with overflow checks
//! on. Coverage-guided fuzzing of the model is `fuzz/`'s `e1000` target.

use e1000_spec::desc::context::tucmd;
use e1000_spec::desc::tx::cmd;
use e1000_spec::regs::{
    ctrl, rctl, tctl, CTRL, EECD, EERD, ICR, ICS, IMC, IMS, ITR, MDIC, MMIO_SIZE, RADV, RDTR, TIDV,
};

use super::*;

/// Bytes per descriptor, as register values count them.
const DESC: u32 = desc::SIZE as u32;

/// xorshift64*: deterministic randomness for the fuzz test.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

/// A descriptor with random fields, biased towards plausible ones: buffer
/// addresses in or just past `memory_size`, small lengths, frequent EOP, and
/// context descriptors with random checksum offsets, HDRLEN and MSS.
fn random_descriptor(rng: &mut Rng, memory_size: u64) -> [u8; desc::SIZE] {
    let mut d = [0u8; desc::SIZE];
    for byte in &mut d {
        *byte = rng.next() as u8;
    }
    let addr = match rng.below(8) {
        0 => rng.next(),
        1 => 0,
        _ => rng.below(memory_size + 4096),
    };
    let len = match rng.below(4) {
        0 => rng.below(0x10_0000) as u32,
        _ => rng.below(1600) as u32,
    };
    match rng.below(4) {
        0 => {
            let mut d = legacy(addr, len as u16, rng.next() as u8 & !cmd::DEXT);
            d[tx_layout::CSO] = rng.below(80) as u8;
            d[tx_layout::CSS] = rng.below(80) as u8;
            d
        }
        1 => {
            let command = rng.next() as u8 & (tucmd::TCP | tucmd::IP | tucmd::TSE | cmd::RS);
            context_desc(
                rng.below(40) as u8,
                rng.below(60) as u8,
                rng.below(80) as u16,
                rng.below(80) as u8,
                rng.below(100) as u8,
                rng.below(100) as u16,
                len,
                command,
                rng.below(120) as u8,
                rng.below(2000) as u16,
            )
        }
        2 => {
            let command =
                (rng.next() as u8 & !cmd::DEXT) | if rng.below(2) == 0 { cmd::EOP } else { 0 };
            data_desc(addr, len, command, rng.below(4) as u8)
        }
        _ => d,
    }
}

/// The default seed of the sequence.
const DEFAULT_SEED: u64 = 0x9E37_79B9_7F4A_7C15;

/// A u64 from the environment variable `name` (decimal or 0x-hex).
fn from_env(name: &str) -> Option<u64> {
    let text = std::env::var(name).ok()?;
    let text = text.trim();
    let parsed = match text.strip_prefix("0x") {
        Some(hex) => u64::from_str_radix(hex, 16),
        None => text.parse(),
    };
    Some(parsed.unwrap_or_else(|e| panic!("{name}={text:?}: {e}")))
}

#[test]
fn fuzz_random_registers_and_descriptors_never_panic() {
    const OFFSETS: [u32; 26] = [
        CTRL, EECD, EERD, MDIC, ICR, ICS, IMS, IMC, ITR, RCTL, TCTL, RDBAL, RDBAH, RDLEN, RDH, RDT,
        RDTR, RADV, TDBAL, TDBAH, TDLEN, TDH, TDT, TIDV, CSBAL, CSBAH,
    ];
    const SMALL: u64 = 64 * 1024;
    let seed = from_env("E1000_FUZZ_SEED").unwrap_or(DEFAULT_SEED);
    let steps = from_env("E1000_FUZZ_STEPS").unwrap_or(200_000);
    eprintln!("fuzz: E1000_FUZZ_SEED={seed:#x} E1000_FUZZ_STEPS={steps}");
    // xorshift needs a non-zero state.
    let mut rng = Rng(seed.max(1));
    let mut config = E1000Config::new(MAC).with_csb(true);
    config.mitigation = true;
    let mut h = Harness::with_config(config);
    h.net = QueueBackend::new(2048, 64);
    let small = VecMemory::new(SMALL as usize);
    let (mut tx_frames, mut rx_frames) = (0u64, 0u64);
    for _ in 0..steps {
        match rng.below(18) {
            0..=2 => {
                // Any register, any value (resets are rare).
                let offset = if rng.below(4) == 0 {
                    (rng.below(u64::from(MMIO_SIZE)) as u32) & !3
                } else {
                    OFFSETS[rng.below(OFFSETS.len() as u64) as usize]
                };
                let value = match rng.below(3) {
                    0 => rng.next() as u32,
                    1 => rng.below(64) as u32,
                    _ => (rng.below(16) * 128) as u32,
                };
                if offset == CTRL && value & ctrl::RST != 0 && rng.below(16) != 0 {
                    continue;
                }
                h.dev
                    .mmio_write(u64::from(offset), &value.to_le_bytes(), &small);
            }
            3 => {
                // A plausible ring set-up in small memory.
                let tx_base = rng.below(SMALL / 2) as u32 & !0xF;
                let rx_base = rng.below(SMALL / 2) as u32 & !0xF;
                for (offset, value) in [
                    (TDBAL, tx_base),
                    (TDBAH, 0),
                    (TDLEN, 128 * (1 + rng.below(4) as u32)),
                    (TDH, 0),
                    (TDT, 0),
                    (TCTL, tctl::EN | (rng.below(2) as u32) << 3),
                    (RDBAL, rx_base),
                    (RDBAH, 0),
                    (RDLEN, 128 * (1 + rng.below(4) as u32)),
                    (RDH, 0),
                    (RDT, 0),
                    (
                        RCTL,
                        rctl::EN
                            | rctl::UPE
                            | rctl::MPE
                            | rctl::BAM
                            | (rng.next() as u32 & 0x0603_0F20),
                    ),
                    (CTRL, ctrl::FD | ctrl::SLU | (rng.below(2) as u32) << 30),
                    (IMS, 0xFFFF),
                ] {
                    h.dev
                        .mmio_write(u64::from(offset), &value.to_le_bytes(), &small);
                }
            }
            4..=6 => {
                // A random descriptor inside the TX ring, or anywhere.
                let base = u64::from(h.r(TDBAL));
                let ring = u64::from(h.r(TDLEN) / DESC).max(1);
                let at = if rng.below(8) == 0 {
                    rng.below(SMALL - u64::from(DESC)) & !0xF
                } else {
                    base + u64::from(DESC) * rng.below(ring)
                };
                let d = random_descriptor(&mut rng, SMALL);
                let _ = small.write(at, &d);
            }
            7 => {
                // RX descriptors: buffer addresses in or near small memory.
                let base = u64::from(h.r(RDBAL));
                let ring = u64::from(h.r(RDLEN) / DESC).max(1);
                let addr = match rng.below(8) {
                    0 => 0,
                    1 => rng.next(),
                    _ => rng.below(SMALL),
                };
                let _ = small.write(
                    base + u64::from(DESC) * rng.below(ring),
                    &addr.to_le_bytes(),
                );
            }
            8 => {
                let ring = (h.r(TDLEN) / DESC).max(1);
                let tail = if rng.below(16) == 0 {
                    rng.below(0x1_0000) as u32
                } else {
                    rng.below(u64::from(ring)) as u32
                };
                h.dev
                    .mmio_write(u64::from(TDT), &tail.to_le_bytes(), &small);
                tx_frames += u64::from(h.dev.process_tx(&small, &mut h.net).frames);
                h.net.transmitted.clear();
            }
            9 => {
                let len = rng.below(3000) as usize;
                let mut frame: Vec<u8> = (0..len).map(|_| rng.next() as u8).collect();
                if len >= 6 && rng.below(2) == 0 {
                    frame[..6].copy_from_slice(&MAC);
                }
                h.net.push_rx(&frame);
            }
            10 => {
                let ring = (h.r(RDLEN) / DESC).max(1);
                let tail = rng.below(u64::from(ring)) as u32;
                h.dev
                    .mmio_write(u64::from(RDT), &tail.to_le_bytes(), &small);
                rx_frames += u64::from(h.dev.process_rx(&small, &mut h.net).frames);
                if h.net.receive_queue.len() > 64 {
                    h.net.receive_queue.clear();
                }
            }
            11 => {
                let offset = OFFSETS[rng.below(OFFSETS.len() as u64) as usize];
                let mut data = [0u8; 4];
                h.dev.mmio_read(u64::from(offset), &mut data);
            }
            12 => {
                let offset = rng.below(80);
                let mut data = vec![0u8; rng.below(9) as usize];
                h.dev.io_read(offset, &mut data);
                h.dev
                    .io_write(rng.below(8), &(rng.next() as u32).to_le_bytes(), &small);
                h.dev
                    .mmio_read(rng.below(u64::from(MMIO_SIZE) + 16), &mut data);
            }
            16 => {
                // The CSB: map one (usually valid), or scribble on its fields.
                match (h.dev.csb_address(), rng.below(4)) {
                    (None, _) | (_, 0) => {
                        let at = match rng.below(4) {
                            0 => rng.next() as u32,
                            _ => (rng.below(SMALL) as u32) & !63,
                        };
                        h.dev.mmio_write(u64::from(CSBAH), &[0; 4], &small);
                        h.dev
                            .mmio_write(u64::from(CSBAL), &at.to_le_bytes(), &small);
                    }
                    (Some(base), _) => {
                        let field = rng.below(24) * 4;
                        let value = match rng.below(3) {
                            0 => rng.next() as u32,
                            1 => rng.below(2) as u32,
                            _ => rng.below(64) as u32,
                        };
                        let _ = small.write_u32(base + field, value);
                    }
                }
            }
            17 => match rng.below(4) {
                0 => h.dev.csb_enter_polling(&small),
                1 => {
                    h.dev.csb_prepare_sleep(&small, rng.below(2) == 0);
                }
                2 => h.dev.set_bus_master(rng.below(4) != 0, &small),
                _ => {
                    tx_frames += u64::from(h.dev.process_tx(&small, &mut h.net).frames);
                    rx_frames += u64::from(h.dev.process_rx(&small, &mut h.net).frames);
                    h.net.transmitted.clear();
                }
            },
            _ => {
                let now = h.clock.get() + rng.below(100_000);
                h.clock.set(now);
                h.dev.on_timer(now);
            }
        }
    }
    let errors = h.dev.errors().clone();
    if steps >= 100_000 {
        // Enough steps that every kind of abuse happened.
        assert!(
            tx_frames > 100 && rx_frames > 100,
            "{tx_frames} sent, {rx_frames} received"
        );
        assert!(
            errors.tx_buffer_dma_errors > 0 && errors.rx_buffer_dma_errors > 0,
            "{errors:?}"
        );
        assert!(
            errors.tx_tso_invalid > 0 && errors.tx_descriptor_type_invalid > 0,
            "{errors:?}"
        );
        assert!(
            errors.csb_address_invalid > 0 && errors.csb_index_invalid > 0,
            "{errors:?}"
        );
    }
    // The device still works after the abuse.
    h.dev.set_bus_master(true, &h.mem);
    h.w(CTRL, ctrl::RST);
    h.setup_tx(8);
    let frame = eth_frame(PEER, 64, 0);
    h.put_tx_frame(0, TX_BUF, &frame, cmd::EOP);
    h.net.transmitted.clear();
    h.w(TDT, 1);
    assert_eq!(h.sent(), vec![frame]);
    eprintln!("fuzz: {tx_frames} frames sent, {rx_frames} received, {errors:?}");
}
