//! The node policy: which file, its owner and mode, whether the plugin accepts it, and what
//! it lets a network config decide.

use std::os::unix::fs::MetadataExt;
use std::path::Path;

use crate::error::Error;
use crate::node::policy::NodePolicy;

use super::report::Report;

const NAME: &str = "policy";

/// Checks the policy at `path` (`Err`: the environment names no usable path) and returns
/// the policy the plugin would work under; when the plugin would refuse the file, the
/// secure defaults, so the other checks can still run (every ADD fails meanwhile).
pub(super) fn check(report: &mut Report, path: Result<&Path, &Error>) -> NodePolicy {
    let path = match path {
        Ok(p) => p,
        Err(e) => {
            report.fail(
                NAME,
                e.to_string(),
                "set AMD_HOST_DEVICE_NODE_POLICY to an absolute path, or unset it for \
                 /etc/amd-host-device/node.json",
            );
            return NodePolicy::default();
        }
    };
    let meta = match std::fs::metadata(path) {
        Ok(m) => m,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            report.ok(
                NAME,
                format!(
                    "no file at {}: the secure defaults ({})",
                    path.display(),
                    summary(&NodePolicy::default())
                ),
            );
            return NodePolicy {
                source: path.to_path_buf(),
                ..NodePolicy::default()
            };
        }
        Err(e) => {
            report.fail(
                NAME,
                format!("{}: {e}", path.display()),
                "make it a root-owned file the plugin can read",
            );
            return NodePolicy::default();
        }
    };
    let owner = format!(
        "{} (uid {}, mode {:04o})",
        path.display(),
        meta.uid(),
        meta.mode() & 0o7777
    );
    match NodePolicy::load_from(path) {
        Ok(policy) => {
            report.ok(NAME, format!("{owner}: parsed; {}", summary(&policy)));
            warn_on_a_writable_directory(report, path);
            policy
        }
        Err(e) => {
            report.fail(
                NAME,
                format!("{owner}: every ADD fails (code 7): {e}"),
                format!(
                    "make it a JSON object of known keys owned by root and writable by no \
                     one else (chown root:root {0}; chmod 0644 {0}); docs/node-policy.md",
                    path.display()
                ),
            );
            NodePolicy {
                source: path.to_path_buf(),
                ..NodePolicy::default()
            }
        }
    }
}

/// What the policy decides, in a few words.
fn summary(p: &NodePolicy) -> String {
    let mut s = format!(
        "NADs may override {}; delegates {}; IPAM types {}; stateDir {}",
        if p.nad_may_override.is_empty() {
            "nothing".to_owned()
        } else {
            p.nad_may_override.join(", ")
        },
        p.delegates.join(", "),
        if p.ipam_types.is_empty() {
            "none".to_owned()
        } else {
            p.ipam_types.join(", ")
        },
        p.state_dir.display()
    );
    for (allowed, key) in [
        (p.allow_default_route_device, "allowDefaultRouteDevice"),
        (p.allow_enslaved_device, "allowEnslavedDevice"),
        (p.allow_unverified_selection, "allowUnverifiedSelection"),
    ] {
        if allowed {
            s.push_str(&format!("; {key}"));
        }
    }
    s
}

/// A directory others may write lets them put another file in the policy's place.
fn warn_on_a_writable_directory(report: &mut Report, path: &Path) {
    let Some(dir) = path.parent() else {
        return;
    };
    let Ok(meta) = std::fs::metadata(dir) else {
        return;
    };
    let sticky = meta.mode() & 0o1000 != 0;
    if meta.uid() != 0 || (meta.mode() & 0o022 != 0 && !sticky) {
        report.warn(
            "policy directory",
            format!(
                "{} (uid {}, mode {:04o}) lets others replace the policy file",
                dir.display(),
                meta.uid(),
                meta.mode() & 0o7777
            ),
            format!("chown root:root {0}; chmod 0755 {0}", dir.display()),
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::admin::doctor::report::Status;
    use std::os::unix::fs::PermissionsExt;

    fn write(dir: &Path, text: &str, mode: u32) -> std::path::PathBuf {
        let path = dir.join("node.json");
        std::fs::write(&path, text).unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(mode)).unwrap();
        path
    }

    fn checked(path: &Path) -> (NodePolicy, Report) {
        let mut report = Report::default();
        let policy = check(&mut report, Ok(path));
        (policy, report)
    }

    #[test]
    fn a_sound_file_is_ok_and_says_what_nads_may_decide() {
        if !nix::unistd::geteuid().is_root() {
            eprintln!("skipped: the policy file must be root's");
            return;
        }
        let tmp = tempfile::tempdir().unwrap();
        std::fs::set_permissions(tmp.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
        let path = write(
            tmp.path(),
            r#"{"stateDir": "/s", "nadMayOverride": ["logLevel"]}"#,
            0o644,
        );
        let (policy, report) = checked(&path);
        assert_eq!(policy.state_dir, Path::new("/s"));
        let [c] = report.checks.as_slice() else {
            panic!("{:?}", report.checks)
        };
        assert_eq!(c.status, Status::Ok);
        assert!(
            c.detail.contains("(uid 0, mode 0644): parsed"),
            "{}",
            c.detail
        );
        assert!(
            c.detail.contains("NADs may override logLevel;")
                && c.detail.contains("; IPAM types static;"),
            "{}",
            c.detail
        );
    }

    #[test]
    fn a_writable_or_broken_file_fails_and_the_defaults_stand_in() {
        if !nix::unistd::geteuid().is_root() {
            eprintln!("skipped: the policy file must be root's");
            return;
        }
        let tmp = tempfile::tempdir().unwrap();
        for (text, mode, why) in [
            (r#"{"stateDir": "/s"}"#, 0o664, "group- or world-writable"),
            ("{", 0o644, "not valid JSON"),
        ] {
            let path = write(tmp.path(), text, mode);
            let (policy, report) = checked(&path);
            assert_eq!(policy.state_dir, NodePolicy::default().state_dir);
            let c = &report.checks[0];
            assert_eq!(c.status, Status::Fail, "{c:?}");
            assert!(c.detail.contains(why), "{}", c.detail);
            assert!(c.fix.as_deref().unwrap().contains("chmod 0644"), "{c:?}");
        }
    }

    #[test]
    fn no_file_is_the_secure_defaults() {
        let tmp = tempfile::tempdir().unwrap();
        let (policy, report) = checked(&tmp.path().join("none.json"));
        assert_eq!(policy.delegates, ["host-device"]);
        assert_eq!(report.checks[0].status, Status::Ok);
        assert!(report.checks[0].detail.contains("the secure defaults"));
    }

    #[test]
    fn a_directory_others_may_write_is_a_warning() {
        if !nix::unistd::geteuid().is_root() {
            eprintln!("skipped: the policy file must be root's");
            return;
        }
        let tmp = tempfile::tempdir().unwrap();
        std::fs::set_permissions(tmp.path(), std::fs::Permissions::from_mode(0o777)).unwrap();
        let path = write(tmp.path(), "{}", 0o644);
        let (_, report) = checked(&path);
        assert_eq!(report.checks[1].name, "policy directory");
        assert_eq!(report.checks[1].status, Status::Warn);
    }
}
