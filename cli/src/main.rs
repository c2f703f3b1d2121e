//! `shoal`: the Docker-style command line of a shoal cluster.
//!
//! Exit status: 0 success, 1 the manager refused or the input was wrong,
//! 2 usage error, 3 the manager could not be reached, 4 `stack diff`: the
//! stack would change.

use std::io::Write;
use std::process::ExitCode;

use clap::Parser;
use shoal_cli::commands::{self, Cli, Io};

fn main() -> ExitCode {
    let cli = Cli::parse();
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("Error: start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let mut stdout = std::io::stdout().lock();
    let mut stderr = std::io::stderr();
    let result: anyhow::Result<()> = runtime
        .block_on(async {
            let mut io = Io {
                out: &mut stdout,
                err: &mut stderr,
            };
            commands::run(cli, &mut io).await
        })
        .map_err(anyhow::Error::from);
    let _ = stdout.flush();
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            // A closed stdout (`shoal service ls | head`) is not worth a message.
            if let Some(commands::Error::Output(io)) = e.downcast_ref::<commands::Error>() {
                if io.kind() == std::io::ErrorKind::BrokenPipe {
                    return ExitCode::SUCCESS;
                }
            }
            // Every message already carries its causes; `{:#}` would repeat them.
            eprintln!("Error: {e}");
            let code = e
                .downcast_ref::<commands::Error>()
                .map(commands::Error::exit_code)
                .unwrap_or(1);
            ExitCode::from(u8::try_from(code).unwrap_or(1))
        }
    }
}
