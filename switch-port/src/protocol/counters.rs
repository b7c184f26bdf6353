//! The counters the daemon reports: a port's traffic and drops by reason
//! ([`CounterSnapshot`]), a forwarding table's ([`LookupStats`]) and the
//! control socket's refusals ([`AccessCounters`]).
//!
//! Directions are the switch's: `rx` counts frames the switch received from
//! the port (the client's TX ring), `tx` frames the switch sent to the port
//! (the client's RX ring).

use serde::{Deserialize, Serialize};

use crate::names::SwitchName;

/// A copy of a port's counters at one moment.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct CounterSnapshot {
    /// Frames received from the port.
    pub rx_packets: u64,
    /// Bytes received from the port.
    pub rx_bytes: u64,
    /// Frames sent to the port.
    pub tx_packets: u64,
    /// Bytes sent to the port.
    pub tx_bytes: u64,
    /// Frames from the port shorter than 14 bytes.
    pub drop_runt: u64,
    /// Slots from the port with a bad buffer index or length.
    pub drop_bad_slot: u64,
    /// Frames for the port longer than its buffers.
    pub drop_too_long: u64,
    /// Frames for the port dropped because its ring was full.
    pub drop_ring_full: u64,
    /// Frames from the port whose destination was the port itself.
    pub drop_same_port: u64,
    /// Frames from the port dropped by the forwarding function.
    pub drop_filtered: u64,
    /// Frames from the port flooded when no other port existed.
    pub drop_no_destination: u64,
    /// Frames for the port dropped because it had no client (a persistent
    /// port between clients).
    #[serde(default)]
    pub drop_no_client: u64,
    /// Frames from the port dropped because their source address was not
    /// the port's own (`--mac`) or belongs to another port.
    #[serde(default)]
    pub spoofed: u64,
    /// Frames from the port not flooded because the port was over its
    /// storm-control cap (`--storm-pps`).
    #[serde(default)]
    pub drop_storm: u64,
    /// Frames from the port in a VLAN it does not carry (a tagged frame on
    /// an access port, a VLAN not in a trunk's list, an untagged frame on a
    /// trunk without a native VLAN).
    #[serde(default, skip_serializing_if = "is_zero")]
    pub drop_vlan: u64,
    /// Ring or buffer indices the client wrote out of range (each batch
    /// or slot counts once).
    pub bad_index: u64,
    /// Kicks (eventfd writes) sent to the client.
    pub kicks_sent: u64,
    /// Kicks not sent because the client was polling.
    pub kicks_suppressed: u64,
    /// Kicks the daemon had to interrupt because the client made its
    /// eventfd block (a full counter on a blocking descriptor). After the
    /// first, the switch stops kicking that client.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub kicks_stalled: u64,
}

impl CounterSnapshot {
    /// All drops, whatever the reason.
    pub fn drops(&self) -> u64 {
        self.drop_runt
            + self.drop_bad_slot
            + self.drop_too_long
            + self.drop_ring_full
            + self.drop_same_port
            + self.drop_filtered
            + self.drop_no_destination
            + self.drop_no_client
            + self.spoofed
            + self.drop_storm
            + self.drop_vlan
    }
}

fn is_zero(v: &u64) -> bool {
    *v == 0
}

/// Counters of a switch's forwarding table.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct LookupStats {
    /// Entries in use.
    pub entries: u64,
    /// Capacity.
    pub capacity: u64,
    /// Addresses learned (new entries).
    pub learned: u64,
    /// Addresses that moved to another port.
    pub moved: u64,
    /// Addresses not learned because the table (or its bucket) was full.
    pub refused: u64,
    /// Addresses not learned (or not moved) because their port had as many
    /// as its limit (`--max-macs`).
    #[serde(default)]
    pub port_limited: u64,
    /// Entries removed by aging.
    pub aged: u64,
}

/// Refusals on the control socket since the daemon started.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct AccessCounters {
    /// Requests refused for lack of permission (not the owner, not an admin).
    pub denied: u64,
    /// Requests refused by a per-user limit (ports, switches, port memory).
    pub over_limit: u64,
    /// Connections refused by the per-user or global connection cap.
    pub connections_refused: u64,
    /// Connections closed because a request did not arrive (or its
    /// response was not read) within the control timeout.
    pub timed_out: u64,
}

/// A switch's counters in a stats answer.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SwitchStats {
    /// The switch.
    pub switch: SwitchName,
    /// Its forwarding table's counters.
    pub fdb: LookupStats,
}

/// A forwarding thread's counters in a stats answer.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ThreadStats {
    /// The thread's index (`forward-N`).
    pub thread: u32,
    /// Nanoseconds spent in poll rounds that moved frames.
    pub busy_ns: u64,
    /// Frames read from its ports.
    pub frames: u64,
    /// Poll rounds that moved frames.
    pub batches: u64,
    /// Times it slept waiting for a kick.
    pub sleeps: u64,
}
