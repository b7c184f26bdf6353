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
//!
//! With multi-buffer (`XDP_USE_SG`, `max_packet` beyond one frame) a packet
//! may span several descriptors chained by `XDP_PKT_CONTD`: received chains
//! are copied into a reassembly buffer ([`Gather`]) and their frames refilled
//! at once; a long packet to send is split over as many TX frames, each but
//! the last flagged `XDP_PKT_CONTD`.
use crate::gather::{Fault, Gather, Step, XDP_PKT_CONTD};
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
    /// Of the frames, those reassembled from several UMEM frames.
    pub chained: usize,
    /// Multi-buffer packets dropped: longer than the largest packet.
    pub too_long: usize,
    /// Multi-buffer packets dropped: a descriptor of theirs was rejected,
    /// or no reassembly buffer was free.
    pub broken: usize,
}

/// What one `transmit` call did.
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct Transmitted {
    /// Frames taken from the caller's iterator.
    pub taken: usize,
    /// Frames (packets) put on the TX ring.
    pub queued: usize,
    /// Their bytes.
    pub bytes: usize,
    /// Frames refused: empty or longer than the largest packet.
    pub rejected: usize,
    /// Of the queued frames, those split over several UMEM frames.
    pub chained: usize,
}

/// At most this many reassembled packets are lent at once (more than a
/// forwarding batch takes between two releases).
const MAX_GATHER_BUFFERS: usize = 1024;

/// The frame index of `addr` if `addr..addr + len` lies inside one of
/// `frame_count` frames of `frame_size` bytes.
fn frame_index(addr: usize, len: usize, frame_size: usize, frame_count: usize) -> Option<usize> {
    let index = addr / frame_size;
    let offset = addr % frame_size;
    (index < frame_count && len <= frame_size - offset).then_some(index)
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
    /// The longest packet received or sent (beyond one frame: multi-buffer).
    max_packet: usize,
    /// Reassembly of multi-buffer packets.
    gather: Gather,
}

impl UmemRings {
    /// Takes the rings of a freshly created socket and the frames of its
    /// UMEM; the first `rx_frames` are for receiving, the rest for sending.
    /// `max_packet` is the longest packet: 0 for what one frame holds, more
    /// only on a socket bound with `XDP_USE_SG`.
    pub(crate) fn new(
        umem: Umem,
        frames: Vec<FrameDesc>,
        (frame_size, max_packet): (usize, usize),
        rx_frames: usize,
        rings: (RxQueue, TxQueue, FillQueue, CompQueue),
    ) -> Self {
        let (rx, tx, fill, completion) = rings;
        let frame_count = frames.len();
        let mut frames = frames;
        let tx_free = frames.split_off(rx_frames.min(frame_count));
        let scratch_len = frame_count.max(1);
        let data_offset = frames.first().map_or(0, |d| d.addr() % frame_size);
        let max_packet = max_packet.max(frame_size - data_offset);
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
            max_packet,
            gather: Gather::new(max_packet, MAX_GATHER_BUFFERS),
        }
    }

    /// The file descriptor of the socket.
    pub(crate) fn socket_fd(&self) -> &xsk_rs::socket::Fd {
        self.rx.fd()
    }

    /// The longest packet received or sent (one frame, or a chain of them).
    pub(crate) fn max_frame_len(&self) -> usize {
        self.max_packet
    }

    /// What one UMEM frame holds.
    fn chunk_len(&self) -> usize {
        self.frame_size - self.data_offset
    }

    /// The frame index of `addr` if `addr..addr + len` lies inside one frame
    /// of this UMEM.
    fn frame_index(&self, addr: usize, len: usize) -> Option<usize> {
        frame_index(addr, len, self.frame_size, self.owners.len())
    }

    /// Takes up to `max` descriptors from the RX ring, lends each packet
    /// to `deliver`, then gives them all back to the fill ring (what does
    /// not fit waits for the next call).
    pub(crate) fn receive(&mut self, max: usize, mut deliver: impl FnMut(&[u8])) -> Received {
        let received = self.receive_held(max, |ptr, len, _room| {
            // SAFETY: `receive_held` lends `len` bytes at `ptr` to us until
            // `release_held`, below.
            deliver(unsafe { std::slice::from_raw_parts(ptr, len) })
        });
        self.release_held();
        received
    }

    /// Like `receive`, but the packets stay with the caller after `deliver`
    /// returns: `deliver(data, len, room)` gets a pointer to the packet's
    /// bytes (which the caller may also change in place), its length and the
    /// bytes readable from the pointer (to the end of its UMEM frame or
    /// reassembly buffer). A packet in one frame is lent in place: the frame
    /// is marked as owned by userspace, so nothing writes it until
    /// `release_held` gives it back to the fill ring. A packet in a chain of
    /// frames is copied into a reassembly buffer, lent until `release_held`.
    /// `max` bounds the descriptors taken.
    pub(crate) fn receive_held(
        &mut self,
        max: usize,
        mut deliver: impl FnMut(*mut u8, usize, usize),
    ) -> Received {
        let want = max.min(self.scratch.len());
        // SAFETY: the RX ring belongs to a socket created on `self.umem`, so
        // the descriptors it yields describe frames of that UMEM; they are
        // checked against the ownership table below before any access.
        let count = unsafe { self.rx.consume(&mut self.scratch[..want]) };
        let mut received = Received::default();
        let mut copied = false;
        for i in 0..count {
            let desc = self.scratch[i];
            let len = desc.lengths().data();
            let more = desc.options() & XDP_PKT_CONTD != 0;
            let index = match self.frame_index(desc.addr(), len) {
                Some(index) if self.owners[index] == Owner::KernelRx => {
                    self.owners[index] = Owner::User;
                    Some(index)
                }
                _ => {
                    received.invalid += 1;
                    None
                }
            };
            if !more && !self.gather.active() {
                // A packet in one frame: lent in place.
                if index.is_none() {
                    continue;
                }
                let mut writable = desc;
                // SAFETY: the frame is this UMEM's, within bounds, and owned
                // by userspace until `release_held`, so the pointer stays
                // valid (the UMEM lives as long as `self`) and nothing else
                // reads or writes the bytes meanwhile: the caller alone may
                // (its contract).
                let mut data = unsafe { self.umem.data_mut(&mut writable) };
                let ptr = data.contents_mut().as_mut_ptr();
                let room = self.frame_size - desc.addr() % self.frame_size;
                deliver(ptr, len, room);
                received.frames += 1;
                received.bytes += len;
                self.held.push(desc);
                continue;
            }
            // A piece of a multi-buffer packet: copied, and its frame refilled.
            let step = match index {
                Some(_) => {
                    // SAFETY: the frame is this UMEM's, within bounds and
                    // owned by userspace (checked and recorded above); it
                    // goes back to the fill ring only after the copy.
                    let data = unsafe { self.umem.data(&desc) };
                    self.gather.push(Some(data.contents()), more)
                }
                None => self.gather.push(None, more),
            };
            if index.is_some() {
                self.fill_pending.push(desc);
                copied = true;
            }
            match step {
                Step::Pending => {}
                Step::Complete { ptr, len, room } => {
                    deliver(ptr, len, room);
                    received.frames += 1;
                    received.chained += 1;
                    received.bytes += len;
                }
                Step::Dropped(Fault::TooLong) => received.too_long += 1,
                Step::Dropped(Fault::Invalid | Fault::NoBuffer) => received.broken += 1,
            }
        }
        if copied {
            // Copied pieces need not wait for `release_held` (which a caller
            // that got no complete packet may not call soon).
            self.refill();
        }
        received
    }

    /// Gives every frame taken by `receive_held` back to the fill ring, and
    /// takes the reassembly buffers back.
    pub(crate) fn release_held(&mut self) {
        self.gather.release();
        self.fill_pending.append(&mut self.held);
        self.refill();
    }

    /// Packets the caller holds now.
    pub(crate) fn held(&self) -> usize {
        self.held.len() + self.gather.lent()
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
    /// TX ring; a frame longer than one UMEM frame (multi-buffer sockets)
    /// takes several, chained with `XDP_PKT_CONTD`. Pulls from the iterator
    /// only as many frames as there is room for, so a caller passing
    /// `iter.by_ref()` keeps the rest.
    pub(crate) fn transmit<'a>(
        &mut self,
        mut frames: impl Iterator<Item = &'a [u8]>,
    ) -> Transmitted {
        let mut done = Transmitted::default();
        let free = self.tx_free.len();
        if free == 0 {
            return done;
        }
        let chunk = self.chunk_len();
        // Room for the longest packet before each frame is pulled.
        let per_packet = self.max_packet.div_ceil(chunk);
        let mut room = (self.tx.nb_free(free as u32) as usize).min(free);
        self.staged.clear();
        while room >= per_packet {
            let Some(frame) = frames.next() else {
                break;
            };
            done.taken += 1;
            if frame.is_empty() || frame.len() > self.max_packet {
                done.rejected += 1;
                continue;
            }
            let pieces = frame.len().div_ceil(chunk);
            for (k, piece) in frame.chunks(chunk).enumerate() {
                // A piece fits in a frame (`chunks(chunk)`).
                let options = if k + 1 < pieces { XDP_PKT_CONTD } else { 0 };
                if !self.stage(&[piece], options) {
                    break;
                }
            }
            room -= pieces;
            done.queued += 1;
            done.chained += usize::from(pieces > 1);
            done.bytes += frame.len();
        }
        self.submit_staged(&mut done);
        done
    }

    /// Copies `parts`, one after the other, into a free TX frame and stages
    /// it with `options`; false if no frame is free (cannot happen while
    /// the callers reserve `room <= tx_free.len()` first). The parts must
    /// fit in one frame together.
    fn stage(&mut self, parts: &[&[u8]], options: u32) -> bool {
        let Some(mut desc) = self.tx_free.pop() else {
            return false;
        };
        {
            // SAFETY: `desc` came from `tx_free`, so the table says User:
            // neither the kernel nor any other slice touches this frame.
            let mut data = unsafe { self.umem.data_mut(&mut desc) };
            let mut cursor = data.cursor();
            cursor.set_pos(0);
            for part in parts {
                // Cannot fail: the parts fit in the frame (the caller's
                // check).
                let _ = cursor.write_all(part);
            }
        }
        desc.set_options(options);
        self.staged.push(desc);
        true
    }

    /// Hands the staged frames to the kernel's TX ring and records its
    /// ownership. The ring reserves all or nothing and the callers reserved
    /// room first, so a refusal is not expected; the frames are kept and
    /// `done` counts them rejected if it happens anyway.
    fn submit_staged(&mut self, done: &mut Transmitted) {
        if self.staged.is_empty() {
            return;
        }
        // SAFETY: the staged frames are owned by userspace, each once, and
        // hold their data; the table records the kernel's ownership below.
        let produced = unsafe { self.tx.produce(&self.staged) };
        for desc in &self.staged[..produced] {
            self.owners[desc.addr() / self.frame_size] = Owner::KernelTx;
        }
        self.tx_in_flight += produced;
        if produced < self.staged.len() {
            self.tx_free.extend_from_slice(&self.staged[produced..]);
            done.rejected += done.queued;
            done.queued = 0;
            done.chained = 0;
            done.bytes = 0;
        }
    }

    /// Like [`UmemRings::transmit`] for packets given in two parts (a
    /// header and a body), copied one after the other into one UMEM frame;
    /// a packet longer than one frame is refused.
    pub(crate) fn transmit_parts<'a>(
        &mut self,
        mut packets: impl Iterator<Item = [&'a [u8]; 2]>,
    ) -> Transmitted {
        let mut done = Transmitted::default();
        let chunk = self.chunk_len();
        let free = self.tx_free.len();
        let mut room = (self.tx.nb_free(free as u32) as usize).min(free);
        self.staged.clear();
        while room > 0 {
            let Some([head, body]) = packets.next() else {
                break;
            };
            done.taken += 1;
            let len = head.len() + body.len();
            if len == 0 || len > chunk {
                done.rejected += 1;
                continue;
            }
            // Both parts fit in the frame (checked above).
            if !self.stage(&[head, body], 0) {
                break;
            }
            room -= 1;
            done.queued += 1;
            done.bytes += len;
        }
        self.submit_staged(&mut done);
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
                    let mut desc = *desc;
                    desc.set_options(0);
                    self.tx_free.push(desc);
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

#[cfg(test)]
mod tests {
    use super::frame_index;

    #[test]
    fn descriptors_must_lie_inside_one_frame_of_the_umem() {
        // Four frames of 4096 bytes, data at offset 256.
        let at = |addr, len| frame_index(addr, len, 4096, 4);
        assert_eq!(at(256, 3840), Some(0));
        assert_eq!(at(4096 + 256, 100), Some(1));
        assert_eq!(at(3 * 4096 + 256, 3840), Some(3));
        // Crossing into the next frame.
        assert_eq!(at(256, 3841), None);
        assert_eq!(at(4095, 2), None);
        // Beyond the UMEM.
        assert_eq!(at(4 * 4096, 0), None);
        assert_eq!(at(usize::MAX, 1), None);
        // A huge length does not overflow.
        assert_eq!(at(256, usize::MAX), None);
    }
}
