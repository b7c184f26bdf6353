//! `vswitch`: the switch daemon and its command line.

mod cli;

use std::process::ExitCode;

fn main() -> ExitCode {
    match cli::run() {
        Ok(code) => code,
        Err(e) => {
            eprintln!("vswitch: error: {e:#}");
            ExitCode::FAILURE
        }
    }
}
