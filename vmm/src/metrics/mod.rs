//! Prometheus metrics of the VMM (`--metrics-listen ADDR:PORT`):
//! [`render`] turns the `--stats-json` document into the text format,
//! [`endpoint`] serves it on a sandboxed thread of its own. Both build on
//! the `metrics_text` crate, which the switch daemon shares.

pub mod endpoint;
pub mod render;
