//! A minimal CRI v1 client, the part of kubelet that `tests/820-containerd-cri.bats`
//! needs: it drives containerd's CRI plugin over its unix socket the way kubelet does
//! for a pod sandbox (RunPodSandbox, PodSandboxStatus, StopPodSandbox,
//! RemovePodSandbox), so the plugin under test is run by containerd exactly as on a
//! Kubernetes node.
//!
//! ```text
//! ahd-cri-client [--socket PATH] [--timeout SECS] COMMAND [ARGS]
//!   version                                   runtime name, version and CRI API version
//!   status                                    one line per runtime condition: TYPE=true|false reason: message
//!   run-pod-sandbox NAME NAMESPACE UID [--cgroup-parent DIR] [--attempt N]
//!                                             prints the sandbox id
//!   pod-sandbox-status ID                     prints one JSON object: id, state, ip,
//!                                             additionalIps, and from the verbose info
//!                                             pid, netns and cniResult when present
//!   stop-pod-sandbox ID
//!   remove-pod-sandbox ID
//!   list-pod-sandboxes                        one line per sandbox: ID STATE NAMESPACE/NAME
//! ```
//!
//! The socket is `--socket`, else `$CONTAINER_RUNTIME_ENDPOINT` (a `unix://` prefix is
//! allowed), else `/run/containerd/containerd.sock`. Every request (and the connection)
//! is bounded by `--timeout` (default 60 s). Errors go to stderr, with exit status 1
//! (2 for a usage error).

use std::collections::HashMap;
use std::process::ExitCode;
use std::time::Duration;

use hyper_util::rt::TokioIo;
use k8s_cri::v1::runtime_service_client::RuntimeServiceClient;
use k8s_cri::v1::{
    LinuxPodSandboxConfig, ListPodSandboxRequest, PodSandboxConfig, PodSandboxMetadata,
    PodSandboxState, PodSandboxStatusRequest, RemovePodSandboxRequest, RunPodSandboxRequest,
    StatusRequest, StopPodSandboxRequest, VersionRequest,
};
use serde_json::{json, Value};
use tokio::net::UnixStream;
use tonic::transport::{Channel, Endpoint, Uri};
use tower::service_fn;

const USAGE: &str = "usage: ahd-cri-client [--socket PATH] [--timeout SECS] COMMAND [ARGS]
commands:
  version
  status
  run-pod-sandbox NAME NAMESPACE UID [--cgroup-parent DIR] [--attempt N]
  pod-sandbox-status ID
  stop-pod-sandbox ID
  remove-pod-sandbox ID
  list-pod-sandboxes";

type Error = Box<dyn std::error::Error + Send + Sync>;

/// What the command line asks for.
#[derive(Debug, PartialEq)]
enum Command {
    Version,
    Status,
    RunPodSandbox {
        name: String,
        namespace: String,
        uid: String,
        cgroup_parent: String,
        attempt: u32,
    },
    PodSandboxStatus(String),
    StopPodSandbox(String),
    RemovePodSandbox(String),
    ListPodSandboxes,
}

#[derive(Debug, PartialEq)]
struct Args {
    socket: String,
    timeout: Duration,
    command: Command,
}

fn default_socket() -> String {
    match std::env::var("CONTAINER_RUNTIME_ENDPOINT") {
        Ok(v) if !v.is_empty() => v.strip_prefix("unix://").unwrap_or(&v).to_string(),
        _ => "/run/containerd/containerd.sock".to_string(),
    }
}

fn parse_args(argv: &[String]) -> Result<Args, String> {
    let mut socket = None;
    let mut timeout = Duration::from_secs(60);
    let mut rest = Vec::new();
    let mut cgroup_parent = String::new();
    let mut attempt = 0u32;
    let mut it = argv.iter();
    while let Some(a) = it.next() {
        let mut value = |flag: &str| {
            it.next()
                .cloned()
                .ok_or_else(|| format!("{flag} needs a value"))
        };
        match a.as_str() {
            "--socket" => socket = Some(value("--socket")?),
            "--timeout" => {
                let v = value("--timeout")?;
                let secs: u64 = v
                    .parse()
                    .map_err(|_| format!("--timeout: not a number of seconds: {v}"))?;
                timeout = Duration::from_secs(secs.max(1));
            }
            "--cgroup-parent" => cgroup_parent = value("--cgroup-parent")?,
            "--attempt" => {
                let v = value("--attempt")?;
                attempt = v
                    .parse()
                    .map_err(|_| format!("--attempt: not a number: {v}"))?;
            }
            "-h" | "--help" => return Err(String::new()),
            s if s.starts_with("--") => return Err(format!("unknown option {s}")),
            _ => rest.push(a.clone()),
        }
    }
    let (cmd, args) = rest.split_first().ok_or("no command given")?;
    let want = |n: usize| {
        if args.len() == n {
            Ok(())
        } else {
            Err(format!("{cmd} takes {n} argument(s), got {}", args.len()))
        }
    };
    let command = match cmd.as_str() {
        "version" => want(0).map(|_| Command::Version)?,
        "status" => want(0).map(|_| Command::Status)?,
        "list-pod-sandboxes" => want(0).map(|_| Command::ListPodSandboxes)?,
        "run-pod-sandbox" => {
            want(3)?;
            Command::RunPodSandbox {
                name: args[0].clone(),
                namespace: args[1].clone(),
                uid: args[2].clone(),
                cgroup_parent,
                attempt,
            }
        }
        "pod-sandbox-status" => want(1).map(|_| Command::PodSandboxStatus(args[0].clone()))?,
        "stop-pod-sandbox" => want(1).map(|_| Command::StopPodSandbox(args[0].clone()))?,
        "remove-pod-sandbox" => want(1).map(|_| Command::RemovePodSandbox(args[0].clone()))?,
        other => return Err(format!("unknown command {other}")),
    };
    Ok(Args {
        socket: socket.unwrap_or_else(default_socket),
        timeout,
        command,
    })
}

async fn connect(socket: &str, timeout: Duration) -> Result<Channel, Error> {
    let path = socket.to_string();
    // The URI is a placeholder: the connector ignores it and dials the unix socket.
    let channel = Endpoint::try_from("http://[::1]:1")?
        .connect_timeout(timeout)
        .timeout(timeout)
        .connect_with_connector(service_fn(move |_: Uri| {
            let path = path.clone();
            async move { Ok::<_, std::io::Error>(TokioIo::new(UnixStream::connect(path).await?)) }
        }))
        .await
        .map_err(|e| format!("cannot connect to {socket}: {e} ({e:?})"))?;
    Ok(channel)
}

fn state_name(state: i32) -> String {
    PodSandboxState::try_from(state)
        .map(|s| s.as_str_name().to_string())
        .unwrap_or_else(|_| format!("UNKNOWN({state})"))
}

/// The parts of containerd's verbose sandbox info the tests look at: the sandbox's
/// pid, its netns path (from the OCI spec's network namespace) and the CNI result
/// containerd kept.
fn info_fields(info: &HashMap<String, String>) -> serde_json::Map<String, Value> {
    let mut out = serde_json::Map::new();
    let Some(raw) = info.get("info") else {
        return out;
    };
    let Ok(v) = serde_json::from_str::<Value>(raw) else {
        return out;
    };
    if let Some(pid) = v.get("pid") {
        out.insert("pid".into(), pid.clone());
    }
    let netns = v
        .pointer("/runtimeSpec/linux/namespaces")
        .and_then(Value::as_array)
        .and_then(|nss| {
            nss.iter()
                .find(|ns| ns.get("type").and_then(Value::as_str) == Some("network"))
        })
        .and_then(|ns| ns.get("path"))
        .cloned();
    if let Some(netns) = netns {
        out.insert("netns".into(), netns);
    }
    if let Some(cni) = v.get("cniResult") {
        out.insert("cniResult".into(), cni.clone());
    }
    out
}

async fn run(args: Args) -> Result<(), Error> {
    let channel = connect(&args.socket, args.timeout).await?;
    let mut client = RuntimeServiceClient::new(channel);
    match args.command {
        Command::Version => {
            let v = client
                .version(VersionRequest {
                    version: "v1".into(),
                })
                .await?
                .into_inner();
            println!(
                "{} {} {}",
                v.runtime_name, v.runtime_version, v.runtime_api_version
            );
        }
        Command::Status => {
            let s = client
                .status(StatusRequest { verbose: false })
                .await?
                .into_inner();
            for c in s.status.map(|s| s.conditions).unwrap_or_default() {
                println!("{}={} {}: {}", c.r#type, c.status, c.reason, c.message);
            }
        }
        Command::RunPodSandbox {
            name,
            namespace,
            uid,
            cgroup_parent,
            attempt,
        } => {
            let config = PodSandboxConfig {
                metadata: Some(PodSandboxMetadata {
                    name: name.clone(),
                    uid,
                    namespace,
                    attempt,
                }),
                hostname: name,
                linux: Some(LinuxPodSandboxConfig {
                    cgroup_parent,
                    ..Default::default()
                }),
                ..Default::default()
            };
            let r = client
                .run_pod_sandbox(RunPodSandboxRequest {
                    config: Some(config),
                    runtime_handler: String::new(),
                })
                .await?
                .into_inner();
            println!("{}", r.pod_sandbox_id);
        }
        Command::PodSandboxStatus(id) => {
            let r = client
                .pod_sandbox_status(PodSandboxStatusRequest {
                    pod_sandbox_id: id,
                    verbose: true,
                })
                .await?
                .into_inner();
            let s = r
                .status
                .ok_or("PodSandboxStatus: no status in the answer")?;
            let net = s.network.unwrap_or_default();
            let mut out = serde_json::Map::new();
            out.insert("id".into(), json!(s.id));
            out.insert("state".into(), json!(state_name(s.state)));
            out.insert("ip".into(), json!(net.ip));
            out.insert(
                "additionalIps".into(),
                json!(net
                    .additional_ips
                    .iter()
                    .map(|p| p.ip.as_str())
                    .collect::<Vec<_>>()),
            );
            out.extend(info_fields(&r.info));
            println!("{}", Value::Object(out));
        }
        Command::StopPodSandbox(id) => {
            client
                .stop_pod_sandbox(StopPodSandboxRequest { pod_sandbox_id: id })
                .await?;
        }
        Command::RemovePodSandbox(id) => {
            client
                .remove_pod_sandbox(RemovePodSandboxRequest { pod_sandbox_id: id })
                .await?;
        }
        Command::ListPodSandboxes => {
            let r = client
                .list_pod_sandbox(ListPodSandboxRequest { filter: None })
                .await?
                .into_inner();
            for p in r.items {
                let m = p.metadata.unwrap_or_default();
                println!(
                    "{} {} {}/{}",
                    p.id,
                    state_name(p.state),
                    m.namespace,
                    m.name
                );
            }
        }
    }
    Ok(())
}

fn main() -> ExitCode {
    let argv: Vec<String> = std::env::args().skip(1).collect();
    let args = match parse_args(&argv) {
        Ok(a) => a,
        Err(e) if e.is_empty() => {
            println!("{USAGE}");
            return ExitCode::SUCCESS;
        }
        Err(e) => {
            eprintln!("ahd-cri-client: {e}\n{USAGE}");
            return ExitCode::from(2);
        }
    };
    let rt = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("ahd-cri-client: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let timeout = args.timeout;
    match rt.block_on(async { tokio::time::timeout(timeout * 2, run(args)).await }) {
        Ok(Ok(())) => ExitCode::SUCCESS,
        Ok(Err(e)) => {
            // A gRPC status: its code and the runtime's own message.
            match e.downcast_ref::<tonic::Status>() {
                Some(s) => eprintln!("ahd-cri-client: {:?}: {}", s.code(), s.message()),
                None => eprintln!("ahd-cri-client: {e}"),
            }
            ExitCode::FAILURE
        }
        Err(_) => {
            eprintln!(
                "ahd-cri-client: no answer within {}s",
                timeout.as_secs() * 2
            );
            ExitCode::FAILURE
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn argv(s: &str) -> Vec<String> {
        s.split_whitespace().map(String::from).collect()
    }

    #[test]
    fn parses_run_pod_sandbox_with_options_anywhere() {
        let a = parse_args(&argv(
            "--socket /x.sock run-pod-sandbox pod ns uid-1 --cgroup-parent /cg --attempt 2",
        ))
        .unwrap();
        assert_eq!(a.socket, "/x.sock");
        assert_eq!(
            a.command,
            Command::RunPodSandbox {
                name: "pod".into(),
                namespace: "ns".into(),
                uid: "uid-1".into(),
                cgroup_parent: "/cg".into(),
                attempt: 2,
            }
        );
    }

    #[test]
    fn rejects_wrong_arity_and_unknown_commands() {
        assert!(parse_args(&argv("--socket /x stop-pod-sandbox")).is_err());
        assert!(parse_args(&argv("--socket /x frobnicate")).is_err());
        assert!(parse_args(&argv("--socket /x --bogus version")).is_err());
        assert!(parse_args(&argv("--socket")).is_err());
        assert!(parse_args(&[]).is_err());
    }

    #[test]
    fn picks_pid_netns_and_cni_result_from_the_verbose_info() {
        let mut info = HashMap::new();
        info.insert(
            "info".to_string(),
            r#"{"pid": 42, "runtimeSpec": {"linux": {"namespaces": [
                {"type": "pid"}, {"type": "network", "path": "/var/run/netns/cni-1"}]}},
                "cniResult": {"Interfaces": {"eth0": {}}}}"#
                .to_string(),
        );
        let f = info_fields(&info);
        assert_eq!(f["pid"], json!(42));
        assert_eq!(f["netns"], json!("/var/run/netns/cni-1"));
        assert_eq!(f["cniResult"], json!({"Interfaces": {"eth0": {}}}));
        assert!(info_fields(&HashMap::new()).is_empty());
    }
}
