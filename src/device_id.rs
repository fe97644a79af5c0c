//! What names a NIC: its PCI address and its link-layer (MAC) address, in canonical form;
//! and what can be wrong with the NIC a config asked for (absent, owned by another
//! attachment, carrying the host's default route).
//!
//! A leaf: netlink, sysfs, the state store and the error mapping all speak these types.

use std::fmt;

use serde::{Deserialize, Serialize};

/// A PCI function address in canonical form, `0000:5e:00.1` (domain:bus:device.function).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct PciAddress(String);

impl PciAddress {
    /// Accepts only `DDDD:BB:DD.F` in hex. Anything else, a path in particular, is rejected
    /// before it can become part of a sysfs path.
    pub fn parse(s: &str) -> Result<PciAddress, String> {
        let bytes = s.as_bytes();
        let shape_ok = bytes.len() == 12
            && bytes[4] == b':'
            && bytes[7] == b':'
            && bytes[10] == b'.'
            && [0..4, 5..7, 8..10]
                .into_iter()
                .all(|r| bytes[r].iter().all(u8::is_ascii_hexdigit));
        if !shape_ok {
            return Err("expected the form 0000:5e:00.1 (domain:bus:device.function)".into());
        }
        let device = u8::from_str_radix(&s[8..10], 16).expect("checked hex");
        if device > 0x1f {
            return Err(format!("device number {device:#x} is above 0x1f"));
        }
        if !(b'0'..=b'7').contains(&bytes[11]) {
            return Err("function must be 0-7".into());
        }
        Ok(PciAddress(s.to_ascii_lowercase()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for PciAddress {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl TryFrom<String> for PciAddress {
    type Error = String;
    fn try_from(s: String) -> Result<Self, String> {
        PciAddress::parse(&s)
    }
}

impl From<PciAddress> for String {
    fn from(a: PciAddress) -> String {
        a.0
    }
}

/// A link-layer address: 6 bytes for Ethernet, 20 for IPoIB.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct MacAddress(Vec<u8>);

impl MacAddress {
    pub fn parse(s: &str) -> Result<MacAddress, String> {
        let bytes: Result<Vec<u8>, _> = s
            .split(':')
            .map(|part| {
                if part.len() == 2 {
                    u8::from_str_radix(part, 16).map_err(|_| ())
                } else {
                    Err(())
                }
            })
            .collect();
        match bytes {
            Ok(b) if b.len() == 6 || b.len() == 20 => Ok(MacAddress(b)),
            _ => Err("expected colon-separated hex bytes like aa:bb:cc:dd:ee:ff".into()),
        }
    }

    pub fn from_bytes(bytes: &[u8]) -> MacAddress {
        MacAddress(bytes.to_vec())
    }

    pub fn as_bytes(&self) -> &[u8] {
        &self.0
    }
}

impl fmt::Display for MacAddress {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let hex: Vec<String> = self.0.iter().map(|b| format!("{b:02x}")).collect();
        f.write_str(&hex.join(":"))
    }
}

impl TryFrom<String> for MacAddress {
    type Error = String;
    fn try_from(s: String) -> Result<Self, String> {
        MacAddress::parse(&s)
    }
}

impl From<MacAddress> for String {
    fn from(m: MacAddress) -> String {
        m.to_string()
    }
}

/// Why the selected NIC cannot be attached. Mapped to CNI codes in `error`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DeviceError {
    /// The selected device does not exist on the host (or has no netdev).
    NotFound(String),
    /// Another attachment's state already owns this device.
    Claimed(String),
    /// The device carries the host's default route and the config did not allow moving it.
    CarriesDefaultRoute(String),
    /// kubelet's device manager did not allocate the device to this pod.
    NotAllocated(String),
    /// The host uses the device: it is a port of a bridge/bond/team/VRF or has VLAN or
    /// macvlan children, and the node did not allow moving such a device.
    InUseByHost(String),
}

impl fmt::Display for DeviceError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DeviceError::NotFound(m)
            | DeviceError::Claimed(m)
            | DeviceError::CarriesDefaultRoute(m)
            | DeviceError::NotAllocated(m)
            | DeviceError::InUseByHost(m) => f.write_str(m),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pci(s: &str) -> PciAddress {
        PciAddress::parse(s).unwrap()
    }

    #[test]
    fn pci_addresses_are_validated_and_canonical() {
        assert_eq!(pci("0000:5E:00.1").as_str(), "0000:5e:00.1");
        for bad in [
            "",
            "5e:00.1",
            "0000:5e:00.8",
            "0000:5e:20.0",
            "0000:5e:00.1/",
            "../../../etc/passwd",
            "0000:5e:00.1/../../x",
            "0000-5e-00.1",
            "000g:5e:00.1",
            " 0000:5e:00.1",
        ] {
            assert!(PciAddress::parse(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn mac_addresses_parse_ethernet_and_ipoib() {
        assert_eq!(
            MacAddress::parse("02:AB:00:00:00:01").unwrap().to_string(),
            "02:ab:00:00:00:01"
        );
        let ib = "00:00:01:49:fe:80:00:00:00:00:00:00:00:15:5d:ff:fd:33:ff:0b";
        assert_eq!(MacAddress::parse(ib).unwrap().as_bytes().len(), 20);
        for bad in [
            "",
            "02:ab",
            "02:ab:00:00:00:0g",
            "02ab00000001",
            "2:ab:0:0:0:1",
        ] {
            assert!(MacAddress::parse(bad).is_err(), "{bad:?}");
        }
    }
}
