//! Links: look up by name or index, list (MAC fallback only), change name/MTU/state/alias, move.

use neli::attr::Attribute;
use neli::consts::nl::NlmF;
use neli::consts::rtnl::{Iff, Ifla, RtAddrFamily, Rtm};
use neli::rtnl::{Ifinfomsg, IfinfomsgBuilder};
use neli::types::RtBuffer;

use super::{is_not_found, Netlink, Result};
use crate::device_id::MacAddress;
use crate::error::Error;

/// What we need to know about a link.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Link {
    pub index: i32,
    pub name: String,
    pub mac: Option<MacAddress>,
    pub mtu: u32,
    pub up: bool,
    pub alias: Option<String>,
    /// The index of its master (bridge, bond, team, VRF), if it is enslaved.
    pub master: Option<i32>,
    /// The device it sits on, e.g. its PCI address (`IFLA_PARENT_DEV_NAME`, kernel 5.14+).
    pub parent_device: Option<String>,
    /// Its alternative names (kernel 5.5+), which name lookups resolve like its name.
    pub altnames: Vec<String>,
    /// Its kind (`IFLA_INFO_KIND`: `veth`, `dummy`, `macvlan`, ...); `None` for a device a
    /// driver made (a PCI function's netdev), which no netlink request can create.
    pub kind: Option<String>,
    /// The link it is tied to (a veth's peer, a macvlan's lower device) is in another
    /// network namespace (`IFLA_LINK_NETNSID` is given).
    pub other_end_elsewhere: bool,
}

/// `IFLA_PARENT_DEV_NAME` (linux/if_link.h), which neli 0.7 does not name.
const IFLA_PARENT_DEV_NAME: u16 = 56;
/// `IFLA_INFO_KIND`, inside `IFLA_LINKINFO`.
const IFLA_INFO_KIND: u16 = 1;
/// `IFLA_PROP_LIST` and `IFLA_ALT_IFNAME`, and the nested-attribute flag the kernel's strict
/// validation wants on the list.
const IFLA_PROP_LIST: u16 = 52;
const IFLA_ALT_IFNAME: u16 = 53;
const NLA_F_NESTED: u16 = 0x8000;
/// Attribute types without their flag bits.
const NLA_TYPE_MASK: u16 = 0x3fff;
/// `RTM_NEWLINKPROP` / `RTM_DELLINKPROP` (linux/rtnetlink.h).
pub(super) const RTM_NEWLINKPROP: u16 = 108;
pub(super) const RTM_DELLINKPROP: u16 = 109;

/// A set of changes applied in one RTM_SETLINK. `None` leaves a property alone.
#[derive(Debug, Clone, Default)]
pub struct LinkChange {
    pub name: Option<String>,
    pub mtu: Option<u32>,
    /// The hardware address (`IFLA_ADDRESS`); the kernel sets it before it changes the
    /// link's up/down state, and many drivers take it only while the link is down.
    pub mac: Option<MacAddress>,
    pub up: Option<bool>,
    /// `Some("")` clears the alias.
    pub alias: Option<String>,
    /// Move the link into the network namespace of this file descriptor.
    pub netns_fd: Option<u32>,
    /// Enslave the link to the link of this index (0 releases it).
    pub master: Option<i32>,
}

impl Netlink {
    /// The link called `name`, or `None` if there is none (a GETLINK by name, no dump).
    pub fn link_by_name(&self, name: &str) -> Result<Option<Link>> {
        let mut attrs = RtBuffer::new();
        attrs.push(super::attr(Ifla::Ifname, name)?);
        self.get_link(0, attrs, &format!("looking up interface {name}"))
    }

    pub fn link_by_index(&self, index: i32) -> Result<Option<Link>> {
        let what = format!("looking up the interface with index {index}");
        self.get_link(index, RtBuffer::new(), &what)
    }

    fn get_link(
        &self,
        index: i32,
        attrs: RtBuffer<Ifla, neli::types::Buffer>,
        what: &str,
    ) -> Result<Option<Link>> {
        let msg = ifinfomsg(index, attrs, what)?;
        match self.exchange(Rtm::Getlink, NlmF::empty(), msg, what) {
            Ok(links) => Ok(links.iter().find_map(parse_link)),
            Err(e) if is_not_found(&e) => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// Every link in this namespace.
    pub fn links(&self) -> Result<Vec<Link>> {
        let msg = IfinfomsgBuilder::default()
            .ifi_family(RtAddrFamily::Unspecified)
            .build()
            .map_err(|e| super::build_error(LIST_LINKS, e))?;
        Ok(self
            .exchange(Rtm::Getlink, NlmF::DUMP, msg, LIST_LINKS)?
            .iter()
            .filter_map(parse_link)
            .collect())
    }

    /// Gives the link called `link_name` the alternative name `altname` (by name, so no
    /// lookup is needed first). Fails with EEXIST when `altname` is taken in the namespace.
    pub fn add_altname(&self, link_name: &str, altname: &str) -> Result<()> {
        let what = format!("giving {link_name} the alternative name {altname}");
        let mut attrs = RtBuffer::new();
        attrs.push(super::attr(Ifla::Ifname, link_name)?);
        attrs.push(prop_list(&[altname])?);
        self.link_prop(RTM_NEWLINKPROP, 0, attrs, &what)
            .map_err(|e| match e.errno() {
                Some(nix::libc::EEXIST) => e.because(format!("the name {altname} is taken")),
                _ => e,
            })
    }

    /// Takes the alternative name `altname` off link `index`.
    pub fn del_altname(&self, index: i32, altname: &str) -> Result<()> {
        self.del_altnames(index, &[altname.to_owned()])
    }

    /// Takes every one of `altnames` off link `index` in one request (the kernel handles
    /// the names of one `IFLA_PROP_LIST` in turn and stops at the first it refuses).
    pub fn del_altnames(&self, index: i32, altnames: &[String]) -> Result<()> {
        let names = altnames.join(", ");
        let what = format!("taking the alternative names {names} off interface #{index}");
        let mut attrs = RtBuffer::new();
        let altnames: Vec<&str> = altnames.iter().map(String::as_str).collect();
        attrs.push(prop_list(&altnames)?);
        self.link_prop(RTM_DELLINKPROP, index, attrs, &what)
            .map_err(|e| {
                let link = self.name_of(index);
                let noun = if altnames.len() == 1 { "name" } else { "names" };
                e.while_doing(format!("taking the alternative {noun} {names} off {link}"))
            })
    }

    /// [`Netlink::del_altname_of`] and a look-up of `link_name` afterwards, sent together in
    /// one datagram: one round trip for the removal and the names the link still has.
    pub fn del_altname_of_then_read(
        &self,
        link_name: &str,
        altname: &str,
    ) -> (Result<()>, Result<Option<Link>>) {
        let removal = self.del_altname_of_request(link_name, altname);
        let lookup = self.link_by_name_request(link_name);
        let (removal, lookup) = match (removal, lookup) {
            (Ok(r), Ok(l)) => (r, l),
            (Err(e), _) | (_, Err(e)) => {
                let lookup = self.link_by_name(link_name);
                return (Err(e), lookup);
            }
        };
        let [removed, read] = self.exchange_two(removal, lookup);
        let read = match read {
            Ok(links) => Ok(links.iter().find_map(parse_link)),
            Err(e) if is_not_found(&e) => Ok(None),
            Err(e) => Err(e),
        };
        (removed.map(drop), read)
    }

    fn del_altname_of_request(
        &self,
        link_name: &str,
        altname: &str,
    ) -> Result<super::Request<Ifinfomsg>> {
        let what = format!("taking the alternative name {altname} off {link_name}");
        let mut attrs = RtBuffer::new();
        attrs.push(super::attr(Ifla::Ifname, link_name)?);
        attrs.push(prop_list(&[altname])?);
        Ok(super::Request {
            ty: Rtm::UnrecognizedConst(RTM_DELLINKPROP),
            payload: ifinfomsg(0, attrs, &what)?,
            what,
        })
    }

    fn link_by_name_request(&self, name: &str) -> Result<super::Request<Ifinfomsg>> {
        let what = format!("looking up interface {name}");
        let mut attrs = RtBuffer::new();
        attrs.push(super::attr(Ifla::Ifname, name)?);
        Ok(super::Request {
            ty: Rtm::Getlink,
            payload: ifinfomsg(0, attrs, &what)?,
            what,
        })
    }

    /// Takes the alternative name `altname` off the link called `link_name`, in one request
    /// (the kernel finds the link by name). Only that link loses it: an `altname` that is
    /// another link's name is refused (EINVAL), one nobody has is ENOENT.
    pub fn del_altname_of(&self, link_name: &str, altname: &str) -> Result<()> {
        let what = format!("taking the alternative name {altname} off {link_name}");
        let mut attrs = RtBuffer::new();
        attrs.push(super::attr(Ifla::Ifname, link_name)?);
        attrs.push(prop_list(&[altname])?);
        self.link_prop(RTM_DELLINKPROP, 0, attrs, &what)
    }

    fn link_prop(
        &self,
        ty: u16,
        index: i32,
        attrs: RtBuffer<Ifla, neli::types::Buffer>,
        what: &str,
    ) -> Result<()> {
        let msg = ifinfomsg(index, attrs, what)?;
        self.exchange(Rtm::UnrecognizedConst(ty), NlmF::empty(), msg, what)?;
        Ok(())
    }

    /// Applies `change` to link `index` in one request.
    pub fn set_link(&self, index: i32, change: &LinkChange) -> Result<()> {
        let what = format!("changing interface #{index}");
        let mut attrs = RtBuffer::new();
        if let Some(name) = &change.name {
            attrs.push(super::attr(Ifla::Ifname, name.as_str())?);
        }
        if let Some(mtu) = change.mtu {
            attrs.push(super::attr(Ifla::Mtu, mtu)?);
        }
        if let Some(mac) = &change.mac {
            attrs.push(super::attr(Ifla::Address, mac.as_bytes())?);
        }
        if let Some(alias) = &change.alias {
            // An empty payload (not "\0") is what removes an alias.
            let bytes: &[u8] = if alias.is_empty() {
                &[]
            } else {
                alias.as_bytes()
            };
            attrs.push(super::attr(Ifla::Ifalias, bytes)?);
        }
        if let Some(fd) = change.netns_fd {
            attrs.push(super::attr(Ifla::NetNsFd, fd)?);
        }
        if let Some(master) = change.master {
            attrs.push(super::attr(Ifla::Master, master as u32)?);
        }
        let mut builder = IfinfomsgBuilder::default()
            .ifi_family(RtAddrFamily::Unspecified)
            .ifi_index(index)
            .rtattrs(attrs);
        builder = match change.up {
            Some(true) => builder.up(),
            Some(false) => builder.down(),
            None => builder,
        };
        let msg = builder.build().map_err(|e| super::build_error(&what, e))?;
        self.exchange(Rtm::Setlink, NlmF::empty(), msg, &what)
            .map_err(|e| {
                let name_of = |i| self.name_of(i);
                change.failed(e, &name_of(index), &name_of)
            })?;
        Ok(())
    }
}

const LIST_LINKS: &str = "listing the network interfaces";

impl LinkChange {
    /// What this change does to the link called `link`, in words: `renaming net1 to enp1s0,
    /// setting its MTU to 9000 and bringing it up`. `name_of` names a master by its index.
    pub fn describe(&self, link: &str, name_of: &dyn Fn(i32) -> String) -> String {
        // Each step as it reads first (naming the link) and after another (saying "it").
        let mut steps: Vec<(String, String)> = Vec::new();
        let mut step = |first: String, later: String| steps.push((first, later));
        if let Some(name) = &self.name {
            step(
                format!("renaming {link} to {name}"),
                format!("renaming it to {name}"),
            );
        }
        if let Some(mtu) = self.mtu {
            step(
                format!("setting the MTU of {link} to {mtu}"),
                format!("setting its MTU to {mtu}"),
            );
        }
        if let Some(mac) = &self.mac {
            step(
                format!("setting the MAC address of {link} to {mac}"),
                format!("setting its MAC address to {mac}"),
            );
        }
        match self.alias.as_deref() {
            Some("") => step(
                format!("clearing the alias of {link}"),
                "clearing its alias".into(),
            ),
            Some(alias) => step(
                format!("setting the alias of {link} to {alias}"),
                format!("setting its alias to {alias}"),
            ),
            None => {}
        }
        match self.master {
            Some(0) => step(
                format!("releasing {link} from its master"),
                "releasing it from its master".into(),
            ),
            Some(master) => {
                let master = name_of(master);
                step(
                    format!("making {link} a port of {master}"),
                    format!("making it a port of {master}"),
                )
            }
            None => {}
        }
        if self.netns_fd.is_some() {
            step(
                format!("moving {link} to another network namespace"),
                "moving it to another network namespace".into(),
            );
        }
        match self.up {
            Some(true) => step(format!("bringing {link} up"), "bringing it up".into()),
            Some(false) => step(format!("taking {link} down"), "taking it down".into()),
            None => {}
        }
        let words: Vec<String> = steps
            .into_iter()
            .enumerate()
            .map(|(i, (first, later))| if i == 0 { first } else { later })
            .collect();
        match words.split_last() {
            None => format!("changing {link}"),
            Some((last, [])) => last.clone(),
            Some((last, rest)) => format!("{} and {last}", rest.join(", ")),
        }
    }

    /// Why the kernel refused this change with `errno`, where the errno's own words would
    /// not say it ("file exists" for a name that is taken).
    pub fn why_refused(&self, errno: i32) -> Option<String> {
        match errno {
            nix::libc::EEXIST => match (&self.name, self.netns_fd) {
                (Some(name), _) => Some(format!("an interface named {name} already exists")),
                (None, Some(_)) => {
                    Some("an interface with one of its names already exists there".to_owned())
                }
                (None, None) => None,
            },
            nix::libc::EBUSY if self.name.is_some() => {
                Some("it is up, and the kernel renames an interface only while it is down".into())
            }
            _ => None,
        }
    }

    /// The failure `e` of this change to the link called `link`, told in words.
    pub fn failed(&self, e: Error, link: &str, name_of: &dyn Fn(i32) -> String) -> Error {
        let why = e.errno().and_then(|errno| self.why_refused(errno));
        let e = e.while_doing(self.describe(link, name_of));
        match why {
            Some(why) => e.because(why),
            None => e,
        }
    }
}

fn parse_link(msg: &Ifinfomsg) -> Option<Link> {
    let attrs = msg.rtattrs().get_attr_handle();
    let name = attrs
        .get_attr_payload_as_with_len::<String>(Ifla::Ifname)
        .ok()?;
    Some(Link {
        index: *msg.ifi_index(),
        name,
        mac: attrs
            .get_attribute(Ifla::Address)
            .map(|a| MacAddress::from_bytes(a.rta_payload().as_ref())),
        mtu: attrs.get_attr_payload_as::<u32>(Ifla::Mtu).unwrap_or(0),
        up: msg.ifi_flags().contains(Iff::UP),
        alias: attrs
            .get_attr_payload_as_with_len::<String>(Ifla::Ifalias)
            .ok()
            .filter(|a| !a.is_empty()),
        master: attrs
            .get_attr_payload_as::<u32>(Ifla::Master)
            .ok()
            .filter(|m| *m != 0)
            .map(|m| m as i32),
        parent_device: attrs
            .get_attr_payload_as_with_len::<String>(Ifla::UnrecognizedConst(IFLA_PARENT_DEV_NAME))
            .ok()
            .filter(|p| !p.is_empty()),
        altnames: altnames(msg),
        kind: kind(msg),
        other_end_elsewhere: attrs.get_attribute(Ifla::LinkNetnsid).is_some(),
    })
}

/// The `IFLA_INFO_KIND` of the link's `IFLA_LINKINFO`, if it has one.
fn kind(msg: &Ifinfomsg) -> Option<String> {
    let type_of = |t: Ifla| u16::from(t) & NLA_TYPE_MASK;
    let info = msg
        .rtattrs()
        .iter()
        .find(|a| type_of(*a.rta_type()) == u16::from(Ifla::Linkinfo))?;
    let nested = info.get_attr_handle::<Ifla>().ok()?;
    let kind = nested
        .iter()
        .find(|a| type_of(*a.rta_type()) == IFLA_INFO_KIND)?
        .get_payload_as_with_len::<String>()
        .ok()?;
    (!kind.is_empty()).then_some(kind)
}

/// A link request for link `index` (0: the link the attributes name) with `attrs`.
fn ifinfomsg(
    index: i32,
    attrs: RtBuffer<Ifla, neli::types::Buffer>,
    what: &str,
) -> Result<Ifinfomsg> {
    IfinfomsgBuilder::default()
        .ifi_family(RtAddrFamily::Unspecified)
        .ifi_index(index)
        .rtattrs(attrs)
        .build()
        .map_err(|e| super::build_error(what, e))
}

/// `IFLA_PROP_LIST { IFLA_ALT_IFNAME altname, ... }`.
fn prop_list(altnames: &[&str]) -> Result<neli::rtnl::Rtattr<Ifla, neli::types::Buffer>> {
    let mut nested = std::io::Cursor::new(Vec::new());
    for altname in altnames {
        let name = super::attr(Ifla::UnrecognizedConst(IFLA_ALT_IFNAME), *altname)?;
        neli::ToBytes::to_bytes(&name, &mut nested)
            .map_err(|e| super::build_error("building an alternative-name attribute", e))?;
    }
    super::attr(
        Ifla::UnrecognizedConst(IFLA_PROP_LIST | NLA_F_NESTED),
        neli::types::Buffer::from(nested.into_inner()),
    )
}

/// The alternative names in the link's `IFLA_PROP_LIST` (sent with or without its nested
/// flag).
fn altnames(msg: &Ifinfomsg) -> Vec<String> {
    let type_of = |t: Ifla| u16::from(t) & NLA_TYPE_MASK;
    msg.rtattrs()
        .iter()
        .filter(|a| type_of(*a.rta_type()) == IFLA_PROP_LIST)
        .filter_map(|list| list.get_attr_handle::<Ifla>().ok())
        .flat_map(|names| {
            names
                .iter()
                .filter(|a| type_of(*a.rta_type()) == IFLA_ALT_IFNAME)
                .filter_map(|a| a.get_payload_as_with_len::<String>().ok())
                .collect::<Vec<_>>()
        })
        .collect()
}

#[cfg(test)]
#[path = "link_tests.rs"]
mod tests;
