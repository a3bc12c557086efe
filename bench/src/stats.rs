//! Samples, percentiles and CPU time.

use std::time::Duration;

/// Latency samples of one operation.
#[derive(Debug, Clone, Default)]
pub struct Samples {
    values: Vec<Duration>,
    /// p50 of each round, to show how much the machine moved between rounds.
    round_medians: Vec<Duration>,
}

impl Samples {
    pub fn extend_round(&mut self, round: Vec<Duration>) {
        if round.is_empty() {
            return;
        }
        self.round_medians.push(percentile(&round, 50.0));
        self.values.extend(round);
    }

    pub fn p50(&self) -> Duration {
        percentile(&self.values, 50.0)
    }

    pub fn p99(&self) -> Duration {
        percentile(&self.values, 99.0)
    }

    pub fn len(&self) -> usize {
        self.values.len()
    }

    /// Smallest and largest per-round median: the run-to-run noise.
    pub fn round_spread(&self) -> (Duration, Duration) {
        let min = self.round_medians.iter().min().copied().unwrap_or_default();
        let max = self.round_medians.iter().max().copied().unwrap_or_default();
        (min, max)
    }
}

/// Nearest-rank percentile.
pub fn percentile(values: &[Duration], pct: f64) -> Duration {
    if values.is_empty() {
        return Duration::ZERO;
    }
    let mut sorted = values.to_vec();
    sorted.sort_unstable();
    #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss, clippy::cast_precision_loss)]
    let rank = ((pct / 100.0) * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

pub fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

/// CPU time of this whole process so far (every thread, user + system), from
/// `/proc/self/task/*/schedstat` (nanoseconds on CPU). `None` off Linux.
pub fn process_cpu() -> Option<Duration> {
    let mut total: u64 = 0;
    for task in std::fs::read_dir("/proc/self/task").ok()? {
        let path = task.ok()?.path().join("schedstat");
        // A thread may exit between listing and reading: skip it.
        let Ok(text) = std::fs::read_to_string(path) else { continue };
        total += text.split_whitespace().next()?.parse::<u64>().ok()?;
    }
    Some(Duration::from_nanos(total))
}

/// CPU time of process `pid` so far (user + system, exited threads
/// included), from /proc/<pid>/stat, in its clock ticks: 10 ms each, as
/// USER_HZ is 100 on Linux. `None` if the process is gone, or off Linux.
pub fn process_cpu_of(pid: u32) -> Option<Duration> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    cpu_ticks(&stat).map(|ticks| Duration::from_millis(ticks * 10))
}

/// utime + stime of a /proc/<pid>/stat line: fields 14 and 15, counted
/// after the command name, which may hold spaces and parentheses.
fn cpu_ticks(stat: &str) -> Option<u64> {
    let mut fields = stat.get(stat.rfind(')')? + 1..)?.split_whitespace().skip(11);
    let user: u64 = fields.next()?.parse().ok()?;
    let system: u64 = fields.next()?.parse().ok()?;
    Some(user + system)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nearest_rank_percentiles() {
        let values: Vec<Duration> = (1..=100).map(Duration::from_millis).collect();
        assert_eq!(percentile(&values, 50.0), Duration::from_millis(50));
        assert_eq!(percentile(&values, 99.0), Duration::from_millis(99));
        assert_eq!(percentile(&values[..1], 99.0), Duration::from_millis(1));
        assert_eq!(percentile(&[], 50.0), Duration::ZERO);
    }

    #[test]
    fn cpu_ticks_of_a_stat_line() {
        let stat = "4242 (a (weird) name) S 1 4242 4242 0 -1 4194560 380 0 0 0 123 45 0 0 20 0 2 0 77 1000 250 18446744073709551615";
        assert_eq!(cpu_ticks(stat), Some(168));
        assert_eq!(cpu_ticks("4242 (x) S 1"), None);
        // This process's own time moves (in 10 ms ticks) as it works.
        let id = std::process::id();
        let before = process_cpu_of(id).expect("Linux");
        let started = std::time::Instant::now();
        let mut x = 0u64;
        while process_cpu_of(id).expect("Linux") == before {
            for i in 0..1_000_000u64 {
                x = x.wrapping_mul(31).wrapping_add(i);
            }
            assert!(started.elapsed() < Duration::from_secs(10), "the CPU time never moved");
        }
        std::hint::black_box(x);
        assert_eq!(process_cpu_of(u32::MAX), None);
    }

    #[test]
    fn process_cpu_time_grows_with_work() {
        let before = process_cpu().expect("Linux");
        let mut x = 0u64;
        for i in 0..20_000_000u64 {
            x = x.wrapping_mul(31).wrapping_add(i);
        }
        std::hint::black_box(x);
        assert!(process_cpu().expect("Linux") > before);
    }
}
