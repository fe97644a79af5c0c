//! Capture of a host interface's configuration, and putting it back.
//!
//! Policy lives here (which addresses and routes are ours to restore, and in what order);
//! the netlink module only speaks the protocol.

use serde::{Deserialize, Serialize};

use crate::device_id::MacAddress;
use crate::error::Error;
use crate::host::identity::LinkIdentity;
use crate::host::names;
use crate::host::netlink::consts::*;
use crate::host::netlink::{Address, Link, LinkChange, Links, Route};

/// Everything about a host interface that a trip through a pod must not lose. The default
/// is no interface at all (a claimed PCI function without a netdev).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct HostInterface {
    pub name: String,
    pub ifindex: i32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mac: Option<MacAddress>,
    pub mtu: u32,
    pub up: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub alias: Option<String>,
    pub addresses: Vec<Address>,
    pub routes: Vec<Route>,
    /// The bridge, bond, team or VRF it was a port of, to enslave it again on the way back.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub master: Option<String>,
    /// A default route goes through it, one that is not restored with it (multipath or a
    /// nexthop object shared with other links): the default-route guard still sees it.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub carries_default_route: bool,
    /// Its own alternative names on the host (they move with it, and stay its own).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub altnames: Vec<String>,
    /// Whether `altnames` is the whole set of its own: true for every capture of this
    /// release. A state of an earlier one (which may not have recorded them) says nothing of
    /// the names it has beyond `CNI_IFNAME`: see [`HostInterface::own_altnames`].
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub altnames_complete: bool,
    /// What tells it from a link a pod creates in its place (`host/identity.rs`); none in
    /// a state written before it was captured, or built without a capture.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub identity: Option<LinkIdentity>,
}

impl HostInterface {
    /// Reads link, addresses and routes of `link` with filtered requests (cost independent of
    /// how many other links the host has).
    pub fn capture(nl: &dyn Links, link: &Link) -> Result<HostInterface, Error> {
        let addresses = nl
            .addresses(link.index)?
            .into_iter()
            .filter(is_restorable_address)
            .collect();
        let master = match link.master {
            Some(index) => nl.link_by_index(index)?.map(|m| m.name),
            None => None,
        };
        Ok(HostInterface {
            addresses,
            ..HostInterface::from_routes(link, nl.routes(link.index)?, master)
        })
    }

    /// The interface as [`HostInterface::capture`] sees it, from routes already read (every
    /// route through the link) and its master's name, without its addresses: all that the
    /// admission guards look at.
    pub fn from_routes(
        link: &Link,
        all_routes: Vec<Route>,
        master: Option<String>,
    ) -> HostInterface {
        let carries_default_route = all_routes.iter().any(|r| r.shared && r.is_default());
        let routes = all_routes.into_iter().filter(is_restorable_route).collect();
        HostInterface {
            name: link.name.clone(),
            ifindex: link.index,
            mac: link.mac.clone(),
            mtu: link.mtu,
            up: link.up,
            alias: link.alias.clone(),
            addresses: Vec::new(),
            routes,
            master,
            carries_default_route,
            altnames: link.altnames.clone(),
            altnames_complete: true,
            identity: Some(LinkIdentity::of(link)),
        }
    }

    /// `enp94s0f1 (mac .., mtu 1400, up, addresses [..], 1 routes)` for log lines.
    pub fn summary(&self) -> String {
        let addresses: Vec<String> = self.addresses.iter().map(Address::cidr).collect();
        format!(
            "{} (mac {}, mtu {}, {}, addresses [{}], {} routes)",
            self.name,
            self.mac
                .as_ref()
                .map(ToString::to_string)
                .unwrap_or_else(|| "-".into()),
            self.mtu,
            if self.up { "up" } else { "down" },
            addresses.join(", "),
            self.routes.len()
        )
    }

    pub fn has_default_route(&self) -> bool {
        self.carries_default_route || self.routes.iter().any(Route::is_default)
    }

    /// Its own alternative names, judged on `link` (the NIC as it is now): the captured
    /// ones; or, for a state that did not record the whole set (an earlier release), every
    /// name `link` carries but `pod_only`, the one name known to be the pod's. So a NIC
    /// attached by an earlier release keeps its own names (systemd's, an admin's), and only
    /// a name the pod gave it beyond `CNI_IFNAME` can come home with it, as before.
    pub fn own_altnames(&self, link: &Link, pod_only: Option<&str>) -> Vec<String> {
        if self.altnames_complete {
            return self.altnames.clone();
        }
        link.altnames
            .iter()
            .filter(|a| Some(a.as_str()) != pod_only)
            .cloned()
            .collect()
    }

    /// This configuration with its alternative names made whole from `link` (see
    /// [`HostInterface::own_altnames`]), for [`HostInterface::restore`].
    pub fn with_own_altnames(&self, link: &Link, pod_only: Option<&str>) -> HostInterface {
        HostInterface {
            altnames: self.own_altnames(link, pod_only),
            altnames_complete: true,
            ..self.clone()
        }
    }

    /// Puts this configuration back on `current` (the same device, found again on the host).
    /// Order matters: rename and MTU while down, back into its master (a move out of the
    /// host released it), then up, then addresses (setting a link down drops IPv6 addresses
    /// and routes), then routes (gateways need the connected prefix).
    /// Its alternative names become exactly the captured ones: any other goes first (a name
    /// the pod gave it must not stay on the host a moment longer), a captured one it lost
    /// comes back after the rename. Its MAC is the captured one again (a tenant may have
    /// changed it in the pod), set while it is down.
    /// Returns what could not be restored, each in words; the device itself is back either way.
    pub fn restore(&self, nl: &dyn Links, current: &Link) -> Result<Vec<String>, Error> {
        let mut problems: Vec<String> = self
            .shed_foreign_altnames(nl, current)
            .into_iter()
            .collect();
        let renaming = current.name != self.name;
        let wrong_mac = self.mac.is_some() && current.mac != self.mac;
        if (renaming || wrong_mac) && current.up {
            nl.set_down(current.index)?;
        }
        if wrong_mac {
            problems.extend(self.restore_mac(nl, current));
        }
        let wanted_alias = self.alias.clone().unwrap_or_default();
        let change = LinkChange {
            name: renaming.then(|| self.name.clone()),
            mtu: (current.mtu != self.mtu && self.mtu > 0).then_some(self.mtu),
            // host-device leaves the original name in the alias; give back the real one.
            alias: (current.alias.clone().unwrap_or_default() != wanted_alias)
                .then_some(wanted_alias),
            // A port goes up once it is back in its master; anything else in one request.
            up: self.master.is_none().then_some(self.up),
            ..LinkChange::default()
        };
        nl.set_link(current.index, &change)?;
        problems.extend(self.add_lost_altnames(nl, current));
        if let Some(master) = &self.master {
            if let Err(e) = self.enslave(nl, current, master) {
                problems.push(e.to_string());
            }
            nl.set_link(
                current.index,
                &LinkChange {
                    up: Some(self.up),
                    ..LinkChange::default()
                },
            )?;
        }
        crate::fault::step("after-link");
        for a in &self.addresses {
            if let Err(e) = nl.add_address(current.index, a) {
                problems.push(e.to_string());
            }
        }
        crate::fault::step("after-addresses");
        if self.up {
            let refused = apply_routes(nl, current.index, &self.routes);
            problems.extend(refused.iter().map(Error::to_string));
        }
        Ok(problems)
    }

    /// Takes off `current` every alternative name it was not captured with, in one request;
    /// what could not be done, for the log.
    fn shed_foreign_altnames(&self, nl: &dyn Links, current: &Link) -> Option<String> {
        let foreign = names::altnames_not_in(current, &self.altnames);
        if foreign.is_empty() {
            return None;
        }
        nl.del_altnames(current.index, &foreign)
            .err()
            .map(|e| e.to_string())
    }

    /// Gives `current` (renamed to its captured name by now) back each captured alternative
    /// name it lost; what could not be done, for the log.
    fn add_lost_altnames(&self, nl: &dyn Links, current: &Link) -> Vec<String> {
        self.altnames
            .iter()
            .filter(|a| !current.altnames.contains(a))
            .filter_map(|a| nl.add_altname(&self.name, a).err())
            .map(|e| e.to_string())
            .collect()
    }

    /// Sets the captured MAC on `current` (down). Not fatal: a driver that refuses it
    /// leaves the NIC home all the same, and its lookups go by its PCI function too.
    fn restore_mac(&self, nl: &dyn Links, current: &Link) -> Option<String> {
        let change = LinkChange {
            mac: self.mac.clone(),
            ..LinkChange::default()
        };
        nl.set_link(current.index, &change)
            .err()
            .map(|e| e.to_string())
    }

    /// Makes `current` a port of `master` again, unless it already is.
    fn enslave(&self, nl: &dyn Links, current: &Link, master: &str) -> Result<(), Error> {
        let master = nl.link_by_name(master)?.ok_or_else(|| {
            Error::device_not_found(format!(
                "making {} a port of {master} again: {master} is not on the host",
                self.name
            ))
        })?;
        if current.master == Some(master.index) {
            return Ok(());
        }
        nl.set_link(
            current.index,
            &LinkChange {
                master: Some(master.index),
                ..LinkChange::default()
            },
        )
    }
}

/// Global addresses only: IPv6 link-local is regenerated by the kernel (and static IPAM
/// refuses it), host-scope addresses are loopback-like, and IPv6 privacy addresses are
/// temporary by definition. (0x01 is "secondary" for IPv4, which we keep.)
fn is_restorable_address(a: &Address) -> bool {
    let ipv6_temporary = a.ip.is_ipv6() && a.has_flag(IFA_F_TEMPORARY);
    !a.is_ipv6_link_local() && a.scope != RT_SCOPE_HOST && !ipv6_temporary
}

/// Routes someone configured: not the kernel's own prefix/local/multicast routes, which come
/// back by themselves with the addresses.
fn is_restorable_route(r: &Route) -> bool {
    r.table != RT_TABLE_LOCAL && r.protocol != RTPROT_KERNEL && r.kind == RTN_UNICAST && !r.shared
}

/// Adds routes through link `index`, retrying those whose gateway is only reachable through
/// another route of the list. Returns why each one that could not be added was refused.
pub fn apply_routes(nl: &dyn Links, index: i32, routes: &[Route]) -> Vec<Error> {
    let mut pending: Vec<&Route> = routes.iter().collect();
    loop {
        let before = pending.len();
        let mut failed = Vec::new();
        let mut last_errors = Vec::new();
        for r in pending {
            if let Err(e) = nl.add_route(index, r) {
                last_errors.push(e);
                failed.push(r);
            }
        }
        if failed.is_empty() || failed.len() == before {
            return last_errors;
        }
        pending = failed;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_state_of_an_earlier_release_keeps_the_names_the_nic_carries_but_cni_ifname() {
        let link = Link {
            altnames: vec!["enp94s0f1np1".into(), "net1".into(), "ens1f1".into()],
            ..Link::default()
        };
        let earlier = HostInterface {
            name: "enp94s0f1".into(),
            ..HostInterface::default()
        };
        assert_eq!(
            earlier.own_altnames(&link, Some("net1")),
            ["enp94s0f1np1", "ens1f1"]
        );
        let captured = HostInterface {
            altnames: vec!["ens1f1".into()],
            altnames_complete: true,
            ..earlier.clone()
        };
        assert_eq!(captured.own_altnames(&link, Some("net1")), ["ens1f1"]);
        let whole = earlier.with_own_altnames(&link, Some("net1"));
        assert!(whole.altnames_complete);
        assert_eq!(whole.altnames, ["enp94s0f1np1", "ens1f1"]);
    }

    fn addr(ip: &str, scope: u8, flags: u32) -> Address {
        Address {
            flags,
            scope,
            ..Address::global(ip.parse().unwrap(), 64)
        }
    }

    fn route(table: u32, protocol: u8, kind: u8) -> Route {
        Route {
            family: 4,
            dst: Some("10.9.0.0".parse().unwrap()),
            dst_len: 16,
            gateway: None,
            table,
            protocol,
            scope: 0,
            kind,
            priority: None,
            prefsrc: None,
            shared: false,
        }
    }

    #[test]
    fn keeps_global_addresses_only() {
        assert!(is_restorable_address(&addr("192.0.2.1", 0, 0)));
        assert!(is_restorable_address(&addr(
            "192.0.2.2",
            0,
            IFA_F_TEMPORARY
        ))); // v4 secondary
        assert!(is_restorable_address(&addr("2001:db8::1", 0, 0x02)));
        assert!(!is_restorable_address(&addr(
            "2001:db8::2",
            0,
            IFA_F_TEMPORARY
        )));
        assert!(!is_restorable_address(&addr("fe80::1", 253, 0)));
        assert!(!is_restorable_address(&addr("127.0.0.2", RT_SCOPE_HOST, 0)));
    }

    #[test]
    fn keeps_configured_routes_only() {
        assert!(is_restorable_route(&route(RT_TABLE_MAIN, 4, RTN_UNICAST)));
        assert!(is_restorable_route(&route(100, 3, RTN_UNICAST)));
        assert!(!is_restorable_route(&route(
            RT_TABLE_MAIN,
            RTPROT_KERNEL,
            RTN_UNICAST
        )));
        assert!(!is_restorable_route(&route(RT_TABLE_LOCAL, 4, RTN_UNICAST)));
        assert!(!is_restorable_route(&route(RT_TABLE_MAIN, 4, 5)));
    }

    /// Against the running kernel (root only): a multipath default route and one through a
    /// nexthop group both go through the NIC, and both keep it on the host.
    #[test]
    fn default_routes_through_shared_next_hops_are_seen_and_not_restored() {
        use crate::host::kernel::{Kernel, LiveKernel};
        let Some(scratch) = crate::host::testing::ScratchNetns::new("mpath") else {
            return;
        };
        for args in [
            &["link", "add", "a0", "type", "veth", "peer", "name", "a1"][..],
            &["link", "add", "b0", "type", "veth", "peer", "name", "b1"],
            &["link", "set", "a0", "up"],
            &["link", "set", "b0", "up"],
            &["link", "set", "a1", "up"],
            &["link", "set", "b1", "up"],
            &["addr", "add", "192.0.2.2/24", "dev", "a0"],
            &["addr", "add", "198.51.100.2/24", "dev", "b0"],
            &[
                "route",
                "add",
                "default",
                "nexthop",
                "via",
                "192.0.2.1",
                "dev",
                "a0",
                "nexthop",
                "via",
                "198.51.100.1",
                "dev",
                "b0",
            ],
        ] {
            assert!(scratch.ip(args), "ip {args:?}");
        }
        let kernel = LiveKernel::new();
        let links = kernel.links_in(&scratch.path()).unwrap();
        let a0 = links.link_by_name("a0").unwrap().unwrap();
        let captured = HostInterface::capture(&*links, &a0).unwrap();
        assert!(captured.has_default_route(), "{captured:?}");
        assert!(
            captured.routes.is_empty(),
            "not restorable on a0 alone: {:?}",
            captured.routes
        );
        // A default route through a nexthop object (kernel 5.3+).
        assert!(scratch.ip(&["route", "del", "default"]));
        if scratch.ip(&[
            "nexthop",
            "add",
            "id",
            "7",
            "via",
            "198.51.100.1",
            "dev",
            "b0",
        ]) && scratch.ip(&["route", "add", "default", "nhid", "7"])
        {
            let b0 = links.link_by_name("b0").unwrap().unwrap();
            assert!(HostInterface::capture(&*links, &b0)
                .unwrap()
                .has_default_route());
        }
    }
}
