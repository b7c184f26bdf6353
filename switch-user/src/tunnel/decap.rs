//! The tunnel's receive step for one datagram, apart from the sockets:
//! check the VXLAN header, demultiplex by VNI (this tunnel's frames go to
//! the forwarding batch in place, another tunnel's are parked in its
//! [`Inbox`], an unknown VNI's are dropped), learn the inner source MAC
//! against the sending VTEP, and count every datagram under exactly one
//! outcome ([`RxTally`]). `TunnelPort`'s `receive` ([`super::port::TunnelPort`]) runs it on
//! what `recvmmsg` read; the fuzz target `vxlan` runs it on arbitrary
//! datagrams.

use std::net::Ipv4Addr;

use parking_lot::RwLock;

use super::demux::{Inbox, Parked};
use super::header::{self, DecapError, VXLAN_HEADER};
use super::socket::Datagram;
use super::vteps::VtepTable;
use crate::bridge::port::FrameRef;

/// What became of the datagrams of one receive: each is counted once.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct RxTally {
    /// Frames handed to the forwarding batch (read or parked for us).
    pub taken: u64,
    /// Their bytes.
    pub bytes: u64,
    /// Datagrams too short for the VXLAN and Ethernet headers.
    pub short: u64,
    /// Datagrams without the VNI flag.
    pub bad: u64,
    /// Datagrams for a VNI no tunnel on the socket has.
    pub unknown: u64,
    /// Datagrams longer than the receive buffers.
    pub oversize: u64,
    /// Datagrams for another tunnel's VNI, passed to its inbox (which
    /// counts those it had no room for).
    pub passed: u64,
}

/// The receiving tunnel's side of the step.
pub struct Decap<'a> {
    /// The tunnel's VNI.
    pub vni: u32,
    /// Its local VTEP address (never learned as a remote).
    pub local: Ipv4Addr,
    /// Its MAC-to-VTEP table.
    pub vteps: &'a RwLock<VtepTable>,
    /// The time, in seconds, learned entries are stamped with.
    pub now: u32,
}

impl Decap<'_> {
    /// Learns that `src` is behind `vtep`, unless it is a group address or
    /// `vtep` is our own address (a datagram that looped back, or a forged
    /// source: sending there would loop).
    pub fn learn(&self, src: [u8; 6], vtep: Ipv4Addr) {
        if src[0] & 1 != 0
            || vtep == self.local
            || self.vteps.read().is_current(&src, vtep, self.now)
        {
            return;
        }
        self.vteps.write().learn(src, vtep, self.now);
    }

    /// Hands a frame another tunnel parked for us to `batch`.
    pub fn parked(&self, p: &Parked, batch: &mut Vec<FrameRef>, tally: &mut RxTally) {
        // A parked frame passed the header checks: at least 14 bytes.
        let mut src = [0u8; 6];
        if let Some(s) = p.frame.get(6..12) {
            src.copy_from_slice(s);
        }
        self.learn(src, p.from);
        batch.push(FrameRef {
            ptr: p.frame.as_ptr(),
            len: p.frame.len() as u32,
            readable: p.frame.len() as u32,
        });
        tally.taken += 1;
        tally.bytes += p.frame.len() as u64;
    }

    /// Decapsulates one datagram `d` whose frame slot holds `readable`
    /// bytes: to `batch` if it is for our VNI, to the inbox `inbox_of`
    /// gives for another, or dropped; counted in `tally` either way.
    /// Returns whether it was taken or passed on (a well-formed VXLAN
    /// datagram for a VNI of this host), not dropped.
    ///
    /// # Safety
    /// `d.frame` must be readable for `readable` bytes, `d.len` must not
    /// exceed `VXLAN_HEADER + readable`, and the slot must stay readable
    /// while `batch` is used.
    pub unsafe fn datagram<'i>(
        &self,
        d: &Datagram<'_>,
        readable: u32,
        inbox_of: impl FnOnce(u32) -> Option<&'i Inbox>,
        batch: &mut Vec<FrameRef>,
        tally: &mut RxTally,
    ) -> bool {
        if d.truncated {
            tally.oversize += 1;
            return false;
        }
        let vni = match header::vni_of(d.header, d.len) {
            Ok(vni) => vni,
            Err(DecapError::Short) => {
                tally.short += 1;
                return false;
            }
            Err(DecapError::BadHeader) => {
                tally.bad += 1;
                return false;
            }
        };
        let len = d.len - VXLAN_HEADER;
        if vni != self.vni {
            return match inbox_of(vni) {
                Some(inbox) => {
                    // SAFETY: the slot holds the frame's `len` bytes (the
                    // caller's guarantee).
                    let frame = unsafe { std::slice::from_raw_parts(d.frame, len) };
                    inbox.park(frame, d.from);
                    tally.passed += 1;
                    true
                }
                None => {
                    tally.unknown += 1;
                    false
                }
            };
        }
        let mut src = [0u8; 6];
        // SAFETY: the slot holds `len` >= 14 bytes of the frame.
        unsafe { std::ptr::copy_nonoverlapping(d.frame.add(6), src.as_mut_ptr(), 6) };
        self.learn(src, d.from);
        batch.push(FrameRef {
            ptr: d.frame,
            len: len as u32,
            readable,
        });
        tally.taken += 1;
        tally.bytes += len as u64;
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tunnel::socket::RecvBatch;

    const A: [u8; 6] = [2, 0, 0, 0, 0, 0xa];

    fn datagram(vni: u32, frame_len: usize) -> Vec<u8> {
        let mut d = header::encode(vni).to_vec();
        d.extend_from_slice(&[0xff; 6]);
        d.extend_from_slice(&A);
        d.resize(VXLAN_HEADER + frame_len, 0x5a);
        d
    }

    #[test]
    fn every_datagram_is_taken_passed_on_or_dropped_once() {
        let vteps = RwLock::new(VtepTable::new(16, 300));
        let local = Ipv4Addr::new(10, 0, 0, 1);
        let remote = Ipv4Addr::new(10, 0, 0, 2);
        let decap = Decap {
            vni: 5,
            local,
            vteps: &vteps,
            now: 1,
        };
        let other = Inbox::new(4).unwrap();
        let mut rx = RecvBatch::new(8, 128);
        let mut bad = datagram(5, 60);
        bad[0] = 0;
        for (d, from) in [
            (datagram(5, 60), remote),
            (datagram(5, 13), remote),
            (bad, remote),
            (datagram(6, 60), remote),
            (datagram(7, 60), remote),
            (datagram(5, 129), remote),
            (datagram(5, 128), local),
        ] {
            rx.push(&d, from);
        }
        let mut batch = Vec::new();
        let mut tally = RxTally::default();
        let mut accepted = Vec::new();
        for i in 0..rx.len() {
            let inbox_of = |vni| (vni == 6).then_some(&other);
            // SAFETY: a datagram of the batch, which outlives `batch`.
            accepted
                .push(unsafe { decap.datagram(&rx.get(i), 128, inbox_of, &mut batch, &mut tally) });
        }
        // Taken or passed on, not dropped: what the AF_XDP underlay may
        // learn a next hop from.
        assert_eq!(
            accepted,
            [true, false, false, true, false, false, true],
            "{tally:?}"
        );
        assert_eq!(
            tally,
            RxTally {
                taken: 2,
                bytes: 188,
                short: 1,
                bad: 1,
                unknown: 1,
                oversize: 1,
                passed: 1,
            }
        );
        assert_eq!(batch.len(), 2);
        // Learned behind the remote only: not behind our own address.
        assert_eq!(vteps.read().get(&A, 1), Some(remote));
        assert_eq!(vteps.read().stats().moved, 0);
        let mut parked = Vec::new();
        assert_eq!(other.take(&mut parked, 8), 1);
        assert_eq!(parked[0].frame, datagram(6, 60)[VXLAN_HEADER..]);
        let mut batch = Vec::new();
        let mut tally = RxTally::default();
        decap.parked(&parked[0], &mut batch, &mut tally);
        assert_eq!((tally.taken, tally.bytes), (1, 60));
    }
}
