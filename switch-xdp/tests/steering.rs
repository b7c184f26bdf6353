//! The XDP steering program on a veth inside network namespaces: attach and
//! detach (also by a killed process), pass lists, the no-socket action, the
//! counters, the MTU limit of native XDP.
mod common;

use common::{eventually, inside, PacketSocket, Protocol, VethPair, PEER_IF, XDP_IF};
use std::io::{BufRead, BufReader};
use std::process::Stdio;
use std::sync::mpsc;
use std::time::Duration;
use switch_xdp::{
    AttachMode, AttachPolicy, NoSocketAction, PassList, SteeringConfig, SteeringError, XdpSteering,
    XskConfig, XskQueue,
};
use testbed::{Capture, Proc};

const ETH_P_IP: u16 = 0x0800;
const ETH_P_ARP: u16 = 0x0806;
const BROADCAST: [u8; 6] = [0xff; 6];

#[test]
fn attaches_in_driver_mode_and_detaches_on_drop() {
    let pair = VethPair::new();
    inside(&pair.xdp, || {
        let steering = XdpSteering::attach(XDP_IF, &SteeringConfig::default()).unwrap();
        assert_eq!(steering.mode(), AttachMode::Driver);
        assert_eq!(steering.interface(), XDP_IF);
        assert!(pair.has_xdp(), "{}", pair.xdp_link());
        drop(steering);
        assert!(!pair.has_xdp(), "{}", pair.xdp_link());
    });
}

#[test]
fn skb_mode_on_request_and_explicit_detach() {
    let pair = VethPair::new();
    inside(&pair.xdp, || {
        let config = SteeringConfig {
            policy: AttachPolicy::Skb,
            ..Default::default()
        };
        let steering = XdpSteering::attach(XDP_IF, &config).unwrap();
        assert_eq!(steering.mode(), AttachMode::Skb);
        assert!(pair.xdp_link().contains("xdpgeneric"));
        steering.detach();
        assert!(!pair.has_xdp());
    });
}

#[test]
fn unknown_interface_is_a_clear_error() {
    let pair = VethPair::new();
    inside(&pair.xdp, || {
        let err = XdpSteering::attach("vsxnope", &SteeringConfig::default()).unwrap_err();
        assert!(matches!(err, SteeringError::UnknownInterface(_)), "{err}");
    });
}

/// Run by `killed_process_leaves_no_program` in a child process: attaches,
/// says so, then waits to be killed (30 s at most).
#[test]
#[ignore = "helper process of killed_process_leaves_no_program"]
fn helper_attach_and_wait() {
    let Ok(iface) = std::env::var("VSX_HELPER_IFACE") else {
        return;
    };
    let steering = XdpSteering::attach(&iface, &SteeringConfig::default()).unwrap();
    // A line of its own: libtest has already printed "test ... " unterminated.
    println!("\nVSX-ATTACHED {}", steering.mode());
    std::thread::sleep(Duration::from_secs(30));
}

#[test]
fn killed_process_leaves_no_program() {
    let pair = VethPair::new();
    let exe = std::env::current_exe().unwrap();
    let mut command = pair.xdp.command(exe);
    command
        .args([
            "--exact",
            "helper_attach_and_wait",
            "--ignored",
            "--nocapture",
            "--test-threads=1",
        ])
        .env("VSX_HELPER_IFACE", XDP_IF)
        .stderr(Stdio::null());
    // `ip netns exec` execs the test binary, so the PID is the helper's.
    let mut helper = Proc::spawn("helper", command, Capture::Pipes).unwrap();
    let stdout = helper.take_stdout().unwrap();
    let (lines_tx, lines_rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if lines_tx.send(line).is_err() {
                break;
            }
        }
    });
    let attached = loop {
        match lines_rx.recv_timeout(Duration::from_secs(30)) {
            Ok(line) if line.starts_with("VSX-ATTACHED") => break true,
            Ok(_) => continue,
            Err(_) => break false,
        }
    };
    let was_attached = attached && pair.has_xdp();
    helper.kill(libc::SIGKILL).unwrap();
    let status = helper
        .wait_timeout(Duration::from_secs(10))
        .unwrap()
        .unwrap();
    assert!(was_attached, "the helper did not attach");
    assert!(!status.success());
    assert!(
        eventually(Duration::from_secs(5), || !pair.has_xdp()),
        "program left behind: {}",
        pair.xdp_link()
    );
}

#[test]
fn pass_list_of_ethertypes_reaches_the_kernel_stack() {
    let pair = VethPair::new();
    inside(&pair.xdp, || {
        let mut steering = XdpSteering::attach(XDP_IF, &SteeringConfig::default()).unwrap();
        let mut xsk = XskQueue::open(XDP_IF, 0, &XskConfig::default()).unwrap();
        steering.register_socket(&xsk).unwrap();

        // Everything goes to the socket: ARP requests never reach the stack.
        assert!(!pair.ping_from_peer());
        let mut arp_seen = 0;
        xsk.receive(64, |f| {
            arp_seen += usize::from(f[12..14] == ETH_P_ARP.to_be_bytes())
        });
        assert!(
            arp_seen >= 1,
            "the ARP request should have reached the socket"
        );
        assert!(steering.counters(0).unwrap().redirected >= 1);

        let list = PassList {
            ethertypes: [ETH_P_ARP, ETH_P_IP].into(),
            ..Default::default()
        };
        steering.set_pass_list(&list).unwrap();
        assert!(pair.ping_from_peer(), "ARP and IPv4 passed: ping must work");
        let counters = steering.counters(0).unwrap();
        assert!(counters.passed >= 2, "{counters:?}");

        // Other EtherTypes still go to the socket.
        let before = xsk.stats().unwrap().rx_packets;
        let (dst, src) = (pair.xdp_mac(), pair.peer_mac());
        inside(&pair.peer, || {
            let sender = PacketSocket::open(PEER_IF, Protocol::All).unwrap();
            for seq in 0..10 {
                assert!(sender.send(&common::test_frame(dst, src, seq, 64)).unwrap());
            }
        });
        let mut seqs = Vec::new();
        eventually(Duration::from_secs(5), || {
            xsk.receive(64, |f| seqs.extend(common::test_frame_seq(f)));
            seqs.len() == 10
        });
        assert_eq!(seqs, (0..10).collect::<Vec<_>>());
        assert_eq!(xsk.stats().unwrap().rx_packets - before, 10);

        // Emptied again: back to the socket.
        steering.set_pass_list(&PassList::default()).unwrap();
        assert!(steering.pass_list().ethertypes.is_empty());
        pair.peer.ip(["neigh", "flush", "dev", PEER_IF]).unwrap();
        assert!(!pair.ping_from_peer());
    });
}

#[test]
fn pass_list_of_destination_macs_reaches_the_kernel_stack() {
    let pair = VethPair::new();
    let own_mac = pair.xdp_mac();
    inside(&pair.xdp, || {
        let mut steering = XdpSteering::attach(XDP_IF, &SteeringConfig::default()).unwrap();
        let xsk = XskQueue::open(XDP_IF, 0, &XskConfig::default()).unwrap();
        steering.register_socket(&xsk).unwrap();
        assert!(!pair.ping_from_peer());

        steering.pass_mac(BROADCAST).unwrap();
        steering.pass_mac(own_mac).unwrap();
        assert_eq!(steering.pass_list().macs.len(), 2);
        assert!(
            pair.ping_from_peer(),
            "broadcast ARP and unicast to our MAC pass"
        );
    });
}

#[test]
fn queue_without_socket_gets_the_configured_action() {
    let pair = VethPair::new();
    inside(&pair.xdp, || {
        let mut steering = XdpSteering::attach(XDP_IF, &SteeringConfig::default()).unwrap();
        assert_eq!(steering.no_socket_action(), NoSocketAction::Drop);
        assert!(!pair.ping_from_peer());
        let dropped = steering.counters(0).unwrap();
        assert!(
            dropped.dropped >= 1 && dropped.redirect_failures >= 1,
            "{dropped:?}"
        );
        assert_eq!(dropped.passed, 0);

        steering.set_no_socket_action(NoSocketAction::Pass).unwrap();
        assert!(pair.ping_from_peer());
        let passed = steering.counters(0).unwrap();
        assert!(passed.passed >= 2, "{passed:?}");
        assert_eq!(passed.redirected, 0);
        let total = steering.total_counters().unwrap();
        assert_eq!(total, passed, "single-queue veth: queue 0 holds everything");

        // A socket registered and then removed: the action applies again.
        let xsk = XskQueue::open(XDP_IF, 0, &XskConfig::default()).unwrap();
        steering.register_socket(&xsk).unwrap();
        steering.unregister_socket(0).unwrap();
        steering.unregister_socket(0).unwrap();
        assert!(pair.ping_from_peer());
    });
}

#[test]
fn queue_indices_beyond_the_maps_are_refused() {
    let pair = VethPair::new();
    inside(&pair.xdp, || {
        let mut steering = XdpSteering::attach(XDP_IF, &SteeringConfig::default()).unwrap();
        let err = steering
            .unregister_socket(switch_xdp::MAX_QUEUES)
            .unwrap_err();
        assert!(
            matches!(err, SteeringError::QueueOutOfRange { .. }),
            "{err}"
        );
        // The overflow slot of the counters is readable, beyond it is not.
        steering.counters(switch_xdp::MAX_QUEUES).unwrap();
        assert!(steering.counters(switch_xdp::MAX_QUEUES + 1).is_err());
    });
}

#[test]
fn native_xdp_mtu_limit_falls_back_to_skb_mode() {
    let pair = VethPair::new();
    // veth checks the MTU of the peer, where the frames come from.
    pair.xdp.ip(["link", "set", XDP_IF, "mtu", "9000"]).unwrap();
    pair.peer
        .ip(["link", "set", PEER_IF, "mtu", "9000"])
        .unwrap();
    inside(&pair.xdp, || {
        let driver_only = SteeringConfig {
            policy: AttachPolicy::Driver,
            ..Default::default()
        };
        let err = XdpSteering::attach(XDP_IF, &driver_only).unwrap_err();
        assert!(err.to_string().contains("MTU"), "{err}");
        assert!(!pair.has_xdp());

        let steering = XdpSteering::attach(XDP_IF, &SteeringConfig::default()).unwrap();
        assert_eq!(steering.mode(), AttachMode::Skb);
        steering.detach();

        // The multi-buffer program is allowed at that MTU in driver mode.
        let frags = SteeringConfig {
            policy: AttachPolicy::Driver,
            frags: true,
            ..Default::default()
        };
        let steering = XdpSteering::attach(XDP_IF, &frags).unwrap();
        assert_eq!(steering.mode(), AttachMode::Driver);
    });
}

#[test]
fn socket_of_another_interface_is_refused() {
    let pair = VethPair::new();
    pair.xdp
        .ip([
            "link", "add", "name", "vsxc", "type", "veth", "peer", "name", "vsxd",
        ])
        .unwrap();
    pair.xdp.ip(["link", "set", "vsxc", "up"]).unwrap();
    inside(&pair.xdp, || {
        let mut steering = XdpSteering::attach(XDP_IF, &SteeringConfig::default()).unwrap();
        let other = XskQueue::open("vsxc", 0, &XskConfig::default()).unwrap();
        let err = steering.register_socket(&other).unwrap_err();
        assert!(matches!(err, SteeringError::WrongInterface { .. }), "{err}");
    });
}

/// Both programs pass the verifier with every log line live (the log level
/// is a load-time constant: below debug the verifier skips those paths).
#[test]
fn both_programs_load_with_logging_at_debug() {
    log::set_max_level(log::LevelFilter::Debug);
    let pair = VethPair::new();
    inside(&pair.xdp, || {
        for frags in [false, true] {
            let config = SteeringConfig {
                frags,
                ..Default::default()
            };
            let steering = XdpSteering::attach(XDP_IF, &config)
                .unwrap_or_else(|e| panic!("frags {frags}: {}", chain(&e)));
            steering.detach();
        }
    });
}

fn chain(e: &dyn std::error::Error) -> String {
    let mut out = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        let text = s.to_string();
        out.push_str(": ");
        out.push_str(&text[text.len().saturating_sub(600)..]);
        source = s.source();
    }
    out
}
