//! Per-cycle figures and the statistics the report shows: median, p90 (nearest rank),
//! min and max of the ADD+DEL total, the ADD and DEL medians, the peak RSS, the median
//! of per-cycle differences between two series, and the interval estimates of a
//! comparison.
//!
//! A comparison is made of rounds: consecutive cycles in which both sides ran,
//! interleaved. Each round gives one paired figure, the difference of the two sides'
//! medians in that round (a median, so one preempted cycle does not move it; paired,
//! so drift of the machine between rounds cancels). The rounds' figures are then
//! summarised by their mean with a 95 % Student t interval, and a percentile bootstrap
//! interval as a check that does not assume normality.

/// One recorded cycle: the two commands' wall-clock times and peak RSS.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Sample {
    pub add_us: u64,
    pub del_us: u64,
    pub add_rss_kib: u64,
    pub del_rss_kib: u64,
}

impl Sample {
    pub fn total_us(&self) -> u64 {
        self.add_us + self.del_us
    }

    /// Its line in a raw file: `add-us del-us add-maxrss-KiB del-maxrss-KiB`.
    pub fn raw_line(&self) -> String {
        format!(
            "{} {} {} {}",
            self.add_us, self.del_us, self.add_rss_kib, self.del_rss_kib
        )
    }
}

/// Order statistics of some values (in the values' unit).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Quantiles {
    pub n: usize,
    /// The middle value, or the mean of the two middle ones.
    pub median: f64,
    /// Nearest rank: the ⌈0.9·n⌉-th smallest value.
    pub p90: f64,
    pub min: f64,
    pub max: f64,
}

/// The quantiles of `values`; `None` when there are none.
pub fn quantiles(values: &[f64]) -> Option<Quantiles> {
    let mut v = values.to_vec();
    v.sort_by(f64::total_cmp);
    let n = v.len();
    Some(Quantiles {
        n,
        median: median_of_sorted(&v)?,
        p90: v[nearest_rank(n, 9, 10) - 1],
        min: *v.first()?,
        max: *v.last()?,
    })
}

fn median_of_sorted(v: &[f64]) -> Option<f64> {
    let n = v.len();
    match n {
        0 => None,
        _ if n % 2 == 1 => Some(v[n / 2]),
        _ => Some((v[n / 2 - 1] + v[n / 2]) / 2.0),
    }
}

/// ⌈n·num/den⌉, at least 1: the 1-based rank of the num/den quantile.
fn nearest_rank(n: usize, num: usize, den: usize) -> usize {
    (n * num).div_ceil(den).max(1)
}

/// What the report shows of one series, in µs and KiB.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Summary {
    /// Of the ADD+DEL totals.
    pub total: Quantiles,
    pub add_median: f64,
    pub del_median: f64,
    /// The largest peak RSS of any ADD or DEL.
    pub max_rss_kib: u64,
}

/// The summary of a series' samples; `None` when there are none.
pub fn summarize(samples: &[Sample]) -> Option<Summary> {
    let of = |f: fn(&Sample) -> u64| samples.iter().map(|s| f(s) as f64).collect::<Vec<_>>();
    Some(Summary {
        total: quantiles(&of(Sample::total_us))?,
        add_median: quantiles(&of(|s| s.add_us))?.median,
        del_median: quantiles(&of(|s| s.del_us))?.median,
        max_rss_kib: samples
            .iter()
            .map(|s| s.add_rss_kib.max(s.del_rss_kib))
            .max()?,
    })
}

/// The median over cycles of `b`'s total minus `a`'s total in the same cycle (µs);
/// `None` when either series is empty.
pub fn paired_median(a: &[Sample], b: &[Sample]) -> Option<f64> {
    let diffs: Vec<f64> = a
        .iter()
        .zip(b)
        .map(|(a, b)| b.total_us() as f64 - a.total_us() as f64)
        .collect();
    Some(quantiles(&diffs)?.median)
}

/// The median of `values`; `None` when there are none.
pub fn median(values: &[f64]) -> Option<f64> {
    quantiles(values).map(|q| q.median)
}

/// Per round of `per_round` consecutive cycles: median of `b`'s totals minus median of
/// `a`'s in the same cycles (µs). A trailing incomplete round is left out; so are
/// cycles beyond the shorter series.
pub fn round_differences(a: &[Sample], b: &[Sample], per_round: usize) -> Vec<f64> {
    let n = a.len().min(b.len());
    if per_round == 0 {
        return Vec::new();
    }
    let totals = |s: &[Sample]| s.iter().map(|x| x.total_us() as f64).collect::<Vec<_>>();
    a[..n]
        .chunks_exact(per_round)
        .zip(b[..n].chunks_exact(per_round))
        .filter_map(|(ra, rb)| Some(median(&totals(rb))? - median(&totals(ra))?))
        .collect()
}

/// Per round of `per_round` consecutive cycles, B − A compared like with like:
/// `a_first[k]` says whether A ran before B in cycle k. The difference of medians is
/// taken among the cycles where each ran first (B first vs A first) and among those
/// where each ran second, and the two are averaged (µs). So an effect of the position
/// itself (on a loaded machine the first of a pair can be slower by milliseconds)
/// cancels within the round, and each median is of one population, where a median over
/// a mix of fast and slow positions would fall in the gap between them. A round
/// without both orders is left out, as are a trailing incomplete round and cycles
/// beyond the shortest input.
pub fn balanced_round_differences(
    a: &[Sample],
    b: &[Sample],
    a_first: &[bool],
    per_round: usize,
) -> Vec<f64> {
    let n = a.len().min(b.len()).min(a_first.len());
    if per_round == 0 {
        return Vec::new();
    }
    let where_a_first = |s: &[Sample], order: &[bool], want: bool| {
        let v: Vec<f64> = s
            .iter()
            .zip(order)
            .filter(|(_, &f)| f == want)
            .map(|(x, _)| x.total_us() as f64)
            .collect();
        median(&v)
    };
    a[..n]
        .chunks_exact(per_round)
        .zip(b[..n].chunks_exact(per_round))
        .zip(a_first[..n].chunks_exact(per_round))
        .filter_map(|((ra, rb), f)| {
            let firsts = where_a_first(rb, f, false)? - where_a_first(ra, f, true)?;
            let seconds = where_a_first(rb, f, true)? - where_a_first(ra, f, false)?;
            Some((firsts + seconds) / 2.0)
        })
        .collect()
}

/// A two-sided 95 % confidence interval around an estimate.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Estimate {
    pub value: f64,
    pub lo: f64,
    pub hi: f64,
}

impl Estimate {
    pub fn half_width(&self) -> f64 {
        (self.hi - self.lo) / 2.0
    }

    /// Whether the interval leaves out zero (a difference is detected).
    pub fn excludes_zero(&self) -> bool {
        self.lo > 0.0 || self.hi < 0.0
    }

    /// The same estimate times `factor` (a change of unit).
    pub fn scaled(&self, factor: f64) -> Estimate {
        Estimate {
            value: self.value * factor,
            lo: self.lo * factor,
            hi: self.hi * factor,
        }
    }

    /// The same estimate in percent of `base`.
    pub fn percent_of(&self, base: f64) -> Estimate {
        self.scaled(100.0 / base)
    }
}

pub fn mean(values: &[f64]) -> Option<f64> {
    (!values.is_empty()).then(|| values.iter().sum::<f64>() / values.len() as f64)
}

/// The sample standard deviation (n − 1 in the denominator); `None` below two values.
pub fn sample_sd(values: &[f64]) -> Option<f64> {
    let m = mean(values)?;
    let n = values.len();
    (n >= 2).then(|| {
        let ss: f64 = values.iter().map(|x| (x - m) * (x - m)).sum();
        (ss / (n - 1) as f64).sqrt()
    })
}

/// The 97.5 % quantile of Student's t distribution with `df` degrees of freedom (the
/// factor of a two-sided 95 % interval): exact to three decimals from a table up to 30,
/// then the Cornish-Fisher expansion around the normal quantile, which is closer than
/// that beyond 30.
pub fn t_975(df: usize) -> f64 {
    const TABLE: [f64; 30] = [
        12.706, 4.303, 3.182, 2.776, 2.571, 2.447, 2.365, 2.306, 2.262, 2.228, 2.201, 2.179, 2.160,
        2.145, 2.131, 2.120, 2.110, 2.101, 2.093, 2.086, 2.080, 2.074, 2.069, 2.064, 2.060, 2.056,
        2.052, 2.048, 2.045, 2.042,
    ];
    match df {
        0 => f64::INFINITY,
        1..=30 => TABLE[df - 1],
        _ => {
            let (z, v) = (1.959_963_985_f64, df as f64);
            let (z3, z5, z7) = (z.powi(3), z.powi(5), z.powi(7));
            z + (z3 + z) / (4.0 * v)
                + (5.0 * z5 + 16.0 * z3 + 3.0 * z) / (96.0 * v * v)
                + (3.0 * z7 + 19.0 * z5 + 17.0 * z3 - 15.0 * z) / (384.0 * v * v * v)
        }
    }
}

/// The mean of `values` with its 95 % Student t interval; `None` below two values.
pub fn t_interval(values: &[f64]) -> Option<Estimate> {
    let m = mean(values)?;
    let sd = sample_sd(values)?;
    let n = values.len();
    let half = t_975(n - 1) * sd / (n as f64).sqrt();
    Some(Estimate {
        value: m,
        lo: m - half,
        hi: m + half,
    })
}

/// The mean of `values` with a 95 % percentile-bootstrap interval from `resamples`
/// resamples (with replacement), drawn from a fixed-seed generator so that the same
/// figures always give the same interval; `None` without values.
pub fn bootstrap_interval(values: &[f64], resamples: usize, seed: u64) -> Option<Estimate> {
    let m = mean(values)?;
    let n = values.len();
    let mut rng = SplitMix64(seed);
    let mut means: Vec<f64> = (0..resamples.max(1))
        .map(|_| (0..n).map(|_| values[rng.below(n)]).sum::<f64>() / n as f64)
        .collect();
    means.sort_by(f64::total_cmp);
    let at = |p: f64| means[((p * means.len() as f64) as usize).min(means.len() - 1)];
    Some(Estimate {
        value: m,
        lo: at(0.025),
        hi: at(0.975),
    })
}

/// A small, well-mixed generator (Steele, Lea, Flood: SplitMix64): enough for resampling
/// and no dependency.
struct SplitMix64(u64);

impl SplitMix64 {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// Uniform in 0..n (n ≥ 1), without modulo bias worth speaking of for small n.
    fn below(&mut self, n: usize) -> usize {
        ((u128::from(self.next()) * n as u128) >> 64) as usize
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample(add_us: u64, del_us: u64) -> Sample {
        Sample {
            add_us,
            del_us,
            add_rss_kib: 0,
            del_rss_kib: 0,
        }
    }

    #[test]
    fn median_odd_and_even() {
        assert_eq!(quantiles(&[3.0, 1.0, 2.0]).unwrap().median, 2.0);
        assert_eq!(quantiles(&[4.0, 1.0, 3.0, 2.0]).unwrap().median, 2.5);
        assert_eq!(quantiles(&[7.0]).unwrap().median, 7.0);
    }

    #[test]
    fn p90_is_the_nearest_rank() {
        let ten: Vec<f64> = (1..=10).map(f64::from).collect();
        assert_eq!(quantiles(&ten).unwrap().p90, 9.0);
        let eleven: Vec<f64> = (1..=11).map(f64::from).collect();
        assert_eq!(quantiles(&eleven).unwrap().p90, 10.0);
        let fifty: Vec<f64> = (1..=50).rev().map(f64::from).collect();
        assert_eq!(quantiles(&fifty).unwrap().p90, 45.0);
        assert_eq!(quantiles(&[5.0]).unwrap().p90, 5.0);
        assert_eq!(quantiles(&[5.0, 6.0]).unwrap().p90, 6.0);
    }

    #[test]
    fn nearest_rank_is_exact_for_every_n() {
        for n in 1..=1000 {
            let k = nearest_rank(n, 9, 10);
            assert!(k * 10 >= 9 * n && (k - 1) * 10 < 9 * n, "n={n} k={k}");
        }
    }

    #[test]
    fn min_max_and_count() {
        let q = quantiles(&[2.0, -1.0, 8.0]).unwrap();
        assert_eq!((q.n, q.min, q.max), (3, -1.0, 8.0));
        assert!(quantiles(&[]).is_none());
    }

    #[test]
    fn summary_of_totals_parts_and_rss() {
        let mut s = vec![sample(100, 50), sample(300, 10), sample(200, 30)];
        s[1].del_rss_kib = 900;
        s[2].add_rss_kib = 700;
        let sum = summarize(&s).unwrap();
        assert_eq!(sum.total.median, 230.0);
        assert_eq!((sum.total.min, sum.total.max), (150.0, 310.0));
        assert_eq!(sum.add_median, 200.0);
        assert_eq!(sum.del_median, 30.0);
        assert_eq!(sum.max_rss_kib, 900);
        assert!(summarize(&[]).is_none());
    }

    #[test]
    fn paired_median_pairs_cycle_by_cycle() {
        // Per cycle b - a: 10, 1000, 20 -> median 20, whereas the difference of the
        // medians would be 320 - 200 = 120.
        let a = [sample(100, 0), sample(200, 0), sample(300, 0)];
        let b = [sample(110, 0), sample(1200, 0), sample(320, 0)];
        assert_eq!(paired_median(&a, &b), Some(20.0));
        assert_eq!(paired_median(&a, &[]), None);
    }

    #[test]
    fn raw_line_format() {
        let s = Sample {
            add_us: 1,
            del_us: 2,
            add_rss_kib: 3,
            del_rss_kib: 4,
        };
        assert_eq!(s.raw_line(), "1 2 3 4");
        assert_eq!(s.total_us(), 3);
    }

    fn totals(us: &[u64]) -> Vec<Sample> {
        us.iter().map(|&t| sample(t, 0)).collect()
    }

    #[test]
    fn round_differences_are_medians_paired_round_by_round() {
        // Two rounds of three; round 1: medians 20 vs 25; round 2: 90 vs 85. The
        // outlier 900 does not move round 1's median; the last, incomplete round is
        // left out.
        let a = totals(&[10, 20, 30, 100, 90, 80, 5]);
        let b = totals(&[25, 900, 15, 85, 95, 80, 7]);
        assert_eq!(round_differences(&a, &b, 3), [5.0, -5.0]);
        assert_eq!(round_differences(&a, &b[..3], 3), [5.0]);
        assert!(round_differences(&a, &b, 0).is_empty());
        assert!(round_differences(&a, &b, 8).is_empty());
    }

    #[test]
    fn balanced_round_differences_compare_like_with_like() {
        // One round of 8 cycles, ABBA: A first in cycles 0, 3, 4, 7. Whoever runs first
        // takes 5000 µs longer; B costs 100 more than A; small jitter on top.
        let a_first = [true, false, false, true, true, false, false, true];
        let jitter = [0, 30, -20, 10, -10, 20, 0, -30];
        let cost = |base: i64, first: bool, k: usize| {
            (base + if first { 5000 } else { 0 } + jitter[k]) as u64
        };
        let a: Vec<Sample> = (0..8)
            .map(|k| sample(cost(2000, a_first[k], k), 0))
            .collect();
        let b: Vec<Sample> = (0..8)
            .map(|k| sample(cost(2100, !a_first[k], k), 0))
            .collect();
        // Firsts: B 7110 vs A 6995 (+115); seconds: B 2095 vs A 2010 (+85): +100.
        assert_eq!(balanced_round_differences(&a, &b, &a_first, 8), [100.0]);
        // The plain medians fall in the gap between the positions, (2030 + 6970) / 2 and
        // (2110 + 7080) / 2, and carry whatever jitter the values at its edges have.
        assert_eq!(round_differences(&a, &b, 8), [95.0]);
        // A round with only one order gives nothing; so does a partial round.
        assert!(balanced_round_differences(&a[..1], &b[..1], &a_first[..1], 1).is_empty());
        assert!(balanced_round_differences(&a, &b, &a_first, 16).is_empty());
        assert_eq!(
            balanced_round_differences(&a, &b, &a_first[..4], 4).len(),
            1
        );
    }

    #[test]
    fn mean_and_sample_sd() {
        assert_eq!(mean(&[1.0, 2.0, 6.0]), Some(3.0));
        assert_eq!(mean(&[]), None);
        // Deviations -2, -1, 3: sum of squares 14, / (3 - 1) = 7.
        assert!((sample_sd(&[1.0, 2.0, 6.0]).unwrap() - 7f64.sqrt()).abs() < 1e-12);
        assert_eq!(sample_sd(&[5.0]), None);
    }

    #[test]
    fn t_quantiles_match_the_tables() {
        assert_eq!(t_975(1), 12.706);
        assert_eq!(t_975(10), 2.228);
        assert_eq!(t_975(30), 2.042);
        // Beyond the table, the expansion against published values to three decimals.
        for (df, want) in [(40, 2.021), (60, 2.000), (120, 1.980), (1000, 1.962)] {
            assert!((t_975(df) - want).abs() < 0.0015, "df {df}: {}", t_975(df));
        }
        // It joins the table smoothly and falls towards the normal quantile.
        assert!(t_975(31) < t_975(30) && t_975(31) > 2.03);
        assert!(t_975(1_000_000) > 1.9599 && t_975(1_000_000) < 1.9601);
        assert!(t_975(0).is_infinite());
    }

    #[test]
    fn t_interval_by_hand() {
        // mean 3, sd sqrt(7), n 3: half-width 4.303 * sqrt(7) / sqrt(3).
        let e = t_interval(&[1.0, 2.0, 6.0]).unwrap();
        let half = 4.303 * 7f64.sqrt() / 3f64.sqrt();
        assert_eq!(e.value, 3.0);
        assert!((e.lo - (3.0 - half)).abs() < 1e-9 && (e.hi - (3.0 + half)).abs() < 1e-9);
        assert!((e.half_width() - half).abs() < 1e-9);
        assert!(!e.excludes_zero());
        assert!(t_interval(&[4.0]).is_none());
        let flat = t_interval(&[2.0, 2.0, 2.0]).unwrap();
        assert_eq!((flat.lo, flat.hi), (2.0, 2.0));
        assert!(flat.excludes_zero());
    }

    #[test]
    fn percent_of_a_base() {
        let e = Estimate {
            value: 13.0,
            lo: -6.5,
            hi: 26.0,
        };
        assert_eq!(
            e.percent_of(1300.0),
            Estimate {
                value: 1.0,
                lo: -0.5,
                hi: 2.0
            }
        );
    }

    #[test]
    fn bootstrap_is_repeatable_and_brackets_the_mean() {
        let v: Vec<f64> = (0..40).map(|k| f64::from((k * 37) % 23) - 11.0).collect();
        let a = bootstrap_interval(&v, 2000, 7).unwrap();
        assert_eq!(a, bootstrap_interval(&v, 2000, 7).unwrap());
        assert!(a.lo < a.value && a.value < a.hi);
        // For well-behaved data it agrees with the t interval to within a fifth.
        let t = t_interval(&v).unwrap();
        assert!(
            (a.half_width() / t.half_width() - 1.0).abs() < 0.2,
            "{a:?} vs {t:?}"
        );
        let flat = bootstrap_interval(&[3.0; 10], 100, 1).unwrap();
        assert_eq!((flat.lo, flat.value, flat.hi), (3.0, 3.0, 3.0));
        assert!(bootstrap_interval(&[], 100, 1).is_none());
    }

    #[test]
    fn the_generator_covers_its_range_evenly() {
        let mut rng = SplitMix64(1);
        let mut counts = [0u32; 5];
        for _ in 0..50_000 {
            counts[rng.below(5)] += 1;
        }
        assert!(
            counts.iter().all(|&c| (9_500..10_500).contains(&c)),
            "{counts:?}"
        );
    }
}
