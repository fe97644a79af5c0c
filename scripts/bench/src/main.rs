//! amd-host-device-bench: the measuring half of `scripts/bench.sh`.
//!
//! bench.sh installs what is missing, builds the plugin, this program and the stub
//! delegate, and builds the throwaway worlds (a "host" netns + private mount ns with
//! its own sysfs and a fake PCI tree, and a pod netns, each held by a `sleep
//! infinity`; veth "NICs"; configs and state dirs). It then runs this program once,
//! as root, and tears the worlds down afterwards, also when this program fails.
//!
//! This program, given the holders' pids (`--world NAME:HOST-PID:POD-PID`):
//!
//! 1. checks the plugin answers VERSION and every world's NIC is as set up;
//! 2. runs the nine series interleaved, cycle by cycle (see [`schedule`]): WARMUP
//!    untimed cycles, then N recorded ones. Before each cycle it enters the series'
//!    host with setns(2) (see [`ns`]); each ADD+DEL (or VERSION+VERSION) is two plugin
//!    runs timed from fork to reap (see [`plugin`]); after it, untimed, it checks
//!    the result and the NIC (or gives the bare NIC its addresses back);
//! 3. checks no state file of the benchmark is left, times the scale diagnostic's
//!    route dumps, and measures peak RSS (wait4's ru_maxrss) over separate runs;
//! 4. computes the statistics (see [`stats`], [`report::Headline`]) and writes the
//!    raw figures to `<out>/raw/<series>.tsv` (one line per cycle: add-µs del-µs
//!    add-KiB del-KiB) and the markdown report to `<out>/results.md` and stdout.
//!
//! Everything the harness does (entering namespaces, building the environment,
//! checks) happens outside the timed section and is the same for both sides of every
//! comparison. Files it expects: `<work>/<world>/config.json` (the network config a
//! series' plugin reads), `<work>/<world>/state` (amd-host-device's state dir);
//! it appends the plugins' stderr to `<work>/plugin-stderr.log`. Progress goes to
//! stderr. It reports; it does not fail when a target is missed.

mod args;
mod bench;
mod elf;
mod host;
mod meta;
mod ns;
mod plugin;
mod report;
mod schedule;
mod stats;

use std::collections::BTreeMap;
use std::fmt::Display;
use std::path::Path;
use std::process::ExitCode;

use args::Args;
use bench::Bench;
use meta::Meta;
use report::{Binary, Headline, Report, RunInfo};
use schedule::Series;
use stats::{summarize, Sample, Summary};

/// Errors are messages for the person running the benchmark.
pub type Result<T> = std::result::Result<T, String>;

/// Prefixes an error with what was being done.
pub trait Context<T> {
    fn context(self, what: impl FnOnce() -> String) -> Result<T>;
}

impl<T, E: Display> Context<T> for std::result::Result<T, E> {
    fn context(self, what: impl FnOnce() -> String) -> Result<T> {
        self.map_err(|e| format!("{}: {e}", what()))
    }
}

impl<T> Context<T> for Option<T> {
    fn context(self, what: impl FnOnce() -> String) -> Result<T> {
        self.ok_or_else(what)
    }
}

/// Progress, on stderr.
pub fn say(msg: &str) {
    eprintln!("bench: {msg}");
}

fn main() -> ExitCode {
    match run() {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            say(&format!("error: {e}"));
            ExitCode::FAILURE
        }
    }
}

fn run() -> Result<()> {
    let args = Args::parse(std::env::args().skip(1))?;
    let (out, repo) = (args.out.clone(), args.repo.clone());
    let (cycles, warmup) = (args.cycles, args.warmup);
    let binary = binary(&args.plugin, &repo)?;
    let bench = Bench::open(args)?;
    bench.check_setup()?;
    let measured = bench.measure()?;
    bench.check_no_state_left()?;
    let dumps = bench.route_dumps()?;
    say("peak RSS and binary size");
    let rss = bench.peak_rss()?;
    bench.go_home()?;
    write_raw(&out, &measured.samples)?;
    let summaries = summaries(&measured.samples)?;
    let headline = Headline::compute(&summaries, &measured.samples)
        .context(|| "a series has no samples".into())?;
    let report = Report {
        meta: Meta::gather(&repo),
        run: RunInfo {
            cycles,
            warmup,
            seconds: measured.seconds,
            load_before: measured.load_before,
            load_after: measured.load_after,
        },
        summaries,
        headline,
        rss,
        binary,
        dumps,
    };
    let text = report.render();
    let path = out.join("results.md");
    std::fs::write(&path, &text).context(|| path.display().to_string())?;
    print!("{text}");
    Ok(())
}

/// The plugin binary as the report shows it.
fn binary(plugin: &Path, repo: &Path) -> Result<Binary> {
    let image = std::fs::read(plugin).context(|| plugin.display().to_string())?;
    let repo = std::fs::canonicalize(repo).unwrap_or_else(|_| repo.to_path_buf());
    let plugin = std::fs::canonicalize(plugin).unwrap_or_else(|_| plugin.to_path_buf());
    Ok(Binary {
        shown_path: plugin
            .strip_prefix(&repo)
            .unwrap_or(&plugin)
            .display()
            .to_string(),
        size: image.len() as u64,
        elf: elf::inspect(&image),
    })
}

fn summaries(samples: &BTreeMap<Series, Vec<Sample>>) -> Result<BTreeMap<Series, Summary>> {
    Series::ALL
        .iter()
        .map(|&s| {
            let sum = samples.get(&s).and_then(|v| summarize(v));
            Ok((s, sum.context(|| format!("{}: no samples", s.name()))?))
        })
        .collect()
}

/// `<out>/raw/<series>.tsv`.
fn write_raw(out: &Path, samples: &BTreeMap<Series, Vec<Sample>>) -> Result<()> {
    let dir = out.join("raw");
    std::fs::create_dir_all(&dir).context(|| dir.display().to_string())?;
    for (s, v) in samples {
        let text: String = v.iter().map(|x| x.raw_line() + "\n").collect();
        let path = dir.join(format!("{}.tsv", s.name()));
        std::fs::write(&path, text).context(|| path.display().to_string())?;
    }
    Ok(())
}
