//! What a `no_std` binary without libc must provide: the panic handler, the
//! memory functions the compiler calls, and an unwinding personality stub
//! (the prebuilt `core` refers to it; we abort instead of unwinding).

use core::arch::asm;
use core::panic::PanicInfo;

#[panic_handler]
fn panic(info: &PanicInfo) -> ! {
    guest::println!("guest: panic: {info}");
    guest::exit(guest::EXIT_CRASH)
}

#[no_mangle]
extern "C" fn rust_eh_personality() {}

/// Copies `n` bytes (`rep movsb`: fast on current CPUs, and never turned
/// back into a call to `memcpy` by the compiler).
///
/// # Safety
/// The C `memcpy` contract.
#[no_mangle]
pub unsafe extern "C" fn memcpy(dest: *mut u8, src: *const u8, n: usize) -> *mut u8 {
    // SAFETY: the caller's contract: both ranges valid, not overlapping.
    unsafe {
        asm!("rep movsb", inout("rcx") n => _, inout("rdi") dest => _, inout("rsi") src => _, options(nostack, preserves_flags))
    };
    dest
}

/// Copies `n` bytes between possibly overlapping ranges.
///
/// # Safety
/// The C `memmove` contract.
#[no_mangle]
pub unsafe extern "C" fn memmove(dest: *mut u8, src: *const u8, n: usize) -> *mut u8 {
    if (dest as usize).wrapping_sub(src as usize) >= n {
        // SAFETY: forward copy is safe when dest is not inside (src, src+n).
        unsafe { memcpy(dest, src, n) };
    } else {
        // SAFETY: backward copy with the direction flag set, cleared after.
        unsafe {
            asm!(
                "std",
                "rep movsb",
                "cld",
                inout("rcx") n => _,
                inout("rdi") dest.add(n).wrapping_sub(1) => _,
                inout("rsi") src.add(n).wrapping_sub(1) => _,
                options(nostack)
            )
        };
    }
    dest
}

/// Fills `n` bytes with `c`.
///
/// # Safety
/// The C `memset` contract.
#[no_mangle]
pub unsafe extern "C" fn memset(dest: *mut u8, c: i32, n: usize) -> *mut u8 {
    // SAFETY: the caller's contract: the range is valid.
    unsafe {
        asm!("rep stosb", inout("rcx") n => _, inout("rdi") dest => _, in("al") c as u8, options(nostack, preserves_flags))
    };
    dest
}

/// Compares `n` bytes.
///
/// # Safety
/// The C `memcmp` contract.
#[no_mangle]
pub unsafe extern "C" fn memcmp(a: *const u8, b: *const u8, n: usize) -> i32 {
    for i in 0..n {
        // SAFETY: the caller's contract: both ranges valid for `n` bytes.
        let (x, y) = unsafe { (a.add(i).read_volatile(), b.add(i).read_volatile()) };
        if x != y {
            return x as i32 - y as i32;
        }
    }
    0
}

/// Compares `n` bytes for equality.
///
/// # Safety
/// The C `bcmp` contract.
#[no_mangle]
pub unsafe extern "C" fn bcmp(a: *const u8, b: *const u8, n: usize) -> i32 {
    // SAFETY: same contract.
    unsafe { memcmp(a, b, n) }
}
