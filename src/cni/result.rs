//! The CNI ADD result, read from the delegate and written in the caller's version.
//!
//! We parse into one version-neutral shape and serialise it for whichever spec version the
//! runtime asked for: 0.3.x/0.4.0 tag every IP with `"version"`, 1.x do not, and only 1.1.0
//! carries the newer interface/route fields.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use super::error::{ProtocolError, Result};
use super::CniVersion;

/// Interface fields every version since 0.3.0 knows; anything else is 1.1.0-only.
const BASE_INTERFACE_KEYS: [&str; 3] = ["name", "mac", "sandbox"];
/// Route fields every version since 0.3.0 knows.
const BASE_ROUTE_KEYS: [&str; 2] = ["dst", "gw"];

#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
pub struct CniResult {
    #[serde(default)]
    pub interfaces: Vec<Map<String, Value>>,
    #[serde(default)]
    pub ips: Vec<IpConfig>,
    #[serde(default)]
    pub routes: Vec<Map<String, Value>>,
    #[serde(default)]
    pub dns: Option<Value>,
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct IpConfig {
    pub address: String,
    #[serde(default)]
    pub gateway: Option<String>,
    #[serde(default)]
    pub interface: Option<usize>,
}

impl IpConfig {
    fn family(&self) -> &'static str {
        if self.address.contains(':') {
            "6"
        } else {
            "4"
        }
    }
}

impl CniResult {
    /// Parses a result of any supported version (the `version` tag of old results is ignored).
    pub fn parse(bytes: &[u8]) -> Result<CniResult> {
        serde_json::from_slice(bytes)
            .map_err(|e| ProtocolError::Decode(format!("invalid CNI result: {e}")))
    }

    /// Parses `prevResult` from a config (already a JSON value).
    pub fn from_value(value: &Value) -> Result<CniResult> {
        serde_json::from_value(value.clone())
            .map_err(|e| ProtocolError::Decode(format!("invalid prevResult: {e}")))
    }

    /// Renames interface `from` to `to` in the result (the name a runtime matches on).
    pub fn rename_interface(&mut self, from: &str, to: &str) {
        for interface in &mut self.interfaces {
            if interface.get("name").and_then(Value::as_str) == Some(from) {
                interface.insert("name".into(), Value::String(to.to_owned()));
            }
        }
    }

    /// Adds the CNI 1.1.0 fields `mtu` and `pciID` to interface `name` (results for older
    /// versions drop them, see [`CniResult::to_json`]).
    pub fn describe_interface(&mut self, name: &str, mtu: u32, pci_id: Option<&str>) {
        for interface in &mut self.interfaces {
            if interface.get("name").and_then(Value::as_str) != Some(name) {
                continue;
            }
            if mtu > 0 {
                interface.insert("mtu".into(), Value::from(mtu));
            }
            if let Some(pci) = pci_id {
                interface.insert("pciID".into(), Value::String(pci.to_owned()));
            }
        }
    }

    /// Appends a route `{dst, gw}` unless an identical one is already listed.
    pub fn add_route(&mut self, dst: String, gw: Option<String>) {
        let mut route = Map::new();
        route.insert("dst".into(), Value::String(dst));
        if let Some(gw) = gw {
            route.insert("gw".into(), Value::String(gw));
        }
        if !self.routes.contains(&route) {
            self.routes.push(route);
        }
    }

    /// The result as JSON in the shape of `version`.
    pub fn to_json(&self, version: CniVersion) -> Value {
        #[derive(Serialize)]
        struct Wire<'a> {
            #[serde(rename = "cniVersion")]
            cni_version: &'a str,
            #[serde(skip_serializing_if = "Vec::is_empty")]
            interfaces: Vec<Map<String, Value>>,
            #[serde(skip_serializing_if = "Vec::is_empty")]
            ips: Vec<Map<String, Value>>,
            #[serde(skip_serializing_if = "Vec::is_empty")]
            routes: Vec<Map<String, Value>>,
            dns: Value,
        }
        let newest = version >= CniVersion::V1_1_0;
        let wire = Wire {
            cni_version: version.as_str(),
            interfaces: self
                .interfaces
                .iter()
                .map(|i| keep_keys(i, newest, &BASE_INTERFACE_KEYS))
                .collect(),
            ips: self.ips.iter().map(|ip| ip_to_wire(ip, version)).collect(),
            routes: self
                .routes
                .iter()
                .map(|r| keep_keys(r, newest, &BASE_ROUTE_KEYS))
                .collect(),
            dns: self
                .dns
                .clone()
                .filter(|d| !d.is_null())
                .unwrap_or_else(|| Value::Object(Map::new())),
        };
        serde_json::to_value(wire).expect("result always serialises")
    }
}

fn keep_keys(obj: &Map<String, Value>, keep_all: bool, base: &[&str]) -> Map<String, Value> {
    obj.iter()
        .filter(|(k, _)| keep_all || base.contains(&k.as_str()))
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect()
}

fn ip_to_wire(ip: &IpConfig, version: CniVersion) -> Map<String, Value> {
    let mut m = Map::new();
    if version.ips_carry_version() {
        m.insert("version".into(), Value::String(ip.family().into()));
    }
    if let Some(i) = ip.interface {
        m.insert("interface".into(), Value::from(i));
    }
    m.insert("address".into(), Value::String(ip.address.clone()));
    if let Some(gw) = &ip.gateway {
        m.insert("gateway".into(), Value::String(gw.clone()));
    }
    m
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    /// What host-device 1.1.1 + static print at 0.3.1 for one v4 and one v6 address.
    fn host_device_031() -> Value {
        json!({
            "cniVersion": "0.3.1",
            "interfaces": [{"name": "enp94s0f1", "mac": "02:00:00:00:00:01", "sandbox": "/var/run/netns/p"}],
            "ips": [
                {"version": "4", "interface": 0, "address": "192.0.2.10/24"},
                {"version": "6", "interface": 0, "address": "2001:db8::10/64"}
            ],
            "dns": {}
        })
    }

    /// The same result as host-device prints it at 1.0.0.
    fn host_device_100() -> Value {
        json!({
            "cniVersion": "1.0.0",
            "interfaces": [{"name": "enp94s0f1", "mac": "02:00:00:00:00:01", "sandbox": "/var/run/netns/p"}],
            "ips": [
                {"interface": 0, "address": "192.0.2.10/24"},
                {"interface": 0, "address": "2001:db8::10/64"}
            ],
            "dns": {}
        })
    }

    fn expected_shape(version: CniVersion) -> Value {
        let mut v = if version.ips_carry_version() {
            host_device_031()
        } else {
            host_device_100()
        };
        v["cniVersion"] = json!(version.as_str());
        v
    }

    #[test]
    fn converts_every_version_pair() {
        let sources = [host_device_031(), host_device_100()];
        for source in &sources {
            let parsed = CniResult::parse(source.to_string().as_bytes()).unwrap();
            for target in CniVersion::ALL {
                assert_eq!(parsed.to_json(target), expected_shape(target), "{target}");
            }
        }
    }

    #[test]
    fn version_tag_follows_the_address_family() {
        let r = CniResult::parse(host_device_100().to_string().as_bytes()).unwrap();
        let out = r.to_json(CniVersion::V0_4_0);
        assert_eq!(out["ips"][0]["version"], "4");
        assert_eq!(out["ips"][1]["version"], "6");
    }

    #[test]
    fn newer_fields_only_reach_1_1_0() {
        let source = json!({
            "cniVersion": "1.1.0",
            "interfaces": [{"name": "e", "mac": "m", "mtu": 1400, "sandbox": "/n", "pciID": "0000:01:00.0"}],
            "routes": [{"dst": "10.0.0.0/8", "gw": "192.0.2.1", "priority": 5}],
        });
        let r = CniResult::parse(source.to_string().as_bytes()).unwrap();
        let new = r.to_json(CniVersion::V1_1_0);
        assert_eq!(new["interfaces"][0]["mtu"], 1400);
        assert_eq!(new["routes"][0]["priority"], 5);
        let old = r.to_json(CniVersion::V1_0_0);
        assert!(old["interfaces"][0].get("mtu").is_none());
        assert!(old["interfaces"][0].get("pciID").is_none());
        assert!(old["routes"][0].get("priority").is_none());
        assert_eq!(old["routes"][0]["gw"], "192.0.2.1");
    }

    #[test]
    fn empty_lists_are_omitted_and_dns_is_always_there() {
        let r = CniResult::default();
        assert_eq!(
            r.to_json(CniVersion::V0_3_1),
            json!({"cniVersion": "0.3.1", "dns": {}})
        );
    }

    #[test]
    fn add_route_skips_duplicates() {
        let mut r = CniResult::default();
        r.add_route("10.9.0.0/16".into(), Some("192.0.2.1".into()));
        r.add_route("10.9.0.0/16".into(), Some("192.0.2.1".into()));
        r.add_route("10.8.0.0/16".into(), None);
        assert_eq!(
            r.to_json(CniVersion::V1_0_0)["routes"],
            json!([{"dst": "10.9.0.0/16", "gw": "192.0.2.1"}, {"dst": "10.8.0.0/16"}])
        );
    }

    #[test]
    fn garbage_is_a_decode_error() {
        let err = CniResult::parse(b"not json").unwrap_err();
        assert!(matches!(err, ProtocolError::Decode(_)), "{err}");
    }
}
