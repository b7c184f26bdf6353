//! A line-rate traffic source for one interface: test frames of one size,
//! MAC pair and flow spread, driven by the fastest mechanism the kernel
//! allows:
//!
//! 1. [`Mechanism::LiveFrames`]: `BPF_PROG_TEST_RUN` with live frames
//!    ([`crate::live_source`]): frames enter the target's peer as
//!    `xdp_frame`s, as from a NIC driver (several Mpps on one core);
//! 2. [`Mechanism::TcClone`]: a tcx egress program that clones each seed
//!    frame [`CloneSource::FANOUT`] times ([`crate::clone_source`]), for
//!    kernels or sandboxes that refuse live frames (EPERM).
//!
//! Both send the same bytes many times, so flows vary by run: with
//! `flows = N` the source MAC's bytes 3 and 4 step through `N` values, one
//! per run (a live-frames call, or a seed), and every run of a flow carries
//! the next sequence number: receivers see runs of identical frames per
//! sender, in order.

use std::time::{Duration, Instant};

use testframe::{FrameTemplate, Kind};

use crate::bpf_syscall::{BpfError, MAX_LIVE_FRAME};
use crate::clone_source::CloneSource;
use crate::live_source::{self, LiveFrames};

/// What the source sends.
#[derive(Clone, Copy, Debug)]
pub struct FrameSpec {
    /// Frame length without FCS (60..=3500).
    pub size: usize,
    /// Destination MAC.
    pub dst: [u8; 6],
    /// Source MAC of flow 0; flow `f` adds `f` to its bytes 3 and 4 (see
    /// [`flow_src`]).
    pub src: [u8; 6],
    /// Number of flows (source MACs), at least 1.
    pub flows: u16,
}

/// How the frames are made.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mechanism {
    /// `BPF_PROG_TEST_RUN` with `BPF_F_TEST_XDP_LIVE_FRAMES`.
    LiveFrames,
    /// tcx egress `bpf_clone_redirect` fan-out of AF_PACKET seeds.
    TcClone,
}

impl Mechanism {
    /// A short name for reports.
    pub fn name(self) -> &'static str {
        match self {
            Mechanism::LiveFrames => "xdp-live-frames",
            Mechanism::TcClone => "tc-clone",
        }
    }
}

/// What a timed run sent.
#[derive(Clone, Copy, Debug, Default)]
pub struct SendStats {
    /// Frames handed to the interface (the kernel drops what the target
    /// cannot take: count at the receiver).
    pub frames: u64,
    /// Seconds of sending.
    pub seconds: f64,
}

impl SendStats {
    /// Frames per second offered.
    pub fn pps(&self) -> f64 {
        self.frames as f64 / self.seconds.max(1e-9)
    }
}

enum Engine {
    Live(LiveFrames),
    Clone(CloneSource),
}

/// The source attached to one interface.
pub struct LineSource {
    engine: Engine,
    templates: Vec<FrameTemplate>,
    frame: Vec<u8>,
    run: u64,
}

/// The source MAC of flow `flow`: bytes 3 and 4 of `base` (big-endian)
/// plus `flow`. The last byte stays, so flows of one base never take the
/// address of a neighbour that differs from it only there (a peer whose
/// address is the base's plus one): a bridge or switch would see that
/// address move and stop delivering to it.
pub fn flow_src(base: [u8; 6], flow: u16) -> [u8; 6] {
    let mut mac = base;
    let mid = u16::from_be_bytes([base[3], base[4]]).wrapping_add(flow);
    mac[3..5].copy_from_slice(&mid.to_be_bytes());
    mac
}

impl LineSource {
    /// Frames per live-frames call: about 10 ms at 64 bytes, so timed runs
    /// stop on time.
    pub const LIVE_RUN: u32 = 1 << 16;

    /// Opens a source into `ifname` (an interface of the calling thread's
    /// namespace) with `mechanism`, or the best one permitted when `None`.
    pub fn open(
        ifname: &str,
        spec: &FrameSpec,
        mechanism: Option<Mechanism>,
    ) -> Result<LineSource, BpfError> {
        if !(testframe::MIN_FRAME_LEN..=MAX_LIVE_FRAME).contains(&spec.size) {
            return Err(BpfError::FrameSize(spec.size));
        }
        let mechanism = mechanism.unwrap_or(if live_source::permitted() {
            Mechanism::LiveFrames
        } else {
            Mechanism::TcClone
        });
        let engine = match mechanism {
            Mechanism::LiveFrames => Engine::Live(LiveFrames::new(ifname, 64)?),
            Mechanism::TcClone => Engine::Clone(CloneSource::attach(ifname, testframe::ETHERTYPE)?),
        };
        let templates = (0..spec.flows.max(1))
            .map(|flow| {
                FrameTemplate::new(spec.dst, flow_src(spec.src, flow), Kind::Data, spec.size)
                    .ok_or(BpfError::FrameSize(spec.size))
            })
            .collect::<Result<Vec<_>, _>>()?;
        Ok(LineSource {
            engine,
            templates,
            frame: vec![0; spec.size],
            run: 0,
        })
    }

    /// The mechanism in use.
    pub fn mechanism(&self) -> Mechanism {
        match self.engine {
            Engine::Live(_) => Mechanism::LiveFrames,
            Engine::Clone(_) => Mechanism::TcClone,
        }
    }

    /// Frames one run sends.
    pub fn run_len(&self) -> u64 {
        match self.engine {
            Engine::Live(_) => u64::from(Self::LIVE_RUN),
            Engine::Clone(_) => CloneSource::PER_SEED,
        }
    }

    /// Sends at least `frames` frames (whole runs); returns how many.
    pub fn send(&mut self, frames: u64) -> Result<u64, BpfError> {
        let mut sent = 0;
        while sent < frames {
            sent += self.one_run()?;
        }
        Ok(sent)
    }

    /// Sends for `duration` (to the end of the run in progress).
    pub fn send_for(&mut self, duration: Duration) -> Result<SendStats, BpfError> {
        let start = Instant::now();
        let mut frames = 0u64;
        while start.elapsed() < duration {
            frames += self.one_run()?;
        }
        Ok(SendStats {
            frames,
            seconds: start.elapsed().as_secs_f64(),
        })
    }

    /// One run: the next flow's frame with its next sequence number.
    fn one_run(&mut self) -> Result<u64, BpfError> {
        let flows = self.templates.len() as u64;
        let (flow, seq) = ((self.run % flows) as usize, self.run / flows);
        self.templates[flow].write(&mut self.frame, seq, 0);
        let sent = match &self.engine {
            Engine::Live(live) => {
                live.run(&self.frame, Self::LIVE_RUN)?;
                u64::from(Self::LIVE_RUN)
            }
            Engine::Clone(clone) => {
                if !clone.send_seed(&self.frame)? {
                    std::thread::yield_now();
                    return Ok(0);
                }
                CloneSource::PER_SEED
            }
        };
        self.run += 1;
        Ok(sent)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flows_step_bytes_3_and_4() {
        let base = [2, 0, 0, 0x12, 0xff, 1];
        assert_eq!(flow_src(base, 0), base);
        assert_eq!(flow_src(base, 1), [2, 0, 0, 0x13, 0x00, 1]);
        assert_eq!(flow_src([2, 0, 0, 0xff, 0xff, 1], 1), [2, 0, 0, 0, 0, 1]);
        // Never the neighbour's address.
        assert!((0..1000).all(|f| flow_src(base, f) != [2, 0, 0, 0x12, 0xff, 2]));
    }
}
