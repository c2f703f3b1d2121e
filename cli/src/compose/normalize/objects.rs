//! Top-level networks, volumes, secrets and configs as docker's
//! `LoadNetworks`, `LoadVolumes`, `LoadSecrets` and `LoadConfigObjs` leave
//! them: `external.name` moved to `name`, an external object named after
//! its key, a file made absolute.

use super::super::node::{KeyPath, Node};
use super::shape::{
    bytes, extras, flag, list, mapping, sort_maps, string, string_map, text, Fields,
};
use super::Context;
use crate::compose::ComposeError;

type Result<T> = std::result::Result<T, ComposeError>;

/// docker's `External`: `external: true` marks an object made elsewhere;
/// the long form `external: {name: x}` names it too.
struct External {
    external: bool,
    name: Option<String>,
}

fn external(node: &Node) -> External {
    match node.get("external") {
        Some(Node::Bool(b)) => External {
            external: *b,
            name: None,
        },
        Some(map @ Node::Map(_)) => External {
            external: true,
            name: text(map.get("name")).filter(|n| !n.is_empty()),
        },
        _ => External {
            external: false,
            name: None,
        },
    }
}

pub fn object(
    section: &str,
    key: &str,
    node: &Node,
    path: &KeyPath,
    ctx: &Context,
) -> Result<Node> {
    let kind = &section[..section.len() - 1];
    let ext = external(node);
    let mut name = text(node.get("name")).filter(|n| !n.is_empty());
    if ext.external {
        if let Some(external_name) = ext.name {
            if name.is_some() {
                return Err(ctx.invalid(
                    path,
                    format!(
                        "{kind} {key}: {kind}.external.name and {kind}.name conflict; only use \
                         {kind}.name"
                    ),
                ));
            }
            name = Some(external_name);
        } else if name.is_none() {
            name = Some(key.to_string());
        }
    }
    let get = |k: &str| node.get(k);
    let external_field = ext.external.then_some(Node::Bool(true));
    let mut f = Fields::new();
    match section {
        "networks" => {
            f.put("name", name.map(Node::Str));
            f.put("driver", string(get("driver")));
            f.put("driver_opts", string_map(get("driver_opts")));
            f.put("ipam", ipam(get("ipam")));
            f.put("external", external_field);
            f.put("internal", flag(get("internal")));
            f.put("attachable", flag(get("attachable")));
            f.put("labels", mapping(get("labels")));
            // docker's mapstructure fills `Extras` only for external ones.
            if ext.external {
                f.extend(extras(node));
            }
        }
        "volumes" => {
            if ext.external {
                for conflicting in ["driver", "driver_opts", "labels"] {
                    let set = match get(conflicting) {
                        Some(Node::Str(s)) => !s.is_empty(),
                        Some(Node::Map(m)) => !m.is_empty(),
                        Some(Node::Seq(s)) => !s.is_empty(),
                        _ => false,
                    };
                    if set {
                        return Err(ctx.invalid(
                            path,
                            format!(
                                "conflicting parameters \"external\" and \"{conflicting}\" \
                                 specified for volume \"{key}\""
                            ),
                        ));
                    }
                }
            }
            f.put("name", name.map(Node::Str));
            f.put("driver", string(get("driver")));
            f.put("driver_opts", string_map(get("driver_opts")));
            f.put("external", external_field);
            f.put("labels", mapping(get("labels")));
            if ext.external {
                f.extend(
                    extras(node)
                        .into_iter()
                        .filter(|(k, _)| k != "x-cluster-spec"),
                );
            }
            f.put(
                "x-cluster-spec",
                cluster_spec(get("x-cluster-spec"), &path.key("x-cluster-spec"), ctx)?,
            );
        }
        _ => {
            let driver = string(get("driver"));
            let mut file = text(get("file")).unwrap_or_default();
            if !ext.external {
                if driver.is_some() {
                    if !file.is_empty() {
                        return Err(ctx.invalid(
                            path,
                            format!(
                                "{kind} {key}: {kind}.driver and {kind}.file conflict; only use \
                                 {kind}.driver"
                            ),
                        ));
                    }
                } else {
                    file = ctx.absolute(&file);
                }
            }
            f.put("name", name.map(Node::Str));
            f.put("file", (!file.is_empty()).then_some(Node::Str(file)));
            f.put("external", external_field);
            f.put("labels", mapping(get("labels")));
            f.put("driver", driver);
            f.put("driver_opts", string_map(get("driver_opts")));
            f.put("template_driver", string(get("template_driver")));
            // Beyond docker's v3 schema: a secret's value from a variable.
            f.put("environment", string(get("environment")));
            f.extend(extras(node));
        }
    }
    Ok(f.node())
}

fn ipam(node: Option<&Node>) -> Option<Node> {
    let node = node?;
    let mut f = Fields::new();
    f.put("driver", string(node.get("driver")));
    if let Some(Node::Seq(pools)) = node.get("config") {
        let pools: Vec<Node> = pools
            .iter()
            .map(|pool| {
                let mut p = Fields::new();
                p.put("subnet", string(pool.get("subnet")));
                p.node()
            })
            .collect();
        f.put("config", (!pools.is_empty()).then_some(Node::Seq(pools)));
    }
    f.non_empty()
}

/// A cluster (CSI) volume's `x-cluster-spec`, in docker's field order.
fn cluster_spec(node: Option<&Node>, path: &KeyPath, ctx: &Context) -> Result<Option<Node>> {
    let Some(node @ Node::Map(_)) = node else {
        return Ok(None);
    };
    let get = |k: &str| node.get(k);
    let mut f = Fields::new();
    f.put("group", string(get("group")));
    f.put("access_mode", get("access_mode").map(sort_maps));
    f.put(
        "accessibility_requirements",
        get("accessibility_requirements").map(sort_maps),
    );
    if let Some(range @ Node::Map(_)) = get("capacity_range") {
        let mut r = Fields::new();
        for k in ["required_bytes", "limit_bytes"] {
            r.put(
                k,
                bytes(range.get(k), &path.key("capacity_range").key(k), ctx)?,
            );
        }
        f.put("capacity_range", Some(r.node()));
    }
    f.put("secrets", list(get("secrets")));
    f.put("availability", string(get("availability")));
    Ok(Some(f.node()))
}
