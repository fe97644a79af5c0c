//! The node policy: what the node's admin decides and a NetworkAttachmentDefinition may not.
//!
//! The plugin runs as root, but its network config comes from NADs, which are namespaced and
//! often writable by a cluster's tenants. So everything in the config that touches the node —
//! paths it writes or reads, programs it runs, guards it may switch off, NICs it may take —
//! is decided here, in a root-owned file, and a NAD key that tries to decide it otherwise is
//! an error (code 7) naming the key and this file. Checked before anything is captured or
//! moved.
//!
//! The file is `/etc/amd-host-device/node.json`, or the path in `AMD_HOST_DEVICE_NODE_POLICY`
//! (set by the runtime's or DaemonSet's environment, never by a network config). A missing
//! file means the secure defaults below.

use std::fs::File;
use std::io::Read;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use serde_json::{Map, Value};

use crate::cni::error::io_error_in_words;
use crate::error::Error;
use crate::log::LogLevel;

type Result<T> = std::result::Result<T, Error>;

pub const DEFAULT_POLICY_FILE: &str = "/etc/amd-host-device/node.json";
/// The environment variable that names another policy file.
pub const POLICY_FILE_ENV: &str = "AMD_HOST_DEVICE_NODE_POLICY";
pub const DEFAULT_STATE_DIR: &str = "/var/lib/cni/amd-host-device";
pub const DEFAULT_DELEGATE: &str = "host-device";
/// Where kubelet's device manager records which devices it gave to which pod.
pub const DEFAULT_KUBELET_CHECKPOINT: &str =
    "/var/lib/kubelet/device-plugins/kubelet_internal_checkpoint";

/// The NAD keys that touch the node, which a NAD may set only when the policy lists them in
/// `nadMayOverride` (or to the value the node has anyway). The `ipam.` ones are keys of the
/// NAD's `ipam` object (see [`IPAM_PATH_KEYS`]), which no node value stands in for.
pub const OVERRIDABLE_KEYS: [&str; 10] = [
    "stateDir",
    "logFile",
    "logLevel",
    "kvpPoolFile",
    "podInterfaceName",
    "allowDefaultRouteDevice",
    "allowEnslavedDevice",
    "ipam.dataDir",
    "ipam.resolvConf",
    "ipam.daemonSocketPath",
];

/// Keys of an IPAM config that name a path on the node, in the IPAM plugins of the
/// reference set: `host-local` keeps its leases under `dataDir` (and deletes files there on
/// DEL) and reads `resolvConf`; `dhcp` talks to the daemon at `daemonSocketPath`. A NAD
/// may set one only where `nadMayOverride` lists it as `ipam.<key>`. (`kvp-ipoib-ipam`'s
/// `poolFile` is the node's `kvpPoolFile`.)
pub const IPAM_PATH_KEYS: [&str; 3] = ["dataDir", "resolvConf", "daemonSocketPath"];

/// The IPAM plugins a NAD may name when the policy does not say: `static`, which reads and
/// writes nothing on the node.
pub const DEFAULT_IPAM_TYPES: [&str; 1] = ["static"];

/// What a NAD may override when the policy does not say: nothing that names a path or
/// switches off a guard.
const DEFAULT_OVERRIDABLE: [&str; 2] = ["logLevel", "podInterfaceName"];

#[derive(Debug, Clone, PartialEq)]
pub struct NodePolicy {
    /// The file this policy was read from (or would have been), for messages.
    pub source: PathBuf,
    pub state_dir: PathBuf,
    pub log_file: Option<PathBuf>,
    pub log_level: LogLevel,
    pub kvp_pool_file: PathBuf,
    /// The plugins a NAD may name as `delegate`.
    pub delegates: Vec<String>,
    /// The IPAM plugins a NAD's `ipam` may name as its `type`.
    pub ipam_types: Vec<String>,
    /// Whether the NIC carrying the host's default route may be moved at all.
    pub allow_default_route_device: bool,
    /// Whether a NIC the host uses (a bridge/bond/team/VRF port, or one with VLAN or
    /// macvlan children) may be moved; a port is enslaved again when it comes back.
    pub allow_enslaved_device: bool,
    /// On a Kubernetes node (kubelet's checkpoint present): whether a NIC may be selected
    /// otherwise than by a PCI address the device plugin allocated to the pod.
    pub allow_unverified_selection: bool,
    pub kubelet_checkpoint: PathBuf,
    /// The keys of [`OVERRIDABLE_KEYS`] a NAD may set to another value than the node's.
    pub nad_may_override: Vec<String>,
}

impl Default for NodePolicy {
    /// The secure defaults: what a node without a policy file gets.
    fn default() -> Self {
        NodePolicy {
            source: PathBuf::from(DEFAULT_POLICY_FILE),
            state_dir: PathBuf::from(DEFAULT_STATE_DIR),
            log_file: None,
            log_level: LogLevel::Info,
            kvp_pool_file: PathBuf::from(crate::node::kvp::DEFAULT_POOL),
            delegates: vec![DEFAULT_DELEGATE.to_owned()],
            ipam_types: DEFAULT_IPAM_TYPES.map(str::to_owned).to_vec(),
            allow_default_route_device: false,
            allow_enslaved_device: false,
            allow_unverified_selection: false,
            kubelet_checkpoint: PathBuf::from(DEFAULT_KUBELET_CHECKPOINT),
            nad_may_override: DEFAULT_OVERRIDABLE.map(str::to_owned).to_vec(),
        }
    }
}

impl NodePolicy {
    /// The policy of this node: the file `AMD_HOST_DEVICE_NODE_POLICY` names, else the
    /// default file; the secure defaults when that file does not exist.
    pub fn load() -> Result<NodePolicy> {
        NodePolicy::load_from(&NodePolicy::path()?)
    }

    /// The file the policy of this node is read from: `AMD_HOST_DEVICE_NODE_POLICY`'s,
    /// else the default one.
    pub fn path() -> Result<PathBuf> {
        let path = match std::env::var_os(POLICY_FILE_ENV).filter(|p| !p.is_empty()) {
            None => PathBuf::from(DEFAULT_POLICY_FILE),
            // A relative path would depend on the runtime's working directory; a typo must
            // not quietly mean the defaults.
            Some(p) if !Path::new(&p).is_absolute() => {
                return Err(Error::NodePolicy(format!(
                    "{POLICY_FILE_ENV} {:?} is not an absolute path",
                    p
                )))
            }
            Some(p) => PathBuf::from(p),
        };
        Ok(path)
    }

    /// The policy in `path`; the secure defaults if there is no such file.
    pub fn load_from(path: &Path) -> Result<NodePolicy> {
        let unusable =
            |why: String| Error::NodePolicy(format!("node policy {}: {why}", path.display()));
        let mut file = match File::open(path) {
            Ok(f) => f,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Ok(NodePolicy {
                    source: path.to_path_buf(),
                    ..NodePolicy::default()
                })
            }
            Err(e) => {
                return Err(unusable(format!(
                    "cannot open it: {}",
                    io_error_in_words(&e)
                )))
            }
        };
        let meta = file.metadata().map_err(|e| {
            unusable(format!(
                "cannot read its metadata: {}",
                io_error_in_words(&e)
            ))
        })?;
        trusted_file(&meta).map_err(unusable)?;
        // Sized from the fstat above: `File::read_to_string` would make its own fstat and
        // lseek for the same size hint, on every ADD and DEL.
        let mut text = String::with_capacity(usize::try_from(meta.len()).unwrap_or(0) + 1);
        file.by_ref()
            .take(u64::MAX)
            .read_to_string(&mut text)
            .map_err(|e| unusable(format!("cannot read it: {}", io_error_in_words(&e))))?;
        let value: Value =
            serde_json::from_str(&text).map_err(|e| unusable(format!("not valid JSON: {e}")))?;
        let Value::Object(obj) = value else {
            return Err(unusable("must be a JSON object".into()));
        };
        from_object(path, &obj).map_err(unusable)
    }

    /// Whether a NAD may set `key` to a value of its own.
    pub fn nad_may_override(&self, key: &str) -> bool {
        self.nad_may_override.iter().any(|k| k == key)
    }

    /// The value of a node key: the NAD's if the policy lets it decide (or it says what the
    /// node says anyway), the node's if the NAD says nothing.
    pub fn choose<T: PartialEq>(&self, key: &str, from_nad: Option<T>, node: T) -> Result<T> {
        self.choose_shown(key, key, from_nad, node)
    }

    /// [`NodePolicy::choose`] for a NAD key that is called `shown` where the NAD sets it
    /// (`ipam.poolFile` is the IPAM plugin's `kvpPoolFile`).
    pub fn choose_shown<T: PartialEq>(
        &self,
        key: &str,
        shown: &str,
        from_nad: Option<T>,
        node: T,
    ) -> Result<T> {
        match from_nad {
            None => Ok(node),
            Some(v) if self.lets_nad_set(key, &v, &node) => Ok(v),
            Some(_) => Err(self.refuses(shown)),
        }
    }

    /// Whether a NAD may set `key` to `value` here: the policy lets it decide, or it says what
    /// the node says anyway.
    pub fn lets_nad_set<T: PartialEq>(&self, key: &str, value: &T, node: &T) -> bool {
        value == node || self.nad_may_override(key)
    }

    /// The error for a NAD key this policy does not let a NAD decide.
    pub fn refuses(&self, shown: &str) -> Error {
        Error::InvalidConfig(format!(
            "\"{shown}\" may not be set by a network config on this node (node policy {}); \
             the node's admin decides it there",
            self.source.display()
        ))
    }

    /// The delegate a NAD gets when it names none: the first the policy allows.
    pub fn default_delegate(&self) -> &str {
        &self.delegates[0]
    }

    /// The delegate a NAD names, if the policy allows it.
    pub fn check_delegate(&self, delegate: &str) -> Result<()> {
        if self.delegates.iter().any(|d| d == delegate) {
            return Ok(());
        }
        Err(Error::InvalidConfig(format!(
            "\"delegate\" {delegate:?} is not allowed by the node policy {} (allowed: {})",
            self.source.display(),
            self.delegates.join(", ")
        )))
    }

    /// The IPAM plugin a NAD's `ipam` names, if the policy allows it.
    pub fn check_ipam_type(&self, ipam_type: &str) -> Result<()> {
        if self.ipam_types.iter().any(|t| t == ipam_type) {
            return Ok(());
        }
        let allowed = match self.ipam_types.as_slice() {
            [] => "none".to_owned(),
            list => list.join(", "),
        };
        Err(Error::InvalidConfig(format!(
            "\"ipam\" type {ipam_type:?} is not allowed by the node policy {} (allowed: \
             {allowed}); the node's admin lists the IPAM plugins a network config may use \
             in \"ipamTypes\"",
            self.source.display(),
        )))
    }
}

/// Only a regular file that only root can change is trusted to decide for the node.
fn trusted_file(meta: &std::fs::Metadata) -> std::result::Result<(), String> {
    if !meta.is_file() {
        return Err("is not a regular file; refusing to use it".into());
    }
    if meta.uid() != 0 {
        return Err(format!(
            "is owned by uid {}, not root; refusing to use it",
            meta.uid()
        ));
    }
    if meta.mode() & 0o022 != 0 {
        return Err(format!(
            "is group- or world-writable (mode {:o}); refusing to use it",
            meta.mode() & 0o7777
        ));
    }
    Ok(())
}

type Parsed<T> = std::result::Result<T, String>;

fn from_object(path: &Path, obj: &Map<String, Value>) -> Parsed<NodePolicy> {
    const KEYS: [&str; 12] = [
        "stateDir",
        "logFile",
        "logLevel",
        "kvpPoolFile",
        "delegates",
        "ipamTypes",
        "allowDefaultRouteDevice",
        "allowEnslavedDevice",
        "allowUnverifiedSelection",
        "kubeletCheckpoint",
        "nadMayOverride",
        "comment",
    ];
    if let Some(unknown) = obj.keys().find(|k| !KEYS.contains(&k.as_str())) {
        // A typo must not silently leave the node on a default.
        return Err(format!(
            "unknown key \"{unknown}\" (known: {})",
            KEYS.join(", ")
        ));
    }
    let defaults = NodePolicy::default();
    Ok(NodePolicy {
        source: path.to_path_buf(),
        state_dir: path_key(obj, "stateDir")?.unwrap_or(defaults.state_dir),
        log_file: path_key(obj, "logFile")?,
        log_level: match string_key(obj, "logLevel")? {
            None => defaults.log_level,
            Some(level) => LogLevel::parse(&level)
                .ok_or_else(|| format!("\"logLevel\" {level:?} must be error, info or debug"))?,
        },
        kvp_pool_file: path_key(obj, "kvpPoolFile")?.unwrap_or(defaults.kvp_pool_file),
        delegates: match names_key(obj, "delegates", &[])? {
            Some(list) if list.is_empty() => {
                return Err("\"delegates\" must name at least one plugin".into())
            }
            list => list.unwrap_or(defaults.delegates),
        },
        ipam_types: names_key(obj, "ipamTypes", &[])?.unwrap_or(defaults.ipam_types),
        allow_default_route_device: bool_key(obj, "allowDefaultRouteDevice")?.unwrap_or(false),
        allow_enslaved_device: bool_key(obj, "allowEnslavedDevice")?.unwrap_or(false),
        allow_unverified_selection: bool_key(obj, "allowUnverifiedSelection")?.unwrap_or(false),
        kubelet_checkpoint: path_key(obj, "kubeletCheckpoint")?
            .unwrap_or(defaults.kubelet_checkpoint),
        nad_may_override: names_key(obj, "nadMayOverride", &OVERRIDABLE_KEYS)?
            .unwrap_or(defaults.nad_may_override),
    })
}

fn string_key(obj: &Map<String, Value>, key: &str) -> Parsed<Option<String>> {
    match obj.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s.clone())),
        Some(_) => Err(format!("\"{key}\" must be a string")),
    }
}

fn path_key(obj: &Map<String, Value>, key: &str) -> Parsed<Option<PathBuf>> {
    match string_key(obj, key)? {
        None => Ok(None),
        Some(p) if p.starts_with('/') && !p.split('/').any(|c| c == "..") => {
            Ok(Some(PathBuf::from(p)))
        }
        Some(p) => Err(format!(
            "\"{key}\" {p:?} must be an absolute path without \"..\""
        )),
    }
}

fn bool_key(obj: &Map<String, Value>, key: &str) -> Parsed<Option<bool>> {
    match obj.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Bool(b)) => Ok(Some(*b)),
        Some(_) => Err(format!("\"{key}\" must be true or false")),
    }
}

/// A list of names; with `allowed` non-empty, every name must be one of them.
fn names_key(obj: &Map<String, Value>, key: &str, allowed: &[&str]) -> Parsed<Option<Vec<String>>> {
    let list = match obj.get(key) {
        None | Some(Value::Null) => return Ok(None),
        Some(Value::Array(list)) => list,
        Some(_) => return Err(format!("\"{key}\" must be a list of strings")),
    };
    let mut names = Vec::new();
    for item in list {
        let name = item
            .as_str()
            .ok_or_else(|| format!("\"{key}\" must be a list of strings"))?;
        if !allowed.is_empty() && !allowed.contains(&name) {
            return Err(format!(
                "\"{key}\" lists {name:?}, which is not one of {}",
                allowed.join(", ")
            ));
        }
        if allowed.is_empty() && !is_plugin_name(name) {
            return Err(format!(
                "\"{key}\" lists {name:?}, which is not a plugin name"
            ));
        }
        names.push(name.to_owned());
    }
    Ok(Some(names))
}

/// A plugin is named, never given as a path.
pub fn is_plugin_name(name: &str) -> bool {
    !name.is_empty() && !name.contains('/') && !name.starts_with('.')
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    fn write(dir: &Path, text: &str, mode: u32) -> PathBuf {
        let path = dir.join("node.json");
        // A new file each time: the owner of an old one would carry over.
        let _ = std::fs::remove_file(&path);
        std::fs::write(&path, text).unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(mode)).unwrap();
        path
    }

    fn refusal(path: &Path) -> String {
        let e = NodePolicy::load_from(path).unwrap_err();
        assert_eq!(e.code() as u32, 7, "{e}");
        assert!(e.to_string().contains(&path.display().to_string()), "{e}");
        e.to_string()
    }

    #[test]
    fn a_missing_file_means_the_secure_defaults() {
        let tmp = tempfile::tempdir().unwrap();
        let p = NodePolicy::load_from(&tmp.path().join("none.json")).unwrap();
        assert_eq!(p.state_dir, PathBuf::from(DEFAULT_STATE_DIR));
        assert_eq!(p.delegates, ["host-device"]);
        assert_eq!(p.ipam_types, ["static"]);
        assert!(!p.allow_default_route_device && !p.allow_unverified_selection);
        assert!(p.nad_may_override("logLevel") && p.nad_may_override("podInterfaceName"));
        for key in [
            "stateDir",
            "logFile",
            "kvpPoolFile",
            "allowDefaultRouteDevice",
            "ipam.dataDir",
            "ipam.resolvConf",
            "ipam.daemonSocketPath",
        ] {
            assert!(!p.nad_may_override(key), "{key}");
        }
    }

    #[test]
    fn a_valid_file_decides_every_key() {
        let tmp = tempfile::tempdir().unwrap();
        let path = write(
            tmp.path(),
            r#"{"stateDir": "/s", "logFile": "/l.log", "logLevel": "debug",
                "kvpPoolFile": "/k", "delegates": ["host-device", "my-dev"],
                "ipamTypes": ["static", "kvp-ipoib-ipam"],
                "allowDefaultRouteDevice": true, "allowUnverifiedSelection": true,
                "kubeletCheckpoint": "/c", "nadMayOverride": ["stateDir"], "comment": "x"}"#,
            0o644,
        );
        if !nix::unistd::geteuid().is_root() {
            eprintln!("skipped: the policy file must be root's");
            return;
        }
        let p = NodePolicy::load_from(&path).unwrap();
        assert_eq!(
            (p.state_dir.as_path(), p.log_file.as_deref(), p.log_level),
            (Path::new("/s"), Some(Path::new("/l.log")), LogLevel::Debug)
        );
        assert_eq!(p.delegates, ["host-device", "my-dev"]);
        assert_eq!(p.ipam_types, ["static", "kvp-ipoib-ipam"]);
        assert!(p.allow_default_route_device && p.allow_unverified_selection);
        assert_eq!(p.kubelet_checkpoint, PathBuf::from("/c"));
        assert!(p.nad_may_override("stateDir") && !p.nad_may_override("logLevel"));
    }

    #[test]
    fn writable_foreign_or_malformed_files_are_refused() {
        if !nix::unistd::geteuid().is_root() {
            eprintln!("skipped: needs root to own (and chown) the policy file");
            return;
        }
        let tmp = tempfile::tempdir().unwrap();
        let path = write(tmp.path(), "{}", 0o666);
        assert!(refusal(&path).contains("writable"));
        let path = write(tmp.path(), "{}", 0o664);
        assert!(refusal(&path).contains("writable"));
        let path = write(tmp.path(), "{}", 0o644);
        nix::unistd::chown(&path, Some(nix::unistd::Uid::from_raw(1000)), None).unwrap();
        assert!(refusal(&path).contains("not root"));
        for (text, why) in [
            ("{", "not valid JSON"),
            ("[]", "JSON object"),
            (r#"{"stateDri": "/x"}"#, "unknown key \"stateDri\""),
            (r#"{"stateDir": "x"}"#, "absolute path"),
            (r#"{"delegates": ["/bin/sh"]}"#, "not a plugin name"),
            (r#"{"ipamTypes": ["../host-local"]}"#, "not a plugin name"),
            (r#"{"ipamTypes": "static"}"#, "list of strings"),
            (r#"{"nadMayOverride": ["ipam.subnet"]}"#, "not one of"),
            (r#"{"nadMayOverride": ["delegate"]}"#, "not one of"),
            (r#"{"allowUnverifiedSelection": "yes"}"#, "true or false"),
        ] {
            let path = write(tmp.path(), text, 0o644);
            assert!(refusal(&path).contains(why), "{text}");
        }
        std::fs::create_dir(tmp.path().join("dir.json")).unwrap();
        assert!(refusal(&tmp.path().join("dir.json")).contains("not a regular file"));
    }

    #[test]
    fn a_nad_decides_only_what_the_policy_lets_it() {
        let p = NodePolicy::default();
        assert_eq!(
            p.choose("logLevel", Some(LogLevel::Debug), LogLevel::Info)
                .unwrap(),
            LogLevel::Debug
        );
        let node = PathBuf::from(DEFAULT_STATE_DIR);
        assert_eq!(p.choose("stateDir", None, node.clone()).unwrap(), node);
        assert_eq!(
            p.choose("stateDir", Some(node.clone()), node.clone())
                .unwrap(),
            node,
            "the node's own value is no override"
        );
        let e = p
            .choose("stateDir", Some(PathBuf::from("/etc")), node)
            .unwrap_err();
        assert_eq!(e.code() as u32, 7);
        assert!(
            e.to_string().contains("\"stateDir\"") && e.to_string().contains(DEFAULT_POLICY_FILE),
            "{e}"
        );
        assert!(p.check_delegate("host-device").is_ok());
        assert_eq!(p.check_delegate("bridge").unwrap_err().code() as u32, 7);
    }
}
