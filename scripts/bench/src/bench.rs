//! The measurement in the worlds bench.sh built: the interleaved cycles and the checks
//! between them, the floor's durable writes, the scale diagnostic's route dumps, the
//! peak RSS runs, and the rounds of a comparison of two binaries.

use std::collections::BTreeMap;
use std::fs::File;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use crate::args::Args;
use crate::compare::{self, Side, Step};
use crate::floor::DurableWrite;
use crate::host::{self, Nic};
use crate::meta::load_average;
use crate::ns::{Namespaces, World};
use crate::pin::{self, Pinning};
use crate::plugin::{self, Invocation, Run};
use crate::report::{PeakRss, RouteDumps};
use crate::schedule::{cycle_order, cycles, Series, StubHost};
use crate::stats::Sample;
use crate::{say, Context, Result};

/// The PATH a runtime gives a plugin (bench.sh's RUNTIME_PATH).
const RUNTIME_PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";
/// The worlds bench.sh builds for the full report (see `Series::world`).
const WORLDS: [&str; 5] = ["e2e_bare", "e2e_amd", "own_clean", "own_big", "own_states"];
/// The worlds where amd-host-device keeps state.
const STATE_WORLDS: [&str; 4] = ["e2e_amd", "own_clean", "own_big", "own_states"];
/// The one world a comparison needs: the clean host with the stub delegate.
const COMPARE_WORLD: &str = "own_clean";
/// The pod-side interface name amd-host-device is asked for.
const POD_IFNAME: &str = "net1";
const RSS_RUNS: u32 = 5;
const DUMP_REPS: u32 = 200;
/// Lines of the plugins' stderr shown when a cycle fails.
const LOG_TAIL: usize = 20;

/// The series' recorded cycles, and how the run went.
pub struct Measurement {
    pub samples: BTreeMap<Series, Vec<Sample>>,
    /// One durable write per recorded cycle, µs (the floor).
    pub writes_us: Vec<u64>,
    pub seconds: u64,
    pub load_before: String,
    pub load_after: String,
}

/// A comparison's recorded cycles, and how the run went.
pub struct ComparisonRun {
    pub samples: BTreeMap<Step, Vec<Sample>>,
    /// Per recorded cycle: whether A ran before B.
    pub a_first: Vec<bool>,
    pub seconds: u64,
    pub load_before: String,
    pub load_after: String,
}

pub struct Bench {
    args: Args,
    nic: Nic,
    worlds: BTreeMap<String, World>,
    home: Namespaces,
    pinning: Option<Pinning>,
    floor: DurableWrite,
    /// The plugins' stderr (`<work>/plugin-stderr.log`, shared with bench.sh).
    log: File,
    log_path: PathBuf,
}

impl Bench {
    /// Opens every world's namespaces and the plugins' stderr log, and pins this
    /// process to its CPU.
    pub fn open(args: Args) -> Result<Bench> {
        let mut worlds = BTreeMap::new();
        for w in &args.worlds {
            let world =
                World::open(w.host_pid, w.pod_pid).context(|| format!("world {}", w.name))?;
            worlds.insert(w.name.clone(), world);
        }
        if let Some(missing) = required_worlds(&args)
            .iter()
            .find(|w| !worlds.contains_key(**w))
        {
            return Err(format!("no --world {missing}:HOST-PID:POD-PID"));
        }
        let allowed = pin::allowed_cpus().context(|| "sched_getaffinity".to_string())?;
        let pinning = pin::choose(args.pin, &allowed)?;
        if let Some(p) = pinning {
            pin::apply(&pin::single_cpu_set(p.harness_cpu))
                .context(|| format!("pinning this program to CPU {}", p.harness_cpu))?;
        }
        let floor_dir = args.work.join("floor");
        let floor =
            DurableWrite::new(floor_dir.clone()).context(|| floor_dir.display().to_string())?;
        let log_path = args.work.join("plugin-stderr.log");
        let log = File::options()
            .create(true)
            .append(true)
            .open(&log_path)
            .context(|| log_path.display().to_string())?;
        Ok(Bench {
            nic: Nic {
                name: args.nic.clone(),
                addrs: args.addrs.clone(),
            },
            home: Namespaces::own().context(|| "own namespaces".to_string())?,
            worlds,
            pinning,
            floor,
            log,
            log_path,
            args,
        })
    }

    /// How the plugins and this program are pinned (for the report).
    pub fn pinning(&self) -> Option<Pinning> {
        self.pinning
    }

    /// The plugin (and the baseline) answer VERSION, and every world's NIC is as set up.
    pub fn check_setup(&self) -> Result<()> {
        for plugin in std::iter::once(&self.args.plugin).chain(&self.args.baseline) {
            let inv = Invocation {
                plugin: plugin.clone(),
                config: self.config(COMPARE_WORLD),
                env: Vec::new(),
                cpu: None,
            };
            let run = inv
                .run("VERSION", &self.log)
                .context(|| plugin.display().to_string())?;
            ok(&run)
                .and_then(|()| plugin::check_version_result(&run.stdout))
                .map_err(|e| format!("{} does not answer VERSION: {e}", plugin.display()))?;
        }
        for w in required_worlds(&self.args) {
            self.enter(w)?;
            self.nic.check().map_err(|e| format!("{w}: {e}"))?;
        }
        Ok(())
    }

    /// Every series interleaved, cycle by cycle: warm-up, then the recorded cycles.
    pub fn measure(&self) -> Result<Measurement> {
        let (warmup, n) = (self.args.warmup, self.args.cycles);
        let total = warmup + n;
        let n_series = Series::ALL.len();
        say(&format!("measuring: {warmup} warm-up + {n} timed cycles of each of {n_series} series, interleaved"));
        let mut samples: BTreeMap<Series, Vec<Sample>> = BTreeMap::new();
        let mut writes_us = Vec::with_capacity(n);
        let load_before = load_average();
        let start = Instant::now();
        for (i, recorded) in cycles(warmup, n) {
            let cid = format!("bench{i:04}");
            for series in cycle_order(i) {
                let sample = self.cycle(series, &cid)?;
                if recorded {
                    samples.entry(series).or_default().push(sample);
                }
            }
            let write = self.durable_write(i)?;
            if recorded {
                writes_us.push(micros(write));
            }
            if i % 10 == 0 || i == total {
                say(&format!(
                    "  cycle {i}/{total} ({} s)",
                    start.elapsed().as_secs()
                ));
            }
        }
        Ok(Measurement {
            samples,
            writes_us,
            seconds: start.elapsed().as_secs_f64().round() as u64,
            load_before,
            load_after: load_average(),
        })
    }

    /// One timed cycle of `series` in its world, checked, and what follows it there.
    fn cycle(&self, series: Series, cid: &str) -> Result<Sample> {
        let inv = self.invocation(series, cid);
        self.enter(series.world())?;
        let sample = self.timed_cycle(series.name(), &inv, series.commands(), cid)?;
        self.after_cycle(series)?;
        Ok(sample)
    }

    /// `inv` run for `commands` (ADD+DEL or VERSION twice), timed, its output checked.
    fn timed_cycle(
        &self,
        name: &str,
        inv: &Invocation,
        commands: [&'static str; 2],
        cid: &str,
    ) -> Result<Sample> {
        let runs = inv
            .cycle(commands, &self.log)
            .context(|| format!("{name}: {}", inv.plugin.display()))?;
        let failures: Vec<String> = runs.iter().filter_map(Run::failure).collect();
        if !failures.is_empty() {
            self.show_log_tail();
            return Err(format!(
                "{name}: cycle {cid} failed: {}",
                failures.join("; ")
            ));
        }
        let checked = match commands[0] {
            "VERSION" => plugin::check_version_result(&runs[0].stdout),
            _ => plugin::check_add_result(&runs[0].stdout),
        };
        checked.map_err(|e| format!("{name}: {e}"))?;
        Ok(plugin::sample(&runs))
    }

    /// One durable write of the floor, in the file system of the state dirs.
    fn durable_write(&self, k: usize) -> Result<Duration> {
        self.floor.time(k).context(|| {
            format!(
                "durable write in {}",
                self.args.work.join("floor").display()
            )
        })
    }

    /// A comparison: `rounds` × `per_round` cycles of [`compare::cycle_order`] after the
    /// warm-up, all in the clean host.
    pub fn measure_comparison(&self, baseline: &Path) -> Result<ComparisonRun> {
        let (warmup, per_round, rounds) = (
            self.args.warmup,
            self.args.cycles_per_round(),
            self.args.rounds,
        );
        let n = rounds * per_round;
        let total = warmup + n;
        say(&format!(
            "comparing: {warmup} warm-up + {rounds} rounds of {per_round} cycles, each cycle the stub, A, B, \
             VERSION with A and B, one durable write"
        ));
        let mut samples: BTreeMap<Step, Vec<Sample>> = BTreeMap::new();
        let mut a_first = Vec::with_capacity(n);
        let load_before = load_average();
        let start = Instant::now();
        self.enter(COMPARE_WORLD)?;
        for (i, recorded) in cycles(warmup, n) {
            for step in compare::cycle_order(i) {
                let sample = self.comparison_step(step, baseline, i)?;
                if recorded {
                    samples.entry(step).or_default().push(sample);
                }
            }
            if recorded {
                a_first.push(compare::a_first(i));
            }
            if i % 50 == 0 || i == total {
                say(&format!(
                    "  cycle {i}/{total} ({} s)",
                    start.elapsed().as_secs()
                ));
            }
        }
        Ok(ComparisonRun {
            samples,
            a_first,
            seconds: start.elapsed().as_secs_f64().round() as u64,
            load_before,
            load_after: load_average(),
        })
    }

    /// One step of comparison cycle `i`, checked (the NIC after an ADD+DEL of A or B).
    fn comparison_step(&self, step: Step, baseline: &Path, i: usize) -> Result<Sample> {
        let a = &self.args;
        let plugin_of = |side: Side| match side {
            Side::A => baseline.to_path_buf(),
            Side::B => a.plugin.clone(),
        };
        let cid = format!("cmp{i:05}{}", step.name());
        let (plugin, commands) = match step {
            Step::Write => {
                let t = self.durable_write(i)?;
                return Ok(Sample {
                    add_us: micros(t),
                    del_us: 0,
                    add_rss_kib: 0,
                    del_rss_kib: 0,
                });
            }
            Step::Stub => (a.stub_dir.join("host-device"), ["ADD", "DEL"]),
            Step::Own(side) => (plugin_of(side), ["ADD", "DEL"]),
            Step::Version(side) => (plugin_of(side), ["VERSION", "VERSION"]),
        };
        let inv = self.invocation_of(plugin, &a.stub_dir, COMPARE_WORLD, &cid);
        let sample = self.timed_cycle(step.name(), &inv, commands, &cid)?;
        if let Step::Own(_) = step {
            self.nic
                .check()
                .map_err(|e| format!("{}: not restored after DEL: {e}", step.name()))?;
        }
        Ok(sample)
    }

    /// Untimed, in the series' host after its cycle: the bare NIC gets its addresses
    /// back; after amd-host-device's DEL the NIC must be as it was.
    fn after_cycle(&self, series: Series) -> Result<()> {
        let name = series.name();
        match series {
            Series::Bare => self
                .nic
                .restore()
                .map_err(|e| format!("bare: cannot restore {} after DEL: {e}", self.nic.name)),
            Series::Amd | Series::Own(_) => self
                .nic
                .check()
                .map_err(|e| format!("{name}: not restored after DEL: {e}")),
            Series::Stub(_) | Series::Version => Ok(()),
        }
    }

    /// How a runtime would run `series`' plugin for container `cid`.
    fn invocation(&self, series: Series, cid: &str) -> Invocation {
        let a = &self.args;
        let (plugin, cni_path) = match series {
            Series::Bare => (a.cni_dir.join("host-device"), &a.cni_dir),
            Series::Amd => (a.plugin.clone(), &a.cni_dir),
            Series::Stub(_) => (a.stub_dir.join("host-device"), &a.stub_dir),
            Series::Own(_) | Series::Version => (a.plugin.clone(), &a.stub_dir),
        };
        let mut inv = self.invocation_of(plugin, cni_path, series.world(), cid);
        if series == Series::Bare {
            // The bare plugin is host-device itself, given the NIC's own name.
            for (k, v) in &mut inv.env {
                if k == "CNI_IFNAME" {
                    v.clone_from(&self.nic.name);
                }
            }
        }
        inv
    }

    /// `plugin` run by a runtime in `world` for container `cid`, its delegates in
    /// `cni_path`, pinned like every plugin run.
    fn invocation_of(
        &self,
        plugin: PathBuf,
        cni_path: &Path,
        world_name: &str,
        cid: &str,
    ) -> Invocation {
        let world = &self.worlds[world_name];
        let ifname = POD_IFNAME;
        let env = [
            ("PATH", RUNTIME_PATH.to_string()),
            ("CNI_PATH", cni_path.display().to_string()),
            ("CNI_CONTAINERID", cid.to_string()),
            ("CNI_NETNS", world.netns()),
            ("CNI_IFNAME", ifname.to_string()),
            ("CNI_ARGS", multus_args(cid)),
            // The world's node policy (its state dir), as a DaemonSet would set it.
            (
                "AMD_HOST_DEVICE_NODE_POLICY",
                self.args
                    .work
                    .join(world_name)
                    .join("node.json")
                    .display()
                    .to_string(),
            ),
        ];
        Invocation {
            plugin,
            config: self.config(world_name),
            env: env.into_iter().map(|(k, v)| (k.to_string(), v)).collect(),
            cpu: self.pinning.map(|p| p.plugin_cpu),
        }
    }

    fn config(&self, world: &str) -> PathBuf {
        self.args.work.join(world).join("config.json")
    }

    fn enter(&self, world: &str) -> Result<()> {
        self.worlds[world]
            .host
            .enter()
            .context(|| format!("entering {world}'s host"))
    }

    /// No state file of the benchmark's containers is left in any state dir.
    pub fn check_no_state_left(&self) -> Result<()> {
        let worlds: &[&str] = if self.args.baseline.is_some() {
            &[COMPARE_WORLD]
        } else {
            &STATE_WORLDS
        };
        for &w in worlds {
            let dir = self.args.work.join(w).join("state");
            let left = std::fs::read_dir(&dir)
                .context(|| dir.display().to_string())?
                .filter_map(|e| e.ok())
                .filter(|e| {
                    e.file_name().to_str().is_some_and(|n| {
                        (n.starts_with("bench") || n.starts_with("cmp")) && n.ends_with(".json")
                    })
                })
                .count();
            if left > 0 {
                return Err(format!(
                    "{w}: {left} state files of the benchmark left behind"
                ));
            }
        }
        Ok(())
    }

    /// The scale diagnostic: the filtered route dumps, in the clean and the scaled host.
    pub fn route_dumps(&self) -> Result<RouteDumps> {
        let batch = self.args.work.join("dumps.batch");
        let mut us = [0u64; 2];
        for (k, w) in ["own_clean", "own_big"].into_iter().enumerate() {
            self.enter(w)?;
            let d = host::route_dumps(&self.nic.name, DUMP_REPS, &batch)
                .map_err(|e| format!("{w}: {e}"))?;
            us[k] = u64::try_from(d.as_micros()).unwrap_or(u64::MAX);
        }
        Ok(RouteDumps {
            nic: self.nic.name.clone(),
            reps: DUMP_REPS,
            clean_us: us[0],
            big_us: us[1],
        })
    }

    /// Peak RSS of VERSION, ADD and DEL with the stub delegate in the clean host: the
    /// largest of RSS_RUNS runs of each.
    pub fn peak_rss(&self) -> Result<PeakRss> {
        let mut peak = PeakRss {
            runs: RSS_RUNS,
            version_kib: 0,
            add_kib: 0,
            del_kib: 0,
        };
        self.enter("own_clean")?;
        for k in 1..=RSS_RUNS {
            let inv = self.invocation(Series::Own(StubHost::Clean), &format!("rss{k}"));
            let fields = [&mut peak.version_kib, &mut peak.add_kib, &mut peak.del_kib];
            for (command, field) in ["VERSION", "ADD", "DEL"].into_iter().zip(fields) {
                let run = inv
                    .run(command, &self.log)
                    .context(|| format!("peak RSS: {command}"))?;
                ok(&run).map_err(|e| format!("peak RSS: {e}"))?;
                *field = (*field).max(run.max_rss_kib);
            }
        }
        self.nic
            .check()
            .map_err(|e| format!("own_clean after the RSS runs: {e}"))?;
        Ok(peak)
    }

    /// Back to this process's own namespaces.
    pub fn go_home(&self) -> Result<()> {
        self.home
            .enter()
            .context(|| "returning to the own namespaces".to_string())
    }

    fn show_log_tail(&self) {
        let log = std::fs::read_to_string(&self.log_path).unwrap_or_default();
        let lines: Vec<&str> = log.lines().collect();
        for l in &lines[lines.len().saturating_sub(LOG_TAIL)..] {
            eprintln!("{l}");
        }
    }
}

fn ok(run: &Run) -> Result<()> {
    run.failure().map_or(Ok(()), Err)
}

/// The worlds this run needs: all five for the full report, the clean host for a
/// comparison.
fn required_worlds(args: &Args) -> &'static [&'static str] {
    if args.baseline.is_some() {
        &[COMPARE_WORLD]
    } else {
        &WORLDS
    }
}

fn micros(d: Duration) -> u64 {
    u64::try_from(d.as_micros()).unwrap_or(u64::MAX)
}

/// CNI_ARGS as Multus passes them for pod `pod-<cid>`.
pub fn multus_args(cid: &str) -> String {
    format!(
        "IgnoreUnknown=true;K8S_POD_NAMESPACE=bench;K8S_POD_NAME=pod-{cid};\
         K8S_POD_INFRA_CONTAINER_ID={cid};K8S_POD_UID=uid-{cid}"
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn multus_args_name_the_pod_after_the_container() {
        assert_eq!(
            multus_args("bench0001"),
            "IgnoreUnknown=true;K8S_POD_NAMESPACE=bench;K8S_POD_NAME=pod-bench0001;\
             K8S_POD_INFRA_CONTAINER_ID=bench0001;K8S_POD_UID=uid-bench0001"
        );
    }

    #[test]
    fn every_series_runs_in_a_known_world() {
        for s in Series::ALL {
            assert!(WORLDS.contains(&s.world()), "{s:?}");
        }
        assert!(WORLDS.contains(&COMPARE_WORLD));
    }
}
