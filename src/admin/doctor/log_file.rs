//! The log file the policy names: a regular file (never a symlink, which the plugin
//! refuses to write through) that can be appended to, or one the first line can create.

use std::path::Path;

use nix::unistd::{access, AccessFlags};

use super::report::Report;

const NAME: &str = "log-file";

pub(super) fn check(report: &mut Report, log_file: Option<&Path>) {
    let Some(path) = log_file else {
        report.ok(
            NAME,
            "none set: the plugin logs to its stderr (the runtime's log)",
        );
        return;
    };
    let fix = format!(
        "make {} a regular, root-writable file (or remove it: the plugin creates it)",
        path.display()
    );
    let lost = "the plugin logs to its stderr instead";
    match path.symlink_metadata() {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            let parent = path.parent().unwrap_or(Path::new("/"));
            match access(parent, AccessFlags::W_OK | AccessFlags::X_OK) {
                Ok(()) => report.ok(
                    NAME,
                    format!(
                        "{} does not exist yet; the first log line creates it",
                        path.display()
                    ),
                ),
                Err(e) => report.fail(
                    NAME,
                    format!(
                        "{} cannot be created in {}: {}; {lost}",
                        path.display(),
                        parent.display(),
                        e.desc()
                    ),
                    format!("create {} (a writable directory)", parent.display()),
                ),
            }
        }
        Err(e) => report.fail(NAME, format!("{}: {e}; {lost}", path.display()), fix),
        Ok(m) if m.file_type().is_symlink() => report.fail(
            NAME,
            format!(
                "{} is a symlink, which the plugin never writes through; {lost}",
                path.display()
            ),
            fix,
        ),
        Ok(m) if !m.is_file() => report.fail(
            NAME,
            format!("{} is not a regular file; {lost}", path.display()),
            fix,
        ),
        Ok(_) => match access(path, AccessFlags::W_OK) {
            Ok(()) => report.ok(
                NAME,
                format!("{}: a regular file, writable", path.display()),
            ),
            Err(e) => report.fail(
                NAME,
                format!("{}: {}; {lost}", path.display(), e.desc()),
                fix,
            ),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::admin::doctor::report::Status;

    fn status_of(path: Option<&Path>) -> (Status, String) {
        let mut report = Report::default();
        check(&mut report, path);
        let c = report.checks.remove(0);
        (c.status, c.detail)
    }

    #[test]
    fn a_regular_writable_or_creatable_file_is_ok_anything_else_fails() {
        let tmp = tempfile::tempdir().unwrap();
        let file = tmp.path().join("plugin.log");
        assert_eq!(status_of(None).0, Status::Ok);
        let (s, d) = status_of(Some(&file));
        assert!(s == Status::Ok && d.contains("does not exist yet"), "{d}");
        std::fs::write(&file, "").unwrap();
        let (s, d) = status_of(Some(&file));
        assert!(
            s == Status::Ok && d.contains("regular file, writable"),
            "{d}"
        );
        let link = tmp.path().join("link.log");
        std::os::unix::fs::symlink(&file, &link).unwrap();
        let (s, d) = status_of(Some(&link));
        assert!(s == Status::Fail && d.contains("symlink"), "{d}");
        let (s, d) = status_of(Some(tmp.path()));
        assert!(s == Status::Fail && d.contains("not a regular file"), "{d}");
        let (s, _) = status_of(Some(&tmp.path().join("no/such/dir/x.log")));
        assert_eq!(s, Status::Fail);
    }
}
