//! Per-frame timestamps of test-frame pings and pongs crossing the e1000's
//! backend (`--e1000 trace=N`): when a frame the guest sent is taken from
//! its TX ring into the port (`tx`), and when a frame from the port is
//! consumed from the port into the guest's RX ring (`rx`; also a frame the
//! model then drops). Up to N samples, each the frame's kind, sequence
//! number, the timestamp it carries (its sender's clock: a guest's TSC in
//! ns, or `vswitch pktgen`'s CLOCK_MONOTONIC), the host's TSC and
//! CLOCK_MONOTONIC in nanoseconds at the crossing, the
//! clock every process on the host shares (the switch daemon, `vswitch
//! pktgen`, other VMMs), so a benchmark joins the samples of several
//! processes by sequence number (docs/latency-breakdown.md). With the
//! guest's TSC offset ([`guest_tsc_offset`]: guest TSC = host TSC + offset
//! under KVM) a guest's stamp is put on the host's TSC too.
//!
//! Off by default; then the backend checks one bool per frame and nothing
//! else. The buffer is allocated when tracing is enabled, before the
//! sandbox, and never grows: samples past N are counted, not kept.

use std::sync::Mutex;

use serde::ser::SerializeMap;
use serde::{Serialize, Serializer};
use testframe::Kind;

use crate::timer::monotonic_ns;

/// Largest `trace=` accepted.
pub const MAX_SAMPLES: usize = 1 << 20;

/// Which way a frame crossed the backend.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Direction {
    /// Taken from the guest's TX ring into the port.
    Tx,
    /// Written from the port into the guest's RX ring.
    Rx,
}

/// One traced frame.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Sample {
    direction: Direction,
    pong: bool,
    seq: u64,
    ns: u64,
    stamp: u64,
    tsc: u64,
}

#[derive(Debug, Default)]
struct Recorder {
    capacity: usize,
    samples: Vec<Sample>,
    dropped: u64,
    guest_tsc_offset: Option<i64>,
}

/// The trace buffer (in the VMM's [`crate::stats::Stats`]).
#[derive(Debug, Default)]
pub struct LatencyTrace {
    recorder: Mutex<Option<Recorder>>,
}

impl LatencyTrace {
    /// Turns tracing on with room for `capacity` samples (at most
    /// [`MAX_SAMPLES`]).
    pub fn enable(&self, capacity: usize) {
        let capacity = capacity.min(MAX_SAMPLES);
        *self.lock() = Some(Recorder {
            capacity,
            samples: Vec::with_capacity(capacity),
            dropped: 0,
            guest_tsc_offset: None,
        });
    }

    /// Records the guest's TSC offset (guest TSC - host TSC) if tracing is on.
    pub fn set_guest_tsc_offset(&self, offset: Option<i64>) {
        if let Some(r) = self.lock().as_mut() {
            r.guest_tsc_offset = offset;
        }
    }

    /// Whether tracing is on.
    pub fn is_on(&self) -> bool {
        self.lock().is_some()
    }

    /// Whether tracing is off (for `skip_serializing_if`).
    pub fn is_off(&self) -> bool {
        !self.is_on()
    }

    /// Records `frame` if it is a test-frame ping or pong (anything else,
    /// and frames whose header does not verify, are ignored).
    pub fn record(&self, direction: Direction, frame: &[u8]) {
        // Cheap filter first: data frames (throughput runs) skip the
        // checksum of a full parse.
        const KIND_OFFSET: usize = 18;
        let ping_or_pong = frame.get(12..14) == Some(&testframe::ETHERTYPE.to_be_bytes()[..])
            && matches!(frame.get(KIND_OFFSET), Some(&k) if k == Kind::Ping as u8 || k == Kind::Pong as u8);
        if !ping_or_pong {
            return;
        }
        let Ok(header) = testframe::parse(frame) else {
            return;
        };
        let pong = match header.kind {
            Kind::Ping => false,
            Kind::Pong => true,
            Kind::Data => return,
        };
        let sample = Sample {
            direction,
            pong,
            seq: header.seq,
            ns: monotonic_ns(),
            stamp: header.timestamp_ns,
            tsc: host_tsc(),
        };
        if let Some(r) = self.lock().as_mut() {
            if r.samples.len() < r.capacity {
                r.samples.push(sample);
            } else {
                r.dropped += 1;
            }
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Option<Recorder>> {
        self.recorder.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// `{"clock": "monotonic_ns", "guest_tsc_offset": ticks or null,
/// "tx_ping": [[seq, ns, stamp, host_tsc], ...], "rx_ping": ..., "tx_pong":
/// ..., "rx_pong": ..., "dropped": n}`, or null when off.
impl Serialize for LatencyTrace {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let guard = self.lock();
        let Some(r) = guard.as_ref() else {
            return serializer.serialize_none();
        };
        let pick = |direction: Direction, pong: bool| -> Vec<[u64; 4]> {
            r.samples
                .iter()
                .filter(|s| s.direction == direction && s.pong == pong)
                .map(|s| [s.seq, s.ns, s.stamp, s.tsc])
                .collect()
        };
        let mut map = serializer.serialize_map(Some(7))?;
        map.serialize_entry("clock", "monotonic_ns")?;
        map.serialize_entry("guest_tsc_offset", &r.guest_tsc_offset)?;
        map.serialize_entry("tx_ping", &pick(Direction::Tx, false))?;
        map.serialize_entry("rx_ping", &pick(Direction::Rx, false))?;
        map.serialize_entry("tx_pong", &pick(Direction::Tx, true))?;
        map.serialize_entry("rx_pong", &pick(Direction::Rx, true))?;
        map.serialize_entry("dropped", &r.dropped)?;
        map.end()
    }
}

/// The host's TSC.
fn host_tsc() -> u64 {
    // SAFETY: RDTSC has no preconditions on x86_64.
    unsafe { core::arch::x86_64::_rdtsc() }
}

/// The guest's TSC minus the host's, from the vCPU's IA32_TSC (KVM_GET_MSRS,
/// between two host TSC reads); `None` if KVM does not tell.
pub fn guest_tsc_offset(vcpu: &kvm_ioctls::VcpuFd) -> Option<i64> {
    const IA32_TSC: u32 = 0x10;
    let mut msrs = kvm_bindings::Msrs::from_entries(&[kvm_bindings::kvm_msr_entry {
        index: IA32_TSC,
        ..Default::default()
    }])
    .ok()?;
    let before = host_tsc();
    let read = vcpu.get_msrs(&mut msrs).ok()?;
    let after = host_tsc();
    let guest = msrs.as_slice().first().filter(|_| read == 1)?.data;
    let host = before / 2 + after / 2;
    Some(guest.wrapping_sub(host) as i64)
}

#[cfg(test)]
mod tests {
    use super::*;
    use testframe::FrameTemplate;

    fn frame(kind: Kind, seq: u64) -> Vec<u8> {
        let template = FrameTemplate::new([2; 6], [4; 6], kind, 60).unwrap();
        let mut f = vec![0u8; 60];
        template.write(&mut f, seq, 1000 + seq);
        f
    }

    #[test]
    fn records_pings_and_pongs_up_to_its_capacity() {
        let trace = LatencyTrace::default();
        trace.record(Direction::Tx, &frame(Kind::Ping, 1));
        assert!(trace.is_off(), "off by default: nothing kept");
        assert_eq!(
            serde_json::to_value(&trace).unwrap(),
            serde_json::Value::Null
        );
        trace.enable(3);
        trace.record(Direction::Tx, &frame(Kind::Ping, 1));
        trace.record(Direction::Rx, &frame(Kind::Data, 2));
        trace.record(Direction::Rx, &[0u8; 20]);
        trace.record(Direction::Rx, &frame(Kind::Pong, 1));
        trace.record(Direction::Tx, &frame(Kind::Pong, 7));
        trace.record(Direction::Rx, &frame(Kind::Ping, 8));
        let v = serde_json::to_value(&trace).unwrap();
        assert_eq!(v["clock"], "monotonic_ns");
        assert_eq!(v["tx_ping"][0][0], 1);
        assert_eq!(v["tx_ping"][0][2], 1001);
        assert!(v["tx_ping"][0][3].as_u64().unwrap() > 0);
        assert_eq!(v["guest_tsc_offset"], serde_json::Value::Null);
        trace.set_guest_tsc_offset(Some(-5));
        assert_eq!(
            serde_json::to_value(&trace).unwrap()["guest_tsc_offset"],
            -5
        );
        assert_eq!(v["rx_pong"][0][0], 1);
        assert_eq!(v["tx_pong"][0][0], 7);
        assert_eq!(v["rx_ping"].as_array().unwrap().len(), 0);
        assert_eq!(v["dropped"], 1);
        assert!(v["rx_pong"][0][1].as_u64().unwrap() >= v["tx_ping"][0][1].as_u64().unwrap());
    }
}
