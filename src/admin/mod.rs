//! Commands for a person at a shell (`amd-host-device list`, `restore`, `--version`).
//! Without arguments the binary is a pure CNI plugin; these never run under a runtime.
//! The top of the tree beside `verbs`: may import `verbs` (to give a NIC back the way DEL
//! does) and everything below; nothing imports it but `main`.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{bail, Context as _};

use crate::cni::CniVersion;
use crate::error::Error;
use crate::node::policy::NodePolicy;

mod list;
mod restore;
mod tracked;

use list::list;
use restore::restore;

const USAGE: &str = "usage:
  amd-host-device --version
  amd-host-device list [--json] [--state-dir DIR]
  amd-host-device restore <PCI address | interface name | container id> [--force] [--state-dir DIR]

Without arguments, amd-host-device is a CNI plugin driven by CNI_COMMAND and stdin.";

/// Runs an admin command; errors go to stderr with their context chain.
pub fn run(args: &[String]) -> ExitCode {
    match dispatch(args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("amd-host-device: {e:#}");
            ExitCode::FAILURE
        }
    }
}

struct Options {
    json: bool,
    force: bool,
    /// `--state-dir`; else the node policy's.
    state_dir: Option<PathBuf>,
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
            s if s.starts_with('-') => bail!("unknown option {s}\n{USAGE}"),
            s => o.positional.push(s.to_owned()),
        }
    }
    Ok(o)
}

fn dispatch(args: &[String]) -> anyhow::Result<()> {
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
            Ok(())
        }
        "--help" | "-h" | "help" => {
            println!("{USAGE}");
            Ok(())
        }
        "list" => list(&parse_options(rest)?),
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
        assert!(parse_options(&args(&["--bogus"])).is_err());
        assert!(parse_options(&args(&["--state-dir"])).is_err());
    }

    #[test]
    fn unknown_commands_and_missing_targets_are_errors() {
        assert!(dispatch(&args(&["frobnicate"])).is_err());
        assert!(dispatch(&[]).is_err());
        assert!(dispatch(&args(&["restore", "--state-dir", "/nonexistent-amd"])).is_err());
    }
}
