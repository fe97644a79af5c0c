//! Per-cycle figures and the statistics the report shows: median, p90 (nearest rank),
//! min and max of the ADD+DEL total, the ADD and DEL medians, the peak RSS, and the
//! median of per-cycle differences between two series.

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
}
