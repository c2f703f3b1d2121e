//! The `shoal` binary against a manager that is not there: a clear message
//! naming the address, and exit status 3 (not 1 or clap's 2).

use std::process::Command;
use std::time::{Duration, Instant};

fn shoal() -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_shoal"));
    cmd.env_remove("SHOAL_HOST").env_remove("SHOAL_TLS_DIR");
    cmd
}

#[test]
fn missing_socket_is_reported_with_address_and_exit_code_3() {
    let dir = tempfile::tempdir().expect("tempdir");
    let socket = dir.path().join("control.sock");
    let host = format!("unix://{}", socket.display());
    let started = Instant::now();
    let out = shoal()
        .args(["--host", &host, "service", "ls"])
        .output()
        .expect("run shoal");
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "took {:?}",
        started.elapsed()
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(3), "stderr: {stderr}");
    assert!(
        stderr.starts_with("Error: cannot reach the manager at "),
        "{stderr}"
    );
    assert!(stderr.contains(&host), "{stderr}");
    assert!(stderr.contains("Is the manager running"), "{stderr}");
    assert!(out.stdout.is_empty());
}

#[test]
fn stale_socket_without_listener_is_unreachable_too() {
    let dir = tempfile::tempdir().expect("tempdir");
    let socket = dir.path().join("control.sock");
    // A socket file whose server is gone: connecting is refused.
    drop(std::os::unix::net::UnixListener::bind(&socket).expect("bind"));
    let out = shoal()
        .env("SHOAL_HOST", format!("unix://{}", socket.display()))
        .args(["node", "ls"])
        .output()
        .expect("run shoal");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(3), "stderr: {stderr}");
    assert!(stderr.contains(&socket.display().to_string()), "{stderr}");
}

#[test]
fn usage_errors_exit_2_and_input_errors_exit_1() {
    let out = shoal()
        .args(["service", "create", "--publish", "80:http", "busybox"])
        .output()
        .expect("run shoal");
    assert_eq!(out.status.code(), Some(2));

    let dir = tempfile::tempdir().expect("tempdir");
    let out = shoal()
        .args(["--host", "tcp://127.0.0.1:9", "--tls-dir"])
        .arg(dir.path())
        .args(["node", "ls"])
        .output()
        .expect("run shoal");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "stderr: {stderr}");
    assert!(stderr.contains("certificate bundle"), "{stderr}");
}

#[test]
fn bad_compose_file_is_reported_with_its_line_even_without_a_manager() {
    let dir = tempfile::tempdir().expect("tempdir");
    let file = dir.path().join("bad.yml");
    std::fs::write(&file, "services:\n  web:\n    image: [\n").expect("write");
    let host = format!("unix://{}", dir.path().join("none.sock").display());
    let out = shoal()
        .args(["--host", &host, "stack", "deploy", "-c"])
        .arg(&file)
        .arg("web")
        .output()
        .expect("run shoal");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "stderr: {stderr}");
    assert!(stderr.starts_with("Error: "), "{stderr}");
    assert!(stderr.contains("bad.yml"), "{stderr}");
    assert!(stderr.contains("line 4"), "{stderr}");
    assert!(!stderr.contains("cannot reach"), "{stderr}");
    assert!(out.stdout.is_empty(), "nothing deployed");
}
