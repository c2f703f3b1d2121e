//! `shoal swarm ca`: shows the swarm's root CA certificate, and with
//! `--rotate` replaces the root CA the way `docker swarm ca --rotate` does:
//! every node renews its certificate from a new root (cross-signed by the
//! old one, so nodes keep talking to each other throughout), then the old
//! root is dropped from every node's trust. The command follows the
//! rotation until it is done unless `--detach`.

use std::time::Duration;

use clap::Args;
use shoal_proto::control::v1::{
    GetRootCaRequest, RootCaStatus, RotateRootCaRequest, UpdateCertExpiryRequest,
};

use super::{Error, Io};
use crate::client::Session;

/// How often the rotation's progress is asked for.
const POLL: Duration = Duration::from_millis(500);

#[derive(Debug, Args)]
pub struct CaArgs {
    /// Rotate the swarm root CA: every node gets a certificate from a new root
    #[arg(long)]
    pub rotate: bool,
    /// Exit immediately instead of waiting for the root rotation to converge
    #[arg(short, long)]
    pub detach: bool,
    /// Suppress progress output
    #[arg(short, long)]
    pub quiet: bool,
    /// Validity period for node certificates (e.g. 2160h), from the next
    /// certificate on
    #[arg(long, value_name = "DURATION", value_parser = super::parse::duration)]
    pub cert_expiry: Option<Duration>,
}

pub async fn run(session: &mut Session, args: CaArgs, io: &mut Io<'_>) -> Result<(), Error> {
    if args.detach && !args.rotate {
        return Err(Error::Usage("--detach only goes with --rotate".into()));
    }
    if let Some(expiry) = args.cert_expiry {
        set_cert_expiry(session, expiry).await?;
    }
    if !args.rotate {
        let status = get(session).await?;
        write!(io.out, "{}", with_newline(&status.root_ca_pem))?;
        return Ok(());
    }
    let started = session
        .client
        .rotate_root_ca(RotateRootCaRequest {})
        .await?
        .into_inner();
    if !started.stale_bundles.is_empty() {
        writeln!(
            io.err,
            "Note: client bundles issued by the current root CA stop working when the rotation \
             completes and are revoked then: {}. Create them again afterwards with \
             `shoal swarm client-bundle create`.",
            started.stale_bundles.join(", ")
        )?;
    }
    if args.detach {
        writeln!(
            io.err,
            "Root CA rotation started: {} node(s) renew their certificates. \
             Follow it with `shoal swarm ca`.",
            started.nodes
        )?;
        return Ok(());
    }
    let done = follow(session, &args, io).await?;
    write!(io.out, "{}", with_newline(&done.root_ca_pem))?;
    if !args.quiet {
        writeln!(
            io.err,
            "Root CA rotated. The join tokens changed with it (they pin the root CA's digest): \
             get them with `shoal swarm join-token worker|manager`; old tokens are refused."
        )?;
    }
    Ok(())
}

/// `swarm update --cert-expiry` and `swarm ca --cert-expiry`.
pub async fn set_cert_expiry(session: &mut Session, expiry: Duration) -> Result<(), Error> {
    let expiry_ms = u64::try_from(expiry.as_millis())
        .map_err(|_| Error::Input("the certificate expiry is too long".into()))?;
    session
        .client
        .update_cert_expiry(UpdateCertExpiryRequest { expiry_ms })
        .await?;
    Ok(())
}

async fn get(session: &mut Session) -> Result<RootCaStatus, Error> {
    Ok(session
        .client
        .get_root_ca(GetRootCaRequest {})
        .await?
        .into_inner())
}

/// Waits until every node holds a certificate of the new root and trusts
/// only it, printing progress as it moves.
async fn follow(
    session: &mut Session,
    args: &CaArgs,
    io: &mut Io<'_>,
) -> Result<RootCaStatus, Error> {
    let mut shown = String::new();
    loop {
        let status = get(session).await?;
        let finished = converged(&status);
        let line = progress(&status);
        if !args.quiet && line != shown {
            writeln!(io.err, "{line}")?;
            shown = line;
        }
        if finished {
            return Ok(status);
        }
        tokio::time::sleep(POLL).await;
    }
}

fn converged(status: &RootCaStatus) -> bool {
    !status.rotating
        && status.nodes_renewed == status.nodes
        && status.nodes_trusting == status.nodes
}

/// One line of progress, like docker's two bars: certificates first, then
/// trust (which follows once the new root has replaced the old).
pub fn progress(status: &RootCaStatus) -> String {
    let waiting = if status.pending.is_empty() {
        String::new()
    } else {
        format!(" (waiting for {})", status.pending.join(", "))
    };
    if status.rotating || status.nodes_renewed < status.nodes {
        format!(
            "{} of {} nodes have certificates from the new root{waiting}",
            status.nodes_renewed, status.nodes
        )
    } else {
        format!(
            "{} of {} nodes trust only the new root{waiting}",
            status.nodes_trusting, status.nodes
        )
    }
}

fn with_newline(pem: &str) -> String {
    format!("{}\n", pem.trim_end())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn progress_counts_certificates_then_trust() {
        let mut status = RootCaStatus {
            rotating: true,
            nodes: 5,
            nodes_renewed: 3,
            pending: vec!["w1".into(), "w2".into()],
            ..Default::default()
        };
        assert_eq!(
            progress(&status),
            "3 of 5 nodes have certificates from the new root (waiting for w1, w2)"
        );
        assert!(!converged(&status));
        status.rotating = false;
        status.nodes_renewed = 5;
        status.nodes_trusting = 4;
        status.pending = vec!["w2".into()];
        assert_eq!(
            progress(&status),
            "4 of 5 nodes trust only the new root (waiting for w2)"
        );
        status.nodes_trusting = 5;
        status.pending.clear();
        assert!(converged(&status));
        assert_eq!(progress(&status), "5 of 5 nodes trust only the new root");
    }
}
