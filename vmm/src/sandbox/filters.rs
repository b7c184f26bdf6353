//! The system calls each VMM thread may make once the guest runs, found by
//! running every VM test under `strace -f` (docs/sandbox.md lists them with
//! the reason for each).
//!
//! Both threads share `common`: memory management for the allocator and
//! thread stacks (never executable), futexes, `read`/`write` on descriptors
//! they already hold, `fcntl(F_GETFD)` (std's debug check when a descriptor
//! is dropped), timers, signal return and masks, thread and process
//! exit, abort, and the `--stats-json` file (created only in its directory).
//! The vCPU thread adds its KVM ioctls, each only on its own descriptor
//! with its request number; the I/O thread adds `epoll_wait` and the
//! KVM ioctls it makes (KVM_IOEVENTFD on the VM). Every thread that drives
//! the e1000 model may pulse its interrupt line (KVM_IRQ_LINE on the VM).
//! With `--e1000 offload=on` both exchange with the switch daemon
//! (`offload_exchange`).

use std::collections::BTreeMap;

use seccompiler::{BackendError, SeccompCmpArgLen, SeccompCmpOp, SeccompCondition, SeccompRule};

use super::FilterContext;
use crate::stats_file;

/// A filter's rules: system call number to alternatives (empty: any arguments).
pub type Rules = BTreeMap<i64, Vec<SeccompRule>>;

/// The KVM ioctl request numbers the VMM issues once the guest runs.
pub mod kvm_requests {
    use kvm_bindings::{kvm_ioeventfd, kvm_irq_level, kvm_mp_state, kvm_regs, kvm_sregs, KVMIO};
    vmm_sys_util::ioctl_io_nr!(KVM_RUN, KVMIO, 0x80);
    vmm_sys_util::ioctl_ior_nr!(KVM_GET_REGS, KVMIO, 0x81, kvm_regs);
    vmm_sys_util::ioctl_ior_nr!(KVM_GET_SREGS, KVMIO, 0x83, kvm_sregs);
    vmm_sys_util::ioctl_iow_nr!(KVM_SET_MP_STATE, KVMIO, 0x99, kvm_mp_state);
    vmm_sys_util::ioctl_iow_nr!(KVM_IOEVENTFD, KVMIO, 0x79, kvm_ioeventfd);
    vmm_sys_util::ioctl_iow_nr!(KVM_IRQ_LINE, KVMIO, 0x61, kvm_irq_level);
}

/// Argument `arg` (32 bits) equals `value`.
fn eq32(arg: u8, value: u64) -> Result<SeccompCondition, BackendError> {
    SeccompCondition::new(arg, SeccompCmpArgLen::Dword, SeccompCmpOp::Eq, value)
}

/// Argument `arg` (64 bits) equals `value`.
fn eq64(arg: u8, value: u64) -> Result<SeccompCondition, BackendError> {
    SeccompCondition::new(arg, SeccompCmpArgLen::Qword, SeccompCmpOp::Eq, value)
}

/// Argument `arg` has none of the bits of `mask`.
fn clear(arg: u8, mask: u64) -> Result<SeccompCondition, BackendError> {
    SeccompCondition::new(
        arg,
        SeccompCmpArgLen::Dword,
        SeccompCmpOp::MaskedEq(mask),
        0,
    )
}

fn rule(conditions: Vec<SeccompCondition>) -> Result<SeccompRule, BackendError> {
    SeccompRule::new(conditions)
}

/// `fcntl(fd, F_GETFD)`, on any descriptor.
fn fcntl_getfd() -> Result<SeccompRule, BackendError> {
    rule(vec![eq32(1, libc::F_GETFD as u64)?])
}

/// Descriptors are non-negative `int`s.
fn fd_value(fd: i32) -> u64 {
    u64::from(fd.unsigned_abs())
}

/// What every VMM thread needs.
fn common(context: &FilterContext) -> Result<Rules, BackendError> {
    let mut rules = Rules::new();
    for sysno in [
        // Eventfds (kicks, irqfds, the stop request), timerfds, the serial
        // output, stdout/stderr, the stats file.
        libc::SYS_read,
        libc::SYS_write,
        libc::SYS_close,
        // Locks, condition variables, thread join; yielding while polling.
        libc::SYS_futex,
        libc::SYS_sched_yield,
        // Clocks (the vDSO falls back to the system call on some clock sources).
        libc::SYS_clock_gettime,
        libc::SYS_gettimeofday,
        // The moderation timer and the stats timer.
        libc::SYS_timerfd_settime,
        // The allocator and thread stacks.
        libc::SYS_brk,
        libc::SYS_munmap,
        libc::SYS_mremap,
        libc::SYS_madvise,
        // Thread exit (the alternate signal stack), signal handling (SIGINT
        // and SIGTERM interrupt KVM_RUN), exits.
        libc::SYS_sigaltstack,
        libc::SYS_rt_sigprocmask,
        libc::SYS_rt_sigreturn,
        // A stopped VMM (SIGSTOP/SIGCONT, a debugger, a cgroup freezer)
        // resumes an interrupted timed wait (poll, nanosleep) with it.
        libc::SYS_restart_syscall,
        libc::SYS_exit,
        libc::SYS_exit_group,
        // abort() (a panic while panicking) raises SIGABRT at itself.
        libc::SYS_getpid,
        libc::SYS_gettid,
        // std's hash maps seed themselves once per thread.
        libc::SYS_getrandom,
    ] {
        rules.insert(sysno, vec![]);
    }
    // Memory is never mapped or made executable, and new mappings are
    // anonymous (no new views of the descriptors the VMM holds).
    let no_exec = || clear(2, libc::PROT_EXEC as u64);
    let anonymous = SeccompCondition::new(
        3,
        SeccompCmpArgLen::Dword,
        SeccompCmpOp::MaskedEq(libc::MAP_ANONYMOUS as u64),
        libc::MAP_ANONYMOUS as u64,
    )?;
    rules.insert(libc::SYS_mmap, vec![rule(vec![no_exec()?, anonymous])?]);
    rules.insert(libc::SYS_mprotect, vec![rule(vec![no_exec()?])?]);
    // Debug builds of std check, when an OwnedFd (a File, a socket, an
    // eventfd) is dropped, that the descriptor is still open with
    // `fcntl(fd, F_GETFD)` before closing it. F_GETFD only reads the
    // close-on-exec flag; every other `fcntl` command stays forbidden.
    rules.insert(libc::SYS_fcntl, vec![fcntl_getfd()?]);
    // abort(): SIGABRT to this process only, and back to the default action.
    rules.insert(
        libc::SYS_tgkill,
        vec![rule(vec![
            eq32(0, u64::from(context.pid))?,
            eq32(2, libc::SIGABRT as u64)?,
        ])?],
    );
    rules.insert(
        libc::SYS_rt_sigaction,
        vec![rule(vec![eq32(0, libc::SIGABRT as u64)?])?],
    );
    if let Some(dir) = context.stats_dir_fd {
        let dir = fd_value(dir);
        rules.insert(
            libc::SYS_openat,
            vec![rule(vec![
                eq32(0, dir)?,
                eq32(2, stats_file::CREATE_FLAGS as u64)?,
            ])?],
        );
        let same_dir = || -> Result<Vec<SeccompRule>, BackendError> {
            Ok(vec![rule(vec![eq32(0, dir)?, eq32(2, dir)?])?])
        };
        rules.insert(libc::SYS_renameat, same_dir()?);
        let mut renameat2 = same_dir()?;
        renameat2[0] = rule(vec![eq32(0, dir)?, eq32(2, dir)?, eq32(4, 0)?])?;
        rules.insert(libc::SYS_renameat2, renameat2);
    }
    Ok(rules)
}

/// With `--e1000 offload=on`, the vCPU thread (a register access that
/// takes the data path back) and the I/O thread (the hand-over, and taking
/// it back when the guest leaves CSB mode) exchange with the switch daemon
/// on the port's control connection: `sendmsg` (the request, with the
/// hand-over's descriptors), `recvmsg` (the answer's header), `recvfrom`
/// (the rest of it, read from the stream) and `shutdown` (an exchange that
/// went wrong ends the connection, so that the daemon lets go of the
/// guest's memory). The connection's read timeout was set when it was
/// opened.
fn offload_exchange(context: &FilterContext, rules: &mut Rules) {
    if context.offload {
        for sysno in [
            libc::SYS_sendmsg,
            libc::SYS_recvmsg,
            libc::SYS_recvfrom,
            libc::SYS_shutdown,
        ] {
            rules.insert(sysno, vec![]);
        }
    }
}

/// The vCPU thread: `common` and its KVM ioctls.
pub fn vcpu_rules(context: &FilterContext) -> Result<Rules, BackendError> {
    let mut rules = common(context)?;
    offload_exchange(context, &mut rules);
    let vcpu = fd_value(context.vcpu_fd);
    let mut ioctls = Vec::new();
    for request in [
        // Run the guest; halt it when idle.
        kvm_requests::KVM_RUN(),
        kvm_requests::KVM_SET_MP_STATE(),
        // The registers for a crash message.
        kvm_requests::KVM_GET_REGS(),
        kvm_requests::KVM_GET_SREGS(),
    ] {
        ioctls.push(rule(vec![eq32(0, vcpu)?, eq64(1, request)?])?);
    }
    ioctls.push(ioeventfd_rule(context)?);
    ioctls.push(irq_line_rule(context)?);
    rules.insert(libc::SYS_ioctl, ioctls);
    Ok(rules)
}

/// KVM_IRQ_LINE on the VM's descriptor: the e1000's interrupt edges
/// (`irq::IrqLine`), raised by whichever thread drives the model (a register
/// access, a port kick or the moderation timer, a link change).
fn irq_line_rule(context: &FilterContext) -> Result<SeccompRule, BackendError> {
    rule(vec![
        eq32(0, fd_value(context.vm_fd))?,
        eq64(1, kvm_requests::KVM_IRQ_LINE())?,
    ])
}

/// KVM_IOEVENTFD on the VM's descriptor: the TDT ioeventfd follows the CSB
/// and BAR0, as register writes (vCPU thread) and CSB rounds (the net
/// worker, or the vCPU thread at a poll-port exit) see them change.
fn ioeventfd_rule(context: &FilterContext) -> Result<SeccompRule, BackendError> {
    rule(vec![
        eq32(0, fd_value(context.vm_fd))?,
        eq64(1, kvm_requests::KVM_IOEVENTFD())?,
    ])
}

/// The I/O thread (and CSB net worker): `common`, its epoll wait, the
/// TDT ioeventfd and the e1000's interrupt line, and `epoll_ctl` to follow
/// the switch port's kick eventfd when the link watcher replaced the port.
pub fn io_rules(context: &FilterContext) -> Result<Rules, BackendError> {
    let mut rules = common(context)?;
    offload_exchange(context, &mut rules);
    rules.insert(
        libc::SYS_ioctl,
        vec![ioeventfd_rule(context)?, irq_line_rule(context)?],
    );
    rules.insert(libc::SYS_epoll_wait, vec![]);
    rules.insert(libc::SYS_epoll_pwait, vec![]);
    rules.insert(libc::SYS_epoll_ctl, vec![]);
    Ok(rules)
}

/// The link watcher: `common`, `poll` on its control connection, and what
/// re-opening the switch port takes: a Unix socket (AF_UNIX only) connected
/// to the daemon, the request and the answer with its descriptors
/// (`sendmsg`/`recvmsg`) with its read timeout (`setsockopt`, `SO_RCVTIMEO`
/// only), the port memfd's checks (`fcntl` for its seals,
/// `fstat`, `pread64` of its header) and its shared mapping (never
/// executable), and an eventfd for the link-down port. One KVM ioctl:
/// KVM_IRQ_LINE, for the e1000's link-change interrupt; guest memory and
/// the device's registrations do not change.
pub fn link_rules(context: &FilterContext) -> Result<Rules, BackendError> {
    let mut rules = common(context)?;
    rules.insert(libc::SYS_ioctl, vec![irq_line_rule(context)?]);
    for sysno in [
        libc::SYS_poll,
        libc::SYS_ppoll,
        libc::SYS_connect,
        libc::SYS_sendmsg,
        libc::SYS_recvmsg,
        libc::SYS_recvfrom,
        libc::SYS_fstat,
        libc::SYS_newfstatat,
        libc::SYS_pread64,
        libc::SYS_eventfd2,
    ] {
        rules.insert(sysno, vec![]);
    }
    rules.insert(
        libc::SYS_socket,
        vec![rule(vec![eq32(0, libc::AF_UNIX as u64)?])?],
    );
    rules
        .entry(libc::SYS_fcntl)
        .or_default()
        .push(rule(vec![eq32(1, libc::F_GET_SEALS as u64)?])?);
    // The client library bounds its wait for the daemon's answer with
    // SO_RCVTIMEO, set on each new control socket.
    rules.insert(
        libc::SYS_setsockopt,
        vec![rule(vec![
            eq32(1, libc::SOL_SOCKET as u64)?,
            eq32(2, libc::SO_RCVTIMEO as u64)?,
        ])?],
    );
    let shared = SeccompCondition::new(
        3,
        SeccompCmpArgLen::Dword,
        SeccompCmpOp::MaskedEq(libc::MAP_TYPE as u64),
        libc::MAP_SHARED as u64,
    )?;
    rules
        .entry(libc::SYS_mmap)
        .or_default()
        .push(rule(vec![clear(2, libc::PROT_EXEC as u64)?, shared])?);
    Ok(rules)
}

/// The metrics endpoint: `common`, `poll` on its listener, its stop
/// eventfd and its connection, and serving one TCP connection on the
/// listener bound at set-up: `accept4`, `ioctl(FIONBIO)` (only that
/// request: the connection is made non-blocking), `recvfrom`, `sendto`,
/// `shutdown`. It creates no socket, opens no file and makes no KVM ioctl.
pub fn metrics_rules(context: &FilterContext) -> Result<Rules, BackendError> {
    let mut rules = common(context)?;
    for sysno in [
        libc::SYS_poll,
        libc::SYS_ppoll,
        libc::SYS_accept,
        libc::SYS_accept4,
        libc::SYS_recvfrom,
        libc::SYS_sendto,
        libc::SYS_shutdown,
    ] {
        rules.insert(sysno, vec![]);
    }
    rules.insert(libc::SYS_ioctl, vec![rule(vec![eq64(1, libc::FIONBIO)?])?]);
    Ok(rules)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn context(stats: Option<i32>) -> FilterContext {
        FilterContext {
            pid: 1234,
            vcpu_fd: 10,
            vm_fd: 11,
            stats_dir_fd: stats,
            offload: false,
        }
    }

    #[test]
    fn offload_adds_the_exchange_to_the_vcpu_and_io_threads() {
        let offload = FilterContext {
            offload: true,
            ..context(None)
        };
        for rules in [vcpu_rules, io_rules] {
            let plain = rules(&context(None)).unwrap();
            let with = rules(&offload).unwrap();
            for call in [
                libc::SYS_sendmsg,
                libc::SYS_recvmsg,
                libc::SYS_recvfrom,
                libc::SYS_shutdown,
            ] {
                assert!(!plain.contains_key(&call), "{call} without offload");
                assert!(with.contains_key(&call), "{call} with offload");
            }
            assert!(!with.contains_key(&libc::SYS_socket), "no new socket");
        }
    }

    #[test]
    fn lists_differ_per_thread() {
        let vcpu = vcpu_rules(&context(None)).unwrap();
        let io = io_rules(&context(None)).unwrap();
        assert_eq!(vcpu[&libc::SYS_ioctl].len(), 6);
        assert_eq!(
            io[&libc::SYS_ioctl].len(),
            2,
            "KVM_IOEVENTFD and KVM_IRQ_LINE only"
        );
        assert!(io.contains_key(&libc::SYS_epoll_wait));
        assert!(!vcpu.contains_key(&libc::SYS_epoll_wait));
        for forbidden in [
            libc::SYS_socket,
            libc::SYS_connect,
            libc::SYS_execve,
            libc::SYS_clone,
            libc::SYS_clone3,
            libc::SYS_fork,
            libc::SYS_ptrace,
            libc::SYS_open,
            libc::SYS_openat,
            libc::SYS_setuid,
            libc::SYS_getppid,
        ] {
            assert!(!vcpu.contains_key(&forbidden), "vCPU allows {forbidden}");
            assert!(!io.contains_key(&forbidden), "I/O allows {forbidden}");
        }
        let link = link_rules(&context(None)).unwrap();
        assert_eq!(link[&libc::SYS_ioctl].len(), 1, "KVM_IRQ_LINE only");
        for allowed in [libc::SYS_socket, libc::SYS_connect, libc::SYS_recvmsg] {
            assert!(link.contains_key(&allowed), "link lacks {allowed}");
        }
        for forbidden in [libc::SYS_execve, libc::SYS_clone, libc::SYS_openat] {
            assert!(!link.contains_key(&forbidden), "link allows {forbidden}");
        }
        let metrics = metrics_rules(&context(None)).unwrap();
        assert_eq!(metrics[&libc::SYS_ioctl].len(), 1, "FIONBIO only");
        for allowed in [libc::SYS_accept4, libc::SYS_recvfrom, libc::SYS_sendto] {
            assert!(metrics.contains_key(&allowed), "metrics lacks {allowed}");
        }
        for forbidden in [
            libc::SYS_socket,
            libc::SYS_connect,
            libc::SYS_bind,
            libc::SYS_execve,
            libc::SYS_clone,
            libc::SYS_openat,
        ] {
            assert!(
                !metrics.contains_key(&forbidden),
                "metrics allows {forbidden}"
            );
        }
        let with_stats = io_rules(&context(Some(7))).unwrap();
        assert!(with_stats.contains_key(&libc::SYS_openat));
    }

    /// Runs `call` in a forked child under `thread`'s filter (kill mode);
    /// returns the signal that killed the child, or `None` if it exited.
    fn killed_by(thread: super::super::ThreadKind, call: fn()) -> Option<i32> {
        use super::super::{compile, install, SeccompMode};
        let program = compile(thread, SeccompMode::Kill, &context(Some(7)))
            .unwrap()
            .unwrap();
        // SAFETY: the child only makes system calls (installing the compiled
        // filter allocates nothing) and leaves with _exit.
        let pid = unsafe { libc::fork() };
        assert!(pid >= 0, "fork");
        if pid == 0 {
            if install(thread, &program).is_err() {
                // SAFETY: leaving the child without running the parent's cleanup.
                unsafe { libc::_exit(2) };
            }
            call();
            // SAFETY: as above.
            unsafe { libc::_exit(0) };
        }
        let mut status = 0;
        // SAFETY: waiting for our own child.
        assert_eq!(unsafe { libc::waitpid(pid, &mut status, 0) }, pid);
        if libc::WIFSIGNALED(status) {
            Some(libc::WTERMSIG(status))
        } else {
            assert_eq!(libc::WEXITSTATUS(status), 0, "the child could not install");
            None
        }
    }

    // The calls the children make. They use descriptors that are not open
    // in the child (an allowed call fails with EBADF) and anonymous
    // mappings that are never touched.
    fn ioctl(fd: i32, request: u64) {
        // SAFETY: an ioctl on a descriptor that is not open reads no memory.
        unsafe { libc::ioctl(fd, request) };
    }
    fn mmap(prot: i32, flags: i32, fd: i32) {
        // SAFETY: a new mapping that nothing uses.
        unsafe { libc::mmap(std::ptr::null_mut(), 4096, prot, flags, fd, 0) };
    }
    fn openat(dir: i32) {
        // SAFETY: a NUL-terminated name; the descriptor is not open.
        unsafe { libc::openat(dir, c"x".as_ptr(), stats_file::CREATE_FLAGS, 0o644) };
    }
    fn socket() {
        // SAFETY: constant arguments (the child is killed before any use).
        unsafe { libc::socket(libc::AF_INET, libc::SOCK_STREAM, 0) };
    }
    fn unix_socket() {
        // SAFETY: constant arguments; the descriptor is left to the child's exit.
        unsafe { libc::socket(libc::AF_UNIX, libc::SOCK_STREAM, 0) };
    }
    fn fcntl(fd: i32, command: i32) {
        // SAFETY: the commands used (F_GETFD, F_GET_SEALS, F_SETFD, F_SETFL)
        // take an integer or nothing, no pointer; the descriptor is not open.
        unsafe { libc::fcntl(fd, command, 0) };
    }
    fn setsockopt(option: i32) {
        let timeout = libc::timeval {
            tv_sec: 1,
            tv_usec: 0,
        };
        // SAFETY: a valid timeval of the given size; the descriptor is not open.
        unsafe {
            libc::setsockopt(
                10,
                libc::SOL_SOCKET,
                option,
                (&timeout as *const libc::timeval).cast(),
                std::mem::size_of::<libc::timeval>() as u32,
            )
        };
    }
    const RW: i32 = libc::PROT_READ | libc::PROT_WRITE;
    const ANON: i32 = libc::MAP_PRIVATE | libc::MAP_ANONYMOUS;

    #[test]
    fn arguments_are_checked() {
        use super::super::ThreadKind::{self, Io, Link, Metrics, Vcpu};
        // The context's descriptors: vCPU 10, VM 11, stats directory 7.
        let allowed: [(ThreadKind, fn()); 16] = [
            // std's debug check when a descriptor is dropped, on every thread.
            (Vcpu, || fcntl(10, libc::F_GETFD)),
            (Io, || fcntl(10, libc::F_GETFD)),
            (Metrics, || fcntl(10, libc::F_GETFD)),
            (Link, || fcntl(10, libc::F_GETFD)),
            (Link, || fcntl(10, libc::F_GET_SEALS)),
            (Link, || setsockopt(libc::SO_RCVTIMEO)),
            (Metrics, || ioctl(10, libc::FIONBIO)),
            (Vcpu, || ioctl(10, kvm_requests::KVM_RUN())),
            (Io, || ioctl(11, kvm_requests::KVM_IOEVENTFD())),
            // The e1000's interrupt edges, from every thread that drives it.
            (Vcpu, || ioctl(11, kvm_requests::KVM_IRQ_LINE())),
            (Io, || ioctl(11, kvm_requests::KVM_IRQ_LINE())),
            (Link, || ioctl(11, kvm_requests::KVM_IRQ_LINE())),
            (Io, || mmap(RW, ANON, -1)),
            (Io, || openat(7)),
            (Link, unix_socket),
            (Link, || mmap(RW, libc::MAP_SHARED, 10)),
        ];
        for (thread, call) in allowed {
            assert_eq!(killed_by(thread, call), None, "{thread:?}");
        }
        let forbidden: [(ThreadKind, fn()); 19] = [
            // fcntl: F_GETFD everywhere, F_GET_SEALS on the link watcher, no more.
            (Io, || fcntl(10, libc::F_SETFL)),
            (Io, || fcntl(10, libc::F_GET_SEALS)),
            (Link, || fcntl(10, libc::F_SETFD)),
            // setsockopt: the link watcher's read timeout only.
            (Link, || setsockopt(libc::SO_SNDTIMEO)),
            (Io, || setsockopt(libc::SO_RCVTIMEO)),
            // The metrics thread: no KVM ioctl, no new socket.
            (Metrics, || ioctl(11, kvm_requests::KVM_IOEVENTFD())),
            (Metrics, unix_socket),
            (Metrics, || ioctl(11, kvm_requests::KVM_IRQ_LINE())),
            // The link watcher: KVM_IRQ_LINE on the VM only.
            (Link, || ioctl(11, kvm_requests::KVM_IOEVENTFD())),
            // KVM_RUN on another descriptor (the VM's).
            (Vcpu, || ioctl(11, kvm_requests::KVM_RUN())),
            // A vCPU ioctl on the I/O thread.
            (Io, || ioctl(10, kvm_requests::KVM_RUN())),
            // Another KVM request (KVM_SET_REGS) on the vCPU.
            (Vcpu, || ioctl(10, 0x4090_ae82)),
            (Vcpu, || mmap(libc::PROT_READ | libc::PROT_EXEC, ANON, -1)),
            (Io, || mmap(libc::PROT_READ, libc::MAP_SHARED, 10)),
            // A file outside the stats directory.
            (Io, || openat(libc::AT_FDCWD)),
            (Vcpu, socket),
            (Io, unix_socket),
            // The link watcher: Unix sockets only, no executable mappings.
            (Link, socket),
            (Link, || {
                mmap(libc::PROT_READ | libc::PROT_EXEC, libc::MAP_SHARED, 10)
            }),
        ];
        for (i, (thread, call)) in forbidden.into_iter().enumerate() {
            assert_eq!(
                killed_by(thread, call),
                Some(libc::SIGSYS),
                "forbidden call {i} on {thread:?}"
            );
        }
    }

    #[test]
    fn filters_compile_for_every_mode() {
        use super::super::{compile, SeccompMode, ThreadKind};
        for thread in [
            ThreadKind::Vcpu,
            ThreadKind::Io,
            ThreadKind::Link,
            ThreadKind::Metrics,
        ] {
            assert!(compile(thread, SeccompMode::Off, &context(None))
                .unwrap()
                .is_none());
            for mode in [SeccompMode::Log, SeccompMode::Kill] {
                let program = compile(thread, mode, &context(Some(5))).unwrap().unwrap();
                assert!(!program.is_empty());
            }
        }
    }
}
