//! The sender: test frames in batches, by `sendmmsg` or a TPACKET_V2
//! transmit ring, with `PACKET_QDISC_BYPASS`.

use std::os::fd::{AsRawFd, RawFd};
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use serde::Serialize;
use testbed::{Mac, Netns};
use testframe::{FrameTemplate, Kind};

use testbed::packet_socket::is_congestion;
use testbed::{PacketSocket, Protocol};

use super::socket::{check_frame_len, monotonic_ns, RingMap};
use super::{AfPacketError, Result, MAX_BATCH};

/// Transmit ring: 1024 frames in 64 KiB blocks.
const TX_RING_FRAMES: usize = 1024;
const TX_BLOCK_SIZE: usize = 64 << 10;
/// Data offset in a TPACKET_V2 transmit frame: the aligned header.
const TX_DATA_OFFSET: usize = align16(std::mem::size_of::<libc::tpacket2_hdr>());

const fn align16(x: usize) -> usize {
    (x + 15) & !15
}

/// How the sender hands frames to the kernel.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum TxMethod {
    /// One `sendmmsg` per batch, one iovec per frame.
    Sendmmsg,
    /// A TPACKET_V2 `PACKET_TX_RING`; one `send` flushes a batch.
    TxRing,
}

impl std::fmt::Display for TxMethod {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            TxMethod::Sendmmsg => "sendmmsg",
            TxMethod::TxRing => "tx-ring",
        })
    }
}

/// What to send, where, and for how long.
#[derive(Clone, Debug)]
pub struct SenderConfig {
    /// Interface to send on (in the sender's namespace).
    pub ifname: String,
    /// Frame length in bytes without FCS ([`testframe::MIN_FRAME_LEN`] or
    /// more).
    pub frame_len: usize,
    /// Source MAC written into the frames.
    pub src: Mac,
    /// Destination MAC written into the frames.
    pub dst: Mac,
    /// Frames per system call, 1..=[`MAX_BATCH`].
    pub batch: usize,
    /// Sending stops after this long...
    pub duration: Duration,
    /// ...or after this many frames, whichever comes first.
    pub max_packets: u64,
    /// How frames reach the kernel.
    pub method: TxMethod,
}

/// What a sender did.
#[derive(Clone, Debug, Serialize)]
pub struct SenderStats {
    /// How frames reached the kernel.
    pub method: TxMethod,
    /// Frames the kernel accepted (sequence numbers 0..packets).
    pub packets: u64,
    /// Their bytes (without FCS).
    pub bytes: u64,
    /// Time from the first to the end of the last system call.
    pub seconds: f64,
    /// System calls made.
    pub syscalls: u64,
    /// Calls the kernel refused for lack of room (ENOBUFS, EAGAIN); with
    /// `sendmmsg` the refused frame is sent again with the same sequence
    /// number, with the ring it counts as lost.
    pub drops: u64,
}

/// Sends test frames from the calling thread's namespace as `config` says;
/// returns when the duration or the frame count is reached.
pub fn send(config: &SenderConfig) -> Result<SenderStats> {
    check_frame_len(config.frame_len)?;
    if !(1..=MAX_BATCH).contains(&config.batch) {
        return Err(AfPacketError::Config(format!(
            "batch {} outside 1..={MAX_BATCH}",
            config.batch
        )));
    }
    let template = FrameTemplate::new(config.dst.0, config.src.0, Kind::Data, config.frame_len)
        .ok_or_else(|| AfPacketError::Config("frame template".into()))?;
    let socket = PacketSocket::unbound(Protocol::SendOnly)?;
    socket.set_qdisc_bypass()?;
    match config.method {
        TxMethod::Sendmmsg => {
            socket.bind(&config.ifname)?;
            send_mmsg(socket.as_raw_fd(), config, &template)
        }
        TxMethod::TxRing => send_ring(&socket, config, &template),
    }
}

fn send_mmsg(fd: RawFd, config: &SenderConfig, template: &FrameTemplate) -> Result<SenderStats> {
    let len = config.frame_len;
    let stride = len.next_multiple_of(64);
    let mut buffer = vec![0u8; stride * config.batch];
    for slot in buffer.chunks_exact_mut(stride) {
        template.write(slot, 0, 0);
    }
    // From here on the buffer is reached only through `base`, which the
    // iovecs share.
    let base = buffer.as_mut_ptr();
    let mut iovecs: Vec<libc::iovec> = (0..config.batch)
        .map(|i| libc::iovec {
            // SAFETY: `i * stride` is inside the buffer.
            iov_base: unsafe { base.add(i * stride) }.cast(),
            iov_len: len,
        })
        .collect();
    let iov_base = iovecs.as_mut_ptr();
    let mut messages: Vec<libc::mmsghdr> = (0..config.batch)
        .map(|i| {
            // SAFETY: msghdr is plain data; all-zero means no address and no
            // control data.
            let mut header: libc::msghdr = unsafe { std::mem::zeroed() };
            // SAFETY: `i` is inside the iovec array.
            header.msg_iov = unsafe { iov_base.add(i) };
            header.msg_iovlen = 1;
            libc::mmsghdr {
                msg_hdr: header,
                msg_len: 0,
            }
        })
        .collect();

    let mut stats = SenderStats {
        method: TxMethod::Sendmmsg,
        packets: 0,
        bytes: 0,
        seconds: 0.0,
        syscalls: 0,
        drops: 0,
    };
    let start = Instant::now();
    let deadline = start + config.duration;
    while stats.packets < config.max_packets && Instant::now() < deadline {
        let count = (config.max_packets - stats.packets).min(config.batch as u64) as usize;
        let now = monotonic_ns();
        for i in 0..count {
            // SAFETY: slot `i` lies inside the buffer, which outlives this
            // loop, and the kernel does not touch it between system calls.
            let slot = unsafe { std::slice::from_raw_parts_mut(base.add(i * stride), len) };
            template.stamp(slot, stats.packets + i as u64, now);
        }
        // SAFETY: `messages` holds `count` valid headers whose iovecs point
        // into `buffer`; all stay alive and unmoved during the call.
        let sent = unsafe { libc::sendmmsg(fd, messages.as_mut_ptr(), count as u32, 0) };
        stats.syscalls += 1;
        if sent < 0 {
            let error = std::io::Error::last_os_error();
            if is_congestion(&error) {
                stats.drops += 1;
                std::thread::yield_now();
                continue;
            }
            return Err(AfPacketError::Io {
                what: format!("sendmmsg on {}", config.ifname),
                source: error,
            });
        }
        stats.packets += sent as u64;
    }
    stats.seconds = start.elapsed().as_secs_f64();
    stats.bytes = stats.packets * len as u64;
    drop(messages);
    drop(iovecs);
    drop(buffer);
    Ok(stats)
}

fn send_ring(
    socket: &PacketSocket,
    config: &SenderConfig,
    template: &FrameTemplate,
) -> Result<SenderStats> {
    let len = config.frame_len;
    let frame_size = (TX_DATA_OFFSET + len).next_power_of_two().max(128);
    let block_size = TX_BLOCK_SIZE.max(frame_size);
    let frames_per_block = block_size / frame_size;
    let block_count = TX_RING_FRAMES.div_ceil(frames_per_block);
    let frame_count = frames_per_block * block_count;
    let version = libc::tpacket_versions::TPACKET_V2 as libc::c_int;
    socket.set_option(libc::PACKET_VERSION, &version, "PACKET_VERSION")?;
    let request = libc::tpacket_req {
        tp_block_size: block_size as u32,
        tp_block_nr: block_count as u32,
        tp_frame_size: frame_size as u32,
        tp_frame_nr: frame_count as u32,
    };
    socket.set_option(libc::PACKET_TX_RING, &request, "PACKET_TX_RING")?;
    let fd = socket.as_raw_fd();
    let ring = RingMap::new(fd, block_size * block_count)?;
    socket.bind(&config.ifname)?;

    let frame_data = |index: usize| {
        // SAFETY: frame `index` < frame_count lies inside the mapping (the
        // block size is a multiple of the frame size); its data area of
        // `len` bytes fits in the frame by construction of `frame_size`; the
        // kernel reads it only while the frame is in SEND_REQUEST state,
        // which the caller has not set yet.
        unsafe {
            std::slice::from_raw_parts_mut(ring.base.add(index * frame_size + TX_DATA_OFFSET), len)
        }
    };
    let set_len = |index: usize| {
        // SAFETY: tp_len is the second u32 of the frame's tpacket2_hdr, in
        // the mapping; the frame belongs to user space (AVAILABLE).
        unsafe {
            ring.base
                .add(index * frame_size + 4)
                .cast::<u32>()
                .write_volatile(len as u32)
        }
    };
    for index in 0..frame_count {
        template.write(frame_data(index), 0, 0);
        set_len(index);
    }

    let mut stats = SenderStats {
        method: TxMethod::TxRing,
        packets: 0,
        bytes: 0,
        seconds: 0.0,
        syscalls: 0,
        drops: 0,
    };
    let mut head = 0usize;
    let mut queued = 0u64;
    let start = Instant::now();
    let deadline = start + config.duration;
    while stats.packets < config.max_packets && Instant::now() < deadline {
        let now = monotonic_ns();
        let mut filled = 0u64;
        while filled < config.batch as u64 && queued < config.max_packets {
            let status = ring.status(head * frame_size);
            let value = status.load(Ordering::Acquire);
            if value & libc::TP_STATUS_WRONG_FORMAT != 0 {
                return Err(AfPacketError::WrongFormat(head));
            }
            if value != libc::TP_STATUS_AVAILABLE {
                break;
            }
            template.stamp(frame_data(head), queued, now);
            set_len(head);
            status.store(libc::TP_STATUS_SEND_REQUEST, Ordering::Release);
            head = (head + 1) % frame_count;
            queued += 1;
            filled += 1;
        }
        // SAFETY: send(2) with no buffer: the kernel transmits the frames
        // marked SEND_REQUEST in the ring.
        let rc = unsafe { libc::send(fd, std::ptr::null(), 0, libc::MSG_DONTWAIT) };
        stats.syscalls += 1;
        if rc < 0 {
            let error = std::io::Error::last_os_error();
            if !is_congestion(&error) {
                return Err(AfPacketError::Io {
                    what: format!("send(PACKET_TX_RING) on {}", config.ifname),
                    source: error,
                });
            }
            stats.drops += 1;
            std::thread::yield_now();
        }
        stats.packets = queued;
    }
    // Let the kernel finish the frames still marked for sending (bounded).
    let settle = Instant::now() + Duration::from_millis(200);
    while Instant::now() < settle {
        let busy = (0..frame_count).any(|i| {
            ring.status(i * frame_size).load(Ordering::Acquire) != libc::TP_STATUS_AVAILABLE
        });
        if !busy {
            break;
        }
        // SAFETY: as above.
        unsafe { libc::send(fd, std::ptr::null(), 0, libc::MSG_DONTWAIT) };
        std::thread::sleep(Duration::from_millis(1));
    }
    stats.seconds = start.elapsed().as_secs_f64();
    stats.bytes = stats.packets * len as u64;
    Ok(stats)
}

/// Runs [`send`] on a thread inside `ns` and waits for it.
pub fn send_in(ns: &Netns, config: &SenderConfig) -> Result<SenderStats> {
    ns.run_in(|| send(config))?
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tx_frame_layout_matches_the_kernel() {
        assert_eq!(TX_DATA_OFFSET, 32);
        assert_eq!(
            libc::TPACKET2_HDRLEN - std::mem::size_of::<libc::sockaddr_ll>(),
            TX_DATA_OFFSET
        );
    }

    #[test]
    fn bad_configurations_are_refused() {
        let config = SenderConfig {
            ifname: "lo".into(),
            frame_len: 59,
            src: Mac([2, 0, 0, 0, 0, 1]),
            dst: Mac([2, 0, 0, 0, 0, 2]),
            batch: 64,
            duration: Duration::from_millis(10),
            max_packets: 10,
            method: TxMethod::Sendmmsg,
        };
        assert!(matches!(send(&config), Err(AfPacketError::Config(_))));
        let config = SenderConfig {
            frame_len: 64,
            batch: MAX_BATCH + 1,
            ..config
        };
        assert!(matches!(send(&config), Err(AfPacketError::Config(_))));
    }
}
