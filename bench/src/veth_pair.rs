//! Two namespaces and one veth between them, for the cases that need a bare
//! link: `n0` in the switch's namespace, `p0` in the peer's.

use std::time::Duration;

use anyhow::{Context, Result};
use testbed::{Mac, Netns, Queues};

/// The switch namespace's end of the veth (attached, or driven raw).
pub const SWITCH_IF: &str = "n0";
/// The peer namespace's end.
pub const PEER_IF: &str = "p0";
/// The address of `n0`.
pub const SWITCH_MAC: Mac = Mac([0x02, 0x76, 0x73, 0x78, 0x00, 0x01]);
/// The address of `p0`.
pub const PEER_MAC: Mac = Mac([0x02, 0x76, 0x73, 0x78, 0x00, 0x02]);

/// The two namespaces and the veth between them; dropping removes them.
pub struct VethPair {
    /// Holds `n0`.
    pub switch: Netns,
    /// Holds `p0`.
    pub peer: Netns,
}

impl VethPair {
    /// Creates both namespaces and the veth, up, with MTU 1500.
    pub fn new() -> Result<VethPair> {
        VethPair::with_queues(None)
    }

    /// [`VethPair::new`] with `queues` on both ends (the kernel's default,
    /// one of each, when `None`).
    pub fn with_queues(queues: Option<Queues>) -> Result<VethPair> {
        let bed = VethPair {
            switch: Netns::new(testbed::DEFAULT_PREFIX)?,
            peer: Netns::new(testbed::DEFAULT_PREFIX)?,
        };
        for ns in [&bed.switch, &bed.peer] {
            ns.disable_ipv6()?;
        }
        bed.switch
            .add_veth(SWITCH_IF, PEER_IF, Some(&bed.peer), queues)?;
        bed.switch.set_mac(SWITCH_IF, SWITCH_MAC)?;
        bed.peer.set_mac(PEER_IF, PEER_MAC)?;
        bed.switch.set_up(SWITCH_IF)?;
        bed.peer.set_up(PEER_IF)?;
        testbed::wait_until(Duration::from_secs(5), Duration::from_millis(10), || {
            bed.switch.is_lower_up(SWITCH_IF).unwrap_or(false)
                && bed.peer.is_lower_up(PEER_IF).unwrap_or(false)
        })
        .context("the veth did not come up")?;
        Ok(bed)
    }
}
