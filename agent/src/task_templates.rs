//! Swarm's placeholders in what a task gets (`shoal_proto::placeholders`):
//! its env values, its mount sources, and configs whose template driver is
//! `golang`, which may also call `env "NAME"` (the task's environment),
//! `secret "TARGET"` and `config "TARGET"` (the task's own secrets and
//! configs, by target). A placeholder that does not render rejects the task.

use serde_json::Value;
use shoal_proto::types::v1::Config;
use shoal_template::Functions;

use crate::task_files::TaskFile;

/// `KEY=value` entries with their values expanded.
pub fn env(entries: &[String], context: &Value) -> Result<Vec<String>, String> {
    let none = Functions::new();
    entries
        .iter()
        .map(|entry| match entry.split_once('=') {
            Some((key, value)) => {
                let value = shoal_proto::placeholders::expand(value, context, &none)
                    .map_err(|e| format!("env {key}: {e}"))?;
                Ok(format!("{key}={value}"))
            }
            None => Ok(entry.clone()),
        })
        .collect()
}

/// A config's bytes for the task: rendered if its driver is `golang`.
pub fn render_config(
    config: &Config,
    context: &Value,
    env: &[String],
    secrets: &[TaskFile],
    configs: &[(String, Vec<u8>)],
) -> Result<Vec<u8>, String> {
    let spec = config.spec.clone().unwrap_or_default();
    if spec.template_driver != "golang" {
        return Ok(spec.data);
    }
    let text = String::from_utf8(spec.data).map_err(|_| "a golang template must be UTF-8")?;
    let by_target =
        |target: &str, wanted: &str| target == wanted || target.rsplit('/').next() == Some(wanted);
    let mut functions = Functions::new();
    functions.add("env", move |args| match args {
        [Value::String(name)] => Ok(Value::String(
            env.iter()
                .find_map(|e| e.strip_prefix(name.as_str())?.strip_prefix('='))
                .unwrap_or_default()
                .to_string(),
        )),
        _ => Err("env wants a variable name".into()),
    });
    functions.add("secret", move |args| match args {
        [Value::String(name)] => secrets
            .iter()
            .find(|f| by_target(&f.target, name))
            .map(|f| Value::String(String::from_utf8_lossy(&f.data).into_owned()))
            .ok_or_else(|| format!("the task has no secret {name:?}")),
        _ => Err("secret wants a secret's target".into()),
    });
    functions.add("config", move |args| match args {
        [Value::String(name)] => configs
            .iter()
            .find(|(target, _)| by_target(target, name))
            .map(|(_, data)| Value::String(String::from_utf8_lossy(data).into_owned()))
            .ok_or_else(|| format!("the task has no config {name:?}")),
        _ => Err("config wants a config's target".into()),
    });
    shoal_proto::placeholders::expand(&text, context, &functions).map(String::into_bytes)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;
    use shoal_proto::types::v1::ConfigSpec;

    fn context() -> Value {
        json!({ "Service": { "Name": "web" }, "Task": { "Slot": "3" }, "Node": { "Hostname": "w1" } })
    }

    #[test]
    fn env_values_and_golang_configs_expand_for_the_task() {
        let env = env(
            &[
                "NAME={{.Service.Name}}-{{.Task.Slot}}".into(),
                "PLAIN=x".into(),
            ],
            &context(),
        )
        .unwrap();
        assert_eq!(env, ["NAME=web-3", "PLAIN=x"]);
        let secrets = vec![TaskFile {
            what: "secret db".into(),
            data: b"hunter2".to_vec(),
            target: "/run/secrets/db_password".into(),
            uid: String::new(),
            gid: String::new(),
            mode: None,
        }];
        let configs = vec![("/etc/base.conf".to_string(), b"base".to_vec())];
        let config = Config {
            spec: Some(ConfigSpec {
                data: b"slot={{.Task.Slot}} node={{.Node.Hostname}} name={{env \"NAME\"}} pw={{secret \"db_password\"}} base={{config \"base.conf\"}}".to_vec(),
                template_driver: "golang".into(),
                ..Default::default()
            }),
            ..Default::default()
        };
        let rendered = render_config(&config, &context(), &env, &secrets, &configs).unwrap();
        assert_eq!(
            String::from_utf8(rendered).unwrap(),
            "slot=3 node=w1 name=web-3 pw=hunter2 base=base"
        );
        let plain = Config {
            spec: Some(ConfigSpec {
                data: b"{{.Task.Slot}}".to_vec(),
                ..Default::default()
            }),
            ..Default::default()
        };
        assert_eq!(
            render_config(&plain, &context(), &env, &secrets, &configs).unwrap(),
            b"{{.Task.Slot}}"
        );
        let missing = Config {
            spec: Some(ConfigSpec {
                data: b"{{secret \"nope\"}}".to_vec(),
                template_driver: "golang".into(),
                ..Default::default()
            }),
            ..Default::default()
        };
        let err = render_config(&missing, &context(), &env, &secrets, &configs).unwrap_err();
        assert!(err.contains("the task has no secret \"nope\""), "{err}");
    }
}
