//! Sizes as docker reads them: go-units' `RAMInBytes`, which `--limit-memory`,
//! tmpfs sizes and log files' `max-size` all go through.

/// `64M` → 67 108 864: go-units' `RAMInBytes` (binary
/// units k, m, g, t, p, any case, optionally followed by `b` or `ib`, a
/// space allowed before the unit), with its messages (`invalid size: 'x'`,
/// `invalid suffix: 'x'`).
pub fn ram_in_bytes(value: &str) -> Result<i64, String> {
    let invalid_size = || format!("invalid size: '{value}'");
    let sep = value
        .rfind(|c: char| c.is_ascii_digit() || c == '.' || c == ' ')
        .ok_or_else(invalid_size)?;
    let (num, suffix) = if value.as_bytes()[sep] == b' ' {
        (&value[..sep], &value[sep + 1..])
    } else {
        value.split_at(sep + 1)
    };
    let size: f64 = go_float(num)
        .ok_or_else(|| format!("strconv.ParseFloat: parsing {num:?}: invalid syntax"))?;
    if size < 0.0 {
        return Err(invalid_size());
    }
    let bad_suffix = || format!("invalid suffix: '{}'", suffix.to_ascii_lowercase());
    let suffix_lower = suffix.to_ascii_lowercase();
    let multiplier: f64 = match suffix_lower.as_bytes() {
        [] => 1.0,
        [b'b'] => 1.0,
        [unit, rest @ ..] if suffix.len() <= 3 => {
            let power = match unit {
                b'k' => 1,
                b'm' => 2,
                b'g' => 3,
                b't' => 4,
                b'p' => 5,
                _ => return Err(bad_suffix()),
            };
            if !matches!(rest, [] | [b'b'] | [b'i', b'b']) {
                return Err(bad_suffix());
            }
            1024f64.powi(power)
        }
        _ => return Err(bad_suffix()),
    };
    let bytes = size * multiplier;
    if !bytes.is_finite() || bytes >= i64::MAX as f64 {
        return Err(format!("invalid size: '{value}' is too large"));
    }
    Ok(bytes as i64)
}

/// Go's `strconv.ParseFloat` on the number part of a size: decimal digits,
/// a point, an exponent (Rust's parser also takes `inf` and `nan`, which
/// Go's size reader never sees, as the number must end in a digit or a
/// point).
fn go_float(text: &str) -> Option<f64> {
    let plain = text
        .chars()
        .all(|c| c.is_ascii_digit() || matches!(c, '.' | 'e' | 'E' | '+' | '-'));
    if !plain {
        return None;
    }
    text.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn memory_reads_as_docker_reads_it() {
        // The values `docker stack config` prints for these.
        for (text, bytes) in [
            ("64M", 67_108_864),
            ("64m", 67_108_864),
            ("64mb", 67_108_864),
            ("64MiB", 67_108_864),
            ("1g", 1_073_741_824),
            ("512m", 536_870_912),
            ("1.5g", 1_610_612_736),
            ("0.5k", 512),
            ("512 KiB", 524_288),
            ("10b", 10),
            ("1t", 1_099_511_627_776),
            ("1p", 1_125_899_906_842_624),
            ("1e3", 1000),
            ("4096", 4096),
        ] {
            assert_eq!(ram_in_bytes(text), Ok(bytes), "{text}");
        }
        assert_eq!(ram_in_bytes("64x"), Err("invalid suffix: 'x'".into()));
        assert_eq!(ram_in_bytes("64MX"), Err("invalid suffix: 'mx'".into()));
        assert_eq!(ram_in_bytes("1kbb"), Err("invalid suffix: 'kbb'".into()));
        assert_eq!(ram_in_bytes("abc"), Err("invalid size: 'abc'".into()));
        assert_eq!(ram_in_bytes(""), Err("invalid size: ''".into()));
        assert!(ram_in_bytes("1.2.3m")
            .unwrap_err()
            .contains("invalid syntax"));
        assert!(ram_in_bytes("99999999p").unwrap_err().contains("too large"));
    }
}
