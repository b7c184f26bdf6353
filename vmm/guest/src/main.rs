//! The guest image's entry: PVH boot (`boot`), the CPL0 set-up (`cpl0`),
//! the trap stubs (`trap`) and the runtime pieces (`rt`); everything else,
//! the driver and the workloads, is the `guest` library, run at CPL3.
#![no_std]
#![no_main]
#![deny(missing_docs)]
#![deny(clippy::undocumented_unsafe_blocks)]

mod boot;
mod cpl0;
mod rt;
mod trap;

/// The first CPL3 code: runs the workload and exits with its code.
extern "C" fn user_main(start_info: u64) -> ! {
    let code = guest::run(start_info);
    guest::exit(code)
}
