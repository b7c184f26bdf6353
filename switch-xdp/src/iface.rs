//! Interface helpers for NIC ports: index, receive-queue count, MTU against
//! the UMEM frame, link up, and promiscuous mode held by a socket.
//!
//! Everything goes through sockets and ioctls, so it sees the calling
//! thread's network namespace (sysfs would show the namespace it was
//! mounted in).
use std::ffi::CString;
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};

/// Ethernet header plus one VLAN tag: what a frame adds to the MTU.
pub const FRAME_OVERHEAD: u32 = 14 + 4;
/// `ETHTOOL_GCHANNELS` (linux/ethtool.h).
const ETHTOOL_GCHANNELS: u32 = 0x0000_003c;
/// `ETHTOOL_GDRVINFO` (linux/ethtool.h).
const ETHTOOL_GDRVINFO: u32 = 0x0000_0003;

/// Errors of the interface helpers.
#[derive(Debug, thiserror::Error)]
pub enum IfaceError {
    /// No interface of that name (in this network namespace).
    #[error("no network interface named {0:?}")]
    Unknown(String),
    /// A system call failed.
    #[error("{what} on {iface}")]
    Io {
        /// What was attempted.
        what: &'static str,
        /// The interface.
        iface: String,
        /// The OS error.
        source: io::Error,
    },
    /// The MTU allows frames larger than a UMEM frame holds.
    #[error("{iface} has MTU {mtu}: frames up to {frame} bytes, but an AF_XDP frame holds {max_frame}; lower the MTU")]
    MtuTooLarge {
        /// The interface.
        iface: String,
        /// Its MTU.
        mtu: u32,
        /// The largest frame at that MTU (MTU + Ethernet header + VLAN tag).
        frame: u32,
        /// The largest frame the socket holds.
        max_frame: u32,
    },
}

/// The index of interface `name`.
pub fn ifindex(name: &str) -> Result<u32, IfaceError> {
    let c_name = CString::new(name).map_err(|_| IfaceError::Unknown(name.to_string()))?;
    // SAFETY: a valid NUL-terminated string for the duration of the call.
    let index = unsafe { libc::if_nametoindex(c_name.as_ptr()) };
    if index == 0 {
        return Err(IfaceError::Unknown(name.to_string()));
    }
    Ok(index)
}

/// The number of receive queues of `name` (RX plus combined channels, as
/// ethtool reports them; 1 for drivers without channel support).
pub fn rx_queue_count(name: &str) -> Result<u32, IfaceError> {
    ifindex(name)?;
    let socket = control_socket(name)?;
    let mut channels = EthtoolChannels {
        cmd: ETHTOOL_GCHANNELS,
        ..Default::default()
    };
    let mut request = ifreq_for(name)?;
    request.ifr_ifru.ifru_data = (&mut channels as *mut EthtoolChannels).cast();
    // SAFETY: SIOCETHTOOL with ETHTOOL_GCHANNELS writes one ethtool_channels
    // into the buffer `ifru_data` points to, which outlives the call.
    let ret = unsafe { libc::ioctl(socket.as_raw_fd(), libc::SIOCETHTOOL, &mut request) };
    if ret < 0 {
        let error = io::Error::last_os_error();
        if error.raw_os_error() == Some(libc::EOPNOTSUPP) {
            return Ok(1);
        }
        return Err(IfaceError::Io {
            what: "ETHTOOL_GCHANNELS",
            iface: name.to_string(),
            source: error,
        });
    }
    Ok((channels.rx_count + channels.combined_count).max(1))
}

/// The name of the driver behind `name`, as `ethtool -i` shows it
/// (`veth`, `virtio_net`, ...).
pub fn driver(name: &str) -> Result<String, IfaceError> {
    ifindex(name)?;
    let socket = control_socket(name)?;
    let mut info = EthtoolDrvinfo {
        cmd: ETHTOOL_GDRVINFO,
        ..Default::default()
    };
    let mut request = ifreq_for(name)?;
    request.ifr_ifru.ifru_data = (&mut info as *mut EthtoolDrvinfo).cast();
    // SAFETY: SIOCETHTOOL with ETHTOOL_GDRVINFO writes one ethtool_drvinfo
    // into the buffer `ifru_data` points to, which outlives the call.
    let ret = unsafe { libc::ioctl(socket.as_raw_fd(), libc::SIOCETHTOOL, &mut request) };
    if ret < 0 {
        return Err(io_error("ETHTOOL_GDRVINFO", name));
    }
    let end = info
        .driver
        .iter()
        .position(|&b| b == 0)
        .unwrap_or(info.driver.len());
    Ok(String::from_utf8_lossy(&info.driver[..end]).into_owned())
}

/// The MTU of `name`.
pub fn mtu(name: &str) -> Result<u32, IfaceError> {
    let socket = control_socket(name)?;
    let mut request = ifreq_for(name)?;
    // SAFETY: SIOCGIFMTU fills `ifru_mtu` of the ifreq we pass.
    let ret = unsafe { libc::ioctl(socket.as_raw_fd(), libc::SIOCGIFMTU, &mut request) };
    if ret < 0 {
        return Err(io_error("SIOCGIFMTU", name));
    }
    // SAFETY: the kernel has just written the `ifru_mtu` member.
    Ok(unsafe { request.ifr_ifru.ifru_mtu } as u32)
}

/// The Ethernet address of `name`.
pub fn mac(name: &str) -> Result<[u8; 6], IfaceError> {
    let socket = control_socket(name)?;
    let mut request = ifreq_for(name)?;
    // SAFETY: SIOCGIFHWADDR fills `ifru_hwaddr` of the ifreq we pass.
    let ret = unsafe { libc::ioctl(socket.as_raw_fd(), libc::SIOCGIFHWADDR, &mut request) };
    if ret < 0 {
        return Err(io_error("SIOCGIFHWADDR", name));
    }
    // SAFETY: the kernel has just written the `ifru_hwaddr` member.
    let data = unsafe { request.ifr_ifru.ifru_hwaddr.sa_data };
    let mut mac = [0u8; 6];
    for (dst, src) in mac.iter_mut().zip(data.iter()) {
        *dst = *src as u8;
    }
    Ok(mac)
}

/// The interface that holds IPv4 address `addr` (in this thread's
/// network namespace), if one does.
pub fn with_ipv4(addr: std::net::Ipv4Addr) -> io::Result<Option<String>> {
    let mut list: *mut libc::ifaddrs = std::ptr::null_mut();
    // SAFETY: getifaddrs writes a list head we free below.
    if unsafe { libc::getifaddrs(&mut list) } < 0 {
        return Err(io::Error::last_os_error());
    }
    let mut found = None;
    let mut cursor = list;
    while !cursor.is_null() {
        // SAFETY: a node of the list getifaddrs returned, alive until
        // freeifaddrs; its address, when not null, is a sockaddr of the
        // family it names, and its name a NUL-terminated string.
        unsafe {
            let entry = &*cursor;
            let sa = entry.ifa_addr;
            if !sa.is_null() && i32::from((*sa).sa_family) == libc::AF_INET {
                let sin = &*(sa as *const libc::sockaddr_in);
                if u32::from_be(sin.sin_addr.s_addr) == u32::from(addr) {
                    let name = std::ffi::CStr::from_ptr(entry.ifa_name);
                    found = Some(name.to_string_lossy().into_owned());
                    break;
                }
            }
            cursor = entry.ifa_next;
        }
    }
    // SAFETY: the list getifaddrs returned, freed once.
    unsafe { libc::freeifaddrs(list) };
    Ok(found)
}

/// Sets the MTU of `name`.
pub fn set_mtu(name: &str, mtu: u32) -> Result<(), IfaceError> {
    let socket = control_socket(name)?;
    let mut request = ifreq_for(name)?;
    request.ifr_ifru.ifru_mtu = libc::c_int::try_from(mtu).unwrap_or(libc::c_int::MAX);
    // SAFETY: SIOCSIFMTU reads `ifru_mtu` of the ifreq we pass.
    let ret = unsafe { libc::ioctl(socket.as_raw_fd(), libc::SIOCSIFMTU, &mut request) };
    if ret < 0 {
        return Err(io_error("SIOCSIFMTU", name));
    }
    Ok(())
}

/// Checks that every frame `name` can receive at its MTU fits in an AF_XDP
/// frame of `max_frame_len` bytes ([`crate::XskQueue::max_frame_len`]).
/// Returns the MTU. (Native XDP on veth has its own limit, about 3.5 KB,
/// which `XdpSteering::attach` reports.)
pub fn check_xdp_mtu(name: &str, max_frame_len: usize) -> Result<u32, IfaceError> {
    let mtu = mtu(name)?;
    let frame = mtu.saturating_add(FRAME_OVERHEAD);
    let max_frame = u32::try_from(max_frame_len).unwrap_or(u32::MAX);
    if frame > max_frame {
        return Err(IfaceError::MtuTooLarge {
            iface: name.to_string(),
            mtu,
            frame,
            max_frame,
        });
    }
    Ok(mtu)
}

/// Brings `name` up (IFF_UP).
pub fn set_link_up(name: &str) -> Result<(), IfaceError> {
    let socket = control_socket(name)?;
    let mut request = ifreq_for(name)?;
    // SAFETY: SIOCGIFFLAGS fills `ifru_flags` of the ifreq we pass.
    if unsafe { libc::ioctl(socket.as_raw_fd(), libc::SIOCGIFFLAGS, &mut request) } < 0 {
        return Err(io_error("SIOCGIFFLAGS", name));
    }
    // SAFETY: the kernel has just written `ifru_flags`; we write it back.
    unsafe { request.ifr_ifru.ifru_flags |= libc::IFF_UP as libc::c_short };
    // SAFETY: SIOCSIFFLAGS reads the ifreq we pass.
    if unsafe { libc::ioctl(socket.as_raw_fd(), libc::SIOCSIFFLAGS, &mut request) } < 0 {
        return Err(io_error("SIOCSIFFLAGS", name));
    }
    Ok(())
}

/// Promiscuous mode on one interface for as long as this value lives.
///
/// Held as a membership of an AF_PACKET socket (which receives nothing), so
/// the kernel counts it with other users and drops it when the socket
/// closes, including when the process is killed: nothing to restore by hand.
#[derive(Debug)]
pub struct Promiscuous {
    socket: OwnedFd,
    iface: String,
}

impl Promiscuous {
    /// Puts `name` in promiscuous mode until the returned value is dropped.
    pub fn enable(name: &str) -> Result<Self, IfaceError> {
        let index = ifindex(name)?;
        // Protocol 0: the socket is bound to no EtherType and receives nothing.
        // SAFETY: plain socket(2) call; the result is checked.
        let fd = unsafe { libc::socket(libc::AF_PACKET, libc::SOCK_RAW | libc::SOCK_CLOEXEC, 0) };
        if fd < 0 {
            return Err(io_error("socket(AF_PACKET)", name));
        }
        // SAFETY: `fd` is a fresh descriptor that nothing else owns.
        let socket = unsafe { OwnedFd::from_raw_fd(fd) };
        let request = libc::packet_mreq {
            mr_ifindex: index as libc::c_int,
            mr_type: libc::PACKET_MR_PROMISC as libc::c_ushort,
            mr_alen: 0,
            mr_address: [0; 8],
        };
        crate::sockopt::set(
            socket.as_raw_fd(),
            libc::SOL_PACKET,
            libc::PACKET_ADD_MEMBERSHIP,
            &request,
        )
        .map_err(|source| IfaceError::Io {
            what: "PACKET_ADD_MEMBERSHIP(PROMISC)",
            iface: name.to_string(),
            source,
        })?;
        Ok(Self {
            socket,
            iface: name.to_string(),
        })
    }

    /// The interface held in promiscuous mode.
    pub fn interface(&self) -> &str {
        &self.iface
    }
}

impl AsRawFd for Promiscuous {
    fn as_raw_fd(&self) -> std::os::fd::RawFd {
        self.socket.as_raw_fd()
    }
}

/// `struct ethtool_channels` (linux/ethtool.h).
#[repr(C)]
#[derive(Default)]
struct EthtoolChannels {
    cmd: u32,
    max_rx: u32,
    max_tx: u32,
    max_other: u32,
    max_combined: u32,
    rx_count: u32,
    tx_count: u32,
    other_count: u32,
    combined_count: u32,
}

/// `struct ethtool_drvinfo` (linux/ethtool.h).
#[repr(C)]
#[derive(Default)]
struct EthtoolDrvinfo {
    cmd: u32,
    driver: [u8; 32],
    version: [u8; 32],
    fw_version: [u8; 32],
    bus_info: [u8; 32],
    erom_version: [u8; 32],
    reserved2: [u8; 12],
    n_priv_flags: u32,
    n_stats: u32,
    testinfo_len: u32,
    eedump_len: u32,
    regdump_len: u32,
}

/// A datagram socket to issue interface ioctls on.
fn control_socket(name: &str) -> Result<OwnedFd, IfaceError> {
    // SAFETY: plain socket(2) call; the result is checked.
    let fd = unsafe { libc::socket(libc::AF_INET, libc::SOCK_DGRAM | libc::SOCK_CLOEXEC, 0) };
    if fd < 0 {
        return Err(io_error("socket(AF_INET)", name));
    }
    // SAFETY: `fd` is a fresh descriptor that nothing else owns.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// A zeroed ifreq naming `name`.
pub(crate) fn ifreq_for(name: &str) -> Result<libc::ifreq, IfaceError> {
    let bytes = name.as_bytes();
    if bytes.is_empty() || bytes.len() >= libc::IFNAMSIZ || bytes.contains(&0) {
        return Err(IfaceError::Unknown(name.to_string()));
    }
    // SAFETY: ifreq is plain old data (a name and a union of integers,
    // addresses and a pointer), for which all-zero is a valid value.
    let mut request: libc::ifreq = unsafe { std::mem::zeroed() };
    for (dst, src) in request.ifr_name.iter_mut().zip(bytes) {
        *dst = *src as libc::c_char;
    }
    Ok(request)
}

/// The last OS error, attributed.
fn io_error(what: &'static str, iface: &str) -> IfaceError {
    IfaceError::Io {
        what,
        iface: iface.to_string(),
        source: io::Error::last_os_error(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loopback_has_one_queue_and_an_mtu() {
        assert!(rx_queue_count("lo").unwrap() >= 1);
        assert!(mtu("lo").unwrap() >= 1500);
    }

    #[test]
    fn unknown_and_invalid_names_are_errors() {
        assert!(matches!(
            ifindex("no-such-if0"),
            Err(IfaceError::Unknown(_))
        ));
        assert!(matches!(
            mtu("a-name-far-too-long-for-linux"),
            Err(IfaceError::Unknown(_))
        ));
    }

    #[test]
    fn loopback_holds_127_0_0_1() {
        assert_eq!(
            with_ipv4(std::net::Ipv4Addr::LOCALHOST).unwrap().as_deref(),
            Some("lo")
        );
        assert_eq!(
            with_ipv4(std::net::Ipv4Addr::new(0, 0, 0, 1)).unwrap(),
            None
        );
        assert_eq!(mac("lo").unwrap(), [0; 6]);
    }

    #[test]
    fn an_mtu_above_the_frame_is_refused() {
        let err = check_xdp_mtu("lo", 1792).unwrap_err();
        assert!(matches!(err, IfaceError::MtuTooLarge { .. }), "{err}");
    }
}
