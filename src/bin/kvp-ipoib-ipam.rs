//! kvp-ipoib-ipam: a CNI IPAM plugin returning the IPoIB address Hyper-V KVP publishes.
//!
//! Used as `"ipam": {"type": "kvp-ipoib-ipam"}` under host-device (or amd-host-device's ipam
//! passthrough): the main plugin has already moved the interface into the pod as CNI_IFNAME,
//! so ADD reads its hardware address there, finds its pair in the KVP pool's `IPoIB_Data`
//! record and returns that IPv4 address. Nothing is allocated, so DEL and CHECK have nothing
//! to release or verify beyond the config.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use serde_json::{Map, Value};

use amd_host_device::cni::result::IpConfig;
use amd_host_device::cni::skel;
use amd_host_device::cni::{CniResult, CniVersion, Command, Environment};
use amd_host_device::config::is_valid_network_name;
use amd_host_device::device_id::MacAddress;
use amd_host_device::error::Error;
use amd_host_device::error::KvpError;
use amd_host_device::host::netlink::Netlink;
use amd_host_device::host::netns::NetnsGuard;
use amd_host_device::log::{self, LogLevel};
use amd_host_device::log_error;
use amd_host_device::node::kvp;
use amd_host_device::node::policy::NodePolicy;

/// Same one-command process as the plugin: same allocator (see `arena`).
#[global_allocator]
static ALLOCATOR: amd_host_device::cni::arena::Arena<
    { amd_host_device::cni::arena::PLUGIN_ARENA_BYTES },
> = amd_host_device::cni::arena::Arena::new();

type Result<T> = std::result::Result<T, Error>;

fn main() -> ExitCode {
    skel::run(|command, stdin| {
        log::configure(
            LogLevel::Error,
            None,
            format!("kvp-ipoib-ipam {}", command.as_str()),
        );
        let policy = NodePolicy::load()?;
        run(command, stdin, |k| std::env::var(k).ok(), &policy)
            .inspect_err(|e| log_error!("failed (code {}): {e}", e.code() as u32))
    })
}

/// Runs `command` under the node `policy`; `Some(json)` is what goes to stdout. `get` reads
/// the environment.
fn run(
    command: Command,
    stdin: &[u8],
    get: impl Fn(&str) -> Option<String>,
    policy: &NodePolicy,
) -> Result<Option<Value>> {
    if command == Command::Version {
        return Ok(Some(skel::version_reply()));
    }
    let env = Environment::from_lookup(command, get)?;
    let conf = IpamConf::parse(stdin, policy)?;
    match command {
        Command::Add => add(&env, &conf).map(Some),
        // Nothing was allocated: nothing to release or to verify.
        Command::Del => Ok(None),
        Command::Check if conf.version.supports_check() => Ok(None),
        Command::Check => Err(Error::IncompatibleVersion(format!(
            "CHECK needs cniVersion 0.4.0 or later, the config says {}",
            conf.version
        ))),
        Command::Status | Command::Gc if !conf.version.supports_status_and_gc() => {
            Err(Error::IncompatibleVersion(format!(
                "{} needs cniVersion 1.1.0, the config says {}",
                command.as_str(),
                conf.version
            )))
        }
        Command::Status => status(&conf).map(|()| None),
        Command::Gc => Ok(None),
        Command::Version => unreachable!("handled above"),
    }
}

/// What we read from the network config (only `cniVersion`, `name` and `ipam` matter).
#[derive(Debug, Clone, PartialEq)]
struct IpamConf {
    version: CniVersion,
    pool: PathBuf,
    prefix_len: u8,
    /// Overrides the interface's own hardware address (tests, or a runtime that knows better).
    hwaddr: Option<MacAddress>,
}

impl IpamConf {
    fn parse(stdin: &[u8], policy: &NodePolicy) -> Result<IpamConf> {
        let conf: Value = serde_json::from_slice(stdin)
            .map_err(|e| Error::Decode(format!("network configuration is not valid JSON: {e}")))?;
        let conf = conf
            .as_object()
            .ok_or_else(|| Error::Decode("network configuration must be a JSON object".into()))?;
        let version = match conf.get("cniVersion") {
            Some(Value::String(v)) => CniVersion::parse(v).ok_or_else(|| {
                Error::IncompatibleVersion(format!("cniVersion {v:?} is not supported"))
            })?,
            Some(_) => return Err(invalid("\"cniVersion\" must be a string")),
            None => return Err(invalid("\"cniVersion\" is required")),
        };
        match conf.get("name") {
            Some(Value::String(n)) if is_valid_network_name(n) => {}
            Some(Value::String(n)) if !n.is_empty() => {
                return Err(Error::InvalidConfig(format!(
                    "\"name\" {n:?} must match ^[a-zA-Z0-9][a-zA-Z0-9_.-]*$"
                )))
            }
            _ => return Err(invalid("\"name\" is required")),
        }
        let ipam = match conf.get("ipam") {
            Some(Value::Object(ipam)) => ipam,
            _ => return Err(invalid("\"ipam\" must be an object")),
        };
        Ok(IpamConf {
            version,
            pool: pool_file(ipam, policy)?,
            prefix_len: prefix_length(ipam)?,
            hwaddr: hwaddr(ipam)?,
        })
    }
}

fn invalid(msg: &str) -> Error {
    Error::InvalidConfig(msg.to_owned())
}

/// The pool to read: the node's, or the config's own where the node policy allows it.
fn pool_file(ipam: &Map<String, Value>, policy: &NodePolicy) -> Result<PathBuf> {
    let from_config = match ipam.get("poolFile") {
        None | Some(Value::Null) => None,
        // Relative paths would depend on the runtime's working directory.
        Some(Value::String(p)) if p.starts_with('/') && !p.split('/').any(|c| c == "..") => {
            Some(PathBuf::from(p))
        }
        Some(other) => {
            return Err(Error::InvalidConfig(format!(
                "\"ipam.poolFile\" must be an absolute path without \"..\", got {other}"
            )))
        }
    };
    policy.choose_shown(
        "kvpPoolFile",
        "ipam.poolFile",
        from_config,
        policy.kvp_pool_file.clone(),
    )
}

fn prefix_length(ipam: &Map<String, Value>) -> Result<u8> {
    match ipam.get("prefixLength") {
        None | Some(Value::Null) => Ok(kvp::DEFAULT_PREFIX_LEN),
        Some(v) => v
            .as_u64()
            .filter(|n| (1..=32).contains(n))
            .map(|n| n as u8)
            .ok_or_else(|| {
                Error::InvalidConfig(format!(
                    "\"ipam.prefixLength\" must be an integer from 1 to 32, got {v}"
                ))
            }),
    }
}

fn hwaddr(ipam: &Map<String, Value>) -> Result<Option<MacAddress>> {
    match ipam.get("hwaddr") {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => MacAddress::parse(s)
            .map(Some)
            .map_err(|e| Error::InvalidConfig(format!("\"ipam.hwaddr\" {s:?}: {e}"))),
        Some(other) => Err(Error::InvalidConfig(format!(
            "\"ipam.hwaddr\" must be a string, got {other}"
        ))),
    }
}

fn add(env: &Environment, conf: &IpamConf) -> Result<Value> {
    let hw = match &conf.hwaddr {
        Some(hw) => hw.clone(),
        None => pod_link_hwaddr(Path::new(&env.netns), &env.ifname)?,
    };
    let ip = kvp::lookup(&conf.pool, hw.as_bytes())?;
    // No interface index: the main plugin owns the interface list and sets it.
    let result = CniResult {
        ips: vec![IpConfig {
            address: format!("{ip}/{}", conf.prefix_len),
            gateway: None,
            interface: None,
        }],
        ..CniResult::default()
    };
    Ok(result.to_json(conf.version))
}

/// The hardware address of `ifname` inside the pod (where the main plugin has put it).
fn pod_link_hwaddr(netns: &Path, ifname: &str) -> Result<MacAddress> {
    let _in_pod = NetnsGuard::enter(netns)?;
    let link = Netlink::connect()?.link_by_name(ifname)?.ok_or_else(|| {
        Error::device_not_found(format!(
            "no interface {ifname} in network namespace {}",
            netns.display()
        ))
    })?;
    link.mac.ok_or_else(|| {
        Error::Kvp(KvpError::NoEntry(format!(
            "interface {ifname} has no hardware address to look up in the KVP pool"
        )))
    })
}

/// STATUS (1.1.0): ready when the pool can be read and carries a well-formed record.
fn status(conf: &IpamConf) -> Result<()> {
    kvp::read_ipoib_pairs(&conf.pool)
        .map(|_| ())
        .map_err(|e| Error::PluginNotAvailable(e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    /// A node that lets the tests name their own pools.
    fn policy() -> NodePolicy {
        NodePolicy {
            nad_may_override: vec!["kvpPoolFile".into()],
            ..NodePolicy::default()
        }
    }

    fn run_test(
        command: Command,
        stdin: &[u8],
        get: impl Fn(&str) -> Option<String>,
    ) -> Result<Option<Value>> {
        run(command, stdin, get, &policy())
    }

    impl IpamConf {
        fn parse_test(stdin: &[u8]) -> Result<IpamConf> {
            IpamConf::parse(stdin, &policy())
        }
    }

    #[test]
    fn a_pool_file_the_node_did_not_allow_is_refused() {
        let ipam = json!({"poolFile": "/etc/shadow"});
        let err = IpamConf::parse(&conf("1.0.0", ipam), &NodePolicy::default()).unwrap_err();
        assert_eq!(code(&err), 7);
        assert!(
            err.to_string().contains("\"ipam.poolFile\" may not be set"),
            "{err}"
        );
        let node = IpamConf::parse(&conf("1.0.0", json!({})), &NodePolicy::default()).unwrap();
        assert_eq!(node.pool, PathBuf::from(kvp::DEFAULT_POOL));
    }

    /// The runtime's variables, as `run` looks them up.
    fn env_of(vars: &'static [(&'static str, &'static str)]) -> impl Fn(&str) -> Option<String> {
        move |k| {
            vars.iter()
                .find(|(name, _)| *name == k)
                .map(|(_, v)| (*v).to_owned())
        }
    }

    const ENV: &[(&str, &str)] = &[
        ("CNI_CONTAINERID", "c1"),
        ("CNI_IFNAME", "net1"),
        ("CNI_NETNS", "/var/run/netns/does-not-exist"),
    ];

    /// A pool with one unrelated record and the IPoIB one.
    fn pool(dir: &Path, value: &str) -> PathBuf {
        let mut bytes = vec![0u8; 2 * kvp::RECORD_SIZE];
        bytes[..8].copy_from_slice(b"HostName");
        let r = &mut bytes[kvp::RECORD_SIZE..];
        r[..kvp::IPOIB_KEY.len()].copy_from_slice(kvp::IPOIB_KEY.as_bytes());
        r[kvp::KEY_SIZE..kvp::KEY_SIZE + value.len()].copy_from_slice(value.as_bytes());
        let path = dir.join("kvp_pool_0");
        std::fs::write(&path, bytes).unwrap();
        path
    }

    fn conf(version: &str, ipam: Value) -> Vec<u8> {
        json!({"cniVersion": version, "name": "ib", "type": "host-device", "ipam": ipam})
            .to_string()
            .into_bytes()
    }

    fn code(e: &Error) -> u32 {
        e.code() as u32
    }

    #[test]
    fn defaults() {
        let c = IpamConf::parse_test(&conf("1.0.0", json!({"type": "kvp-ipoib-ipam"}))).unwrap();
        assert_eq!(
            c,
            IpamConf {
                version: CniVersion::V1_0_0,
                pool: PathBuf::from("/var/lib/hyperv/.kvp_pool_0"),
                prefix_len: 16,
                hwaddr: None,
            }
        );
    }

    #[test]
    fn bad_values_name_their_field() {
        let cases = [
            (json!({"poolFile": "relative/pool"}), "ipam.poolFile"),
            (json!({"poolFile": 3}), "ipam.poolFile"),
            (json!({"prefixLength": 0}), "ipam.prefixLength"),
            (json!({"prefixLength": 33}), "ipam.prefixLength"),
            (json!({"prefixLength": "16"}), "ipam.prefixLength"),
            (json!({"prefixLength": 16.5}), "ipam.prefixLength"),
            (json!({"hwaddr": "00:15:5d"}), "ipam.hwaddr"),
            (json!({"hwaddr": 7}), "ipam.hwaddr"),
        ];
        for (ipam, field) in cases {
            let err = IpamConf::parse_test(&conf("0.3.1", ipam.clone())).unwrap_err();
            assert_eq!(code(&err), 7, "{ipam}: {err}");
            assert!(err.to_string().contains(field), "{ipam}: {err}");
        }
    }

    #[test]
    fn bad_documents_get_their_codes() {
        assert_eq!(code(&IpamConf::parse_test(b"{").unwrap_err()), 6);
        assert_eq!(code(&IpamConf::parse_test(b"[]").unwrap_err()), 6);
        assert_eq!(
            code(&IpamConf::parse_test(&conf("0.2.0", json!({}))).unwrap_err()),
            1
        );
        assert_eq!(
            code(&IpamConf::parse_test(br#"{"name":"n","ipam":{}}"#).unwrap_err()),
            7
        );
        assert_eq!(
            code(&IpamConf::parse_test(br#"{"cniVersion":"1.0.0","ipam":{}}"#).unwrap_err()),
            7
        );
        assert_eq!(
            code(&IpamConf::parse_test(br#"{"cniVersion":"1.0.0","name":"n"}"#).unwrap_err()),
            7
        );
    }

    #[test]
    fn add_with_an_hwaddr_override_returns_the_kvp_address_in_each_version() {
        let dir = tempfile::tempdir().unwrap();
        let pool = pool(
            dir.path(),
            "NUMPAIRS:2|00155D33FF0B:172.16.1.4|00155D33FF0C:172.16.1.5",
        );
        let ib = "00:00:01:49:fe:80:00:00:00:00:00:00:00:15:5d:ff:fd:33:ff:0b";
        for (version, ipam, want) in [
            (
                "0.3.1",
                json!({"poolFile": pool, "hwaddr": ib}),
                json!([{"version": "4", "address": "172.16.1.4/16"}]),
            ),
            (
                "1.0.0",
                json!({"poolFile": pool, "hwaddr": "00:15:5D:33:FF:0C", "prefixLength": 24}),
                json!([{"address": "172.16.1.5/24"}]),
            ),
        ] {
            let out = run_test(Command::Add, &conf(version, ipam), env_of(ENV))
                .unwrap()
                .unwrap();
            assert_eq!(out["cniVersion"], version);
            assert_eq!(out["ips"], want, "{out}");
            assert!(out.get("interfaces").is_none(), "{out}");
        }
    }

    #[test]
    fn add_errors_carry_the_kvp_codes() {
        let dir = tempfile::tempdir().unwrap();
        let good = pool(dir.path(), "NUMPAIRS:1|00155D33FF0B:172.16.1.4");
        let hw = "00:15:5d:33:ff:0b";
        let missing = dir.path().join("missing");
        let add =
            |ipam: Value| run_test(Command::Add, &conf("1.0.0", ipam), env_of(ENV)).unwrap_err();
        assert_eq!(code(&add(json!({"poolFile": missing, "hwaddr": hw}))), 110);
        assert_eq!(
            code(&add(
                json!({"poolFile": good, "hwaddr": "02:00:00:00:00:01"})
            )),
            113
        );
        std::fs::write(&good, b"garbage").unwrap();
        let e = add(json!({"poolFile": good, "hwaddr": hw}));
        assert!(matches!(code(&e), 111 | 112), "{e}");
    }

    #[test]
    fn add_without_override_needs_the_pod_netns() {
        let dir = tempfile::tempdir().unwrap();
        let pool = pool(dir.path(), "NUMPAIRS:0");
        let err = run_test(
            Command::Add,
            &conf("1.0.0", json!({"poolFile": pool})),
            env_of(ENV),
        )
        .unwrap_err();
        assert_eq!(code(&err), 4, "{err}");
    }

    #[test]
    fn del_and_check_print_nothing_and_need_no_pool() {
        let ipam = json!({"poolFile": "/nonexistent/pool"});
        for (cmd, version) in [
            (Command::Del, "0.3.1"),
            (Command::Del, "1.1.0"),
            (Command::Check, "0.4.0"),
            (Command::Check, "1.0.0"),
        ] {
            assert_eq!(
                run_test(cmd, &conf(version, ipam.clone()), env_of(ENV)).unwrap(),
                None
            );
        }
        // DEL without a netns (the pod is gone) is fine too.
        assert_eq!(
            run_test(
                Command::Del,
                &conf("1.0.0", ipam.clone()),
                env_of(&ENV[..2])
            )
            .unwrap(),
            None
        );
        let err = run_test(Command::Check, &conf("0.3.1", ipam.clone()), env_of(ENV)).unwrap_err();
        assert_eq!(code(&err), 1);
        let err = run_test(Command::Del, b"{", env_of(ENV)).unwrap_err();
        assert_eq!(code(&err), 6);
    }

    #[test]
    fn version_lists_every_supported_version() {
        let out = run_test(Command::Version, b"", env_of(&[]))
            .unwrap()
            .unwrap();
        assert_eq!(out["cniVersion"], "1.1.0");
        assert_eq!(
            out["supportedVersions"],
            json!(["0.3.0", "0.3.1", "0.4.0", "1.0.0", "1.1.0"])
        );
    }

    #[test]
    fn status_reports_an_unreadable_pool_as_50() {
        let dir = tempfile::tempdir().unwrap();
        let good = pool(dir.path(), "NUMPAIRS:0");
        assert_eq!(
            run_test(
                Command::Status,
                &conf("1.1.0", json!({"poolFile": good})),
                env_of(&[])
            )
            .unwrap(),
            None
        );
        let missing = dir.path().join("missing");
        let err = run_test(
            Command::Status,
            &conf("1.1.0", json!({"poolFile": missing})),
            env_of(&[]),
        )
        .unwrap_err();
        assert_eq!(code(&err), 50);
        let err = run_test(
            Command::Status,
            &conf("1.0.0", json!({"poolFile": good})),
            env_of(&[]),
        )
        .unwrap_err();
        assert_eq!(code(&err), 1);
        assert_eq!(
            run_test(Command::Gc, &conf("1.1.0", json!({})), env_of(&[])).unwrap(),
            None
        );
    }
}
