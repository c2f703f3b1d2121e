//! Stack deploys a CI pipeline can trust (issue 13), on a real lab:
//! `stack deploy --detach=false` returns once every service of the stack
//! converged (jobs and one-shot services included) and fails within its
//! timeout naming the service and why; `--dry-run` and `stack diff` show
//! the plan and change nothing; images are pinned to their digest; `stack
//! rm --detach=false` returns once nothing of the stack is left.

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;
use shoal_e2e::lab::{Lab, LabConfig};
use shoal_e2e::test_lab;

/// Hosts of the lab that run tasks.
const NODES: [&str; 2] = ["m1", "w1"];

fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, text).unwrap_or_else(|e| panic!("write {}: {e}", path.display()));
    path
}

fn text(out: &Output) -> (String, String) {
    (
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// `shoal ARGS` that may reach the lab's registry itself (to pin digests):
/// it is plain HTTP, as the agents are told.
fn shoal_with_registry(lab: &Lab, args: &[&str]) -> Output {
    Command::new(lab.cli_path())
        .args(["--host", lab.shoal_host()])
        .env("SHOAL_INSECURE_REGISTRIES", lab.registry())
        .args(args)
        .stdin(Stdio::null())
        .output()
        .unwrap_or_else(|e| panic!("run shoal {args:?}: {e}"))
}

fn deploy(lab: &Lab, file: &Path, stack: &str, extra: &[&str]) -> (Output, Duration) {
    let file = file.to_string_lossy();
    let mut args = vec!["stack", "deploy", "--detach=false", "-c", &file];
    args.extend_from_slice(extra);
    args.push(stack);
    let started = Instant::now();
    let out = lab.shoal(&args).expect("run stack deploy");
    (out, started.elapsed())
}

fn running(lab: &Lab, service: &str) -> usize {
    lab.service_ps(service)
        .iter()
        .filter(|r| r["DesiredState"] == "Running" && r["State"] == "running")
        .count()
}

fn inspect(lab: &Lab, service: &str) -> Value {
    let json = lab.shoal_must(&["service", "inspect", service]);
    let all: Value = serde_json::from_str(&json).unwrap_or_else(|e| panic!("{e}: {json}"));
    all[0].clone()
}

#[test]
fn a_stack_deploy_waits_for_every_service_and_rm_for_everything_to_go() {
    let lab = test_lab(LabConfig {
        workers: 1,
        ..LabConfig::new("stackdep1")
    });
    let reg = lab.registry().to_string();
    let dir = tempfile::tempdir().expect("tempdir");

    // (a) Three services, one of them healthy only once its check passes.
    let three = write(
        dir.path(),
        "three.yml",
        &format!(
            "services:\n\
             \x20 web:\n    image: {reg}/web:v1\n    deploy:\n      replicas: 2\n\
             \x20 api:\n    image: {reg}/web:v2\n\
             \x20 db:\n    image: {reg}/web:checked\n    secrets: [pw]\n\
             secrets:\n  pw:\n    file: {}\n",
            write(dir.path(), "pw.txt", "hunter2").display()
        ),
    );
    let (out, took) = deploy(&lab, &three, "st", &[]);
    let (stdout, stderr) = text(&out);
    assert!(out.status.success(), "deploy: {stdout}{stderr}");
    assert!(stdout.contains("Creating service st_web"), "{stdout}");
    for service in ["st_api", "st_db", "st_web"] {
        assert!(
            stderr.contains(&format!("{service}: converged")),
            "{service} not said converged: {stderr}"
        );
    }
    assert!(took < Duration::from_secs(120), "took {took:?}");
    // Returned once all run: nothing to wait for after it.
    assert_eq!(running(&lab, "st_web"), 2);
    assert_eq!(running(&lab, "st_api"), 1);
    assert_eq!(running(&lab, "st_db"), 1);

    // (e) A job and a one-shot service (restart none) that exits: the
    // deploy returns once the job completed and the task exited 0.
    let once = write(
        dir.path(),
        "once.yml",
        &format!(
            "services:\n\
             \x20 migrate:\n    image: {reg}/web:v1\n    command: [\"sh\", \"-c\", \"echo migrated\"]\n\
             \x20   deploy:\n      restart_policy:\n        condition: none\n\
             \x20 batch:\n    image: {reg}/web:v1\n    command: [\"sh\", \"-c\", \"sleep 1\"]\n\
             \x20   deploy:\n      mode: replicated-job\n      replicas: 2\n"
        ),
    );
    let (out, took) = deploy(&lab, &once, "once", &["--timeout", "60s"]);
    let (stdout, stderr) = text(&out);
    assert!(out.status.success(), "one-shot deploy: {stdout}{stderr}");
    assert!(stderr.contains("once_batch: completed"), "{stderr}");
    assert!(stderr.contains("once_migrate: converged"), "{stderr}");
    assert!(took < Duration::from_secs(60), "hung until {took:?}");
    let migrate = lab.service_ps("once_migrate");
    assert!(
        migrate.iter().all(|r| r["State"] == "complete"),
        "{migrate:#?}"
    );

    // (f) Removal waits until the cluster holds nothing of the stack.
    let started = Instant::now();
    let out = lab
        .shoal([
            "stack",
            "rm",
            "--detach=false",
            "--timeout",
            "60s",
            "st",
            "once",
        ])
        .expect("run stack rm");
    let (stdout, stderr) = text(&out);
    assert!(out.status.success(), "stack rm: {stdout}{stderr}");
    assert!(started.elapsed() < Duration::from_secs(60));
    let services = lab.shoal_must(&["service", "ls", "-q"]);
    assert!(services.trim().is_empty(), "services left: {services}");
    for stack in ["st", "once"] {
        let out = lab.shoal(["stack", "ps", stack]).expect("run stack ps");
        assert!(!out.status.success(), "tasks of {stack} left: {out:?}");
    }
    for node in NODES {
        let tasks = lab.shoal_must(&["node", "ps", "-q", node]);
        assert!(tasks.trim().is_empty(), "tasks left on {node}: {tasks}");
    }
    let networks = lab.shoal_must(&["network", "ls"]);
    assert!(
        !networks.contains("st_default") && !networks.contains("once_default"),
        "{networks}"
    );
    let secrets = lab.shoal_must(&["secret", "ls"]);
    assert!(!secrets.contains("st_pw"), "{secrets}");
    for node in NODES {
        let containers = lab.running_task_pids(node).expect("containers");
        assert!(
            containers.is_empty(),
            "containers left on {node}: {containers:?}"
        );
    }
    lab.down().unwrap_or_else(|e| panic!("teardown: {e}"));
}

#[test]
fn a_deploy_that_cannot_converge_fails_in_time_naming_the_service_and_why() {
    let lab = test_lab(LabConfig {
        workers: 1,
        ..LabConfig::new("stackdep2")
    });
    let reg = lab.registry().to_string();
    let dir = tempfile::tempdir().expect("tempdir");

    // (b) An image that does not exist: the node rejects the task.
    let missing = write(
        dir.path(),
        "missing.yml",
        &format!(
            "services:\n\
             \x20 web:\n    image: {reg}/web:v1\n\
             \x20 ghost:\n    image: {reg}/nope:v9\n"
        ),
    );
    let (out, took) = deploy(&lab, &missing, "miss", &["--timeout", "30s"]);
    let (stdout, stderr) = text(&out);
    assert!(
        !out.status.success(),
        "a missing image converged: {stdout}{stderr}"
    );
    assert!(took < Duration::from_secs(30 + 15), "took {took:?}");
    assert!(
        stderr.contains("Error: service miss_ghost: task miss_ghost.1 rejected")
            && stderr.contains("nope:v9"),
        "{stderr}"
    );

    // (c) A health check that never passes (failures within its start
    // period do not count): not converged at the timeout, and why.
    let sick = write(
        dir.path(),
        "sick.yml",
        &format!(
            "services:\n\
             \x20 api:\n    image: {reg}/web:v1\n    healthcheck:\n\
             \x20     test: [\"CMD\", \"false\"]\n      interval: 1s\n      start_period: 10m\n"
        ),
    );
    let (out, took) = deploy(&lab, &sick, "sick", &["--timeout", "15s"]);
    let (stdout, stderr) = text(&out);
    assert!(
        !out.status.success(),
        "an unhealthy service converged: {stdout}{stderr}"
    );
    assert!(
        took >= Duration::from_secs(15) && took < Duration::from_secs(15 + 15),
        "took {took:?}"
    );
    assert!(
        stderr.contains(
            "Error: service sick_api: not converged after 15s: 0/1 running, \
             task sick_api.1 starting (health: starting)"
        ),
        "{stderr}"
    );
    lab.down().unwrap_or_else(|e| panic!("teardown: {e}"));
}

#[test]
fn a_dry_run_and_a_diff_show_the_plan_and_change_nothing() {
    let lab = test_lab(LabConfig {
        workers: 0,
        ..LabConfig::new("stackdep3")
    });
    let reg = lab.registry().to_string();
    let dir = tempfile::tempdir().expect("tempdir");
    let v1 = write(
        dir.path(),
        "v1.yml",
        &format!("services:\n  web:\n    image: {reg}/web:v1\n"),
    );
    let v1_path = v1.to_string_lossy().into_owned();
    let out = shoal_with_registry(
        &lab,
        &["stack", "deploy", "--detach=false", "-c", &v1_path, "plan"],
    );
    let (stdout, stderr) = text(&out);
    assert!(out.status.success(), "deploy: {stdout}{stderr}");
    // Pinned to the digest the tag names, the file's reference kept.
    let spec = &inspect(&lab, "plan_web")["Spec"];
    let image = spec["TaskTemplate"]["ContainerSpec"]["Image"]
        .as_str()
        .expect("image")
        .to_string();
    assert!(
        image.starts_with(&format!("{reg}/web:v1@sha256:")),
        "not pinned: {image}"
    );
    assert_eq!(
        spec["Labels"]["com.docker.stack.image"],
        format!("{reg}/web:v1")
    );

    // The same files: nothing to change, whichever way images resolve.
    for resolve in ["always", "never"] {
        let out = shoal_with_registry(
            &lab,
            &[
                "stack",
                "diff",
                "--resolve-image",
                resolve,
                "-c",
                &v1_path,
                "plan",
            ],
        );
        let (stdout, stderr) = text(&out);
        assert_eq!(out.status.code(), Some(0), "{resolve}: {stdout}{stderr}");
        assert!(stdout.contains("No changes to stack plan"), "{stdout}");
    }

    // Another image and scale, and a new service.
    let v2 = write(
        dir.path(),
        "v2.yml",
        &format!(
            "services:\n\
             \x20 web:\n    image: {reg}/web:v2\n    deploy:\n      replicas: 2\n\
             \x20 extra:\n    image: {reg}/web:v1\n"
        ),
    );
    let v2_path = v2.to_string_lossy().into_owned();
    let before = lab.shoal_must(&["service", "inspect", "plan_web"]);
    let out = shoal_with_registry(
        &lab,
        &["stack", "deploy", "--dry-run", "-c", &v2_path, "plan"],
    );
    let (stdout, stderr) = text(&out);
    assert!(out.status.success(), "dry run: {stdout}{stderr}");
    assert!(stdout.contains("+ service plan_extra"), "{stdout}");
    assert!(
        stdout.contains("~ service plan_web (tasks are replaced)"),
        "{stdout}"
    );
    assert!(
        stdout.contains(&format!(
            "TaskTemplate.ContainerSpec.Image: {image} -> {reg}/web:v2@sha256:"
        )),
        "{stdout}"
    );
    assert!(
        stdout.contains("Mode.Replicated.Replicas: 1 -> 2"),
        "{stdout}"
    );
    assert!(
        stdout.contains("Plan for stack plan: create 1 service; update 1 service"),
        "{stdout}"
    );
    // Nothing changed: the same service, at the same version, alone.
    assert_eq!(lab.shoal_must(&["service", "inspect", "plan_web"]), before);
    assert_eq!(lab.shoal_must(&["service", "ls", "-q"]).lines().count(), 1);

    // `stack diff` shows the same plan and says so in its status.
    let out = shoal_with_registry(&lab, &["stack", "diff", "-c", &v2_path, "plan"]);
    let (stdout, stderr) = text(&out);
    assert_eq!(out.status.code(), Some(4), "{stdout}{stderr}");
    assert!(
        stdout.contains("Mode.Replicated.Replicas: 1 -> 2"),
        "{stdout}"
    );
    assert_eq!(lab.shoal_must(&["service", "inspect", "plan_web"]), before);

    // A bad --resolve-image is refused with the values there are.
    let out = lab
        .shoal([
            "stack",
            "diff",
            "--resolve-image",
            "sometimes",
            "-c",
            &v2_path,
            "plan",
        ])
        .expect("run stack diff");
    let (_, stderr) = text(&out);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains("[possible values: always, changed, never]"),
        "{stderr}"
    );
    lab.down().unwrap_or_else(|e| panic!("teardown: {e}"));
}
