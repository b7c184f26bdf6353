//! The guest image's driver and workloads, run at CPL3 after the boot code
//! (`main.rs`) has set up paging, GDT, IDT, TSS and the local APIC.
//!
//! [`run`] reads the PVH start info and the command line, brings up the
//! e1000 and runs one workload (`tx`, `rx`, `ping`, `pong`, `chaos`, `conform`),
//! printing progress lines and one final JSON line on the serial port; the
//! caller exits with its return value through port 0x501.
#![cfg_attr(not(test), no_std)]
#![deny(missing_docs)]
#![deny(clippy::undocumented_unsafe_blocks)]

pub mod apic;
pub mod args;
pub mod boot_info;
pub mod cell;
pub mod counters;
pub mod driver;
pub mod e1000;
pub mod inet_checksum;
pub mod ipv4_echo;
pub mod irq;
pub mod irq_nesting;
pub mod json;
pub mod pci;
pub mod port;
pub mod serial;
pub mod stats;
pub mod tsc;
pub mod wake_timer;
pub mod workload;

/// Exit code: the workload succeeded.
pub const EXIT_OK: u8 = 0;
/// Exit code: the workload ran and failed (see the result line).
pub const EXIT_WORKLOAD: u8 = 1;
/// Exit code: the guest could not set up (bad arguments, no device...).
pub const EXIT_SETUP: u8 = 2;
/// Exit code: a CPU exception or a panic.
pub const EXIT_CRASH: u8 = 3;
/// The exit port (QEMU's isa-debug-exit, our VMM's exit).
pub const EXIT_PORT: u16 = 0x501;
/// The idle port.
pub const IDLE_PORT: u16 = 0x502;

/// Leaves the VM with `code`. If nothing stops the VM, idles forever.
pub fn exit(code: u8) -> ! {
    // SAFETY: the exit port, meant for exactly this.
    unsafe { port::outb(EXIT_PORT, code) };
    loop {
        // SAFETY: the idle port: a write only makes the VMM wait for an
        // interrupt.
        unsafe { port::outb(IDLE_PORT, 0) };
    }
}

/// The CPL3 main: returns the exit code.
pub fn run(start_info: u64) -> u8 {
    serial::init();
    println!("guest: up at CPL3");
    // SAFETY: `start_info` is the EBX the loader passed to the PVH entry.
    let info = match unsafe { boot_info::read(start_info) } {
        Ok(info) => info,
        Err(err) => {
            workload::report_setup_error("unknown", format_args!("bad start info: {err:?}"));
            return EXIT_SETUP;
        }
    };
    println!(
        "guest: cmdline '{}', RAM {} MiB (top {:#x})",
        info.cmdline,
        info.ram_bytes >> 20,
        info.ram_top
    );
    let config = match args::parse(info.cmdline) {
        Ok(config) => config,
        Err(err) => {
            let word = info.cmdline.split_ascii_whitespace().next().unwrap_or("");
            workload::report_setup_error(word, format_args!("{err}"));
            return EXIT_SETUP;
        }
    };
    workload::run(&config, &info)
}
