//! `shoal service logs SERVICE|TASK`: the logs of a service's tasks, read
//! from every node that holds them, each line prefixed with its task as
//! Swarm prefixes it (`web.1.abcdef123456@node1    | ...`). stdout records
//! go to stdout, stderr records to stderr. A task whose logs cannot be read
//! (its node is down) is named on stderr and makes the exit status 1; the
//! others are printed all the same.

use std::collections::HashMap;
use std::io::Write;

use clap::Args;
use shoal_proto::control::v1::{LogTask, ServiceLogsRequest};
use shoal_proto::types::v1::log_record::Stream;
use shoal_proto::types::v1::{service_spec, LogOptions, LogRecord};

use super::{Error, Io};
use crate::client::Session;

#[derive(Debug, Args)]
pub struct LogsArgs {
    /// Follow log output (also of the tasks that start later)
    #[arg(short, long)]
    pub follow: bool,
    /// Number of lines to show from the end of the logs of each task ("all" or a number)
    #[arg(short = 'n', long, default_value = "all", value_parser = tail)]
    pub tail: i64,
    /// Show logs since timestamp (e.g. "2013-01-02T13:23:37Z") or relative (e.g. "42m" for 42 minutes)
    #[arg(long, value_parser = since)]
    pub since: Option<Since>,
    /// Show timestamps
    #[arg(short, long)]
    pub timestamps: bool,
    /// Do not include task IDs in output
    #[arg(long)]
    pub no_task_ids: bool,
    /// Do not truncate output
    #[arg(long)]
    pub no_trunc: bool,
    /// Do not map IDs to names in output
    #[arg(long)]
    pub no_resolve: bool,
    /// Do not neatly format logs (no task prefix)
    #[arg(long)]
    pub raw: bool,
    /// Show extra details provided to logs (shoal's drivers add none)
    #[arg(long)]
    pub details: bool,
    /// Service (name or id) or task (id)
    #[arg(value_name = "SERVICE|TASK")]
    pub target: String,
}

/// `--since`: a point in time, or a span back from now (read when the
/// command runs).
#[derive(Debug, Clone, Copy)]
pub enum Since {
    At(i64),
    Ago(std::time::Duration),
}

impl Since {
    fn unix_ns(self) -> i64 {
        match self {
            Since::At(ns) => ns,
            Since::Ago(span) => now_ns().saturating_sub(span.as_nanos() as i64),
        }
    }
}

fn now_ns() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos() as i64)
        .unwrap_or(0)
}

fn tail(input: &str) -> Result<i64, String> {
    if input == "all" {
        return Ok(-1);
    }
    input
        .parse::<i64>()
        .ok()
        .filter(|n| *n >= 0)
        .ok_or_else(|| format!("invalid --tail {input:?}: \"all\" or a number of lines"))
}

/// docker's forms: RFC 3339 (`2013-01-02T13:23:37Z`, a fraction, an
/// offset), a date or a date and time without zone (read as UTC), unix
/// seconds (`1356355200.5`), or a duration back from now (`42m`, `1h30m`).
fn since(input: &str) -> Result<Since, String> {
    let invalid = || {
        format!(
            "invalid --since {input:?}: a timestamp (2013-01-02T13:23:37Z), \
             unix seconds or a duration (42m)"
        )
    };
    if let Some(ns) = shoal_proto::rfc3339::parse(input) {
        return Ok(Since::At(ns));
    }
    if input.len() == 10 && input.as_bytes().get(4) == Some(&b'-') {
        return shoal_proto::rfc3339::parse(&format!("{input}T00:00:00Z"))
            .map(Since::At)
            .ok_or_else(invalid);
    }
    if input.contains('T') {
        return shoal_proto::rfc3339::parse(&format!("{input}Z"))
            .map(Since::At)
            .ok_or_else(invalid);
    }
    if let Some(ns) = unix_seconds(input) {
        return Ok(Since::At(ns));
    }
    super::parse::duration(input)
        .map(Since::Ago)
        .map_err(|_| invalid())
}

/// `1356355200` or `1356355200.000000001`.
fn unix_seconds(input: &str) -> Option<i64> {
    let (secs, fraction) = input.split_once('.').unwrap_or((input, ""));
    if secs.is_empty() || !secs.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    if !fraction.bytes().all(|b| b.is_ascii_digit()) || fraction.len() > 9 {
        return None;
    }
    let nanos: i64 = if fraction.is_empty() {
        0
    } else {
        format!("{fraction:0<9}").parse().ok()?
    };
    secs.parse::<i64>()
        .ok()?
        .checked_mul(1_000_000_000)?
        .checked_add(nanos)
}

pub async fn logs(session: &mut Session, args: LogsArgs, io: &mut Io<'_>) -> Result<(), Error> {
    let padding = slot_width(session, &args.target).await;
    let request = ServiceLogsRequest {
        target: args.target.clone(),
        options: Some(LogOptions {
            follow: args.follow,
            tail: args.tail,
            since_ns: args.since.map(Since::unix_ns).unwrap_or(0),
        }),
    };
    let mut stream = session.client.service_logs(request).await?.into_inner();
    let mut printer = Printer::new(&args, padding);
    let mut unreadable = 0usize;
    while let Some(message) = stream.message().await? {
        for task in message.tasks {
            printer.describe(task);
        }
        for record in &message.records {
            printer.record(record, io)?;
        }
        for notice in &message.notices {
            unreadable += 1;
            writeln!(
                io.err,
                "{}: {}",
                printer.context(&notice.task_id),
                notice.message
            )?;
        }
        io.out.flush()?;
    }
    match unreadable {
        0 => Ok(()),
        n => Err(Error::Input(format!(
            "the logs of {n} task{} could not be read",
            if n == 1 { "" } else { "s" }
        ))),
    }
}

/// docker pads each prefix to the width of the service's replica count.
async fn slot_width(session: &mut Session, target: &str) -> usize {
    let replicas = session
        .client
        .get_service(shoal_proto::control::v1::GetServiceRequest {
            id_or_name: target.to_string(),
        })
        .await
        .ok()
        .and_then(|r| r.into_inner().service)
        .and_then(|s| s.spec)
        .and_then(|spec| match spec.mode {
            Some(service_spec::Mode::Replicated(r)) => Some(r.replicas),
            _ => None,
        })
        .unwrap_or(1);
    replicas.max(1).to_string().len()
}

/// Writes records with their task's prefix.
struct Printer {
    no_task_ids: bool,
    no_trunc: bool,
    no_resolve: bool,
    raw: bool,
    timestamps: bool,
    padding: usize,
    tasks: HashMap<String, LogTask>,
    /// Prefixes made so far, by task.
    contexts: HashMap<String, String>,
    /// Tasks whose last record was a piece of a longer line: the next
    /// piece goes on without a prefix.
    partial: HashMap<String, bool>,
}

impl Printer {
    fn new(args: &LogsArgs, padding: usize) -> Printer {
        Printer {
            no_task_ids: args.no_task_ids,
            no_trunc: args.no_trunc,
            no_resolve: args.no_resolve,
            raw: args.raw,
            timestamps: args.timestamps,
            padding,
            tasks: HashMap::new(),
            contexts: HashMap::new(),
            partial: HashMap::new(),
        }
    }

    fn describe(&mut self, task: LogTask) {
        self.contexts.remove(&task.task_id);
        self.tasks.insert(task.task_id.clone(), task);
    }

    /// `web.1.abcdef123456@node1` (docker's `service.slot.task@node`; a
    /// global task has its node id for a slot).
    fn context(&mut self, task_id: &str) -> String {
        if let Some(context) = self.contexts.get(task_id) {
            return context.clone();
        }
        let id = |id: &str| -> String {
            if self.no_trunc {
                id.to_string()
            } else {
                crate::output::short_id(id).to_string()
            }
        };
        let context = match self.tasks.get(task_id) {
            None => id(task_id),
            Some(task) => {
                let service = if self.no_resolve {
                    task.service_id.clone()
                } else {
                    task.service_name.clone()
                };
                let (slot, slot_len) = if task.slot > 0 {
                    (task.slot.to_string(), task.slot.to_string().len())
                } else {
                    (task.node_id.clone(), self.padding)
                };
                let mut name = format!("{service}.{slot}");
                if !self.no_task_ids {
                    name.push('.');
                    name.push_str(&id(task_id));
                }
                let node = if self.no_resolve || task.node_hostname.is_empty() {
                    task.node_id.clone()
                } else {
                    task.node_hostname.clone()
                };
                let pad = " ".repeat(self.padding.saturating_sub(slot_len));
                format!("{name}@{node}{pad}")
            }
        };
        self.contexts.insert(task_id.to_string(), context.clone());
        context
    }

    fn record(&mut self, record: &LogRecord, io: &mut Io<'_>) -> Result<(), Error> {
        let continues = self.partial.get(&record.task_id).copied().unwrap_or(false);
        let mut line = Vec::with_capacity(record.data.len() + 64);
        if !continues {
            if self.timestamps {
                line.extend_from_slice(
                    shoal_proto::rfc3339::format_fixed(record.time_ns).as_bytes(),
                );
                line.push(b' ');
            }
            if !self.raw {
                line.extend_from_slice(self.context(&record.task_id).as_bytes());
                line.extend_from_slice(b"    | ");
            }
        }
        line.extend_from_slice(&record.data);
        self.partial
            .insert(record.task_id.clone(), !record.data.ends_with(b"\n"));
        let out: &mut dyn Write = if record.stream() == Stream::Stderr {
            &mut *io.err
        } else {
            &mut *io.out
        };
        out.write_all(&line)?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn printer(args: &[&str]) -> Printer {
        use clap::Parser;
        #[derive(Parser)]
        struct Cli {
            #[command(flatten)]
            logs: LogsArgs,
        }
        let mut argv = vec!["logs"];
        argv.extend_from_slice(args);
        argv.push("web");
        let cli = Cli::try_parse_from(argv).expect("flags parse");
        let mut printer = Printer::new(&cli.logs, 2);
        printer.describe(LogTask {
            task_id: "abcdefghijklmnopqrstuvwxy".into(),
            service_id: "svc0123456789".into(),
            service_name: "web".into(),
            slot: 3,
            node_id: "node0123456789".into(),
            node_hostname: "n1".into(),
        });
        printer
    }

    fn printed(printer: &mut Printer, records: &[(&str, Stream, i64)]) -> (String, String) {
        let (mut out, mut err) = (Vec::new(), Vec::new());
        let mut io = Io {
            out: &mut out,
            err: &mut err,
        };
        for (data, stream, time_ns) in records {
            let record = LogRecord {
                task_id: "abcdefghijklmnopqrstuvwxy".into(),
                time_ns: *time_ns,
                stream: *stream as i32,
                data: data.as_bytes().to_vec(),
            };
            printer.record(&record, &mut io).unwrap();
        }
        (
            String::from_utf8(out).unwrap(),
            String::from_utf8(err).unwrap(),
        )
    }

    #[test]
    fn lines_carry_swarms_task_prefix_on_their_own_stream() {
        let mut p = printer(&[]);
        let (out, err) = printed(
            &mut p,
            &[
                ("hello\n", Stream::Stdout, 1),
                ("oops\n", Stream::Stderr, 2),
            ],
        );
        assert_eq!(out, "web.3.abcdefghijkl@n1     | hello\n");
        assert_eq!(err, "web.3.abcdefghijkl@n1     | oops\n");
    }

    #[test]
    fn flags_shape_the_prefix_as_docker_does() {
        let mut p = printer(&["--no-task-ids", "-t"]);
        let (out, _) = printed(
            &mut p,
            &[("x\n", Stream::Stdout, 1_356_355_200_500_000_000)],
        );
        assert_eq!(out, "2012-12-24T13:20:00.500000000Z web.3@n1     | x\n");
        let mut p = printer(&["--no-trunc", "--no-resolve"]);
        let (out, _) = printed(&mut p, &[("x\n", Stream::Stdout, 1)]);
        assert_eq!(
            out,
            "svc0123456789.3.abcdefghijklmnopqrstuvwxy@node0123456789     | x\n"
        );
        let mut p = printer(&["--raw"]);
        let (out, _) = printed(&mut p, &[("x\n", Stream::Stdout, 1)]);
        assert_eq!(out, "x\n");
    }

    #[test]
    fn the_pieces_of_a_long_line_get_one_prefix() {
        let mut p = printer(&[]);
        let (out, _) = printed(
            &mut p,
            &[
                ("aaa", Stream::Stdout, 1),
                ("bbb\n", Stream::Stdout, 2),
                ("c\n", Stream::Stdout, 3),
            ],
        );
        assert_eq!(
            out,
            "web.3.abcdefghijkl@n1     | aaabbb\nweb.3.abcdefghijkl@n1     | c\n"
        );
    }

    #[test]
    fn since_and_tail_take_dockers_forms() {
        let at = |s: &str| match since(s) {
            Ok(Since::At(ns)) => ns,
            other => panic!("{s}: {other:?}"),
        };
        assert_eq!(at("2013-01-02T13:23:37Z"), 1_357_133_017_000_000_000);
        assert_eq!(at("2013-01-02T13:23:37"), 1_357_133_017_000_000_000);
        assert_eq!(at("2013-01-02T14:23:37+01:00"), 1_357_133_017_000_000_000);
        assert_eq!(at("2013-01-02"), 1_357_084_800_000_000_000);
        assert_eq!(at("1357133017.5"), 1_357_133_017_500_000_000);
        assert!(matches!(since("42m"), Ok(Since::Ago(d)) if d.as_secs() == 2520));
        assert!(since("yesterday").unwrap_err().contains("invalid --since"));
        assert_eq!(tail("all"), Ok(-1));
        assert_eq!(tail("5"), Ok(5));
        assert!(tail("-2").is_err());
    }
}
