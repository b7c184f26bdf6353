//! The forwarding batch: read up to [`MAX_BATCH`] frames from one source port,
//! look every frame up, group the frames per destination, then deliver each
//! group with one call (one lock, one publish, at most one kick per
//! destination), and finally give the source its slots back.

use super::lookup::{Destination, EthHeader, PortId};
use super::port::{FrameRef, Port};
use super::switch::Switch;
use crate::counters::DropReason;

/// Most frames read from a source at once.
pub const MAX_BATCH: usize = 512;

/// Per-thread buffers reused across batches.
#[derive(Default)]
pub struct Scratch {
    frames: Vec<FrameRef>,
    per_destination: Vec<Vec<u16>>,
    touched: Vec<PortId>,
}

impl Scratch {
    /// Empty scratch space.
    pub fn new() -> Scratch {
        Scratch {
            frames: Vec::with_capacity(MAX_BATCH),
            per_destination: Vec::new(),
            touched: Vec::new(),
        }
    }

    #[inline]
    fn push(&mut self, dest: PortId, frame: u16) {
        let d = dest as usize;
        if d >= self.per_destination.len() {
            self.per_destination
                .resize_with(d + 1, || Vec::with_capacity(MAX_BATCH));
        }
        let list = &mut self.per_destination[d];
        if list.is_empty() {
            self.touched.push(dest);
        }
        list.push(frame);
    }
}

/// Forwards one batch from `source`, a port of `switch`. Returns the number
/// of frames read from the source (0 when it had none).
pub fn forward_batch(switch: &Switch, source: &Port, scratch: &mut Scratch, now: u32) -> usize {
    scratch.frames.clear();
    let n = source
        .io
        .receive(&mut scratch.frames, MAX_BATCH, &source.counters);
    if n == 0 {
        source.io.release(&source.counters);
        return 0;
    }
    let table = switch.ports();
    let lookup = switch.lookup();
    let (mut same_port, mut filtered, mut nowhere) = (0u64, 0u64, 0u64);
    for i in 0..scratch.frames.len() {
        let frame = scratch.frames[i];
        // SAFETY: PortIo::receive only returns frames of at least 14 bytes
        // readable until release.
        let header = EthHeader::parse(&unsafe { frame.header() });
        match lookup.lookup(&header, source.id, now) {
            Destination::Port(dest) if dest == source.id => same_port += 1,
            Destination::Port(dest) if table.get(dest).is_some() => scratch.push(dest, i as u16),
            Destination::Drop => filtered += 1,
            // Flood, or a learned port that has just gone away.
            _ => {
                let mut copies = 0;
                for port in &table.active {
                    if port.id != source.id {
                        scratch.push(port.id, i as u16);
                        copies += 1;
                    }
                }
                if copies == 0 {
                    nowhere += 1;
                }
            }
        }
    }
    for t in 0..scratch.touched.len() {
        let dest = scratch.touched[t];
        let list = &mut scratch.per_destination[dest as usize];
        if let Some(port) = table.get(dest) {
            port.io.deliver(&scratch.frames, list, &port.counters);
        }
        list.clear();
    }
    scratch.touched.clear();
    source.io.release(&source.counters);
    source.counters.add_drops(DropReason::SamePort, same_port);
    source.counters.add_drops(DropReason::Filtered, filtered);
    source
        .counters
        .add_drops(DropReason::NoDestination, nowhere);
    n
}
