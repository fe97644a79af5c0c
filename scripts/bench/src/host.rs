//! The benchmark's NIC as seen from the host it is in (through iproute2, in whatever
//! host this process has entered): checking it is as set up, putting it back after
//! the bare host-device's DEL, and timing the route dumps of the scale diagnostic.

use std::io::Write;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::{Context, Result};

/// The NIC every world has: UP, with exactly these global addresses.
#[derive(Clone, Debug)]
pub struct Nic {
    pub name: String,
    /// `address/prefix`, IPv4 or IPv6.
    pub addrs: Vec<String>,
}

impl Nic {
    /// Fails unless the NIC is in the current host, UP, with exactly its addresses.
    pub fn check(&self) -> Result<()> {
        let json = ip(&["-j", "addr", "show", "dev", &self.name], None)?;
        self.check_state(&json)
    }

    /// Brings the NIC back UP with its addresses (host-device's DEL leaves it DOWN
    /// without addresses).
    pub fn restore(&self) -> Result<()> {
        ip(&["-batch", "-"], Some(&self.restore_batch())).map(drop)
    }

    fn restore_batch(&self) -> String {
        let mut batch = format!("link set {} up\n", self.name);
        for a in &self.addrs {
            let nodad = if a.contains(':') { " nodad" } else { "" };
            batch += &format!("address add {a} dev {}{nodad}\n", self.name);
        }
        batch
    }

    /// Checks `ip -j addr show dev NIC` output.
    fn check_state(&self, json: &str) -> Result<()> {
        let v: serde_json::Value =
            serde_json::from_str(json).context(|| format!("ip -j addr show: {json}"))?;
        let link = &v[0];
        let up = link["flags"]
            .as_array()
            .is_some_and(|f| f.iter().any(|x| x == "UP"));
        let mut have: Vec<String> = link["addr_info"]
            .as_array()
            .into_iter()
            .flatten()
            .filter(|a| a["scope"] == "global")
            .map(|a| format!("{}/{}", a["local"].as_str().unwrap_or("?"), a["prefixlen"]))
            .collect();
        let mut want = self.addrs.clone();
        have.sort();
        want.sort();
        if up && have == want {
            Ok(())
        } else {
            Err(format!(
                "{} is {} with global addresses {have:?}, expected UP with {want:?}",
                self.name,
                if up { "UP" } else { "not UP" }
            ))
        }
    }
}

/// Runs iproute2's `ip` with `args` (and `stdin`, if any): its stdout.
pub fn ip(args: &[&str], stdin: Option<&str>) -> Result<String> {
    let what = || format!("ip {}", args.join(" "));
    let mut child = Command::new("ip")
        .args(args)
        .stdin(if stdin.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .context(what)?;
    if let (Some(input), Some(mut pipe)) = (stdin, child.stdin.take()) {
        pipe.write_all(input.as_bytes()).context(what)?;
    }
    let out = child.wait_with_output().context(what)?;
    if !out.status.success() {
        return Err(format!(
            "{}: {}: {}",
            what(),
            out.status,
            String::from_utf8_lossy(&out.stderr).trim_end()
        ));
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// The scale diagnostic's two route dumps (main table, output interface `nic`; IPv4,
/// then IPv6), `reps` times each in one `ip -batch` per family so that ip's start-up
/// is amortised: the time per IPv4 + IPv6 pair, after one untimed warm-up pass.
pub fn route_dumps(nic: &str, reps: u32, batch_file: &Path) -> Result<Duration> {
    let batch = format!("route show dev {nic} table main\n").repeat(reps as usize);
    std::fs::write(batch_file, batch).context(|| batch_file.display().to_string())?;
    let file = batch_file
        .to_str()
        .context(|| "batch file path is not UTF-8".to_string())?;
    ip(&["-4", "-batch", file], None)?;
    let start = Instant::now();
    ip(&["-4", "-batch", file], None)?;
    ip(&["-6", "-batch", file], None)?;
    Ok(start.elapsed() / reps.max(1))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn nic() -> Nic {
        Nic {
            name: "nic0".into(),
            addrs: vec!["10.66.0.2/24".into(), "2001:db8:66::2/64".into()],
        }
    }

    const UP_WITH_BOTH: &str = r#"[{"ifindex":3,"ifname":"nic0","flags":["BROADCAST","MULTICAST","UP","LOWER_UP"],
        "addr_info":[{"family":"inet","local":"10.66.0.2","prefixlen":24,"scope":"global"},
                     {"family":"inet6","local":"2001:db8:66::2","prefixlen":64,"scope":"global"},
                     {"family":"inet6","local":"fe80::1","prefixlen":64,"scope":"link"}]}]"#;

    #[test]
    fn up_with_exactly_its_addresses_is_ok() {
        assert!(nic().check_state(UP_WITH_BOTH).is_ok());
    }

    #[test]
    fn down_missing_or_extra_addresses_fail() {
        let down = UP_WITH_BOTH.replace("\"UP\",", "");
        assert!(nic().check_state(&down).unwrap_err().contains("not UP"));
        let missing = UP_WITH_BOTH.replace("10.66.0.2", "10.66.0.9");
        assert!(nic().check_state(&missing).is_err());
        assert!(nic().check_state("[]").is_err());
        assert!(nic().check_state("not json").is_err());
    }

    #[test]
    fn restore_batch_adds_ipv6_without_dad() {
        assert_eq!(
            nic().restore_batch(),
            "link set nic0 up\naddress add 10.66.0.2/24 dev nic0\naddress add 2001:db8:66::2/64 dev nic0 nodad\n"
        );
    }
}
