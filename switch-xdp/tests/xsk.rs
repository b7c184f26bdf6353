//! AF_XDP sockets on a veth inside network namespaces, fed by the steering
//! program: receive from the peer, transmit to it, several queues, modes,
//! limits, promiscuous mode.
mod common;

use common::{
    eventually, inside, test_frame, test_frame_seq, PacketSocket, Protocol, VethPair, PEER_IF,
    XDP_IF,
};
use std::time::Duration;
use switch_xdp::{
    iface, AttachMode, AttachPolicy, Promiscuous, SteeringConfig, XdpSteering, XskConfig, XskError,
    XskQueue,
};

/// Receives test frames from `xsk` until `want` arrived or 5 s passed.
fn receive_seqs(xsk: &mut XskQueue, want: usize) -> Vec<u64> {
    let mut seqs = Vec::new();
    eventually(Duration::from_secs(5), || {
        let _ = xsk.wait_readable(Duration::from_millis(20));
        xsk.receive(256, |frame| seqs.extend(test_frame_seq(frame)));
        seqs.len() >= want
    });
    seqs
}

#[test]
fn receives_every_frame_the_peer_sends() {
    let pair = VethPair::new();
    let (dst, src) = (pair.xdp_mac(), pair.peer_mac());
    const FRAMES: u64 = 5000;
    inside(&pair.xdp, || {
        let mut steering = XdpSteering::attach(XDP_IF, &SteeringConfig::default()).unwrap();
        // Small rings: the frames must be recycled through the fill ring many times.
        let config = XskConfig {
            rx_frames: 256,
            tx_frames: 64,
            ..Default::default()
        };
        let mut xsk = XskQueue::open(XDP_IF, 0, &config).unwrap();
        steering.register_socket(&xsk).unwrap();

        let mut seqs = Vec::new();
        inside(&pair.peer, || {
            let sender = PacketSocket::open(PEER_IF, Protocol::All).unwrap();
            // Bursts smaller than the ring, each drained before the next.
            for burst in 0..FRAMES / 100 {
                let frames: Vec<Vec<u8>> = (burst * 100..(burst + 1) * 100)
                    .map(|seq| test_frame(dst, src, seq, 64 + (seq % 1400) as usize))
                    .collect();
                assert_eq!(sender.send_batch(&frames).unwrap(), frames.len());
                let got = receive_seqs(&mut xsk, 100);
                assert_eq!(got.len(), 100, "burst {burst}");
                seqs.extend(got);
            }
        });
        assert_eq!(
            seqs,
            (0..FRAMES).collect::<Vec<_>>(),
            "every frame, in order, intact"
        );

        let stats = xsk.stats().unwrap();
        assert_eq!(stats.rx_packets, FRAMES);
        assert_eq!(stats.invalid_descs, 0);
        assert_eq!(
            stats.rx_dropped + stats.rx_fill_ring_empty + stats.rx_ring_full,
            0
        );
        let counters = steering.counters(0).unwrap();
        assert_eq!(counters.redirected, FRAMES);
        assert_eq!(
            counters.passed + counters.dropped + counters.redirect_failures,
            0
        );
    });
}

#[test]
fn transmitted_frames_reach_the_peer() {
    let pair = VethPair::new();
    let (dst, src) = (pair.peer_mac(), pair.xdp_mac());
    const FRAMES: u64 = 1000;
    let receiver = pair.peer_socket();
    inside(&pair.xdp, || {
        let config = XskConfig {
            rx_frames: 64,
            tx_frames: 128,
            ..Default::default()
        };
        let mut xsk = XskQueue::open(XDP_IF, 0, &config).unwrap();
        assert!(!xsk.is_zero_copy());
        let frames: Vec<Vec<u8>> = (0..FRAMES)
            .map(|seq| test_frame(dst, src, seq, 60))
            .collect();
        let mut pending = frames.iter().map(Vec::as_slice);
        let mut taken = 0;
        let mut received = Vec::new();
        eventually(Duration::from_secs(10), || {
            taken += xsk.transmit(pending.by_ref());
            while let Some(frame) = receiver.recv(Duration::ZERO).unwrap() {
                received.extend(test_frame_seq(&frame));
            }
            taken == FRAMES as usize && received.len() == FRAMES as usize
        });
        assert_eq!(taken, FRAMES as usize);
        assert_eq!(received, (0..FRAMES).collect::<Vec<_>>());
        assert!(eventually(Duration::from_secs(2), || {
            xsk.reclaim();
            xsk.tx_in_flight() == 0
        }));
        let stats = xsk.stats().unwrap();
        assert_eq!(stats.tx_packets, FRAMES);
        assert_eq!(stats.tx_completed, FRAMES);
        assert_eq!(
            stats.tx_invalid_descs + stats.invalid_descs + stats.tx_rejected,
            0
        );
        assert_eq!(xsk.tx_free(), 128);
    });
}

#[test]
fn empty_and_oversized_frames_are_refused_and_counted() {
    let pair = VethPair::new();
    inside(&pair.xdp, || {
        let mut xsk = XskQueue::open(XDP_IF, 0, &XskConfig::default()).unwrap();
        assert_eq!(xsk.max_frame_len(), 2048 - 256);
        let big = vec![0u8; xsk.max_frame_len() + 1];
        let fits = vec![0u8; xsk.max_frame_len()];
        let frames = [&[][..], &big[..], &fits[..]];
        assert_eq!(xsk.transmit(frames.into_iter()), 3);
        let stats = xsk.stats().unwrap();
        assert_eq!(stats.tx_rejected, 2);
        assert_eq!(stats.tx_packets, 1);
    });
}

#[test]
fn each_queue_of_a_multi_queue_veth_feeds_its_own_socket() {
    let pair = VethPair::with_queues(2);
    let (dst, src) = (pair.xdp_mac(), pair.peer_mac());
    const FLOWS: u16 = 128;
    // Both queues are exercised on machines with two CPUs or more.
    let cpus = std::thread::available_parallelism().map_or(1, |n| n.get());
    let cpus = cpus.min(2);
    inside(&pair.xdp, || {
        assert_eq!(iface::rx_queue_count(XDP_IF).unwrap(), 2);
        let mut steering = XdpSteering::attach(XDP_IF, &SteeringConfig::default()).unwrap();
        let mut sockets: Vec<XskQueue> = (0..2)
            .map(|queue| XskQueue::open(XDP_IF, queue, &XskConfig::default()).unwrap())
            .collect();
        for xsk in &sockets {
            steering.register_socket(xsk).unwrap();
        }
        // With PACKET_QDISC_BYPASS the peer picks its TX queue from the
        // sending CPU (cpu % queues), and veth delivers TX queue n to RX
        // queue n: frames sent from CPU q arrive on queue q.
        for cpu in 0..cpus {
            inside(&pair.peer, || {
                testbed::pin_to_cpu(cpu).unwrap();
                let sender = PacketSocket::open(PEER_IF, Protocol::All).unwrap();
                for port in 0..FLOWS {
                    assert!(sender
                        .send(&common::udp_frame(dst, src, 10_000 + port, &[0; 18]))
                        .unwrap());
                }
            });
        }
        let mut per_queue = [0u64; 2];
        let total = u64::from(FLOWS) * cpus as u64;
        eventually(Duration::from_secs(5), || {
            for (queue, xsk) in sockets.iter_mut().enumerate() {
                per_queue[queue] += xsk.receive(256, |_| {}) as u64;
            }
            per_queue.iter().sum::<u64>() >= total
        });
        for (queue, received) in per_queue.iter().enumerate() {
            let counters = steering.counters(queue as u32).unwrap();
            assert_eq!(counters.redirected, *received, "queue {queue}");
            let expected = if queue < cpus { u64::from(FLOWS) } else { 0 };
            assert_eq!(*received, expected, "queue {queue}: {per_queue:?}");
        }
    });
}

#[test]
fn zero_copy_on_veth_is_a_clear_error() {
    let pair = VethPair::new();
    inside(&pair.xdp, || {
        let config = XskConfig {
            zero_copy: true,
            ..Default::default()
        };
        let err = XskQueue::open(XDP_IF, 0, &config).unwrap_err();
        assert!(matches!(err, XskError::ZeroCopyUnsupported { .. }), "{err}");
        assert!(err.to_string().contains("zero-copy"));
    });
}

#[test]
fn invalid_configuration_and_unknown_interface_are_errors() {
    let pair = VethPair::new();
    inside(&pair.xdp, || {
        let bad = XskConfig {
            rx_frames: 100,
            ..Default::default()
        };
        assert!(matches!(
            XskQueue::open(XDP_IF, 0, &bad),
            Err(XskError::InvalidConfig(_))
        ));
        let err = XskQueue::open("vsxnope", 0, &XskConfig::default()).unwrap_err();
        assert!(matches!(err, XskError::Socket { .. }), "{err}");
        let err = XskQueue::open(XDP_IF, 7, &XskConfig::default()).unwrap_err();
        assert!(
            matches!(err, XskError::Socket { .. }),
            "queue 7 of a 1-queue veth: {err}"
        );
    });
}

#[test]
fn mtu_check_against_the_frame_size() {
    let pair = VethPair::new();
    inside(&pair.xdp, || {
        let xsk = XskQueue::open(XDP_IF, 0, &XskConfig::default()).unwrap();
        assert_eq!(
            iface::check_xdp_mtu(XDP_IF, xsk.max_frame_len()).unwrap(),
            1500
        );
        pair.xdp.ip(["link", "set", XDP_IF, "mtu", "3000"]).unwrap();
        assert!(iface::check_xdp_mtu(XDP_IF, xsk.max_frame_len()).is_err());
        // The queue is released asynchronously; `open` waits for it.
        drop(xsk);
        let config = XskConfig {
            frame_size: 4096,
            ..Default::default()
        };
        let big = XskQueue::open(XDP_IF, 0, &config).unwrap();
        assert_eq!(big.max_frame_len(), 4096 - 256);
        assert_eq!(
            iface::check_xdp_mtu(XDP_IF, big.max_frame_len()).unwrap(),
            3000
        );
    });
}

#[test]
fn promiscuous_mode_lasts_as_long_as_its_guard() {
    let pair = VethPair::new();
    let promiscuity = || pair.xdp.promiscuity(XDP_IF).unwrap();
    assert_eq!(promiscuity(), 0);
    inside(&pair.xdp, || {
        let guard = Promiscuous::enable(XDP_IF).unwrap();
        assert_eq!(guard.interface(), XDP_IF);
        assert_eq!(promiscuity(), 1);
        drop(guard);
        // The membership ends when the last reference to the socket closes:
        // a child that another test thread forks holds a copy until it execs.
        testbed::wait_until(Duration::from_secs(5), Duration::from_millis(10), || {
            promiscuity() == 0
        })
        .expect("promiscuity back to 0 once the guard is dropped");
        assert!(Promiscuous::enable("vsxnope").is_err());
    });
}

/// Multi-buffer (jumbo) sockets on a veth at MTU 9000: the frags program,
/// `XDP_USE_SG`, packets of up to 9014 bytes both ways, intact and in order.
#[test]
fn jumbo_frames_cross_a_multi_buffer_socket_both_ways() {
    jumbo_round_trip(AttachPolicy::Driver, AttachMode::Driver);
}

/// The same in generic (skb) XDP, where drivers without native XDP land.
#[test]
fn jumbo_frames_cross_a_multi_buffer_socket_in_skb_mode() {
    jumbo_round_trip(AttachPolicy::Skb, AttachMode::Skb);
}

fn jumbo_round_trip(policy: AttachPolicy, mode: AttachMode) {
    let pair = VethPair::new();
    for (ns, ifname) in [(&pair.xdp, XDP_IF), (&pair.peer, PEER_IF)] {
        ns.ip(["link", "set", ifname, "mtu", "9000"]).unwrap();
    }
    let sizes = [60, 1514, 3840, 3841, 4000, 7680, 7681, 9014];
    let receiver = pair.peer_socket();
    let (xdp_mac, peer_mac) = (pair.xdp_mac(), pair.peer_mac());
    inside(&pair.xdp, || {
        let steering_config = SteeringConfig {
            frags: true,
            policy,
            ..Default::default()
        };
        let mut steering = XdpSteering::attach(XDP_IF, &steering_config).unwrap();
        assert_eq!(steering.mode(), mode);
        let config = XskConfig {
            frame_size: 4096,
            rx_frames: 256,
            tx_frames: 64,
            max_packet: 9018,
            ..Default::default()
        };
        let mut xsk = XskQueue::open(XDP_IF, 0, &config).unwrap();
        steering.register_socket(&xsk).unwrap();
        assert_eq!(xsk.max_frame_len(), 9018);

        // Receive: the peer sends every size, ten rounds.
        let frames: Vec<Vec<u8>> = (0..80u64)
            .map(|seq| test_frame(xdp_mac, peer_mac, seq, sizes[seq as usize % sizes.len()]))
            .collect();
        let mut got = Vec::new();
        inside(&pair.peer, || {
            let sender = PacketSocket::open(PEER_IF, Protocol::All).unwrap();
            for (i, chunk) in frames.chunks(8).enumerate() {
                assert_eq!(sender.send_batch(chunk).unwrap(), chunk.len());
                let target = i * 8 + chunk.len();
                eventually(Duration::from_secs(5), || {
                    let _ = xsk.wait_readable(Duration::from_millis(20));
                    xsk.receive(64, |frame| {
                        got.push((test_frame_seq(frame), frame.len()));
                    });
                    got.len() >= target
                });
            }
        });
        let want: Vec<_> = frames
            .iter()
            .enumerate()
            .map(|(seq, f)| (Some(seq as u64), f.len()))
            .collect();
        assert_eq!(got, want, "every jumbo frame, intact and in order");
        let stats = xsk.stats().unwrap();
        assert_eq!(stats.invalid_descs + stats.rx_broken + stats.rx_too_long, 0);
        // Five sizes of eight are longer than one 4 KiB UMEM frame holds.
        assert_eq!(stats.rx_multi_buffer, 50);

        // Transmit: every size to the peer.
        let frames: Vec<Vec<u8>> = (0..80u64)
            .map(|seq| test_frame(peer_mac, xdp_mac, seq, sizes[seq as usize % sizes.len()]))
            .collect();
        // Bursts of 8, each drained before the next: the peer's socket
        // buffer holds only a few dozen jumbo frames.
        let mut received = Vec::new();
        for (i, chunk) in frames.chunks(8).enumerate() {
            let target = i * 8 + chunk.len();
            let mut pending = chunk.iter().map(Vec::as_slice);
            let mut taken = 0;
            eventually(Duration::from_secs(5), || {
                taken += xsk.transmit(pending.by_ref());
                while let Some(frame) = receiver.recv(Duration::ZERO).unwrap() {
                    if let Some(seq) = test_frame_seq(&frame) {
                        received.push((seq, frame.len()));
                    }
                }
                taken == chunk.len() && received.len() >= target
            });
        }
        let want: Vec<_> = frames
            .iter()
            .enumerate()
            .map(|(seq, f)| (seq as u64, f.len()))
            .collect();
        assert_eq!(received, want);
        assert!(eventually(Duration::from_secs(2), || {
            xsk.reclaim();
            xsk.tx_in_flight() == 0
        }));
        let stats = xsk.stats().unwrap();
        assert_eq!(stats.tx_packets, 80);
        assert_eq!(stats.tx_multi_buffer, 50);
        assert_eq!(stats.tx_invalid_descs + stats.tx_rejected, 0);
        assert_eq!(xsk.tx_free(), 64);
        // Beyond the largest packet: refused and counted.
        let big = vec![0u8; 9019];
        assert_eq!(xsk.transmit([&big[..]].into_iter()), 1);
        assert_eq!(xsk.stats().unwrap().tx_rejected, 1);
    });
}

/// A multi-buffer packet longer than the socket's largest is dropped whole
/// and counted; the packets around it arrive intact.
#[test]
fn a_chain_beyond_the_largest_packet_is_dropped_and_counted() {
    let pair = VethPair::new();
    for (ns, ifname) in [(&pair.xdp, XDP_IF), (&pair.peer, PEER_IF)] {
        ns.ip(["link", "set", ifname, "mtu", "9000"]).unwrap();
    }
    let (xdp_mac, peer_mac) = (pair.xdp_mac(), pair.peer_mac());
    inside(&pair.xdp, || {
        let steering_config = SteeringConfig {
            frags: true,
            ..Default::default()
        };
        let mut steering = XdpSteering::attach(XDP_IF, &steering_config).unwrap();
        let config = XskConfig {
            frame_size: 4096,
            rx_frames: 64,
            tx_frames: 64,
            max_packet: 5000,
            ..Default::default()
        };
        let mut xsk = XskQueue::open(XDP_IF, 0, &config).unwrap();
        steering.register_socket(&xsk).unwrap();
        let frames: Vec<Vec<u8>> = [4000, 9014, 5000, 5001, 100]
            .iter()
            .enumerate()
            .map(|(seq, &len)| test_frame(xdp_mac, peer_mac, seq as u64, len))
            .collect();
        inside(&pair.peer, || {
            let sender = PacketSocket::open(PEER_IF, Protocol::All).unwrap();
            assert_eq!(sender.send_batch(&frames).unwrap(), frames.len());
        });
        let mut got = Vec::new();
        eventually(Duration::from_secs(5), || {
            let _ = xsk.wait_readable(Duration::from_millis(20));
            xsk.receive(64, |frame| got.push(test_frame_seq(frame)));
            got.len() >= 3
        });
        assert_eq!(got, [Some(0), Some(2), Some(4)]);
        let stats = xsk.stats().unwrap();
        assert_eq!(stats.rx_too_long, 2);
        assert_eq!(stats.rx_broken + stats.invalid_descs, 0);
    });
}
