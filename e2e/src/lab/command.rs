//! Running the system tools the lab drives (`ip`, `nft`, the shoal CLI).

use std::ffi::OsStr;
use std::process::{Command, Output, Stdio};

use super::Error;

/// Renders a command line for error messages.
pub fn display(cmd: &Command) -> String {
    std::iter::once(cmd.get_program())
        .chain(cmd.get_args())
        .map(OsStr::to_string_lossy)
        .collect::<Vec<_>>()
        .join(" ")
}

/// Runs `cmd` to completion, capturing its output, whatever its exit status.
pub fn output(cmd: &mut Command) -> Result<Output, Error> {
    cmd.stdin(Stdio::null())
        .output()
        .map_err(|e| Error::io(format!("running `{}`", display(cmd)), e))
}

/// Runs `cmd` and fails unless it exits with status 0.
pub fn run(cmd: &mut Command) -> Result<Output, Error> {
    let out = output(cmd)?;
    if out.status.success() {
        Ok(out)
    } else {
        Err(Error::Command {
            cmd: display(cmd),
            status: out.status.to_string(),
            stderr: String::from_utf8_lossy(&out.stderr).trim().to_string(),
        })
    }
}

/// `ip` with the given arguments, checked.
pub fn ip<I, S>(args: I) -> Result<Output, Error>
where
    I: IntoIterator<Item = S>,
    S: AsRef<OsStr>,
{
    run(Command::new("ip").args(args))
}
