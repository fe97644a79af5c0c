//! The command line bench.sh passes.

use std::path::PathBuf;

use crate::pin::PinRequest;
use crate::Result;

pub const USAGE: &str = "usage: amd-host-device-bench --plugin BIN --cni-dir DIR --stub-dir DIR \
--work DIR --out DIR --repo DIR --nic NAME --addr CIDR... --world NAME:HOST-PID:POD-PID... \
[--cycles N] [--warmup N] [--per-round K] [--pin auto|off|CPU] \
[--baseline BIN [--rounds R] [--label-a TEXT] [--label-b TEXT]]";

/// Cycles per round when the command line does not say: in the full report (N = 50 gives
/// five rounds) and in a comparison (a multiple of 4, so that every round holds each
/// of the ABBA orders equally often).
pub const FULL_PER_ROUND: usize = 10;
pub const COMPARE_PER_ROUND: usize = 24;

/// One world as bench.sh built it: the pids of its namespace holders.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WorldSpec {
    pub name: String,
    pub host_pid: u32,
    pub pod_pid: u32,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Args {
    /// amd-host-device.
    pub plugin: PathBuf,
    /// The reference plugins (host-device, static).
    pub cni_dir: PathBuf,
    /// The directory holding the stub `host-device`.
    pub stub_dir: PathBuf,
    /// The run's scratch directory: `<work>/<world>/config.json`, `<work>/<world>/state`.
    pub work: PathBuf,
    /// Where results.md and raw/ go (target/bench).
    pub out: PathBuf,
    pub repo: PathBuf,
    pub nic: String,
    pub addrs: Vec<String>,
    pub worlds: Vec<WorldSpec>,
    pub cycles: usize,
    pub warmup: usize,
    /// Consecutive cycles per round of the interval estimates.
    pub per_round: Option<usize>,
    pub pin: PinRequest,
    /// Compare `plugin` (B, the candidate) with this binary (A) instead of the full report.
    pub baseline: Option<PathBuf>,
    /// Rounds of a comparison.
    pub rounds: usize,
    /// How the comparison's report names A and B.
    pub label_a: String,
    pub label_b: String,
}

impl Args {
    pub fn parse(args: impl IntoIterator<Item = String>) -> Result<Args> {
        let mut a = Args {
            plugin: PathBuf::new(),
            cni_dir: PathBuf::new(),
            stub_dir: PathBuf::new(),
            work: PathBuf::new(),
            out: PathBuf::new(),
            repo: PathBuf::new(),
            nic: String::new(),
            addrs: Vec::new(),
            worlds: Vec::new(),
            cycles: 50,
            warmup: 3,
            per_round: None,
            pin: PinRequest::Auto,
            baseline: None,
            rounds: 40,
            label_a: "baseline".into(),
            label_b: "candidate".into(),
        };
        let mut it = args.into_iter();
        while let Some(flag) = it.next() {
            let value = it
                .next()
                .ok_or_else(|| format!("{flag} needs a value ({USAGE})"))?;
            a.set(&flag, value)?;
        }
        a.check()?;
        Ok(a)
    }

    fn set(&mut self, flag: &str, value: String) -> Result<()> {
        match flag {
            "--plugin" => self.plugin = value.into(),
            "--cni-dir" => self.cni_dir = value.into(),
            "--stub-dir" => self.stub_dir = value.into(),
            "--work" => self.work = value.into(),
            "--out" => self.out = value.into(),
            "--repo" => self.repo = value.into(),
            "--nic" => self.nic = value,
            "--addr" => self.addrs.push(value),
            "--world" => self.worlds.push(world(&value)?),
            "--cycles" => self.cycles = count(flag, &value)?,
            "--warmup" => self.warmup = count(flag, &value)?,
            "--per-round" => self.per_round = Some(count(flag, &value)?),
            "--pin" => {
                self.pin = PinRequest::parse(&value).ok_or_else(|| {
                    format!("--pin needs auto, off or a CPU number, got '{value}'")
                })?
            }
            "--baseline" => self.baseline = Some(value.into()),
            "--rounds" => self.rounds = count(flag, &value)?,
            "--label-a" => self.label_a = value,
            "--label-b" => self.label_b = value,
            _ => return Err(format!("unknown argument {flag} ({USAGE})")),
        }
        Ok(())
    }

    fn check(&self) -> Result<()> {
        let paths = [
            ("--plugin", &self.plugin),
            ("--cni-dir", &self.cni_dir),
            ("--stub-dir", &self.stub_dir),
            ("--work", &self.work),
            ("--out", &self.out),
            ("--repo", &self.repo),
        ];
        for (flag, p) in paths {
            if !p.is_absolute() {
                return Err(format!(
                    "{flag} needs an absolute path, got '{}'",
                    p.display()
                ));
            }
        }
        if self.nic.is_empty() || self.addrs.is_empty() {
            return Err(format!("--nic and --addr are required ({USAGE})"));
        }
        if self.cycles == 0 {
            return Err("--cycles must be at least 1".into());
        }
        if self.per_round == Some(0) {
            return Err("--per-round must be at least 1".into());
        }
        if let Some(b) = &self.baseline {
            if !b.is_absolute() {
                return Err(format!(
                    "--baseline needs an absolute path, got '{}'",
                    b.display()
                ));
            }
            if self.rounds < 2 {
                return Err("--rounds must be at least 2 (an interval needs two)".into());
            }
        }
        Ok(())
    }

    /// Consecutive cycles per round.
    pub fn cycles_per_round(&self) -> usize {
        self.per_round.unwrap_or(if self.baseline.is_some() {
            COMPARE_PER_ROUND
        } else {
            FULL_PER_ROUND
        })
    }
}

fn count(flag: &str, value: &str) -> Result<usize> {
    value
        .parse()
        .map_err(|_| format!("{flag} needs a non-negative integer, got '{value}'"))
}

/// `NAME:HOST-PID:POD-PID`.
fn world(value: &str) -> Result<WorldSpec> {
    let bad = || format!("--world needs NAME:HOST-PID:POD-PID, got '{value}'");
    let mut parts = value.split(':');
    let (Some(name), Some(host), Some(pod), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(bad());
    };
    Ok(WorldSpec {
        name: name.to_string(),
        host_pid: host.parse().map_err(|_| bad())?,
        pod_pid: pod.parse().map_err(|_| bad())?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(s: &str) -> Result<Args> {
        Args::parse(s.split_whitespace().map(str::to_string))
    }

    const BASE: &str = "--plugin /p --cni-dir /c --stub-dir /s --work /w --out /o --repo /r \
                        --nic nic0 --addr 10.0.0.2/24 --addr 2001:db8::2/64";

    #[test]
    fn parses_everything() {
        let a = parse(&format!(
            "{BASE} --world e2e_bare:10:11 --world own_big:12:13 --cycles 20 --warmup 0"
        ))
        .unwrap();
        assert_eq!(a.plugin, PathBuf::from("/p"));
        assert_eq!(a.addrs, ["10.0.0.2/24", "2001:db8::2/64"]);
        assert_eq!(
            a.worlds[1],
            WorldSpec {
                name: "own_big".into(),
                host_pid: 12,
                pod_pid: 13
            }
        );
        assert_eq!((a.cycles, a.warmup), (20, 0));
    }

    #[test]
    fn defaults_to_50_cycles_after_3() {
        let a = parse(BASE).unwrap();
        assert_eq!((a.cycles, a.warmup), (50, 3));
    }

    #[test]
    fn a_baseline_makes_a_comparison_of_rounds() {
        let a = parse(&format!(
            "{BASE} --world own_clean:1:2 --baseline /old --rounds 30 --per-round 20 \
             --pin 0 --label-a f6da2a7 --label-b HEAD"
        ))
        .unwrap();
        assert_eq!(a.baseline, Some(PathBuf::from("/old")));
        assert_eq!((a.rounds, a.cycles_per_round()), (30, 20));
        assert_eq!(a.pin, PinRequest::PluginCpu(0));
        assert_eq!(
            (a.label_a.as_str(), a.label_b.as_str()),
            ("f6da2a7", "HEAD")
        );
        let d = parse(&format!("{BASE} --baseline /old")).unwrap();
        assert_eq!((d.rounds, d.cycles_per_round()), (40, COMPARE_PER_ROUND));
        assert_eq!(d.pin, PinRequest::Auto);
        assert_eq!(parse(BASE).unwrap().cycles_per_round(), FULL_PER_ROUND);
        assert!(parse(&format!("{BASE} --baseline old")).is_err());
        assert!(parse(&format!("{BASE} --baseline /old --rounds 1")).is_err());
        assert!(parse(&format!("{BASE} --per-round 0")).is_err());
        assert!(parse(&format!("{BASE} --pin sometimes")).is_err());
    }

    #[test]
    fn rejects_bad_input() {
        assert!(parse(&format!("{BASE} --cycles 0")).is_err());
        assert!(parse(&format!("{BASE} --cycles x")).is_err());
        assert!(parse(&format!("{BASE} --world a:1")).is_err());
        assert!(parse(&format!("{BASE} --world a:1:2:3")).is_err());
        assert!(parse(&format!("{BASE} --bogus 1")).is_err());
        assert!(parse(&format!("{BASE} --warmup")).is_err());
        assert!(parse(&BASE.replace("--work /w", "--work w")).is_err());
        assert!(parse("--plugin /p").is_err());
    }
}
