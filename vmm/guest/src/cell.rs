//! A static that hands out its `&'static mut` once: the guest's large buffers
//! (descriptor rings, packet buffers, statistics storage) live in `.bss` and
//! have exactly one owner after boot.

use core::cell::UnsafeCell;
use core::sync::atomic::{AtomicBool, Ordering};

/// A value in a static that can be taken (mutably borrowed for `'static`)
/// exactly once.
pub struct TakeOnce<T> {
    taken: AtomicBool,
    value: UnsafeCell<T>,
}

// SAFETY: the value is only reachable through `take`, which hands out at most
// one reference for the whole run, so no two contexts ever share it.
unsafe impl<T> Sync for TakeOnce<T> {}

impl<T> TakeOnce<T> {
    /// Wraps `value`.
    pub const fn new(value: T) -> TakeOnce<T> {
        TakeOnce {
            taken: AtomicBool::new(false),
            value: UnsafeCell::new(value),
        }
    }

    /// The value, the first time; `None` afterwards.
    // The `&mut` from `&self` is sound: `taken` makes it the only one ever.
    #[allow(clippy::mut_from_ref)]
    pub fn take(&'static self) -> Option<&'static mut T> {
        if self.taken.swap(true, Ordering::AcqRel) {
            return None;
        }
        // SAFETY: `taken` was false, so this is the only reference ever made.
        Some(unsafe { &mut *self.value.get() })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hands_out_once() {
        static CELL: TakeOnce<[u8; 4]> = TakeOnce::new([0; 4]);
        let first = CELL.take().unwrap();
        first[0] = 1;
        assert!(CELL.take().is_none());
    }
}
