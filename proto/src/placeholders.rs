//! Swarm's placeholders (`{{.Service.Name}}`, `{{.Task.Slot}}`,
//! `{{.Node.Hostname}}`, ...) in a task's hostname, env values, mount
//! sources and golang-templated configs: the context a task gives them,
//! and their expansion. One rule for the agent (which runs the task) and
//! the managers (which name it in DNS).

use serde_json::{json, Value};
use shoal_template::{Functions, Template};

use crate::types::v1::Task;

/// `.Service`, `.Node` and `.Task` of a task on the node `node_hostname`.
pub fn context(task: &Task, node_hostname: &str) -> Value {
    let id = task
        .meta
        .as_ref()
        .map(|m| m.id.as_str())
        .unwrap_or_default();
    json!({
        "Service": {
            "ID": task.service_id,
            "Name": task.service_name,
            "Labels": task.service_labels,
        },
        "Node": {
            "ID": task.node_id,
            "Hostname": node_hostname,
            "Platform": { "OS": std::env::consts::OS, "Architecture": std::env::consts::ARCH },
        },
        "Task": {
            "ID": id,
            "Name": format!("{}.{}.{id}", task.service_name, task.slot),
            "Slot": task.slot.to_string(),
        },
    })
}

/// `text` with its placeholders expanded (text without `{{` as it is).
pub fn expand(text: &str, context: &Value, functions: &Functions) -> Result<String, String> {
    if !text.contains("{{") {
        return Ok(text.to_string());
    }
    Template::parse(text)
        .and_then(|t| t.render(context, functions))
        .map_err(|e| format!("{text:?}: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::types::v1::Meta;

    #[test]
    fn a_tasks_placeholders_name_its_service_slot_and_node() {
        let task = Task {
            meta: Some(Meta {
                id: "t123".into(),
                ..Default::default()
            }),
            service_id: "s1".into(),
            service_name: "web".into(),
            slot: 2,
            node_id: "n1".into(),
            ..Default::default()
        };
        let ctx = context(&task, "w1");
        let f = Functions::new();
        assert_eq!(
            expand(
                "{{.Service.Name}}-{{.Task.Slot}}@{{.Node.Hostname}}",
                &ctx,
                &f
            )
            .unwrap(),
            "web-2@w1"
        );
        assert_eq!(expand("{{.Task.Name}}", &ctx, &f).unwrap(), "web.2.t123");
        assert_eq!(expand("plain", &ctx, &f).unwrap(), "plain");
        assert!(expand("{{.Service.Name", &ctx, &f).is_err());
    }
}
