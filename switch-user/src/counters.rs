//! Per-port counters, updated by the forwarding threads (once per batch) and
//! read by the control plane as the protocol's [`CounterSnapshot`] (whose
//! `drop_*` fields are the [`DropReason`]s).
//!
//! Directions are the switch's: `rx` counts frames the switch received from
//! the port (the client's TX ring), `tx` frames the switch sent to the port
//! (the client's RX ring).

use std::sync::atomic::{AtomicU64, Ordering};

use switch_port::protocol::CounterSnapshot;

/// Why a frame was dropped.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DropReason {
    /// Shorter than an Ethernet header (14 bytes).
    Runt,
    /// The slot named a buffer outside the port's region or a length larger
    /// than its buffer (a client error).
    BadSlot,
    /// Longer than the destination's buffer.
    TooLong,
    /// The destination's ring had no free slot.
    RingFull,
    /// Its only destination was the port it came from.
    SamePort,
    /// The forwarding function said to drop it.
    Filtered,
    /// It was flooded on a switch with no other port.
    NoDestination,
    /// Its destination port had no client (nothing queues for the next one).
    NoClient,
    /// Its source address was not the port's own (`--mac`) or belongs to
    /// another port.
    Spoofed,
    /// It would have been flooded past the port's storm-control cap.
    Storm,
    /// Its VLAN is not one the port carries (see [`crate::bridge::vlan`]).
    Vlan,
}

/// The counters of one port.
#[derive(Debug, Default)]
pub struct PortCounters {
    rx_packets: AtomicU64,
    rx_bytes: AtomicU64,
    tx_packets: AtomicU64,
    tx_bytes: AtomicU64,
    drop_runt: AtomicU64,
    drop_bad_slot: AtomicU64,
    drop_too_long: AtomicU64,
    drop_ring_full: AtomicU64,
    drop_same_port: AtomicU64,
    drop_filtered: AtomicU64,
    drop_no_destination: AtomicU64,
    drop_no_client: AtomicU64,
    spoofed: AtomicU64,
    drop_storm: AtomicU64,
    drop_vlan: AtomicU64,
    bad_index: AtomicU64,
    kicks_sent: AtomicU64,
    kicks_suppressed: AtomicU64,
    kicks_stalled: AtomicU64,
}

impl PortCounters {
    /// Counts `packets` frames of `bytes` bytes received from the port.
    #[inline]
    pub fn add_rx(&self, packets: u64, bytes: u64) {
        if packets != 0 {
            self.rx_packets.fetch_add(packets, Ordering::Relaxed);
            self.rx_bytes.fetch_add(bytes, Ordering::Relaxed);
        }
    }

    /// Counts `packets` frames of `bytes` bytes sent to the port.
    #[inline]
    pub fn add_tx(&self, packets: u64, bytes: u64) {
        if packets != 0 {
            self.tx_packets.fetch_add(packets, Ordering::Relaxed);
            self.tx_bytes.fetch_add(bytes, Ordering::Relaxed);
        }
    }

    /// [`PortCounters::add_tx`] for a port whose deliveries are serialized:
    /// the caller holds the lock under which every transmit count of this
    /// port is made, so a plain read and write (no locked instruction, which
    /// a switch delivering to many ports pays per port and batch) loses
    /// nothing. Readers see each counter whole, as with `add_tx`.
    #[inline]
    pub fn add_tx_serialized(&self, packets: u64, bytes: u64) {
        if packets != 0 {
            let add = |counter: &AtomicU64, n: u64| {
                counter.store(counter.load(Ordering::Relaxed) + n, Ordering::Relaxed)
            };
            add(&self.tx_packets, packets);
            add(&self.tx_bytes, bytes);
        }
    }

    /// Counts `n` drops for `reason`.
    #[inline]
    pub fn add_drops(&self, reason: DropReason, n: u64) {
        if n == 0 {
            return;
        }
        let counter = match reason {
            DropReason::Runt => &self.drop_runt,
            DropReason::BadSlot => &self.drop_bad_slot,
            DropReason::TooLong => &self.drop_too_long,
            DropReason::RingFull => &self.drop_ring_full,
            DropReason::SamePort => &self.drop_same_port,
            DropReason::Filtered => &self.drop_filtered,
            DropReason::NoDestination => &self.drop_no_destination,
            DropReason::NoClient => &self.drop_no_client,
            DropReason::Spoofed => &self.spoofed,
            DropReason::Storm => &self.drop_storm,
            DropReason::Vlan => &self.drop_vlan,
        };
        counter.fetch_add(n, Ordering::Relaxed);
    }

    /// Counts an out-of-range ring index written by the client.
    #[inline]
    pub fn add_bad_index(&self) {
        self.bad_index.fetch_add(1, Ordering::Relaxed);
    }

    /// Counts a kick sent (`true`) or suppressed (`false`).
    #[inline]
    pub fn add_kick(&self, sent: bool) {
        if sent {
            self.kicks_sent.fetch_add(1, Ordering::Relaxed);
        } else {
            self.kicks_suppressed.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// Counts a kick that the client made block and the daemon interrupted.
    pub fn add_kick_stalled(&self) {
        self.kicks_stalled.fetch_add(1, Ordering::Relaxed);
    }

    /// Counters starting from `snapshot` (a port that replaces another keeps
    /// its totals).
    pub fn starting_at(snapshot: &CounterSnapshot) -> PortCounters {
        let c = |v: u64| AtomicU64::new(v);
        PortCounters {
            rx_packets: c(snapshot.rx_packets),
            rx_bytes: c(snapshot.rx_bytes),
            tx_packets: c(snapshot.tx_packets),
            tx_bytes: c(snapshot.tx_bytes),
            drop_runt: c(snapshot.drop_runt),
            drop_bad_slot: c(snapshot.drop_bad_slot),
            drop_too_long: c(snapshot.drop_too_long),
            drop_ring_full: c(snapshot.drop_ring_full),
            drop_same_port: c(snapshot.drop_same_port),
            drop_filtered: c(snapshot.drop_filtered),
            drop_no_destination: c(snapshot.drop_no_destination),
            drop_no_client: c(snapshot.drop_no_client),
            spoofed: c(snapshot.spoofed),
            drop_storm: c(snapshot.drop_storm),
            drop_vlan: c(snapshot.drop_vlan),
            bad_index: c(snapshot.bad_index),
            kicks_sent: c(snapshot.kicks_sent),
            kicks_suppressed: c(snapshot.kicks_suppressed),
            kicks_stalled: c(snapshot.kicks_stalled),
        }
    }

    /// Reads every counter.
    pub fn snapshot(&self) -> CounterSnapshot {
        let r = |c: &AtomicU64| c.load(Ordering::Relaxed);
        CounterSnapshot {
            rx_packets: r(&self.rx_packets),
            rx_bytes: r(&self.rx_bytes),
            tx_packets: r(&self.tx_packets),
            tx_bytes: r(&self.tx_bytes),
            drop_runt: r(&self.drop_runt),
            drop_bad_slot: r(&self.drop_bad_slot),
            drop_too_long: r(&self.drop_too_long),
            drop_ring_full: r(&self.drop_ring_full),
            drop_same_port: r(&self.drop_same_port),
            drop_filtered: r(&self.drop_filtered),
            drop_no_destination: r(&self.drop_no_destination),
            drop_no_client: r(&self.drop_no_client),
            spoofed: r(&self.spoofed),
            drop_storm: r(&self.drop_storm),
            drop_vlan: r(&self.drop_vlan),
            bad_index: r(&self.bad_index),
            kicks_sent: r(&self.kicks_sent),
            kicks_suppressed: r(&self.kicks_suppressed),
            kicks_stalled: r(&self.kicks_stalled),
        }
    }
}
