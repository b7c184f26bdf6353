//! The e1000's network backend: [`PortBackend`], the one adapter from the
//! model's [`NetBackend`] to a [`Port`], counting packets, bytes and kicks,
//! and remembering whether the port ran dry (RX) or full (TX) so the caller
//! knows which kick to ask for.
//!
//! Ports: [`switch`] (a vswitch port: the switch's client library's
//! `PortClient` is a [`Port`] as it is), and two test ports that need no
//! switch, [`sink`] (drops every frame) and [`pong`] (answers test-frame
//! pings). [`sink::SinkPort`] also stands in while the switch daemon is gone.

pub mod pong;
pub mod sink;
pub mod switch;

use std::os::fd::RawFd;
use std::path::Path;
use std::sync::Arc;

use thiserror::Error;

use switch_port::client::OffloadFds;

use super::latency_trace::Direction;
use super::offload::OffloadError;
use crate::e1000::backend::NetBackend;
use crate::e1000::offload::{HandBack, Handover};
use crate::stats::Stats;

/// What the adapter needs from a port: the zero-copy batch API of the
/// switch's `PortClient`, plus its kick controls.
pub trait Port: Send {
    /// The buffer of the next free TX slot, or `None` when the TX ring is full.
    fn reserve(&mut self) -> Option<&mut [u8]>;
    /// Commits the reserved slot with a frame of `len` bytes.
    fn commit(&mut self, len: usize);
    /// Publishes the committed frames (at most one kick); returns how many.
    fn publish(&mut self) -> usize;
    /// The next received frame, or `None` when the RX ring is empty.
    fn peek(&mut self) -> Option<&[u8]>;
    /// Moves past the frame `peek` returned.
    fn consume(&mut self);
    /// Returns the consumed RX slots to the other side.
    fn release_rx(&mut self);
    /// The eventfd that becomes readable when the other side kicks.
    fn kick_fd(&self) -> RawFd;
    /// Asks for a kick when RX frames (`rx`) or TX space (`tx`) arrive;
    /// returns true if that is already the case (then do not sleep).
    fn arm(&mut self, rx: bool, tx: bool) -> bool;
    /// Clears the need-kick requests and drains the kick eventfd.
    fn disarm(&mut self);
    /// Kicks sent to the other side so far.
    fn kicks_sent(&self) -> u64;
    /// Largest frame a TX slot holds.
    fn max_frame(&self) -> usize;
    /// The control connection to the switch daemon, if the port has one.
    fn control_fd(&mut self) -> Option<RawFd> {
        None
    }
    /// Whether the port has a daemon that can take the e1000's data path
    /// ([`Port::offload`]).
    fn can_offload(&self) -> bool {
        false
    }
    /// Hands the e1000's data path to the daemon ([`super::offload`]).
    fn offload(
        &mut self,
        _memory_size: u64,
        _handover: &Handover,
        _fds: OffloadFds,
    ) -> Result<(), OffloadError> {
        Err(OffloadError::Unsupported)
    }
    /// Takes the e1000's data path back from the daemon.
    fn reclaim(&mut self) -> Result<HandBack, OffloadError> {
        Err(OffloadError::Unsupported)
    }
    /// Ends the connection to the daemon (an exchange went wrong): the
    /// daemon then lets go of the port and of anything handed to it.
    fn disconnect(&mut self) {}
}

/// Which port to open.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum BackendSpec {
    /// A vswitch port, `SWITCH:PORT` (e.g. `vale0:vm1`).
    Switch(String),
    /// Drop every transmitted frame; nothing is received.
    Sink,
    /// Answer test-frame pings with pongs; drop everything else.
    Pong,
}

impl BackendSpec {
    /// Parses `--net`: `sink`, `pong`, or `SWITCH:PORT`.
    pub fn parse(spec: &str) -> Result<BackendSpec, BackendError> {
        match spec {
            "sink" => Ok(BackendSpec::Sink),
            "pong" => Ok(BackendSpec::Pong),
            s if s
                .split_once(':')
                .is_some_and(|(sw, port)| !sw.is_empty() && !port.is_empty()) =>
            {
                Ok(BackendSpec::Switch(s.to_string()))
            }
            other => Err(BackendError::BadSpec(other.to_string())),
        }
    }

    /// A name for logs and MAC derivation.
    pub fn name(&self) -> &str {
        match self {
            BackendSpec::Switch(s) => s,
            BackendSpec::Sink => "sink",
            BackendSpec::Pong => "pong",
        }
    }
}

/// Why the backend could not be opened.
#[derive(Debug, Error)]
pub enum BackendError {
    /// `--net` is neither a test backend nor `SWITCH:PORT`.
    #[error("--net {0:?}: expected SWITCH:PORT (e.g. vale0:vm1), `sink` or `pong`")]
    BadSpec(String),
    /// The switch port could not be opened.
    #[error("cannot open switch port {port} through {socket}")]
    Switch {
        /// The port name.
        port: String,
        /// The daemon's socket.
        socket: String,
        /// Why.
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    /// An eventfd for a test backend.
    #[error("cannot create an eventfd")]
    EventFd(#[source] std::io::Error),
}

/// Opens the port `spec` names (`socket` is the vswitch daemon's) for a NIC
/// with address `mac`.
pub fn open(
    spec: &BackendSpec,
    socket: &Path,
    mac: [u8; 6],
) -> Result<Box<dyn Port>, BackendError> {
    Ok(match spec {
        BackendSpec::Switch(name) => Box::new(switch::open(socket, name, mac)?),
        BackendSpec::Sink => Box::new(sink::SinkPort::new().map_err(BackendError::EventFd)?),
        BackendSpec::Pong => Box::new(pong::PongPort::new().map_err(BackendError::EventFd)?),
    })
}

/// The model's backend over a port.
pub struct PortBackend {
    port: Box<dyn Port>,
    stats: Arc<Stats>,
    /// Length of the frame the last `rx_peek` returned.
    peeked_len: usize,
    /// The last `rx_peek` found the RX ring empty.
    rx_dry: bool,
    /// The last `tx_reserve` found the TX ring full.
    tx_full: bool,
    /// Largest frame a TX slot holds (the port's, read once).
    max_frame: usize,
    /// Test-frame timestamps are on (`stats.latency`): read once.
    trace: bool,
    /// Traffic not yet added to the shared counters: they are atomics that
    /// other threads read, so the per-frame path counts here and
    /// `tx_flush`/`rx_flush` add a whole batch at once.
    unflushed: BatchCounts,
}

/// Packets and bytes counted during a batch.
#[derive(Clone, Copy, Debug, Default)]
struct BatchCounts {
    tx_packets: u64,
    tx_bytes: u64,
    rx_packets: u64,
    rx_bytes: u64,
}

impl PortBackend {
    /// Wraps `port`, counting into `stats`.
    pub fn new(port: Box<dyn Port>, stats: Arc<Stats>) -> PortBackend {
        PortBackend {
            trace: stats.latency.is_on(),
            max_frame: port.max_frame(),
            port,
            stats,
            peeked_len: 0,
            // Nothing was looked at yet: ask for an RX kick at the first settle.
            rx_dry: true,
            tx_full: false,
            unflushed: BatchCounts::default(),
        }
    }

    /// Puts `port` in place of the current port (which is returned): counts
    /// the batch in progress first, and asks for an RX kick at the next
    /// settle, as a new adapter does.
    pub fn replace_port(&mut self, port: Box<dyn Port>) -> Box<dyn Port> {
        self.tx_flush();
        self.rx_flush();
        self.max_frame = port.max_frame();
        self.peeked_len = 0;
        self.rx_dry = true;
        self.tx_full = false;
        std::mem::replace(&mut self.port, port)
    }

    /// The port's kick eventfd (for the I/O thread's epoll).
    pub fn kick_fd(&self) -> RawFd {
        self.port.kick_fd()
    }

    /// The port's control connection to the switch daemon, if it has one.
    pub fn control_fd(&mut self) -> Option<RawFd> {
        self.port.control_fd()
    }

    /// Whether the port can take the e1000's data path ([`Port::offload`]).
    pub fn can_offload(&self) -> bool {
        self.port.can_offload()
    }

    /// Hands the e1000's data path to the port's daemon.
    pub fn offload(
        &mut self,
        memory_size: u64,
        handover: &Handover,
        fds: OffloadFds,
    ) -> Result<(), OffloadError> {
        self.tx_flush();
        self.rx_flush();
        self.port.offload(memory_size, handover, fds)
    }

    /// Takes the e1000's data path back from the port's daemon; the next
    /// settle asks for an RX kick, as after a port change.
    pub fn reclaim(&mut self) -> Result<HandBack, OffloadError> {
        self.rx_dry = true;
        self.tx_full = false;
        self.port.reclaim()
    }

    /// Ends the port's connection to its daemon ([`Port::disconnect`]).
    pub fn disconnect(&mut self) {
        self.port.disconnect();
    }

    /// Consumes every frame waiting in the port's RX ring without
    /// delivering it; returns how many (counted as RX drops).
    pub fn drop_rx(&mut self) -> u64 {
        let mut dropped = 0;
        while self.port.peek().is_some() {
            self.port.consume();
            dropped += 1;
        }
        self.port.release_rx();
        self.rx_dry = true;
        self.stats.rx.dropped.add(dropped);
        dropped
    }

    /// Whether the RX ring was empty at the last look.
    pub fn rx_dry(&self) -> bool {
        self.rx_dry
    }

    /// Whether the TX ring was full at the last reservation.
    pub fn tx_full(&self) -> bool {
        self.tx_full
    }

    /// Asks for the kicks needed now: RX when the ring ran dry, TX space when
    /// it was full. Returns true if the condition already cleared (process
    /// again instead of sleeping).
    pub fn arm(&mut self) -> bool {
        if !self.rx_dry && !self.tx_full {
            return false;
        }
        let ready = self.port.arm(self.rx_dry, self.tx_full);
        if ready {
            self.rx_dry = false;
            self.tx_full = false;
        }
        ready
    }

    /// Called when the kick eventfd was readable: counts the kick and
    /// clears the requests.
    pub fn on_kick(&mut self) {
        self.stats.kicks.from_switch.inc();
        self.disarm();
    }

    /// Clears the kick requests (this side is about to poll the port).
    pub fn disarm(&mut self) {
        self.port.disarm();
        self.rx_dry = false;
        self.tx_full = false;
    }
}

impl NetBackend for PortBackend {
    #[inline]
    fn tx_reserve(&mut self) -> Option<&mut [u8]> {
        let slot = self.port.reserve();
        self.tx_full = slot.is_none();
        slot
    }

    #[inline]
    fn tx_commit(&mut self, len: usize) {
        let len = len.min(self.max_frame);
        if self.trace {
            // `reserve` returns the same slot again until it is committed.
            if let Some(slot) = self.port.reserve() {
                let frame = &slot[..len.min(slot.len())];
                self.stats.latency.record(Direction::Tx, frame);
            }
        }
        self.port.commit(len);
        self.unflushed.tx_packets += 1;
        self.unflushed.tx_bytes += len as u64;
    }

    fn tx_flush(&mut self) {
        self.stats
            .tx
            .packets
            .add(std::mem::take(&mut self.unflushed.tx_packets));
        self.stats
            .tx
            .bytes
            .add(std::mem::take(&mut self.unflushed.tx_bytes));
        let before = self.port.kicks_sent();
        self.port.publish();
        self.stats
            .kicks
            .to_switch
            .add(self.port.kicks_sent() - before);
    }

    #[inline]
    fn rx_peek(&mut self) -> Option<&[u8]> {
        let frame = self.port.peek();
        self.rx_dry = frame.is_none();
        self.peeked_len = frame.as_ref().map_or(0, |f| f.len());
        frame
    }

    #[inline]
    fn rx_consume(&mut self) {
        if self.trace {
            // The model has copied the frame `rx_peek` returned into the
            // guest's buffer; the port still holds it until `consume`.
            if let Some(frame) = self.port.peek() {
                self.stats.latency.record(Direction::Rx, frame);
            }
        }
        self.port.consume();
        self.unflushed.rx_packets += 1;
        self.unflushed.rx_bytes += self.peeked_len as u64;
    }

    fn rx_flush(&mut self) {
        self.stats
            .rx
            .packets
            .add(std::mem::take(&mut self.unflushed.rx_packets));
        self.stats
            .rx
            .bytes
            .add(std::mem::take(&mut self.unflushed.rx_bytes));
        self.port.release_rx();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn specs() {
        assert_eq!(BackendSpec::parse("sink").unwrap(), BackendSpec::Sink);
        assert_eq!(BackendSpec::parse("pong").unwrap(), BackendSpec::Pong);
        assert_eq!(
            BackendSpec::parse("vale0:vm1").unwrap(),
            BackendSpec::Switch("vale0:vm1".into())
        );
        assert!(BackendSpec::parse("vale0").is_err());
        assert!(BackendSpec::parse(":x").is_err());
        assert!(BackendSpec::parse("vale0:").is_err());
    }

    #[test]
    fn adapter_counts_and_tracks_dry_and_full() {
        let stats = Arc::new(Stats::new());
        let port = pong::PongPort::with_capacity(2).unwrap();
        let mut b = PortBackend::new(Box::new(port), Arc::clone(&stats));
        assert!(b.rx_dry(), "asks for RX kicks before the first look");
        assert!(b.rx_peek().is_none());
        assert!(b.rx_dry());
        let ping =
            testframe::FrameTemplate::new([2; 6], [4; 6], testframe::Kind::Ping, 60).unwrap();
        for seq in 0..3 {
            let slot = b.tx_reserve().expect("pong never blocks TX");
            let n = ping.write(slot, seq, 7);
            b.tx_commit(n);
        }
        b.tx_flush();
        assert_eq!(stats.tx.packets.get(), 3);
        assert_eq!(stats.tx.bytes.get(), 180);
        // Capacity 2: the third pong was dropped by the test port.
        let mut got = 0;
        while let Some(frame) = b.rx_peek() {
            let h = testframe::parse(frame).unwrap();
            assert_eq!(h.kind, testframe::Kind::Pong);
            assert_eq!(h.dst, [4; 6]);
            assert_eq!(h.seq, got);
            b.rx_consume();
            got += 1;
        }
        b.rx_flush();
        assert_eq!(got, 2);
        assert_eq!(stats.rx.packets.get(), 2);
        assert!(b.rx_dry());
        assert!(!b.arm(), "nothing pending: ask for a kick and sleep");
    }
}
