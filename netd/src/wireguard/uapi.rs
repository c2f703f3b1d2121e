//! The WireGuard cross-platform UAPI (`get=1` / `set=1`, key=value lines)
//! spoken to boringtun over a socket pair that netd keeps, instead of a
//! socket file under /var/run/wireguard.
//!
//! Why not the socket file that wireguard-control's userspace backend
//! connects to: its path is fixed by the device name, so two netd
//! instances on one machine (the test lab: a network namespace per node,
//! one mount namespace) would take each other's socket; boringtun only
//! installs its SIGINT/SIGTERM handling together with that socket (see
//! [`super::userspace`]); and wireguard-control prints every line of
//! boringtun's answer it does not know to stdout, and tries to start
//! `wireguard-go` when the socket is missing.
//!
//! boringtun's dialect: `get` answers `own_public_key` (not the private
//! key) and gives `last_handshake_time_sec` as seconds since the
//! handshake, not since the epoch; both are handled here.

use std::io::{BufRead, BufReader, Write};
use std::net::SocketAddr;
use std::os::unix::net::UnixStream;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use wireguard_control::Key;

use super::control::{describe, Change, DeviceState, PeerState};
use crate::error::{Error, Result};

/// How long one request may take before the device counts as broken.
const TIMEOUT: Duration = Duration::from_secs(5);

/// netd's end of the UAPI socket pair.
pub(crate) struct Uapi {
    stream: Arc<Mutex<UnixStream>>,
    /// Set when a request failed half-way: the stream may be out of step,
    /// so the device is replaced at the next ensure.
    broken: Arc<AtomicBool>,
}

impl Uapi {
    pub fn new(stream: UnixStream) -> std::io::Result<Uapi> {
        stream.set_read_timeout(Some(TIMEOUT))?;
        stream.set_write_timeout(Some(TIMEOUT))?;
        Ok(Uapi {
            stream: Arc::new(Mutex::new(stream)),
            broken: Arc::new(AtomicBool::new(false)),
        })
    }

    pub fn is_broken(&self) -> bool {
        self.broken.load(Ordering::Relaxed)
    }

    pub async fn get(&self) -> Result<DeviceState> {
        let lines = self
            .request("get=1\n".to_string(), "read the userspace device".into())
            .await?;
        parse_get(&lines).map_err(|reason| Error::WireGuard {
            op: "read the userspace device".into(),
            source: reason.into(),
        })
    }

    pub async fn set(&self, change: &Change) -> Result<()> {
        self.request(set_request(change), describe(change))
            .await
            .map(|_| ())
    }

    /// Sends one request and reads its answer up to the blank line after
    /// `errno=`; returns the lines before `errno`.
    async fn request(&self, request: String, op: String) -> Result<Vec<String>> {
        let stream = self.stream.clone();
        let broken = self.broken.clone();
        let what = op.clone();
        let answer = tokio::task::spawn_blocking(move || {
            let stream = stream.lock().unwrap_or_else(|p| p.into_inner());
            let answer = exchange(&stream, &request);
            if matches!(answer, Err(Exchange::Io(_))) {
                broken.store(true, Ordering::Relaxed);
            }
            answer
        })
        .await
        .map_err(|_| Error::Thread("talking to the userspace WireGuard device"))?;
        answer.map_err(|e| Error::WireGuard {
            op: what,
            source: match e {
                Exchange::Io(e) => Box::new(e),
                Exchange::Errno(n) => Box::new(std::io::Error::from_raw_os_error(n)),
            },
        })
    }
}

enum Exchange {
    Io(std::io::Error),
    Errno(i32),
}

fn exchange(stream: &UnixStream, request: &str) -> std::result::Result<Vec<String>, Exchange> {
    (&*stream)
        .write_all(request.as_bytes())
        .map_err(Exchange::Io)?;
    let mut reader = BufReader::new(stream);
    let mut lines = Vec::new();
    let mut errno = None;
    loop {
        let mut line = String::new();
        let n = reader.read_line(&mut line).map_err(Exchange::Io)?;
        if n == 0 {
            return Err(Exchange::Io(std::io::Error::new(
                std::io::ErrorKind::UnexpectedEof,
                "the userspace device closed its UAPI socket",
            )));
        }
        let line = line.trim_end_matches('\n');
        match (line.strip_prefix("errno="), errno) {
            (Some(n), None) => {
                errno = Some(n.parse::<i32>().map_err(|_| {
                    Exchange::Io(std::io::Error::new(
                        std::io::ErrorKind::InvalidData,
                        format!("bad errno line {line:?}"),
                    ))
                })?)
            }
            (_, Some(n)) if line.is_empty() => {
                return if n == 0 {
                    Ok(lines)
                } else {
                    Err(Exchange::Errno(n))
                };
            }
            (_, None) => lines.push(line.to_string()),
            (_, Some(_)) => {}
        }
    }
}

/// The `set=1` request of one change. The private key is in it: the
/// request is never logged.
pub(crate) fn set_request(change: &Change) -> String {
    let mut r = String::from("set=1\n");
    match change {
        Change::Device {
            private_key,
            listen_port,
        } => {
            // The key first: boringtun needs it before any packet arrives.
            if let Some(k) = private_key {
                r.push_str(&format!("private_key={}\n", hex(k)));
            }
            if let Some(p) = listen_port {
                r.push_str(&format!("listen_port={p}\n"));
            }
        }
        Change::AddPeer {
            key,
            endpoint,
            addr,
        }
        | Change::UpdatePeer {
            key,
            endpoint,
            addr,
        } => {
            r.push_str(&format!(
                "public_key={}\nendpoint={endpoint}\nreplace_allowed_ips=true\nallowed_ip={addr}/128\n",
                hex(key)
            ));
        }
        Change::RemovePeer { key } => {
            r.push_str(&format!("public_key={}\nremove=true\n", hex(key)));
        }
    }
    r.push('\n');
    r
}

fn hex(key: &Key) -> String {
    key.as_bytes().iter().map(|b| format!("{b:02x}")).collect()
}

/// Parses a `get=1` answer (without its errno line).
pub(crate) fn parse_get(lines: &[String]) -> std::result::Result<DeviceState, String> {
    let now = SystemTime::now();
    let mut state = DeviceState {
        public_key: None,
        listen_port: 0,
        peers: Vec::new(),
    };
    let mut handshake: (Option<u64>, u32) = (None, 0);
    let finish = |peer: &mut Option<PeerState>,
                  handshake: &mut (Option<u64>, u32),
                  state: &mut DeviceState| {
        if let Some(mut p) = peer.take() {
            p.handshake_age = handshake_age(*handshake, now);
            state.peers.push(p);
        }
        *handshake = (None, 0);
    };
    let mut peer: Option<PeerState> = None;
    for line in lines {
        let (key, value) = line
            .split_once('=')
            .ok_or_else(|| format!("bad line {line:?}"))?;
        let bad = || format!("bad value in {key}={value}");
        let need_peer = || format!("{key} before any public_key");
        match key {
            "private_key" => {
                state.public_key = Some(Key::from_hex(value).map_err(|_| bad())?.get_public())
            }
            "own_public_key" => state.public_key = Some(Key::from_hex(value).map_err(|_| bad())?),
            "listen_port" => state.listen_port = value.parse().map_err(|_| bad())?,
            "public_key" => {
                finish(&mut peer, &mut handshake, &mut state);
                peer = Some(PeerState {
                    public_key: Key::from_hex(value).map_err(|_| bad())?,
                    endpoint: None,
                    allowed_ips: Vec::new(),
                    keepalive: None,
                    handshake_age: None,
                    rx_bytes: 0,
                    tx_bytes: 0,
                });
            }
            "endpoint" => {
                peer.as_mut().ok_or_else(need_peer)?.endpoint =
                    Some(value.parse::<SocketAddr>().map_err(|_| bad())?)
            }
            "allowed_ip" => {
                let (ip, len) = value.split_once('/').ok_or_else(bad)?;
                peer.as_mut().ok_or_else(need_peer)?.allowed_ips.push((
                    ip.parse().map_err(|_| bad())?,
                    len.parse().map_err(|_| bad())?,
                ));
            }
            "persistent_keepalive_interval" => {
                let k: u16 = value.parse().map_err(|_| bad())?;
                peer.as_mut().ok_or_else(need_peer)?.keepalive = (k != 0).then_some(k);
            }
            "last_handshake_time_sec" => handshake.0 = Some(value.parse().map_err(|_| bad())?),
            "last_handshake_time_nsec" => handshake.1 = value.parse().map_err(|_| bad())?,
            "rx_bytes" => {
                peer.as_mut().ok_or_else(need_peer)?.rx_bytes = value.parse().map_err(|_| bad())?
            }
            "tx_bytes" => {
                peer.as_mut().ok_or_else(need_peer)?.tx_bytes = value.parse().map_err(|_| bad())?
            }
            // fwmark, preshared_key, protocol_version: netd sets none.
            _ => {}
        }
    }
    finish(&mut peer, &mut handshake, &mut state);
    Ok(state)
}

/// The UAPI says seconds since the epoch (0: never); boringtun says seconds
/// since the handshake. A value past 2001 can only be the former.
fn handshake_age((sec, nsec): (Option<u64>, u32), now: SystemTime) -> Option<Duration> {
    let sec = sec?;
    if sec == 0 && nsec == 0 {
        return None;
    }
    let t = Duration::new(sec, nsec.min(999_999_999));
    if sec > 1_000_000_000 {
        Some(now.duration_since(UNIX_EPOCH + t).unwrap_or_default())
    } else {
        Some(t)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lines(s: &str) -> Vec<String> {
        s.lines().map(str::to_string).collect()
    }

    #[test]
    fn parses_boringtuns_get_answer() {
        let own = Key::generate_private().get_public();
        let peer = Key::generate_private().get_public();
        let answer = format!(
            "own_public_key={}\nlisten_port=51820\npublic_key={}\nendpoint=192.0.2.2:51820\n\
             allowed_ip=fdc5:5a1::1/128\nlast_handshake_time_sec=3\nlast_handshake_time_nsec=5\n\
             rx_bytes=10\ntx_bytes=20\npublic_key={}\nallowed_ip=fdc5:5a1::2/128\nrx_bytes=0\ntx_bytes=0",
            hex(&own),
            hex(&peer),
            hex(&own)
        );
        let state = parse_get(&lines(&answer)).unwrap();
        assert_eq!(state.public_key, Some(own.clone()));
        assert_eq!(state.listen_port, 51820);
        assert_eq!(state.peers.len(), 2);
        let p = &state.peers[0];
        assert_eq!(p.public_key, peer);
        assert_eq!(p.endpoint, Some("192.0.2.2:51820".parse().unwrap()));
        assert_eq!(p.allowed_ips, vec![("fdc5:5a1::1".parse().unwrap(), 128)]);
        assert_eq!(p.handshake_age, Some(Duration::new(3, 5)));
        assert_eq!((p.rx_bytes, p.tx_bytes), (10, 20));
        assert_eq!(state.peers[1].handshake_age, None);
        assert_eq!(state.peers[1].endpoint, None);
    }

    #[test]
    fn epoch_handshake_times_become_ages() {
        let now = SystemTime::now();
        let ten_ago = now.duration_since(UNIX_EPOCH).unwrap().as_secs() - 10;
        let age = handshake_age((Some(ten_ago), 0), now).unwrap();
        assert!(age >= Duration::from_secs(9) && age <= Duration::from_secs(11));
        assert_eq!(handshake_age((Some(0), 0), now), None);
    }

    #[test]
    fn set_requests_end_with_a_blank_line() {
        let key = Key::generate_private();
        let r = set_request(&Change::RemovePeer { key: key.clone() });
        assert_eq!(
            r,
            format!("set=1\npublic_key={}\nremove=true\n\n", hex(&key))
        );
        let r = set_request(&Change::AddPeer {
            key: key.clone(),
            endpoint: "192.0.2.2:51820".parse().unwrap(),
            addr: "fdc5:5a1::1".parse().unwrap(),
        });
        assert!(r.ends_with("allowed_ip=fdc5:5a1::1/128\n\n"), "{r}");
    }
}
