//! Capture files: pcapng (one interface, named after the port, nanosecond
//! timestamps, the direction of each packet in its `epb_flags`) or classic
//! pcap with nanosecond timestamps. Both are what `tcpdump -r` and
//! `tshark -r` read, from a file or a pipe.

use std::io::{self, Write};

/// Ethernet link type.
const LINKTYPE_ETHERNET: u16 = 1;

/// Which file format.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    /// pcapng, with the port's name and each packet's direction.
    Pcapng,
    /// Classic pcap (nanosecond timestamps), for older readers.
    Pcap,
}

/// Writes one capture file.
pub struct CaptureWriter<W: Write> {
    out: W,
    format: Format,
}

fn pad4(n: usize) -> usize {
    n.next_multiple_of(4)
}

/// Appends a pcapng option (code, value, padding).
fn option(block: &mut Vec<u8>, code: u16, value: &[u8]) {
    block.extend_from_slice(&code.to_le_bytes());
    block.extend_from_slice(&(value.len() as u16).to_le_bytes());
    block.extend_from_slice(value);
    block.resize(pad4(block.len()), 0);
}

/// Frames a pcapng block body with its type and lengths.
fn block(kind: u32, body: &[u8]) -> Vec<u8> {
    let total = (12 + body.len()) as u32;
    let mut b = Vec::with_capacity(total as usize);
    b.extend_from_slice(&kind.to_le_bytes());
    b.extend_from_slice(&total.to_le_bytes());
    b.extend_from_slice(body);
    b.extend_from_slice(&total.to_le_bytes());
    b
}

impl<W: Write> CaptureWriter<W> {
    /// Writes the file header for a capture of `interface` keeping `snaplen`
    /// bytes of each frame.
    pub fn new(mut out: W, format: Format, interface: &str, snaplen: u32) -> io::Result<Self> {
        match format {
            Format::Pcapng => {
                // Section header: byte-order magic, version 1.0, unknown length.
                let mut shb = Vec::new();
                shb.extend_from_slice(&0x1A2B_3C4Du32.to_le_bytes());
                shb.extend_from_slice(&1u16.to_le_bytes());
                shb.extend_from_slice(&0u16.to_le_bytes());
                shb.extend_from_slice(&(-1i64).to_le_bytes());
                option(&mut shb, 4, b"vswitch"); // shb_userappl
                shb.extend_from_slice(&[0; 4]); // opt_endofopt
                out.write_all(&block(0x0A0D_0D0A, &shb))?;
                // Interface description: Ethernet, the snap length, the
                // port's name, nanosecond timestamps.
                let mut idb = Vec::new();
                idb.extend_from_slice(&LINKTYPE_ETHERNET.to_le_bytes());
                idb.extend_from_slice(&0u16.to_le_bytes());
                idb.extend_from_slice(&snaplen.to_le_bytes());
                option(&mut idb, 2, interface.as_bytes()); // if_name
                option(&mut idb, 9, &[9]); // if_tsresol: 10^-9
                idb.extend_from_slice(&[0; 4]);
                out.write_all(&block(1, &idb))?;
            }
            Format::Pcap => {
                let mut h = Vec::with_capacity(24);
                h.extend_from_slice(&0xA1B2_3C4Du32.to_le_bytes()); // nanoseconds
                h.extend_from_slice(&2u16.to_le_bytes());
                h.extend_from_slice(&4u16.to_le_bytes());
                h.extend_from_slice(&0i32.to_le_bytes());
                h.extend_from_slice(&0u32.to_le_bytes());
                h.extend_from_slice(&snaplen.to_le_bytes());
                h.extend_from_slice(&u32::from(LINKTYPE_ETHERNET).to_le_bytes());
                out.write_all(&h)?;
            }
        }
        Ok(CaptureWriter { out, format })
    }

    /// Writes one packet: `data` (the captured bytes) of an `orig_len`-byte
    /// frame seen at `ts_ns`, inbound (received from the port) or not.
    pub fn packet(
        &mut self,
        ts_ns: u64,
        orig_len: u32,
        data: &[u8],
        inbound: bool,
    ) -> io::Result<()> {
        match self.format {
            Format::Pcapng => {
                let mut epb = Vec::with_capacity(32 + data.len());
                epb.extend_from_slice(&0u32.to_le_bytes()); // interface 0
                epb.extend_from_slice(&((ts_ns >> 32) as u32).to_le_bytes());
                epb.extend_from_slice(&(ts_ns as u32).to_le_bytes());
                epb.extend_from_slice(&(data.len() as u32).to_le_bytes());
                epb.extend_from_slice(&orig_len.to_le_bytes());
                epb.extend_from_slice(data);
                epb.resize(pad4(epb.len()), 0);
                // epb_flags bits 0-1: 01 inbound, 10 outbound.
                let flags: u32 = if inbound { 1 } else { 2 };
                option(&mut epb, 2, &flags.to_le_bytes());
                epb.extend_from_slice(&[0; 4]);
                self.out.write_all(&block(6, &epb))
            }
            Format::Pcap => {
                let mut h = [0u8; 16];
                h[0..4].copy_from_slice(&((ts_ns / 1_000_000_000) as u32).to_le_bytes());
                h[4..8].copy_from_slice(&((ts_ns % 1_000_000_000) as u32).to_le_bytes());
                h[8..12].copy_from_slice(&(data.len() as u32).to_le_bytes());
                h[12..16].copy_from_slice(&orig_len.to_le_bytes());
                self.out.write_all(&h)?;
                self.out.write_all(data)
            }
        }
    }

    /// Flushes what is written so far (a reader on a pipe sees it now).
    pub fn flush(&mut self) -> io::Result<()> {
        self.out.flush()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn blocks_are_whole_and_aligned() {
        let mut w = CaptureWriter::new(Vec::new(), Format::Pcapng, "vale0:a", 65535).unwrap();
        w.packet(1, 61, &[0xAB; 61], true).unwrap();
        let bytes = w.out;
        // Walk the blocks: each total length matches at both ends.
        let mut at = 0;
        let mut kinds = Vec::new();
        while at < bytes.len() {
            let len = u32::from_le_bytes(bytes[at + 4..at + 8].try_into().unwrap()) as usize;
            assert_eq!(len % 4, 0);
            let trailer = &bytes[at + len - 4..at + len];
            assert_eq!(
                u32::from_le_bytes(trailer.try_into().unwrap()) as usize,
                len
            );
            kinds.push(u32::from_le_bytes(bytes[at..at + 4].try_into().unwrap()));
            at += len;
        }
        assert_eq!(kinds, [0x0A0D_0D0A, 1, 6]);
        let mut p = CaptureWriter::new(Vec::new(), Format::Pcap, "x", 100).unwrap();
        p.packet(1_500_000_000, 60, &[0; 60], false).unwrap();
        assert_eq!(p.out.len(), 24 + 16 + 60);
    }
}
