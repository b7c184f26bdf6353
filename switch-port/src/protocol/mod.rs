//! The control protocol between the daemon and its clients (the CLI, the VMM,
//! pktgen, any application), version 1. Its normative specification, with a
//! byte-exact example of every message, is §2, §3 and §9 of the repository's
//! `docs/port-protocol.md` (a test checks the examples against this module).
//!
//! Transport: a Unix stream socket. Every message is a 16-byte header
//! followed by a payload:
//!
//! ```text
//! offset size field
//!  0      4   magic "VSWC"
//!  4      2   protocol version (1), little-endian
//!  6      2   direction: 1 request (client -> daemon), 2 response
//!  8      4   payload length in bytes, little-endian
//! 12      4   number of file descriptors attached (0, 3 or 4), little-endian
//! 16    ...   payload: one JSON object, a [`Request`] or a [`Response`]
//! ```
//!
//! File descriptors travel with SCM_RIGHTS on the same `sendmsg` as the
//! header. [`Response::PortOpened`] carries exactly three, in this
//! order: the port's memfd (layout in [`crate::layout`]), the eventfd
//! the client writes to wake the switch, the eventfd the switch writes to
//! wake the client. The one request that carries descriptors is
//! [`Request::OffloadPort`], with exactly [`OFFLOAD_FDS`]; the daemon refuses
//! descriptors with any other request.
//!
//! Every request gets exactly one response, in order. A request that is
//! valid JSON but wrong gets [`Response::Error`] and the connection stays
//! usable; a header with a bad magic or length gets an error and the
//! connection is closed (the framing is lost). A header of another protocol
//! version, older or newer, gets [`ErrorCode::UnsupportedVersion`] with a
//! message naming both versions, in the daemon's own version, and the
//! connection is closed: that is the whole version negotiation. Requests
//! are limited to [`MAX_REQUEST`] bytes, responses to [`MAX_RESPONSE`].
//!
//! The daemon knows who connected (the peer's uid and groups): a request
//! the caller may not make gets [`ErrorCode::PermissionDenied`], one past a
//! per-user limit [`ErrorCode::LimitExceeded`] (also the one message a
//! connection over the connection caps receives before it is closed). A
//! request must arrive whole, and its response be read, within the daemon's
//! control timeout, or the connection is closed.
//!
//! A port opened on a connection belongs to it: when the connection closes
//! (the client exits or is killed) the port loses its client and is removed
//! unless it was created persistent.
//!
//! A [`Request::Capture`] answered with [`Response::CaptureStarted`] turns
//! its connection into a stream of capture records ([`capture`]) from the
//! daemon; the capture ends when the client closes the connection.

use serde::{Deserialize, Serialize};

use crate::mac::MacAddr;
use crate::names::{PortName, SwitchName};

pub mod capture;
mod counters;
mod header;
mod tunnel;
mod vlan;

pub use counters::{AccessCounters, CounterSnapshot, LookupStats, SwitchStats, ThreadStats};
pub use header::{
    Header, HeaderError, DIR_REQUEST, DIR_RESPONSE, HEADER_LEN, MAGIC, MAX_REQUEST, MAX_RESPONSE,
    OFFLOAD_FDS, PORT_FDS, VERSION,
};
pub use tunnel::{TunnelInfo, TunnelSpec, VtepRow, DEFAULT_UNDERLAY_MTU, MAX_VNI, VXLAN_PORT};
pub use vlan::{check_vid, Vid, VlanError, VlanMode, MAX_VID, MIN_VID};

/// A request from a client.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "request", rename_all = "snake_case", deny_unknown_fields)]
pub enum Request {
    /// Opens (creating if needed) a client port and returns its memory and kick fds.
    OpenPort {
        /// The port, `valeN:name`.
        port: PortName,
        /// Slots per ring when the port is created (default 1024).
        #[serde(default)]
        ring_size: Option<u32>,
        /// Bytes per buffer when the port is created (default 2048).
        #[serde(default)]
        buf_size: Option<u32>,
        /// The client's MAC address: while it has the port, frames with
        /// another source address are dropped and no other port may use this
        /// one. A port created with a MAC may only be opened with that one.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        mac: Option<MacAddr>,
    },
    /// Creates a persistent port that stays when its clients leave.
    CreatePort {
        /// The port.
        port: PortName,
        /// Slots per ring.
        #[serde(default)]
        ring_size: Option<u32>,
        /// Bytes per buffer.
        #[serde(default)]
        buf_size: Option<u32>,
        /// Lock the port to this source MAC address (see `OpenPort`), for
        /// every client.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        mac: Option<MacAddr>,
        /// Most addresses the port may have learned at once (default: the
        /// daemon's `--max-macs`).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        max_macs: Option<u32>,
        /// Most frames a second the port may flood (broadcast, multicast,
        /// unknown unicast); 0: no cap (default: the daemon's `--storm-pps`).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        storm_pps: Option<u64>,
        /// The port's VLAN mode (absent: no VLAN, untagged as always).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        vlan: Option<VlanMode>,
    },
    /// Deletes a persistent port that has no client.
    DeletePort {
        /// The port.
        port: PortName,
    },
    /// Hands the data path of a VM's port to the daemon (the VMM, in CSB
    /// mode): the daemon's forwarding thread then walks the guest's e1000
    /// rings itself (`docs/offload.md`). Sent on the connection that opened
    /// `port`, with [`OFFLOAD_FDS`] fds attached, in this order: the guest
    /// memory's memfd (sealed against shrinking), the eventfd the guest's
    /// TDT write signals (the kick), the eventfd the daemon writes when the
    /// guest asked for a receive interrupt, and the one for a transmit
    /// interrupt. Answered with [`Response::Done`].
    OffloadPort {
        /// The port.
        port: PortName,
        /// Bytes of guest memory from guest-physical 0 (at most the memfd's
        /// size).
        memory_size: u64,
        /// The data path's state.
        handover: e1000_model::offload::Handover,
    },
    /// Takes an offloaded data path back: the daemon stops touching the
    /// guest's memory and answers with [`Response::Reclaimed`].
    ReclaimPort {
        /// The port.
        port: PortName,
    },
    /// Lists switches and ports.
    List {},
    /// Counters of one port or of all.
    Stats {
        /// One port, or every port when absent.
        #[serde(default)]
        port: Option<PortName>,
    },
    /// The forwarding table of a switch.
    Fdb {
        /// The switch.
        switch: SwitchName,
    },
    /// Daemon identity and settings.
    Status {},
    /// The saved configuration as the `vswitch` commands that recreate it.
    ShowConfig {},
    /// Attaches a NIC to a switch through AF_XDP sockets (and optionally the
    /// host stack through a TAP).
    Attach {
        /// The switch.
        switch: SwitchName,
        /// The network interface.
        iface: String,
        /// How many receive queues get a socket (all when absent).
        #[serde(default)]
        queues: Option<u32>,
        /// `Some(true)`: zero-copy or fail; `Some(false)`: copy mode; absent:
        /// zero-copy where the driver supports it, copy otherwise.
        #[serde(default)]
        zero_copy: Option<bool>,
        /// Also give the host stack a port (a TAP interface).
        #[serde(default)]
        host: bool,
        /// The TAP's name (default derived from the NIC's).
        #[serde(default)]
        host_name: Option<String>,
        /// EtherTypes (`0x0806`) and destination MACs the XDP program passes
        /// to the kernel stack instead of the switch.
        #[serde(default)]
        pass: Vec<String>,
        /// Partial TCP/UDP checksums: `auto` (absent), `complete` or `trust`.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        checksum: Option<String>,
        /// The NIC port's VLAN mode (absent: no VLAN).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        vlan: Option<VlanMode>,
        /// The host port's VLAN mode (absent: no VLAN).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        host_vlan: Option<VlanMode>,
        /// Busy-poll the NIC's sockets with this NAPI budget (1..65535
        /// frames) instead of waiting for its interrupts (absent: off).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        busy_poll: Option<u32>,
    },
    /// Detaches a NIC (and its host port) from a switch.
    Detach {
        /// The switch.
        switch: SwitchName,
        /// The network interface.
        iface: String,
    },
    /// Captures the frames of a port: after [`Response::CaptureStarted`] the
    /// connection carries capture records (see [`capture`]) until the client
    /// closes it.
    Capture {
        /// The port.
        port: PortName,
        /// Which frames (default both).
        #[serde(default)]
        dir: TapDirection,
        /// Bytes kept of each frame (default [`capture::DEFAULT_SNAPLEN`]).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        snaplen: Option<u32>,
    },
    /// Adds a mirror: a copy of the selected traffic of `src` goes to `dst`.
    MirrorAdd {
        /// The switch.
        switch: SwitchName,
        /// The mirror's name, unique in the switch.
        name: String,
        /// The mirrored ports.
        src: Vec<PortName>,
        /// Which of their frames (default both).
        #[serde(default)]
        dir: TapDirection,
        /// Where the copies go.
        dst: PortName,
    },
    /// Removes a mirror.
    MirrorDel {
        /// The switch.
        switch: SwitchName,
        /// The mirror's name.
        name: String,
    },
    /// Lists the mirrors.
    MirrorList {},
    /// Adds a VXLAN tunnel port to a switch.
    TunnelAdd {
        /// The port, `SWITCH:NAME`.
        port: PortName,
        /// Its settings.
        tunnel: TunnelSpec,
    },
    /// Removes a VXLAN tunnel port.
    TunnelDel {
        /// The port.
        port: PortName,
    },
    /// Lists the tunnel ports.
    TunnelList {},
}

/// Which frames of a port a capture or mirror takes.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TapDirection {
    /// Frames the switch receives from the port.
    Rx,
    /// Frames the switch delivers to the port.
    Tx,
    /// Both.
    #[default]
    Both,
}

impl TapDirection {
    /// Whether received frames are taken.
    pub fn rx(self) -> bool {
        self != TapDirection::Tx
    }
    /// Whether delivered frames are taken.
    pub fn tx(self) -> bool {
        self != TapDirection::Rx
    }
    /// `rx`, `tx` or `both`.
    pub fn as_str(self) -> &'static str {
        match self {
            TapDirection::Rx => "rx",
            TapDirection::Tx => "tx",
            TapDirection::Both => "both",
        }
    }
}

impl std::str::FromStr for TapDirection {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "rx" => Ok(TapDirection::Rx),
            "tx" => Ok(TapDirection::Tx),
            "both" => Ok(TapDirection::Both),
            _ => Err(format!("{s:?} is not a direction (rx, tx or both)")),
        }
    }
}

/// A mirror in a listing.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct MirrorInfo {
    /// The switch.
    pub switch: SwitchName,
    /// The mirror's name.
    pub name: String,
    /// The mirrored ports.
    pub src: Vec<PortName>,
    /// Which of their frames.
    pub dir: TapDirection,
    /// Where the copies go.
    pub dst: PortName,
}

/// Why a request failed.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ErrorCode {
    /// The message could not be parsed or is not allowed.
    BadRequest,
    /// A switch or port name is invalid.
    BadName,
    /// No such port.
    NoSuchPort,
    /// No such switch.
    NoSuchSwitch,
    /// The port already has a client.
    PortBusy,
    /// The port already exists.
    PortExists,
    /// The switch has no free port.
    SwitchFull,
    /// The requested ring or buffer size is invalid or differs from the port's.
    BadConfig,
    /// The operation does not apply to this kind of port.
    WrongPortKind,
    /// The daemon failed (out of memory, fds, ...).
    Internal,
    /// The network interface does not exist or cannot be used.
    BadInterface,
    /// This daemon was built without NIC support or lacks privileges.
    Unsupported,
    /// The caller may not do this (not the port's owner, not an admin).
    PermissionDenied,
    /// The caller's per-user limit (ports, switches, port memory,
    /// connections) would be exceeded.
    LimitExceeded,
    /// The message header carries a protocol version this daemon does not
    /// speak; the message names both versions and the connection is closed
    /// (see "Version negotiation" in `docs/port-protocol.md`).
    UnsupportedVersion,
}

/// What kind of port this is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PortKind {
    /// A client port: rings in a memfd shared with a process.
    Shm,
    /// A NIC attached through AF_XDP sockets.
    Nic,
    /// The host stack, through a TAP interface.
    Host,
    /// A VXLAN tunnel over UDP.
    Tunnel,
}

/// A port in a listing.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct PortInfo {
    /// Full name.
    pub name: PortName,
    /// Number inside the switch.
    pub id: u16,
    /// Kind of port.
    pub kind: PortKind,
    /// Clients attached (0 or 1 for client ports).
    pub clients: u32,
    /// Created persistent (stays without clients).
    pub persistent: bool,
    /// Slots per ring (client ports).
    pub ring_size: u32,
    /// Bytes per buffer (client ports).
    pub buf_size: u32,
    /// The client wrote invalid indices or slots at some point.
    pub errored: bool,
    /// The uid that created the port (NIC and host ports: who attached).
    #[serde(default)]
    pub owner_uid: u32,
    /// The owner's user name, when the daemon could resolve it.
    #[serde(default)]
    pub owner_name: Option<String>,
    /// The source MAC address the port is locked to, if any.
    #[serde(default)]
    pub mac: Option<MacAddr>,
    /// Most addresses the port may have learned at once.
    #[serde(default)]
    pub max_macs: u32,
    /// Most frames a second the port may flood (0: no cap).
    #[serde(default)]
    pub storm_pps: u64,
    /// The port's VLAN mode (absent: no VLAN).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub vlan: Option<VlanMode>,
}

/// A switch in a listing.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct SwitchInfo {
    /// Name.
    pub name: SwitchName,
    /// Port limit.
    pub max_ports: u32,
    /// Ports, by number.
    pub ports: Vec<PortInfo>,
}

/// Counters of one port.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct PortStats {
    /// Full name.
    pub name: PortName,
    /// Kind of port.
    pub kind: PortKind,
    /// The counters.
    pub counters: CounterSnapshot,
    /// Extra counters of NIC and host ports (name, value), e.g. XDP counters.
    #[serde(default)]
    pub extra: Vec<(String, u64)>,
}

/// One forwarding-table entry.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct FdbRow {
    /// The address.
    pub mac: MacAddr,
    /// The port it was learned on.
    pub port: PortName,
    /// Seconds since last seen.
    pub age_secs: u32,
    /// The VLAN it was learned in (0, or absent: no VLAN).
    #[serde(default, skip_serializing_if = "is_zero")]
    pub vlan: u16,
}

fn is_zero(v: &u16) -> bool {
    *v == 0
}

/// A response from the daemon.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "response", rename_all = "snake_case", deny_unknown_fields)]
pub enum Response {
    /// The port is open; three fds are attached (see the module doc).
    PortOpened {
        /// The port.
        port: PortName,
        /// Slots per ring.
        ring_size: u32,
        /// Bytes per buffer.
        buf_size: u32,
        /// Bytes of the memfd region.
        region_len: u64,
        /// True when this open created the port.
        created: bool,
    },
    /// The request was carried out.
    Done,
    /// An offloaded data path was given back.
    Reclaimed {
        /// The port.
        port: PortName,
        /// The data path's state.
        hand_back: e1000_model::offload::HandBack,
    },
    /// Switches and ports.
    List {
        /// Every switch.
        switches: Vec<SwitchInfo>,
    },
    /// Port counters.
    Stats {
        /// Seconds since the daemon started (for rates).
        uptime_secs: f64,
        /// One entry per port.
        ports: Vec<PortStats>,
        /// Control-socket refusals since the daemon started.
        #[serde(default)]
        access: AccessCounters,
        /// Every switch's forwarding-table counters.
        #[serde(default)]
        switches: Vec<SwitchStats>,
        /// Every forwarding thread's counters.
        #[serde(default)]
        threads: Vec<ThreadStats>,
    },
    /// A forwarding table.
    Fdb {
        /// The switch.
        switch: SwitchName,
        /// Entries, sorted by address.
        entries: Vec<FdbRow>,
        /// Table counters.
        stats: LookupStats,
    },
    /// Daemon status.
    Status {
        /// Daemon process id.
        pid: u32,
        /// Protocol version.
        version: u16,
        /// Forwarding threads.
        threads: u32,
        /// Seconds since start.
        uptime_secs: f64,
    },
    /// A NIC was attached.
    Attached {
        /// The NIC's port.
        nic_port: PortName,
        /// The host stack's port, if asked for.
        host_port: Option<PortName>,
        /// Receive queues with a socket.
        queues: u32,
        /// Receive queues the interface has (frames arriving on a queue
        /// without a socket are dropped by the XDP program, and counted).
        nic_queues: u32,
        /// How the XDP program is attached (`driver` or `skb`).
        xdp_mode: String,
        /// Whether the sockets are zero-copy.
        zero_copy: bool,
    },
    /// A capture started: capture records follow on the connection.
    CaptureStarted {
        /// The port.
        port: PortName,
        /// Its kind.
        kind: PortKind,
        /// Bytes kept of each frame.
        snaplen: u32,
    },
    /// The mirrors.
    Mirrors {
        /// Every mirror, by switch and name.
        mirrors: Vec<MirrorInfo>,
    },
    /// The tunnel ports.
    Tunnels {
        /// Every tunnel port, by name.
        tunnels: Vec<TunnelInfo>,
    },
    /// The configuration, one `vswitch` command a line.
    Config {
        /// The commands.
        commands: Vec<String>,
    },
    /// The request failed.
    Error {
        /// What kind of failure.
        code: ErrorCode,
        /// A sentence a person can act on.
        message: String,
    },
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_parse_strictly() {
        let r: Request =
            serde_json::from_str(r#"{"request":"open_port","port":"vale0:a"}"#).unwrap();
        assert!(matches!(r, Request::OpenPort { .. }));
        assert!(
            serde_json::from_str::<Request>(r#"{"request":"open_port","port":"bad"}"#).is_err()
        );
        assert!(serde_json::from_str::<Request>(r#"{"request":"list","x":1}"#).is_err());
        assert!(serde_json::from_str::<Request>(r#"{"request":"nope"}"#).is_err());
    }
}
