//! `cargo xtask setup`: installs on a fresh Debian machine what building and
//! testing need beyond rustup (the recipe of docs/ebpf-build.md):
//! Debian's rustc with `core` for `bpfel-unknown-none`, the LLVM that rustc
//! uses, `bpf-linker` built against it, the C tools of xsk-rs, the network
//! tools the tests drive and QEMU. Idempotent: when everything is in place it
//! only asks dpkg and returns within a second.
use anyhow::{bail, Context, Result};
use std::path::{Path, PathBuf};
use std::process::Command;

/// Debian's rustc: the one with a precompiled `core` for the BPF targets.
pub const DEBIAN_RUSTC: &str = "/usr/bin/rustc";
/// Where `libstd-rust-web-dev-bpf` puts `core` for the eBPF target.
const BPF_CORE_DIR: &str = "/usr/lib/rustlib/bpfel-unknown-none/lib";
/// The bpf-linker release that builds against Debian's LLVM.
const BPF_LINKER_VERSION: &str = "0.13.0";

/// Debian packages installed by `setup`, besides `llvm-N-dev` (N = the LLVM
/// major of Debian's rustc, known only once `rustc-web` is installed).
const DEBIAN_PACKAGES: &[&str] = &[
    // The eBPF compiler: rustc with core for bpfel-unknown-none.
    "rustc-web",
    "libstd-rust-web-dev-bpf",
    // The C inside xsk-rs (libxdp, libbpf) with `use_cc_build`.
    "clang",
    "libelf-dev",
    "zlib1g-dev",
    "m4",
    "make",
    "pkg-config",
    // What the tests and the demo drive: namespaces, veths, ping, channels.
    "iproute2",
    "iputils-ping",
    "ethtool",
    // `systemd-analyze verify` checks contrib/systemd/vswitch.service.
    "systemd",
    // Side-by-side runs of the guest image.
    "qemu-system-x86",
    // Readers and checkers of what the switch exports: captures (pcap),
    // Prometheus metrics, and the spec-only port client (Python 3).
    "tcpdump",
    "tshark",
    "prometheus",
    "python3",
];

/// Installs whatever is missing; prints what it did.
pub fn run() -> Result<()> {
    let mut missing = missing_packages(DEBIAN_PACKAGES)?;
    if !missing.is_empty() {
        apt_install(&missing, true)?;
    }
    let llvm = debian_rustc_llvm_major()?;
    let llvm_dev = format!("llvm-{llvm}-dev");
    missing = missing_packages(&[llvm_dev.as_str()])?;
    if !missing.is_empty() {
        apt_install(&missing, false)?;
    }
    if let Some(problem) = bpf_linker_problem(llvm) {
        println!("setup: bpf-linker: {problem}; building {BPF_LINKER_VERSION} against LLVM {llvm} (about 2 minutes)");
        install_bpf_linker(llvm)?;
    }
    let gaps = ebpf_toolchain_gaps();
    if !gaps.is_empty() {
        bail!(
            "setup finished but pieces are still missing:\n  - {}",
            gaps.join("\n  - ")
        );
    }
    println!("setup: everything is in place (Debian rustc, LLVM {llvm}, bpf-linker {BPF_LINKER_VERSION}, C and network tools, QEMU)");
    Ok(())
}

/// Fails with the exact list of what the eBPF build lacks, and how to get it.
pub fn ensure_ebpf_toolchain() -> Result<()> {
    let gaps = ebpf_toolchain_gaps();
    if gaps.is_empty() {
        return Ok(());
    }
    bail!(
        "the eBPF toolchain is incomplete:\n  - {}\nrun `cargo xtask setup` (as root) to install it",
        gaps.join("\n  - ")
    )
}

/// What the eBPF build lacks, one human-readable line per missing piece.
pub fn ebpf_toolchain_gaps() -> Vec<String> {
    let mut gaps = Vec::new();
    if !Path::new(DEBIAN_RUSTC).exists() {
        gaps.push(format!("{DEBIAN_RUSTC} (Debian package rustc-web)"));
    }
    if !Path::new(BPF_CORE_DIR).is_dir() {
        gaps.push(format!(
            "core for bpfel-unknown-none in {BPF_CORE_DIR} (Debian package libstd-rust-web-dev-bpf)"
        ));
    }
    match debian_rustc_llvm_major() {
        Ok(llvm) => {
            if let Some(problem) = bpf_linker_problem(llvm) {
                gaps.push(format!(
                    "bpf-linker {BPF_LINKER_VERSION} built against LLVM {llvm}: {problem}"
                ));
            }
        }
        Err(e) => gaps.push(format!("the LLVM version of {DEBIAN_RUSTC}: {e:#}")),
    }
    gaps
}

/// The LLVM major version Debian's rustc was built with.
fn debian_rustc_llvm_major() -> Result<u32> {
    let out = Command::new(DEBIAN_RUSTC)
        .arg("-vV")
        .output()
        .with_context(|| format!("running {DEBIAN_RUSTC} -vV"))?;
    let text = String::from_utf8_lossy(&out.stdout);
    let version = text
        .lines()
        .find_map(|l| l.strip_prefix("LLVM version: "))
        .context("no `LLVM version:` line in rustc -vV")?;
    let major = version.split('.').next().unwrap_or_default();
    major
        .parse()
        .with_context(|| format!("unexpected LLVM version {version:?}"))
}

/// Why the bpf-linker on PATH (or in ~/.cargo/bin) does not fit, if it does not.
fn bpf_linker_problem(llvm: u32) -> Option<String> {
    let Some(path) = find_program("bpf-linker") else {
        return Some("not installed".into());
    };
    let version = Command::new(&path).arg("--version").output();
    match version {
        Ok(out) if String::from_utf8_lossy(&out.stdout).contains(BPF_LINKER_VERSION) => {}
        Ok(out) => {
            return Some(format!(
                "{} is {:?}, want {BPF_LINKER_VERSION}",
                path.display(),
                String::from_utf8_lossy(&out.stdout).trim()
            ))
        }
        Err(e) => return Some(format!("{} does not run: {e}", path.display())),
    }
    let ldd = Command::new("ldd").arg(&path).output();
    match ldd {
        Ok(out) if String::from_utf8_lossy(&out.stdout).contains(&format!("llvm-{llvm}/")) => None,
        Ok(_) => Some(format!(
            "{} is not linked against LLVM {llvm}",
            path.display()
        )),
        Err(e) => Some(format!("cannot run ldd: {e}")),
    }
}

/// `name` as found on PATH, else in ~/.cargo/bin.
pub fn find_program(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    let cargo_bin = std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cargo/bin"));
    std::env::split_paths(&path)
        .chain(cargo_bin)
        .map(|dir| dir.join(name))
        .find(|candidate| candidate.is_file())
}

/// The packages of `names` that dpkg does not report as installed.
fn missing_packages(names: &[&str]) -> Result<Vec<String>> {
    let out = Command::new("dpkg-query")
        .args(["-W", "-f=${Package} ${db:Status-Abbrev}\n"])
        .args(names)
        .output()
        .context("running dpkg-query (is this Debian?)")?;
    // Unknown packages make dpkg-query exit non-zero; they are simply missing.
    let listing = String::from_utf8_lossy(&out.stdout);
    let installed: Vec<&str> = listing
        .lines()
        .filter_map(|l| {
            let (name, status) = l.split_once(' ')?;
            status.starts_with("ii").then_some(name)
        })
        .collect();
    Ok(names
        .iter()
        .filter(|n| !installed.contains(n))
        .map(|n| n.to_string())
        .collect())
}

/// `apt-get install` (after `apt-get update` when asked) without prompts.
fn apt_install(packages: &[String], update: bool) -> Result<()> {
    println!("setup: installing {}", packages.join(" "));
    if update {
        run_checked(Command::new("apt-get").args(["update", "-qq"]))?;
    }
    run_checked(
        Command::new("apt-get")
            .env("DEBIAN_FRONTEND", "noninteractive")
            .args(["install", "-y", "-qq", "--no-install-recommends"])
            .args(packages),
    )
}

/// Builds bpf-linker against Debian's LLVM `llvm` (its default feature asks
/// for an LLVM Debian does not have, and the llvm-config on PATH is older).
fn install_bpf_linker(llvm: u32) -> Result<()> {
    run_checked(
        Command::new("cargo")
            .env("LLVM_PREFIX", format!("/usr/lib/llvm-{llvm}"))
            .env_remove("CARGO_TARGET_DIR")
            .env_remove("RUSTC")
            .env_remove("RUSTFLAGS")
            .args([
                "+stable",
                "install",
                "bpf-linker",
                "--version",
                BPF_LINKER_VERSION,
            ])
            .args(["--locked", "--force", "--no-default-features", "--features"])
            .arg(format!("llvm-{llvm}")),
    )
}

/// Runs `cmd`, failing with its command line when it does not succeed.
fn run_checked(cmd: &mut Command) -> Result<()> {
    let status = cmd.status().with_context(|| format!("starting {cmd:?}"))?;
    if !status.success() {
        bail!("{cmd:?} failed with {status} (setup installs as root)");
    }
    Ok(())
}
