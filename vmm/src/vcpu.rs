//! The vCPU loop: enter the guest, dispatch its port I/O and MMIO exits to the
//! platform, halt it when it says it is idle, and end the VM on the exit port
//! or on a fatal exit (triple fault, internal error, failed entry).

use std::time::{Duration, Instant};

use kvm_bindings::{kvm_mp_state, KVM_MP_STATE_HALTED};
use kvm_ioctls::{VcpuExit, VcpuFd};

use crate::platform::{IoAction, Platform};
use crate::stats::Stats;
use crate::stop_signal;

/// How the guest's run ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum VmEnd {
    /// The guest wrote this code to the exit port.
    Exit(u8),
    /// The guest powered itself off (a shutdown system event).
    PowerOff,
    /// The VM cannot go on; the message says why.
    Crash(String),
    /// The VMM was asked to stop by this signal (SIGINT, SIGTERM).
    Stopped(i32),
}

/// A port access that still needs its size and repeat count from `kvm_run`.
enum PendingPio {
    In(u16, *mut u8, usize),
    Out(u16, *const u8, usize),
}

/// Default for `--halt-poll-us`.
pub const DEFAULT_HALT_POLL_US: u64 = 200;

/// Runs the vCPU until the guest exits or crashes. An idle guest (idle port)
/// is sent back in, yielding the host CPU between turns, for `halt_poll`
/// after its first idle exit in a row; only then is the vCPU halted until an
/// interrupt.
pub fn run(
    vcpu: &mut VcpuFd,
    platform: &mut Platform,
    stats: &Stats,
    halt_poll: Duration,
) -> VmEnd {
    stop_signal::set_immediate_exit_flag(&mut vcpu.get_kvm_run().immediate_exit);
    let end = run_loop(vcpu, platform, stats, halt_poll);
    stop_signal::set_immediate_exit_flag(std::ptr::null_mut());
    end
}

fn run_loop(
    vcpu: &mut VcpuFd,
    platform: &mut Platform,
    stats: &Stats,
    halt_poll: Duration,
) -> VmEnd {
    let mut idle_since: Option<Instant> = None;
    loop {
        if let Some(signo) = stop_signal::requested() {
            return VmEnd::Stopped(signo);
        }
        let mut pending = None;
        let mut action = IoAction::Continue;
        match vcpu.run() {
            Ok(VcpuExit::IoOut(port, data)) => {
                pending = Some(PendingPio::Out(port, data.as_ptr(), data.len()))
            }
            Ok(VcpuExit::IoIn(port, data)) => {
                pending = Some(PendingPio::In(port, data.as_mut_ptr(), data.len()))
            }
            Ok(VcpuExit::MmioRead(addr, data)) => platform.mmio_read(addr, data),
            Ok(VcpuExit::MmioWrite(addr, data)) => platform.mmio_write(addr, data),
            Ok(VcpuExit::Hlt) => {
                // The in-kernel irqchip handles HLT; if it ever exits, treat it as idle.
                count_other(stats, "hlt");
                action = IoAction::Idle;
            }
            Ok(VcpuExit::Intr) => count_other(stats, "intr"),
            Ok(VcpuExit::IrqWindowOpen) => count_other(stats, "irq_window"),
            Ok(VcpuExit::Shutdown) => {
                count_other(stats, "shutdown");
                return VmEnd::Crash(format!(
                    "guest shut down (triple fault) at {}",
                    where_is(vcpu)
                ));
            }
            Ok(VcpuExit::InternalError) => {
                count_other(stats, "internal_error");
                // SAFETY: the exit reason is KVM_EXIT_INTERNAL_ERROR, so the
                // `internal` member of the union is the one KVM filled.
                let suberror = unsafe { vcpu.get_kvm_run().__bindgen_anon_1.internal.suberror };
                return VmEnd::Crash(format!(
                    "KVM internal error (suberror {suberror}) at {}",
                    where_is(vcpu)
                ));
            }
            Ok(VcpuExit::FailEntry(reason, cpu)) => {
                count_other(stats, "fail_entry");
                return VmEnd::Crash(format!(
                    "KVM could not enter the guest (hardware reason {reason:#x}, cpu {cpu})"
                ));
            }
            Ok(VcpuExit::SystemEvent(kind, _)) => {
                count_other(stats, "system_event");
                return match kind {
                    kvm_bindings::KVM_SYSTEM_EVENT_SHUTDOWN => VmEnd::PowerOff,
                    kvm_bindings::KVM_SYSTEM_EVENT_RESET => {
                        VmEnd::Crash("guest asked for a reset".to_string())
                    }
                    other => VmEnd::Crash(format!("guest system event {other}")),
                };
            }
            Ok(other) => {
                let what = format!("{other:?}");
                count_other(stats, "unexpected");
                return VmEnd::Crash(format!("unexpected VM exit {what} at {}", where_is(vcpu)));
            }
            Err(e) if e.errno() == libc::EINTR || e.errno() == libc::EAGAIN => {
                count_other(stats, "intr");
            }
            Err(e) => return VmEnd::Crash(format!("KVM_RUN failed: {e}")),
        }
        if let Some(pio) = pending {
            action = dispatch_pio(vcpu, platform, pio);
        }
        match action {
            IoAction::Continue => idle_since = None,
            IoAction::Poll => {
                idle_since = None;
                if !platform.poll_devices() {
                    // Nothing moved: let the threads that feed the rings
                    // (net worker, switch) have the CPU before going back.
                    std::thread::yield_now();
                }
            }
            IoAction::Exit(code) => return VmEnd::Exit(code),
            IoAction::Idle => {
                let since = *idle_since.get_or_insert_with(Instant::now);
                if since.elapsed() < halt_poll {
                    count_other(stats, "idle_poll");
                    std::thread::yield_now();
                    continue;
                }
                idle_since = None;
                let halted = kvm_mp_state {
                    mp_state: KVM_MP_STATE_HALTED,
                };
                if let Err(e) = vcpu.set_mp_state(halted) {
                    return VmEnd::Crash(format!("cannot halt the vCPU: {e}"));
                }
            }
        }
    }
}

/// Splits a (possibly repeated, `rep ins/outs`) port access into accesses of
/// the size the instruction used, and dispatches each.
fn dispatch_pio(vcpu: &mut VcpuFd, platform: &mut Platform, pio: PendingPio) -> IoAction {
    // SAFETY: the last exit was KVM_EXIT_IO, so the `io` member of the union is valid.
    let io = unsafe { vcpu.get_kvm_run().__bindgen_anon_1.io };
    let size = usize::from(io.size).max(1);
    let mut action = IoAction::Continue;
    match pio {
        PendingPio::Out(port, ptr, len) => {
            // SAFETY: `ptr..ptr+len` is the data area KVM described in the
            // kvm_run page mapped by `vcpu`; nothing else accesses it until the
            // next KVM_RUN, which happens after this function returns.
            let data = unsafe { std::slice::from_raw_parts(ptr, len) };
            for chunk in data.chunks(size) {
                match platform.pio_write(port, chunk) {
                    IoAction::Continue => {}
                    other => action = other,
                }
            }
        }
        PendingPio::In(port, ptr, len) => {
            // SAFETY: as above; KVM reads the data back at the next KVM_RUN.
            let data = unsafe { std::slice::from_raw_parts_mut(ptr, len) };
            for chunk in data.chunks_mut(size) {
                platform.pio_read(port, chunk);
            }
        }
    }
    action
}

fn count_other(stats: &Stats, reason: &'static str) {
    stats.with_exits(|e| {
        e.total += 1;
        *e.other.entry(reason).or_default() += 1;
    });
}

/// The guest's instruction pointer and mode, for crash messages.
fn where_is(vcpu: &VcpuFd) -> String {
    match (vcpu.get_regs(), vcpu.get_sregs()) {
        (Ok(regs), Ok(sregs)) => format!(
            "rip {:#x} (cs {:#x}, cr0 {:#x}, cr3 {:#x}, cr4 {:#x}, efer {:#x})",
            regs.rip, sregs.cs.selector, sregs.cr0, sregs.cr3, sregs.cr4, sregs.efer
        ),
        _ => "an unknown address".to_string(),
    }
}
