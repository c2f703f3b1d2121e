//! `shoal stack config`: the merged, interpolated, normalized compose files
//! as `docker stack config` prints them, with no cluster needed.

use std::collections::HashMap;

use clap::Args;

use super::{Error, Io};
use crate::compose::{self, ComposeFile};

#[derive(Debug, Args)]
#[command(after_help = "Examples:\n  \
    shoal stack config -c docker-compose.yml\n  \
    shoal stack config -c docker-compose.yml -c docker-compose.prod.yml\n  \
    cat docker-compose.yml | shoal stack config -c -")]
pub struct ConfigArgs {
    /// Path to a Compose file, or "-" to read from stdin (repeat to merge
    /// override files, in order)
    #[arg(
        short = 'c',
        long = "compose-file",
        value_name = "FILE",
        value_delimiter = ','
    )]
    pub compose_files: Vec<String>,
    /// Skip interpolation and output only merged config
    #[arg(long)]
    pub skip_interpolation: bool,
}

/// Reads each of `names` (`-` is standard input, read once).
pub fn read_files(
    names: &[String],
    stdin: &mut dyn std::io::Read,
) -> Result<Vec<ComposeFile>, Error> {
    if names.is_empty() {
        return Err(compose::ComposeError::NoFiles.into());
    }
    names
        .iter()
        .map(|name| ComposeFile::read(name, stdin).map_err(Error::from))
        .collect()
}

pub fn run(
    args: ConfigArgs,
    env: &HashMap<String, String>,
    stdin: &mut dyn std::io::Read,
    io: &mut Io<'_>,
) -> Result<(), Error> {
    let files = read_files(&args.compose_files, stdin)?;
    let working_dir = compose::working_dir(&files);
    let merged = compose::load_merged(&files, &working_dir, env, args.skip_interpolation)?;
    io.out.write_all(merged.to_yaml().as_bytes())?;
    Ok(())
}
