//! Addresses of one link: filtered dump and (re-)add with their flags.

use std::net::IpAddr;

use neli::consts::nl::NlmF;
use neli::consts::rtnl::{Ifa, IfaF, RtAddrFamily, RtScope, Rtm};
use neli::rtnl::{Ifaddrmsg, IfaddrmsgBuilder};
use neli::types::RtBuffer;
use serde::{Deserialize, Serialize};

use super::{attr, build_error, ip_from_bytes, ip_to_bytes, is_exists, Netlink, Result};

/// Address flags worth restoring (`nodad`, `homeaddress`, `mngtmpaddr`, `noprefixroute`,
/// `autojoin`); the rest (tentative, permanent, ...) are the kernel's own bookkeeping.
const RESTORABLE_FLAGS: u32 = 0x02 | 0x10 | 0x100 | 0x200 | 0x400;

/// An interface address as captured, enough to put it back exactly.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Address {
    pub ip: IpAddr,
    pub prefix_len: u8,
    /// `IFA_F_*` flags, including those above 0xff that live in `IFA_FLAGS`.
    #[serde(default)]
    pub flags: u32,
    #[serde(default)]
    pub scope: u8,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub broadcast: Option<IpAddr>,
}

impl Address {
    /// A plain global address: no flags, universe scope, no broadcast.
    pub fn global(ip: IpAddr, prefix_len: u8) -> Address {
        Address {
            ip,
            prefix_len,
            flags: 0,
            scope: 0,
            broadcast: None,
        }
    }

    /// `192.0.2.10/24`, the form static IPAM and CNI results use.
    pub fn cidr(&self) -> String {
        format!("{}/{}", self.ip, self.prefix_len)
    }

    /// The inverse of [`Address::cidr`], as a plain global address; `None` unless `s` is
    /// `<ip>/<prefix length>`.
    pub fn from_cidr(s: &str) -> Option<Address> {
        let (ip, len) = s.split_once('/')?;
        Some(Address::global(ip.parse().ok()?, len.parse().ok()?))
    }

    pub fn is_ipv6_link_local(&self) -> bool {
        matches!(self.ip, IpAddr::V6(v6) if (v6.segments()[0] & 0xffc0) == 0xfe80)
    }

    pub fn has_flag(&self, flag: u32) -> bool {
        self.flags & flag != 0
    }
}

fn family_of(ip: &IpAddr) -> RtAddrFamily {
    match ip {
        IpAddr::V4(_) => RtAddrFamily::Inet,
        IpAddr::V6(_) => RtAddrFamily::Inet6,
    }
}

impl Netlink {
    /// Every address of link `index` (the kernel filters by index under strict checking).
    pub fn addresses(&self, index: i32) -> Result<Vec<Address>> {
        let what = format!("reading the addresses of interface #{index}");
        let msg = IfaddrmsgBuilder::default()
            .ifa_family(RtAddrFamily::Unspecified)
            .ifa_prefixlen(0)
            .ifa_scope(RtScope::Universe)
            .ifa_index(index as u32)
            .build()
            .map_err(|e| build_error(&what, e))?;
        Ok(self
            .exchange(Rtm::Getaddr, NlmF::DUMP, msg, &what)
            .map_err(|e| {
                self.about_link(index, e, |e, link| {
                    e.while_doing(format!("reading the addresses of {link}"))
                })
            })?
            .iter()
            // Belt and braces: an old kernel without strict checking ignores the filter.
            .filter(|m| *m.ifa_index() == index as u32)
            .filter_map(parse_address)
            .collect())
    }

    /// Adds `a` to link `index`; an address that is already there counts as added.
    pub fn add_address(&self, index: i32, a: &Address) -> Result<()> {
        let what = format!("adding address {} to interface #{index}", a.cidr());
        let flags = a.flags & RESTORABLE_FLAGS;
        let bytes = ip_to_bytes(&a.ip);
        let mut attrs = RtBuffer::new();
        // IPv4 needs IFA_LOCAL; IFA_ADDRESS is the peer/prefix address. Send both.
        attrs.push(attr(Ifa::Local, bytes.as_slice())?);
        attrs.push(attr(Ifa::Address, bytes.as_slice())?);
        if let Some(b) = &a.broadcast {
            attrs.push(attr(Ifa::Broadcast, ip_to_bytes(b).as_slice())?);
        }
        if flags > 0xff {
            attrs.push(attr(Ifa::Flags, flags)?);
        }
        let msg = IfaddrmsgBuilder::default()
            .ifa_family(family_of(&a.ip))
            .ifa_prefixlen(a.prefix_len)
            .ifa_flags(IfaF::from_bits_retain(flags as u8))
            .ifa_scope(RtScope::from(a.scope))
            .ifa_index(index as u32)
            .rtattrs(attrs)
            .build()
            .map_err(|e| build_error(&what, e))?;
        match self.exchange(Rtm::Newaddr, NlmF::CREATE | NlmF::EXCL, msg, &what) {
            Err(e) if !is_exists(&e) => Err(self.about_link(index, e, |e, link| {
                e.while_doing(format!("adding address {} to {link}", a.cidr()))
            })),
            _ => Ok(()),
        }
    }
}

fn parse_address(msg: &Ifaddrmsg) -> Option<Address> {
    let attrs = msg.rtattrs().get_attr_handle();
    let raw = |t: Ifa| {
        attrs
            .get_attribute(t)
            .map(|a| a.rta_payload().as_ref().to_vec())
    };
    // IPv6 replies carry only IFA_ADDRESS; IPv4 has IFA_LOCAL as the interface's own address.
    let ip = raw(Ifa::Local)
        .or_else(|| raw(Ifa::Address))
        .and_then(|b| ip_from_bytes(&b))?;
    let header_flags = u32::from(msg.ifa_flags().bits());
    let flags = attrs
        .get_attr_payload_as::<u32>(Ifa::Flags)
        .unwrap_or(header_flags);
    Some(Address {
        ip,
        prefix_len: *msg.ifa_prefixlen(),
        flags,
        scope: u8::from(*msg.ifa_scope()),
        broadcast: raw(Ifa::Broadcast).and_then(|b| ip_from_bytes(&b)),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn addr(s: &str, len: u8) -> Address {
        Address::global(s.parse().unwrap(), len)
    }

    #[test]
    fn link_local_is_fe80_slash_10_only() {
        assert!(addr("fe80::1", 64).is_ipv6_link_local());
        assert!(addr("febf::1", 64).is_ipv6_link_local());
        assert!(!addr("fec0::1", 64).is_ipv6_link_local());
        assert!(!addr("2001:db8::1", 64).is_ipv6_link_local());
        assert!(!addr("169.254.1.1", 16).is_ipv6_link_local());
    }

    #[test]
    fn parses_cidrs() {
        assert_eq!(
            Address::from_cidr("192.0.2.1/24"),
            Some(addr("192.0.2.1", 24))
        );
        assert_eq!(Address::from_cidr("2001:db8::1/64").unwrap().prefix_len, 64);
        assert_eq!(Address::from_cidr("192.0.2.1"), None);
        assert_eq!(Address::from_cidr("x/24"), None);
    }

    #[test]
    fn cidr_and_state_encoding() {
        let mut a = addr("2001:db8::10", 64);
        a.flags = 0x02 | 0x200;
        assert_eq!(a.cidr(), "2001:db8::10/64");
        let json = serde_json::to_string(&a).unwrap();
        assert_eq!(
            json,
            r#"{"ip":"2001:db8::10","prefixLen":64,"flags":514,"scope":0}"#
        );
        assert_eq!(serde_json::from_str::<Address>(&json).unwrap(), a);
        assert!(a.has_flag(0x200));
    }
}
