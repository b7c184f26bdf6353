//! Prometheus metrics of the daemon: [`render`] turns a stats answer (the
//! one `vswitch stats --json` prints) into the text format, [`serve`] runs
//! the `--metrics-listen` endpoint on its own thread. Both build on the
//! `metrics_text` crate, which the VMM shares.

pub mod render;
pub mod serve;
