//! The Prometheus text exposition format, version 0.0.4, as the vswitch
//! daemon and the VMM serve it:
//!
//! - [`writer`]: metric families with their `# HELP` and `# TYPE` lines,
//!   samples with escaped label values;
//! - [`http`]: a small HTTP/1.1 server answering `GET /metrics` on one
//!   connection at a time, with a bounded request size and deadlines.

pub mod http;
pub mod writer;

pub use writer::{Kind, Writer};

/// The `Content-Type` of the text format.
pub const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";
