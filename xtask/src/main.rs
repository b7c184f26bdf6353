//! `cargo xtask`: everything beyond `cargo build` (set-up of a fresh machine,
//! the eBPF and guest image builds, the demo, the tests, the fuzz targets and
//! the benchmarks).

mod bench;
mod cargo;
mod demo;
mod ebpf;
mod fuzz;
mod guest;
mod setup;
mod test;

use anyhow::Result;
use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(about = "Build, set up, demo, test and benchmark the project")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Install what a fresh machine lacks (Debian packages, bpf-linker); idempotent.
    Setup,
    /// Build the XDP program (switch-ebpf) for bpfel-unknown-none.
    BuildEbpf,
    /// Build the guest image into target/guest/guest.elf.
    BuildGuest,
    /// Set up, build, and show traffic across a switch.
    Demo(demo::DemoArgs),
    /// Set up, build, lint and run every test (what CI runs).
    Test(test::TestArgs),
    /// Run a benchmark suite: switch, nic or vm.
    Bench(bench::BenchArgs),
    /// Build the fuzz targets with AddressSanitizer and run them.
    Fuzz(fuzz::FuzzArgs),
}

fn main() -> Result<()> {
    match Cli::parse().command {
        Command::Setup => setup::run(),
        Command::BuildEbpf => ebpf::build(),
        Command::BuildGuest => guest::build(),
        Command::Demo(args) => demo::run_demo(&args),
        Command::Test(args) => test::run_all(&args),
        Command::Bench(args) => bench::run_suite(&args),
        Command::Fuzz(args) => fuzz::run_fuzz(&args),
    }
}
