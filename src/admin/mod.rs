//! Commands for a person at a shell (`amd-host-device doctor`, `list`, `restore`,
//! `--version`).
//! Without arguments the binary is a pure CNI plugin; these never run under a runtime.
//! The top of the tree beside `verbs`: may import `verbs` (to give a NIC back the way DEL
//! does) and everything below; nothing imports it but `main`.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{bail, Context as _};

use crate::cni::CniVersion;
use crate::error::Error;
use crate::node::policy::NodePolicy;

mod doctor;
mod list;
mod restore;
mod tracked;

use doctor::doctor;
use list::list;
use restore::restore;

const USAGE: &str = "usage:
  amd-host-device doctor [--json] [--state-dir DIR] [--cni-path DIR[:DIR...]]
  amd-host-device list [--json] [--state-dir DIR]
  amd-host-device restore <PCI address | interface name | container id> [--force] [--state-dir DIR]
  amd-host-device --version
  amd-host-device --help

doctor   checks this node (read-only): exit 0 if no check FAILs, 1 otherwise
list     every tracked attachment and where its NIC is now
restore  gives matching attachments' NICs back to the host: exit 0 if all came back,
         1 if one could not be given back, 2 if nothing matched

Without arguments, amd-host-device is a CNI plugin driven by CNI_COMMAND and stdin.";

/// Exit status of a command that did what it was asked.
const EXIT_OK: u8 = 0;
/// Exit status of a command that failed (or of a doctor report with a FAIL).
const EXIT_FAILED: u8 = 1;
/// Exit status of `restore` when no tracked attachment matches its target.
const EXIT_NOTHING_MATCHED: u8 = 2;

/// Runs an admin command; errors go to stderr with their context chain.
pub fn run(args: &[String]) -> ExitCode {
    match dispatch(args) {
        Ok(status) => ExitCode::from(status),
        Err(e) => {
            eprintln!("amd-host-device: {e:#}");
            ExitCode::from(EXIT_FAILED)
        }
    }
}

struct Options {
    json: bool,
    force: bool,
    /// `--state-dir`; else the node policy's.
    state_dir: Option<PathBuf>,
    /// `--cni-path`: the runtime's CNI_PATH, for doctor's plugin lookup.
    cni_path: Vec<String>,
    positional: Vec<String>,
}

impl Options {
    /// The node policy, with `--state-dir` (a person at a root shell decides) over its own.
    fn policy(&self) -> Result<NodePolicy, Error> {
        let policy = NodePolicy::load()?;
        Ok(NodePolicy {
            state_dir: self.state_dir.clone().unwrap_or(policy.state_dir.clone()),
            ..policy
        })
    }
}

fn parse_options(args: &[String]) -> anyhow::Result<Options> {
    let mut o = Options {
        json: false,
        force: false,
        state_dir: None,
        cni_path: Vec::new(),
        positional: Vec::new(),
    };
    let mut it = args.iter();
    while let Some(a) = it.next() {
        match a.as_str() {
            "--json" => o.json = true,
            "--force" => o.force = true,
            "--state-dir" => {
                o.state_dir = Some(it.next().context("--state-dir needs a directory")?.into());
            }
            s if s.starts_with("--state-dir=") => {
                o.state_dir = Some(s["--state-dir=".len()..].into())
            }
            "--cni-path" => {
                o.cni_path = split_path(it.next().context("--cni-path needs directories")?);
            }
            s if s.starts_with("--cni-path=") => o.cni_path = split_path(&s["--cni-path=".len()..]),
            s if s.starts_with('-') => bail!("unknown option {s}\n{USAGE}"),
            s => o.positional.push(s.to_owned()),
        }
    }
    Ok(o)
}

/// A `:`-separated list of directories, as CNI_PATH is written.
fn split_path(dirs: &str) -> Vec<String> {
    dirs.split(':')
        .filter(|d| !d.is_empty())
        .map(str::to_owned)
        .collect()
}

fn dispatch(args: &[String]) -> anyhow::Result<u8> {
    let Some((command, rest)) = args.split_first() else {
        bail!("{USAGE}");
    };
    match command.as_str() {
        "--version" | "version" => {
            let versions: Vec<&str> = CniVersion::ALL.iter().map(|v| v.as_str()).collect();
            println!(
                "amd-host-device {} (CNI spec versions {}){}",
                env!("CARGO_PKG_VERSION"),
                versions.join(", "),
                if crate::fault::BUILT_IN {
                    " [test build: fault injection built in]"
                } else {
                    ""
                }
            );
            Ok(EXIT_OK)
        }
        "--help" | "-h" | "help" => {
            println!("{USAGE}");
            Ok(EXIT_OK)
        }
        "doctor" => doctor(&parse_options(rest)?),
        "list" => list(&parse_options(rest)?).map(|()| EXIT_OK),
        "restore" => restore(&parse_options(rest)?),
        other => bail!("unknown command {other:?}\n{USAGE}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(s: &[&str]) -> Vec<String> {
        s.iter().map(|a| a.to_string()).collect()
    }

    #[test]
    fn options_parse() {
        let o = parse_options(&args(&["x", "--json", "--state-dir", "/s", "--force"])).unwrap();
        assert!(o.json && o.force);
        assert_eq!(o.state_dir, Some(PathBuf::from("/s")));
        assert_eq!(o.positional, vec!["x"]);
        let o = parse_options(&args(&["--cni-path", "/opt/cni/bin::/x"])).unwrap();
        assert_eq!(o.cni_path, ["/opt/cni/bin", "/x"]);
        let o = parse_options(&args(&["--cni-path=/y"])).unwrap();
        assert_eq!(o.cni_path, ["/y"]);
        assert!(parse_options(&args(&["--bogus"])).is_err());
        assert!(parse_options(&args(&["--state-dir"])).is_err());
    }

    #[test]
    fn unknown_commands_and_missing_targets_are_errors() {
        assert!(dispatch(&args(&["frobnicate"])).is_err());
        assert!(dispatch(&[]).is_err());
        assert!(dispatch(&args(&["restore", "--state-dir", "/nonexistent-amd"])).is_err());
        assert!(dispatch(&args(&["doctor", "extra"])).is_err());
    }

    #[test]
    fn help_names_every_command_and_its_exit_statuses() {
        for command in ["doctor", "list", "restore", "--version", "--help"] {
            assert!(
                USAGE.contains(&format!("amd-host-device {command}")),
                "{command}"
            );
        }
        assert!(USAGE.contains("2 if nothing matched"));
    }
}
