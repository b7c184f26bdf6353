//! The network backend the device sends frames to and receives frames from.

use std::collections::VecDeque;

/// Where transmitted frames go and received frames come from (a switch port).
///
/// Transmit is zero-copy: the model reserves a slot buffer, gathers the frame
/// from guest memory straight into it and commits its length; `tx_flush`
/// publishes a batch (one kick). A reservation that is not committed is
/// abandoned: the next `tx_reserve` may return the same slot. Receive frames
/// wait in the backend until the guest has buffers: the model peeks, copies
/// and consumes, then `rx_flush` returns the consumed slots in one batch.
pub trait NetBackend {
    /// A free transmit slot buffer, or `None` when the backend is full.
    fn tx_reserve(&mut self) -> Option<&mut [u8]>;
    /// Queues the first `len` bytes of the reserved slot as a frame.
    fn tx_commit(&mut self, len: usize);
    /// Publishes the committed frames (at most one kick per call).
    fn tx_flush(&mut self);
    /// The oldest received frame, if any, without consuming it.
    fn rx_peek(&mut self) -> Option<&[u8]>;
    /// Consumes the frame `rx_peek` returned.
    fn rx_consume(&mut self);
    /// Returns the consumed receive slots to the producer.
    fn rx_flush(&mut self);
}

/// An in-memory backend: bounded queues of frames in both directions.
///
/// Useful for tests, loopback and running a VM without a switch.
#[derive(Debug)]
pub struct QueueBackend {
    slot_size: usize,
    tx_capacity: usize,
    slot: Vec<u8>,
    tx_committed: Vec<Vec<u8>>,
    /// Frames published by `tx_flush`, oldest first.
    pub transmitted: VecDeque<Vec<u8>>,
    /// Frames waiting to be received, oldest first.
    pub receive_queue: VecDeque<Vec<u8>>,
    /// Number of `tx_flush` calls that published at least one frame.
    pub tx_kicks: u64,
    /// Number of `rx_flush` calls.
    pub rx_flushes: u64,
}

impl QueueBackend {
    /// A backend with `slot_size`-byte slots holding at most `tx_capacity`
    /// transmitted frames not yet taken out of `transmitted`.
    pub fn new(slot_size: usize, tx_capacity: usize) -> Self {
        Self {
            slot_size,
            tx_capacity,
            slot: vec![0; slot_size],
            tx_committed: Vec::new(),
            transmitted: VecDeque::new(),
            receive_queue: VecDeque::new(),
            tx_kicks: 0,
            rx_flushes: 0,
        }
    }

    /// Queues a frame for the guest to receive.
    pub fn push_rx(&mut self, frame: &[u8]) {
        self.receive_queue.push_back(frame.to_vec());
    }
}

impl NetBackend for QueueBackend {
    fn tx_reserve(&mut self) -> Option<&mut [u8]> {
        if self.transmitted.len() + self.tx_committed.len() >= self.tx_capacity {
            return None;
        }
        Some(&mut self.slot[..])
    }

    fn tx_commit(&mut self, len: usize) {
        let len = len.min(self.slot_size);
        self.tx_committed.push(self.slot[..len].to_vec());
    }

    fn tx_flush(&mut self) {
        if !self.tx_committed.is_empty() {
            self.tx_kicks += 1;
            self.transmitted.extend(self.tx_committed.drain(..));
        }
    }

    fn rx_peek(&mut self) -> Option<&[u8]> {
        self.receive_queue.front().map(Vec::as_slice)
    }

    fn rx_consume(&mut self) {
        self.receive_queue.pop_front();
    }

    fn rx_flush(&mut self) {
        self.rx_flushes += 1;
    }
}
