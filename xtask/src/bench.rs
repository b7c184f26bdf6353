//! `cargo xtask bench SUITE`: builds in release and runs a benchmark suite
//! of the `bench` crate, which prints a table and writes target/bench/SUITE.json.

use anyhow::Result;

use crate::cargo::{cargo, release_dir, root, run};
use crate::{ebpf, guest, setup};

/// Options of `cargo xtask bench`.
#[derive(clap::Args)]
pub struct BenchArgs {
    /// Which suite: switch, nic or vm.
    pub suite: String,
    /// Extra arguments for the suite (after `--`), e.g. `-- --seconds 5`.
    #[arg(last = true)]
    pub rest: Vec<String>,
}

/// Builds what the suite needs and runs it.
pub fn run_suite(args: &BenchArgs) -> Result<()> {
    setup::run()?;
    // Every suite has NIC ports (the switch suite's equal-path case too).
    ebpf::build()?;
    if args.suite != "switch" {
        guest::build()?;
    }
    run(
        cargo(&["build", "--workspace", "--release", "--bins"]),
        "build the binaries",
    )?;
    let mut cmd = std::process::Command::new(release_dir().join("bench"));
    let out = root()
        .join("target/bench")
        .join(format!("{}.json", args.suite));
    cmd.arg(&args.suite)
        .arg("--bin-dir")
        .arg(release_dir())
        .arg("--out")
        .arg(out)
        .args(&args.rest)
        .current_dir(root());
    run(cmd, &format!("benchmark suite {}", args.suite))
}
