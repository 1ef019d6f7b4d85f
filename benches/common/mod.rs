//! Helpers shared by the benchmarks.
#![allow(dead_code)]

use std::time::Duration;

use serde_json::{Value, json};
use sso_operator::store::{Store, UserInput};

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

/// User `i` of a benchmark population (`User000042@Example.com`), as Okta would provision it.
pub fn user(i: usize) -> UserInput {
    UserInput {
        user_name: format!("User{i:06}@Example.com"),
        external_id: Some(format!("ext-{i}")),
        active: true,
        resource: json!({
            "name": { "givenName": "User", "familyName": format!("N{i}") },
            "emails": [{ "value": format!("user{i:06}@example.com"), "type": "work", "primary": true }],
            "displayName": format!("User {i}")
        }),
        scim_managed: true,
    }
}

/// Stores users `0..users` in `tenant` with eight concurrent writers, as several SCIM
/// requests would.
pub async fn load_users(store: &Store, tenant: &str, users: usize) {
    let writers = 8;
    let mut tasks = Vec::new();
    for w in 0..writers {
        let (store, tenant) = (store.clone(), tenant.to_owned());
        tasks.push(tokio::spawn(async move {
            for i in (w..users).step_by(writers) {
                store.create_user(&tenant, user(i)).await.expect("insert");
            }
        }));
    }
    for t in tasks {
        t.await.expect("writer");
    }
}

/// Writes `<name>.json` (the results with the machine they ran on) and `<name>.md` (the
/// table) into `SSO_BENCH_OUT`, by default `bench/results/`, and prints the table.
pub fn write_results(name: &str, benchmark: &str, results: &Value, table: &str) {
    let out_dir = std::path::PathBuf::from(
        std::env::var("SSO_BENCH_OUT").unwrap_or_else(|_| "bench/results".into()),
    );
    std::fs::create_dir_all(&out_dir).expect("results folder");
    let machine = json!({
        "cpus": std::thread::available_parallelism().map(|n| n.get()).unwrap_or(0),
        "os": std::env::consts::OS,
        "arch": std::env::consts::ARCH,
    });
    let report = json!({ "benchmark": benchmark, "machine": machine, "results": results });
    std::fs::write(
        out_dir.join(format!("{name}.json")),
        serde_json::to_string_pretty(&report).expect("json"),
    )
    .expect("write the JSON results");
    std::fs::write(out_dir.join(format!("{name}.md")), table).expect("write the table");
    print!("{table}");
}
