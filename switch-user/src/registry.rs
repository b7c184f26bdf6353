//! The daemon's control-plane state: every switch and port by name, port
//! life cycles (created on first open, removed when the last client leaves
//! unless persistent), and the queries behind `list`, `stats` and `fdb`.
//! Every port records its owner; who may open, delete or inspect it, and
//! the per-user limits on creating ports, are checked here (see
//! [`crate::access`] and [`crate::quota`]).

use std::collections::BTreeMap;
use std::os::fd::OwnedFd;
use std::sync::Arc;
use std::time::{Duration, Instant};

use e1000_model::offload::{HandBack, Handover};
use parking_lot::Mutex;
use switch_port::error_chain::Chain;
use switch_port::eventfd::EventFd;
use switch_port::layout::{Layout, LayoutError, DEFAULT_BUF_SIZE, DEFAULT_RING_SIZE};
use switch_port::mac::MacAddr;
use switch_port::names::{PortName, SwitchName};
use switch_port::protocol::{
    ErrorCode, FdbRow, LookupStats, MirrorInfo, PortInfo, PortKind, PortStats, SwitchInfo,
    SwitchStats, TapDirection, VlanError, VlanMode,
};
use switch_port::region::{Region, RegionError};
use thiserror::Error;

use crate::access::{Caller, Denied, Owner};
use crate::bridge::learning::{
    LearningTable, DEFAULT_CAPACITY, DEFAULT_MAX_AGE_SECS, DEFAULT_MAX_MACS,
};
use crate::bridge::port::{Port, PortIo};
use crate::bridge::shm_port::ShmPort;
use crate::bridge::switch::{Switch, SwitchFull, DEFAULT_MAX_PORTS};
use crate::capture::config::{MirrorError, TapConfig, MAX_CAPTURES_PER_USER};
use crate::capture::sink::{CaptureSink, BUFFER_BYTES};
use crate::clock::Clock;
use crate::engine::Engine;
use crate::quota::{LimitExceeded, Usage, UserLimits};
use crate::vm_port::OffloadedPort;

/// Limits and defaults of the switches a daemon creates.
#[derive(Clone, Copy, Debug)]
pub struct SwitchConfig {
    /// Ports per switch.
    pub max_ports: usize,
    /// Addresses per forwarding table.
    pub fdb_capacity: usize,
    /// Seconds before an address not seen again is forgotten.
    pub fdb_max_age_secs: u32,
    /// Addresses a client port may have learned at once (unless created
    /// with its own limit). NIC and host ports may hold half the table.
    pub max_macs: u32,
    /// Flooded frames a second a port may send (0: no cap), unless created
    /// with its own.
    pub storm_pps: u64,
}

impl Default for SwitchConfig {
    fn default() -> Self {
        SwitchConfig {
            max_ports: DEFAULT_MAX_PORTS,
            fdb_capacity: DEFAULT_CAPACITY,
            fdb_max_age_secs: DEFAULT_MAX_AGE_SECS,
            max_macs: DEFAULT_MAX_MACS,
            storm_pps: 0,
        }
    }
}

/// Port-security settings of a port (`vswitch create --mac --max-macs
/// --storm-pps`), kept across its clients.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct PortSettings {
    /// The source address every client of the port must use.
    pub mac: Option<MacAddr>,
    /// Addresses it may have learned at once (None: the daemon's default).
    pub max_macs: Option<u32>,
    /// Flooded frames a second (None: the daemon's default; 0: no cap).
    pub storm_pps: Option<u64>,
}

/// How a client port comes to be.
#[derive(Clone, Copy, Debug)]
enum Creation {
    /// By `vswitch create`: persistent, with its settings, no client yet.
    Persistent(PortSettings),
    /// By its first client, locked to the client's address if it gave one.
    ForClient(Option<MacAddr>),
}

/// A control operation failed.
#[derive(Debug, Error)]
pub enum ControlError {
    /// No such port.
    #[error("no port {0}")]
    NoSuchPort(PortName),
    /// No such switch.
    #[error("no switch {0} (a switch exists while it has ports)")]
    NoSuchSwitch(SwitchName),
    /// The port already has a client.
    #[error("port {0} is busy: another client has it open")]
    PortBusy(PortName),
    /// The port exists.
    #[error("port {0} already exists")]
    PortExists(PortName),
    /// The switch is full.
    #[error(transparent)]
    SwitchFull(#[from] SwitchFull),
    /// Bad ring or buffer size.
    #[error(transparent)]
    BadLayout(#[from] LayoutError),
    /// The sizes asked for differ from the existing port's.
    #[error("port {port} exists with {ring_size} slots of {buf_size} bytes; open it without sizes or with those")]
    SizeMismatch {
        /// The port.
        port: PortName,
        /// Its ring size.
        ring_size: u32,
        /// Its buffer size.
        buf_size: u32,
    },
    /// The operation does not apply to this kind of port.
    #[error("port {0} is a {1:?} port; this operation is for client ports")]
    WrongKind(PortName, PortKind),
    /// A persistent port has a client and cannot be deleted now.
    #[error("port {0} has a client; close it first")]
    InUse(PortName),
    /// Resources ran out.
    #[error("cannot set up port {0}: {1}")]
    Resources(PortName, String),
    /// The caller may not do this.
    #[error(transparent)]
    Denied(#[from] Denied),
    /// The caller's per-user limits would be exceeded.
    #[error(transparent)]
    OverLimit(#[from] LimitExceeded),
    /// The address is locked to another port.
    #[error("MAC address {mac} is locked to another port of {switch}")]
    MacInUse {
        /// The address.
        mac: MacAddr,
        /// The switch.
        switch: SwitchName,
    },
    /// A port cannot be locked to a group (multicast, broadcast) or the
    /// zero address.
    #[error("MAC address {0} cannot lock a port: it is a group or the zero address")]
    MacNotUnicast(MacAddr),
    /// The caller runs as many captures as a user may.
    #[error("limit exceeded: uid {uid} runs {limit} captures, the most a user may")]
    TooManyCaptures {
        /// The uid.
        uid: u32,
        /// The limit.
        limit: usize,
    },
    /// A mirror cannot be added or removed.
    #[error(transparent)]
    Mirror(#[from] MirrorError),
    /// The port is locked to another address than the one asked for.
    #[error("port {port} is locked to MAC address {mac}; open it with that address or none")]
    MacMismatch {
        /// The port.
        port: PortName,
        /// Its address.
        mac: MacAddr,
    },
    /// The VLAN mode is not valid.
    #[error("bad VLAN mode")]
    BadVlan(#[from] VlanError),
    /// The port's data path is offloaded already.
    #[error("port {0} is offloaded already")]
    Offloaded(PortName),
    /// The port's data path is not offloaded.
    #[error("port {0} is not offloaded")]
    NotOffloaded(PortName),
    /// The offload's hand-over is not acceptable.
    #[error("cannot offload port {0}: {1}")]
    BadOffload(PortName, String),
}

impl ControlError {
    /// The protocol error code.
    pub fn code(&self) -> ErrorCode {
        match self {
            ControlError::NoSuchPort(_) => ErrorCode::NoSuchPort,
            ControlError::NoSuchSwitch(_) => ErrorCode::NoSuchSwitch,
            ControlError::PortBusy(_) | ControlError::InUse(_) | ControlError::Offloaded(_) => {
                ErrorCode::PortBusy
            }
            ControlError::NotOffloaded(_) => ErrorCode::BadRequest,
            ControlError::PortExists(_) => ErrorCode::PortExists,
            ControlError::SwitchFull(_) => ErrorCode::SwitchFull,
            ControlError::BadLayout(_)
            | ControlError::SizeMismatch { .. }
            | ControlError::MacInUse { .. }
            | ControlError::MacNotUnicast(_)
            | ControlError::MacMismatch { .. }
            | ControlError::Mirror(_)
            | ControlError::BadVlan(_)
            | ControlError::BadOffload(..) => ErrorCode::BadConfig,
            ControlError::WrongKind(..) => ErrorCode::WrongPortKind,
            ControlError::Resources(..) => ErrorCode::Internal,
            ControlError::Denied(_) => ErrorCode::PermissionDenied,
            ControlError::OverLimit(_) | ControlError::TooManyCaptures { .. } => {
                ErrorCode::LimitExceeded
            }
        }
    }
}

struct PortEntry {
    port: Arc<Port>,
    shm: Option<Arc<ShmPort>>,
    /// The data path handed over by the VMM, while it is (the port's I/O
    /// then; `shm` is set aside meanwhile).
    offloaded: Option<Arc<OffloadedPort>>,
    persistent: bool,
    clients: u32,
    owner: Owner,
    settings: PortSettings,
}

struct SwitchEntry {
    switch: Arc<Switch>,
    ports: BTreeMap<PortName, PortEntry>,
}

/// A client port opened for a connection.
pub struct OpenedPort {
    /// The port's shared memory and kicks.
    pub shm: Arc<ShmPort>,
    /// Whether this open created it.
    pub created: bool,
}

/// Every switch of the daemon.
pub struct Registry {
    switches: Mutex<BTreeMap<SwitchName, SwitchEntry>>,
    engine: Engine,
    config: SwitchConfig,
    limits: UserLimits,
    clock: Clock,
    /// Captures and mirrors; taken after `switches`.
    taps: Mutex<TapConfig>,
}

impl Registry {
    /// An empty registry forwarding with `engine`, whose non-admin users
    /// are held to `limits`.
    pub fn new(engine: Engine, config: SwitchConfig, limits: UserLimits, clock: Clock) -> Registry {
        Registry {
            switches: Mutex::new(BTreeMap::new()),
            engine,
            config,
            limits,
            clock,
            taps: Mutex::new(TapConfig::default()),
        }
    }

    /// The forwarding engine.
    pub fn engine(&self) -> &Engine {
        &self.engine
    }

    /// The daemon clock.
    pub fn clock(&self) -> Clock {
        self.clock
    }

    fn new_shm_port(name: &PortName, layout: Layout) -> Result<Arc<ShmPort>, ControlError> {
        let resources =
            |e: RegionError| ControlError::Resources(name.clone(), Chain(&e).to_string());
        let region = Arc::new(Region::create(name.as_str(), layout).map_err(resources)?);
        let kick =
            || EventFd::new().map_err(|e| ControlError::Resources(name.clone(), e.to_string()));
        Ok(Arc::new(ShmPort::new(region, kick()?, kick()?)))
    }

    /// Applies port-security settings to `port` of `switch`, locked to
    /// `mac` (the port's own, or its client's). Fails when `mac` is locked
    /// to another port; the port then keeps its previous address, pins and
    /// limits.
    fn secure(
        &self,
        switch: &Switch,
        port: &Port,
        settings: &PortSettings,
        mac: Option<MacAddr>,
    ) -> Result<(), ControlError> {
        let max_macs = match port.kind {
            PortKind::Shm => settings.max_macs.unwrap_or(self.config.max_macs),
            // The network behind a NIC (or the host) has many addresses.
            PortKind::Nic | PortKind::Host | PortKind::Tunnel => {
                (self.config.fdb_capacity / 2).max(1) as u32
            }
        };
        // The address is pinned in every VLAN the port carries. The new
        // pins are made first: a request that fails changes nothing (the
        // port keeps its old address, pinned, and its old limits).
        let vlans = port.vlan.vlans();
        let old = port.security.mac();
        if let Some(mac) = mac {
            // Pinning the port's own address again changes nothing where it
            // is pinned already (and pins it in VLANs the port has gained).
            let pinned = vlans
                .iter()
                .take_while(|&&v| switch.lookup().pin(mac, v, port.id))
                .count();
            if pinned < vlans.len() {
                if Some(mac) != old {
                    for &v in &vlans[..pinned] {
                        switch.lookup().unpin(mac, v, port.id);
                    }
                }
                // The table pins unicast addresses only.
                if mac.is_multicast() || mac.is_zero() {
                    return Err(ControlError::MacNotUnicast(mac));
                }
                return Err(ControlError::MacInUse {
                    mac,
                    switch: switch.name().clone(),
                });
            }
        }
        if let Some(old) = old.filter(|&o| Some(o) != mac) {
            for &v in &vlans {
                switch.lookup().unpin(old, v, port.id);
            }
        }
        port.security.set_mac(mac);
        switch.lookup().set_port_limit(port.id, max_macs);
        port.security
            .set_storm_pps(settings.storm_pps.unwrap_or(self.config.storm_pps));
        Ok(())
    }

    /// Adds a port with I/O `io` and VLAN mode `vlan` to its switch
    /// (creating the switch).
    fn attach(
        &self,
        switches: &mut BTreeMap<SwitchName, SwitchEntry>,
        name: &PortName,
        kind: PortKind,
        io: Box<dyn PortIo>,
        vlan: Option<&VlanMode>,
    ) -> Result<Arc<Port>, ControlError> {
        let switch_name = name.switch();
        let entry = switches
            .entry(switch_name.clone())
            .or_insert_with(|| SwitchEntry {
                switch: Arc::new(Switch::new(
                    switch_name.clone(),
                    Box::new(LearningTable::new(
                        self.config.fdb_capacity,
                        self.config.fdb_max_age_secs,
                    )),
                    self.config.max_ports,
                )),
                ports: BTreeMap::new(),
            });
        if vlan.is_some() {
            // Before the port forwards: the switch must not treat it as
            // untagged for a moment.
            entry.switch.set_vlan_aware(true);
        }
        let added = entry.switch.add_port(|id| {
            let port = Port::new(name.clone(), id, kind, io);
            port.vlan.set(vlan);
            port
        });
        match added {
            Ok(port) => {
                self.retap(entry);
                self.engine.add(entry.switch.clone(), port.clone());
                log::info!("port {name} added as number {} ({kind:?})", port.id);
                Ok(port)
            }
            Err(full) => {
                entry.switch.set_vlan_aware(false);
                if entry.ports.is_empty() {
                    switches.remove(&switch_name);
                }
                Err(full.into())
            }
        }
    }

    fn detach(&self, switches: &mut BTreeMap<SwitchName, SwitchEntry>, name: &PortName) {
        let switch_name = name.switch();
        let Some(entry) = switches.get_mut(&switch_name) else {
            return;
        };
        if let Some(p) = entry.ports.remove(name) {
            entry.switch.remove_port(p.port.id);
            self.taps.lock().port_removed(name);
            self.retap(entry);
            entry.switch.set_vlan_aware(false);
            self.engine.remove(&p.port);
            p.port.io.shutdown();
            log::info!("port {name} removed");
        }
        if entry.ports.is_empty() {
            switches.remove(&switch_name);
            log::info!("switch {switch_name} removed (no ports left)");
        }
    }

    /// Creates a client port owned by `caller` (held to its per-user limits),
    /// as `creation` says: persistent without a client, or for the client
    /// opening it.
    fn create_client_port(
        &self,
        switches: &mut BTreeMap<SwitchName, SwitchEntry>,
        name: &PortName,
        layout: Layout,
        creation: Creation,
        vlan: Option<&VlanMode>,
        caller: &Caller,
    ) -> Result<Arc<ShmPort>, ControlError> {
        // A persistent port is created without a client, any other by its
        // first client.
        let (persistent, settings, mac) = match creation {
            Creation::Persistent(settings) => (true, settings, settings.mac),
            Creation::ForClient(mac) => (false, PortSettings::default(), mac),
        };
        let clients = u32::from(!persistent);
        if !caller.is_admin() {
            let usage = usage_of(switches, caller.uid());
            self.limits.check(
                caller.uid(),
                &usage,
                &name.switch(),
                layout.region_len as u64,
            )?;
        }
        let shm = Self::new_shm_port(name, layout)?;
        shm.set_client(clients > 0);
        let port = self.attach(switches, name, PortKind::Shm, Box::new(shm.clone()), vlan)?;
        let Some(entry) = switches.get_mut(&name.switch()) else {
            return Err(ControlError::NoSuchSwitch(name.switch()));
        };
        entry.ports.insert(
            name.clone(),
            PortEntry {
                port: port.clone(),
                shm: Some(shm.clone()),
                offloaded: None,
                persistent,
                clients,
                owner: caller.owner().clone(),
                settings,
            },
        );
        let switch = entry.switch.clone();
        if let Err(e) = self.secure(&switch, &port, &settings, mac) {
            self.detach(switches, name);
            return Err(e);
        }
        Ok(shm)
    }

    /// Opens a client port for a new client, creating it when it does not exist.
    /// `mac` locks the port to the client's address while it has it (a port
    /// created with an address may only be opened with that one).
    pub fn open_port(
        &self,
        name: &PortName,
        ring_size: Option<u32>,
        buf_size: Option<u32>,
        mac: Option<MacAddr>,
        caller: &Caller,
    ) -> Result<OpenedPort, ControlError> {
        let mut switches = self.switches.lock();
        if let Some(entry) = switches
            .get_mut(&name.switch())
            .and_then(|s| s.ports.get_mut(name))
        {
            caller.require_owner(&entry.owner, format_args!("open {name}"))?;
            let Some(shm) = entry.shm.clone() else {
                return Err(ControlError::WrongKind(name.clone(), entry.port.kind));
            };
            if entry.clients > 0 {
                return Err(ControlError::PortBusy(name.clone()));
            }
            let layout = *shm.region().layout();
            if ring_size.is_some_and(|r| r != layout.ring_size)
                || buf_size.is_some_and(|b| b != layout.buf_size)
            {
                return Err(ControlError::SizeMismatch {
                    port: name.clone(),
                    ring_size: layout.ring_size,
                    buf_size: layout.buf_size,
                });
            }
            if let (Some(own), Some(asked)) = (entry.settings.mac, mac) {
                if own != asked {
                    return Err(ControlError::MacMismatch {
                        port: name.clone(),
                        mac: own,
                    });
                }
            }
            if let (None, Some(_)) = (entry.settings.mac, mac) {
                let (port, settings) = (entry.port.clone(), entry.settings);
                if let Some(s) = switches.get(&name.switch()) {
                    self.secure(&s.switch, &port, &settings, mac)?;
                }
            }
            let Some(entry) = switches
                .get_mut(&name.switch())
                .and_then(|s| s.ports.get_mut(name))
            else {
                return Err(ControlError::NoSuchPort(name.clone()));
            };
            entry.clients += 1;
            shm.set_client(true);
            return Ok(OpenedPort {
                shm,
                created: false,
            });
        }
        let shm = self.create_client_port(
            &mut switches,
            name,
            layout_of(ring_size, buf_size)?,
            Creation::ForClient(mac),
            None,
            caller,
        )?;
        Ok(OpenedPort { shm, created: true })
    }

    /// A client of `name` left: the frames it published are forwarded, then
    /// the port goes away unless it is persistent.
    /// A port whose data path is offloaded stops touching the guest's
    /// memory at once (the VMM is gone or going).
    pub fn close_port(&self, name: &PortName) {
        let (shm, offloaded) = {
            let mut switches = self.switches.lock();
            switches
                .get_mut(&name.switch())
                .and_then(|s| s.ports.get_mut(name))
                .map_or((None, None), |p| (p.shm.clone(), p.offloaded.take()))
        };
        match (offloaded, shm) {
            (Some(offloaded), _) => {
                offloaded.revoke();
                log::info!("port {name}: the offloaded data path ends with its client");
            }
            (None, Some(shm)) => drain(&shm, Duration::from_millis(500)),
            (None, None) => {}
        }
        let mut switches = self.switches.lock();
        let Some(entry) = switches
            .get_mut(&name.switch())
            .and_then(|s| s.ports.get_mut(name))
        else {
            return;
        };
        entry.clients = entry.clients.saturating_sub(1);
        if entry.clients == 0 {
            if entry.persistent {
                self.renew(&mut switches, name);
            } else {
                self.detach(&mut switches, name);
            }
        }
    }

    /// Revokes the memory and eventfds of the client port `name`, whose client
    /// left, and gives the port new ones (same name, number and counters):
    /// the departed client's mapping and fds see nothing after this, and the
    /// next client gets fresh memory with nothing queued in it. A port that
    /// cannot get new memory is removed.
    fn renew(&self, switches: &mut BTreeMap<SwitchName, SwitchEntry>, name: &PortName) {
        let Some(s) = switches.get_mut(&name.switch()) else {
            return;
        };
        let Some(entry) = s.ports.get_mut(name) else {
            return;
        };
        let Some(old_shm) = entry.shm.clone() else {
            return;
        };
        old_shm.set_client(false);
        let fresh = Self::new_shm_port(name, *old_shm.region().layout());
        let old_port = entry.port.clone();
        let replaced = fresh.as_ref().ok().and_then(|shm| {
            shm.set_client(false);
            let io = Box::new(shm.clone());
            s.switch
                .replace_port(old_port.id, |_| Port::succeed(&old_port, io))
        });
        match (fresh, replaced) {
            (Ok(shm), Some(port)) => {
                self.engine.remove(&old_port);
                self.engine.add(s.switch.clone(), port.clone());
                entry.port = port.clone();
                entry.shm = Some(shm);
                if let Err(e) = self.secure(&s.switch, &port, &entry.settings, entry.settings.mac) {
                    log::warn!("port {name}: {e}");
                }
                log::info!("port {name} has new memory and kicks for its next client");
            }
            (fresh, _) => {
                if let Err(e) = fresh {
                    log::warn!("port {name} removed: {}", Chain(&e));
                }
                self.detach(switches, name);
            }
        }
    }

    /// Gives the port `name` new I/O `io` in place of its current one (same
    /// name, number, counters, VLAN mode and address lock), forwarding from
    /// the new one. Returns the new port, or `None` when the port is gone.
    fn swap_io(
        &self,
        switches: &mut BTreeMap<SwitchName, SwitchEntry>,
        name: &PortName,
        io: Box<dyn PortIo>,
    ) -> Option<Arc<Port>> {
        let s = switches.get_mut(&name.switch())?;
        let entry = s.ports.get_mut(name)?;
        let old_port = entry.port.clone();
        let port = s
            .switch
            .replace_port(old_port.id, |_| Port::succeed(&old_port, io))?;
        self.engine.remove(&old_port);
        self.engine.add(s.switch.clone(), port.clone());
        entry.port = port.clone();
        let mac = old_port.security.mac();
        if let Err(e) = self.secure(&s.switch, &port, &entry.settings, mac) {
            log::warn!("port {name}: {e}");
        }
        Some(port)
    }

    /// Hands the data path of the client port `name` (opened by the
    /// caller's connection, which the caller checked) to the daemon: the
    /// guest memory and eventfds of `fds`, the ring state of `handover`.
    /// What waits in the port's TX ring is forwarded first; the port's
    /// shared memory is then set aside until [`Registry::reclaim_port`].
    pub fn offload_port(
        &self,
        name: &PortName,
        memory_size: u64,
        handover: &Handover,
        fds: Vec<OwnedFd>,
    ) -> Result<(), ControlError> {
        let shm = {
            let switches = self.switches.lock();
            let entry = switches
                .get(&name.switch())
                .and_then(|s| s.ports.get(name))
                .ok_or_else(|| ControlError::NoSuchPort(name.clone()))?;
            let Some(shm) = entry.shm.clone() else {
                return Err(ControlError::WrongKind(name.clone(), entry.port.kind));
            };
            if entry.offloaded.is_some() {
                return Err(ControlError::Offloaded(name.clone()));
            }
            shm
        };
        let slot_size = shm.region().layout().buf_size as usize;
        let offloaded = OffloadedPort::open(fds, memory_size, handover, slot_size)
            .map_err(|e| ControlError::BadOffload(name.clone(), Chain(&e).to_string()))?;
        let offloaded = Arc::new(offloaded);
        drain(&shm, Duration::from_millis(500));
        let mut switches = self.switches.lock();
        let current = switches
            .get(&name.switch())
            .and_then(|s| s.ports.get(name))
            .filter(|p| p.shm.as_ref().is_some_and(|s| Arc::ptr_eq(s, &shm)));
        match current {
            None => return Err(ControlError::NoSuchPort(name.clone())),
            Some(p) if p.offloaded.is_some() => return Err(ControlError::Offloaded(name.clone())),
            Some(_) => {}
        }
        if self
            .swap_io(&mut switches, name, Box::new(offloaded.clone()))
            .is_none()
        {
            return Err(ControlError::NoSuchPort(name.clone()));
        }
        if let Some(entry) = switches
            .get_mut(&name.switch())
            .and_then(|s| s.ports.get_mut(name))
        {
            entry.offloaded = Some(offloaded);
        }
        log::info!("port {name}: data path offloaded ({memory_size} bytes of guest memory)");
        Ok(())
    }

    /// Takes the offloaded data path of `name` back (for the connection
    /// that offloaded it, which the caller checked): the port's shared
    /// memory forwards again, the forwarding threads let go of the guest's
    /// rings (waited for, at most [`RECLAIM_WAIT`]; the rings are revoked
    /// after it in any case), and the ring state is returned.
    pub fn reclaim_port(&self, name: &PortName) -> Result<HandBack, ControlError> {
        let offloaded = {
            let mut switches = self.switches.lock();
            let entry = switches
                .get_mut(&name.switch())
                .and_then(|s| s.ports.get_mut(name))
                .ok_or_else(|| ControlError::NoSuchPort(name.clone()))?;
            let (Some(shm), Some(offloaded)) = (entry.shm.clone(), entry.offloaded.take()) else {
                return Err(ControlError::NotOffloaded(name.clone()));
            };
            if self.swap_io(&mut switches, name, Box::new(shm)).is_none() {
                log::warn!("port {name} went away while its data path was reclaimed");
            }
            offloaded
        };
        let deadline = Instant::now() + RECLAIM_WAIT;
        while Arc::strong_count(&offloaded) > 1 && Instant::now() < deadline {
            std::thread::sleep(Duration::from_micros(200));
        }
        if Arc::strong_count(&offloaded) > 1 {
            log::debug!("port {name}: a forwarding batch still holds the offloaded data path");
        }
        offloaded.revoke();
        log::info!("port {name}: data path reclaimed");
        Ok(offloaded.hand_back())
    }

    /// Creates a persistent client port owned by `caller`, in VLAN mode
    /// `vlan` (none when absent).
    pub fn create_port(
        &self,
        name: &PortName,
        ring_size: Option<u32>,
        buf_size: Option<u32>,
        settings: PortSettings,
        vlan: Option<&VlanMode>,
        caller: &Caller,
    ) -> Result<(), ControlError> {
        if let Some(v) = vlan {
            v.validate()?;
        }
        let mut switches = self.switches.lock();
        if switches
            .get(&name.switch())
            .is_some_and(|s| s.ports.contains_key(name))
        {
            return Err(ControlError::PortExists(name.clone()));
        }
        self.create_client_port(
            &mut switches,
            name,
            layout_of(ring_size, buf_size)?,
            Creation::Persistent(settings),
            vlan,
            caller,
        )?;
        Ok(())
    }

    /// Deletes a client port that has no client (its owner or an admin).
    pub fn delete_port(&self, name: &PortName, caller: &Caller) -> Result<(), ControlError> {
        let mut switches = self.switches.lock();
        let entry = switches
            .get_mut(&name.switch())
            .and_then(|s| s.ports.get_mut(name))
            .ok_or_else(|| ControlError::NoSuchPort(name.clone()))?;
        caller.require_owner(&entry.owner, format_args!("delete {name}"))?;
        if entry.shm.is_none() {
            return Err(ControlError::WrongKind(name.clone(), entry.port.kind));
        }
        if entry.clients > 0 {
            return Err(ControlError::InUse(name.clone()));
        }
        self.detach(&mut switches, name);
        Ok(())
    }

    /// Adds a port of another kind (NIC, host) with its own I/O and VLAN
    /// mode, owned by `owner` (who attached it).
    pub fn add_port(
        &self,
        name: &PortName,
        kind: PortKind,
        io: Box<dyn PortIo>,
        vlan: Option<&VlanMode>,
        owner: &Owner,
    ) -> Result<Arc<Port>, ControlError> {
        if let Some(v) = vlan {
            v.validate()?;
        }
        let mut switches = self.switches.lock();
        if switches
            .get(&name.switch())
            .is_some_and(|s| s.ports.contains_key(name))
        {
            return Err(ControlError::PortExists(name.clone()));
        }
        let port = self.attach(&mut switches, name, kind, io, vlan)?;
        if let Some(entry) = switches.get_mut(&name.switch()) {
            entry.ports.insert(
                name.clone(),
                PortEntry {
                    port: port.clone(),
                    shm: None,
                    offloaded: None,
                    persistent: true,
                    clients: 0,
                    owner: owner.clone(),
                    settings: PortSettings::default(),
                },
            );
            self.secure(&entry.switch, &port, &PortSettings::default(), None)?;
        }
        Ok(port)
    }

    /// Removes a port of any kind.
    pub fn remove_port(&self, name: &PortName) -> Result<(), ControlError> {
        let mut switches = self.switches.lock();
        if !switches
            .get(&name.switch())
            .is_some_and(|s| s.ports.contains_key(name))
        {
            return Err(ControlError::NoSuchPort(name.clone()));
        }
        self.detach(&mut switches, name);
        Ok(())
    }

    /// Every switch and port.
    pub fn list(&self) -> Vec<SwitchInfo> {
        let switches = self.switches.lock();
        switches
            .values()
            .map(|s| SwitchInfo {
                name: s.switch.name().clone(),
                max_ports: s.switch.max_ports() as u32,
                ports: {
                    let mut ports: Vec<PortInfo> = s
                        .ports
                        .iter()
                        .map(|(name, p)| {
                            let layout = p.shm.as_ref().map(|shm| *shm.region().layout());
                            PortInfo {
                                name: name.clone(),
                                id: p.port.id,
                                kind: p.port.kind,
                                clients: p.clients,
                                persistent: p.persistent,
                                ring_size: layout.map_or(0, |l| l.ring_size),
                                buf_size: layout.map_or(0, |l| l.buf_size),
                                errored: p.port.errored(),
                                owner_uid: p.owner.uid,
                                owner_name: p.owner.name.as_deref().map(str::to_owned),
                                mac: p.port.security.mac(),
                                max_macs: p.settings.max_macs.unwrap_or(self.config.max_macs),
                                storm_pps: p.port.security.storm_pps(),
                                vlan: p.port.vlan.mode(),
                            }
                        })
                        .collect();
                    ports.sort_by_key(|p| p.id);
                    ports
                },
            })
            .collect()
    }

    /// Publishes the tap table of `entry`'s switch (after a change of its
    /// ports, captures or mirrors).
    fn retap(&self, entry: &SwitchEntry) {
        let switch = &entry.switch;
        let table = self.taps.lock().table(switch.name(), &switch.ports());
        switch.taps().set(table);
    }

    /// Starts a capture of `name` for `caller` (its owner or an admin).
    pub fn start_capture(
        &self,
        name: &PortName,
        dir: TapDirection,
        snaplen: u32,
        caller: &Caller,
    ) -> Result<(Arc<CaptureSink>, PortKind), ControlError> {
        let switches = self.switches.lock();
        let entry = switches
            .get(&name.switch())
            .ok_or_else(|| ControlError::NoSuchPort(name.clone()))?;
        let p = entry
            .ports
            .get(name)
            .ok_or_else(|| ControlError::NoSuchPort(name.clone()))?;
        caller.require_owner(&p.owner, format_args!("capture {name}"))?;
        let mut taps = self.taps.lock();
        if !caller.is_admin() && taps.captures_of(caller.uid()) >= MAX_CAPTURES_PER_USER {
            return Err(ControlError::TooManyCaptures {
                uid: caller.uid(),
                limit: MAX_CAPTURES_PER_USER,
            });
        }
        let sink = Arc::new(CaptureSink::new(name.clone(), dir, snaplen, BUFFER_BYTES));
        taps.add_capture(caller.uid(), sink.clone());
        drop(taps);
        self.retap(entry);
        Ok((sink, p.port.kind))
    }

    /// Removes a capture; nothing of it stays in the switch.
    pub fn end_capture(&self, sink: &Arc<CaptureSink>) {
        let switches = self.switches.lock();
        if !self.taps.lock().remove_capture(sink) {
            return;
        }
        if let Some(entry) = switches.get(&sink.port().switch()) {
            self.retap(entry);
        }
    }

    /// Adds a mirror (its ports may come later).
    pub fn add_mirror(&self, mirror: MirrorInfo) -> Result<(), ControlError> {
        let switches = self.switches.lock();
        let switch = mirror.switch.clone();
        self.taps.lock().add_mirror(mirror)?;
        if let Some(entry) = switches.get(&switch) {
            self.retap(entry);
        }
        Ok(())
    }

    /// Removes a mirror.
    pub fn remove_mirror(&self, switch: &SwitchName, name: &str) -> Result<(), ControlError> {
        let switches = self.switches.lock();
        self.taps.lock().remove_mirror(switch, name)?;
        if let Some(entry) = switches.get(switch) {
            self.retap(entry);
        }
        Ok(())
    }

    /// The mirrors, by switch and name.
    pub fn mirrors(&self) -> Vec<MirrorInfo> {
        self.taps.lock().mirrors().to_vec()
    }

    /// Counters of one port (its owner or an admin), or of every port the
    /// caller may inspect.
    pub fn stats(
        &self,
        only: Option<&PortName>,
        caller: &Caller,
    ) -> Result<Vec<PortStats>, ControlError> {
        let switches = self.switches.lock();
        let mut out = Vec::new();
        for s in switches.values() {
            for (name, p) in &s.ports {
                if only.is_some_and(|o| o == name) {
                    caller.require_owner(&p.owner, format_args!("read the counters of {name}"))?;
                }
                if only.is_none_or(|o| o == name) && caller.may_use(&p.owner) {
                    out.push(PortStats {
                        name: name.clone(),
                        kind: p.port.kind,
                        counters: p.port.counters.snapshot(),
                        extra: p.port.io.extra_stats(),
                    });
                }
            }
        }
        match only {
            Some(name) if out.is_empty() => Err(ControlError::NoSuchPort(name.clone())),
            _ => Ok(out),
        }
    }

    /// The forwarding table of a switch: every row for an admin, the rows
    /// of the caller's own ports for anyone else.
    pub fn fdb(
        &self,
        switch: &SwitchName,
        caller: &Caller,
    ) -> Result<(Vec<FdbRow>, LookupStats), ControlError> {
        let switches = self.switches.lock();
        let entry = switches
            .get(switch)
            .ok_or_else(|| ControlError::NoSuchSwitch(switch.clone()))?;
        let table = entry.switch.ports();
        let now = self.clock.secs();
        let rows = entry
            .switch
            .lookup()
            .entries(now)
            .into_iter()
            .filter_map(|e| {
                let port = table.get(e.port)?;
                let visible = entry
                    .ports
                    .get(&port.name)
                    .is_some_and(|p| caller.may_use(&p.owner));
                visible.then(|| FdbRow {
                    mac: e.mac,
                    vlan: e.vlan,
                    port: port.name.clone(),
                    age_secs: e.age_secs,
                })
            })
            .collect();
        Ok((rows, entry.switch.lookup().stats()))
    }

    /// Every switch's forwarding-table counters, in name order.
    pub fn switch_stats(&self) -> Vec<SwitchStats> {
        self.switches
            .lock()
            .iter()
            .map(|(name, entry)| SwitchStats {
                switch: name.clone(),
                fdb: entry.switch.lookup().stats(),
            })
            .collect()
    }

    /// Periodic work: ages forwarding tables and removes failed ports.
    pub fn housekeeping(&self) {
        let now = self.clock.secs();
        let mut failed = Vec::new();
        {
            let switches = self.switches.lock();
            for s in switches.values() {
                s.switch.lookup().age(now);
                for (name, p) in &s.ports {
                    if p.port.io.failed() {
                        failed.push(name.clone());
                    }
                }
            }
        }
        for name in failed {
            log::warn!("port {name} failed (its device went away): removing it");
            let mut switches = self.switches.lock();
            self.detach(&mut switches, &name);
        }
    }

    /// Removes every port (daemon shutdown).
    pub fn shutdown(&self) {
        let mut switches = self.switches.lock();
        let names: Vec<PortName> = switches
            .values()
            .flat_map(|s| s.ports.keys().cloned())
            .collect();
        for name in names {
            self.detach(&mut switches, &name);
        }
        drop(switches);
        self.engine.stop();
    }
}

/// What the ports `uid` owns take.
fn usage_of(switches: &BTreeMap<SwitchName, SwitchEntry>, uid: u32) -> Usage {
    let mut usage = Usage::default();
    for (switch, s) in switches {
        for p in s.ports.values().filter(|p| p.owner.uid == uid) {
            let bytes = p
                .shm
                .as_ref()
                .map_or(0, |shm| shm.region().layout().region_len);
            usage.add(switch, bytes as u64);
        }
    }
    usage
}

/// The longest [`Registry::reclaim_port`] waits for the forwarding threads
/// to let go of an offloaded port.
pub const RECLAIM_WAIT: Duration = Duration::from_secs(1);

/// The layout of a new port with these sizes (or the defaults).
fn layout_of(ring_size: Option<u32>, buf_size: Option<u32>) -> Result<Layout, ControlError> {
    Ok(Layout::new(
        ring_size.unwrap_or(DEFAULT_RING_SIZE),
        buf_size.unwrap_or(DEFAULT_BUF_SIZE),
    )?)
}

/// Waits (bounded) until the forwarders have read every frame the client of
/// `shm` published, kicking them in case they sleep.
fn drain(shm: &ShmPort, limit: Duration) {
    let deadline = Instant::now() + limit;
    let mut backlog = shm.tx_backlog();
    while backlog > 0 && Instant::now() < deadline {
        // The client shares this eventfd: a kick it made block is
        // interrupted by the watchdog, and the wait ends at the deadline.
        let _ = crate::kick_watchdog::signal_client(shm.to_switch());
        std::thread::sleep(Duration::from_micros(200));
        backlog = shm.tx_backlog();
    }
    if backlog > 0 {
        log::warn!("{backlog} frames left unforwarded in a departing client's ring");
    }
}

#[cfg(test)]
mod tests {
    use std::os::fd::AsRawFd;

    use super::*;
    use crate::access::AccessPolicy;
    use crate::peer::PeerCred;

    fn registry() -> Registry {
        let clock = Clock::new();
        let engine = Engine::start(1, Duration::from_micros(10), clock).unwrap();
        Registry::new(
            engine,
            SwitchConfig::default(),
            UserLimits::default(),
            clock,
        )
    }

    fn user(uid: u32) -> Caller {
        let peer = PeerCred {
            pid: 1,
            uid,
            gid: uid,
            groups: Vec::new(),
        };
        AccessPolicy::default().caller(&peer, None)
    }

    fn inode(shm: &ShmPort) -> u64 {
        // SAFETY: fstat into a zeroed stat on a live fd.
        unsafe {
            let mut st: libc::stat = std::mem::zeroed();
            assert_eq!(libc::fstat(shm.region().fd().as_raw_fd(), &mut st), 0);
            st.st_ino
        }
    }

    #[test]
    fn a_persistent_port_gets_new_memory_and_kicks_when_its_client_leaves() {
        let reg = registry();
        let (owner, other) = (user(1000), user(1001));
        let name = PortName::parse("vale0:p").unwrap();
        reg.create_port(&name, Some(64), None, PortSettings::default(), None, &owner)
            .unwrap();
        let first = reg.open_port(&name, None, None, None, &owner).unwrap().shm;
        assert!(first.has_client());
        reg.close_port(&name);
        assert!(
            !first.has_client(),
            "the departed client's memory is revoked"
        );
        // The renewed port is still its owner's alone.
        assert!(matches!(
            reg.open_port(&name, None, None, None, &other),
            Err(ControlError::Denied(_))
        ));
        let second = reg.open_port(&name, None, None, None, &owner).unwrap().shm;
        assert!(second.has_client());
        assert_ne!(inode(&first), inode(&second));
        assert_ne!(first.to_switch().raw(), second.to_switch().raw());
        assert_ne!(first.to_client().raw(), second.to_client().raw());
        assert_eq!(second.region().layout().ring_size, 64);
        let list = reg.list();
        assert_eq!(list[0].ports[0].id, 0);
        assert_eq!(list[0].ports[0].clients, 1);
        assert_eq!(list[0].ports[0].owner_uid, 1000);
        reg.shutdown();
    }

    #[test]
    fn a_persistent_port_closed_while_offloaded_is_renewed_and_leaves_the_guest_alone() {
        use crate::vm_port::tests::{handover, Guest, CSB, MEM};
        use e1000_spec::csb::field;

        let reg = registry();
        let root = Caller::root();
        let name = PortName::parse("vale0:vm").unwrap();
        reg.create_port(&name, None, None, PortSettings::default(), None, &root)
            .unwrap();
        let first = reg.open_port(&name, None, None, None, &root).unwrap().shm;
        let (guest, fds) = Guest::new();
        reg.offload_port(&name, MEM, &handover(CSB), fds).unwrap();
        let (_, again) = Guest::new();
        assert!(matches!(
            reg.offload_port(&name, MEM, &handover(CSB), again),
            Err(ControlError::Offloaded(_))
        ));
        let extra = reg.stats(Some(&name), &root).unwrap()[0].extra.clone();
        assert!(
            extra.iter().any(|(n, _)| n == "offload_tx_calls"),
            "{extra:?}"
        );
        let offloaded = {
            let switches = reg.switches.lock();
            switches[&name.switch()].ports[&name]
                .offloaded
                .clone()
                .unwrap()
        };
        reg.close_port(&name);
        assert!(offloaded.revoked(), "the guest's memory is let go at once");
        guest.queue_tx(0, &crate::vm_port::tests::frame(60, 1));
        guest.csb_set(field::GUEST_TDT, 1);
        assert!(offloaded.receive(&mut Vec::new(), 8, &Default::default()) == 0);
        assert_eq!(guest.csb_get(field::HOST_TDH), 0);
        // The port lives on with new memory for its next client, not offloaded.
        let second = reg.open_port(&name, None, None, None, &root).unwrap().shm;
        assert_ne!(inode(&first), inode(&second));
        assert!(matches!(
            reg.reclaim_port(&name),
            Err(ControlError::NotOffloaded(_))
        ));
        reg.shutdown();
    }

    #[test]
    fn a_locked_address_belongs_to_one_port() {
        let reg = registry();
        let root = Caller::root();
        let (p, q) = (
            PortName::parse("vale0:p").unwrap(),
            PortName::parse("vale0:q").unwrap(),
        );
        let mac: MacAddr = "02:00:00:00:00:01".parse().unwrap();
        let other: MacAddr = "02:00:00:00:00:02".parse().unwrap();
        let locked = PortSettings {
            mac: Some(mac),
            ..PortSettings::default()
        };
        reg.create_port(&p, None, None, locked, None, &root)
            .unwrap();
        assert!(matches!(
            reg.open_port(&p, None, None, Some(other), &root),
            Err(ControlError::MacMismatch { .. })
        ));
        assert!(matches!(
            reg.open_port(&q, None, None, Some(mac), &root),
            Err(ControlError::MacInUse { .. })
        ));
        assert!(matches!(
            reg.create_port(&q, None, None, locked, None, &root),
            Err(ControlError::MacInUse { .. })
        ));
        // A client's own address is its port's while it has the port.
        reg.open_port(&q, None, None, Some(other), &root).unwrap();
        assert!(reg.list()[0].ports.iter().any(|i| i.mac == Some(other)));
        reg.close_port(&q);
        reg.open_port(&q, None, None, Some(other), &root).unwrap();
        // The persistent port keeps its lock across clients.
        reg.open_port(&p, None, None, None, &root).unwrap();
        reg.close_port(&p);
        let info = reg.list()[0].ports.clone();
        assert_eq!(info.iter().find(|i| i.name == p).unwrap().mac, Some(mac));
        assert_eq!(info[0].max_macs, DEFAULT_MAX_MACS);
        reg.shutdown();
    }

    #[test]
    fn a_lock_that_fails_leaves_the_port_as_it_was() {
        let reg = registry();
        let root = Caller::root();
        let (p, q) = (
            PortName::parse("vale0:p").unwrap(),
            PortName::parse("vale0:q").unwrap(),
        );
        let (mine, theirs): (MacAddr, MacAddr) = (
            "02:00:00:00:00:01".parse().unwrap(),
            "02:00:00:00:00:02".parse().unwrap(),
        );
        let limited = PortSettings {
            max_macs: Some(3),
            storm_pps: Some(50),
            ..PortSettings::default()
        };
        reg.create_port(&p, None, None, limited, None, &root)
            .unwrap();
        reg.open_port(&p, None, None, Some(mine), &root).unwrap();
        reg.open_port(&q, None, None, Some(theirs), &root).unwrap();
        let (switch, port) = {
            let switches = reg.switches.lock();
            let entry = &switches[&p.switch()];
            (entry.switch.clone(), entry.ports[&p].port.clone())
        };
        // Locking p to q's address fails, with other limits asked for.
        let other = PortSettings {
            max_macs: Some(7),
            storm_pps: Some(9),
            ..PortSettings::default()
        };
        assert!(matches!(
            reg.secure(&switch, &port, &other, Some(theirs)),
            Err(ControlError::MacInUse { .. })
        ));
        // p keeps its address, pinned, and its limits; q keeps its own.
        assert_eq!(port.security.mac(), Some(mine));
        let pinned_to = |mac: MacAddr| {
            switch
                .lookup()
                .entries(0)
                .iter()
                .find(|e| e.mac == mac)
                .map(|e| e.port)
        };
        assert_eq!(pinned_to(mine), Some(port.id));
        assert_ne!(pinned_to(theirs), Some(port.id));
        let info = reg.list()[0].ports.clone();
        let p_info = info.iter().find(|i| i.name == p).unwrap();
        assert_eq!((p_info.max_macs, p_info.mac), (3, Some(mine)));
        reg.shutdown();
    }

    #[test]
    fn a_group_or_zero_address_cannot_lock_a_port() {
        let reg = registry();
        let root = Caller::root();
        let p = PortName::parse("vale0:p").unwrap();
        for bad in [
            MacAddr::BROADCAST,
            "01:00:5e:00:00:01".parse().unwrap(),
            MacAddr([0; 6]),
        ] {
            let settings = PortSettings {
                mac: Some(bad),
                ..PortSettings::default()
            };
            assert!(matches!(
                reg.create_port(&p, None, None, settings, None, &root),
                Err(ControlError::MacNotUnicast(m)) if m == bad
            ));
            assert!(matches!(
                reg.open_port(&p, None, None, Some(bad), &root),
                Err(ControlError::MacNotUnicast(m)) if m == bad
            ));
        }
        reg.shutdown();
    }
}
