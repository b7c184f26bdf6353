//! `tunnel add`, `tunnel del` and `tunnel list`: checks a tunnel's
//! settings, opens its sockets and adds it to its switch as a port.

use std::collections::BTreeMap;
use std::net::Ipv4Addr;
use std::sync::Arc;

use parking_lot::Mutex;
use switch_port::error_chain::Chain;
use switch_port::mac::MacAddr;
use switch_port::names::PortName;
use switch_port::protocol::{
    ErrorCode, PortKind, Request, Response, TunnelInfo, TunnelSpec, VtepRow, MAX_VNI,
};
use thiserror::Error;

use super::demux::SocketTable;
use super::port::{OpenError, TunnelPort, TUNNEL_MAX_FRAME};
use super::vteps;
use crate::access::{Caller, Owner};
use crate::bridge::learning::DEFAULT_MAX_AGE_SECS;
use crate::control::ExtraHandler;
use crate::registry::{ControlError, Registry};

/// Smallest underlay MTU accepted (IPv4's minimum reassembly size).
pub const MIN_UNDERLAY_MTU: u16 = 576;

/// Why a tunnel request failed.
#[derive(Debug, Error)]
pub enum TunnelError {
    /// A setting is out of range.
    #[error("{0}")]
    BadSpec(String),
    /// The sockets could not be opened.
    #[error("cannot open the tunnel {0}")]
    Open(PortName, #[source] OpenError),
    /// No such tunnel.
    #[error("no tunnel {0}")]
    NoTunnel(PortName),
    /// The switch refused the port.
    #[error(transparent)]
    Control(#[from] ControlError),
}

impl TunnelError {
    fn code(&self) -> ErrorCode {
        match self {
            TunnelError::BadSpec(_) => ErrorCode::BadConfig,
            TunnelError::Open(_, OpenError::VniInUse { .. }) => ErrorCode::PortExists,
            TunnelError::Open(..) => ErrorCode::BadInterface,
            TunnelError::NoTunnel(_) => ErrorCode::NoSuchPort,
            TunnelError::Control(e) => e.code(),
        }
    }
}

fn unicast(a: Ipv4Addr) -> bool {
    !(a.is_unspecified() || a.is_multicast() || a.is_broadcast())
}

/// Checks a tunnel's settings.
pub fn check_spec(spec: &TunnelSpec) -> Result<(), TunnelError> {
    let bad = |m: String| Err(TunnelError::BadSpec(m));
    if spec.vni > MAX_VNI {
        return bad(format!("--vni {}: a VNI is 0 to {MAX_VNI}", spec.vni));
    }
    if !unicast(spec.local) {
        return bad(format!(
            "--local {}: the local VTEP needs a unicast address",
            spec.local
        ));
    }
    if let Some(r) = spec.remotes.iter().find(|r| !unicast(**r)) {
        return bad(format!("--remote {r}: a remote VTEP is a unicast address"));
    }
    if spec.remotes.len() > 256 {
        return bad("at most 256 --remote VTEPs".into());
    }
    if let Some(g) = spec.group {
        if !g.is_multicast() {
            return bad(format!("--group {g}: not a multicast address"));
        }
    }
    if spec.underlay_xdp && spec.group.is_some() {
        return bad("--underlay-xdp takes unicast remotes only, not --group".into());
    }
    if spec.dst_port == 0 {
        return bad("--dst-port 0: a UDP port is 1 to 65535".into());
    }
    if let Some(v) = &spec.vlan {
        if let Err(e) = v.validate() {
            return bad(format!("{}: {e}", v.options("")));
        }
    }
    let most = (TUNNEL_MAX_FRAME + super::header::IP_OVERHEAD) as u16;
    if !(MIN_UNDERLAY_MTU..=most).contains(&spec.underlay_mtu) {
        return bad(format!(
            "--underlay-mtu {}: {MIN_UNDERLAY_MTU} to {most}",
            spec.underlay_mtu
        ));
    }
    Ok(())
}

/// Serves the tunnel requests.
pub struct TunnelManager {
    registry: Arc<Registry>,
    tunnels: Mutex<BTreeMap<PortName, Arc<TunnelPort>>>,
    /// The receiving sockets, shared by the tunnels (of different VNIs)
    /// on one address and port.
    sockets: SocketTable,
}

impl TunnelManager {
    /// A manager adding tunnel ports to `registry`.
    pub fn new(registry: Arc<Registry>) -> TunnelManager {
        TunnelManager {
            registry,
            tunnels: Mutex::new(BTreeMap::new()),
            sockets: SocketTable::new(),
        }
    }

    /// Adds tunnel `port` with `spec`, owned by `owner`.
    pub fn add(
        &self,
        port: &PortName,
        spec: &TunnelSpec,
        owner: &Owner,
    ) -> Result<Response, TunnelError> {
        check_spec(spec)?;
        let mut tunnels = self.tunnels.lock();
        if tunnels.contains_key(port) {
            return Err(ControlError::PortExists(port.clone()).into());
        }
        let io = Arc::new(
            TunnelPort::open(
                port,
                spec.clone(),
                &self.sockets,
                self.registry.clock(),
                vteps::DEFAULT_CAPACITY,
                DEFAULT_MAX_AGE_SECS,
            )
            .map_err(|e| TunnelError::Open(port.clone(), e))?,
        );
        self.registry.add_port(
            port,
            PortKind::Tunnel,
            Box::new(io.clone()),
            spec.vlan.as_ref(),
            owner,
        )?;
        log::info!(
            "tunnel {port}: VNI {}{} from {}:{} to {} remote(s){}, inner frames up to {} bytes{}",
            spec.vni,
            spec.vlan
                .as_ref()
                .map(|v| format!(" ({})", v.options("")))
                .unwrap_or_default(),
            spec.local,
            spec.dst_port,
            spec.remotes.len(),
            spec.group
                .map(|g| format!(" and group {g}"))
                .unwrap_or_default(),
            io.max_inner(),
            if io.hashed_source_port() {
                ""
            } else {
                " (one UDP source port: no CAP_NET_RAW)"
            }
        );
        if let Some(iface) = io.xdp_interface() {
            log::info!("tunnel {port}: AF_XDP underlay on {iface}");
        }
        tunnels.insert(port.clone(), io);
        Ok(Response::Done)
    }

    /// Removes tunnel `port`.
    pub fn del(&self, port: &PortName) -> Result<Response, TunnelError> {
        let mut tunnels = self.tunnels.lock();
        if tunnels.remove(port).is_none() {
            return Err(TunnelError::NoTunnel(port.clone()));
        }
        self.registry.remove_port(port)?;
        log::info!("tunnel {port} removed");
        Ok(Response::Done)
    }

    /// Every tunnel; with the learned addresses when `admin`.
    pub fn list(&self, admin: bool) -> Response {
        let tunnels = self.tunnels.lock();
        Response::Tunnels {
            tunnels: tunnels
                .iter()
                .map(|(port, io)| TunnelInfo {
                    port: port.clone(),
                    spec: io.spec().clone(),
                    learned: io.learned() as u32,
                    hashed_source_port: io.hashed_source_port(),
                    vteps: if admin {
                        io.vteps()
                            .into_iter()
                            .map(|(mac, vtep, age_secs)| VtepRow {
                                mac: MacAddr(mac),
                                vtep,
                                age_secs,
                            })
                            .collect()
                    } else {
                        Vec::new()
                    },
                })
                .collect(),
        }
    }
}

impl ExtraHandler for TunnelManager {
    fn handle(&self, request: &Request, caller: &Caller) -> Option<Response> {
        let result = match request {
            Request::TunnelAdd { port, tunnel } => self.add(port, tunnel, caller.owner()),
            Request::TunnelDel { port } => self.del(port),
            Request::TunnelList {} => Ok(self.list(caller.is_admin())),
            _ => return None,
        };
        Some(result.unwrap_or_else(|e| Response::Error {
            code: e.code(),
            message: Chain(&e).to_string(),
        }))
    }
}

#[cfg(test)]
mod tests {
    use switch_port::protocol::VlanMode;

    use super::*;

    fn spec() -> TunnelSpec {
        TunnelSpec {
            vni: 42,
            local: Ipv4Addr::new(10, 0, 0, 1),
            remotes: vec![Ipv4Addr::new(10, 0, 0, 2)],
            group: None,
            dst_port: 4789,
            underlay_mtu: 1500,
            vlan: None,
            underlay_xdp: false,
        }
    }

    #[test]
    fn adding_and_deleting_tunnels_needs_an_admin() {
        use crate::access::Caller;
        use crate::control::authorize;
        let nobody = Caller::nobody();
        let port: PortName = "vale0:vx".parse().unwrap();
        let add = Request::TunnelAdd {
            port: port.clone(),
            tunnel: spec(),
        };
        assert_eq!(
            authorize(&add, &nobody).unwrap_err().to_string(),
            "permission denied: uid 65534 may not add tunnel vale0:vx (needs root)"
        );
        assert!(authorize(&Request::TunnelDel { port }, &nobody).is_err());
        assert!(authorize(&Request::TunnelList {}, &nobody).is_ok());
        assert!(authorize(&add, &Caller::root()).is_ok());
    }

    #[test]
    fn settings_are_checked() {
        assert!(check_spec(&spec()).is_ok());
        type Change = fn(&mut TunnelSpec);
        let cases: [(Change, &str); 9] = [
            (|s| s.vni = 1 << 24, "--vni"),
            (|s| s.local = Ipv4Addr::UNSPECIFIED, "--local"),
            (|s| s.remotes.push(Ipv4Addr::new(239, 1, 1, 1)), "--remote"),
            (|s| s.group = Some(Ipv4Addr::new(10, 1, 1, 1)), "--group"),
            (|s| s.dst_port = 0, "--dst-port"),
            (
                |s| {
                    s.underlay_xdp = true;
                    s.group = Some(Ipv4Addr::new(239, 1, 1, 1));
                },
                "--underlay-xdp",
            ),
            (|s| s.underlay_mtu = 100, "--underlay-mtu"),
            (|s| s.vlan = Some(VlanMode::Access { vlan: 4095 }), "--vlan"),
            (
                |s| {
                    s.vlan = Some(VlanMode::Trunk {
                        vlans: vec![0],
                        native: None,
                    })
                },
                "--trunk",
            ),
        ];
        for (change, flag) in cases {
            let mut s = spec();
            change(&mut s);
            let e = check_spec(&s).unwrap_err();
            assert!(e.to_string().starts_with(flag), "{e}");
        }
        let mut s = spec();
        s.vlan = Some(VlanMode::Access { vlan: 5000 });
        assert_eq!(
            check_spec(&s).unwrap_err().to_string(),
            "--vlan 5000: VLAN id 5000 is out of range (1..=4094)"
        );
        s.vlan = Some(VlanMode::Access { vlan: 4094 });
        assert!(check_spec(&s).is_ok());
    }
}
