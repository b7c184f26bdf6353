//! Receive-side accounting by sequence number, and latency percentiles.

/// What one received sequence number turned out to be.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SeqEvent {
    /// Higher than every earlier one (possibly after a gap).
    InOrder,
    /// Lower than the highest seen, and new: arrived out of order.
    Reordered,
    /// Seen before.
    Duplicate,
    /// So far below the highest that the window no longer covers it.
    TooOld,
}

/// Tracks a stream of sequence numbers with a sliding bitmap window of the
/// most recent `64 * bits.len()` numbers: counts unique, duplicate,
/// reordered and too-old arrivals, and from them the losses.
pub struct SeqTracker<'a> {
    bits: &'a mut [u64],
    window: u64,
    highest: Option<u64>,
    lowest: u64,
    /// Distinct sequence numbers received.
    pub unique: u64,
    /// Arrivals of a sequence number already received.
    pub duplicates: u64,
    /// Arrivals below the highest sequence number already received.
    pub reordered: u64,
    /// Arrivals too far behind to tell duplicates from reordering.
    pub too_old: u64,
}

impl<'a> SeqTracker<'a> {
    /// A tracker using `bits` (a power-of-two number of words) as its window.
    pub fn new(bits: &'a mut [u64]) -> SeqTracker<'a> {
        assert!(bits.len().is_power_of_two());
        bits.fill(0);
        let window = bits.len() as u64 * 64;
        SeqTracker {
            bits,
            window,
            highest: None,
            lowest: 0,
            unique: 0,
            duplicates: 0,
            reordered: 0,
            too_old: 0,
        }
    }

    fn bit(&self, seq: u64) -> (usize, u64) {
        let index = seq % self.window;
        ((index / 64) as usize, 1u64 << (index % 64))
    }

    fn test_and_set(&mut self, seq: u64) -> bool {
        let (word, mask) = self.bit(seq);
        let was = self.bits[word] & mask != 0;
        self.bits[word] |= mask;
        was
    }

    fn clear(&mut self, seq: u64) {
        let (word, mask) = self.bit(seq);
        self.bits[word] &= !mask;
    }

    /// Accounts for one received sequence number.
    pub fn record(&mut self, seq: u64) -> SeqEvent {
        match self.highest {
            None => {
                self.test_and_set(seq);
                self.highest = Some(seq);
                self.lowest = seq;
                self.unique = 1;
                SeqEvent::InOrder
            }
            Some(high) if seq > high => {
                if seq - high >= self.window {
                    self.bits.fill(0);
                } else {
                    for s in high + 1..seq {
                        self.clear(s);
                    }
                    self.clear(seq);
                }
                self.test_and_set(seq);
                self.highest = Some(seq);
                self.unique += 1;
                SeqEvent::InOrder
            }
            Some(high) => {
                if high - seq >= self.window {
                    self.too_old += 1;
                    return SeqEvent::TooOld;
                }
                if self.test_and_set(seq) {
                    self.duplicates += 1;
                    return SeqEvent::Duplicate;
                }
                self.unique += 1;
                self.reordered += 1;
                self.lowest = self.lowest.min(seq);
                SeqEvent::Reordered
            }
        }
    }

    /// The highest sequence number received.
    pub fn highest(&self) -> Option<u64> {
        self.highest
    }

    /// How many frames should have arrived: the span from the lowest to the
    /// highest number received, or `count` if larger (a stream that starts
    /// at 0 and has `count` frames).
    pub fn expected(&self, count: Option<u64>) -> u64 {
        let span = self.highest.map_or(0, |high| high - self.lowest + 1);
        span.max(count.unwrap_or(0))
    }

    /// Frames that never arrived.
    pub fn lost(&self, count: Option<u64>) -> u64 {
        self.expected(count).saturating_sub(self.unique)
    }
}

/// Minimum, median, 99th percentile and maximum of a sample.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Percentiles {
    /// Smallest sample.
    pub min: u32,
    /// 50th percentile (nearest rank).
    pub p50: u32,
    /// 99th percentile (nearest rank).
    pub p99: u32,
    /// Largest sample.
    pub max: u32,
}

/// Sorts `samples` and returns its percentiles (`None` if empty).
pub fn percentiles(samples: &mut [u32]) -> Option<Percentiles> {
    if samples.is_empty() {
        return None;
    }
    samples.sort_unstable();
    let rank = |p: usize| {
        let n = samples.len();
        samples[(p * n).div_ceil(100).clamp(1, n) - 1]
    };
    Some(Percentiles {
        min: samples[0],
        p50: rank(50),
        p99: rank(99),
        max: samples[samples.len() - 1],
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn in_order_stream() {
        let mut bits = [0u64; 4];
        let mut t = SeqTracker::new(&mut bits);
        for s in 0..1000 {
            assert_eq!(t.record(s), SeqEvent::InOrder);
        }
        assert_eq!(t.unique, 1000);
        assert_eq!(t.lost(Some(1000)), 0);
        assert_eq!(t.lost(None), 0);
    }

    #[test]
    fn loss_reorder_duplicate() {
        let mut bits = [0u64; 4];
        let mut t = SeqTracker::new(&mut bits);
        for s in [0, 1, 3, 2, 2, 5, 6] {
            t.record(s);
        }
        assert_eq!(t.unique, 6);
        assert_eq!(t.reordered, 1);
        assert_eq!(t.duplicates, 1);
        assert_eq!(t.lost(None), 1); // 4
        assert_eq!(t.lost(Some(10)), 4); // 4, 7, 8, 9
    }

    #[test]
    fn head_loss_counts_with_count() {
        let mut bits = [0u64; 4];
        let mut t = SeqTracker::new(&mut bits);
        for s in 5..10 {
            t.record(s);
        }
        assert_eq!(t.lost(None), 0);
        assert_eq!(t.lost(Some(10)), 5);
    }

    #[test]
    fn window_slides() {
        let mut bits = [0u64; 1]; // 64 numbers
        let mut t = SeqTracker::new(&mut bits);
        t.record(0);
        t.record(100);
        assert_eq!(t.record(0), SeqEvent::TooOld);
        assert_eq!(t.record(99), SeqEvent::Reordered);
        assert_eq!(t.record(99), SeqEvent::Duplicate);
        t.record(1000);
        assert_eq!(t.record(990), SeqEvent::Reordered);
        assert_eq!(t.record(1000), SeqEvent::Duplicate);
        // Bits of numbers the window left behind are cleared when it moves.
        t.record(1064);
        assert_eq!(t.record(1063), SeqEvent::Reordered);
    }

    #[test]
    fn percentile_ranks() {
        let mut s: Vec<u32> = (1..=100).rev().collect();
        let p = percentiles(&mut s).unwrap();
        assert_eq!(
            p,
            Percentiles {
                min: 1,
                p50: 50,
                p99: 99,
                max: 100
            }
        );
        let mut one = [7u32];
        let p = percentiles(&mut one).unwrap();
        assert_eq!((p.min, p.p50, p.p99, p.max), (7, 7, 7, 7));
        assert!(percentiles(&mut []).is_none());
    }
}
