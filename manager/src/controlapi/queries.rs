//! The list calls' filters, as Docker's CLI sends them.

use std::collections::HashMap;

use shoal_proto::control::v1::{
    ListConfigsRequest, ListSecretsRequest, ListServicesRequest, ListTasksRequest,
};
use shoal_proto::types::v1::{Config, Secret, Service, Task, TaskState};

use super::secrets;
use crate::store::State;

/// `key` or `key=value`.
fn label_matches(labels: &HashMap<String, String>, filter: &str) -> bool {
    match filter.split_once('=') {
        Some((k, v)) => labels.get(k).is_some_and(|x| x == v),
        None => labels.contains_key(filter),
    }
}

fn all_labels_match(labels: &HashMap<String, String>, filters: &[String]) -> bool {
    filters.iter().all(|f| label_matches(labels, f))
}

pub fn services(state: &State, filter: &ListServicesRequest) -> Vec<Service> {
    state
        .services
        .values()
        .filter(|service| {
            let spec = service.spec.clone().unwrap_or_default();
            (filter.names.is_empty() || filter.names.contains(&spec.name))
                && all_labels_match(&spec.labels, &filter.labels)
        })
        .cloned()
        .collect()
}

pub fn tasks(state: &State, filter: &ListTasksRequest) -> Vec<Task> {
    state
        .tasks
        .values()
        .filter(|t| filter.service_ids.is_empty() || filter.service_ids.contains(&t.service_id))
        .filter(|t| filter.node_ids.is_empty() || filter.node_ids.contains(&t.node_id))
        .filter(|t| !filter.only_desired_running || t.desired_state <= TaskState::Running as i32)
        .filter(|t| all_labels_match(&t.service_labels, &filter.labels))
        .map(|t| Task::clone(t))
        .collect()
}

/// Redacted: a secret's value never leaves the managers this way.
pub fn secrets(state: &State, filter: &ListSecretsRequest) -> Vec<Secret> {
    state
        .secrets
        .values()
        .filter(|secret| {
            let labels = secret.spec.as_ref().map(|s| s.labels.clone());
            all_labels_match(&labels.unwrap_or_default(), &filter.labels)
        })
        .cloned()
        .map(secrets::redacted)
        .collect()
}

pub fn configs(state: &State, filter: &ListConfigsRequest) -> Vec<Config> {
    state
        .configs
        .values()
        .filter(|config| {
            let labels = config.spec.as_ref().map(|s| s.labels.clone());
            all_labels_match(&labels.unwrap_or_default(), &filter.labels)
        })
        .cloned()
        .collect()
}
