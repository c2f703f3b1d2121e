//! Go's `time.ParseDuration`, which docker uses for every compose duration (`1m30s`, `1.5h`,
//! `500ms`, `0`).

/// Parses a Go duration into signed nanoseconds.
pub fn parse_go_duration(input: &str) -> Result<i64, String> {
    let bad = || format!("invalid duration {input:?}");
    let (negative, mut s) = match input.as_bytes().first() {
        Some(b'-') => (true, &input[1..]),
        Some(b'+') => (false, &input[1..]),
        _ => (false, input),
    };
    if s == "0" {
        return Ok(0);
    }
    if s.is_empty() {
        return Err(bad());
    }
    // Nanoseconds as an exact fraction-free sum; u128 leaves room to detect int64 overflow.
    let mut total: u128 = 0;
    while !s.is_empty() {
        let int_len = s.bytes().take_while(u8::is_ascii_digit).count();
        let int_part = &s[..int_len];
        s = &s[int_len..];
        let mut frac_part = "";
        if let Some(rest) = s.strip_prefix('.') {
            let frac_len = rest.bytes().take_while(u8::is_ascii_digit).count();
            frac_part = &rest[..frac_len];
            s = &rest[frac_len..];
        }
        if int_part.is_empty() && frac_part.is_empty() {
            return Err(bad());
        }
        let unit_len = s
            .char_indices()
            .find(|(_, c)| *c == '.' || c.is_ascii_digit())
            .map(|(i, _)| i)
            .unwrap_or(s.len());
        let unit = &s[..unit_len];
        s = &s[unit_len..];
        let scale: u128 = match unit {
            "ns" => 1,
            "us" | "\u{b5}s" | "\u{3bc}s" => 1_000,
            "ms" => 1_000_000,
            "s" => 1_000_000_000,
            "m" => 60_000_000_000,
            "h" => 3_600_000_000_000,
            "" => return Err(format!("missing unit in duration {input:?}")),
            other => return Err(format!("unknown unit {other:?} in duration {input:?}")),
        };
        let whole: u128 = if int_part.is_empty() {
            0
        } else {
            int_part.parse().map_err(|_| bad())?
        };
        let mut value = whole.checked_mul(scale).ok_or_else(bad)?;
        // Go keeps only the fraction digits that still matter; truncation matches it.
        let mut unit_scale = scale;
        for digit in frac_part.bytes() {
            unit_scale /= 10;
            if unit_scale == 0 {
                break;
            }
            value += u128::from(digit - b'0') * unit_scale;
        }
        total = total.checked_add(value).ok_or_else(bad)?;
        if total > 1u128 << 63 {
            return Err(bad());
        }
    }
    if negative {
        i64::try_from(total).map(|t| -t).or_else(|_| {
            if total == 1u128 << 63 {
                Ok(i64::MIN)
            } else {
                Err(bad())
            }
        })
    } else {
        i64::try_from(total).map_err(|_| bad())
    }
}

/// Go's `time.Duration.String`, as docker prints durations (`1m30s`,
/// `1.5s`, `500ms`, `0s`, `2h0m0s`).
pub fn go_string(ns: i64) -> String {
    if ns == 0 {
        return "0s".to_string();
    }
    let sign = if ns < 0 { "-" } else { "" };
    let u = ns.unsigned_abs();
    // Below a second: one unit, with the fraction Go keeps.
    let fraction = |value: u64, scale: u64| -> String {
        let whole = value / scale;
        let rest = value % scale;
        if rest == 0 {
            return whole.to_string();
        }
        let width = scale.ilog10() as usize;
        let digits = format!("{rest:0width$}");
        format!("{whole}.{}", digits.trim_end_matches('0'))
    };
    if u < 1_000 {
        return format!("{sign}{u}ns");
    }
    if u < 1_000_000 {
        return format!("{sign}{}\u{b5}s", fraction(u, 1_000));
    }
    if u < 1_000_000_000 {
        return format!("{sign}{}ms", fraction(u, 1_000_000));
    }
    let seconds = fraction(u % 60_000_000_000, 1_000_000_000);
    let minutes = u / 60_000_000_000;
    match (minutes / 60, minutes % 60) {
        (0, 0) => format!("{sign}{seconds}s"),
        (0, m) => format!("{sign}{m}m{seconds}s"),
        (h, m) => format!("{sign}{h}h{m}m{seconds}s"),
    }
}

#[cfg(test)]
mod tests {
    use super::{go_string, parse_go_duration};

    #[test]
    fn prints_durations_as_go_prints_them() {
        for (ns, want) in [
            (0, "0s"),
            (90_000_000_000, "1m30s"),
            (60_000_000_000, "1m0s"),
            (7_200_000_000_000, "2h0m0s"),
            (1_500_000_000, "1.5s"),
            (500_000_000, "500ms"),
            (1_500_000, "1.5ms"),
            (2_000, "2\u{b5}s"),
            (7, "7ns"),
            (-2_000_000_000, "-2s"),
        ] {
            assert_eq!(go_string(ns), want);
        }
    }

    #[test]
    fn parses_go_durations() {
        assert_eq!(parse_go_duration("1m30s"), Ok(90_000_000_000));
        assert_eq!(parse_go_duration("10s"), Ok(10_000_000_000));
        assert_eq!(parse_go_duration("1.5h"), Ok(5_400_000_000_000));
        assert_eq!(parse_go_duration("500ms"), Ok(500_000_000));
        assert_eq!(parse_go_duration("0"), Ok(0));
        assert_eq!(parse_go_duration("-2s"), Ok(-2_000_000_000));
        assert_eq!(parse_go_duration(".5s"), Ok(500_000_000));
        assert!(parse_go_duration("10").is_err());
        assert!(parse_go_duration("1x").is_err());
        assert!(parse_go_duration("").is_err());
        assert!(parse_go_duration("s").is_err());
        assert!(parse_go_duration("99999999999h").is_err());
    }
}
