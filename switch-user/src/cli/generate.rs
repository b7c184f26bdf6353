//! `vswitch completions` and `vswitch man`: shell completions and manual
//! pages generated from the clap definitions, so they always match the
//! binary.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context, Result};
use clap::CommandFactory;
use clap_complete::Shell;

use super::Cli;

/// Arguments of `vswitch completions`.
#[derive(clap::Args)]
pub struct CompletionsArgs {
    /// The shell to complete for.
    #[arg(value_enum)]
    shell: Shell,
}

/// Arguments of `vswitch man`.
#[derive(clap::Args)]
pub struct ManArgs {
    /// Directory to write the pages to (created if missing): `vswitch.1` and
    /// one `vswitch-COMMAND.1` per subcommand.
    #[arg(long, value_name = "DIR")]
    out: PathBuf,
}

/// Prints the completion script for `args.shell` on stdout.
pub fn completions(args: CompletionsArgs) -> Result<ExitCode> {
    let mut command = Cli::command();
    clap_complete::generate(args.shell, &mut command, "vswitch", &mut std::io::stdout());
    Ok(ExitCode::SUCCESS)
}

/// Writes the manual pages into `args.out` and lists them on stdout.
pub fn man(args: ManArgs) -> Result<ExitCode> {
    std::fs::create_dir_all(&args.out)
        .with_context(|| format!("cannot create {}", args.out.display()))?;
    clap_mangen::generate_to(Cli::command(), &args.out)
        .with_context(|| format!("cannot write manual pages to {}", args.out.display()))?;
    let mut pages: Vec<_> = std::fs::read_dir(&args.out)?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "1"))
        .collect();
    pages.sort();
    for page in pages {
        println!("{}", page.display());
    }
    Ok(ExitCode::SUCCESS)
}
