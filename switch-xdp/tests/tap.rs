//! The host port's TAP inside a network namespace: frames from the host
//! stack come out of it, frames written into it reach the host stack.
mod common;

use common::{ether_frame, eventually, inside};
use std::process::Command;
use std::time::Duration;
use switch_xdp::{iface, Tap};
use testbed::{Capture, Proc};

const TAP: &str = "vsxtap0";
const HOST_ADDR: [u8; 4] = [192, 0, 2, 1];
const NEIGHBOUR_ADDR: [u8; 4] = [192, 0, 2, 9];
const NEIGHBOUR_MAC: [u8; 6] = [0x02, 0, 0, 0, 0, 0x09];
const ETH_P_ARP: u16 = 0x0806;
const ETH_P_IP: u16 = 0x0800;

/// The sender MAC of an ARP request for `target`, if `frame` is one.
fn arp_request_for(frame: &[u8], target: [u8; 4]) -> Option<[u8; 6]> {
    let is_request = frame.len() >= 42
        && frame[12..14] == ETH_P_ARP.to_be_bytes()
        && frame[20..22] == [0, 1]
        && frame[38..42] == target;
    is_request.then(|| frame[22..28].try_into().unwrap())
}

/// An ARP reply telling `to` that `NEIGHBOUR_ADDR` is at `NEIGHBOUR_MAC`.
fn arp_reply(to_mac: [u8; 6], to_addr: [u8; 4]) -> Vec<u8> {
    let mut arp = vec![0, 1, 0x08, 0, 6, 4, 0, 2];
    arp.extend_from_slice(&NEIGHBOUR_MAC);
    arp.extend_from_slice(&NEIGHBOUR_ADDR);
    arp.extend_from_slice(&to_mac);
    arp.extend_from_slice(&to_addr);
    ether_frame(to_mac, NEIGHBOUR_MAC, ETH_P_ARP, &arp)
}

#[test]
fn tap_carries_frames_both_ways_and_vanishes_on_drop() {
    let ns = common::netns();
    inside(&ns, || {
        let mut tap = Tap::create(TAP).unwrap();
        assert_eq!(tap.name(), TAP);
        iface::set_link_up(TAP).unwrap();
        ns.ip(["addr", "add", "192.0.2.1/24", "dev", TAP]).unwrap();

        // The host stack resolves the neighbour: its ARP request comes out.
        let mut ping = ns.command("ping");
        ping.args(["-n", "-c", "3", "-i", "0.3", "-W", "1", "192.0.2.9"]);
        let ping = Proc::spawn("ping", ping, Capture::Null).unwrap();
        let mut host_mac = None;
        eventually(Duration::from_secs(5), || {
            tap.receive(16, |frame| {
                host_mac = host_mac.or(arp_request_for(frame, NEIGHBOUR_ADDR));
            })
            .unwrap();
            host_mac.is_some()
        });
        let host_mac = host_mac.expect("an ARP request from the host stack");

        // Our reply goes in; the host stack learns the neighbour and sends
        // the ICMP echo to its MAC.
        let reply = arp_reply(host_mac, HOST_ADDR);
        assert_eq!(tap.transmit([reply.as_slice()].into_iter()).unwrap(), 1);
        let mut echo_seen = false;
        eventually(Duration::from_secs(5), || {
            tap.receive(16, |frame| {
                echo_seen |=
                    frame[0..6] == NEIGHBOUR_MAC && frame[12..14] == ETH_P_IP.to_be_bytes();
            })
            .unwrap();
            echo_seen
        });
        assert!(echo_seen, "the host stack sent to the MAC we answered with");
        let neighbours = ns.ip(["neigh", "show", "192.0.2.9"]).unwrap();
        assert!(neighbours.contains("02:00:00:00:00:09"), "{neighbours}");

        let stats = tap.stats();
        assert_eq!(stats.tx_packets, 1);
        assert!(stats.rx_packets >= 2, "{stats:?}");
        drop(ping);

        drop(tap);
        let gone = Command::new("ip")
            .args(["link", "show", "dev", TAP])
            .output()
            .unwrap();
        assert!(!gone.status.success(), "the TAP outlived its owner");
    });
}

#[test]
fn invalid_tap_names_are_refused() {
    let ns = common::netns();
    inside(&ns, || {
        assert!(Tap::create("").is_err());
        assert!(Tap::create("a-name-far-too-long").is_err());
    });
}

#[test]
fn an_existing_tap_is_not_taken_over() {
    let ns = common::netns();
    // A persistent TAP someone else made: joining it would hand its
    // traffic to us (and ours to its owner); creation refuses instead.
    ns.ip(["tuntap", "add", "mode", "tap", "name", "vsxtap1"])
        .unwrap();
    inside(&ns, || {
        let taken = Tap::create("vsxtap1");
        ns.ip(["tuntap", "del", "mode", "tap", "name", "vsxtap1"])
            .unwrap();
        let err = taken.expect_err("joined an existing TAP");
        let chain = format!("{err}: {}", std::error::Error::source(&err).unwrap());
        assert!(chain.contains("busy"), "{chain}");
        // One this process holds is refused the same way.
        let _held = Tap::create("vsxtap2").unwrap();
        assert!(Tap::create("vsxtap2").is_err());
    });
}
