//! The command line of the `sso-operator` binary: `run`, `controller`, `server`, `crd`,
//! `reference` and `probe`, with every flag and its environment variable. It lives in the library so that
//! tests can check what the Helm chart passes against the real definition.

use std::net::SocketAddr;

use clap::{Args, Parser, Subcommand};

/// The log filter when `RUST_LOG` is not set: the Kubernetes client's own info lines (one per
/// request and watch restart) are kept out. The chart's `logLevel` defaults to the same.
pub const DEFAULT_LOG_FILTER: &str = "info,kube=warn";

/// SAML single sign-on and SCIM 2.0 provisioning for Kubernetes.
#[derive(Parser)]
#[command(name = "sso-operator", version, about)]
pub struct Cli {
    /// The role to run, or what to print.
    #[command(subcommand)]
    pub command: Command,
}

/// What the binary does.
#[derive(Subcommand)]
pub enum Command {
    /// Run the controller and the server in one process (the embedded default).
    Run {
        /// Settings every role shares.
        #[command(flatten)]
        common: CommonArgs,
        /// Settings of the controller role.
        #[command(flatten)]
        controller: ControllerArgs,
        /// Settings of the server role.
        #[command(flatten)]
        server: ServerArgs,
    },
    /// Run only the controller: reconciles IdentityProvider and ScimToken resources.
    Controller {
        /// Settings every role shares.
        #[command(flatten)]
        common: CommonArgs,
        /// Settings of the controller role.
        #[command(flatten)]
        controller: ControllerArgs,
    },
    /// Run only the server: the SCIM 2.0, SAML and forward-auth endpoints.
    Server {
        /// Settings every role shares.
        #[command(flatten)]
        common: CommonArgs,
        /// Settings of the server role.
        #[command(flatten)]
        server: ServerArgs,
    },
    /// Print every CustomResourceDefinition as YAML, for `kubectl apply -f -`.
    Crd,
    /// Print the Markdown reference of every resource field (docs/reference.md).
    Reference,
    /// Ask http(s) URLs and exit with status 1 unless each answers with a 2xx status (the
    /// chart's `helm test` Pod checks the server's /healthz and /readyz with it).
    Probe(ProbeArgs),
    /// Print what signing in to Kubernetes with an OidcClient needs: the kubeconfig user for a
    /// person (the kubectl `oidc-login` plugin), or with --api-server the API server's
    /// AuthenticationConfiguration that trusts the issuer. Reads the OidcClient with the
    /// current kubeconfig.
    Kubeconfig(KubeconfigArgs),
}

/// Settings of `sso-operator kubeconfig`.
#[derive(Args, Clone)]
pub struct KubeconfigArgs {
    /// The OidcClient kubectl signs in with (a public client: `spec.public: true`).
    pub oidc_client: String,

    /// Namespace of the OidcClient.
    #[arg(short, long, default_value = "default")]
    pub namespace: String,

    /// Name of the kubeconfig user to print.
    #[arg(long, default_value = "oidc")]
    pub user: String,

    /// Sign in with a code entered on another device (RFC 8628), for shells without a
    /// browser; the OidcClient must allow the device_code grant.
    #[arg(long)]
    pub device_code: bool,

    /// A PEM file with the CA of the issuer's TLS certificate, when it is not publicly trusted:
    /// its path goes into the kubeconfig user, its content into the AuthenticationConfiguration.
    #[arg(long)]
    pub certificate_authority: Option<std::path::PathBuf>,

    /// Print the API server's AuthenticationConfiguration instead of the user.
    #[arg(long)]
    pub api_server: bool,
}

/// Settings of `sso-operator probe`.
#[derive(Args, Clone)]
pub struct ProbeArgs {
    /// Longest wait for each URL to answer 2xx, e.g. 10s: a URL that cannot be reached yet or
    /// answers 5xx is asked again every half second until then.
    #[arg(long, default_value = "10s", value_parser = parse_timeout)]
    pub timeout: std::time::Duration,

    /// The URLs to ask, e.g. http://sso-operator-server:8081/readyz.
    #[arg(required = true, value_parser = parse_probe_url)]
    pub urls: Vec<reqwest::Url>,
}

fn parse_probe_url(s: &str) -> Result<reqwest::Url, String> {
    let url = reqwest::Url::parse(s).map_err(|e| format!("{s:?} is not a URL: {e}"))?;
    match url.scheme() {
        "http" | "https" => Ok(url),
        other => Err(format!(
            "{s:?}: the scheme must be http or https, not {other}"
        )),
    }
}

/// Settings every role shares.
#[derive(Args, Clone)]
pub struct CommonArgs {
    /// The operator's own namespace: the controller's leader-election Lease. Earlier releases
    /// kept the compiled configuration here; the controller moves it to --config-namespace.
    #[arg(long, env = "POD_NAMESPACE", default_value = "sso-operator")]
    pub operator_namespace: String,

    /// Namespace of the compiled configuration and the session keys: Secrets only the
    /// controller writes and the server reads. The server may read every Secret there, so
    /// keep nothing else in it. Defaults to --operator-namespace.
    #[arg(long, env = "SSO_CONFIG_NAMESPACE")]
    pub config_namespace: Option<String>,

    /// Address of /healthz, /readyz and /metrics.
    #[arg(long, env = "SSO_METRICS_ADDRESS", default_value = "0.0.0.0:8081")]
    pub metrics_address: SocketAddr,
}

impl CommonArgs {
    /// The namespace of the compiled configuration: --config-namespace, or else
    /// --operator-namespace.
    pub fn config_namespace(&self) -> &str {
        self.config_namespace
            .as_deref()
            .unwrap_or(&self.operator_namespace)
    }
}

/// Settings of the server role.
#[derive(Args, Clone)]
pub struct ServerArgs {
    /// Address of the public endpoints (SCIM, SAML, forward-auth).
    #[arg(long, env = "SSO_LISTEN_ADDRESS", default_value = "0.0.0.0:8080")]
    pub listen: SocketAddr,

    /// The identity store: sqlite://PATH (one server replica) or
    /// postgres://USER:PASSWORD@HOST/DB (several replicas).
    #[arg(
        long,
        env = "SSO_DATABASE_URL",
        default_value = "sqlite:///var/lib/sso-operator/identity.db"
    )]
    pub database_url: String,

    /// The longest a request waits for the identity store (a free connection included)
    /// before it is answered with 503; also PostgreSQL's statement_timeout. While the
    /// database does not answer, /readyz answers 503 and requests that need it get 503 at
    /// once; they succeed again within a second or two of the database coming back.
    #[arg(long, env = "SSO_DATABASE_TIMEOUT", default_value = "5s", value_parser = parse_timeout)]
    pub database_timeout: std::time::Duration,

    /// The longest a client may take to send a request's headers, counted from their first
    /// byte (for a new connection, from connecting); slower connections are closed. Reverse
    /// proxies send headers at once.
    #[arg(long, default_value = "30s", value_parser = parse_timeout)]
    pub header_read_timeout: std::time::Duration,

    /// The longest a connection may stay open between two requests. Keep it longer than the
    /// idle timeout of a reverse proxy in front (nginx and AWS load balancers 60s, Envoy 1h),
    /// so that the server never closes a connection the proxy is about to reuse.
    #[arg(long, default_value = "65m", value_parser = parse_timeout)]
    pub idle_timeout: std::time::Duration,

    /// The most client connections served at once. Beyond it, new connections wait until one
    /// closes, and the connection idle the longest is closed to make room.
    #[arg(long, default_value_t = 4096, value_parser = clap::value_parser!(u32).range(1..=1_000_000))]
    pub max_connections: u32,

    /// Where sign-in and sign-out may return to, for every IdentityProvider of this
    /// installation: an absolute http(s) URL prefix (scheme, host — `*.` matching subdomains —,
    /// port and path), repeated or comma-separated. Paths on this installation are always
    /// allowed; anything else gets a 400 page. An IdentityProvider's `allowedRedirects` can
    /// only narrow this list.
    #[arg(long, env = "SSO_ALLOWED_REDIRECTS", value_delimiter = ',', value_parser = parse_redirect_prefix)]
    pub allowed_redirect: Vec<String>,
}

/// Parses an `--allowed-redirect` entry.
fn parse_redirect_prefix(s: &str) -> Result<String, String> {
    let s = s.trim();
    crate::saml::login::valid_redirect_prefix(s)?;
    Ok(s.to_owned())
}

/// Parses a positive duration flag of the server, such as `5s` or `65m`.
fn parse_timeout(s: &str) -> Result<std::time::Duration, String> {
    let d = parse_duration(s)?;
    match u64::try_from(d.as_secs()) {
        Ok(secs) if secs > 0 => Ok(std::time::Duration::from_secs(secs)),
        _ => Err(format!("{s:?} must be at least 1s")),
    }
}

/// Settings of the controller role.
#[derive(Args, Clone)]
pub struct ControllerArgs {
    /// The installation's external base URL, as users' browsers and the IdP reach it, e.g.
    /// https://sso.example.com. Every URL shown in status is built from it.
    #[arg(long, env = "SSO_EXTERNAL_URL")]
    pub external_url: String,

    /// Only reconcile resources in this namespace (default: all namespaces).
    #[arg(long, env = "SSO_WATCH_NAMESPACE")]
    pub watch_namespace: Option<String>,

    /// Identity used for leader election (defaults to the host name and a random suffix).
    #[arg(long, env = "POD_NAME")]
    pub leader_identity: Option<String>,

    /// The Deployment that runs the controller, in the operator namespace (the Helm chart sets
    /// it). The leader-election Lease is made owned by it, so that Kubernetes deletes the Lease
    /// together with the Deployment (helm uninstall). Needs `get` on that Deployment.
    #[arg(long, env = "SSO_OWNER_DEPLOYMENT")]
    pub owner_deployment: Option<String>,

    /// Lifetime of generated service-provider certificates.
    #[arg(long, default_value = "8760h", value_parser = parse_duration)]
    pub sp_certificate_validity: jiff::SignedDuration,

    /// Publish the next service-provider certificate this long before the current one
    /// expires; the switch happens after half of it.
    #[arg(long, default_value = "720h", value_parser = parse_duration)]
    pub sp_certificate_renew_before: jiff::SignedDuration,

    /// Allow metadata URLs that resolve to loopback or private addresses. Off by default
    /// (it would let anyone who can create an IdentityProvider probe the cluster network);
    /// meant for tests and labs only.
    #[arg(long)]
    pub allow_private_metadata_addresses: bool,

    /// Extra CA certificates (PEM file) trusted for metadata URLs, besides the public roots.
    #[arg(long)]
    pub metadata_ca_file: Option<std::path::PathBuf>,

    /// How often a new session-cookie key is added to the session-key Secret. Old keys keep
    /// opening cookies until no session sealed with them can still be valid (720h).
    #[arg(long, default_value = "24h", value_parser = parse_duration)]
    pub session_key_rotation: jiff::SignedDuration,

    /// How many IdentityProviders, and separately how many ScimTokens and OidcClients, are
    /// reconciled at once. Bounds the controller's memory and its load on the API server when
    /// it starts with many resources.
    #[arg(long, default_value_t = 16, value_parser = clap::value_parser!(u16).range(1..=256))]
    pub max_concurrent_reconciles: u16,

    /// How long the leader's Lease stays valid after its last renewal, timed by each standby
    /// from when it saw the renewal. A leader that died is replaced after about this long
    /// plus one or two retry periods. Longer than --leader-renew-deadline.
    #[arg(long, default_value = "10s", value_parser = parse_duration)]
    pub leader_lease_duration: jiff::SignedDuration,

    /// The leader stops leading (and campaigns again) when it could not renew its Lease for
    /// this long, so that it has stopped before another replica may take over. Shorter than
    /// --leader-lease-duration, longer than --leader-retry-period.
    #[arg(long, default_value = "7s", value_parser = parse_duration)]
    pub leader_renew_deadline: jiff::SignedDuration,

    /// How often the leader renews its Lease and a standby checks whether it expired.
    #[arg(long, default_value = "1s", value_parser = parse_duration)]
    pub leader_retry_period: jiff::SignedDuration,
}

impl ControllerArgs {
    /// The leader-election durations, checked against each other.
    pub fn leader_timing(
        &self,
    ) -> Result<crate::controller::leader::Timing, crate::controller::leader::TimingError> {
        crate::controller::leader::Timing::new(
            self.leader_lease_duration.unsigned_abs(),
            self.leader_renew_deadline.unsigned_abs(),
            self.leader_retry_period.unsigned_abs(),
        )
    }
}

/// Parses a duration flag such as `90s`, `15m` or `720h`.
pub fn parse_duration(s: &str) -> Result<jiff::SignedDuration, String> {
    crate::api::parse_duration(s)
        .ok_or_else(|| format!("{s:?} is not a duration like 90s, 15m or 720h"))
}

#[cfg(test)]
mod tests {
    use clap::CommandFactory;

    #[test]
    fn the_command_line_definition_is_consistent() {
        super::Cli::command().debug_assert();
    }

    fn controller_args(extra: &[&str]) -> super::ControllerArgs {
        use clap::Parser as _;
        let mut args = vec![
            "sso-operator",
            "controller",
            "--external-url",
            "https://x.test",
        ];
        args.extend_from_slice(extra);
        match super::Cli::try_parse_from(args)
            .expect("valid command line")
            .command
        {
            super::Command::Controller { controller, .. } => controller,
            _ => unreachable!("the controller subcommand"),
        }
    }

    #[test]
    fn leader_election_defaults_and_flags() {
        use crate::controller::leader::Timing;
        use std::time::Duration;
        assert_eq!(controller_args(&[]).leader_timing(), Ok(Timing::default()));
        let short = controller_args(&[
            "--leader-lease-duration=4s",
            "--leader-renew-deadline=3s",
            "--leader-retry-period=1s",
        ])
        .leader_timing()
        .expect("valid");
        assert_eq!(short.lease_duration(), Duration::from_secs(4));
        assert_eq!(short.renew_deadline(), Duration::from_secs(3));
        assert_eq!(short.retry_period(), Duration::from_secs(1));
        let err = controller_args(&["--leader-renew-deadline=15s"])
            .leader_timing()
            .unwrap_err();
        assert!(
            err.to_string().contains("--leader-lease-duration (10s)"),
            "{err}"
        );
    }
}
