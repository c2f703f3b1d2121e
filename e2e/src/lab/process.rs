//! The lab's processes: spawning them so they can outlive the command that
//! started them, and finding and stopping everything that belongs to a lab.

use std::collections::{HashMap, HashSet};
use std::fs::File;
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;

use super::Error;

/// How long a process gets between SIGTERM and SIGKILL.
pub const GRACE: Duration = Duration::from_secs(5);

/// Starts `program args` inside network namespace `netns`, in a session of its
/// own (so the user's terminal signals do not reach it), with stdout and
/// stderr appended to `log`.
///
/// `nsenter --net` rather than `ip netns exec`: the latter also gives the
/// process a private mount namespace, which would hide the network namespaces
/// and mounts netd creates from the agent and containerd.
pub fn spawn(netns: &str, program: &Path, args: &[String], log: &Path) -> Result<Child, Error> {
    let out = File::options()
        .create(true)
        .append(true)
        .open(log)
        .map_err(|e| Error::io(format!("open {}", log.display()), e))?;
    let err = out
        .try_clone()
        .map_err(|e| Error::io(format!("clone {}", log.display()), e))?;
    let mut cmd = Command::new("nsenter");
    cmd.arg(format!("--net=/run/netns/{netns}"))
        .arg("--")
        .arg(program)
        .args(args)
        .stdin(Stdio::null())
        .stdout(out)
        .stderr(err);
    // SAFETY: setsid is async-signal-safe and touches no memory of the parent.
    unsafe {
        cmd.pre_exec(|| {
            nix::unistd::setsid()
                .map(drop)
                .map_err(std::io::Error::from)
        });
    }
    cmd.spawn()
        .map_err(|e| Error::io(format!("spawn {}", program.display()), e))
}

/// Whether a command-line argument names `root` or something below it.
fn mentions(arg: &str, root: &str) -> bool {
    arg == root || arg.contains(&format!("{root}/"))
}

fn cmdline(pid: i32) -> Option<Vec<String>> {
    let raw = std::fs::read(format!("/proc/{pid}/cmdline")).ok()?;
    Some(
        raw.split(|b| *b == 0)
            .filter(|a| !a.is_empty())
            .map(|a| String::from_utf8_lossy(a).into_owned())
            .collect(),
    )
}

fn parent_of(pid: i32) -> Option<i32> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name may hold spaces and parentheses; fields resume after the last ')'.
    let rest = &stat[stat.rfind(')')? + 1..];
    rest.split_whitespace().nth(1)?.parse().ok()
}

fn all_pids() -> Vec<i32> {
    std::fs::read_dir("/proc")
        .map(|dir| {
            dir.flatten()
                .filter_map(|e| e.file_name().to_str()?.parse().ok())
                .collect()
        })
        .unwrap_or_default()
}

/// This process and its ancestors: never the lab's, even when a command line
/// (`shoal-lab --root …`) names the lab root.
fn ourselves() -> HashSet<i32> {
    let mut set = HashSet::new();
    let mut pid = i32::try_from(std::process::id()).unwrap_or(0);
    while pid > 1 && set.insert(pid) {
        pid = parent_of(pid).unwrap_or(0);
    }
    set
}

/// Whether `pid` is a live process that belongs to the lab under `root`.
pub fn belongs(pid: i32, root: &Path) -> bool {
    let root = root.to_string_lossy();
    cmdline(pid).is_some_and(|args| args.iter().any(|a| mentions(a, &root)))
}

/// Live processes of the lab under `root`: those whose command line names the
/// root, and every descendant of one (containers below containerd's shims).
/// Returned deepest first, so killing in order never orphans a container.
pub fn lab_processes(root: &Path) -> Vec<(i32, String)> {
    let root_s = root.to_string_lossy();
    let skip = ourselves();
    let mut children: HashMap<i32, Vec<i32>> = HashMap::new();
    let mut seeds = Vec::new();
    for pid in all_pids() {
        if let Some(ppid) = parent_of(pid) {
            children.entry(ppid).or_default().push(pid);
        }
        if !skip.contains(&pid)
            && cmdline(pid).is_some_and(|args| args.iter().any(|a| mentions(a, &root_s)))
        {
            seeds.push(pid);
        }
    }
    let mut order = Vec::new();
    let mut seen = HashSet::new();
    let mut stack: Vec<(i32, usize)> = seeds.into_iter().map(|p| (p, 0)).collect();
    while let Some((pid, depth)) = stack.pop() {
        if !seen.insert(pid) {
            continue;
        }
        order.push((pid, depth));
        for &c in children.get(&pid).into_iter().flatten() {
            stack.push((c, depth + 1));
        }
    }
    order.sort_by_key(|&(_, depth)| std::cmp::Reverse(depth));
    order
        .into_iter()
        .filter_map(|(pid, _)| {
            let args = cmdline(pid)?;
            // Zombies have an empty command line: already dead, only unreaped.
            (!args.is_empty()).then(|| (pid, args.join(" ")))
        })
        .collect()
}

/// Asks `pid` to stop with SIGTERM, waits up to `grace`, then SIGKILLs it.
/// Only touches the process while it still belongs to the lab under `root`, so
/// a recycled pid from a stale record is left alone.
pub fn stop(pid: i32, root: &Path, grace: Duration) {
    if !belongs(pid, root) {
        return;
    }
    let target = Pid::from_raw(pid);
    let _ = kill(target, Signal::SIGTERM);
    let deadline = Instant::now() + grace;
    while Instant::now() < deadline {
        if !belongs(pid, root) {
            return;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let _ = kill(target, Signal::SIGKILL);
}

/// SIGKILLs `pid` if it still belongs to the lab under `root` (as
/// [`stop`], a recycled pid is left alone) and waits until it is gone;
/// whether it is.
pub fn kill9(pid: i32, root: &Path) -> bool {
    if belongs(pid, root) {
        let _ = kill(Pid::from_raw(pid), Signal::SIGKILL);
    }
    let deadline = Instant::now() + GRACE;
    while belongs(pid, root) {
        if Instant::now() >= deadline {
            return false;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    true
}

/// SIGKILLs every process of the lab under `root`, deepest first, and waits
/// (briefly) until they are gone; returns those still alive.
pub fn kill_all(root: &Path) -> Vec<(i32, String)> {
    for (pid, _) in lab_processes(root) {
        let _ = kill(Pid::from_raw(pid), Signal::SIGKILL);
    }
    let deadline = Instant::now() + GRACE;
    loop {
        let left = lab_processes(root);
        if left.is_empty() || Instant::now() >= deadline {
            return left;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Stops a child this process spawned and reaps it.
pub fn stop_child(child: &mut Child, grace: Duration) {
    if let Ok(Some(_)) = child.try_wait() {
        return;
    }
    let Ok(pid) = i32::try_from(child.id()) else {
        return;
    };
    let _ = kill(Pid::from_raw(pid), Signal::SIGTERM);
    let deadline = Instant::now() + grace;
    while Instant::now() < deadline {
        if let Ok(Some(_)) = child.try_wait() {
            return;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let _ = child.kill();
    let _ = child.wait();
}

/// Pid of the live process whose command line contains `needle` and names the
/// lab root: how the lab learns the pids of processes a fixture started.
pub fn find(root: &Path, needle: &str) -> Option<i32> {
    lab_processes(root)
        .into_iter()
        .find(|(_, cmd)| cmd.contains(needle))
        .map(|(pid, _)| pid)
}

/// The last `lines` lines of a log file, for error messages.
pub fn tail(path: &Path, lines: usize) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}

#[cfg(test)]
mod tests {
    use super::mentions;

    #[test]
    fn a_root_is_not_mistaken_for_a_sibling_with_the_same_prefix() {
        assert!(mentions("/tmp/lab/m1/run/control.sock", "/tmp/lab"));
        assert!(mentions("--state-dir=/tmp/lab/m1", "/tmp/lab"));
        assert!(mentions("unix:///tmp/lab/m1/run/control.sock", "/tmp/lab"));
        assert!(mentions("/tmp/lab", "/tmp/lab"));
        assert!(!mentions("/tmp/lab2/m1", "/tmp/lab"));
    }
}
