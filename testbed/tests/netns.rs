//! Namespaces, veths and bridges created for real (needs root).

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use testbed::{link, sweep_stale, wait_until, Mac, Netns, Queues, VethPair};

const PREFIX: &str = "vswtb";

fn netns_exists(name: &str) -> bool {
    Path::new("/run/netns").join(name).exists()
}

#[test]
fn namespace_is_created_named_and_removed() {
    let ns = Netns::new(PREFIX).unwrap();
    let name = ns.name().to_string();
    assert!(name.starts_with(&format!("{PREFIX}-{}-", std::process::id())));
    assert!(netns_exists(&name));
    assert!(ns.is_lower_up("lo").unwrap());
    let other = Netns::new(PREFIX).unwrap();
    assert_ne!(other.name(), name);
    drop(ns);
    assert!(!netns_exists(&name));
    other.delete().unwrap();
}

#[test]
fn namespace_is_removed_when_the_test_panics() {
    let (tx, rx) = std::sync::mpsc::channel();
    let result = std::thread::spawn(move || {
        let ns = Netns::new(PREFIX).unwrap();
        tx.send(ns.name().to_string()).unwrap();
        panic!("deliberate panic with a namespace alive");
    })
    .join();
    assert!(result.is_err());
    let name = rx.recv().unwrap();
    assert!(!netns_exists(&name), "{name} left behind");
}

#[test]
fn veth_pair_between_namespaces_carries_pings() {
    let a = Netns::new(PREFIX).unwrap();
    let b = Netns::new(PREFIX).unwrap();
    a.add_veth("va", "vb", Some(&b), Some(Queues { rx: 4, tx: 2 }))
        .unwrap();
    assert_eq!(
        link::queues(Some(a.name()), "va").unwrap(),
        Queues { rx: 4, tx: 2 }
    );
    let mac = Mac([0x02, 0, 0, 0, 0xaa, 0x01]);
    a.set_mac("va", mac).unwrap();
    assert_eq!(a.mac("va").unwrap(), mac);
    a.set_mtu("va", 9000).unwrap();
    b.set_mtu("vb", 9000).unwrap();
    a.add_addr("va", "10.201.0.1/24").unwrap();
    b.add_addr("vb", "10.201.0.2/24").unwrap();
    a.set_up("va").unwrap();
    b.set_up("vb").unwrap();
    wait_until(Duration::from_secs(5), Duration::from_millis(10), || {
        a.is_lower_up("va").unwrap_or(false) && b.is_lower_up("vb").unwrap_or(false)
    })
    .unwrap();
    // A jumbo ping proves the MTU, the addresses and the link.
    let out = a
        .run(
            "ping",
            ["-c", "1", "-W", "2", "-s", "8000", "-M", "do", "10.201.0.2"],
        )
        .unwrap();
    assert!(out.contains("1 received"), "{out}");
    // The link exists only inside its namespace.
    assert!(!link::exists(None, "va"));
    let index = a.ifindex("va").unwrap();
    let seen = a
        .run_in(|| {
            let name = std::ffi::CString::new("va").unwrap();
            // SAFETY: if_nametoindex reads a NUL-terminated string we own.
            unsafe { libc::if_nametoindex(name.as_ptr()) }
        })
        .unwrap();
    assert_eq!(seen, index);
}

#[test]
fn bridge_ports_forward_between_namespaces() {
    let br = Netns::new(PREFIX).unwrap();
    let a = Netns::new(PREFIX).unwrap();
    let b = Netns::new(PREFIX).unwrap();
    for ns in [&br, &a, &b] {
        ns.disable_ipv6().unwrap();
    }
    br.add_bridge("br0").unwrap();
    br.add_veth("pa", "ea", Some(&a), None).unwrap();
    br.add_veth("pb", "eb", Some(&b), None).unwrap();
    br.enslave("pa", "br0").unwrap();
    br.enslave("pb", "br0").unwrap();
    for port in ["br0", "pa", "pb"] {
        br.set_up(port).unwrap();
    }
    a.add_addr("ea", "10.202.0.1/24").unwrap();
    b.add_addr("eb", "10.202.0.2/24").unwrap();
    a.set_up("ea").unwrap();
    b.set_up("eb").unwrap();
    wait_until(Duration::from_secs(5), Duration::from_millis(10), || {
        ["pa", "pb"]
            .iter()
            .all(|port| br.bridge_port_state(port).ok().as_deref() == Some("forwarding"))
    })
    .unwrap();
    br.add_fdb_static("pb", Mac([2, 0, 0, 0, 0xbb, 1])).unwrap();
    let fdb = link::bridge(Some(br.name()), ["fdb", "show", "dev", "pb"]).unwrap();
    assert!(fdb.contains("02:00:00:00:bb:01"), "{fdb}");
    let out = a.run("ping", ["-c", "1", "-W", "2", "10.202.0.2"]).unwrap();
    assert!(out.contains("1 received"), "{out}");
}

#[test]
fn tap_bridge_has_every_tap_as_a_port() {
    let ns = Netns::new(PREFIX).unwrap();
    ns.add_tap_bridge("br0", &["tap0", "tap1"]).unwrap();
    for tap in ["tap0", "tap1"] {
        let details = ns.link_details(tap).unwrap();
        assert!(details.contains("tun type tap"), "{details}");
        assert!(details.contains("master br0"), "{details}");
    }
    assert!(ns.link_details("br0").unwrap().contains("bridge"));
}

#[test]
fn veth_in_the_current_namespace_is_moved_and_deleted() {
    let ns = Netns::new(PREFIX).unwrap();
    let name = link::unique_ifname("tb").unwrap();
    let peer = link::unique_ifname("tb").unwrap();
    let pair = VethPair::create(None, &name, &peer, None, None).unwrap();
    assert!(link::exists(None, &name));
    ns.adopt_link(&peer).unwrap();
    assert!(!link::exists(None, &peer));
    assert!(link::exists(Some(ns.name()), &peer));
    drop(pair);
    assert!(!link::exists(None, &name));
    assert!(!link::exists(Some(ns.name()), &peer));
}

#[test]
fn command_runs_inside_the_namespace() {
    let ns = Netns::new(PREFIX).unwrap();
    ns.add_veth("inside0", "inside1", None, None).unwrap();
    let mut command = ns.command("ip");
    command.args(["-o", "link", "show"]);
    let out = command.output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("inside0"), "{text}");
    assert_eq!(text.lines().count(), 3, "{text}");
}

#[test]
fn sweep_removes_namespaces_of_dead_processes_only() {
    // A PID that is certainly dead: a child we started and reaped.
    let mut child = Command::new("true").spawn().unwrap();
    let dead_pid = child.id();
    child.wait().unwrap();
    let prefix = "vswsweep";
    let stale = format!("{prefix}-{dead_pid}-0");
    Command::new("ip")
        .args(["netns", "add", &stale])
        .status()
        .unwrap();
    assert!(netns_exists(&stale));
    let live = Netns::new(prefix).unwrap();
    let deleted = sweep_stale(prefix).unwrap();
    assert!(deleted.contains(&stale), "{deleted:?}");
    assert!(!netns_exists(&stale));
    assert!(netns_exists(live.name()));
}

#[test]
fn link_checks_and_ping() {
    let ns = Netns::new(PREFIX).unwrap();
    assert!(ns.ping("127.0.0.1", 1, Duration::from_secs(1)).unwrap());
    ns.add_veth("pa", "pb", None, None).unwrap();
    assert!(!ns.has_xdp("pa").unwrap());
    assert_eq!(ns.promiscuity("pa").unwrap(), 0);
    ns.set_promisc("pa", true).unwrap();
    assert_eq!(ns.promiscuity("pa").unwrap(), 1);
    assert!(ns.link_details("pa").unwrap().contains("veth"));
    assert!(ns.has_xdp("nonexistent0").is_err());
}
