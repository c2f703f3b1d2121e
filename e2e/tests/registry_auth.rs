//! Private registries on a real lab (issue 12): a pull from the lab's
//! password-protected registry fails with the registry's words without
//! `--with-registry-auth` and works with it, after `shoal login`; the
//! password is in no answer of the control API and in no file of any node.

use std::io::Write;
use std::process::Stdio;
use std::time::Duration;

use shoal_e2e::lab::{task_error, LabConfig};
use shoal_e2e::test_lab;

const USER: &str = "ci";
const PASSWORD: &str = "pw-marker-71d3c0a9";

#[test]
fn a_private_registry_needs_with_registry_auth_and_the_password_stays_off_disk() {
    let lab = test_lab(LabConfig {
        workers: 1,
        ..LabConfig::new("t-regauth")
    });
    let guarded = lab
        .start_guarded_registry(USER, PASSWORD)
        .unwrap_or_else(|e| panic!("{e}"));
    let image = format!("{}/web:v1", lab.guarded_registry());
    assert_eq!(guarded.host(), lab.guarded_registry());
    // The CLI's docker config (where `login` keeps credentials) is the test's own.
    let docker_config = tempfile::tempdir().expect("tempdir");
    std::env::set_var("DOCKER_CONFIG", docker_config.path());

    lab.shoal_must(&["service", "create", "--detach", "--name", "anon", &image]);
    let rejected = lab
        .wait_until("the pull refused", Duration::from_secs(60), || {
            let rows = lab.service_ps("anon");
            rows.iter()
                .find(|r| r["State"] == "rejected")
                .cloned()
                .ok_or(format!("not rejected yet: {rows:?}"))
        })
        .expect("refused");
    let error = task_error(&rejected).to_lowercase();
    assert!(
        error.contains("unauthorized") || error.contains("authentication required"),
        "the registry's words: {rejected}"
    );

    let missing = lab
        .shoal([
            "service",
            "create",
            "--detach",
            "--with-registry-auth",
            "--name",
            "x",
            &image,
        ])
        .expect("run shoal");
    assert!(
        String::from_utf8_lossy(&missing.stderr).contains("no credentials for"),
        "{}",
        String::from_utf8_lossy(&missing.stderr)
    );
    let bin = shoal_e2e::lab::bin_dir().expect("bin dir");
    let mut login = std::process::Command::new(bin.join("shoal"))
        .args([
            "login",
            "-u",
            USER,
            "--password-stdin",
            &lab.guarded_registry(),
        ])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("shoal login");
    login
        .stdin
        .take()
        .expect("stdin")
        .write_all(format!("{PASSWORD}\n").as_bytes())
        .expect("password");
    assert!(login.wait().expect("login").success());

    lab.shoal_must(&[
        "service",
        "create",
        "--detach",
        "--with-registry-auth",
        "--name",
        "private",
        "--replicas",
        "2",
        &image,
    ]);
    lab.wait_until("private's tasks running", Duration::from_secs(60), || {
        let rows = lab.service_ps("private");
        let running = rows.iter().filter(|r| r["State"] == "running").count();
        if running == 2 {
            Ok(())
        } else {
            Err(format!("{running} running: {rows:?}"))
        }
    })
    .expect("pulled with the credentials");
    for answer in [
        lab.shoal_must(&["service", "inspect", "private"]),
        lab.shoal_must(&["service", "ps", "private", "--format", "json"]),
    ] {
        assert!(
            !answer.contains(PASSWORD),
            "the password came back: {answer}"
        );
    }
    // An update without the flag keeps the credentials.
    lab.shoal_must(&["service", "update", "--env-add", "A=1", "private"]);
    assert!(lab
        .shoal_must(&["service", "inspect", "private"])
        .contains("A=1"));
    let hits = shoal_e2e::probe::files_holding(lab.root(), PASSWORD);
    assert!(hits.is_empty(), "the password is on disk: {hits:?}");
    drop(guarded);
    lab.down().unwrap_or_else(|e| panic!("teardown: {e}"));
}
