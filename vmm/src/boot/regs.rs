//! The vCPU state at the PVH 32-bit entry: protected mode, paging off, flat
//! 32-bit segments, EBX = start_info, interrupts off, plus CPUID, FPU and the
//! local APIC base.

use kvm_bindings::{kvm_fpu, kvm_regs, kvm_segment, CpuId, KVM_MAX_CPUID_ENTRIES};
use kvm_ioctls::{Kvm, VcpuFd};

use super::pvh::{BootInfo, BOOT_CS, BOOT_DS, BOOT_TSS};

/// Local APIC base MSR value: 0xFEE00000, enabled (bit 11), bootstrap processor (bit 8).
pub const APIC_BASE_MSR: u64 = 0xFEE0_0900;
/// CR0 at entry: PE (protected mode) and ET; paging off.
const CR0_PE_ET: u64 = 0x11;

/// Errors from KVM while setting up the vCPU.
pub type RegsError = kvm_ioctls::Error;

fn flat_segment(selector: u16, type_: u8) -> kvm_segment {
    kvm_segment {
        base: 0,
        limit: 0xFFFF_FFFF,
        selector,
        type_,
        present: 1,
        dpl: 0,
        db: 1,
        s: 1,
        l: 0,
        g: 1,
        avl: 0,
        unusable: 0,
        padding: 0,
    }
}

/// Sets the special registers (segments, GDT, control registers, APIC base) for
/// the PVH entry.
pub fn setup_sregs(vcpu: &VcpuFd, boot: &BootInfo) -> Result<(), RegsError> {
    let mut sregs = vcpu.get_sregs()?;
    let code = flat_segment(BOOT_CS, 0xB);
    let data = flat_segment(BOOT_DS, 0x3);
    sregs.cs = code;
    sregs.ds = data;
    sregs.es = data;
    sregs.fs = data;
    sregs.gs = data;
    sregs.ss = data;
    sregs.tr = kvm_segment {
        base: 0,
        limit: 0x67,
        selector: BOOT_TSS,
        type_: 0xB,
        present: 1,
        dpl: 0,
        db: 0,
        s: 0,
        l: 0,
        g: 0,
        avl: 0,
        unusable: 0,
        padding: 0,
    };
    sregs.gdt.base = boot.gdt;
    sregs.gdt.limit = boot.gdt_limit;
    sregs.idt.base = 0;
    sregs.idt.limit = 0;
    sregs.cr0 = CR0_PE_ET;
    sregs.cr3 = 0;
    sregs.cr4 = 0;
    sregs.efer = 0;
    // KVM_SET_SREGS also writes the APIC base: keep the xAPIC enabled at its
    // architectural address.
    sregs.apic_base = APIC_BASE_MSR;
    vcpu.set_sregs(&sregs)
}

/// Sets the general registers: EIP = entry, EBX = start_info, EFLAGS = reserved bit only.
pub fn setup_regs(vcpu: &VcpuFd, entry: u32, boot: &BootInfo) -> Result<(), RegsError> {
    let regs = kvm_regs {
        rip: u64::from(entry),
        rbx: boot.start_info,
        rflags: 0x2,
        ..Default::default()
    };
    vcpu.set_regs(&regs)
}

/// Sets the x87/SSE control words to their reset values.
pub fn setup_fpu(vcpu: &VcpuFd) -> Result<(), RegsError> {
    let fpu = kvm_fpu {
        fcw: 0x37f,
        mxcsr: 0x1f80,
        ..Default::default()
    };
    vcpu.set_fpu(&fpu)
}

/// Gives the vCPU the CPUID KVM supports, with APIC id 0 and the hypervisor bit.
pub fn setup_cpuid(kvm: &Kvm, vcpu: &VcpuFd) -> Result<(), RegsError> {
    let mut cpuid: CpuId = kvm.get_supported_cpuid(KVM_MAX_CPUID_ENTRIES)?;
    for entry in cpuid.as_mut_slice() {
        if entry.function == 1 {
            // Initial APIC id (bits 31:24) 0, one logical processor.
            entry.ebx &= 0x0000_FFFF;
            entry.ebx |= 1 << 16;
            entry.ecx |= 1 << 31;
        }
    }
    vcpu.set_cpuid2(&cpuid)
}
