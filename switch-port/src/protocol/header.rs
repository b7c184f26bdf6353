//! The 16-byte header in front of every control message (see the layout in
//! [`super`]) and its validation.

/// Header magic.
pub const MAGIC: [u8; 4] = *b"VSWC";
/// Protocol version.
pub const VERSION: u16 = 1;
/// Header length.
pub const HEADER_LEN: usize = 16;
/// Direction value of a request.
pub const DIR_REQUEST: u16 = 1;
/// Direction value of a response.
pub const DIR_RESPONSE: u16 = 2;
/// Largest request payload.
pub const MAX_REQUEST: usize = 64 * 1024;
/// Largest response payload.
pub const MAX_RESPONSE: usize = 16 * 1024 * 1024;
/// Number of fds attached to [`Response::PortOpened`](super::Response::PortOpened).
pub const PORT_FDS: usize = 3;
/// Number of fds attached to [`Request::OffloadPort`](super::Request::OffloadPort).
pub const OFFLOAD_FDS: usize = 4;

/// A header that does not belong to this protocol.
#[derive(Debug, thiserror::Error, Clone, PartialEq, Eq)]
pub enum HeaderError {
    /// Wrong magic.
    #[error("bad magic: not a vswitch control message")]
    Magic,
    /// Other protocol version.
    #[error("protocol version {0} is not supported (this side speaks {VERSION})")]
    Version(u16),
    /// Unexpected direction.
    #[error("unexpected message direction {0}")]
    Direction(u16),
    /// Payload too large.
    #[error("payload of {0} bytes is larger than allowed")]
    TooLong(usize),
    /// Wrong number of fds announced.
    #[error("{0} file descriptors announced, expected 0, {PORT_FDS} (a port's) or {OFFLOAD_FDS} (an offload's)")]
    Fds(u32),
}

/// A decoded message header.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Header {
    /// Request or response.
    pub direction: u16,
    /// Payload bytes.
    pub payload_len: usize,
    /// File descriptors attached.
    pub fds: u32,
}

impl Header {
    /// Encodes the header.
    pub fn encode(&self) -> [u8; HEADER_LEN] {
        let mut out = [0u8; HEADER_LEN];
        out[0..4].copy_from_slice(&MAGIC);
        out[4..6].copy_from_slice(&VERSION.to_le_bytes());
        out[6..8].copy_from_slice(&self.direction.to_le_bytes());
        out[8..12].copy_from_slice(&(self.payload_len as u32).to_le_bytes());
        out[12..16].copy_from_slice(&self.fds.to_le_bytes());
        out
    }

    /// Decodes and validates a header expected to travel in `direction`.
    pub fn decode(bytes: &[u8; HEADER_LEN], direction: u16) -> Result<Header, HeaderError> {
        if bytes[0..4] != MAGIC {
            return Err(HeaderError::Magic);
        }
        let version = u16::from_le_bytes([bytes[4], bytes[5]]);
        if version != VERSION {
            return Err(HeaderError::Version(version));
        }
        let dir = u16::from_le_bytes([bytes[6], bytes[7]]);
        if dir != direction {
            return Err(HeaderError::Direction(dir));
        }
        let payload_len = u32::from_le_bytes([bytes[8], bytes[9], bytes[10], bytes[11]]) as usize;
        let limit = if direction == DIR_REQUEST {
            MAX_REQUEST
        } else {
            MAX_RESPONSE
        };
        if payload_len > limit {
            return Err(HeaderError::TooLong(payload_len));
        }
        let fds = u32::from_le_bytes([bytes[12], bytes[13], bytes[14], bytes[15]]);
        let fds_ok = match direction {
            DIR_REQUEST => fds == 0 || fds as usize == OFFLOAD_FDS,
            _ => fds == 0 || fds as usize == PORT_FDS,
        };
        if !fds_ok {
            return Err(HeaderError::Fds(fds));
        }
        Ok(Header {
            direction: dir,
            payload_len,
            fds,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_round_trip_and_checks() {
        let h = Header {
            direction: DIR_REQUEST,
            payload_len: 10,
            fds: 0,
        };
        assert_eq!(Header::decode(&h.encode(), DIR_REQUEST).unwrap(), h);
        assert_eq!(
            Header::decode(&h.encode(), DIR_RESPONSE),
            Err(HeaderError::Direction(1))
        );
        let mut bad = h.encode();
        bad[0] = b'X';
        assert_eq!(Header::decode(&bad, DIR_REQUEST), Err(HeaderError::Magic));
        let big = Header {
            direction: DIR_REQUEST,
            payload_len: MAX_REQUEST + 1,
            fds: 0,
        };
        assert!(matches!(
            Header::decode(&big.encode(), DIR_REQUEST),
            Err(HeaderError::TooLong(_))
        ));
        let fds = Header {
            direction: DIR_REQUEST,
            payload_len: 1,
            fds: 3,
        };
        assert_eq!(
            Header::decode(&fds.encode(), DIR_REQUEST),
            Err(HeaderError::Fds(3))
        );
    }
}
