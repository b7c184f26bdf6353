//! The interrupt cause and mask registers (ICR, ICS, IMS, IMC) and the line.

use e1000_spec::regs::{icr, ICR, ICS, IMC, IMS};

use super::*;

#[test]
fn icr_clears_on_read_and_masks_gate_the_level() {
    let mut h = Harness::new(false);
    h.w(ICS, icr::TXDW | icr::RXT0);
    assert!(!h.dev.interrupt_level(), "masked");
    h.w(IMS, icr::RXT0);
    assert_eq!(h.r(IMS), icr::RXT0);
    assert!(h.dev.interrupt_level());
    assert_eq!(h.rising(), 1);
    h.w(IMC, icr::RXT0);
    assert!(!h.dev.interrupt_level());
    assert_eq!(h.r(IMS), 0);
    h.w(IMS, icr::RXT0 | icr::TXDW);
    assert!(h.dev.interrupt_level());
    assert_eq!(h.rising(), 2);
    assert_eq!(h.r(ICR), icr::TXDW | icr::RXT0);
    assert!(!h.dev.interrupt_level());
    assert_eq!(h.r(ICR), 0, "cleared by the read");
    // Write-only registers read 0; reserved cause bits are ignored.
    h.w(ICS, 0x8000_0020);
    assert_eq!(h.r(ICR), 0);
    assert_eq!(h.r(ICS), 0);
}
