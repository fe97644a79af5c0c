//! Links: look up by name or index, list (MAC fallback only), change name/MTU/state/alias, move.

use neli::consts::nl::NlmF;
use neli::consts::rtnl::{Iff, Ifla, RtAddrFamily, Rtm};
use neli::rtnl::{Ifinfomsg, IfinfomsgBuilder};
use neli::types::RtBuffer;

use super::{is_not_found, Netlink, Result};
use crate::device_id::MacAddress;

/// What we need to know about a link.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Link {
    pub index: i32,
    pub name: String,
    pub mac: Option<MacAddress>,
    pub mtu: u32,
    pub up: bool,
    pub alias: Option<String>,
}

/// A set of changes applied in one RTM_SETLINK. `None` leaves a property alone.
#[derive(Debug, Clone, Default)]
pub struct LinkChange {
    pub name: Option<String>,
    pub mtu: Option<u32>,
    pub up: Option<bool>,
    /// `Some("")` clears the alias.
    pub alias: Option<String>,
    /// Move the link into the network namespace of this file descriptor.
    pub netns_fd: Option<u32>,
}

impl Netlink {
    /// The link called `name`, or `None` if there is none (a GETLINK by name, no dump).
    pub fn link_by_name(&self, name: &str) -> Result<Option<Link>> {
        let mut attrs = RtBuffer::new();
        attrs.push(super::attr(Ifla::Ifname, name)?);
        self.get_link(0, attrs, &format!("look up link {name}"))
    }

    pub fn link_by_index(&self, index: i32) -> Result<Option<Link>> {
        self.get_link(index, RtBuffer::new(), &format!("look up link #{index}"))
    }

    fn get_link(
        &self,
        index: i32,
        attrs: RtBuffer<Ifla, neli::types::Buffer>,
        what: &str,
    ) -> Result<Option<Link>> {
        let msg = IfinfomsgBuilder::default()
            .ifi_family(RtAddrFamily::Unspecified)
            .ifi_index(index)
            .rtattrs(attrs)
            .build()
            .map_err(|e| super::build_error(what, e))?;
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
            .map_err(|e| super::build_error("list links", e))?;
        Ok(self
            .exchange(Rtm::Getlink, NlmF::DUMP, msg, "list links")?
            .iter()
            .filter_map(parse_link)
            .collect())
    }

    /// Applies `change` to link `index` in one request.
    pub fn set_link(&self, index: i32, change: &LinkChange) -> Result<()> {
        let what = format!("change link #{index} ({change:?})");
        let mut attrs = RtBuffer::new();
        if let Some(name) = &change.name {
            attrs.push(super::attr(Ifla::Ifname, name.as_str())?);
        }
        if let Some(mtu) = change.mtu {
            attrs.push(super::attr(Ifla::Mtu, mtu)?);
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
        self.exchange(Rtm::Setlink, NlmF::empty(), msg, &what)?;
        Ok(())
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
    })
}
