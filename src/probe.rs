//! `sso-operator probe`: asks HTTP URLs and reports whether each answered with a 2xx status.
//! The chart's `helm test` Pod runs it against the server's /healthz and /readyz through the
//! server's Service, with the operator's own image (which has no curl or shell).

use std::time::Duration;

use reqwest::Url;

/// Asks each URL with GET, one after the other, each within `timeout`. Returns, for each URL in
/// order, a line saying what it answered: `Ok` for a 2xx status, `Err` otherwise (another
/// status, with the start of the body, or why it could not be reached).
pub async fn probe(urls: &[Url], timeout: Duration) -> Vec<Result<String, String>> {
    let client = match reqwest::Client::builder()
        .timeout(timeout)
        // A redirect is not an answer of the server itself.
        .redirect(reqwest::redirect::Policy::none())
        .build()
    {
        Ok(client) => client,
        Err(e) => return vec![Err(format!("could not create an HTTP client: {e}"))],
    };
    let mut outcomes = Vec::with_capacity(urls.len());
    for url in urls {
        outcomes.push(ask(&client, url, timeout).await);
    }
    outcomes
}

async fn ask(client: &reqwest::Client, url: &Url, timeout: Duration) -> Result<String, String> {
    let response = client.get(url.clone()).send().await.map_err(|e| {
        let cause = if e.is_timeout() {
            format!("no answer within {}s", timeout.as_secs())
        } else {
            causes(&e)
        };
        format!(
            "{url}: could not be reached ({cause}); check that the server's pods are Ready and \
             its Service has endpoints"
        )
    })?;
    let status = response.status();
    if status.is_success() {
        return Ok(format!("{url}: {status}"));
    }
    let body = response.text().await.unwrap_or_default();
    let excerpt: String = body.trim().chars().take(300).collect();
    Err(format!("{url}: answered {status}: {excerpt}"))
}

/// The error and its sources on one line ("error sending request: … : Connection refused").
fn causes(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        let s_text = s.to_string();
        if !text.contains(&s_text) {
            text.push_str(": ");
            text.push_str(&s_text);
        }
        source = s.source();
    }
    text
}
