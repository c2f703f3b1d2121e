//! Values of command-line flags, parsed as docker parses them. Each parser
//! returns a message clap shows as a usage error.

use std::time::Duration;

use shoal_proto::types::v1::{PortConfig, PortProtocol, PublishMode};

/// Words of one flag value (`--entrypoint "sh -c"`); a newtype because clap reads a
/// `Vec` field as a list of values.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Words(pub Vec<String>);

pub fn words(input: &str) -> Result<Words, String> {
    shell_words(input).map(Words)
}

/// The ports of one `--publish` value (a range gives several).
#[derive(Debug, Clone, PartialEq)]
pub struct Ports(pub Vec<PortConfig>);

pub fn ports(input: &str) -> Result<Ports, String> {
    publish(input).map(Ports)
}

/// A Go `time.ParseDuration` string (`10s`, `1m30s`, `500ms`, `1.5h`, `0`).
/// Negative durations are refused: no flag of the CLI means anything by them.
pub fn duration(input: &str) -> Result<Duration, String> {
    let bad = || format!("invalid duration {input:?} (examples: 10s, 1m30s, 500ms)");
    let text = input.strip_prefix('+').unwrap_or(input);
    if text.starts_with('-') {
        return Err(format!("invalid duration {input:?}: must not be negative"));
    }
    if text == "0" {
        return Ok(Duration::ZERO);
    }
    if text.is_empty() {
        return Err(bad());
    }
    let mut total_nanos: f64 = 0.0;
    let mut rest = text;
    while !rest.is_empty() {
        let number_len = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .ok_or_else(|| format!("invalid duration {input:?}: missing unit"))?;
        let number = &rest[..number_len];
        if number.is_empty() || number == "." || number.matches('.').count() > 1 {
            return Err(bad());
        }
        let value: f64 = number.parse().map_err(|_| bad())?;
        rest = &rest[number_len..];
        let unit_len = rest
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(rest.len());
        let nanos_per_unit = match &rest[..unit_len] {
            "ns" => 1.0,
            "us" | "µs" | "μs" => 1e3,
            "ms" => 1e6,
            "s" => 1e9,
            "m" => 60e9,
            "h" => 3600e9,
            unit => return Err(format!("invalid duration {input:?}: unknown unit {unit:?}")),
        };
        total_nanos += value * nanos_per_unit;
        rest = &rest[unit_len..];
    }
    // `u64::MAX as f64` is 2^64, one past the largest u64: `as u64` would clamp it.
    if total_nanos >= u64::MAX as f64 {
        return Err(format!("invalid duration {input:?}: too large"));
    }
    Ok(Duration::from_nanos(total_nanos.round() as u64))
}

/// Go's `Duration.String()`: `1m30s`, `500ms`, `2h0m0s`, `0s`.
pub fn format_duration(d: Duration) -> String {
    let nanos = d.as_nanos();
    if nanos == 0 {
        return "0s".into();
    }
    if nanos < 1_000_000_000 {
        let (value, unit) = if nanos < 1_000 {
            (nanos as f64, "ns")
        } else if nanos < 1_000_000 {
            (nanos as f64 / 1e3, "µs")
        } else {
            (nanos as f64 / 1e6, "ms")
        };
        return format!("{}{unit}", trim_float(value));
    }
    let secs = d.as_secs();
    let frac = d.subsec_nanos();
    let seconds = if frac == 0 {
        format!("{}s", secs % 60)
    } else {
        format!(
            "{}s",
            trim_float((secs % 60) as f64 + f64::from(frac) / 1e9)
        )
    };
    match (secs / 3600, secs % 3600 / 60) {
        (0, 0) => seconds,
        (0, m) => format!("{m}m{seconds}"),
        (h, m) => format!("{h}h{m}m{seconds}"),
    }
}

fn trim_float(v: f64) -> String {
    let text = format!("{v:.9}");
    text.trim_end_matches('0').trim_end_matches('.').to_string()
}

pub fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

/// `-e KEY=VALUE`, or `-e KEY` taking KEY's value from the CLI's environment
/// (kept bare when unset, as docker does).
pub fn env(input: &str) -> Result<String, String> {
    let key = input.split('=').next().unwrap_or_default();
    if key.is_empty() {
        return Err(format!(
            "invalid environment variable {input:?}: empty name"
        ));
    }
    if input.contains('=') {
        return Ok(input.to_string());
    }
    Ok(match std::env::var(input) {
        Ok(value) => format!("{input}={value}"),
        Err(_) => input.to_string(),
    })
}

/// `KEY=VALUE` or `KEY` (empty value), as labels take them.
pub fn key_value(input: &str) -> Result<(String, String), String> {
    let (key, value) = input.split_once('=').unwrap_or((input, ""));
    if key.is_empty() {
        return Err(format!("invalid label {input:?}: empty key"));
    }
    Ok((key.to_string(), value.to_string()))
}

/// `--dns`, `--dns-add`: an IP address, written as docker writes it back
/// (`2001:db8:0:0::1` becomes `2001:db8::1`); docker's check and words.
pub fn ip_address(input: &str) -> Result<String, String> {
    input
        .trim()
        .parse::<std::net::IpAddr>()
        .map(|ip| ip.to_string())
        .map_err(|_| format!("IP address is not correctly formatted: {input}"))
}

/// `--dns-search`, `--dns-search-add`: a domain for the resolver's search
/// list, checked as docker checks it (letters, digits and `-` in dot
/// separated labels, at least one letter; a trailing dot is dropped), or
/// `.` for none.
pub fn dns_search(input: &str) -> Result<String, String> {
    let text = input.trim_matches(' ');
    if text == "." {
        return Ok(text.to_string());
    }
    let domain = text.strip_suffix('.').unwrap_or(text);
    let label_ok = |l: &str| {
        !l.is_empty()
            && !l.starts_with('-')
            && !l.ends_with('-')
            && l.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
    };
    if domain.len() < 255
        && domain.chars().any(|c| c.is_ascii_alphabetic())
        && domain.split('.').all(label_ok)
    {
        Ok(domain.to_string())
    } else {
        Err(format!("{input} is not a valid domain"))
    }
}

/// `service scale NAME=REPLICAS`.
pub fn scale(input: &str) -> Result<(String, u64), String> {
    let (name, count) = input.split_once('=').ok_or_else(|| {
        format!("invalid scale specifier {input:?}: should be <service name>=<replica count>")
    })?;
    if name.is_empty() {
        return Err(format!(
            "invalid scale specifier {input:?}: should be <service name>=<replica count>"
        ));
    }
    let replicas = count
        .parse::<u64>()
        .map_err(|_| format!("invalid replicas value {count:?}: must be a non-negative integer"))?;
    Ok((name.to_string(), replicas))
}

/// A published port: `[PUBLISHED:]TARGET[/PROTOCOL]` (ranges `8080-8081:80-81`), or the long
/// form `published=8080,target=80,protocol=udp,mode=host`. Published 0 lets the manager pick.
pub fn publish(input: &str) -> Result<Vec<PortConfig>, String> {
    if input.contains('=') {
        return publish_long(input).map(|p| vec![p]);
    }
    let (ports, protocol) = match input.split_once('/') {
        Some((ports, proto)) => (ports, protocol(proto)?),
        None => (input, PortProtocol::Tcp),
    };
    let parts: Vec<&str> = ports.split(':').collect();
    let (published, target) = match parts.as_slice() {
        [target] => (None, *target),
        [published, target] => (Some(*published), *target),
        _ => {
            return Err(format!(
                "invalid port {input:?}: publishing on a host address is not supported"
            ))
        }
    };
    let targets = port_range(target, input)?;
    let published = match published {
        Some(p) if !p.is_empty() => port_range(p, input)?,
        _ => vec![0; targets.len()],
    };
    if published.len() != targets.len() {
        return Err(format!(
            "invalid port {input:?}: published and target ranges differ in length"
        ));
    }
    Ok(published
        .into_iter()
        .zip(targets)
        .map(|(published_port, target_port)| PortConfig {
            name: String::new(),
            protocol: protocol as i32,
            target_port,
            published_port,
            publish_mode: PublishMode::Ingress as i32,
        })
        .collect())
}

fn publish_long(input: &str) -> Result<PortConfig, String> {
    let mut port = PortConfig {
        publish_mode: PublishMode::Ingress as i32,
        ..Default::default()
    };
    let mut has_target = false;
    for field in input.split(',') {
        let (key, value) = field.split_once('=').ok_or_else(|| {
            format!("invalid field {field:?} in port {input:?}: expected key=value")
        })?;
        let number = |v: &str| {
            v.parse::<u16>()
                .map(u32::from)
                .map_err(|_| format!("invalid port number {v:?} in {input:?}"))
        };
        match key.trim().to_ascii_lowercase().as_str() {
            "published" => port.published_port = number(value)?,
            "target" => {
                port.target_port = number(value)?;
                has_target = true;
            }
            "protocol" => port.protocol = protocol(value)? as i32,
            "mode" => {
                port.publish_mode = match value {
                    "ingress" => PublishMode::Ingress,
                    "host" => PublishMode::Host,
                    other => {
                        return Err(format!(
                            "invalid publish mode {other:?} in {input:?}: ingress or host"
                        ))
                    }
                } as i32
            }
            "name" => port.name = value.to_string(),
            other => return Err(format!("invalid field {other:?} in port {input:?}")),
        }
    }
    if !has_target || port.target_port == 0 {
        return Err(format!("invalid port {input:?}: a target port is required"));
    }
    Ok(port)
}

fn protocol(text: &str) -> Result<PortProtocol, String> {
    match text.to_ascii_lowercase().as_str() {
        "tcp" | "" => Ok(PortProtocol::Tcp),
        "udp" => Ok(PortProtocol::Udp),
        other => Err(format!("unsupported protocol {other:?}: tcp or udp")),
    }
}

fn port_range(text: &str, input: &str) -> Result<Vec<u32>, String> {
    let number = |v: &str| match v.parse::<u16>() {
        Ok(n) if n > 0 => Ok(u32::from(n)),
        _ => Err(format!("invalid port {v:?} in {input:?}")),
    };
    match text.split_once('-') {
        Some((start, end)) => {
            let (start, end) = (number(start)?, number(end)?);
            if end < start {
                return Err(format!("invalid port range {text:?} in {input:?}"));
            }
            Ok((start..=end).collect())
        }
        None => Ok(vec![number(text)?]),
    }
}

pub fn protocol_name(raw: i32) -> &'static str {
    match PortProtocol::try_from(raw) {
        Ok(PortProtocol::Udp) => "udp",
        _ => "tcp",
    }
}

/// Splits a command line into words as a POSIX shell would (quotes and
/// backslashes; no expansion), for `--args "..."`.
pub fn shell_words(input: &str) -> Result<Vec<String>, String> {
    let mut words = Vec::new();
    let mut word = String::new();
    let mut in_word = false;
    let mut chars = input.chars();
    while let Some(c) = chars.next() {
        match c {
            '\'' => {
                in_word = true;
                loop {
                    match chars.next() {
                        Some('\'') => break,
                        Some(c) => word.push(c),
                        None => return Err(format!("unterminated single quote in {input:?}")),
                    }
                }
            }
            '"' => {
                in_word = true;
                loop {
                    match chars.next() {
                        Some('"') => break,
                        Some('\\') => match chars.next() {
                            Some(c @ ('"' | '\\' | '$' | '`')) => word.push(c),
                            Some('\n') => {}
                            Some(c) => {
                                word.push('\\');
                                word.push(c);
                            }
                            None => return Err(format!("unterminated double quote in {input:?}")),
                        },
                        Some(c) => word.push(c),
                        None => return Err(format!("unterminated double quote in {input:?}")),
                    }
                }
            }
            '\\' => {
                in_word = true;
                match chars.next() {
                    Some('\n') => {}
                    Some(c) => word.push(c),
                    None => return Err(format!("trailing backslash in {input:?}")),
                }
            }
            c if c.is_whitespace() => {
                if in_word {
                    words.push(std::mem::take(&mut word));
                    in_word = false;
                }
            }
            c => {
                in_word = true;
                word.push(c);
            }
        }
    }
    if in_word {
        words.push(word);
    }
    Ok(words)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_parse_like_go() {
        assert_eq!(duration("10s"), Ok(Duration::from_secs(10)));
        assert_eq!(duration("1m30s"), Ok(Duration::from_secs(90)));
        assert_eq!(duration("500ms"), Ok(Duration::from_millis(500)));
        assert_eq!(duration("1.5h"), Ok(Duration::from_secs(5400)));
        assert_eq!(duration("2h45m"), Ok(Duration::from_secs(9900)));
        assert_eq!(duration("0"), Ok(Duration::ZERO));
        assert_eq!(duration("100us"), Ok(Duration::from_micros(100)));
        assert_eq!(duration(".5s"), Ok(Duration::from_millis(500)));
        for bad in ["", "10", "s", "1x", "-1s", "1..5s", "."] {
            assert!(duration(bad).is_err(), "{bad:?} parsed");
        }
        // Absurd values are refused, not wrapped or panicked on.
        let huge = format!("{}h", "9".repeat(400));
        for absurd in ["9999999999h", "18446744073709551616ns", &huge] {
            let e = duration(absurd).unwrap_err();
            assert!(e.contains("too large"), "{absurd}: {e}");
        }
    }

    #[test]
    fn durations_print_like_go() {
        assert_eq!(format_duration(Duration::from_secs(120)), "2m0s");
        assert_eq!(format_duration(Duration::from_secs(90)), "1m30s");
        assert_eq!(format_duration(Duration::from_millis(500)), "500ms");
        assert_eq!(format_duration(Duration::from_secs(7200)), "2h0m0s");
        assert_eq!(format_duration(Duration::from_millis(1500)), "1.5s");
        assert_eq!(format_duration(Duration::ZERO), "0s");
    }

    #[test]
    fn env_takes_pairs_or_the_callers_value() {
        assert_eq!(env("A=b=c"), Ok("A=b=c".into()));
        assert_eq!(env("A="), Ok("A=".into()));
        assert!(env("=x").is_err());
        // PATH is set for every test process.
        let path = std::env::var("PATH").expect("PATH");
        assert_eq!(env("PATH"), Ok(format!("PATH={path}")));
        assert_eq!(
            env("SHOAL_TEST_SURELY_UNSET_VARIABLE"),
            Ok("SHOAL_TEST_SURELY_UNSET_VARIABLE".into())
        );
    }

    #[test]
    fn labels_take_a_key_and_optional_value() {
        assert_eq!(key_value("a=b"), Ok(("a".into(), "b".into())));
        assert_eq!(key_value("a"), Ok(("a".into(), String::new())));
        assert!(key_value("=b").is_err());
    }

    #[test]
    fn scale_arguments_need_name_and_count() {
        assert_eq!(scale("web=3"), Ok(("web".into(), 3)));
        assert_eq!(scale("web_api=0"), Ok(("web_api".into(), 0)));
        assert!(scale("web")
            .unwrap_err()
            .contains("<service name>=<replica count>"));
        assert!(scale("=3").is_err());
        assert!(scale("web=-1").is_err());
        assert!(scale("web=x").is_err());
    }

    fn port(published: u32, target: u32, proto: PortProtocol, mode: PublishMode) -> PortConfig {
        PortConfig {
            name: String::new(),
            protocol: proto as i32,
            target_port: target,
            published_port: published,
            publish_mode: mode as i32,
        }
    }

    #[test]
    fn short_publish_specs() {
        use PortProtocol::*;
        use PublishMode::*;
        assert_eq!(publish("8080:80"), Ok(vec![port(8080, 80, Tcp, Ingress)]));
        assert_eq!(publish("53:53/udp"), Ok(vec![port(53, 53, Udp, Ingress)]));
        assert_eq!(publish("80"), Ok(vec![port(0, 80, Tcp, Ingress)]));
        assert_eq!(
            publish("8080-8081:80-81"),
            Ok(vec![
                port(8080, 80, Tcp, Ingress),
                port(8081, 81, Tcp, Ingress)
            ])
        );
        assert!(publish("127.0.0.1:8080:80").is_err());
        assert!(publish("8080:80/sctp").is_err());
        assert!(publish("8080-8082:80-81").is_err());
        assert!(publish("70000:80").is_err());
        assert!(publish("x:80").is_err());
    }

    #[test]
    fn long_publish_specs() {
        use PortProtocol::*;
        use PublishMode::*;
        assert_eq!(
            publish("published=8080,target=80"),
            Ok(vec![port(8080, 80, Tcp, Ingress)])
        );
        assert_eq!(
            publish("published=53,target=53,protocol=udp,mode=host"),
            Ok(vec![port(53, 53, Udp, Host)])
        );
        assert!(publish("published=8080").is_err());
        assert!(publish("target=80,mode=bridge").is_err());
        assert!(publish("target=80,color=red").is_err());
    }

    #[test]
    fn shell_words_split_like_sh() {
        assert_eq!(
            shell_words(r#"sh -c 'echo "hi there"' a\ b "x\"y""#),
            Ok(vec![
                "sh".into(),
                "-c".into(),
                "echo \"hi there\"".into(),
                "a b".into(),
                "x\"y".into()
            ])
        );
        assert_eq!(shell_words("  "), Ok(vec![]));
        assert_eq!(shell_words("''"), Ok(vec![String::new()]));
        assert!(shell_words("'open").is_err());
    }

    #[test]
    fn dns_servers_are_ip_addresses_written_back_as_docker_does() {
        assert_eq!(ip_address("10.0.0.2"), Ok("10.0.0.2".into()));
        assert_eq!(ip_address(" 1.1.1.1 "), Ok("1.1.1.1".into()));
        assert_eq!(ip_address("2001:db8:0:0:0:0:0:1"), Ok("2001:db8::1".into()));
        for bad in ["not-an-ip", "", "10.0.0", "10.0.0.1:53", "dns.example"] {
            assert_eq!(
                ip_address(bad),
                Err(format!("IP address is not correctly formatted: {bad}")),
                "{bad:?}"
            );
        }
    }

    #[test]
    fn dns_search_domains_are_checked_as_docker_checks_them() {
        assert_eq!(dns_search("example.com"), Ok("example.com".into()));
        assert_eq!(dns_search("svc.example.com."), Ok("svc.example.com".into()));
        assert_eq!(dns_search("a-1.b2"), Ok("a-1.b2".into()));
        assert_eq!(
            dns_search("."),
            Ok(".".into()),
            "docker's \"no search domain\""
        );
        for bad in [
            "",
            "-bad.example",
            "bad-.example",
            "a..b",
            "under_score.example",
            "1.2.3.4",
        ] {
            assert_eq!(
                dns_search(bad),
                Err(format!("{bad} is not a valid domain")),
                "{bad:?}"
            );
        }
        assert!(dns_search(&format!("{}.example", "a".repeat(250))).is_err());
    }
}
