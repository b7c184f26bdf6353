//! The ceiling: a plain copy loop moving the same bytes the switch moves
//! (frames between two 1024-slot rings of 2 KiB buffers, 64-byte rounded).

use std::time::{Duration, Instant};

/// Frames copied per second with `size`-byte frames, and frames copied.
pub fn run(size: usize, duration: Duration) -> (f64, u64) {
    const SLOTS: usize = 1024;
    const BUF: usize = 2048;
    let src = vec![0x5au8; SLOTS * BUF];
    let mut dst = vec![0u8; SLOTS * BUF];
    let copy = size.next_multiple_of(64).min(BUF);
    let start = Instant::now();
    let mut frames = 0u64;
    loop {
        for i in 0..SLOTS {
            let s = &src[i * BUF..i * BUF + copy];
            dst[i * BUF..i * BUF + copy].copy_from_slice(s);
        }
        std::hint::black_box(&mut dst);
        frames += SLOTS as u64;
        if start.elapsed() >= duration {
            break;
        }
    }
    (frames as f64 / start.elapsed().as_secs_f64(), frames)
}
