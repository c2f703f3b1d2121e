//! boringtun's userspace WireGuard device, for kernels without the module.
//!
//! The device runs on threads of netd: the TUN device, its queues and the
//! UDP sockets are created by those threads, so they are made from a
//! thread that has joined the mesh's network namespace (threads inherit
//! it). Their name is [`THREAD_NAME`] (`top -H`, and the tests count them).
//!
//! The signal trap: with a UAPI socket file, boringtun also blocks SIGINT
//! and SIGTERM on the creating thread and reads them from a signalfd in its
//! event loop, where they stop the device. A signalfd sees process-wide
//! signals even while another thread would handle them, so a SIGTERM for
//! netd could stop the mesh instead of netd (or both). boringtun registers
//! those signal events only together with its socket file; given a UAPI
//! file descriptor (`DeviceConfig::uapi_fd`) it registers none. So netd
//! passes one end of a socket pair, speaks the UAPI over the other
//! ([`super::uapi`]), and its own tokio signal handlers stay the only ones.
//!
//! boringtun reads the TUN MTU once, when it starts (its periodic re-read
//! comes with the socket file too), and reads packets into a buffer of that
//! size: so the TUN device is made here first, the MTU set on it through
//! rtnetlink, and boringtun then attaches its queues to it. A larger MTU
//! later needs a new device ([`Userspace::mtu`]).

use std::fs::File;
use std::os::fd::{AsFd, AsRawFd, IntoRawFd, OwnedFd};
use std::os::unix::net::UnixStream;
use std::time::Duration;

use boringtun::device::{DeviceConfig, DeviceHandle};
use nix::libc;
use nix::sched::{setns, CloneFlags};

use super::uapi::Uapi;
use super::DEVICE_NAME;
use crate::error::{Error, Result};
use crate::netns;

/// The name of boringtun's threads (they inherit it from the thread that
/// creates the device).
pub const THREAD_NAME: &str = "shoal-wg";

/// Event-loop threads of the device (boringtun's default is 4; the nodes
/// have 2 cores, and the mesh carries only the encrypted networks).
pub const THREADS: usize = 2;

/// How long stopping may take before netd gives up waiting for the threads.
const STOP_TIMEOUT: Duration = Duration::from_secs(5);

/// A running userspace device.
pub(crate) struct Userspace {
    handle: Option<DeviceHandle>,
    pub uapi: Uapi,
    /// The MTU boringtun started with: the most it can carry.
    pub mtu: u32,
    pub ifindex: u32,
}

impl Drop for Userspace {
    fn drop(&mut self) {
        // Dropping the handle tells the threads to stop (without waiting).
        self.handle.take();
    }
}

fn tun_error(op: &str) -> impl FnOnce(std::io::Error) -> Error + '_ {
    move |e| Error::WireGuard {
        op: op.to_string(),
        source: Box::new(e),
    }
}

/// Opens a queue of a new multi-queue TUN device called [`DEVICE_NAME`]
/// in the calling thread's namespace (`IFF_TUN_EXCL`: never an existing
/// one).
fn create_tun() -> std::io::Result<OwnedFd> {
    #[repr(C)]
    struct IfReq {
        name: [u8; libc::IFNAMSIZ],
        flags: libc::c_short,
        _pad: [u8; 22],
    }
    let file = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open("/dev/net/tun")?;
    let mut req = IfReq {
        name: [0; libc::IFNAMSIZ],
        flags: (libc::IFF_TUN | libc::IFF_NO_PI | libc::IFF_MULTI_QUEUE | libc::IFF_TUN_EXCL)
            as libc::c_short,
        _pad: [0; 22],
    };
    req.name[..DEVICE_NAME.len()].copy_from_slice(DEVICE_NAME.as_bytes());
    // SAFETY: TUNSETIFF reads a struct ifreq, which IfReq lays out (name,
    // then the flags at the start of the 24-byte union).
    if unsafe { libc::ioctl(file.as_raw_fd(), libc::TUNSETIFF as _, &mut req) } < 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(file.into())
}

/// Starts a userspace device in namespace `ns`, its MTU `mtu`, down.
pub(crate) async fn start(ns: &File, handle: &rtnetlink::Handle, mtu: u32) -> Result<Userspace> {
    let first_queue = netns::run_in(ns, "creating the TUN device", || {
        create_tun().map_err(tun_error("create TUN device shoal-wg"))
    })
    .await?;
    let link = super::device::get(handle)
        .await?
        .ok_or_else(|| Error::invalid("TUN device shoal-wg", "vanished right after creation"))?;
    super::device::set_mtu(handle, &link, mtu).await?;

    let ns = ns
        .try_clone()
        .map_err(Error::io("duplicate namespace handle", "netns"))?;
    let (tx, rx) = tokio::sync::oneshot::channel();
    std::thread::Builder::new()
        .name(THREAD_NAME.into())
        .spawn(move || {
            let started = (|| -> Result<(DeviceHandle, Uapi)> {
                setns(ns.as_fd(), CloneFlags::CLONE_NEWNET)
                    .map_err(Error::sys("join network namespace to start boringtun"))?;
                let (ours, theirs) = UnixStream::pair().map_err(tun_error("make a socket pair"))?;
                let uapi = Uapi::new(ours).map_err(tun_error("set UAPI timeouts"))?;
                let config = DeviceConfig {
                    n_threads: THREADS,
                    use_connected_socket: true,
                    use_multi_queue: true,
                    // boringtun owns (and closes) this end from here on.
                    uapi_fd: theirs.into_raw_fd(),
                };
                let device =
                    DeviceHandle::new(DEVICE_NAME, config).map_err(|e| Error::WireGuard {
                        op: "start boringtun".into(),
                        source: Box::new(e),
                    })?;
                Ok((device, uapi))
            })();
            let _ = tx.send(started);
        })
        .map_err(Error::io("spawn thread", "boringtun"))?;
    let started = rx.await.map_err(|_| Error::Thread("starting boringtun"))?;
    // boringtun's queues are attached now; the device lives as long as they
    // are open.
    drop(first_queue);
    let (device, uapi) = started?;
    seal_fds();
    Ok(Userspace {
        handle: Some(device),
        uapi,
        mtu,
        ifindex: link.state.index,
    })
}

impl Userspace {
    /// Stops the device and waits for its threads; the TUN device goes with
    /// its last queue.
    pub async fn stop(mut self) -> Result<()> {
        let Some(mut handle) = self.handle.take() else {
            return Ok(());
        };
        let joined = tokio::task::spawn_blocking(move || {
            // The threads stop when the handle is dropped (or the UAPI
            // socket closes); wait() needs them told first, so tell them
            // through the socket: closing it ends the event loop.
            drop(self);
            let waited =
                std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| handle.wait())).is_ok();
            drop(handle);
            waited
        });
        match tokio::time::timeout(STOP_TIMEOUT, joined).await {
            Ok(Ok(true)) => Ok(()),
            Ok(Ok(false)) => Err(Error::WireGuard {
                op: "stop boringtun".into(),
                source: "a device thread had panicked".into(),
            }),
            Ok(Err(_)) => Err(Error::Thread("stopping boringtun")),
            Err(_) => Err(Error::WireGuard {
                op: "stop boringtun".into(),
                source: format!("its threads did not stop within {STOP_TIMEOUT:?}").into(),
            }),
        }
    }
}

/// Marks close-on-exec the file descriptors boringtun opens without it
/// (TUN queues, epoll, eventfd, timerfd): children netd starts (`nft`)
/// would otherwise hold the TUN queues and keep the device alive. Other
/// descriptors of these kinds lose nothing by it: Rust's process spawning
/// passes descriptors by dup2, which clears the flag.
pub(crate) fn seal_fds() {
    let Ok(dir) = std::fs::read_dir("/proc/self/fd") else {
        return;
    };
    for entry in dir.flatten() {
        let Some(fd) = entry
            .file_name()
            .to_str()
            .and_then(|s| s.parse::<i32>().ok())
        else {
            continue;
        };
        let Ok(target) = std::fs::read_link(entry.path()) else {
            continue;
        };
        let target = target.to_string_lossy();
        let ours = target == "/dev/net/tun"
            || target.starts_with("anon_inode:[eventpoll]")
            || target.starts_with("anon_inode:[eventfd]")
            || target.starts_with("anon_inode:[timerfd]");
        if !ours {
            continue;
        }
        // SAFETY: fcntl on a number that may have been closed meanwhile
        // fails or flags another descriptor close-on-exec, both harmless.
        unsafe {
            let flags = libc::fcntl(fd, libc::F_GETFD);
            if flags >= 0 && flags & libc::FD_CLOEXEC == 0 {
                libc::fcntl(fd, libc::F_SETFD, flags | libc::FD_CLOEXEC);
            }
        }
    }
}
