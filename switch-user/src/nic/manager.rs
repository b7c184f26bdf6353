//! `attach` and `detach`: turns a network interface into a switch port (XDP
//! steering program, one AF_XDP socket per queue, promiscuous mode) and
//! optionally gives the host stack a port through a TAP.

use std::collections::BTreeMap;
use std::sync::Arc;

use parking_lot::Mutex;
use switch_port::error_chain::Chain;
use switch_port::mac::MacAddr;
use switch_port::names::{PortName, SwitchName};
use switch_port::protocol::{ErrorCode, PortKind, Request, Response, VlanMode};
use switch_xdp::{
    busy_poll, iface, AttachPolicy, NoSocketAction, PassList, Promiscuous, SteeringConfig,
    SteeringError, Tap, XdpSteering, XskConfig, XskError, XskQueue,
};
use thiserror::Error;

use super::checksum::ChecksumMode;
use super::frame_plan::{self, NIC_MAX_FRAME};
use super::host_port::{HostPort, HOST_MAX_FRAME};
use super::nic_port::NicPort;
use crate::access::{Caller, Owner};
use crate::control::ExtraHandler;
use crate::registry::{ControlError, Registry};

/// Receive frames per NIC queue (the RX ring's size; the fill ring is twice
/// as large). A socket receives into a frame only while the fill ring holds
/// one: the frames are the time the daemon may fall behind (a busy core, a
/// preemption) before the kernel drops at line rate; 8192 frames of 2 KiB
/// (16 MiB of UMEM per queue) are 5 ms at 1.6 Mpps. Jumbo MTUs use frames
/// of 4 KiB (32 MiB, see [`super::frame_plan`]).
pub const NIC_RX_FRAMES: u32 = 8192;

/// Why an attach or detach failed.
#[derive(Debug, Error)]
pub enum NicError {
    /// The interface name is not acceptable.
    #[error("bad interface name {0:?}: 1 to 15 letters, digits, `_`, `.` or `-`")]
    BadName(String),
    /// The interface does not exist here.
    #[error("no network interface {0} in the daemon's network namespace")]
    NoInterface(String),
    /// The interface cannot carry what XDP needs.
    #[error("{0}")]
    Interface(String),
    /// The XDP program could not be loaded or attached.
    #[error("cannot attach the XDP program to {iface}")]
    Steering {
        /// The interface.
        iface: String,
        /// Why.
        source: SteeringError,
    },
    /// A socket could not be opened.
    #[error("cannot open an AF_XDP socket on {iface} queue {queue}")]
    Socket {
        /// The interface.
        iface: String,
        /// The queue.
        queue: u32,
        /// Why.
        source: XskError,
    },
    /// `--checksum` names no mode.
    #[error("{0}")]
    BadChecksum(String),
    /// `--busy-poll` is out of range.
    #[error("bad --busy-poll {0}: a NAPI budget of 1 to 65535 frames")]
    BadBusyPoll(u32),
    /// A socket refused busy polling.
    #[error("cannot busy-poll {iface} queue {queue}")]
    BusyPoll {
        /// The interface.
        iface: String,
        /// The queue.
        queue: u32,
        /// Why.
        source: switch_xdp::busy_poll::BusyPollError,
    },
    /// A pass-list entry is neither an EtherType nor a MAC.
    #[error("bad --pass entry {0:?}: an EtherType (0x0806) or a MAC (aa:bb:cc:dd:ee:ff)")]
    BadPass(String),
    /// More queues than the interface has.
    #[error("{iface} has {has} receive queues, {asked} asked for")]
    Queues {
        /// The interface.
        iface: String,
        /// Its queues.
        has: u32,
        /// Asked for.
        asked: u32,
    },
    /// Not attached.
    #[error("{iface} is not attached to {switch}")]
    NotAttached {
        /// The switch.
        switch: SwitchName,
        /// The interface.
        iface: String,
    },
    /// Already attached.
    #[error("{0} is already attached to a switch")]
    AlreadyAttached(String),
    /// The TAP could not be created.
    #[error("cannot create the host port's TAP {name}: {reason}")]
    Tap {
        /// The TAP's name.
        name: String,
        /// Why.
        reason: String,
    },
    /// The switch refused the port.
    #[error(transparent)]
    Control(#[from] ControlError),
}

impl NicError {
    fn code(&self) -> ErrorCode {
        match self {
            NicError::BadName(_)
            | NicError::BadPass(_)
            | NicError::BadChecksum(_)
            | NicError::BadBusyPoll(_) => ErrorCode::BadRequest,
            NicError::NoInterface(_) | NicError::Interface(_) | NicError::Queues { .. } => {
                ErrorCode::BadInterface
            }
            NicError::Steering { .. }
            | NicError::Socket { .. }
            | NicError::BusyPoll { .. }
            | NicError::Tap { .. } => ErrorCode::Unsupported,
            NicError::NotAttached { .. } => ErrorCode::NoSuchPort,
            NicError::AlreadyAttached(_) => ErrorCode::PortExists,
            NicError::Control(e) => e.code(),
        }
    }
}

/// Checks a Linux interface name.
pub fn check_ifname(name: &str) -> Result<(), NicError> {
    let ok = !name.is_empty()
        && name.len() <= 15
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'.' || b == b'-');
    if ok {
        Ok(())
    } else {
        Err(NicError::BadName(name.to_owned()))
    }
}

/// Parses `--pass` entries into a pass list.
pub fn parse_pass_list(entries: &[String]) -> Result<PassList, NicError> {
    let mut list = PassList::default();
    for entry in entries {
        if let Ok(mac) = entry.parse::<MacAddr>() {
            list.macs.insert(mac.0);
            continue;
        }
        let hex = entry
            .strip_prefix("0x")
            .or_else(|| entry.strip_prefix("0X"));
        let value = match hex {
            Some(h) => u16::from_str_radix(h, 16).ok(),
            None => entry.parse::<u16>().ok(),
        };
        match value {
            Some(ethertype) if ethertype >= 0x0600 => {
                list.ethertypes.insert(ethertype);
            }
            _ => return Err(NicError::BadPass(entry.clone())),
        }
    }
    Ok(list)
}

/// Whether the NIC port of `iface` completes partial checksums in `mode`:
/// `auto` does on a veth, whose peer may be a local stack sending with
/// transmit checksum offload (the frames' checksums are unfinished and
/// AF_XDP does not say so), and logs it.
fn completes_checksums(iface: &str, mode: ChecksumMode) -> bool {
    match mode {
        ChecksumMode::Complete => true,
        ChecksumMode::Trust => false,
        ChecksumMode::Auto => {
            let veth = iface::driver(iface).is_ok_and(|d| d == "veth");
            if veth {
                log::info!(
                    "{iface} is a veth: its peer may send partial TCP/UDP checksums \
                     (transmit checksum offload); completing them in software \
                     (--checksum trust to forward them as they are)"
                );
            }
            veth
        }
    }
}

/// The default TAP name of a NIC's host port.
pub fn default_host_name(iface: &str) -> String {
    let stem: String = iface.chars().take(10).collect();
    format!("{stem}-host")
}

struct Attachment {
    nic_port: PortName,
    host_port: Option<PortName>,
}

/// Serves `attach` and `detach`.
pub struct NicManager {
    registry: Arc<Registry>,
    attached: Mutex<BTreeMap<String, Attachment>>,
}

impl NicManager {
    /// A manager adding ports to `registry`.
    pub fn new(registry: Arc<Registry>) -> NicManager {
        NicManager {
            registry,
            attached: Mutex::new(BTreeMap::new()),
        }
    }

    /// Forgets attachments whose NIC port is gone (the interface vanished).
    fn prune(&self, attached: &mut BTreeMap<String, Attachment>) {
        let existing: Vec<String> = self
            .registry
            .list()
            .into_iter()
            .flat_map(|s| s.ports.into_iter().map(|p| p.name.to_string()))
            .collect();
        attached.retain(|iface, a| {
            let alive = existing.iter().any(|p| p == a.nic_port.as_str());
            if !alive {
                if let Some(host) = &a.host_port {
                    let _ = self.registry.remove_port(host);
                }
                log::info!("{iface} is gone: forgetting its attachment");
            }
            alive
        });
    }

    /// Attaches `iface` to `switch`; its ports are `owner`'s, in the VLAN
    /// modes `vlans` (the NIC's, the host port's); its sockets busy-poll
    /// with the budget `busy_poll` when given.
    #[allow(clippy::too_many_arguments)]
    pub fn attach(
        &self,
        switch: &SwitchName,
        iface_name: &str,
        queues: Option<u32>,
        zero_copy: Option<bool>,
        host: bool,
        host_name: Option<&str>,
        pass: &[String],
        checksum: Option<&str>,
        vlans: [Option<&VlanMode>; 2],
        busy_poll: Option<u32>,
        owner: &Owner,
    ) -> Result<Response, NicError> {
        check_ifname(iface_name)?;
        if let Some(budget) = busy_poll.filter(|b| !(1..=busy_poll::MAX_BUDGET).contains(b)) {
            return Err(NicError::BadBusyPoll(budget));
        }
        let checksum_mode = checksum
            .map(str::parse::<ChecksumMode>)
            .transpose()
            .map_err(NicError::BadChecksum)?
            .unwrap_or_default();
        for v in vlans.iter().flatten() {
            v.validate().map_err(ControlError::from)?;
        }
        let nic_port = PortName::join(switch, iface_name)
            .map_err(|_| NicError::BadName(iface_name.to_owned()))?;
        let host_tap = host.then(|| {
            host_name
                .map(str::to_owned)
                .unwrap_or_else(|| default_host_name(iface_name))
        });
        if let Some(t) = &host_tap {
            check_ifname(t)?;
        }
        let mut attached = self.attached.lock();
        self.prune(&mut attached);
        if attached.contains_key(iface_name) {
            return Err(NicError::AlreadyAttached(iface_name.to_owned()));
        }
        iface::ifindex(iface_name).map_err(|_| NicError::NoInterface(iface_name.to_owned()))?;
        let available = iface::rx_queue_count(iface_name)
            .map_err(|e| NicError::Interface(Chain(&e).to_string()))?;
        let count = queues.unwrap_or(available);
        if count == 0 || count > available {
            return Err(NicError::Queues {
                iface: iface_name.to_owned(),
                has: available,
                asked: count,
            });
        }
        let pass_list = parse_pass_list(pass)?;
        let mtu = iface::mtu(iface_name).map_err(|e| NicError::Interface(Chain(&e).to_string()))?;
        let plan = frame_plan::plan(mtu).map_err(|frame| {
            NicError::Interface(format!(
                "{iface_name} has MTU {mtu}: frames up to {frame} bytes, but NIC ports carry at most {NIC_MAX_FRAME}; lower the MTU"
            ))
        })?;
        let mut steering = XdpSteering::attach(
            iface_name,
            &SteeringConfig {
                policy: AttachPolicy::DriverOrSkb,
                no_socket_action: NoSocketAction::Drop,
                pass_list,
                frags: plan.frags,
            },
        )
        .map_err(|source| NicError::Steering {
            iface: iface_name.to_owned(),
            source,
        })?;
        let open = |queue: u32, zc: bool| {
            XskQueue::open(
                iface_name,
                queue,
                &XskConfig {
                    zero_copy: zc,
                    rx_frames: NIC_RX_FRAMES,
                    frame_size: plan.frame_size,
                    max_packet: plan.max_packet,
                    ..XskConfig::default()
                },
            )
        };
        let mut sockets = Vec::new();
        let mut zc_used = false;
        for queue in 0..count {
            let socket = match zero_copy {
                Some(zc) => open(queue, zc),
                None => match open(queue, true) {
                    Err(XskError::ZeroCopyUnsupported { .. }) => open(queue, false),
                    other => other,
                },
            }
            .map_err(|source| NicError::Socket {
                iface: iface_name.to_owned(),
                queue,
                source,
            })?;
            zc_used = socket.is_zero_copy();
            if let Some(budget) = busy_poll {
                busy_poll::enable(socket.fd(), budget).map_err(|source| NicError::BusyPoll {
                    iface: iface_name.to_owned(),
                    queue,
                    source,
                })?;
            }
            steering
                .register_socket(&socket)
                .map_err(|source| NicError::Steering {
                    iface: iface_name.to_owned(),
                    source,
                })?;
            sockets.push(socket);
        }
        if let Some(s) = sockets.first() {
            iface::check_xdp_mtu(iface_name, s.max_frame_len())
                .map_err(|e| NicError::Interface(Chain(&e).to_string()))?;
        }
        let promiscuous = Promiscuous::enable(iface_name)
            .map_err(|e| NicError::Interface(Chain(&e).to_string()))?;
        let mode = steering.mode().to_string();
        let complete = completes_checksums(iface_name, checksum_mode);
        let port = NicPort::new(iface_name, sockets, steering, Some(promiscuous))
            .map_err(|e| NicError::Interface(format!("epoll: {e}")))?
            .with_checksum_completion(complete)
            .with_busy_poll(busy_poll.is_some());
        self.registry
            .add_port(&nic_port, PortKind::Nic, Box::new(port), vlans[0], owner)?;
        log::info!(
            "attached {iface_name} to {switch} ({count} queue(s), XDP {mode} mode, {}, MTU {mtu}{})",
            if zc_used { "zero-copy" } else { "copy" },
            if plan.frags { ", multi-buffer" } else { "" }
        );
        let host_port = match host_tap {
            None => None,
            Some(tap_name) => {
                match self.attach_host(switch, &tap_name, (iface_name, mtu), vlans[1], owner) {
                    Ok(p) => Some(p),
                    Err(e) => {
                        let _ = self.registry.remove_port(&nic_port);
                        return Err(e);
                    }
                }
            }
        };
        attached.insert(
            iface_name.to_owned(),
            Attachment {
                nic_port: nic_port.clone(),
                host_port: host_port.clone(),
            },
        );
        if let Some(budget) = busy_poll {
            log::info!(
                "{iface_name}: busy polling with a budget of {budget} from the forwarding threads; \
                 it replaces interrupts only if the device defers them \
                 (/sys/class/net/{iface_name}/napi_defer_hard_irqs and gro_flush_timeout)"
            );
        }
        if count < available {
            log::warn!(
                "{iface_name} has {available} receive queues and {count} get a socket: frames on the others are dropped (shrink the NIC's channels with `ethtool -L {iface_name} combined {count}`)"
            );
        }
        Ok(Response::Attached {
            nic_port,
            host_port,
            queues: count,
            nic_queues: available,
            xdp_mode: mode,
            zero_copy: zc_used,
        })
    }

    fn attach_host(
        &self,
        switch: &SwitchName,
        tap_name: &str,
        (nic, mtu): (&str, u32),
        vlan: Option<&VlanMode>,
        owner: &Owner,
    ) -> Result<PortName, NicError> {
        let nic_index = iface::ifindex(nic).map_err(|_| NicError::NoInterface(nic.to_owned()))?;
        let name =
            PortName::join(switch, tap_name).map_err(|_| NicError::BadName(tap_name.to_owned()))?;
        let tap = Tap::create(tap_name).map_err(|e| NicError::Tap {
            name: tap_name.to_owned(),
            reason: Chain(&e).to_string(),
        })?;
        // The host stack sends and receives what the NIC carries.
        iface::set_mtu(tap_name, mtu)
            .and_then(|()| iface::set_link_up(tap_name))
            .map_err(|e| NicError::Tap {
                name: tap_name.to_owned(),
                reason: Chain(&e).to_string(),
            })?;
        let max_frame = HOST_MAX_FRAME.max((mtu + iface::FRAME_OVERHEAD) as usize);
        let host = HostPort::new(tap, (nic.to_owned(), nic_index), max_frame);
        self.registry
            .add_port(&name, PortKind::Host, Box::new(host), vlan, owner)?;
        log::info!("host port {name} is TAP {tap_name}");
        Ok(name)
    }

    /// Detaches `iface` from `switch`.
    pub fn detach(&self, switch: &SwitchName, iface_name: &str) -> Result<Response, NicError> {
        let mut attached = self.attached.lock();
        self.prune(&mut attached);
        let matches = attached
            .get(iface_name)
            .is_some_and(|a| a.nic_port.switch() == *switch);
        if !matches {
            return Err(NicError::NotAttached {
                switch: switch.clone(),
                iface: iface_name.to_owned(),
            });
        }
        if let Some(a) = attached.remove(iface_name) {
            self.registry.remove_port(&a.nic_port)?;
            if let Some(host) = &a.host_port {
                let _ = self.registry.remove_port(host);
            }
            log::info!("detached {iface_name} from {switch}");
        }
        Ok(Response::Done)
    }
}

impl ExtraHandler for NicManager {
    fn handle(&self, request: &Request, caller: &Caller) -> Option<Response> {
        let result = match request {
            Request::Attach {
                switch,
                iface,
                queues,
                zero_copy,
                host,
                host_name,
                pass,
                checksum,
                vlan,
                host_vlan,
                busy_poll,
            } => self.attach(
                switch,
                iface,
                *queues,
                *zero_copy,
                *host,
                host_name.as_deref(),
                pass,
                checksum.as_deref(),
                [vlan.as_ref(), host_vlan.as_ref()],
                *busy_poll,
                caller.owner(),
            ),
            Request::Detach { switch, iface } => self.detach(switch, iface),
            _ => return None,
        };
        Some(result.unwrap_or_else(|e| Response::Error {
            code: e.code(),
            message: Chain(&e).to_string(),
        }))
    }
}
