//! The life of a CNI plugin process, shared by every binary of this crate: read
//! `CNI_COMMAND` and stdin, answer VERSION, hand the other commands to the plugin, print its
//! result or its error reply on stdout, and exit with the matching status.

use std::io::{Read, Write};
use std::process::ExitCode;

use serde_json::{json, Value};

use super::error::{error_reply, CniError, ProtocolError};
use super::{version, CniVersion, Command};

/// Runs one CNI command. `handle` gets every command but VERSION and returns what goes to
/// stdout (`None` for nothing); its error is printed as the CNI error reply, in the version
/// the config asked for when it can be read.
pub fn run<E>(handle: impl FnOnce(Command, &[u8]) -> Result<Option<Value>, E>) -> ExitCode
where
    E: CniError + From<ProtocolError>,
{
    // Room for any network config a runtime sends in one read (growing from nothing
    // takes five reads for a small one); untouched room costs nothing in the arena.
    let mut stdin = Vec::with_capacity(16 << 10);
    let read = std::io::stdin().read_to_end(&mut stdin);
    let outcome = command_from_env().map_err(E::from).and_then(|command| {
        read.map_err(|e| E::from(ProtocolError::ReadStdin(e)))?;
        match command {
            Command::Version => Ok(Some(version_reply())),
            _ => handle(command, &stdin),
        }
    });
    let mut stdout = std::io::stdout().lock();
    match outcome {
        Ok(Some(json)) => {
            let _ = writeln!(stdout, "{json}");
            ExitCode::SUCCESS
        }
        Ok(None) => ExitCode::SUCCESS,
        Err(e) => {
            let version = version::peek(&stdin).unwrap_or(CniVersion::LATEST);
            let _ = writeln!(stdout, "{}", error_reply(&e, version));
            ExitCode::FAILURE
        }
    }
}

/// Whether the process was started by a runtime (`CNI_COMMAND` set) rather than a person.
pub fn is_cni_invocation() -> bool {
    std::env::var_os("CNI_COMMAND").is_some()
}

fn command_from_env() -> Result<Command, ProtocolError> {
    match std::env::var("CNI_COMMAND") {
        Ok(c) => Command::parse(&c).ok_or_else(|| {
            ProtocolError::invalid_env("CNI_COMMAND", format!("{c:?} is not a CNI command"))
        }),
        Err(_) => Err(ProtocolError::invalid_env("CNI_COMMAND", "must be set")),
    }
}

/// The VERSION reply: every spec version this crate speaks.
pub fn version_reply() -> Value {
    let supported: Vec<&str> = CniVersion::ALL.iter().map(|v| v.as_str()).collect();
    json!({
        "cniVersion": CniVersion::LATEST.as_str(),
        "supportedVersions": supported,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn version_lists_every_supported_version() {
        let v = version_reply();
        assert_eq!(v["cniVersion"], "1.1.0");
        assert_eq!(
            v["supportedVersions"],
            json!(["0.3.0", "0.3.1", "0.4.0", "1.0.0", "1.1.0"])
        );
    }
}
