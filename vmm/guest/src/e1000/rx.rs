//! The RX descriptor ring: the device fills descriptors from RDH up to (not
//! including) RDT, the driver processes them in order at `next` and returns
//! them in batches by moving RDT.
//!
//! Where the tail is published is [`RxRing::publish`], and nowhere else:
//! to RDT, or with a CSB attached ([`RxRing::set_csb`]) to guest_rdt, with
//! an RDT write only as a kick when the device waits for buffers. With a
//! CSB, [`RxRing::poll`] also goes by the device's head in the block
//! (host_rdh: the descriptors before it are filled), read once per batch.

use super::csb::{full_barrier, Csb};
use super::desc::{RxDesc, BUF_SIZE};
use super::regs::Regs;
use crate::counters::COUNTERS;
use core::cell::Cell;
use core::ptr::{addr_of, addr_of_mut};
use core::sync::atomic::{fence, Ordering};
use e1000_spec::desc::rx::status as rx_status;
use e1000_spec::regs::RDT;

/// A received frame, still in its ring buffer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RxCompletion {
    /// Descriptor index.
    pub index: u32,
    /// Bytes written by the device.
    pub len: u16,
    /// Status bits.
    pub status: u8,
    /// Error bits.
    pub errors: u8,
}

/// The RX ring and its buffers.
pub struct RxRing {
    desc: *mut RxDesc,
    bufs: *mut [u8; BUF_SIZE],
    size: u32,
    next: u32,
    to_return: u32,
    csb: Option<Csb>,
    /// CSB mode: host_rdh as last read (filled descriptors end there).
    host_head: Cell<u32>,
}

impl RxRing {
    /// A ring over `desc` with one buffer of `bufs` per descriptor.
    pub fn new(desc: &'static mut [RxDesc], bufs: &'static mut [[u8; BUF_SIZE]]) -> RxRing {
        assert_eq!(desc.len(), bufs.len());
        assert!(desc.len().is_multiple_of(8) && desc.len() <= 4096);
        let mut ring = RxRing {
            size: desc.len() as u32,
            desc: desc.as_mut_ptr(),
            bufs: bufs.as_mut_ptr(),
            next: 0,
            to_return: 0,
            csb: None,
            host_head: Cell::new(0),
        };
        ring.reset();
        ring
    }

    /// Points every descriptor at its buffer and clears the indices (the
    /// device's RDH must be 0 and RDT [`RxRing::initial_tail`]).
    pub fn reset(&mut self) {
        for i in 0..self.size {
            let desc = RxDesc {
                addr: self.buffer_addr(i),
                ..RxDesc::default()
            };
            self.write_desc(i, desc);
        }
        self.next = 0;
        self.to_return = 0;
        self.host_head.set(0);
    }

    /// Publishes through `csb` and polls by its host_rdh from now on
    /// (`None`: through RDT and by DD bits only).
    pub fn set_csb(&mut self, csb: Option<Csb>) {
        self.csb = csb;
        self.host_head.set(self.next);
    }

    /// The index of the next frame the driver will look at.
    pub fn next(&self) -> u32 {
        self.next
    }

    /// The RDT that returns every consumed buffer (the descriptor before
    /// `next`).
    pub fn tail(&self) -> u32 {
        (self.next + self.size - 1) % self.size
    }

    /// Descriptor ring physical address.
    pub fn base(&self) -> u64 {
        self.desc as u64
    }

    /// Descriptor ring length in bytes (RDLEN).
    pub fn len_bytes(&self) -> u32 {
        self.size * core::mem::size_of::<RxDesc>() as u32
    }

    /// Descriptors in the ring.
    pub fn size(&self) -> u32 {
        self.size
    }

    /// The RDT that gives the device every descriptor but one.
    pub fn initial_tail(&self) -> u32 {
        self.size - 1
    }

    /// Physical address of the buffer of descriptor `index`.
    pub fn buffer_addr(&self, index: u32) -> u64 {
        // SAFETY: pointer arithmetic inside the buffer array.
        unsafe { self.bufs.add(index as usize) as u64 }
    }

    /// Overwrites descriptor `index` (the chaos workload).
    pub fn write_desc(&mut self, index: u32, desc: RxDesc) {
        assert!(index < self.size);
        // SAFETY: in bounds.
        unsafe { self.desc.add(index as usize).write_volatile(desc) };
    }

    /// With a CSB: whether host_rdh says the descriptor at `next` is
    /// filled. host_rdh is re-read only when the cached one is reached; a
    /// value outside the ring is ignored (and counted).
    #[inline]
    fn host_says_filled(&self, csb: &Csb) -> bool {
        if self.host_head.get() != self.next {
            return true;
        }
        let head = csb.host_rdh();
        if head >= self.size {
            COUNTERS.csb_bad_host_index.inc();
            return false;
        }
        self.host_head.set(head);
        head != self.next
    }

    /// The next received frame, if the device has written one back (with
    /// a CSB: host_rdh is past it, and its DD bit is set).
    #[inline]
    pub fn poll(&self) -> Option<RxCompletion> {
        if let Some(csb) = &self.csb {
            if !self.host_says_filled(csb) {
                return None;
            }
        }
        // SAFETY: `next` < size; the device writes the descriptor, so read
        // its status volatile before anything else.
        let desc = unsafe { self.desc.add(self.next as usize) };
        // SAFETY: as above.
        let status = unsafe { addr_of!((*desc).status).read_volatile() };
        if status & rx_status::DD == 0 {
            if self.csb.is_some() {
                // host_rdh claimed a descriptor the device has not written
                // back: trust the descriptor, look at host_rdh again later.
                COUNTERS.csb_bad_host_index.inc();
                self.host_head.set(self.next);
            }
            return None;
        }
        fence(Ordering::Acquire);
        // SAFETY: DD is set: the device is done with this descriptor.
        let (len, errors) = unsafe {
            (
                addr_of!((*desc).length).read_volatile(),
                addr_of!((*desc).errors).read_volatile(),
            )
        };
        Some(RxCompletion {
            index: self.next,
            len,
            status,
            errors,
        })
    }

    /// The bytes of a completed frame (at most one buffer).
    pub fn frame(&self, completion: &RxCompletion) -> &[u8] {
        let len = (completion.len as usize).min(BUF_SIZE);
        // SAFETY: the buffer of a completed descriptor, which the device does
        // not touch again until it is returned.
        unsafe {
            core::slice::from_raw_parts(self.bufs.add(completion.index as usize) as *const u8, len)
        }
    }

    /// Marks the frame at `next` consumed; it goes back to the device at the
    /// next [`RxRing::publish`].
    pub fn release(&mut self) {
        // SAFETY: in bounds; the descriptor is ours until published.
        unsafe { addr_of_mut!((*self.desc.add(self.next as usize)).status).write_volatile(0) };
        self.next = (self.next + 1) % self.size;
        self.to_return += 1;
    }

    /// Frames consumed and not yet returned to the device.
    pub fn to_return(&self) -> u32 {
        self.to_return
    }

    /// Returns every consumed buffer to the device: the one place where the
    /// driver moves its RX tail. Without a CSB: an RDT write. With one:
    /// guest_rdt (release), full barrier, and an RDT write (the kick) only
    /// if host_need_rxkick is set. Returns whether RDT was written.
    pub fn publish(&mut self, regs: &Regs) -> bool {
        let tail = self.tail();
        self.to_return = 0;
        match self.csb {
            None => {
                fence(Ordering::Release);
                COUNTERS.rdt_writes.inc();
                regs.write(RDT, tail);
                true
            }
            Some(csb) => {
                COUNTERS.csb_rx_publications.inc();
                csb.set_guest_rdt(tail);
                full_barrier();
                if !csb.host_needs_rxkick() {
                    return false;
                }
                COUNTERS.rdt_writes.inc();
                COUNTERS.csb_rx_kicks.inc();
                regs.write(RDT, tail);
                true
            }
        }
    }
}
