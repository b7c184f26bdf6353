//! aya `Pod` wrappers for the map types of switch-ebpf-common (which has no
//! aya dependency, so the trait is implemented here on local newtypes).
use switch_ebpf_common::{MacKey, QueueCounters};

/// A [`QueueCounters`] as stored in the per-CPU counter array.
#[repr(transparent)]
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct PodCounters(pub(crate) QueueCounters);

// SAFETY: QueueCounters is `repr(C)`, four u64 without padding, valid for
// every bit pattern; the newtype is `repr(transparent)`.
unsafe impl aya::Pod for PodCounters {}

/// A [`MacKey`] as stored in the destination-MAC pass list.
#[repr(transparent)]
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct PodMacKey(MacKey);

impl PodMacKey {
    /// The key of `mac`.
    pub(crate) fn new(mac: [u8; 6]) -> Self {
        Self(MacKey::new(mac))
    }
}

// SAFETY: MacKey is `repr(C)`, eight bytes without padding, valid for every
// bit pattern; the newtype is `repr(transparent)`.
unsafe impl aya::Pod for PodMacKey {}
