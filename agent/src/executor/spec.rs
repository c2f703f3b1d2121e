//! The OCI runtime spec for a task container, close to containerd's default spec (and Docker's
//! default capabilities), with the image's config applied under the task's overrides.

use super::user::ResolvedUser;
use super::{ContainerRun, Limits};
use oci_spec::image::ImageConfiguration;
use oci_spec::runtime::{
    get_default_maskedpaths, get_default_mounts, get_default_readonly_paths, Capability,
    LinuxBuilder, LinuxCapabilitiesBuilder, LinuxCpuBuilder, LinuxDeviceCgroupBuilder,
    LinuxMemoryBuilder, LinuxNamespaceBuilder, LinuxNamespaceType, LinuxPidsBuilder,
    LinuxResources, LinuxResourcesBuilder, Mount, MountBuilder, PosixRlimitBuilder,
    PosixRlimitType, ProcessBuilder, RootBuilder, Spec, SpecBuilder, UserBuilder,
};
use std::collections::HashSet;
use std::path::{Path, PathBuf};

const DEFAULT_PATH: &str = "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/// Docker's default capability set.
const CAPABILITIES: &[Capability] = &[
    Capability::Chown,
    Capability::DacOverride,
    Capability::Fsetid,
    Capability::Fowner,
    Capability::Mknod,
    Capability::NetRaw,
    Capability::Setgid,
    Capability::Setuid,
    Capability::Setfcap,
    Capability::Setpcap,
    Capability::NetBindService,
    Capability::SysChroot,
    Capability::Kill,
    Capability::AuditWrite,
];

/// Generated files bind-mounted over the image's.
pub(crate) struct EtcFiles {
    pub hosts: Option<PathBuf>,
    pub hostname: Option<PathBuf>,
    pub resolv_conf: Option<PathBuf>,
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
    files: &EtcFiles,
    swap_limit: bool,
) -> Result<Spec, String> {
    let args = argv(run, image);
    if args.is_empty() {
        return Err(
            "no command: the image has neither entrypoint nor cmd, and the task sets none"
                .to_string(),
        );
    }
    let caps: HashSet<Capability> = CAPABILITIES.iter().copied().collect();
    let capabilities = LinuxCapabilitiesBuilder::default()
        .bounding(caps.clone())
        .effective(caps.clone())
        .permitted(caps)
        .build()
        .map_err(|e| e.to_string())?;
    let process = ProcessBuilder::default()
        .terminal(false)
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
        .rlimits(vec![PosixRlimitBuilder::default()
            .typ(PosixRlimitType::RlimitNofile)
            .hard(1024u64)
            .soft(1024u64)
            .build()
            .map_err(|e| e.to_string())?])
        .no_new_privileges(false)
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
        .build()
        .map_err(|e| e.to_string())?;

    SpecBuilder::default()
        .version("1.0.2-dev")
        .process(process)
        .root(
            RootBuilder::default()
                .path("rootfs")
                .readonly(false)
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
        let files = EtcFiles {
            hosts: None,
            hostname: None,
            resolv_conf: None,
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
