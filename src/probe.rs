//! `sso-operator probe`: asks HTTP URLs and reports whether each answered with a 2xx status.
//! The chart's `helm test` Pod runs it against the server's /healthz and /readyz through the
//! server's Service, with the operator's own image (which has no curl or shell).

use std::time::Duration;

use reqwest::Url;

/// Asks each URL with GET, one after the other. A URL that cannot be reached yet or answers
/// 5xx (a Service whose endpoints are still being wired, a server not ready yet) is asked again
/// every half second until it answers 2xx or `timeout` has passed since its first try. Returns,
/// for each URL in order, a line saying what it answered: `Ok` for a 2xx status, `Err`
/// otherwise (the last answer, with the start of the body, or why it could not be reached).
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
        let deadline = tokio::time::Instant::now() + timeout;
        let outcome = loop {
            let (outcome, transient) = ask(&client, url, timeout).await;
            if outcome.is_ok() || !transient || tokio::time::Instant::now() >= deadline {
                break outcome;
            }
            tokio::time::sleep_until(deadline.min(tokio::time::Instant::now() + RETRY_PAUSE)).await;
        };
        outcomes.push(outcome);
    }
    outcomes
}

/// The pause between two tries of a URL.
const RETRY_PAUSE: Duration = Duration::from_millis(500);

/// One try of `url`, and whether a failure may pass (unreachable, timed out, or 5xx).
async fn ask(
    client: &reqwest::Client,
    url: &Url,
    timeout: Duration,
) -> (Result<String, String>, bool) {
    match answer(client, url, timeout).await {
        Ok(line) => (Ok(line), false),
        Err((line, transient)) => (Err(line), transient),
    }
}

async fn answer(
    client: &reqwest::Client,
    url: &Url,
    timeout: Duration,
) -> Result<String, (String, bool)> {
    let response = client.get(url.clone()).send().await.map_err(|e| {
        let cause = if e.is_timeout() {
            format!("no answer within {}s", timeout.as_secs())
        } else {
            causes(&e)
        };
        (
            format!(
                "{url}: could not be reached ({cause}); check that the server's pods are Ready \
                 and its Service has endpoints"
            ),
            true,
        )
    })?;
    let status = response.status();
    if status.is_success() {
        return Ok(format!("{url}: {status}"));
    }
    let body = response.text().await.unwrap_or_default();
    let excerpt: String = body.trim().chars().take(300).collect();
    Err((
        format!("{url}: answered {status}: {excerpt}"),
        status.is_server_error(),
    ))
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

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    /// A server on 127.0.0.1 that answers its first `unready` requests 503 and then 200, or
    /// 404 to every request when `unready` is `None`; returns its URL and the count of requests
    /// it answered.
    async fn server(unready: Option<usize>) -> (Url, Arc<AtomicUsize>) {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = Url::parse(&format!("http://{}/readyz", listener.local_addr().unwrap())).unwrap();
        let count = Arc::new(AtomicUsize::new(0));
        let counted = count.clone();
        tokio::spawn(async move {
            loop {
                let Ok((mut socket, _)) = listener.accept().await else {
                    return;
                };
                let mut request = [0u8; 1024];
                let _ = socket.read(&mut request).await;
                let served = counted.fetch_add(1, Ordering::SeqCst);
                let status = match unready {
                    None => "404 Not Found",
                    Some(n) if served < n => "503 Service Unavailable",
                    Some(_) => "200 OK",
                };
                let _ = socket
                    .write_all(
                        format!(
                            "HTTP/1.1 {status}\r\ncontent-length: 2\r\nconnection: close\r\n\r\nno"
                        )
                        .as_bytes(),
                    )
                    .await;
            }
        });
        (url, count)
    }

    #[tokio::test]
    async fn a_server_that_becomes_ready_passes_within_the_timeout() {
        let (url, count) = server(Some(2)).await;
        let outcomes = probe(std::slice::from_ref(&url), Duration::from_secs(30)).await;
        assert_eq!(outcomes, vec![Ok(format!("{url}: 200 OK"))]);
        assert_eq!(count.load(Ordering::SeqCst), 3);
    }

    #[tokio::test]
    async fn a_server_that_stays_unready_fails_with_its_last_answer() {
        let (url, _) = server(Some(usize::MAX)).await;
        let outcomes = probe(std::slice::from_ref(&url), Duration::from_secs(1)).await;
        assert_eq!(
            outcomes,
            vec![Err(format!("{url}: answered 503 Service Unavailable: no"))]
        );
    }

    #[tokio::test]
    async fn a_wrong_path_fails_at_once() {
        let (url, count) = server(None).await;
        let outcomes = probe(std::slice::from_ref(&url), Duration::from_secs(2)).await;
        assert_eq!(
            outcomes,
            vec![Err(format!("{url}: answered 404 Not Found: no"))]
        );
        // Asked once: a 404 does not pass by waiting.
        assert_eq!(count.load(Ordering::SeqCst), 1);
    }
}
