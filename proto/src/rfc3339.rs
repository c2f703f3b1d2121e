//! Unix nanoseconds as RFC 3339 times, in UTC: Go's `time.RFC3339Nano`
//! (trailing zeros of the fraction trimmed, as docker's json-file records
//! carry them), docker's fixed nine digits (as `logs --timestamps` prints
//! them), and back, from any RFC 3339 time. Every reader and writer of a
//! `LogRecord`'s time needs these.

/// `2026-12-03T10:51:53.123456789Z`, `2026-12-03T10:51:53.5Z`.
pub fn format(unix_ns: i64) -> String {
    format_with(unix_ns, false)
}

/// `2026-12-03T10:51:53.500000000Z`: docker's `RFC3339NanoFixed`.
pub fn format_fixed(unix_ns: i64) -> String {
    format_with(unix_ns, true)
}

fn format_with(unix_ns: i64, fixed: bool) -> String {
    let secs = unix_ns.div_euclid(1_000_000_000);
    let nanos = unix_ns.rem_euclid(1_000_000_000);
    let (days, day_secs) = (secs.div_euclid(86_400), secs.rem_euclid(86_400));
    let (year, month, day) = civil_from_days(days);
    let mut text = format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}",
        day_secs / 3600,
        day_secs / 60 % 60,
        day_secs % 60
    );
    if fixed {
        text.push_str(&format!(".{nanos:09}"));
    } else if nanos > 0 {
        let fraction = format!("{nanos:09}");
        text.push('.');
        text.push_str(fraction.trim_end_matches('0'));
    }
    text.push('Z');
    text
}

/// Unix nanoseconds of an RFC 3339 time (`Z` or a `±hh:mm` offset, a
/// fraction of any length); `None` when `text` is not one.
pub fn parse(text: &str) -> Option<i64> {
    let b = text.as_bytes();
    if b.len() < 20 || b[4] != b'-' || b[7] != b'-' || !matches!(b[10], b'T' | b't' | b' ') {
        return None;
    }
    if b[13] != b':' || b[16] != b':' {
        return None;
    }
    let number = |range: std::ops::Range<usize>| -> Option<i64> {
        let digits = text.get(range)?;
        digits
            .bytes()
            .all(|c| c.is_ascii_digit())
            .then(|| digits.parse().ok())?
    };
    let (year, month, day) = (number(0..4)?, number(5..7)?, number(8..10)?);
    let (hour, minute, second) = (number(11..13)?, number(14..16)?, number(17..19)?);
    if !(1..=12).contains(&month) || !(1..=31).contains(&day) || hour > 23 || minute > 59 {
        return None;
    }
    // 60: a leap second, as Go reads it.
    if second > 60 {
        return None;
    }
    let mut rest = &text[19..];
    let mut nanos = 0i64;
    if let Some(fraction) = rest.strip_prefix('.') {
        let digits = fraction.bytes().take_while(u8::is_ascii_digit).count();
        if digits == 0 {
            return None;
        }
        // Beyond nanoseconds the digits are dropped, as Go does.
        for (i, c) in fraction.bytes().take(digits).enumerate() {
            if i < 9 {
                nanos += i64::from(c - b'0') * 10i64.pow(8 - i as u32);
            }
        }
        rest = &fraction[digits..];
    }
    let offset_secs = match rest.as_bytes() {
        [b'Z' | b'z'] => 0,
        [sign @ (b'+' | b'-'), h1, h2, b':', m1, m2] => {
            let two = |a: u8, b: u8| -> Option<i64> {
                (a.is_ascii_digit() && b.is_ascii_digit())
                    .then(|| i64::from(a - b'0') * 10 + i64::from(b - b'0'))
            };
            let secs = two(*h1, *h2)? * 3600 + two(*m1, *m2)? * 60;
            if *sign == b'-' {
                -secs
            } else {
                secs
            }
        }
        _ => return None,
    };
    let days = days_from_civil(year, month as u32, day as u32);
    let secs = days * 86_400 + hour * 3600 + minute * 60 + second - offset_secs;
    secs.checked_mul(1_000_000_000)?.checked_add(nanos)
}

/// Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's
/// `days_from_civil`).
fn days_from_civil(year: i64, month: u32, day: u32) -> i64 {
    let year = if month <= 2 { year - 1 } else { year };
    let era = year.div_euclid(400);
    let year_of_era = year - era * 400;
    let month_from_march = i64::from((month + 9) % 12);
    let day_of_year = (153 * month_from_march + 2) / 5 + i64::from(day) - 1;
    let day_of_era = year_of_era * 365 + year_of_era / 4 - year_of_era / 100 + day_of_year;
    era * 146_097 + day_of_era - 719_468
}

/// The date `days` after 1970-01-01 (Howard Hinnant's `civil_from_days`).
fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let days = days + 719_468;
    let era = days.div_euclid(146_097);
    let day_of_era = days - era * 146_097;
    let year_of_era =
        (day_of_era - day_of_era / 1460 + day_of_era / 36_524 - day_of_era / 146_096) / 365;
    let day_of_year = day_of_era - (365 * year_of_era + year_of_era / 4 - year_of_era / 100);
    let month_from_march = (5 * day_of_year + 2) / 153;
    let day = (day_of_year - (153 * month_from_march + 2) / 5 + 1) as u32;
    let month = if month_from_march < 10 {
        month_from_march + 3
    } else {
        month_from_march - 9
    } as u32;
    let year = year_of_era + era * 400;
    (if month <= 2 { year + 1 } else { year }, month, day)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_are_written_as_go_writes_rfc3339_nano() {
        assert_eq!(format(0), "1970-01-01T00:00:00Z");
        let t = parse("2026-12-03T10:51:53.123456789Z").unwrap();
        assert_eq!(format(t), "2026-12-03T10:51:53.123456789Z");
        assert_eq!(
            format(t - 123_456_789 + 500_000_000),
            "2026-12-03T10:51:53.5Z"
        );
        assert_eq!(format(951_782_400 * 1_000_000_000), "2000-02-29T00:00:00Z");
        assert_eq!(format(-1), "1969-12-31T23:59:59.999999999Z");
        assert_eq!(format_fixed(500_000_000), "1970-01-01T00:00:00.500000000Z");
        assert_eq!(format_fixed(0), "1970-01-01T00:00:00.000000000Z");
    }

    #[test]
    fn any_rfc3339_time_is_read() {
        assert_eq!(parse("1970-01-01T00:00:01Z"), Some(1_000_000_000));
        assert_eq!(parse("1970-01-01T01:00:01+01:00"), Some(1_000_000_000));
        assert_eq!(parse("1970-01-01T00:00:00.5Z"), Some(500_000_000));
        assert_eq!(parse("1970-01-01T00:00:00.0000000015Z"), Some(1));
        for bad in [
            "",
            "yesterday",
            "1970-01-01T00:00:00",
            "1970-13-01T00:00:00Z",
        ] {
            assert_eq!(parse(bad), None, "{bad}");
        }
        for ns in [0, 1, 1_700_000_000_123_456_789, 4_102_444_800_000_000_000] {
            assert_eq!(parse(&format(ns)), Some(ns));
        }
    }
}
