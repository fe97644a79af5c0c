//! Running a CNI plugin as a runtime does, timed: exactly the given environment,
//! the network config on stdin, stdout read through a pipe, then reaped with wait4.
//!
//! Only fork..reap is timed (CLOCK_MONOTONIC, std's `Instant`). Opening the config,
//! building the environment and the stdout buffer come before the clock starts;
//! checking the output comes after.
//!
//! The plugin is started with fork + exec, not posix_spawn, for the peak RSS: at
//! exec the kernel carries the old address space's high-water RSS into the new
//! process's ru_maxrss, and posix_spawn's vfork-style child runs in this program's
//! own address space, so every figure would be at least this program's peak. A
//! forked child starts from the pages fork copied (this program's anonymous memory,
//! ~0.1-0.2 MiB), below any plugin's own.

use std::fs::File;
use std::io::{self, Read};
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::path::PathBuf;
use std::process::{Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use crate::pin;
use crate::stats::Sample;

/// Room reserved for a plugin's stdout before the clock starts (a CNI result is far
/// smaller).
const STDOUT_CAPACITY: usize = 64 * 1024;

/// Everything about one plugin run but CNI_COMMAND: the binary, the network config it
/// reads on stdin, and its whole environment (nothing is inherited).
#[derive(Clone, Debug)]
pub struct Invocation {
    pub plugin: PathBuf,
    pub config: PathBuf,
    pub env: Vec<(String, String)>,
    /// The CPU the plugin (and everything it starts) is pinned to, if any.
    pub cpu: Option<usize>,
}

/// What one run of the plugin did.
#[derive(Debug)]
pub struct Run {
    pub command: &'static str,
    pub elapsed: Duration,
    /// Peak RSS of the plugin or of any descendant it waited for (wait4's ru_maxrss).
    pub max_rss_kib: u64,
    pub status: ExitStatus,
    pub stdout: Vec<u8>,
}

impl Run {
    /// Why this run failed (its exit status and stdout, where a CNI error goes), if it
    /// did.
    pub fn failure(&self) -> Option<String> {
        (!self.status.success()).then(|| {
            format!(
                "{} {}: {}",
                self.command,
                self.status,
                String::from_utf8_lossy(&self.stdout).trim_end()
            )
        })
    }
}

impl Invocation {
    /// Runs the plugin once with CNI_COMMAND=`command`, its stderr appended to
    /// `stderr`.
    pub fn run(&self, command: &'static str, stderr: &File) -> io::Result<Run> {
        let mut cmd = self.command(command, stderr)?;
        let mut stdout = Vec::with_capacity(STDOUT_CAPACITY);
        let start = Instant::now();
        let mut child = cmd.spawn()?;
        let mut pipe = child.stdout.take().expect("stdout is piped");
        let read = pipe.read_to_end(&mut stdout);
        let reaped = wait4(child.id());
        let elapsed = start.elapsed();
        drop(pipe);
        read?;
        let (status, max_rss_kib) = reaped?;
        Ok(Run {
            command,
            elapsed,
            max_rss_kib,
            status,
            stdout,
        })
    }

    /// One cycle: `commands[0]` then `commands[1]` (ADD then DEL). The second runs
    /// even when the first failed, as a runtime's cleanup would.
    pub fn cycle(&self, commands: [&'static str; 2], stderr: &File) -> io::Result<[Run; 2]> {
        let first = self.run(commands[0], stderr)?;
        let second = self.run(commands[1], stderr)?;
        Ok([first, second])
    }

    fn command(&self, command: &str, stderr: &File) -> io::Result<Command> {
        let mut cmd = Command::new(&self.plugin);
        cmd.env_clear()
            .env("CNI_COMMAND", command)
            .envs(self.env.iter().map(|(k, v)| (k, v)))
            .stdin(File::open(&self.config)?)
            .stdout(Stdio::piped())
            .stderr(stderr.try_clone()?);
        // The mask is built here, before the fork, so the child only makes the call.
        let pin = self.cpu.map(pin::single_cpu_set);
        // SAFETY: the hook makes at most one system call (sched_setaffinity, async-signal
        // safe) on a mask built before the fork; its presence also makes std fork instead
        // of posix_spawn (module doc).
        unsafe {
            cmd.pre_exec(move || match &pin {
                Some(set) => pin::apply(set),
                None => Ok(()),
            })
        };
        Ok(cmd)
    }
}

/// A cycle's figures.
pub fn sample(runs: &[Run; 2]) -> Sample {
    Sample {
        add_us: micros(runs[0].elapsed),
        del_us: micros(runs[1].elapsed),
        add_rss_kib: runs[0].max_rss_kib,
        del_rss_kib: runs[1].max_rss_kib,
    }
}

fn micros(d: Duration) -> u64 {
    u64::try_from(d.as_micros()).unwrap_or(u64::MAX)
}

/// Reaps `pid`: its exit status and peak RSS in KiB.
fn wait4(pid: u32) -> io::Result<(ExitStatus, u64)> {
    let pid = libc::pid_t::try_from(pid).map_err(io::Error::other)?;
    let mut status: libc::c_int = 0;
    // SAFETY: rusage is plain old data, for which all zeroes is a valid value.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    loop {
        // SAFETY: both pointers are to live locals of the right types.
        let r = unsafe { libc::wait4(pid, &mut status, 0, &mut usage) };
        if r == pid {
            let rss = u64::try_from(usage.ru_maxrss).unwrap_or(0);
            return Ok((ExitStatus::from_raw(status), rss));
        }
        let err = io::Error::last_os_error();
        if err.kind() != io::ErrorKind::Interrupted {
            return Err(err);
        }
    }
}

/// Checks an ADD's stdout is a CNI success result with an interface and an IP.
pub fn check_add_result(stdout: &[u8]) -> Result<(), String> {
    let v: serde_json::Value = parse(stdout)?;
    let non_empty = |key: &str| {
        v.get(key)
            .and_then(|x| x.as_array())
            .is_some_and(|a| !a.is_empty())
    };
    if v.get("code").is_none() && non_empty("ips") && non_empty("interfaces") {
        Ok(())
    } else {
        Err(format!("ADD printed no usable result: {}", excerpt(stdout)))
    }
}

/// Checks a VERSION's stdout lists at least one supported version.
pub fn check_version_result(stdout: &[u8]) -> Result<(), String> {
    let v: serde_json::Value = parse(stdout)?;
    match v.get("supportedVersions").and_then(|x| x.as_array()) {
        Some(a) if !a.is_empty() => Ok(()),
        _ => Err(format!(
            "VERSION printed no usable result: {}",
            excerpt(stdout)
        )),
    }
}

fn parse(stdout: &[u8]) -> Result<serde_json::Value, String> {
    serde_json::from_slice(stdout).map_err(|e| format!("not JSON ({e}): {}", excerpt(stdout)))
}

fn excerpt(bytes: &[u8]) -> String {
    String::from_utf8_lossy(&bytes[..bytes.len().min(300)]).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sh(script: &str) -> Invocation {
        Invocation {
            plugin: "/bin/sh".into(),
            config: "/dev/null".into(),
            env: vec![("SCRIPT".into(), script.into())],
            cpu: None,
        }
    }

    fn devnull() -> File {
        File::options().append(true).open("/dev/null").unwrap()
    }

    #[test]
    fn run_passes_exactly_the_environment_and_reads_stdout() {
        // /bin/sh reads its script from stdin (the config file): make the config the
        // script itself.
        let dir = std::env::temp_dir().join(format!("bench-test-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let script = dir.join("script");
        std::fs::write(&script, "echo \"$CNI_COMMAND $SCRIPT ${HOME:-nohome}\"\n").unwrap();
        let mut inv = sh("x");
        inv.config = script;
        let run = inv.run("ADD", &devnull()).unwrap();
        std::fs::remove_dir_all(&dir).unwrap();
        assert!(run.status.success());
        assert_eq!(String::from_utf8_lossy(&run.stdout), "ADD x nohome\n");
        assert!(run.max_rss_kib > 0);
        assert!(run.failure().is_none());
    }

    #[test]
    fn cycle_runs_the_second_command_after_a_failed_first() {
        let mut inv = sh("");
        inv.plugin = "/bin/false".into();
        let runs = inv.cycle(["ADD", "DEL"], &devnull()).unwrap();
        assert_eq!([runs[0].command, runs[1].command], ["ADD", "DEL"]);
        assert!(runs[0].failure().unwrap().starts_with("ADD exit status: 1"));
        let s = sample(&runs);
        assert_eq!(s.total_us(), s.add_us + s.del_us);
    }

    #[test]
    fn peak_rss_is_the_child_s_not_this_process_s() {
        // Raise this process's high-water RSS well above a small child's.
        let big = vec![1u8; 64 << 20];
        assert_eq!(std::hint::black_box(&big)[12345], 1);
        drop(big);
        let mut inv = sh("");
        inv.plugin = "/bin/true".into();
        let run = inv.run("VERSION", &devnull()).unwrap();
        assert!(run.max_rss_kib < 32 << 10, "{} KiB", run.max_rss_kib);
    }

    #[test]
    fn add_result_checks() {
        assert!(check_add_result(
            br#"{"interfaces":[{"name":"x"}],"ips":[{"address":"10.0.0.2/24"}]}"#
        )
        .is_ok());
        assert!(
            check_add_result(br#"{"code":7,"msg":"no","interfaces":[{}],"ips":[{}]}"#).is_err()
        );
        assert!(check_add_result(br#"{"interfaces":[],"ips":[{}]}"#).is_err());
        assert!(check_add_result(b"").is_err());
    }

    #[test]
    fn version_result_checks() {
        assert!(
            check_version_result(br#"{"cniVersion":"1.0.0","supportedVersions":["1.0.0"]}"#)
                .is_ok()
        );
        assert!(check_version_result(br#"{"supportedVersions":[]}"#).is_err());
        assert!(check_version_result(b"garbage").is_err());
    }

    #[test]
    fn a_pinned_run_may_run_only_on_its_cpu() {
        let cpu = *pin::allowed_cpus().unwrap().last().unwrap();
        let mut inv = sh("");
        inv.plugin = "/bin/grep".into();
        inv.config = "/proc/self/status".into();
        inv.env = vec![("PATH".into(), "/bin:/usr/bin".into())];
        inv.cpu = Some(cpu);
        // grep opens /proc/self/status itself, so it shows the mask it runs under.
        let mut cmd = inv.command("VERSION", &devnull()).unwrap();
        cmd.args(["Cpus_allowed_list", "/proc/self/status"]);
        let out = cmd.output().unwrap();
        let line = String::from_utf8_lossy(&out.stdout).into_owned();
        assert_eq!(
            line.split_whitespace().last(),
            Some(cpu.to_string().as_str()),
            "{line}"
        );
    }
}
