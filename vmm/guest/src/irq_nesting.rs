//! Bounded nesting of one interrupt vector's handler.
//!
//! Handlers run at CPL3 with interrupts enabled (trap gates; CPL3 cannot
//! `cli`), and this machine's hypervisor EOIs the local APIC when it
//! delivers an interrupt (docs/nested-kvm.md), so the in-service bit that
//! would hold back a second interrupt of the same vector is clear while the
//! handler runs. Every exit the handler makes (ICR read, driver register
//! accesses, its own EOI write) is then a point where the next interrupt is
//! injected. With a level-triggered line (`vmm --irq level`) one is nearly
//! always pending: KVM's resample fires at that early EOI and the VMM
//! asserts the line again as long as the device's cause is not read.
//!
//! [`Nesting`] keeps this from growing the stack: only the outermost entry
//! does the work and the EOI, and it still counts as running during its EOI
//! write; an entry that finds it running only asks it to look again and
//! returns without a single exit, so nothing can be injected on top of it.
//! Each entry's frame (CPU frame, saved registers, 512 bytes of SSE state)
//! is then pushed at most twice. On a local APIC that keeps the vector in
//! service until the EOI, nested entries never happen.

use core::sync::atomic::{AtomicBool, AtomicU32, Ordering::SeqCst};

/// The nesting state of one vector's handler.
pub struct Nesting {
    /// Entries running now (outermost included).
    depth: AtomicU32,
    /// A nested entry arrived: the outermost one does its work again.
    again: AtomicBool,
}

impl Nesting {
    /// No entry running.
    pub const fn new() -> Nesting {
        Nesting {
            depth: AtomicU32::new(0),
            again: AtomicBool::new(false),
        }
    }

    /// One entry of the vector: the outermost entry runs `work` until no
    /// nested entry asked for more, and `eoi` once, before it stops counting
    /// as running; a nested entry calls neither. Returns whether this entry
    /// was nested.
    pub fn enter(&self, mut work: impl FnMut(), mut eoi: impl FnMut()) -> bool {
        if self.depth.fetch_add(1, SeqCst) > 0 {
            self.again.store(true, SeqCst);
            self.depth.fetch_sub(1, SeqCst);
            return true;
        }
        let mut eoi_done = false;
        loop {
            work();
            if self.again.swap(false, SeqCst) {
                continue;
            }
            if !eoi_done {
                eoi_done = true;
                eoi();
            }
            self.depth.fetch_sub(1, SeqCst);
            // An entry nested after the last look (during the EOI write)
            // asked for another one. (An entry after the release is an
            // outermost one and has looked itself.)
            if !self.again.swap(false, SeqCst) {
                return false;
            }
            self.depth.fetch_add(1, SeqCst);
        }
    }
}

impl Default for Nesting {
    fn default() -> Nesting {
        Nesting::new()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::cell::Cell;

    /// A vCPU whose exits inject interrupts: `inject_at_work` /
    /// `inject_at_eoi` say whether the exit of the handler's work (its ICR
    /// read) and of its EOI write deliver the next of `pending` interrupts.
    struct Sim {
        nesting: Nesting,
        pending: Cell<u32>,
        inject_at_work: bool,
        inject_at_eoi: bool,
        depth: Cell<u32>,
        max_depth: Cell<u32>,
        works: Cell<u32>,
        eois: Cell<u32>,
        nested: Cell<u32>,
    }

    impl Sim {
        fn new(pending: u32, inject_at_work: bool, inject_at_eoi: bool) -> Sim {
            Sim {
                nesting: Nesting::new(),
                pending: Cell::new(pending),
                inject_at_work,
                inject_at_eoi,
                depth: Cell::new(0),
                max_depth: Cell::new(0),
                works: Cell::new(0),
                eois: Cell::new(0),
                nested: Cell::new(0),
            }
        }

        fn exit(&self, inject: bool) {
            if inject && self.pending.get() > 0 {
                self.pending.set(self.pending.get() - 1);
                self.interrupt();
            }
        }

        fn interrupt(&self) {
            self.depth.set(self.depth.get() + 1);
            self.max_depth
                .set(self.max_depth.get().max(self.depth.get()));
            let nested = self.nesting.enter(
                || {
                    self.works.set(self.works.get() + 1);
                    self.exit(self.inject_at_work);
                },
                || {
                    self.eois.set(self.eois.get() + 1);
                    self.exit(self.inject_at_eoi);
                },
            );
            if nested {
                self.nested.set(self.nested.get() + 1);
            }
            self.depth.set(self.depth.get() - 1);
        }
    }

    #[test]
    fn an_interrupt_at_every_exit_nests_one_level_deep() {
        let sim = Sim::new(10_000, true, true);
        sim.interrupt();
        assert_eq!(sim.pending.get(), 0);
        assert_eq!(sim.max_depth.get(), 2);
        assert_eq!(sim.nested.get(), 10_000);
        assert_eq!(sim.eois.get(), 1);
        // Each nested entry made the outermost look again.
        assert_eq!(sim.works.get(), 10_001);
        assert_eq!(sim.depth.get(), 0);
    }

    #[test]
    fn an_interrupt_during_the_eoi_makes_the_outermost_look_again() {
        let sim = Sim::new(1, false, true);
        sim.interrupt();
        assert_eq!((sim.works.get(), sim.eois.get()), (2, 1));
        assert_eq!((sim.max_depth.get(), sim.nested.get()), (2, 1));
        // The state is released: the next interrupt is an outermost one.
        sim.pending.set(0);
        sim.interrupt();
        assert_eq!((sim.works.get(), sim.eois.get()), (3, 2));
        assert_eq!(sim.nested.get(), 1);
    }

    #[test]
    fn a_lone_interrupt_works_once_and_eois_once() {
        let sim = Sim::new(0, true, true);
        sim.interrupt();
        assert_eq!(
            (sim.works.get(), sim.eois.get(), sim.nested.get()),
            (1, 1, 0)
        );
    }
}
