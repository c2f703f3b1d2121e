//! What this node has for tasks, as docker's engine reports it to Swarm:
//! its CPUs (in nano CPUs) and its memory (`MemTotal` of /proc/meminfo).
//! The scheduler sets tasks' reservations against these.

/// (nano CPUs, memory bytes); 0 for what cannot be read.
pub fn describe() -> (i64, i64) {
    let cpus = std::thread::available_parallelism().map_or(0, |n| n.get() as i64);
    let memory = std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|text| mem_total(&text))
        .unwrap_or(0);
    (cpus.saturating_mul(1_000_000_000), memory)
}

/// `MemTotal:  24531240 kB` in bytes.
fn mem_total(meminfo: &str) -> Option<i64> {
    let line = meminfo.lines().find(|l| l.starts_with("MemTotal:"))?;
    let mut words = line["MemTotal:".len()..].split_whitespace();
    let amount: i64 = words.next()?.parse().ok()?;
    match words.next() {
        Some("kB") => amount.checked_mul(1024),
        None => Some(amount),
        Some(_) => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn memory_is_read_from_meminfo() {
        let text = "MemTotal:       24531240 kB\nMemFree:        11822500 kB\n";
        assert_eq!(mem_total(text), Some(24_531_240 * 1024));
        assert_eq!(mem_total("MemFree: 1 kB\n"), None);
    }

    #[test]
    fn this_node_has_cpus_and_memory() {
        let (cpus, memory) = describe();
        assert!(cpus >= 1_000_000_000, "{cpus}");
        assert!(memory > 0, "{memory}");
    }
}
