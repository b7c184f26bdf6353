//! A batched AF_PACKET sender and receiver of test frames, the traffic
//! source and sink of the peer benchmarks.
//!
//! - [`sender`]: `sendmmsg` of a batch of frames per system call, or a
//!   `PACKET_TX_RING` (TPACKET_V2) flushed with one `send` per batch; both
//!   with `PACKET_QDISC_BYPASS`, so a frame goes straight to the driver.
//! - [`receiver`]: a `PACKET_RX_RING` with TPACKET_V3 blocks: the kernel
//!   fills whole blocks and wakes the reader once per block (or block
//!   timeout). Every frame is verified with [`testframe::parse`]; sequence
//!   gaps, reordering, corruption and foreign frames are counted.
//!
//! [`spawn_receiver`] and [`send_in`] run them inside a [`Netns`] (on a
//! thread that entered it); [`measure_pair`] drives one sender and one
//! receiver for a while and reports the delivered rate; [`veth_receive`] is
//! that over a single veth.

pub mod receiver;
pub mod sender;
mod socket;

use std::time::Duration;

use serde::Serialize;
use testbed::{Mac, Netns};

pub use receiver::{spawn_receiver, ReceiverConfig, ReceiverStats};
pub use sender::{send_in, SenderConfig, SenderStats, TxMethod};

/// Frames per system call unless configured otherwise.
pub const DEFAULT_BATCH: usize = 256;
/// Largest batch: the kernel's limit for one `sendmmsg` (UIO_MAXIOV).
pub const MAX_BATCH: usize = 1024;
/// How long [`measure_pair`] waits for frames in flight after the sender
/// stopped.
const DRAIN_TIMEOUT: Duration = Duration::from_secs(1);

/// Why an AF_PACKET sender or receiver failed.
#[derive(Debug, thiserror::Error)]
pub enum AfPacketError {
    /// A system call failed.
    #[error("{what}")]
    Io {
        /// The call and its object.
        what: String,
        /// The error number.
        #[source]
        source: std::io::Error,
    },
    /// The configuration cannot work (frame size, batch, interface).
    #[error("invalid configuration: {0}")]
    Config(String),
    /// Setting up or entering a namespace failed.
    #[error(transparent)]
    Testbed(#[from] testbed::Error),
    /// The kernel rejected a frame in the transmit ring.
    #[error("the kernel marked transmit frame {0} as wrongly formatted")]
    WrongFormat(usize),
    /// The receiver thread did not report ready in time.
    #[error("receiver on {0} did not become ready")]
    NotReady(String),
    /// A sender or receiver thread panicked.
    #[error("{0} thread panicked")]
    Panicked(&'static str),
}

type Result<T, E = AfPacketError> = std::result::Result<T, E>;

/// How a sender/receiver pair is driven.
#[derive(Clone, Debug)]
pub struct PeerConfig {
    /// Frame length without FCS (64 and 1514 in the standard runs).
    pub frame_len: usize,
    /// How long the sender sends.
    pub duration: Duration,
    /// Frames per system call.
    pub batch: usize,
    /// How the sender hands frames to the kernel.
    pub method: TxMethod,
}

impl PeerConfig {
    /// The standard run: `frame_len` bytes for `duration`, sendmmsg
    /// batches of [`DEFAULT_BATCH`].
    pub fn new(frame_len: usize, duration: Duration) -> PeerConfig {
        PeerConfig {
            frame_len,
            duration,
            batch: DEFAULT_BATCH,
            method: TxMethod::Sendmmsg,
        }
    }
}

/// The result of one peer measurement: one table row, one JSON object.
#[derive(Clone, Debug, Serialize)]
pub struct PeerResult {
    /// What was measured (`linux-bridge`, `af-packet-veth`).
    pub case: String,
    /// Frame length without FCS.
    pub frame_len: usize,
    /// How the sender handed frames to the kernel.
    pub tx_method: TxMethod,
    /// Frames per system call.
    pub batch: usize,
    /// Sending time in seconds (the rates are over this time).
    pub seconds: f64,
    /// Frames the kernel accepted from the sender.
    pub sent: u64,
    /// Valid frames the receiver got.
    pub received: u64,
    /// Sent but not received.
    pub lost: u64,
    /// Frames that failed verification.
    pub corrupt: u64,
    /// Frames out of sequence order.
    pub reordered: u64,
    /// Frames that were not ours (other traffic on the link).
    pub foreign: u64,
    /// Frames dropped at the receiver's full ring.
    pub rx_ring_drops: u64,
    /// Send calls refused for lack of room.
    pub tx_refusals: u64,
    /// Sent frames per second, in millions.
    pub tx_mpps: f64,
    /// Received frames per second, in millions.
    pub mpps: f64,
    /// Received frame bits per second, in billions (frame bytes only: no
    /// preamble, gap or FCS).
    pub gbps: f64,
    /// Sending time per received frame, in nanoseconds.
    pub ns_per_pkt: f64,
}

impl PeerResult {
    fn new(case: &str, config: &PeerConfig, tx: &SenderStats, rx: &ReceiverStats) -> PeerResult {
        let seconds = tx.seconds.max(f64::MIN_POSITIVE);
        let received = rx.packets;
        PeerResult {
            case: case.to_string(),
            frame_len: config.frame_len,
            tx_method: config.method,
            batch: config.batch,
            seconds: tx.seconds,
            sent: tx.packets,
            received,
            lost: tx.packets.saturating_sub(received),
            corrupt: rx.corrupt,
            reordered: rx.reordered,
            foreign: rx.foreign,
            rx_ring_drops: rx.kernel_drops,
            tx_refusals: tx.drops,
            tx_mpps: tx.packets as f64 / seconds / 1e6,
            mpps: received as f64 / seconds / 1e6,
            gbps: rx.bytes as f64 * 8.0 / seconds / 1e9,
            ns_per_pkt: if received > 0 {
                seconds * 1e9 / received as f64
            } else {
                f64::INFINITY
            },
        }
    }
}

/// Sends from `tx_if` in `tx_ns` to `rx_if` in `rx_ns` (frames addressed
/// from the one's MAC to the other's) for the configured time and reports
/// what arrived. The links must be up.
pub fn measure_pair(
    case: &str,
    tx_ns: &Netns,
    tx_if: &str,
    rx_ns: &Netns,
    rx_if: &str,
    config: &PeerConfig,
) -> Result<PeerResult> {
    let src = tx_ns.mac(tx_if)?;
    let dst = rx_ns.mac(rx_if)?;
    let receiver = spawn_receiver(
        rx_ns,
        ReceiverConfig {
            ifname: rx_if.to_string(),
            expect_src: Some(src),
            max_duration: config.duration + Duration::from_secs(10),
        },
    )?;
    let tx = send_in(
        tx_ns,
        &SenderConfig {
            ifname: tx_if.to_string(),
            frame_len: config.frame_len,
            src,
            dst,
            batch: config.batch,
            duration: config.duration,
            max_packets: u64::MAX,
            method: config.method,
        },
    )?;
    // Frames still in flight (in a ring block not yet handed over) arrive
    // within the block timeout; give up on the rest after DRAIN_TIMEOUT.
    let _ = testbed::wait_until(DRAIN_TIMEOUT, Duration::from_millis(5), || {
        receiver.packets() >= tx.packets
    });
    std::thread::sleep(Duration::from_millis(
        2 * u64::from(receiver::RX_BLOCK_TIMEOUT_MS),
    ));
    let rx = receiver.finish()?;
    Ok(PeerResult::new(case, config, &tx, &rx))
}

/// AF_PACKET receive on one veth: the sender on one end (in its own
/// namespace), the receiver on the other (in another). The baseline for
/// the NIC benchmarks and for [`crate::linux_bridge::linux_bridge`].
pub fn veth_receive(config: &PeerConfig) -> Result<PeerResult> {
    let tx_ns = Netns::new(testbed::DEFAULT_PREFIX)?;
    let rx_ns = Netns::new(testbed::DEFAULT_PREFIX)?;
    for ns in [&tx_ns, &rx_ns] {
        ns.disable_ipv6()?;
    }
    tx_ns.add_veth("tx0", "rx0", Some(&rx_ns), None)?;
    let mtu = mtu_for(config.frame_len);
    tx_ns.set_mtu("tx0", mtu)?;
    rx_ns.set_mtu("rx0", mtu)?;
    tx_ns.set_mac("tx0", Mac([0x02, 0x76, 0x73, 0x77, 0x00, 0x01]))?;
    rx_ns.set_mac("rx0", Mac([0x02, 0x76, 0x73, 0x77, 0x00, 0x02]))?;
    tx_ns.set_up("tx0")?;
    rx_ns.set_up("rx0")?;
    testbed::wait_until(Duration::from_secs(5), Duration::from_millis(10), || {
        tx_ns.is_lower_up("tx0").unwrap_or(false) && rx_ns.is_lower_up("rx0").unwrap_or(false)
    })
    .map_err(testbed::Error::from)?;
    measure_pair("af-packet-veth", &tx_ns, "tx0", &rx_ns, "rx0", config)
}

/// The MTU links need for frames of `frame_len` bytes (at least 1500).
pub fn mtu_for(frame_len: usize) -> u32 {
    (frame_len.saturating_sub(14) as u32).max(1500)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn short_run(method: TxMethod, frame_len: usize) {
        let config = PeerConfig {
            frame_len,
            duration: Duration::from_millis(300),
            batch: 64,
            method,
        };
        let result = veth_receive(&config).unwrap();
        assert!(result.sent > 1000, "{result:?}");
        assert_eq!(result.corrupt, 0, "{result:?}");
        assert_eq!(result.reordered, 0, "{result:?}");
        assert!(result.received > 0, "{result:?}");
        // Every frame is accounted for: received, or dropped at the
        // receiver's full ring (an unoptimised test build verifies slowly).
        assert_eq!(
            result.received + result.rx_ring_drops,
            result.sent,
            "{result:?}"
        );
    }

    #[test]
    fn sendmmsg_frames_cross_a_veth_intact() {
        short_run(TxMethod::Sendmmsg, 64);
        short_run(TxMethod::Sendmmsg, 1514);
    }

    #[test]
    fn tx_ring_frames_cross_a_veth_intact() {
        short_run(TxMethod::TxRing, 60);
        short_run(TxMethod::TxRing, 1514);
    }
}
