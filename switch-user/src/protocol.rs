//! The control protocol between the daemon and its clients (the CLI, the VMM,
//! pktgen, any application), version 1.
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
//! 12      4   number of file descriptors attached (0 or 3), little-endian
//! 16    ...   payload: one JSON object, a [`Request`] or a [`Response`]
//! ```
//!
//! File descriptors travel with SCM_RIGHTS on the same `sendmsg` as the
//! header. Only [`Response::PortOpened`] carries them, exactly three, in this
//! order: the port's memfd (layout in [`crate::port::layout`]), the eventfd
//! the client writes to wake the switch, the eventfd the switch writes to
//! wake the client. The daemon never accepts descriptors from clients.
//!
//! Every request gets exactly one response, in order. A request that is
//! valid JSON but wrong gets [`Response::Error`] and the connection stays
//! usable; a header with a bad magic, version or length gets an error and the
//! connection is closed (the framing is lost). Requests are limited to
//! [`MAX_REQUEST`] bytes, responses to [`MAX_RESPONSE`].
//!
//! A port opened on a connection belongs to it: when the connection closes
//! (the client exits or is killed) the port loses its client and is removed
//! unless it was created persistent.

use serde::{Deserialize, Serialize};

use crate::bridge::lookup::LookupStats;
use crate::bridge::port::PortKind;
use crate::counters::CounterSnapshot;
use crate::mac::MacAddr;
use crate::names::{PortName, SwitchName};

/// Header magic.
pub const MAGIC: [u8; 4] = *b"VSWC";
/// Protocol version.
pub const VERSION: u16 = 1;
/// Header length.
pub const HEADER_LEN: usize = 16;
/// Direction value of a request.
pub const DIR_REQUEST: u16 = 1;
/// Direction value of a response.
pub const DIR_RESPONSE: u16 = 2;
/// Largest request payload.
pub const MAX_REQUEST: usize = 64 * 1024;
/// Largest response payload.
pub const MAX_RESPONSE: usize = 16 * 1024 * 1024;
/// Number of fds attached to [`Response::PortOpened`].
pub const PORT_FDS: usize = 3;

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
    },
    /// Deletes a persistent port that has no client.
    DeletePort {
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
    },
    /// Detaches a NIC (and its host port) from a switch.
    Detach {
        /// The switch.
        switch: SwitchName,
        /// The network interface.
        iface: String,
    },
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
    /// The request failed.
    Error {
        /// What kind of failure.
        code: ErrorCode,
        /// A sentence a person can act on.
        message: String,
    },
}

/// A header that does not belong to this protocol.
#[derive(Debug, thiserror::Error, Clone, PartialEq, Eq)]
pub enum HeaderError {
    /// Wrong magic.
    #[error("bad magic: not a vswitch control message")]
    Magic,
    /// Other protocol version.
    #[error("protocol version {0} is not supported (this side speaks {VERSION})")]
    Version(u16),
    /// Unexpected direction.
    #[error("unexpected message direction {0}")]
    Direction(u16),
    /// Payload too large.
    #[error("payload of {0} bytes is larger than allowed")]
    TooLong(usize),
    /// Wrong number of fds announced.
    #[error("{0} file descriptors announced, expected 0 or {PORT_FDS}")]
    Fds(u32),
}

/// A decoded message header.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Header {
    /// Request or response.
    pub direction: u16,
    /// Payload bytes.
    pub payload_len: usize,
    /// File descriptors attached.
    pub fds: u32,
}

impl Header {
    /// Encodes the header.
    pub fn encode(&self) -> [u8; HEADER_LEN] {
        let mut out = [0u8; HEADER_LEN];
        out[0..4].copy_from_slice(&MAGIC);
        out[4..6].copy_from_slice(&VERSION.to_le_bytes());
        out[6..8].copy_from_slice(&self.direction.to_le_bytes());
        out[8..12].copy_from_slice(&(self.payload_len as u32).to_le_bytes());
        out[12..16].copy_from_slice(&self.fds.to_le_bytes());
        out
    }

    /// Decodes and validates a header expected to travel in `direction`.
    pub fn decode(bytes: &[u8; HEADER_LEN], direction: u16) -> Result<Header, HeaderError> {
        if bytes[0..4] != MAGIC {
            return Err(HeaderError::Magic);
        }
        let version = u16::from_le_bytes([bytes[4], bytes[5]]);
        if version != VERSION {
            return Err(HeaderError::Version(version));
        }
        let dir = u16::from_le_bytes([bytes[6], bytes[7]]);
        if dir != direction {
            return Err(HeaderError::Direction(dir));
        }
        let payload_len = u32::from_le_bytes([bytes[8], bytes[9], bytes[10], bytes[11]]) as usize;
        let limit = if direction == DIR_REQUEST {
            MAX_REQUEST
        } else {
            MAX_RESPONSE
        };
        if payload_len > limit {
            return Err(HeaderError::TooLong(payload_len));
        }
        let fds = u32::from_le_bytes([bytes[12], bytes[13], bytes[14], bytes[15]]);
        let fds_ok = match direction {
            DIR_REQUEST => fds == 0,
            _ => fds == 0 || fds as usize == PORT_FDS,
        };
        if !fds_ok {
            return Err(HeaderError::Fds(fds));
        }
        Ok(Header {
            direction: dir,
            payload_len,
            fds,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_round_trip_and_checks() {
        let h = Header {
            direction: DIR_REQUEST,
            payload_len: 10,
            fds: 0,
        };
        assert_eq!(Header::decode(&h.encode(), DIR_REQUEST).unwrap(), h);
        assert_eq!(
            Header::decode(&h.encode(), DIR_RESPONSE),
            Err(HeaderError::Direction(1))
        );
        let mut bad = h.encode();
        bad[0] = b'X';
        assert_eq!(Header::decode(&bad, DIR_REQUEST), Err(HeaderError::Magic));
        let big = Header {
            direction: DIR_REQUEST,
            payload_len: MAX_REQUEST + 1,
            fds: 0,
        };
        assert!(matches!(
            Header::decode(&big.encode(), DIR_REQUEST),
            Err(HeaderError::TooLong(_))
        ));
        let fds = Header {
            direction: DIR_REQUEST,
            payload_len: 1,
            fds: 3,
        };
        assert_eq!(
            Header::decode(&fds.encode(), DIR_REQUEST),
            Err(HeaderError::Fds(3))
        );
    }

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
