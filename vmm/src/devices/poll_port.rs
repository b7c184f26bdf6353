//! The poll port (I/O 0x503): a guest that waits for its NIC writes any
//! byte here instead of spinning; the vCPU thread then runs one round of the
//! device's work itself (in CSB mode: TX up to guest_tdt, RX up to
//! guest_rdt, exactly what the net worker does) and goes back into the
//! guest, which re-checks its rings. No interrupt is involved and the
//! guest's need-kick flags stay clear, so the wait costs one exit and no
//! hand-off to another thread (on this machine an exit and a preemption of
//! a vCPU cost about the same, ~80-100 us, and an interrupt twice that).

/// I/O port of the poll device.
pub const POLL_PORT: u16 = 0x503;

/// The poll port device.
#[derive(Debug, Default)]
pub struct PollPort;

impl PollPort {
    /// Reads return 0.
    pub fn read(&self, data: &mut [u8]) {
        data.fill(0);
    }
}
