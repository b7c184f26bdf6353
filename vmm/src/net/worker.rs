//! The net worker's polling policy in CSB mode.
//!
//! The worker is the VMM's I/O thread: woken by a kick (the guest's TDT
//! write through the ioeventfd, the switch port's eventfd, or work the vCPU
//! thread handed over) it serves TX and RX in one loop:
//! 1. announce that it polls (host_need_txkick = 0: the guest stops kicking);
//! 2. process one bounded batch of TX (up to guest_tdt) and RX (from the
//!    port up to guest_rdt), publishing host_tdh/host_rdh, then release the
//!    device lock and `yield_now` (this machine's 2 cores are shared by the
//!    vCPUs, the workers and the switch; a halted CPU costs ~20 us to wake,
//!    so the worker gives the CPU away instead of spinning hard);
//! 3. after `spin` without work, set the need-kick flags (and arm the port's
//!    RX kick), full barrier, re-check guest_tdt/guest_rdt and the port: if
//!    something appeared, clear the flags and go on polling; else return, and
//!    the caller sleeps in epoll until the next kick.
//!
//! The device side of each step is behind [`Pollable`], so the policy is
//! tested here with a fake device.

use std::ops::ControlFlow;
use std::time::{Duration, Instant};

/// Default time the worker keeps polling after its last work.
///
/// Measured with the CSB test driver (a host thread playing the guest,
/// publishing guest_tdt every 32 frames, release build, this 2-core machine
/// shared with builds): the worker sleeps (and the guest must kick) whenever
/// the spin is shorter than the gap between two publishes. At 1 Mpps (a
/// publish every 32 us) kicks per packet were 0.029 / 0.015 / 0.0015 /
/// 0.0002 for spins of 0 / 25 / 50 / 100 us, with the worker's CPU use at
/// 25 / 60 / 90 / 85 %; at 200 kpps (160 us gaps) only 200 us helped (0.031
/// kicks per packet below that). 50 us covers a guest streaming at about
/// 1 Mpps and an interrupt round trip (~30 us here), and bounds the CPU burnt
/// (yielding) per idle period to 50 us; `--e1000 spin-us=N` trades CPU for
/// fewer kicks.
pub const DEFAULT_SPIN: Duration = Duration::from_micros(50);

/// How often a polling worker services its other event sources (stats
/// timer, stop request) with a non-blocking epoll.
pub const SERVICE_EVERY: Duration = Duration::from_millis(1);

/// What one poll round found.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Round {
    /// Descriptors or frames were moved.
    pub busy: bool,
    /// RX frames wait for the guest to return buffers.
    pub rx_waiting: bool,
}

/// The device as the polling loop sees it.
pub trait Pollable {
    /// The worker starts polling: clear the host need-kick flags and the
    /// port's kick requests.
    fn begin_polling(&self);
    /// One bounded batch of TX and RX; `None` when the device left CSB mode
    /// (the loop ends, the register-driven path takes over).
    fn poll(&self) -> Option<Round>;
    /// Set the need-kick flags, barrier, re-check. True: nothing pending,
    /// the caller may sleep until a kick. False: work appeared, the flags
    /// were cleared again.
    fn try_sleep(&self, rx_waiting: bool) -> bool;
}

/// Polls `device` until it has been idle for `spin` and agreed to sleep.
/// Every [`SERVICE_EVERY`] it calls `service` (non-blocking handling of the
/// caller's other events); `Break` from it ends the loop at once (stop).
pub fn poll_until_idle<P: Pollable + ?Sized>(
    device: &P,
    spin: Duration,
    mut service: impl FnMut() -> ControlFlow<()>,
) -> ControlFlow<()> {
    device.begin_polling();
    let start = Instant::now();
    let mut last_work = start;
    let mut last_service = start;
    loop {
        let Some(round) = device.poll() else {
            return ControlFlow::Continue(());
        };
        let now = Instant::now();
        if round.busy {
            last_work = now;
        } else if now.duration_since(last_work) >= spin {
            if device.try_sleep(round.rx_waiting) {
                return ControlFlow::Continue(());
            }
            last_work = now;
        }
        if now.duration_since(last_service) >= SERVICE_EVERY {
            last_service = now;
            service()?;
        }
        std::thread::yield_now();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::cell::{Cell, RefCell};

    /// A device with a script of rounds and sleep answers.
    #[derive(Default)]
    struct Script {
        rounds: RefCell<Vec<Option<Round>>>,
        sleep_answers: RefCell<Vec<bool>>,
        begun: Cell<u32>,
        polls: Cell<u32>,
        sleeps_asked: RefCell<Vec<bool>>,
    }

    impl Pollable for Script {
        fn begin_polling(&self) {
            self.begun.set(self.begun.get() + 1);
        }
        fn poll(&self) -> Option<Round> {
            self.polls.set(self.polls.get() + 1);
            let mut rounds = self.rounds.borrow_mut();
            if rounds.is_empty() {
                Some(Round::default())
            } else {
                rounds.remove(0)
            }
        }
        fn try_sleep(&self, rx_waiting: bool) -> bool {
            self.sleeps_asked.borrow_mut().push(rx_waiting);
            let mut answers = self.sleep_answers.borrow_mut();
            if answers.is_empty() {
                true
            } else {
                answers.remove(0)
            }
        }
    }

    #[test]
    fn sleeps_at_once_without_spin_and_rechecks_when_told() {
        let dev = Script::default();
        dev.rounds.borrow_mut().extend([
            Some(Round {
                busy: true,
                rx_waiting: false,
            }),
            Some(Round {
                busy: false,
                rx_waiting: true,
            }),
            Some(Round::default()),
        ]);
        // The first try finds work (the re-check after the barrier).
        dev.sleep_answers.borrow_mut().extend([false, true]);
        let flow = poll_until_idle(&dev, Duration::ZERO, || ControlFlow::Continue(()));
        assert_eq!(flow, ControlFlow::Continue(()));
        assert_eq!(dev.begun.get(), 1);
        assert_eq!(dev.polls.get(), 3);
        assert_eq!(*dev.sleeps_asked.borrow(), [true, false]);
    }

    #[test]
    fn spins_for_the_configured_time() {
        let dev = Script::default();
        let spin = Duration::from_millis(5);
        let start = Instant::now();
        let flow = poll_until_idle(&dev, spin, || ControlFlow::Continue(()));
        assert_eq!(flow, ControlFlow::Continue(()));
        assert!(start.elapsed() >= spin);
        assert!(dev.polls.get() > 1, "polled while spinning");
        assert_eq!(dev.sleeps_asked.borrow().len(), 1);
    }

    #[test]
    fn leaving_csb_mode_or_a_stop_ends_the_loop() {
        let dev = Script::default();
        dev.rounds.borrow_mut().push(None);
        let flow = poll_until_idle(&dev, Duration::from_secs(60), || ControlFlow::Continue(()));
        assert_eq!(flow, ControlFlow::Continue(()));
        assert!(dev.sleeps_asked.borrow().is_empty());

        let dev = Script::default();
        let start = Instant::now();
        let flow = poll_until_idle(&dev, Duration::from_secs(60), || ControlFlow::Break(()));
        assert_eq!(flow, ControlFlow::Break(()));
        assert!(start.elapsed() < Duration::from_secs(10));
    }
}
