//! `conform`: observes what a stock e1000 driver relies on and prints it as
//! one JSON document, so that the same image run under our VMM and under
//! QEMU's e1000 can be compared field by field (the e2e test `vm_conform`
//! and docs/e1000-differences.md).
//!
//! It starts from the device as the platform left it (no bring-up before):
//! power-on register values, CTRL.RST, the EEPROM ([`probe::eeprom`]), the
//! PHY and link ([`probe::phy_and_link`]), the interrupt registers and
//! line ([`probe::interrupts`]), which bits registers keep
//! ([`probe::masks`]), then with a peer at `dst=` (the test):
//! receive filtering and the transmit offloads ([`exchange`]), and the
//! statistics registers after that exchange.
//!
//! Output: a line `conform: begin`, the document as one line starting with
//! `{"result":"conform"`, a line `conform: end`. Nothing else is printed in
//! between.

mod exchange;
pub mod frames;
mod probe;

use crate::apic;
use crate::args::{Config, Mac};
use crate::e1000::desc::DMA;
use crate::e1000::regs::Regs;
use crate::e1000::rx::RxRing;
use crate::e1000::tx::TxRing;
use crate::irq;
use crate::json::JsonObject;
use crate::pci::E1000Function;
use crate::serial::Serial;
use crate::{println, tsc, EXIT_OK, EXIT_SETUP, EXIT_WORKLOAD};
use e1000_spec::stats::*;
use exchange::Link;

/// The statistics registers, by name (the high halves of the 64-bit
/// counters are read right after their low halves).
const STATS: [(&str, u32); 58] = [
    ("CRCERRS", CRCERRS),
    ("ALGNERRC", ALGNERRC),
    ("SYMERRS", SYMERRS),
    ("RXERRC", RXERRC),
    ("MPC", MPC),
    ("SCC", SCC),
    ("ECOL", ECOL),
    ("MCC", MCC),
    ("LATECOL", LATECOL),
    ("COLC", COLC),
    ("DC", DC),
    ("TNCRS", TNCRS),
    ("SEC", SEC),
    ("CEXTERR", CEXTERR),
    ("RLEC", RLEC),
    ("XONRXC", XONRXC),
    ("XONTXC", XONTXC),
    ("XOFFRXC", XOFFRXC),
    ("XOFFTXC", XOFFTXC),
    ("FCRUC", FCRUC),
    ("PRC64", PRC64),
    ("PRC127", PRC127),
    ("PRC255", PRC255),
    ("PRC511", PRC511),
    ("PRC1023", PRC1023),
    ("PRC1522", PRC1522),
    ("GPRC", GPRC),
    ("BPRC", BPRC),
    ("MPRC", MPRC),
    ("GPTC", GPTC),
    ("GORCL", GORCL),
    ("GORCH", GORCH),
    ("GOTCL", GOTCL),
    ("GOTCH", GOTCH),
    ("RNBC", RNBC),
    ("RUC", RUC),
    ("RFC", RFC),
    ("ROC", ROC),
    ("RJC", RJC),
    ("MGTPRC", MGTPRC),
    ("MGTPDC", MGTPDC),
    ("MGTPTC", MGTPTC),
    ("TORL", TORL),
    ("TORH", TORH),
    ("TOTL", TOTL),
    ("TOTH", TOTH),
    ("TPR", TPR),
    ("TPT", TPT),
    ("PTC64", PTC64),
    ("PTC127", PTC127),
    ("PTC255", PTC255),
    ("PTC511", PTC511),
    ("PTC1023", PTC1023),
    ("PTC1522", PTC1522),
    ("MPTC", MPTC),
    ("BPTC", BPTC),
    ("TSCTC", TSCTC),
    ("TSCTFC", TSCTFC),
];

/// Reads (and so clears) every statistics register; writes `key` with
/// all of them, or with only the non-zero ones.
fn statistics(o: &mut JsonObject<'_, Serial>, key: &str, regs: &Regs, only_nonzero: bool) {
    o.object(key, |o| {
        for (name, offset) in STATS {
            let value = regs.read(offset);
            if value != 0 || !only_nonzero {
                o.u64(name, value as u64);
            }
        }
    });
}

/// Runs the workload on the device at `regs` (not brought up), its
/// interrupt on IOAPIC `pin`; returns the exit code.
pub fn run(config: &Config, pci: &E1000Function, regs: Regs, pin: u8) -> u8 {
    let Some(dma) = DMA.take() else {
        super::report_setup_error("conform", format_args!("DMA memory already taken"));
        return EXIT_SETUP;
    };
    let tx = TxRing::new(&mut dma.tx_desc, &mut dma.tx_buf);
    let rx = RxRing::new(&mut dma.rx_desc, &mut dma.rx_buf);
    println!(
        "guest: conform e1000 at 00:{:02x}.{} bar0 {:#x} pin {} peer {} tsc {} kHz",
        pci.function.device,
        pci.function.function,
        pci.bar0,
        pin,
        Mac(config.dst),
        tsc::khz()
    );
    println!("conform: begin");
    let mut serial = Serial;
    let mut o = JsonObject::begin(&mut serial);
    o.str("result", "conform");
    probe::reset(&mut o, &regs);
    let mac = probe::eeprom(&mut o, &regs);
    probe::phy_and_link(&mut o, &regs);
    apic::ioapic_route_edge(pin, irq::VECTOR_NIC, apic::id());
    probe::interrupts(&mut o, &regs);
    probe::masks(&mut o, &regs);
    let mut link = Link {
        regs: &regs,
        tx,
        rx,
        mac,
        peer: config.dst,
        ready_retries: 0,
        tx_timeouts: 0,
    };
    link.setup();
    statistics(&mut o, "stats_before_exchange", &regs, true);
    link.receive_phases(&mut o);
    link.transmit_offloads(&mut o);
    link.end();
    // Let the last frame's counters settle.
    tsc::spin_us(2000);
    statistics(&mut o, "stats", &regs, false);
    let (retries, timeouts) = (link.ready_retries, link.tx_timeouts);
    o.display("mac", Mac(mac))
        .u64("ready_retries", retries)
        .u64("tx_timeouts", timeouts);
    o.end();
    println!();
    println!("conform: end");
    if timeouts == 0 {
        EXIT_OK
    } else {
        EXIT_WORKLOAD
    }
}
