//! `shoal network ...`: the cluster's overlay networks, and the `--network`
//! syntax of services.

use clap::{Args, Subcommand};
use serde_json::{json, Value};
use shoal_proto::control::v1::{
    CreateNetworkRequest, GetNetworkRequest, ListNetworksRequest, PruneNetworksRequest,
    RemoveNetworkRequest,
};
use shoal_proto::types::v1::{Network, NetworkAliasesSpec, NetworkSpec, ServiceSpec};

use super::{collect_errors, confirm, inspect, parse, Error, Io};
use crate::client::Session;
use crate::output::filter::{Filter, FilterKey, FilterKeys, Filters};
use crate::output::format::{Columns, InspectFormat, ListFormat, INSPECT_HELP, LIST_HELP};
use crate::output::{go_time, labels_joined, natural_cmp, short_id};

/// docker's `network ls` columns (`cli/command/network/formatter.go`).
pub const NETWORK_COLUMNS: Columns = Columns {
    headers: &[
        ("ID", "NETWORK ID"),
        ("Name", "NAME"),
        ("Driver", "DRIVER"),
        ("Scope", "SCOPE"),
        ("IPv4", "IPV4"),
        ("IPv6", "IPV6"),
        ("Internal", "INTERNAL"),
        ("Labels", "LABELS"),
        ("CreatedAt", "CREATED AT"),
    ],
    table: "table {{.ID}}\t{{.Name}}\t{{.Driver}}\t{{.Scope}}",
    quiet: "{{.ID}}",
};

/// docker's `network ls` filters.
pub const NETWORK_FILTERS: FilterKeys = FilterKeys {
    command: "network ls",
    keys: &[
        FilterKey::any("driver"),
        FilterKey::any("id"),
        FilterKey::any("label"),
        FilterKey::any("name"),
        FilterKey::one_of("scope", &["swarm", "global", "local"]),
        FilterKey::one_of("type", &["custom", "builtin"]),
    ],
};

/// Every network of a swarm spans the cluster.
pub const SCOPE: &str = "swarm";
/// The only driver shoal has (the manager fills it in when the spec leaves it empty).
pub const DRIVER: &str = "overlay";
/// `--opt encrypted`: docker's key for IPsec between the nodes.
const ENCRYPTED: &str = "encrypted";

#[derive(Debug, Subcommand)]
pub enum NetworkCommand {
    /// Create a network
    Create(CreateArgs),
    /// List networks
    #[command(visible_alias = "list")]
    Ls(LsArgs),
    /// Display detailed information on one or more networks
    Inspect(InspectArgs),
    /// Remove one or more networks (refused while a service uses them)
    #[command(visible_alias = "remove")]
    Rm(RmArgs),
    /// Remove all unused networks
    Prune(PruneArgs),
}

#[derive(Debug, Args)]
pub struct CreateArgs {
    /// Driver to manage the Network (shoal has one: overlay, the default)
    #[arg(short, long, value_name = "DRIVER")]
    pub driver: Option<String>,
    /// Subnet in CIDR format (default: the next free block of the swarm's address pool)
    #[arg(long, value_name = "CIDR")]
    pub subnet: Option<String>,
    /// IPv4 gateway of the subnet (default: its first address)
    #[arg(long, value_name = "IP")]
    pub gateway: Option<String>,
    /// Allocate task addresses from a sub-range (CIDR) of the subnet
    #[arg(long, value_name = "CIDR")]
    pub ip_range: Option<String>,
    /// Enable manual container attachment
    #[arg(long)]
    pub attachable: bool,
    /// Restrict external access to the network
    #[arg(long)]
    pub internal: bool,
    /// Set driver specific options (the overlay driver takes one: encrypted)
    #[arg(short = 'o', long = "opt", value_name = "KEY[=VALUE]", value_parser = driver_opt)]
    pub opts: Vec<(String, String)>,
    /// Set metadata on a network
    #[arg(long, value_name = "KEY=VALUE", value_parser = parse::key_value)]
    pub label: Vec<(String, String)>,
    /// Network name
    #[arg(value_name = "NETWORK")]
    pub name: String,
}

#[derive(Debug, Args)]
#[command(after_help = "Examples:
  shoal network ls
  shoal network ls -f name=shop -f type=custom
  shoal network ls --no-trunc --format '{{.ID}} {{.Name}} {{.Internal}}'")]
pub struct LsArgs {
    /// Provide filter values (driver=, id=, label=KEY[=VALUE], name=, scope=, type=custom|builtin)
    #[arg(short, long = "filter", value_name = "FILTER", value_parser = |s: &str| NETWORK_FILTERS.parse(s))]
    pub filters: Vec<Filter>,
    #[arg(long, value_name = "FORMAT", default_value = "table", hide_default_value = true,
          value_parser = ListFormat::parse, help = LIST_HELP)]
    pub format: ListFormat,
    /// Only display network IDs
    #[arg(short, long)]
    pub quiet: bool,
    /// Do not truncate the output
    #[arg(long)]
    pub no_trunc: bool,
}

#[derive(Debug, Args)]
#[command(after_help = "Examples:
  shoal network inspect shop_backend
  shoal network inspect -f '{{.Name}} {{(index .IPAM.Config 0).Subnet}}' ingress")]
pub struct InspectArgs {
    #[arg(short, long, value_name = "FORMAT", value_parser = InspectFormat::parse, help = INSPECT_HELP)]
    pub format: Option<InspectFormat>,
    /// Networks (names or ids)
    #[arg(required = true, value_name = "NETWORK")]
    pub networks: Vec<String>,
}

#[derive(Debug, Args)]
pub struct RmArgs {
    /// Do not error if the network does not exist
    #[arg(short, long)]
    pub force: bool,
    /// Networks (names or ids)
    #[arg(required = true, value_name = "NETWORK")]
    pub networks: Vec<String>,
}

#[derive(Debug, Args)]
pub struct PruneArgs {
    /// Do not prompt for confirmation
    #[arg(short, long)]
    pub force: bool,
}

pub async fn run(
    session: &mut Session,
    command: NetworkCommand,
    io: &mut Io<'_>,
) -> Result<(), Error> {
    match command {
        NetworkCommand::Create(args) => create(session, args, io).await,
        NetworkCommand::Ls(args) => ls(session, args, io).await,
        NetworkCommand::Inspect(args) => inspect(session, args, io).await,
        NetworkCommand::Rm(args) => rm(session, args, io).await,
        NetworkCommand::Prune(args) => {
            let mut stdin = std::io::stdin().lock();
            prune(session, args, &mut stdin, io).await
        }
    }
}

/// `-o KEY[=VALUE]`, as docker's map options take them (`-o encrypted` is `encrypted=""`).
pub fn driver_opt(input: &str) -> Result<(String, String), String> {
    let (key, value) = input.split_once('=').unwrap_or((input, ""));
    if key.is_empty() {
        return Err(format!("invalid option {input:?}: empty key"));
    }
    Ok((key.to_string(), value.to_string()))
}

/// The spec `network create` sends for `args`, and warnings for the user.
pub fn create_spec(args: &CreateArgs) -> Result<(NetworkSpec, Vec<String>), Error> {
    let mut warnings = Vec::new();
    if args.subnet.is_none() && (args.gateway.is_some() || args.ip_range.is_some()) {
        // docker's own check, with its words.
        return Err(Error::Input(
            "every ip-range or gateway must have a corresponding subnet".into(),
        ));
    }
    let mut spec = NetworkSpec {
        name: args.name.clone(),
        labels: args.label.iter().cloned().collect(),
        driver: args.driver.clone().unwrap_or_default(),
        subnet: args.subnet.clone().unwrap_or_default(),
        gateway: args.gateway.clone().unwrap_or_default(),
        ip_range: args.ip_range.clone().unwrap_or_default(),
        attachable: args.attachable,
        internal: args.internal,
        encrypted: false,
    };
    for (key, value) in &args.opts {
        if key != ENCRYPTED {
            return Err(Error::Input(format!(
                "network option {key:?} (--opt) is not supported: shoal's overlay networks take only --opt encrypted"
            )));
        }
        // Docker's overlay driver encrypts when the key is there, whatever its value.
        spec.encrypted = true;
        if matches!(
            value.to_ascii_lowercase().as_str(),
            "false" | "0" | "no" | "off"
        ) {
            warnings.push(format!(
                "--opt encrypted={value} still encrypts the network (as docker does, the option's \
                 presence turns encryption on): leave it out for an unencrypted network"
            ));
        }
    }
    Ok((spec, warnings))
}

pub async fn create(session: &mut Session, args: CreateArgs, io: &mut Io<'_>) -> Result<(), Error> {
    let (spec, warnings) = create_spec(&args)?;
    for warning in warnings {
        writeln!(io.err, "WARNING: {warning}")?;
    }
    let network = session
        .client
        .create_network(CreateNetworkRequest { spec: Some(spec) })
        .await?
        .into_inner()
        .network
        .ok_or_else(|| Error::Deploy("the manager answered without the network".into()))?;
    writeln!(io.out, "{}", network_id(&network))?;
    Ok(())
}

pub fn network_id(network: &Network) -> &str {
    network.meta.as_ref().map(|m| m.id.as_str()).unwrap_or("")
}

pub fn network_name(network: &Network) -> &str {
    network.spec.as_ref().map(|s| s.name.as_str()).unwrap_or("")
}

/// The network's driver: overlay, also for a spec that leaves it empty.
pub fn driver(network: &Network) -> &str {
    match network.spec.as_ref().map(|s| s.driver.as_str()) {
        Some("") | None => DRIVER,
        Some(driver) => driver,
    }
}

/// The cluster's networks, sorted by name (as docker lists them).
pub async fn list(session: &mut Session) -> Result<Vec<Network>, Error> {
    let mut networks = session
        .client
        .list_networks(ListNetworksRequest {})
        .await?
        .into_inner()
        .networks;
    networks.sort_by(|a, b| natural_cmp(network_name(a), network_name(b)));
    Ok(networks)
}

pub async fn ls(session: &mut Session, args: LsArgs, io: &mut Io<'_>) -> Result<(), Error> {
    let filters = Filters::new(&args.filters);
    let networks: Vec<Network> = list(session)
        .await?
        .into_iter()
        .filter(|n| network_matches(&filters, n))
        .collect();
    let rows = network_rows(&networks, !args.no_trunc);
    let text = args.format.render(&NETWORK_COLUMNS, &rows, args.quiet)?;
    io.out.write_all(text.as_bytes())?;
    Ok(())
}

/// docker's network filters: `id` and `name` match any part, `driver` and
/// `scope` exactly; `type=builtin` is the network the swarm made itself
/// (`ingress`), `custom` every other.
fn network_matches(filters: &Filters, network: &Network) -> bool {
    let labels = network.spec.as_ref().map(|s| &s.labels);
    filters.any("id", |part| network_id(network).contains(part))
        && filters.any("name", |part| network_name(network).contains(part))
        && filters.any("driver", |d| d == driver(network))
        && filters.any("scope", |scope| scope == SCOPE)
        && filters.any("type", |kind| (kind == "builtin") == network.ingress)
        && labels.map_or(filters.values("label").is_empty(), |l| {
            filters.labels("label", l)
        })
}

/// docker's `network ls` rows (`.ID` cut to 12 characters when `trunc`).
pub fn network_rows(networks: &[Network], trunc: bool) -> Vec<Value> {
    networks
        .iter()
        .map(|network| {
            let id = network_id(network);
            let spec = network.spec.clone().unwrap_or_default();
            json!({
                "ID": if trunc { short_id(id) } else { id },
                "Name": network_name(network),
                "Driver": driver(network),
                "Scope": SCOPE,
                "IPv4": "true",
                "IPv6": "false",
                "Internal": spec.internal.to_string(),
                "Labels": labels_joined(&spec.labels),
                "CreatedAt": go_time(network.meta.as_ref().map(|m| m.created_at).unwrap_or(0)),
            })
        })
        .collect()
}

pub async fn get(session: &mut Session, id_or_name: &str) -> Result<Network, Error> {
    session
        .client
        .get_network(GetNetworkRequest {
            id_or_name: id_or_name.to_string(),
        })
        .await?
        .into_inner()
        .network
        .ok_or_else(|| Error::Input(format!("network {id_or_name} not found")))
}

pub async fn inspect(
    session: &mut Session,
    args: InspectArgs,
    io: &mut Io<'_>,
) -> Result<(), Error> {
    let mut found = Vec::new();
    let mut errors = Vec::new();
    for reference in &args.networks {
        match get(session, reference).await {
            Ok(network) => found.push(inspect::network_json(&network)),
            Err(e) => errors.push(e),
        }
    }
    let format = args.format.unwrap_or_default();
    inspect::write_inspected(found, errors, &format, io.out)
}

/// Removes each network, carrying on past refusals (docker's `network rm a b`).
pub async fn rm(session: &mut Session, args: RmArgs, io: &mut Io<'_>) -> Result<(), Error> {
    let mut errors = Vec::new();
    for reference in args.networks {
        let request = RemoveNetworkRequest {
            id_or_name: reference.clone(),
        };
        match session.client.remove_network(request).await {
            Ok(_) => writeln!(io.out, "{reference}")?,
            Err(e) if args.force && e.code() == tonic::Code::NotFound => {}
            Err(e) => errors.push(Error::Rpc(e)),
        }
    }
    collect_errors(errors)
}

/// docker's `network prune` prompt, word for word.
pub const PRUNE_WARNING: &str = "WARNING! This will remove all custom networks not used by at least one container.\nAre you sure you want to continue?";

/// `network prune`: asks first unless `--force` (a "no" is no error, as with docker).
pub async fn prune(
    session: &mut Session,
    args: PruneArgs,
    input: &mut dyn std::io::BufRead,
    io: &mut Io<'_>,
) -> Result<(), Error> {
    if !args.force && !confirm(io.out, input, PRUNE_WARNING)? {
        return Ok(());
    }
    let removed = session
        .client
        .prune_networks(PruneNetworksRequest {})
        .await?
        .into_inner()
        .removed;
    io.out.write_all(prune_report(&removed).as_bytes())?;
    Ok(())
}

/// What `network prune` prints: nothing when nothing went, else docker's
/// list (followed by an empty line, as docker's `Fprintln` of it ends).
pub fn prune_report(removed: &[String]) -> String {
    if removed.is_empty() {
        return String::new();
    }
    let mut text = String::from("Deleted Networks:\n");
    for name in removed {
        text.push_str(name);
        text.push('\n');
    }
    text.push('\n');
    text
}

/// A service's `--network`: `NAME` or docker's `name=NAME,alias=ALIAS`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Attachment {
    pub target: String,
    /// Extra DNS names of the service on this network (`alias=`, repeatable);
    /// the manager checks that they are DNS names.
    pub aliases: Vec<String>,
}

pub fn attachment(text: &str) -> Result<Attachment, String> {
    let mut attachment = Attachment {
        target: String::new(),
        aliases: Vec::new(),
    };
    if !text.contains('=') {
        if text.is_empty() {
            return Err("--network needs a network name".into());
        }
        attachment.target = text.to_string();
        return Ok(attachment);
    }
    for field in text.split(',') {
        let (key, value) = field
            .split_once('=')
            .ok_or_else(|| format!("invalid field {field:?}: expected key=value"))?;
        match key.trim() {
            "name" => attachment.target = value.trim().to_string(),
            "alias" => {
                let alias = value.trim();
                if alias.is_empty() {
                    return Err("--network alias= needs a name".into());
                }
                attachment.aliases.push(alias.to_string());
            }
            other @ ("driver-opt" | "ip" | "ip6" | "mac-address" | "link-local-ip"
            | "gw-priority") => {
                return Err(format!(
                    "--network field {other:?} is not supported by shoal (name= and alias= are)"
                ))
            }
            other => return Err(format!("invalid field key {other:?} in --network")),
        }
    }
    if attachment.target.is_empty() {
        return Err("network name/id is not specified (name=NAME)".into());
    }
    Ok(attachment)
}

/// The id of the network `reference` names among `known` (id, name or
/// unique id prefix, as the manager resolves it).
fn resolve<'a>(known: &'a [Network], reference: &str) -> Option<&'a str> {
    if let Some(n) = known
        .iter()
        .find(|n| network_id(n) == reference || network_name(n) == reference)
    {
        return Some(network_id(n));
    }
    let mut prefixed = known
        .iter()
        .filter(|n| !reference.is_empty() && network_id(n).starts_with(reference));
    match (prefixed.next(), prefixed.next()) {
        (Some(one), None) => Some(network_id(one)),
        _ => None,
    }
}

/// The `network_aliases` of a service spec for `attachments`: one entry per
/// network that has aliases, named as the attachment names it (so exactly
/// as it is in the spec's `networks`), aliases in the order given.
pub fn aliases_of(attachments: &[Attachment]) -> Vec<NetworkAliasesSpec> {
    let mut out: Vec<NetworkAliasesSpec> = Vec::new();
    for attachment in attachments.iter().filter(|a| !a.aliases.is_empty()) {
        let entry = match out.iter_mut().position(|e| e.network == attachment.target) {
            Some(i) => &mut out[i],
            None => {
                out.push(NetworkAliasesSpec {
                    network: attachment.target.clone(),
                    aliases: Vec::new(),
                });
                out.last_mut().expect("just pushed")
            }
        };
        for alias in &attachment.aliases {
            if !entry.aliases.contains(alias) {
                entry.aliases.push(alias.clone());
            }
        }
    }
    out
}

/// `service update --network-rm R... --network-add A...`: edits a service's
/// networks and their aliases, matching networks however each side names
/// them. A removed network takes its aliases with it; removing a network the
/// service is not on does nothing (docker's way); adding one it is on is
/// refused (to change a network's aliases, remove it and add it again in
/// one update).
pub fn edit_service_networks(
    spec: &mut ServiceSpec,
    add: &[Attachment],
    rm: &[String],
    known: &[Network],
) -> Result<(), Error> {
    let same = |a: &str, b: &str| {
        a == b || resolve(known, a).is_some_and(|id| Some(id) == resolve(known, b))
    };
    for reference in rm {
        if resolve(known, reference).is_none() && !spec.networks.contains(reference) {
            return Err(Error::Input(format!("network {reference} not found")));
        }
        spec.networks.retain(|n| !same(n, reference));
        spec.network_aliases
            .retain(|entry| !same(&entry.network, reference));
    }
    for attachment in add {
        if spec.networks.iter().any(|n| same(n, &attachment.target)) {
            return Err(Error::Input(format!(
                "service is already attached to network {}",
                attachment.target
            )));
        }
        spec.networks.push(attachment.target.clone());
    }
    spec.network_aliases.extend(aliases_of(add));
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;
    use shoal_proto::types::v1::Meta;

    use crate::commands::{Cli, Command};

    fn create_args(args: &[&str]) -> CreateArgs {
        let mut argv = vec!["shoal", "network", "create"];
        argv.extend_from_slice(args);
        match Cli::try_parse_from(argv).expect("parses").command {
            Command::Network(NetworkCommand::Create(args)) => args,
            other => panic!("{other:?}"),
        }
    }

    fn spec_of(args: &[&str]) -> Result<(NetworkSpec, Vec<String>), Error> {
        create_spec(&create_args(args))
    }

    #[test]
    fn create_flags_fill_the_spec_and_leave_the_driver_to_the_manager() {
        let (spec, warnings) = spec_of(&[
            "-d",
            "overlay",
            "--subnet",
            "10.55.0.0/24",
            "--gateway",
            "10.55.0.254",
            "--ip-range",
            "10.55.0.128/25",
            "--attachable",
            "--internal",
            "--label",
            "team=a",
            "--label",
            "tier",
            "backend",
        ])
        .expect("spec");
        assert!(warnings.is_empty());
        assert_eq!(spec.name, "backend");
        assert_eq!(spec.driver, "overlay");
        assert_eq!(
            (
                spec.subnet.as_str(),
                spec.gateway.as_str(),
                spec.ip_range.as_str()
            ),
            ("10.55.0.0/24", "10.55.0.254", "10.55.0.128/25")
        );
        assert!(spec.attachable && spec.internal && !spec.encrypted);
        assert_eq!(spec.labels["team"], "a");
        assert_eq!(spec.labels["tier"], "");

        let (plain, _) = spec_of(&["backend"]).expect("spec");
        assert_eq!(plain.driver, "", "no -d: the manager's default (overlay)");
        assert_eq!(plain.subnet, "");
        // Another driver goes to the manager, which refuses it with its reason.
        let (bridge, _) = spec_of(&["--driver", "bridge", "b"]).expect("spec");
        assert_eq!(bridge.driver, "bridge");
    }

    #[test]
    fn opt_encrypted_in_every_docker_spelling_turns_encryption_on() {
        for opt in ["encrypted", "encrypted=", "encrypted=true", "encrypted=1"] {
            let (spec, warnings) = spec_of(&["-o", opt, "secure"]).expect(opt);
            assert!(spec.encrypted, "{opt}");
            assert!(warnings.is_empty(), "{opt}: {warnings:?}");
        }
        let (spec, _) = spec_of(&["--opt", "encrypted", "secure"]).expect("long flag");
        assert!(spec.encrypted);
        // Docker's overlay driver only looks for the key: "false" encrypts too, so say so.
        let (spec, warnings) = spec_of(&["--opt", "encrypted=false", "secure"]).expect("false");
        assert!(spec.encrypted);
        assert!(warnings[0].contains("still encrypts"), "{warnings:?}");
    }

    #[test]
    fn unknown_opts_and_gateways_without_a_subnet_are_refused() {
        let err = spec_of(&["-o", "com.docker.network.driver.mtu=1400", "n"]).expect_err("mtu");
        assert!(
            err.to_string()
                .contains("\"com.docker.network.driver.mtu\""),
            "{err}"
        );
        let err = spec_of(&["--gateway", "10.0.0.1", "n"]).expect_err("gateway");
        assert_eq!(
            err.to_string(),
            "every ip-range or gateway must have a corresponding subnet"
        );
        assert!(spec_of(&["--ip-range", "10.0.0.0/25", "n"]).is_err());
        let usage = Cli::try_parse_from(["shoal", "network", "create", "-o", "=x", "n"])
            .expect_err("empty key");
        assert_eq!(usage.exit_code(), 2);
    }

    fn network(id: &str, name: &str) -> Network {
        Network {
            meta: Some(Meta {
                id: id.into(),
                created_at: 1_709_210_096_789,
                ..Default::default()
            }),
            spec: Some(NetworkSpec {
                name: name.into(),
                driver: "overlay".into(),
                ..Default::default()
            }),
            vni: 4097,
            subnet: "10.55.0.0/24".into(),
            gateway: "10.55.0.1".into(),
            ..Default::default()
        }
    }

    #[test]
    fn ls_table_has_dockers_columns_and_truncated_ids() {
        let mut backend = network("k3x9v2m4n8q1w7e5r6t0y2u4i", "backend");
        if let Some(spec) = backend.spec.as_mut() {
            spec.driver.clear();
            spec.labels.insert("team".into(), "a".into());
        }
        let networks = [network("d3f4u1tn3tw0rk1d000000000", "ingress"), backend];
        assert_eq!(
            ListFormat::Table
                .render(&NETWORK_COLUMNS, &network_rows(&networks, true), false)
                .expect("table"),
            "NETWORK ID     NAME      DRIVER    SCOPE\n\
             d3f4u1tn3tw0   ingress   overlay   swarm\n\
             k3x9v2m4n8q1   backend   overlay   swarm\n"
        );
        let rows = network_rows(&networks, false);
        // docker/cli network formatter: booleans as strings, labels joined,
        // the creation time as Go prints a time.
        let json = &rows[1];
        assert_eq!(json["ID"], "k3x9v2m4n8q1w7e5r6t0y2u4i");
        assert_eq!(json["Driver"], "overlay");
        assert_eq!(json["Scope"], "swarm");
        assert_eq!(json["Labels"], "team=a");
        assert_eq!(json["Internal"], "false");
        assert_eq!(json["CreatedAt"], "2024-02-29 12:34:56.789 +0000 UTC");
    }

    #[test]
    fn ls_filters_are_dockers() {
        let mut ingress = network("d3f4u1tn3tw0rk1d000000000", "ingress");
        ingress.ingress = true;
        let mut backend = network("k3x9v2m4n8q1w7e5r6t0y2u4i", "shop_backend");
        if let Some(spec) = backend.spec.as_mut() {
            spec.labels.insert("team".into(), "a".into());
        }
        let networks = [
            ingress,
            backend,
            network("f00f00f00f00f00f00f00f00f", "shop_front"),
        ];
        let kept = |filters: &[&str]| -> Vec<&str> {
            let parsed: Vec<Filter> = filters
                .iter()
                .map(|f| {
                    NETWORK_FILTERS
                        .parse(f)
                        .unwrap_or_else(|e| panic!("{f}: {e}"))
                })
                .collect();
            let filters = Filters::new(&parsed);
            networks
                .iter()
                .filter(|n| network_matches(&filters, n))
                .map(network_name)
                .collect()
        };
        // docker's network `name` and `id` match any part.
        assert_eq!(kept(&["name=back"]), ["shop_backend"]);
        assert_eq!(kept(&["id=9v2m"]), ["shop_backend"]);
        assert_eq!(kept(&["type=builtin"]), ["ingress"]);
        assert_eq!(kept(&["type=custom"]), ["shop_backend", "shop_front"]);
        assert_eq!(kept(&["type=custom", "type=builtin"]).len(), 3);
        assert_eq!(kept(&["label=team=a"]), ["shop_backend"]);
        assert_eq!(kept(&["name=shop", "label=team"]), ["shop_backend"]);
        assert_eq!(kept(&["driver=overlay", "scope=swarm"]).len(), 3);
        assert!(kept(&["scope=local"]).is_empty());
        assert!(NETWORK_FILTERS.parse("type=other").is_err());
        assert!(NETWORK_FILTERS.parse("dangling=true").is_err());
    }

    #[test]
    fn prune_reports_like_docker() {
        assert_eq!(prune_report(&[]), "");
        assert_eq!(
            prune_report(&["a".into(), "b".into()]),
            "Deleted Networks:\na\nb\n\n"
        );
    }

    #[test]
    fn service_network_flags_take_docker_short_and_long_syntax() {
        assert_eq!(
            attachment("backend").expect("short"),
            Attachment {
                target: "backend".into(),
                aliases: vec![]
            }
        );
        let long = attachment("name=backend,alias=db,alias=primary").expect("long");
        assert_eq!(long.target, "backend");
        assert_eq!(long.aliases, ["db", "primary"]);
        assert!(attachment("alias=db").is_err());
        assert!(attachment("name=backend,ip=10.0.0.3")
            .expect_err("ip")
            .contains("not supported"));
        assert!(attachment("name=backend,colour=red").is_err());
        assert!(attachment("").is_err());
    }

    #[test]
    fn network_aliases_are_parsed_and_empty_ones_refused() {
        let long = attachment("name=backend, alias=db ,alias=primary").expect("spaces trimmed");
        assert_eq!(long.aliases, ["db", "primary"]);
        assert_eq!(
            attachment("name=backend,alias=").expect_err("empty alias"),
            "--network alias= needs a name"
        );
        let usage = Cli::try_parse_from([
            "shoal",
            "service",
            "create",
            "--network",
            "name=backend,alias=",
            "busybox",
        ])
        .expect_err("refused");
        assert_eq!(usage.exit_code(), 2);
        assert!(usage.to_string().contains("alias= needs a name"), "{usage}");
    }

    #[test]
    fn aliases_of_groups_aliases_by_the_network_as_written() {
        let a = |t: &str, aliases: &[&str]| Attachment {
            target: t.into(),
            aliases: aliases.iter().map(|s| s.to_string()).collect(),
        };
        assert_eq!(
            aliases_of(&[
                a("backend", &["db", "primary"]),
                a("front", &[]),
                a("backend", &["db", "pg"]),
                a("aaaa1111", &["x"]),
            ]),
            [
                NetworkAliasesSpec {
                    network: "backend".into(),
                    aliases: vec!["db".into(), "primary".into(), "pg".into()],
                },
                NetworkAliasesSpec {
                    network: "aaaa1111".into(),
                    aliases: vec!["x".into()],
                },
            ]
        );
        assert!(aliases_of(&[a("front", &[])]).is_empty());
    }

    fn on(networks: &[&str], aliases: &[(&str, &[&str])]) -> ServiceSpec {
        ServiceSpec {
            networks: networks.iter().map(|s| s.to_string()).collect(),
            network_aliases: aliases
                .iter()
                .map(|(n, a)| NetworkAliasesSpec {
                    network: n.to_string(),
                    aliases: a.iter().map(|s| s.to_string()).collect(),
                })
                .collect(),
            ..Default::default()
        }
    }

    #[test]
    fn service_network_edits_match_names_ids_and_prefixes() {
        let known = [
            network("aaaa1111", "backend"),
            network("bbbb2222", "front"),
            network("cccc3333", "spare"),
        ];
        let add = |t: &str| Attachment {
            target: t.into(),
            aliases: vec![],
        };
        let mut spec = on(&["aaaa1111", "front"], &[]);
        edit_service_networks(
            &mut spec,
            &[add("spare")],
            &["backend".into(), "bbbb".into()],
            &known,
        )
        .expect("edit");
        assert_eq!(spec.networks, ["spare"]);
        let again = edit_service_networks(&mut spec, &[add("cccc3333")], &[], &known)
            .expect_err("already on it");
        assert_eq!(
            again.to_string(),
            "service is already attached to network cccc3333"
        );
        // Not on it: nothing to do; unknown anywhere: refused.
        edit_service_networks(&mut spec, &[], &["front".into()], &known).expect("noop");
        assert_eq!(spec.networks, ["spare"]);
        let err = edit_service_networks(&mut spec, &[], &["nowhere".into()], &known)
            .expect_err("unknown");
        assert_eq!(err.to_string(), "network nowhere not found");
        // A reference to a network that is gone can still be dropped by its text.
        let mut stale = on(&["gone"], &[("gone", &["old"])]);
        edit_service_networks(&mut stale, &[], &["gone".into()], &known).expect("stale");
        assert!(stale.networks.is_empty());
        assert!(stale.network_aliases.is_empty());
    }

    #[test]
    fn network_add_brings_its_aliases_and_network_rm_takes_them_away() {
        let known = [network("aaaa1111", "backend"), network("bbbb2222", "front")];
        let mut spec = on(
            &["aaaa1111", "front"],
            &[("aaaa1111", &["db"]), ("front", &["web"])],
        );
        // Removed by name while the spec names it by id: its aliases go too.
        edit_service_networks(&mut spec, &[], &["backend".into()], &known).expect("rm");
        assert_eq!(spec, on(&["front"], &[("front", &["web"])]));

        let add = attachment("name=backend,alias=db,alias=primary").expect("attachment");
        edit_service_networks(&mut spec, &[add], &[], &known).expect("add");
        assert_eq!(
            spec,
            on(
                &["front", "backend"],
                &[("front", &["web"]), ("backend", &["db", "primary"])]
            )
        );

        // New aliases on a network the service is on: remove and add it again.
        let add = attachment("name=bbbb2222,alias=www").expect("attachment");
        let refused =
            edit_service_networks(&mut spec.clone(), std::slice::from_ref(&add), &[], &known)
                .expect_err("already attached");
        assert!(
            refused.to_string().contains("already attached"),
            "{refused}"
        );
        edit_service_networks(&mut spec, &[add], &["front".into()], &known).expect("re-add");
        assert_eq!(
            spec,
            on(
                &["backend", "bbbb2222"],
                &[("backend", &["db", "primary"]), ("bbbb2222", &["www"])]
            )
        );
    }
}
