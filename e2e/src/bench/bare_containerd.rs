//! Bare containerd on a lab host, driven with `ctr` alone: the baseline and
//! the floor that `shoal-bench` measures shoal against in the same run.
//! `shoal-bench` includes this file on its own (`#[path]`); it stays out of
//! `mod.rs` so the other benchmarks do not compile what they do not use.
//!
//! Containers live in the `bench` containerd namespace, apart from shoal's.
//! `ctr run` gives each a fresh network namespace with only loopback and no
//! IO (`--null-io`); `ctr run -d` returns once the task has started.

use std::path::PathBuf;
use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context, Result};
use shoal_e2e::lab::Lab;

/// How many `ctr run -d` go at once when starting every container.
const START_PARALLELISM: usize = 8;
/// How long a container may take to exit after SIGKILL.
const KILL_TIMEOUT: Duration = Duration::from_secs(10);
/// How long containerd may take to see an exit the kernel has seen.
const DELETE_TIMEOUT: Duration = Duration::from_secs(5);
/// How often an exit is looked for (a `/proc` read, no process spawned).
const EXIT_POLL: Duration = Duration::from_millis(1);

/// The containers bare containerd runs for the benchmark, one per replica.
pub struct BareContainers {
    socket: PathBuf,
    /// `ctr run --pid-file` writes each container's pid here.
    pid_dir: tempfile::TempDir,
    /// The current container of each replica.
    ids: Vec<String>,
    /// Bumped at each replacement, so new ids never meet old ones.
    generation: usize,
}

impl BareContainers {
    /// None yet, on the containerd of the lab's host `m1`.
    pub fn new(lab: &Lab) -> Result<Self> {
        Ok(BareContainers {
            socket: lab.containerd_socket("m1")?,
            pid_dir: tempfile::tempdir().context("a directory for the pid files")?,
            ids: Vec::new(),
            generation: 0,
        })
    }

    /// Pulls `image` into the namespace (untimed: shoal's node has its
    /// images by the time it is measured too).
    pub fn pull(&self, image: &str) -> Result<()> {
        self.ctr(&["images", "pull", "--plain-http", image])
    }

    /// Starts `n` containers of `image`, [`START_PARALLELISM`] at a time;
    /// returns how long it took.
    pub fn start_all(&mut self, image: &str, n: usize) -> Result<Duration> {
        if !self.ids.is_empty() {
            bail!("bare containers already running: {:?}", self.ids);
        }
        let ids: Vec<String> = (0..n).map(|i| self.id(i)).collect();
        let this: &Self = self;
        let started = Instant::now();
        for chunk in ids.chunks(START_PARALLELISM) {
            std::thread::scope(|s| -> Result<()> {
                let handles: Vec<_> = chunk
                    .iter()
                    .map(|id| s.spawn(move || this.run(image, id)))
                    .collect();
                for h in handles {
                    h.join().map_err(|_| anyhow!("ctr thread panicked"))??;
                }
                Ok(())
            })?;
        }
        let elapsed = started.elapsed();
        self.ids = ids;
        Ok(elapsed)
    }

    /// Replaces every container by one of `image`, one at a time, as a
    /// stop-first rolling update with parallelism 1 and no delay does: the
    /// old one gets SIGTERM (SIGKILL after `grace`), its exit is awaited,
    /// its task and container (with its snapshot) are deleted, then the new
    /// one is `ctr run -d` and runs before the next replica's turn. Returns
    /// how long it took.
    pub fn replace_serially(&mut self, image: &str, grace: Duration) -> Result<Duration> {
        self.generation += 1;
        let started = Instant::now();
        for slot in 0..self.ids.len() {
            let old = self.ids[slot].clone();
            self.stop(&old, grace)?;
            self.delete(&old)?;
            let new = self.id(slot);
            self.run(image, &new)?;
            self.ids[slot] = new;
        }
        Ok(started.elapsed())
    }

    /// Kills and deletes every container (untimed, between rounds).
    pub fn remove_all(&mut self) -> Result<()> {
        let mut failed = Vec::new();
        for id in std::mem::take(&mut self.ids) {
            // `--force` kills a running task and waits for it.
            let task = self.ctr(&["tasks", "delete", "--force", &id]);
            if let Err(e) = task.and_then(|()| self.ctr(&["containers", "delete", &id])) {
                failed.push(format!("{id}: {e:#}"));
            }
        }
        if !failed.is_empty() {
            bail!("removing the bare containers: {}", failed.join("; "));
        }
        Ok(())
    }

    fn id(&self, slot: usize) -> String {
        format!("bare{}-{slot}", self.generation)
    }

    fn pid_file(&self, id: &str) -> PathBuf {
        self.pid_dir.path().join(format!("{id}.pid"))
    }

    fn run(&self, image: &str, id: &str) -> Result<()> {
        let pid_file = self.pid_file(id);
        let pid_file = pid_file.to_string_lossy();
        self.ctr(&["run", "-d", "--null-io", "--pid-file", &pid_file, image, id])
    }

    /// The stop signal (SIGTERM: the web images name none), then SIGKILL
    /// once `grace` has passed, as shoal's agent stops a task; returns once
    /// the container's process has exited.
    fn stop(&self, id: &str, grace: Duration) -> Result<()> {
        let pid_file = self.pid_file(id);
        let pid: u32 = std::fs::read_to_string(&pid_file)
            .with_context(|| format!("read {}", pid_file.display()))?
            .trim()
            .parse()
            .with_context(|| format!("the pid in {}", pid_file.display()))?;
        self.ctr(&["tasks", "kill", "--signal", "SIGTERM", id])?;
        if exited_within(pid, grace) {
            return Ok(());
        }
        self.ctr(&["tasks", "kill", "--signal", "SIGKILL", id])?;
        if exited_within(pid, KILL_TIMEOUT) {
            return Ok(());
        }
        bail!("{id} (pid {pid}) still runs {KILL_TIMEOUT:?} after SIGKILL")
    }

    /// Deletes an exited container's task, then the container and its
    /// snapshot. containerd learns of the exit from the shim a moment after
    /// the kernel: until then it refuses to delete the task, so this retries.
    fn delete(&self, id: &str) -> Result<()> {
        let deadline = Instant::now() + DELETE_TIMEOUT;
        while let Err(e) = self.ctr(&["tasks", "delete", id]) {
            if Instant::now() > deadline {
                return Err(e.context(format!("{id} exited {DELETE_TIMEOUT:?} ago")));
            }
            std::thread::sleep(Duration::from_millis(2));
        }
        self.ctr(&["containers", "delete", id])
    }

    fn ctr(&self, args: &[&str]) -> Result<()> {
        let out = Command::new("ctr")
            .arg("--address")
            .arg(&self.socket)
            .args(["--namespace", "bench"])
            .args(args)
            .output()
            .context("run ctr (containerd's client)")?;
        if !out.status.success() {
            bail!(
                "ctr {}: {}",
                args.join(" "),
                String::from_utf8_lossy(&out.stderr).trim()
            );
        }
        Ok(())
    }
}

/// Whether process `pid` has exited (gone, or a zombie not reaped yet)
/// within `timeout`.
fn exited_within(pid: u32, timeout: Duration) -> bool {
    let deadline = Instant::now() + timeout;
    loop {
        if has_exited(pid) {
            return true;
        }
        if Instant::now() > deadline {
            return false;
        }
        std::thread::sleep(EXIT_POLL);
    }
}

fn has_exited(pid: u32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        // The state follows the command, which is in parentheses and may
        // hold spaces: `pid (comm) S ...`.
        Ok(stat) => stat
            .rsplit_once(')')
            .and_then(|(_, rest)| rest.split_whitespace().next())
            .is_some_and(|state| state == "Z" || state == "X"),
        Err(_) => true,
    }
}
