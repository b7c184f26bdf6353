//! COM1: a 16550 UART at I/O 0x3F8 (vm-superio), its output going to a file
//! or stdout, line-buffered, its interrupt to GSI 4 through an irqfd
//! (counted in the stats as `interrupts.serial`).

use std::io::Write;
use std::sync::Arc;

use kvm_ioctls::VmFd;
use vm_superio::serial::NoEvents;
use vm_superio::{Serial, Trigger};
use vmm_sys_util::eventfd::{EventFd, EFD_NONBLOCK};

use crate::stats::Stats;

/// I/O base of COM1.
pub const SERIAL_PORT_BASE: u16 = 0x3F8;
/// Number of ports the UART decodes.
pub const SERIAL_PORT_LEN: u16 = 8;
/// ISA IRQ of COM1.
pub const SERIAL_GSI: u32 = 4;

/// The UART's interrupt: an irqfd on GSI 4 (edge, as ISA interrupts are),
/// each one counted.
pub struct SerialIrq {
    irqfd: EventFd,
    stats: Arc<Stats>,
}

impl Trigger for SerialIrq {
    type E = std::io::Error;

    fn trigger(&self) -> Result<(), Self::E> {
        self.irqfd.write(1)?;
        self.stats.irq.serial.inc();
        Ok(())
    }
}

/// Serial output, written through to the sink at each newline.
///
/// vm-superio flushes after every byte; this writer's `flush` is a no-op so
/// that a line costs one write system call, and [`SerialOut::flush_now`]
/// writes out a partial line at exit.
pub struct SerialOut {
    sink: Box<dyn Write + Send>,
    line: Vec<u8>,
}

impl SerialOut {
    /// Longest partial line kept before writing it out anyway.
    const MAX_LINE: usize = 4096;

    /// Buffers output for `sink`.
    pub fn new(sink: Box<dyn Write + Send>) -> SerialOut {
        SerialOut {
            sink,
            line: Vec::with_capacity(256),
        }
    }

    /// Writes out whatever is buffered.
    pub fn flush_now(&mut self) -> std::io::Result<()> {
        if !self.line.is_empty() {
            let result = self.sink.write_all(&self.line);
            self.line.clear();
            result?;
        }
        self.sink.flush()
    }
}

impl Write for SerialOut {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.line.extend_from_slice(buf);
        if buf.contains(&b'\n') || self.line.len() >= Self::MAX_LINE {
            self.flush_now()?;
        }
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// The COM1 device.
pub struct SerialPort {
    uart: Serial<SerialIrq, NoEvents, SerialOut>,
    write_errors: u64,
}

impl SerialPort {
    /// A UART writing to `out`, interrupting on GSI 4 of `vm`, counting its
    /// interrupts in `stats`.
    pub fn new(
        vm: &VmFd,
        out: Box<dyn Write + Send>,
        stats: Arc<Stats>,
    ) -> std::io::Result<SerialPort> {
        let irqfd = EventFd::new(EFD_NONBLOCK)?;
        vm.register_irqfd(&irqfd, SERIAL_GSI)
            .map_err(|e| std::io::Error::from_raw_os_error(e.errno()))?;
        Ok(SerialPort {
            uart: Serial::new(SerialIrq { irqfd, stats }, SerialOut::new(out)),
            write_errors: 0,
        })
    }

    /// A guest read of `data.len()` registers starting at `offset`.
    pub fn read(&mut self, offset: u64, data: &mut [u8]) {
        for (i, byte) in data.iter_mut().enumerate() {
            *byte = self.uart.read((offset as u8).wrapping_add(i as u8) & 7);
        }
    }

    /// A guest write of `data` to the registers starting at `offset`.
    pub fn write(&mut self, offset: u64, data: &[u8]) {
        for (i, byte) in data.iter().enumerate() {
            if self
                .uart
                .write((offset as u8).wrapping_add(i as u8) & 7, *byte)
                .is_err()
            {
                // Output unavailable (closed pipe, full disk): the guest keeps running.
                self.write_errors += 1;
            }
        }
    }

    /// Flushes buffered output (at exit).
    pub fn flush(&mut self) {
        let _ = self.uart.writer_mut().flush_now();
    }

    /// Output writes that failed.
    pub fn write_errors(&self) -> u64 {
        self.write_errors
    }
}
