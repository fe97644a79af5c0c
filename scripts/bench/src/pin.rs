//! Pinning: this program to one CPU, every plugin process (and what it starts, which
//! inherits the mask) to another.
//!
//! Why: on a 2-core VM the scheduler moves a short-lived process between the cores
//! while it runs, and each move costs it its warm caches; whether that happens to the
//! A or the B side of a comparison is luck, and that luck is most of the A/A spread.
//! With the plugins on a CPU of their own and this program (and the `ip` checks it
//! runs between cycles) on another, every timed run starts and ends on the same core.

use std::io;

/// Where things run: the CPU this program stays on and the one the plugins run on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Pinning {
    pub harness_cpu: usize,
    pub plugin_cpu: usize,
}

/// What the command line asks for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PinRequest {
    /// Plugins on the last CPU this process may use, this program on the first.
    Auto,
    /// Plugins on this CPU, this program on the first other allowed one.
    PluginCpu(usize),
    /// No pinning at all.
    Off,
}

impl PinRequest {
    /// `auto`, `off` or a CPU number.
    pub fn parse(value: &str) -> Option<PinRequest> {
        match value {
            "auto" => Some(PinRequest::Auto),
            "off" | "none" => Some(PinRequest::Off),
            n => n.parse().ok().map(PinRequest::PluginCpu),
        }
    }
}

/// The two CPUs to use among `allowed` (sorted CPU numbers), or why there are none.
pub fn choose(request: PinRequest, allowed: &[usize]) -> Result<Option<Pinning>, String> {
    let plugin_cpu = match request {
        PinRequest::Off => return Ok(None),
        PinRequest::Auto => match allowed.last() {
            Some(&c) => c,
            None => return Ok(None),
        },
        PinRequest::PluginCpu(c) if allowed.contains(&c) => c,
        PinRequest::PluginCpu(c) => {
            return Err(format!(
                "--pin {c}: this process may only run on CPUs {allowed:?}"
            ))
        }
    };
    // With a single CPU both share it: still no migrations.
    let harness_cpu = allowed
        .iter()
        .copied()
        .find(|&c| c != plugin_cpu)
        .unwrap_or(plugin_cpu);
    Ok(Some(Pinning {
        harness_cpu,
        plugin_cpu,
    }))
}

/// The CPUs this process may run on, sorted.
pub fn allowed_cpus() -> io::Result<Vec<usize>> {
    // SAFETY: cpu_set_t is plain old data, for which all zeroes is the empty set.
    let mut set: libc::cpu_set_t = unsafe { std::mem::zeroed() };
    // SAFETY: the pointer is to a live local of the size passed.
    let r = unsafe { libc::sched_getaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &mut set) };
    if r != 0 {
        return Err(io::Error::last_os_error());
    }
    let max = 8 * std::mem::size_of::<libc::cpu_set_t>();
    // SAFETY: every index is below the set's capacity in bits.
    Ok((0..max)
        .filter(|&c| unsafe { libc::CPU_ISSET(c, &set) })
        .collect())
}

/// The affinity mask holding only `cpu`; built before a fork so that the child only
/// has to make the system call.
pub fn single_cpu_set(cpu: usize) -> libc::cpu_set_t {
    // SAFETY: all zeroes is the empty set; CPU_SET indexes the set's array (a CPU number
    // past its end panics, it does not write outside it).
    unsafe {
        let mut set: libc::cpu_set_t = std::mem::zeroed();
        libc::CPU_SET(cpu, &mut set);
        set
    }
}

/// Restricts the calling thread (this process: it has one) to `set`. Async-signal-safe
/// (a bare system call), so it may run between fork and exec.
pub fn apply(set: &libc::cpu_set_t) -> io::Result<()> {
    // SAFETY: the pointer is to a live cpu_set_t of the size passed.
    let r = unsafe { libc::sched_setaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), set) };
    if r == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

impl Pinning {
    /// How the report says it.
    pub fn describe(pinning: Option<Pinning>) -> String {
        match pinning {
            Some(p) if p.plugin_cpu == p.harness_cpu => {
                format!("plugins and this program pinned to CPU {}", p.plugin_cpu)
            }
            Some(p) => format!(
                "plugins pinned to CPU {}, the measuring program to CPU {}",
                p.plugin_cpu, p.harness_cpu
            ),
            None => "not pinned".into(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn auto_puts_the_plugins_on_the_last_cpu_and_this_program_on_the_first() {
        let p = choose(PinRequest::Auto, &[0, 1]).unwrap().unwrap();
        assert_eq!((p.plugin_cpu, p.harness_cpu), (1, 0));
        let p = choose(PinRequest::Auto, &[2, 5, 7]).unwrap().unwrap();
        assert_eq!((p.plugin_cpu, p.harness_cpu), (7, 2));
    }

    #[test]
    fn a_chosen_cpu_must_be_allowed_and_the_program_goes_elsewhere() {
        let p = choose(PinRequest::PluginCpu(0), &[0, 1]).unwrap().unwrap();
        assert_eq!((p.plugin_cpu, p.harness_cpu), (0, 1));
        assert!(choose(PinRequest::PluginCpu(3), &[0, 1]).is_err());
    }

    #[test]
    fn one_cpu_is_shared_and_off_is_off() {
        let p = choose(PinRequest::Auto, &[4]).unwrap().unwrap();
        assert_eq!((p.plugin_cpu, p.harness_cpu), (4, 4));
        assert_eq!(choose(PinRequest::Off, &[0, 1]).unwrap(), None);
        assert_eq!(choose(PinRequest::Auto, &[]).unwrap(), None);
    }

    #[test]
    fn parses_auto_off_and_numbers() {
        assert_eq!(PinRequest::parse("auto"), Some(PinRequest::Auto));
        assert_eq!(PinRequest::parse("off"), Some(PinRequest::Off));
        assert_eq!(PinRequest::parse("1"), Some(PinRequest::PluginCpu(1)));
        assert_eq!(PinRequest::parse("x"), None);
    }

    #[test]
    fn this_process_may_run_somewhere_and_a_mask_holds_one_cpu() {
        let allowed = allowed_cpus().unwrap();
        assert!(!allowed.is_empty());
        let set = single_cpu_set(3);
        let max = 8 * std::mem::size_of::<libc::cpu_set_t>();
        // SAFETY: every index is below the set's capacity in bits.
        let members: Vec<usize> = (0..max)
            .filter(|&c| unsafe { libc::CPU_ISSET(c, &set) })
            .collect();
        assert_eq!(members, [3]);
    }
}
