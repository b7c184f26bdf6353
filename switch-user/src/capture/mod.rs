//! Seeing the traffic: captures of a port (`vswitch capture`) and mirrors
//! (`vswitch mirror`).
//!
//! - [`taps`]: the per-switch flag and table the forwarding batch consults
//!   once per batch, and the hook that feeds captures and mirrors;
//! - [`sink`]: a capture's bounded buffer, filled by the forwarding threads
//!   without waiting (drops are counted);
//! - [`config`]: the captures and mirrors by port name, turned into tap
//!   tables;
//! - [`stream`]: the daemon's writer that sends a capture over its control
//!   connection;
//! - [`records`] and [`pcapng`]: the CLI's side, which splits the stream
//!   into records and writes them as pcapng or classic pcap.

pub mod config;
pub mod pcapng;
pub mod records;
pub mod sink;
pub mod stream;
pub mod taps;
