//! Bench-only guests (`tests/guests/bench-*`): built by the benchmarks that
//! use them, not by the `junction-tests` build script, so `cargo test` never
//! pays for them. Also the timing and reporting helpers the benches share.

// Each bench uses a part of this module.
#![allow(dead_code)]

use std::path::Path;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Builds the guest `package` of `tests/guests` for `wasm32-wasip2` (release,
/// `--locked`) with the extra environment `envs`, in the target directory the
/// other guests use, and returns the component's bytes. Cargo rebuilds only
/// what changed: after the first build of a package, only that crate, and
/// only when its sources or `envs` differ from the previous build.
pub fn build_guest(package: &str, envs: &[(&str, &str)]) -> Vec<u8> {
    let workspace = Path::new(env!("CARGO_MANIFEST_DIR")).join("guests");
    let target_dir = junction_build_support::shared_target_dir(Path::new(env!("OUT_DIR")));
    let shown: Vec<String> = envs.iter().map(|(k, v)| format!("{k}={v} ")).collect();
    eprintln!(
        "building bench-only guest: {}cargo build --release --locked --target {} -p {package} \
         (in tests/guests, target dir {})",
        shown.concat(),
        junction_build_support::TARGET,
        target_dir.display()
    );
    let path = junction_build_support::build_package(&workspace, package, &target_dir, envs)
        .unwrap_or_else(|e| panic!("building bench guest `{package}`: {e}"));
    std::fs::read(&path).unwrap_or_else(|e| panic!("reading {}: {e}", path.display()))
}

/// Wall-clock time and, where `/proc/self/stat` can be read (Linux), the
/// CPU time (user + system, all threads) of this process over one run.
#[derive(Clone, Copy)]
pub struct Sample {
    /// Elapsed wall-clock time.
    pub wall: Duration,
    /// CPU time the process used meanwhile, in 10 ms ticks.
    pub cpu: Option<Duration>,
}

/// Starts timing a run: wall clock and process CPU time.
pub struct Stopwatch {
    wall: Instant,
    cpu: Option<Duration>,
}

impl Stopwatch {
    /// Starts now.
    pub fn start() -> Stopwatch {
        Stopwatch {
            cpu: process_cpu(),
            wall: Instant::now(),
        }
    }

    /// The run's sample.
    pub fn stop(self) -> Sample {
        let wall = self.wall.elapsed();
        let cpu = match (self.cpu, process_cpu()) {
            (Some(before), Some(after)) => Some(after.saturating_sub(before)),
            _ => None,
        };
        Sample { wall, cpu }
    }
}

/// User + system CPU time of this process so far, from `/proc/self/stat`
/// (fields 14 and 15, in clock ticks of 10 ms: `USER_HZ` is 100 on Linux).
fn process_cpu() -> Option<Duration> {
    let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
    // Fields after the command name, which is in parentheses; `state` is field 3.
    let fields: Vec<&str> = stat.rsplit_once(')')?.1.split_whitespace().collect();
    let utime: u64 = fields.get(11)?.parse().ok()?;
    let stime: u64 = fields.get(12)?.parse().ok()?;
    Some(Duration::from_millis((utime + stime) * 10))
}

/// Every sample a benchmark case took, warm-up runs included, so that the
/// bench can print a median and range beside criterion's estimate, and the
/// CPU time the runs used.
#[derive(Default)]
pub struct Timings(Mutex<Vec<Sample>>);

impl Timings {
    /// Records one run and returns its wall-clock time.
    pub fn record(&self, sample: Sample) -> Duration {
        self.0.lock().unwrap().push(sample);
        sample.wall
    }

    /// Prints `label: N runs, median, min, max` of the wall-clock times, and
    /// the mean CPU time per run.
    pub fn report(&self, label: &str) {
        let samples = self.0.lock().unwrap().clone();
        if samples.is_empty() {
            return;
        }
        let mut runs: Vec<Duration> = samples.iter().map(|s| s.wall).collect();
        runs.sort();
        let n = runs.len();
        let median = if n % 2 == 1 {
            runs[n / 2]
        } else {
            (runs[n / 2 - 1] + runs[n / 2]) / 2
        };
        let cpu: Option<Duration> = samples.iter().map(|s| s.cpu).sum();
        let cpu = match cpu {
            Some(total) => format!("; CPU time per run {:.2?}", total / n as u32),
            None => String::new(),
        };
        println!(
            "{label}: {n} runs, median {median:.2?}, min {:.2?}, max {:.2?}{cpu}",
            runs[0],
            runs[n - 1]
        );
    }
}

/// The `q` quantile (0.0 ..= 1.0) of sorted durations, nearest rank.
pub fn quantile(sorted: &[Duration], q: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let rank = (q * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

/// Prints `label: N calls, p50, p90, p99, p99.9, max` of one duration per call.
pub fn report_latencies(label: &str, mut calls: Vec<Duration>) {
    calls.sort();
    let q = |q| quantile(&calls, q);
    println!(
        "{label}: {} calls, p50 {:.2?}, p90 {:.2?}, p99 {:.2?}, p99.9 {:.2?}, max {:.2?}",
        calls.len(),
        q(0.5),
        q(0.9),
        q(0.99),
        q(0.999),
        calls.last().copied().unwrap_or_default()
    );
}

/// CPU time this thread has run so far, from `/proc/thread-self/schedstat`
/// (nanoseconds; Linux). Unlike wall-clock time it does not count the time
/// other processes held the core, so it stays comparable on a busy machine.
pub fn thread_cpu() -> Option<Duration> {
    let stat = std::fs::read_to_string("/proc/thread-self/schedstat").ok()?;
    let ns: u64 = stat.split_whitespace().next()?.parse().ok()?;
    Some(Duration::from_nanos(ns))
}

/// The 1-, 5- and 15-minute load averages from `/proc/loadavg`, as printed there.
pub fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|l| l.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_else(|_| "unknown".into())
}

/// The `echo` test connector as a package, as an operator would upload it.
pub fn echo_package(wasm: Vec<u8>) -> junction_registry::Package {
    let manifest = "[plugin]\nname = \"echo\"\nversion = \"0.1.0\"\nworld = \"connector\"\n\
        wit = \"junction:plugin@0.1.0\"\ndescription = \"bench\"\n\
        operations = [\"noop\", \"echo\", \"version\", \"config\", \"kv\", \"fetch\", \"whoami\", \"env\"]\n\
        triggers = []\n\n[capabilities]\noutbound_hosts = []\nauth = \"none\"\nkv = true\n";
    junction_registry::Package::new(manifest, wasm)
}
