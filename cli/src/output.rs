//! How the CLI shows things: docker's `--format` (tables, JSON lines, Go
//! templates; [`format`]), its `--filter` (`filter`), and the human spellings
//! of ids, times and ages.

pub mod filter;
pub mod format;
mod tabwriter;

use std::cmp::Ordering;
use std::collections::HashMap;
use std::time::Duration;

/// Ids as tables show them (docker: 12 characters).
pub fn short_id(id: &str) -> &str {
    match id.char_indices().nth(12) {
        Some((end, _)) => &id[..end],
        None => id,
    }
}

/// An image as docker's lists show it (`reference.FamiliarString` of a
/// tagged reference): the tag kept, a digest and `docker.io/library/`
/// dropped; a reference without a tag is shown as it is.
pub fn image_shown(image: &str) -> &str {
    let name_tag = image.split('@').next().unwrap_or(image);
    let last = name_tag.rsplit('/').next().unwrap_or(name_tag);
    if !last.contains(':') {
        return image;
    }
    name_tag
        .strip_prefix("docker.io/library/")
        .or_else(|| name_tag.strip_prefix("docker.io/"))
        .unwrap_or(name_tag)
}

/// Labels as docker's list rows show them (`.Labels`): `KEY=VALUE` sorted,
/// joined by commas.
pub fn labels_joined(labels: &HashMap<String, String>) -> String {
    let mut pairs: Vec<String> = labels.iter().map(|(k, v)| format!("{k}={v}")).collect();
    pairs.sort();
    pairs.join(",")
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

/// Go's `time.Time.String()` of a UTC time, from unix milliseconds
/// (`2024-02-29 12:34:56.789 +0000 UTC`): what docker prints for a
/// network's `.CreatedAt`.
pub fn go_time(ms: i64) -> String {
    let secs = ms.div_euclid(1000);
    let millis = ms.rem_euclid(1000);
    let (y, m, d) = civil_from_days(secs.div_euclid(86_400));
    let of_day = secs.rem_euclid(86_400);
    // Go prints the fraction without its trailing zeros, and none when zero.
    let fraction = if millis == 0 {
        String::new()
    } else {
        format!(".{millis:03}").trim_end_matches('0').to_string()
    };
    format!(
        "{y:04}-{m:02}-{d:02} {:02}:{:02}:{:02}{fraction} +0000 UTC",
        of_day / 3600,
        of_day % 3600 / 60,
        of_day % 60
    )
}

/// docker's list order (`sortorder.NaturalLess`): runs of digits compare as
/// numbers, so `web2` comes before `web10`.
pub fn natural_cmp(a: &str, b: &str) -> Ordering {
    let (a, b) = (a.as_bytes(), b.as_bytes());
    let (mut i, mut j) = (0, 0);
    while i < a.len() && j < b.len() {
        let (da, db) = (a[i].is_ascii_digit(), b[j].is_ascii_digit());
        if da != db {
            // Digits before other characters.
            return if da {
                Ordering::Less
            } else {
                Ordering::Greater
            };
        }
        if !da {
            match a[i].cmp(&b[j]) {
                Ordering::Equal => {
                    i += 1;
                    j += 1;
                    continue;
                }
                other => return other,
            }
        }
        while i < a.len() && a[i] == b'0' {
            i += 1;
        }
        while j < b.len() && b[j] == b'0' {
            j += 1;
        }
        let (start_a, start_b) = (i, j);
        while i < a.len() && a[i].is_ascii_digit() {
            i += 1;
        }
        while j < b.len() && b[j].is_ascii_digit() {
            j += 1;
        }
        let (num_a, num_b) = (&a[start_a..i], &b[start_b..j]);
        let by_number = num_a.len().cmp(&num_b.len()).then(num_a.cmp(num_b));
        // Equal numbers: the one with fewer leading zeros first.
        let by_zeros = start_a.cmp(&start_b);
        match by_number.then(by_zeros) {
            Ordering::Equal => {}
            other => return other,
        }
    }
    // Equal so far and one has ended: the shorter first.
    a.len().cmp(&b.len())
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
    fn go_time_strings_are_gos() {
        assert_eq!(
            go_time(1_709_210_096_789),
            "2024-02-29 12:34:56.789 +0000 UTC"
        );
        assert_eq!(
            go_time(1_709_210_096_500),
            "2024-02-29 12:34:56.5 +0000 UTC"
        );
        assert_eq!(go_time(0), "1970-01-01 00:00:00 +0000 UTC");
    }

    #[test]
    fn names_sort_naturally_as_docker_sorts_them() {
        let mut names = vec!["web10", "web2", "api", "web1", "web02", "web", "2db"];
        names.sort_by(|a, b| natural_cmp(a, b));
        assert_eq!(
            names,
            ["2db", "api", "web", "web1", "web2", "web02", "web10"]
        );
        assert_eq!(natural_cmp("a", "a"), Ordering::Equal);
    }

    #[test]
    fn ids_and_errors_are_cut_for_tables() {
        assert_eq!(short_id("abcdefghijklmnopqrstuvwxy"), "abcdefghijkl");
        assert_eq!(short_id("abc"), "abc");
        assert_eq!(ellipsis("no such image: busybox:1", 10), "no such i…");
        assert_eq!(ellipsis("short", 10), "short");
        assert_eq!(image_shown("busybox:1@sha256:abcd"), "busybox:1");
        assert_eq!(image_shown("docker.io/library/busybox:1"), "busybox:1");
        assert_eq!(
            image_shown("10.0.0.2:5000/web:v1@sha256:ab"),
            "10.0.0.2:5000/web:v1"
        );
        assert_eq!(
            image_shown("10.0.0.2:5000/web@sha256:ab"),
            "10.0.0.2:5000/web@sha256:ab"
        );
        assert_eq!(image_shown("busybox"), "busybox");
    }
}
