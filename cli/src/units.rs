//! CPU and memory amounts as docker reads and writes them, for the
//! `--limit-*`/`--reserve-*` flags and compose's `deploy.resources`:
//! CPUs are a rational number (`0.5`, `1.25`, `3/2`, `1e-3`) turned into
//! nano CPUs exactly (docker's `opts.ParseCPUs`); memory is a size with a
//! binary unit (`64M`, `1g`, `512m`, `1.5GiB`, `512 KiB`, plain bytes),
//! docker's `units.RAMInBytes`.

const NANO: i128 = 1_000_000_000;

/// `--limit-cpu 0.5` → 500 000 000 nano CPUs; docker's messages
/// (`failed to parse x as a rational number`, `value is too precise`).
pub fn nano_cpus(value: &str) -> Result<i64, String> {
    let not_rational = || format!("failed to parse {value} as a rational number");
    let (num, den) = rational(value).ok_or_else(not_rational)?;
    let scaled = num.checked_mul(NANO).ok_or("value is too large")?;
    if scaled % den != 0 {
        return Err("value is too precise".into());
    }
    i64::try_from(scaled / den).map_err(|_| "value is too large".into())
}

/// Go's `big.Rat.SetString` for what a CPU count is written as: `N/D`, or
/// a decimal with an optional sign, fraction and exponent. The fraction is
/// reduced to (numerator, positive denominator).
fn rational(value: &str) -> Option<(i128, i128)> {
    if let Some((n, d)) = value.split_once('/') {
        let n: i128 = integer(n)?;
        let d: i128 = d.parse().ok().filter(|d: &i128| *d > 0)?;
        return Some((n, d));
    }
    let (mantissa, exponent) = match value.find(['e', 'E']) {
        Some(at) => (&value[..at], value[at + 1..].parse::<i32>().ok()?),
        None => (value, 0),
    };
    let (sign, unsigned) = match mantissa.strip_prefix('-') {
        Some(rest) => (-1, rest),
        None => (1, mantissa.strip_prefix('+').unwrap_or(mantissa)),
    };
    let (whole, fraction) = unsigned.split_once('.').unwrap_or((unsigned, ""));
    if whole.is_empty() && fraction.is_empty() {
        return None;
    }
    if !(whole.chars().chain(fraction.chars())).all(|c| c.is_ascii_digit()) {
        return None;
    }
    let digits = format!("{whole}{fraction}");
    let mut num: i128 = digits.trim_start_matches('0').parse().unwrap_or(0);
    let mut den: i128 = 1;
    let shift = exponent - fraction.len() as i32;
    // Beyond these, the amount is nowhere near a CPU count.
    if digits.len() > 30 || !(-30..=30).contains(&shift) {
        return None;
    }
    if shift >= 0 {
        num = num.checked_mul(10i128.checked_pow(shift as u32)?)?;
    } else {
        den = 10i128.checked_pow(shift.unsigned_abs())?;
    }
    Some((sign * num, den))
}

fn integer(text: &str) -> Option<i128> {
    let digits = text.strip_prefix(['-', '+']).unwrap_or(text);
    if digits.is_empty() || !digits.chars().all(|c| c.is_ascii_digit()) {
        return None;
    }
    text.parse().ok()
}

pub use shoal_proto::units::ram_in_bytes;

/// Nano CPUs as docker prints them (`0.5`, `2`): Go's `%g` of the float.
pub fn cpus_shown(nano_cpus: i64) -> String {
    let value = nano_cpus as f64 / 1e9;
    format!("{value}")
}

/// Bytes as docker's `units.BytesSize` prints them (`64MiB`, `1.5GiB`).
pub fn bytes_shown(bytes: i64) -> String {
    const UNITS: [&str; 9] = ["B", "KiB", "MiB", "GiB", "TiB", "PiB", "EiB", "ZiB", "YiB"];
    let mut size = bytes as f64;
    let mut unit = 0;
    while size >= 1024.0 && unit < UNITS.len() - 1 {
        size /= 1024.0;
        unit += 1;
    }
    // `%.4g`, trailing zeros dropped.
    let shown = format!("{size:.4}");
    let digits_before = shown.split('.').next().map_or(0, str::len);
    let decimals = 4usize.saturating_sub(digits_before);
    let rounded = format!("{size:.decimals$}");
    let trimmed = if rounded.contains('.') {
        rounded.trim_end_matches('0').trim_end_matches('.')
    } else {
        &rounded
    };
    format!("{trimmed}{}", UNITS[unit])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cpus_read_as_docker_reads_them() {
        for (text, nano) in [
            ("0.5", 500_000_000),
            ("0.50", 500_000_000),
            ("1", 1_000_000_000),
            ("1.25", 1_250_000_000),
            ("3/2", 1_500_000_000),
            ("1e-3", 1_000_000),
            (".5", 500_000_000),
            ("2.", 2_000_000_000),
            ("0.000000001", 1),
            ("-1", -1_000_000_000),
        ] {
            assert_eq!(nano_cpus(text), Ok(nano), "{text}");
        }
        assert_eq!(
            nano_cpus("0.0000000001"),
            Err("value is too precise".into())
        );
        assert_eq!(nano_cpus("1/3"), Err("value is too precise".into()));
        for bad in ["x", "", "1.2.3", " 1", "0,5", "1/0", "."] {
            assert_eq!(
                nano_cpus(bad),
                Err(format!("failed to parse {bad} as a rational number")),
                "{bad:?}"
            );
        }
    }

    #[test]
    fn amounts_print_as_docker_prints_them() {
        assert_eq!(cpus_shown(500_000_000), "0.5");
        assert_eq!(cpus_shown(2_000_000_000), "2");
        assert_eq!(bytes_shown(67_108_864), "64MiB");
        assert_eq!(bytes_shown(1_610_612_736), "1.5GiB");
        assert_eq!(bytes_shown(1000), "1000B");
        assert_eq!(bytes_shown(1_073_741_824), "1GiB");
    }
}
