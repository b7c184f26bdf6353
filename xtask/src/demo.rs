//! `cargo xtask demo`: sets up what is missing, builds, starts a switch
//! daemon in a network namespace of its own and shows, step by step, traffic
//! across it: pktgen processes, two VMs running the guest image, and a NIC
//! port on a veth pair whose other end sits in a second namespace, with the
//! host stack's port; then a second "host" (a namespace with a daemon of its
//! own) joined by a veth underlay and a VXLAN tunnel between the two
//! switches. Everything it creates is removed at the end.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};

use crate::cargo::{cargo, release_dir, root, run};
use crate::{ebpf, guest, setup};

/// Options of `cargo xtask demo`.
#[derive(clap::Args)]
pub struct DemoArgs {
    /// Seconds of traffic per step.
    #[arg(long, default_value_t = 3)]
    pub seconds: u32,
}

/// Ends a child we started, by its PID, when dropped.
struct Started(Child);

impl Started {
    fn wait(&mut self, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.0.try_wait() {
                return true;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        false
    }
}

impl Drop for Started {
    fn drop(&mut self) {
        // SAFETY: kill(2) on the PID of a child we spawned and have not reaped.
        unsafe { libc::kill(self.0.id() as i32, libc::SIGTERM) };
        if !self.wait(Duration::from_secs(5)) {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
}

/// Network namespaces the demo made; deleted when dropped.
struct Namespaces(Vec<String>);

impl Namespaces {
    fn add(&mut self, name: &str) -> Result<()> {
        ip(&["netns", "add", name])?;
        self.0.push(name.to_owned());
        ip(&["-n", name, "link", "set", "lo", "up"])
    }
}

impl Drop for Namespaces {
    fn drop(&mut self) {
        for ns in self.0.drain(..).rev() {
            let _ = Command::new("ip").args(["netns", "del", &ns]).status();
        }
    }
}

fn ip(args: &[&str]) -> Result<()> {
    let out = Command::new("ip")
        .args(args)
        .output()
        .context("running ip")?;
    if !out.status.success() {
        bail!(
            "ip {}: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    Ok(())
}

/// Whether `ifname` in namespace `ns` is in operation (`state UP`): the end
/// of a veth pair brought up first drops what it sends until the kernel
/// has seen its carrier, an ARP request too (asked again a second later).
fn link_in_operation(ns: &str, ifname: &str) -> bool {
    Command::new("ip")
        .args(["-n", ns, "-o", "link", "show", "dev", ifname])
        .output()
        .is_ok_and(|out| {
            let text = String::from_utf8_lossy(&out.stdout);
            let mut words = text.split_whitespace();
            words.any(|w| w == "state") && words.next() == Some("UP")
        })
}

fn vswitch(socket: &Path, args: &[&str]) -> Command {
    let mut cmd = Command::new(release_dir().join("vswitch"));
    cmd.args(args).arg("--socket").arg(socket);
    cmd
}

fn show(title: &str, mut cmd: Command) -> Result<String> {
    println!("\n=== {title}");
    let out = cmd.output().context(title.to_owned())?;
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    print!("{text}");
    if !out.status.success() {
        bail!("{title} failed: {}", String::from_utf8_lossy(&out.stderr));
    }
    Ok(text)
}

fn wait_for(what: &str, timeout: Duration, mut done: impl FnMut() -> bool) -> Result<()> {
    let deadline = Instant::now() + timeout;
    while !done() {
        if Instant::now() > deadline {
            bail!("timed out waiting for {what}");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    Ok(())
}

/// Whether the daemon on `socket` lists `port`. A client's port is there
/// from its open until the daemon has seen the client leave, which may be
/// after its process ended: until then the name cannot be opened again.
fn has_port(socket: &Path, port: &str) -> bool {
    let Ok(out) = vswitch(socket, &["list", "--json"]).output() else {
        return false;
    };
    serde_json::from_slice::<serde_json::Value>(&out.stdout).is_ok_and(|list| {
        list["switches"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|s| s["ports"].as_array())
            .flatten()
            .any(|p| p["name"] == port)
    })
}

/// Waits until the daemon on `socket` lists `port` (`present`) or no
/// longer does.
fn wait_port(socket: &Path, port: &str, present: bool) -> Result<()> {
    let what = format!("{port} to {}", if present { "appear" } else { "go" });
    wait_for(&what, Duration::from_secs(10), || {
        has_port(socket, port) == present
    })
}

/// A VM running the guest image; its serial output goes to a file.
fn vm(
    socket: &Path,
    dir: &Path,
    name: &str,
    mac: &str,
    guest_args: &str,
) -> Result<(Started, PathBuf)> {
    let serial = dir.join(format!("{name}.serial"));
    let child = Command::new(release_dir().join("vmm"))
        .arg("--kernel")
        .arg(root().join("target/guest/guest.elf"))
        .args(["--net", &format!("vale0:{name}"), "--mac", mac, "--socket"])
        .arg(socket)
        .arg("--serial")
        .arg(&serial)
        .arg("--")
        .args(guest_args.split_whitespace())
        .stderr(Stdio::null())
        .spawn()
        .context("starting vmm")?;
    Ok((Started(child), serial))
}

fn result_line(serial: &Path) -> String {
    std::fs::read_to_string(serial)
        .unwrap_or_default()
        .lines()
        .rev()
        .find(|l| l.starts_with("{\"result\""))
        .unwrap_or("(no result line)")
        .to_owned()
}

/// The interesting fields of a guest's result line.
fn summary(line: &str) -> String {
    let Ok(v) = serde_json::from_str::<serde_json::Value>(line) else {
        return line.to_owned();
    };
    let mut parts = vec![format!("{} frames, {} pps", v["frames"], v["pps"])];
    for key in [
        "lost",
        "irqs",
        "tdt_writes",
        "mmio_reads",
        "mmio_writes",
        "idle",
    ] {
        if let Some(n) = v[key].as_u64() {
            parts.push(format!("{key} {n}"));
        }
    }
    if v["rtt_us"].is_object() {
        parts.push(format!("RTT us {}", v["rtt_us"]));
    }
    parts.join(", ")
}

/// Step 5: a second host (namespace `host2` with its own daemon) joined
/// to the switch's namespace `sw` by a veth underlay, a VXLAN tunnel port
/// on each switch, and pktgen ping-pong across it.
fn tunnel_step(socket: &Path, dir: &Path, sw: &str, host2: &str) -> Result<()> {
    println!("\n=== 5. two hosts: {host2} runs a second daemon; a veth underlay (192.168.99.1 in {sw}, .2 in {host2}) and a VXLAN tunnel (VNI 42) join the two switches");
    ip(&[
        "-n", sw, "link", "add", "ul0", "type", "veth", "peer", "name", "ul0", "netns", host2,
    ])?;
    for (ns, addr) in [(sw, "192.168.99.1/24"), (host2, "192.168.99.2/24")] {
        ip(&["-n", ns, "addr", "add", addr, "dev", "ul0"])?;
        ip(&["-n", ns, "link", "set", "ul0", "up"])?;
    }
    wait_for("the underlay", Duration::from_secs(10), || {
        link_in_operation(sw, "ul0") && link_in_operation(host2, "ul0")
    })?;
    let socket2 = dir.join("vswitch2.sock");
    let _daemon2 = Started(
        Command::new("ip")
            .args(["netns", "exec", host2])
            .arg(release_dir().join("vswitch"))
            .arg("daemon")
            .arg("--socket")
            .arg(&socket2)
            .args(["--state", "none"])
            .stderr(Stdio::inherit())
            .spawn()
            .context("starting the second daemon")?,
    );
    wait_for("the second daemon", Duration::from_secs(10), || {
        socket2.exists()
    })?;
    for (sock, local, remote) in [
        (socket, "192.168.99.1", "192.168.99.2"),
        (socket2.as_path(), "192.168.99.2", "192.168.99.1"),
    ] {
        let args = [
            "tunnel", "add", "vale0", "vx", "--vni", "42", "--local", local, "--remote", remote,
        ];
        show(&format!("vswitch {}", args.join(" ")), vswitch(sock, &args))?;
    }
    let _pong = Started(
        vswitch(
            &socket2,
            &[
                "pktgen",
                "vale0:pong",
                "--mode",
                "pong",
                "--src-mac",
                "02:00:00:00:00:0c",
                "--idle-timeout",
                "2",
                "-q",
            ],
        )
        .stdout(Stdio::null())
        .spawn()?,
    );
    wait_port(&socket2, "vale0:pong", true)?;
    show(
        "pktgen ping on host 1 -> tunnel -> pktgen pong on host 2 (1000 round trips)",
        vswitch(
            socket,
            &[
                "pktgen",
                "vale0:ping",
                "--mode",
                "ping",
                "--count",
                "1000",
                "--dst-mac",
                "02:00:00:00:00:0c",
            ],
        ),
    )?;
    show(
        "vswitch tunnel list (host 1)",
        vswitch(socket, &["tunnel", "list"]),
    )?;
    show(
        "vswitch fdb vale0 (host 1)",
        vswitch(socket, &["fdb", "vale0"]),
    )?;
    show(
        "vswitch stats vale0:vx (host 1)",
        vswitch(socket, &["stats", "vale0:vx"]),
    )?;
    Ok(())
}

/// Runs the demo.
pub fn run_demo(args: &DemoArgs) -> Result<()> {
    setup::run()?;
    ebpf::build()?;
    guest::build()?;
    run(
        cargo(&["build", "--workspace", "--release", "--bins"]),
        "build the binaries",
    )?;
    let tag = std::process::id();
    let dir = std::env::temp_dir().join(format!("vswitch-demo-{tag}"));
    std::fs::create_dir_all(&dir)?;
    let socket = dir.join("vswitch.sock");
    let mut namespaces = Namespaces(Vec::new());
    let (sw, host1) = (format!("vswdemo-{tag}-sw"), format!("vswdemo-{tag}-h1"));
    namespaces.add(&sw)?;
    namespaces.add(&host1)?;

    println!(
        "\n=== starting `vswitch daemon --socket {}` in namespace {sw}",
        socket.display()
    );
    let daemon = Started(
        Command::new("ip")
            .args(["netns", "exec", &sw])
            .arg(release_dir().join("vswitch"))
            .arg("daemon")
            .arg("--socket")
            .arg(&socket)
            // The demo's ports are not the system's configuration.
            .args(["--state", "none"])
            .stderr(Stdio::inherit())
            .spawn()
            .context("starting the daemon")?,
    );
    wait_for("the daemon", Duration::from_secs(10), || socket.exists())?;
    let secs = args.seconds.to_string();

    for size in ["60", "1514"] {
        println!("\n=== 1. pktgen tx on vale0:a -> switch -> pktgen rx on vale0:b, {size}-byte frames, {secs} s");
        let mut rx = Started(
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
            .spawn()?,
        );
        // The receiver's port exists once it has opened it.
        wait_port(&socket, "vale0:b", true)?;
        let status = vswitch(
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
        if !status.success() {
            bail!("pktgen tx failed");
        }
        rx.wait(Duration::from_secs(10));
        drop(rx);
        // The next round opens the same ports.
        wait_port(&socket, "vale0:a", false)?;
        wait_port(&socket, "vale0:b", false)?;
    }

    for (mode, sender, receiver) in [
        ("send combining", "txmode=combine", "txmode=plain"),
        ("CSB paravirtual mode", "txmode=csb burst=64", "txmode=csb"),
    ] {
        println!("\n=== 2. two VMs on vale0 running the guest image: guest tx -> guest rx ({secs} s, {mode})");
        let (mut rx_vm, rx_serial) = vm(
            &socket,
            &dir,
            "vm-rx",
            "52:54:00:00:0d:01",
            &format!("rx {receiver} quiet"),
        )?;
        wait_for("the receiving guest", Duration::from_secs(30), || {
            std::fs::read_to_string(&rx_serial).is_ok_and(|s| s.contains("guest: rx"))
        })?;
        let (mut tx_vm, tx_serial) = vm(
            &socket,
            &dir,
            "vm-tx",
            "52:54:00:00:0d:02",
            &format!("tx duration={secs} {sender} dst=52:54:00:00:0d:01 quiet"),
        )?;
        tx_vm.wait(Duration::from_secs(60));
        rx_vm.wait(Duration::from_secs(30));
        println!("sender:   {}", summary(&result_line(&tx_serial)));
        println!("receiver: {}", summary(&result_line(&rx_serial)));
        drop((tx_vm, rx_vm));
        // The next round opens the same ports.
        wait_port(&socket, "vale0:vm-tx", false)?;
        wait_port(&socket, "vale0:vm-rx", false)?;
    }

    for (mode, args) in [("plain", "txmode=plain"), ("CSB", "txmode=csb")] {
        println!("\n=== 3. VM-to-VM ping-pong, {mode} (1000 round trips)");
        let (mut pong_vm, pong_serial) = vm(
            &socket,
            &dir,
            "vm-pong",
            "52:54:00:00:0d:03",
            &format!("pong count=1000 {args} quiet"),
        )?;
        wait_for("the pong guest", Duration::from_secs(30), || {
            std::fs::read_to_string(&pong_serial).is_ok_and(|s| s.contains("guest: pong"))
        })?;
        let (mut ping_vm, ping_serial) = vm(
            &socket,
            &dir,
            "vm-ping",
            "52:54:00:00:0d:04",
            &format!("ping count=1000 dst=52:54:00:00:0d:03 {args} quiet"),
        )?;
        ping_vm.wait(Duration::from_secs(120));
        pong_vm.wait(Duration::from_secs(10));
        println!("ping: {}", summary(&result_line(&ping_serial)));
        drop((ping_vm, pong_vm));
        // The next round opens the same ports.
        wait_port(&socket, "vale0:vm-ping", false)?;
        wait_port(&socket, "vale0:vm-pong", false)?;
    }

    println!("\n=== 4. a NIC port: veth nic0 (in {sw}) attached to vale0, its peer in {host1}; the host stack's port is TAP nic0-host");
    ip(&[
        "-n", &sw, "link", "add", "nic0", "type", "veth", "peer", "name", "eth0", "netns", &host1,
    ])?;
    ip(&["-n", &sw, "link", "set", "nic0", "up"])?;
    ip(&["-n", &host1, "link", "set", "eth0", "up"])?;
    ip(&["-n", &host1, "addr", "add", "10.77.0.2/24", "dev", "eth0"])?;
    wait_for("the veth", Duration::from_secs(10), || {
        link_in_operation(&sw, "nic0") && link_in_operation(&host1, "eth0")
    })?;
    show(
        "vswitch attach vale0 nic0 --host",
        vswitch(&socket, &["attach", "vale0", "nic0", "--host"]),
    )?;
    ip(&["-n", &sw, "addr", "add", "10.77.0.1/24", "dev", "nic0-host"])?;
    show(
        &format!("ping from {host1} to the host port's address, across the switch"),
        {
            let mut c = Command::new("ip");
            c.args([
                "netns",
                "exec",
                &host1,
                "ping",
                "-c",
                "5",
                "-i",
                "0.2",
                "-W",
                "2",
                "10.77.0.1",
            ]);
            c
        },
    )?;
    show("vswitch list", vswitch(&socket, &["list"]))?;
    show("vswitch stats", vswitch(&socket, &["stats"]))?;
    show("vswitch fdb vale0", vswitch(&socket, &["fdb", "vale0"]))?;
    show(
        "vswitch detach vale0 nic0",
        vswitch(&socket, &["detach", "vale0", "nic0"]),
    )?;
    let host2 = format!("vswdemo-{tag}-h2");
    namespaces.add(&host2)?;
    tunnel_step(&socket, &dir, &sw, &host2)?;
    drop(daemon);
    drop(namespaces);
    let _ = std::fs::remove_dir_all(&dir);
    println!("\ndemo finished");
    Ok(())
}
