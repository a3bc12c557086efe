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
