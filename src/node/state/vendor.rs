//! The vendor plugin's state, for nodes migrating from it with running pods: one file,
//! `ip-interface-mappings.json`, in the same state directory, a JSON object keyed by the PCI
//! address (`deviceID`), each value `{"hostInterfaceName": "enp68s0", "hostInterfaceIPs":
//! ["198.51.100.7/24", ...] | null, "state": "UP" | "DOWN"}`. A DEL with no state of ours
//! gives such a NIC back from its entry and drops only that entry; the file goes with its
//! last entry. Rewrites are atomic and serialised by a lock of ours (the vendor plugin took
//! none); entries we do not understand are kept as they are.

use std::collections::BTreeMap;
use std::path::PathBuf;

use serde::Deserialize;
use serde_json::{Map, Value};

use super::fs::{read_no_follow, remove_if_present, write_atomically};
use super::store::{StateStore, VENDOR_MAPPINGS_FILE};
use super::{Error, Result};
use crate::device_id::PciAddress;

/// One NIC the vendor plugin attached.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct VendorEntry {
    pub host_interface_name: String,
    #[serde(default, rename = "hostInterfaceIPs")]
    pub host_interface_ips: Option<Vec<String>>,
    #[serde(default)]
    pub state: String,
}

impl VendorEntry {
    /// Whether the NIC was up on the host before the vendor plugin moved it.
    pub fn was_up(&self) -> bool {
        self.state.eq_ignore_ascii_case("UP")
    }
}

impl StateStore {
    fn vendor_path(&self) -> PathBuf {
        self.dir().join(VENDOR_MAPPINGS_FILE)
    }

    /// Every entry of the vendor's file, by canonical PCI address (keys that are no PCI
    /// address are skipped); empty without the file. A file that does not parse is
    /// `Error::CorruptState`.
    pub fn vendor_entries(&self) -> Result<BTreeMap<PciAddress, VendorEntry>> {
        let mut entries = BTreeMap::new();
        for (key, value) in self.vendor_object()?.unwrap_or_default() {
            let (Ok(pci), Ok(entry)) = (
                PciAddress::parse(&key),
                serde_json::from_value::<VendorEntry>(value),
            ) else {
                continue;
            };
            entries.insert(pci, entry);
        }
        Ok(entries)
    }

    /// The vendor's entry for `pci`, if it has one.
    pub fn vendor_entry(&self, pci: &PciAddress) -> Result<Option<VendorEntry>> {
        Ok(self.vendor_entries()?.remove(pci))
    }

    /// Drops the entry of `pci` (all keys naming it) and nothing else: the file is rewritten
    /// atomically, or removed with its last entry.
    pub fn remove_vendor_entry(&self, pci: &PciAddress) -> Result<()> {
        let _lock = self.lock_vendor_mappings()?;
        let Some(mut object) = self.vendor_object()? else {
            return Ok(());
        };
        let before = object.len();
        object.retain(|key, _| PciAddress::parse(key).map_or(true, |p| p != *pci));
        if object.len() == before {
            return Ok(());
        }
        let path = self.vendor_path();
        if object.is_empty() {
            return remove_if_present(&path);
        }
        let mut bytes =
            serde_json::to_vec_pretty(&Value::Object(object)).expect("a JSON object serialises");
        bytes.push(b'\n');
        let (tmp, file) = self
            .temp_file()
            .map_err(|e| Error::io(format!("create a temp file for {}", path.display()), e))?;
        write_atomically(&tmp, &file, &path, &bytes)
    }

    fn vendor_object(&self) -> Result<Option<Map<String, Value>>> {
        let path = self.vendor_path();
        let Some(bytes) = read_no_follow(&path)? else {
            return Ok(None);
        };
        match serde_json::from_slice::<Value>(&bytes) {
            Ok(Value::Object(object)) => Ok(Some(object)),
            Ok(_) => Err(corrupt(path, "not a JSON object".into())),
            Err(e) => Err(corrupt(path, e.to_string())),
        }
    }
}

fn corrupt(path: PathBuf, reason: String) -> Error {
    Error::CorruptState { path, reason }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::node::state::testing::empty_store;
    use std::fs;

    const VENDOR: &str = r#"{
      "0000:5e:00.1": {"hostInterfaceName": "enp94s0f1", "hostInterfaceIPs": ["198.51.100.7/24", "2001:db8::7/64"], "state": "UP"},
      "0000:5E:00.2": {"hostInterfaceName": "enp94s0f2", "hostInterfaceIPs": null, "state": "DOWN"},
      "future": {"something": "else"}
    }"#;

    fn pci(s: &str) -> PciAddress {
        PciAddress::parse(s).unwrap()
    }

    #[test]
    fn reads_the_vendors_entries_in_its_exact_format() {
        let (tmp, store) = empty_store();
        fs::write(tmp.path().join(VENDOR_MAPPINGS_FILE), VENDOR).unwrap();
        let one = store.vendor_entry(&pci("0000:5e:00.1")).unwrap().unwrap();
        assert_eq!(one.host_interface_name, "enp94s0f1");
        assert_eq!(
            one.host_interface_ips.as_deref(),
            Some(&["198.51.100.7/24".to_owned(), "2001:db8::7/64".to_owned()][..])
        );
        assert!(one.was_up());
        let two = store.vendor_entry(&pci("0000:5e:00.2")).unwrap().unwrap();
        assert!(two.host_interface_ips.is_none() && !two.was_up());
        assert_eq!(store.vendor_entries().unwrap().len(), 2);
        assert!(
            store.attachments().unwrap().is_empty(),
            "not an attachment of ours"
        );
    }

    #[test]
    fn removing_an_entry_keeps_every_other_and_the_last_one_takes_the_file() {
        let (tmp, store) = empty_store();
        let path = tmp.path().join(VENDOR_MAPPINGS_FILE);
        fs::write(&path, VENDOR).unwrap();
        store.remove_vendor_entry(&pci("0000:5e:00.2")).unwrap();
        let left: Value = serde_json::from_slice(&fs::read(&path).unwrap()).unwrap();
        assert_eq!(left.as_object().unwrap().len(), 2, "{left}");
        assert_eq!(left["future"], serde_json::json!({"something": "else"}));
        store.remove_vendor_entry(&pci("0000:5e:00.1")).unwrap();
        assert!(
            path.exists(),
            "an entry we do not understand is still there"
        );
        fs::write(&path, r#"{"0000:5e:00.1": {"hostInterfaceName": "e"}}"#).unwrap();
        store.remove_vendor_entry(&pci("0000:5e:00.1")).unwrap();
        assert!(!path.exists(), "the file goes with its last entry");
        store.remove_vendor_entry(&pci("0000:5e:00.1")).unwrap();
    }

    #[test]
    fn a_malformed_file_is_an_error_and_is_left_alone() {
        let (tmp, store) = empty_store();
        let path = tmp.path().join(VENDOR_MAPPINGS_FILE);
        for bad in ["{\"0000:5e:00.1\": {", "[1, 2]"] {
            fs::write(&path, bad).unwrap();
            assert_eq!(store.vendor_entries().unwrap_err().code() as u32, 6);
            assert!(store.remove_vendor_entry(&pci("0000:5e:00.1")).is_err());
            assert_eq!(fs::read_to_string(&path).unwrap(), bad);
        }
        fs::remove_file(&path).unwrap();
        assert!(store.vendor_entries().unwrap().is_empty());
    }
}
