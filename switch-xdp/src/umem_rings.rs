//! The UMEM of one AF_XDP socket, its four rings and who owns each frame.
//!
//! xsk-rs leaves frame ownership to its user: `FrameDesc` is `Copy`, and
//! producing a frame twice or reading a frame the kernel is writing is
//! undefined behaviour. This module is the one place that calls those
//! `unsafe` functions. It records an [`Owner`] per frame and moves a frame
//! only along the legal transitions:
//!
//! ```text
//!  RX frames:  User --fill ring--> KernelRx --RX ring--> User (lent to the callback, then refilled)
//!  TX frames:  User (copy in) --TX ring--> KernelTx --completion ring--> User
//! ```
//!
//! Every address the kernel hands back is checked against that table and
//! the UMEM bounds before a slice is made of it; a descriptor that fails is
//! counted and skipped, never dereferenced.
use std::io::Write;
use xsk_rs::{CompQueue, FillQueue, FrameDesc, RxQueue, TxQueue, Umem};

/// Who may touch a frame right now.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Owner {
    /// Userspace: free, waiting for the fill ring, or being written for TX.
    User,
    /// The kernel, to receive into (fill ring, then RX ring).
    KernelRx,
    /// The kernel, to transmit (TX ring, then completion ring).
    KernelTx,
}

/// What one `receive` call did.
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct Received {
    /// Frames lent to the callback.
    pub frames: usize,
    /// Their bytes.
    pub bytes: usize,
    /// Descriptors rejected (not ours, or out of bounds).
    pub invalid: usize,
}

/// What one `transmit` call did.
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct Transmitted {
    /// Frames taken from the caller's iterator.
    pub taken: usize,
    /// Frames put on the TX ring.
    pub queued: usize,
    /// Their bytes.
    pub bytes: usize,
    /// Frames refused: empty or longer than a UMEM frame holds.
    pub rejected: usize,
}

/// The UMEM, its rings and the ownership of its frames.
pub(crate) struct UmemRings {
    // The rings hold the socket; the UMEM outlives them (each holds a
    // clone of it inside xsk-rs).
    rx: RxQueue,
    tx: TxQueue,
    fill: FillQueue,
    completion: CompQueue,
    umem: Umem,
    frame_size: usize,
    owners: Vec<Owner>,
    /// Received frames back from the caller, waiting for room in the fill ring.
    fill_pending: Vec<FrameDesc>,
    /// Received frames the caller still holds (see `receive_held`).
    held: Vec<FrameDesc>,
    /// TX frames free for new data.
    tx_free: Vec<FrameDesc>,
    /// Scratch for ring consumption (RX and completion).
    scratch: Vec<FrameDesc>,
    /// Scratch for the frames of one TX batch.
    staged: Vec<FrameDesc>,
    /// Frames owned by the kernel for transmission.
    tx_in_flight: usize,
    /// Where packet data starts inside a frame (the XDP headroom).
    data_offset: usize,
}

impl UmemRings {
    /// Takes the rings of a freshly created socket and the frames of its
    /// UMEM; the first `rx_frames` are for receiving, the rest for sending.
    pub(crate) fn new(
        umem: Umem,
        frames: Vec<FrameDesc>,
        frame_size: usize,
        rx_frames: usize,
        rings: (RxQueue, TxQueue, FillQueue, CompQueue),
    ) -> Self {
        let (rx, tx, fill, completion) = rings;
        let frame_count = frames.len();
        let mut frames = frames;
        let tx_free = frames.split_off(rx_frames.min(frame_count));
        let scratch_len = frame_count.max(1);
        let data_offset = frames.first().map_or(0, |d| d.addr() % frame_size);
        Self {
            rx,
            tx,
            fill,
            completion,
            umem,
            frame_size,
            owners: vec![Owner::User; frame_count],
            fill_pending: frames,
            held: Vec::new(),
            tx_free,
            scratch: vec![FrameDesc::default(); scratch_len],
            staged: Vec::with_capacity(scratch_len),
            tx_in_flight: 0,
            data_offset,
        }
    }

    /// The file descriptor of the socket.
    pub(crate) fn socket_fd(&self) -> &xsk_rs::socket::Fd {
        self.rx.fd()
    }

    /// The longest frame a TX frame holds.
    pub(crate) fn max_frame_len(&self) -> usize {
        self.frame_size - self.data_offset
    }

    /// The frame index of `addr` if `addr..addr + len` lies inside one frame
    /// of this UMEM.
    fn frame_index(&self, addr: usize, len: usize) -> Option<usize> {
        let index = addr / self.frame_size;
        let offset = addr % self.frame_size;
        (index < self.owners.len() && offset + len <= self.frame_size).then_some(index)
    }

    /// Takes up to `max` frames from the RX ring, lends each to `deliver`,
    /// then gives them all back to the fill ring (what does not fit waits
    /// for the next call).
    pub(crate) fn receive(&mut self, max: usize, mut deliver: impl FnMut(&[u8])) -> Received {
        let want = max.min(self.scratch.len());
        // SAFETY: the RX ring belongs to a socket created on `self.umem`, so
        // the descriptors it yields describe frames of that UMEM; they are
        // checked against the ownership table below before any access.
        let count = unsafe { self.rx.consume(&mut self.scratch[..want]) };
        let mut received = Received::default();
        for desc in &self.scratch[..count] {
            let len = desc.lengths().data();
            let index = match self.frame_index(desc.addr(), len) {
                Some(index) if self.owners[index] == Owner::KernelRx => index,
                _ => {
                    received.invalid += 1;
                    continue;
                }
            };
            self.owners[index] = Owner::User;
            // SAFETY: the frame is this UMEM's, lies within bounds (checked
            // above), and the kernel has handed it back through the RX ring:
            // nothing writes it until it is produced to the fill ring again,
            // which happens after `deliver` returns.
            let data = unsafe { self.umem.data(desc) };
            deliver(data.contents());
            received.frames += 1;
            received.bytes += len;
            self.fill_pending.push(*desc);
        }
        self.refill();
        received
    }

    /// Like `receive`, but the frames stay with the caller after `deliver`
    /// returns: `deliver(data, len, room)` gets a pointer to the frame's
    /// bytes (which the caller may also change in place), its length and the bytes readable from the pointer to the end
    /// of its UMEM frame. The frames are marked as owned by userspace, so
    /// nothing writes them until `release_held` gives them back to the fill
    /// ring.
    pub(crate) fn receive_held(
        &mut self,
        max: usize,
        mut deliver: impl FnMut(*mut u8, usize, usize),
    ) -> Received {
        let want = max.min(self.scratch.len());
        // SAFETY: as in `receive`: descriptors of this UMEM, checked against
        // the ownership table before any access.
        let count = unsafe { self.rx.consume(&mut self.scratch[..want]) };
        let mut received = Received::default();
        for desc in &self.scratch[..count] {
            let len = desc.lengths().data();
            let index = match self.frame_index(desc.addr(), len) {
                Some(index) if self.owners[index] == Owner::KernelRx => index,
                _ => {
                    received.invalid += 1;
                    continue;
                }
            };
            self.owners[index] = Owner::User;
            let mut writable = *desc;
            // SAFETY: the frame is this UMEM's, within bounds, and owned by
            // userspace until `release_held`, so the pointer stays valid (the
            // UMEM lives as long as `self`) and nothing else reads or writes
            // the bytes meanwhile: the caller alone may (its contract).
            let mut data = unsafe { self.umem.data_mut(&mut writable) };
            let ptr = data.contents_mut().as_mut_ptr();
            let room = self.frame_size - desc.addr() % self.frame_size;
            deliver(ptr, len, room);
            received.frames += 1;
            received.bytes += len;
            self.held.push(*desc);
        }
        received
    }

    /// Gives every frame taken by `receive_held` back to the fill ring.
    pub(crate) fn release_held(&mut self) {
        if self.held.is_empty() {
            return;
        }
        self.fill_pending.append(&mut self.held);
        self.refill();
    }

    /// Frames the caller holds now.
    pub(crate) fn held(&self) -> usize {
        self.held.len()
    }

    /// Moves waiting frames into the fill ring, as many as it has room for.
    pub(crate) fn refill(&mut self) -> usize {
        if self.fill_pending.is_empty() {
            return 0;
        }
        let wanted = self.fill_pending.len();
        let room = (self.fill.nb_free(wanted as u32) as usize).min(wanted);
        if room == 0 {
            return 0;
        }
        let start = wanted - room;
        // SAFETY: every frame in `fill_pending` is owned by userspace (the
        // table says User) and appears once; after this call the kernel owns
        // the ones produced, which the table records below.
        let produced = unsafe { self.fill.produce(&self.fill_pending[start..]) };
        for desc in &self.fill_pending[start..start + produced] {
            self.owners[desc.addr() / self.frame_size] = Owner::KernelRx;
        }
        // Whatever was not produced stays pending for the next call.
        self.fill_pending.drain(start..start + produced);
        produced
    }

    /// Whether the kernel asks for a wakeup to pick up fill-ring frames
    /// (zero-copy drivers with need_wakeup).
    pub(crate) fn fill_needs_wakeup(&self) -> bool {
        self.fill.needs_wakeup()
    }

    /// Wakes the driver so it takes fill-ring frames (a zero-timeout poll).
    pub(crate) fn wake_fill(&mut self) -> std::io::Result<()> {
        self.fill.wakeup(self.rx.fd_mut(), 0)
    }

    /// Copies frames from `frames` into free TX frames and puts them on the
    /// TX ring. Pulls from the iterator only as many frames as there is room
    /// for, so a caller passing `iter.by_ref()` keeps the rest.
    pub(crate) fn transmit<'a>(&mut self, frames: impl Iterator<Item = &'a [u8]>) -> Transmitted {
        let mut done = Transmitted::default();
        let free = self.tx_free.len();
        if free == 0 {
            return done;
        }
        let room = (self.tx.nb_free(free as u32) as usize).min(free);
        self.staged.clear();
        for frame in frames.take(room) {
            done.taken += 1;
            let Some(mut desc) = self.tx_free.pop() else {
                break;
            };
            let capacity = self.frame_size - desc.addr() % self.frame_size;
            if frame.is_empty() || frame.len() > capacity {
                done.rejected += 1;
                self.tx_free.push(desc);
                continue;
            }
            {
                // SAFETY: `desc` came from `tx_free`, so the table says User:
                // neither the kernel nor any other slice touches this frame.
                let mut data = unsafe { self.umem.data_mut(&mut desc) };
                let mut cursor = data.cursor();
                cursor.set_pos(0);
                // Cannot fail: the frame fits (checked above).
                let _ = cursor.write_all(frame);
            }
            done.bytes += frame.len();
            self.staged.push(desc);
        }
        if self.staged.is_empty() {
            return done;
        }
        // SAFETY: the staged frames are owned by userspace, each once, and
        // hold their data; the table records the kernel's ownership below.
        let produced = unsafe { self.tx.produce(&self.staged) };
        for desc in &self.staged[..produced] {
            self.owners[desc.addr() / self.frame_size] = Owner::KernelTx;
        }
        self.tx_in_flight += produced;
        // Room was reserved above, so this is not expected; keep the frames
        // if the ring refused them anyway.
        for desc in &self.staged[produced..] {
            done.bytes -= desc.lengths().data();
            self.tx_free.push(*desc);
        }
        done.queued = produced;
        done
    }

    /// Whether the TX ring asks for a `sendto` (always, in copy mode).
    pub(crate) fn tx_needs_wakeup(&self) -> bool {
        self.tx.needs_wakeup()
    }

    /// Takes finished TX frames back from the completion ring.
    /// Returns (completed, rejected descriptors).
    pub(crate) fn reclaim(&mut self) -> (usize, usize) {
        let want = self.scratch.len();
        // SAFETY: the completion ring belongs to this UMEM; its descriptors
        // are checked against the ownership table before use.
        let count = unsafe { self.completion.consume(&mut self.scratch[..want]) };
        let mut invalid = 0;
        for desc in &self.scratch[..count] {
            match self.frame_index(desc.addr(), 0) {
                Some(index) if self.owners[index] == Owner::KernelTx => {
                    self.owners[index] = Owner::User;
                    self.tx_in_flight -= 1;
                    self.tx_free.push(*desc);
                }
                _ => invalid += 1,
            }
        }
        (count - invalid, invalid)
    }

    /// TX frames free for new data.
    pub(crate) fn tx_free(&self) -> usize {
        self.tx_free.len()
    }

    /// Frames on the TX side not yet completed by the kernel.
    pub(crate) fn tx_in_flight(&self) -> usize {
        self.tx_in_flight
    }
}
