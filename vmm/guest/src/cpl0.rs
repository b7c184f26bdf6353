//! The only code that runs at CPL0 (emulated instruction by instruction on
//! this machine's KVM, so it does the minimum): TSS with the I/O permission
//! bitmap, IDT of trap gates to CPL3 handlers, masking of both PICs, the
//! local APIC, then `iretq` to CPL3.

use crate::boot::{boot_gdt, boot_stack_top};
use crate::trap;
use core::arch::asm;
use core::ptr::{addr_of, addr_of_mut};
use guest::{apic, irq, port};

/// User code and data selectors (RPL 3).
const USER_CS: u64 = 0x33;
const USER_DS: u64 = 0x2b;
const TSS_SELECTOR: u16 = 0x40;
/// Present, DPL 3, 64-bit trap gate: reachable from CPL3, leaves IF set.
const TRAP_GATE_DPL3: u8 = 0xEF;
/// Stack size of the CPL3 code (interrupts nest on it too).
const USER_STACK_SIZE: usize = 256 * 1024;
/// Stack for the double-fault handler (IST1).
const IST_STACK_SIZE: usize = 16 * 1024;
const TSS_HEADER: usize = 104;
const IO_BITMAP_BYTES: usize = 8192;

#[repr(C, align(16))]
struct Tss([u8; TSS_HEADER + IO_BITMAP_BYTES + 1]);

/// The TSS: every field zero except the I/O bitmap offset (set at boot),
/// the stacks, and the byte after the bitmap, which must be all ones. A zero
/// bitmap allows every port at CPL3.
static mut TSS: Tss = {
    let mut bytes = [0u8; TSS_HEADER + IO_BITMAP_BYTES + 1];
    bytes[TSS_HEADER + IO_BITMAP_BYTES] = 0xFF;
    Tss(bytes)
};

#[repr(C, align(16))]
#[derive(Clone, Copy)]
struct IdtEntry([u64; 2]);

static mut IDT: [IdtEntry; 256] = [IdtEntry([0; 2]); 256];

#[repr(C, align(16))]
struct Stack<const N: usize>([u8; N]);

static mut USER_STACK: Stack<USER_STACK_SIZE> = Stack([0; USER_STACK_SIZE]);
static mut IST_STACK: Stack<IST_STACK_SIZE> = Stack([0; IST_STACK_SIZE]);

fn gate(handler: u64, ist: u8) -> IdtEntry {
    let low = (handler & 0xFFFF)
        | (USER_CS << 16)
        | ((ist as u64 & 7) << 32)
        | ((TRAP_GATE_DPL3 as u64) << 40)
        | ((handler >> 16) & 0xFFFF) << 48;
    IdtEntry([low, handler >> 32])
}

/// The 64-bit entry from the boot code: sets up the CPU and drops to CPL3.
#[no_mangle]
extern "C" fn cpl0_main(start_info: u64) -> ! {
    // SAFETY: single-threaded boot at CPL0 with interrupts off: nothing else
    // touches the TSS, GDT or IDT yet, and the stacks are unused.
    unsafe {
        let tss = addr_of_mut!(TSS) as *mut u8;
        let put64 = |off: usize, v: u64| (tss.add(off) as *mut u64).write_unaligned(v);
        put64(4, addr_of!(boot_stack_top) as u64); // RSP0 (unused: no gate targets CPL0)
        put64(36, addr_of!(IST_STACK) as u64 + IST_STACK_SIZE as u64); // IST1
        (tss.add(102) as *mut u16).write_unaligned(TSS_HEADER as u16);
        let base = tss as u64;
        let limit = (TSS_HEADER + IO_BITMAP_BYTES) as u64;
        let gdt = addr_of_mut!(boot_gdt) as *mut u64;
        gdt.add(8).write(
            (limit & 0xFFFF)
                | (base & 0xFF_FFFF) << 16
                | 0x89 << 40 // present, 64-bit TSS (available)
                | ((limit >> 16) & 0xF) << 48
                | ((base >> 24) & 0xFF) << 56,
        );
        gdt.add(9).write(base >> 32);
        asm!("ltr {0:x}", in(reg) TSS_SELECTOR, options(nostack));

        let idt = addr_of_mut!(IDT) as *mut IdtEntry;
        for (vector, &stub) in trap::exception_stubs().iter().enumerate() {
            let ist = if vector == 8 { 1 } else { 0 };
            idt.add(vector).write(gate(stub, ist));
        }
        idt.add(irq::VECTOR_NIC as usize)
            .write(gate(trap::nic_stub(), 0));
        idt.add(irq::VECTOR_TIMER as usize)
            .write(gate(trap::timer_stub(), 0));
        idt.add(irq::VECTOR_SPURIOUS as usize)
            .write(gate(trap::spurious_stub(), 0));
        let idtr: [u64; 2] = [(256 * 16 - 1) | (idt as u64) << 16, (idt as u64) >> 48];
        asm!("lidt [{0}]", in(reg) &idtr, options(nostack, readonly));

        // Both 8259s masked; the APIC enabled at its usual base.
        port::outb(0x21, 0xFF);
        port::outb(0xA1, 0xFF);
        let (lo, hi): (u32, u32);
        asm!("rdmsr", in("ecx") 0x1Bu32, out("eax") lo, out("edx") hi, options(nomem, nostack));
        let apic_base = (hi as u64) << 32 | lo as u64;
        if apic_base & !0xFFF != apic::LAPIC_BASE as u64 || apic_base & 0x800 == 0 {
            let value = apic::LAPIC_BASE as u64 | 0x900; // enabled, BSP
            asm!("wrmsr", in("ecx") 0x1Bu32, in("eax") value as u32, in("edx") (value >> 32) as u32, options(nomem, nostack));
        }
        apic::init_local(irq::VECTOR_SPURIOUS, irq::VECTOR_TIMER);

        // As if `user_main` had been called: RSP = 8 mod 16 at its entry.
        let user_stack_top = addr_of!(USER_STACK) as u64 + USER_STACK_SIZE as u64 - 8;
        asm!(
            "mov ds, {ds:x}",
            "mov es, {ds:x}",
            "push {ds}",
            "push {rsp}",
            "push {rflags}",
            "push {cs}",
            "push {rip}",
            "iretq",
            ds = in(reg) USER_DS,
            rsp = in(reg) user_stack_top,
            rflags = in(reg) 0x202u64,
            cs = in(reg) USER_CS,
            rip = in(reg) crate::user_main as extern "C" fn(u64) -> ! as usize as u64,
            in("rdi") start_info,
            options(noreturn)
        );
    }
}
