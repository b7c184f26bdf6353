//! Building and running one VM: KVM VM and vCPU, guest RAM, the in-kernel
//! irqchip, the PVH-loaded image, the platform devices, the e1000 with its
//! backend and the I/O thread.

use std::io::Write;
use std::net::SocketAddr;
use std::os::fd::AsRawFd;
use std::path::PathBuf;
use std::sync::Arc;

use kvm_bindings::kvm_userspace_memory_region;
use kvm_ioctls::{Kvm, VcpuFd, VmFd};
use thiserror::Error;

use crate::boot;
use crate::devices::serial::SerialPort;
use crate::io_thread::{extra_stats, IoSources, IoThread};
use crate::irq::{IrqLine, IrqMode};
use crate::memory::{GuestRam, MemoryError};
use crate::metrics::endpoint::{MetricsEndpoint, MetricsListener};
use crate::net::backend::BackendSpec;
use crate::net::link::{LinkTarget, LinkWatch};
use crate::net::{NetConfig, NetDevice, NetError};
use crate::platform::Platform;
use crate::sandbox::{self, FilterContext, SandboxConfig, SandboxError, ThreadKind};
use crate::stats::Stats;
use crate::stats_file::StatsFile;
use crate::stop_signal;
use crate::vcpu::{self, VmEnd};

/// Exit status of the VMM when the guest crashed (triple fault, KVM error).
pub const EXIT_CODE_CRASH: i32 = 125;
/// Exit status of the VMM when the VM could not be set up.
pub const EXIT_CODE_SETUP: i32 = 124;
/// Where the I/O APIC and LAPIC routes e1000 INTx (pin A): GSI 11.
pub const E1000_GSI: u32 = 11;

/// Where the serial console's output goes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SerialTarget {
    /// The VMM's standard output.
    Stdout,
    /// A file, created or truncated.
    File(PathBuf),
}

/// Everything needed to build a VM.
#[derive(Clone, Debug)]
pub struct VmConfig {
    /// The PVH ELF image.
    pub kernel: PathBuf,
    /// Guest RAM in MiB.
    pub mem_mib: u64,
    /// Guest arguments (the PVH command line, `tsc_khz=` appended if absent).
    pub guest_args: Vec<String>,
    /// Serial console output.
    pub serial: SerialTarget,
    /// How the e1000 INTx reaches the guest.
    pub irq_mode: IrqMode,
    /// Where to write the counters as JSON (every second and at exit).
    pub stats_json: Option<PathBuf>,
    /// The e1000 NIC, if any.
    pub net: Option<NetConfig>,
    /// How long an idle vCPU keeps returning to the guest (yielding the
    /// host CPU in between) before it halts; see [`crate::vcpu`].
    pub halt_poll: std::time::Duration,
    /// The seccomp filters and the user to become before the guest runs.
    pub sandbox: SandboxConfig,
    /// Where to serve Prometheus metrics (`--metrics-listen`), if anywhere.
    pub metrics_listen: Option<SocketAddr>,
}

/// Why the VM could not be built.
#[derive(Debug, Error)]
pub enum VmError {
    /// A KVM ioctl failed.
    #[error("KVM: {what}")]
    Kvm {
        /// What was being done.
        what: &'static str,
        /// KVM's error.
        #[source]
        source: kvm_ioctls::Error,
    },
    /// Guest RAM.
    #[error(transparent)]
    Memory(#[from] MemoryError),
    /// The kernel image could not be read.
    #[error("cannot read kernel image {path}")]
    Image {
        /// The path given.
        path: PathBuf,
        /// The error.
        #[source]
        source: std::io::Error,
    },
    /// The kernel image is not bootable.
    #[error(transparent)]
    Boot(#[from] boot::BootError),
    /// The serial output could not be opened.
    #[error("serial console")]
    Serial(#[source] std::io::Error),
    /// Interrupt wiring.
    #[error(transparent)]
    Irq(#[from] crate::irq::IrqError),
    /// The NIC or its backend.
    #[error(transparent)]
    Net(#[from] NetError),
    /// The I/O thread could not start.
    #[error("cannot start the I/O thread")]
    IoThread(#[source] std::io::Error),
    /// The link watcher could not start.
    #[error("cannot start the switch link watcher")]
    LinkWatch(#[source] std::io::Error),
    /// The `--stats-json` directory could not be opened.
    #[error("cannot open the directory of the stats file {path}")]
    StatsJson {
        /// The path given.
        path: PathBuf,
        /// The error.
        #[source]
        source: std::io::Error,
    },
    /// The sandbox could not be entered.
    #[error(transparent)]
    Sandbox(#[from] SandboxError),
    /// The `--metrics-listen` address could not be bound.
    #[error("cannot serve metrics on {addr}")]
    MetricsListen {
        /// The address given.
        addr: SocketAddr,
        /// The error.
        #[source]
        source: std::io::Error,
    },
    /// The metrics thread could not start.
    #[error("cannot start the metrics thread")]
    Metrics(#[source] std::io::Error),
}

fn kvm_err(what: &'static str) -> impl FnOnce(kvm_ioctls::Error) -> VmError {
    move |source| VmError::Kvm { what, source }
}

/// A VM ready to run.
pub struct Vm {
    // Kept open for the VM's lifetime.
    _kvm: Kvm,
    _vm: Arc<VmFd>,
    vcpu: VcpuFd,
    _ram: Arc<GuestRam>,
    platform: Platform,
    stats: Arc<Stats>,
    cmdline: String,
    stats_json: Option<Arc<StatsFile>>,
    net: Option<Arc<NetDevice>>,
    /// The switch port the link watcher re-opens, if the NIC is on a switch.
    link_target: Option<LinkTarget>,
    halt_poll: std::time::Duration,
    sandbox: SandboxConfig,
    metrics: Option<MetricsListener>,
}

/// How a run ended, and the VMM's exit status for it.
#[derive(Debug, Clone)]
pub struct VmOutcome {
    /// What happened.
    pub end: VmEnd,
    /// The status the VMM process should exit with.
    pub exit_code: i32,
}

impl Vm {
    /// Builds the VM: nothing runs until [`Vm::run`].
    pub fn new(config: &VmConfig) -> Result<Vm, VmError> {
        let image = std::fs::read(&config.kernel).map_err(|source| VmError::Image {
            path: config.kernel.clone(),
            source,
        })?;
        let stats_json = match &config.stats_json {
            Some(path) => Some(Arc::new(StatsFile::open(path).map_err(|source| {
                VmError::StatsJson {
                    path: path.clone(),
                    source,
                }
            })?)),
            None => None,
        };
        let metrics = match config.metrics_listen {
            Some(addr) => Some(
                MetricsListener::bind(addr)
                    .map_err(|source| VmError::MetricsListen { addr, source })?,
            ),
            None => None,
        };
        let stats = Arc::new(Stats::new());
        let kvm = Kvm::new().map_err(kvm_err("open /dev/kvm"))?;
        let vm = kvm.create_vm().map_err(kvm_err("create VM"))?;
        // Intel VMX needs a TSS area for real mode; other hosts ignore it.
        if let Err(e) = vm.set_tss_address(0xfffb_d000) {
            log::debug!("KVM_SET_TSS_ADDR: {e} (ignored)");
        }
        vm.create_irq_chip()
            .map_err(kvm_err("create in-kernel irqchip"))?;

        let ram = Arc::new(GuestRam::new(config.mem_mib << 20)?);
        let region = kvm_userspace_memory_region {
            slot: 0,
            flags: 0,
            guest_phys_addr: 0,
            memory_size: ram.size(),
            userspace_addr: ram.host_base() as u64,
        };
        // SAFETY: the region is our RAM mapping, which `Vm` keeps alive (the
        // Arc in `_ram`) for as long as the VM fd exists.
        unsafe { vm.set_user_memory_region(region) }.map_err(kvm_err("register guest RAM"))?;

        let vcpu = vm.create_vcpu(0).map_err(kvm_err("create vCPU"))?;
        boot::regs::setup_cpuid(&kvm, &vcpu).map_err(kvm_err("set CPUID"))?;
        let tsc_khz = vcpu.get_tsc_khz().ok().filter(|&k| k > 0);
        let cmdline = boot::pvh::build_cmdline(&config.guest_args, tsc_khz);
        let loaded = boot::load(&ram, &image, &cmdline)?;
        boot::regs::setup_sregs(&vcpu, &loaded.boot).map_err(kvm_err("set special registers"))?;
        boot::regs::setup_regs(&vcpu, loaded.entry, &loaded.boot)
            .map_err(kvm_err("set registers"))?;
        boot::regs::setup_fpu(&vcpu).map_err(kvm_err("set FPU state"))?;

        let out: Box<dyn Write + Send> = match &config.serial {
            SerialTarget::Stdout => Box::new(std::io::stdout()),
            SerialTarget::File(path) => {
                Box::new(std::fs::File::create(path).map_err(VmError::Serial)?)
            }
        };
        let serial = SerialPort::new(&vm, out, Arc::clone(&stats)).map_err(VmError::Serial)?;
        let vm = Arc::new(vm);
        let net = match &config.net {
            Some(net_config) => {
                let irq = Arc::new(IrqLine::new(
                    &vm,
                    E1000_GSI,
                    config.irq_mode,
                    Arc::clone(&stats),
                )?);
                let device = NetDevice::new(
                    net_config,
                    Some(Arc::clone(&vm)),
                    Arc::clone(&ram),
                    irq,
                    Arc::clone(&stats),
                )?;
                Some(Arc::new(device))
            }
            None => None,
        };
        if stats.latency.is_on() {
            // Before the first KVM_RUN: the guest does not write its TSC.
            stats
                .latency
                .set_guest_tsc_offset(crate::net::latency_trace::guest_tsc_offset(&vcpu));
        }
        let platform = Platform::new(serial, net.clone(), Arc::clone(&stats));
        log::info!(
            "VM ready in {:.1} ms: {} MiB RAM, entry {:#x}, cmdline {cmdline:?}",
            stats.seconds() * 1e3,
            config.mem_mib,
            loaded.entry
        );
        Ok(Vm {
            _kvm: kvm,
            _vm: vm,
            vcpu,
            _ram: ram,
            platform,
            stats,
            cmdline,
            stats_json,
            net,
            link_target: config.net.as_ref().and_then(|net| match &net.backend {
                BackendSpec::Switch(port) if net.reconnect => Some(LinkTarget {
                    socket: net.socket.clone(),
                    port: port.clone(),
                    mac: net.mac,
                }),
                _ => None,
            }),
            halt_poll: config.halt_poll,
            sandbox: config.sandbox.clone(),
            metrics,
        })
    }

    /// The guest command line as written to start_info.
    pub fn cmdline(&self) -> &str {
        &self.cmdline
    }

    /// The address the metrics endpoint listens on, if any.
    pub fn metrics_addr(&self) -> Option<SocketAddr> {
        self.metrics.as_ref().and_then(|m| m.local_addr().ok())
    }

    /// The VM's counters.
    pub fn stats(&self) -> &Arc<Stats> {
        &self.stats
    }

    /// Starts the link watcher if the NIC is on a switch port.
    fn spawn_link_watch(
        &self,
        filter: Option<seccompiler::BpfProgram>,
    ) -> std::io::Result<Option<LinkWatch>> {
        let (Some(net), Some(target)) = (&self.net, &self.link_target) else {
            return Ok(None);
        };
        let Some(control_fd) = net.control_fd() else {
            return Ok(None);
        };
        LinkWatch::spawn_sandboxed(
            Arc::clone(net),
            target.clone(),
            control_fd,
            Arc::clone(&self.stats),
            filter,
        )
        .map(Some)
    }

    /// The NIC, if the VM has one.
    pub fn net(&self) -> Option<&Arc<NetDevice>> {
        self.net.as_ref()
    }

    /// Runs the guest on the calling thread (the vCPU thread) until it exits
    /// or crashes, with the I/O thread beside it; then writes the stats.
    ///
    /// Before the guest runs, the VMM enters its sandbox: it becomes the
    /// configured user (while it has one thread), starts the I/O thread,
    /// which installs its seccomp filter first, and installs the vCPU
    /// thread's filter.
    pub fn run(mut self) -> Result<VmOutcome, VmError> {
        let context = FilterContext {
            pid: std::process::id(),
            vcpu_fd: self.vcpu.as_raw_fd(),
            vm_fd: self._vm.as_raw_fd(),
            stats_dir_fd: self.stats_json.as_ref().map(|file| file.dir_fd()),
            offload: self
                .net
                .as_ref()
                .is_some_and(|net| net.offload_call_fds().is_some()),
        };
        let mode = self.sandbox.seccomp;
        let vcpu_filter = sandbox::compile(ThreadKind::Vcpu, mode, &context)?;
        let io_filter = sandbox::compile(ThreadKind::Io, mode, &context)?;
        let link_filter = sandbox::compile(ThreadKind::Link, mode, &context)?;
        let metrics_filter = sandbox::compile(ThreadKind::Metrics, mode, &context)?;
        if let Some(user) = &self.sandbox.user {
            user.drop_privileges().map_err(SandboxError::from)?;
            log::info!(
                "running as {} (uid {}, gid {})",
                user.name,
                user.uid,
                user.gid
            );
        }
        let sources = IoSources {
            net: self.net.clone(),
            stats: Arc::clone(&self.stats),
            stats_json: self.stats_json.clone(),
        };
        // SIGINT/SIGTERM must interrupt KVM_RUN: only the vCPU thread takes them.
        stop_signal::block_in_this_thread(true);
        let io_thread = IoThread::spawn_sandboxed(sources, io_filter);
        let link_watch = match io_thread {
            Ok(_) => self.spawn_link_watch(link_filter),
            Err(_) => Ok(None),
        };
        let metrics = match (&io_thread, self.metrics.take()) {
            (Ok(_), Some(listener)) => MetricsEndpoint::spawn_sandboxed(
                listener,
                Arc::clone(&self.stats),
                self.net.clone(),
                metrics_filter,
            )
            .map(Some),
            _ => Ok(None),
        };
        stop_signal::block_in_this_thread(false);
        let io_thread = io_thread.map_err(VmError::IoThread)?;
        let link_watch = link_watch.map_err(VmError::LinkWatch)?;
        let metrics = metrics.map_err(VmError::Metrics)?;
        if let Some(program) = &vcpu_filter {
            sandbox::install(ThreadKind::Vcpu, program)?;
        }
        if self.sandbox.selftest {
            sandbox::forbidden_syscall();
        }
        let end = vcpu::run(
            &mut self.vcpu,
            &mut self.platform,
            &self.stats,
            self.halt_poll,
        );
        if let Some(net) = &self.net {
            net.end_offload();
        }
        if let Some(watch) = link_watch {
            watch.stop();
        }
        if let Some(endpoint) = metrics {
            endpoint.stop();
        }
        io_thread.stop();
        self.platform.flush();
        let exit_code = match &end {
            VmEnd::Exit(code) => i32::from(*code),
            VmEnd::PowerOff => 0,
            VmEnd::Crash(_) => EXIT_CODE_CRASH,
            VmEnd::Stopped(signo) => 128 + signo,
        };
        if let Some(file) = &self.stats_json {
            let sources = IoSources {
                net: self.net.clone(),
                stats: Arc::clone(&self.stats),
                stats_json: None,
            };
            if let Err(e) = self
                .stats
                .write_json(file, Some(exit_code), extra_stats(&sources))
            {
                log::warn!("cannot write the stats JSON: {e}");
            }
        }
        Ok(VmOutcome { end, exit_code })
    }
}
