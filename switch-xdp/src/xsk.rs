//! `XskQueue`: one AF_XDP socket bound to one (interface, queue), with its
//! own UMEM, and the batch API the switch calls: `receive`, `transmit`,
//! `fd` for epoll, `stats`.
//!
//! Bound with need_wakeup, in copy mode unless zero-copy is asked for. The
//! socket never loads an XDP program itself (`INHIBIT_PROG_LOAD`):
//! [`crate::XdpSteering`] owns the hook and [`crate::XdpSteering::register_socket`]
//! puts the socket into its XSKMAP.
use crate::umem_rings::UmemRings;
use std::error::Error as _;
use std::io;
use std::num::NonZeroU32;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, RawFd};
use std::time::{Duration, Instant};
use xsk_rs::config::{
    BindFlags, FrameSize, Interface, LibxdpFlags, QueueSize, SocketConfig, UmemConfig,
};
use xsk_rs::{Socket, Umem};

/// `setsockopt(SOL_XDP, XDP_MAX_TX_SKB_BUDGET)`: how many descriptors one
/// `sendto` sends in copy mode (Linux 6.17+; 32 before and by default).
const XDP_MAX_TX_SKB_BUDGET: libc::c_int = 9;
/// How many `sendto` calls one TX kick may make while the kernel answers
/// EAGAIN (more descriptors than its per-call budget).
const MAX_KICKS_PER_BATCH: usize = 64;
/// How long `open` retries while the queue is still held by a socket that
/// was just closed (the kernel releases it asynchronously).
const BUSY_RETRY_FOR: Duration = Duration::from_secs(1);

/// Errors of creating or querying an AF_XDP socket.
#[derive(Debug, thiserror::Error)]
pub enum XskError {
    /// The configuration is unusable (sizes must be powers of two...).
    #[error("invalid AF_XDP configuration: {0}")]
    InvalidConfig(String),
    /// The interface name contains a NUL byte.
    #[error("invalid interface name {0:?}")]
    InvalidInterface(String),
    /// Creating or registering the UMEM failed (as non-root: RLIMIT_MEMLOCK).
    #[error("creating the UMEM for {iface} queue {queue}")]
    Umem {
        /// The interface.
        iface: String,
        /// The queue.
        queue: u32,
        /// What xsk-rs reported.
        source: xsk_rs::umem::UmemCreateError,
    },
    /// The driver has no zero-copy AF_XDP support (veth, most virtual NICs).
    #[error("{iface} queue {queue} does not support zero-copy AF_XDP; use copy mode")]
    ZeroCopyUnsupported {
        /// The interface.
        iface: String,
        /// The queue.
        queue: u32,
        /// The kernel's answer.
        source: io::Error,
    },
    /// Creating or binding the socket failed.
    #[error("creating the AF_XDP socket on {iface} queue {queue}{cause}")]
    Socket {
        /// The interface.
        iface: String,
        /// The queue.
        queue: u32,
        /// What xsk-rs reported.
        source: xsk_rs::socket::SocketCreateError,
        /// The OS error under it, if any, rendered.
        cause: String,
    },
    /// The socket came without its own fill and completion rings.
    #[error("the AF_XDP socket on {iface} queue {queue} shares another socket's UMEM rings")]
    SharedRings {
        /// The interface.
        iface: String,
        /// The queue.
        queue: u32,
    },
    /// A socket query (statistics, poll) failed.
    #[error("AF_XDP socket {what}")]
    Io {
        /// What was asked.
        what: &'static str,
        /// The OS error.
        source: io::Error,
    },
}

/// Sizes and mode of an [`XskQueue`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct XskConfig {
    /// Bytes per UMEM frame: 2048 or 4096 (the largest frame is this minus
    /// 256 bytes of XDP headroom).
    pub frame_size: u32,
    /// Frames for receiving; also the RX ring size (the fill ring is twice
    /// as large, so it always has room for them). A power of two.
    pub rx_frames: u32,
    /// Frames for sending; also the TX and completion ring sizes. A power of two.
    pub tx_frames: u32,
    /// Bind in zero-copy mode (fails with [`XskError::ZeroCopyUnsupported`]
    /// where the driver cannot); copy mode otherwise.
    pub zero_copy: bool,
    /// The longest packet received and sent, for jumbo frames: 0 (or
    /// anything up to what one UMEM frame holds) keeps one frame per packet;
    /// more binds with `XDP_USE_SG` (multi-buffer, Linux 6.6+) and chains
    /// up to [`MAX_PIECES`] frames per packet. The XDP program must then be
    /// the multi-buffer one (`SteeringConfig::frags`).
    pub max_packet: u32,
}

/// The most UMEM frames one packet may span (the kernel sends at most
/// `MAX_SKB_FRAGS + 1` = 18 in copy mode).
pub const MAX_PIECES: u32 = 16;

impl Default for XskConfig {
    fn default() -> Self {
        Self {
            frame_size: 2048,
            rx_frames: 2048,
            tx_frames: 2048,
            zero_copy: false,
            max_packet: 0,
        }
    }
}

/// Counters of one socket: ours and the kernel's (`XDP_STATISTICS`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct XskStats {
    /// Frames received (lent to `receive`'s callback).
    pub rx_packets: u64,
    /// Bytes received.
    pub rx_bytes: u64,
    /// Frames put on the TX ring.
    pub tx_packets: u64,
    /// Bytes put on the TX ring.
    pub tx_bytes: u64,
    /// TX frames the kernel completed (taken back from the completion ring).
    pub tx_completed: u64,
    /// Frames refused by `transmit`: empty or longer than the largest packet.
    pub tx_rejected: u64,
    /// Descriptors from the kernel that were not ours or out of bounds.
    pub invalid_descs: u64,
    /// Frames received in several UMEM frames (multi-buffer), reassembled.
    pub rx_multi_buffer: u64,
    /// Frames sent in several UMEM frames (multi-buffer).
    pub tx_multi_buffer: u64,
    /// Multi-buffer packets dropped as longer than the largest packet.
    pub rx_too_long: u64,
    /// Multi-buffer packets dropped because a descriptor of theirs was
    /// rejected or no reassembly buffer was free.
    pub rx_broken: u64,
    /// `sendto`/`poll` wakeups that failed.
    pub wakeup_errors: u64,
    /// Kernel: frames dropped for other reasons (e.g. too large for a frame).
    pub rx_dropped: u64,
    /// Kernel: frames dropped because the RX ring was full.
    pub rx_ring_full: u64,
    /// Kernel: frames dropped because the fill ring was empty.
    pub rx_fill_ring_empty: u64,
    /// Kernel: invalid RX descriptors.
    pub rx_invalid_descs: u64,
    /// Kernel: invalid TX descriptors.
    pub tx_invalid_descs: u64,
    /// Kernel: times the TX ring was found empty.
    pub tx_ring_empty: u64,
}

/// One AF_XDP socket on one (interface, queue) with its own UMEM.
pub struct XskQueue {
    rings: UmemRings,
    iface: String,
    queue: u32,
    zero_copy: bool,
    stats: XskStats,
}

impl std::fmt::Debug for XskQueue {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("XskQueue")
            .field("iface", &self.iface)
            .field("queue", &self.queue)
            .field("zero_copy", &self.zero_copy)
            .field("fd", &self.as_raw_fd())
            .finish()
    }
}

impl XskQueue {
    /// Creates the UMEM and the socket, binds it to `queue` of `iface` (in
    /// this thread's network namespace) and fills the fill ring. While the
    /// queue is busy (a socket closed on it moments ago, or another process
    /// holding it) it retries for up to a second.
    pub fn open(iface: &str, queue: u32, config: &XskConfig) -> Result<Self, XskError> {
        let sizes = RingSizes::from_config(config)?;
        let interface: Interface = iface
            .parse()
            .map_err(|_| XskError::InvalidInterface(iface.to_string()))?;
        let (umem, frames) =
            Umem::new(sizes.umem, sizes.frame_count, false).map_err(|source| XskError::Umem {
                iface: iface.to_string(),
                queue,
                source,
            })?;
        let mut bind = BindFlags::XDP_USE_NEED_WAKEUP;
        if sizes.multi_buffer {
            bind |= BindFlags::XDP_USE_SG;
        }
        bind |= if config.zero_copy {
            BindFlags::XDP_ZEROCOPY
        } else {
            BindFlags::XDP_COPY
        };
        let socket_config = SocketConfig::builder()
            .rx_queue_size(sizes.rx_ring)
            .tx_queue_size(sizes.tx_ring)
            .libxdp_flags(LibxdpFlags::XSK_LIBXDP_FLAGS_INHIBIT_PROG_LOAD)
            .bind_flags(bind)
            .build();
        // A socket closed on this queue is released by the kernel
        // asynchronously (tens of milliseconds): EBUSY meanwhile.
        let busy_deadline = Instant::now() + BUSY_RETRY_FOR;
        let created = loop {
            // SAFETY: the UMEM is not shared with any other socket (a failed
            // attempt leaves it as it was, ready for a retry), and
            // INHIBIT_PROG_LOAD is set, which is what `Socket::new` requires.
            let attempt = unsafe { Socket::new(socket_config, &umem, &interface, queue) };
            match attempt {
                Err(e)
                    if os_error_of(&e) == Some(libc::EBUSY) && Instant::now() < busy_deadline =>
                {
                    std::thread::sleep(Duration::from_millis(5));
                }
                other => break other,
            }
        };
        let (tx, rx, fill_and_completion) = created.map_err(|source| {
            let os_error = os_error_of(&source);
            match os_error {
                Some(errno) if config.zero_copy && is_unsupported(errno) => {
                    XskError::ZeroCopyUnsupported {
                        iface: iface.to_string(),
                        queue,
                        source: io::Error::from_raw_os_error(errno),
                    }
                }
                _ => XskError::Socket {
                    iface: iface.to_string(),
                    queue,
                    cause: os_error
                        .map(|e| format!(": {}", io::Error::from_raw_os_error(e)))
                        .unwrap_or_default(),
                    source,
                },
            }
        })?;
        let (fill, completion) = fill_and_completion.ok_or_else(|| XskError::SharedRings {
            iface: iface.to_string(),
            queue,
        })?;
        let mut rings = UmemRings::new(
            umem,
            frames,
            (config.frame_size as usize, config.max_packet as usize),
            config.rx_frames as usize,
            (rx, tx, fill, completion),
        );
        rings.refill();
        let xsk = Self {
            rings,
            iface: iface.to_string(),
            queue,
            zero_copy: config.zero_copy,
            stats: XskStats::default(),
        };
        xsk.raise_tx_budget(config.tx_frames);
        Ok(xsk)
    }

    /// The interface the socket is bound to.
    pub fn interface(&self) -> &str {
        &self.iface
    }

    /// The queue the socket is bound to.
    pub fn queue(&self) -> u32 {
        self.queue
    }

    /// Whether the socket runs in zero-copy mode.
    pub fn is_zero_copy(&self) -> bool {
        self.zero_copy
    }

    /// The longest frame `transmit` accepts (and the kernel can receive):
    /// what one UMEM frame holds, or `max_packet` on a multi-buffer socket.
    pub fn max_frame_len(&self) -> usize {
        self.rings.max_frame_len()
    }

    /// Receives up to `max` frames, lending each to `deliver` (the slice is
    /// valid during the call only), then refills the fill ring once.
    /// Returns the number of frames delivered.
    pub fn receive(&mut self, max: usize, deliver: impl FnMut(&[u8])) -> usize {
        let got = self.rings.receive(max, deliver);
        self.count_received(&got);
        if self.rings.fill_needs_wakeup() && self.rings.wake_fill().is_err() {
            self.stats.wakeup_errors += 1;
        }
        got.frames
    }

    /// Receives up to `max` frames and keeps them (no copy for a frame in
    /// one UMEM frame; a multi-buffer one is reassembled into a buffer of
    /// the socket's): `deliver(data, len, room)` gets a pointer to each
    /// frame, its length and the bytes readable from the pointer (to the end
    /// of its UMEM frame or buffer). The bytes
    /// stay valid, and the caller's alone (it may change the frame's `len`
    /// bytes in place), until [`XskQueue::release_held`], which the
    /// caller must call before the next `receive_held` on a full ring runs
    /// dry of fill frames. Returns the number of frames.
    pub fn receive_held(
        &mut self,
        max: usize,
        deliver: impl FnMut(*mut u8, usize, usize),
    ) -> usize {
        let got = self.rings.receive_held(max, deliver);
        self.count_received(&got);
        got.frames
    }

    fn count_received(&mut self, got: &crate::umem_rings::Received) {
        self.stats.rx_packets += got.frames as u64;
        self.stats.rx_bytes += got.bytes as u64;
        self.stats.invalid_descs += got.invalid as u64;
        self.stats.rx_too_long += got.too_long as u64;
        self.stats.rx_multi_buffer += got.chained as u64;
        self.stats.rx_broken += got.broken as u64;
    }

    /// Gives the frames of [`XskQueue::receive_held`] back to the kernel.
    pub fn release_held(&mut self) {
        self.rings.release_held();
        if self.rings.fill_needs_wakeup() && self.rings.wake_fill().is_err() {
            self.stats.wakeup_errors += 1;
        }
    }

    /// Frames taken by `receive_held` and not yet released.
    pub fn held(&self) -> usize {
        self.rings.held()
    }

    /// Copies frames into free UMEM frames and sends them: reclaims
    /// completions, queues as many frames as there is room for, then wakes
    /// the kernel once when it asks for it. Pulls from `frames` only what it
    /// takes, so a caller passing `iter.by_ref()` keeps the rest. Returns the
    /// number of frames taken, including any refused as empty or too long
    /// (counted in [`XskStats::tx_rejected`]).
    pub fn transmit<'a>(&mut self, frames: impl Iterator<Item = &'a [u8]>) -> usize {
        self.reclaim();
        let sent = self.rings.transmit(frames);
        self.stats.tx_packets += sent.queued as u64;
        self.stats.tx_bytes += sent.bytes as u64;
        self.stats.tx_rejected += sent.rejected as u64;
        self.stats.tx_multi_buffer += sent.chained as u64;
        if sent.queued > 0 && self.rings.tx_needs_wakeup() {
            self.kick_tx();
        }
        self.reclaim();
        sent.taken
    }

    /// Like [`XskQueue::transmit`] for packets in two parts (a header and
    /// a body) copied together into one UMEM frame each; a packet longer
    /// than one frame is refused (counted in [`XskStats::tx_rejected`]).
    pub fn transmit_parts<'a>(&mut self, packets: impl Iterator<Item = [&'a [u8]; 2]>) -> usize {
        self.reclaim();
        let sent = self.rings.transmit_parts(packets);
        self.stats.tx_packets += sent.queued as u64;
        self.stats.tx_bytes += sent.bytes as u64;
        self.stats.tx_rejected += sent.rejected as u64;
        if sent.queued > 0 && self.rings.tx_needs_wakeup() {
            self.kick_tx();
        }
        self.reclaim();
        sent.taken
    }

    /// Takes finished TX frames back; returns how many.
    pub fn reclaim(&mut self) -> usize {
        let (completed, invalid) = self.rings.reclaim();
        self.stats.tx_completed += completed as u64;
        self.stats.invalid_descs += invalid as u64;
        completed
    }

    /// TX frames free right now (after the last reclaim).
    pub fn tx_free(&self) -> usize {
        self.rings.tx_free()
    }

    /// TX frames the kernel has not completed yet.
    pub fn tx_in_flight(&self) -> usize {
        self.rings.tx_in_flight()
    }

    /// Kicks the kernel to send what sits on the TX ring (copy mode sends
    /// only inside `sendto`) and retries while it answers EAGAIN.
    pub fn kick_tx(&mut self) {
        for _ in 0..MAX_KICKS_PER_BATCH {
            // SAFETY: a zero-length sendto on our own open socket fd, with
            // null buffer and address pointers, as the AF_XDP ABI defines.
            let ret = unsafe {
                libc::sendto(
                    self.as_raw_fd(),
                    std::ptr::null(),
                    0,
                    libc::MSG_DONTWAIT,
                    std::ptr::null(),
                    0,
                )
            };
            if ret >= 0 {
                return;
            }
            match io::Error::last_os_error().raw_os_error() {
                // More descriptors than one call's budget: go on.
                Some(libc::EAGAIN) => continue,
                // The driver is busy or out of buffers: the next batch retries.
                Some(libc::EBUSY) | Some(libc::ENOBUFS) | Some(libc::ENETDOWN) => return,
                _ => {
                    self.stats.wakeup_errors += 1;
                    return;
                }
            }
        }
    }

    /// Waits until frames can be received or `timeout` passes; returns
    /// whether the socket is readable.
    pub fn wait_readable(&self, timeout: Duration) -> Result<bool, XskError> {
        let mut pollfd = libc::pollfd {
            fd: self.as_raw_fd(),
            events: libc::POLLIN,
            revents: 0,
        };
        let millis = timeout.as_millis().min(i32::MAX as u128) as i32;
        // SAFETY: one valid pollfd for the duration of the call.
        let ret = unsafe { libc::poll(&mut pollfd, 1, millis) };
        if ret < 0 {
            let error = io::Error::last_os_error();
            if error.kind() == io::ErrorKind::Interrupted {
                return Ok(false);
            }
            return Err(XskError::Io {
                what: "poll",
                source: error,
            });
        }
        Ok(ret > 0 && pollfd.revents & libc::POLLIN != 0)
    }

    /// Our counters only (no system call; the kernel's read zero).
    pub fn local_stats(&self) -> XskStats {
        self.stats
    }

    /// Our counters and the kernel's.
    pub fn stats(&self) -> Result<XskStats, XskError> {
        let kernel = self
            .rings
            .socket_fd()
            .xdp_statistics()
            .map_err(|source| XskError::Io {
                what: "XDP_STATISTICS",
                source,
            })?;
        Ok(XskStats {
            rx_dropped: kernel.rx_dropped(),
            rx_ring_full: kernel.rx_ring_full(),
            rx_fill_ring_empty: kernel.rx_fill_ring_empty_descs(),
            rx_invalid_descs: kernel.rx_invalid_descs(),
            tx_invalid_descs: kernel.tx_invalid_descs(),
            tx_ring_empty: kernel.tx_ring_empty_descs(),
            ..self.stats
        })
    }

    /// The socket's file descriptor, for epoll (readable: frames to receive).
    pub fn fd(&self) -> BorrowedFd<'_> {
        self.as_fd()
    }

    /// Lets one `sendto` send a whole TX ring in copy mode (Linux 6.17+);
    /// older kernels keep their budget of 32 and `kick_tx` loops.
    fn raise_tx_budget(&self, budget: u32) {
        let value: libc::c_uint = budget;
        if let Err(e) = crate::sockopt::set(
            self.as_raw_fd(),
            libc::SOL_XDP,
            XDP_MAX_TX_SKB_BUDGET,
            &value,
        ) {
            log::debug!(
                "{} queue {}: XDP_MAX_TX_SKB_BUDGET not set ({}); sendto sends 32 at a time",
                self.iface,
                self.queue,
                e
            );
        }
    }
}

impl AsRawFd for XskQueue {
    fn as_raw_fd(&self) -> RawFd {
        self.rings.socket_fd().as_raw_fd()
    }
}

impl AsFd for XskQueue {
    fn as_fd(&self) -> BorrowedFd<'_> {
        // SAFETY: the socket stays open as long as `self` (its rings hold
        // it), and the borrow cannot outlive `self`.
        unsafe { BorrowedFd::borrow_raw(self.as_raw_fd()) }
    }
}

/// The OS error under a socket creation error.
fn os_error_of(error: &xsk_rs::socket::SocketCreateError) -> Option<i32> {
    error
        .source()
        .and_then(|e| e.downcast_ref::<io::Error>())
        .and_then(io::Error::raw_os_error)
}

/// Whether `errno` means "this driver cannot do that" at bind time.
fn is_unsupported(errno: i32) -> bool {
    matches!(errno, libc::EOPNOTSUPP | libc::EPROTONOSUPPORT)
}

/// Bytes at the start of each UMEM frame the kernel keeps for XDP
/// (`XDP_PACKET_HEADROOM`; xsk-rs adds no frame headroom of its own).
pub const XDP_HEADROOM: u32 = 256;

/// The validated sizes of the UMEM and its rings.
struct RingSizes {
    umem: UmemConfig,
    multi_buffer: bool,
    frame_count: NonZeroU32,
    rx_ring: QueueSize,
    tx_ring: QueueSize,
}

impl RingSizes {
    fn from_config(config: &XskConfig) -> Result<Self, XskError> {
        let invalid = |what: String| XskError::InvalidConfig(what);
        if config.frame_size != 2048 && config.frame_size != 4096 {
            return Err(invalid(format!(
                "frame_size {} (2048 or 4096)",
                config.frame_size
            )));
        }
        let ring = |name: &str, size: u32| {
            QueueSize::new(size)
                .map_err(|_| invalid(format!("{name} {size} is not a power of two")))
        };
        if config.rx_frames == 0 || config.tx_frames == 0 {
            return Err(invalid("rx_frames and tx_frames must be non-zero".into()));
        }
        let rx_ring = ring("rx_frames", config.rx_frames)?;
        let tx_ring = ring("tx_frames", config.tx_frames)?;
        let fill_ring = ring(
            "fill ring (2 * rx_frames)",
            config.rx_frames.saturating_mul(2),
        )?;
        let frame_size =
            FrameSize::new(config.frame_size).map_err(|e| invalid(format!("frame_size: {e}")))?;
        let umem = UmemConfig::builder()
            .frame_size(frame_size)
            .fill_queue_size(fill_ring)
            .comp_queue_size(tx_ring)
            .build()
            .map_err(|e| invalid(format!("UMEM: {e}")))?;
        let chunk = config.frame_size - XDP_HEADROOM;
        let multi_buffer = config.max_packet > chunk;
        if config.max_packet > chunk * MAX_PIECES {
            return Err(invalid(format!(
                "max_packet {} (at most {MAX_PIECES} frames of {chunk} bytes)",
                config.max_packet
            )));
        }
        let frame_count = config
            .rx_frames
            .checked_add(config.tx_frames)
            .and_then(NonZeroU32::new)
            .ok_or_else(|| invalid("too many frames".into()))?;
        Ok(Self {
            umem,
            multi_buffer,
            frame_count,
            rx_ring,
            tx_ring,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_config_is_valid() {
        assert!(RingSizes::from_config(&XskConfig::default()).is_ok());
    }

    #[test]
    fn sizes_must_be_powers_of_two_and_frames_known() {
        let bad = |c: XskConfig| RingSizes::from_config(&c).is_err();
        let base = XskConfig::default();
        assert!(bad(XskConfig {
            rx_frames: 1000,
            ..base
        }));
        assert!(bad(XskConfig {
            tx_frames: 0,
            ..base
        }));
        assert!(bad(XskConfig {
            frame_size: 3000,
            ..base
        }));
        assert!(!bad(XskConfig {
            frame_size: 4096,
            rx_frames: 64,
            tx_frames: 64,
            ..base
        }));
    }

    #[test]
    fn a_packet_beyond_one_frame_means_multi_buffer() {
        let sizes = |max_packet| {
            RingSizes::from_config(&XskConfig {
                frame_size: 4096,
                max_packet,
                ..XskConfig::default()
            })
        };
        assert!(!sizes(0).unwrap().multi_buffer);
        assert!(!sizes(3840).unwrap().multi_buffer);
        assert!(sizes(3841).unwrap().multi_buffer);
        assert!(sizes(9018).unwrap().multi_buffer);
        assert!(sizes(16 * 3840).is_ok());
        assert!(sizes(16 * 3840 + 1).is_err());
    }
}

#[cfg(test)]
mod send_check {
    fn assert_send<T: Send>() {}
    #[test]
    fn handles_move_between_threads() {
        assert_send::<super::XskQueue>();
        assert_send::<crate::XdpSteering>();
        assert_send::<crate::Tap>();
    }
}
