//! Software reset, accesses to unknown offsets and of odd sizes (BAR0 and
//! the I/O BAR's IOADDR/IODATA window), and the statistics registers.

use e1000_spec::desc::tx::cmd;
use e1000_spec::regs::{
    ctrl, icr, ra_high, ra_low, rah, reset, tipg, CTRL, ICS, IMS, IOADDR, IODATA, ITR, MMIO_SIZE,
    TIPG, VET,
};
use e1000_spec::stats as st;

use super::*;

#[test]
fn software_reset_restores_defaults() {
    let mut h = Harness::new(false);
    h.setup_tx(8);
    h.setup_rx(8, 0);
    h.w(IMS, 0xFF);
    h.w(ICS, icr::TXDW);
    h.w(ra_low(0), 0x11223344);
    h.w(ITR, 500);
    h.put_tx(0, legacy(TX_BUF, 60, cmd::EOP));
    h.w(TDT, 1);
    assert_eq!(h.dev.statistics().peek(st::GPTC), 1);
    assert!(h.dev.interrupt_level());
    h.w(CTRL, ctrl::RST);
    assert!(!h.dev.interrupt_level());
    assert_eq!(h.r(CTRL) & ctrl::RST, 0, "self clearing");
    for offset in [RCTL, TCTL, TDLEN, RDLEN, TDH, TDT, IMS, ITR, st::GPTC] {
        assert_eq!(h.r(offset), 0, "register {offset:#x}");
    }
    assert_eq!(
        h.r(ra_low(0)),
        u32::from_le_bytes([MAC[0], MAC[1], MAC[2], MAC[3]])
    );
    assert_eq!(
        h.r(ra_high(0)),
        u32::from(u16::from_le_bytes([MAC[4], MAC[5]])) | rah::AV
    );
    assert_eq!(h.r(VET), reset::VET);
}

#[test]
fn reserved_bits_read_as_zero() {
    // Found by the conformance comparison with QEMU (docs/e1000-differences.md).
    let mut h = Harness::new(false);
    h.w(TIPG, u32::MAX);
    assert_eq!(h.r(TIPG), tipg::WRITABLE);
    h.w(ra_high(1), u32::MAX);
    assert_eq!(h.r(ra_high(1)), rah::WRITABLE);
}

#[test]
fn unknown_offsets_and_odd_accesses_are_counted() {
    let mut h = Harness::new(false);
    assert_eq!(h.r(0x1234 & !3), 0);
    h.w(0x1234 & !3, 5);
    assert_eq!(h.r(st::RESERVED[0]), 0, "hole in the statistics block");
    assert_eq!(h.dev.errors().unknown_register_reads, 2);
    assert_eq!(h.dev.errors().unknown_register_writes, 1);
    // A byte write is ignored; a byte read returns the register's byte.
    h.dev.mmio_write(u64::from(IMS), &[0xFF], &h.mem);
    assert_eq!(h.r(IMS), 0);
    let mut byte = [0u8; 1];
    h.dev.mmio_read(u64::from(VET) + 1, &mut byte);
    assert_eq!(byte[0], 0x81);
    // Past BAR0.
    h.dev.mmio_write(u64::from(MMIO_SIZE), &[0; 4], &h.mem);
    h.dev.mmio_read(u64::MAX - 1, &mut [0; 4]);
    assert_eq!(h.dev.errors().bad_access_size, 3);
    // BAR1: IOADDR selects, IODATA accesses.
    let (ioaddr, iodata) = (u64::from(IOADDR), u64::from(IODATA));
    h.dev.io_write(ioaddr, &VET.to_le_bytes(), &h.mem);
    let mut data = [0u8; 4];
    h.dev.io_read(iodata, &mut data);
    assert_eq!(u32::from_le_bytes(data), 0x8100);
    h.dev.io_write(ioaddr, &IMS.to_le_bytes(), &h.mem);
    h.dev.io_write(iodata, &icr::RXT0.to_le_bytes(), &h.mem);
    assert_eq!(h.r(IMS), icr::RXT0);
    h.dev.io_read(ioaddr, &mut data);
    assert_eq!(u32::from_le_bytes(data), IMS);
}

#[test]
fn statistics_clear_on_read_and_wide_counters_on_high_read() {
    let mut h = Harness::new(false);
    h.setup_tx(8);
    for i in 0..3 {
        h.put_tx(i, legacy(TX_BUF, 100, cmd::EOP));
    }
    h.w(TDT, 3);
    assert_eq!(h.r(st::GPTC), 3);
    assert_eq!(h.r(st::GPTC), 0);
    assert_eq!(h.r(st::TPT), 3);
    assert_eq!(h.r(st::PTC127), 3, "104 bytes with CRC");
    assert_eq!(h.r(st::GOTCL), 3 * 104);
    assert_eq!(h.r(st::GOTCL), 3 * 104, "low half does not clear");
    assert_eq!(h.r(st::GOTCH), 0);
    assert_eq!(h.r(st::GOTCL), 0, "high read cleared both");
}
