//! The TX descriptor ring: the driver fills descriptors at `tail`, the device
//! consumes them up to the last published tail (TDT) and writes back DD, the
//! driver reclaims them at `clean`.
//!
//! Where the tail is published is [`TxRing::publish`], and nowhere else:
//! to TDT, or with a CSB attached ([`TxRing::set_csb`]) to guest_tdt, with
//! a TDT write only as a kick when the device's TX worker sleeps.

use super::csb::{full_barrier, Csb};
use super::desc::{TxDesc, BUF_SIZE};
use super::regs::Regs;
use crate::counters::COUNTERS;
use core::ptr::{addr_of, addr_of_mut};
use core::sync::atomic::{fence, Ordering};
use e1000_spec::desc::tx::{cmd, status};
use e1000_spec::regs::TDT;

/// The command bits of every data descriptor: one buffer per frame, FCS
/// inserted by the device, DD written back (RS), interrupt delay allowed
/// (IDE, as the stock drivers do).
pub const DATA_CMD: u8 = cmd::EOP | cmd::IFCS | cmd::RS | cmd::IDE;

/// The TX ring and its buffers.
pub struct TxRing {
    desc: *mut TxDesc,
    bufs: *mut [u8; BUF_SIZE],
    size: u32,
    tail: u32,
    clean: u32,
    published: u32,
    csb: Option<Csb>,
}

impl TxRing {
    /// A ring over `desc` with one buffer of `bufs` per descriptor.
    pub fn new(desc: &'static mut [TxDesc], bufs: &'static mut [[u8; BUF_SIZE]]) -> TxRing {
        assert_eq!(desc.len(), bufs.len());
        assert!(desc.len().is_multiple_of(8) && desc.len() <= 4096);
        let mut ring = TxRing {
            size: desc.len() as u32,
            desc: desc.as_mut_ptr(),
            bufs: bufs.as_mut_ptr(),
            tail: 0,
            clean: 0,
            published: 0,
            csb: None,
        };
        ring.reset();
        ring
    }

    /// Clears every descriptor and index (the device must be reset or its
    /// TDH/TDT set to 0 as well).
    pub fn reset(&mut self) {
        for i in 0..self.size {
            self.write_desc(i, TxDesc::default());
        }
        self.tail = 0;
        self.clean = 0;
        self.published = 0;
    }

    /// Descriptor ring physical address.
    pub fn base(&self) -> u64 {
        self.desc as u64
    }

    /// Descriptor ring length in bytes (TDLEN).
    pub fn len_bytes(&self) -> u32 {
        self.size * core::mem::size_of::<TxDesc>() as u32
    }

    /// Descriptors in the ring.
    pub fn size(&self) -> u32 {
        self.size
    }

    /// Descriptors filled and not yet reclaimed.
    pub fn in_flight(&self) -> u32 {
        (self.tail + self.size - self.clean) % self.size
    }

    /// Descriptors that can be filled now.
    pub fn free(&self) -> u32 {
        self.size - 1 - self.in_flight()
    }

    /// The index the next frame goes to (the tail the next publication
    /// gives the device).
    pub fn tail(&self) -> u32 {
        self.tail
    }

    /// Publishes through `csb` from now on (`None`: through TDT).
    pub fn set_csb(&mut self, csb: Option<Csb>) {
        self.csb = csb;
    }

    /// The CSB the ring publishes through, if any.
    pub fn csb(&self) -> Option<Csb> {
        self.csb
    }

    /// Descriptors filled but not yet published to the device.
    pub fn unpublished(&self) -> u32 {
        (self.tail + self.size - self.published) % self.size
    }

    /// The buffer of descriptor `index`.
    pub fn buffer(&mut self, index: u32) -> &mut [u8; BUF_SIZE] {
        assert!(index < self.size);
        // SAFETY: in bounds; the device only reads buffers of published
        // descriptors, and callers write only the buffer at `tail`, which is
        // not in flight.
        unsafe { &mut *self.bufs.add(index as usize) }
    }

    /// The buffer the next frame goes into (valid only if `free() > 0`).
    pub fn next_buffer(&mut self) -> &mut [u8; BUF_SIZE] {
        self.buffer(self.tail)
    }

    /// Physical address of the buffer of descriptor `index`.
    pub fn buffer_addr(&self, index: u32) -> u64 {
        // SAFETY: pointer arithmetic inside the buffer array.
        unsafe { self.bufs.add(index as usize) as u64 }
    }

    /// Copies `bytes` to the start of every buffer (a frame template: per
    /// frame only the changing fields need writing).
    pub fn fill_all_buffers(&mut self, bytes: &[u8]) {
        for i in 0..self.size {
            self.buffer(i)[..bytes.len()].copy_from_slice(bytes);
        }
    }

    /// Queues the frame in the next buffer (`len` bytes). Not yet published.
    pub fn push(&mut self, len: u16) {
        debug_assert!(self.free() > 0 && len as usize <= BUF_SIZE);
        let desc = TxDesc {
            addr: self.buffer_addr(self.tail),
            length: len,
            cmd: DATA_CMD,
            ..TxDesc::default()
        };
        self.push_raw(desc);
    }

    /// Queues an arbitrary descriptor (the chaos workload). Not yet published.
    pub fn push_raw(&mut self, desc: TxDesc) {
        self.write_desc(self.tail, desc);
        self.tail = (self.tail + 1) % self.size;
    }

    fn write_desc(&mut self, index: u32, desc: TxDesc) {
        // SAFETY: `index` < size; descriptors not in flight belong to the
        // driver.
        unsafe { self.desc.add(index as usize).write_volatile(desc) };
    }

    fn desc_done(&self, index: u32) -> bool {
        // SAFETY: in bounds; the device writes the status byte, so read it
        // volatile.
        unsafe {
            addr_of!((*self.desc.add(index as usize)).status).read_volatile() & status::DD != 0
        }
    }

    /// Reclaims descriptors the device has written back; returns how many.
    pub fn reclaim(&mut self) -> u32 {
        let mut done = 0;
        while self.clean != self.published && self.desc_done(self.clean) {
            // SAFETY: in bounds; the descriptor is done, so it is ours again.
            unsafe { addr_of_mut!((*self.desc.add(self.clean as usize)).status).write_volatile(0) };
            self.clean = (self.clean + 1) % self.size;
            done += 1;
        }
        fence(Ordering::Acquire);
        done
    }

    /// Publishes every filled descriptor to the device: the one place where
    /// the driver tells the device about new TX descriptors. Without a CSB:
    /// a TDT write. With one: guest_tdt (release), full barrier, and a TDT
    /// write (the kick) only if host_need_txkick is set. Returns whether
    /// TDT was written.
    pub fn publish(&mut self, regs: &Regs) -> bool {
        COUNTERS.tx_publications.inc();
        COUNTERS.tx_published.add(self.unpublished() as u64);
        self.published = self.tail;
        match self.csb {
            None => {
                fence(Ordering::Release);
                COUNTERS.tdt_writes.inc();
                regs.write(TDT, self.tail);
                true
            }
            Some(csb) => {
                csb.set_guest_tdt(self.tail);
                full_barrier();
                if !csb.host_needs_txkick() {
                    return false;
                }
                COUNTERS.tdt_writes.inc();
                COUNTERS.csb_tx_kicks.inc();
                regs.write(TDT, self.tail);
                true
            }
        }
    }

    /// Forgets descriptors that will never complete (after a device reset),
    /// making the whole ring free again.
    pub fn abandon(&mut self) {
        self.reset();
    }
}
