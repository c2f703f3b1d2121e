//! Short-syntax port specs (`[ip:][published[-end]:]target[-end][/proto]`), parsed with the
//! rules of docker's go-connections `nat.ParsePortSpec` and expanded like docker's compose
//! loader does.

use std::net::IpAddr;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PortMapping {
    pub host_ip: String,
    /// Empty, one port, or `start-end` when one target takes a published range.
    pub host_port: String,
    pub target: u16,
    pub protocol: String,
}

fn parse_port_number(raw: &str) -> Result<u16, String> {
    if raw.is_empty() {
        return Err("value is empty".to_string());
    }
    let digits = raw.strip_prefix(['+', '-']).unwrap_or(raw);
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return Err("invalid syntax".to_string());
    }
    match raw.parse::<i64>() {
        Ok(p) if (0..=65535).contains(&p) => Ok(p as u16),
        _ => Err("value out of range (0-65535)".to_string()),
    }
}

fn parse_port_range(raw: &str) -> Result<(u16, u16), String> {
    if raw.is_empty() {
        return Err("empty string specified for ports".to_string());
    }
    let (start, end) = match raw.split_once('-') {
        Some((s, e)) => (s, Some(e)),
        None => (raw, None),
    };
    let start_port =
        parse_port_number(start).map_err(|e| format!("invalid start port '{start}': {e}"))?;
    let Some(end) = end.filter(|e| *e != start) else {
        return Ok((start_port, start_port));
    };
    let end_port = parse_port_number(end).map_err(|e| format!("invalid end port '{end}': {e}"))?;
    if end_port < start_port {
        return Err(format!("invalid port range: {raw}"));
    }
    Ok((start_port, end_port))
}

pub fn parse_port_spec(raw: &str) -> Result<Vec<PortMapping>, String> {
    let parts: Vec<&str> = raw.split(':').collect();
    let (ip, host_port, container) = match parts.as_slice() {
        [c] => (String::new(), "", *c),
        [h, c] => (String::new(), *h, *c),
        [ip, h, c] => (ip.to_string(), *h, *c),
        [init @ .., h, c] => (init.join(":"), *h, *c),
        [] => (String::new(), "", ""),
    };
    let (container, proto) = match container.split_once('/') {
        Some((port, proto)) => (port, proto),
        None => (container, ""),
    };
    if container.is_empty() {
        return Err(format!("no port specified: {raw}<empty>"));
    }
    let proto = if proto.is_empty() {
        "tcp".to_string()
    } else {
        proto.to_ascii_lowercase()
    };
    if !matches!(proto.as_str(), "tcp" | "udp" | "sctp") {
        return Err(format!("invalid proto: {proto}"));
    }
    let mut ip = ip;
    if ip.starts_with('[') {
        match ip.strip_prefix('[').and_then(|s| s.strip_suffix(']')) {
            Some(inner) => ip = inner.to_string(),
            None => return Err(format!("invalid IP address {ip}")),
        }
    }
    if !ip.is_empty() && ip.parse::<IpAddr>().is_err() {
        return Err(format!("invalid IP address: {ip}"));
    }
    let (start, end) =
        parse_port_range(container).map_err(|_| format!("invalid containerPort: {container}"))?;
    let mut host = None;
    if !host_port.is_empty() {
        let (hs, he) =
            parse_port_range(host_port).map_err(|_| format!("invalid hostPort: {host_port}"))?;
        if end - start != he - hs && end != start {
            return Err(format!(
                "invalid ranges specified for container and host Ports: {container} and {host_port}"
            ));
        }
        host = Some((hs, he));
    }
    let count = u32::from(end - start) + 1;
    let mut out = Vec::with_capacity(count as usize);
    for i in 0..count {
        let host_port = match host {
            None => String::new(),
            Some((hs, he)) => {
                let p = u32::from(hs) + i;
                if count == 1 && hs != he {
                    format!("{p}-{he}")
                } else {
                    p.to_string()
                }
            }
        };
        out.push(PortMapping {
            host_ip: ip.clone(),
            host_port,
            target: start + i as u16,
            protocol: proto.clone(),
        });
    }
    Ok(out)
}

/// One published port in the compose model.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PortEntry {
    pub target: u16,
    pub published: u16,
    pub protocol: String,
    /// `ingress` or `host`.
    pub mode: String,
    /// The host address given in the short syntax, which Swarm cannot honour.
    pub ignored_host_ip: Option<String>,
}

/// Expands a short-syntax spec the way docker's `toServicePortConfigs` does: one entry per
/// target port, ordered by the string `"<port>/<proto>"`, and one per published port of a range.
pub fn expand_short(raw: &str) -> Result<Vec<PortEntry>, String> {
    let mut mappings = parse_port_spec(raw)?;
    mappings.sort_by_key(|m| format!("{}/{}", m.target, m.protocol));
    let mut out = Vec::new();
    for m in mappings {
        let ignored_host_ip = match m.host_ip.parse::<IpAddr>() {
            Ok(ip) if !ip.is_unspecified() => Some(m.host_ip.clone()),
            _ => None,
        };
        let published: Vec<u16> = if m.host_port.is_empty() {
            vec![0]
        } else {
            let (s, e) = parse_port_range(&m.host_port).map_err(|_| {
                format!(
                    "invalid hostport binding ({}) for port ({})",
                    m.host_port, m.target
                )
            })?;
            (s..=e).collect()
        };
        for p in published {
            out.push(PortEntry {
                target: m.target,
                published: p,
                protocol: m.protocol.clone(),
                mode: "ingress".to_string(),
                ignored_host_ip: ignored_host_ip.clone(),
            });
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn triples(raw: &str) -> Vec<(u16, u16, String)> {
        expand_short(raw)
            .unwrap()
            .into_iter()
            .map(|p| (p.target, p.published, p.protocol))
            .collect()
    }

    #[test]
    fn short_syntax_forms() {
        assert_eq!(triples("8080:80"), vec![(80, 8080, "tcp".into())]);
        assert_eq!(triples("8080:80/UDP"), vec![(80, 8080, "udp".into())]);
        assert_eq!(triples("80"), vec![(80, 0, "tcp".into())]);
        assert_eq!(
            triples("8080-8081:80-81"),
            vec![(80, 8080, "tcp".into()), (81, 8081, "tcp".into())]
        );
        // Docker orders by the string "<port>/<proto>", so 10 sorts before 9.
        assert_eq!(
            triples("9-10"),
            vec![(10, 0, "tcp".into()), (9, 0, "tcp".into())]
        );
        assert_eq!(
            triples("8000-8001:80"),
            vec![(80, 8000, "tcp".into()), (80, 8001, "tcp".into())]
        );
        let with_ip = expand_short("127.0.0.1:9000:9000").unwrap();
        assert_eq!(with_ip[0].ignored_host_ip.as_deref(), Some("127.0.0.1"));
        assert_eq!(
            expand_short("0.0.0.0:9000:9000").unwrap()[0].ignored_host_ip,
            None
        );
        assert_eq!(triples("[::1]:53:53/udp"), vec![(53, 53, "udp".into())]);
    }

    #[test]
    fn short_syntax_errors() {
        assert!(expand_short("99999:80").is_err());
        assert!(expand_short("80/icmp").is_err());
        assert!(expand_short("8080-8082:80-81").is_err());
        assert!(expand_short("81-80").is_err());
        assert!(expand_short("a:80").is_err());
        assert!(expand_short("").is_err());
        assert!(expand_short("foo:8080:80").is_err());
    }
}
