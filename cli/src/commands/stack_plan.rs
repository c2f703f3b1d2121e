//! What a stack deploy changes, as the manager answered `DeployStack`:
//! docker's lines for a deploy (`Creating service shop_web`), and the plan
//! of `stack deploy --dry-run` and `stack diff`, field by field.

use std::io::{self, Write};

use shoal_proto::control::v1::stack_change::Action;
use shoal_proto::control::v1::{FieldChange, StackChange};

/// Writes docker's line for each change a deploy made.
pub fn write_done(changes: &[StackChange], out: &mut dyn Write) -> io::Result<()> {
    for change in changes {
        let (kind, name, id) = (change.kind.as_str(), &change.name, &change.id);
        match (kind, change.action()) {
            (_, Action::Unchanged) => {}
            ("network", _) => writeln!(out, "Creating network {name}")?,
            ("secret", _) => writeln!(out, "Creating secret {name}")?,
            ("config", _) => writeln!(out, "Creating config {name}")?,
            (_, Action::Removed) => writeln!(out, "Removing service {name}")?,
            (_, Action::Created) => writeln!(out, "Creating service {name}")?,
            (_, Action::Updated) => writeln!(out, "Updating service {name} (id: {id})")?,
        }
    }
    Ok(())
}

/// Whether `changes` change anything.
pub fn changes_anything(changes: &[StackChange]) -> bool {
    changes.iter().any(|c| c.action() != Action::Unchanged)
}

/// Writes the plan: `+` created, `~` updated (with its fields), `-`
/// removed, then a summary line.
pub fn write_plan(stack: &str, changes: &[StackChange], out: &mut dyn Write) -> io::Result<()> {
    for change in changes {
        let (kind, name) = (&change.kind, &change.name);
        match change.action() {
            Action::Unchanged => {}
            Action::Created => writeln!(out, "+ {kind} {name}")?,
            Action::Removed => writeln!(out, "- {kind} {name}")?,
            Action::Updated => {
                let rolls = if change.rolls {
                    " (tasks are replaced)"
                } else {
                    " (no task is replaced)"
                };
                writeln!(out, "~ {kind} {name}{rolls}")?;
                for field in &change.fields {
                    writeln!(out, "    {}", field_line(field))?;
                }
            }
        }
    }
    writeln!(out, "{}", summary(stack, changes))
}

fn field_line(field: &FieldChange) -> String {
    let value = |v: &str| {
        if v.is_empty() {
            "(unset)".to_string()
        } else {
            v.to_string()
        }
    };
    format!(
        "{}: {} -> {}",
        field.path,
        value(&field.before),
        value(&field.after)
    )
}

/// `Plan for stack shop: create 1 service, 1 network; update 1 service;
/// 2 services unchanged.`
fn summary(stack: &str, changes: &[StackChange]) -> String {
    let count = |kind: &str, action: Action| {
        changes
            .iter()
            .filter(|c| c.kind == kind && c.action() == action)
            .count()
    };
    let things = |action: Action| -> Vec<String> {
        ["service", "network", "secret", "config"]
            .iter()
            .filter_map(|kind| {
                let n = count(kind, action);
                (n > 0).then(|| format!("{n} {kind}{}", if n == 1 { "" } else { "s" }))
            })
            .collect()
    };
    let mut parts = Vec::new();
    for (verb, action) in [
        ("create", Action::Created),
        ("update", Action::Updated),
        ("remove", Action::Removed),
    ] {
        let things = things(action);
        if !things.is_empty() {
            parts.push(format!("{verb} {}", things.join(", ")));
        }
    }
    let unchanged = count("service", Action::Unchanged);
    let unchanged = format!(
        "{unchanged} service{} unchanged",
        if unchanged == 1 { "" } else { "s" }
    );
    if parts.is_empty() {
        format!("No changes to stack {stack}: {unchanged}.")
    } else {
        format!("Plan for stack {stack}: {}; {unchanged}.", parts.join("; "))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn change(
        kind: &str,
        name: &str,
        action: Action,
        fields: &[(&str, &str, &str)],
    ) -> StackChange {
        StackChange {
            kind: kind.into(),
            name: name.into(),
            id: format!("{name}-id"),
            action: action as i32,
            rolls: !fields.is_empty(),
            fields: fields
                .iter()
                .map(|(path, before, after)| FieldChange {
                    path: path.to_string(),
                    before: before.to_string(),
                    after: after.to_string(),
                })
                .collect(),
        }
    }

    fn plan(changes: &[StackChange]) -> String {
        let mut out = Vec::new();
        write_plan("shop", changes, &mut out).expect("write");
        String::from_utf8(out).expect("utf-8")
    }

    #[test]
    fn a_plan_names_every_change_and_the_fields_of_updates() {
        let changes = [
            change("network", "shop_default", Action::Created, &[]),
            change("network", "shop_back", Action::Unchanged, &[]),
            change("secret", "shop_pw", Action::Created, &[]),
            change("service", "shop_old", Action::Removed, &[]),
            change("service", "shop_api", Action::Created, &[]),
            change(
                "service",
                "shop_web",
                Action::Updated,
                &[
                    (
                        "TaskTemplate.ContainerSpec.Image",
                        "nginx:1.25",
                        "nginx:1.27",
                    ),
                    ("Labels[tier]", "", "front"),
                ],
            ),
            change("service", "shop_db", Action::Unchanged, &[]),
        ];
        assert_eq!(
            plan(&changes),
            "+ network shop_default\n\
             + secret shop_pw\n\
             - service shop_old\n\
             + service shop_api\n\
             ~ service shop_web (tasks are replaced)\n    \
                 TaskTemplate.ContainerSpec.Image: nginx:1.25 -> nginx:1.27\n    \
                 Labels[tier]: (unset) -> front\n\
             Plan for stack shop: create 1 service, 1 network, 1 secret; update 1 service; \
             remove 1 service; 1 service unchanged.\n"
        );
        assert!(changes_anything(&changes));
    }

    #[test]
    fn a_plan_without_changes_says_so() {
        let changes = [
            change("network", "shop_default", Action::Unchanged, &[]),
            change("service", "shop_web", Action::Unchanged, &[]),
            change("service", "shop_db", Action::Unchanged, &[]),
        ];
        assert_eq!(
            plan(&changes),
            "No changes to stack shop: 2 services unchanged.\n"
        );
        assert!(!changes_anything(&changes));
    }

    #[test]
    fn a_deploy_says_what_it_did_in_dockers_words() {
        let changes = [
            change("network", "shop_default", Action::Created, &[]),
            change("service", "shop_api", Action::Created, &[]),
            change(
                "service",
                "shop_web",
                Action::Updated,
                &[("Name", "a", "b")],
            ),
            change("service", "shop_old", Action::Removed, &[]),
            change("service", "shop_db", Action::Unchanged, &[]),
        ];
        let mut out = Vec::new();
        write_done(&changes, &mut out).expect("write");
        assert_eq!(
            String::from_utf8(out).expect("utf-8"),
            "Creating network shop_default\n\
             Creating service shop_api\n\
             Updating service shop_web (id: shop_web-id)\n\
             Removing service shop_old\n"
        );
    }
}
