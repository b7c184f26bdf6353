//! Sequence-number accounting for a receiver: what arrived in order, what is
//! missing, what came late (reordered) and what came twice.

/// Window of recent sequence numbers remembered for late and duplicate frames.
const WINDOW: u64 = 1 << 16;

/// Tracks the sequence numbers of one sender.
#[derive(Clone, Debug)]
pub struct SeqTracker {
    started: bool,
    /// Highest sequence number seen plus one.
    next: u64,
    /// First sequence number seen.
    first: u64,
    seen: Vec<u64>,
    /// Frames received (including late ones, excluding duplicates).
    pub received: u64,
    /// Frames currently missing (gaps not filled by late frames).
    pub lost: u64,
    /// Frames that arrived after a higher sequence number.
    pub reordered: u64,
    /// Frames that arrived twice.
    pub duplicates: u64,
    /// Frames older than the window, which cannot be classified.
    pub too_old: u64,
}

impl Default for SeqTracker {
    fn default() -> Self {
        SeqTracker {
            started: false,
            next: 0,
            first: 0,
            seen: vec![0; (WINDOW / 64) as usize],
            received: 0,
            lost: 0,
            reordered: 0,
            duplicates: 0,
            too_old: 0,
        }
    }
}

impl SeqTracker {
    fn bit(&mut self, seq: u64) -> (&mut u64, u64) {
        let i = seq % WINDOW;
        (&mut self.seen[(i / 64) as usize], 1 << (i % 64))
    }

    /// Records sequence number `seq`.
    #[inline]
    pub fn record(&mut self, seq: u64) {
        if !self.started {
            self.started = true;
            self.first = seq;
            self.next = seq;
        }
        if seq >= self.next {
            let gap = seq - self.next;
            self.lost += gap;
            // Clear the bits of the skipped numbers (and of the new one) as
            // the window moves forward.
            let clear_from = if gap >= WINDOW {
                seq + 1 - WINDOW
            } else {
                self.next
            };
            for s in clear_from..=seq {
                let (word, mask) = self.bit(s);
                *word &= !mask;
            }
            let (word, mask) = self.bit(seq);
            *word |= mask;
            self.next = seq + 1;
            self.received += 1;
        } else if self.next - seq > WINDOW || seq < self.first {
            self.too_old += 1;
        } else {
            let (word, mask) = self.bit(seq);
            if *word & mask != 0 {
                self.duplicates += 1;
            } else {
                *word |= mask;
                self.received += 1;
                self.reordered += 1;
                self.lost = self.lost.saturating_sub(1);
            }
        }
    }

    /// Highest sequence number seen plus one (0 before any frame).
    pub fn next_expected(&self) -> u64 {
        self.next
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn in_order_gap_late_and_duplicate() {
        let mut t = SeqTracker::default();
        for s in [0, 1, 2, 5, 3, 3, 6] {
            t.record(s);
        }
        assert_eq!(t.received, 6);
        assert_eq!(t.lost, 1); // 4 never came
        assert_eq!(t.reordered, 1); // 3 came late
        assert_eq!(t.duplicates, 1);
    }

    #[test]
    fn big_gap() {
        let mut t = SeqTracker::default();
        t.record(0);
        t.record(1_000_000);
        assert_eq!(t.lost, 999_999);
        t.record(999_999);
        assert_eq!(t.lost, 999_998);
        t.record(5);
        assert_eq!(t.too_old, 1);
    }
}
