//! The exit port (I/O 0x501): the guest writes its exit code (one byte) and
//! the VMM ends with that code. Same port as QEMU's isa-debug-exit.

/// I/O port of the exit device.
pub const EXIT_PORT: u16 = 0x501;

/// The exit port device: a write asks the VMM to stop with that code.
#[derive(Debug, Default)]
pub struct ExitPort;

impl ExitPort {
    /// Reads return all ones (nothing to read).
    pub fn read(&self, data: &mut [u8]) {
        data.fill(0xff);
    }

    /// A write: the exit code is the first byte written.
    pub fn write(&self, data: &[u8]) -> Option<u8> {
        data.first().copied()
    }
}
