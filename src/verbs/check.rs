//! CHECK: is the NIC still in the pod as the chain's result says?
//!
//! libcni checks a conflist by calling every plugin in order with the chain's final result
//! as `prevResult`, so a plugin after this one (`tuning`, `sbr`, ...) may legitimately have
//! changed what ADD set: the MTU, the MAC, sysctls, routes, more addresses. CHECK therefore
//! judges what the chain's result says, plus what only this plugin can tell:
//!
//! - the NIC is in the pod under the name ADD gave it, and the result lists it (under that
//!   name or `CNI_IFNAME`);
//! - it is the NIC ADD moved: its MAC is the one the result gives for it (a `tuning` `mac`
//!   rewrites the result), or the captured one when the result gives none;
//! - it is UP;
//! - every address the result gives it is on it (more are no failure);
//! - its MTU is checked only when the result states one other than the MTU this plugin
//!   reported (CNI 1.1.0 `interfaces[].mtu`): then a later plugin wrote it, and it must
//!   hold. The MTU this plugin reports is the one the NIC came with, and a later plugin
//!   changes the link's MTU without rewriting it (`tuning` never does), so that value
//!   alone proves nothing.
//!
//! Routes are not checked: a later plugin may move them to a table of its own (`sbr`) or
//! remove them, and a result does not say which interface or table a route is on.

use std::path::Path;

use serde_json::{Map, Value};

use crate::cni::CniResult;
use crate::device_id::MacAddress;
use crate::error::Error;
use crate::host::kernel::Kernel;
use crate::host::netlink::{Address, Link, Links};
use crate::node::state::{AttachmentState, StateStore};
use crate::verbs::context::Context;

type Result<T> = std::result::Result<T, Error>;

pub fn check(ctx: &Context, kernel: &dyn Kernel) -> Result<()> {
    if !ctx.version().supports_check() {
        return Err(Error::IncompatibleVersion(format!(
            "CHECK needs cniVersion 0.4.0 or later, the config says {}",
            ctx.version()
        )));
    }
    let prev = ctx
        .conf
        .prev_result
        .as_ref()
        .ok_or_else(|| Error::InvalidConfig("CHECK needs \"prevResult\"".into()))?;
    let prev = CniResult::from_value(prev)?;
    let store = StateStore::open(&ctx.conf.state_dir)?;
    let _lock = store.lock_attachment(&ctx.env.container_id, &ctx.env.ifname)?;
    let state = store
        .load(&ctx.env.container_id, &ctx.env.ifname)?
        .ok_or_else(|| {
            Error::UnknownContainer(format!(
                "no attachment {}/{} is known to amd-host-device",
                ctx.env.container_id, ctx.env.ifname
            ))
        })?;
    if let (Some(driver), Some(pci)) = (&state.userspace_driver, &state.pci_address) {
        return match kernel.sysfs().userspace_driver_of(pci) {
            Some(_) => Ok(()),
            None => Err(Error::CheckFailed(format!(
                "{pci} is no longer bound to {driver} without a network interface"
            ))),
        };
    }
    let expected = Expected::from_result(&prev, &state, &ctx.env.ifname)?;
    kernel.in_netns(Path::new(&ctx.env.netns), |pod| {
        check_in_pod(ctx, pod, &expected, &state)
    })
}

/// What the chain's result says the NIC is in the pod.
#[derive(Debug, PartialEq)]
struct Expected {
    mac: Option<MacAddress>,
    /// An MTU a later plugin wrote into the result (see the module's header).
    mtu: Option<u32>,
    addresses: Vec<Address>,
}

impl Expected {
    /// From `prev`, the chain's result: ADD's result names the NIC by `CNI_IFNAME` when
    /// the NIC answers to it, else by its name in the pod.
    fn from_result(prev: &CniResult, state: &AttachmentState, cni_ifname: &str) -> Result<Self> {
        let names_us = |i: &Map<String, Value>| {
            let name = i.get("name").and_then(Value::as_str);
            name == Some(state.pod_ifname.as_str()) || name == Some(cni_ifname)
        };
        let Some(index) = prev.interfaces.iter().position(names_us) else {
            return Err(Error::CheckFailed(format!(
                "prevResult does not list interface {}",
                state.pod_ifname
            )));
        };
        let ours = &prev.interfaces[index];
        let mac = match ours.get("mac").and_then(Value::as_str) {
            Some(mac) => Some(MacAddress::parse(mac).map_err(|why| {
                Error::Decode(format!("prevResult MAC {mac:?} of {cni_ifname}: {why}"))
            })?),
            None => state.host.mac.clone(),
        };
        let mtu = ours
            .get("mtu")
            .and_then(Value::as_u64)
            .and_then(|m| u32::try_from(m).ok())
            .filter(|m| *m != state.host.mtu);
        let mut addresses = Vec::new();
        // An address without an interface index is the sandbox's, so ours too.
        for ip in prev
            .ips
            .iter()
            .filter(|ip| ip.interface.is_none_or(|i| i == index))
        {
            addresses.push(Address::from_cidr(&ip.address).ok_or_else(|| {
                Error::Decode(format!("prevResult address {:?} is not CIDR", ip.address))
            })?);
        }
        Ok(Expected {
            mac,
            mtu,
            addresses,
        })
    }
}

/// The NIC in the pod against what the result says.
fn check_in_pod(
    ctx: &Context,
    pod: &dyn Links,
    expected: &Expected,
    state: &AttachmentState,
) -> Result<()> {
    let name = &state.pod_ifname;
    let link = pod.link_by_name(name)?.ok_or_else(|| {
        Error::CheckFailed(format!(
            "{name} is not in the pod network namespace {}",
            ctx.env.netns
        ))
    })?;
    check_link(&link, expected, name)?;
    check_addresses(&pod.addresses(link.index)?, expected, name)
}

fn check_link(link: &Link, expected: &Expected, name: &str) -> Result<()> {
    if expected.mac.is_some() && link.mac != expected.mac {
        return Err(Error::CheckFailed(format!(
            "{name} in the pod is not the device that was added (MAC {} where the result \
             says {})",
            shown(link.mac.as_ref()),
            shown(expected.mac.as_ref())
        )));
    }
    if !link.up {
        return Err(Error::CheckFailed(format!("{name} is down in the pod")));
    }
    if let Some(mtu) = expected.mtu.filter(|m| *m != link.mtu) {
        return Err(Error::CheckFailed(format!(
            "{name} has MTU {} in the pod, the result says {mtu}",
            link.mtu
        )));
    }
    Ok(())
}

fn shown(mac: Option<&MacAddress>) -> String {
    mac.map_or_else(|| "none".to_owned(), MacAddress::to_string)
}

/// Every address the result gives the NIC must be on it.
fn check_addresses(present: &[Address], expected: &Expected, name: &str) -> Result<()> {
    for wanted in &expected.addresses {
        if !present
            .iter()
            .any(|a| (a.ip, a.prefix_len) == (wanted.ip, wanted.prefix_len))
        {
            return Err(Error::CheckFailed(format!(
                "address {} is missing from {name} in the pod",
                wanted.cidr()
            )));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::verbs::testing::{address, attachment};
    use serde_json::json;

    /// The state of `enp94s0f1` (02:00:00:00:00:01, MTU 1500) attached as net1.
    fn testing_sample_state() -> AttachmentState {
        let nic = link("02:00:00:00:00:01", 1500, true);
        attachment(&nic, &[address("192.0.2.10/24")], "/pod", "enp94s0f1")
    }

    fn prev(v: Value) -> CniResult {
        CniResult::from_value(&v).unwrap()
    }

    #[test]
    fn the_chains_mac_wins_and_the_captured_one_stands_in() {
        let state = testing_sample_state();
        let tuned = prev(json!({"interfaces": [{"name": "net1", "mac": "02:aa:00:00:00:09"}]}));
        let e = Expected::from_result(&tuned, &state, "net1").unwrap();
        assert_eq!(e.mac, Some(MacAddress::parse("02:aa:00:00:00:09").unwrap()));
        let bare = prev(json!({"interfaces": [{"name": "net1"}]}));
        let e = Expected::from_result(&bare, &state, "net1").unwrap();
        assert_eq!(e.mac, state.host.mac);
    }

    #[test]
    fn only_an_mtu_a_later_plugin_wrote_is_checked() {
        let state = testing_sample_state();
        let ours = json!({"interfaces": [{"name": "net1", "mtu": state.host.mtu}]});
        assert_eq!(
            Expected::from_result(&prev(ours), &state, "net1")
                .unwrap()
                .mtu,
            None,
            "our own report of the captured MTU"
        );
        let rewritten = json!({"interfaces": [{"name": "net1", "mtu": 1280}]});
        assert_eq!(
            Expected::from_result(&prev(rewritten), &state, "net1")
                .unwrap()
                .mtu,
            Some(1280)
        );
        let none = json!({"interfaces": [{"name": "net1"}]});
        assert_eq!(
            Expected::from_result(&prev(none), &state, "net1")
                .unwrap()
                .mtu,
            None
        );
    }

    #[test]
    fn the_addresses_of_our_interface_or_of_none_are_expected() {
        let state = testing_sample_state();
        let result = prev(json!({
            "interfaces": [{"name": "eth0"}, {"name": "net1"}],
            "ips": [
                {"interface": 0, "address": "10.0.0.2/24"},
                {"interface": 1, "address": "192.0.2.10/24"},
                {"address": "2001:db8::10/64"}
            ]
        }));
        let e = Expected::from_result(&result, &state, "net1").unwrap();
        let cidrs: Vec<String> = e.addresses.iter().map(Address::cidr).collect();
        assert_eq!(cidrs, ["192.0.2.10/24", "2001:db8::10/64"]);
    }

    #[test]
    fn a_result_without_our_interface_or_with_garbage_is_refused() {
        let state = testing_sample_state();
        let other = prev(json!({"interfaces": [{"name": "eth0"}]}));
        let e = Expected::from_result(&other, &state, "net1").unwrap_err();
        assert_eq!(e.code() as u32, 105, "{e}");
        let bad_mac = prev(json!({"interfaces": [{"name": "net1", "mac": "zz"}]}));
        assert_eq!(
            Expected::from_result(&bad_mac, &state, "net1")
                .unwrap_err()
                .code() as u32,
            6
        );
        let bad_ip = prev(json!({"interfaces": [{"name": "net1"}], "ips": [{"address": "x"}]}));
        assert_eq!(
            Expected::from_result(&bad_ip, &state, "net1")
                .unwrap_err()
                .code() as u32,
            6
        );
    }

    fn link(mac: &str, mtu: u32, up: bool) -> Link {
        Link {
            index: 7,
            name: "enp94s0f1".into(),
            mac: Some(MacAddress::parse(mac).unwrap()),
            mtu,
            up,
            alias: None,
            master: None,
            parent_device: None,
            altnames: Vec::new(),
            kind: None,
            other_end_elsewhere: false,
        }
    }

    #[test]
    fn the_link_must_be_the_nic_up_and_at_a_rewritten_mtu() {
        let expected = Expected {
            mac: Some(MacAddress::parse("02:00:00:00:00:01").unwrap()),
            mtu: None,
            addresses: Vec::new(),
        };
        assert!(check_link(&link("02:00:00:00:00:01", 1280, true), &expected, "n").is_ok());
        let e = check_link(&link("02:00:00:00:00:02", 1500, true), &expected, "n").unwrap_err();
        assert!(
            e.to_string().contains("not the device that was added"),
            "{e}"
        );
        let e = check_link(&link("02:00:00:00:00:01", 1500, false), &expected, "n").unwrap_err();
        assert_eq!(e.to_string(), "n is down in the pod");
        let rewritten = Expected {
            mtu: Some(1280),
            ..expected
        };
        assert!(check_link(&link("02:00:00:00:00:01", 1280, true), &rewritten, "n").is_ok());
        let e = check_link(&link("02:00:00:00:00:01", 9000, true), &rewritten, "n").unwrap_err();
        assert_eq!(
            e.to_string(),
            "n has MTU 9000 in the pod, the result says 1280"
        );
    }
}
