//! The OCI runtime spec for a task container, close to containerd's default spec (and Docker's
//! default capabilities), with the image's config applied under the task's overrides.

use super::user::ResolvedUser;
use super::{ContainerRun, Limits, TaskMount};
use oci_spec::image::ImageConfiguration;
use oci_spec::runtime::{
    get_default_maskedpaths, get_default_mounts, get_default_readonly_paths, Capability,
    LinuxBuilder, LinuxCapabilitiesBuilder, LinuxCpuBuilder, LinuxDeviceCgroupBuilder,
    LinuxMemoryBuilder, LinuxNamespaceBuilder, LinuxNamespaceType, LinuxPidsBuilder,
    LinuxResources, LinuxResourcesBuilder, Mount, MountBuilder, PosixRlimitBuilder,
    PosixRlimitType, ProcessBuilder, RootBuilder, Spec, SpecBuilder, UserBuilder,
};
use shoal_proto::capabilities;
use std::collections::HashSet;
use std::path::{Path, PathBuf};

const DEFAULT_PATH: &str = "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/// Host files bound into the container: generated ones over the image's,
/// and the init binary of an `--init` task.
pub(crate) struct HostFiles {
    pub hosts: Option<PathBuf>,
    pub hostname: Option<PathBuf>,
    pub resolv_conf: Option<PathBuf>,
    pub init: Option<PathBuf>,
}

/// argv: the task's command replaces the entrypoint (and the image's cmd with it), the task's
/// args replace the cmd.
pub(crate) fn argv(run: &ContainerRun, image: &ImageConfiguration) -> Vec<String> {
    let config = image.config().as_ref();
    let (entrypoint, image_cmd) = if run.command.is_empty() {
        (
            config
                .and_then(|c| c.entrypoint().clone())
                .unwrap_or_default(),
            config.and_then(|c| c.cmd().clone()).unwrap_or_default(),
        )
    } else {
        (run.command.clone(), Vec::new())
    };
    let cmd = if run.args.is_empty() {
        image_cmd
    } else {
        run.args.clone()
    };
    entrypoint.into_iter().chain(cmd).collect()
}

/// Where the host's init binary appears in a container with `--init`
/// (docker's path, so scripts that look for it find it).
pub(crate) const INIT_PATH: &str = "/sbin/docker-init";

/// The process's capability set: docker's default less the task's drops
/// plus its adds.
fn capability_set(run: &ContainerRun) -> Result<HashSet<Capability>, String> {
    let confinement = &run.confinement;
    capabilities::effective(&confinement.capability_add, &confinement.capability_drop)
        .into_iter()
        .map(|name| {
            name.parse::<Capability>()
                .map_err(|_| format!("capability {name} is unknown to the OCI runtime spec"))
        })
        .collect()
}

/// docker's `--ulimit` names for the `RLIMIT_*` resources.
fn rlimit_type(name: &str) -> Option<PosixRlimitType> {
    Some(match name {
        "as" => PosixRlimitType::RlimitAs,
        "core" => PosixRlimitType::RlimitCore,
        "cpu" => PosixRlimitType::RlimitCpu,
        "data" => PosixRlimitType::RlimitData,
        "fsize" => PosixRlimitType::RlimitFsize,
        "locks" => PosixRlimitType::RlimitLocks,
        "memlock" => PosixRlimitType::RlimitMemlock,
        "msgqueue" => PosixRlimitType::RlimitMsgqueue,
        "nice" => PosixRlimitType::RlimitNice,
        "nofile" => PosixRlimitType::RlimitNofile,
        "nproc" => PosixRlimitType::RlimitNproc,
        "rss" => PosixRlimitType::RlimitRss,
        "rtprio" => PosixRlimitType::RlimitRtprio,
        "rttime" => PosixRlimitType::RlimitRttime,
        "sigpending" => PosixRlimitType::RlimitSigpending,
        "stack" => PosixRlimitType::RlimitStack,
        _ => return None,
    })
}

/// The task's ulimits over containerd's default (1024 open files).
fn rlimits(run: &ContainerRun) -> Result<Vec<oci_spec::runtime::PosixRlimit>, String> {
    let mut wanted: Vec<(PosixRlimitType, u64, u64)> =
        vec![(PosixRlimitType::RlimitNofile, 1024, 1024)];
    for (name, soft, hard) in &run.ulimits {
        let typ = rlimit_type(name).ok_or_else(|| format!("unknown ulimit {name:?}"))?;
        wanted.retain(|(t, _, _)| *t != typ);
        wanted.push((typ, *soft, *hard));
    }
    wanted
        .into_iter()
        .map(|(typ, soft, hard)| {
            PosixRlimitBuilder::default()
                .typ(typ)
                .soft(soft)
                .hard(hard)
                .build()
                .map_err(|e| e.to_string())
        })
        .collect()
}

/// The task's own mounts, as the OCI spec writes them.
fn task_mount(mount: &TaskMount) -> Result<Mount, String> {
    match mount {
        TaskMount::Bind {
            source,
            target,
            read_only,
            propagation,
        } => {
            let propagation = if propagation.is_empty() {
                "rprivate"
            } else {
                propagation
            };
            MountBuilder::default()
                .destination(target)
                .typ("bind")
                .source(source.clone())
                .options(vec![
                    "rbind".to_string(),
                    propagation.to_string(),
                    if *read_only { "ro" } else { "rw" }.to_string(),
                ])
                .build()
                .map_err(|e| e.to_string())
        }
        TaskMount::Volume { name, .. } => Err(format!(
            "volume {name} was not made on this node before the container"
        )),
        TaskMount::Tmpfs {
            target,
            size_bytes,
            mode,
            read_only,
        } => {
            let mut options = vec![
                "nosuid".to_string(),
                "nodev".to_string(),
                format!("mode={:o}", if *mode == 0 { 0o1777 } else { *mode }),
            ];
            if *size_bytes > 0 {
                options.push(format!("size={size_bytes}"));
            }
            if *read_only {
                options.push("ro".to_string());
            }
            MountBuilder::default()
                .destination(target)
                .typ("tmpfs")
                .source("tmpfs")
                .options(options)
                .build()
                .map_err(|e| e.to_string())
        }
    }
}

/// The image's environment with the task's entries replacing same-named ones, `PATH` ensured,
/// and `HOSTNAME` set like Docker does.
pub(crate) fn environment(
    run: &ContainerRun,
    image: &ImageConfiguration,
    hostname: &str,
) -> Vec<String> {
    let mut env: Vec<String> = image
        .config()
        .as_ref()
        .and_then(|c| c.env().clone())
        .unwrap_or_default();
    let key = |entry: &str| entry.split('=').next().unwrap_or_default().to_string();
    if !env.iter().any(|e| key(e) == "PATH") {
        env.insert(0, DEFAULT_PATH.to_string());
    }
    let hostname_entry = format!("HOSTNAME={hostname}");
    for entry in std::iter::once(&hostname_entry).chain(run.env.iter()) {
        let name = key(entry);
        match env.iter_mut().find(|e| key(e) == name) {
            Some(existing) => *existing = entry.clone(),
            None => env.push(entry.clone()),
        }
    }
    env
}

pub(crate) fn working_dir(run: &ContainerRun, image: &ImageConfiguration) -> String {
    if !run.workdir.is_empty() {
        return run.workdir.clone();
    }
    image
        .config()
        .as_ref()
        .and_then(|c| c.working_dir().clone())
        .filter(|w| !w.is_empty())
        .unwrap_or_else(|| "/".to_string())
}

fn bind(destination: &str, source: &Path) -> Result<Mount, String> {
    MountBuilder::default()
        .destination(destination)
        .typ("bind")
        .source(source.to_path_buf())
        .options(vec![
            "rbind".to_string(),
            "rprivate".to_string(),
            "rw".to_string(),
        ])
        .build()
        .map_err(|e| e.to_string())
}

/// CFS period docker uses for `--cpus` (100 ms, in µs).
const CPU_PERIOD_US: u64 = 100_000;

/// The cgroup limits, as docker sets them for a swarm task: the memory
/// limit with swap bounded to it (where the host accounts swap; docker
/// itself allows as much swap again, shoal none, so the limit is what the
/// task can use), `--limit-cpu` as a CFS quota per 100 ms period, and the
/// pids limit. Devices are denied (runc allows the defaults).
fn resources(limits: &Limits, swap_limit: bool) -> Result<LinuxResources, String> {
    let mut builder =
        LinuxResourcesBuilder::default().devices(vec![LinuxDeviceCgroupBuilder::default()
            .allow(false)
            .access("rwm")
            .build()
            .map_err(|e| e.to_string())?]);
    if limits.memory_bytes > 0 {
        let mut memory = LinuxMemoryBuilder::default().limit(limits.memory_bytes);
        if swap_limit {
            memory = memory.swap(limits.memory_bytes);
        }
        builder = builder.memory(memory.build().map_err(|e| e.to_string())?);
    }
    if limits.nano_cpus > 0 {
        let quota = i128::from(limits.nano_cpus) * i128::from(CPU_PERIOD_US) / 1_000_000_000;
        let cpu = LinuxCpuBuilder::default()
            .period(CPU_PERIOD_US)
            // The kernel's smallest quota is 1 ms.
            .quota(i64::try_from(quota).unwrap_or(i64::MAX).max(1_000))
            .build()
            .map_err(|e| e.to_string())?;
        builder = builder.cpu(cpu);
    }
    if limits.pids > 0 {
        let pids = LinuxPidsBuilder::default()
            .limit(limits.pids)
            .build()
            .map_err(|e| e.to_string())?;
        builder = builder.pids(pids);
    }
    builder.build().map_err(|e| e.to_string())
}

/// Build the spec. `cgroups_path` follows containerd's `/<namespace>/<id>`;
/// `swap_limit` says whether the host can bound swap.
pub(crate) fn build(
    run: &ContainerRun,
    image: &ImageConfiguration,
    user: &ResolvedUser,
    hostname: &str,
    cgroups_path: &str,
    files: &HostFiles,
    swap_limit: bool,
) -> Result<Spec, String> {
    let mut args = argv(run, image);
    if args.is_empty() {
        return Err(
            "no command: the image has neither entrypoint nor cmd, and the task sets none"
                .to_string(),
        );
    }
    if files.init.is_some() {
        args.splice(0..0, [INIT_PATH.to_string(), "--".to_string()]);
    }
    let caps = capability_set(run)?;
    // Nothing inheritable or ambient, as docker: a process that is not
    // root keeps no capability across exec.
    let capabilities = LinuxCapabilitiesBuilder::default()
        .bounding(caps.clone())
        .effective(caps.clone())
        .permitted(caps)
        .inheritable(HashSet::new())
        .ambient(HashSet::new())
        .build()
        .map_err(|e| e.to_string())?;
    let process = ProcessBuilder::default()
        .terminal(run.tty)
        .user(
            UserBuilder::default()
                .uid(user.uid)
                .gid(user.gid)
                .additional_gids(user.additional_gids.clone())
                .build()
                .map_err(|e| e.to_string())?,
        )
        .args(args)
        .env(environment(run, image, hostname))
        .cwd(working_dir(run, image))
        .capabilities(capabilities)
        .rlimits(rlimits(run)?)
        .no_new_privileges(run.confinement.no_new_privileges)
        .build()
        .map_err(|e| e.to_string())?;

    let mut mounts = get_default_mounts();
    mounts.push(
        MountBuilder::default()
            .destination("/run")
            .typ("tmpfs")
            .source("tmpfs")
            .options(
                ["nosuid", "strictatime", "mode=755", "size=65536k"]
                    .map(String::from)
                    .to_vec(),
            )
            .build()
            .map_err(|e| e.to_string())?,
    );
    if let Some(path) = &files.hosts {
        mounts.push(bind("/etc/hosts", path)?);
    }
    if let Some(path) = &files.hostname {
        mounts.push(bind("/etc/hostname", path)?);
    }
    if let Some(path) = &files.resolv_conf {
        mounts.push(bind("/etc/resolv.conf", path)?);
    }
    for (source, destination) in &run.read_only_files {
        let mut mount = bind(destination, source)?;
        mount.set_options(Some(
            ["rbind", "rprivate", "ro", "nosuid", "nodev", "noexec"]
                .map(String::from)
                .to_vec(),
        ));
        mounts.push(mount);
    }

    if let Some(init) = &files.init {
        let mut mount = bind(INIT_PATH, init)?;
        mount.set_options(Some(["rbind", "rprivate", "ro"].map(String::from).to_vec()));
        mounts.push(mount);
    }
    // Shallow targets first, so a mount inside another lands on top of it.
    let mut own: Vec<&TaskMount> = run.mounts.iter().collect();
    own.sort_by_key(|m| Path::new(m.target()).components().count());
    for mount in own {
        let target = mount.target();
        // The task's mount replaces a default one at the same place (/dev/shm, /run).
        mounts.retain(|m| m.destination() != Path::new(target));
        mounts.push(task_mount(mount)?);
    }

    let mut namespaces = Vec::new();
    for typ in [
        LinuxNamespaceType::Pid,
        LinuxNamespaceType::Ipc,
        LinuxNamespaceType::Uts,
        LinuxNamespaceType::Mount,
    ] {
        namespaces.push(
            LinuxNamespaceBuilder::default()
                .typ(typ)
                .build()
                .map_err(|e| e.to_string())?,
        );
    }
    if let Some(netns) = &run.netns {
        namespaces.push(
            LinuxNamespaceBuilder::default()
                .typ(LinuxNamespaceType::Network)
                .path(netns.clone())
                .build()
                .map_err(|e| e.to_string())?,
        );
    }
    let linux = LinuxBuilder::default()
        .namespaces(namespaces)
        .cgroups_path(PathBuf::from(cgroups_path))
        .resources(resources(&run.limits, swap_limit)?)
        .masked_paths(get_default_maskedpaths())
        .readonly_paths(get_default_readonly_paths())
        .sysctl(run.sysctls.clone())
        .build()
        .map_err(|e| e.to_string())?;

    SpecBuilder::default()
        .version("1.0.2-dev")
        .process(process)
        .root(
            RootBuilder::default()
                .path("rootfs")
                .readonly(run.confinement.read_only)
                .build()
                .map_err(|e| e.to_string())?,
        )
        .hostname(hostname)
        .mounts(mounts)
        .linux(linux)
        .build()
        .map_err(|e| e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn image(json: &str) -> ImageConfiguration {
        serde_json::from_str(json).unwrap_or_else(|e| panic!("test image config: {e}"))
    }

    const IMAGE: &str = r#"{"architecture":"amd64","os":"linux",
        "config":{"Entrypoint":["/entry"],"Cmd":["serve","--port","80"],
                  "Env":["PATH=/bin","MODE=prod"],"WorkingDir":"/srv"},
        "rootfs":{"type":"layers","diff_ids":[]}}"#;

    #[test]
    fn command_replaces_entrypoint_and_drops_image_cmd() {
        let img = image(IMAGE);
        let run = ContainerRun {
            command: vec!["/bin/sh".into()],
            ..ContainerRun::default()
        };
        assert_eq!(argv(&run, &img), vec!["/bin/sh"]);
        let run = ContainerRun {
            args: vec!["check".into()],
            ..ContainerRun::default()
        };
        assert_eq!(argv(&run, &img), vec!["/entry", "check"]);
        assert_eq!(
            argv(&ContainerRun::default(), &img),
            vec!["/entry", "serve", "--port", "80"]
        );
    }

    #[test]
    fn task_env_overrides_image_env() {
        let img = image(IMAGE);
        let run = ContainerRun {
            env: vec!["MODE=test".into(), "EXTRA=1".into()],
            ..ContainerRun::default()
        };
        assert_eq!(
            environment(&run, &img, "h1"),
            vec!["PATH=/bin", "MODE=test", "HOSTNAME=h1", "EXTRA=1"]
        );
        assert_eq!(working_dir(&run, &img), "/srv");
    }

    #[test]
    fn spec_joins_the_task_netns_and_keeps_rootfs_writable() {
        let img = image(IMAGE);
        let run = ContainerRun {
            netns: Some(PathBuf::from("/var/run/netns/t1")),
            ..ContainerRun::default()
        };
        let user = ResolvedUser {
            uid: 0,
            gid: 0,
            additional_gids: vec![],
        };
        let files = HostFiles {
            hosts: None,
            hostname: None,
            resolv_conf: None,
            init: None,
        };
        let spec = build(&run, &img, &user, "h1", "/shoal/t1", &files, true)
            .unwrap_or_else(|e| panic!("{e}"));
        let json = serde_json::to_value(&spec).unwrap_or_default();
        assert_eq!(json["root"]["readonly"], false);
        let namespaces = json["linux"]["namespaces"]
            .as_array()
            .cloned()
            .unwrap_or_default();
        assert!(namespaces
            .iter()
            .any(|ns| ns["type"] == "network" && ns["path"] == "/var/run/netns/t1"));
        assert_eq!(json["process"]["rlimits"][0]["type"], "RLIMIT_NOFILE");
        assert_eq!(json["linux"]["resources"].get("memory"), None, "no limits");
    }

    #[test]
    fn confinement_terminal_init_and_mounts_are_written_into_the_spec() {
        let img = image(IMAGE);
        let run = ContainerRun {
            confinement: super::super::Confinement {
                read_only: true,
                capability_drop: vec!["ALL".into()],
                capability_add: vec!["net_bind_service".into()],
                no_new_privileges: true,
            },
            tty: true,
            ulimits: vec![("nproc".into(), 10, 20), ("nofile".into(), 64, 64)],
            sysctls: [("net.core.somaxconn".to_string(), "512".to_string())].into(),
            mounts: vec![
                TaskMount::Tmpfs {
                    target: "/tmp/inner".into(),
                    size_bytes: 0,
                    mode: 0o700,
                    read_only: true,
                },
                TaskMount::Tmpfs {
                    target: "/tmp".into(),
                    size_bytes: 4096,
                    mode: 0,
                    read_only: false,
                },
                TaskMount::Bind {
                    source: "/srv/data".into(),
                    target: "/data".into(),
                    read_only: true,
                    propagation: String::new(),
                },
            ],
            ..ContainerRun::default()
        };
        let user = ResolvedUser {
            uid: 1000,
            gid: 1000,
            additional_gids: vec![],
        };
        let files = HostFiles {
            hosts: None,
            hostname: None,
            resolv_conf: None,
            init: Some(PathBuf::from("/usr/bin/tini-static")),
        };
        let spec = build(&run, &img, &user, "h1", "/shoal/t1", &files, true).unwrap();
        let json = serde_json::to_value(&spec).unwrap();
        assert_eq!(json["root"]["readonly"], true);
        let process = &json["process"];
        assert_eq!(process["terminal"], true);
        assert_eq!(process["noNewPrivileges"], true);
        assert_eq!(
            process["capabilities"]["bounding"],
            serde_json::json!(["CAP_NET_BIND_SERVICE"])
        );
        assert_eq!(process["args"][0], INIT_PATH);
        assert_eq!(process["args"][1], "--");
        let rlimits: Vec<(String, u64)> = process["rlimits"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| {
                (
                    r["type"].as_str().unwrap().to_string(),
                    r["hard"].as_u64().unwrap(),
                )
            })
            .collect();
        assert_eq!(
            rlimits,
            [
                ("RLIMIT_NPROC".to_string(), 20),
                ("RLIMIT_NOFILE".to_string(), 64)
            ]
        );
        assert_eq!(json["linux"]["sysctl"]["net.core.somaxconn"], "512");
        let mounts = json["mounts"].as_array().unwrap();
        let at = |dest: &str| {
            mounts
                .iter()
                .position(|m| m["destination"] == dest)
                .unwrap_or_else(|| panic!("no mount at {dest}"))
        };
        assert!(at("/tmp") < at("/tmp/inner"), "the outer mount first");
        assert_eq!(
            mounts[at("/tmp")]["options"],
            serde_json::json!(["nosuid", "nodev", "mode=1777", "size=4096"])
        );
        assert!(mounts[at("/data")]["options"]
            .as_array()
            .unwrap()
            .contains(&"ro".into()));
        assert_eq!(mounts[at(INIT_PATH)]["source"], "/usr/bin/tini-static");
        let unknown = ContainerRun {
            ulimits: vec![("files".into(), 1, 1)],
            ..ContainerRun::default()
        };
        assert!(build(&unknown, &img, &user, "h1", "/shoal/t1", &files, true).is_err());
    }

    #[test]
    fn limits_become_cgroup_settings_as_docker_sets_them() {
        let limits = Limits {
            memory_bytes: 64 << 20,
            nano_cpus: 1_500_000_000,
            pids: 100,
        };
        let json = serde_json::to_value(resources(&limits, true).unwrap()).unwrap();
        assert_eq!(json["memory"]["limit"], 64 << 20);
        assert_eq!(json["memory"]["swap"], 64 << 20, "no swap beyond the limit");
        assert_eq!(json["cpu"]["period"], 100_000);
        assert_eq!(json["cpu"]["quota"], 150_000);
        assert_eq!(json["pids"]["limit"], 100);
        assert_eq!(json["devices"][0]["allow"], false);
        let no_swap = serde_json::to_value(resources(&limits, false).unwrap()).unwrap();
        assert_eq!(no_swap["memory"].get("swap"), None);
        let tiny = Limits {
            nano_cpus: 1_000_000,
            ..Limits::default()
        };
        let json = serde_json::to_value(resources(&tiny, true).unwrap()).unwrap();
        assert_eq!(json["cpu"]["quota"], 1_000, "the kernel's smallest quota");
    }
}
