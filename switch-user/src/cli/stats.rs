//! `vswitch stats`: counters once, or every few seconds with rates.

use std::collections::HashMap;
use std::path::Path;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};

use switch_port::control::client::Connection;
use switch_port::names::PortName;
use switch_port::protocol::{AccessCounters, CounterSnapshot, PortStats, Request, Response};
use switch_user::metrics::render::{render, Scrape};

/// Arguments of `vswitch stats`.
#[derive(clap::Args)]
pub struct StatsArgs {
    /// One port (SWITCH:PORT); every port when absent.
    port: Option<PortName>,
    /// Output format: a table, JSON (every counter, as the daemon reports
    /// them), or the Prometheus text format (what `daemon --metrics-listen`
    /// serves; not with --watch).
    #[arg(long, value_enum, default_value_t = Format::Table)]
    format: Format,
    /// Same as --format json.
    #[arg(long, conflicts_with = "format")]
    json: bool,
    /// Repeat every SECS seconds, with rates since the previous sample (Ctrl-C stops).
    #[arg(long, value_name = "SECS")]
    watch: Option<f64>,
}

/// How `vswitch stats` prints.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    /// A table.
    Table,
    /// JSON.
    Json,
    /// The Prometheus text format.
    Prometheus,
}

/// The daemon's stats answer for `port` (or every port).
pub fn fetch(conn: &mut Connection, port: &Option<PortName>) -> Result<Scrape> {
    let (response, _) = conn.call(&Request::Stats { port: port.clone() })?;
    if let Response::Error { message, .. } = &response {
        anyhow::bail!("{message}");
    }
    Scrape::from_response(response).context("unexpected answer to stats")
}

fn print_table(ports: &[PortStats]) {
    println!(
        "{:<24} {:<5} {:>12} {:>14} {:>12} {:>14} {:>10} {:>10} {:>10}",
        "port", "kind", "rx pkts", "rx bytes", "tx pkts", "tx bytes", "drops", "kicks", "no kick"
    );
    for p in ports {
        let c = &p.counters;
        println!(
            "{:<24} {:<5} {:>12} {:>14} {:>12} {:>14} {:>10} {:>10} {:>10}",
            p.name.as_str(),
            format!("{:?}", p.kind).to_lowercase(),
            c.rx_packets,
            c.rx_bytes,
            c.tx_packets,
            c.tx_bytes,
            c.drops(),
            c.kicks_sent,
            c.kicks_suppressed
        );
        let reasons = [
            ("runt", c.drop_runt),
            ("bad slot", c.drop_bad_slot),
            ("too long", c.drop_too_long),
            ("ring full", c.drop_ring_full),
            ("same port", c.drop_same_port),
            ("filtered", c.drop_filtered),
            ("no destination", c.drop_no_destination),
            ("no client", c.drop_no_client),
            ("spoofed", c.spoofed),
            ("storm", c.drop_storm),
            ("vlan", c.drop_vlan),
            ("bad index", c.bad_index),
        ];
        let nonzero: Vec<String> = reasons
            .iter()
            .filter(|(_, v)| *v > 0)
            .map(|(k, v)| format!("{k} {v}"))
            .collect();
        if !nonzero.is_empty() {
            println!("    drops: {}", nonzero.join(", "));
        }
        for (name, value) in &p.extra {
            println!("    {name}: {value}");
        }
    }
}

fn rate(now: u64, before: u64, secs: f64) -> f64 {
    now.saturating_sub(before) as f64 / secs
}

pub fn run(socket: &Path, args: StatsArgs) -> Result<ExitCode> {
    let format = if args.json { Format::Json } else { args.format };
    if format == Format::Prometheus && args.watch.is_some() {
        anyhow::bail!(
            "--format prometheus prints once: scrape `daemon --metrics-listen` to follow"
        );
    }
    let mut conn = Connection::connect(socket)?;
    let Some(every) = args.watch else {
        let scrape = fetch(&mut conn, &args.port)?;
        if format == Format::Prometheus {
            print!("{}", render(&scrape));
        } else if format == Format::Json {
            println!(
                "{}",
                serde_json::to_string_pretty(&serde_json::json!({
                    "uptime_secs": scrape.uptime_secs,
                    "ports": scrape.ports,
                    "access": scrape.access,
                    "switches": scrape.switches,
                    "threads": scrape.threads,
                }))?
            );
        } else {
            print_table(&scrape.ports);
            let a = scrape.access;
            if a != AccessCounters::default() {
                println!(
                    "control socket: {} refused (permission), {} refused (limits), {} connections refused, {} timed out",
                    a.denied, a.over_limit, a.connections_refused, a.timed_out
                );
            }
        }
        return Ok(ExitCode::SUCCESS);
    };
    let every = Duration::from_secs_f64(every.max(0.1));
    let mut previous: HashMap<PortName, CounterSnapshot> = HashMap::new();
    let mut last = Instant::now();
    loop {
        let ports = fetch(&mut conn, &args.port)?.ports;
        let secs = last.elapsed().as_secs_f64().max(1e-6);
        last = Instant::now();
        let mut rows = Vec::new();
        for p in &ports {
            let before = previous.get(&p.name).copied().unwrap_or(p.counters);
            let c = &p.counters;
            rows.push(serde_json::json!({
                "port": p.name,
                "rx_pps": rate(c.rx_packets, before.rx_packets, secs),
                "tx_pps": rate(c.tx_packets, before.tx_packets, secs),
                "rx_bps": rate(c.rx_bytes, before.rx_bytes, secs) * 8.0,
                "tx_bps": rate(c.tx_bytes, before.tx_bytes, secs) * 8.0,
                "drops_ps": rate(c.drops(), before.drops(), secs),
                "counters": c,
            }));
            previous.insert(p.name.clone(), p.counters);
        }
        if format == Format::Json {
            println!(
                "{}",
                serde_json::json!({ "interval_secs": secs, "ports": rows })
            );
        } else {
            println!(
                "{:<24} {:>12} {:>12} {:>12} {:>12} {:>12}",
                "port", "rx pps", "tx pps", "rx Mbit/s", "tx Mbit/s", "drops/s"
            );
            for r in &rows {
                let f = |k: &str| r[k].as_f64().unwrap_or(0.0);
                println!(
                    "{:<24} {:>12.0} {:>12.0} {:>12.1} {:>12.1} {:>12.0}",
                    r["port"].as_str().unwrap_or(""),
                    f("rx_pps"),
                    f("tx_pps"),
                    f("rx_bps") / 1e6,
                    f("tx_bps") / 1e6,
                    f("drops_ps")
                );
            }
            println!();
        }
        std::thread::sleep(every);
    }
}
