//! Interrupts at CPL3: the vector dispatcher called by the boot code's trap
//! stubs, the hand-off that keeps the driver consistent when a handler
//! interrupts the packet loop (or another handler), and idling.
//!
//! Handlers run at CPL3 on the interrupted stack with interrupts enabled
//! (trap gates), so they nest. The driver is owned by whoever holds `OWNED`:
//! the packet loop (through [`with_driver`]) or the outermost handler. A
//! handler that finds it owned only reads ICR (which must happen at once: it
//! lowers the device's line) and leaves the causes in `DEFERRED`; the owner
//! handles them before it lets go. On one CPU with strictly nested
//! preemption this gives exclusive access without disabling interrupts
//! (which CPL3 cannot do here).

use crate::apic;
use crate::counters::COUNTERS;
use crate::driver::Driver;
use crate::irq_nesting::Nesting;
use crate::tsc;
use crate::wake_timer;
use core::cell::UnsafeCell;
use core::ptr::addr_of;
use core::sync::atomic::{AtomicBool, AtomicU32, AtomicUsize, Ordering::SeqCst};
use e1000_spec::regs::ICR;

/// The e1000's vector (IOAPIC pin from the PCI interrupt line).
pub const VECTOR_NIC: u8 = 0x30;
/// The LAPIC timer's vector (the one-shot wake-up of idle waits, see
/// `wake_timer`).
pub const VECTOR_TIMER: u8 = 0x31;
/// The LAPIC spurious vector.
pub const VECTOR_SPURIOUS: u8 = 0xFF;
/// How long an [`idle`] without a deadline lasts at most: its callers wait
/// for an interrupt they asked for and look again (TX watchdog, drains)
/// at least this often.
pub const IDLE_BACKSTOP_US: u64 = 10_000;
/// How long an [`idle_until`] lasts at most, whatever its deadline: a
/// backstop against a wake-up that never comes (once a second costs
/// nothing measurable).
pub const IDLE_MAX_MS: u64 = 1_000;

struct DriverSlot(UnsafeCell<Option<Driver>>);

// SAFETY: the driver is only reached by the holder of `OWNED` (see the
// module documentation).
unsafe impl Sync for DriverSlot {}

static DRIVER: DriverSlot = DriverSlot(UnsafeCell::new(None));
static OWNED: AtomicBool = AtomicBool::new(false);
static DEFERRED: AtomicU32 = AtomicU32::new(0);
static ICR_ADDR: AtomicUsize = AtomicUsize::new(0);
static GENERATION: AtomicU32 = AtomicU32::new(0);
/// The NIC vector's handlers running now (trap gates leave IF=1, so a new
/// interrupt can enter while one is being handled).
static NIC_NESTING: Nesting = Nesting::new();

/// Hands the driver over to the interrupt machinery. Call before routing
/// the device's interrupt, from the main loop.
pub fn install(driver: Driver) {
    assert!(
        !OWNED.swap(true, SeqCst),
        "install while the driver is in use"
    );
    ICR_ADDR.store(driver.nic.regs.base() + ICR as usize, SeqCst);
    // SAFETY: `OWNED` is held, so nothing else reaches the slot.
    unsafe { *DRIVER.0.get() = Some(driver) };
    OWNED.store(false, SeqCst);
}

/// Runs `f` with exclusive access to the driver (from the packet loop only,
/// never nested). Interrupts that arrive meanwhile are handled before this
/// returns.
pub fn with_driver<R>(f: impl FnOnce(&mut Driver) -> R) -> R {
    assert!(
        !OWNED.swap(true, SeqCst),
        "with_driver nested or called from a handler"
    );
    // SAFETY: `OWNED` is held: no handler touches the slot until released.
    let driver = unsafe { (*DRIVER.0.get()).as_mut().expect("driver installed") };
    let result = f(driver);
    release(driver);
    result
}

/// Handles deferred causes, then gives up ownership; loops if a handler
/// deferred more in between.
fn release(driver: &mut Driver) {
    loop {
        let icr = DEFERRED.swap(0, SeqCst);
        if icr != 0 {
            driver.on_interrupt(icr);
            continue;
        }
        OWNED.store(false, SeqCst);
        if DEFERRED.load(SeqCst) == 0 || OWNED.swap(true, SeqCst) {
            return;
        }
    }
}

/// The e1000 interrupt: read ICR, then handle it or defer it to the owner.
fn nic_interrupt() {
    let addr = ICR_ADDR.load(SeqCst);
    if addr == 0 {
        return;
    }
    COUNTERS.icr_reads.inc();
    COUNTERS.mmio_reads.inc();
    // SAFETY: the ICR register of the installed device's BAR0.
    let icr = unsafe { (addr as *const u32).read_volatile() };
    if icr == 0 {
        return;
    }
    if OWNED.swap(true, SeqCst) {
        COUNTERS.irqs_deferred.inc();
        DEFERRED.fetch_or(icr, SeqCst);
        return;
    }
    // SAFETY: `OWNED` is held (taken just above).
    let driver = unsafe { (*DRIVER.0.get()).as_mut().expect("driver installed") };
    driver.on_interrupt(icr);
    release(driver);
}

/// The interrupt frame the CPU pushed (64-bit mode, no privilege change).
#[repr(C)]
#[derive(Debug)]
pub struct TrapFrame {
    /// Interrupted instruction.
    pub rip: u64,
    /// Interrupted code segment.
    pub cs: u64,
    /// Interrupted flags.
    pub rflags: u64,
    /// Interrupted stack pointer.
    pub rsp: u64,
    /// Interrupted stack segment.
    pub ss: u64,
}

/// Called by the trap stubs for every vector (`error` is 0 for vectors
/// without an error code).
pub fn dispatch(vector: u64, error: u64, frame: &mut TrapFrame) {
    match vector as u8 {
        VECTOR_NIC => {
            COUNTERS.irqs.inc();
            GENERATION.fetch_add(1, SeqCst);
            skip_idle_if_pending(frame);
            // Only the outermost entry reads ICR and EOIs; a nested one asks
            // it to look again and makes no exit (see `irq_nesting`).
            if NIC_NESTING.enter(nic_interrupt, apic::eoi) {
                COUNTERS.irqs_nested.inc();
            }
        }
        VECTOR_TIMER => {
            COUNTERS.timer_irqs.inc();
            wake_timer::fired();
            GENERATION.fetch_add(1, SeqCst);
            skip_idle_if_pending(frame);
            apic::eoi();
        }
        VECTOR_SPURIOUS => COUNTERS.other_irqs.inc(),
        0..=31 => {
            crate::println!(
                "guest: CPU exception {} error {:#x} at rip {:#x} rsp {:#x}",
                vector,
                error,
                frame.rip,
                frame.rsp
            );
            crate::exit(crate::EXIT_CRASH);
        }
        _ => {
            COUNTERS.other_irqs.inc();
            apic::eoi();
        }
    }
}

core::arch::global_asm!(
    r#"
    .text
    .globl guest_idle
guest_idle:
    .globl guest_idle_check
guest_idle_check:
    cmp dword ptr [rsi], edi
    jne guest_idle_done
    mov dx, 0x502
    .globl guest_idle_out
guest_idle_out:
    out dx, al
    .globl guest_idle_done
guest_idle_done:
    ret
    "#
);

extern "C" {
    fn guest_idle(token: u32, generation: *const AtomicU32);
    static guest_idle_check: u8;
    static guest_idle_out: u8;
    static guest_idle_done: u8;
}

/// If the interrupted code is between the idle check and the idle-port
/// write, makes it skip the write: the interrupt it would wait for has just
/// happened. (CPL3 has no `sti; hlt`; this closes the same race.)
fn skip_idle_if_pending(frame: &mut TrapFrame) {
    let (check, out, done) = (
        addr_of!(guest_idle_check) as u64,
        addr_of!(guest_idle_out) as u64,
        addr_of!(guest_idle_done) as u64,
    );
    if (check..=out).contains(&frame.rip) {
        frame.rip = done;
    }
}

/// I/O port of the VMM's poll device: a write makes the VMM run one round
/// of the NIC's work in the vCPU thread and return at once (under QEMU it is
/// an unassigned port: only an exit).
pub const POLL_PORT: u16 = 0x503;

/// Asks the VMM to run the NIC's work now (one exit, no interrupt): the
/// cheap way for a CSB-mode driver that has nothing to do to let the device
/// fill its RX ring or drain its TX ring when the device's own worker is
/// asleep or cannot get a CPU.
pub fn poll_exit() {
    COUNTERS.poll_exits.inc();
    // SAFETY: the poll port has no effect on guest memory beyond what the
    // device does anyway (DMA into the rings the driver gave it).
    unsafe { crate::port::outb(POLL_PORT, 0) };
}

/// A token for [`idle`]: take it *before* checking for work.
#[inline]
pub fn idle_token() -> u32 {
    GENERATION.load(SeqCst)
}

/// Waits for the next interrupt, unless one arrived since `token` was taken;
/// at most [`IDLE_BACKSTOP_US`].
pub fn idle(token: u32) {
    idle_until(
        token,
        tsc::now().saturating_add(tsc::us_to_ticks(IDLE_BACKSTOP_US)),
    );
}

/// Waits for the next interrupt, unless one arrived since `token` was taken;
/// the LAPIC timer wakes it by the TSC value `wake` (at most [`IDLE_MAX_MS`]
/// from now). Take `token` before arming anything: a timer interrupt that
/// lands after it makes this return at once.
///
/// Our VMM halts the vCPU on the idle-port write until an interrupt. Under
/// QEMU the write is only an exit that returns at once, so waiting loops
/// spin through exits; that is still better than spinning natively there,
/// because every exit lets the host run QEMU's I/O thread (measured: ping
/// p50 120 us against ~1 ms).
pub fn idle_until(token: u32, wake: u64) {
    let latest = tsc::now().saturating_add(tsc::ms_to_ticks(IDLE_MAX_MS));
    wake_timer::wake_by(wake.min(latest));
    COUNTERS.idle_exits.inc();
    // SAFETY: `guest_idle` compares the generation with `token` and writes
    // the idle port; it touches no memory besides reading `GENERATION`.
    unsafe { guest_idle(token, &GENERATION) };
}
