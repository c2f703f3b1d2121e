//! A task's veth pair: the host end on the network's bridge, the other end
//! created directly inside the task's namespace under its final name
//! (`eth0`, ...), with the task's address and, on the first network, the
//! default route via the gateway.

use std::fs::File;
use std::net::Ipv4Addr;
use std::os::fd::AsRawFd;

use netlink_packet_route::link::{InfoData, InfoKind, InfoVeth};
use rtnetlink::{Handle, LinkMessageBuilder, LinkUnspec, LinkVeth};

use crate::cidr::Ipv4Cidr;
use crate::error::{errno, Error, Result};
use crate::link::{self, LinkState, EEXIST};

#[derive(Debug, Clone)]
pub struct TaskVeth {
    /// Host end, in the host namespace.
    pub host_name: String,
    /// Task end, in the task namespace.
    pub task_ifname: String,
    pub address: Ipv4Cidr,
    /// Default route of the task; only on its first network that is not
    /// internal.
    pub gateway: Option<Ipv4Addr>,
    /// The network's MTU (its VXLAN device's), so packets fit the overlay.
    pub mtu: u32,
}

impl TaskVeth {
    /// Makes the pair exist and be configured. Returns the host end and
    /// whether the pair was created by this call (for rollback).
    pub async fn apply(
        &self,
        host: &Handle,
        task_ns: &File,
        task: &Handle,
        bridge: u32,
    ) -> Result<(LinkState, bool)> {
        let mut created = false;
        let mut host_end = link::get(host, &self.host_name).await?;
        if host_end.is_some() && link::get(task, &self.task_ifname).await?.is_none() {
            // The host end survived a namespace that did not (it was
            // recreated): this pair leads nowhere, start over.
            link::delete(host, &self.host_name).await?;
            host_end = None;
        }
        let host_end = match host_end {
            Some(existing) => existing,
            None => {
                self.create(host, task_ns).await?;
                created = true;
                link::get(host, &self.host_name).await?.ok_or_else(|| {
                    Error::invalid(
                        format!("veth {}", self.host_name),
                        "vanished right after creation",
                    )
                })?
            }
        };
        let configured = async {
            link::set_mtu(host, &host_end, self.mtu).await?;
            link::set_controller(host, &host_end, bridge).await?;
            link::set_up(host, &host_end).await?;
            self.configure_task_end(task).await
        }
        .await;
        if let Err(e) = configured {
            if created {
                let _ = link::delete(host, &self.host_name).await;
            }
            return Err(e);
        }
        Ok((host_end, created))
    }

    async fn create(&self, host: &Handle, task_ns: &File) -> Result<()> {
        let peer = LinkUnspec::new_with_name(&self.task_ifname)
            .address(link::mac_for(self.address.addr).to_vec())
            .mtu(self.mtu)
            .setns_by_fd(task_ns.as_raw_fd())
            .build();
        let msg = LinkMessageBuilder::<LinkVeth>::new_with_info_kind(InfoKind::Veth)
            .name(self.host_name.clone())
            .mtu(self.mtu)
            .set_info_data(InfoData::Veth(InfoVeth::Peer(peer)))
            .build();
        match host.link().add(msg).execute().await {
            Ok(()) => Ok(()),
            Err(e) if errno(&e) == Some(EEXIST) => Err(Error::invalid(
                format!("veth {}", self.host_name),
                format!(
                    "{} exists in the task namespace or {} in the host namespace",
                    self.task_ifname, self.host_name
                ),
            )),
            Err(e) => Err(Error::netlink(format!("create veth {}", self.host_name))(e)),
        }
    }

    async fn configure_task_end(&self, task: &Handle) -> Result<()> {
        let lo = link::get(task, "lo")
            .await?
            .ok_or_else(|| Error::invalid("task namespace", "has no loopback interface"))?;
        link::set_up(task, &lo).await?;
        let end = link::get(task, &self.task_ifname).await?.ok_or_else(|| {
            Error::invalid(
                format!("task interface {}", self.task_ifname),
                "missing in the task namespace",
            )
        })?;
        link::set_mtu(task, &end, self.mtu).await?;
        link::add_address(task, &end, self.address).await?;
        link::set_up(task, &end).await?;
        if let Some(gateway) = self.gateway {
            // Replace: a second attach, or a changed gateway, simply wins.
            link::replace_default_route(task, gateway, end.index, None).await?;
        }
        Ok(())
    }
}

/// Deletes the host end (the kernel deletes its peer); a missing one is fine.
pub async fn teardown(host: &Handle, host_name: &str) -> Result<()> {
    link::delete(host, host_name).await
}
