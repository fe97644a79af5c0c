//! Best-effort salvage of a damaged state file, so that a DEL still gives the device back.

use serde::de::DeserializeOwned;
use serde::Deserialize;

use super::record::{AttachmentState, PodRef, SCHEMA_VERSION};
use crate::device_id::{MacAddress, PciAddress};
use crate::host::device::Selector;
use crate::host::netlink::{Address, Route};
use crate::host::snapshot::HostInterface;

impl AttachmentState {
    /// Best-effort reconstruction from a corrupt or truncated state file: every field that can
    /// still be read is used, the rest gets a safe default (the device comes back up, MTU and
    /// routes untouched). Returns the state and the names of what was lost.
    pub fn salvage(
        container_id: &str,
        ifname: &str,
        bytes: &[u8],
    ) -> (AttachmentState, Vec<&'static str>) {
        let text = String::from_utf8_lossy(bytes);
        // Only look inside the "host" object for its fields: "pod" has a "name" too.
        let host_part = text.find("\"host\"").map(|i| &text[i..]).unwrap_or("");
        let (host, lost) = salvage_host(host_part);
        let string = |key| salvage_string(&text, key);
        let state = AttachmentState {
            schema: SCHEMA_VERSION,
            container_id: container_id.to_owned(),
            ifname: ifname.to_owned(),
            network: string("network").unwrap_or_default(),
            cni_version: string("cniVersion").unwrap_or_default(),
            netns: string("netns").unwrap_or_default(),
            selector: Selector::default(),
            pci_address: string("pciAddress").and_then(|p| PciAddress::parse(&p).ok()),
            host,
            pod_ifname: string("podIfname").unwrap_or_else(|| ifname.to_owned()),
            staging_name: string("stagingName"),
            rdma_devices: salvage_as(&text, "rdmaDevices").unwrap_or_default(),
            userspace_driver: salvage_string(&text, "userspaceDriver"),
            adopted_vendor_entry: salvage_as(&text, "adoptedVendorEntry").unwrap_or(false),
            pod: PodRef::default(),
            created: String::new(),
        };
        (state, lost)
    }
}

/// The host interface as far as `host_part` (the text from `"host"` on) still holds it, and
/// the names of what could not be read.
fn salvage_host(host_part: &str) -> (HostInterface, Vec<&'static str>) {
    let mut lost = Vec::new();
    let mut note = |what: &'static str, present: bool| {
        if !present {
            lost.push(what);
        }
    };
    let name = salvage_string(host_part, "name");
    note("host name", name.is_some());
    let mac = salvage_string(host_part, "mac").and_then(|m| MacAddress::parse(&m).ok());
    note("MAC", mac.is_some());
    let mtu = salvage_value(host_part, "mtu")
        .and_then(|v| v.as_u64())
        .map(|m| m as u32);
    note("MTU", mtu.is_some());
    let up = salvage_value(host_part, "up").and_then(|v| v.as_bool());
    note("admin state", up.is_some());
    let addresses: Vec<Address> =
        salvage_as(host_part, "addresses").unwrap_or_else(|| salvage_addresses(host_part));
    let routes: Option<Vec<Route>> = salvage_as(host_part, "routes");
    note("routes", routes.is_some());
    let host = HostInterface {
        name: name.unwrap_or_default(),
        ifindex: 0,
        mac,
        mtu: mtu.unwrap_or(0),
        up: up.unwrap_or(true),
        alias: None,
        addresses,
        routes: routes.unwrap_or_default(),
        master: salvage_string(host_part, "master"),
        carries_default_route: false,
        // Not salvaged: the names it carries then count as its own, but CNI_IFNAME.
        altnames: Vec::new(),
        altnames_complete: false,
        // Whole or not at all: a cut identity would tell the NIC from itself.
        identity: salvage_as(host_part, "identity"),
    };
    (host, lost)
}

/// The host name a state file names in this binary's format, whole or cut.
pub(super) fn host_name_of(bytes: &[u8]) -> Option<String> {
    let text = String::from_utf8_lossy(bytes);
    let host_part = &text[text.find("\"host\"")?..];
    salvage_string(host_part, "name")
}

/// The format of a state file as far as it can be read: the top-level `schema` of a file that
/// parses, else the first `"schema":` of a damaged one (written first, so a cut file keeps
/// it). `None`: no format to be read (absent means the format of every release so far).
pub(super) fn format_of(bytes: &[u8]) -> Option<u64> {
    #[derive(Deserialize)]
    struct Format {
        schema: Option<serde_json::Value>,
    }
    match serde_json::from_slice::<Format>(bytes) {
        Ok(format) => format.schema?.as_u64(),
        Err(_) => salvage_value(&String::from_utf8_lossy(bytes), "schema")?.as_u64(),
    }
}

/// The JSON value after the first `"key":` in `text`, if it is complete.
pub(super) fn salvage_value(text: &str, key: &str) -> Option<serde_json::Value> {
    let needle = format!("\"{key}\"");
    let rest = &text[text.find(&needle)? + needle.len()..];
    let rest = rest.trim_start().strip_prefix(':')?;
    serde_json::Deserializer::from_str(rest)
        .into_iter::<serde_json::Value>()
        .next()?
        .ok()
}

/// The string after the first `"key":` in `text`, if it is complete.
fn salvage_string(text: &str, key: &str) -> Option<String> {
    salvage_value(text, key).and_then(|v| v.as_str().map(str::to_owned))
}

/// The value after the first `"key":` in `text` as a `T`, if it is complete and is one.
fn salvage_as<T: DeserializeOwned>(text: &str, key: &str) -> Option<T> {
    salvage_value(text, key).and_then(|v| serde_json::from_value(v).ok())
}

/// The addresses of a truncated list: each complete `{"ip":..,"prefixLen":..}` object.
fn salvage_addresses(host_part: &str) -> Vec<Address> {
    let Some(start) = host_part.find("\"addresses\"") else {
        return Vec::new();
    };
    host_part[start..]
        .match_indices('{')
        .map_while(|(i, _)| {
            serde_json::Deserializer::from_str(&host_part[start + i..])
                .into_iter::<Address>()
                .next()?
                .ok()
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::node::state::testing::sample_state;

    #[test]
    fn the_format_is_read_from_whole_damaged_and_other_files() {
        let whole = serde_json::to_vec(&sample_state("c1", "net1")).unwrap();
        assert_eq!(format_of(&whole), Some(u64::from(SCHEMA_VERSION)));
        assert_eq!(
            format_of(br#"{"schema": 2, "containerId": "c1", "x": {}}"#),
            Some(2)
        );
        assert_eq!(format_of(br#"{"schema": 2, "contai"#), Some(2), "cut");
        assert_eq!(format_of(br#"{"containerId": "c1"}"#), None, "absent");
        assert_eq!(format_of(br#"{"schema": "two"}"#), None, "not a number");
        assert_eq!(format_of(b"\x00garbage"), None);
    }

    #[test]
    fn salvage_recovers_what_a_truncated_file_still_holds() {
        let full = serde_json::to_string_pretty(&sample_state("c1", "net1")).unwrap();
        // Cut inside the routes list: everything before it survives.
        let cut = &full[..full.find("\"gateway\"").unwrap()];
        let (s, lost) = AttachmentState::salvage("c1", "net1", cut.as_bytes());
        assert_eq!(s.host.name, "enp94s0f1");
        assert_eq!(s.host.mtu, 1400);
        assert_eq!(s.host.addresses, sample_state("c1", "net1").host.addresses);
        assert_eq!(s.pci_address.unwrap().as_str(), "0000:5e:00.1");
        assert_eq!(lost, vec!["routes"]);
        assert_eq!(
            s.pod_ifname, "net1",
            "podIfname was cut off: CNI_IFNAME is the guess"
        );

        // Cut inside the second address: the first complete one is kept.
        let mut two = sample_state("c1", "net1");
        two.host.addresses.push(two.host.addresses[0].clone());
        two.host.addresses[1].ip = "192.0.2.7".parse().unwrap();
        let full = serde_json::to_string(&two).unwrap();
        let cut = &full[..full.find("192.0.2.7").unwrap()];
        let (s, _) = AttachmentState::salvage("c1", "net1", cut.as_bytes());
        assert_eq!(s.host.addresses, sample_state("c1", "net1").host.addresses);

        let (s, lost) = AttachmentState::salvage("c1", "net1", b"\x00garbage");
        assert!(s.host.up, "an unknown admin state comes back up");
        assert!(lost.contains(&"host name") && lost.contains(&"MAC"));
    }

    #[test]
    fn an_intact_file_salvages_whole_but_for_what_salvage_never_reads() {
        let mut full = sample_state("c1", "net1");
        full.pod.name = Some("web-0".into());
        let bytes = serde_json::to_vec(&full).unwrap();
        let (s, lost) = AttachmentState::salvage("c1", "net1", &bytes);
        assert!(lost.is_empty(), "{lost:?}");
        assert_eq!(s.host.name, "enp94s0f1", "the pod's name is not the host's");
        assert_eq!(s.host.routes, full.host.routes);
        assert_eq!((s.network, s.netns), (full.network, full.netns));
    }

    #[test]
    fn only_complete_values_are_salvaged() {
        let text = r#"{"mac" : "02:00:00:00:00:01", "routes": [{"family": 4}, {"fam"#;
        assert_eq!(
            salvage_string(text, "mac").as_deref(),
            Some("02:00:00:00:00:01")
        );
        assert_eq!(salvage_value(text, "routes"), None);
        assert_eq!(salvage_value(text, "mtu"), None);
    }
}
