//! Interrupt and exception entry stubs. Every IDT gate is a trap gate into
//! CPL3 code, so the CPU pushes its frame on the interrupted (CPL3) stack
//! and handlers can nest. A stub pushes the vector (and a 0 error code where
//! the CPU pushes none), saves the caller-saved registers and the SSE state
//! (Rust code uses SSE), aligns the stack and calls `guest_trap`.

use guest::irq::{self, TrapFrame};

core::arch::global_asm!(
    r#"
    .text
    .macro TRAP_NOERR n
    .globl trap_stub_\n
trap_stub_\n:
    push 0
    push \n
    jmp trap_common
    .endm

    .macro TRAP_ERR n
    .globl trap_stub_\n
trap_stub_\n:
    push \n
    jmp trap_common
    .endm

    TRAP_NOERR 0
    TRAP_NOERR 1
    TRAP_NOERR 2
    TRAP_NOERR 3
    TRAP_NOERR 4
    TRAP_NOERR 5
    TRAP_NOERR 6
    TRAP_NOERR 7
    TRAP_ERR 8
    TRAP_NOERR 9
    TRAP_ERR 10
    TRAP_ERR 11
    TRAP_ERR 12
    TRAP_ERR 13
    TRAP_ERR 14
    TRAP_NOERR 15
    TRAP_NOERR 16
    TRAP_ERR 17
    TRAP_NOERR 18
    TRAP_NOERR 19
    TRAP_NOERR 20
    TRAP_ERR 21
    TRAP_NOERR 22
    TRAP_NOERR 23
    TRAP_NOERR 24
    TRAP_NOERR 25
    TRAP_NOERR 26
    TRAP_NOERR 27
    TRAP_NOERR 28
    TRAP_ERR 29
    TRAP_ERR 30
    TRAP_NOERR 31
    TRAP_NOERR 48
    TRAP_NOERR 49
    TRAP_NOERR 255

trap_common:
    push rax
    push rcx
    push rdx
    push rsi
    push rdi
    push r8
    push r9
    push r10
    push r11
    push rbp
    mov rbp, rsp
    and rsp, -16
    sub rsp, 512
    fxsave64 [rsp]
    mov rdi, [rbp + 80]
    mov rsi, [rbp + 88]
    lea rdx, [rbp + 96]
    call guest_trap
    fxrstor64 [rsp]
    mov rsp, rbp
    pop rbp
    pop r11
    pop r10
    pop r9
    pop r8
    pop rdi
    pop rsi
    pop rdx
    pop rcx
    pop rax
    add rsp, 16
    iretq

    .section .rodata
    .balign 8
    .globl trap_exception_stubs
trap_exception_stubs:
    .irp n, 0,1,2,3,4,5,6,7,8,9,10,11,12,13,14,15,16,17,18,19,20,21,22,23,24,25,26,27,28,29,30,31
    .quad trap_stub_\n
    .endr
    "#
);

extern "C" {
    static trap_exception_stubs: [u64; 32];
    fn trap_stub_48();
    fn trap_stub_49();
    fn trap_stub_255();
}

const _: () =
    assert!(irq::VECTOR_NIC == 48 && irq::VECTOR_TIMER == 49 && irq::VECTOR_SPURIOUS == 255);

/// Entry points of the 32 exception vectors.
pub fn exception_stubs() -> [u64; 32] {
    // SAFETY: a read-only table of addresses laid out above.
    unsafe { trap_exception_stubs }
}

/// Entry point of the e1000 vector.
pub fn nic_stub() -> u64 {
    trap_stub_48 as unsafe extern "C" fn() as usize as u64
}

/// Entry point of the timer vector.
pub fn timer_stub() -> u64 {
    trap_stub_49 as unsafe extern "C" fn() as usize as u64
}

/// Entry point of the spurious vector.
pub fn spurious_stub() -> u64 {
    trap_stub_255 as unsafe extern "C" fn() as usize as u64
}

/// Called by `trap_common` with the vector, the error code and the frame.
#[no_mangle]
extern "C" fn guest_trap(vector: u64, error: u64, frame: *mut TrapFrame) {
    // SAFETY: `frame` points at the CPU-pushed frame on this stack, which
    // stays valid until the stub's `iretq`.
    irq::dispatch(vector, error, unsafe { &mut *frame });
}
