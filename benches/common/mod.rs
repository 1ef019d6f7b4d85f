//! Helpers shared by the benchmarks.
#![allow(dead_code)]

use std::time::Duration;

/// A numeric setting from the environment, or `default`.
pub fn env_number(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// The `p` quantile (0..=1) of sorted durations, in milliseconds.
pub fn percentile(sorted: &[Duration], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i].as_secs_f64() * 1000.0
}

/// Whether the benchmark section `name` runs: all of them unless `SSO_BENCH_ONLY` lists some
/// (comma-separated).
pub fn wanted(name: &str) -> bool {
    std::env::var("SSO_BENCH_ONLY")
        .map(|only| only.split(',').any(|s| s.trim() == name))
        .unwrap_or(true)
}
