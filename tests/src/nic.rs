//! NIC-port test beds: a "switch" namespace with a daemon running inside it,
//! and host namespaces, each joined to it by a veth whose switch-side end
//! the test attaches to `vale0` as a NIC. Also what the tests need around
//! them: a test-frame sender (over testbed's AF_PACKET socket), the NIC
//! ports' extra counters, the forwarding table.
//!
//! Addresses are 10.9.0.N/24 and exist only inside these namespaces.

use std::collections::BTreeMap;
use std::process::Output;
use std::time::{Duration, Instant};

use anyhow::{bail, ensure, Context, Result};
use testbed::{wait_until, Mac, Netns, PacketSocket, Protocol, Queues};
use testframe::{FrameTemplate, Kind};

use crate::Daemon;

/// The switch the tests attach NICs to.
pub const SWITCH: &str = "vale0";
/// The name of a host namespace's end of its veth.
pub const HOST_IF: &str = "eth0";
/// The first three bytes of the hosts' addresses.
pub const SUBNET: &str = "10.9.0";

/// A host namespace joined to the switch namespace by a veth.
pub struct Host {
    /// The host's namespace; its veth end is [`HOST_IF`].
    pub ns: Netns,
    /// The veth end in the switch namespace, which the test attaches.
    pub port_if: String,
    /// The host's IPv4 address (without prefix length).
    pub addr: String,
    /// The MAC address of the host's [`HOST_IF`].
    pub mac: Mac,
}

impl Host {
    /// Pings `target` from this host `count` times, 0.2 s apart, each
    /// waiting at most 2 s; whether every ping was answered.
    pub fn ping(&self, target: &str, count: u32) -> Result<bool> {
        ping_from(&self.ns, target, count)
    }
}

/// Pings `target` from `ns` (`count` pings 0.2 s apart, 2 s deadline per
/// reply); whether all were answered.
pub fn ping_from(ns: &Netns, target: &str, count: u32) -> Result<bool> {
    Ok(ns.ping(target, count, Duration::from_secs(2))?)
}

/// The switch namespace with the daemon in it and the host namespaces.
/// Dropping it stops the daemon, then deletes every namespace.
pub struct NicBed {
    /// The daemon, running in [`NicBed::switch`] (declared first: stopped first).
    pub daemon: Daemon,
    /// The hosts, in the order of the names given to [`NicBed::new`].
    pub hosts: Vec<Host>,
    /// The switch namespace: the daemon and the veths' switch ends.
    pub switch: Netns,
}

impl NicBed {
    /// Creates the switch namespace, one host per name in `port_ifs` (host
    /// `i` gets 10.9.0.`i+1`, MAC 02:76:73:6e:00:`i+1`, and its veth end in
    /// the switch namespace is named `port_ifs[i]`), with `queues` on every
    /// veth, and starts the daemon in the switch namespace. Nothing is
    /// attached yet.
    ///
    /// The hosts' veth ends have transmit checksum offload turned off: a
    /// frame a local stack sends with a partial checksum keeps it partial
    /// through XDP into an AF_XDP socket, so the receiving host would drop
    /// TCP and UDP frames that crossed the switch (a NIC's wire never
    /// carries such frames).
    pub fn new(port_ifs: &[&str], queues: Option<Queues>) -> Result<NicBed> {
        NicBed::with_daemon(port_ifs, queues, |ns| Daemon::start_in(ns, &[]))
    }

    /// Like [`NicBed::new`], the daemon started by `start` in the switch
    /// namespace it is given.
    pub fn with_daemon(
        port_ifs: &[&str],
        queues: Option<Queues>,
        start: impl FnOnce(&Netns) -> Result<Daemon>,
    ) -> Result<NicBed> {
        NicBed::build(port_ifs, queues, true, start)
    }

    /// Like [`NicBed::new`], but the hosts' veth ends keep the kernel's
    /// default offloads (transmit checksum offload on): their TCP and UDP
    /// frames reach the switch with partial checksums.
    pub fn with_default_offloads(port_ifs: &[&str]) -> Result<NicBed> {
        NicBed::build(port_ifs, None, false, |ns| Daemon::start_in(ns, &[]))
    }

    fn build(
        port_ifs: &[&str],
        queues: Option<Queues>,
        tx_checksum_off: bool,
        start: impl FnOnce(&Netns) -> Result<Daemon>,
    ) -> Result<NicBed> {
        let switch = Netns::new(testbed::DEFAULT_PREFIX)?;
        switch.disable_ipv6()?;
        let mut hosts = Vec::new();
        for (i, port_if) in port_ifs.iter().enumerate() {
            let ns = Netns::new(testbed::DEFAULT_PREFIX)?;
            ns.disable_ipv6()?;
            switch.add_veth(port_if, HOST_IF, Some(&ns), queues)?;
            let mac = Mac([0x02, 0x76, 0x73, 0x6e, 0x00, i as u8 + 1]);
            ns.set_mac(HOST_IF, mac)?;
            let addr = format!("{SUBNET}.{}", i + 1);
            ns.add_addr(HOST_IF, &format!("{addr}/24"))?;
            if tx_checksum_off {
                ns.run("ethtool", ["-K", HOST_IF, "tx", "off"])
                    .context("turning off transmit checksum offload")?;
            }
            ns.set_up(HOST_IF)?;
            switch.set_up(port_if)?;
            hosts.push(Host {
                ns,
                port_if: port_if.to_string(),
                addr,
                mac,
            });
        }
        // In operation (which implies carrier), not only with carrier: the
        // end brought up first (the host's) can send only once the kernel's
        // link watcher has seen its carrier; before, its frames (an ARP
        // request) are dropped.
        wait_until(Duration::from_secs(10), Duration::from_millis(10), || {
            hosts.iter().all(|h| {
                h.ns.is_oper_up(HOST_IF).unwrap_or(false)
                    && switch.is_oper_up(&h.port_if).unwrap_or(false)
            })
        })
        .context("veths did not come up")?;
        let daemon = start(&switch)?;
        Ok(NicBed {
            daemon,
            hosts,
            switch,
        })
    }

    /// Runs `vswitch attach vale0 IFACE EXTRA...` and returns its output,
    /// whatever the outcome.
    pub fn try_attach(&self, iface: &str, extra: &[&str]) -> Result<Output> {
        let mut args = vec!["attach", SWITCH, iface];
        args.extend_from_slice(extra);
        Ok(self.daemon.cli(&args)?)
    }

    /// Attaches `iface` (with `extra` options); it must succeed.
    pub fn attach(&self, iface: &str, extra: &[&str]) -> Result<()> {
        let out = self.try_attach(iface, extra)?;
        ensure!(
            out.status.success(),
            "attach {iface} {extra:?} failed: {}\ndaemon log:\n{}",
            String::from_utf8_lossy(&out.stderr),
            self.daemon.log()
        );
        self.daemon.wait_port(&format!("{SWITCH}:{iface}"), true)
    }

    /// Detaches `iface`; it must succeed.
    pub fn detach(&self, iface: &str) -> Result<()> {
        let out = self.daemon.cli(&["detach", SWITCH, iface])?;
        ensure!(
            out.status.success(),
            "detach {iface} failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        Ok(())
    }

    /// The extra counters `vswitch stats --json` shows for `port`.
    pub fn extra_counters(&self, port: &str) -> Result<BTreeMap<String, u64>> {
        extra_counters(&self.daemon, port)
    }

    /// Whether an XDP program sits on `iface` of the switch namespace.
    pub fn has_xdp(&self, iface: &str) -> Result<bool> {
        Ok(self.switch.has_xdp(iface)?)
    }

    /// The promiscuity count of `iface` in the switch namespace.
    pub fn promiscuity(&self, iface: &str) -> Result<u32> {
        Ok(self.switch.promiscuity(iface)?)
    }
}

/// The extra counters `vswitch stats PORT --json` shows (XDP and AF_XDP
/// counters of a NIC port, TAP counters of a host port).
pub fn extra_counters(daemon: &Daemon, port: &str) -> Result<BTreeMap<String, u64>> {
    let stats = daemon.cli_json(&["stats", port, "--json"])?;
    let extra = stats["ports"][0]["extra"]
        .as_array()
        .with_context(|| format!("no extra counters for {port}: {stats}"))?;
    let mut out = BTreeMap::new();
    for pair in extra {
        let (Some(name), Some(value)) = (pair[0].as_str(), pair[1].as_u64()) else {
            bail!("bad extra counter {pair} in {stats}");
        };
        out.insert(name.to_owned(), value);
    }
    Ok(out)
}

/// The forwarding table of `vale0`: (MAC, port) pairs.
pub fn fdb(daemon: &Daemon) -> Result<Vec<(String, String)>> {
    let table = daemon.cli_json(&["fdb", SWITCH, "--json"])?;
    let entries = table["entries"]
        .as_array()
        .with_context(|| format!("no entries in {table}"))?;
    Ok(entries
        .iter()
        .map(|e| {
            (
                e["mac"].as_str().unwrap_or_default().to_owned(),
                e["port"].as_str().unwrap_or_default().to_owned(),
            )
        })
        .collect())
}

/// Sends test frames of `len` bytes with the sequence numbers `seqs` from
/// `src` to `dst` on `iface` of `ns`, through a raw AF_PACKET socket
/// that bypasses the qdisc, from a thread pinned to `cpu` when given (a
/// multi-queue veth then transmits on queue `cpu`, and its peer receives
/// on the same queue). Returns the number of frames the kernel took; stops
/// early after 10 s.
pub fn send_test_frames(
    ns: &Netns,
    iface: &str,
    src: Mac,
    dst: Mac,
    seqs: std::ops::Range<u64>,
    len: usize,
    cpu: Option<usize>,
) -> Result<u64> {
    let iface = iface.to_owned();
    ns.run_in(move || -> Result<u64> {
        if let Some(cpu) = cpu {
            testbed::pin_to_cpu(cpu)?;
        }
        let template = FrameTemplate::new(dst.0, src.0, Kind::Data, len)
            .with_context(|| format!("no test frame of {len} bytes"))?;
        let socket = PacketSocket::open(&iface, Protocol::SendOnly)?;
        let mut frame = vec![0u8; len];
        template.write(&mut frame, 0, 0);
        let deadline = Instant::now() + Duration::from_secs(10);
        let mut sent = 0u64;
        let mut seq = seqs.start;
        while seq < seqs.end && Instant::now() < deadline {
            template.stamp(&mut frame, seq, 0);
            if socket.send(&frame)? {
                sent += 1;
                seq += 1;
            } else {
                // The device queue is full: let the receiver catch up.
                std::thread::sleep(Duration::from_micros(200));
            }
        }
        Ok(sent)
    })?
}
