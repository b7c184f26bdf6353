//! The idle port (I/O 0x502): the guest writes any byte when it has nothing
//! to do; the vCPU loop then halts the vCPU (KVM_MP_STATE_HALTED) so that the
//! next interrupt wakes it, instead of the guest spinning.

/// I/O port of the idle device.
pub const IDLE_PORT: u16 = 0x502;

/// The idle port device.
#[derive(Debug, Default)]
pub struct IdlePort;

impl IdlePort {
    /// Reads return 0.
    pub fn read(&self, data: &mut [u8]) {
        data.fill(0);
    }

    /// A write of any value: the vCPU should halt until an interrupt.
    pub fn write(&self, _data: &[u8]) -> bool {
        true
    }
}
