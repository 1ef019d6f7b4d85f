//! Redirect URI matching: exact string comparison, except that a loopback redirect of a
//! native app matches with any port (RFC 8252 §7.3), since the app listens on whatever port
//! is free.

/// The hosts of loopback redirects: `localhost` as well as the literal addresses, for clients
/// (kubelogin) that use it.
pub const LOOPBACK_HOSTS: [&str; 3] = ["127.0.0.1", "[::1]", "localhost"];

/// Whether `requested` is one of the `registered` redirect URIs: equal as strings, or both
/// `http` on the same loopback host with the same path and query and any port. A URI with a
/// fragment never matches.
pub fn matches(registered: &[String], requested: &str) -> bool {
    if requested.contains('#') {
        return false;
    }
    if registered.iter().any(|r| r == requested) {
        return true;
    }
    let Some(requested) = loopback(requested) else {
        return false;
    };
    registered
        .iter()
        .filter_map(|r| loopback(r))
        .any(|r| r == requested)
}

/// Whether `uri` is an `http` URI on a loopback host, which RFC 8252 allows without TLS.
pub fn is_loopback(uri: &str) -> bool {
    loopback(uri).is_some()
}

/// `(host, path and query)` of an `http` loopback URI, without its port.
fn loopback(uri: &str) -> Option<(&str, &str)> {
    let rest = uri.strip_prefix("http://")?;
    let host = LOOPBACK_HOSTS.into_iter().find(|h| rest.starts_with(h))?;
    let mut rest = &rest[host.len()..];
    if let Some(after_colon) = rest.strip_prefix(':') {
        let digits = after_colon.bytes().take_while(u8::is_ascii_digit).count();
        let port: u16 = after_colon[..digits].parse().ok()?;
        if port == 0 {
            return None;
        }
        rest = &after_colon[digits..];
    }
    (rest.is_empty() || rest.starts_with('/') || rest.starts_with('?')).then_some((host, rest))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn registered(uris: &[&str]) -> Vec<String> {
        uris.iter().map(|u| u.to_string()).collect()
    }

    #[test]
    fn https_uris_match_exactly() {
        let r = registered(&["https://argocd.example.com/auth/callback"]);
        assert!(matches(&r, "https://argocd.example.com/auth/callback"));
        for other in [
            "https://argocd.example.com/auth/callback/",
            "https://argocd.example.com/auth/callback?x=1",
            "https://argocd.example.com:443/auth/callback",
            "https://ARGOCD.example.com/auth/callback",
            "https://argocd.example.com/auth/callback#x",
            "https://argocd.example.com.evil.com/auth/callback",
            "http://argocd.example.com/auth/callback",
            "https://argocd.example.com/auth/Callback",
            "",
        ] {
            assert!(!matches(&r, other), "{other}");
        }
        assert!(!matches(&[], "https://argocd.example.com/auth/callback"));
    }

    #[test]
    fn loopback_uris_match_with_any_port() {
        let r = registered(&[
            "http://localhost:8000",
            "http://127.0.0.1/callback",
            "http://[::1]:1234/cb?app=kubectl",
        ]);
        for ok in [
            "http://localhost:8000",
            "http://localhost:18000",
            "http://localhost",
            "http://127.0.0.1/callback",
            "http://127.0.0.1:49152/callback",
            "http://127.0.0.1:65535/callback",
            "http://[::1]:5000/cb?app=kubectl",
            "http://[::1]/cb?app=kubectl",
        ] {
            assert!(matches(&r, ok), "{ok}");
        }
    }

    #[test]
    fn loopback_uris_still_need_the_same_host_path_and_query() {
        let r = registered(&[
            "http://127.0.0.1:8000/callback?x=1",
            "http://localhost:8000",
        ]);
        for refused in [
            // Another loopback host than registered.
            "http://[::1]:8000/callback?x=1",
            "http://127.0.0.1:8000",
            // Path or query differ.
            "http://127.0.0.1:9000/callback",
            "http://127.0.0.1:9000/callback?x=2",
            "http://127.0.0.1:9000/callback/?x=1",
            "http://localhost:9000/",
            "http://localhost:9000/evil",
            // Not a port, or not loopback at all.
            "http://localhost:/",
            "http://localhost:0",
            "http://localhost:99999",
            "http://localhost:80x",
            "http://localhost.evil.com:8000",
            "http://localhost@evil.com:8000",
            "http://127.0.0.1.evil.com/callback?x=1",
            "http://evil@127.0.0.1:8000/callback?x=1",
            // https is no loopback exception, fragments never match.
            "https://localhost:9000",
            "http://localhost:9000#frag",
        ] {
            assert!(!matches(&r, refused), "{refused}");
        }
    }

    #[test]
    fn only_http_loopback_uris_are_loopback() {
        assert!(is_loopback("http://127.0.0.1:8000/cb"));
        assert!(is_loopback("http://[::1]"));
        assert!(is_loopback("http://localhost:8000"));
        assert!(!is_loopback("https://localhost:8000"));
        assert!(!is_loopback("http://example.com"));
        assert!(!is_loopback("http://127.0.0.2/"));
        assert!(!is_loopback("http://localhostx/"));
    }
}
