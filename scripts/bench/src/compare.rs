//! A comparison of two plugin binaries, A (the baseline) and B (the candidate), in the
//! clean host with the stub delegate: which of the two costs more per ADD+DEL cycle,
//! and how sure that is. `--baseline A` asks for it; A/A (a binary against a copy of
//! itself) is the same comparison and tells how large a difference the machine makes
//! up on its own.
//!
//! Every cycle runs the stub alone, A→stub and B→stub, VERSION twice with A and with B,
//! and one durable write (the floor, see [`crate::floor`]). A and B swap order in an
//! ABBA pattern across cycles, the stub alternates between first and last, so that a
//! warm cache or a drift favours neither. R rounds of K consecutive cycles follow W
//! warm-up cycles that are run the same way but not recorded.
//!
//! The difference B − A is estimated round by round, like with like: in each round, the
//! median of B's cycles where B ran first minus the median of A's where A ran first,
//! averaged with the same for the second places (see
//! [`crate::stats::balanced_round_differences`]; on a loaded machine whoever runs first
//! can be slower by milliseconds). The report gives the mean of the R round differences
//! with its 95 % t interval and a bootstrap interval, in µs and in percent of A's own
//! cost. Rounds of a multiple of 4 cycles hold both orders equally often.

use std::collections::BTreeMap;
use std::fmt::Write;

use crate::meta::Meta;
use crate::report::{Binary, RunInfo};
use crate::stats::{
    balanced_round_differences, bootstrap_interval, median, round_differences, t_interval,
    Estimate, Sample,
};

/// Resamples of the bootstrap interval, and its fixed seed.
const RESAMPLES: usize = 10_000;
const SEED: u64 = 0x5eed;

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Side {
    A,
    B,
}

/// One timed step of a comparison cycle.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Step {
    /// The stub host-device alone, ADD then DEL.
    Stub,
    /// That side's plugin delegating to the stub, ADD then DEL.
    Own(Side),
    /// That side's plugin, VERSION twice: its two process starts.
    Version(Side),
    /// One durable write of a state-file-sized file (timed in-process).
    Write,
}

impl Step {
    /// Every step (each cycle runs each once).
    #[cfg(test)]
    pub const ALL: [Step; 6] = [
        Step::Stub,
        Step::Own(Side::A),
        Step::Own(Side::B),
        Step::Version(Side::A),
        Step::Version(Side::B),
        Step::Write,
    ];

    /// The name of its raw file (`target/bench/raw/compare_<name>.tsv`).
    pub fn name(self) -> &'static str {
        match self {
            Step::Stub => "stub",
            Step::Own(Side::A) => "own_a",
            Step::Own(Side::B) => "own_b",
            Step::Version(Side::A) => "version_a",
            Step::Version(Side::B) => "version_b",
            Step::Write => "durable_write",
        }
    }
}

/// Whether A runs before B in cycle `i` (1-based): ABBA, cycles 1 and 4 of every four.
pub fn a_first(i: usize) -> bool {
    matches!(i % 4, 0 | 1)
}

/// The steps of cycle `i` (1-based), in the order they run.
pub fn cycle_order(i: usize) -> Vec<Step> {
    use Side::{A, B};
    let (first, second) = if a_first(i) { (A, B) } else { (B, A) };
    let mut order = vec![Step::Own(first), Step::Own(second)];
    if i % 2 == 1 {
        order.insert(0, Step::Stub);
    } else {
        order.push(Step::Stub);
    }
    order.extend([Step::Version(first), Step::Version(second), Step::Write]);
    order
}

/// What the report says of one side.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct SideSummary {
    /// Per round: median(own) − median(stub); their mean and interval, µs.
    pub own_cost: Estimate,
    pub add_median_us: f64,
    pub del_median_us: f64,
    /// Median over cycles of VERSION + VERSION + the cycle's durable write, µs.
    pub floor_us: f64,
    pub version_us: f64,
}

/// The comparison's figures.
#[derive(Clone, Debug, PartialEq)]
pub struct Summary {
    pub rounds: usize,
    pub per_round: usize,
    pub a: SideSummary,
    pub b: SideSummary,
    pub write_us: f64,
    /// B − A per ADD+DEL cycle, µs: t interval and bootstrap interval of the mean of the
    /// round differences.
    pub diff: Estimate,
    pub diff_bootstrap: Estimate,
    /// The round differences themselves.
    pub round_diffs: Vec<f64>,
}

impl Summary {
    /// `None` unless every step has at least two complete rounds with both orders;
    /// `a_first[k]`: whether A ran before B in recorded cycle k.
    pub fn compute(
        samples: &BTreeMap<Step, Vec<Sample>>,
        a_first: &[bool],
        per_round: usize,
    ) -> Option<Summary> {
        let get = |s: Step| samples.get(&s).map(Vec::as_slice);
        let stub = get(Step::Stub)?;
        let writes: Vec<f64> = get(Step::Write)?
            .iter()
            .map(|s| s.total_us() as f64)
            .collect();
        let side = |side: Side| -> Option<SideSummary> {
            let own = get(Step::Own(side))?;
            let version = get(Step::Version(side))?;
            let floors: Vec<f64> = version
                .iter()
                .zip(&writes)
                .map(|(v, w)| v.total_us() as f64 + w)
                .collect();
            let of = |f: fn(&Sample) -> u64, v: &[Sample]| {
                median(&v.iter().map(|s| f(s) as f64).collect::<Vec<_>>())
            };
            Some(SideSummary {
                own_cost: t_interval(&round_differences(stub, own, per_round))?,
                add_median_us: of(|s| s.add_us, own)?,
                del_median_us: of(|s| s.del_us, own)?,
                floor_us: median(&floors)?,
                version_us: of(Sample::total_us, version)?,
            })
        };
        let round_diffs = balanced_round_differences(
            get(Step::Own(Side::A))?,
            get(Step::Own(Side::B))?,
            a_first,
            per_round,
        );
        Some(Summary {
            rounds: round_diffs.len(),
            per_round,
            a: side(Side::A)?,
            b: side(Side::B)?,
            write_us: median(&writes)?,
            diff: t_interval(&round_diffs)?,
            diff_bootstrap: bootstrap_interval(&round_diffs, RESAMPLES, SEED)?,
            round_diffs,
        })
    }

    /// The difference in percent of A's own cost.
    pub fn diff_percent(&self) -> Estimate {
        self.diff.percent_of(self.a.own_cost.value)
    }

    /// Rounds in which B's median was above A's.
    pub fn rounds_b_slower(&self) -> usize {
        self.round_diffs.iter().filter(|&&d| d > 0.0).count()
    }
}

/// Everything the comparison's report shows.
pub struct Report {
    pub meta: Meta,
    pub run: RunInfo,
    pub pinning: String,
    pub a: (String, Binary),
    pub b: (String, Binary),
    pub summary: Summary,
}

impl Report {
    pub fn render(&self) -> String {
        let mut out = String::new();
        self.header(&mut out);
        self.table(&mut out);
        self.verdict(&mut out);
        out
    }

    fn header(&self, out: &mut String) {
        let (m, r, s) = (&self.meta, &self.run, &self.summary);
        out.push_str("## amd-host-device: own cost of two builds compared\n\n");
        let _ = writeln!(
            out,
            "{}, {}, {} cores, kernel {}; commit {}.",
            m.date, m.cpu, m.cores, m.kernel, m.commit
        );
        for (name, (label, bin)) in [("A", &self.a), ("B", &self.b)] {
            let linkage = bin
                .elf
                .map(|e| format!(", {}", e.linkage.name()))
                .unwrap_or_default();
            let _ = writeln!(
                out,
                "{name} ({label}): `{}` ({} bytes{linkage}).",
                bin.shown_path, bin.size
            );
        }
        let _ = writeln!(
            out,
            "{} rounds of {} cycles after {} warm-up cycles (not recorded), in {} s. Every cycle, in the \
             clean host with the stub delegate: the stub alone, A→stub and B→stub (A and B in ABBA order), \
             VERSION twice with each, one durable write; {}; 1-min load average {} before, {} after.\n",
            s.rounds, s.per_round, r.warmup, r.seconds, self.pinning, r.load_before, r.load_after
        );
    }

    fn table(&self, out: &mut String) {
        let (a, b) = (&self.summary.a, &self.summary.b);
        out.push_str("| per ADD+DEL cycle | A | B |\n|---|---|---|\n");
        let mut row = |label: &str, f: &dyn Fn(&SideSummary) -> String| {
            let _ = writeln!(out, "| {label} | {} | {} |", f(a), f(b));
        };
        row(
            "own cost: mean over rounds of (median →stub − median stub alone), 95 % interval",
            &|s| {
                format!(
                    "{} ms ({}…{})",
                    ms(s.own_cost.value),
                    ms(s.own_cost.lo),
                    ms(s.own_cost.hi)
                )
            },
        );
        row("ADD median / DEL median (→stub, stub included)", &|s| {
            format!("{} / {} ms", ms(s.add_median_us), ms(s.del_median_us))
        });
        row(
            "floor: VERSION + VERSION + one durable write (median)",
            &|s| {
                format!(
                    "{} ms ({} + {})",
                    ms(s.floor_us),
                    ms(s.version_us),
                    ms(self.summary.write_us)
                )
            },
        );
        row("own cost − floor", &|s| {
            format!("{} ms", ms(s.own_cost.value - s.floor_us))
        });
        out.push('\n');
    }

    fn verdict(&self, out: &mut String) {
        let s = &self.summary;
        let (d, p, bs) = (&s.diff, s.diff_percent(), &s.diff_bootstrap);
        let _ = writeln!(
            out,
            "**B − A: {:+.1} µs per ADD+DEL cycle ({:+.2} % of A's own cost); 95 % interval {:+.1} … {:+.1} µs \
             ({:+.2} … {:+.2} %).** Student t over the {} rounds' differences of medians (B first vs A first \
             and B second vs A second, averaged); bootstrap 95 % interval {:+.1} … {:+.1} µs. B was above A \
             in {} of {} rounds.",
            d.value, p.value, d.lo, d.hi, p.lo, p.hi, s.rounds, bs.lo, bs.hi, s.rounds_b_slower(), s.rounds
        );
        let _ = writeln!(
            out,
            "{} Resolution of this run: ±{:.2} % (the interval's half-width).",
            if d.excludes_zero() {
                if d.value > 0.0 {
                    "B costs more than A."
                } else {
                    "B costs less than A."
                }
            } else {
                "No difference between A and B is detectable at this resolution."
            },
            p.half_width()
        );
        out.push_str(
            "Times are wall clock from fork to wait4 of each plugin process; the durable write (a 1 KiB temp \
             file written and fsync'd, renamed, the directory fsync'd) is timed in the measuring program. Raw \
             figures: `target/bench/raw/compare_*.tsv` (add-us del-us add-KiB del-KiB; the write's µs in the \
             first column), `target/bench/raw/compare_rounds.tsv` (round, median A, median B, median stub, \
             B − A as the interval uses it; µs).\n",
        );
    }
}

/// The rounds' raw figures: round, median A, median B, median stub, B − A like with
/// like (the figure the interval is made of), µs.
pub fn rounds_table(
    samples: &BTreeMap<Step, Vec<Sample>>,
    a_first: &[bool],
    per_round: usize,
) -> String {
    let k = per_round.max(1);
    let series = |step: Step| samples.get(&step).map(Vec::as_slice).unwrap_or_default();
    let round = |step: Step, r: usize| -> &[Sample] {
        let s = series(step);
        &s[(r * k).min(s.len())..((r + 1) * k).min(s.len())]
    };
    let med = |v: &[Sample]| {
        median(&v.iter().map(|s| s.total_us() as f64).collect::<Vec<_>>()).unwrap_or(f64::NAN)
    };
    let rounds = series(Step::Own(Side::A)).len() / k;
    (0..rounds)
        .map(|r| {
            let (a, b) = (round(Step::Own(Side::A), r), round(Step::Own(Side::B), r));
            let order = &a_first[(r * k).min(a_first.len())..((r + 1) * k).min(a_first.len())];
            let diff = balanced_round_differences(a, b, order, k)
                .first()
                .copied()
                .unwrap_or(f64::NAN);
            format!(
                "{} {} {} {} {diff}\n",
                r + 1,
                med(a),
                med(b),
                med(round(Step::Stub, r))
            )
        })
        .collect()
}

fn ms(us: f64) -> String {
    format!("{:.3}", us / 1000.0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::elf::{ElfInfo, Linkage};

    #[test]
    fn every_cycle_runs_every_step_once_and_a_b_go_abba() {
        for i in 1..=8 {
            let mut order = cycle_order(i);
            order.sort();
            let mut all = Step::ALL.to_vec();
            all.sort();
            assert_eq!(order, all, "cycle {i}");
        }
        let a_first: Vec<bool> = (1..=8)
            .map(|i| {
                let o = cycle_order(i);
                let pos = |s| o.iter().position(|&x| x == s).unwrap();
                pos(Step::Own(Side::A)) < pos(Step::Own(Side::B))
            })
            .collect();
        assert_eq!(
            a_first,
            [true, false, false, true, true, false, false, true]
        );
        assert_eq!(cycle_order(1)[0], Step::Stub);
        assert_eq!(cycle_order(2)[2], Step::Stub);
        assert_eq!(*cycle_order(2).last().unwrap(), Step::Write);
    }

    fn cycle(total: u64) -> Sample {
        Sample {
            add_us: total / 2 + total % 2,
            del_us: total / 2,
            add_rss_kib: 0,
            del_rss_kib: 0,
        }
    }

    /// Rounds of 8 cycles: stub 1000 µs, A 2300 µs, B 2300 + `extra` µs but a wild
    /// 9000 in the first cycle of every round; VERSION 400 (A) and 410 (B), writes 600.
    fn samples(rounds: usize, extra: u64) -> (BTreeMap<Step, Vec<Sample>>, Vec<bool>) {
        let n = rounds * 8;
        let b = (0..n).map(|k| if k % 8 == 0 { 9000 } else { 2300 + extra });
        let mut m = BTreeMap::new();
        m.insert(Step::Stub, (0..n).map(|_| cycle(1000)).collect());
        m.insert(Step::Own(Side::A), (0..n).map(|_| cycle(2300)).collect());
        m.insert(Step::Own(Side::B), b.map(cycle).collect());
        m.insert(Step::Version(Side::A), (0..n).map(|_| cycle(400)).collect());
        m.insert(Step::Version(Side::B), (0..n).map(|_| cycle(410)).collect());
        m.insert(Step::Write, (0..n).map(|_| cycle(600)).collect());
        (m, (1..=n).map(a_first).collect())
    }

    #[test]
    fn summary_of_a_comparison() {
        let (m, order) = samples(4, 26);
        let s = Summary::compute(&m, &order, 8).unwrap();
        assert_eq!((s.rounds, s.per_round), (4, 8));
        assert_eq!(s.a.own_cost.value, 1300.0);
        assert_eq!((s.a.own_cost.lo, s.a.own_cost.hi), (1300.0, 1300.0));
        // +26 in every round; the outlier moves no median.
        assert_eq!(s.round_diffs, [26.0; 4]);
        assert_eq!((s.diff.value, s.diff.lo, s.diff.hi), (26.0, 26.0, 26.0));
        assert_eq!(s.diff_percent().value, 2.0);
        assert_eq!(s.rounds_b_slower(), 4);
        assert_eq!(
            (s.a.floor_us, s.b.floor_us, s.write_us),
            (1000.0, 1010.0, 600.0)
        );
        let (one, order) = samples(1, 0);
        assert!(
            Summary::compute(&one, &order, 8).is_none(),
            "one round gives no interval"
        );
    }

    #[test]
    fn the_report_gives_the_difference_its_interval_and_a_verdict() {
        let (mut m, order) = samples(5, 100);
        // 20 more for B in every other round gives the interval a width.
        let b = m.get_mut(&Step::Own(Side::B)).unwrap();
        for (k, s) in b.iter_mut().enumerate() {
            if (k / 8) % 2 == 0 {
                s.add_us += 20;
            }
        }
        let summary = Summary::compute(&m, &order, 8).unwrap();
        assert_eq!(summary.round_diffs, [120.0, 100.0, 120.0, 100.0, 120.0]);
        let bin = |p: &str| Binary {
            shown_path: p.into(),
            size: 1684248,
            elf: Some(ElfInfo {
                linkage: Linkage::StaticPie,
                stripped: true,
            }),
        };
        let report = Report {
            meta: Meta {
                date: "2026-12-02T16:00Z".into(),
                cpu: "CPU".into(),
                cores: 2,
                kernel: "6.1".into(),
                commit: "abc1234".into(),
                cni_plugins: "1.1.1".into(),
            },
            run: RunInfo {
                cycles: 15,
                warmup: 10,
                seconds: 3,
                load_before: "0.10".into(),
                load_after: "1.00".into(),
            },
            pinning: "plugins pinned to CPU 1, the measuring program to CPU 0".into(),
            a: (
                "f6da2a7".into(),
                bin("target/bench/baseline/amd-host-device"),
            ),
            b: ("HEAD".into(), bin("target/x/release/amd-host-device")),
            summary,
        };
        let text = report.render();
        assert!(text.contains(
            "A (f6da2a7): `target/bench/baseline/amd-host-device` (1684248 bytes, static-pie)."
        ));
        assert!(
            text.contains("5 rounds of 8 cycles after 10 warm-up cycles"),
            "{text}"
        );
        // mean 112, sd sqrt(120), t(4) = 2.776: half-width 2.776 * sqrt(120 / 5) = 13.6.
        assert!(text.contains("**B − A: +112.0 µs per ADD+DEL cycle (+8.62 % of A's own cost); 95 % interval +98.4 … +125.6 µs"), "{text}");
        assert!(text.contains("B costs more than A."));
        assert!(
            text.contains("| own cost − floor | 0.300 ms | 0.402 ms |"),
            "{text}"
        );
        assert!(text.contains("B was above A in 5 of 5 rounds."));
    }

    #[test]
    fn rounds_table_lists_each_round() {
        let (m, order) = samples(2, 26);
        assert_eq!(
            rounds_table(&m, &order, 8),
            "1 2300 2326 1000 26\n2 2300 2326 1000 26\n"
        );
    }
}
