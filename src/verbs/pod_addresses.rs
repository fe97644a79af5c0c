//! Which addresses the pod gets: the ones captured on the host interface (default), or the
//! IPoIB address Hyper-V KVP publishes for the interface's MAC (`addressSource`).

use std::net::IpAddr;

use crate::cni::result::IpConfig;
use crate::config::{AddressSource, NetConf};
use crate::error::Error;
use crate::error::KvpError;
use crate::host::netlink::{Address, Route};
use crate::host::snapshot::HostInterface;
use crate::log_info;
use crate::node::kvp;

/// Gives a point-to-point address of the result (IPv4 /31, IPv6 /127) its peer as gateway,
/// as the vendor plugin does (GPU back-end fabrics use them): a captured route's gateway in
/// that subnet if there is one, else the other address of the pair.
pub fn point_to_point_gateways(ips: &mut [IpConfig], routes: &[Route]) {
    for ip in ips.iter_mut().filter(|ip| ip.gateway.is_none()) {
        let Some(Address {
            ip: addr,
            prefix_len,
            ..
        }) = Address::from_cidr(&ip.address)
        else {
            continue;
        };
        let Some(peer) = pair_peer(addr, prefix_len) else {
            continue;
        };
        let routed = routes
            .iter()
            .filter_map(|r| r.gateway)
            .find(|gw| *gw == peer || *gw == addr);
        let gateway = routed.filter(|gw| *gw != addr).unwrap_or(peer);
        ip.gateway = Some(gateway.to_string());
    }
}

/// The other address of a /31 or /127 pair; `None` for any other prefix.
fn pair_peer(addr: IpAddr, len: u8) -> Option<IpAddr> {
    match addr {
        IpAddr::V4(v4) if len == 31 => Some(IpAddr::V4((u32::from(v4) ^ 1).into())),
        IpAddr::V6(v6) if len == 127 => Some(IpAddr::V6((u128::from(v6) ^ 1).into())),
        _ => None,
    }
}

/// Whether the pod gets the host interface's own addresses, so its captured routes (whose
/// gateways sit in those subnets) can follow it. With the user's IPAM, theirs own routing.
pub fn captured_addresses_follow(conf: &NetConf, host: &HostInterface) -> bool {
    conf.ipam.is_none()
        && match conf.address_source {
            AddressSource::Interface => true,
            AddressSource::Kvp => false,
            AddressSource::Auto => !host.addresses.is_empty(),
        }
}

/// The addresses for the static IPAM block handed to host-device.
pub fn for_pod(conf: &NetConf, host: &HostInterface) -> Result<Vec<Address>, Error> {
    if captured_addresses_follow(conf, host) {
        return Ok(host.addresses.clone());
    }
    if conf.ipam.is_some() {
        return Ok(Vec::new()); // the user's IPAM is passed through instead
    }
    match (conf.address_source, from_kvp(conf, host)) {
        (_, Ok(a)) => {
            log_info!(
                "{} gets {} from the KVP pool {}",
                host.name,
                a.cidr(),
                conf.kvp_pool_file.display()
            );
            Ok(vec![a])
        }
        // "auto" on a machine without a KVP pool: the interface had nothing, nor does the pod.
        (AddressSource::Auto, Err(Error::Kvp(KvpError::PoolUnavailable(why)))) => {
            log_info!(
                "{} has no global address and no KVP pool ({why})",
                host.name
            );
            Ok(Vec::new())
        }
        (_, Err(e)) => Err(e),
    }
}

fn from_kvp(conf: &NetConf, host: &HostInterface) -> Result<Address, Error> {
    let mac = host.mac.as_ref().ok_or_else(|| {
        KvpError::NoEntry(format!(
            "{} has no hardware address to look up in KVP",
            host.name
        ))
    })?;
    let ip = kvp::lookup(&conf.kvp_pool_file, mac.as_bytes())?;
    Ok(Address::global(IpAddr::V4(ip), conf.kvp_prefix_length))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::device_id::MacAddress;
    use serde_json::json;
    use std::path::Path;

    fn conf(extra: serde_json::Value) -> NetConf {
        let mut c = json!({"cniVersion": "1.0.0", "name": "n"});
        c.as_object_mut()
            .unwrap()
            .extend(extra.as_object().unwrap().clone());
        let node = crate::node::policy::NodePolicy {
            nad_may_override: vec!["kvpPoolFile".into()],
            ..Default::default()
        };
        NetConf::parse(c.to_string().as_bytes(), &node).unwrap()
    }

    fn host(addresses: &[&str]) -> HostInterface {
        HostInterface {
            name: "ib0".into(),
            ifindex: 3,
            mac: Some(MacAddress::parse("00:15:5d:33:ff:0b").unwrap()),
            mtu: 2044,
            up: true,
            alias: None,
            addresses: addresses
                .iter()
                .map(|a| Address::global(a.parse().unwrap(), 24))
                .collect(),
            routes: Vec::new(),
            master: None,
            carries_default_route: false,
            altnames: Vec::new(),
            altnames_complete: true,
            identity: None,
        }
    }

    /// A pool with one IPoIB_Data record, in hv_kvp_daemon's layout.
    fn pool(dir: &Path, value: &str) -> std::path::PathBuf {
        let mut record = vec![0u8; kvp::RECORD_SIZE];
        record[..kvp::IPOIB_KEY.len()].copy_from_slice(kvp::IPOIB_KEY.as_bytes());
        record[kvp::KEY_SIZE..kvp::KEY_SIZE + value.len()].copy_from_slice(value.as_bytes());
        let path = dir.join("kvp_pool_0");
        std::fs::write(&path, record).unwrap();
        path
    }

    #[test]
    fn interface_is_the_default() {
        let c = conf(json!({}));
        assert_eq!(
            for_pod(&c, &host(&["192.0.2.7"])).unwrap()[0].cidr(),
            "192.0.2.7/24"
        );
        assert!(captured_addresses_follow(&c, &host(&[])));
    }

    #[test]
    fn kvp_and_auto_use_the_pool() {
        let tmp = tempfile::tempdir().unwrap();
        let p = pool(tmp.path(), "NUMPAIRS:1|00155D33FF0B:172.16.1.9");
        let kvp = conf(json!({"addressSource": "kvp", "kvpPoolFile": p}));
        assert_eq!(
            for_pod(&kvp, &host(&["192.0.2.7"])).unwrap()[0].cidr(),
            "172.16.1.9/16"
        );
        assert!(!captured_addresses_follow(&kvp, &host(&["192.0.2.7"])));

        let auto = conf(json!({"addressSource": "auto", "kvpPoolFile": p, "kvpPrefixLength": 24}));
        assert_eq!(
            for_pod(&auto, &host(&[])).unwrap()[0].cidr(),
            "172.16.1.9/24"
        );
        assert_eq!(
            for_pod(&auto, &host(&["192.0.2.7"])).unwrap()[0].cidr(),
            "192.0.2.7/24"
        );
    }

    #[test]
    fn auto_without_a_pool_gives_nothing_and_kvp_without_one_fails() {
        let missing = json!("/nonexistent/kvp_pool_0");
        let auto = conf(json!({"addressSource": "auto", "kvpPoolFile": missing}));
        assert!(for_pod(&auto, &host(&[])).unwrap().is_empty());
        let kvp = conf(json!({"addressSource": "kvp", "kvpPoolFile": missing}));
        assert_eq!(for_pod(&kvp, &host(&[])).unwrap_err().code() as u32, 110);
    }

    #[test]
    fn a_mac_missing_from_the_pool_is_an_error_even_in_auto() {
        let tmp = tempfile::tempdir().unwrap();
        let p = pool(tmp.path(), "NUMPAIRS:1|00155D000000:172.16.1.9");
        let auto = conf(json!({"addressSource": "auto", "kvpPoolFile": p}));
        assert_eq!(for_pod(&auto, &host(&[])).unwrap_err().code() as u32, 113);
    }

    fn ip(address: &str) -> IpConfig {
        IpConfig {
            address: address.into(),
            gateway: None,
            interface: Some(0),
        }
    }

    #[test]
    fn point_to_point_addresses_get_their_peer_as_gateway() {
        let mut ips = [
            ip("10.0.0.6/31"),
            ip("10.0.0.7/31"),
            ip("2001:db8::a/127"),
            ip("192.0.2.7/24"),
        ];
        point_to_point_gateways(&mut ips, &[]);
        let gateways: Vec<Option<&str>> = ips.iter().map(|i| i.gateway.as_deref()).collect();
        assert_eq!(
            gateways,
            [
                Some("10.0.0.7"),
                Some("10.0.0.6"),
                Some("2001:db8::b"),
                None
            ]
        );
    }

    #[test]
    fn a_captured_gateway_in_the_pair_wins_and_a_given_one_stays() {
        let route = crate::verbs::testing::route("10.9.0.0/16", "10.0.0.7");
        let mut ips = [
            ip("10.0.0.6/31"),
            IpConfig {
                gateway: Some("10.0.0.1".into()),
                ..ip("10.0.0.8/31")
            },
        ];
        point_to_point_gateways(&mut ips, &[route]);
        assert_eq!(ips[0].gateway.as_deref(), Some("10.0.0.7"));
        assert_eq!(ips[1].gateway.as_deref(), Some("10.0.0.1"));
    }
}
