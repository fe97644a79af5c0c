//! Routes through one link: filtered dump and re-add.

use std::net::IpAddr;

use neli::consts::nl::NlmF;
use neli::consts::rtnl::{FrAct, Frattr, RtAddrFamily, RtScope, RtTable, Rta, Rtm, Rtn, Rtprot};
use neli::rtnl::{Fibmsg, FibmsgBuilder, Rtmsg, RtmsgBuilder};
use neli::types::RtBuffer;
use serde::{Deserialize, Serialize};

use super::{attr, build_error, ip_from_bytes, ip_to_bytes, is_exists, Netlink, Result};
use crate::error::Error;

pub const RT_TABLE_DEFAULT: u32 = 253;
pub const RT_TABLE_MAIN: u32 = 254;
pub const RT_TABLE_LOCAL: u32 = 255;
pub const RTPROT_KERNEL: u8 = 2;
pub const RTN_UNICAST: u8 = 1;

/// A route as captured: enough to add it back with the same table, metric and protocol.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Route {
    /// 4 or 6.
    pub family: u8,
    /// `None` with `dst_len` 0 is a default route.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dst: Option<IpAddr>,
    pub dst_len: u8,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gateway: Option<IpAddr>,
    pub table: u32,
    pub protocol: u8,
    pub scope: u8,
    #[serde(rename = "type")]
    pub kind: u8,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub priority: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prefsrc: Option<IpAddr>,
    /// Through next hops the link shares with others (a multipath route, a nexthop
    /// object): the link carries it, but it cannot be put back on the link alone.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub shared: bool,
}

impl Route {
    pub fn is_default(&self) -> bool {
        self.dst_len == 0
    }

    /// `10.9.0.0/16`, or `0.0.0.0/0` / `::/0` for a default route (CNI result form).
    pub fn dst_cidr(&self) -> String {
        match (&self.dst, self.family) {
            (Some(d), _) => format!("{d}/{}", self.dst_len),
            (None, 6) => "::/0".into(),
            (None, _) => "0.0.0.0/0".into(),
        }
    }

    /// `adding route 10.9.0.0/16 via 192.0.2.1 through enp1s0`, what adding it does.
    pub fn describe_adding(&self, link: &str) -> String {
        match &self.gateway {
            Some(gw) => format!("adding route {} via {gw} through {link}", self.dst_cidr()),
            None => format!("adding route {} through {link}", self.dst_cidr()),
        }
    }

    /// Why adding it through `link` failed with `errno`, where the errno's words fall short.
    fn why_refused(&self, errno: i32, link: &str) -> Option<String> {
        match (errno, &self.gateway) {
            (nix::libc::ENETUNREACH, Some(gw)) => {
                Some(format!("its gateway {gw} is not on a network of {link}"))
            }
            _ => None,
        }
    }

    /// The failure `e` of adding it through `link`, told in words.
    fn failed(&self, e: Error, link: &str) -> Error {
        let why = e.errno().and_then(|errno| self.why_refused(errno, link));
        let e = e.while_doing(self.describe_adding(link));
        match why {
            Some(why) => e.because(why),
            None => e,
        }
    }

    fn rt_family(&self) -> RtAddrFamily {
        if self.family == 6 {
            RtAddrFamily::Inet6
        } else {
            RtAddrFamily::Inet
        }
    }
}

/// A route of the namespace and the links it goes through: its output interface, or the
/// interface of each next hop of a multipath route. Empty when the kernel names only a
/// nexthop object (`net.ipv4.nexthop_compat_mode` off): then which links carry it is not
/// said in the route itself.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RouteVia {
    pub route: Route,
    pub links: Vec<i32>,
}

impl Netlink {
    /// Every route of the namespace with the links it goes through, from the same tables
    /// as [`Netlink::routes`]: one dump per table and family, whatever the number of links
    /// (a read of the whole node, where `routes` asks about one link).
    pub fn all_routes(&self) -> Result<Vec<RouteVia>> {
        let mut routes = Vec::new();
        for family in [RtAddrFamily::Inet, RtAddrFamily::Inet6] {
            for table in self.rule_tables(family)? {
                let what = format!(
                    "reading the {} routes in table {table}",
                    family_in_words(family)
                );
                let msg = route_dump_request(family, vec![attr(Rta::Table, table)?], &what)?;
                let replies = self.exchange(Rtm::Getroute, NlmF::DUMP, msg, &what)?;
                routes.extend(replies.iter().map(parse_route_via));
            }
        }
        Ok(routes)
    }

    /// Routes whose output interface is link `index`, IPv4 then IPv6, from the main table and
    /// every table a policy rule points at. Each dump names its table: the kernel then walks
    /// only that table (never the local table, with an entry per address of the host).
    pub fn routes(&self, index: i32) -> Result<Vec<Route>> {
        let mut routes = Vec::new();
        for family in [RtAddrFamily::Inet, RtAddrFamily::Inet6] {
            for table in self.rule_tables(family)? {
                routes.extend(self.routes_in_table(family, table, index)?);
            }
        }
        Ok(routes)
    }

    /// The tables routing consults for `family`: main, plus those of non-default rules.
    fn rule_tables(&self, family: RtAddrFamily) -> Result<Vec<u32>> {
        let what = format!("reading the {} routing rules", family_in_words(family));
        let msg = FibmsgBuilder::default()
            .fib_family(family)
            .fib_dst_len(0)
            .fib_src_len(0)
            .fib_tos(0)
            .fib_table(RtTable::Unspec)
            .fib_action(FrAct::from(0u8))
            .build()
            .map_err(|e| build_error(&what, e))?;
        let mut tables = vec![RT_TABLE_MAIN];
        self.exchange_with(Rtm::Getrule, NlmF::DUMP, msg, &what, |rule: &Fibmsg| {
            let table = rule
                .rtattrs()
                .get_attr_handle()
                .get_attr_payload_as::<u32>(Frattr::Table)
                .unwrap_or_else(|_| u32::from(u8::from(*rule.fib_table())));
            // local holds no routes of ours; default (253) is empty unless a custom rule uses it.
            if !matches!(table, 0 | RT_TABLE_DEFAULT | RT_TABLE_LOCAL) && !tables.contains(&table) {
                tables.push(table);
            }
        })?;
        Ok(tables)
    }

    fn routes_in_table(
        &self,
        rt_family: RtAddrFamily,
        table: u32,
        index: i32,
    ) -> Result<Vec<Route>> {
        let family = family_in_words(rt_family);
        let what = format!("reading the {family} routes of interface #{index} in table {table}");
        let filter = vec![attr(Rta::Oif, index as u32)?, attr(Rta::Table, table)?];
        let msg = route_dump_request(rt_family, filter, &what)?;
        let replies = self
            .exchange(Rtm::Getroute, NlmF::DUMP, msg, &what)
            .map_err(|e| {
                self.about_link(index, e, |e, link| {
                    e.while_doing(format!(
                        "reading the {family} routes of {link} in table {table}"
                    ))
                })
            })?;
        Ok(replies
            .iter()
            .filter_map(|m| parse_route(m, index))
            .collect())
    }

    /// Adds `r` through link `index`; a route that is already there counts as added.
    pub fn add_route(&self, index: i32, r: &Route) -> Result<()> {
        let what = format!("adding route {} through interface #{index}", r.dst_cidr());
        let mut attrs = RtBuffer::new();
        if let Some(dst) = &r.dst {
            attrs.push(attr(Rta::Dst, ip_to_bytes(dst).as_slice())?);
        }
        if let Some(gw) = &r.gateway {
            attrs.push(attr(Rta::Gateway, ip_to_bytes(gw).as_slice())?);
        }
        if let Some(src) = &r.prefsrc {
            attrs.push(attr(Rta::Prefsrc, ip_to_bytes(src).as_slice())?);
        }
        if let Some(p) = r.priority {
            attrs.push(attr(Rta::Priority, p)?);
        }
        attrs.push(attr(Rta::Oif, index as u32)?);
        // RTA_TABLE carries ids above 255 too.
        attrs.push(attr(Rta::Table, r.table)?);
        let msg = RtmsgBuilder::default()
            .rtm_family(r.rt_family())
            .rtm_dst_len(r.dst_len)
            .rtm_src_len(0)
            .rtm_tos(0)
            .rtm_table(RtTable::Unspec)
            .rtm_protocol(Rtprot::from(r.protocol))
            .rtm_scope(RtScope::from(r.scope))
            .rtm_type(Rtn::from(r.kind))
            .rtattrs(attrs)
            .build()
            .map_err(|e| build_error(&what, e))?;
        match self.exchange(Rtm::Newroute, NlmF::CREATE | NlmF::EXCL, msg, &what) {
            Err(e) if !is_exists(&e) => Err(self.about_link(index, e, |e, link| r.failed(e, link))),
            _ => Ok(()),
        }
    }
}

/// A strictly checked route dump request: the kernel honours the `filter` attributes.
fn route_dump_request(
    family: RtAddrFamily,
    filter: Vec<neli::rtnl::Rtattr<Rta, neli::types::Buffer>>,
    what: &str,
) -> Result<Rtmsg> {
    let mut attrs = RtBuffer::new();
    for a in filter {
        attrs.push(a);
    }
    RtmsgBuilder::default()
        .rtm_family(family)
        .rtm_dst_len(0)
        .rtm_src_len(0)
        .rtm_tos(0)
        .rtm_table(RtTable::Unspec)
        .rtm_protocol(Rtprot::Unspec)
        .rtm_scope(RtScope::Universe)
        .rtm_type(Rtn::Unspec)
        .rtattrs(attrs)
        .build()
        .map_err(|e| build_error(what, e))
}

fn parse_route(msg: &Rtmsg, index: i32) -> Option<Route> {
    let attrs = msg.rtattrs().get_attr_handle();
    // Belt and braces for kernels that ignore the filter. A route without RTA_OIF goes
    // through shared next hops (RTA_MULTIPATH, RTA_NH_ID): the strictly checked dump
    // returned it because one of them uses the link.
    let shared = match attrs.get_attr_payload_as::<u32>(Rta::Oif).ok() {
        Some(oif) if oif == index as u32 => false,
        Some(_) => return None,
        None => true,
    };
    Some(route_of(msg, shared))
}

/// A route of a whole-table dump and the links it goes through.
fn parse_route_via(msg: &Rtmsg) -> RouteVia {
    let attrs = msg.rtattrs().get_attr_handle();
    match attrs.get_attr_payload_as::<u32>(Rta::Oif).ok() {
        Some(oif) => RouteVia {
            route: route_of(msg, false),
            links: vec![oif as i32],
        },
        None => RouteVia {
            route: route_of(msg, true),
            links: attrs
                .get_attribute(Rta::Multipath)
                .map(|a| next_hop_links(a.rta_payload().as_ref()))
                .unwrap_or_default(),
        },
    }
}

/// The interfaces of the next hops in an `RTA_MULTIPATH` payload: a sequence of `struct
/// rtnexthop` (length u16, flags u8, hops u8, ifindex i32), each followed by its own
/// attributes and aligned to 4 bytes.
fn next_hop_links(mut bytes: &[u8]) -> Vec<i32> {
    let mut links = Vec::new();
    while bytes.len() >= 8 {
        let len = u16::from_ne_bytes([bytes[0], bytes[1]]) as usize;
        if len < 8 || len > bytes.len() {
            break;
        }
        links.push(i32::from_ne_bytes([bytes[4], bytes[5], bytes[6], bytes[7]]));
        bytes = bytes.get((len + 3) & !3..).unwrap_or_default();
    }
    links
}

/// The route `msg` describes; `shared` when it goes through next hops other links share.
fn route_of(msg: &Rtmsg, shared: bool) -> Route {
    let attrs = msg.rtattrs().get_attr_handle();
    let ip = |t: Rta| {
        attrs
            .get_attribute(t)
            .and_then(|a| ip_from_bytes(a.rta_payload().as_ref()))
    };
    Route {
        family: if *msg.rtm_family() == RtAddrFamily::Inet6 {
            6
        } else {
            4
        },
        dst: ip(Rta::Dst),
        dst_len: *msg.rtm_dst_len(),
        gateway: ip(Rta::Gateway),
        table: attrs
            .get_attr_payload_as::<u32>(Rta::Table)
            .unwrap_or_else(|_| u32::from(u8::from(*msg.rtm_table()))),
        protocol: u8::from(*msg.rtm_protocol()),
        scope: u8::from(*msg.rtm_scope()),
        kind: u8::from(*msg.rtm_type()),
        priority: attrs.get_attr_payload_as::<u32>(Rta::Priority).ok(),
        prefsrc: ip(Rta::Prefsrc),
        shared,
    }
}

/// `IPv4`, `IPv6`: an address family for a person.
fn family_in_words(family: RtAddrFamily) -> &'static str {
    match family {
        RtAddrFamily::Inet6 => "IPv6",
        _ => "IPv4",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn route(dst: Option<&str>, len: u8, family: u8) -> Route {
        Route {
            family,
            dst: dst.map(|d| d.parse().unwrap()),
            dst_len: len,
            gateway: None,
            table: RT_TABLE_MAIN,
            protocol: 4,
            scope: 0,
            kind: RTN_UNICAST,
            priority: None,
            prefsrc: None,
            shared: false,
        }
    }

    #[test]
    fn destinations_render_as_cidr() {
        assert_eq!(route(Some("10.9.0.0"), 16, 4).dst_cidr(), "10.9.0.0/16");
        assert_eq!(route(None, 0, 4).dst_cidr(), "0.0.0.0/0");
        assert_eq!(route(None, 0, 6).dst_cidr(), "::/0");
        assert!(route(None, 0, 6).is_default());
    }

    #[test]
    fn multipath_next_hops_name_their_links() {
        // Two rtnexthop entries: the first with an 8-byte RTA_GATEWAY after it.
        let mut bytes = Vec::new();
        bytes.extend_from_slice(&16u16.to_ne_bytes());
        bytes.extend_from_slice(&[0, 0]);
        bytes.extend_from_slice(&7i32.to_ne_bytes());
        bytes.extend_from_slice(&[8, 0, 5, 0, 192, 0, 2, 1]);
        bytes.extend_from_slice(&8u16.to_ne_bytes());
        bytes.extend_from_slice(&[0, 0]);
        bytes.extend_from_slice(&9i32.to_ne_bytes());
        assert_eq!(next_hop_links(&bytes), [7, 9]);
        assert_eq!(
            next_hop_links(&bytes[..20]),
            [7],
            "a cut entry ends the list"
        );
        assert!(next_hop_links(&[]).is_empty());
    }

    #[test]
    fn state_encoding_round_trips() {
        let mut r = route(Some("2001:db8:9::"), 48, 6);
        r.gateway = Some("2001:db8::1".parse().unwrap());
        r.priority = Some(1024);
        let json = serde_json::to_value(&r).unwrap();
        assert_eq!(json["type"], 1);
        assert_eq!(serde_json::from_value::<Route>(json).unwrap(), r);
    }
}
