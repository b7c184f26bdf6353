//! `Tap`: the host port's TAP interface (`/dev/net/tun`, `IFF_TAP |
//! IFF_NO_PI`, non-blocking), read and written in batches: one frame per
//! `read`/`write`, as many as are ready, stopping at EAGAIN.
//!
//! The interface exists while the `Tap` lives (it is not persistent), so a
//! killed daemon leaves no TAP behind. It is created exclusively
//! (`IFF_TUN_EXCL`): an existing TAP of that name, persistent or another
//! process's, is refused rather than joined.
use std::ffi::CStr;
use std::io;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, FromRawFd, OwnedFd, RawFd};

/// The largest frame read from a TAP without offloads (IFF_VNET_HDR unset):
/// the largest MTU plus the Ethernet header.
const READ_BUFFER_LEN: usize = 65_536 + 14;

/// Errors of the TAP helper.
#[derive(Debug, thiserror::Error)]
pub enum TapError {
    /// The name is empty, too long or contains NUL.
    #[error("invalid TAP name {0:?} (1 to 15 bytes)")]
    InvalidName(String),
    /// `/dev/net/tun` could not be opened (missing module, no CAP_NET_ADMIN).
    #[error("opening /dev/net/tun")]
    Open(#[source] io::Error),
    /// TUNSETIFF refused (the name is taken, no permission).
    #[error("creating TAP {name}")]
    Create {
        /// The name asked for.
        name: String,
        /// The OS error.
        source: io::Error,
    },
    /// A read or write failed otherwise than with EAGAIN.
    #[error("TAP {name}: {what}")]
    Io {
        /// The interface.
        name: String,
        /// `read` or `write`.
        what: &'static str,
        /// The OS error.
        source: io::Error,
    },
}

/// Frame and byte counters of a [`Tap`].
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct TapStats {
    /// Frames read from the host stack.
    pub rx_packets: u64,
    /// Bytes read.
    pub rx_bytes: u64,
    /// Frames written to the host stack.
    pub tx_packets: u64,
    /// Bytes written.
    pub tx_bytes: u64,
    /// Frames dropped on write: queue full (EAGAIN), interface down (EIO),
    /// or refused by the kernel (EINVAL: too short or too long).
    pub tx_dropped: u64,
}

/// A TAP interface owned by this process.
#[derive(Debug)]
pub struct Tap {
    fd: OwnedFd,
    name: String,
    buffer: Vec<u8>,
    stats: TapStats,
}

impl Tap {
    /// Creates the TAP interface `name`, non-blocking; fails (EBUSY) when
    /// an interface of that name exists. The interface starts down; bring it up with [`crate::iface::set_link_up`]
    /// or `ip link set`.
    pub fn create(name: &str) -> Result<Self, TapError> {
        let mut request =
            crate::iface::ifreq_for(name).map_err(|_| TapError::InvalidName(name.to_string()))?;
        // SAFETY: open(2) with a static NUL-terminated path; checked below.
        let fd = unsafe {
            libc::open(
                c"/dev/net/tun".as_ptr(),
                libc::O_RDWR | libc::O_NONBLOCK | libc::O_CLOEXEC,
            )
        };
        if fd < 0 {
            return Err(TapError::Open(io::Error::last_os_error()));
        }
        // SAFETY: `fd` is a fresh descriptor that nothing else owns.
        let fd = unsafe { OwnedFd::from_raw_fd(fd) };
        // IFF_TUN_EXCL is 0x8000, the sign bit of the 16-bit flags field.
        request.ifr_ifru.ifru_flags =
            (libc::IFF_TAP | libc::IFF_NO_PI | libc::IFF_TUN_EXCL) as u16 as libc::c_short;
        // SAFETY: TUNSETIFF reads the name and flags from the ifreq and
        // writes back the interface name; the ifreq outlives the call.
        let ret = unsafe { libc::ioctl(fd.as_raw_fd(), libc::TUNSETIFF, &mut request) };
        if ret < 0 {
            return Err(TapError::Create {
                name: name.to_string(),
                source: io::Error::last_os_error(),
            });
        }
        // SAFETY: the kernel wrote a NUL-terminated name of < IFNAMSIZ bytes.
        let actual = unsafe { CStr::from_ptr(request.ifr_name.as_ptr()) };
        Ok(Self {
            fd,
            name: actual.to_string_lossy().into_owned(),
            buffer: vec![0; READ_BUFFER_LEN],
            stats: TapStats::default(),
        })
    }

    /// The interface's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Reads up to `max` frames the host stack sent, lending each to
    /// `deliver`; stops early when none is ready. Returns how many.
    pub fn receive(
        &mut self,
        max: usize,
        mut deliver: impl FnMut(&[u8]),
    ) -> Result<usize, TapError> {
        let mut count = 0;
        while count < max {
            // SAFETY: reads at most `buffer.len()` bytes into our buffer.
            let ret = unsafe {
                libc::read(
                    self.fd.as_raw_fd(),
                    self.buffer.as_mut_ptr().cast(),
                    self.buffer.len(),
                )
            };
            if ret < 0 {
                let error = io::Error::last_os_error();
                match error.kind() {
                    io::ErrorKind::WouldBlock => break,
                    io::ErrorKind::Interrupted => continue,
                    _ => {
                        return Err(TapError::Io {
                            name: self.name.clone(),
                            what: "read",
                            source: error,
                        })
                    }
                }
            }
            let len = ret as usize;
            deliver(&self.buffer[..len]);
            self.stats.rx_packets += 1;
            self.stats.rx_bytes += len as u64;
            count += 1;
        }
        Ok(count)
    }

    /// Writes frames to the host stack until `frames` ends or the TAP's
    /// queue is full. A frame the kernel refuses is dropped and counted. The
    /// iterator is not pulled past the first frame that met a full queue, so
    /// a caller passing `iter.by_ref()` keeps the rest. Returns the number of
    /// frames taken (written or dropped).
    pub fn transmit<'a>(
        &mut self,
        frames: impl Iterator<Item = &'a [u8]>,
    ) -> Result<usize, TapError> {
        let mut taken = 0;
        for frame in frames {
            taken += 1;
            let written = loop {
                // SAFETY: writes `frame.len()` bytes from a live slice.
                let ret =
                    unsafe { libc::write(self.fd.as_raw_fd(), frame.as_ptr().cast(), frame.len()) };
                if ret >= 0 {
                    break Ok(());
                }
                let error = io::Error::last_os_error();
                if error.kind() != io::ErrorKind::Interrupted {
                    break Err(error);
                }
            };
            match written {
                Ok(()) => {
                    self.stats.tx_packets += 1;
                    self.stats.tx_bytes += frame.len() as u64;
                }
                Err(error) => match error.raw_os_error() {
                    Some(libc::EAGAIN) => {
                        self.stats.tx_dropped += 1;
                        break;
                    }
                    Some(libc::EIO) | Some(libc::EINVAL) => self.stats.tx_dropped += 1,
                    _ => {
                        return Err(TapError::Io {
                            name: self.name.clone(),
                            what: "write",
                            source: error,
                        })
                    }
                },
            }
        }
        Ok(taken)
    }

    /// Counters since creation.
    pub fn stats(&self) -> TapStats {
        self.stats
    }

    /// The file descriptor, for epoll (readable: frames from the host).
    pub fn fd(&self) -> BorrowedFd<'_> {
        self.fd.as_fd()
    }
}

impl AsRawFd for Tap {
    fn as_raw_fd(&self) -> RawFd {
        self.fd.as_raw_fd()
    }
}

impl AsFd for Tap {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.fd.as_fd()
    }
}
