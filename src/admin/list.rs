//! `amd-host-device list`: every tracked attachment and where its NIC is now.

use serde::Serialize;

use crate::host::kernel::LiveKernel;
use crate::log::{self};

use super::tracked::{locate, open_store, tracked, Location};
use super::Options;

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Row<'a> {
    /// `amd-host-device`, or `vendor` for the vendor plugin's attachments.
    owner: &'static str,
    container_id: &'a str,
    ifname: &'a str,
    pod: String,
    network: &'a str,
    pci_address: Option<String>,
    host_name: &'a str,
    addresses: Vec<String>,
    location: Location,
}

pub(super) fn list(o: &Options) -> anyhow::Result<()> {
    let store = open_store(&o.policy()?.state_dir)?;
    let states = tracked(&store)?;
    let kernel = LiveKernel::new();
    let rows: Vec<Row> = states
        .iter()
        .map(|t| (&t.state, t.vendor))
        .map(|(s, vendor)| Row {
            owner: if vendor { "vendor" } else { "amd-host-device" },
            container_id: &s.container_id,
            ifname: &s.ifname,
            pod: match (&s.pod.namespace, &s.pod.name) {
                (Some(ns), Some(n)) => format!("{ns}/{n}"),
                (None, Some(n)) => n.clone(),
                _ => "-".into(),
            },
            network: &s.network,
            pci_address: s.pci_address.as_ref().map(ToString::to_string),
            host_name: &s.host.name,
            addresses: s.host.addresses.iter().map(|a| a.cidr()).collect(),
            location: locate(&kernel, s),
        })
        .collect();
    if o.json {
        println!(
            "{}",
            serde_json::to_string_pretty(&rows).expect("rows serialise")
        );
        return Ok(());
    }
    let table: Vec<[String; 8]> = rows
        .iter()
        .map(|r| {
            [
                match r.owner {
                    "vendor" => "(vendor)".to_owned(),
                    _ => r.container_id.chars().take(12).collect(),
                },
                r.ifname.to_owned(),
                r.pod.clone(),
                r.network.to_owned(),
                r.pci_address.clone().unwrap_or_else(|| "-".into()),
                r.host_name.to_owned(),
                if r.addresses.is_empty() {
                    "-".into()
                } else {
                    r.addresses.join(",")
                },
                r.location.to_string(),
            ]
        })
        .collect();
    let header = [
        "CONTAINER",
        "IFNAME",
        "POD",
        "NETWORK",
        "PCI",
        "HOST NAME",
        "ADDRESSES",
        "NOW",
    ];
    print_table(&header, &table);
    Ok(())
}

/// Prints a table. Cells can hold what a tenant wrote (a pod name from `CNI_ARGS`), so their
/// control characters are escaped: a row is always one line.
fn print_table(header: &[&str; 8], rows: &[[String; 8]]) {
    let rows: Vec<[String; 8]> = rows
        .iter()
        .map(|r| r.clone().map(|cell| log::escape_controls(&cell)))
        .collect();
    let mut widths: Vec<usize> = header.iter().map(|h| h.len()).collect();
    for r in &rows {
        for (w, c) in widths.iter_mut().zip(r) {
            *w = (*w).max(c.chars().count());
        }
    }
    let line = |cells: Vec<&str>| {
        let padded: Vec<String> = cells
            .iter()
            .zip(&widths)
            .map(|(c, w)| format!("{c:<w$}"))
            .collect();
        println!("{}", padded.join("  ").trim_end());
    };
    line(header.to_vec());
    for r in &rows {
        line(r.iter().map(String::as_str).collect());
    }
}
