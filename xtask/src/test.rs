//! `cargo xtask test`: everything CI checks, in order: set-up, the eBPF and
//! guest builds, formatting, clippy, then every test (unit tests in parallel,
//! end-to-end tests one at a time: they start daemons, namespaces and VMs on
//! a 2-core machine).

use anyhow::Result;

use crate::cargo::{cargo, release_dir, run};
use crate::{ebpf, guest, setup};

/// Options of `cargo xtask test`.
#[derive(clap::Args)]
pub struct TestArgs {
    /// Skip `cargo fmt --check` and clippy.
    #[arg(long)]
    pub no_lint: bool,
    /// Only run tests whose name contains this (passed to the test harness).
    pub filter: Option<String>,
}

/// Runs the whole test suite.
pub fn run_all(args: &TestArgs) -> Result<()> {
    setup::run()?;
    ebpf::build()?;
    guest::build()?;
    if !args.no_lint {
        run(cargo(&["fmt", "--all", "--check"]), "cargo fmt --check")?;
        run(
            cargo(&[
                "clippy",
                "--workspace",
                "--all-targets",
                "--release",
                "--",
                "-D",
                "warnings",
            ]),
            "cargo clippy --all-targets -- -D warnings",
        )?;
    }
    run(
        cargo(&["build", "--workspace", "--release", "--bins"]),
        "build the binaries",
    )?;
    let filter: Vec<&str> = args.filter.as_deref().into_iter().collect();
    let mut unit = cargo(&[
        "test",
        "--workspace",
        "--release",
        "--exclude",
        "e2e-tests",
        "--",
    ]);
    unit.args(&filter);
    run(unit, "unit and crate tests")?;
    let mut e2e = cargo(&[
        "test",
        "--release",
        "-p",
        "e2e-tests",
        "--",
        "--test-threads=1",
    ]);
    e2e.args(&filter).env("E2E_BIN_DIR", release_dir());
    run(e2e, "end-to-end tests (daemons, namespaces, VMs)")?;
    println!("xtask: all tests passed");
    Ok(())
}
