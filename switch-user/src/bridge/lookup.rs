//! The forwarding function: where a frame goes. The bridge asks it about
//! every frame's Ethernet header (see [`Lookup`] for when an answer is
//! reused); learning is one implementation
//! ([`super::learning::LearningTable`]), and any other can replace it.

use switch_port::mac::MacAddr;
use switch_port::protocol::LookupStats;

/// A port's number inside its switch.
pub type PortId = u16;

/// The Ethernet header fields a forwarding function sees.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct EthHeader {
    /// Destination address.
    pub dst: MacAddr,
    /// Source address.
    pub src: MacAddr,
    /// EtherType (or length), as on the wire.
    pub ethertype: u16,
    /// The VLAN the frame belongs to inside the switch (0: none); set by
    /// the bridge from the source port's mode (see [`super::vlan`]).
    pub vlan: u16,
}

impl EthHeader {
    /// Parses the first 14 bytes of a frame.
    #[inline]
    pub fn parse(bytes: &[u8; 14]) -> EthHeader {
        let mut dst = [0u8; 6];
        let mut src = [0u8; 6];
        dst.copy_from_slice(&bytes[0..6]);
        src.copy_from_slice(&bytes[6..12]);
        EthHeader {
            dst: MacAddr(dst),
            src: MacAddr(src),
            ethertype: u16::from_be_bytes([bytes[12], bytes[13]]),
            vlan: 0,
        }
    }
}

/// Where a frame goes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Destination {
    /// To this one port.
    Port(PortId),
    /// To every port of the switch but the source.
    Flood,
    /// Nowhere.
    Drop,
    /// Nowhere: the frame's source address belongs to another port.
    Spoofed,
}

/// One learned (or configured) address, for listings.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FdbEntry {
    /// The address.
    pub mac: MacAddr,
    /// Its VLAN (0: none).
    pub vlan: u16,
    /// The port it was seen on.
    pub port: PortId,
    /// Seconds since it was last seen.
    pub age_secs: u32,
}

/// A forwarding function. Implementations are shared by the forwarding
/// threads, so they must be cheap and safe to call concurrently.
///
/// The contract with the bridge: within one forwarding batch (frames read
/// from one source port at one `now`), [`Lookup::lookup`] is called for the
/// first frame and for every frame whose header (destination, source and
/// EtherType) differs from the frame just before it; a frame with the same
/// header as the one before goes where that one went. So every distinct
/// header of a batch, every change of source address included, is seen in
/// frame order, and an answer must depend only on the header, the source
/// port, `now` and the function's state (not on how many frames carry it).
/// The one exception: a frame from a port locked to another source address
/// is dropped as spoofed before any lookup. (On a switch with VLAN ports,
/// [`super::vlan`] asks about every frame, with the header's `vlan` set.)
pub trait Lookup: Send + Sync {
    /// Decides where a frame from port `source` goes, learning from it if the
    /// function learns. `now` is the daemon's clock in seconds.
    fn lookup(&self, header: &EthHeader, source: PortId, now: u32) -> Destination;
    /// [`Lookup::lookup`] of a frame whose source address and VLAN the
    /// caller has just looked up, from the same port at the same `now`,
    /// with an answer other than [`Destination::Spoofed`]: learning that
    /// source again would change nothing, so a function that learns may
    /// skip it (a port usually sends from one address to many).
    #[inline]
    fn lookup_seen_source(&self, header: &EthHeader, source: PortId, now: u32) -> Destination {
        self.lookup(header, source, now)
    }
    /// A hint that [`Lookup::lookup`] will soon be asked about `header`:
    /// start loading what it will read (the bridge calls it a few frames
    /// ahead). Changes nothing.
    #[inline]
    fn prefetch(&self, _header: &EthHeader) {}
    /// Whether [`Lookup::prefetch`] is worth its cost now (asked once per
    /// batch): a small table stays in the cache anyway.
    #[inline]
    fn prefetch_useful(&self) -> bool {
        false
    }
    /// Forgets everything about `port` (it was removed or has a new
    /// client), its pinned addresses and its limit too.
    fn forget_port(&self, port: PortId);
    /// Forgets the addresses `port` learned, keeping its pinned addresses
    /// and its limit: the port continues under the same number with the
    /// same settings (a persistent port whose client left). Functions that
    /// do not pin forget everything.
    fn forget_learned(&self, port: PortId) {
        self.forget_port(port);
    }
    /// Limits how many addresses `port` may have learned at once (functions
    /// that do not learn ignore it).
    fn set_port_limit(&self, _port: PortId, _max: u32) {}
    /// Reserves `mac` in `vlan` (0: none) for `port`: frames from other
    /// ports in that VLAN with it as source are [`Destination::Spoofed`].
    /// False if it cannot (the address belongs to another port, or there is
    /// no room).
    fn pin(&self, _mac: MacAddr, _vlan: u16, _port: PortId) -> bool {
        false
    }
    /// Releases a reservation made with [`Lookup::pin`].
    fn unpin(&self, _mac: MacAddr, _vlan: u16, _port: PortId) {}
    /// Removes expired entries; called about once a second.
    fn age(&self, now: u32);
    /// The current entries, for `vswitch fdb`.
    fn entries(&self, now: u32) -> Vec<FdbEntry>;
    /// Table counters.
    fn stats(&self) -> LookupStats;
}
