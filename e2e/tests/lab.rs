//! The lab itself: hosts, their network, the registry, and that nothing of a
//! lab survives its teardown (explicit, on drop during a panic, or through
//! the `shoal-lab` command).

use std::path::PathBuf;
use std::process::Command;

use shoal_e2e::lab::{self, Error, Lab, LabConfig};
use shoal_e2e::require_root;

/// A lab of hosts, registry and containerds, without the shoal daemons.
fn infra(name: &str) -> LabConfig {
    LabConfig {
        shoal: false,
        images: false,
        replace: true,
        ..LabConfig::new(name)
    }
}

fn up(config: LabConfig) -> Lab {
    Lab::up(config).unwrap_or_else(|e| panic!("lab up: {e}"))
}

fn stdout(out: &std::process::Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
fn hosts_reach_each_other_and_the_registry_and_down_leaves_nothing() {
    require_root();
    let name = "t-lab-basic";
    let lab = up(infra(name));
    let reg = lab.host_addr("reg").unwrap();
    let m1 = lab.host_addr("m1").unwrap();
    assert_ne!(reg, m1);
    assert!(lab.subnet().starts_with("10.201."), "{}", lab.subnet());

    let ping = lab
        .exec(
            "m1",
            &["busybox", "ping", "-c", "1", "-W", "2", &reg.to_string()],
        )
        .unwrap();
    assert!(ping.status.success(), "m1 cannot ping reg: {ping:?}");

    let v2 = format!("http://{}/v2/", lab.registry());
    let wget = lab
        .exec("m1", &["busybox", "wget", "-q", "-O", "-", &v2])
        .unwrap();
    assert!(
        wget.status.success(),
        "registry does not answer from m1: {wget:?}"
    );

    let (status, _) = lab.http_get(reg, 5000, "/v2/").unwrap();
    assert_eq!(status, 200, "registry from the root namespace");

    let routes = stdout(&lab.exec("m1", &["ip", "route"]).unwrap());
    assert!(
        !routes.contains("default"),
        "a test host must not route beyond the lab: {routes}"
    );

    let socket = lab.containerd_socket("m1").unwrap();
    assert!(socket.starts_with(lab.root()), "{}", socket.display());
    assert!(lab.exec("m1", &["true"]).unwrap().status.success());
    assert!(matches!(
        lab.exec("nope", &["true"]),
        Err(Error::UnknownHost { .. })
    ));

    lab.down().unwrap_or_else(|e| panic!("clean teardown: {e}"));
    assert_eq!(lab::leaks(name), Vec::<String>::new());
}

#[test]
fn a_lab_dropped_during_a_panic_leaves_nothing() {
    require_root();
    let name = "t-lab-panic";
    let result = std::panic::catch_unwind(|| {
        let lab = up(infra(name));
        assert!(
            lab::leaks(name).len() > 1,
            "a running lab shows up in leaks()"
        );
        assert!(lab.root().join("lab.json").exists());
        panic!("a test failing with the lab up");
    });
    assert!(result.is_err());
    assert_eq!(lab::leaks(name), Vec::<String>::new());
}

#[test]
fn parallel_labs_get_their_own_subnet_and_cannot_reach_each_other() {
    require_root();
    let a = std::thread::spawn(|| up(infra("t-lab-par-a")));
    let b = std::thread::spawn(|| up(infra("t-lab-par-b")));
    let a = a.join().expect("lab a up");
    let b = b.join().expect("lab b up");
    assert_ne!(a.subnet(), b.subnet());
    assert_ne!(a.root(), b.root());

    let b_m1 = b.host_addr("m1").unwrap().to_string();
    let ping = a
        .exec("m1", &["busybox", "ping", "-c", "1", "-W", "1", &b_m1])
        .unwrap();
    assert!(!ping.status.success(), "lab a reached lab b: {ping:?}");

    a.down().unwrap_or_else(|e| panic!("teardown a: {e}"));
    assert!(
        b.exec("m1", &["true"]).unwrap().status.success(),
        "b survives a's teardown"
    );
    b.down().unwrap_or_else(|e| panic!("teardown b: {e}"));
    assert!(lab::leaks("t-lab-par-a").is_empty());
    assert!(lab::leaks("t-lab-par-b").is_empty());
}

#[test]
fn a_running_lab_is_not_started_twice() {
    require_root();
    let name = "t-lab-twice";
    let lab = up(infra(name));
    let again = Lab::up(LabConfig {
        replace: false,
        ..infra(name)
    });
    assert!(
        matches!(again, Err(Error::AlreadyUp { .. })),
        "{:?}",
        again.err()
    );
    assert!(
        lab.exec("m1", &["true"]).unwrap().status.success(),
        "refusal left the lab alone"
    );
    lab.down().unwrap_or_else(|e| panic!("teardown: {e}"));
    assert!(lab::leaks(name).is_empty());
}

/// The command users drive: `up` leaves the lab running after it exits,
/// `env`/`exec` find it, `down` removes all of it.
#[test]
fn shoal_lab_command_up_env_exec_down() {
    require_root();
    let name = "t-lab-cli";
    let root = std::env::temp_dir().join("shoal-lab-cli").join(name);
    let lab_cmd = |args: &[&str]| {
        let out = Command::new(env!("CARGO_BIN_EXE_shoal-lab"))
            .env("SHOAL_LAB_ROOT", &root)
            .args(args)
            .output()
            .expect("run shoal-lab");
        (
            out.status.success(),
            stdout(&out),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    };
    // A guard so a failing assertion still removes the lab.
    struct Down(PathBuf);
    impl Drop for Down {
        fn drop(&mut self) {
            let _ = lab::down_at(&self.0);
        }
    }
    let _guard = Down(root.clone());

    let (ok, out, err) = lab_cmd(&["up", "--name", name, "--no-shoal", "--no-images"]);
    assert!(ok, "up failed: {out}{err}");

    let (ok, env, err) = lab_cmd(&["env"]);
    assert!(ok, "{err}");
    let reg = lab_cmd(&["addr", "reg"]).1.trim().to_string();
    assert!(
        env.contains(&format!("export SHOAL_REGISTRY={reg}:5000\n")),
        "{env}"
    );
    assert!(
        env.contains(&format!(
            "export SHOAL_HOST=unix://{}/m1/run/control.sock\n",
            root.display()
        )),
        "{env}"
    );
    assert!(
        env.contains(&format!("export SHOAL_LAB_ROOT={}\n", root.display())),
        "{env}"
    );
    // `shoal` goes first on PATH: SHOAL_BIN_DIR, else where shoal-lab is.
    let bin_dir = std::env::var_os("SHOAL_BIN_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            PathBuf::from(env!("CARGO_BIN_EXE_shoal-lab"))
                .parent()
                .expect("bin dir")
                .to_path_buf()
        });
    let bin_dir = std::path::absolute(bin_dir).expect("absolute bin dir");
    assert!(
        env.contains(&format!(
            "export PATH={}\"${{PATH:+:$PATH}}\"\n",
            bin_dir.display()
        )),
        "{env}"
    );

    let (ok, out, err) = lab_cmd(&["exec", "m1", "busybox", "ping", "-c", "1", "-W", "2", &reg]);
    assert!(ok, "exec ping from m1 to reg: {out}{err}");
    let (ok, _, _) = lab_cmd(&["exec", "m1", "false"]);
    assert!(!ok, "exec passes the command's failure on");

    let (ok, out, err) = lab_cmd(&["down"]);
    assert!(ok, "down failed: {out}{err}");
    assert_eq!(lab::leaks_at(name, &root), Vec::<String>::new());
}
