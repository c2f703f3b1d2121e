//! How the CLI shows things: docker-style aligned tables, JSON for scripts,
//! and the human spellings of ids, times and ages.

use std::io::Write;
use std::time::Duration;

use serde_json::Value;

/// `--format`: a table for people or JSON for scripts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum Format {
    #[default]
    Table,
    Json,
}

/// A list command's result: the same records as table rows and as JSON objects.
#[derive(Debug, Default)]
pub struct Listing {
    pub headers: Vec<&'static str>,
    pub rows: Vec<Vec<String>>,
    pub json: Vec<Value>,
}

impl Listing {
    pub fn new(headers: &[&'static str]) -> Self {
        Listing {
            headers: headers.to_vec(),
            ..Default::default()
        }
    }

    pub fn push(&mut self, row: Vec<String>, json: Value) {
        self.rows.push(row);
        self.json.push(json);
    }

    pub fn write(&self, format: Format, out: &mut dyn Write) -> std::io::Result<()> {
        match format {
            Format::Table => {
                let headers = self.headers.iter().map(|h| h.to_string()).collect();
                out.write_all(table(headers, &self.rows).as_bytes())
            }
            Format::Json => write_json(&Value::Array(self.json.clone()), out),
        }
    }
}

/// Columns as docker's tabwriter lays them out (minimum width 10, padding 3);
/// the last column is not padded, and no line has trailing spaces.
pub fn table(headers: Vec<String>, rows: &[Vec<String>]) -> String {
    const MIN_WIDTH: usize = 10;
    const PADDING: usize = 3;
    let lines: Vec<&Vec<String>> = std::iter::once(&headers).chain(rows.iter()).collect();
    let columns = lines.iter().map(|l| l.len()).max().unwrap_or(0);
    let widths: Vec<usize> = (0..columns)
        .map(|c| {
            let widest = lines
                .iter()
                .filter_map(|l| l.get(c))
                .map(|cell| cell.chars().count())
                .max()
                .unwrap_or(0);
            (widest + PADDING).max(MIN_WIDTH)
        })
        .collect();
    let mut text = String::new();
    for line in lines {
        let mut rendered = String::new();
        for (c, cell) in line.iter().enumerate() {
            rendered.push_str(cell);
            if c + 1 < line.len() {
                let pad = widths[c].saturating_sub(cell.chars().count());
                rendered.extend(std::iter::repeat_n(' ', pad));
            }
        }
        text.push_str(rendered.trim_end());
        text.push('\n');
    }
    text
}

pub fn write_json(value: &Value, out: &mut dyn Write) -> std::io::Result<()> {
    serde_json::to_writer_pretty(&mut *out, value)?;
    out.write_all(b"\n")
}

/// Ids as tables show them (docker: 12 characters).
pub fn short_id(id: &str) -> &str {
    match id.char_indices().nth(12) {
        Some((end, _)) => &id[..end],
        None => id,
    }
}

/// `text` cut to `max` characters, ending in `…` when cut (docker's `ellipsis`).
pub fn ellipsis(text: &str, max: usize) -> String {
    if text.chars().count() <= max {
        return text.to_string();
    }
    let mut cut: String = text.chars().take(max.saturating_sub(1)).collect();
    cut.push('…');
    cut
}

/// First letter upper-case: `running` → `Running`.
pub fn capitalize(word: &str) -> String {
    let mut chars = word.chars();
    match chars.next() {
        Some(first) => first.to_uppercase().chain(chars).collect(),
        None => String::new(),
    }
}

/// docker's `units.HumanDuration`: `Less than a second`, `5 seconds`, `About a minute`, ...
pub fn human_duration(d: Duration) -> String {
    let seconds = d.as_secs();
    let minutes = seconds / 60;
    let hours = minutes / 60;
    if seconds < 1 {
        "Less than a second".into()
    } else if seconds == 1 {
        "1 second".into()
    } else if seconds < 60 {
        format!("{seconds} seconds")
    } else if minutes == 1 {
        "About a minute".into()
    } else if minutes < 60 {
        format!("{minutes} minutes")
    } else if hours == 1 {
        "About an hour".into()
    } else if hours < 48 {
        format!("{hours} hours")
    } else if hours < 24 * 7 * 2 {
        format!("{} days", hours / 24)
    } else if hours < 24 * 30 * 2 {
        format!("{} weeks", hours / 24 / 7)
    } else if hours < 24 * 365 * 2 {
        format!("{} months", hours / 24 / 30)
    } else {
        format!("{} years", hours / 24 / 365)
    }
}

/// `Running 5 seconds ago`: a state and how long since it was entered.
pub fn state_since(state: &str, since_ms: i64, now_ms: i64) -> String {
    let age = Duration::from_millis(now_ms.saturating_sub(since_ms).max(0) as u64);
    format!(
        "{} {} ago",
        capitalize(state),
        human_duration(age).to_lowercase()
    )
}

pub fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

/// RFC 3339 UTC with milliseconds, from unix milliseconds (`1970-01-01T00:00:00.000Z`).
pub fn rfc3339(ms: i64) -> String {
    let secs = ms.div_euclid(1000);
    let millis = ms.rem_euclid(1000);
    let days = secs.div_euclid(86_400);
    let of_day = secs.rem_euclid(86_400);
    let (y, m, d) = civil_from_days(days);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}.{millis:03}Z",
        of_day / 3600,
        of_day % 3600 / 60,
        of_day % 60
    )
}

/// Proleptic Gregorian date of a day count since 1970-01-01 (H. Hinnant's algorithm).
fn civil_from_days(days: i64) -> (i64, i64, i64) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    (y, m, d)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(v: &[&str]) -> Vec<String> {
        v.iter().map(|x| x.to_string()).collect()
    }

    #[test]
    fn table_aligns_columns_like_docker_tabwriter() {
        let text = table(
            s(&["ID", "NAME", "REPLICAS"]),
            &[s(&["abc", "web_frontend", "3/3"]), s(&["de", "db", ""])],
        );
        assert_eq!(
            text,
            "ID        NAME           REPLICAS\n\
             abc       web_frontend   3/3\n\
             de        db\n"
        );
    }

    #[test]
    fn table_of_no_rows_is_just_the_header() {
        assert_eq!(table(s(&["NAME", "SERVICES"]), &[]), "NAME      SERVICES\n");
    }

    #[test]
    fn listing_json_is_an_array_of_the_records() {
        let mut listing = Listing::new(&["NAME"]);
        listing.push(s(&["web"]), serde_json::json!({"Name": "web"}));
        let mut out = Vec::new();
        listing.write(Format::Json, &mut out).expect("write");
        let parsed: Value = serde_json::from_slice(&out).expect("json");
        assert_eq!(parsed, serde_json::json!([{"Name": "web"}]));
    }

    #[test]
    fn ages_read_like_docker() {
        assert_eq!(
            human_duration(Duration::from_millis(300)),
            "Less than a second"
        );
        assert_eq!(human_duration(Duration::from_secs(5)), "5 seconds");
        assert_eq!(human_duration(Duration::from_secs(90)), "About a minute");
        assert_eq!(human_duration(Duration::from_secs(600)), "10 minutes");
        assert_eq!(human_duration(Duration::from_secs(3 * 3600)), "3 hours");
        assert_eq!(human_duration(Duration::from_secs(3 * 86_400)), "3 days");
        assert_eq!(
            state_since("running", 1_000, 6_000),
            "Running 5 seconds ago"
        );
    }

    #[test]
    fn times_render_as_rfc3339_utc() {
        assert_eq!(rfc3339(0), "1970-01-01T00:00:00.000Z");
        assert_eq!(rfc3339(1_709_210_096_789), "2024-02-29T12:34:56.789Z");
    }

    #[test]
    fn ids_and_errors_are_cut_for_tables() {
        assert_eq!(short_id("abcdefghijklmnopqrstuvwxy"), "abcdefghijkl");
        assert_eq!(short_id("abc"), "abc");
        assert_eq!(ellipsis("no such image: busybox:1", 10), "no such i…");
        assert_eq!(ellipsis("short", 10), "short");
    }
}
