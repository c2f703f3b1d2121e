//! The control API: what the CLI asks of a manager. Served on the local
//! unix socket (root only, full rights) and on TCP with mTLS, where the
//! caller's certificate must be a manager's or an admin client's of this
//! cluster. Reads are linearizable (Raft read index) before they look at
//! the store; writes are store transactions.

mod access;
mod bundles;
mod configs;
pub mod logs;
pub(crate) mod networks;
pub(crate) mod nodes;
pub mod port;
mod queries;
mod registry_auth;
mod secrets;
pub(crate) mod services;
pub(crate) mod settings;
mod spec_diff;
mod stacks;
pub(crate) mod validate;
mod volumes;
mod watch;

use std::sync::Arc;

use shoal_proto::control::v1::control_server::Control;
use shoal_proto::control::v1::*;
use tonic::{Request, Response, Status};

use crate::store::{State, StoreError};
pub use access::Permission;
use port::ManagerNode;

pub struct ControlApi {
    manager: Arc<dyn ManagerNode>,
    /// Calls over the local unix socket come from root on this host.
    local: bool,
}

impl ControlApi {
    pub fn local(manager: Arc<dyn ManagerNode>) -> Self {
        ControlApi {
            manager,
            local: true,
        }
    }

    pub fn remote(manager: Arc<dyn ManagerNode>) -> Self {
        ControlApi {
            manager,
            local: false,
        }
    }

    /// Who may do what (see `access`); the local socket may do everything.
    fn authorize<T>(&self, request: &Request<T>, needed: Permission) -> Result<(), Status> {
        if self.local {
            return Ok(());
        }
        let peer = shoal_identity::peer_of(request)
            .ok_or_else(|| Status::unauthenticated("the control API needs a client certificate"))?;
        access::authorize(self.manager.member()?.as_ref(), &peer, needed)
    }

    async fn read<R>(&self, f: impl FnOnce(&State) -> Result<R, StoreError>) -> Result<R, Status> {
        let member = self.manager.member()?;
        member.linearize().await?;
        Ok(member.store().view(f)?)
    }

    async fn write<R>(
        &self,
        f: impl FnOnce(&State, &mut crate::store::Tx) -> Result<R, StoreError>,
    ) -> Result<R, Status> {
        let member = self.manager.member()?;
        Ok(member.store().update(f).await?)
    }
}

impl ControlApi {
    fn tokens_response(&self, tokens: shoal_proto::types::v1::JoinTokens) -> GetJoinTokensResponse {
        GetJoinTokensResponse {
            worker: tokens.worker,
            manager: tokens.manager,
            manager_addr: self.manager.advertise_addr().unwrap_or_default(),
        }
    }
}

#[tonic::async_trait]
impl Control for ControlApi {
    async fn init_cluster(
        &self,
        request: Request<InitClusterRequest>,
    ) -> Result<Response<InitClusterResponse>, Status> {
        if !self.local {
            return Err(Status::permission_denied(
                "swarm init is only possible through the local socket of the manager",
            ));
        }
        let request = request.into_inner();
        if let Some(spec) = &request.spec {
            // 0: the default, for each of these.
            validate::heartbeat_period(spec.heartbeat_period_ms)?;
            if spec.cert_expiry_hours > 0 {
                validate::cert_expiry(u64::from(spec.cert_expiry_hours) * 3_600_000)?;
            }
            if spec.snapshot_interval > 0 {
                validate::snapshot_interval(spec.snapshot_interval)?;
            }
            validate::keep_old_snapshots(spec.keep_old_snapshots)?;
        }
        crate::ca::joiner::availability(request.availability)?;
        crate::ca::joiner::data_path_addr(&request.data_path_addr)?;
        validate::addr_pool(
            &request.default_addr_pool,
            request.default_addr_pool_mask_length,
        )?;
        if request.force_new_cluster && self.manager.member().is_ok() {
            let (cluster_id, node_id) = self.manager.force_new_cluster().await?;
            return Ok(Response::new(InitClusterResponse {
                cluster_id,
                node_id,
                unlock_key: String::new(),
            }));
        }
        Ok(Response::new(self.manager.init(request).await?))
    }

    async fn join_cluster(
        &self,
        request: Request<JoinClusterRequest>,
    ) -> Result<Response<JoinClusterResponse>, Status> {
        if !self.local {
            return Err(Status::permission_denied(
                "joining is only possible through the local socket of the manager",
            ));
        }
        let node_id = self.manager.join(request.into_inner()).await?;
        Ok(Response::new(JoinClusterResponse { node_id }))
    }

    async fn unlock_cluster(
        &self,
        request: Request<UnlockClusterRequest>,
    ) -> Result<Response<UnlockClusterResponse>, Status> {
        if !self.local {
            return Err(Status::permission_denied(
                "unlocking is only possible through the local socket of the manager",
            ));
        }
        let key = request.into_inner().unlock_key;
        self.manager.unlock(&key).await?;
        Ok(Response::new(UnlockClusterResponse {}))
    }

    async fn update_autolock(
        &self,
        request: Request<UpdateAutolockRequest>,
    ) -> Result<Response<UnlockKeyResponse>, Status> {
        self.authorize(&request, Permission::Admin)?;
        let autolock = request.into_inner().autolock;
        let unlock_key = self
            .write(|state, tx| settings::set_autolock(state, tx, autolock))
            .await?;
        Ok(Response::new(UnlockKeyResponse { unlock_key }))
    }

    async fn get_root_ca(
        &self,
        request: Request<GetRootCaRequest>,
    ) -> Result<Response<RootCaStatus>, Status> {
        // The root certificate is public (every node and bundle holds it).
        self.authorize(&request, Permission::Read)?;
        let status = self.read(crate::ca::rotation::status).await?;
        Ok(Response::new(status))
    }

    async fn rotate_root_ca(
        &self,
        request: Request<RotateRootCaRequest>,
    ) -> Result<Response<RootCaStatus>, Status> {
        self.authorize(&request, Permission::Admin)?;
        self.write(crate::ca::rotation::start).await?;
        tracing::info!("root CA rotation started: every node renews its certificate now");
        let status = self.read(crate::ca::rotation::status).await?;
        Ok(Response::new(status))
    }

    async fn update_cert_expiry(
        &self,
        request: Request<UpdateCertExpiryRequest>,
    ) -> Result<Response<UpdateCertExpiryResponse>, Status> {
        self.authorize(&request, Permission::Admin)?;
        let hours = validate::cert_expiry(request.into_inner().expiry_ms).map_err(Status::from)?;
        self.write(|state, tx| settings::set_cert_expiry(state, tx, hours))
            .await?;
        Ok(Response::new(UpdateCertExpiryResponse {}))
    }

    async fn update_network_key_rotation(
        &self,
        request: Request<UpdateNetworkKeyRotationRequest>,
    ) -> Result<Response<UpdateNetworkKeyRotationResponse>, Status> {
        self.authorize(&request, Permission::Admin)?;
        let rotation_ms = request.into_inner().rotation_ms;
        validate::network_key_rotation(rotation_ms).map_err(Status::from)?;
        self.write(|state, tx| settings::set_network_key_rotation(state, tx, rotation_ms))
            .await?;
        Ok(Response::new(UpdateNetworkKeyRotationResponse {}))
    }

    async fn update_task_history_limit(
        &self,
        request: Request<UpdateTaskHistoryLimitRequest>,
    ) -> Result<Response<UpdateTaskHistoryLimitResponse>, Status> {
        self.authorize(&request, Permission::Admin)?;
        let limit = request.into_inner().limit;
        self.write(|state, tx| settings::set_task_history_limit(state, tx, limit))
            .await?;
        Ok(Response::new(UpdateTaskHistoryLimitResponse {}))
    }

    async fn update_cluster_settings(
        &self,
        request: Request<UpdateClusterSettingsRequest>,
    ) -> Result<Response<UnlockKeyResponse>, Status> {
        self.authorize(&request, Permission::Admin)?;
        let change = settings::SettingsChange::checked(request.get_ref())?;
        let unlock_key = self
            .write(|state, tx| settings::update(state, tx, &change))
            .await?;
        Ok(Response::new(UnlockKeyResponse { unlock_key }))
    }

    async fn rollback_service(
        &self,
        request: Request<RollbackServiceRequest>,
    ) -> Result<Response<RollbackServiceResponse>, Status> {
        self.authorize(&request, Permission::Deploy)?;
        let request = request.into_inner();
        let reference = request.service_id;
        let updated = self
            .write(|state, tx| {
                let current = state
                    .find_service(&reference)
                    .map_err(StoreError::NotFound)?;
                services::roll_back(state, tx, current, request.to_revision)
            })
            .await?;
        Ok(Response::new(RollbackServiceResponse {
            service: Some(registry_auth::redacted_service(updated.service)),
        }))
    }

    async fn get_unlock_key(
        &self,
        request: Request<GetUnlockKeyRequest>,
    ) -> Result<Response<UnlockKeyResponse>, Status> {
        self.authorize(&request, Permission::Admin)?;
        let rotate = request.into_inner().rotate;
        let unlock_key = self
            .write(|state, tx| settings::unlock_key(state, tx, rotate))
            .await?;
        Ok(Response::new(UnlockKeyResponse { unlock_key }))
    }

    async fn get_cluster(
        &self,
        request: Request<GetClusterRequest>,
    ) -> Result<Response<GetClusterResponse>, Status> {
        self.authorize(&request, Permission::Read)?;
        let mut cluster = self
            .read(|s| {
                s.cluster()
                    .cloned()
                    .ok_or_else(|| StoreError::NotFound("the cluster is not initialised".into()))
            })
            .await?;
        // The CA keys and the unlock key never leave the managers this way.
        cluster.root_ca_key_pem.clear();
        cluster.unlock_key.clear();
        if let Some(rotation) = cluster.root_rotation.as_mut() {
            rotation.ca_key_pem.clear();
        }
        let leader_addr = self.manager.leader_addr().unwrap_or_default();
        let member = self.manager.member()?;
        Ok(Response::new(GetClusterResponse {
            cluster: Some(cluster),
            leader_addr,
            node_id: member.node_id().to_string(),
            raft: Some(member.raft_status()),
            data_path_port: shoal_proto::DATA_PATH_PORT.into(),
        }))
    }

    async fn list_nodes(
        &self,
        request: Request<ListNodesRequest>,
    ) -> Result<Response<ListNodesResponse>, Status> {
        self.authorize(&request, Permission::Read)?;
        let mut nodes = self
            .read(|s| Ok(s.nodes.values().cloned().collect::<Vec<_>>()))
            .await?;
        let leader = self.manager.leader_node_id();
        for node in &mut nodes {
            if let Some(ms) = node.manager_status.as_mut() {
                ms.leader = leader.as_deref() == node.meta.as_ref().map(|m| m.id.as_str());
            }
        }
        Ok(Response::new(ListNodesResponse { nodes }))
    }

    async fn remove_node(
        &self,
        request: Request<RemoveNodeRequest>,
    ) -> Result<Response<RemoveNodeResponse>, Status> {
        self.authorize(&request, Permission::Admin)?;
        let request = request.into_inner();
        self.write(|state, tx| nodes::remove(state, tx, &request.node, request.force))
            .await?;
        Ok(Response::new(RemoveNodeResponse {}))
    }

    async fn update_node(
        &self,
        request: Request<UpdateNodeRequest>,
    ) -> Result<Response<UpdateNodeResponse>, Status> {
        self.authorize(&request, Permission::Admin)?;
        let request = request.into_inner();
        let role = match request.role {
            Some(role) => Some(
                shoal_proto::types::v1::NodeRole::try_from(role)
                    .map_err(|_| Status::invalid_argument(format!("unknown node role {role}")))?,
            ),
            None => None,
        };
        let availability = match request.availability {
            Some(a) => Some(
                shoal_proto::types::v1::NodeAvailability::try_from(a).map_err(|_| {
                    Status::invalid_argument(format!(
                        "invalid availability {a}: active, pause or drain"
                    ))
                })?,
            ),
            None => None,
        };
        let change = nodes::NodeChange {
            availability,
            label_add: request.label_add,
            label_rm: request.label_rm,
        };
        let spec_change = change.availability.is_some()
            || !change.label_add.is_empty()
            || !change.label_rm.is_empty();
        if role.is_none() && !spec_change {
            return Err(Status::invalid_argument(
                "nothing to update: give a role, an availability or labels",
            ));
        }
        let member = self.manager.member()?;
        let (node, changed) = self
            .write(|state, tx| {
                let mut changed = false;
                let mut node = None;
                if let Some(role) = role {
                    let (n, c) = nodes::set_role(state, tx, &request.node, role, |raft_id| {
                        member.removal_refusal(state, raft_id)
                    })?;
                    changed |= c;
                    node = Some(n);
                }
                if spec_change {
                    // The role change (if any) is in the transaction: build
                    // on the node as it now is.
                    let base = node.take();
                    let (n, c) = match base {
                        Some(n) => nodes::update_node(state, tx, n, &change)?,
                        None => nodes::update(state, tx, &request.node, &change)?,
                    };
                    changed |= c;
                    node = Some(n);
                }
                Ok((node.unwrap_or_default(), changed))
            })
            .await?;
        Ok(Response::new(UpdateNodeResponse {
            node: Some(node),
            changed,
        }))
    }

    async fn leave_cluster(
        &self,
        request: Request<LeaveClusterRequest>,
    ) -> Result<Response<LeaveClusterResponse>, Status> {
        if !self.local {
            return Err(Status::permission_denied(
                "swarm leave is only possible through the local socket of the manager",
            ));
        }
        self.manager.leave(request.into_inner().force).await?;
        Ok(Response::new(LeaveClusterResponse {}))
    }

    async fn get_join_tokens(
        &self,
        request: Request<GetJoinTokensRequest>,
    ) -> Result<Response<GetJoinTokensResponse>, Status> {
        self.authorize(&request, Permission::Admin)?;
        let tokens = self.read(|s| Ok(settings::join_tokens(s))).await?;
        Ok(Response::new(self.tokens_response(tokens)))
    }

    async fn rotate_join_token(
        &self,
        request: Request<RotateJoinTokenRequest>,
    ) -> Result<Response<GetJoinTokensResponse>, Status> {
        self.authorize(&request, Permission::Admin)?;
        let role = request.into_inner().role;
        let tokens = self
            .write(|state, tx| settings::rotate_join_token(state, tx, role))
            .await?;
        Ok(Response::new(self.tokens_response(tokens)))
    }

    async fn create_client_bundle(
        &self,
        request: Request<CreateClientBundleRequest>,
    ) -> Result<Response<CreateClientBundleResponse>, Status> {
        self.authorize(&request, Permission::Admin)?;
        let request = request.into_inner();
        let member = self.manager.member()?;
        let response = bundles::create(member.store(), member.cluster_id(), request).await?;
        Ok(Response::new(response))
    }

    async fn list_client_bundles(
        &self,
        request: Request<ListClientBundlesRequest>,
    ) -> Result<Response<ListClientBundlesResponse>, Status> {
        self.authorize(&request, Permission::Admin)?;
        let bundles = self
            .read(|s| {
                Ok(s.cluster()
                    .map(|c| c.client_bundles.clone())
                    .unwrap_or_default())
            })
            .await?;
        Ok(Response::new(ListClientBundlesResponse { bundles }))
    }

    async fn revoke_client_bundle(
        &self,
        request: Request<RevokeClientBundleRequest>,
    ) -> Result<Response<RevokeClientBundleResponse>, Status> {
        self.authorize(&request, Permission::Admin)?;
        let reference = request.into_inner().name_or_id;
        self.write(|state, tx| bundles::revoke(state, tx, &reference))
            .await?;
        Ok(Response::new(RevokeClientBundleResponse {}))
    }

    async fn create_secret(
        &self,
        request: Request<CreateSecretRequest>,
    ) -> Result<Response<CreateSecretResponse>, Status> {
        self.authorize(&request, Permission::Deploy)?;
        let spec = request
            .into_inner()
            .spec
            .ok_or_else(|| Status::invalid_argument("a secret spec is required"))?;
        let secret = self
            .write(|state, tx| secrets::create(state, tx, spec))
            .await?;
        Ok(Response::new(CreateSecretResponse {
            secret: Some(secrets::redacted(secret)),
        }))
    }

    async fn list_secrets(
        &self,
        request: Request<ListSecretsRequest>,
    ) -> Result<Response<ListSecretsResponse>, Status> {
        self.authorize(&request, Permission::Read)?;
        let filter = request.into_inner();
        let secrets = self.read(|s| Ok(queries::secrets(s, &filter))).await?;
        Ok(Response::new(ListSecretsResponse { secrets }))
    }

    async fn get_secret(
        &self,
        request: Request<GetSecretRequest>,
    ) -> Result<Response<GetSecretResponse>, Status> {
        self.authorize(&request, Permission::Read)?;
        let reference = request.into_inner().id_or_name;
        let secret = self
            .read(|s| {
                s.find_secret(&reference)
                    .cloned()
                    .map_err(StoreError::NotFound)
            })
            .await?;
        Ok(Response::new(GetSecretResponse {
            secret: Some(secrets::redacted(secret)),
        }))
    }

    async fn remove_secret(
        &self,
        request: Request<RemoveSecretRequest>,
    ) -> Result<Response<RemoveSecretResponse>, Status> {
        self.authorize(&request, Permission::Deploy)?;
        let reference = request.into_inner().id_or_name;
        self.write(|state, tx| secrets::remove(state, tx, &reference))
            .await?;
        Ok(Response::new(RemoveSecretResponse {}))
    }

    async fn create_config(
        &self,
        request: Request<CreateConfigRequest>,
    ) -> Result<Response<CreateConfigResponse>, Status> {
        self.authorize(&request, Permission::Deploy)?;
        let spec = request
            .into_inner()
            .spec
            .ok_or_else(|| Status::invalid_argument("a config spec is required"))?;
        let config = self
            .write(|state, tx| configs::create(state, tx, spec))
            .await?;
        Ok(Response::new(CreateConfigResponse {
            config: Some(config),
        }))
    }

    async fn list_configs(
        &self,
        request: Request<ListConfigsRequest>,
    ) -> Result<Response<ListConfigsResponse>, Status> {
        self.authorize(&request, Permission::Read)?;
        let filter = request.into_inner();
        let configs = self.read(|s| Ok(queries::configs(s, &filter))).await?;
        Ok(Response::new(ListConfigsResponse { configs }))
    }

    async fn get_config(
        &self,
        request: Request<GetConfigRequest>,
    ) -> Result<Response<GetConfigResponse>, Status> {
        self.authorize(&request, Permission::Read)?;
        let reference = request.into_inner().id_or_name;
        let config = self
            .read(|s| {
                s.find_config(&reference)
                    .cloned()
                    .map_err(StoreError::NotFound)
            })
            .await?;
        Ok(Response::new(GetConfigResponse {
            config: Some(config),
        }))
    }

    async fn remove_config(
        &self,
        request: Request<RemoveConfigRequest>,
    ) -> Result<Response<RemoveConfigResponse>, Status> {
        self.authorize(&request, Permission::Deploy)?;
        let reference = request.into_inner().id_or_name;
        self.write(|state, tx| configs::remove(state, tx, &reference))
            .await?;
        Ok(Response::new(RemoveConfigResponse {}))
    }

    async fn update_secret(
        &self,
        request: Request<UpdateSecretRequest>,
    ) -> Result<Response<UpdateSecretResponse>, Status> {
        self.authorize(&request, Permission::Deploy)?;
        let UpdateSecretRequest { id_or_name, data } = request.into_inner();
        let rolled_services = self
            .write(|state, tx| secrets::update(state, tx, &id_or_name, data))
            .await?;
        Ok(Response::new(UpdateSecretResponse { rolled_services }))
    }

    async fn update_config(
        &self,
        request: Request<UpdateConfigRequest>,
    ) -> Result<Response<UpdateConfigResponse>, Status> {
        self.authorize(&request, Permission::Deploy)?;
        let UpdateConfigRequest { id_or_name, data } = request.into_inner();
        let rolled_services = self
            .write(|state, tx| configs::update(state, tx, &id_or_name, data))
            .await?;
        Ok(Response::new(UpdateConfigResponse { rolled_services }))
    }

    async fn list_volumes(
        &self,
        request: Request<ListVolumesRequest>,
    ) -> Result<Response<ListVolumesResponse>, Status> {
        self.authorize(&request, Permission::Read)?;
        let volumes = self.read(|s| Ok(volumes::list(s))).await?;
        Ok(Response::new(ListVolumesResponse { volumes }))
    }

    type ServiceLogsStream =
        tokio_stream::wrappers::ReceiverStream<Result<ServiceLogsMessage, Status>>;

    async fn service_logs(
        &self,
        request: Request<ServiceLogsRequest>,
    ) -> Result<Response<Self::ServiceLogsStream>, Status> {
        self.authorize(&request, Permission::Read)?;
        let ServiceLogsRequest { target, options } = request.into_inner();
        let target = self
            .read(|s| logs::Target::find(s, &target).map_err(StoreError::NotFound))
            .await?;
        let member = self.manager.member()?;
        let (tx, rx) = tokio::sync::mpsc::channel(16);
        tokio::spawn(logs::stream(
            member.store().clone(),
            member.node_logs(),
            target,
            options.unwrap_or_default(),
            logs::NODE_ANSWER_TIMEOUT,
            tx,
        ));
        Ok(Response::new(tokio_stream::wrappers::ReceiverStream::new(
            rx,
        )))
    }

    type WatchServicesStream =
        tokio_stream::wrappers::ReceiverStream<Result<WatchServicesMessage, Status>>;

    async fn watch_services(
        &self,
        request: Request<WatchServicesRequest>,
    ) -> Result<Response<Self::WatchServicesStream>, Status> {
        self.authorize(&request, Permission::Read)?;
        let WatchServicesRequest { service_ids } = request.into_inner();
        let member = self.manager.member()?;
        let (tx, rx) = tokio::sync::mpsc::channel(1);
        tokio::spawn(watch::stream(
            member.store().clone(),
            watch::Interest::new(service_ids),
            tx,
        ));
        Ok(Response::new(tokio_stream::wrappers::ReceiverStream::new(
            rx,
        )))
    }

    async fn remove_volume(
        &self,
        request: Request<RemoveVolumeRequest>,
    ) -> Result<Response<RemoveVolumeResponse>, Status> {
        self.authorize(&request, Permission::Deploy)?;
        let RemoveVolumeRequest { name, node } = request.into_inner();
        let node_ids = self
            .write(|state, tx| volumes::remove(state, tx, &name, &node))
            .await?;
        Ok(Response::new(RemoveVolumeResponse { node_ids }))
    }

    async fn create_service(
        &self,
        request: Request<CreateServiceRequest>,
    ) -> Result<Response<CreateServiceResponse>, Status> {
        self.authorize(&request, Permission::Deploy)?;
        let spec = request
            .into_inner()
            .spec
            .ok_or_else(|| Status::invalid_argument("a service spec is required"))?;
        validate::service_spec(&spec).map_err(Status::from)?;
        let id = crate::ids::new_id();
        let service = self
            .write(|state, tx| services::create(state, tx, &id, spec))
            .await?;
        let service = self
            .manager
            .member()?
            .store()
            .view(|s| s.services.get(&id).cloned().unwrap_or(service));
        Ok(Response::new(CreateServiceResponse {
            service: Some(registry_auth::redacted_service(service)),
        }))
    }

    async fn get_service(
        &self,
        request: Request<GetServiceRequest>,
    ) -> Result<Response<GetServiceResponse>, Status> {
        self.authorize(&request, Permission::Read)?;
        let reference = request.into_inner().id_or_name;
        let service = self
            .read(|s| {
                s.find_service(&reference)
                    .cloned()
                    .map_err(StoreError::NotFound)
            })
            .await?;
        Ok(Response::new(GetServiceResponse {
            service: Some(registry_auth::redacted_service(service)),
        }))
    }

    async fn list_services(
        &self,
        request: Request<ListServicesRequest>,
    ) -> Result<Response<ListServicesResponse>, Status> {
        self.authorize(&request, Permission::Read)?;
        let filter = request.into_inner();
        let services = self.read(|s| Ok(queries::services(s, &filter))).await?;
        let services = services
            .into_iter()
            .map(registry_auth::redacted_service)
            .collect();
        Ok(Response::new(ListServicesResponse { services }))
    }

    async fn update_service(
        &self,
        request: Request<UpdateServiceRequest>,
    ) -> Result<Response<UpdateServiceResponse>, Status> {
        self.authorize(&request, Permission::Deploy)?;
        let request = request.into_inner();
        let mut spec = request
            .spec
            .ok_or_else(|| Status::invalid_argument("a service spec is required"))?;
        validate::service_spec(&spec).map_err(Status::from)?;
        let id = request.service_id.clone();
        self.write(|state, tx| {
            let current = state
                .services
                .get(&request.service_id)
                .ok_or_else(|| StoreError::NotFound(format!("service {} not found", request.service_id)))?;
            let version = current.meta.as_ref().map(|m| m.version).unwrap_or(0);
            if request.version != version {
                return Err(StoreError::Conflict(format!(
                    "service {} was changed by someone else (version {} is not the current {}): read it again and retry",
                    spec.name, request.version, version
                )));
            }
            if let Some(current_spec) = &current.spec {
                registry_auth::keep_current(current_spec, &mut spec);
            }
            services::update(state, tx, current, spec).map(|_| ())
        })
        .await?;
        let service = self
            .read(|s| {
                s.services
                    .get(&id)
                    .cloned()
                    .ok_or_else(|| StoreError::NotFound(format!("service {id} not found")))
            })
            .await?;
        Ok(Response::new(UpdateServiceResponse {
            service: Some(registry_auth::redacted_service(service)),
        }))
    }

    async fn deploy_stack(
        &self,
        request: Request<DeployStackRequest>,
    ) -> Result<Response<DeployStackResponse>, Status> {
        self.authorize(&request, Permission::Deploy)?;
        let request = request.into_inner();
        if request.namespace.is_empty() {
            return Err(Status::invalid_argument("a stack needs a name"));
        }
        for spec in &request.services {
            validate::service_spec(spec).map_err(Status::from)?;
        }
        // A dry run is the deploy's own transaction, its writes dropped, on
        // a linearizable read of the state (so it sees what a deploy would).
        let changes = if request.dry_run {
            let member = self.manager.member()?;
            member.linearize().await?;
            let mut changes = member
                .store()
                .dry_run(|state, tx| stacks::deploy(state, tx, request))?;
            stacks::forget_new_ids(&mut changes);
            changes
        } else {
            self.write(|state, tx| stacks::deploy(state, tx, request))
                .await?
        };
        Ok(Response::new(DeployStackResponse { changes }))
    }

    async fn remove_service(
        &self,
        request: Request<RemoveServiceRequest>,
    ) -> Result<Response<RemoveServiceResponse>, Status> {
        self.authorize(&request, Permission::Deploy)?;
        let reference = request.into_inner().service_id;
        self.write(|state, tx| {
            let service = state
                .find_service(&reference)
                .map_err(StoreError::NotFound)?;
            services::remove(state, tx, service);
            Ok(())
        })
        .await?;
        Ok(Response::new(RemoveServiceResponse {}))
    }

    async fn list_tasks(
        &self,
        request: Request<ListTasksRequest>,
    ) -> Result<Response<ListTasksResponse>, Status> {
        self.authorize(&request, Permission::Read)?;
        let filter = request.into_inner();
        let tasks = self.read(|s| Ok(queries::tasks(s, &filter))).await?;
        let tasks = tasks
            .into_iter()
            .map(registry_auth::redacted_task)
            .collect();
        Ok(Response::new(ListTasksResponse { tasks }))
    }

    async fn list_networks(
        &self,
        request: Request<ListNetworksRequest>,
    ) -> Result<Response<ListNetworksResponse>, Status> {
        self.authorize(&request, Permission::Read)?;
        let networks = self
            .read(|s| Ok(s.networks.values().cloned().collect::<Vec<_>>()))
            .await?;
        Ok(Response::new(ListNetworksResponse { networks }))
    }

    async fn create_network(
        &self,
        request: Request<CreateNetworkRequest>,
    ) -> Result<Response<CreateNetworkResponse>, Status> {
        self.authorize(&request, Permission::Deploy)?;
        let spec = request
            .into_inner()
            .spec
            .ok_or_else(|| Status::invalid_argument("a network spec is required"))?;
        validate::network_spec(&spec)?;
        let id = crate::ids::new_id();
        let network = self
            .write(|state, tx| networks::create(state, tx, &id, spec))
            .await?;
        Ok(Response::new(CreateNetworkResponse {
            network: Some(network),
        }))
    }

    async fn get_network(
        &self,
        request: Request<GetNetworkRequest>,
    ) -> Result<Response<GetNetworkResponse>, Status> {
        self.authorize(&request, Permission::Read)?;
        let reference = request.into_inner().id_or_name;
        let network = self
            .read(|s| {
                s.find_network(&reference)
                    .cloned()
                    .map_err(StoreError::NotFound)
            })
            .await?;
        Ok(Response::new(GetNetworkResponse {
            network: Some(network),
        }))
    }

    async fn remove_network(
        &self,
        request: Request<RemoveNetworkRequest>,
    ) -> Result<Response<RemoveNetworkResponse>, Status> {
        self.authorize(&request, Permission::Deploy)?;
        let reference = request.into_inner().id_or_name;
        self.write(|state, tx| networks::remove(state, tx, &reference))
            .await?;
        Ok(Response::new(RemoveNetworkResponse {}))
    }

    async fn prune_networks(
        &self,
        request: Request<PruneNetworksRequest>,
    ) -> Result<Response<PruneNetworksResponse>, Status> {
        self.authorize(&request, Permission::Deploy)?;
        let removed = self
            .write(|state, tx| Ok(networks::prune(state, tx)))
            .await?;
        Ok(Response::new(PruneNetworksResponse { removed }))
    }
}
