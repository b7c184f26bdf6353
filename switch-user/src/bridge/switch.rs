//! A named switch: its port table (published to the forwarding threads as an
//! immutable snapshot) and its forwarding function.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use arc_swap::ArcSwap;
use switch_port::names::SwitchName;
use thiserror::Error;

use super::lookup::{Lookup, PortId};
use super::port::Port;
use crate::capture::taps::SwitchTaps;

/// VALE's limit on ports per switch, the default here.
pub const DEFAULT_MAX_PORTS: usize = 254;
/// Highest port limit accepted (the learning table stores 15-bit port ids).
pub const MAX_PORTS_LIMIT: usize = 4096;

/// The switch has no free port number.
#[derive(Debug, Error, Clone, PartialEq, Eq)]
#[error("switch {switch} is full: it already has {max} ports")]
pub struct SwitchFull {
    /// The switch.
    pub switch: SwitchName,
    /// Its limit.
    pub max: usize,
}

/// The ports of a switch at one moment.
#[derive(Default)]
pub struct PortTable {
    /// Ports by number (`None` for free numbers).
    pub by_id: Vec<Option<Arc<Port>>>,
    /// The ports in use, in number order.
    pub active: Vec<Arc<Port>>,
}

impl PortTable {
    /// The port with number `id`, if any.
    #[inline]
    pub fn get(&self, id: PortId) -> Option<&Arc<Port>> {
        self.by_id.get(id as usize).and_then(Option::as_ref)
    }
}

/// A switch: ports and a forwarding function.
pub struct Switch {
    name: SwitchName,
    table: ArcSwap<PortTable>,
    lookup: Box<dyn Lookup>,
    max_ports: usize,
    taps: SwitchTaps,
    /// Some port has a VLAN mode: forward with [`super::vlan`].
    vlan_aware: AtomicBool,
}

impl Switch {
    /// A switch with no ports.
    pub fn new(name: SwitchName, lookup: Box<dyn Lookup>, max_ports: usize) -> Switch {
        Switch {
            name,
            table: ArcSwap::from_pointee(PortTable::default()),
            lookup,
            max_ports: max_ports.clamp(1, MAX_PORTS_LIMIT),
            taps: SwitchTaps::default(),
            vlan_aware: AtomicBool::new(false),
        }
    }

    /// Whether frames take the VLAN path ([`super::vlan::forward_batch`]).
    #[inline]
    pub fn vlan_aware(&self) -> bool {
        self.vlan_aware.load(Ordering::Acquire)
    }

    /// Turns the VLAN path on (before a port gets a VLAN mode), or off
    /// when no port has one (after the last loses it or leaves).
    pub fn set_vlan_aware(&self, on: bool) {
        let on = on || self.ports().active.iter().any(|p| p.vlan.configured());
        self.vlan_aware.store(on, Ordering::Release);
    }

    /// The switch's name.
    pub fn name(&self) -> &SwitchName {
        &self.name
    }

    /// The forwarding function.
    #[inline]
    pub fn lookup(&self) -> &dyn Lookup {
        &*self.lookup
    }

    /// The current port table.
    #[inline]
    pub fn ports(&self) -> arc_swap::Guard<Arc<PortTable>> {
        self.table.load()
    }

    /// Captures and mirrors of the switch's ports.
    #[inline]
    pub fn taps(&self) -> &SwitchTaps {
        &self.taps
    }

    /// Port limit.
    pub fn max_ports(&self) -> usize {
        self.max_ports
    }

    /// Adds a port built by `make` with the lowest free number. Callers
    /// serialise changes to one switch (the registry holds its lock).
    pub fn add_port(&self, make: impl FnOnce(PortId) -> Port) -> Result<Arc<Port>, SwitchFull> {
        let old = self.table.load_full();
        let id = (0..self.max_ports)
            .find(|&i| old.by_id.get(i).is_none_or(Option::is_none))
            .ok_or_else(|| SwitchFull {
                switch: self.name.clone(),
                max: self.max_ports,
            })?;
        let port = Arc::new(make(id as PortId));
        let mut by_id = old.by_id.clone();
        if by_id.len() <= id {
            by_id.resize(id + 1, None);
        }
        by_id[id] = Some(port.clone());
        self.publish(by_id);
        Ok(port)
    }

    /// Puts the port built by `make` in place of port `id` (same number) and
    /// forgets the addresses learned on the old one, keeping those pinned to
    /// it (no other port may take them meanwhile); returns the new port, or
    /// `None` when there is no port `id`. Callers serialise changes.
    pub fn replace_port(&self, id: PortId, make: impl FnOnce(PortId) -> Port) -> Option<Arc<Port>> {
        let old = self.table.load_full();
        let mut by_id = old.by_id.clone();
        let slot = by_id.get_mut(id as usize).filter(|s| s.is_some())?;
        let port = Arc::new(make(id));
        *slot = Some(port.clone());
        self.publish(by_id);
        self.lookup.forget_learned(id);
        Some(port)
    }

    /// Removes port `id` and forgets the addresses learned on it.
    pub fn remove_port(&self, id: PortId) -> Option<Arc<Port>> {
        let old = self.table.load_full();
        let mut by_id = old.by_id.clone();
        let removed = by_id.get_mut(id as usize).and_then(Option::take)?;
        self.publish(by_id);
        self.lookup.forget_port(id);
        Some(removed)
    }

    fn publish(&self, mut by_id: Vec<Option<Arc<Port>>>) {
        while matches!(by_id.last(), Some(None)) {
            by_id.pop();
        }
        let active = by_id.iter().flatten().cloned().collect();
        self.table.store(Arc::new(PortTable { by_id, active }));
    }
}
