//! The headline figures derived from the series, and the markdown report (the same
//! tables, columns and wording as the reports in docs/performance.md).

use std::collections::BTreeMap;
use std::fmt::Write;

use crate::elf::ElfInfo;
use crate::meta::Meta;
use crate::schedule::{Series, StubHost};
use crate::stats::{
    median, paired_median, round_differences, t_interval, Estimate, Sample, Summary,
};

/// The first table's figures (and the "Also" line's), from the per-series summaries.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Headline {
    /// median(amd) / median(bare), and the same of the p90s.
    pub e2e_ratio: f64,
    pub e2e_ratio_p90: f64,
    /// median(own) − median(stub) on the clean host, ms; and as the median of the
    /// per-cycle differences.
    pub own_cost_ms: f64,
    pub own_cost_paired_ms: f64,
    /// median(own) − median(stub) on the scaled host, ms.
    pub own_cost_big_ms: f64,
    /// median(own, scaled host) / median(own, clean host), and how much longer, µs.
    pub scale_ratio: f64,
    pub scale_growth_us: f64,
    /// median(own, host with the state files only) / median(own, clean host).
    pub states_ratio: f64,
    /// Own cost on the scaled host / own cost on the clean host.
    pub own_ratio: f64,
    /// The clean host's own cost per round of `per_round` cycles (median amd→stub −
    /// median stub alone in the round): mean and 95 % interval over the rounds, ms;
    /// `None` below two rounds.
    pub own_cost_rounds: Option<Estimate>,
    pub rounds: usize,
    pub per_round: usize,
    /// The floor, ms: median over cycles of VERSION + VERSION + that cycle's durable
    /// write; and the medians of its two parts.
    pub floor_ms: f64,
    pub version_ms: f64,
    pub write_ms: f64,
}

impl Headline {
    /// `None` unless every series has a summary and samples, and there are writes.
    pub fn compute(
        sum: &BTreeMap<Series, Summary>,
        samples: &BTreeMap<Series, Vec<Sample>>,
        writes_us: &[u64],
        per_round: usize,
    ) -> Option<Headline> {
        use Series::{Amd, Bare, Own, Stub, Version};
        use StubHost::{Big, Clean, States};
        let med = |s: Series| sum.get(&s).map(|x| x.total.median);
        let p90 = |s: Series| sum.get(&s).map(|x| x.total.p90);
        let own_clean = med(Own(Clean))? - med(Stub(Clean))?;
        let own_big = med(Own(Big))? - med(Stub(Big))?;
        let rounds = round_differences(
            samples.get(&Stub(Clean))?,
            samples.get(&Own(Clean))?,
            per_round,
        );
        let floors: Vec<f64> = samples
            .get(&Version)?
            .iter()
            .zip(writes_us)
            .map(|(v, &w)| (v.total_us() + w) as f64)
            .collect();
        let writes: Vec<f64> = writes_us.iter().map(|&w| w as f64).collect();
        Some(Headline {
            own_cost_rounds: t_interval(&rounds).map(|e| e.scaled(1e-3)),
            rounds: rounds.len(),
            per_round,
            floor_ms: median(&floors)? / 1000.0,
            version_ms: med(Version)? / 1000.0,
            write_ms: median(&writes)? / 1000.0,
            e2e_ratio: med(Amd)? / med(Bare)?,
            e2e_ratio_p90: p90(Amd)? / p90(Bare)?,
            own_cost_ms: own_clean / 1000.0,
            own_cost_paired_ms: paired_median(
                samples.get(&Stub(Clean))?,
                samples.get(&Own(Clean))?,
            )? / 1000.0,
            own_cost_big_ms: own_big / 1000.0,
            scale_ratio: med(Own(Big))? / med(Own(Clean))?,
            scale_growth_us: med(Own(Big))? - med(Own(Clean))?,
            states_ratio: med(Own(States))? / med(Own(Clean))?,
            own_ratio: own_big / own_clean,
        })
    }
}

/// How the run went (for the report's second line).
#[derive(Clone, Debug)]
pub struct RunInfo {
    pub cycles: usize,
    pub warmup: usize,
    pub seconds: u64,
    pub load_before: String,
    pub load_after: String,
}

/// Peak RSS of the plugin's own process, KiB: the largest of `runs` runs of each.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PeakRss {
    pub runs: u32,
    pub version_kib: u64,
    pub add_kib: u64,
    pub del_kib: u64,
}

/// The scale diagnostic: µs per pair of filtered route dumps, `reps` of each.
#[derive(Clone, Debug)]
pub struct RouteDumps {
    pub nic: String,
    pub reps: u32,
    pub clean_us: u64,
    pub big_us: u64,
}

/// The release binary that was measured.
#[derive(Clone, Debug)]
pub struct Binary {
    /// Relative to the repository when inside it.
    pub shown_path: String,
    pub size: u64,
    pub elf: Option<ElfInfo>,
}

/// Everything the report shows.
pub struct Report {
    pub meta: Meta,
    pub run: RunInfo,
    /// Where the plugins and the measuring program ran.
    pub pinning: String,
    pub summaries: BTreeMap<Series, Summary>,
    pub headline: Headline,
    pub rss: PeakRss,
    pub binary: Binary,
    pub dumps: RouteDumps,
}

impl Report {
    pub fn render(&self) -> String {
        let mut out = String::new();
        self.header(&mut out);
        self.metrics_table(&mut out);
        self.cycle_table(&mut out);
        self.notes(&mut out);
        out
    }

    fn header(&self, out: &mut String) {
        let (m, r, b) = (&self.meta, &self.run, &self.binary);
        let linkage = b
            .elf
            .map(|e| format!(" ({})", e.linkage.name()))
            .unwrap_or_default();
        out.push_str("## amd-host-device benchmark\n\n");
        let _ = writeln!(
            out,
            "{}, {}, {} cores, kernel {}; commit {}; binary `{}`{linkage}; containernetworking-plugins {}.",
            m.date, m.cpu, m.cores, m.kernel, m.commit, b.shown_path, m.cni_plugins
        );
        let _ = writeln!(
            out,
            "{} timed ADD+DEL cycles per series after {} untimed, all nine series interleaved cycle by cycle \
             (order alternating) in {} s; each in its own throwaway host + pod netns on veth \"NICs\"; {}; \
             1-min load average {} before, {} after (this run itself adds ~1).\n",
            r.cycles, r.warmup, r.seconds, self.pinning, r.load_before, r.load_after
        );
    }

    fn metrics_table(&self, out: &mut String) {
        let h = &self.headline;
        let (rss, b) = (&self.rss, &self.binary);
        let stripped = match b.elf {
            Some(e) if e.stripped => "yes",
            Some(_) => "no",
            None => "?",
        };
        let bin_mib = format!("{:.2}", b.size as f64 / 1048576.0);
        out.push_str("| metric | value | target | met? |\n|---|---|---|---|\n");
        let mut metric = |label: &str, shown: String, unit: &str, target: &str, limit: f64| {
            let _ = writeln!(
                out,
                "| {label} | {shown}{unit} | ≤ {target}{unit} | {} |",
                met(&shown, limit)
            );
        };
        metric(
            "end to end: amd-host-device / bare host-device+static, median ADD+DEL",
            format!("{:.3}", h.e2e_ratio),
            "",
            "1.05",
            1.05,
        );
        metric(
            "own cost per ADD+DEL cycle: median(amd→stub) − median(stub alone)",
            format!("{:.2}", h.own_cost_ms),
            " ms",
            "2.0",
            2.0,
        );
        metric(
            "scale: median amd→stub cycle, host with 500 extra interfaces + 1,000 unrelated state files / clean host",
            format!("{:.3}", h.scale_ratio),
            "",
            "1.05",
            1.05,
        );
        let runs = rss.runs;
        metric(
            &format!("peak RSS, VERSION (max of {runs})"),
            mib(rss.version_kib),
            " MiB",
            "5",
            5.0,
        );
        metric(
            &format!("peak RSS, ADD with the stub delegate (max of {runs})"),
            mib(rss.add_kib),
            " MiB",
            "5",
            5.0,
        );
        let _ = writeln!(
            out,
            "| release binary size (stripped: {stripped}) | {bin_mib} MiB ({} bytes) | ≤ 3 MiB | {} |\n",
            b.size,
            met(&bin_mib, 3.0)
        );
    }

    fn cycle_table(&self, out: &mut String) {
        out.push_str(
            "| ADD+DEL cycle | n | median ms | p90 ms | min ms | max ms | ADD median ms | DEL median ms \
             | max RSS MiB (incl. children) |\n|---|---|---|---|---|---|---|---|---|\n",
        );
        for s in Series::ALL {
            if let Some(x) = self.summaries.get(&s) {
                let t = &x.total;
                let _ = writeln!(
                    out,
                    "| {} | {} | {} | {} | {} | {} | {} | {} | {} |",
                    label(s),
                    t.n,
                    ms(t.median),
                    ms(t.p90),
                    ms(t.min),
                    ms(t.max),
                    ms(x.add_median),
                    ms(x.del_median),
                    mib(x.max_rss_kib)
                );
            }
        }
        out.push('\n');
    }

    fn notes(&self, out: &mut String) {
        let (h, d) = (&self.headline, &self.dumps);
        let version_ms = self
            .summaries
            .get(&Series::Version)
            .map(|v| ms(v.total.median))
            .unwrap_or_default();
        let _ = writeln!(
            out,
            "Also: end-to-end p90 ratio {:.3}; own cost as the median of per-cycle differences {:.2} ms, \
             of which starting the plugin process twice (VERSION + VERSION) ≈ {version_ms} ms; own cost on \
             the scaled host {:.2} ms (ratio of own costs {:.3}, noisier than the cycle ratio above); scale \
             ratio with the 1,000 state files only (no extra interfaces): {:.3}; peak RSS of DEL with the \
             stub {} MiB.",
            h.e2e_ratio_p90,
            h.own_cost_paired_ms,
            h.own_cost_big_ms,
            h.own_ratio,
            h.states_ratio,
            mib(self.rss.del_kib)
        );
        let interval = match h.own_cost_rounds {
            Some(e) => format!(
                "mean {:.3} ms, 95 % interval {:.3}…{:.3} ms over {} rounds of {} cycles",
                e.value, e.lo, e.hi, h.rounds, h.per_round
            ),
            None => format!(
                "no interval ({} complete rounds of {} cycles; -n N for more)",
                h.rounds, h.per_round
            ),
        };
        let _ = writeln!(
            out,
            "Floor: starting the plugin twice (VERSION + VERSION) {:.3} ms + one durable write of a 1 KiB \
             state file (temp file written and fsync'd, renamed, directory fsync'd; timed in the measuring \
             program, same file system) {:.3} ms = {:.3} ms (median of the per-cycle sums); own cost − floor \
             = {:.2} ms. Own cost per round (median amd→stub − median stub alone in the round): {interval}.",
            h.version_ms,
            h.write_ms,
            h.floor_ms,
            h.own_cost_ms - h.floor_ms,
        );
        let _ = writeln!(
            out,
            "Scale diagnostic: on the scaled host an amd→stub cycle takes {:.0} µs longer (median). iproute2 \
             making the same two kernel-filtered route dumps (main table, dev {}, IPv4 + IPv6; {} times each, \
             ip's start-up amortised) takes {} µs per pair on the clean host and {} µs on the scaled one \
             ({:+} µs): the kernel walks the whole main table to find one interface's routes.",
            h.scale_growth_us,
            d.nic,
            d.reps,
            d.clean_us,
            d.big_us,
            d.big_us as i64 - d.clean_us as i64
        );
        out.push_str(
            "Times are wall clock from fork to wait4 of the plugin process, stdout read through a pipe; \
             entering the namespaces (setns) and the between-cycle restore of the bare NIC (host-device DEL \
             leaves it DOWN without addresses) are outside the timed section. Peak RSS is wait4's ru_maxrss of \
             the plugin, which also covers children it waited for (the stub is ~0.6 MiB), as is the table's \
             RSS column, so that includes host-device + static on the end-to-end rows. Raw figures: \
             `target/bench/raw/*.tsv` (add-us del-us add-KiB del-KiB).\n",
        );
    }
}

fn label(s: Series) -> &'static str {
    use Series::{Amd, Bare, Own, Stub, Version};
    use StubHost::{Big, Clean, States};
    match s {
        Bare => "bare host-device + static",
        Amd => "amd-host-device → host-device + static",
        Stub(Clean) => "stub host-device alone",
        Own(Clean) => "amd-host-device → stub",
        Stub(Big) => "stub alone, scaled host",
        Own(Big) => "amd-host-device → stub, scaled host",
        Stub(States) => "stub alone, host with the 1,000 state files only",
        Own(States) => "amd-host-device → stub, host with the 1,000 state files only",
        Version => "amd-host-device VERSION + VERSION (process start-up only)",
    }
}

/// Whether a value as shown (so that "2.00" against 2.0 is met) is within its limit.
fn met(shown: &str, limit: f64) -> &'static str {
    if shown.parse::<f64>().is_ok_and(|v| v <= limit) {
        "yes"
    } else {
        "**no**"
    }
}

/// µs as ms with three decimals.
fn ms(us: f64) -> String {
    format!("{:.3}", us / 1000.0)
}

/// KiB as MiB with two decimals.
fn mib(kib: u64) -> String {
    format!("{:.2}", kib as f64 / 1024.0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::elf::Linkage;
    use crate::stats::summarize;

    fn series_with(total_us: impl Fn(Series) -> u64) -> BTreeMap<Series, Vec<Sample>> {
        Series::ALL
            .iter()
            .map(|&s| {
                let t = total_us(s);
                let v = (0..5)
                    .map(|k| Sample {
                        add_us: t / 2 + k,
                        del_us: t / 2 - k,
                        add_rss_kib: 1024,
                        del_rss_kib: 2048,
                    })
                    .collect();
                (s, v)
            })
            .collect()
    }

    fn totals(s: Series) -> u64 {
        use Series::{Amd, Bare, Own, Stub, Version};
        use StubHost::{Big, Clean, States};
        match s {
            Bare => 40_000,
            Amd => 42_000,
            Stub(_) => 1_000,
            Own(Clean) => 3_000,
            Own(Big) => 3_600,
            Own(States) => 3_060,
            Version => 800,
        }
    }

    /// One durable write per cycle of `series_with`, µs.
    const WRITES: [u64; 5] = [600, 590, 610, 600, 650];

    fn summaries(samples: &BTreeMap<Series, Vec<Sample>>) -> BTreeMap<Series, Summary> {
        samples
            .iter()
            .map(|(&s, v)| (s, summarize(v).unwrap()))
            .collect()
    }

    #[test]
    fn headline_ratios_and_costs() {
        let samples = series_with(totals);
        let h = Headline::compute(&summaries(&samples), &samples, &WRITES, 2).unwrap();
        assert!((h.e2e_ratio - 1.05).abs() < 1e-9);
        assert!((h.own_cost_ms - 2.0).abs() < 1e-9);
        assert!((h.own_cost_paired_ms - 2.0).abs() < 1e-9);
        assert!((h.own_cost_big_ms - 2.6).abs() < 1e-9);
        assert!((h.scale_ratio - 1.2).abs() < 1e-9);
        assert!((h.scale_growth_us - 600.0).abs() < 1e-9);
        assert!((h.states_ratio - 1.02).abs() < 1e-9);
        assert!((h.own_ratio - 1.3).abs() < 1e-9);
        // Version 800 µs + writes 600 µs; rounds of 2 of the 5 cycles: two rounds, own
        // cost 2000 µs in each.
        assert!((h.floor_ms - 1.4).abs() < 1e-9);
        assert!((h.version_ms - 0.8).abs() < 1e-9 && (h.write_ms - 0.6).abs() < 1e-9);
        assert_eq!((h.rounds, h.per_round), (2, 2));
        let e = h.own_cost_rounds.unwrap();
        assert!((e.value - 2.0).abs() < 1e-9 && e.half_width().abs() < 1e-9);
        // One round is no interval.
        let one = Headline::compute(&summaries(&samples), &samples, &WRITES, 3).unwrap();
        assert!(one.own_cost_rounds.is_none());
        assert!(Headline::compute(&summaries(&samples), &samples, &[], 2).is_none());
    }

    #[test]
    fn headline_needs_every_series() {
        let mut samples = series_with(totals);
        samples.remove(&Series::Bare);
        assert!(Headline::compute(&summaries(&samples), &samples, &WRITES, 2).is_none());
    }

    #[test]
    fn report_has_both_tables_and_judges_the_shown_values() {
        let samples = series_with(totals);
        let sum = summaries(&samples);
        let report = Report {
            meta: Meta {
                date: "2026-01-02T03:04Z".into(),
                cpu: "CPU".into(),
                cores: 2,
                kernel: "6.1".into(),
                commit: "abc1234".into(),
                cni_plugins: "1.1.1".into(),
            },
            run: RunInfo {
                cycles: 5,
                warmup: 3,
                seconds: 4,
                load_before: "0.10".into(),
                load_after: "1.00".into(),
            },
            pinning: "plugins pinned to CPU 1, the measuring program to CPU 0".into(),
            headline: Headline::compute(&sum, &samples, &WRITES, 2).unwrap(),
            summaries: sum,
            rss: PeakRss {
                runs: 5,
                version_kib: 1660,
                add_kib: 1700,
                del_kib: 1650,
            },
            binary: Binary {
                shown_path: "target/x/release/amd-host-device".into(),
                size: 1340184,
                elf: Some(ElfInfo {
                    linkage: Linkage::StaticPie,
                    stripped: true,
                }),
            },
            dumps: RouteDumps {
                nic: "nic0".into(),
                reps: 200,
                clean_us: 59,
                big_us: 1569,
            },
        };
        let text = report.render();
        assert!(text.contains("binary `target/x/release/amd-host-device` (static-pie);"));
        assert!(text.contains("| end to end: amd-host-device / bare host-device+static, median ADD+DEL | 1.050 | ≤ 1.05 | yes |"));
        assert!(text.contains("| 2.00 ms | ≤ 2.0 ms | yes |"), "{text}");
        assert!(text.contains("| 1.200 | ≤ 1.05 | **no** |"));
        assert!(text.contains("| peak RSS, VERSION (max of 5) | 1.62 MiB | ≤ 5 MiB | yes |"));
        assert!(text.contains(
            "| release binary size (stripped: yes) | 1.28 MiB (1340184 bytes) | ≤ 3 MiB | yes |"
        ));
        assert!(text.contains(
            "| stub host-device alone | 5 | 1.000 | 1.000 | 1.000 | 1.000 | 0.502 | 0.498 | 2.00 |"
        ));
        assert!(text.contains("(+1510 µs)"));
        assert!(
            text.contains("; plugins pinned to CPU 1, the measuring program to CPU 0; 1-min load")
        );
        assert!(
            text.contains("(VERSION + VERSION) 0.800 ms + one durable write of a 1 KiB state file")
        );
        assert!(
            text.contains("= 1.400 ms (median of the per-cycle sums); own cost − floor = 0.60 ms.")
        );
        assert!(
            text.contains("mean 2.000 ms, 95 % interval 2.000…2.000 ms over 2 rounds of 2 cycles.")
        );
        assert_eq!(text.matches("\n| ").count(), 6 + 9 + 2);
    }
}
