//! Changes to the files of a directory, from inotify: how the processes of
//! a node learn at once that the agent rewrote the node's identity.

use std::os::fd::{AsFd, AsRawFd, RawFd};
use std::path::Path;

use nix::errno::Errno;
use nix::sys::inotify::{AddWatchFlags, InitFlags, Inotify};
use tokio::io::unix::AsyncFd;

/// tokio's readiness needs a raw fd; nix's `Inotify` lends only a borrowed one.
struct InotifyFd(Inotify);

impl AsRawFd for InotifyFd {
    fn as_raw_fd(&self) -> RawFd {
        self.0.as_fd().as_raw_fd()
    }
}

pub struct DirWatch {
    fd: AsyncFd<InotifyFd>,
}

impl DirWatch {
    /// Watches files of `dir` being written, renamed in or out, created or
    /// removed (the identity is written to temporary files renamed in).
    pub fn new(dir: &Path) -> std::io::Result<DirWatch> {
        let inotify = Inotify::init(InitFlags::IN_NONBLOCK | InitFlags::IN_CLOEXEC)?;
        inotify.add_watch(
            dir,
            AddWatchFlags::IN_CLOSE_WRITE
                | AddWatchFlags::IN_MOVED_TO
                | AddWatchFlags::IN_MOVED_FROM
                | AddWatchFlags::IN_CREATE
                | AddWatchFlags::IN_DELETE,
        )?;
        // SAFETY: the fd is the `Inotify` this `AsyncFd` owns: it stays
        // open, the same, and is closed only when the `AsyncFd` drops it.
        let fd = unsafe { AsyncFd::register(InotifyFd(inotify)) }.map_err(|e| e.into_parts().1)?;
        Ok(DirWatch { fd })
    }

    /// Waits until something in the directory changed.
    pub async fn changed(&self) -> std::io::Result<()> {
        loop {
            let mut ready = self.fd.readable().await?;
            match ready.get_inner().0.read_events() {
                Ok(events) if !events.is_empty() => return Ok(()),
                Ok(_) | Err(Errno::EAGAIN) => ready.clear_ready(),
                Err(e) => return Err(e.into()),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[tokio::test]
    async fn a_file_renamed_into_the_directory_is_seen() {
        let dir = std::env::temp_dir().join(format!("shoal-dirwatch-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let watch = DirWatch::new(&dir).unwrap();
        let quiet = tokio::time::timeout(Duration::from_millis(100), watch.changed()).await;
        assert!(quiet.is_err(), "nothing changed yet");
        std::fs::write(dir.join("node.crt.tmp"), b"x").unwrap();
        std::fs::rename(dir.join("node.crt.tmp"), dir.join("node.crt")).unwrap();
        tokio::time::timeout(Duration::from_secs(2), watch.changed())
            .await
            .expect("the rename is seen")
            .unwrap();
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
