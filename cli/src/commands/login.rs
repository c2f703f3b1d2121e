//! `shoal login [SERVER]` and `shoal logout [SERVER]`: a registry's
//! credentials kept where docker keeps them (`crate::registry_auth`), for
//! `--with-registry-auth` to send with a service.

use std::io::Read;

use clap::Args;

use super::{Error, Io};
use crate::registry_auth::{self, Credentials};

/// Docker Hub, when no server is named.
const DEFAULT_SERVER: &str = "https://index.docker.io/v1/";

#[derive(Debug, Args)]
pub struct LoginArgs {
    /// Username
    #[arg(short, long)]
    pub username: Option<String>,
    /// Password (prefer --password-stdin)
    #[arg(short, long)]
    pub password: Option<String>,
    /// Take the password from stdin
    #[arg(long)]
    pub password_stdin: bool,
    /// The registry (host[:port]); default Docker Hub
    pub server: Option<String>,
}

#[derive(Debug, Args)]
pub struct LogoutArgs {
    /// The registry (host[:port]); default Docker Hub
    pub server: Option<String>,
}

pub fn login(args: LoginArgs, io: &mut Io<'_>) -> Result<(), Error> {
    let server = args.server.unwrap_or_else(|| DEFAULT_SERVER.to_string());
    let username = args
        .username
        .ok_or_else(|| Error::Input("login needs --username".into()))?;
    let password = match (args.password, args.password_stdin) {
        (Some(_), true) => {
            return Err(Error::Input(
                "--password and --password-stdin are mutually exclusive".into(),
            ))
        }
        (Some(p), false) => {
            writeln!(
                io.err,
                "WARNING! Using --password via the CLI is insecure. Use --password-stdin."
            )?;
            p
        }
        (None, true) => {
            let mut text = String::new();
            std::io::stdin()
                .read_to_string(&mut text)
                .map_err(|e| Error::Input(format!("read the password from stdin: {e}")))?;
            text.trim_end_matches(['\n', '\r']).to_string()
        }
        (None, false) => {
            return Err(Error::Input(
                "login needs --password-stdin or --password".into(),
            ))
        }
    };
    if password.is_empty() {
        return Err(Error::Input("the password is empty".into()));
    }
    registry_auth::store(&server, &Credentials { username, password }).map_err(Error::Input)?;
    // Unlike docker, nothing is asked of the registry here: the nodes use
    // the credentials when they pull, and say there if they are wrong.
    writeln!(io.out, "Credentials for {server} saved")?;
    Ok(())
}

pub fn logout(args: LogoutArgs, io: &mut Io<'_>) -> Result<(), Error> {
    let server = args.server.unwrap_or_else(|| DEFAULT_SERVER.to_string());
    if registry_auth::erase(&server).map_err(Error::Input)? {
        writeln!(io.out, "Removing login credentials for {server}")?;
    } else {
        writeln!(io.out, "Not logged in to {server}")?;
    }
    Ok(())
}

/// `--with-registry-auth`: the stored credentials for `image`'s registry,
/// as the service carries them; an image whose registry has none is an
/// error (docker pulls anonymously; asking for auth and sending none hides
/// a mistake).
pub fn auth_for(image: &str) -> Result<shoal_proto::types::v1::RegistryAuth, Error> {
    let server = registry_auth::registry_of(image);
    match registry_auth::get(&server).map_err(Error::Input)? {
        Some(c) => Ok(shoal_proto::types::v1::RegistryAuth {
            username: c.username,
            password: c.password,
            server,
        }),
        None => Err(Error::Input(format!(
            "--with-registry-auth: no credentials for {server}: run `shoal login {server}`"
        ))),
    }
}
