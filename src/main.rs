//! `elt`: run gh-elt locally, and operate it.

use std::process::ExitCode;

use clap::Parser;

use gh_elt::commands::Command;

#[derive(Parser)]
#[command(
    name = "elt",
    version,
    about = "gh-elt: GHArchive hours → a Parquet lake, locally or on AWS"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

fn main() -> ExitCode {
    adapters::telemetry::init_logging("warn");
    let cli = Cli::parse();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("error: starting the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let result = runtime.block_on(cli.command.run());
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}
