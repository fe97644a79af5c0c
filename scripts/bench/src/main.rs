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
//! 1. pins itself to one CPU and every plugin run to another (see [`pin`]; `--pin`),
//!    checks the plugin answers VERSION and every world's NIC is as set up;
//! 2. runs the nine series interleaved, cycle by cycle (see [`schedule`]): WARMUP
//!    untimed cycles, then N recorded ones. Before each cycle it enters the series'
//!    host with setns(2) (see [`ns`]); each ADD+DEL (or VERSION+VERSION) is two plugin
//!    runs timed from fork to reap (see [`plugin`]); after it, untimed, it checks
//!    the result and the NIC (or gives the bare NIC its addresses back). Each cycle
//!    ends with one durable write, timed in-process (the floor, see [`floor`]);
//! 3. checks no state file of the benchmark is left, times the scale diagnostic's
//!    route dumps, and measures peak RSS (wait4's ru_maxrss) over separate runs;
//! 4. computes the statistics (see [`stats`], [`report::Headline`]) and writes the
//!    raw figures to `<out>/raw/<series>.tsv` (one line per cycle: add-µs del-µs
//!    add-KiB del-KiB) and the markdown report to `<out>/results.md` and stdout.
//!
//! With `--baseline BIN` it compares instead (see [`compare`]): BIN (A) against
//! `--plugin` (B) in the clean host only, R rounds of K interleaved cycles, and writes
//! `<out>/compare.md` and `<out>/raw/compare_*.tsv`.
//!
//! Everything the harness does (entering namespaces, building the environment,
//! checks) happens outside the timed section and is the same for both sides of every
//! comparison. Files it expects: `<work>/<world>/config.json` (the network config a
//! series' plugin reads), `<work>/<world>/state` (amd-host-device's state dir);
//! it appends the plugins' stderr to `<work>/plugin-stderr.log`. Progress goes to
//! stderr. It reports; it does not fail when a target is missed.

mod args;
mod bench;
mod compare;
mod elf;
mod floor;
mod host;
mod meta;
mod ns;
mod pin;
mod plugin;
mod report;
mod schedule;
mod stats;

use std::collections::BTreeMap;
use std::fmt::Display;
use std::path::Path;
use std::process::ExitCode;

use args::Args;
use bench::{Bench, ComparisonRun};
use meta::Meta;
use pin::Pinning;
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
    if args.baseline.is_some() {
        return run_comparison(args);
    }
    let (out, repo) = (args.out.clone(), args.repo.clone());
    let (cycles, warmup, per_round) = (args.cycles, args.warmup, args.cycles_per_round());
    let binary = binary(&args.plugin, &repo)?;
    // Before Bench::open pins this process (the core count is of the machine).
    let meta = Meta::gather(&repo);
    let bench = Bench::open(args)?;
    let pinning = Pinning::describe(bench.pinning());
    bench.check_setup()?;
    let measured = bench.measure()?;
    bench.check_no_state_left()?;
    let dumps = bench.route_dumps()?;
    say("peak RSS and binary size");
    let rss = bench.peak_rss()?;
    bench.go_home()?;
    write_raw(&out, &measured.samples)?;
    let summaries = summaries(&measured.samples)?;
    let headline = Headline::compute(
        &summaries,
        &measured.samples,
        &measured.writes_us,
        per_round,
    )
    .context(|| "a series has no samples".into())?;
    let report = Report {
        meta,
        pinning,
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

/// `--baseline`: A against B in rounds, and the comparison's report.
fn run_comparison(args: Args) -> Result<()> {
    let (out, repo) = (args.out.clone(), args.repo.clone());
    let baseline = args.baseline.clone().context(|| "no --baseline".into())?;
    let per_round = args.cycles_per_round();
    let (warmup, cycles) = (args.warmup, args.rounds * per_round);
    let a = (args.label_a.clone(), binary(&baseline, &repo)?);
    let b = (args.label_b.clone(), binary(&args.plugin, &repo)?);
    let meta = Meta::gather(&repo);
    let bench = Bench::open(args)?;
    let pinning = Pinning::describe(bench.pinning());
    bench.check_setup()?;
    let measured = bench.measure_comparison(&baseline)?;
    bench.check_no_state_left()?;
    bench.go_home()?;
    write_raw_comparison(&out, &measured, per_round)?;
    let summary = compare::Summary::compute(&measured.samples, &measured.a_first, per_round)
        .context(|| "fewer than two complete rounds".into())?;
    let report = compare::Report {
        meta,
        run: RunInfo {
            cycles,
            warmup,
            seconds: measured.seconds,
            load_before: measured.load_before,
            load_after: measured.load_after,
        },
        pinning,
        a,
        b,
        summary,
    };
    let text = report.render();
    let path = out.join("compare.md");
    std::fs::write(&path, &text).context(|| path.display().to_string())?;
    print!("{text}");
    Ok(())
}

/// `<out>/raw/compare_<step>.tsv` and `<out>/raw/compare_rounds.tsv`.
fn write_raw_comparison(out: &Path, run: &ComparisonRun, per_round: usize) -> Result<()> {
    let samples = &run.samples;
    let dir = out.join("raw");
    std::fs::create_dir_all(&dir).context(|| dir.display().to_string())?;
    let mut files: Vec<(String, String)> = samples
        .iter()
        .map(|(s, v)| {
            let text = v.iter().map(|x| x.raw_line() + "\n").collect();
            (format!("compare_{}.tsv", s.name()), text)
        })
        .collect();
    files.push((
        "compare_rounds.tsv".into(),
        compare::rounds_table(samples, &run.a_first, per_round),
    ));
    for (name, text) in files {
        let path = dir.join(name);
        std::fs::write(&path, text).context(|| path.display().to_string())?;
    }
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
