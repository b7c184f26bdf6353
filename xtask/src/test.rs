//! `cargo xtask test`: everything CI checks, in order: set-up, the eBPF and
//! guest builds, formatting, clippy, the API docs, then every test (unit
//! tests in parallel, the seeded e1000 abuse test again with overflow
//! checks, the VMM's sandbox test again in a debug build, the guest crate's
//! own on the host target, end-to-end tests one at a time: they start
//! daemons, namespaces and VMs on a 2-core machine; the VM tests a second
//! time with their data paths offloaded to the switch), then every fuzz
//! target briefly.

use anyhow::Result;

use crate::cargo::{cargo, release_dir, run};
use crate::{ebpf, fuzz, guest, setup};

/// Options of `cargo xtask test`.
#[derive(clap::Args)]
pub struct TestArgs {
    /// Skip `cargo fmt --check` and clippy.
    #[arg(long)]
    pub no_lint: bool,
    /// Seconds each fuzz target runs at the end (0: skip fuzzing).
    #[arg(long, default_value_t = 20)]
    pub fuzz_seconds: u64,
    /// Only run tests whose name contains this (passed to the test harness).
    pub filter: Option<String>,
}

/// The end-to-end tests that run VMs, run a second time with their data
/// paths offloaded to the switch (`TESTBED_E1000_OFFLOAD=on`).
const OFFLOADED_VM_TESTS: &[&str] = &[
    "vm_traffic",
    "vm_modes",
    "vm_options",
    "vm_chaos",
    "vm_host_stack",
    "vm_reconnect",
    "vm_conform",
    "observe_metrics",
    "tunnel_pair",
];

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
        // Broken intra-doc links and unclosed tags fail, as warnings would.
        let mut doc = cargo(&["doc", "--workspace", "--no-deps", "--release"]);
        doc.env("RUSTDOCFLAGS", "-D warnings");
        run(doc, "cargo doc (-D warnings)")?;
        run(
            cargo(&["fmt", "--manifest-path", "vmm/guest/Cargo.toml", "--check"]),
            "cargo fmt --check (guest)",
        )?;
        // The fuzz crate is a workspace of its own: lint it separately.
        let fuzz_manifest = "fuzz/Cargo.toml";
        run(
            cargo(&["fmt", "--manifest-path", fuzz_manifest, "--check"]),
            "cargo fmt --check (fuzz)",
        )?;
        run(
            cargo(&[
                "clippy",
                "--manifest-path",
                fuzz_manifest,
                "--all-targets",
                "--",
                "-D",
                "warnings",
            ]),
            "cargo clippy (fuzz)",
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
    if args.filter.is_none() {
        run(
            cargo(&["test", "-p", "e1000-model", "--lib", "tests::fuzz"]),
            "the seeded e1000 abuse test with overflow checks (test profile)",
        )?;
        // Debug builds of std make system calls release builds do not (a
        // descriptor check before close), which the VMM's seccomp filters
        // must allow too.
        run(
            cargo(&["test", "-p", "vmm", "--test", "sandbox"]),
            "the VMM's seccomp sandbox in a debug build (test profile)",
        )?;
    }
    guest::test(args.filter.as_deref())?;
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
    if args.filter.is_none() {
        // Every VM test again with the data path offloaded to the switch
        // (testbed adds `--e1000 offload=on` to every VM of ours on a switch
        // port whose CSB is not turned off).
        let mut offloaded = cargo(&["test", "--release", "-p", "e2e-tests"]);
        for test in OFFLOADED_VM_TESTS {
            offloaded.args(["--test", test]);
        }
        offloaded
            .args(["--", "--test-threads=1"])
            .env("E2E_BIN_DIR", release_dir())
            .env("TESTBED_E1000_OFFLOAD", "on");
        run(offloaded, "the VM tests with offload=on")?;
    }
    if args.fuzz_seconds > 0 && args.filter.is_none() {
        fuzz::fuzz(fuzz::TARGETS, args.fuzz_seconds)?;
    }
    println!("xtask: all tests passed");
    Ok(())
}
