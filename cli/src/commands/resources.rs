//! `--limit-cpu`, `--limit-memory`, `--limit-pids`, `--reserve-cpu`,
//! `--reserve-memory` on `service create` and `service update`: read as
//! docker reads them (`crate::units`); an unset flag leaves the value as
//! it is, `0` removes it.

use clap::Args;
use shoal_proto::types::v1::{ResourceRequirements, TaskSpec};

use crate::units;

#[derive(Debug, Clone, Default, Args)]
pub struct ResourceFlags {
    /// Limit CPUs
    #[arg(long, value_name = "decimal", value_parser = units::nano_cpus)]
    pub limit_cpu: Option<i64>,
    /// Limit Memory
    #[arg(long, value_name = "bytes", value_parser = units::ram_in_bytes)]
    pub limit_memory: Option<i64>,
    /// Limit maximum number of processes (default 0 = unlimited)
    #[arg(long, value_name = "int")]
    pub limit_pids: Option<i64>,
    /// Reserve CPUs
    #[arg(long, value_name = "decimal", value_parser = units::nano_cpus)]
    pub reserve_cpu: Option<i64>,
    /// Reserve Memory
    #[arg(long, value_name = "bytes", value_parser = units::ram_in_bytes)]
    pub reserve_memory: Option<i64>,
}

impl ResourceFlags {
    /// Writes the given flags into the task's resources; a task that had
    /// none gets them only when a flag is given.
    pub fn apply(&self, task: &mut TaskSpec) {
        let given = [
            self.limit_cpu,
            self.limit_memory,
            self.limit_pids,
            self.reserve_cpu,
            self.reserve_memory,
        ];
        if given.iter().all(Option::is_none) {
            return;
        }
        let r = task
            .resources
            .get_or_insert_with(ResourceRequirements::default);
        let fields = [
            (self.limit_cpu, &mut r.limit_nano_cpus),
            (self.limit_memory, &mut r.limit_memory_bytes),
            (self.limit_pids, &mut r.limit_pids),
            (self.reserve_cpu, &mut r.reserve_nano_cpus),
            (self.reserve_memory, &mut r.reserve_memory_bytes),
        ];
        for (flag, field) in fields {
            if let Some(value) = flag {
                *field = value;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_given_flags_change_and_nothing_is_added_without_one() {
        let mut task = TaskSpec::default();
        ResourceFlags::default().apply(&mut task);
        assert_eq!(task.resources, None);
        ResourceFlags {
            limit_memory: Some(64 << 20),
            reserve_cpu: Some(250_000_000),
            ..Default::default()
        }
        .apply(&mut task);
        ResourceFlags {
            limit_pids: Some(100),
            reserve_cpu: Some(0),
            ..Default::default()
        }
        .apply(&mut task);
        assert_eq!(
            task.resources,
            Some(ResourceRequirements {
                limit_memory_bytes: 64 << 20,
                limit_pids: 100,
                ..Default::default()
            })
        );
    }
}
