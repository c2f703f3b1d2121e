//! Configs on a three-node lab (issue 12): a stack's config made from a
//! file reaches only the node that runs a task using it, read-only at its
//! target with the uid, gid and mode the file says; `config inspect` shows
//! its value (it is not a secret); `config update` rolls the service to the
//! new value; a config in use cannot be removed, and `stack rm` removes it
//! with the stack.

use std::os::unix::fs::MetadataExt;
use std::time::Duration;

use shoal_e2e::lab::LabConfig;
use shoal_e2e::test_lab;

const MARKER: &str = "marker-config-5be1c0d7";

const STACK: &str = r#"
version: "3.8"
services:
  app:
    image: ${SHOAL_REGISTRY}/web:v1
    hostname: "{{.Service.Name}}-{{.Task.Slot}}"
    environment:
      WHERE: "{{.Node.Hostname}}"
    configs:
      - source: tpl
        target: /etc/tpl.conf
      - source: app_conf
        target: /etc/app.conf
        uid: "1000"
        gid: "1000"
        mode: 0440
    deploy:
      placement:
        constraints: [node.hostname == w1]
configs:
  app_conf:
    file: ./app.conf
  tpl:
    file: ./tpl.conf
    template_driver: golang
"#;

const TEMPLATE: &str = "slot={{.Task.Slot}} node={{.Node.Hostname}} where={{env \"WHERE\"}} \
                        conf={{config \"app.conf\"}}";

#[test]
fn a_config_reaches_only_its_tasks_node_at_its_target_and_cannot_go_while_used() {
    let lab = test_lab(LabConfig {
        workers: 2,
        ..LabConfig::new("t-config")
    });
    let dir = lab.root().join("stack");
    std::fs::create_dir_all(&dir).expect("stack dir");
    std::fs::write(dir.join("app.conf"), format!("{MARKER}\n")).expect("write the config");
    std::fs::write(dir.join("tpl.conf"), TEMPLATE).expect("write the template");
    let file = dir.join("stack.yml");
    std::fs::write(&file, STACK).expect("write the stack file");
    lab.shoal_must(&["stack", "deploy", "-c", &file.to_string_lossy(), "cfg"]);
    let pid = lab
        .wait_until("app runs on w1", Duration::from_secs(60), || {
            lab.running_task_pids("w1")
                .map_err(|e| e.to_string())?
                .first()
                .copied()
                .ok_or_else(|| "no task yet".to_string())
        })
        .expect("app runs");
    let in_container = format!("/proc/{pid}/root/etc/app.conf");
    assert_eq!(
        std::fs::read_to_string(&in_container).expect("read the config"),
        format!("{MARKER}\n")
    );
    let meta = std::fs::metadata(&in_container).expect("stat");
    assert_eq!(meta.mode() & 0o777, 0o440);
    assert_eq!((meta.uid(), meta.gid()), (1000, 1000));
    let mountinfo = std::fs::read_to_string(format!("/proc/{pid}/mountinfo")).expect("mountinfo");
    let mount = mountinfo
        .lines()
        .find(|l| l.split_whitespace().nth(4) == Some("/etc/app.conf"))
        .unwrap_or_else(|| panic!("no mount at /etc/app.conf:\n{mountinfo}"));
    assert!(
        mount
            .split_whitespace()
            .nth(5)
            .is_some_and(|o| o.split(',').any(|x| x == "ro")),
        "read-only: {mount}"
    );
    // Swarm's placeholders: in a golang config, the hostname and env values.
    assert_eq!(
        std::fs::read_to_string(format!("/proc/{pid}/root/etc/tpl.conf")).expect("template"),
        format!("slot=1 node=w1 where=w1 conf={MARKER}\n")
    );
    assert_eq!(
        std::fs::read_to_string(format!("/proc/{pid}/root/etc/hostname"))
            .expect("hostname")
            .trim(),
        "cfg_app-1"
    );
    let environ = std::fs::read(format!("/proc/{pid}/environ")).expect("environ");
    assert!(
        environ.split(|b| *b == 0).any(|e| e == b"WHERE=w1"),
        "{}",
        String::from_utf8_lossy(&environ)
    );
    for other in ["m1", "w2"] {
        let hits = shoal_e2e::probe::files_holding(&lab.root().join(other), MARKER);
        assert!(hits.is_empty(), "{other} holds the config: {hits:?}");
    }

    // Not a secret: inspect shows the value.
    let inspected: serde_json::Value =
        serde_json::from_str(&lab.shoal_must(&["config", "inspect", "cfg_app_conf"]))
            .expect("json");
    use base64::Engine;
    let data = base64::engine::general_purpose::STANDARD
        .decode(inspected[0]["Spec"]["Data"].as_str().expect("Data"))
        .expect("base64");
    assert_eq!(String::from_utf8_lossy(&data), format!("{MARKER}\n"));
    assert_eq!(
        inspected[0]["Spec"]["Labels"]["com.docker.stack.namespace"],
        "cfg"
    );
    let service: serde_json::Value =
        serde_json::from_str(&lab.shoal_must(&["service", "inspect", "cfg_app"])).expect("json");
    let reference = &service[0]["Spec"]["TaskTemplate"]["ContainerSpec"]["Configs"][1];
    assert_eq!(reference["ConfigName"], "cfg_app_conf", "{reference}");
    assert_eq!(reference["File"]["Name"], "/etc/app.conf");
    assert_eq!(reference["File"]["Mode"], 0o440);

    // Beyond Swarm: a new value in place rolls the service, and the new
    // task reads it.
    let updated = dir.join("app.conf.v2");
    std::fs::write(&updated, "second value\n").expect("write");
    let out = lab.shoal_must(&[
        "config",
        "update",
        "--timeout",
        "60s",
        "cfg_app_conf",
        &updated.to_string_lossy(),
    ]);
    assert!(out.contains("Rolling service cfg_app"), "{out}");
    let new_pid = lab
        .wait_until("the new task on w1", Duration::from_secs(60), || match lab
            .running_task_pids("w1")
            .map_err(|e| e.to_string())?
            .first()
        {
            Some(&p) if p != pid => Ok(p),
            other => Err(format!("running: {other:?}")),
        })
        .expect("rolled");
    assert_eq!(
        std::fs::read_to_string(format!("/proc/{new_pid}/root/etc/app.conf")).expect("read"),
        "second value\n"
    );
    let missing = lab
        .shoal(["config", "update", "nosuch", &updated.to_string_lossy()])
        .expect("run shoal");
    assert!(!missing.status.success());

    let refused = lab
        .shoal(["config", "rm", "cfg_app_conf"])
        .expect("run shoal");
    let stderr = String::from_utf8_lossy(&refused.stderr);
    assert!(
        !refused.status.success() && stderr.contains("in use by the following service(s): cfg_app"),
        "{stderr}"
    );
    lab.shoal_must(&["stack", "rm", "cfg"]);
    let left = lab.shoal_must(&["config", "ls", "-q"]);
    assert!(left.trim().is_empty(), "configs left: {left}");
    lab.down().unwrap_or_else(|e| panic!("teardown: {e}"));
}
