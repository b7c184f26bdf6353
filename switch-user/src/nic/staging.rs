//! Staging buffers for frames a source lends only for the length of a call
//! (a TAP read): they are copied here, cache-line
//! rounded, so the forwarding batch can refer to them until it is done.

use switch_port::layout::CACHE_LINE;

use crate::bridge::port::FrameRef;

/// Fixed-size, 64-byte aligned slots for one batch of frames.
pub struct Staging {
    memory: Vec<u64>,
    slot_size: usize,
    slots: usize,
    used: usize,
}

impl Staging {
    /// Room for `slots` frames of up to `max_frame` bytes.
    pub fn new(slots: usize, max_frame: usize) -> Staging {
        let slot_size = max_frame.next_multiple_of(CACHE_LINE);
        // u64 storage keeps every slot 8-byte aligned; slot sizes are
        // multiples of 64 so copies may round up within a slot.
        Staging {
            memory: vec![0u64; (slots * slot_size).div_ceil(8) + CACHE_LINE / 8],
            slot_size,
            slots,
            used: 0,
        }
    }

    /// Forgets the frames of the previous batch.
    pub fn clear(&mut self) {
        self.used = 0;
    }

    /// Copies `frame` into the next slot and returns a reference to it, or
    /// `None` when full or the frame is too long (the caller counts it).
    pub fn stage(&mut self, frame: &[u8]) -> Option<FrameRef> {
        if self.used == self.slots || frame.len() > self.slot_size {
            return None;
        }
        let base = self.memory.as_mut_ptr().cast::<u8>();
        // SAFETY: slot `used` < `slots` lies inside `memory`, which holds
        // slots * slot_size bytes; the frame fits in a slot.
        let slot = unsafe { base.add(self.used * self.slot_size) };
        // SAFETY: source and destination are valid for `frame.len()` bytes
        // and do not overlap (the frame is not in our memory).
        unsafe { std::ptr::copy_nonoverlapping(frame.as_ptr(), slot, frame.len()) };
        self.used += 1;
        Some(FrameRef {
            ptr: slot,
            len: frame.len() as u32,
            readable: self.slot_size as u32,
        })
    }
}
