//! The PVH entry: the ELF note that names the 32-bit entry point, the static
//! page tables and GDT, and the 32-bit code that switches to long mode and
//! calls [`crate::cpl0::cpl0_main`] with the `hvm_start_info` address.
//!
//! Everything here is data laid out by the assembler, so the (emulated, slow)
//! CPL0 code only loads registers:
//! - page tables: identity map of 0..4 GiB with 2 MiB pages, all with the
//!   user bit; 0..3 GiB (RAM) write-back, 3..4 GiB (the MMIO window: PCI
//!   BARs, IOAPIC, LAPIC) uncached (PCD|PWT);
//! - GDT: 0x10 kernel CS64, 0x18 kernel DS, 0x2b user DS, 0x33 user CS64,
//!   0x40 TSS (its descriptor is filled in by `cpl0_main`).

core::arch::global_asm!(
    r#"
    .section .note.Xen, "a", @note
    .balign 4
    .long 4                 /* name size: "Xen\0" */
    .long 8                 /* descriptor size */
    .long 18                /* XEN_ELFNOTE_PHYS32_ENTRY */
    .asciz "Xen"
    .balign 4
    .quad pvh_start32       /* QEMU reads 8 bytes for an ELF64 image */
    .balign 4

    .section .data.pagetables, "aw"
    .balign 4096
    .globl boot_pml4
boot_pml4:
    .quad boot_pdpt + 0x7
    .fill 511, 8, 0
boot_pdpt:
    .quad boot_pd + 0x0007
    .quad boot_pd + 0x1007
    .quad boot_pd + 0x2007
    .quad boot_pd + 0x3007
    .fill 508, 8, 0
boot_pd:
    .set page, 0
    .rept 1536
    .quad (page << 21) | 0x87   /* present, writable, user, 2 MiB */
    .set page, page + 1
    .endr
    .rept 512
    .quad (page << 21) | 0x9f   /* ... and PWT|PCD: uncached MMIO */
    .set page, page + 1
    .endr

    .section .data, "aw"
    .balign 16
    .globl boot_gdt
boot_gdt:
    .quad 0                     /* 0x00 null */
    .quad 0x00cf9a000000ffff    /* 0x08 kernel CS32 (unused) */
    .quad 0x00af9a000000ffff    /* 0x10 kernel CS64 */
    .quad 0x00cf92000000ffff    /* 0x18 kernel DS */
    .quad 0x00cffa000000ffff    /* 0x20 user CS32 (unused) */
    .quad 0x00cff2000000ffff    /* 0x28 user DS */
    .quad 0x00affa000000ffff    /* 0x30 user CS64 */
    .quad 0                     /* 0x38 */
    .quad 0, 0                  /* 0x40 TSS, filled in at boot */
boot_gdt_end:
boot_gdt_ptr:
    .word boot_gdt_end - boot_gdt - 1
    .long boot_gdt

    .section .text32, "ax"
    .code32
    .globl pvh_start32
pvh_start32:
    cli
    cld
    movl %ebx, %edi             /* hvm_start_info physical address */
    movl $boot_stack_top, %esp
    movl $0x620, %eax           /* CR4: PAE | OSFXSR | OSXMMEXCPT */
    movl %eax, %cr4
    movl $boot_pml4, %eax
    movl %eax, %cr3
    movl $0xC0000080, %ecx      /* EFER: LME | SCE */
    rdmsr
    orl $0x101, %eax
    wrmsr
    movl $0x80050033, %eax      /* CR0: PG AM WP NE ET MP PE */
    movl %eax, %cr0
    lgdt boot_gdt_ptr
    ljmp $0x10, $boot_long_mode

    .code64
boot_long_mode:
    movl $0x18, %eax
    movl %eax, %ds
    movl %eax, %es
    movl %eax, %ss
    xorl %eax, %eax
    movl %eax, %fs
    movl %eax, %gs
    movl %edi, %edi             /* zero-extend the start_info address */
    movabsq $boot_stack_top, %rsp
    call cpl0_main
1:  hlt
    jmp 1b
    "#,
    options(att_syntax)
);

/// Size of the CPL0 boot stack (also the TSS RSP0).
pub const BOOT_STACK_SIZE: usize = 16 * 1024;

core::arch::global_asm!(
    r#"
    .section .bss.boot_stack, "aw", @nobits
    .balign 16
    .globl boot_stack_bottom
boot_stack_bottom:
    .skip {size}
    .globl boot_stack_top
boot_stack_top:
    "#,
    size = const BOOT_STACK_SIZE,
    options(att_syntax)
);

extern "C" {
    /// The GDT laid out above (10 entries; 8 and 9 are the TSS descriptor).
    pub static mut boot_gdt: [u64; 10];
    /// Top of the CPL0 boot stack.
    pub static boot_stack_top: u8;
}
