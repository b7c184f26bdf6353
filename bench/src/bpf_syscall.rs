//! The few bpf(2) commands the line-rate source and sink need, issued
//! directly: loading a program from raw instructions, a per-CPU array,
//! attaching XDP through a bpf_link, and `BPF_PROG_TEST_RUN` with live
//! frames. Raw instructions keep these programs independent of the eBPF
//! toolchain (they are a handful of instructions each).

use std::ffi::CString;
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};

/// What went wrong talking to the kernel's BPF subsystem.
#[derive(Debug, thiserror::Error)]
pub enum BpfError {
    /// A bpf(2) command failed.
    #[error("bpf({command})")]
    Syscall {
        /// The command.
        command: &'static str,
        /// The kernel's error.
        #[source]
        source: io::Error,
    },
    /// The verifier refused a program.
    #[error("the verifier refused {program}: {log}")]
    Verifier {
        /// The program's name.
        program: &'static str,
        /// The verifier's log (its last lines).
        log: String,
    },
    /// No interface of that name in the calling thread's namespace.
    #[error("no interface {0:?} here")]
    NoInterface(String),
    /// A frame size the source cannot send.
    #[error("frame size {0} outside 60..={max}", max = MAX_LIVE_FRAME)]
    FrameSize(usize),
    /// /sys/devices/system/cpu/possible is unreadable or malformed.
    #[error("cannot count the possible CPUs")]
    PossibleCpus(#[source] io::Error),
}

/// Largest frame a live-frames run carries: a page minus the XDP headroom
/// and the shared-info tailroom.
pub const MAX_LIVE_FRAME: usize = 3500;

const BPF_MAP_CREATE: libc::c_long = 0;
const BPF_MAP_LOOKUP_ELEM: libc::c_long = 1;
const BPF_PROG_LOAD: libc::c_long = 5;
const BPF_PROG_TEST_RUN: libc::c_long = 10;
const BPF_LINK_CREATE: libc::c_long = 28;

const BPF_PROG_TYPE_XDP: u32 = 6;
const BPF_MAP_TYPE_PERCPU_ARRAY: u32 = 6;
const BPF_PROG_TYPE_SCHED_CLS: u32 = 3;
const BPF_ATTACH_XDP: u32 = 37;
const BPF_ATTACH_TCX_EGRESS: u32 = 47;
/// `XDP_FLAGS_DRV_MODE`: native XDP in the driver.
const XDP_FLAGS_DRV_MODE: u32 = 1 << 2;
/// `BPF_F_TEST_XDP_LIVE_FRAMES` (Linux 5.18).
const BPF_F_TEST_XDP_LIVE_FRAMES: u32 = 1 << 1;

/// One eBPF instruction (`struct bpf_insn`).
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct Insn {
    code: u8,
    regs: u8,
    off: i16,
    imm: i32,
}

impl Insn {
    /// The jump offset or memory offset.
    pub fn off(&self) -> i16 {
        self.off
    }
}

/// Instruction builders, named after their assembly.
pub mod insn {
    use super::Insn;

    const fn make(code: u8, dst: u8, src: u8, off: i16, imm: i32) -> Insn {
        Insn {
            code,
            regs: (dst & 0xf) | (src << 4),
            off,
            imm,
        }
    }

    /// `dst = imm` (64-bit).
    pub const fn mov_imm(dst: u8, imm: i32) -> Insn {
        make(0xb7, dst, 0, 0, imm)
    }
    /// `dst = src` (64-bit).
    pub const fn mov_reg(dst: u8, src: u8) -> Insn {
        make(0xbf, dst, src, 0, 0)
    }
    /// `dst += imm` (64-bit).
    pub const fn add_imm(dst: u8, imm: i32) -> Insn {
        make(0x07, dst, 0, 0, imm)
    }
    /// `dst = *(u32 *)(src + off)`.
    pub const fn load_w(dst: u8, src: u8, off: i16) -> Insn {
        make(0x61, dst, src, off, 0)
    }
    /// `*(u32 *)(dst + off) = src`.
    pub const fn store_w(dst: u8, src: u8, off: i16) -> Insn {
        make(0x63, dst, src, off, 0)
    }
    /// `if dst != imm goto +off`.
    pub const fn jne_imm(dst: u8, imm: i32, off: i16) -> Insn {
        make(0x55, dst, 0, off, imm)
    }
    /// `*(u32 *)(dst + off) = imm`.
    pub const fn store_w_imm(dst: u8, off: i16, imm: i32) -> Insn {
        make(0x62, dst, 0, off, imm)
    }
    /// `dst = *(u64 *)(src + off)`.
    pub const fn load_dw(dst: u8, src: u8, off: i16) -> Insn {
        make(0x79, dst, src, off, 0)
    }
    /// `*(u64 *)(dst + off) = src`.
    pub const fn store_dw(dst: u8, src: u8, off: i16) -> Insn {
        make(0x7b, dst, src, off, 0)
    }
    /// `if dst == imm goto +off`.
    pub const fn jeq_imm(dst: u8, imm: i32, off: i16) -> Insn {
        make(0x15, dst, 0, off, imm)
    }
    /// `call helper`.
    pub const fn call(helper: i32) -> Insn {
        make(0x85, 0, 0, 0, helper)
    }
    /// `exit`.
    pub const fn exit() -> Insn {
        make(0x95, 0, 0, 0, 0)
    }
    /// `dst = map` (the two-slot `ld_imm64` with `BPF_PSEUDO_MAP_FD`).
    pub const fn load_map_fd(dst: u8, fd: i32) -> [Insn; 2] {
        [make(0x18, dst, 1, 0, fd), make(0, 0, 0, 0, 0)]
    }
}

/// Helper numbers (`enum bpf_func_id`).
pub mod helper {
    /// `bpf_map_lookup_elem`.
    pub const MAP_LOOKUP_ELEM: i32 = 1;
    /// `bpf_clone_redirect`.
    pub const CLONE_REDIRECT: i32 = 13;
    /// `bpf_redirect`.
    pub const REDIRECT: i32 = 23;
}

fn bpf<T>(command: libc::c_long, name: &'static str, attr: &mut T) -> Result<i64, BpfError> {
    // SAFETY: `attr` is a `repr(C)` bpf_attr variant of the command, fully
    // initialised (unused fields zero) and alive for the call; the kernel
    // reads at most `size_of::<T>()` bytes and writes only the output fields
    // of the same variant.
    let rc = unsafe {
        libc::syscall(
            libc::SYS_bpf,
            command,
            attr as *mut T,
            std::mem::size_of::<T>() as libc::c_uint,
        )
    };
    if rc < 0 {
        return Err(BpfError::Syscall {
            command: name,
            source: io::Error::last_os_error(),
        });
    }
    Ok(rc)
}

fn owned_fd(fd: i64) -> OwnedFd {
    // SAFETY: the kernel just returned this new descriptor; nothing else owns it.
    unsafe { OwnedFd::from_raw_fd(fd as i32) }
}

#[repr(C)]
#[derive(Default)]
struct ProgLoadAttr {
    prog_type: u32,
    insn_cnt: u32,
    insns: u64,
    license: u64,
    log_level: u32,
    log_size: u32,
    log_buf: u64,
    kern_version: u32,
    prog_flags: u32,
    prog_name: [u8; 16],
    prog_ifindex: u32,
    expected_attach_type: u32,
}

/// The kinds of program loaded here.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ProgKind {
    /// XDP, attached natively or run with `BPF_PROG_TEST_RUN`.
    Xdp,
    /// A tc program on an interface's egress (tcx, Linux 6.6).
    TcxEgress,
}

impl ProgKind {
    fn prog_type(self) -> u32 {
        match self {
            ProgKind::Xdp => BPF_PROG_TYPE_XDP,
            ProgKind::TcxEgress => BPF_PROG_TYPE_SCHED_CLS,
        }
    }

    fn attach_type(self) -> u32 {
        match self {
            ProgKind::Xdp => BPF_ATTACH_XDP,
            ProgKind::TcxEgress => BPF_ATTACH_TCX_EGRESS,
        }
    }
}

/// Loads an XDP program made of `insns`; `name` (at most 15 bytes) shows in
/// `bpftool prog`.
pub fn load_xdp(name: &'static str, insns: &[Insn]) -> Result<OwnedFd, BpfError> {
    load(ProgKind::Xdp, name, insns)
}

/// Loads a program of `kind` made of `insns`.
pub fn load(kind: ProgKind, name: &'static str, insns: &[Insn]) -> Result<OwnedFd, BpfError> {
    let license = c"Dual MIT/GPL";
    let mut log = vec![0u8; 64 * 1024];
    let mut prog_name = [0u8; 16];
    for (slot, byte) in prog_name.iter_mut().zip(name.bytes().take(15)) {
        *slot = byte;
    }
    let mut attr = ProgLoadAttr {
        prog_type: kind.prog_type(),
        insn_cnt: insns.len() as u32,
        insns: insns.as_ptr() as u64,
        license: license.as_ptr() as u64,
        log_level: 1,
        log_size: log.len() as u32,
        log_buf: log.as_mut_ptr() as u64,
        prog_name,
        expected_attach_type: kind.attach_type(),
        ..Default::default()
    };
    match bpf(BPF_PROG_LOAD, "PROG_LOAD", &mut attr) {
        Ok(fd) => Ok(owned_fd(fd)),
        Err(BpfError::Syscall { source, .. })
            if source.raw_os_error() == Some(libc::EACCES)
                || source.raw_os_error() == Some(libc::EINVAL) =>
        {
            let end = log.iter().position(|&b| b == 0).unwrap_or(log.len());
            let text = String::from_utf8_lossy(&log[..end]);
            let tail: Vec<&str> = text.lines().rev().take(8).collect();
            let mut tail: Vec<&str> = tail.into_iter().rev().collect();
            if tail.is_empty() {
                tail.push("(no log)");
            }
            Err(BpfError::Verifier {
                program: name,
                log: format!("{source}: {}", tail.join(" | ")),
            })
        }
        Err(e) => Err(e),
    }
}

#[repr(C)]
#[derive(Default)]
struct MapCreateAttr {
    map_type: u32,
    key_size: u32,
    value_size: u32,
    max_entries: u32,
    map_flags: u32,
    inner_map_fd: u32,
    numa_node: u32,
    map_name: [u8; 16],
}

/// A per-CPU array of `entries` u64 slots.
pub fn percpu_u64_array(entries: u32) -> Result<OwnedFd, BpfError> {
    let mut attr = MapCreateAttr {
        map_type: BPF_MAP_TYPE_PERCPU_ARRAY,
        key_size: 4,
        value_size: 8,
        max_entries: entries,
        ..Default::default()
    };
    bpf(BPF_MAP_CREATE, "MAP_CREATE", &mut attr).map(owned_fd)
}

#[repr(C)]
#[derive(Default)]
struct MapElemAttr {
    map_fd: u32,
    pad: u32,
    key: u64,
    value: u64,
    flags: u64,
}

/// The number of possible CPUs (the length of a per-CPU value).
pub fn possible_cpus() -> Result<usize, BpfError> {
    let text = std::fs::read_to_string("/sys/devices/system/cpu/possible")
        .map_err(BpfError::PossibleCpus)?;
    let bad = || BpfError::PossibleCpus(io::Error::from(io::ErrorKind::InvalidData));
    let mut count = 0usize;
    for range in text.trim().split(',') {
        let (lo, hi) = range.split_once('-').unwrap_or((range, range));
        let lo: usize = lo.parse().map_err(|_| bad())?;
        let hi: usize = hi.parse().map_err(|_| bad())?;
        count = count.max(hi + 1).max(lo + 1);
    }
    Ok(count)
}

/// The sum over all CPUs of slot `key` of a per-CPU u64 array.
pub fn percpu_u64_sum(map: &OwnedFd, key: u32) -> Result<u64, BpfError> {
    let mut values = vec![0u64; possible_cpus()?];
    let mut attr = MapElemAttr {
        map_fd: map.as_raw_fd() as u32,
        key: &key as *const u32 as u64,
        value: values.as_mut_ptr() as u64,
        ..Default::default()
    };
    bpf(BPF_MAP_LOOKUP_ELEM, "MAP_LOOKUP_ELEM", &mut attr)?;
    Ok(values.iter().fold(0u64, |a, v| a.wrapping_add(*v)))
}

#[repr(C)]
#[derive(Default)]
struct LinkCreateAttr {
    prog_fd: u32,
    target_ifindex: u32,
    attach_type: u32,
    flags: u32,
    pad: [u64; 4],
}

/// Attaches `prog` to `ifindex` in native (driver) mode through a bpf_link;
/// closing the returned descriptor detaches it.
pub fn attach_xdp_native(prog: &OwnedFd, ifindex: u32) -> Result<OwnedFd, BpfError> {
    let mut attr = LinkCreateAttr {
        prog_fd: prog.as_raw_fd() as u32,
        target_ifindex: ifindex,
        attach_type: BPF_ATTACH_XDP,
        flags: XDP_FLAGS_DRV_MODE,
        ..Default::default()
    };
    bpf(BPF_LINK_CREATE, "LINK_CREATE", &mut attr).map(owned_fd)
}

/// Attaches the tc program `prog` to the egress of `ifindex` (tcx) through a
/// bpf_link; closing the returned descriptor detaches it.
pub fn attach_tcx_egress(prog: &OwnedFd, ifindex: u32) -> Result<OwnedFd, BpfError> {
    let mut attr = LinkCreateAttr {
        prog_fd: prog.as_raw_fd() as u32,
        target_ifindex: ifindex,
        attach_type: BPF_ATTACH_TCX_EGRESS,
        ..Default::default()
    };
    bpf(BPF_LINK_CREATE, "LINK_CREATE", &mut attr).map(owned_fd)
}

#[repr(C)]
#[derive(Default)]
struct TestRunAttr {
    prog_fd: u32,
    retval: u32,
    data_size_in: u32,
    data_size_out: u32,
    data_in: u64,
    data_out: u64,
    repeat: u32,
    duration: u32,
    ctx_size_in: u32,
    ctx_size_out: u32,
    ctx_in: u64,
    ctx_out: u64,
    flags: u32,
    cpu: u32,
    batch_size: u32,
    pad: u32,
}

/// Runs the XDP program `prog` `repeat` times over `frame` in live-frames
/// mode: every run's verdict is acted on (a redirect transmits the frame),
/// `batch_size` frames at a time (0: the kernel's default, 64).
pub fn test_run_live(
    prog: &OwnedFd,
    frame: &[u8],
    repeat: u32,
    batch_size: u32,
) -> Result<(), BpfError> {
    let mut attr = TestRunAttr {
        prog_fd: prog.as_raw_fd() as u32,
        data_size_in: frame.len() as u32,
        data_in: frame.as_ptr() as u64,
        repeat,
        flags: BPF_F_TEST_XDP_LIVE_FRAMES,
        batch_size,
        ..Default::default()
    };
    bpf(BPF_PROG_TEST_RUN, "PROG_TEST_RUN", &mut attr).map(|_| ())
}

/// Runs the XDP program `prog` once over `frame` without live frames (the
/// verdict is returned, not acted on): the same request as
/// [`test_run_live`] but for the flag, which tells a kernel's refusal of
/// live frames from a malformed request.
pub fn test_run_once(prog: &OwnedFd, frame: &[u8]) -> Result<u32, BpfError> {
    let mut attr = TestRunAttr {
        prog_fd: prog.as_raw_fd() as u32,
        data_size_in: frame.len() as u32,
        data_in: frame.as_ptr() as u64,
        repeat: 1,
        ..Default::default()
    };
    bpf(BPF_PROG_TEST_RUN, "PROG_TEST_RUN", &mut attr)?;
    Ok(attr.retval)
}

/// The index of interface `name` in the calling thread's namespace.
pub fn ifindex(name: &str) -> Result<u32, BpfError> {
    let c = CString::new(name).map_err(|_| BpfError::NoInterface(name.to_owned()))?;
    // SAFETY: `c` is a valid NUL-terminated string for the call.
    let index = unsafe { libc::if_nametoindex(c.as_ptr()) };
    if index == 0 {
        return Err(BpfError::NoInterface(name.to_owned()));
    }
    Ok(index)
}
