//! The config's wire shape: every field read by hand and type-checked, so each error names
//! its field. What the values mean is checked in [`super::NetConf::parse`].

use serde_json::{Map, Value};

use super::{Result, ValidAttachment};
use crate::error::Error;

/// The wire shape with every field type-checked; meaning is checked in [`NetConf::parse`].
/// Read by hand rather than derived so each error names its field.
pub(super) struct RawConf {
    pub(super) cni_version: Option<String>,
    pub(super) name: Option<String>,
    pub(super) device_id: Option<String>,
    pub(super) pci_bus_id: Option<String>,
    pub(super) runtime_device_id: Option<String>,
    pub(super) device_info_file: Option<String>,
    pub(super) device: Option<String>,
    pub(super) hwaddr: Option<String>,
    pub(super) kernel_path: Option<String>,
    pub(super) ipam: Option<Value>,
    pub(super) pod_interface_name: Option<String>,
    pub(super) state_dir: Option<String>,
    pub(super) delegate: Option<String>,
    pub(super) log_file: Option<String>,
    pub(super) log_level: Option<String>,
    pub(super) allow_default_route_device: Option<bool>,
    pub(super) allow_enslaved_device: Option<bool>,
    pub(super) address_source: Option<String>,
    pub(super) kvp_pool_file: Option<String>,
    pub(super) kvp_prefix_length: Option<Value>,
    pub(super) prev_result: Option<Value>,
    pub(super) valid_attachments: Option<Vec<ValidAttachment>>,
}

impl RawConf {
    fn from_object(obj: &Map<String, Value>) -> Result<RawConf> {
        let string = |key: &str| optional_string(obj, key, key);
        let (runtime_device_id, device_info_file) = match obj.get("runtimeConfig") {
            None | Some(Value::Null) => (None, None),
            Some(Value::Object(rc)) => (
                optional_string(rc, "deviceID", "runtimeConfig.deviceID")?,
                optional_string(rc, "CNIDeviceInfoFile", "runtimeConfig.CNIDeviceInfoFile")?,
            ),
            Some(_) => return Err(wrong_type("runtimeConfig", "an object")),
        };
        let allow_default_route_device = optional_bool(obj, "allowDefaultRouteDevice")?;
        let allow_enslaved_device = optional_bool(obj, "allowEnslavedDevice")?;
        let valid_attachments = match obj.get("cni.dev/valid-attachments") {
            None | Some(Value::Null) => None,
            Some(v) => Some(serde_json::from_value(v.clone()).map_err(|e| {
                Error::InvalidConfig(format!(
                    "\"cni.dev/valid-attachments\" must be a list of {{containerID, ifname}}: {e}"
                ))
            })?),
        };
        Ok(RawConf {
            cni_version: string("cniVersion")?,
            name: string("name")?,
            device_id: string("deviceID")?,
            pci_bus_id: string("pciBusID")?,
            runtime_device_id,
            device_info_file,
            device: string("device")?,
            hwaddr: string("hwaddr")?,
            kernel_path: string("kernelpath")?,
            ipam: obj.get("ipam").cloned(),
            pod_interface_name: string("podInterfaceName")?,
            state_dir: string("stateDir")?,
            delegate: string("delegate")?,
            log_file: string("logFile")?,
            log_level: string("logLevel")?,
            allow_default_route_device,
            allow_enslaved_device,
            address_source: string("addressSource")?,
            kvp_pool_file: string("kvpPoolFile")?,
            kvp_prefix_length: obj.get("kvpPrefixLength").cloned().filter(|v| !v.is_null()),
            prev_result: obj.get("prevResult").cloned().filter(|v| !v.is_null()),
            valid_attachments,
        })
    }
}

fn optional_string(obj: &Map<String, Value>, key: &str, shown: &str) -> Result<Option<String>> {
    match obj.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s.clone())),
        Some(_) => Err(wrong_type(shown, "a string")),
    }
}

fn optional_bool(obj: &Map<String, Value>, key: &str) -> Result<Option<bool>> {
    match obj.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Bool(b)) => Ok(Some(*b)),
        Some(_) => Err(wrong_type(key, "true or false")),
    }
}

pub(super) fn wrong_type(field: &str, expected: &str) -> Error {
    Error::InvalidConfig(format!("\"{field}\" must be {expected}"))
}

pub(super) fn decode(stdin: &[u8]) -> Result<RawConf> {
    if stdin.iter().all(u8::is_ascii_whitespace) {
        return Err(Error::Decode(
            "no network configuration on stdin".to_string(),
        ));
    }
    let value: Value = serde_json::from_slice(stdin)
        .map_err(|e| Error::Decode(format!("network configuration is not valid JSON: {e}")))?;
    match value {
        Value::Object(obj) => RawConf::from_object(&obj),
        _ => Err(Error::Decode(
            "network configuration must be a JSON object".into(),
        )),
    }
}
