//! Where and on what the benchmark ran: the report's first line.

use std::path::Path;
use std::process::Command;
use std::time::{SystemTime, UNIX_EPOCH};

/// The report's first line, but for the binary.
#[derive(Clone, Debug)]
pub struct Meta {
    /// UTC, to the minute: `2026-11-29T10:13Z`.
    pub date: String,
    pub cpu: String,
    /// CPUs this process may run on.
    pub cores: usize,
    pub kernel: String,
    /// Short commit of the repository, `+dirty` with uncommitted changes to tracked files.
    pub commit: String,
    /// The Debian package version of the reference plugins.
    pub cni_plugins: String,
}

impl Meta {
    /// Gathers it now (run it in this process's own mount namespace).
    pub fn gather(repo: &Path) -> Meta {
        Meta {
            date: utc_minute(SystemTime::now()),
            cpu: cpu_model().unwrap_or_else(|| "?".into()),
            cores: std::thread::available_parallelism().map_or(0, |n| n.get()),
            kernel: read_trimmed("/proc/sys/kernel/osrelease").unwrap_or_else(|| "?".into()),
            commit: commit(repo).unwrap_or_else(|| "unknown".into()),
            cni_plugins: output(
                "dpkg-query",
                &["-W", "-f=${Version}", "containernetworking-plugins"],
            )
            .unwrap_or_else(|| "unknown".into()),
        }
    }
}

/// The first field of /proc/loadavg (the 1-minute load average).
pub fn load_average() -> String {
    read_trimmed("/proc/loadavg")
        .and_then(|l| l.split_whitespace().next().map(str::to_string))
        .unwrap_or_else(|| "?".into())
}

fn cpu_model() -> Option<String> {
    let info = std::fs::read_to_string("/proc/cpuinfo").ok()?;
    info.lines()
        .find(|l| l.starts_with("model name"))
        .and_then(|l| l.split_once(": "))
        .map(|(_, v)| v.trim().to_string())
}

fn commit(repo: &Path) -> Option<String> {
    let dir = repo.to_str()?;
    let rev = output("git", &["-C", dir, "rev-parse", "--short", "HEAD"])?;
    let dirty = output(
        "git",
        &["-C", dir, "status", "--porcelain", "--untracked-files=no"],
    )?;
    Some(if dirty.is_empty() {
        rev
    } else {
        format!("{rev}+dirty")
    })
}

/// A command's trimmed stdout, if it ran and succeeded.
fn output(program: &str, args: &[&str]) -> Option<String> {
    let out = Command::new(program).args(args).output().ok()?;
    out.status
        .success()
        .then(|| String::from_utf8_lossy(&out.stdout).trim().to_string())
}

fn read_trimmed(path: &str) -> Option<String> {
    std::fs::read_to_string(path)
        .ok()
        .map(|s| s.trim().to_string())
}

/// `t` as `YYYY-MM-DDTHH:MMZ`.
pub fn utc_minute(t: SystemTime) -> String {
    let secs = match t.duration_since(UNIX_EPOCH) {
        Ok(d) => i64::try_from(d.as_secs()).unwrap_or(i64::MAX),
        Err(e) => -i64::try_from(e.duration().as_secs()).unwrap_or(i64::MAX),
    };
    let (days, rest) = (secs.div_euclid(86_400), secs.rem_euclid(86_400));
    let (y, m, d) = civil_from_days(days);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}Z",
        rest / 3600,
        rest % 3600 / 60
    )
}

/// The proleptic Gregorian date `days` after 1970-01-01 (H. Hinnant's algorithm).
fn civil_from_days(days: i64) -> (i64, i64, i64) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    (y, m, d)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn at(secs: u64) -> String {
        utc_minute(UNIX_EPOCH + Duration::from_secs(secs))
    }

    #[test]
    fn utc_dates() {
        assert_eq!(at(0), "1970-01-01T00:00Z");
        assert_eq!(at(1_700_000_000), "2023-11-14T22:13Z");
        assert_eq!(at(951_782_400), "2000-02-29T00:00Z");
        assert_eq!(at(1_798_761_599), "2026-12-31T23:59Z");
        assert_eq!(
            utc_minute(UNIX_EPOCH - Duration::from_secs(60)),
            "1969-12-31T23:59Z"
        );
    }

    #[test]
    fn days_round_trip_through_month_ends() {
        // Day numbers increase by one per day: the date sequence has no gaps or repeats.
        let mut prev = civil_from_days(-1);
        for days in 0..(366 * 30) {
            let cur = civil_from_days(days);
            let next_day = (prev.0, prev.1, prev.2 + 1);
            let next_month = (prev.0, prev.1 + 1, 1);
            let next_year = (prev.0 + 1, 1, 1);
            assert!(
                cur == next_day || cur == next_month || cur == next_year,
                "{prev:?} -> {cur:?}"
            );
            prev = cur;
        }
    }
}
