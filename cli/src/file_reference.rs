//! How a service refers to a secret or a config: a name, or a target path
//! with uid, gid and mode. The CLI reads docker's CSV (`--secret
//! source=db,target=pw,mode=0400`), the compose loader its long syntax.

use shoal_proto::types::v1::{ConfigReference, SecretReference};

/// What `--secret` and `--config` say: a name, or docker's CSV of
/// `source`, `target`, `uid`, `gid` and an octal `mode`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FileReference {
    pub name: String,
    pub target: String,
    pub uid: String,
    pub gid: String,
    pub mode: Option<u32>,
}

impl FileReference {
    pub fn parse(text: &str, flag: &str) -> Result<FileReference, String> {
        let mut r = FileReference::default();
        if !text.contains('=') {
            r.name = text.to_string();
            return Ok(r);
        }
        for field in text.split(',') {
            let (key, value) = field
                .split_once('=')
                .ok_or_else(|| format!("invalid field {field:?}: expected key=value"))?;
            match key {
                "source" | "src" => r.name = value.to_string(),
                "target" => r.target = value.to_string(),
                "uid" => r.uid = value.to_string(),
                "gid" => r.gid = value.to_string(),
                "mode" => {
                    let mode =
                        u32::from_str_radix(value.trim_start_matches("0o"), 8).map_err(|_| {
                            format!("invalid mode {value:?}: expected octal, e.g. 0400")
                        })?;
                    r.mode = Some(mode);
                }
                other => return Err(format!("unknown field {other:?} in {flag}")),
            }
        }
        if r.name.is_empty() {
            return Err(format!("{flag} needs source=NAME"));
        }
        Ok(r)
    }
}

impl From<FileReference> for SecretReference {
    fn from(r: FileReference) -> Self {
        SecretReference {
            secret_name: r.name,
            target: r.target,
            uid: r.uid,
            gid: r.gid,
            mode: r.mode,
            ..Default::default()
        }
    }
}

impl From<FileReference> for ConfigReference {
    fn from(r: FileReference) -> Self {
        ConfigReference {
            config_name: r.name,
            target: r.target,
            uid: r.uid,
            gid: r.gid,
            mode: r.mode,
            ..Default::default()
        }
    }
}
