//! Running the reference `host-device` plugin (or another named delegate) on our behalf.
//!
//! We never move a NIC between namespaces ourselves: host-device does, with a config we
//! generate so that it acts on exactly the interface we resolved.

use std::io::Write;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command as Process, Stdio};

use serde::Deserialize;
use serde_json::{json, Value};

use crate::cni::error::io_error_in_words;
use crate::cni::{CniVersion, Command, Environment};
use crate::error::Error;
use crate::host::netlink::Address;

type Result<T> = std::result::Result<T, Error>;

/// Where CNI plugins live when CNI_PATH does not say (upstream tarball, Debian, Fedora).
pub const DEFAULT_PLUGIN_DIRS: [&str; 3] = ["/opt/cni/bin", "/usr/lib/cni", "/usr/libexec/cni"];

#[derive(Debug)]
pub struct Delegate {
    name: String,
    binary: PathBuf,
    /// CNI_PATH handed to the delegate, so it finds its own IPAM plugin (`static`).
    search_path: Vec<PathBuf>,
}

/// The parts of a CNI error reply we read from the delegate.
#[derive(Deserialize)]
struct DelegateError {
    #[serde(default)]
    code: Option<u32>,
    #[serde(default)]
    msg: String,
    #[serde(default)]
    details: String,
}

impl Delegate {
    /// Finds `name` in CNI_PATH, then in the usual plugin directories.
    pub fn find(name: &str, cni_path: &[String]) -> Result<Delegate> {
        let mut search_path: Vec<PathBuf> = Vec::new();
        for dir in cni_path
            .iter()
            .map(String::as_str)
            .chain(DEFAULT_PLUGIN_DIRS)
        {
            let dir = PathBuf::from(dir);
            if !search_path.contains(&dir) {
                search_path.push(dir);
            }
        }
        // Never exec ourselves: a misconfigured "delegate" would recurse forever. Same file
        // means same device and inode (one stat each, where comparing canonical paths costs
        // a readlink per path component).
        let me = std::fs::metadata("/proc/self/exe")
            .ok()
            .map(|m| (m.dev(), m.ino()));
        let not_found = || {
            Error::PluginNotAvailable(format!(
                "delegate plugin {name:?} not found in CNI_PATH or {}; install the reference \
                 CNI plugins (Debian: apt-get install containernetworking-plugins)",
                DEFAULT_PLUGIN_DIRS.join(", ")
            ))
        };
        let dirs = std::env::join_paths(&search_path)
            .map_err(|e| Error::invalid_env("CNI_PATH", e.to_string()))?;
        // `which` walks the directories in order and keeps executable regular files.
        let binary = which::which_in_all(name, Some(dirs), "/")
            .map_err(|_| not_found())?
            .find(|p| !is_same_file(p, me))
            .ok_or_else(not_found)?;
        Ok(Delegate {
            name: name.to_owned(),
            binary,
            search_path,
        })
    }

    /// The delegate for giving a device back, if it can be found: without it a device that
    /// is already on the host can still be restored, so its absence is only logged.
    pub fn find_for_give_back(name: &str, cni_path: &[String]) -> Option<Delegate> {
        Delegate::find(name, cni_path)
            .map_err(|e| crate::log_info!("{e}; restoring without it"))
            .ok()
    }

    pub fn binary(&self) -> &Path {
        &self.binary
    }

    /// Runs the delegate; returns its stdout on success and its CNI error otherwise.
    pub fn run(
        &self,
        command: Command,
        env: &Environment,
        ifname: &str,
        config: &Value,
    ) -> Result<Vec<u8>> {
        self.start(command, env, ifname)?.finish(config)
    }

    /// Starts the delegate without its config: it starts up and then waits on stdin, since a
    /// CNI plugin reads its whole config before it acts. ADD uses that wait to make its state
    /// durable meanwhile.
    pub fn start(&self, command: Command, env: &Environment, ifname: &str) -> Result<Started<'_>> {
        let cni_path = std::env::join_paths(&self.search_path)
            .map_err(|e| Error::invalid_env("CNI_PATH", e.to_string()))?;
        let child = Process::new(&self.binary)
            .env("CNI_COMMAND", command.as_str())
            .env("CNI_CONTAINERID", &env.container_id)
            .env("CNI_NETNS", &env.netns)
            .env("CNI_IFNAME", ifname)
            .env("CNI_ARGS", &env.args)
            .env("CNI_PATH", cni_path)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|e| {
                Error::PluginNotAvailable(format!(
                    "cannot run {}: {}",
                    self.binary.display(),
                    io_error_in_words(&e)
                ))
            })?;
        Ok(Started {
            delegate: self,
            command,
            child: Some(child),
        })
    }

    fn failure(&self, stdout: &[u8], stderr: &str, status: std::process::ExitStatus) -> Error {
        match serde_json::from_slice::<DelegateError>(stdout) {
            Ok(e) if !e.msg.is_empty() => Error::Delegate {
                code: e.code,
                msg: format!("{}: {}", self.name, e.msg),
                details: e.details,
            },
            // What it printed instead is anything at all: the details, not the message.
            _ => Error::Delegate {
                code: None,
                msg: format!("{} failed ({status}) without a CNI error", self.name),
                details: snippet(&String::from_utf8_lossy(stdout), stderr),
            },
        }
    }

    /// The network config the delegate gets: our device by name, and static IPAM carrying the
    /// captured addresses unless the user brought their own IPAM.
    pub fn config(
        &self,
        version: CniVersion,
        network: &str,
        device: &str,
        user_ipam: Option<&Value>,
        addresses: &[Address],
    ) -> Value {
        let mut conf = json!({
            "cniVersion": version.min(CniVersion::DELEGATE_MAX).as_str(),
            "name": network,
            "type": self.name,
            "device": device,
        });
        if let Some(ipam) = static_ipam(user_ipam, addresses) {
            conf["ipam"] = ipam;
        }
        conf
    }
}

/// A delegate process waiting for its config. Dropped without [`Started::finish`], it is
/// killed before it has read a config, so it has done nothing.
pub struct Started<'a> {
    delegate: &'a Delegate,
    command: Command,
    child: Option<Child>,
}

impl Started<'_> {
    /// Hands the delegate its config and waits for it; its stdout on success, its CNI error
    /// otherwise.
    pub fn finish(mut self, config: &Value) -> Result<Vec<u8>> {
        let d = self.delegate;
        let mut child = self.child.take().expect("a started delegate has its child");
        let input = serde_json::to_vec(config).expect("delegate config always serialises");
        // A delegate that exits without reading stdin gives EPIPE here; its exit status tells more.
        let _ = child
            .stdin
            .take()
            .expect("stdin is piped")
            .write_all(&input);
        let out = child
            .wait_with_output()
            .map_err(|e| Error::io(format!("wait for {}", d.binary.display()), e))?;
        let stderr = String::from_utf8_lossy(&out.stderr);
        if !stderr.trim().is_empty() {
            crate::log_debug!(
                "{} {} stderr: {}",
                d.name,
                self.command.as_str(),
                stderr.trim()
            );
        }
        if out.status.success() {
            return Ok(out.stdout);
        }
        Err(d.failure(&out.stdout, &stderr, out.status))
    }
}

impl Drop for Started<'_> {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// The IPAM block for the delegate. No addresses means no IPAM at all: host-device fails on
/// an empty static list ("IPAM plugin returned missing IP config").
fn static_ipam(user_ipam: Option<&Value>, addresses: &[Address]) -> Option<Value> {
    if let Some(ipam) = user_ipam {
        return Some(ipam.clone());
    }
    if addresses.is_empty() {
        return None;
    }
    let list: Vec<Value> = addresses
        .iter()
        .map(|a| json!({ "address": a.cidr() }))
        .collect();
    Some(json!({ "type": "static", "addresses": list }))
}

fn is_same_file(p: &Path, me: Option<(u64, u64)>) -> bool {
    p.metadata().is_ok_and(|m| Some((m.dev(), m.ino())) == me)
}

fn snippet(stdout: &str, stderr: &str) -> String {
    let text = format!("{} {}", stdout.trim(), stderr.trim());
    let text = text.trim();
    if text.is_empty() {
        return "no output".into();
    }
    text.chars().take(300).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::fs;
    use std::os::unix::fs::PermissionsExt;

    fn addr(ip: &str, len: u8) -> Address {
        Address::global(ip.parse().unwrap(), len)
    }

    fn fake_plugin(dir: &Path, name: &str, script: &str) {
        let p = dir.join(name);
        fs::write(&p, format!("#!/bin/sh\n{script}\n")).unwrap();
        fs::set_permissions(&p, fs::Permissions::from_mode(0o755)).unwrap();
    }

    fn delegate_in(dir: &Path) -> Delegate {
        Delegate::find("host-device", &[dir.to_string_lossy().into_owned()]).unwrap()
    }

    #[test]
    fn config_carries_device_and_captured_addresses_at_a_capped_version() {
        let d = Delegate {
            name: "host-device".into(),
            binary: "/x".into(),
            search_path: vec![],
        };
        let c = d.config(
            CniVersion::V1_1_0,
            "net",
            "enp94s0f1",
            None,
            &[addr("192.0.2.10", 24), addr("2001:db8::10", 64)],
        );
        assert_eq!(
            c,
            json!({"cniVersion": "1.0.0", "name": "net", "type": "host-device", "device": "enp94s0f1",
                   "ipam": {"type": "static", "addresses": [
                       {"address": "192.0.2.10/24"}, {"address": "2001:db8::10/64"}]}})
        );
        let c = d.config(CniVersion::V0_3_1, "net", "e", None, &[]);
        assert_eq!(c["cniVersion"], "0.3.1");
        assert!(c.get("ipam").is_none(), "no addresses, no ipam");
        let user = json!({"type": "dhcp"});
        let c = d.config(
            CniVersion::V0_3_1,
            "net",
            "e",
            Some(&user),
            &[addr("192.0.2.1", 24)],
        );
        assert_eq!(c["ipam"], user);
    }

    #[test]
    fn finds_the_delegate_in_cni_path_first() {
        let tmp = tempfile::tempdir().unwrap();
        fake_plugin(tmp.path(), "host-device", "exit 0");
        assert_eq!(
            delegate_in(tmp.path()).binary(),
            tmp.path().join("host-device")
        );
        let err = Delegate::find("no-such-plugin-xyz", &[]).unwrap_err();
        assert_eq!(err.code() as u32, 50);
    }

    #[test]
    fn never_picks_itself_even_under_the_delegate_name() {
        // A name that is in no default plugin directory.
        const NAME: &str = "amd-host-device-selftest-delegate";
        let (first, second) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
        let me = std::env::current_exe().unwrap();
        std::os::unix::fs::symlink(&me, first.path().join(NAME)).unwrap();
        fake_plugin(second.path(), NAME, "exit 0");
        let path = [first.path(), second.path()].map(|p| p.to_string_lossy().into_owned());
        let d = Delegate::find(NAME, &path).unwrap();
        assert_eq!(d.binary(), second.path().join(NAME));
        let err = Delegate::find(NAME, &path[..1]).unwrap_err();
        assert_eq!(err.code() as u32, 50, "{err}");
    }

    #[test]
    fn a_started_delegate_acts_only_once_fed_and_dies_unfed() {
        let tmp = tempfile::tempdir().unwrap();
        let marker = tmp.path().join("acted");
        fake_plugin(
            tmp.path(),
            "host-device",
            &format!(
                "cat >/dev/null; echo acted >>{}; echo '{{}}'",
                marker.display()
            ),
        );
        let env = Environment {
            container_id: "c1".into(),
            netns: "/n".into(),
            ifname: "net1".into(),
            args: String::new(),
            path: vec![],
        };
        let d = delegate_in(tmp.path());
        let unfed = d.start(Command::Add, &env, "net1").unwrap();
        std::thread::sleep(std::time::Duration::from_millis(200));
        assert!(!marker.exists(), "acted before it had its config");
        drop(unfed);
        std::thread::sleep(std::time::Duration::from_millis(200));
        assert!(!marker.exists(), "acted after being dropped");
        let fed = d.start(Command::Add, &env, "net1").unwrap();
        assert_eq!(fed.finish(&json!({})).unwrap(), b"{}\n");
        assert_eq!(fs::read_to_string(&marker).unwrap(), "acted\n");
    }

    #[test]
    fn passes_environment_and_config_and_returns_stdout() {
        let tmp = tempfile::tempdir().unwrap();
        fake_plugin(
            tmp.path(),
            "host-device",
            r#"read -r conf; printf '{"cmd":"%s","if":"%s","args":"%s","conf":%s}' "$CNI_COMMAND" "$CNI_IFNAME" "$CNI_ARGS" "$conf""#,
        );
        let env = Environment {
            container_id: "c1".into(),
            netns: "/n".into(),
            ifname: "net1".into(),
            args: "K8S_POD_NAME=p".into(),
            path: vec![],
        };
        let out = delegate_in(tmp.path())
            .run(Command::Add, &env, "enp94s0f1", &json!({"a": 1}))
            .unwrap();
        let v: Value = serde_json::from_slice(&out).unwrap();
        assert_eq!(
            v,
            json!({"cmd": "ADD", "if": "enp94s0f1", "args": "K8S_POD_NAME=p", "conf": {"a": 1}})
        );
    }

    #[test]
    fn reports_the_delegates_cni_error_or_its_garbage() {
        let tmp = tempfile::tempdir().unwrap();
        fake_plugin(
            tmp.path(),
            "host-device",
            r#"echo '{"code":999,"msg":"failed to find host device: Link not found"}'; exit 1"#,
        );
        let env = Environment::default();
        let err = delegate_in(tmp.path())
            .run(Command::Add, &env, "e", &json!({}))
            .unwrap_err();
        assert_eq!(err.code() as u32, 103);
        assert_eq!(
            err.to_string(),
            "host-device: failed to find host device: Link not found"
        );
        assert!(err.details().contains("999"));

        fake_plugin(tmp.path(), "host-device", "echo 'panic: oops' >&2; exit 2");
        let err = delegate_in(tmp.path())
            .run(Command::Add, &env, "e", &json!({}))
            .unwrap_err();
        assert_eq!(
            err.to_string(),
            "host-device failed (exit status: 2) without a CNI error"
        );
        assert_eq!(
            err.details(),
            "panic: oops",
            "what it printed is in the details"
        );
    }
}
