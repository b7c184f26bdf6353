//! The `offload` target: the e1000 data path as the switch daemon runs it for
//! an offloaded VM port ([`OffloadedRings`]), from a hand-over the VMM sends
//! (both as structured values and as raw JSON off the control socket)
//! through transmit and receive rounds while the guest rewrites its rings,
//! descriptors and the CSB (both halves), back to a device that takes the
//! data path back ([`E1000::take_back`]) and carries on.
//!
//! Checked: no crash or hang; a refused hand-over is an error, never a
//! panic; frames handed to the backend fit its slots; the heads the walker
//! publishes stay inside its rings; the device that takes the rings back
//! keeps running.

use e1000_spec::csb::field;
use e1000_spec::regs::*;
use vmm::e1000::offload::{data_path_registers, HandBack, Handover, OffloadedRings};
use vmm::e1000::tx::{TxContext, TxState};
use vmm::e1000::{E1000Config, MonotonicClock, QueueBackend, Trigger, E1000};

use crate::e1000::MAC;
use crate::guest_memory::{GuestMemory, RAM_SIZE};
use crate::input::Input;

/// Operation codes (modulo [`op::COUNT`]).
pub mod op {
    /// A structured hand-over: CSB page u16, register count u8 then per
    /// register (selector u8, value u32), TSO resume (bool, u32, u32).
    pub const HANDOVER: u8 = 0;
    /// A hand-over as JSON bytes: run.
    pub const HANDOVER_JSON: u8 = 1;
    /// Guest memory bytes: address u32, run.
    pub const MEM: u8 = 2;
    /// A CSB field: index u8, value u32.
    pub const CSB_FIELD: u8 = 3;
    /// A transmit round into a backend: slot size u16, capacity u8.
    pub const TRANSMIT: u8 = 4;
    /// A receive round of up to 4 frames: count u8, then a run each.
    pub const RECEIVE: u8 = 5;
    /// The poller wants to sleep: rx_waiting bool.
    pub const PREPARE_SLEEP: u8 = 6;
    /// The poller starts polling.
    pub const ENTER_POLLING: u8 = 7;
    /// guest_csb_on is read.
    pub const GUEST_ON: u8 = 8;
    /// The walker hands back to a device, which runs a round of each path.
    pub const HAND_BACK: u8 = 9;
    /// Number of operation codes.
    pub const COUNT: u8 = 10;
}

/// A line nobody watches.
struct NoLine;

impl Trigger for NoLine {
    fn set_level(&self, _asserted: bool) {}
}

/// The CSB-relative offsets a guest (or a scribbler) may write.
const CSB_FIELDS: [usize; 12] = [
    field::GUEST_TDT,
    field::GUEST_NEED_TXKICK,
    field::GUEST_CSB_ON,
    field::GUEST_RDT,
    field::GUEST_NEED_RXKICK,
    field::HOST_TDH,
    field::HOST_NEED_TXKICK,
    field::HOST_RDH,
    field::HOST_NEED_RXKICK,
    field::HOST_TXCYCLES,
    field::HOST_ISR,
    field::HOST_RXKICK_AT,
];

fn context(input: &mut Input) -> TxContext {
    TxContext {
        ipcss: input.u8(),
        ipcso: input.u8(),
        ipcse: input.u16(),
        tucss: input.u8(),
        tucso: input.u8(),
        tucse: input.u16(),
        paylen: input.u32(),
        tucmd: input.u8(),
        hdrlen: input.u8(),
        mss: input.u16(),
    }
}

fn structured(input: &mut Input) -> Handover {
    let csb_address = u64::from(input.u16()) * 64 % RAM_SIZE;
    let offsets: Vec<u32> = data_path_registers().collect();
    let count = input.u8() % 40;
    let mut registers = Vec::new();
    for _ in 0..count {
        let selector = input.u8();
        // Mostly real data-path registers, sometimes any offset.
        let offset = if selector < 240 {
            offsets[usize::from(selector) % 14]
        } else {
            input.u32()
        };
        registers.push((offset, input.u32()));
    }
    let checksum = context(input);
    let tso = context(input);
    let tso_resume = input.bool().then(|| (input.u32(), input.u32()));
    Handover {
        csb_address,
        registers,
        tx: TxState {
            checksum,
            tso,
            tso_resume,
        },
    }
}

/// A head the walker moved is inside its ring.
fn check_head(walker: &OffloadedRings, head: u32, length: u32) {
    assert!(
        walker.register(head) < walker.register(length) / 16,
        "head {:#x} = {} outside a ring of {} bytes",
        head,
        walker.register(head),
        walker.register(length)
    );
}

/// Runs one input.
pub fn run(data: &[u8]) {
    run_counted(data);
}

/// Runs one input; the frames the walkers transmitted and received.
fn run_counted(data: &[u8]) -> (u32, u32) {
    let mut moved = (0, 0);
    let mut input = Input::new(data);
    let mem = GuestMemory::new(&[input.u16(), input.u16()]);
    let mut walker: Option<(OffloadedRings, u64)> = None;
    let mut device = {
        let mut config = E1000Config::new(MAC).with_csb(true);
        config.mitigation = false;
        E1000::new(config, NoLine, MonotonicClock::default())
    };
    device.set_bus_master(true, &mem);
    let mut steps = 0;
    while !input.done() && steps < 256 {
        steps += 1;
        match input.u8() % op::COUNT {
            op::HANDOVER => {
                let handover = structured(&mut input);
                walker = OffloadedRings::new(&handover, &mem)
                    .ok()
                    .map(|w| (w, handover.csb_address));
            }
            op::HANDOVER_JSON => {
                let json = input.run(4096);
                if let Ok(handover) = serde_json::from_slice::<Handover>(json) {
                    walker = OffloadedRings::new(&handover, &mem)
                        .ok()
                        .map(|w| (w, handover.csb_address));
                }
            }
            op::MEM => {
                let at = u64::from(input.u32()) % RAM_SIZE;
                let bytes = input.run(512);
                mem.poke(at, bytes);
            }
            op::CSB_FIELD => {
                let which = CSB_FIELDS[usize::from(input.u8()) % CSB_FIELDS.len()];
                let value = input.u32();
                if let Some((_, csb)) = &walker {
                    mem.poke_u32(csb + which as u64, value);
                }
            }
            op::TRANSMIT => {
                let slot = 64 + usize::from(input.u16()) % 9000;
                let capacity = 1 + usize::from(input.u8());
                if let Some((w, _)) = walker.as_mut() {
                    let mut backend = QueueBackend::new(slot, capacity);
                    let (outcome, _causes) = w.transmit(&mem, &mut backend);
                    assert!(outcome.frames as usize <= capacity);
                    moved.0 += outcome.frames;
                    assert!(backend.transmitted.iter().all(|f| f.len() <= slot));
                    if outcome.descriptors > 0 {
                        check_head(w, TDH, TDLEN);
                    }
                }
            }
            op::RECEIVE => {
                let count = input.u8() % 5;
                let mut backend = QueueBackend::new(2048, 16);
                for _ in 0..count {
                    backend.push_rx(input.run(2048));
                }
                if let Some((w, _)) = walker.as_mut() {
                    let (outcome, _causes) = w.receive(&mem, &mut backend);
                    assert!(outcome.frames + outcome.dropped <= u32::from(count));
                    moved.1 += outcome.frames;
                    if outcome.frames > 0 {
                        check_head(w, RDH, RDLEN);
                    }
                }
            }
            op::PREPARE_SLEEP => {
                let rx_waiting = input.bool();
                if let Some((w, _)) = walker.as_mut() {
                    w.prepare_sleep(&mem, rx_waiting);
                }
            }
            op::ENTER_POLLING => {
                if let Some((w, _)) = walker.as_mut() {
                    w.enter_polling(&mem);
                }
            }
            op::GUEST_ON => {
                if let Some((w, _)) = walker.as_mut() {
                    w.guest_on(&mem);
                }
            }
            _ => {
                let back: HandBack = match &walker {
                    Some((w, _)) => w.hand_back(),
                    None => HandBack {
                        tdh: input.u32(),
                        tdt: input.u32(),
                        rdh: input.u32(),
                        rdt: input.u32(),
                        statistics: (0..input.u8() % 80).map(|_| input.u32()).collect(),
                        ..HandBack::default()
                    },
                };
                device.take_back(&back, &mem);
                let mut backend = QueueBackend::new(2048, 64);
                device.process_tx(&mem, &mut backend);
                device.process_rx(&mem, &mut backend);
                let _ = device.handover(&mem);
            }
        }
    }
    moved
}

#[cfg(test)]
mod tests {
    /// The working seed reaches the rings: frames move both ways.
    #[test]
    fn the_working_seed_moves_frames() {
        let (_, _, bytes) = crate::seeds::all()
            .into_iter()
            .find(|(target, name, _)| *target == "offload" && *name == "working")
            .unwrap();
        assert_eq!(super::run_counted(&bytes), (2, 2));
    }
}
