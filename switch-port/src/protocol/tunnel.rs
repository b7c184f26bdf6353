//! VXLAN tunnel ports on the wire: what `tunnel add` asks for
//! ([`TunnelSpec`]) and what `tunnel list` reports ([`TunnelInfo`]).

use std::net::Ipv4Addr;

use serde::{Deserialize, Serialize};

use super::vlan::VlanMode;
use crate::mac::MacAddr;
use crate::names::PortName;

/// The IANA-assigned VXLAN UDP port (RFC 7348).
pub const VXLAN_PORT: u16 = 4789;

/// The default underlay IP MTU a tunnel assumes.
pub const DEFAULT_UNDERLAY_MTU: u16 = 1500;

/// Largest VXLAN network identifier (24 bits).
pub const MAX_VNI: u32 = (1 << 24) - 1;

/// The settings of a VXLAN tunnel port.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TunnelSpec {
    /// The VXLAN network identifier (0 to 2^24 - 1).
    pub vni: u32,
    /// The local VTEP address: the UDP socket is bound to it.
    pub local: Ipv4Addr,
    /// Remote VTEPs that get broadcast, multicast and unknown unicast
    /// (head-end replication).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub remotes: Vec<Ipv4Addr>,
    /// A multicast group that gets them instead of (or besides) the remotes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub group: Option<Ipv4Addr>,
    /// The UDP destination port (and the local port listened on).
    #[serde(default = "default_dst_port")]
    pub dst_port: u16,
    /// The underlay's IP MTU: encapsulated frames longer than this minus
    /// 36 bytes (outer IPv4, UDP and VXLAN headers) are dropped.
    #[serde(default = "default_underlay_mtu")]
    pub underlay_mtu: u16,
    /// The tunnel port's VLAN mode (absent: no VLAN, the VNI maps to the
    /// whole switch). An access VLAN maps the VNI to that VLAN of the
    /// switch: decapsulated frames enter it, its frames leave untagged.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub vlan: Option<VlanMode>,
    /// Move the datagrams through AF_XDP sockets on the interface that
    /// holds `local` instead of the kernel's UDP path (unicast remotes
    /// only; absent: false).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub underlay_xdp: bool,
}

fn default_dst_port() -> u16 {
    VXLAN_PORT
}

fn default_underlay_mtu() -> u16 {
    DEFAULT_UNDERLAY_MTU
}

/// A tunnel port in a listing.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct TunnelInfo {
    /// The port, `SWITCH:NAME`.
    pub port: PortName,
    /// Its settings.
    pub spec: TunnelSpec,
    /// Remote addresses learned (MAC to VTEP entries).
    pub learned: u32,
    /// Whether sending uses a raw socket (UDP source port from the inner
    /// flow's hash) or, lacking CAP_NET_RAW, the UDP socket itself.
    pub hashed_source_port: bool,
    /// The learned addresses and their VTEPs, sorted by address (for
    /// admins; empty for other callers).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub vteps: Vec<VtepRow>,
}

/// An address learned behind a remote VTEP.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct VtepRow {
    /// The inner source address.
    pub mac: MacAddr,
    /// The VTEP it was last seen behind.
    pub vtep: Ipv4Addr,
    /// Seconds since then.
    pub age_secs: u32,
}
