//! The bench's output: a markdown table (stdout and `latest.md`), the same
//! figures as JSON (`latest.json`) and an SVG chart (`latest.svg`).

use std::fmt::Write as _;
use std::path::Path;
use std::time::Duration;

use serde::Serialize;

use crate::cold_start::{ColdStart, median};
use crate::stats::{Samples, ms};

#[derive(Debug, Serialize)]
pub struct LatencyRow {
    pub name: String,
    pub samples: usize,
    pub p50_ms: f64,
    pub p99_ms: f64,
    /// Smallest and largest per-round p50: the noise between rounds.
    pub round_p50_spread_ms: (f64, f64),
    /// What this is compared with, and the ratio of the p50s.
    pub floor: Option<String>,
    pub ratio_to_floor: Option<f64>,
}

impl LatencyRow {
    pub fn new(name: &str, samples: &Samples, floor: Option<(&str, Duration)>) -> Self {
        let (lo, hi) = samples.round_spread();
        Self {
            name: name.to_owned(),
            samples: samples.len(),
            p50_ms: ms(samples.p50()),
            p99_ms: ms(samples.p99()),
            round_p50_spread_ms: (ms(lo), ms(hi)),
            floor: floor.map(|(n, _)| n.to_owned()),
            ratio_to_floor: floor.map(|(_, f)| ms(samples.p50()) / ms(f)),
        }
    }
}

/// The DynamoDB calls of one warm operation, in the order they were made.
#[derive(Debug, Serialize)]
pub struct CallCount {
    pub operation: String,
    pub calls: Vec<String>,
}

impl CallCount {
    pub fn new(operation: &str, calls: Vec<String>) -> Self {
        Self { operation: operation.to_owned(), calls }
    }
}

/// Milliseconds for the latency table: two decimals, three below 0.1 ms
/// (a decision without DynamoDB takes tens of microseconds).
pub fn ms_cell(value: f64) -> String {
    if value < 0.1 { format!("{value:.3}") } else { format!("{value:.2}") }
}

/// DynamoDB calls as the tables show them: in order, or `none`.
pub fn calls_text(calls: &[String]) -> String {
    if calls.is_empty() { "none".into() } else { calls.join(", ") }
}

#[derive(Debug, Serialize)]
pub struct ColdStartResult {
    pub function: String,
    pub runs: usize,
    #[serde(serialize_with = "as_ms")]
    pub to_next_median: Duration,
    #[serde(serialize_with = "as_ms")]
    pub to_response_median: Duration,
    #[serde(serialize_with = "as_ms")]
    pub to_response_min: Duration,
    #[serde(serialize_with = "as_ms")]
    pub to_response_max: Duration,
    pub peak_rss_kib: u64,
}

#[allow(clippy::trivially_copy_pass_by_ref)]
fn as_ms<S: serde::Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_f64(ms(*d))
}

impl ColdStartResult {
    pub fn from_runs(function: &str, runs: &[ColdStart]) -> Self {
        let mut next: Vec<Duration> = runs.iter().map(|r| r.to_first_next).collect();
        let mut response: Vec<Duration> = runs.iter().map(|r| r.to_first_response).collect();
        Self {
            function: function.to_owned(),
            runs: runs.len(),
            to_next_median: median(&mut next),
            to_response_median: median(&mut response),
            to_response_min: response.iter().min().copied().unwrap_or_default(),
            to_response_max: response.iter().max().copied().unwrap_or_default(),
            peak_rss_kib: runs.iter().map(|r| r.peak_rss_kib).max().unwrap_or(0),
        }
    }
}

#[derive(Debug, Serialize)]
pub struct ZipResult {
    pub function: String,
    pub bytes: u64,
    #[serde(serialize_with = "as_ms")]
    pub build_time: Duration,
}

#[derive(Debug, Serialize)]
pub struct Target {
    pub goal: String,
    pub measured: String,
    /// `None`: not measurable yet.
    pub pass: Option<bool>,
}

impl Target {
    pub fn new(target: &str, measured: String, pass: bool) -> Self {
        Self { goal: target.to_owned(), measured, pass: Some(pass) }
    }
}

#[derive(Debug, Serialize)]
pub struct Report {
    pub profile: String,
    pub quick: bool,
    pub machine: String,
    pub latency: Vec<LatencyRow>,
    pub cpu_per_request_ms: Vec<(String, f64)>,
    /// DynamoDB calls of one warm operation each.
    pub dynamodb_calls: Vec<CallCount>,
    pub cold_start: Vec<ColdStartResult>,
    pub zips: Vec<ZipResult>,
    pub targets: Vec<Target>,
}

pub fn machine() -> String {
    let cores = std::thread::available_parallelism().map_or(0, std::num::NonZero::get);
    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|info| {
            info.lines()
                .find(|l| l.starts_with("model name"))
                .map(|l| l.split(':').nth(1).unwrap_or("").trim().to_owned())
        })
        .unwrap_or_else(|| "unknown CPU".into());
    format!("{cores} cores, {cpu}, {}", std::env::consts::ARCH)
}

impl Report {
    pub fn new(
        profile: String,
        quick: bool,
        latency: Vec<LatencyRow>,
        cpu: Vec<(String, Duration)>,
        cold_start: Vec<ColdStartResult>,
        zips: Vec<ZipResult>,
        targets: Vec<Target>,
    ) -> Self {
        Self {
            profile,
            quick,
            machine: machine(),
            latency,
            cpu_per_request_ms: cpu.into_iter().map(|(n, d)| (n, ms(d))).collect(),
            dynamodb_calls: Vec::new(),
            cold_start,
            zips,
            targets,
        }
    }

    #[must_use]
    pub fn with_dynamodb_calls(mut self, calls: Vec<CallCount>) -> Self {
        self.dynamodb_calls = calls;
        self
    }

    pub fn markdown(&self) -> String {
        let mut md = String::new();
        let _ = writeln!(
            md,
            "## Latchkey bench ({} build{}; {})\n",
            self.profile,
            if self.quick { ", quick" } else { "" },
            self.machine
        );
        md.push_str("| operation | samples | p50 ms | p99 ms | round p50 spread ms | vs floor (p50) |\n|---|---|---|---|---|---|\n");
        for r in &self.latency {
            let ratio = match (&r.floor, r.ratio_to_floor) {
                (Some(f), Some(x)) => format!("{x:.2}× {f}"),
                _ => "floor".into(),
            };
            let _ = writeln!(
                md,
                "| {} | {} | {} | {} | {}–{} | {ratio} |",
                r.name,
                r.samples,
                ms_cell(r.p50_ms),
                ms_cell(r.p99_ms),
                ms_cell(r.round_p50_spread_ms.0),
                ms_cell(r.round_p50_spread_ms.1)
            );
        }
        md.push_str("\n| CPU per request | ms |\n|---|---|\n");
        for (name, cpu) in &self.cpu_per_request_ms {
            let _ = writeln!(md, "| {name} | {cpu:.3} |");
        }
        if !self.dynamodb_calls.is_empty() {
            md.push_str("\n| DynamoDB calls (warm) | calls |\n|---|---|\n");
            for c in &self.dynamodb_calls {
                let _ = writeln!(md, "| {} | {} |", c.operation, calls_text(&c.calls));
            }
        }
        md.push_str("\n| cold start | runs | exec → first /next (median) ms | exec → response (median) ms | min–max ms | peak RSS MiB |\n|---|---|---|---|---|---|\n");
        for c in &self.cold_start {
            let _ = writeln!(
                md,
                "| {} | {} | {:.1} | {:.1} | {:.1}–{:.1} | {:.1} |",
                c.function,
                c.runs,
                ms(c.to_next_median),
                ms(c.to_response_median),
                ms(c.to_response_min),
                ms(c.to_response_max),
                c.peak_rss_kib as f64 / 1024.0
            );
        }
        if !self.zips.is_empty() {
            md.push_str("\n| arm64 zip | bytes | MB |\n|---|---|---|\n");
            for z in &self.zips {
                let _ = writeln!(md, "| {} | {} | {:.2} |", z.function, z.bytes, z.bytes as f64 / 1_000_000.0);
            }
        }
        md.push_str("\n| target | measured | result |\n|---|---|---|\n");
        for t in &self.targets {
            let result = match t.pass {
                Some(true) => "pass",
                Some(false) => "**MISS**",
                None => "n/a",
            };
            let _ = writeln!(md, "| {} | {} | {result} |", t.goal, t.measured);
        }
        md
    }

    /// Two panels of horizontal bars, each on its own scale: p50 latency of
    /// each operation against the floors, and cold start of each function.
    pub fn svg(&self) -> String {
        let latency: Vec<(String, f64, &str)> = self
            .latency
            .iter()
            .map(|r| (format!("{} p50", r.name), r.p50_ms, if r.floor.is_none() { "#9aa5b1" } else { "#2f6fde" }))
            .collect();
        let cold: Vec<(String, f64, &str)> = self
            .cold_start
            .iter()
            .map(|c| (format!("{}: exec → first response (median)", c.function), ms(c.to_response_median), "#e0792b"))
            .collect();
        // Labels are right-aligned against the bars: leave room for the
        // longest (about 6.5 px a character at 12 px sans-serif).
        let longest = latency.iter().chain(&cold).map(|(label, ..)| label.chars().count()).max().unwrap_or(0);
        let label_w = (longest as f64 * 6.5 + 20.0).max(330.0).ceil();
        let (bar_w, row_h) = (420.0, 26.0);
        let mut y = 20.0;
        let mut body = String::new();
        for (title, bars) in [
            ("Warm latency, p50 ms (grey: DynamoDB floor of the same run)", &latency),
            ("Cold start under the Runtime API emulator, ms", &cold),
        ] {
            let _ = writeln!(body, r#"<text x="10" y="{y}" font-size="14" font-weight="bold">{title}</text>"#);
            y += 10.0;
            let max = bars.iter().map(|b| b.1).fold(0.001_f64, f64::max);
            for (label, value, color) in bars {
                let width = (value / max * bar_w).max(1.0);
                let _ = writeln!(
                    body,
                    r#"<text x="{lx}" y="{ty}" text-anchor="end">{label}</text><rect x="{label_w}" y="{y}" width="{width:.1}" height="18" fill="{color}"/><text x="{vx:.1}" y="{ty}">{value:.2}</text>"#,
                    lx = label_w - 8.0,
                    ty = y + 13.0,
                    vx = label_w + width + 6.0,
                    label = label.replace('&', "&amp;").replace('<', "&lt;"),
                );
                y += row_h;
            }
            y += 24.0;
        }
        format!(
            r##"<svg xmlns="http://www.w3.org/2000/svg" width="{w}" height="{y}" font-family="sans-serif" font-size="12">
<rect width="100%" height="100%" fill="white"/>
{body}<text x="10" y="{foot}" fill="#555">{profile} build; {machine}</text>
</svg>
"##,
            w = label_w + bar_w + 90.0,
            foot = y - 10.0,
            profile = self.profile,
            machine = self.machine,
        )
    }

    pub fn write(&self, dir: &Path) -> std::io::Result<()> {
        std::fs::create_dir_all(dir)?;
        std::fs::write(dir.join("latest.md"), self.markdown())?;
        std::fs::write(dir.join("latest.json"), serde_json::to_string_pretty(self).map_err(std::io::Error::other)?)?;
        std::fs::write(dir.join("latest.svg"), self.svg())
    }
}
