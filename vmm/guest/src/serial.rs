//! The 16550 UART at COM1 (I/O 0x3F8): human-readable lines and the final
//! JSON result line.
//!
//! The FIFO is enabled, so the driver checks LSR.THRE (FIFO empty) once per
//! 16 bytes instead of once per byte: about one exit per byte.

use crate::port::{inb, outb};
use core::fmt;
use core::sync::atomic::{AtomicU32, Ordering};

const COM1: u16 = 0x3F8;
const THR: u16 = 0;
const IER: u16 = 1;
const FCR: u16 = 2;
const LCR: u16 = 3;
const MCR: u16 = 4;
const LSR: u16 = 5;
const LSR_THRE: u8 = 0x20;
const FIFO_DEPTH: u32 = 16;

/// Bytes that may still be written before LSR must be checked again.
static FIFO_ROOM: AtomicU32 = AtomicU32::new(0);

/// Programs 115200 8N1 with the FIFO on and UART interrupts off.
pub fn init() {
    // SAFETY: COM1 is the console UART of both the VMM and QEMU.
    unsafe {
        outb(COM1 + IER, 0x00);
        outb(COM1 + LCR, 0x80);
        outb(COM1 + THR, 0x01); // divisor latch low: 115200
        outb(COM1 + IER, 0x00); // divisor latch high
        outb(COM1 + LCR, 0x03); // 8N1
        outb(COM1 + FCR, 0x07); // FIFO on, both cleared
        outb(COM1 + MCR, 0x03); // DTR, RTS; OUT2 off: no UART interrupts
    }
    FIFO_ROOM.store(0, Ordering::Relaxed);
}

fn write_byte(byte: u8) {
    if FIFO_ROOM.load(Ordering::Relaxed) == 0 {
        for _ in 0..100_000 {
            // SAFETY: LSR of the console UART; reading it has no side
            // effect that matters here.
            if unsafe { inb(COM1 + LSR) } & LSR_THRE != 0 {
                break;
            }
        }
        FIFO_ROOM.store(FIFO_DEPTH, Ordering::Relaxed);
    }
    FIFO_ROOM.fetch_sub(1, Ordering::Relaxed);
    // SAFETY: THR of the console UART.
    unsafe { outb(COM1 + THR, byte) };
}

/// A `fmt::Write` sink on the serial port.
pub struct Serial;

impl fmt::Write for Serial {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        for byte in s.bytes() {
            write_byte(byte);
        }
        Ok(())
    }
}

/// Prints to the serial port.
#[macro_export]
macro_rules! print {
    ($($arg:tt)*) => {{
        let _ = core::fmt::Write::write_fmt(&mut $crate::serial::Serial, format_args!($($arg)*));
    }};
}

/// Prints a line to the serial port.
#[macro_export]
macro_rules! println {
    () => { $crate::print!("\n") };
    ($($arg:tt)*) => {{
        $crate::print!($($arg)*);
        $crate::print!("\n");
    }};
}
