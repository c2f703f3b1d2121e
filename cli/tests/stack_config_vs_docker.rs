//! Differential test of `shoal stack config` against `docker stack config`
//! (the Docker CLI on the machine; no daemon needed): for every compose
//! fixture, and for every set of override files, both print the same YAML
//! byte for byte, or both refuse the file.
//!
//! Fixtures are the loader's (`tests/compose/*.yml`, each with its variables
//! from a `.env` beside it) and the override sets of
//! `tests/compose/overrides/<case>/`, whose files merge in name order.
//! `beyond_docker_*` fixtures use keys docker's v3 schema refuses and shoal
//! reads by design; they are left out.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

mod support;

use support::{docker_env, require_docker};

fn fixtures_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/compose")
}

fn run(program: &str, files: &[PathBuf], env: &HashMap<String, String>) -> Output {
    let mut command = Command::new(program);
    command.args(["stack", "config"]);
    for file in files {
        command.arg("-c").arg(file);
    }
    command
        .env_clear()
        .envs(env)
        .stdin(Stdio::null())
        .output()
        .unwrap_or_else(|e| panic!("run {program}: {e}"))
}

/// Compares both commands on `files`; `None` when they agree.
fn difference(name: &str, files: &[PathBuf], env: &HashMap<String, String>) -> Option<String> {
    let docker = run("docker", files, env);
    let shoal = run(env!("CARGO_BIN_EXE_shoal"), files, env);
    let text = |b: &[u8]| String::from_utf8_lossy(b).into_owned();
    match (docker.status.success(), shoal.status.success()) {
        (true, true) if docker.stdout == shoal.stdout => None,
        (true, true) => Some(format!(
            "{name}: the outputs differ\n--- docker\n{}\n--- shoal\n{}",
            text(&docker.stdout),
            text(&shoal.stdout)
        )),
        (false, false) => None,
        (true, false) => Some(format!(
            "{name}: docker prints it, shoal refuses: {}",
            text(&shoal.stderr)
        )),
        (false, true) => Some(format!(
            "{name}: docker refuses ({}), shoal prints it",
            text(&docker.stderr).trim()
        )),
    }
}

#[test]
fn stack_config_prints_what_docker_prints_for_every_fixture() {
    require_docker();
    let home = tempfile::tempdir().expect("temp home");
    let mut fixtures: Vec<PathBuf> = std::fs::read_dir(fixtures_dir())
        .expect("fixtures")
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "yml"))
        .filter(|p| {
            !p.file_name()
                .is_some_and(|n| n.to_string_lossy().starts_with("beyond_docker_"))
        })
        .collect();
    fixtures.sort();
    assert!(fixtures.len() >= 60, "fixtures missing: {}", fixtures.len());
    let differences: Vec<String> = fixtures
        .iter()
        .filter_map(|f| {
            let name = f.file_name().unwrap_or_default().to_string_lossy();
            let env = docker_env(&f.with_extension("env"), home.path());
            difference(&name, std::slice::from_ref(f), &env)
        })
        .collect();
    assert!(
        differences.is_empty(),
        "{} of {} fixtures differ:\n\n{}",
        differences.len(),
        fixtures.len(),
        differences.join("\n\n")
    );
}

#[test]
fn override_files_merge_as_docker_merges_them() {
    require_docker();
    let home = tempfile::tempdir().expect("temp home");
    let mut cases: Vec<PathBuf> = std::fs::read_dir(fixtures_dir().join("overrides"))
        .expect("override cases")
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.is_dir())
        .collect();
    cases.sort();
    assert!(cases.len() >= 5, "override cases missing: {cases:?}");
    let differences: Vec<String> = cases
        .iter()
        .filter_map(|case| {
            let mut files: Vec<PathBuf> = std::fs::read_dir(case)
                .expect("case")
                .filter_map(|e| e.ok().map(|e| e.path()))
                .filter(|p| p.extension().is_some_and(|x| x == "yml"))
                .collect();
            files.sort();
            let name = case.file_name().unwrap_or_default().to_string_lossy();
            let env = docker_env(&case.join(".env"), home.path());
            difference(&name, &files, &env)
        })
        .collect();
    assert!(
        differences.is_empty(),
        "{} of {} override cases differ:\n\n{}",
        differences.len(),
        cases.len(),
        differences.join("\n\n")
    );
}

#[test]
fn a_compose_file_is_read_from_stdin_with_dash() {
    let fixture = fixtures_dir().join("ok_basic.yml");
    let text = std::fs::read(&fixture).expect("fixture");
    let mut child = Command::new(env!("CARGO_BIN_EXE_shoal"))
        .args(["stack", "config", "-c", "-"])
        .current_dir(fixtures_dir())
        .env_clear()
        .env("MODE_FROM_ENV", "x")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("spawn shoal");
    use std::io::Write;
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(&text)
        .expect("write stdin");
    let out = child.wait_with_output().expect("shoal");
    assert!(out.status.success(), "{out:?}");
    let from_file = Command::new(env!("CARGO_BIN_EXE_shoal"))
        .args(["stack", "config", "-c"])
        .arg(&fixture)
        .env_clear()
        .env("MODE_FROM_ENV", "x")
        .output()
        .expect("shoal");
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&from_file.stdout)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("nginx:1.25-alpine"));
}
