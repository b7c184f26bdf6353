//! `pong`: answers every ping addressed to us (or to a group address) with
//! a pong (warm-up pings too, which do not count toward `count`):
//! `testframe::make_pong` in place when the ping was unicast to us;
//! for a broadcast ping the pong is rebuilt with our MAC as its source
//! (a group address must not be a source). Stops after `count` pongs, at
//! the deadline, or after [`IDLE_STOP_MS`] without pings once they began
//! (time with the link down does not count: pings stop while the switch
//! daemon is away). Pings that still arrive while the link is down are not
//! answered.
//!
//! With `ip=A.B.C.D/N` it also answers a host stack on that address
//! ([`crate::ipv4_echo`]): ARP requests, ICMP echo requests, and every UDP
//! datagram (sent back to its source); these answers count as activity
//! too, and anything else that is not a test frame is ignored and counted
//! by reason.

use super::ping::WARMUP_SEQ_BASE;
use super::{print_result, wait_for_rx, Env, IDLE_STOP_MS};
use crate::counters::COUNTERS;
use crate::ipv4_echo::{self, Answer, Ignored};
use crate::irq::with_driver;
use crate::json::JsonObject;
use crate::serial::Serial;
use crate::tsc::{self, Deadline};
use crate::{println, EXIT_OK, EXIT_WORKLOAD};
use testframe::{FrameError, Header, Kind};

/// How often an idle pong looks at the link.
const LINK_POLL_MS: u64 = 100;
/// Pings handled per pass before the loop checks its clock.
const PONG_BUDGET: u32 = 256;

#[derive(Default)]
struct PongCounts {
    answered: u64,
    bytes: u64,
    not_for_us: u64,
    other_kind: u64,
    foreign: u64,
    corrupt: u64,
    tx_full: u64,
    link_down: u64,
    /// LSC interrupts seen at the last look.
    link_changes: u64,
    warmup: u64,
    first: u64,
    last: u64,
    last_activity: u64,
    ip: IpCounts,
}

/// What the `ip=` answers did.
#[derive(Default)]
struct IpCounts {
    arp: u64,
    icmp_echo: u64,
    udp_echo: u64,
    other_ethertype: u64,
    not_for_us: u64,
    malformed: u64,
    bad_checksum: u64,
    unsupported: u64,
    other_protocol: u64,
    too_long: u64,
    tx_full: u64,
    link_down: u64,
}

impl IpCounts {
    fn answered(&self) -> u64 {
        self.arp + self.icmp_echo + self.udp_echo
    }

    fn count(&mut self, outcome: Result<Answer, Ignored>) {
        *match outcome {
            Ok(Answer::Arp) => &mut self.arp,
            Ok(Answer::IcmpEcho) => &mut self.icmp_echo,
            Ok(Answer::UdpEcho) => &mut self.udp_echo,
            Err(Ignored::OtherEtherType) => &mut self.other_ethertype,
            Err(Ignored::NotForUs) => &mut self.not_for_us,
            Err(Ignored::Malformed) => &mut self.malformed,
            Err(Ignored::BadChecksum) => &mut self.bad_checksum,
            Err(Ignored::Unsupported) => &mut self.unsupported,
            Err(Ignored::OtherProtocol) => &mut self.other_protocol,
            Err(Ignored::TooLong) => &mut self.too_long,
        } += 1;
    }

    fn write(&self, o: &mut JsonObject<'_, Serial>) {
        o.u64("arp", self.arp)
            .u64("icmp_echo", self.icmp_echo)
            .u64("udp_echo", self.udp_echo)
            .object("ignored", |o| {
                o.u64("other_ethertype", self.other_ethertype)
                    .u64("not_for_us", self.not_for_us)
                    .u64("malformed", self.malformed)
                    .u64("bad_checksum", self.bad_checksum)
                    .u64("unsupported", self.unsupported)
                    .u64("other_protocol", self.other_protocol)
                    .u64("too_long", self.too_long)
                    .u64("tx_full", self.tx_full)
                    .u64("link_down", self.link_down);
            });
    }
}

/// Runs the workload; returns the exit code.
pub fn run(env: &Env) -> u8 {
    let config = env.config;
    let mac = env.mac;
    let deadline = env.deadline();
    let baseline = COUNTERS.snapshot();
    let mut c = PongCounts::default();
    if let Some(net) = &config.ip {
        println!("guest: answering ARP, ICMP echo and UDP on {net}");
    }
    loop {
        let handled = with_driver(|d| {
            d.service_tx();
            let mut n = 0;
            while n < PONG_BUDGET {
                let Some(completion) = d.rx.poll() else { break };
                n += 1;
                let frame = d.rx.frame(&completion);
                let len = frame.len();
                if let Some(net) = config.ip.as_ref().filter(|_| !is_test_frame(frame)) {
                    if !d.link_up {
                        c.ip.link_down += 1;
                    } else if d.tx.free() == 0 {
                        c.ip.tx_full += 1;
                    } else {
                        let outcome = ipv4_echo::reply(frame, mac, net, d.tx.next_buffer());
                        if let Ok((_, reply_len)) = outcome {
                            d.queue_frame(reply_len as u16);
                            c.last_activity = tsc::now();
                        }
                        c.ip.count(outcome.map(|(answer, _)| answer));
                    }
                    d.rx_consumed();
                    continue;
                }
                match testframe::parse(frame) {
                    Ok(ping) if ping.kind == Kind::Ping => {
                        if ping.dst != mac && ping.dst[0] & 1 == 0 {
                            c.not_for_us += 1;
                        } else if !d.link_up {
                            c.link_down += 1;
                        } else if d.tx.free() == 0 {
                            c.tx_full += 1;
                        } else {
                            let buf = d.tx.next_buffer();
                            if ping.dst == mac {
                                buf[..len].copy_from_slice(frame);
                                let _ = testframe::make_pong(&mut buf[..len]);
                            } else {
                                let pong = Header {
                                    dst: ping.src,
                                    src: mac,
                                    kind: Kind::Pong,
                                    ..ping
                                };
                                let _ = testframe::write_frame(&mut buf[..len], &pong);
                            }
                            d.queue_frame(len as u16);
                            let now = tsc::now();
                            c.last_activity = now;
                            if ping.seq >= WARMUP_SEQ_BASE {
                                c.warmup += 1;
                            } else {
                                if c.answered == 0 {
                                    c.first = now;
                                }
                                c.last = now;
                                c.answered += 1;
                                c.bytes += len as u64;
                            }
                        }
                    }
                    Ok(_) => c.other_kind += 1,
                    Err(FrameError::Foreign) => c.foreign += 1,
                    Err(_) => c.corrupt += 1,
                }
                d.rx_consumed();
            }
            d.flush_tx();
            n
        });
        if config.count.is_some_and(|n| c.answered >= n) || deadline.passed() {
            break;
        }
        let (link_up, link_changes) = with_driver(|d| (d.link_up, d.causes.link_changes));
        if !link_up || link_changes != c.link_changes {
            // Silence while the link is (or was) down is not idleness.
            c.link_changes = link_changes;
            c.last_activity = tsc::now();
        }
        if handled == 0 {
            let wait = if c.answered + c.warmup + c.ip.answered() == 0 {
                deadline
            } else {
                let silence = tsc::now().saturating_sub(c.last_activity);
                let left = tsc::ms_to_ticks(config.idle_ms.unwrap_or(IDLE_STOP_MS))
                    .saturating_sub(silence);
                if left == 0 {
                    break;
                }
                // Short waits: an LSC interrupt does not end a wait for
                // frames, and the link's state is looked at between them.
                let left = left.min(tsc::ms_to_ticks(LINK_POLL_MS));
                Deadline::after_ticks(left.min(deadline.tsc().saturating_sub(tsc::now())))
            };
            wait_for_rx(wait);
        }
    }
    // Let the last pongs leave before the VM exits.
    let drain = Deadline::after_ms(100);
    while with_driver(|d| {
        d.flush_tx();
        d.service_tx();
        d.tx.in_flight()
    }) > 0
        && !drain.passed()
    {
        core::hint::spin_loop();
    }
    with_driver(|d| d.rx_return_all());
    let ticks = c.last - c.first;
    print_result(env, &baseline, |o| {
        o.u64("frames", c.answered)
            .u64("bytes", c.bytes)
            .f64("seconds", tsc::ticks_to_secs(ticks), 6)
            .f64("pps", super::rate(c.answered.saturating_sub(1), ticks), 1)
            .u64("warmup", c.warmup)
            .object("errors", |e| {
                e.u64("not_for_us", c.not_for_us)
                    .u64("other_kind", c.other_kind)
                    .u64("foreign", c.foreign)
                    .u64("corrupt", c.corrupt)
                    .u64("tx_full", c.tx_full)
                    .u64("link_down", c.link_down);
            });
        if let Some(net) = &config.ip {
            o.object("ip", |o| {
                o.display("addr", net);
                c.ip.write(o);
            });
        }
    });
    if c.answered > 0 || c.ip.answered() > 0 {
        EXIT_OK
    } else {
        EXIT_WORKLOAD
    }
}

/// Whether `frame` carries the test frames' EtherType.
fn is_test_frame(frame: &[u8]) -> bool {
    frame.len() >= 14 && u16::from_be_bytes([frame[12], frame[13]]) == testframe::ETHERTYPE
}
