//! What the manager's process tests share: a `shoal-manager` process on a
//! temporary directory, a free port, and waiting for a condition.

// Each test binary uses its own part of this module.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use shoal_identity::NodeIdentity;
use shoal_proto::ca::v1::certificate_authority_client::CertificateAuthorityClient;
use shoal_proto::ca::v1::RenewNodeCertificateRequest;
use shoal_proto::control::v1::control_client::ControlClient;
use tonic::transport::{Channel, Endpoint};

pub struct ManagerProcess {
    child: Child,
    pub dir: PathBuf,
}

impl ManagerProcess {
    pub fn start(dir: &Path, port: u16) -> ManagerProcess {
        let log = std::fs::File::create(dir.join("manager.log")).unwrap();
        let child = Command::new(env!("CARGO_BIN_EXE_shoal-manager"))
            .args(["--state-dir", &dir.join("state").to_string_lossy()])
            .args(["--node-dir", &dir.join("node").to_string_lossy()])
            .args([
                "--control-socket",
                &dir.join("control.sock").to_string_lossy(),
            ])
            .args(["--listen", &format!("127.0.0.1:{port}")])
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .unwrap();
        ManagerProcess {
            child,
            dir: dir.to_path_buf(),
        }
    }

    /// CPU time (user + system) the process has used so far.
    pub fn cpu_time(&self) -> Duration {
        let stat = std::fs::read_to_string(format!("/proc/{}/stat", self.child.id())).unwrap();
        // Fields after the command name, which is in parentheses.
        let fields: Vec<&str> = stat[stat.rfind(')').unwrap() + 2..].split(' ').collect();
        let ticks: u64 = fields[11].parse::<u64>().unwrap() + fields[12].parse::<u64>().unwrap();
        let per_second = nix::unistd::sysconf(nix::unistd::SysconfVar::CLK_TCK)
            .ok()
            .flatten()
            .unwrap_or(100) as u64;
        Duration::from_millis(ticks * 1000 / per_second)
    }

    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    pub async fn control(&self) -> ControlClient<Channel> {
        let socket = self.dir.join("control.sock");
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let path = socket.clone();
            let channel = Endpoint::try_from("http://[::]:50051")
                .unwrap()
                .connect_with_connector(tower::service_fn(move |_| {
                    let path = path.clone();
                    async move {
                        let s = tokio::net::UnixStream::connect(path).await?;
                        Ok::<_, std::io::Error>(hyper_util::rt::TokioIo::new(s))
                    }
                }))
                .await;
            if let Ok(channel) = channel {
                return ControlClient::new(channel);
            }
            assert!(
                Instant::now() < deadline,
                "manager socket never came up: {}",
                self.log()
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// The control client of a manager that ran `swarm init` on 127.0.0.1.
    pub async fn initialised(&self) -> ControlClient<Channel> {
        let mut control = self.control().await;
        control
            .init_cluster(shoal_proto::control::v1::InitClusterRequest {
                advertise_addr: "127.0.0.1".into(),
                ..Default::default()
            })
            .await
            .unwrap();
        control
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.join("manager.log")).unwrap_or_default()
    }
}

impl Drop for ManagerProcess {
    fn drop(&mut self) {
        self.kill();
    }
}

pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

pub async fn wait_for<T>(what: &str, mut probe: impl AsyncFnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        if let Some(v) = probe().await {
            return v;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Renews as the agent does: a fresh key, and the reply's trust bundle.
pub async fn renew(addr: &str, identity: &NodeIdentity) -> NodeIdentity {
    let channel = shoal_identity::connect(addr, identity).await.unwrap();
    let (key, csr_pem) = shoal_identity::generate_key_and_csr().unwrap();
    let reply = CertificateAuthorityClient::new(channel)
        .renew_node_certificate(RenewNodeCertificateRequest { csr_pem })
        .await
        .unwrap()
        .into_inner();
    NodeIdentity::new(key, reply.cert_pem, reply.root_ca_pem).unwrap()
}
