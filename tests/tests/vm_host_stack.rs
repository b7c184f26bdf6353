//! A guest reached by a real Linux stack: a VM on `vale0` runs the guest
//! image's `pong ip=...`, the switch's NIC port sits on a veth, and the
//! namespace behind it pings the guest with the real `ping` (ARP resolved
//! by the guest), exchanges UDP datagrams with it in lock step (all
//! echoed intact) and floods it with UDP (a bounded sender; echoes counted
//! and checked). Frames the guest must ignore (IPv6 neighbour discovery,
//! ARP for another address, a bad IPv4 checksum) are sent too, and the
//! host's IPv6 is on so its own noise reaches the guest. With the CSB off
//! and on; and the switch namespace's own stack reaching a guest through
//! the NIC's host port (the TAP of `attach --host`).

use std::net::SocketAddr;
use std::time::Duration;

use anyhow::{ensure, Result};
use e2e_tests::nic::{NicBed, HOST_IF};
use e2e_tests::udp_echo::{self, Flood};
use e2e_tests::Vm;
use serde_json::Value;
use testbed::{Mac, PacketSocket, Protocol};

/// The veth end the switch attaches.
const PORT_IF: &str = "h0";
/// The guest's address, in the hosts' subnet (nic.rs: 10.9.0.N/24).
const GUEST_IP: [u8; 4] = [10, 9, 0, 100];
const GUEST_MAC: Mac = Mac([0x52, 0x54, 0x00, 0x00, 0x0c, 0x01]);
/// The UDP port the test sends to (the guest echoes any port).
const UDP_PORT: u16 = 7;
/// Datagrams echoed one at a time (each must come back).
const LOCKSTEP: u64 = 200;
/// Datagrams of the flood.
const FLOOD: u64 = 20_000;

fn guest_ip() -> String {
    let [a, b, c, d] = GUEST_IP;
    format!("{a}.{b}.{c}.{d}")
}

/// An Ethernet frame from `src` to `dst` with `ethertype` and `body`,
/// padded to 60 bytes.
fn frame(dst: [u8; 6], src: Mac, ethertype: u16, body: &[u8]) -> Vec<u8> {
    let mut f = Vec::new();
    f.extend_from_slice(&dst);
    f.extend_from_slice(&src.0);
    f.extend_from_slice(&ethertype.to_be_bytes());
    f.extend_from_slice(body);
    f.resize(f.len().max(60), 0);
    f
}

/// Frames the guest must ignore: an IPv6 neighbour solicitation (to its
/// solicited-node multicast MAC), a broadcast ARP request for another
/// address, and an IPv4 datagram to the guest with a broken header
/// checksum.
fn noise(src: Mac) -> Vec<Vec<u8>> {
    let mut ipv6 = vec![0x60, 0, 0, 0, 0, 32, 58, 255];
    ipv6.extend_from_slice(&[0xfe, 0x80, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1]);
    ipv6.extend_from_slice(&[0xff, 0x02, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 0xff, 0, 0, 0x64]);
    ipv6.extend_from_slice(&[135, 0, 0, 0, 0, 0, 0, 0]);
    ipv6.extend_from_slice(&[0xfe, 0x80, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x64]);
    let mut arp = vec![0, 1, 8, 0, 6, 4, 0, 1];
    arp.extend_from_slice(&src.0);
    arp.extend_from_slice(&[10, 9, 0, 1, 0, 0, 0, 0, 0, 0, 10, 9, 0, 77]);
    let mut ipv4 = vec![0x45, 0, 0, 29, 0, 1, 0, 0, 64, 17, 0xde, 0xad];
    ipv4.extend_from_slice(&[10, 9, 0, 1]);
    ipv4.extend_from_slice(&GUEST_IP);
    ipv4.extend_from_slice(&[0x30, 0x39, 0, 7, 0, 9, 0, 0, 0x42]);
    vec![
        frame([0x33, 0x33, 0xff, 0, 0, 0x64], src, 0x86DD, &ipv6),
        frame([0xff; 6], src, 0x0806, &arp),
        frame(GUEST_MAC.0, src, 0x0800, &ipv4),
    ]
}

fn count(ip: &Value, path: &[&str]) -> u64 {
    path.iter()
        .fold(ip, |v, key| &v[key])
        .as_u64()
        .unwrap_or_else(|| panic!("no {path:?} in {ip}"))
}

fn host_stack_reaches_guest(name: &str, guest_mode: &str) -> Result<()> {
    let bed = NicBed::new(&[PORT_IF], None)?;
    let host = &bed.hosts[0];
    // The host's own IPv6 noise (router solicitations, MLD, DAD) too.
    host.ns
        .set_sysctl(&format!("net/ipv6/conf/{HOST_IF}/disable_ipv6"), "0")?;
    bed.attach(PORT_IF, &[])?;
    let mut vm = Vm::start(
        &bed.daemon,
        name,
        "vale0:vm",
        &GUEST_MAC.to_string(),
        &["--e1000", "mitigation=off"],
        &format!("pong ip={}/24 duration=120 {guest_mode}", guest_ip()),
    )?;
    vm.wait_for_serial("guest: answering", Duration::from_secs(30))?;

    ensure!(
        host.ping(&guest_ip(), 5)?,
        "{name}: ping {} failed; guest:\n{}",
        guest_ip(),
        vm.serial()
    );
    let noise = noise(host.mac);
    let sent_noise = host.ns.run_in(move || -> Result<usize> {
        // Opened inside the host's namespace: its HOST_IF.
        let socket = PacketSocket::open(HOST_IF, Protocol::SendOnly)?;
        let mut sent = 0;
        for f in &noise {
            sent += usize::from(socket.send(f)?);
        }
        Ok(sent)
    })??;
    ensure!(sent_noise == 3, "only {sent_noise} of 3 noise frames left");

    let target = SocketAddr::from((GUEST_IP, UDP_PORT));
    host.ns
        .run_in(|| udp_echo::lockstep(target, LOCKSTEP, 64, Duration::from_secs(2)))??;
    let flood: Flood = host
        .ns
        .run_in(|| udp_echo::flood(target, FLOOD, 64, Duration::from_secs(2)))??;
    eprintln!("{name}: flood {flood:?}");
    ensure!(flood.sent == FLOOD && flood.echoed > 0, "{name}: {flood:?}");
    ensure!(
        flood.duplicates == 0 && flood.corrupt == 0,
        "{name}: {flood:?}"
    );

    // The guest stops 2 s after the last frame it answered.
    let (result, stats) = vm.finish(Duration::from_secs(60))?;
    eprintln!("{name}: guest {}", result["ip"]);
    let ip = &result["ip"];
    ensure!(ip["addr"] == "10.9.0.100/24", "{result}");
    ensure!(count(ip, &["arp"]) >= 1, "{name}: no ARP answered: {ip}");
    ensure!(count(ip, &["icmp_echo"]) >= 5, "{name}: {ip}");
    ensure!(
        count(ip, &["udp_echo"]) >= LOCKSTEP + flood.echoed,
        "{name}: the host got more echoes than the guest sent: {ip} {flood:?}"
    );
    ensure!(count(ip, &["ignored", "other_ethertype"]) >= 1, "{ip}");
    ensure!(count(ip, &["ignored", "not_for_us"]) >= 1, "{ip}");
    ensure!(count(ip, &["ignored", "bad_checksum"]) >= 1, "{ip}");
    ensure!(count(ip, &["ignored", "malformed"]) == 0, "{ip}");
    ensure!(stats.is_object(), "{name}: no VMM statistics");
    Ok(())
}

#[test]
fn host_stack_pings_and_floods_a_plain_guest() -> Result<()> {
    host_stack_reaches_guest("host-plain", "txmode=plain")
}

#[test]
fn host_stack_pings_and_floods_a_csb_guest() -> Result<()> {
    host_stack_reaches_guest("host-csb", "txmode=csb")
}

#[test]
fn the_host_port_stack_reaches_a_guest() -> Result<()> {
    let bed = NicBed::new(&[PORT_IF], None)?;
    bed.attach(PORT_IF, &["--host"])?;
    let tap = format!("{PORT_IF}-host");
    bed.daemon.wait_port(&format!("vale0:{tap}"), true)?;
    bed.switch.add_addr(&tap, "10.9.0.254/24")?;
    let mut vm = Vm::start(
        &bed.daemon,
        "host-tap",
        "vale0:vm",
        &GUEST_MAC.to_string(),
        &["--e1000", "mitigation=off"],
        &format!("pong ip={}/24 duration=120 txmode=csb", guest_ip()),
    )?;
    vm.wait_for_serial("guest: answering", Duration::from_secs(30))?;
    ensure!(
        e2e_tests::nic::ping_from(&bed.switch, &guest_ip(), 3)?,
        "the switch namespace's stack did not reach the guest; guest:\n{}",
        vm.serial()
    );
    let target = SocketAddr::from((GUEST_IP, UDP_PORT));
    bed.switch
        .run_in(|| udp_echo::lockstep(target, 50, 200, Duration::from_secs(2)))??;
    let (result, _) = vm.finish(Duration::from_secs(60))?;
    let ip = &result["ip"];
    ensure!(count(ip, &["icmp_echo"]) >= 3, "{ip}");
    ensure!(count(ip, &["udp_echo"]) >= 50, "{ip}");
    Ok(())
}
