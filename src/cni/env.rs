//! The `CNI_*` environment variables, validated once.

use super::error::{ProtocolError, Result};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Command {
    Add,
    Del,
    Check,
    Status,
    Gc,
    Version,
}

impl Command {
    pub fn parse(s: &str) -> Option<Command> {
        Some(match s {
            "ADD" => Command::Add,
            "DEL" => Command::Del,
            "CHECK" => Command::Check,
            "STATUS" => Command::Status,
            "GC" => Command::Gc,
            "VERSION" => Command::Version,
            _ => return None,
        })
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Command::Add => "ADD",
            Command::Del => "DEL",
            Command::Check => "CHECK",
            Command::Status => "STATUS",
            Command::Gc => "GC",
            Command::Version => "VERSION",
        }
    }

    /// Commands that act on one attachment and therefore need container id and ifname.
    fn is_per_attachment(self) -> bool {
        matches!(self, Command::Add | Command::Del | Command::Check)
    }
}

/// What the runtime told us through the environment.
#[derive(Debug, Clone, Default)]
pub struct Environment {
    pub container_id: String,
    pub netns: String,
    pub ifname: String,
    /// Raw `CNI_ARGS`, passed through to the delegate untouched.
    pub args: String,
    /// `CNI_PATH` split on ':'.
    pub path: Vec<String>,
}

impl Environment {
    /// Reads and validates the environment for `command` through `get` (std::env in production).
    pub fn from_lookup(command: Command, get: impl Fn(&str) -> Option<String>) -> Result<Self> {
        let mut env = Environment {
            args: get("CNI_ARGS").unwrap_or_default(),
            path: get("CNI_PATH")
                .unwrap_or_default()
                .split(':')
                .filter(|p| !p.is_empty())
                .map(str::to_owned)
                .collect(),
            ..Environment::default()
        };
        if !command.is_per_attachment() {
            return Ok(env);
        }
        env.container_id = get("CNI_CONTAINERID").unwrap_or_default();
        validate_container_id(&env.container_id)?;
        env.ifname = get("CNI_IFNAME").unwrap_or_default();
        validate_ifname(&env.ifname)
            .map_err(|reason| ProtocolError::invalid_env("CNI_IFNAME", reason))?;
        env.netns = get("CNI_NETNS").unwrap_or_default();
        // DEL may legitimately come without a netns (the pod is already gone).
        if command != Command::Del && env.netns.is_empty() {
            return Err(ProtocolError::invalid_env("CNI_NETNS", "must be set"));
        }
        if !env.netns.is_empty() && !env.netns.starts_with('/') {
            return Err(ProtocolError::invalid_env(
                "CNI_NETNS",
                format!("{:?} is not an absolute path", env.netns),
            ));
        }
        Ok(env)
    }

    /// One `KEY=value` from `CNI_ARGS` (e.g. `K8S_POD_NAME`).
    pub fn arg(&self, key: &str) -> Option<&str> {
        self.args
            .split(';')
            .filter_map(|kv| kv.split_once('='))
            .find(|(k, _)| *k == key)
            .map(|(_, v)| v)
    }
}

/// `^[a-zA-Z0-9][a-zA-Z0-9_.\-]*$`, as the spec requires. It also becomes part of a file name,
/// so this check is what keeps state paths inside the state dir.
fn validate_container_id(id: &str) -> Result<()> {
    let mut chars = id.chars();
    let ok = match chars.next() {
        Some(first) => {
            first.is_ascii_alphanumeric()
                && chars.all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-'))
        }
        None => false,
    };
    if ok {
        Ok(())
    } else if id.is_empty() {
        Err(ProtocolError::invalid_env("CNI_CONTAINERID", "must be set"))
    } else {
        Err(ProtocolError::invalid_env(
            "CNI_CONTAINERID",
            format!("{id:?} must match ^[a-zA-Z0-9][a-zA-Z0-9_.-]*$"),
        ))
    }
}

/// Linux interface name rules: 1..=15 bytes, not `.`/`..`, no `/`, `:` or whitespace.
pub fn validate_ifname(name: &str) -> std::result::Result<(), String> {
    if name.is_empty() {
        return Err("must be set".into());
    }
    if name.len() > 15 {
        return Err(format!("{name:?} is longer than 15 bytes"));
    }
    if name == "." || name == ".." {
        return Err(format!("{name:?} is not a valid interface name"));
    }
    if let Some(c) = name
        .chars()
        .find(|c| *c == '/' || *c == ':' || c.is_whitespace() || c.is_control())
    {
        return Err(format!("{name:?} contains {c:?}"));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn env_of(pairs: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
        let map: HashMap<String, String> = pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        move |k| map.get(k).cloned()
    }

    const GOOD: &[(&str, &str)] = &[
        ("CNI_CONTAINERID", "abc123"),
        ("CNI_IFNAME", "net1"),
        ("CNI_NETNS", "/var/run/netns/x"),
        ("CNI_PATH", "/opt/cni/bin::/usr/lib/cni"),
        (
            "CNI_ARGS",
            "IgnoreUnknown=true;K8S_POD_NAME=p1;K8S_POD_NAMESPACE=ns",
        ),
    ];

    fn with(over: &[(&'static str, &'static str)]) -> Vec<(&'static str, &'static str)> {
        let mut v: Vec<_> = GOOD
            .iter()
            .filter(|(k, _)| !over.iter().any(|(o, _)| o == k))
            .copied()
            .collect();
        v.extend(over.iter().filter(|(_, val)| *val != "<unset>").copied());
        v
    }

    #[test]
    fn parses_a_good_environment() {
        let env = Environment::from_lookup(Command::Add, env_of(GOOD)).unwrap();
        assert_eq!(env.container_id, "abc123");
        assert_eq!(env.path, vec!["/opt/cni/bin", "/usr/lib/cni"]);
        assert_eq!(env.arg("K8S_POD_NAME"), Some("p1"));
        assert_eq!(env.arg("K8S_POD_UID"), None);
    }

    #[test]
    fn rejects_bad_variables_with_code_4() {
        let bad: &[&[(&str, &str)]] = &[
            &[("CNI_CONTAINERID", "<unset>")],
            &[("CNI_CONTAINERID", "has space")],
            &[("CNI_CONTAINERID", "../../etc")],
            &[("CNI_CONTAINERID", "-leading")],
            &[("CNI_IFNAME", "<unset>")],
            &[("CNI_IFNAME", "a/b")],
            &[("CNI_IFNAME", "..")],
            &[("CNI_IFNAME", "eth0:1")],
            &[("CNI_IFNAME", "sixteen-chars-xx")],
            &[("CNI_IFNAME", "tab\tname")],
            &[("CNI_NETNS", "<unset>")],
            &[("CNI_NETNS", "relative/ns")],
        ];
        for over in bad {
            let err = Environment::from_lookup(Command::Add, env_of(&with(over))).unwrap_err();
            assert!(
                matches!(err, ProtocolError::InvalidEnvironment { .. }),
                "{over:?}: {err}"
            );
        }
    }

    #[test]
    fn del_accepts_an_empty_netns() {
        let env =
            Environment::from_lookup(Command::Del, env_of(&with(&[("CNI_NETNS", "<unset>")])))
                .unwrap();
        assert!(env.netns.is_empty());
    }

    #[test]
    fn version_needs_no_attachment_variables() {
        assert!(Environment::from_lookup(Command::Version, env_of(&[])).is_ok());
    }

    #[test]
    fn commands_round_trip() {
        for c in ["ADD", "DEL", "CHECK", "STATUS", "GC", "VERSION"] {
            assert_eq!(Command::parse(c).unwrap().as_str(), c);
        }
        assert_eq!(Command::parse("add"), None);
    }
}
