//! The nine series and the order they run in, cycle by cycle.
//!
//! Every cycle runs each series once. Within each pair the order alternates: bare and
//! amd swap every cycle, each stub/amd→stub pair runs in an ABBA pattern (own first,
//! stub first, stub first, own first, ...), and the order of the three stub hosts
//! rotates, so drift and warm caches hit every side alike.

/// The three hosts where amd-host-device runs with the stub delegate.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum StubHost {
    /// Only the benchmark's NIC.
    Clean,
    /// 500 extra interfaces and 1,000 unrelated attachments in the state dir.
    Big,
    /// Only the 1,000 unrelated attachments (tells the two causes of `Big` apart).
    States,
}

use StubHost::{Big, Clean, States};

/// One series of timed cycles (one raw file, one row of the table).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Series {
    /// The reference host-device + static, end to end.
    Bare,
    /// amd-host-device delegating to the reference host-device + static.
    Amd,
    /// The stub host-device alone.
    Stub(StubHost),
    /// amd-host-device delegating to the stub.
    Own(StubHost),
    /// amd-host-device VERSION twice: the cost of starting the process.
    Version,
}

use Series::{Amd, Bare, Own, Stub, Version};

impl Series {
    /// Every series, in the order of the report's table.
    pub const ALL: [Series; 9] = [
        Bare,
        Amd,
        Stub(Clean),
        Own(Clean),
        Stub(Big),
        Own(Big),
        Stub(States),
        Own(States),
        Version,
    ];

    /// The name of its raw file (`target/bench/raw/<name>.tsv`).
    pub fn name(self) -> &'static str {
        match self {
            Bare => "bare",
            Amd => "amd",
            Stub(Clean) => "stub_clean",
            Own(Clean) => "own_clean",
            Stub(Big) => "stub_big",
            Own(Big) => "own_big",
            Stub(States) => "stub_states",
            Own(States) => "own_states",
            Version => "version",
        }
    }

    /// The world (host + pod namespaces, config, state dir) it runs in.
    pub fn world(self) -> &'static str {
        match self {
            Bare => "e2e_bare",
            Amd => "e2e_amd",
            Stub(Clean) | Own(Clean) | Version => "own_clean",
            Stub(Big) | Own(Big) => "own_big",
            Stub(States) | Own(States) => "own_states",
        }
    }

    /// The two commands of one cycle.
    pub fn commands(self) -> [&'static str; 2] {
        match self {
            Version => ["VERSION", "VERSION"],
            _ => ["ADD", "DEL"],
        }
    }
}

/// Cycle numbers, 1-based, with whether each one is recorded: the first `warmup`
/// cycles run exactly like the others but are not.
pub fn cycles(warmup: usize, timed: usize) -> impl Iterator<Item = (usize, bool)> {
    (1..=warmup + timed).map(move |i| (i, i > warmup))
}

/// The series of cycle `i` (1-based), in the order they run.
pub fn cycle_order(i: usize) -> Vec<Series> {
    let mut order = Vec::with_capacity(Series::ALL.len());
    order.extend(if i % 2 == 1 { [Bare, Amd] } else { [Amd, Bare] });
    order.push(Version);
    for host in host_rotation(i) {
        order.extend(if (i / 2) % 2 == 1 {
            [Stub(host), Own(host)]
        } else {
            [Own(host), Stub(host)]
        });
    }
    order
}

fn host_rotation(i: usize) -> [StubHost; 3] {
    match i % 3 {
        0 => [Clean, Big, States],
        1 => [Big, States, Clean],
        _ => [States, Clean, Big],
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn position(order: &[Series], s: Series) -> usize {
        order.iter().position(|&x| x == s).unwrap()
    }

    #[test]
    fn every_cycle_runs_every_series_once() {
        for i in 1..=12 {
            let mut order = cycle_order(i);
            order.sort();
            let mut all = Series::ALL.to_vec();
            all.sort();
            assert_eq!(order, all, "cycle {i}");
        }
    }

    #[test]
    fn bare_and_amd_swap_every_cycle() {
        for i in 1..=12 {
            let order = cycle_order(i);
            let bare_first = position(&order, Bare) < position(&order, Amd);
            assert_eq!(bare_first, i % 2 == 1, "cycle {i}");
        }
    }

    #[test]
    fn stub_pairs_run_abba() {
        let own_first: Vec<bool> = (1..=8)
            .map(|i| {
                let order = cycle_order(i);
                position(&order, Own(Clean)) < position(&order, Stub(Clean))
            })
            .collect();
        assert_eq!(
            own_first,
            [true, false, false, true, true, false, false, true]
        );
        for i in 1..=12 {
            let order = cycle_order(i);
            for host in [Clean, Big, States] {
                let p = position(&order, Own(host));
                let q = position(&order, Stub(host));
                assert_eq!(p.abs_diff(q), 1, "cycle {i}: a pair runs back to back");
            }
        }
    }

    #[test]
    fn stub_hosts_rotate() {
        let firsts: Vec<StubHost> = (1..=3)
            .map(|i| match cycle_order(i)[3] {
                Stub(h) | Own(h) => h,
                other => panic!("cycle {i} starts its stub pairs with {other:?}"),
            })
            .collect();
        assert_eq!(firsts, [Big, States, Clean]);
    }

    #[test]
    fn warmup_cycles_come_first_and_are_not_recorded() {
        let all: Vec<(usize, bool)> = cycles(3, 2).collect();
        assert_eq!(
            all,
            [(1, false), (2, false), (3, false), (4, true), (5, true)]
        );
        assert_eq!(cycles(0, 2).filter(|&(_, rec)| rec).count(), 2);
    }

    #[test]
    fn names_and_worlds() {
        let names: Vec<&str> = Series::ALL.iter().map(|s| s.name()).collect();
        assert_eq!(
            names,
            [
                "bare",
                "amd",
                "stub_clean",
                "own_clean",
                "stub_big",
                "own_big",
                "stub_states",
                "own_states",
                "version"
            ]
        );
        assert_eq!(Version.world(), "own_clean");
        assert_eq!(Version.commands(), ["VERSION", "VERSION"]);
        assert_eq!(Own(Big).commands(), ["ADD", "DEL"]);
    }
}
