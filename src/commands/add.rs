//! ADD: resolve → lock → capture → persist → delegate → routes in the pod → result.
//! Any failure after the state is written rolls back, so the NIC ends where it started.

use std::path::Path;

use serde_json::Value;

use crate::cni::{CniResult, Command};
use crate::config::PodInterfaceName;
use crate::context::Context;
use crate::delegate::{Delegate, Started};
use crate::device::{self, Resolved};
use crate::device_id::DeviceError;
use crate::error::Error;
use crate::fault;
use crate::give_back::give_back;
use crate::kernel::Kernel;
use crate::kubelet::{check_allocation, Checkpoint, Selection};
use crate::netlink::{Link, LinkChange, Links};
use crate::pod_addresses;
use crate::rdma;
use crate::snapshot::{apply_routes, HostInterface};
use crate::state::{self, AttachmentState, Lock, PodRef, StateStore};
use crate::{log_debug, log_error, log_info};

type Result<T> = std::result::Result<T, Error>;

pub fn add(ctx: &Context, kernel: &dyn Kernel) -> Result<Value> {
    let (env, conf) = (&ctx.env, &ctx.conf);
    // Everything that can be checked without touching the device is checked first.
    conf.selector.require_some()?;
    ensure_allocated_to_this_pod(ctx)?;
    let delegate = Delegate::find(&conf.delegate, &env.path)?;
    let pod_ns = Path::new(&env.netns);
    if !kernel.netns_exists(pod_ns) {
        return Err(Error::invalid_env(
            "CNI_NETNS",
            format!("{} is not a network namespace", env.netns),
        ));
    }
    let store = StateStore::open(&conf.state_dir)?;
    let _attachment_lock = store.lock_attachment(&env.container_id, &env.ifname)?;
    ensure_new_attachment(ctx, &store)?;
    // A device is claimed under its PCI address and host name: say who has it even when it
    // is away in their pod (and so not on the host to be resolved). The PCI claim is
    // checked under the device lock, before resolving (`resolve_and_lock`).
    if let Some(name) = &conf.selector.device {
        ensure_unclaimed(&store, &state::name_key(name), &conf.selector.describe())?;
    }

    let host = kernel.host()?;
    let (Resolved { link, pci }, _device_lock) = resolve_and_lock(ctx, kernel, &store)?;
    let captured = HostInterface::capture(host, &link)?;
    ensure_not_the_hosts_own(ctx, kernel, &captured)?;
    let naming = choose_names(ctx, kernel, &captured, pod_ns)?;
    // Read before the move: /sys/class/net only shows this netns.
    let rdma_devices = rdma::devices_of(kernel.sysfs().root(), pci.as_ref(), &captured.name);
    let state = attachment_state(ctx, pci, captured, naming, rdma_devices);
    fault::point("after-capture");
    // The delegate starts up while the state is made durable, but only gets its config (and
    // so can act) once the state is on disk; dropped on error, it is killed unfed.
    let started = delegate.start(Command::Add, &ctx.env, &state.pod_ifname)?;
    // Persist before anything moves: from here on a crash leaves what DEL needs.
    store.save(&state)?;
    fault::point("after-state-write");
    log_info!(
        "captured {} as {}",
        state.host.summary(),
        store.path_of(&state.container_id, &state.ifname).display()
    );

    match attach(ctx, kernel, &delegate, started, &link, &state) {
        Ok(result) => {
            fault::point("before-result");
            log_info!(
                "attached {} to {} as {}",
                state.host.name,
                env.netns,
                state.pod_ifname
            );
            Ok(result.to_json(conf.cni_version))
        }
        Err(e) => {
            roll_back(ctx, kernel, &delegate, &store, &state, &e);
            Err(e)
        }
    }
}

/// On a Kubernetes node, the NIC must be one the device plugin allocated to this pod.
fn ensure_allocated_to_this_pod(ctx: &Context) -> Result<()> {
    let conf = &ctx.conf;
    let Some(checkpoint) = Checkpoint::load(&conf.kubelet_checkpoint)? else {
        return Ok(()); // not a kubelet node: nothing says which pod owns which NIC
    };
    let selection = Selection {
        pci: conf.selector.pci.as_ref(),
        pod_uid: ctx.env.arg("K8S_POD_UID"),
        allow_unverified: conf.allow_unverified_selection,
    };
    if let Some(why) = check_allocation(&checkpoint, &selection)? {
        log_info!("{why}; allowed by the node policy (allowUnverifiedSelection)");
    }
    Ok(())
}

/// The host's own uses of a NIC stay the host's unless the node allows otherwise: its
/// uplink (the default route) and its membership in a bridge, bond, team or VRF, or the
/// VLAN/macvlan devices on it (a move would take the NIC from under them).
fn ensure_not_the_hosts_own(ctx: &Context, kernel: &dyn Kernel, nic: &HostInterface) -> Result<()> {
    let conf = &ctx.conf;
    if nic.has_default_route() && !conf.allow_default_route_device {
        return Err(DeviceError::CarriesDefaultRoute(format!(
            "{} carries a default route of this host; refusing to move it into a pod \
             (the node policy's \"allowDefaultRouteDevice\" lifts this)",
            nic.name
        ))
        .into());
    }
    let uppers = kernel.sysfs().uppers_of(&nic.name);
    if (nic.master.is_none() && uppers.is_empty()) || conf.allow_enslaved_device {
        return Ok(());
    }
    let mut uses = Vec::new();
    if let Some(master) = &nic.master {
        uses.push(format!("is a port of {master}"));
    }
    let children: Vec<&String> = uppers
        .iter()
        .filter(|u| Some(*u) != nic.master.as_ref())
        .collect();
    if !children.is_empty() {
        let names: Vec<&str> = children.iter().map(|c| c.as_str()).collect();
        uses.push(format!("carries {}", names.join(", ")));
    }
    Err(DeviceError::InUseByHost(format!(
        "{} {} on this host; refusing to move it into a pod (the node policy's \
         \"allowEnslavedDevice\" lets it go, and DEL makes it a port again)",
        nic.name,
        uses.join(" and ")
    ))
    .into())
}

/// The runtime must DEL an attachment before adding it again.
fn ensure_new_attachment(ctx: &Context, store: &StateStore) -> Result<()> {
    let env = &ctx.env;
    if store.load(&env.container_id, &env.ifname)?.is_some() {
        return Err(DeviceError::Claimed(format!(
            "attachment {}/{} already exists; DEL it before adding it again",
            env.container_id, env.ifname
        ))
        .into());
    }
    Ok(())
}

/// Gives the device back after a failed ADD, so it ends where it started. If that fails
/// too, the state stays for the runtime's DEL.
fn roll_back(
    ctx: &Context,
    kernel: &dyn Kernel,
    delegate: &Delegate,
    store: &StateStore,
    state: &AttachmentState,
    why: &Error,
) {
    log_error!("ADD of {} failed: {why}; rolling back", state.host.name);
    if let Err(rollback) = give_back(kernel, ctx, Some(delegate), store, state) {
        log_error!(
            "rollback failed: {rollback}; state kept in {} for the runtime's DEL",
            store.path_of(&state.container_id, &state.ifname).display()
        );
    }
}

fn attachment_state(
    ctx: &Context,
    pci_address: Option<crate::device_id::PciAddress>,
    host: HostInterface,
    naming: Naming,
    rdma_devices: Vec<String>,
) -> AttachmentState {
    let (env, conf) = (&ctx.env, &ctx.conf);
    AttachmentState {
        schema: state::SCHEMA_VERSION,
        container_id: env.container_id.clone(),
        ifname: env.ifname.clone(),
        network: conf.name.clone(),
        cni_version: conf.cni_version.as_str().to_owned(),
        netns: env.netns.clone(),
        selector: conf.selector.clone(),
        pci_address,
        host,
        pod_ifname: naming.pod_ifname,
        staging_name: naming.staging_name,
        rdma_devices,
        pod: PodRef {
            namespace: env.arg("K8S_POD_NAMESPACE").map(str::to_owned),
            name: env.arg("K8S_POD_NAME").map(str::to_owned),
            uid: env.arg("K8S_POD_UID").map(str::to_owned),
        },
        created: crate::log::timestamp(),
    }
}

/// Finds the selected device and takes its lock; the link is read under the lock, since
/// another ADD may have taken the device meanwhile. A PCI address is the device's key before
/// netlink is asked, so then the lock comes first and the link is read once.
fn resolve_and_lock(
    ctx: &Context,
    kernel: &dyn Kernel,
    store: &StateStore,
) -> Result<(Resolved, Lock)> {
    let selector = &ctx.conf.selector;
    let host = kernel.host()?;
    let resolve = || device::resolve(selector, kernel.sysfs(), host);
    if let Some(pci) = &selector.pci {
        let key = state::pci_key(pci);
        let lock = store.lock_device(&key)?;
        ensure_unclaimed(store, &key, &selector.describe())?;
        let resolved = resolve()?;
        crate::log::set_device(&resolved.link.name);
        return Ok((resolved, lock));
    }
    let Resolved { link, pci } = resolve()?;
    crate::log::set_device(&link.name);
    let key = state::device_key(None, link.mac.as_ref(), &link.name);
    let lock = store.lock_device(&key)?;
    ensure_unclaimed(store, &key, &link.name)?;
    let link = host
        .link_by_index(link.index)?
        .filter(|l| l.name == link.name)
        .ok_or_else(|| Error::device_not_found(format!("{} left the host meanwhile", link.name)))?;
    Ok((Resolved { link, pci }, lock))
}

fn ensure_unclaimed(store: &StateStore, key: &str, what: &str) -> Result<()> {
    match store.claim_of(key)? {
        Some(owner) => Err(DeviceError::Claimed(format!(
            "{what} is already claimed by container {} interface {}",
            owner.container_id, owner.ifname
        ))
        .into()),
        None => Ok(()),
    }
}

struct Naming {
    pod_ifname: String,
    /// Temporary host name used when the host name is already taken in the pod.
    staging_name: Option<String>,
}

/// The pod keeps the host name unless asked for CNI_IFNAME or the name is taken there.
/// host-device moves the link under its current name, so a name clash in the pod also
/// means renaming it on the host first (to a temporary name we remember in the state).
fn choose_names(
    ctx: &Context,
    kernel: &dyn Kernel,
    host: &HostInterface,
    pod_ns: &Path,
) -> Result<Naming> {
    let taken_in_pod =
        kernel.in_netns(pod_ns, |pod| Ok(pod.link_by_name(&host.name)?.is_some()))?;
    let pod_ifname = match (ctx.conf.pod_interface_name, taken_in_pod) {
        (PodInterfaceName::Host, false) => host.name.clone(),
        (PodInterfaceName::Host, true) => {
            log_info!(
                "{} is already taken in the pod; using {} instead",
                host.name,
                ctx.env.ifname
            );
            ctx.env.ifname.clone()
        }
        (PodInterfaceName::Cni, _) => ctx.env.ifname.clone(),
    };
    Ok(Naming {
        pod_ifname,
        staging_name: taken_in_pod.then(|| format!("ahd{}", host.ifindex)),
    })
}

/// The part of ADD that changes things: rename for staging, delegate, routes, result.
fn attach(
    ctx: &Context,
    kernel: &dyn Kernel,
    delegate: &Delegate,
    started: Started<'_>,
    link: &Link,
    state: &AttachmentState,
) -> Result<CniResult> {
    let conf = &ctx.conf;
    let host = &state.host;
    let device_name = state.staging_name.as_deref().unwrap_or(&host.name);
    if let Some(staging) = &state.staging_name {
        let host_links = kernel.host()?;
        host_links.set_down(link.index)?;
        host_links.set_link(
            link.index,
            &LinkChange {
                name: Some(staging.clone()),
                ..LinkChange::default()
            },
        )?;
    }
    let config = delegate.config(
        conf.cni_version,
        &conf.name,
        device_name,
        conf.ipam.as_ref(),
        &pod_addresses::for_pod(conf, host)?,
    );
    log_debug!(
        "delegate {} ADD config: {config}",
        delegate.binary().display()
    );
    let out = started.finish(&config)?;
    fault::point("after-delegate");
    let mut result = CniResult::parse(&out).map_err(|e| Error::Delegate {
        code: None,
        msg: format!(
            "{} printed an unusable result: {e}",
            delegate.binary().display()
        ),
        details: String::new(),
    })?;
    let pod_ns = Path::new(&ctx.env.netns);
    attach_rdma(kernel, &state.rdma_devices, pod_ns)?;
    // Captured gateways are only reachable where the captured addresses went.
    if pod_addresses::captured_addresses_follow(conf, host) && !host.routes.is_empty() {
        kernel.in_netns(pod_ns, |pod| {
            add_routes_in_pod(pod, &state.pod_ifname, host)
        })?;
        for r in &host.routes {
            result.add_route(r.dst_cidr(), r.gateway.map(|g| g.to_string()));
        }
    }
    Ok(result)
}

/// In exclusive RDMA netns mode the RDMA devices of the NIC follow it into the pod.
fn attach_rdma(kernel: &dyn Kernel, devices: &[String], pod_ns: &Path) -> Result<()> {
    if devices.is_empty() {
        return Ok(());
    }
    let system = kernel.rdma();
    match rdma::plan(system.netns_mode()?, devices) {
        rdma::Plan::Nothing(why) => {
            log_debug!("RDMA: nothing to move ({why})");
            Ok(())
        }
        rdma::Plan::Move(devices) => {
            log_info!("RDMA: moving {} into the pod", devices.join(", "));
            rdma::move_into(system, &devices, pod_ns)
        }
    }
}

fn add_routes_in_pod(pod: &dyn Links, pod_ifname: &str, host: &HostInterface) -> Result<()> {
    let link = pod.link_by_name(pod_ifname)?.ok_or_else(|| {
        Error::device_not_found(format!(
            "{pod_ifname} not found in the pod after host-device ADD"
        ))
    })?;
    let problems = apply_routes(pod, link.index, &host.routes);
    if problems.is_empty() {
        Ok(())
    } else {
        Err(Error::Netlink {
            context: format!(
                "re-adding captured routes in the pod: {}",
                problems.join("; ")
            ),
            errno: None,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kernel::fake::{FakeKernel, HOST};
    use crate::testing::{address, route, Sandbox};
    use serde_json::json;

    const POD: &str = "/pod";
    const MAC: &str = "02:00:00:00:00:01";
    /// What the scripted host-device prints on a successful ADD.
    const RESULT: &str = r#"echo '{"cniVersion":"1.0.0","interfaces":[{"name":"enp1s0"}],"ips":[{"address":"192.0.2.10/24"}]}'"#;

    /// A host with NIC `enp1s0` (192.0.2.10/24, and `routes`) and an empty pod netns.
    fn world(sb: &Sandbox, routes: &[crate::netlink::Route]) -> (FakeKernel, i32) {
        let kernel = FakeKernel::new(sb.path());
        kernel.add_netns(POD);
        let index = kernel.add_link(HOST, "enp1s0", MAC, &[address("192.0.2.10/24")], routes);
        (kernel, index)
    }

    fn store(sb: &Sandbox) -> StateStore {
        StateStore::open(&sb.state_dir()).unwrap()
    }

    fn commands(sb: &Sandbox) -> Vec<String> {
        sb.calls().into_iter().map(|(c, _)| c).collect()
    }

    fn assert_nothing_left(sb: &Sandbox) {
        let store = store(sb);
        assert_eq!(store.attachments().unwrap(), vec![]);
        assert_eq!(store.claim_of(&state::name_key("enp1s0")).unwrap(), None);
    }

    #[test]
    fn a_failed_delegate_is_rolled_back_after_the_state_was_made_durable() {
        let sb = Sandbox::new();
        let seen = sb.path().join("state-files-at-add");
        sb.delegate(
            &format!(
                "ls {} >{}; echo '{{\"code\":999,\"msg\":\"boom\"}}'; exit 1",
                sb.state_dir().display(),
                seen.display()
            ),
            "exit 0",
        );
        let (kernel, index) = world(&sb, &[route("10.9.0.0/16", "192.0.2.1")]);
        let ctx = sb.context(POD, json!({"device": "enp1s0"}));

        let err = add(&ctx, &kernel).unwrap_err();

        assert_eq!(err.code() as u32, 103, "{err}");
        assert!(err.to_string().contains("boom"), "{err}");
        let at_add = std::fs::read_to_string(&seen).unwrap();
        assert!(
            at_add.contains("c1-net1.json"),
            "state not on disk when the delegate acted: {at_add}"
        );
        assert_eq!(
            commands(&sb),
            ["ADD", "DEL"],
            "rollback asks host-device for DEL"
        );
        assert_nothing_left(&sb);
        let nic = kernel
            .link(HOST, "enp1s0")
            .expect("the NIC stays on the host");
        assert_eq!(nic.link.index, index);
        assert!(nic.link.up);
        assert_eq!(nic.addresses, [address("192.0.2.10/24")]);
    }

    #[test]
    fn a_device_that_never_reaches_the_pod_is_rolled_back_too() {
        let sb = Sandbox::new();
        sb.delegate(RESULT, "exit 0");
        // Captured routes must be re-added in the pod, where the NIC is not.
        let (kernel, _) = world(&sb, &[route("10.9.0.0/16", "192.0.2.1")]);
        let ctx = sb.context(POD, json!({"device": "enp1s0"}));

        let err = add(&ctx, &kernel).unwrap_err();

        assert_eq!(err.code() as u32, 100, "{err}");
        assert_eq!(commands(&sb), ["ADD", "DEL"]);
        assert_nothing_left(&sb);
    }

    #[test]
    fn a_good_add_hands_host_device_the_captured_addresses_and_keeps_the_state() {
        let sb = Sandbox::new();
        sb.delegate(RESULT, "exit 0");
        let (kernel, _) = world(&sb, &[]);
        let ctx = sb.context(POD, json!({"device": "enp1s0"}));

        let result = add(&ctx, &kernel).unwrap();

        assert_eq!(result["interfaces"][0]["name"], "enp1s0");
        let calls = sb.calls();
        assert_eq!(calls.len(), 1);
        assert_eq!(calls[0].1["device"], "enp1s0");
        assert_eq!(
            calls[0].1["ipam"],
            json!({"type": "static", "addresses": [{"address": "192.0.2.10/24"}]})
        );
        let saved = store(&sb).load("c1", "net1").unwrap().expect("state kept");
        assert_eq!(saved.host.addresses, [address("192.0.2.10/24")]);
        assert_eq!(saved.pod_ifname, "enp1s0");
        assert!(
            kernel.journal().is_empty(),
            "ADD itself changed nothing on the host"
        );
    }

    #[test]
    fn a_name_taken_in_the_pod_is_staged_under_a_temporary_name_before_host_device_runs() {
        let sb = Sandbox::new();
        sb.delegate(RESULT, "exit 0");
        let (kernel, index) = world(&sb, &[]);
        kernel.add_link(POD, "enp1s0", "02:00:00:00:00:99", &[], &[]);
        let ctx = sb.context(POD, json!({"device": "enp1s0"}));

        add(&ctx, &kernel).unwrap();

        let staging = format!("ahd{index}");
        assert_eq!(
            kernel.journal(),
            [
                format!("host: set #{index} down"),
                format!("host: set #{index} name={staging}")
            ]
        );
        assert_eq!(sb.calls()[0].1["device"], staging.as_str());
        let saved = store(&sb).load("c1", "net1").unwrap().unwrap();
        assert_eq!(saved.staging_name.as_deref(), Some(staging.as_str()));
        assert_eq!(
            saved.pod_ifname, "net1",
            "the pod side falls back to CNI_IFNAME"
        );
    }

    #[test]
    fn a_claimed_device_is_refused_before_anything_runs() {
        let sb = Sandbox::new();
        sb.delegate(RESULT, "exit 0");
        let (kernel, _) = world(&sb, &[]);
        add(&sb.context(POD, json!({"device": "enp1s0"})), &kernel).unwrap();
        let mut second = sb.context(POD, json!({"device": "enp1s0"}));
        second.env.container_id = "c2".into();

        let err = add(&second, &kernel).unwrap_err();

        assert_eq!(err.code() as u32, 101, "{err}");
        assert!(err.to_string().contains("claimed by container c1"), "{err}");
        assert_eq!(
            commands(&sb),
            ["ADD"],
            "host-device never ran for the second pod"
        );
    }

    #[test]
    fn the_hosts_default_route_device_stays_unless_allowed() {
        let sb = Sandbox::new();
        sb.delegate(RESULT, "exit 0");
        let (kernel, _) = world(&sb, &[route("0.0.0.0/0", "192.0.2.1")]);

        let err = add(&sb.context(POD, json!({"device": "enp1s0"})), &kernel).unwrap_err();

        assert_eq!(err.code() as u32, 104, "{err}");
        assert!(sb.calls().is_empty());
        assert_nothing_left(&sb);
        assert!(kernel.journal().is_empty());
    }

    #[test]
    fn a_nic_kubelet_gave_to_another_pod_is_refused_before_anything_is_created() {
        let sb = Sandbox::new();
        sb.delegate(RESULT, "exit 0");
        let (kernel, _) = world(&sb, &[]);
        std::fs::write(
            sb.kubelet_checkpoint(),
            json!({"Data": {
                "PodDeviceEntries": [{"PodUID": "uid-a", "ContainerName": "c",
                    "ResourceName": "amd.com/nic", "DeviceIDs": {"0": ["0000:5e:00.1"]}}],
                "RegisteredDevices": {"amd.com/nic": ["0000:5e:00.1"]}}})
            .to_string(),
        )
        .unwrap();
        let mut ctx = sb.context(POD, json!({"deviceID": "0000:5e:00.1"}));
        ctx.env.args = "K8S_POD_UID=uid-b".into();

        let err = add(&ctx, &kernel).unwrap_err();

        assert_eq!(err.code() as u32, 106, "{err}");
        assert!(
            !sb.state_dir().exists(),
            "not even the state dir was created"
        );
        assert!(sb.calls().is_empty() && kernel.journal().is_empty());
        // A name selector cannot be tied to an allocation either.
        let by_name = sb.context(POD, json!({"device": "enp1s0"}));
        assert_eq!(add(&by_name, &kernel).unwrap_err().code() as u32, 106);
    }

    #[test]
    fn a_bridge_port_stays_unless_the_node_allows_it_and_then_comes_back_a_port() {
        let sb = Sandbox::new();
        sb.delegate(RESULT, "exit 0");
        let (kernel, index) = world(&sb, &[]);
        let bridge = kernel.add_link(HOST, "br0", "02:00:00:00:00:b0", &[], &[]);
        let enslave = LinkChange {
            master: Some(bridge),
            ..LinkChange::default()
        };
        kernel.host().unwrap().set_link(index, &enslave).unwrap();
        let sysfs_nic = sb.path().join("class/net/enp1s0");
        std::fs::create_dir_all(&sysfs_nic).unwrap();
        std::os::unix::fs::symlink("../br0", sysfs_nic.join("upper_br0")).unwrap();
        let before = kernel.journal().len();

        let err = add(&sb.context(POD, json!({"device": "enp1s0"})), &kernel).unwrap_err();
        assert_eq!(err.code() as u32, 107, "{err}");
        assert!(err.to_string().contains("enp1s0 is a port of br0"), "{err}");
        assert!(sb.calls().is_empty() && kernel.journal().len() == before);

        let mut allowed = sb.context(POD, json!({"device": "enp1s0"}));
        allowed.conf.allow_enslaved_device = true;
        add(&allowed, &kernel).unwrap();
        let saved = store(&sb).load("c1", "net1").unwrap().unwrap();
        assert_eq!(saved.host.master.as_deref(), Some("br0"));

        // The NIC comes back released (as a move out of the host leaves it): DEL enslaves it.
        let release = LinkChange {
            master: Some(0),
            ..LinkChange::default()
        };
        kernel.host().unwrap().set_link(index, &release).unwrap();
        let delegate = Delegate::find_for_give_back("host-device", &allowed.env.path);
        give_back(&kernel, &allowed, delegate.as_ref(), &store(&sb), &saved).unwrap();
        assert_eq!(
            kernel.link(HOST, "enp1s0").unwrap().link.master,
            Some(bridge)
        );
        let journal = kernel.journal();
        let enslaved = journal
            .iter()
            .position(|l| l.ends_with(&format!("master=#{bridge}")));
        let up = journal
            .iter()
            .rposition(|l| l.ends_with(&format!("set #{index} up")));
        assert!(
            enslaved < up && enslaved.is_some(),
            "enslaved before it goes up: {journal:?}"
        );
    }

    #[test]
    fn vlan_children_keep_their_nic_on_the_host() {
        let sb = Sandbox::new();
        sb.delegate(RESULT, "exit 0");
        let (kernel, _) = world(&sb, &[]);
        let sysfs_nic = sb.path().join("class/net/enp1s0");
        std::fs::create_dir_all(&sysfs_nic).unwrap();
        std::os::unix::fs::symlink("../enp1s0.100", sysfs_nic.join("upper_enp1s0.100")).unwrap();

        let err = add(&sb.context(POD, json!({"device": "enp1s0"})), &kernel).unwrap_err();

        assert_eq!(err.code() as u32, 107, "{err}");
        assert!(err.to_string().contains("carries enp1s0.100"), "{err}");
    }
}
