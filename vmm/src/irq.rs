//! Interrupt delivery for an emulated device's INTx line through the in-kernel
//! irqchip.
//!
//! The device model computes its interrupt *level*; an [`IrqLine`] turns it
//! into what the host's KVM can deliver:
//! - [`IrqMode::Edge`]: the GSI pulsed (KVM_IRQ_LINE 1 then 0) on each rising
//!   edge of the level, by the thread that raised it. On this machine's
//!   paravirtual KVM the hypervisor EOIs the local APIC at delivery, so this
//!   is the mode that gives exactly one interrupt per cause
//!   (docs/nested-kvm.md). Not an irqfd: KVM injects an irqfd write to an
//!   IOAPIC pin later, from a kernel worker, and here that was seen to come
//!   up to 700 ms late, so the one edge of a cause arrived long after the
//!   guest had gone idle waiting for it (and woke on its backstop timer).
//! - [`IrqMode::Level`]: an irqfd with a resample fd, true level semantics:
//!   KVM deasserts the line at the guest's EOI and signals the resample fd;
//!   the line is asserted again if the device level is still high. Correct on
//!   hosts with VT-x/AMD-V; duplicates interrupts here.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use kvm_ioctls::VmFd;
use thiserror::Error;
use vmm_sys_util::eventfd::{EventFd, EFD_NONBLOCK};

use crate::stats::Stats;

/// How the INTx level reaches the guest.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum IrqMode {
    /// The GSI pulsed (KVM_IRQ_LINE) on each rising edge (works on
    /// paravirtual KVM).
    #[default]
    Edge,
    /// An irqfd with resample: level-triggered INTx (needs VT-x/AMD-V hosts).
    Level,
}

/// Why the interrupt line could not be wired.
#[derive(Debug, Error)]
pub enum IrqError {
    /// eventfd creation failed.
    #[error("cannot create an eventfd")]
    EventFd(#[source] std::io::Error),
    /// KVM refused the irqfd (level mode).
    #[error("cannot register an irqfd on GSI {gsi}")]
    Register {
        /// The GSI.
        gsi: u32,
        /// KVM's error.
        #[source]
        source: kvm_ioctls::Error,
    },
}

/// One device interrupt line wired to a GSI of the in-kernel irqchip.
///
/// Shared between the device model (which sets the level, under the device
/// lock), the PCI function (INTx disable bit) and the I/O thread (resample).
pub struct IrqLine {
    mode: IrqMode,
    gsi: u32,
    /// The VM, for KVM_IRQ_LINE (edge mode).
    vm: Arc<VmFd>,
    /// The irqfd and its resample fd (level mode only).
    irqfd: Option<(EventFd, EventFd)>,
    /// The device's current level.
    level: AtomicBool,
    /// PCI command register bit 10: the function must not assert INTx.
    disabled: AtomicBool,
    stats: Arc<Stats>,
}

impl IrqLine {
    /// A line driving `gsi`; in level mode creates the irqfd and its
    /// resample fd and registers them with KVM.
    pub fn new(
        vm: &Arc<VmFd>,
        gsi: u32,
        mode: IrqMode,
        stats: Arc<Stats>,
    ) -> Result<IrqLine, IrqError> {
        let irqfd = match mode {
            IrqMode::Edge => None,
            IrqMode::Level => {
                let irqfd = EventFd::new(EFD_NONBLOCK).map_err(IrqError::EventFd)?;
                let resample = EventFd::new(EFD_NONBLOCK).map_err(IrqError::EventFd)?;
                vm.register_irqfd_with_resample(&irqfd, &resample, gsi)
                    .map_err(|source| IrqError::Register { gsi, source })?;
                Some((irqfd, resample))
            }
        };
        Ok(IrqLine {
            mode,
            gsi,
            vm: Arc::clone(vm),
            irqfd,
            level: AtomicBool::new(false),
            disabled: AtomicBool::new(false),
            stats,
        })
    }

    /// The delivery mode.
    pub fn mode(&self) -> IrqMode {
        self.mode
    }

    /// The GSI this line drives.
    pub fn gsi(&self) -> u32 {
        self.gsi
    }

    /// Sets the device's interrupt level; asserts the line on a rising edge.
    pub fn set_level(&self, level: bool) {
        let was = self.level.swap(level, Ordering::AcqRel);
        if level && !was && !self.disabled.load(Ordering::Acquire) {
            self.assert_line();
        }
    }

    /// The device's current level.
    pub fn level(&self) -> bool {
        self.level.load(Ordering::Acquire)
    }

    /// Applies the PCI INTx disable bit; re-enabling with the level high
    /// asserts the line.
    pub fn set_disabled(&self, disabled: bool) {
        let was = self.disabled.swap(disabled, Ordering::AcqRel);
        if was && !disabled && self.level() {
            self.assert_line();
        }
    }

    /// The resample eventfd (level mode only), for the I/O thread to watch.
    pub fn resample_fd(&self) -> Option<&EventFd> {
        self.irqfd.as_ref().map(|(_, resample)| resample)
    }

    /// Handles a resample notification: KVM deasserted the line at EOI;
    /// assert it again if the device still holds its level high.
    pub fn on_resample(&self) {
        if let Some((_, resample)) = &self.irqfd {
            // Non-blocking read: a spurious wake-up finds nothing to drain.
            let _ = resample.read();
            self.stats.irq.resamples.inc();
            if self.level() && !self.disabled.load(Ordering::Acquire) {
                self.assert_line();
            }
        }
    }

    fn assert_line(&self) {
        let injected = match &self.irqfd {
            // An eventfd write only fails if the counter would overflow,
            // which KVM's consumer prevents.
            Some((irqfd, _)) => irqfd.write(1).is_ok(),
            // An edge: the pin goes up and down again at once, injected
            // before the ioctl returns. Lowered even if raising failed, so
            // that the next edge is one.
            None => {
                let up = self.vm.set_irq_line(self.gsi, true).is_ok();
                let down = self.vm.set_irq_line(self.gsi, false).is_ok();
                up && down
            }
        };
        if injected {
            self.stats.irq.injected.inc();
        } else {
            self.stats.irq.failed.inc();
        }
    }
}
