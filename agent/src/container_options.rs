//! What a task's `ContainerSpec` asks of its container beyond the command
//! and environment: privileges, init, terminal, ulimits, sysctls, extra
//! `/etc/hosts` lines and mounts, turned into the executor's terms. The
//! control API has checked names and shapes already; what only the node
//! can know (does a bind's source exist here) is checked here, in docker's
//! words.

use std::net::IpAddr;
use std::path::{Path, PathBuf};

use shoal_proto::types::v1::{mount, ContainerSpec, Mount, TaskSpec};

use crate::executor::{Confinement, ContainerLogs, ContainerRun, TaskMount};

/// Fills `run` from `container`, mount sources with the placeholders of
/// the task's `context` expanded; the error rejects the task.
pub fn apply(
    run: &mut ContainerRun,
    container: &ContainerSpec,
    context: &serde_json::Value,
) -> Result<(), String> {
    run.groups = container.groups.clone();
    run.confinement = Confinement {
        read_only: container.read_only,
        capability_add: container.capability_add.clone(),
        capability_drop: container.capability_drop.clone(),
        no_new_privileges: container.no_new_privileges,
    };
    run.init = container.init;
    run.tty = container.tty;
    run.open_stdin = container.open_stdin;
    run.ulimits = container
        .ulimits
        .iter()
        .map(|u| {
            let limit = |v: i64| u64::try_from(v).unwrap_or(u64::MAX);
            (u.name.clone(), limit(u.soft), limit(u.hard))
        })
        .collect();
    run.sysctls = container
        .sysctls
        .iter()
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    for line in &container.hosts {
        run.extra_hosts.extend(host_entries(line)?);
    }
    let none = shoal_template::Functions::new();
    run.mounts = container
        .mounts
        .iter()
        .map(|m| {
            let source = shoal_proto::placeholders::expand(&m.source, context, &none)
                .map_err(|e| format!("mount source: {e}"))?;
            task_mount(&Mount {
                source,
                ..m.clone()
            })
        })
        .collect::<Result<_, _>>()?;
    Ok(())
}

/// Where the task's output goes: its logging driver (`TaskSpec.log_driver`;
/// unset is json-file with shoal's cap). The control API has refused bad
/// drivers already; one that still fails here rejects the task, in
/// docker's words.
pub fn logs(task: Option<&TaskSpec>) -> Result<ContainerLogs, String> {
    match task.and_then(|t| t.log_driver.as_ref()) {
        Some(driver) => crate::logs::parse(driver)
            .map(ContainerLogs::from)
            .map_err(|e| e.to_string()),
        None => Ok(ContainerLogs::default()),
    }
}

/// `IP name [alias...]` (Swarm's `Hosts`): one entry per name.
fn host_entries(line: &str) -> Result<Vec<(String, IpAddr)>, String> {
    let mut words = line.split_whitespace();
    let ip: IpAddr = words
        .next()
        .and_then(|w| w.parse().ok())
        .ok_or_else(|| format!("extra host {line:?}: not `IP hostname`"))?;
    let names: Vec<(String, IpAddr)> = words.map(|name| (name.to_string(), ip)).collect();
    if names.is_empty() {
        return Err(format!("extra host {line:?}: no hostname"));
    }
    Ok(names)
}

fn task_mount(m: &Mount) -> Result<TaskMount, String> {
    match m.r#type() {
        mount::Type::Bind => {
            let source = PathBuf::from(&m.source);
            if !Path::new(&source).exists() {
                return Err(format!(
                    "invalid mount config for type \"bind\": bind source path does not exist: {}",
                    m.source
                ));
            }
            Ok(TaskMount::Bind {
                source,
                target: m.target.clone(),
                read_only: m.read_only,
                propagation: m.bind_propagation.clone(),
            })
        }
        mount::Type::Tmpfs => Ok(TaskMount::Tmpfs {
            target: m.target.clone(),
            size_bytes: m.tmpfs_size_bytes,
            mode: m.tmpfs_mode,
            read_only: m.read_only,
        }),
        mount::Type::Volume => Ok(TaskMount::Volume {
            // docker's anonymous volume: a random name, kept like any other.
            name: if m.source.is_empty() {
                anonymous_name()
            } else {
                m.source.clone()
            },
            target: m.target.clone(),
            read_only: m.read_only,
            nocopy: m.volume_nocopy,
            options: m.volume_driver_options.clone().into_iter().collect(),
            labels: m.volume_labels.clone().into_iter().collect(),
        }),
    }
}

fn anonymous_name() -> String {
    use rand::Rng;
    let bytes: [u8; 32] = rand::thread_rng().gen();
    hex::encode(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;
    use shoal_proto::types::v1::Ulimit;

    #[test]
    fn hardening_options_reach_the_container_run() {
        let container = ContainerSpec {
            read_only: true,
            capability_drop: vec!["ALL".into()],
            capability_add: vec!["NET_BIND_SERVICE".into()],
            no_new_privileges: true,
            init: true,
            groups: vec!["wheel".into()],
            ulimits: vec![Ulimit {
                name: "nofile".into(),
                soft: 2048,
                hard: 4096,
            }],
            sysctls: [("net.ipv4.ip_forward".to_string(), "1".to_string())].into(),
            hosts: vec!["10.0.0.9 db db.local".into()],
            mounts: vec![Mount {
                r#type: mount::Type::Tmpfs as i32,
                target: "/tmp".into(),
                tmpfs_size_bytes: 1 << 20,
                ..Default::default()
            }],
            ..Default::default()
        };
        let mut run = ContainerRun::default();
        apply(&mut run, &container, &serde_json::Value::Null).unwrap();
        assert!(run.confinement.read_only && run.confinement.no_new_privileges && run.init);
        assert_eq!(run.confinement.capability_drop, ["ALL"]);
        assert_eq!(run.ulimits, [("nofile".to_string(), 2048, 4096)]);
        assert_eq!(run.sysctls["net.ipv4.ip_forward"], "1");
        let ip: IpAddr = "10.0.0.9".parse().unwrap();
        assert_eq!(
            run.extra_hosts,
            [("db".to_string(), ip), ("db.local".to_string(), ip)]
        );
        assert_eq!(run.mounts[0].target(), "/tmp");
    }

    #[test]
    fn the_log_driver_reaches_the_container_run() {
        use crate::logs::driver::{Format, LOCAL_DEFAULT};
        use shoal_proto::types::v1::LogDriver;
        let spec = |name: &str, options: &[(&str, &str)]| TaskSpec {
            log_driver: Some(LogDriver {
                name: name.into(),
                options: options
                    .iter()
                    .map(|(k, v)| (k.to_string(), v.to_string()))
                    .collect(),
            }),
            ..Default::default()
        };
        assert_eq!(logs(None), Ok(ContainerLogs::default()));
        assert_eq!(
            logs(Some(&TaskSpec::default())),
            Ok(ContainerLogs::default())
        );
        assert_eq!(
            logs(Some(&spec("local", &[]))),
            Ok(ContainerLogs::Kept(LOCAL_DEFAULT))
        );
        assert_eq!(logs(Some(&spec("none", &[]))), Ok(ContainerLogs::Discarded));
        let Ok(ContainerLogs::Kept(config)) = logs(Some(&spec("json-file", &[("max-size", "1k")])))
        else {
            panic!("json-file is kept");
        };
        assert_eq!((config.format, config.max_size), (Format::JsonFile, 1024));
        assert_eq!(
            logs(Some(&spec("json-file", &[("foo", "1")]))),
            Err("unknown log opt 'foo' for json-file log driver".to_string())
        );
    }

    #[test]
    fn a_bind_whose_source_is_not_on_the_node_rejects_the_task_in_dockers_words() {
        let container = ContainerSpec {
            mounts: vec![Mount {
                r#type: mount::Type::Bind as i32,
                source: "/nonexistent/shoal-test".into(),
                target: "/data".into(),
                ..Default::default()
            }],
            ..Default::default()
        };
        let err = apply(
            &mut ContainerRun::default(),
            &container,
            &serde_json::Value::Null,
        )
        .unwrap_err();
        assert_eq!(
            err,
            "invalid mount config for type \"bind\": bind source path does not exist: /nonexistent/shoal-test"
        );
        let bad_host = ContainerSpec {
            hosts: vec!["db 10.0.0.9".into()],
            ..Default::default()
        };
        assert!(apply(
            &mut ContainerRun::default(),
            &bad_host,
            &serde_json::Value::Null
        )
        .is_err());
    }
}
