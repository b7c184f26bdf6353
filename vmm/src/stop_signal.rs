//! Stopping the VM on SIGINT/SIGTERM: the handler records the signal and sets
//! `kvm_run.immediate_exit` of the vCPU, so that KVM_RUN returns at once even
//! if the signal arrived just before the vCPU entered the guest (or while it
//! is halted). The signals are blocked in every other thread, so they reach
//! the vCPU thread and interrupt KVM_RUN.

use std::sync::atomic::{AtomicI32, AtomicPtr, Ordering};

/// The signal that asked to stop, or 0.
static STOP_SIGNAL: AtomicI32 = AtomicI32::new(0);
/// `&kvm_run.immediate_exit` of the vCPU, or null.
static IMMEDIATE_EXIT: AtomicPtr<u8> = AtomicPtr::new(std::ptr::null_mut());

extern "C" fn on_signal(signo: libc::c_int) {
    STOP_SIGNAL.store(signo, Ordering::SeqCst);
    let flag = IMMEDIATE_EXIT.load(Ordering::SeqCst);
    if !flag.is_null() {
        // SAFETY: the pointer is the vCPU's kvm_run mapping, registered by
        // `set_immediate_exit_flag` and cleared before the mapping goes away;
        // a byte store is async-signal-safe.
        unsafe { std::ptr::write_volatile(flag, 1) };
    }
}

fn signal_set() -> libc::sigset_t {
    // SAFETY: sigemptyset/sigaddset initialise the set we own.
    unsafe {
        let mut set: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut set);
        libc::sigaddset(&mut set, libc::SIGINT);
        libc::sigaddset(&mut set, libc::SIGTERM);
        set
    }
}

/// Installs the handler for SIGINT and SIGTERM (without SA_RESTART).
pub fn install() -> std::io::Result<()> {
    for signo in [libc::SIGINT, libc::SIGTERM] {
        // SAFETY: a zeroed sigaction with our handler and an empty mask is
        // valid; the handler only touches atomics and one byte.
        let r = unsafe {
            let mut action: libc::sigaction = std::mem::zeroed();
            action.sa_sigaction = on_signal as *const () as libc::sighandler_t;
            libc::sigemptyset(&mut action.sa_mask);
            libc::sigaction(signo, &action, std::ptr::null_mut())
        };
        if r != 0 {
            return Err(std::io::Error::last_os_error());
        }
    }
    Ok(())
}

/// Blocks (`true`) or unblocks SIGINT and SIGTERM in the calling thread;
/// threads spawned meanwhile inherit the blocked mask.
pub fn block_in_this_thread(block: bool) {
    let set = signal_set();
    let how = if block {
        libc::SIG_BLOCK
    } else {
        libc::SIG_UNBLOCK
    };
    // SAFETY: a valid set; the old mask is not needed.
    unsafe { libc::pthread_sigmask(how, &set, std::ptr::null_mut()) };
}

/// Registers (or, with null, clears) the vCPU's `immediate_exit` byte.
pub fn set_immediate_exit_flag(flag: *mut u8) {
    IMMEDIATE_EXIT.store(flag, Ordering::SeqCst);
}

/// The signal that asked the VM to stop, if any.
pub fn requested() -> Option<i32> {
    match STOP_SIGNAL.load(Ordering::SeqCst) {
        0 => None,
        signo => Some(signo),
    }
}
