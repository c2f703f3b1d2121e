//! Network namespaces: the task namespaces netd keeps as bind mounts under
//! `<state-dir>/netns/<task_id>`, and running code inside a namespace.
//!
//! The namespaces live in netd's state dir, not /run/netns: several netd
//! instances share one mount namespace in the test lab, each inside its own
//! "host" network namespace, and must not see each other's tasks.
//!
//! Switching namespaces is per thread, so every step that must happen inside
//! a namespace (creating one, opening a netlink socket in it, running `nft`,
//! writing a sysctl) runs on a fresh thread that joins the namespace first;
//! no pooled thread is ever moved.

use std::fs::File;
use std::os::fd::AsFd;
use std::path::{Path, PathBuf};

use nix::mount::{mount, umount2, MntFlags, MsFlags};
use nix::sched::{setns, unshare, CloneFlags};

use crate::error::{Error, Result};

/// Runs `f` on a new thread that has joined the network namespace `ns`,
/// without blocking the async runtime.
pub async fn run_in<T, F>(ns: &File, what: &'static str, f: F) -> Result<T>
where
    T: Send + 'static,
    F: FnOnce() -> Result<T> + Send + 'static,
{
    let ns = ns
        .try_clone()
        .map_err(Error::io("duplicate namespace handle", "netns"))?;
    let (tx, rx) = tokio::sync::oneshot::channel();
    std::thread::Builder::new()
        .name("netd-netns".into())
        .spawn(move || {
            let result = setns(ns.as_fd(), CloneFlags::CLONE_NEWNET)
                .map_err(Error::sys(format!("join network namespace while {what}")))
                .and_then(|()| f());
            // The receiver only goes away if the caller was cancelled.
            let _ = tx.send(result);
        })
        .map_err(Error::io("spawn namespace thread", "netns"))?;
    rx.await.map_err(|_| Error::Thread(what))?
}

/// Opens an rtnetlink connection whose socket lives in the namespace `ns`;
/// the connection task is spawned on the current runtime.
pub async fn netlink_in(ns: &File) -> Result<rtnetlink::Handle> {
    let runtime = tokio::runtime::Handle::current();
    let (connection, handle) = run_in(ns, "opening a netlink socket", move || {
        // The socket registers with the runtime's reactor when created.
        let _entered = runtime.enter();
        let (connection, handle, _) =
            rtnetlink::new_connection().map_err(Error::io("open netlink socket", "netns"))?;
        Ok((connection, handle))
    })
    .await?;
    tokio::spawn(connection);
    Ok(handle)
}

/// The network namespace of the calling thread.
pub fn current() -> Result<File> {
    let path = "/proc/thread-self/ns/net";
    File::open(path).map_err(Error::io("open", path))
}

/// Whether `path` is a mounted namespace (not merely a leftover file).
pub fn is_mounted(path: &Path) -> bool {
    nix::sys::statfs::statfs(path)
        .map(|s| s.filesystem_type() == nix::sys::statfs::NSFS_MAGIC)
        .unwrap_or(false)
}

/// The directory of task namespaces.
#[derive(Debug, Clone)]
pub struct NetnsDir {
    dir: PathBuf,
}

impl NetnsDir {
    /// Creates the directory and makes it a shared mount point, as
    /// `ip netns` does for /run/netns: an unmount then propagates into mount
    /// namespaces copied from ours (services with private mounts), so they
    /// do not keep deleted namespaces alive.
    pub fn prepare(dir: PathBuf) -> Result<NetnsDir> {
        std::fs::create_dir_all(&dir).map_err(Error::io("create directory", &dir))?;
        let shared = MsFlags::MS_SHARED | MsFlags::MS_REC;
        match mount(None::<&str>, &dir, None::<&str>, shared, None::<&str>) {
            Ok(()) => {}
            // Not a mount point yet: bind it onto itself, then share it.
            Err(nix::Error::EINVAL) => {
                mount(
                    Some(&dir),
                    &dir,
                    None::<&str>,
                    MsFlags::MS_BIND | MsFlags::MS_REC,
                    None::<&str>,
                )
                .map_err(Error::sys(format!("bind mount {}", dir.display())))?;
                mount(None::<&str>, &dir, None::<&str>, shared, None::<&str>)
                    .map_err(Error::sys(format!("make {} shared", dir.display())))?;
            }
            Err(e) => return Err(Error::sys(format!("make {} shared", dir.display()))(e)),
        }
        Ok(NetnsDir { dir })
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    pub fn path(&self, task_id: &str) -> PathBuf {
        self.dir.join(task_id)
    }

    /// Creates the task's namespace, or keeps the one that exists.
    /// Returns whether it was created now.
    pub async fn ensure(&self, task_id: &str) -> Result<bool> {
        let path = self.path(task_id);
        if is_mounted(&path) {
            return Ok(false);
        }
        std::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(false)
            .open(&path)
            .map_err(Error::io("create namespace file", &path))?;
        let target = path.clone();
        let made = run_in(&current()?, "creating a network namespace", move || {
            unshare(CloneFlags::CLONE_NEWNET).map_err(Error::sys("unshare network namespace"))?;
            mount(
                Some("/proc/thread-self/ns/net"),
                &target,
                None::<&str>,
                MsFlags::MS_BIND,
                None::<&str>,
            )
            .map_err(Error::sys(format!(
                "bind mount namespace to {}",
                target.display()
            )))
        })
        .await;
        if let Err(e) = made {
            let _ = std::fs::remove_file(&path);
            return Err(e);
        }
        Ok(true)
    }

    pub fn open(&self, task_id: &str) -> Result<File> {
        let path = self.path(task_id);
        File::open(&path).map_err(Error::io("open namespace", &path))
    }

    /// Unmounts and deletes the task's namespace; a missing one is fine.
    pub fn remove(&self, task_id: &str) -> Result<()> {
        let path = self.path(task_id);
        match umount2(&path, MntFlags::MNT_DETACH) {
            Ok(()) | Err(nix::Error::EINVAL) | Err(nix::Error::ENOENT) => {}
            Err(e) => return Err(Error::sys(format!("unmount {}", path.display()))(e)),
        }
        match std::fs::remove_file(&path) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(Error::io("remove", &path)(e)),
        }
    }

    /// Task ids that have a namespace file (mounted or not).
    pub fn list(&self) -> Result<Vec<String>> {
        let entries =
            std::fs::read_dir(&self.dir).map_err(Error::io("read directory", &self.dir))?;
        let mut ids = Vec::new();
        for entry in entries {
            let entry = entry.map_err(Error::io("read directory", &self.dir))?;
            if let Some(name) = entry.file_name().to_str() {
                ids.push(name.to_string());
            }
        }
        ids.sort();
        Ok(ids)
    }
}
