//! `cargo xtask fuzz [TARGET] [--seconds N]`: builds the fuzz targets of
//! `fuzz/` with cargo fuzz (libFuzzer, AddressSanitizer, debug assertions)
//! and runs each, from its checked-in seeds plus a working corpus under
//! `fuzz/corpus/`, for N seconds; prints executions and coverage per target
//! and fails on the first finding (cargo fuzz leaves the input under
//! `fuzz/artifacts/TARGET/`).
//!
//! cargo-fuzz is installed from crates.io when missing. It needs nightly
//! compiler flags: with a nightly toolchain installed it runs under it,
//! otherwise under the stable one with `RUSTC_BOOTSTRAP=1`.

use std::process::{Command, Stdio};

use anyhow::{bail, Context, Result};

use crate::cargo::{cargo, root, run};

/// Every fuzz target, in the order they run.
pub const TARGETS: &[&str] = &[
    "e1000",
    "csb",
    "offload",
    "port_rings",
    "control",
    "pvh_elf",
    "vxlan",
    "frames",
    "nic_checksum",
    "vxlan_outer",
];

/// Options of `cargo xtask fuzz`.
#[derive(clap::Args)]
pub struct FuzzArgs {
    /// Only this target (default: every one).
    pub target: Option<String>,
    /// Seconds each target runs.
    #[arg(long, default_value_t = 60)]
    pub seconds: u64,
}

/// What one target's run found.
struct Summary {
    target: &'static str,
    executions: u64,
    coverage: u64,
    features: u64,
    corpus: u64,
}

/// Runs `cargo xtask fuzz`.
pub fn run_fuzz(args: &FuzzArgs) -> Result<()> {
    let targets: Vec<&'static str> = match &args.target {
        Some(t) => match TARGETS.iter().find(|n| **n == t.as_str()) {
            Some(n) => vec![*n],
            None => bail!("no fuzz target {t:?}; targets: {}", TARGETS.join(", ")),
        },
        None => TARGETS.to_vec(),
    };
    fuzz(&targets, args.seconds)
}

/// Builds and runs `targets` for `seconds` each; prints a summary.
pub fn fuzz(targets: &[&'static str], seconds: u64) -> Result<()> {
    install_cargo_fuzz()?;
    run(
        cargo_fuzz(&["build", "--sanitizer", "address"]),
        "build the fuzz targets (AddressSanitizer)",
    )?;
    let mut summaries = Vec::new();
    for &target in targets {
        let s = fuzz_one(target, seconds)?;
        println!(
            "xtask: fuzz {target}: {} executions, cov {}, ft {}, corpus {}",
            s.executions, s.coverage, s.features, s.corpus
        );
        summaries.push(s);
    }
    println!("xtask: fuzzing summary ({seconds} s per target, no findings)");
    println!(
        "  {:<12} {:>12} {:>8} {:>8} {:>8}",
        "target", "executions", "cov", "ft", "corpus"
    );
    for s in &summaries {
        println!(
            "  {:<12} {:>12} {:>8} {:>8} {:>8}",
            s.target, s.executions, s.coverage, s.features, s.corpus
        );
    }
    Ok(())
}

/// Installs cargo-fuzz when `cargo fuzz` is not there.
fn install_cargo_fuzz() -> Result<()> {
    let present = cargo(&["fuzz", "--version"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if !present {
        run(
            cargo(&["install", "cargo-fuzz", "--locked"]),
            "install cargo-fuzz",
        )?;
    }
    Ok(())
}

/// Whether rustup has a nightly toolchain.
fn have_nightly() -> bool {
    Command::new("rustup")
        .args(["toolchain", "list"])
        .output()
        .is_ok_and(|o| {
            o.status.success()
                && String::from_utf8_lossy(&o.stdout)
                    .lines()
                    .any(|l| l.starts_with("nightly"))
        })
}

/// `cargo fuzz ARGS` from the repository root: under nightly when there is
/// one, else stable with RUSTC_BOOTSTRAP=1.
fn cargo_fuzz(args: &[&str]) -> Command {
    let mut cmd = if have_nightly() {
        let mut c = Command::new("rustup");
        c.args(["run", "nightly", "cargo", "fuzz"]);
        c
    } else {
        let mut c = cargo(&["fuzz"]);
        c.env("RUSTC_BOOTSTRAP", "1");
        c
    };
    cmd.args(args).current_dir(root());
    cmd
}

/// Runs one target for `seconds` and reads libFuzzer's final statistics.
fn fuzz_one(target: &'static str, seconds: u64) -> Result<Summary> {
    let corpus = root().join("fuzz/corpus").join(target);
    let seeds = root().join("fuzz/seeds").join(target);
    std::fs::create_dir_all(&corpus).with_context(|| format!("create {}", corpus.display()))?;
    let max_time = format!("-max_total_time={seconds}");
    let mut cmd = cargo_fuzz(&["run", "--sanitizer", "address", target]);
    cmd.arg(&corpus).arg(&seeds).args([
        "--",
        max_time.as_str(),
        "-print_final_stats=1",
        "-timeout=10",
        "-rss_limit_mb=4096",
        // The targets keep a daemon and a VM for the whole run and spawn
        // threads, whose glibc thread-exit bookkeeping LeakSanitizer reports
        // as leaks: leak checking would only find those.
        "-detect_leaks=0",
    ]);
    // `-detect_leaks=0` stops libFuzzer's check after each input, not
    // AddressSanitizer's own at exit, which reported the same bookkeeping
    // of a thread still finishing when the run's time was up (a CI run of
    // `port_rings` failed so on an empty input).
    let asan = match std::env::var("ASAN_OPTIONS") {
        Ok(given) if !given.is_empty() => format!("{given}:detect_leaks=0"),
        _ => "detect_leaks=0".to_owned(),
    };
    cmd.env("ASAN_OPTIONS", asan);
    println!("xtask: fuzz {target} for {seconds} s");
    let output = cmd
        .stdout(Stdio::inherit())
        .stderr(Stdio::piped())
        .output()
        .with_context(|| format!("cannot start cargo fuzz run {target}"))?;
    let log = String::from_utf8_lossy(&output.stderr);
    if !output.status.success() {
        eprintln!("{log}");
        bail!(
            "fuzz target {target} failed ({}): the input is under fuzz/artifacts/{target}/",
            output.status
        );
    }
    Ok(summarize(target, &log))
}

/// Executions from `stat::number_of_executed_units`, coverage, features and
/// corpus size from the last status line (`#N DONE cov: C ft: F corp: K/...`).
fn summarize(target: &'static str, log: &str) -> Summary {
    let mut s = Summary {
        target,
        executions: 0,
        coverage: 0,
        features: 0,
        corpus: 0,
    };
    let after = |line: &str, key: &str| -> Option<u64> {
        let rest = &line[line.find(key)? + key.len()..];
        let digits: String = rest
            .trim_start()
            .chars()
            .take_while(char::is_ascii_digit)
            .collect();
        digits.parse().ok()
    };
    for line in log.lines() {
        if let Some(n) = after(line, "stat::number_of_executed_units:") {
            s.executions = n;
        }
        if line.starts_with('#') && line.contains("cov:") {
            s.coverage = after(line, "cov:").unwrap_or(s.coverage);
            s.features = after(line, "ft:").unwrap_or(s.features);
            s.corpus = after(line, "corp:").unwrap_or(s.corpus);
        }
    }
    s
}
