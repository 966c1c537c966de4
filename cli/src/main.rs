//! The `covenant` binary: parses the command line, runs it, prints the answer or the failure.

use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    let cli = covenant_cli::Cli::parse();
    let json = cli.global.json;
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("error: starting the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(covenant_cli::run(cli)) {
        Ok(report) => {
            #[allow(clippy::print_stdout)] // the answer is what a CLI prints
            {
                println!("{}", report.render(json));
            }
            ExitCode::SUCCESS
        }
        Err(failure) => {
            eprintln!("{failure}");
            ExitCode::FAILURE
        }
    }
}
