//! The README's table "Docker flags shoal does not have" is true both ways:
//! every row names a flag docker's command has and shoal's lacks (or a
//! command shoal lacks), and every flag of docker's `swarm`, `node`,
//! `service`, `stack`, `secret`, `config`, `network`, `volume` and `context`
//! commands that shoal lacks has a row. Read off `--help` of both CLIs;
//! docker's client is required (no daemon needed).

use std::collections::BTreeSet;
use std::path::Path;
use std::process::Command;

const GROUPS: [&str; 9] = [
    "swarm", "node", "service", "stack", "secret", "config", "network", "volume", "context",
];
const SECTION: &str = "## Docker flags shoal does not have";
/// The flag cell of a command shoal does not have at all.
const WHOLE_COMMAND: &str = "(command)";

fn require_docker() {
    match Command::new("docker").arg("--version").output() {
        Ok(out) if out.status.success() => {}
        other => panic!(
            "this test needs the `docker` CLI on PATH, whose --help is the reference for the \
             README's table (no daemon needed): install Docker's CLI, e.g. the docker-ce-cli \
             package; got {other:?}"
        ),
    }
}

/// `--help` of `program args`, and whether the command exists.
fn help(program: &str, args: &[&str]) -> (String, bool) {
    let out = Command::new(program)
        .args(args)
        .arg("--help")
        .env("COLUMNS", "200")
        .output()
        .unwrap_or_else(|e| panic!("run {program} {}: {e}", args.join(" ")));
    let text =
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    (text, out.status.success())
}

/// The long flags a `--help` lists: lines `  -f, --format ...` or
/// `      --format ...` (docker's and clap's layout alike; wrapped help
/// text is indented further).
fn flags(help: &str) -> BTreeSet<String> {
    help.lines()
        .filter_map(|line| {
            let rest = line.strip_prefix("      --").or_else(|| {
                let short = line.strip_prefix("  -")?;
                let mut chars = short.chars();
                chars.next().filter(|c| c.is_ascii_alphanumeric())?;
                chars.as_str().strip_prefix(", --")
            })?;
            let name: String = rest
                .chars()
                .take_while(|c| c.is_ascii_alphanumeric() || *c == '-')
                .collect();
            (!name.is_empty() && name != "help").then_some(name)
        })
        .collect()
}

/// docker's subcommands of `group` (its `Commands:` section).
fn docker_commands(group: &str) -> Vec<String> {
    let (text, _) = help("docker", &[group]);
    let mut in_section = false;
    let mut commands = Vec::new();
    for line in text.lines() {
        if line.ends_with("Commands:") {
            in_section = true;
            continue;
        }
        if in_section && !line.starts_with(' ') {
            in_section = false;
        }
        if in_section {
            if let Some(word) = line.split_whitespace().next() {
                commands.push(word.trim_end_matches('*').to_string());
            }
        }
    }
    assert!(
        !commands.is_empty(),
        "no commands in `docker {group} --help`:\n{text}"
    );
    commands
}

/// The table's rows: (command, flag without `--` or [`WHOLE_COMMAND`], why).
fn table() -> Vec<(String, String, String)> {
    let readme = Path::new(env!("CARGO_MANIFEST_DIR")).join("../README.md");
    let text = std::fs::read_to_string(&readme).expect("read README.md");
    let section = text
        .split_once(SECTION)
        .unwrap_or_else(|| panic!("README.md has no {SECTION:?} section"))
        .1;
    let section = section.split("\n## ").next().unwrap_or_default();
    let unquote = |cell: &str| cell.trim().trim_matches('`').to_string();
    let rows: Vec<_> = section
        .lines()
        .filter(|l| l.starts_with("| `"))
        .map(|line| {
            let cells: Vec<&str> = line.trim_matches('|').split('|').collect();
            assert_eq!(cells.len(), 3, "a row is command | flag | why: {line}");
            let flag = unquote(cells[1]);
            let flag = flag.strip_prefix("--").unwrap_or(&flag).to_string();
            let why = cells[2].trim().to_string();
            assert!(!why.is_empty(), "a row without its why: {line}");
            (unquote(cells[0]), flag, why)
        })
        .collect();
    assert!(!rows.is_empty(), "the table has no rows");
    rows
}

#[test]
fn the_readme_lists_exactly_the_docker_flags_shoal_lacks() {
    require_docker();
    let shoal = env!("CARGO_BIN_EXE_shoal");
    let rows = table();
    let keys: Vec<(String, String)> = rows
        .iter()
        .map(|(c, f, _)| (c.clone(), f.clone()))
        .collect();
    let mut sorted = keys.clone();
    sorted.sort();
    sorted.dedup();
    assert_eq!(
        keys, sorted,
        "one table, sorted by command then flag, no row twice"
    );

    // What docker has and shoal lacks, command by command.
    let mut lacking = BTreeSet::new();
    for group in GROUPS {
        for command in docker_commands(group) {
            let args = [group, command.as_str()];
            let (docker_help, docker_has) = help("docker", &args);
            assert!(
                docker_has,
                "docker {group} {command} --help failed:\n{docker_help}"
            );
            let name = format!("{group} {command}");
            let (shoal_help, shoal_has) = help(shoal, &args);
            if !shoal_has {
                lacking.insert((name, WHOLE_COMMAND.to_string()));
                continue;
            }
            let ours = flags(&shoal_help);
            for flag in flags(&docker_help).difference(&ours) {
                lacking.insert((name.clone(), flag.clone()));
            }
        }
    }
    let listed: BTreeSet<(String, String)> = keys.into_iter().collect();
    let unlisted: Vec<_> = lacking.difference(&listed).collect();
    let wrong: Vec<_> = listed.difference(&lacking).collect();
    assert!(
        unlisted.is_empty() && wrong.is_empty(),
        "README's table is out of date.\n  docker has these, shoal lacks them, no row says so: \
         {unlisted:?}\n  rows for what shoal has (or docker lacks): {wrong:?}"
    );
}

#[test]
fn each_row_is_checked_against_shoal_itself() {
    // The other test compares with docker; this one keeps the rows honest
    // about shoal alone, with docker or without.
    let shoal = env!("CARGO_BIN_EXE_shoal");
    for (command, flag, _) in table() {
        let args: Vec<&str> = command.split(' ').collect();
        assert_eq!(
            args.len(),
            2,
            "a row's command is `GROUP COMMAND`: {command}"
        );
        let (text, exists) = help(shoal, &args);
        if flag == WHOLE_COMMAND {
            assert!(
                !exists,
                "shoal has `{command}`, which the table says it lacks"
            );
        } else {
            assert!(exists, "shoal has no `{command}`: its row says (command)");
            assert!(
                !flags(&text).contains(&flag),
                "shoal {command} has --{flag}, which the table says it lacks"
            );
        }
    }
}

#[test]
fn flags_are_read_off_both_help_layouts() {
    let docker = "Options:\n  -f, --format string   Format\n      --quiet   Only IDs\n\
                  \x20                       --not-a-flag in wrapped text\n";
    let clap = "Options:\n  -q, --quiet          Only\n      --label-add <LIST>  Add\n  -h, --help  Print\n";
    assert_eq!(
        flags(docker).into_iter().collect::<Vec<_>>(),
        ["format", "quiet"]
    );
    assert_eq!(
        flags(clap).into_iter().collect::<Vec<_>>(),
        ["label-add", "quiet"]
    );
}
