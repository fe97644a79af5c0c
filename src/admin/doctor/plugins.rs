//! The plugins ADD runs: every delegate the policy allows (`host-device` first), and the
//! `static` IPAM host-device runs to put the captured addresses back. Each is looked for
//! the way the plugin looks (the runtime's `CNI_PATH`, given with `--cni-path`, then the
//! usual plugin directories, never this binary) and asked `VERSION`, which only reads.

use std::io::{Read, Write};
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use nix::sys::signal::Signal;
use serde::Deserialize;

use crate::cni::CniVersion;
use crate::host::delegate::{Delegate, DEFAULT_PLUGIN_DIRS};
use crate::node::policy::NodePolicy;

use super::report::{Report, Status};

/// The IPAM plugin host-device runs with the addresses ADD captured.
const STATIC_IPAM: &str = "static";
/// A plugin that does not answer VERSION in this long is reported as hung.
const VERSION_TIMEOUT: Duration = Duration::from_secs(10);

pub(super) fn check(report: &mut Report, policy: &NodePolicy, cni_path: &[String]) {
    for (i, name) in policy.delegates.iter().enumerate() {
        // Every NAD that names no delegate gets the first: without it nothing attaches.
        let missing = if i == 0 { Status::Fail } else { Status::Warn };
        check_plugin(report, name, cni_path, missing);
    }
    check_plugin(report, STATIC_IPAM, cni_path, Status::Fail);
}

/// The cniVersions the plugin sends its delegate (and host-device its IPAM): every spec
/// version a NAD may ask for, capped at what host-device understands.
fn versions_sent() -> Vec<&'static str> {
    let mut sent: Vec<&str> = CniVersion::ALL
        .iter()
        .map(|v| (*v).min(CniVersion::DELEGATE_MAX).as_str())
        .collect();
    sent.dedup();
    sent
}

fn check_plugin(report: &mut Report, name: &str, cni_path: &[String], missing: Status) {
    let check = format!("plugin {name}");
    let delegate = match Delegate::find(name, cni_path) {
        Ok(d) => d,
        Err(_) => {
            let mut searched: Vec<&str> = cni_path.iter().map(String::as_str).collect();
            searched.extend(DEFAULT_PLUGIN_DIRS);
            report.push(
                check,
                missing,
                format!(
                    "not found in {} (the runtime's CNI_PATH comes first at ADD: give it \
                     with --cni-path); every ADD that needs it fails (code 50)",
                    searched.join(", ")
                ),
                Some(
                    "install the reference CNI plugins in /opt/cni/bin (Debian: apt-get \
                     install containernetworking-plugins)"
                        .into(),
                ),
            );
            return;
        }
    };
    let binary = delegate.binary();
    match ask_version(binary) {
        Err(why) => report.fail(
            check,
            format!("{}: VERSION failed: {why}", binary.display()),
            format!("reinstall {name} (the reference CNI plugins)"),
        ),
        Ok(supported) => {
            let unsupported: Vec<&str> = versions_sent()
                .into_iter()
                .filter(|v| !supported.iter().any(|s| s == v))
                .collect();
            let found = format!("{} (supports {})", binary.display(), supported.join(", "));
            if unsupported.is_empty() {
                report.ok(check, found);
            } else {
                let status = if unsupported.contains(&CniVersion::DELEGATE_MAX.as_str()) {
                    Status::Fail
                } else {
                    Status::Warn
                };
                report.push(
                    check,
                    status,
                    format!(
                        "{found}: NADs at cniVersion {} will fail, as it is sent those",
                        unsupported.join(", ")
                    ),
                    Some(format!(
                        "install a newer {name} (containernetworking plugins 1.0 or later)"
                    )),
                );
            }
        }
    }
}

/// How long a plugin's pipes may stay open after it exited (a child of its holding them).
const OUTPUT_GRACE: Duration = Duration::from_millis(500);

/// A VERSION answer is a few hundred bytes; more is not read.
const MAX_ANSWER_BYTES: u64 = 64 << 10;

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct VersionAnswer {
    supported_versions: Vec<String>,
}

/// The spec versions plugin `binary` says it supports (CNI_COMMAND=VERSION, which changes
/// nothing). The whole exchange has one deadline: the plugin runs in a process group of its
/// own, its output is read while it runs (a full pipe never stalls it), and at the deadline
/// the group is killed, so neither the plugin nor a child it left holding its stdout can
/// keep doctor (the DaemonSet's init container) waiting.
fn ask_version(binary: &Path) -> Result<Vec<String>, String> {
    let mut child = Command::new(binary)
        .env_clear()
        .env("CNI_COMMAND", "VERSION")
        .env("PATH", "/usr/sbin:/usr/bin:/sbin:/bin")
        .process_group(0)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| format!("cannot run it: {e}"))?;
    let deadline = Instant::now() + VERSION_TIMEOUT;
    let stdout = read_in_background(child.stdout.take());
    let stderr = read_in_background(child.stderr.take());
    let request = format!(
        r#"{{"cniVersion":"{}"}}"#,
        CniVersion::DELEGATE_MAX.as_str()
    );
    // A plugin that exits without reading its stdin gives EPIPE here; its status tells more.
    let _ = child
        .stdin
        .take()
        .expect("stdin is piped")
        .write_all(request.as_bytes());
    let no_answer = || format!("no answer in {}s", VERSION_TIMEOUT.as_secs());
    let status = loop {
        match child.try_wait().map_err(|e| e.to_string())? {
            Some(status) => break status,
            None if Instant::now() >= deadline => {
                kill_group(&mut child);
                return Err(no_answer());
            }
            None => std::thread::sleep(Duration::from_millis(5)),
        }
    };
    // The plugin is done; a child it left behind may still hold its output open. Give
    // the pipes a moment, then kill what is left of its group: that closes them.
    let grace = Instant::now() + OUTPUT_GRACE;
    let until = |end: Instant| end.min(deadline).saturating_duration_since(Instant::now());
    let stdout = stdout.recv_timeout(until(grace)).or_else(|_| {
        kill_group(&mut child);
        stdout.recv_timeout(until(deadline))
    });
    let stderr = stderr.recv_timeout(until(grace)).or_else(|_| {
        kill_group(&mut child);
        stderr.recv_timeout(until(deadline))
    });
    let (Ok(stdout), Ok(stderr)) = (stdout, stderr) else {
        return Err(no_answer());
    };
    let (text, stderr) = (
        String::from_utf8_lossy(&stdout),
        String::from_utf8_lossy(&stderr),
    );
    if !status.success() {
        return Err(format!("{status}: {}", snippet(&text, &stderr)));
    }
    serde_json::from_slice::<VersionAnswer>(&stdout)
        .map(|a| a.supported_versions)
        .map_err(|e| format!("not a VERSION answer ({e}): {}", snippet(&text, &stderr)))
}

/// Everything `pipe` gives until its end, read on a thread of its own; the receiver gets it
/// once the pipe is closed (an unread pipe then never blocks the writer).
fn read_in_background(pipe: Option<impl Read + Send + 'static>) -> mpsc::Receiver<Vec<u8>> {
    let (sender, receiver) = mpsc::channel();
    std::thread::spawn(move || {
        let mut bytes = Vec::new();
        if let Some(mut pipe) = pipe {
            let _ = pipe.by_ref().take(MAX_ANSWER_BYTES).read_to_end(&mut bytes);
        }
        let _ = sender.send(bytes);
    });
    receiver
}

/// Kills the plugin's whole process group (it leads it) and reaps the plugin.
fn kill_group(child: &mut std::process::Child) {
    if let Ok(pid) = i32::try_from(child.id()) {
        let _ = nix::sys::signal::killpg(nix::unistd::Pid::from_raw(pid), Signal::SIGKILL);
    }
    let _ = child.wait();
}

fn snippet(stdout: &str, stderr: &str) -> String {
    let text = format!("{} {}", stdout.trim(), stderr.trim());
    match text.trim() {
        "" => "no output".into(),
        t => t.chars().take(200).collect(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    fn fake_plugin(dir: &Path, name: &str, script: &str) {
        let p = dir.join(name);
        std::fs::write(&p, format!("#!/bin/sh\n{script}\n")).unwrap();
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o755)).unwrap();
    }

    fn report_for(names: &[&str], dir: &Path) -> Report {
        let policy = NodePolicy {
            delegates: names.iter().map(|n| n.to_string()).collect(),
            ..NodePolicy::default()
        };
        let mut report = Report::default();
        check(&mut report, &policy, &[dir.to_string_lossy().into_owned()]);
        report
    }

    const ANSWER: &str = r#"cat >/dev/null; echo '{"cniVersion":"1.0.0","supportedVersions":["0.1.0","0.2.0","0.3.0","0.3.1","0.4.0","1.0.0"]}'"#;

    #[test]
    fn a_child_left_holding_the_plugins_output_does_not_keep_doctor_waiting() {
        let tmp = tempfile::tempdir().unwrap();
        fake_plugin(
            tmp.path(),
            "doctor-test-lingering",
            &format!("{ANSWER}; sleep 30 &"),
        );
        let started = Instant::now();
        let versions = ask_version(&tmp.path().join("doctor-test-lingering")).unwrap();
        assert!(versions.contains(&"1.0.0".to_string()), "{versions:?}");
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "{:?}",
            started.elapsed()
        );
    }

    #[test]
    fn a_plugin_is_found_where_the_plugin_looks_and_asked_its_versions() {
        let tmp = tempfile::tempdir().unwrap();
        fake_plugin(tmp.path(), "doctor-test-delegate", ANSWER);
        fake_plugin(
            tmp.path(),
            "doctor-test-old",
            r#"cat >/dev/null; echo '{"supportedVersions":["0.3.0","0.3.1","1.0.0"]}'"#,
        );
        fake_plugin(tmp.path(), "doctor-test-broken", "echo panic >&2; exit 2");
        fake_plugin(
            tmp.path(),
            "doctor-test-ancient",
            r#"echo '{"supportedVersions":["0.3.1"]}'"#,
        );
        let report = report_for(
            &[
                "doctor-test-delegate",
                "doctor-test-old",
                "doctor-test-broken",
                "doctor-test-ancient",
                "doctor-test-missing",
            ],
            tmp.path(),
        );
        let got: Vec<(&str, Status)> = report
            .checks
            .iter()
            .map(|c| (c.name.as_str(), c.status))
            .collect();
        assert_eq!(
            &got[..5],
            [
                ("plugin doctor-test-delegate", Status::Ok),
                ("plugin doctor-test-old", Status::Warn),
                ("plugin doctor-test-broken", Status::Fail),
                ("plugin doctor-test-ancient", Status::Fail),
                ("plugin doctor-test-missing", Status::Warn),
            ]
        );
        let c = &report.checks;
        assert!(
            c[0].detail.starts_with(&format!(
                "{}/doctor-test-delegate (supports 0.1.0,",
                tmp.path().display()
            )),
            "{}",
            c[0].detail
        );
        assert!(
            c[1].detail.contains("cniVersion 0.4.0 will fail"),
            "{}",
            c[1].detail
        );
        assert!(c[2].detail.contains("VERSION failed") && c[2].detail.contains("panic"));
        assert!(c[4].detail.contains("not found in"), "{}", c[4].detail);
        assert_eq!(got[5].0, "plugin static");
    }

    #[test]
    fn the_first_delegate_missing_is_a_failure() {
        let tmp = tempfile::tempdir().unwrap();
        let report = report_for(&["doctor-test-missing"], tmp.path());
        assert_eq!(report.checks[0].status, Status::Fail);
        assert!(report.checks[0]
            .fix
            .as_deref()
            .unwrap()
            .contains("containernetworking-plugins"));
    }

    #[test]
    fn versions_sent_are_capped_at_what_host_device_speaks() {
        assert_eq!(versions_sent(), ["0.3.0", "0.3.1", "0.4.0", "1.0.0"]);
    }
}
