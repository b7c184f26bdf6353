//! How a NIC port's AF_XDP sockets are laid out for the interface's MTU.
//!
//! Up to the standard frame (what a 2 KiB UMEM frame holds after the XDP
//! headroom: MTU 1774) one frame per packet, as always. Beyond (jumbo
//! frames) 4 KiB UMEM frames, multi-buffer sockets (`XDP_USE_SG`) whose
//! packets span up to three frames at MTU 9000, and the multi-buffer XDP
//! program (`xdp.frags`), which drivers such as veth require above about
//! 3.5 KB. The MTU is read when the NIC is attached: raise it first.

use switch_xdp::iface::FRAME_OVERHEAD;
use switch_xdp::XDP_HEADROOM;

/// The largest frame a NIC port carries (as a shared-memory port's largest
/// buffer): MTU 16366.
pub const NIC_MAX_FRAME: u32 = 16384;

/// UMEM frame size of standard-MTU NIC ports.
const STANDARD_FRAME_SIZE: u32 = 2048;
/// UMEM frame size of jumbo NIC ports.
const JUMBO_FRAME_SIZE: u32 = 4096;
/// The longest packet one UMEM frame holds (a jumbo frame's room after
/// the XDP headroom).
pub const ONE_FRAME_MAX: u32 = JUMBO_FRAME_SIZE - XDP_HEADROOM;

/// The socket layout for one MTU.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FramePlan {
    /// Bytes per UMEM frame.
    pub frame_size: u32,
    /// The longest packet (0: what one UMEM frame holds).
    pub max_packet: u32,
    /// Load the multi-buffer XDP program.
    pub frags: bool,
}

/// The smaller UMEM frame size whose room after the XDP headroom holds a
/// `len`-byte packet whole, if one does (up to [`ONE_FRAME_MAX`]).
pub fn one_frame_size(len: u32) -> Option<u32> {
    [STANDARD_FRAME_SIZE, JUMBO_FRAME_SIZE]
        .into_iter()
        .find(|size| len <= size - XDP_HEADROOM)
}

/// The layout for an interface of MTU `mtu`, or the largest frame at that
/// MTU when it exceeds [`NIC_MAX_FRAME`].
pub fn plan(mtu: u32) -> Result<FramePlan, u32> {
    let frame = mtu.saturating_add(FRAME_OVERHEAD);
    if frame <= STANDARD_FRAME_SIZE - XDP_HEADROOM {
        return Ok(FramePlan {
            frame_size: STANDARD_FRAME_SIZE,
            max_packet: 0,
            frags: false,
        });
    }
    if frame > NIC_MAX_FRAME {
        return Err(frame);
    }
    Ok(FramePlan {
        frame_size: JUMBO_FRAME_SIZE,
        max_packet: frame,
        frags: true,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn standard_mtus_keep_one_small_frame_per_packet() {
        for mtu in [68, 1500, 1774] {
            let p = plan(mtu).unwrap();
            assert_eq!((p.frame_size, p.max_packet, p.frags), (2048, 0, false));
        }
    }

    #[test]
    fn jumbo_mtus_chain_4k_frames_under_the_frags_program() {
        let p = plan(9000).unwrap();
        assert_eq!((p.frame_size, p.max_packet, p.frags), (4096, 9018, true));
        assert_eq!(plan(1775).unwrap().max_packet, 1793);
        assert_eq!(plan(16366).unwrap().max_packet, NIC_MAX_FRAME);
        assert_eq!(plan(16367), Err(16385));
        assert_eq!(plan(u32::MAX), Err(u32::MAX));
    }
}
