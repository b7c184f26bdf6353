//! The client's side of the capture stream: bytes as they arrive, split
//! into whole records (`switch_port::protocol::capture`).

use switch_port::protocol::capture::{RecordError, RecordHeader, RECORD_HEADER};

/// Accumulates stream bytes and hands out whole records.
#[derive(Default)]
pub struct RecordSplitter {
    buf: Vec<u8>,
    at: usize,
}

impl RecordSplitter {
    /// Appends bytes read from the stream.
    pub fn extend(&mut self, bytes: &[u8]) {
        if self.at > 0 && self.at * 2 >= self.buf.len() {
            self.buf.drain(..self.at);
            self.at = 0;
        }
        self.buf.extend_from_slice(bytes);
    }

    /// The next whole record (its header and captured bytes), `None` until
    /// one has arrived whole; an invalid header is an error (the stream is
    /// then lost).
    pub fn next_record(&mut self) -> Result<Option<(RecordHeader, &[u8])>, RecordError> {
        let rest = &self.buf[self.at..];
        let Some(header) = rest.first_chunk::<RECORD_HEADER>() else {
            return Ok(None);
        };
        let h = RecordHeader::decode(header)?;
        let end = RECORD_HEADER + h.cap_len as usize;
        if rest.len() < end {
            return Ok(None);
        }
        let start = self.at + RECORD_HEADER;
        self.at += end;
        Ok(Some((h, &self.buf[start..self.at])))
    }
}

#[cfg(test)]
mod tests {
    use switch_port::protocol::capture::{DIR_RX, KIND_FRAME, KIND_PROGRESS};

    use super::*;

    #[test]
    fn records_split_across_reads_come_out_whole() {
        let frame = RecordHeader {
            kind: KIND_FRAME,
            dir: DIR_RX,
            ts_ns: 7,
            orig_len: 60,
            cap_len: 3,
            dropped: 0,
        };
        let progress = RecordHeader {
            kind: KIND_PROGRESS,
            dir: 0,
            ts_ns: 0,
            orig_len: 0,
            cap_len: 0,
            dropped: 9,
        };
        let mut stream = frame.encode().to_vec();
        stream.extend_from_slice(&[1, 2, 3]);
        stream.extend_from_slice(&progress.encode());
        let mut s = RecordSplitter::default();
        let mut seen = Vec::new();
        for byte in stream {
            s.extend(&[byte]);
            while let Some((h, data)) = s.next_record().unwrap() {
                seen.push((h, data.to_vec()));
            }
        }
        assert_eq!(seen, [(frame, vec![1, 2, 3]), (progress, vec![])]);
        s.extend(&[0xff; RECORD_HEADER]);
        assert!(s.next_record().is_err());
    }
}
