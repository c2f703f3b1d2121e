//! Registry credentials where docker keeps them: `$DOCKER_CONFIG/config.json`
//! (default `~/.docker/config.json`), in `auths` (base64 `user:password`),
//! or in a credential helper (`credsStore`, `credHelpers`: the program
//! `docker-credential-<name>` with `get`, `store`, `erase`), so `shoal login`
//! and `docker login` share them.

use std::io::Write;
use std::path::PathBuf;
use std::process::{Command, Stdio};

use base64::Engine;
use serde_json::{json, Map, Value};

/// docker's key for Docker Hub in `auths`.
const DOCKER_HUB: &str = "https://index.docker.io/v1/";

/// A registry's user and password.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Credentials {
    pub username: String,
    pub password: String,
}

/// The registry of an image reference, as docker reads it: the first
/// component when it has a `.` or a `:` or is `localhost`, else Docker Hub.
pub fn registry_of(image: &str) -> String {
    match image.split_once('/') {
        Some((first, _)) if first.contains(['.', ':']) || first == "localhost" => first.to_string(),
        _ => DOCKER_HUB.to_string(),
    }
}

fn config_path() -> PathBuf {
    match std::env::var_os("DOCKER_CONFIG") {
        Some(dir) => PathBuf::from(dir).join("config.json"),
        None => PathBuf::from(std::env::var_os("HOME").unwrap_or_default())
            .join(".docker")
            .join("config.json"),
    }
}

fn read_config() -> Result<Map<String, Value>, String> {
    let path = config_path();
    match std::fs::read(&path) {
        Ok(bytes) => match serde_json::from_slice(&bytes) {
            Ok(Value::Object(map)) => Ok(map),
            _ => Err(format!("{} is not a JSON object", path.display())),
        },
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Map::new()),
        Err(e) => Err(format!("read {}: {e}", path.display())),
    }
}

fn write_config(config: &Map<String, Value>) -> Result<(), String> {
    use std::os::unix::fs::OpenOptionsExt;
    let path = config_path();
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).map_err(|e| format!("create {}: {e}", dir.display()))?;
    }
    let text = serde_json::to_vec_pretty(config).map_err(|e| e.to_string())?;
    let tmp = path.with_extension("json.tmp");
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(&tmp)
        .map_err(|e| format!("write {}: {e}", tmp.display()))?;
    file.write_all(&text)
        .map_err(|e| format!("write {}: {e}", tmp.display()))?;
    std::fs::rename(&tmp, &path).map_err(|e| format!("write {}: {e}", path.display()))
}

/// The helper that holds `server`'s credentials, if any.
fn helper_for(config: &Map<String, Value>, server: &str) -> Option<String> {
    config
        .get("credHelpers")
        .and_then(|h| h.get(server))
        .or_else(|| config.get("credsStore"))
        .and_then(Value::as_str)
        .filter(|h| !h.is_empty())
        .map(str::to_string)
}

fn run_helper(helper: &str, action: &str, input: &str) -> Result<String, String> {
    let program = format!("docker-credential-{helper}");
    let mut child = Command::new(&program)
        .arg(action)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| format!("run {program}: {e}"))?;
    if let Some(mut stdin) = child.stdin.take() {
        stdin
            .write_all(input.as_bytes())
            .map_err(|e| format!("{program} {action}: {e}"))?;
    }
    let out = child
        .wait_with_output()
        .map_err(|e| format!("{program} {action}: {e}"))?;
    if out.status.success() {
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    } else {
        let said = String::from_utf8_lossy(&out.stdout).trim().to_string()
            + String::from_utf8_lossy(&out.stderr).trim();
        Err(format!("{program} {action}: {said}"))
    }
}

/// The credentials stored for `server`, if any.
pub fn get(server: &str) -> Result<Option<Credentials>, String> {
    let config = read_config()?;
    if let Some(helper) = helper_for(&config, server) {
        let out = match run_helper(&helper, "get", server) {
            Ok(out) => out,
            // docker's helpers say so when they hold nothing for it.
            Err(e) if e.contains("credentials not found") => return Ok(None),
            Err(e) => return Err(e),
        };
        let v: Value = serde_json::from_str(&out).map_err(|e| format!("{helper}: {e}"))?;
        return Ok(Some(Credentials {
            username: v["Username"].as_str().unwrap_or_default().to_string(),
            password: v["Secret"].as_str().unwrap_or_default().to_string(),
        }));
    }
    let Some(auth) = config
        .get("auths")
        .and_then(|a| a.get(server))
        .and_then(|e| e.get("auth"))
        .and_then(Value::as_str)
    else {
        return Ok(None);
    };
    let decoded = base64::engine::general_purpose::STANDARD
        .decode(auth)
        .map_err(|_| {
            format!(
                "the auth of {server} in {} is not base64",
                config_path().display()
            )
        })?;
    let text = String::from_utf8_lossy(&decoded);
    let (username, password) = text
        .split_once(':')
        .ok_or_else(|| format!("the auth of {server} is not user:password"))?;
    Ok(Some(Credentials {
        username: username.to_string(),
        password: password.to_string(),
    }))
}

/// Stores `server`'s credentials (in its helper, if it has one).
pub fn store(server: &str, credentials: &Credentials) -> Result<(), String> {
    let mut config = read_config()?;
    if let Some(helper) = helper_for(&config, server) {
        let input = json!({
            "ServerURL": server,
            "Username": credentials.username,
            "Secret": credentials.password,
        });
        return run_helper(&helper, "store", &input.to_string()).map(drop);
    }
    let auth = base64::engine::general_purpose::STANDARD
        .encode(format!("{}:{}", credentials.username, credentials.password));
    let auths = config
        .entry("auths")
        .or_insert_with(|| Value::Object(Map::new()));
    if !auths.is_object() {
        *auths = Value::Object(Map::new());
    }
    if let Some(map) = auths.as_object_mut() {
        map.insert(server.to_string(), json!({ "auth": auth }));
    }
    write_config(&config)
}

/// Forgets `server`'s credentials; whether there were any.
pub fn erase(server: &str) -> Result<bool, String> {
    let mut config = read_config()?;
    if let Some(helper) = helper_for(&config, server) {
        return run_helper(&helper, "erase", server).map(|_| true);
    }
    let removed = config
        .get_mut("auths")
        .and_then(Value::as_object_mut)
        .and_then(|a| a.remove(server))
        .is_some();
    if removed {
        write_config(&config)?;
    }
    Ok(removed)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_images_registry_is_read_as_docker_reads_it() {
        assert_eq!(registry_of("10.201.1.2:5000/web:v1"), "10.201.1.2:5000");
        assert_eq!(
            registry_of("registry.example.com/team/app"),
            "registry.example.com"
        );
        assert_eq!(registry_of("localhost/app"), "localhost");
        assert_eq!(registry_of("nginx:1.27"), DOCKER_HUB);
        assert_eq!(registry_of("library/nginx"), DOCKER_HUB);
    }
}

#[cfg(test)]
mod store_tests {
    use super::*;

    /// Each nextest test runs in a process of its own: setting the variable
    /// touches no other test.
    #[test]
    fn credentials_are_stored_read_and_erased_in_dockers_config() {
        let dir = tempfile::tempdir().unwrap();
        std::env::set_var("DOCKER_CONFIG", dir.path());
        assert_eq!(get("registry.example:5000").unwrap(), None);
        let credentials = Credentials {
            username: "ci".into(),
            password: "p:w".into(),
        };
        store("registry.example:5000", &credentials).unwrap();
        let text = std::fs::read_to_string(dir.path().join("config.json")).unwrap();
        assert!(
            text.contains("\"auths\"") && !text.contains("p:w"),
            "base64, as docker: {text}"
        );
        assert_eq!(get("registry.example:5000").unwrap(), Some(credentials));
        assert!(erase("registry.example:5000").unwrap());
        assert!(!erase("registry.example:5000").unwrap());
        assert_eq!(get("registry.example:5000").unwrap(), None);
    }
}
