//! Env files (`--env-file`, compose `env_file`) as docker reads them
//! (`opts.ParseEnvFile`, `kvfile.Parse`): blank lines and `#` comments
//! skipped, leading space trimmed, the value kept as written (quotes and
//! all, no interpolation), a bare `KEY` taking its value from the
//! environment or dropped.

use std::collections::HashMap;
use std::path::Path;

/// The `KEY=value` pairs of the file at `path`, in order; errors in
/// docker's words, naming the file.
pub fn read(path: &Path, env: &HashMap<String, String>) -> Result<Vec<(String, String)>, String> {
    let bytes =
        std::fs::read(path).map_err(|e| format!("open {}: {}", path.display(), os_error(&e)))?;
    parse(&bytes, env).map_err(|why| format!("invalid env file ({}): {why}", path.display()))
}

/// An I/O error in Go's words (`no such file or directory`), as docker
/// prints it.
fn os_error(e: &std::io::Error) -> String {
    let text = e.to_string();
    match text.find(" (os error") {
        Some(cut) => text[..cut].to_ascii_lowercase(),
        None => text,
    }
}

/// docker's `kvfile.Parse` of one env file's bytes.
fn parse(
    bytes: &[u8],
    env: &HashMap<String, String>,
) -> std::result::Result<Vec<(String, String)>, String> {
    let bytes = bytes.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(bytes);
    let mut out = Vec::new();
    for (i, raw) in bytes.split(|b| *b == b'\n').enumerate() {
        let line = std::str::from_utf8(raw)
            .map_err(|_| format!("contains invalid utf8 bytes at line {}", i + 1))?;
        let line = line.strip_suffix('\r').unwrap_or(line).trim_start();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let (name, value) = match line.split_once('=') {
            Some((name, value)) => (name, Some(value)),
            None => (line, None),
        };
        if name.is_empty() {
            return Err(format!("no variable name on line '{line}'"));
        }
        if name.chars().any(char::is_whitespace) {
            return Err(format!("variable '{name}' contains whitespaces"));
        }
        match value {
            Some(value) => out.push((name.to_string(), value.to_string())),
            None => {
                if let Some(value) = env.get(name) {
                    out.push((name.to_string(), value.clone()));
                }
            }
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_read_as_dockers_kvfile_reads_them() {
        let env: HashMap<String, String> = [("HOME".to_string(), "/root".to_string())].into();
        let text = b"\xEF\xBB\xBF# comment\nA=1\n  B= two words \r\nC=\"quoted\"\nHOME\nUNSET\nD=${A}x\n\nE=\n";
        let vars = parse(text, &env).unwrap();
        let pairs: Vec<(&str, &str)> = vars.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
        assert_eq!(
            pairs,
            [
                ("A", "1"),
                ("B", " two words "),
                ("C", "\"quoted\""),
                ("HOME", "/root"),
                ("D", "${A}x"),
                ("E", "")
            ]
        );
        assert_eq!(
            parse(b"bad name=1\n", &env).unwrap_err(),
            "variable 'bad name' contains whitespaces"
        );
        assert!(parse(b"=1\n", &env).is_err());
        assert!(parse(b"A=\xff\n", &env).unwrap_err().contains("line 1"));
    }
}
