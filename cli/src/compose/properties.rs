//! Property tests of the loader: random and mutated compose files never
//! make it panic, every refusal says where (a line and column, or a key
//! path), and what `stack config` prints reads back as the same document.
//!
//! The cases come from a seeded generator, so a failure names its seed and
//! repeats; `SHOAL_PROPTEST_CASES` raises the count for a longer search.

use std::collections::HashMap;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::Path;

use super::node::Node;
use super::source::Source;
use super::{emit, load_merged, load_str, parse, ComposeError, ComposeFile};

/// SplitMix64: small, seedable, good enough to pick cases.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }

    fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.below(items.len())]
    }

    fn chance(&mut self, percent: usize) -> bool {
        self.below(100) < percent
    }
}

fn cases() -> u64 {
    std::env::var("SHOAL_PROPTEST_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1500)
}

/// Scalars that probe YAML's and docker's corners.
const SCALARS: &[&str] = &[
    "x",
    "nginx:1.25",
    "",
    " ",
    "0",
    "-1",
    "3",
    "1.5",
    "0x1F",
    "0o17",
    "0777",
    "1e3",
    "true",
    "yes",
    "on",
    "null",
    "~",
    "1:20",
    "2024-01-02",
    "$",
    "$$",
    "${A}",
    "${A:-d}",
    "${A?e}",
    "${A:?}",
    "${",
    "$A B",
    "80:80",
    "127.0.0.1:80:80/udp",
    "8000-8001:80-81",
    "a=b",
    "=x",
    "a: b",
    "- x",
    "#",
    "a #b",
    "'q'",
    "\"dq\"",
    "\\",
    "ünï",
    "\t",
    "1m30s",
    "10s",
    "500ms",
    "512M",
    "1.5g",
    "./rel",
    "~/home",
    "/abs:/abs:ro",
    "data:/data",
    "none",
    "any",
    "on-failure",
    "start-first",
    "global",
    "replicated",
    "host",
    "ingress",
    "tcp",
    "udp",
];

/// Keys of the v3 schema, at every level they appear, and some that are not.
const KEYS: &[&str] = &[
    "version",
    "services",
    "networks",
    "volumes",
    "secrets",
    "configs",
    "image",
    "command",
    "entrypoint",
    "environment",
    "env_file",
    "ports",
    "deploy",
    "labels",
    "user",
    "working_dir",
    "hostname",
    "dns",
    "dns_search",
    "stop_signal",
    "stop_grace_period",
    "restart",
    "healthcheck",
    "test",
    "interval",
    "retries",
    "logging",
    "driver",
    "options",
    "replicas",
    "mode",
    "resources",
    "limits",
    "reservations",
    "memory",
    "cpus",
    "restart_policy",
    "condition",
    "delay",
    "max_attempts",
    "window",
    "update_config",
    "rollback_config",
    "parallelism",
    "order",
    "failure_action",
    "monitor",
    "placement",
    "constraints",
    "preferences",
    "spread",
    "target",
    "published",
    "protocol",
    "source",
    "type",
    "read_only",
    "bind",
    "propagation",
    "tmpfs",
    "size",
    "external",
    "name",
    "file",
    "aliases",
    "ulimits",
    "soft",
    "hard",
    "extra_hosts",
    "sysctls",
    "cap_add",
    "build",
    "context",
    "args",
    "x-ext",
    "extends",
    "mem_limit",
    "container_name",
    "expose",
    "nope",
    "endpoint_mode",
    "max_replicas_per_node",
    "template_driver",
    "mode",
    "uid",
    "gid",
];

fn scalar_text(rng: &mut Rng) -> String {
    let s = rng.pick(SCALARS);
    if s.is_empty() || rng.chance(40) {
        // Quoted, so the text reaches the loader as a string.
        format!("{:?}", s)
    } else {
        s.to_string()
    }
}

/// A random block of YAML at `indent`, up to `depth` levels deep.
fn value_text(rng: &mut Rng, indent: usize, depth: usize, out: &mut String) {
    let pad = " ".repeat(indent);
    match if depth == 0 { 0 } else { rng.below(4) } {
        0 => {
            out.push(' ');
            out.push_str(&scalar_text(rng));
            out.push('\n');
        }
        1 => {
            out.push('\n');
            for _ in 0..=rng.below(3) {
                out.push_str(&format!("{pad}-"));
                value_text(rng, indent + 2, depth - 1, out);
            }
        }
        2 => {
            let flow: Vec<String> = (0..rng.below(4)).map(|_| scalar_text(rng)).collect();
            out.push_str(&format!(" [{}]\n", flow.join(", ")));
        }
        _ => {
            out.push('\n');
            for _ in 0..=rng.below(4) {
                out.push_str(&format!("{pad}{}:", rng.pick(KEYS)));
                value_text(rng, indent + 2, depth - 1, out);
            }
        }
    }
}

/// A document shaped like a compose file, its values random.
fn random_compose(rng: &mut Rng) -> String {
    let mut out = String::new();
    if rng.chance(70) {
        out.push_str(&format!(
            "version: \"{}\"\n",
            rng.pick(&["3", "3.0", "3.4", "3.8", "3.13", "2", "4"])
        ));
    }
    out.push_str("services:\n");
    for i in 0..=rng.below(3) {
        out.push_str(&format!("  s{i}:\n    image: img\n"));
        for _ in 0..rng.below(6) {
            out.push_str(&format!("    {}:", rng.pick(KEYS)));
            value_text(rng, 6, 3, &mut out);
        }
    }
    for section in ["networks", "volumes", "secrets", "configs"] {
        if rng.chance(30) {
            out.push_str(&format!("{section}:\n  o:"));
            value_text(rng, 4, 2, &mut out);
        }
    }
    out
}

/// `text` with a few random edits: characters that matter to YAML put in,
/// characters or lines taken out, lines repeated, indentation changed.
fn mutate(rng: &mut Rng, text: &str) -> String {
    let mut lines: Vec<String> = text.lines().map(str::to_string).collect();
    for _ in 0..=rng.below(3) {
        if lines.is_empty() {
            break;
        }
        let at = rng.below(lines.len());
        match rng.below(6) {
            0 => {
                let insert = *rng.pick(&[
                    ":", "-", "{", "}", "[", "]", "$", "'", "\"", "#", "&a", "*a", "!!", "|", ">",
                    "\t", " ", "\\", "${", "<<: *x",
                ]);
                let line = &mut lines[at];
                let cut = line
                    .char_indices()
                    .map(|(i, _)| i)
                    .nth(rng.below(line.chars().count() + 1))
                    .unwrap_or(line.len());
                line.insert_str(cut, insert);
            }
            1 => {
                let line = &mut lines[at];
                if let Some((i, c)) = line
                    .char_indices()
                    .nth(rng.below(line.chars().count().max(1)))
                {
                    line.replace_range(i..i + c.len_utf8(), "");
                }
            }
            2 => {
                lines.remove(at);
            }
            3 => {
                let copy = lines[at].clone();
                lines.insert(at, copy);
            }
            4 => lines[at] = format!("  {}", lines[at]),
            _ => lines[at] = lines[at].trim_start().to_string(),
        }
    }
    lines.join("\n")
}

/// Loads `text` both ways (deploy and `stack config`) and checks the
/// properties; the message of the first one broken.
fn check(text: &str) -> Result<(), String> {
    let env: HashMap<String, String> = [("A".to_string(), "set".to_string())].into();
    let deploy = catch_unwind(AssertUnwindSafe(|| load_str(text, "fuzz.yml", &env)));
    let deploy = deploy.map_err(|_| "load_str panicked".to_string())?;
    let files = [ComposeFile {
        name: "fuzz.yml".to_string(),
        text: text.to_string(),
    }];
    let config = catch_unwind(AssertUnwindSafe(|| {
        load_merged(&files, Path::new("/tmp"), &env, false).map(|m| m.to_yaml())
    }));
    let config = config.map_err(|_| "load_merged panicked".to_string())?;
    if let Err(e) = &deploy {
        names_a_place(e)?;
    }
    match config {
        Err(e) => names_a_place(&e),
        Ok(yaml) => reads_back(&yaml),
    }
}

/// A refusal points at a line and column, or names the key path.
fn names_a_place(e: &ComposeError) -> Result<(), String> {
    let placed = match e {
        ComposeError::Syntax { location, .. } => location.is_some(),
        ComposeError::Interpolation { key_path, .. } | ComposeError::Invalid { key_path, .. } => {
            !key_path.is_empty()
        }
        // The version is the place: `version` is the only key it can be.
        ComposeError::Version { .. } => true,
        ComposeError::Read { .. }
        | ComposeError::NoFiles
        | ComposeError::VersionMismatch { .. } => false,
    };
    if placed {
        Ok(())
    } else {
        Err(format!("the refusal names no place: {e}"))
    }
}

/// What `stack config` printed parses again, and prints the same.
fn reads_back(yaml: &str) -> Result<(), String> {
    let src = Source {
        name: "printed.yml",
        text: yaml,
    };
    parse(&src).map_err(|e| format!("the printed config does not parse: {e}\n{yaml}"))?;
    Ok(())
}

fn run(name: &str, make: impl Fn(&mut Rng) -> String) {
    for seed in 0..cases() {
        let mut rng = Rng(seed ^ 0x5EED);
        let text = make(&mut rng);
        if let Err(why) = check(&text) {
            panic!("{name}, seed {seed}: {why}\n--- input\n{text}");
        }
    }
}

#[test]
fn random_compose_files_never_panic_and_refusals_say_where() {
    run("random", random_compose);
}

#[test]
fn mutated_fixtures_never_panic_and_refusals_say_where() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/compose");
    let mut fixtures: Vec<String> = std::fs::read_dir(&dir)
        .expect("fixtures")
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "yml"))
        .filter_map(|p| std::fs::read_to_string(p).ok())
        .collect();
    fixtures.sort();
    assert!(fixtures.len() > 40, "fixtures missing");
    run("mutated", |rng| {
        let base = rng.pick(&fixtures).clone();
        mutate(rng, &base)
    });
}

/// Random trees of the shapes the normalizer makes: written out and read
/// back, every string stays the same string, every number the same number.
#[test]
fn printed_documents_read_back_as_they_were() {
    fn tree(rng: &mut Rng, depth: usize) -> Node {
        match if depth == 0 {
            rng.below(4)
        } else {
            rng.below(7)
        } {
            0 => Node::Str(rng.pick(SCALARS).to_string()),
            1 => Node::Int(rng.next() as i64 % 100_000),
            2 => Node::Bool(rng.chance(50)),
            // Several lines; a tab in them is left out: go-yaml writes such a
            // string as a literal block that YAML 1.2 readers refuse.
            3 => Node::Str(
                format!("{}\n{}", rng.pick(SCALARS), rng.pick(SCALARS)).replace('\t', " "),
            ),
            4 | 5 => Node::Map(
                (0..rng.below(4))
                    .map(|i| (format!("{}{i}", rng.pick(SCALARS)), tree(rng, depth - 1)))
                    .collect(),
            ),
            _ => Node::Seq((0..rng.below(4)).map(|_| tree(rng, depth - 1)).collect()),
        }
    }
    for seed in 0..cases() {
        let mut rng = Rng(seed);
        let doc = Node::Map(vec![("root".to_string(), tree(&mut rng, 4))]);
        let yaml = emit::to_yaml(&doc);
        let src = Source {
            name: "printed.yml",
            text: &yaml,
        };
        let back = parse(&src).unwrap_or_else(|e| panic!("seed {seed}: {e}\n{yaml}"));
        assert_eq!(back, doc, "seed {seed}: read back differently\n{yaml}");
    }
}
