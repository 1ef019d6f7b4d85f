//! Identity-store benchmark (`scripts/bench`, or `cargo bench --bench store`): 100,000 users
//! per backend, then `userName eq` lookups through the SCIM filter translation (the path the
//! SCIM server takes) and pagination through every user. Writes JSON and a Markdown table to
//! `bench/results/` (or `SSO_BENCH_OUT`). Bounded in count; loopback PostgreSQL only.
//!
//! Environment: `SSO_BENCH_POSTGRES_URL` (skip PostgreSQL when unset), `SSO_BENCH_USERS`
//! (default 100000), `SSO_BENCH_LOOKUPS` (default 5000).

mod common;

use common::{env_number, load_users, percentile, write_results};

use std::time::Instant;

use serde_json::{Value, json};
use sso_operator::scim::filter::{self, Resource};
use sso_operator::store::{Predicate, Store};

async fn run(backend: &str, url: &str, users: usize, lookups: usize) -> Value {
    let store = Store::connect(url).await.expect("connect");
    let tenant = format!("bench-{}/idp", std::process::id());
    store.delete_tenant(&tenant).await.expect("clean tenant");

    let started = Instant::now();
    load_users(&store, &tenant, users).await;
    let load = started.elapsed();

    // userName eq, case-insensitive, as Okta and Entra send it.
    let mut times = Vec::with_capacity(lookups);
    let mut seed: u64 = 0x9e37_79b9_7f4a_7c15;
    for _ in 0..lookups {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        let i = (seed % users as u64) as usize;
        let text = format!("userName eq \"user{i:06}@example.COM\"");
        let t = Instant::now();
        let predicate = filter::parse(&text, Resource::User).expect("filter");
        let page = store
            .list_users(&tenant, &predicate, 1, 100)
            .await
            .expect("lookup");
        times.push(t.elapsed());
        assert_eq!(page.total, 1, "{text}");
    }
    times.sort();

    // Pagination through everyone, 200 at a time (the server's maximum count).
    let t = Instant::now();
    let mut seen = 0;
    let mut start = 1;
    loop {
        let page = store
            .list_users(&tenant, &Predicate::True, start, 200)
            .await
            .expect("page");
        seen += page.items.len();
        if page.items.is_empty() {
            break;
        }
        start += 200;
    }
    let paging = t.elapsed();
    assert_eq!(seen, users);
    store.delete_tenant(&tenant).await.expect("clean up");
    json!({
        "backend": backend,
        "users": users,
        "load_seconds": load.as_secs_f64(),
        "inserts_per_second": users as f64 / load.as_secs_f64(),
        "username_eq": {
            "lookups": lookups,
            "p50_ms": percentile(&times, 0.50),
            "p99_ms": percentile(&times, 0.99),
            "max_ms": percentile(&times, 1.0),
        },
        "paginate_all": { "pages": users.div_ceil(200), "seconds": paging.as_secs_f64() },
    })
}

#[tokio::main]
async fn main() {
    let users = env_number("SSO_BENCH_USERS", 100_000);
    let lookups = env_number("SSO_BENCH_LOOKUPS", 5_000);
    let sqlite_dir = std::env::temp_dir().join(format!("sso-bench-{}", std::process::id()));
    let mut results = vec![
        run(
            "sqlite",
            &format!("sqlite://{}/identity.db", sqlite_dir.display()),
            users,
            lookups,
        )
        .await,
    ];
    let _ = std::fs::remove_dir_all(&sqlite_dir);
    if let Ok(url) = std::env::var("SSO_BENCH_POSTGRES_URL") {
        results.push(run("postgres", &url, users, lookups).await);
    }
    let mut md = String::from(
        "| backend | users | inserts/s | `userName eq` p50 ms | p99 ms | paginate all (s) |\n| --- | --- | --- | --- | --- | --- |\n",
    );
    for r in &results {
        md.push_str(&format!(
            "| {} | {} | {:.0} | {:.3} | {:.3} | {:.2} |\n",
            r["backend"].as_str().unwrap_or(""),
            r["users"],
            r["inserts_per_second"].as_f64().unwrap_or(0.0),
            r["username_eq"]["p50_ms"].as_f64().unwrap_or(0.0),
            r["username_eq"]["p99_ms"].as_f64().unwrap_or(0.0),
            r["paginate_all"]["seconds"].as_f64().unwrap_or(0.0),
        ));
    }
    write_results("store", "identity store", &Value::Array(results), &md);
}
