//! Reassembly of multi-buffer AF_XDP packets.
//!
//! With `XDP_USE_SG` the kernel spreads a packet longer than one UMEM frame
//! over several RX descriptors, each but the last flagged
//! [`XDP_PKT_CONTD`]. [`Gather`] copies the pieces of one packet into a
//! contiguous buffer of its own and lends that buffer to the caller until
//! [`Gather::release`]; the UMEM frames go back to the fill ring at once.
//!
//! A packet is dropped whole when one of its descriptors failed validation
//! (its bytes are unknown) or when it is longer than the socket's largest
//! packet. A chain may span two `receive` calls: the packet being assembled
//! survives `release`.

/// `XDP_PKT_CONTD` (linux/if_xdp.h): more descriptors of this packet follow.
pub(crate) const XDP_PKT_CONTD: u32 = 1;

/// Why a multi-buffer packet was dropped.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Fault {
    /// One of its descriptors was not ours or out of bounds.
    Invalid,
    /// Longer than the largest packet of the socket.
    TooLong,
    /// Every reassembly buffer is lent out (the caller holds too many).
    NoBuffer,
}

/// What one piece did to the packet being assembled.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Step {
    /// More pieces follow.
    Pending,
    /// The packet is complete: `len` bytes at `ptr`, `room` bytes readable
    /// (and writable) from `ptr`, the caller's until [`Gather::release`].
    Complete {
        /// First byte.
        ptr: *mut u8,
        /// Packet length.
        len: usize,
        /// Bytes of the buffer from `ptr`.
        room: usize,
    },
    /// The packet ended and is dropped.
    Dropped(Fault),
}

/// Reassembly buffers of one socket.
pub(crate) struct Gather {
    /// Buffers of `max_packet` bytes: the first `lent` are the caller's;
    /// `buffers[lent]` receives the packet being assembled.
    buffers: Vec<Box<[u8]>>,
    lent: usize,
    /// Bytes of the packet being assembled.
    len: usize,
    /// A packet is being assembled (its last piece has not come yet).
    active: bool,
    /// Why the packet being assembled will be dropped, if it will.
    fault: Option<Fault>,
    max_packet: usize,
    max_buffers: usize,
}

impl Gather {
    /// Reassembly of packets up to `max_packet` bytes, at most
    /// `max_buffers` of them lent at once (allocated as needed).
    pub(crate) fn new(max_packet: usize, max_buffers: usize) -> Self {
        Self {
            buffers: Vec::new(),
            lent: 0,
            len: 0,
            active: false,
            fault: None,
            max_packet,
            max_buffers: max_buffers.max(1),
        }
    }

    /// Whether a packet is being assembled (the next descriptor belongs to it).
    pub(crate) fn active(&self) -> bool {
        self.active
    }

    /// Buffers lent to the caller now.
    pub(crate) fn lent(&self) -> usize {
        self.lent
    }

    /// Adds the next piece of a multi-buffer packet: its bytes, or `None`
    /// for a descriptor that failed validation; `more` is its
    /// `XDP_PKT_CONTD` flag.
    pub(crate) fn push(&mut self, piece: Option<&[u8]>, more: bool) -> Step {
        if !self.active {
            self.active = true;
            self.len = 0;
            self.fault = None;
            if self.lent == self.buffers.len() {
                if self.buffers.len() < self.max_buffers {
                    self.buffers
                        .push(vec![0; self.max_packet].into_boxed_slice());
                } else {
                    self.fault = Some(Fault::NoBuffer);
                }
            }
        }
        match piece {
            None => self.fault = self.fault.or(Some(Fault::Invalid)),
            Some(bytes) if self.fault.is_none() => {
                let end = self.len + bytes.len();
                if end > self.max_packet {
                    self.fault = Some(Fault::TooLong);
                } else {
                    self.buffers[self.lent][self.len..end].copy_from_slice(bytes);
                    self.len = end;
                }
            }
            Some(_) => {}
        }
        if more {
            return Step::Pending;
        }
        self.active = false;
        if let Some(fault) = self.fault.take() {
            return Step::Dropped(fault);
        }
        let buffer = &mut self.buffers[self.lent];
        self.lent += 1;
        Step::Complete {
            ptr: buffer.as_mut_ptr(),
            len: self.len,
            room: buffer.len(),
        }
    }

    /// Takes every lent buffer back; a packet being assembled goes on.
    pub(crate) fn release(&mut self) {
        if self.active && self.lent < self.buffers.len() {
            self.buffers.swap(0, self.lent);
        }
        self.lent = 0;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bytes_of(step: Step) -> Vec<u8> {
        match step {
            Step::Complete { ptr, len, .. } => {
                // SAFETY: the buffer is lent until `release`, which the
                // tests call only after reading.
                unsafe { std::slice::from_raw_parts(ptr, len) }.to_vec()
            }
            other => panic!("not complete: {other:?}"),
        }
    }

    #[test]
    fn pieces_are_joined_in_order() {
        let mut g = Gather::new(16, 4);
        assert_eq!(g.push(Some(b"abcd"), true), Step::Pending);
        assert!(g.active());
        assert_eq!(g.push(Some(b"efgh"), true), Step::Pending);
        let step = g.push(Some(b"ij"), false);
        assert!(!g.active());
        assert_eq!(bytes_of(step), b"abcdefghij");
        if let Step::Complete { room, .. } = step {
            assert_eq!(room, 16);
        }
        assert_eq!(g.lent(), 1);
    }

    #[test]
    fn lent_buffers_stay_put_until_release() {
        let mut g = Gather::new(8, 4);
        g.push(Some(b"ab"), true);
        let first = g.push(Some(b"cd"), false);
        g.push(Some(b"xy"), true);
        let second = g.push(Some(b"z"), false);
        assert_eq!(bytes_of(first), b"abcd");
        assert_eq!(bytes_of(second), b"xyz");
        assert_eq!(g.lent(), 2);
        g.release();
        assert_eq!(g.lent(), 0);
    }

    #[test]
    fn an_invalid_piece_drops_the_whole_packet() {
        let mut g = Gather::new(16, 4);
        g.push(Some(b"abcd"), true);
        assert_eq!(g.push(None, true), Step::Pending);
        assert_eq!(g.push(Some(b"ef"), false), Step::Dropped(Fault::Invalid));
        assert_eq!(g.lent(), 0);
        // The next packet starts clean.
        g.push(Some(b"12"), true);
        assert_eq!(bytes_of(g.push(Some(b"3"), false)), b"123");
    }

    #[test]
    fn an_invalid_last_piece_drops_the_packet() {
        let mut g = Gather::new(16, 4);
        g.push(Some(b"abcd"), true);
        assert_eq!(g.push(None, false), Step::Dropped(Fault::Invalid));
    }

    #[test]
    fn a_packet_beyond_the_largest_is_dropped_as_too_long() {
        let mut g = Gather::new(6, 4);
        g.push(Some(b"abcd"), true);
        assert_eq!(g.push(Some(b"efg"), true), Step::Pending);
        assert_eq!(g.push(Some(b"h"), false), Step::Dropped(Fault::TooLong));
        g.push(Some(b"abc"), true);
        assert_eq!(bytes_of(g.push(Some(b"def"), false)), b"abcdef");
    }

    #[test]
    fn without_a_free_buffer_packets_are_dropped_until_release() {
        let mut g = Gather::new(4, 1);
        g.push(Some(b"a"), true);
        let held = g.push(Some(b"b"), false);
        g.push(Some(b"c"), true);
        assert_eq!(g.push(Some(b"d"), false), Step::Dropped(Fault::NoBuffer));
        assert_eq!(bytes_of(held), b"ab");
        g.release();
        g.push(Some(b"e"), true);
        assert_eq!(bytes_of(g.push(Some(b"f"), false)), b"ef");
    }

    #[test]
    fn a_chain_spanning_a_release_keeps_its_bytes() {
        let mut g = Gather::new(8, 4);
        g.push(Some(b"ab"), true);
        let held = g.push(Some(b"c"), false);
        assert_eq!(bytes_of(held), b"abc");
        g.push(Some(b"xy"), true);
        g.release();
        let step = g.push(Some(b"z"), false);
        assert_eq!(bytes_of(step), b"xyz");
        assert_eq!(g.lent(), 1);
    }
}
