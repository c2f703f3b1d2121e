//! The README's "Try it" works as written: its commands, taken from the
//! README itself, run in a clean shell (no profile, a minimal PATH, a fresh
//! HOME) against a lab brought up the way `./scripts/lab up` brings it up.

use std::net::{Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::{Duration, Instant};

use shoal_e2e::fixtures;
use shoal_e2e::lab;
use shoal_e2e::require_root;

const NAME: &str = "t-readme";
/// The PATH of the clean shell, as a new root shell has it before anything
/// of shoal is on it.
const CLEAN_PATH: &str = "/usr/sbin:/usr/bin:/sbin:/bin";
/// Marks the start of each command's output in the clean shell's stdout.
const MARK: &str = "### ";

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("the workspace holds e2e/")
        .canonicalize()
        .expect("workspace dir")
}

/// The commands of the README's "Try it" block: the code lines after
/// `./scripts/lab up`, up to and with the `./scripts/lab down` line.
fn try_it_commands(readme: &str) -> Vec<String> {
    let section = readme
        .split("\n## ")
        .find(|s| s.starts_with("Try it\n"))
        .expect("README has a \"## Try it\" section");
    let code: Vec<&str> = section
        .lines()
        .filter_map(|l| l.strip_prefix("    "))
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .collect();
    let up = code
        .iter()
        .position(|l| *l == "./scripts/lab up")
        .unwrap_or_else(|| panic!("no `./scripts/lab up` line in Try it: {code:?}"));
    let down = code[up..]
        .iter()
        .position(|l| l.starts_with("./scripts/lab down"))
        .unwrap_or_else(|| panic!("no `./scripts/lab down` after `up` in Try it: {code:?}"));
    code[up + 1..=up + down]
        .iter()
        .map(|l| l.to_string())
        .collect()
}

fn sh_quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', r"'\''"))
}

fn text(out: &Output) -> (String, String) {
    (
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// Tears the lab under its root down when the test ends, passing or not;
/// after a failure it first keeps the hosts' logs.
struct Down(PathBuf);

impl Drop for Down {
    fn drop(&mut self) {
        if std::thread::panicking() {
            keep_logs(&self.0);
        }
        if let Err(e) = lab::down_at(&self.0) {
            eprintln!("lab {NAME}: {e}");
        }
    }
}

fn keep_logs(root: &Path) {
    let dest = std::env::temp_dir().join("shoal-lab-logs").join(NAME);
    let _ = std::fs::remove_dir_all(&dest);
    let Ok(hosts) = std::fs::read_dir(root) else {
        return;
    };
    for host in hosts.flatten() {
        let Ok(logs) = std::fs::read_dir(host.path().join("logs")) else {
            continue;
        };
        let to = dest.join(host.file_name());
        if std::fs::create_dir_all(&to).is_err() {
            continue;
        }
        for log in logs.flatten() {
            let _ = std::fs::copy(log.path(), to.join(log.file_name()));
        }
    }
    eprintln!("lab {NAME}: logs kept in {}", dest.display());
}

/// The output of each command the clean shell ran, by command line.
fn sections(stdout: &str) -> Vec<(String, String)> {
    let mut sections: Vec<(String, String)> = Vec::new();
    for line in stdout.lines() {
        if let Some(cmd) = line.strip_prefix(MARK) {
            sections.push((cmd.to_string(), String::new()));
        } else if let Some((_, out)) = sections.last_mut() {
            out.push_str(line);
            out.push('\n');
        }
    }
    sections
}

#[test]
fn readme_try_it_commands_work_in_a_clean_shell() {
    require_root();
    let repo = repo();
    let readme = std::fs::read_to_string(repo.join("README.md")).expect("read README.md");
    let commands = try_it_commands(&readme);
    let find = |prefix: &str| {
        commands
            .iter()
            .find(|c| c.starts_with(prefix))
            .unwrap_or_else(|| {
                panic!("the README's Try it no longer runs `{prefix}…`: {commands:?}")
            })
            .clone()
    };
    let eval_env = find(r#"eval "$(./scripts/lab env)""#);
    let service_ls = find("shoal service ls");
    let service_ps = find("shoal service ps web_web");
    let curl = find("curl ");
    let exec_ip = find("./scripts/lab exec m1 ip addr");
    let down = commands.last().expect("a down line").clone();

    // Where `shoal-lab` finds the shoal binaries, and so where `lab env`
    // points PATH: SHOAL_BIN_DIR, else next to `shoal-lab` itself.
    let lab_exe = PathBuf::from(env!("CARGO_BIN_EXE_shoal-lab"));
    let bin_dir = std::env::var_os("SHOAL_BIN_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| lab_exe.parent().expect("bin dir").to_path_buf())
        .canonicalize()
        .expect("bin dir");
    // Our own root and name: other tests run labs alongside, and a lab of
    // the user's own may be up under the default root.
    let root = std::env::temp_dir().join("shoal-lab-readme").join(NAME);
    let _ = lab::down_at(&root); // what a killed earlier run left
    let _guard = Down(root.clone());
    let started = Instant::now();

    // `./scripts/lab up` without its install and build steps.
    let out = Command::new(&lab_exe)
        .env("SHOAL_LAB_ROOT", &root)
        .args(["up", "--name", NAME])
        .output()
        .expect("run shoal-lab up");
    let (o, e) = text(&out);
    assert!(out.status.success(), "shoal-lab up failed:\n{o}{e}");
    let out = Command::new("bash")
        .current_dir(&repo)
        .env("SHOAL_LAB_ROOT", &root)
        .args([
            "-c",
            r#"set -euo pipefail
               eval "$("$1" env)"
               "$2/shoal" stack deploy --detach=false -c examples/web.yml web"#,
            "bash",
        ])
        .arg(&lab_exe)
        .arg(&bin_dir)
        .output()
        .expect("run stack deploy");
    let (o, e) = text(&out);
    assert!(out.status.success(), "stack deploy failed:\n{o}{e}");

    let m1: Ipv4Addr = {
        let out = Command::new(&lab_exe)
            .env("SHOAL_LAB_ROOT", &root)
            .args(["addr", "m1"])
            .output()
            .expect("run shoal-lab addr");
        let (o, e) = text(&out);
        assert!(out.status.success(), "shoal-lab addr m1: {e}");
        o.trim()
            .parse()
            .unwrap_or_else(|e| panic!("addr m1 {o:?}: {e}"))
    };
    // The published port answers a moment after the tasks run; a user has
    // not typed the first command yet.
    lab::wait_until("port 8080 on m1 answers", Duration::from_secs(20), || {
        fixtures::http_get(
            SocketAddr::new(m1.into(), 8080),
            "/",
            Duration::from_secs(3),
        )
    })
    .expect("the web stack answers");
    let setup = started.elapsed();

    // The README's commands, each announced by a mark, then what the shell
    // ended up with, then the README's `down`.
    let mut script = format!("set -e\ncd {}\n", sh_quote(&repo.to_string_lossy()));
    let mut step = |cmd: &str, line: &str| {
        script.push_str(&format!(
            "printf '%s\\n' {}\n{line}\n",
            sh_quote(&format!("{MARK}{cmd}"))
        ));
    };
    for cmd in &commands[..commands.len() - 1] {
        step(cmd, cmd);
    }
    step("command -v shoal", "command -v shoal");
    step("PATH", r#"printf '%s\n' "$PATH""#);
    step(&down, &down);

    let home = tempfile::tempdir().expect("fresh HOME");
    let mut shell = Command::new("env");
    shell
        .arg("-i")
        .arg(format!("PATH={CLEAN_PATH}"))
        .arg(format!("HOME={}", home.path().display()))
        .arg(format!("SHOAL_LAB_ROOT={}", root.display()));
    // A build outside the default target dir is found only through
    // SHOAL_BIN_DIR, as it would be for a user who set it.
    if bin_dir != repo.join("target").join("debug") {
        shell.arg(format!("SHOAL_BIN_DIR={}", bin_dir.display()));
    }
    let out = shell
        .args(["bash", "--noprofile", "--norc", "-c", &script])
        .output()
        .expect("run the clean shell");
    let (stdout, stderr) = text(&out);
    let shown = format!("script:\n{script}\nstdout:\n{stdout}\nstderr:\n{stderr}");
    assert!(out.status.success(), "a README command failed\n{shown}");

    let sections = sections(&stdout);
    let output_of = |cmd: &str| {
        sections
            .iter()
            .find(|(c, _)| c == cmd)
            .map(|(_, out)| out.as_str())
            .unwrap_or_else(|| panic!("`{cmd}` did not run\n{shown}"))
    };
    let ran: Vec<&str> = sections.iter().map(|(c, _)| c.as_str()).collect();
    assert_eq!(ran.len(), commands.len() + 2, "{ran:?}\n{shown}");

    let shoal = output_of("command -v shoal").trim().to_string();
    assert_eq!(
        shoal,
        bin_dir.join("shoal").to_string_lossy(),
        "after `{eval_env}` the shell's shoal is the built one\n{shown}"
    );
    assert_eq!(
        output_of("PATH").trim(),
        format!("{}:{CLEAN_PATH}", bin_dir.display()),
        "`{eval_env}` puts the bin dir first and keeps the rest of PATH\n{shown}"
    );

    let ls = output_of(&service_ls);
    assert!(
        ls.lines()
            .any(|l| l.contains("web_web") && l.contains("3/3") && l.contains("8080")),
        "`{service_ls}` lists web_web with 3/3 replicas on port 8080\n{shown}"
    );
    let ps = output_of(&service_ps);
    for i in 1..=3 {
        assert!(
            ps.lines()
                .any(|l| l.contains(&format!("web_web.{i} ")) && l.contains("Running")),
            "`{service_ps}` shows task web_web.{i} running\n{shown}"
        );
    }
    let body = output_of(&curl);
    assert!(
        body.starts_with("web v1 "),
        "`{curl}` answers from the web server\n{shown}"
    );
    let ip = output_of(&exec_ip);
    assert!(
        ip.contains(&format!("inet {m1}/")),
        "`{exec_ip}` shows m1's address {m1}\n{shown}"
    );

    assert_eq!(
        lab::leaks_at(NAME, &root),
        Vec::<String>::new(),
        "`{down}` removes everything the lab made\n{shown}"
    );
    eprintln!(
        "lab up and web deployed in {setup:.1?}, README commands and down in {:.1?}",
        started.elapsed() - setup
    );
}
