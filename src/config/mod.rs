//! The network configuration on stdin: parsed, validated and given defaults once, under
//! the node policy (a key that touches the node is the policy's to decide, see `policy`).
//! May import `node` (the policy it is parsed under), `host`, `error`, `cni` and the
//! leaves; the verbs and the admin commands import it.

use std::path::PathBuf;

use serde::Deserialize;
use serde_json::Value;

use crate::cni::CniVersion;
use crate::device_id::{MacAddress, PciAddress};
use crate::error::Error;
pub use crate::host::device::Selector;
use crate::log::LogLevel;
use crate::node::policy::{NodePolicy, IPAM_PATH_KEYS};

#[cfg(test)]
mod fuzz;
mod refusals;
mod wire;

use refusals::Refusals;
use wire::{decode, wrong_type};

type Result<T> = std::result::Result<T, Error>;

/// Which name the device carries inside the pod.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum PodInterfaceName {
    /// Keep the host name (`enp94s0f1`), as the product documentation shows.
    #[default]
    Host,
    /// Use `CNI_IFNAME` (`net1`); what chained plugins such as `tuning` expect.
    Cni,
}

/// Where the addresses the pod gets come from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum AddressSource {
    /// The global addresses captured on the host interface.
    #[default]
    Interface,
    /// The IPoIB address Hyper-V KVP publishes for the interface's MAC (Azure).
    Kvp,
    /// The interface's addresses if it has any, else the KVP address if a pool exists.
    Auto,
}

#[derive(Debug, Clone)]
pub struct NetConf {
    pub cni_version: CniVersion,
    pub name: String,
    /// The config's own name was one the spec forbids and `name` is a safe stand-in (DEL
    /// and GC only): it may equal another, real network's name, so GC releases nothing.
    pub name_made_safe: bool,
    pub selector: Selector,
    /// The user's own IPAM block, passed to the delegate untouched.
    pub ipam: Option<Value>,
    pub pod_interface_name: PodInterfaceName,
    pub state_dir: PathBuf,
    pub delegate: String,
    pub log_file: Option<PathBuf>,
    pub log_level: LogLevel,
    pub allow_default_route_device: bool,
    pub allow_enslaved_device: bool,
    pub address_source: AddressSource,
    pub kvp_pool_file: PathBuf,
    pub kvp_prefix_length: u8,
    pub prev_result: Option<Value>,
    /// `runtimeConfig.CNIDeviceInfoFile`, where the workload's device information goes (only
    /// under the device-info spec's directory; see `device_info`).
    pub device_info_file: Option<PathBuf>,
    /// The node policy's kubelet checkpoint, and whether a selection that cannot be tied
    /// to a device-plugin allocation may pass (see `kubelet`).
    pub kubelet_checkpoint: PathBuf,
    pub allow_unverified_selection: bool,
    /// `cni.dev/valid-attachments` (GC).
    pub valid_attachments: Option<Vec<ValidAttachment>>,
}

#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct ValidAttachment {
    #[serde(rename = "containerID")]
    pub container_id: String,
    pub ifname: String,
}

fn parse_pod_interface_name(v: Option<&str>) -> Result<Option<PodInterfaceName>> {
    match v {
        None => Ok(None),
        Some("host") => Ok(Some(PodInterfaceName::Host)),
        Some("cni") => Ok(Some(PodInterfaceName::Cni)),
        Some(other) => Err(Error::InvalidConfig(format!(
            "\"podInterfaceName\" {other:?} must be \"host\" or \"cni\""
        ))),
    }
}

fn parse_address_source(v: Option<&str>) -> Result<AddressSource> {
    match v {
        None | Some("interface") => Ok(AddressSource::Interface),
        Some("kvp") => Ok(AddressSource::Kvp),
        Some("auto") => Ok(AddressSource::Auto),
        Some(other) => Err(Error::InvalidConfig(format!(
            "\"addressSource\" {other:?} must be \"interface\", \"kvp\" or \"auto\""
        ))),
    }
}

fn parse_prefix_length(v: Option<&Value>) -> Result<u8> {
    match v {
        None => Ok(crate::node::kvp::DEFAULT_PREFIX_LEN),
        Some(n) => n
            .as_u64()
            .filter(|n| (1..=32).contains(n))
            .map(|n| n as u8)
            .ok_or_else(|| wrong_type("kvpPrefixLength", "an integer from 1 to 32")),
    }
}

fn parse_log_level(v: Option<&str>) -> Result<Option<LogLevel>> {
    let Some(level) = v else {
        return Ok(None);
    };
    LogLevel::parse(level).map(Some).ok_or_else(|| {
        Error::InvalidConfig(format!(
            "\"logLevel\" {level:?} must be \"error\", \"info\" or \"debug\""
        ))
    })
}

/// Whether `name` is a network name the spec allows.
pub fn is_valid_network_name(name: &str) -> bool {
    let mut chars = name.chars();
    chars.next().is_some_and(|c| c.is_ascii_alphanumeric())
        && chars.all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-'))
}

/// `name` with every character the spec forbids in a network name replaced by `_` (and a
/// leading `x` where it must start with a letter or digit): what DEL and GC go on with
/// when a config of an earlier release named its network so.
fn spec_safe_network_name(name: &str) -> String {
    let safe: String = name
        .chars()
        .map(|c| match c {
            c if c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-') => c,
            _ => '_',
        })
        .collect();
    if safe.starts_with(|c: char| c.is_ascii_alphanumeric()) {
        safe
    } else {
        format!("x{safe}")
    }
}

/// `^[a-zA-Z0-9][a-zA-Z0-9_.\-]*$`, as the spec requires of a network name. It also ends up
/// in log lines and file contents, so nothing else may pass.
fn validate_network_name(name: &str) -> Result<()> {
    if is_valid_network_name(name) {
        Ok(())
    } else {
        Err(Error::InvalidConfig(format!(
            "\"name\" {name:?} must match ^[a-zA-Z0-9][a-zA-Z0-9_.-]*$"
        )))
    }
}

impl NetConf {
    /// Parses a full config (ADD, CHECK, STATUS) under the node's `policy`: a value the
    /// config may not choose is an error (code 7), before anything is done.
    pub fn parse(stdin: &[u8], policy: &NodePolicy) -> Result<NetConf> {
        NetConf::parse_under(stdin, policy, &mut Refusals::Fatal)
    }

    /// Parses the config of a verb that gives NICs back (DEL, GC): a value the config may not
    /// choose (the policy was tightened since ADD, or an earlier release accepted it) is
    /// replaced by the node's, and the second value says what was ignored and why, for the
    /// node's log. Anything else wrong with the config is still an error.
    pub fn parse_for_give_back(
        stdin: &[u8],
        policy: &NodePolicy,
    ) -> Result<(NetConf, Vec<String>)> {
        let mut refusals = Refusals::Ignored(Vec::new());
        let conf = NetConf::parse_under(stdin, policy, &mut refusals)?;
        Ok((conf, refusals.into_notes()))
    }

    fn parse_under(stdin: &[u8], policy: &NodePolicy, refusals: &mut Refusals) -> Result<NetConf> {
        let raw = decode(stdin)?;
        let cni_version = parse_version(raw.cni_version.as_deref())?;
        let name = raw
            .name
            .filter(|n| !n.is_empty())
            .ok_or_else(|| Error::InvalidConfig("\"name\" is required".into()))?;
        let (name, name_made_safe) = match validate_network_name(&name) {
            Ok(()) => (name, false),
            // An earlier release took names the spec forbids: DEL of such a pod must still
            // give its NIC back, under a name safe for logs and for host-device.
            Err(e) => refusals
                .refuse(e)
                .map(|()| (spec_safe_network_name(&name), true))?,
        };
        let selector = parse_selector(
            [
                ("deviceID", raw.device_id),
                ("pciBusID", raw.pci_bus_id),
                ("runtimeConfig.deviceID", raw.runtime_device_id),
            ],
            raw.device,
            raw.hwaddr,
            raw.kernel_path,
        )?;
        let mut ipam = match raw.ipam {
            None | Some(Value::Null) => None,
            Some(v) if v.is_object() && v.get("type").and_then(Value::as_str).is_some() => Some(v),
            Some(_) => {
                return Err(Error::InvalidConfig(
                    "\"ipam\" must be an object with a \"type\"".into(),
                ))
            }
        };
        let delegate = choose_delegate(raw.delegate, policy, refusals)?;
        check_ipam(&mut ipam, policy, refusals)?;
        let device_info_file = check_device_info_file(raw.device_info_file, refusals)?;
        let address_source = parse_address_source(raw.address_source.as_deref())?;
        if ipam.is_some() && address_source != AddressSource::Interface {
            return Err(Error::InvalidConfig(
                "\"ipam\" and \"addressSource\" both choose the pod's addresses; set only one"
                    .into(),
            ));
        }
        let nad_log_file = absolute_path("logFile", raw.log_file.as_deref())?;
        Ok(NetConf {
            cni_version,
            name,
            name_made_safe,
            selector,
            ipam,
            pod_interface_name: refusals.choose(
                policy,
                "podInterfaceName",
                parse_pod_interface_name(raw.pod_interface_name.as_deref())?,
                PodInterfaceName::Host,
            )?,
            state_dir: refusals.choose(
                policy,
                "stateDir",
                absolute_path("stateDir", raw.state_dir.as_deref())?,
                policy.state_dir.clone(),
            )?,
            delegate,
            log_file: refusals.choose(
                policy,
                "logFile",
                nad_log_file.map(Some),
                policy.log_file.clone(),
            )?,
            log_level: refusals.choose(
                policy,
                "logLevel",
                parse_log_level(raw.log_level.as_deref())?,
                policy.log_level,
            )?,
            allow_default_route_device: guard_override(
                policy,
                refusals,
                "allowDefaultRouteDevice",
                raw.allow_default_route_device,
                policy.allow_default_route_device,
            )?,
            allow_enslaved_device: guard_override(
                policy,
                refusals,
                "allowEnslavedDevice",
                raw.allow_enslaved_device,
                policy.allow_enslaved_device,
            )?,
            address_source,
            kvp_pool_file: refusals.choose(
                policy,
                "kvpPoolFile",
                absolute_path("kvpPoolFile", raw.kvp_pool_file.as_deref())?,
                policy.kvp_pool_file.clone(),
            )?,
            kvp_prefix_length: parse_prefix_length(raw.kvp_prefix_length.as_ref())?,
            prev_result: raw.prev_result,
            device_info_file,
            kubelet_checkpoint: policy.kubelet_checkpoint.clone(),
            allow_unverified_selection: policy.allow_unverified_selection,
            valid_attachments: raw.valid_attachments,
        })
    }
}
/// The delegate the config names, if the policy allows it, else the node's first. A name that
/// is a path is never a delegate.
fn choose_delegate(
    from_nad: Option<String>,
    policy: &NodePolicy,
    refusals: &mut Refusals,
) -> Result<String> {
    let Some(delegate) = from_nad else {
        return Ok(policy.default_delegate().to_owned());
    };
    if !crate::node::policy::is_plugin_name(&delegate) {
        return Err(Error::InvalidConfig(format!(
            "\"delegate\" {delegate:?} must be a plugin name, not a path"
        )));
    }
    match policy.check_delegate(&delegate) {
        Ok(()) => Ok(delegate),
        Err(refused) => refusals
            .refuse(refused)
            .map(|()| policy.default_delegate().to_owned()),
    }
}

/// The user's IPAM runs as root with the `ipam` object we hand it, so what it is and what
/// it names on the node are the policy's: its `type` must be one `ipamTypes` allows, a key
/// naming a node path ([`IPAM_PATH_KEYS`]) one `nadMayOverride` lists, and the pool our own
/// `kvp-ipoib-ipam` reads the node's. Checked here rather than after host-device moved the
/// NIC. The reference plugins decode with Go's encoding/json, which matches a key to a
/// field regardless of case (`DataDir`, `DATADIR`...), so keys are compared as it does.
/// An ignored refusal (DEL, GC) leaves out what was refused: an IPAM of a type the policy
/// does not list is not run, a path key is dropped (the IPAM's own default applies).
fn check_ipam(
    ipam: &mut Option<Value>,
    policy: &NodePolicy,
    refusals: &mut Refusals,
) -> Result<()> {
    let Some(Value::Object(keys)) = ipam.as_ref() else {
        return Ok(());
    };
    // Which plugin first: whatever else the block says is that plugin's.
    let mut type_refused = None;
    for (key, value) in keys.iter().filter(|(k, _)| go_json_fold(k) == "type") {
        let ipam_type = value
            .as_str()
            .ok_or_else(|| wrong_type(&format!("ipam.{key}"), "a string"))?;
        if let Err(refused) = policy.check_ipam_type(ipam_type) {
            type_refused = Some(refused);
            break;
        }
    }
    if let Some(refused) = type_refused {
        refusals.refuse(refused)?;
        *ipam = None;
        return Ok(());
    }
    let refused_keys: Vec<String> = keys
        .keys()
        .filter(|key| {
            let folded = go_json_fold(key);
            IPAM_PATH_KEYS
                .iter()
                .find(|k| go_json_fold(k) == folded)
                .is_some_and(|k| !policy.nad_may_override(&format!("ipam.{k}")))
        })
        .cloned()
        .collect();
    let Some(Value::Object(keys)) = ipam.as_mut() else {
        return Ok(());
    };
    for key in refused_keys {
        refusals.refuse(policy.refuses(&format!("ipam.{key}")))?;
        keys.remove(&key);
    }
    match ipam {
        Some(block) => check_known_ipam(block, policy, refusals),
        None => Ok(()),
    }
}

/// A key as Go's encoding/json matches it to a field: case folded, with the long s (`ſ`)
/// taken for `s` and the Kelvin sign for `k`.
fn go_json_fold(key: &str) -> String {
    key.chars()
        .flat_map(char::to_uppercase)
        .flat_map(char::to_lowercase)
        .collect()
}

/// For the IPAM we ship, the pool it would read is the policy's to allow. An ignored
/// refusal points the IPAM at the node's pool.
fn check_known_ipam(ipam: &mut Value, policy: &NodePolicy, refusals: &mut Refusals) -> Result<()> {
    if ipam.get("type").and_then(Value::as_str) != Some("kvp-ipoib-ipam") {
        return Ok(());
    }
    let pool = match ipam.get("poolFile") {
        None | Some(Value::Null) => return Ok(()),
        Some(Value::String(p)) => absolute_path("ipam.poolFile", Some(p))?,
        Some(_) => return Err(wrong_type("ipam.poolFile", "a string")),
    };
    let chosen = refusals.choose_shown(
        policy,
        "kvpPoolFile",
        "ipam.poolFile",
        pool,
        policy.kvp_pool_file.clone(),
    )?;
    ipam["poolFile"] = Value::String(chosen.to_string_lossy().into_owned());
    Ok(())
}

/// `runtimeConfig.CNIDeviceInfoFile` only as a file directly in the device-info spec's
/// directory: a NAD may not choose where ADD writes as root (an ignored one is dropped).
fn check_device_info_file(
    from_nad: Option<String>,
    refusals: &mut Refusals,
) -> Result<Option<PathBuf>> {
    let Some(path) = from_nad.map(PathBuf::from) else {
        return Ok(None);
    };
    if crate::node::device_info::is_allowed(&path) {
        return Ok(Some(path));
    }
    refusals
        .refuse(Error::InvalidConfig(format!(
            "\"runtimeConfig.CNIDeviceInfoFile\" {:?} must be a file directly in {} (the \
             device-info spec's directory)",
            path.display().to_string(),
            crate::node::device_info::DEVICE_INFO_DIR
        )))
        .map(|()| None)
}

/// A NAD may always keep a guard on; switching it off is the policy's call.
fn guard_override(
    policy: &NodePolicy,
    refusals: &mut Refusals,
    key: &str,
    from_nad: Option<bool>,
    node: bool,
) -> Result<bool> {
    match from_nad {
        Some(false) => Ok(false),
        nad => refusals.choose(policy, key, nad, node),
    }
}

fn parse_version(v: Option<&str>) -> Result<CniVersion> {
    let v = v.ok_or_else(|| Error::InvalidConfig("\"cniVersion\" is required".into()))?;
    CniVersion::parse(v).ok_or_else(|| {
        let supported: Vec<_> = CniVersion::ALL.iter().map(|v| v.as_str()).collect();
        Error::IncompatibleVersion(format!(
            "cniVersion {v:?} is not supported (supported: {})",
            supported.join(", ")
        ))
    })
}

fn parse_selector(
    pci_fields: [(&str, Option<String>); 3],
    device: Option<String>,
    hwaddr: Option<String>,
    kernel_path: Option<String>,
) -> Result<Selector> {
    let mut pci: Option<(&str, PciAddress)> = None;
    let mut auxiliary: Option<String> = None;
    for (field, value) in pci_fields {
        let Some(value) = value.filter(|v| !v.is_empty()) else {
            continue;
        };
        let addr = match PciAddress::parse(&value) {
            Ok(addr) => addr,
            // A device id may also name an auxiliary-bus device (a sub-function); Multus
            // copies the device plugin's id into pciBusID too.
            Err(_) if is_auxiliary_name(&value) => {
                if let Some(seen) = auxiliary.as_ref().filter(|seen| **seen != value) {
                    return Err(Error::InvalidConfig(format!(
                        "conflicting selectors: \"{field}\" is {value} but another device id \
                         names {seen}"
                    )));
                }
                auxiliary = Some(value);
                continue;
            }
            Err(reason) => {
                return Err(Error::InvalidConfig(format!(
                    "\"{field}\" {value:?} is not a PCI address: {reason}"
                )))
            }
        };
        match &pci {
            Some((first, seen)) if *seen != addr => {
                return Err(Error::InvalidConfig(format!(
                    "conflicting selectors: \"{first}\" is {seen} but \"{field}\" is {addr}"
                )))
            }
            Some(_) => {}
            None => pci = Some((field, addr)),
        }
    }
    let device = device.filter(|d| !d.is_empty());
    if let Some(d) = &device {
        crate::cni::env::validate_ifname(d)
            .map_err(|reason| Error::InvalidConfig(format!("\"device\": {reason}")))?;
    }
    let hwaddr = match hwaddr.filter(|h| !h.is_empty()) {
        Some(h) => Some(MacAddress::parse(&h).map_err(|reason| {
            Error::InvalidConfig(format!("\"hwaddr\" {h:?} is not a MAC address: {reason}"))
        })?),
        None => None,
    };
    let kernel_path = kernel_path.filter(|k| !k.is_empty());
    if let Some(k) = &kernel_path {
        if !k.starts_with("/sys/devices/") || k.split('/').any(|c| c == "..") {
            return Err(Error::InvalidConfig(format!(
                "\"kernelpath\" {k:?} must be a path under /sys/devices without \"..\""
            )));
        }
    }
    let selector = Selector {
        pci: pci.map(|(_, a)| a),
        device,
        hwaddr,
        auxiliary,
        kernel_path,
    };
    Ok(selector)
}

/// An auxiliary-bus device name, `<module>.<device>.<id>` (`mlx5_core.sf.2`): nothing that
/// could walk out of `/sys/bus/auxiliary/devices`, and no colon, which PCI addresses have.
fn is_auxiliary_name(value: &str) -> bool {
    value.contains('.')
        && value != ".."
        && !value.starts_with('.')
        && value
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.'))
}

fn absolute_path(field: &str, value: Option<&str>) -> Result<Option<PathBuf>> {
    match value {
        None => Ok(None),
        Some(p) if p.starts_with('/') && !p.split('/').any(|c| c == "..") => {
            Ok(Some(PathBuf::from(p)))
        }
        Some(p) => Err(Error::InvalidConfig(format!(
            "\"{field}\" {p:?} must be an absolute path without \"..\""
        ))),
    }
}

#[cfg(test)]
mod tests;
