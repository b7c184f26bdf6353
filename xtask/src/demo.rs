//! `cargo xtask demo`: sets up what is missing, builds, starts a switch
//! daemon on a private socket and shows traffic crossing it.

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};

use crate::cargo::{cargo, release_dir, run};
use crate::setup;

/// Options of `cargo xtask demo`.
#[derive(clap::Args)]
pub struct DemoArgs {
    /// Seconds of traffic per step.
    #[arg(long, default_value_t = 3)]
    pub seconds: u32,
}

/// Ends a child we started, by its PID, when dropped.
struct Started(Child);

impl Drop for Started {
    fn drop(&mut self) {
        // SAFETY: kill(2) on the PID of a child we spawned and have not reaped.
        unsafe { libc::kill(self.0.id() as i32, libc::SIGTERM) };
        let deadline = Instant::now() + Duration::from_secs(5);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.0.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn vswitch(socket: &Path, args: &[&str]) -> Command {
    let mut cmd = Command::new(release_dir().join("vswitch"));
    cmd.args(args).arg("--socket").arg(socket);
    cmd
}

fn show(title: &str, mut cmd: Command) -> Result<()> {
    println!("\n=== {title}");
    let out = cmd.output().context(title.to_owned())?;
    print!("{}", String::from_utf8_lossy(&out.stdout));
    if !out.status.success() {
        bail!("{title} failed: {}", String::from_utf8_lossy(&out.stderr));
    }
    Ok(())
}

/// Runs the demo.
pub fn run_demo(args: &DemoArgs) -> Result<()> {
    setup::run()?;
    run(
        cargo(&["build", "--workspace", "--release", "--bins"]),
        "build the binaries",
    )?;
    let dir = std::env::temp_dir().join(format!("vswitch-demo-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    let socket = dir.join("vswitch.sock");
    println!(
        "\n=== starting `vswitch daemon --socket {}`",
        socket.display()
    );
    let daemon = Started(
        vswitch(&socket, &["daemon"])
            .stderr(Stdio::inherit())
            .spawn()
            .context("starting the daemon")?,
    );
    let deadline = Instant::now() + Duration::from_secs(10);
    while !socket.exists() {
        if Instant::now() > deadline {
            bail!("the daemon did not start");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let secs = args.seconds.to_string();
    for size in ["60", "1514"] {
        println!("\n=== pktgen tx on vale0:a -> switch -> pktgen rx on vale0:b, {size}-byte frames, {secs} s");
        let rx = Started(
            vswitch(
                &socket,
                &[
                    "pktgen",
                    "vale0:b",
                    "--mode",
                    "rx",
                    "--size",
                    size,
                    "--idle-timeout",
                    "1",
                ],
            )
            .spawn()
            .context("starting pktgen rx")?,
        );
        std::thread::sleep(Duration::from_millis(300));
        let tx = vswitch(
            &socket,
            &[
                "pktgen",
                "vale0:a",
                "--mode",
                "tx",
                "--size",
                size,
                "--duration",
                &secs,
                "--dst-mac",
                "02:00:00:00:00:0b",
            ],
        )
        .status()?;
        if !tx.success() {
            bail!("pktgen tx failed");
        }
        let mut rx = rx;
        let deadline = Instant::now() + Duration::from_secs(10);
        while rx.0.try_wait()?.is_none() && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(50));
        }
    }
    println!("\n=== ping-pong between vale0:ping and vale0:pong");
    let _pong = Started(
        vswitch(
            &socket,
            &[
                "pktgen",
                "vale0:pong",
                "--mode",
                "pong",
                "-q",
                "--idle-timeout",
                "3",
            ],
        )
        .stdout(Stdio::null())
        .spawn()?,
    );
    std::thread::sleep(Duration::from_millis(300));
    show(
        "pktgen ping (10000 round trips)",
        vswitch(
            &socket,
            &[
                "pktgen",
                "vale0:ping",
                "--mode",
                "ping",
                "--count",
                "10000",
                "-q",
            ],
        ),
    )?;
    show("vswitch list", vswitch(&socket, &["list"]))?;
    show("vswitch stats", vswitch(&socket, &["stats"]))?;
    show("vswitch fdb vale0", vswitch(&socket, &["fdb", "vale0"]))?;
    drop(daemon);
    let _ = std::fs::remove_dir_all(&dir);
    println!("\ndemo finished");
    Ok(())
}
