//! Turning `user`, `uid`, `user:group` or `uid:gid` into ids, reading the image's own
//! `/etc/passwd` and `/etc/group` (as Docker does) when names are involved.

use containerd_client::types::Mount;
use nix::mount::{MntFlags, MsFlags};
use std::path::Path;

#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct ResolvedUser {
    pub uid: u32,
    pub gid: u32,
    pub additional_gids: Vec<u32>,
}

/// Numeric `uid:gid` needs no lookup; everything else reads the image's files.
pub(crate) fn needs_lookup(user: &str) -> bool {
    match user.split_once(':') {
        Some((uid, gid)) => uid.parse::<u32>().is_err() || gid.parse::<u32>().is_err(),
        None => !user.is_empty(),
    }
}

/// Resolve `user` against the image's passwd and group files (`None` when the image has none).
pub(crate) fn resolve(
    user: &str,
    passwd: Option<&str>,
    group: Option<&str>,
) -> Result<ResolvedUser, String> {
    if user.is_empty() {
        return Ok(ResolvedUser {
            uid: 0,
            gid: 0,
            additional_gids: Vec::new(),
        });
    }
    let (user_part, group_part) = match user.split_once(':') {
        Some((u, g)) => (u, Some(g)),
        None => (user, None),
    };
    let entries: Vec<Vec<&str>> = passwd
        .unwrap_or_default()
        .lines()
        .map(|l| l.split(':').collect::<Vec<_>>())
        .filter(|fields| fields.len() >= 4)
        .collect();
    let by_name = entries.iter().find(|f| f[0] == user_part);
    let (uid, primary_gid, name) = match user_part.parse::<u32>() {
        Ok(uid) => {
            let entry = entries.iter().find(|f| f[2].parse::<u32>() == Ok(uid));
            let gid = entry.and_then(|f| f[3].parse().ok()).unwrap_or(0);
            (uid, gid, entry.map(|f| f[0]))
        }
        Err(_) => {
            if passwd.is_none() {
                return Err("the image has no /etc/passwd to look the name up in".to_string());
            }
            let entry = by_name.ok_or("no such user in the image's /etc/passwd")?;
            let uid = entry[2]
                .parse()
                .map_err(|_| format!("bad uid {:?} in /etc/passwd", entry[2]))?;
            let gid = entry[3]
                .parse()
                .map_err(|_| format!("bad gid {:?} in /etc/passwd", entry[3]))?;
            (uid, gid, Some(entry[0]))
        }
    };
    let groups: Vec<Vec<&str>> = group
        .unwrap_or_default()
        .lines()
        .map(|l| l.split(':').collect::<Vec<_>>())
        .filter(|fields| fields.len() >= 3)
        .collect();
    let gid = match group_part {
        None => primary_gid,
        Some(g) => match g.parse::<u32>() {
            Ok(gid) => gid,
            Err(_) => {
                if group.is_none() {
                    return Err("the image has no /etc/group to look the group up in".to_string());
                }
                let entry = groups
                    .iter()
                    .find(|f| f[0] == g)
                    .ok_or_else(|| format!("no group {g:?} in the image's /etc/group"))?;
                entry[2]
                    .parse()
                    .map_err(|_| format!("bad gid {:?} in /etc/group", entry[2]))?
            }
        },
    };
    let mut additional_gids = Vec::new();
    if let (Some(name), None) = (name, group_part) {
        for fields in &groups {
            let members = fields.get(3).copied().unwrap_or_default();
            if members.split(',').any(|m| m == name) {
                if let Ok(extra) = fields[2].parse::<u32>() {
                    if extra != gid && !additional_gids.contains(&extra) {
                        additional_gids.push(extra);
                    }
                }
            }
        }
    }
    Ok(ResolvedUser {
        uid,
        gid,
        additional_gids,
    })
}

/// Adds `--group-add` groups (gids, or names from the image's `/etc/group`)
/// to the supplementary ones.
pub(crate) fn add_groups(
    user: &mut ResolvedUser,
    extra: &[String],
    group: Option<&str>,
) -> Result<(), String> {
    for name in extra {
        let gid = match name.parse::<u32>() {
            Ok(gid) => gid,
            Err(_) => group
                .unwrap_or_default()
                .lines()
                .map(|l| l.split(':').collect::<Vec<_>>())
                .find(|fields| fields.len() >= 3 && fields[0] == name)
                .and_then(|fields| fields[2].parse().ok())
                .ok_or_else(|| format!("no group {name:?} in the image's /etc/group"))?,
        };
        if gid != user.gid && !user.additional_gids.contains(&gid) {
            user.additional_gids.push(gid);
        }
    }
    Ok(())
}

/// Whether `--group-add` names a group by name (which needs the image's files).
pub(crate) fn groups_need_lookup(groups: &[String]) -> bool {
    groups.iter().any(|g| g.parse::<u32>().is_err())
}

/// Mount a snapshot read-only at `target`, read `/etc/passwd` and `/etc/group` from it, and
/// unmount. Files that are missing or symlinks (which could point at the host) count as absent.
pub(crate) fn read_account_files(
    mounts: &[Mount],
    target: &Path,
) -> std::io::Result<(Option<String>, Option<String>)> {
    std::fs::create_dir_all(target)?;
    let mounted = mount_all(mounts, target);
    let result = mounted.map(|()| {
        (
            read_plain(&target.join("etc"), "passwd"),
            read_plain(&target.join("etc"), "group"),
        )
    });
    let _ = nix::mount::umount2(target, MntFlags::MNT_DETACH);
    let _ = std::fs::remove_dir(target);
    result
}

fn read_plain(dir: &Path, name: &str) -> Option<String> {
    let dir_meta = std::fs::symlink_metadata(dir).ok()?;
    if !dir_meta.is_dir() {
        return None;
    }
    let path = dir.join(name);
    let meta = std::fs::symlink_metadata(&path).ok()?;
    if !meta.is_file() {
        return None;
    }
    std::fs::read_to_string(path).ok()
}

pub(crate) fn mount_all(mounts: &[Mount], target: &Path) -> std::io::Result<()> {
    if mounts.is_empty() {
        return Err(std::io::Error::other("snapshot has no mounts"));
    }
    for mount in mounts {
        let mut flags = MsFlags::MS_RDONLY;
        let mut data = Vec::new();
        for option in &mount.options {
            match option.as_str() {
                "bind" => flags |= MsFlags::MS_BIND,
                "rbind" => flags |= MsFlags::MS_BIND | MsFlags::MS_REC,
                "ro" => flags |= MsFlags::MS_RDONLY,
                "rw" => {}
                other => data.push(other),
            }
        }
        let data = data.join(",");
        nix::mount::mount(
            Some(mount.source.as_str()),
            target,
            Some(mount.r#type.as_str()),
            flags,
            (!data.is_empty()).then_some(data.as_str()),
        )
        .map_err(std::io::Error::from)?;
        if flags.contains(MsFlags::MS_BIND) {
            // A bind mount ignores MS_RDONLY until remounted.
            let _ = nix::mount::mount(
                None::<&str>,
                target,
                None::<&str>,
                MsFlags::MS_BIND | MsFlags::MS_REMOUNT | MsFlags::MS_RDONLY,
                None::<&str>,
            );
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    const PASSWD: &str = "root:x:0:0:root:/root:/bin/sh\nwww-data:x:33:33::/var/www:/bin/false\napp:x:1000:1000::/home/app:/bin/sh\n";
    const GROUP: &str = "root:x:0:\nwww-data:x:33:\napp:x:1000:\nextra:x:2000:app,www-data\n";

    #[test]
    fn names_resolve_from_the_image_files() {
        let user = resolve("app", Some(PASSWD), Some(GROUP)).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(
            user,
            ResolvedUser {
                uid: 1000,
                gid: 1000,
                additional_gids: vec![2000]
            }
        );
        let user =
            resolve("www-data:extra", Some(PASSWD), Some(GROUP)).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!((user.uid, user.gid), (33, 2000));
    }

    #[test]
    fn numeric_users_need_no_files() {
        let user = resolve("1234:5678", None, None).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!((user.uid, user.gid), (1234, 5678));
        assert!(!needs_lookup("1234:5678"));
        assert!(needs_lookup("1234"));
        let user = resolve("1234", None, None).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!((user.uid, user.gid), (1234, 0));
        let user = resolve("33", Some(PASSWD), None).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!((user.uid, user.gid), (33, 33));
    }

    #[test]
    fn added_groups_come_by_gid_or_by_name_from_the_image() {
        let mut user = resolve("1000:1000", None, None).unwrap();
        add_groups(
            &mut user,
            &["extra".into(), "4242".into(), "1000".into()],
            Some(GROUP),
        )
        .unwrap();
        assert_eq!(user.additional_gids, [2000, 4242]);
        assert!(groups_need_lookup(&["extra".into()]));
        assert!(!groups_need_lookup(&["4242".into()]));
        let err = add_groups(&mut user, &["ghost".into()], Some(GROUP)).unwrap_err();
        assert!(err.contains("ghost"), "{err}");
    }

    #[test]
    fn unknown_names_fail_clearly() {
        let err = resolve("ghost", Some(PASSWD), Some(GROUP)).err();
        assert_eq!(
            err.as_deref(),
            Some("no such user in the image's /etc/passwd")
        );
        let err = resolve("app", None, None).err();
        assert_eq!(
            err.as_deref(),
            Some("the image has no /etc/passwd to look the name up in")
        );
    }
}
