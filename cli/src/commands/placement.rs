//! Placement preferences on the command line: `service create
//! --placement-pref spread=node.labels.zone`, `service update
//! --placement-pref-add/--placement-pref-rm`, with docker's parser and
//! edit (the manager checks the descriptor).

use shoal_proto::types::v1::PlacementPreference;

/// docker's `placementPrefOpts.Set`: `spread=<descriptor>`, with its
/// messages.
pub fn preference(value: &str) -> Result<PlacementPreference, String> {
    let fields: Vec<&str> = value.split('=').collect();
    let [strategy, descriptor] = fields[..] else {
        return Err(r#"placement preference must be of the format "<strategy>=<arg>""#.into());
    };
    if strategy != "spread" {
        return Err(format!(
            "unsupported placement preference {strategy} (only spread is supported)"
        ));
    }
    Ok(PlacementPreference {
        spread_descriptor: descriptor.to_string(),
    })
}

/// docker's `updatePlacementPreferences`: every preference spreading over
/// a removed descriptor goes, then the added ones are appended (order
/// matters: the first preference is the outermost grouping).
pub fn edit_preferences(
    preferences: &mut Vec<PlacementPreference>,
    add: &[PlacementPreference],
    rm: &[PlacementPreference],
) {
    preferences.retain(|p| {
        !rm.iter()
            .any(|r| r.spread_descriptor == p.spread_descriptor)
    });
    preferences.extend(add.iter().cloned());
}

/// How docker prints preferences (`service inspect --pretty`).
pub fn shown(preferences: &[PlacementPreference]) -> String {
    let each: Vec<String> = preferences
        .iter()
        .map(|p| format!("spread={}", p.spread_descriptor))
        .collect();
    format!("[{}]", each.join(" "))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spread(d: &str) -> PlacementPreference {
        PlacementPreference {
            spread_descriptor: d.into(),
        }
    }

    #[test]
    fn preferences_parse_with_dockers_messages() {
        assert_eq!(
            preference("spread=node.labels.zone"),
            Ok(spread("node.labels.zone"))
        );
        assert_eq!(
            preference("node.labels.zone"),
            Err(r#"placement preference must be of the format "<strategy>=<arg>""#.into())
        );
        assert!(preference("spread=a=b").is_err());
        assert_eq!(
            preference("pack=node.labels.zone"),
            Err("unsupported placement preference pack (only spread is supported)".into())
        );
    }

    #[test]
    fn edits_remove_then_append_in_order() {
        let mut prefs = vec![spread("node.labels.zone"), spread("node.labels.rack")];
        edit_preferences(
            &mut prefs,
            &[spread("node.labels.zone"), spread("node.labels.row")],
            &[spread("node.labels.zone")],
        );
        assert_eq!(
            prefs,
            [
                spread("node.labels.rack"),
                spread("node.labels.zone"),
                spread("node.labels.row")
            ]
        );
        assert_eq!(
            shown(&prefs),
            "[spread=node.labels.rack spread=node.labels.zone spread=node.labels.row]"
        );
    }
}
