//! The line-rate source into a veth whose peer counts with the XDP sink, in
//! namespaces of its own, with each mechanism this kernel permits.

use std::time::Duration;

use bench::line_source::{FrameSpec, LineSource, Mechanism};
use bench::live_source;
use bench::xdp_sink::{SinkVerdict, XdpSink};
use testbed::Netns;

fn deliver(mechanism: Mechanism, size: usize) {
    let a = Netns::new(testbed::DEFAULT_PREFIX).expect("namespace");
    let b = Netns::new(testbed::DEFAULT_PREFIX).expect("namespace");
    a.add_veth("g0", "s0", Some(&b), None).expect("veth");
    a.set_up("g0").expect("up");
    b.set_up("s0").expect("up");
    testbed::wait_until(Duration::from_secs(5), Duration::from_millis(10), || {
        a.is_lower_up("g0").unwrap_or(false) && b.is_lower_up("s0").unwrap_or(false)
    })
    .expect("veth up");
    let sink = b
        .run_in(|| XdpSink::attach("s0", SinkVerdict::Drop))
        .expect("enter")
        .expect("sink");
    let spec = FrameSpec {
        size,
        dst: [2, 0, 0, 0, 0, 2],
        src: [2, 0, 0, 0, 0, 1],
        flows: 4,
    };
    let sent = a
        .run_in(
            || -> Result<(Mechanism, u64), bench::bpf_syscall::BpfError> {
                let mut source = LineSource::open("g0", &spec, Some(mechanism))?;
                let sent = source.send(200_000)?;
                Ok((source.mechanism(), sent))
            },
        )
        .expect("enter")
        .expect("send");
    assert_eq!(sent.0, mechanism);
    assert!(sent.1 >= 200_000, "{sent:?}");
    // Copies are dropped only when the peer's ring overflows, which a
    // counting sink on an idle machine keeps up with; allow a little.
    testbed::wait_until(Duration::from_secs(5), Duration::from_millis(10), || {
        sink.packets().unwrap_or(0) >= sent.1 * 99 / 100
    })
    .unwrap_or_else(|_| {
        panic!(
            "{mechanism:?} {size} B: sent {}, the sink counted {:?}",
            sent.1,
            sink.packets()
        )
    });
}

#[test]
fn tc_clone_frames_reach_the_peers_xdp_sink() {
    deliver(Mechanism::TcClone, 64);
    deliver(Mechanism::TcClone, 1514);
}

#[test]
fn live_frames_reach_the_peers_xdp_sink() {
    // A kernel policy, not a missing package: some sandboxes refuse live
    // frames (EPERM) and the source falls back to tc clones there.
    if let Err(e) = live_source::probe() {
        eprintln!(
            "skipped: this kernel refuses BPF_F_TEST_XDP_LIVE_FRAMES: {}",
            switch_port::error_chain::Chain(&e)
        );
        return;
    }
    deliver(Mechanism::LiveFrames, 64);
    deliver(Mechanism::LiveFrames, 1514);
}

#[test]
fn a_live_frames_refusal_is_the_kernels_policy_not_a_malformed_request() {
    let Err(refusal) = live_source::probe() else {
        return; // permitted: nothing to explain
    };
    // The same request without the live-frames flag runs: the program
    // drops the frame (XDP_DROP = 1).
    let drop = bench::bpf_syscall::load_xdp(
        "linerate_probe",
        &[
            bench::bpf_syscall::insn::mov_imm(0, 1),
            bench::bpf_syscall::insn::exit(),
        ],
    )
    .expect("load");
    assert_eq!(
        bench::bpf_syscall::test_run_once(&drop, &[0u8; 64]).expect("run without live frames"),
        1
    );
    // The kernel refused the run itself (EPERM by policy; EINVAL before
    // Linux 5.18), not the program.
    assert!(
        matches!(refusal, bench::bpf_syscall::BpfError::Syscall { .. }),
        "{refusal:?}"
    );
}
