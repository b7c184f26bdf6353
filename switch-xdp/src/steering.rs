//! `XdpSteering`: the XDP steering program loaded with aya and attached to
//! one interface through a bpf_link owned by this process, plus the maps the
//! daemon drives: the XSKMAP, the fallback action, the pass lists and the
//! per-queue counters.
//!
//! The link is a file descriptor: when the process exits, even killed, the
//! kernel closes it and the program leaves the interface. Dropping an
//! `XdpSteering` detaches it at once.
use crate::log_reader::{self, LogReader};
use crate::maps::{PodCounters, PodMacKey};
use crate::program;
use crate::xsk::XskQueue;
use aya::maps::{Array, HashMap, MapData, MapError, PerCpuArray, XskMap};
use aya::programs::links::FdLink;
use aya::programs::{ProgramError, Xdp, XdpMode};
use aya::{Ebpf, EbpfLoader};
use std::collections::BTreeSet;
use std::fmt;
use std::os::fd::AsRawFd;
use switch_ebpf_common::{
    action, config, pass_flags, QueueCounters, CONFIG_MAP, COUNTERS_MAP, MAX_PASS_ENTRIES,
    MAX_QUEUES, PASS, PASS_ETHERTYPES_MAP, PASS_MACS_MAP, PROGRAM_FRAGS_NAME, PROGRAM_NAME,
    XSK_MAP,
};

/// Errors of loading, attaching and driving the steering program.
#[derive(Debug, thiserror::Error)]
pub enum SteeringError {
    /// This build embeds no program object.
    #[error("built without the XDP program: run `cargo xtask build-ebpf` and rebuild")]
    ProgramMissing,
    /// aya could not parse or load the object (maps, BTF, relocations).
    #[error("loading the XDP program object")]
    Load(#[source] Box<aya::EbpfError>),
    /// The object lacks a program or map this crate expects.
    #[error("the XDP program object has no {0}: switch-ebpf and switch-xdp disagree")]
    MissingPart(String),
    /// The kernel refused the program (verifier) or a program operation failed.
    #[error("XDP program")]
    Program(#[source] Box<ProgramError>),
    /// No interface of that name in this network namespace.
    #[error("no network interface named {0:?}")]
    UnknownInterface(String),
    /// Attaching failed in the mode the policy allowed.
    #[error("attaching XDP to {iface} in {mode} mode{hint}")]
    Attach {
        /// The interface.
        iface: String,
        /// The mode tried.
        mode: AttachMode,
        /// What aya reported.
        source: Box<ProgramError>,
        /// A hint for the errors we recognise (MTU too large).
        hint: &'static str,
    },
    /// Driver mode was refused, and skb mode as well.
    #[error("attaching XDP to {iface}: driver mode refused ({driver}), skb mode refused ({skb})")]
    AttachRefused {
        /// The interface.
        iface: String,
        /// Why driver mode failed.
        driver: Box<ProgramError>,
        /// Why skb mode failed.
        skb: Box<ProgramError>,
    },
    /// The kernel attached through netlink rather than a bpf_link, so the
    /// program would outlive a killed process; it has been detached again.
    #[error("the kernel attached XDP to {0} without a bpf_link (kernel older than 5.9?)")]
    NotALink(String),
    /// A queue index beyond what the maps cover.
    #[error("queue {queue} is beyond the {max} queues the XDP maps cover")]
    QueueOutOfRange {
        /// The queue asked for.
        queue: u32,
        /// The number of queues covered.
        max: u32,
    },
    /// A socket bound to another interface than the one steered.
    #[error("the AF_XDP socket is bound to {socket}, the program steers {steered}")]
    WrongInterface {
        /// The socket's interface.
        socket: String,
        /// The interface of this program.
        steered: String,
    },
    /// A pass list would exceed the map's capacity.
    #[error("a pass list holds at most {0} entries")]
    PassListFull(u32),
    /// A map operation failed.
    #[error("map {map}")]
    Map {
        /// The map's name.
        map: &'static str,
        /// What aya reported.
        source: MapError,
    },
}

/// The mode the program runs in.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AttachMode {
    /// Native XDP, in the driver (`xdp` in `ip link`).
    Driver,
    /// Generic XDP, on the skb path (`xdpgeneric` in `ip link`).
    Skb,
}

impl fmt::Display for AttachMode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            AttachMode::Driver => "driver",
            AttachMode::Skb => "skb",
        })
    }
}

/// Which modes `attach` may use.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum AttachPolicy {
    /// Driver mode, or skb mode (with a log line) when the driver refuses.
    #[default]
    DriverOrSkb,
    /// Driver mode only.
    Driver,
    /// Skb (generic) mode only.
    Skb,
}

/// What happens to frames of a receive queue that has no AF_XDP socket.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum NoSocketAction {
    /// Dropped (the program's default).
    #[default]
    Drop,
    /// Handed to the kernel stack.
    Pass,
}

/// Frames handed to the kernel stack instead of the sockets.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PassList {
    /// EtherTypes (host byte order, e.g. 0x0806 for ARP).
    pub ethertypes: BTreeSet<u16>,
    /// Destination MAC addresses.
    pub macs: BTreeSet<[u8; 6]>,
}

/// How `XdpSteering::attach` sets the program up before it goes live.
#[derive(Clone, Debug, Default)]
pub struct SteeringConfig {
    /// The modes allowed.
    pub policy: AttachPolicy,
    /// The fate of frames on queues without a socket.
    pub no_socket_action: NoSocketAction,
    /// The initial pass list.
    pub pass_list: PassList,
    /// Load the multi-buffer variant of the program (`xdp.frags`), which
    /// drivers such as veth require for an MTU beyond one page, and which
    /// passes multi-buffer frames on to sockets bound with `XDP_USE_SG`.
    pub frags: bool,
}

/// The maps of the program, taken out of the `Ebpf` so that they are owned.
struct Maps {
    xsks: XskMap<MapData>,
    config: Array<MapData, u32>,
    counters: PerCpuArray<MapData, PodCounters>,
    pass_ethertypes: HashMap<MapData, u16, u8>,
    pass_macs: HashMap<MapData, PodMacKey, u8>,
}

/// The steering program attached to one interface.
pub struct XdpSteering {
    // Dropped first: closing the link detaches the program.
    link: Option<FdLink>,
    iface: String,
    mode: AttachMode,
    maps: Maps,
    pass_list: PassList,
    no_socket_action: NoSocketAction,
    // Stopped after the link is gone, so that it forwards the last lines.
    _log_reader: Option<LogReader>,
    _ebpf: Ebpf,
}

impl fmt::Debug for XdpSteering {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("XdpSteering")
            .field("iface", &self.iface)
            .field("mode", &self.mode)
            .field("no_socket_action", &self.no_socket_action)
            .field("pass_list", &self.pass_list)
            .finish()
    }
}

impl XdpSteering {
    /// Loads the program, configures it from `config` and attaches it to
    /// `iface` (in this thread's network namespace).
    pub fn attach(iface: &str, config: &SteeringConfig) -> Result<Self, SteeringError> {
        let object = program::object().ok_or(SteeringError::ProgramMissing)?;
        if crate::iface::ifindex(iface).is_err() {
            return Err(SteeringError::UnknownInterface(iface.to_string()));
        }
        let level = log_reader::program_level();
        let mut ebpf = EbpfLoader::new()
            .override_global(log_reader::LEVEL_GLOBAL, &level, false)
            .load(object)
            .map_err(|e| SteeringError::Load(Box::new(e)))?;
        // The log is a convenience: a program without one still steers.
        let log_reader = LogReader::start(&mut ebpf, iface)
            .inspect_err(|e| {
                log::warn!(
                    "{iface}: XDP program log unavailable: {}",
                    log_reader::chain(e)
                )
            })
            .ok();
        let maps = Maps::take(&mut ebpf)?;
        let mut steering_maps = maps;
        steering_maps.write_no_socket_action(config.no_socket_action)?;
        let empty = PassList::default();
        steering_maps.write_pass_list(&empty, &config.pass_list)?;

        let name = if config.frags {
            PROGRAM_FRAGS_NAME
        } else {
            PROGRAM_NAME
        };
        let program: &mut Xdp = ebpf
            .program_mut(name)
            .ok_or_else(|| SteeringError::MissingPart(format!("program {name}")))?
            .try_into()
            .map_err(program_error)?;
        program.load().map_err(program_error)?;
        let (link_id, mode) = attach_by_policy(program, iface, config.policy)?;
        let link = program.take_link(link_id).map_err(program_error)?;
        // Only a bpf_link dies with the process; a netlink attachment would
        // stay. The failed conversion drops (detaches) the netlink one.
        let link =
            FdLink::try_from(link).map_err(|_| SteeringError::NotALink(iface.to_string()))?;
        Ok(Self {
            link: Some(link),
            iface: iface.to_string(),
            mode,
            maps: steering_maps,
            pass_list: config.pass_list.clone(),
            no_socket_action: config.no_socket_action,
            _log_reader: log_reader,
            _ebpf: ebpf,
        })
    }

    /// The interface the program is attached to.
    pub fn interface(&self) -> &str {
        &self.iface
    }

    /// The mode the program runs in.
    pub fn mode(&self) -> AttachMode {
        self.mode
    }

    /// The current fate of frames on queues without a socket.
    pub fn no_socket_action(&self) -> NoSocketAction {
        self.no_socket_action
    }

    /// Sets the fate of frames on queues without a socket.
    pub fn set_no_socket_action(&mut self, action: NoSocketAction) -> Result<(), SteeringError> {
        self.maps.write_no_socket_action(action)?;
        self.no_socket_action = action;
        Ok(())
    }

    /// The current pass list.
    pub fn pass_list(&self) -> &PassList {
        &self.pass_list
    }

    /// Replaces the pass list.
    pub fn set_pass_list(&mut self, list: &PassList) -> Result<(), SteeringError> {
        self.maps.write_pass_list(&self.pass_list, list)?;
        self.pass_list = list.clone();
        Ok(())
    }

    /// Adds an EtherType (host byte order) to the pass list.
    pub fn pass_ethertype(&mut self, ethertype: u16) -> Result<(), SteeringError> {
        let mut list = self.pass_list.clone();
        list.ethertypes.insert(ethertype);
        self.set_pass_list(&list)
    }

    /// Adds a destination MAC to the pass list.
    pub fn pass_mac(&mut self, mac: [u8; 6]) -> Result<(), SteeringError> {
        let mut list = self.pass_list.clone();
        list.macs.insert(mac);
        self.set_pass_list(&list)
    }

    /// Turns UDP steering on: from now on only IPv4 UDP datagrams (without
    /// options, not fragmented) to `addr:port` are redirected to the
    /// sockets, and every other frame goes to the kernel stack (the pass
    /// lists no longer matter). For a VXLAN tunnel's AF_XDP underlay.
    pub fn steer_udp(&mut self, addr: std::net::Ipv4Addr, port: u16) -> Result<(), SteeringError> {
        let map_err = |source| SteeringError::Map {
            map: CONFIG_MAP,
            source,
        };
        let maps = &mut self.maps;
        maps.config
            .set(config::UDP_STEER_PORT, u32::from(port), 0)
            .map_err(map_err)?;
        maps.config
            .set(config::UDP_STEER_ADDR, u32::from_le_bytes(addr.octets()), 0)
            .map_err(map_err)
    }

    /// Puts `socket` in the XSKMAP at its queue: from now on the frames of
    /// that queue go to it.
    pub fn register_socket(&mut self, socket: &XskQueue) -> Result<(), SteeringError> {
        if socket.interface() != self.iface {
            return Err(SteeringError::WrongInterface {
                socket: socket.interface().to_string(),
                steered: self.iface.clone(),
            });
        }
        let queue = checked_queue(socket.queue(), MAX_QUEUES)?;
        self.maps
            .xsks
            .set(queue, socket.as_raw_fd(), 0)
            .map_err(|source| SteeringError::Map {
                map: XSK_MAP,
                source,
            })
    }

    /// Removes the socket of `queue` from the XSKMAP (its frames then get the
    /// no-socket action). Removing an empty slot is not an error.
    pub fn unregister_socket(&mut self, queue: u32) -> Result<(), SteeringError> {
        let queue = checked_queue(queue, MAX_QUEUES)?;
        match self.maps.xsks.unset(queue) {
            Ok(()) => Ok(()),
            Err(MapError::SyscallError(e)) if e.io_error.raw_os_error() == Some(libc::ENOENT) => {
                Ok(())
            }
            Err(source) => Err(SteeringError::Map {
                map: XSK_MAP,
                source,
            }),
        }
    }

    /// The counters of `queue`, summed over the CPUs. Queue
    /// [`MAX_QUEUES`] holds the frames of every queue beyond the maps.
    pub fn counters(&self, queue: u32) -> Result<QueueCounters, SteeringError> {
        let queue = checked_queue(queue, MAX_QUEUES + 1)?;
        let per_cpu = self
            .maps
            .counters
            .get(&queue, 0)
            .map_err(|source| SteeringError::Map {
                map: COUNTERS_MAP,
                source,
            })?;
        let mut sum = QueueCounters::default();
        for PodCounters(counters) in per_cpu.iter() {
            sum.accumulate(counters);
        }
        Ok(sum)
    }

    /// The counters of all queues added together.
    pub fn total_counters(&self) -> Result<QueueCounters, SteeringError> {
        let mut sum = QueueCounters::default();
        for queue in 0..=MAX_QUEUES {
            sum.accumulate(&self.counters(queue)?);
        }
        Ok(sum)
    }

    /// Detaches the program now (dropping does the same).
    pub fn detach(mut self) {
        self.link.take();
    }
}

impl Maps {
    /// Takes every map out of `ebpf`, typed.
    fn take(ebpf: &mut Ebpf) -> Result<Self, SteeringError> {
        fn take<T: TryFrom<aya::maps::Map, Error = MapError>>(
            ebpf: &mut Ebpf,
            name: &'static str,
        ) -> Result<T, SteeringError> {
            let map = ebpf
                .take_map(name)
                .ok_or_else(|| SteeringError::MissingPart(format!("map {name}")))?;
            T::try_from(map).map_err(|source| SteeringError::Map { map: name, source })
        }
        Ok(Self {
            xsks: take(ebpf, XSK_MAP)?,
            config: take(ebpf, CONFIG_MAP)?,
            counters: take(ebpf, COUNTERS_MAP)?,
            pass_ethertypes: take(ebpf, PASS_ETHERTYPES_MAP)?,
            pass_macs: take(ebpf, PASS_MACS_MAP)?,
        })
    }

    fn write_no_socket_action(&mut self, fallback: NoSocketAction) -> Result<(), SteeringError> {
        let value = match fallback {
            NoSocketAction::Drop => action::DROP,
            NoSocketAction::Pass => action::PASS,
        };
        self.config
            .set(config::NO_SOCKET_ACTION, value, 0)
            .map_err(|source| SteeringError::Map {
                map: CONFIG_MAP,
                source,
            })
    }

    /// Moves the maps from `old` to `new`, then publishes which lists are
    /// in use so that the program skips empty ones.
    fn write_pass_list(&mut self, old: &PassList, new: &PassList) -> Result<(), SteeringError> {
        if new.ethertypes.len() > MAX_PASS_ENTRIES as usize
            || new.macs.len() > MAX_PASS_ENTRIES as usize
        {
            return Err(SteeringError::PassListFull(MAX_PASS_ENTRIES));
        }
        let ethertype_err = |source| SteeringError::Map {
            map: PASS_ETHERTYPES_MAP,
            source,
        };
        let mac_err = |source| SteeringError::Map {
            map: PASS_MACS_MAP,
            source,
        };
        for ethertype in old.ethertypes.difference(&new.ethertypes) {
            self.pass_ethertypes
                .remove(ethertype)
                .map_err(ethertype_err)?;
        }
        for mac in old.macs.difference(&new.macs) {
            self.pass_macs
                .remove(&PodMacKey::new(*mac))
                .map_err(mac_err)?;
        }
        for ethertype in new.ethertypes.difference(&old.ethertypes) {
            self.pass_ethertypes
                .insert(ethertype, PASS, 0)
                .map_err(ethertype_err)?;
        }
        for mac in new.macs.difference(&old.macs) {
            self.pass_macs
                .insert(PodMacKey::new(*mac), PASS, 0)
                .map_err(mac_err)?;
        }
        let mut flags = 0;
        if !new.ethertypes.is_empty() {
            flags |= pass_flags::ETHERTYPES;
        }
        if !new.macs.is_empty() {
            flags |= pass_flags::MACS;
        }
        self.config
            .set(config::PASS_LIST_FLAGS, flags, 0)
            .map_err(|source| SteeringError::Map {
                map: CONFIG_MAP,
                source,
            })
    }
}

/// Boxes an aya program error (it is large).
fn program_error(error: ProgramError) -> SteeringError {
    SteeringError::Program(Box::new(error))
}

/// `queue` if it is below `limit`.
fn checked_queue(queue: u32, limit: u32) -> Result<u32, SteeringError> {
    if queue < limit {
        Ok(queue)
    } else {
        Err(SteeringError::QueueOutOfRange {
            queue,
            max: MAX_QUEUES,
        })
    }
}

/// Attaches in the modes `policy` allows; driver mode first.
fn attach_by_policy(
    program: &mut Xdp,
    iface: &str,
    policy: AttachPolicy,
) -> Result<(aya::programs::xdp::XdpLinkId, AttachMode), SteeringError> {
    let attach_error = |mode, source: ProgramError| {
        let hint = mtu_hint(&source);
        SteeringError::Attach {
            iface: iface.to_string(),
            mode,
            source: Box::new(source),
            hint,
        }
    };
    match policy {
        AttachPolicy::Driver => program
            .attach(iface, XdpMode::Driver)
            .map(|id| (id, AttachMode::Driver))
            .map_err(|e| attach_error(AttachMode::Driver, e)),
        AttachPolicy::Skb => program
            .attach(iface, XdpMode::Skb)
            .map(|id| (id, AttachMode::Skb))
            .map_err(|e| attach_error(AttachMode::Skb, e)),
        AttachPolicy::DriverOrSkb => match program.attach(iface, XdpMode::Driver) {
            Ok(id) => Ok((id, AttachMode::Driver)),
            Err(driver) => {
                log::warn!(
                    "{iface}: driver-mode XDP refused ({driver}{}); using generic (skb) mode",
                    mtu_hint(&driver)
                );
                match program.attach(iface, XdpMode::Skb) {
                    Ok(id) => Ok((id, AttachMode::Skb)),
                    Err(skb) => Err(SteeringError::AttachRefused {
                        iface: iface.to_string(),
                        driver: Box::new(driver),
                        skb: Box::new(skb),
                    }),
                }
            }
        },
    }
}

/// A hint when the kernel said ERANGE: the MTU is above what native XDP
/// supports on this driver.
fn mtu_hint(error: &ProgramError) -> &'static str {
    let is_erange = matches!(
        error,
        ProgramError::SyscallError(e) if e.io_error.raw_os_error() == Some(libc::ERANGE)
    );
    if is_erange {
        " (the MTU is too large for native XDP on this driver without multi-buffer; veth allows about 3.5 KB)"
    } else {
        ""
    }
}
