//! One-line-per-event logging to stderr or a log file; never to stdout (the CNI protocol's).
//!
//! Every field of a line (the network name, container id and interface names of the
//! context, whatever a message quotes: a delegate's stderr, a pod name from `CNI_ARGS`) may
//! come from a tenant, so control characters are escaped: one event is always one line,
//! and no one can forge another. The log file is opened without following a symlink and
//! written only if it is a regular file.

use std::fmt;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::{Mutex, OnceLock};
use std::time::{SystemTime, UNIX_EPOCH};

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Default)]
pub enum LogLevel {
    Error,
    #[default]
    Info,
    Debug,
}

impl LogLevel {
    /// `error`, `info` or `debug`.
    pub fn parse(s: &str) -> Option<LogLevel> {
        match s {
            "error" => Some(LogLevel::Error),
            "info" => Some(LogLevel::Info),
            "debug" => Some(LogLevel::Debug),
            _ => None,
        }
    }
}

impl fmt::Display for LogLevel {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            LogLevel::Error => "error",
            LogLevel::Info => "info",
            LogLevel::Debug => "debug",
        })
    }
}

struct Logger {
    level: LogLevel,
    file: Option<PathBuf>,
    /// "ADD cid=... ifname=..." — who every line is about.
    context: String,
}

static LOGGER: OnceLock<Mutex<Logger>> = OnceLock::new();

fn logger() -> &'static Mutex<Logger> {
    LOGGER.get_or_init(|| {
        Mutex::new(Logger {
            level: LogLevel::Error,
            file: None,
            context: String::new(),
        })
    })
}

/// Sets where and how much to log, and the context every line carries.
pub fn configure(level: LogLevel, file: Option<&Path>, context: String) {
    let mut l = logger().lock().unwrap_or_else(|e| e.into_inner());
    l.level = level;
    l.file = file.map(Path::to_path_buf);
    l.context = context;
}

/// Adds the device (once it is known) to the context every later line carries.
pub fn set_device(name: &str) {
    let mut l = logger().lock().unwrap_or_else(|e| e.into_inner());
    if let Some(i) = l.context.find(" device=") {
        l.context.truncate(i);
    }
    l.context.push_str(&format!(" device={name}"));
}

pub fn enabled(level: LogLevel) -> bool {
    level <= logger().lock().unwrap_or_else(|e| e.into_inner()).level
}

pub fn write(level: LogLevel, args: fmt::Arguments<'_>) {
    let l = logger().lock().unwrap_or_else(|e| e.into_inner());
    if level > l.level {
        return;
    }
    let mut line = escape_controls(&format!("{} {level} {} {args}", timestamp(), l.context));
    line.push('\n');
    let written = l
        .file
        .as_ref()
        .is_some_and(|path| append_to_log_file(path, line.as_bytes()).is_ok());
    // Errors always reach stderr too, so the runtime's own log shows them.
    if !written || level == LogLevel::Error {
        let _ = std::io::stderr().write_all(line.as_bytes());
    }
}

/// `text` with every control character escaped (`\n`, `\r`, `\t`, `\u{1b}`, ...), so it
/// stays on one line and cannot carry terminal escapes; so are the Unicode line and
/// paragraph separators and the bidirectional controls, with which a tenant's string could
/// start a line of its own or make a log line read otherwise than it is stored.
pub fn escape_controls(text: &str) -> String {
    if !text.chars().any(needs_escape) {
        return text.to_owned();
    }
    let mut escaped = String::with_capacity(text.len() + 8);
    for c in text.chars() {
        if needs_escape(c) {
            escaped.extend(c.escape_default());
        } else {
            escaped.push(c);
        }
    }
    escaped
}

fn needs_escape(c: char) -> bool {
    c.is_control()
        || matches!(
            c,
            '\u{2028}' | '\u{2029}' | '\u{200e}' | '\u{200f}' | '\u{061c}'
        )
        || ('\u{202a}'..='\u{202e}').contains(&c)
        || ('\u{2066}'..='\u{2069}').contains(&c)
}

/// Appends one line to the log file: created 0600 if missing, never through a symlink,
/// never into anything but a regular file (a FIFO or a device planted there would block
/// or reach hardware), and closed on exec.
fn append_to_log_file(path: &Path, line: &[u8]) -> std::io::Result<()> {
    use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
    // Looked at before it is opened: opening a device node already reaches its driver (a
    // watchdog arms on open).
    let before = match std::fs::symlink_metadata(path) {
        Ok(m) if !m.is_file() => return Err(std::io::Error::other("not a regular file")),
        Ok(m) => Some((m.dev(), m.ino())),
        Err(_) => None,
    };
    let mut file = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .mode(0o600)
        .custom_flags(nix::libc::O_NOFOLLOW | nix::libc::O_CLOEXEC | nix::libc::O_NONBLOCK)
        .open(path)?;
    let opened = file.metadata()?;
    let replaced = before.is_some_and(|id| id != (opened.dev(), opened.ino()));
    if !opened.is_file() || replaced {
        return Err(std::io::Error::other("not a regular file"));
    }
    file.write_all(line)
}

#[macro_export]
macro_rules! log_error { ($($t:tt)*) => { $crate::log::write($crate::log::LogLevel::Error, format_args!($($t)*)) } }
#[macro_export]
macro_rules! log_info { ($($t:tt)*) => { $crate::log::write($crate::log::LogLevel::Info, format_args!($($t)*)) } }
#[macro_export]
macro_rules! log_debug { ($($t:tt)*) => { $crate::log::write($crate::log::LogLevel::Debug, format_args!($($t)*)) } }

/// RFC 3339 UTC timestamp with milliseconds, without pulling in a date crate.
pub fn timestamp() -> String {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default();
    format_timestamp(now.as_secs(), now.subsec_millis())
}

fn format_timestamp(secs: u64, millis: u32) -> String {
    let days = (secs / 86_400) as i64;
    let rem = secs % 86_400;
    let (y, m, d) = civil_from_days(days);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}.{millis:03}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

/// Howard Hinnant's days-to-civil algorithm.
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (if m <= 2 { y + 1 } else { y }, m, d)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timestamps_are_rfc3339_utc() {
        assert_eq!(format_timestamp(0, 0), "1970-01-01T00:00:00.000Z");
        assert_eq!(
            format_timestamp(1_795_392_000, 5),
            "2026-11-23T00:00:00.005Z"
        );
        assert_eq!(
            format_timestamp(951_782_400 + 3661, 999),
            "2000-02-29T01:01:01.999Z"
        );
    }

    #[test]
    fn levels_are_ordered_by_verbosity() {
        assert!(LogLevel::Error < LogLevel::Info && LogLevel::Info < LogLevel::Debug);
    }

    #[test]
    fn control_characters_are_escaped_so_one_event_is_one_line() {
        assert_eq!(escape_controls("plain net1"), "plain net1");
        assert_eq!(
            escape_controls("x\n* * * * * root sh\r\u{1b}[2J\t"),
            "x\\n* * * * * root sh\\r\\u{1b}[2J\\t"
        );
        assert!(!escape_controls("a\u{85}b\u{7f}")
            .chars()
            .any(char::is_control));
        assert_eq!(
            escape_controls("a\u{2028}b\u{2029}c\u{202e}d\u{2067}e"),
            "a\\u{2028}b\\u{2029}c\\u{202e}d\\u{2067}e"
        );
        assert_eq!(escape_controls("ünïcode ✓"), "ünïcode ✓");
    }

    #[test]
    fn the_log_file_is_private_and_only_a_regular_file() {
        use std::os::unix::fs::PermissionsExt;
        let tmp = tempfile::tempdir().unwrap();
        let log = tmp.path().join("plugin.log");
        append_to_log_file(&log, b"one\n").unwrap();
        append_to_log_file(&log, b"two\n").unwrap();
        assert_eq!(std::fs::read_to_string(&log).unwrap(), "one\ntwo\n");
        assert_eq!(log.metadata().unwrap().permissions().mode() & 0o777, 0o600);
        let target = tmp.path().join("target");
        std::os::unix::fs::symlink(&target, tmp.path().join("link.log")).unwrap();
        assert!(append_to_log_file(&tmp.path().join("link.log"), b"x\n").is_err());
        assert!(!target.exists(), "a planted symlink is never followed");
        nix::unistd::mkfifo(&tmp.path().join("fifo.log"), nix::sys::stat::Mode::S_IRWXU).unwrap();
        assert!(append_to_log_file(&tmp.path().join("fifo.log"), b"x\n").is_err());
        std::fs::create_dir(tmp.path().join("dir.log")).unwrap();
        assert!(append_to_log_file(&tmp.path().join("dir.log"), b"x\n").is_err());
    }
}
