//! The controller: reconciles IdentityProvider and ScimToken resources into Secrets, the
//! compiled runtime configuration and status. It is the only component that validates,
//! fetches IdP metadata and generates keys and tokens.

pub mod certs;
pub mod identity_provider;
pub mod issued_secret;
pub mod leader;
pub mod legacy_config;
pub mod metadata;
pub mod metrics;
pub mod names;
pub mod oidc_client;
pub mod oidc_keys;
pub mod references;
pub mod scim_token;
pub mod session_keys;
pub mod sp_keys;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::channel::mpsc::UnboundedReceiver;
use futures::stream::BoxStream;
use futures::{Stream, StreamExt};
use k8s_openapi::api::core::v1::{ConfigMap, Secret};
use kube::api::{Api, PartialObjectMeta};
use kube::runtime::controller::{Action, Controller};
use kube::runtime::events::{Recorder, Reporter};
use kube::runtime::reflector::{self, ObjectRef, Store, reflector};
use kube::runtime::{Predicate as _, WatchStreamExt, predicates, watcher};
use kube::{Client, Resource, ResourceExt};

use crate::api::{IdentityProvider, OidcClient, ScimToken};

/// The labels of a generated object: managed by sso-operator, as its `component`.
pub(crate) fn generated_labels(component: &str) -> std::collections::BTreeMap<String, String> {
    std::collections::BTreeMap::from([
        (MANAGED_BY.0.to_owned(), MANAGED_BY.1.to_owned()),
        (
            "app.kubernetes.io/name".to_owned(),
            "sso-operator".to_owned(),
        ),
        (
            "app.kubernetes.io/component".to_owned(),
            component.to_owned(),
        ),
    ])
}

/// Field manager of every write the controller makes (server-side apply).
pub const FIELD_MANAGER: &str = "sso-operator";
/// Labels on every generated object.
pub const MANAGED_BY: (&str, &str) = ("app.kubernetes.io/managed-by", "sso-operator");

/// Settings of the controller, from the command line.
#[derive(Clone, Debug)]
pub struct Settings {
    /// The installation's external base URL, e.g. `https://sso.example.com`.
    pub external_url: String,
    /// Namespace of the leader-election Lease, where earlier releases kept the compiled
    /// configuration.
    pub operator_namespace: String,
    /// Namespace of the compiled-config Secrets and the session keys, which the server reads.
    pub config_namespace: String,
    /// Service-provider certificate lifetime and renewal.
    pub sp_rotation: sp_keys::RotationPolicy,
    /// Limits for fetching IdP metadata.
    pub metadata_fetch: metadata::FetchPolicy,
    /// Only reconcile resources in this namespace (all namespaces when empty).
    pub watch_namespace: Option<String>,
    /// How often a new session key is added.
    pub session_key_rotation: jiff::SignedDuration,
    /// Reconciliations of one kind running at once.
    pub max_concurrent_reconciles: u16,
}

/// Errors that make a reconciliation retry with backoff. Problems with the user's input are
/// not errors: they end in a status condition.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A Kubernetes API call failed.
    #[error("Kubernetes API error: {0}")]
    Kube(#[from] kube::Error),
    /// Key generation failed.
    #[error(transparent)]
    KeyGen(#[from] sp_keys::KeyGenError),
    /// The resource lacks a namespace or name (never for objects from the API server).
    #[error("the object has no {0}")]
    MissingObjectKey(&'static str),
    /// Serialising the compiled configuration failed.
    #[error("could not serialise: {0}")]
    Serialize(#[from] serde_json::Error),
    /// An OpenID Provider signing key could not be made.
    #[error("{0}")]
    SigningKeys(String),
    /// A blocking task panicked or was cancelled.
    #[error("a background task failed: {0}")]
    Task(#[from] tokio::task::JoinError),
    /// The controller's view of a kind is not complete yet (it has not finished listing it
    /// since it started leading); acting on a partial view would drop what is not seen yet.
    #[error("the controller has not finished listing every {0} yet; retrying")]
    NotSynced(&'static str),
}

impl Error {
    /// A short, stable label for metrics.
    pub fn metric_label(&self) -> &'static str {
        match self {
            Error::Kube(_) => "kube_api",
            Error::KeyGen(_) => "key_generation",
            Error::MissingObjectKey(_) => "missing_object_key",
            Error::Serialize(_) => "serialize",
            Error::SigningKeys(_) => "signing_keys",
            Error::Task(_) => "task",
            Error::NotSynced(_) => "not_synced",
        }
    }
}

/// State shared by the reconcilers.
pub struct Context {
    /// Kubernetes client.
    pub client: Client,
    /// Command-line settings.
    pub settings: Settings,
    /// Event recorder.
    pub recorder: Recorder,
    /// Metrics.
    pub metrics: metrics::Metrics,
    /// Every IdentityProvider (kept by the IdentityProvider controller's watch).
    pub idps: Store<IdentityProvider>,
    /// Every ScimToken (kept by the ScimToken controller's watch).
    pub tokens: Store<ScimToken>,
    /// Every OidcClient (kept by the OidcClient controller's watch).
    pub oidc_clients: Store<OidcClient>,
    /// What earlier releases left in the operator namespace, still to be moved.
    pub legacy: legacy_config::LegacyConfig,
    /// Consecutive failures per object, for exponential backoff.
    failures: Mutex<HashMap<String, u32>>,
    /// The last failed metadata fetch per IdentityProvider, until the next attempt.
    metadata_failures: Mutex<HashMap<String, identity_provider::MetadataFailure>>,
}

impl Context {
    /// Backoff after the `n`th consecutive failure: 1 s doubling up to 5 minutes.
    fn backoff(&self, key: &str) -> Duration {
        let mut failures = self.failures.lock().unwrap_or_else(|e| e.into_inner());
        let n = failures.entry(key.to_owned()).or_insert(0);
        *n = n.saturating_add(1);
        Duration::from_secs(1u64 << (*n - 1).min(8)).min(Duration::from_secs(300))
    }

    fn succeeded(&self, key: &str) {
        self.failures
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(key);
    }

    /// Reconciles `obj`, a `kind` whose generated objects go with it (owner references): once
    /// it is being deleted only its Ready metric is forgotten; otherwise `apply` runs. Records
    /// the outcome.
    async fn reconcile_owner<K: Resource>(
        &self,
        kind: &'static str,
        obj: &K,
        apply: impl std::future::Future<Output = Result<Action, Error>>,
    ) -> Result<Action, Error> {
        let started = std::time::Instant::now();
        let result = if obj.meta().deletion_timestamp.is_some() {
            self.metrics.set_ready(kind, object_key(obj), None);
            Ok(Action::await_change())
        } else {
            apply.await
        };
        self.reconciled(kind, obj, started, result)
    }

    /// Records a reconciliation of `obj` (a `kind`) that began at `started`: its duration and
    /// outcome in the metrics, and a success ends its backoff.
    fn reconciled<K: Resource>(
        &self,
        kind: &'static str,
        obj: &K,
        started: std::time::Instant,
        result: Result<Action, Error>,
    ) -> Result<Action, Error> {
        self.metrics.reconciled(
            kind,
            started.elapsed(),
            result.as_ref().err().map(Error::metric_label),
        );
        if result.is_ok() {
            self.succeeded(&object_key(obj));
        }
        result
    }

    /// Retries a failed reconciliation of `obj` (a `kind`) with exponential backoff.
    fn retry<K: Resource>(&self, kind: &'static str, obj: &K, error: &Error) -> Action {
        let key = object_key(obj);
        let delay = self.backoff(&key);
        tracing::warn!(kind, object = %key, error = %error, retry_in = ?delay, "reconcile failed");
        Action::requeue(delay)
    }

    /// The namespace of `obj`, the URLs of the IdentityProvider it names, and that
    /// IdentityProvider unless it is missing or being deleted. Read from the API server, not
    /// the IdentityProvider controller's cache: the event that triggered this reconcile may
    /// reach us before that cache has seen it (a deleted IdentityProvider would otherwise look
    /// alive until the next periodic requeue).
    async fn identity_provider_of<K: references::UsesIdentityProvider>(
        &self,
        obj: &K,
    ) -> Result<(String, crate::config::Urls, Option<IdentityProvider>), Error> {
        let ns = obj
            .namespace()
            .ok_or(Error::MissingObjectKey("namespace"))?;
        let name = obj.identity_provider();
        let urls = crate::config::Urls::new(&self.settings.external_url, &ns, name);
        let idp = Api::<IdentityProvider>::namespaced(self.client.clone(), &ns)
            .get_opt(name)
            .await?
            .filter(|i| i.metadata.deletion_timestamp.is_none());
        Ok((ns, urls, idp))
    }
}

fn object_key<K: Resource>(obj: &K) -> String {
    format!(
        "{}/{}",
        obj.meta().namespace.as_deref().unwrap_or(""),
        obj.meta().name.as_deref().unwrap_or("")
    )
}

/// Runs both controllers until `shutdown` resolves or leadership is lost.
///
/// Each kind is listed and watched once for both controllers (see [`Watches`]).
pub async fn run(
    client: Client,
    settings: Settings,
    metrics: metrics::Metrics,
    leading: tokio::sync::watch::Receiver<bool>,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) {
    let watches = Watches::new(&client, &settings);
    let ctx = context(client.clone(), settings, metrics, &watches);
    let stop_rx = stop_signal(leading, shutdown);
    let stopped = |mut rx: tokio::sync::watch::Receiver<bool>| async move {
        let _ = rx.wait_for(|s| *s).await;
    };
    let key_task = session_keys::maintain(
        client,
        ctx.settings.config_namespace.clone(),
        ctx.settings.session_key_rotation,
        &ctx.legacy,
        stopped(stop_rx.clone()),
    );
    let sweep_task = sweep_legacy(&ctx, watches.idps.store.clone(), stopped(stop_rx.clone()));
    let limits = kube::runtime::controller::Config::default()
        .concurrency(ctx.settings.max_concurrent_reconciles);
    let (idp_controller, token_controller, client_controller) = watches.into_controllers(limits);
    let idp_loop = idp_controller
        .graceful_shutdown_on(stopped(stop_rx.clone()))
        .run(
            identity_provider::reconcile,
            identity_provider::error_policy,
            ctx.clone(),
        )
        .for_each(|_| async {});
    let token_loop = token_controller
        .graceful_shutdown_on(stopped(stop_rx.clone()))
        .run(scim_token::reconcile, scim_token::error_policy, ctx.clone())
        .for_each(|_| async {});
    let client_loop = client_controller
        .graceful_shutdown_on(stopped(stop_rx))
        .run(
            oidc_client::reconcile,
            oidc_client::error_policy,
            ctx.clone(),
        )
        .for_each(|_| async {});
    tokio::join!(idp_loop, token_loop, client_loop, key_task, sweep_task);
}

/// The reconcilers' shared state, reading the stores of `watches`.
fn context(
    client: Client,
    settings: Settings,
    metrics: metrics::Metrics,
    watches: &Watches,
) -> Arc<Context> {
    let recorder = Recorder::new(
        client.clone(),
        Reporter {
            controller: FIELD_MANAGER.into(),
            instance: None,
        },
    );
    let legacy = legacy_config::LegacyConfig::new(
        client.clone(),
        &settings.operator_namespace,
        &settings.config_namespace,
    );
    Arc::new(Context {
        client,
        settings,
        recorder,
        metrics,
        idps: watches.idps.store.clone(),
        tokens: watches.tokens.store.clone(),
        oidc_clients: watches.oidc_clients.store.clone(),
        legacy,
        failures: Mutex::default(),
        metadata_failures: Mutex::default(),
    })
}

/// A receiver that turns true once `shutdown` resolves or leadership is lost.
fn stop_signal(
    mut leading: tokio::sync::watch::Receiver<bool>,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> tokio::sync::watch::Receiver<bool> {
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    tokio::spawn(async move {
        tokio::select! {
            () = shutdown => {}
            _ = leading.wait_for(|l| !*l) => {}
        }
        let _ = stop_tx.send(true);
    });
    stop_rx
}

/// A watch stream of `K`'s objects (or its errors).
type WatchStream<K> = BoxStream<'static, Result<K, watcher::Error>>;

/// One list and watch of a kind the controllers reconcile, shared by both: the store it
/// keeps, the objects whose reconciliation-relevant parts changed (which trigger that kind's
/// own controller), and every object it adds, changes or deletes (which trigger the other
/// controller, for which a deletion matters as much as a change).
struct SharedWatch<K: Resource<DynamicType = ()> + 'static> {
    store: Store<K>,
    changed: WatchStream<K>,
    touched: UnboundedReceiver<K>,
}

impl<K> SharedWatch<K>
where
    K: Resource<DynamicType = ()>
        + Clone
        + serde::de::DeserializeOwned
        + std::fmt::Debug
        + Send
        + Sync
        + 'static,
{
    /// Lists and watches `api`, reporting a resource as changed when its spec (generation),
    /// finalizers or annotations change, not when only its status does: the status is written
    /// by this controller and, for the SCIM and sign-in figures, by the servers.
    fn new(api: Api<K>) -> Self {
        let (store, writer) = reflector::store();
        let events = reflector(
            writer,
            watcher(api, watcher::Config::default().any_semantic()),
        )
        .default_backoff();
        let (events, touched) = tee_touched(events);
        let changed = events
            .applied_objects()
            .predicate_filter(changed(), Default::default())
            .boxed();
        Self {
            store,
            changed,
            touched,
        }
    }

    /// A controller of `K` triggered by the changed objects, reading the store.
    fn controller(
        self,
        limits: kube::runtime::controller::Config,
    ) -> (Controller<K>, WatchStream<K>) {
        let controller = Controller::for_stream(self.changed, self.store).with_config(limits);
        (controller, self.touched.map(Ok).boxed())
    }
}

/// Passes `events` on and sends a copy of every object they add, change or delete to the
/// returned receiver: a second consumer of one watch, which sees deletions too (the
/// subscribers of kube's shared stores see only objects still in the store). The receiver
/// ends when the returned stream is dropped.
fn tee_touched<K, S>(
    events: S,
) -> (
    impl Stream<Item = S::Item> + Send + 'static,
    UnboundedReceiver<K>,
)
where
    K: Clone + Send + 'static,
    S: Stream<Item = Result<watcher::Event<K>, watcher::Error>> + Send + 'static,
{
    let (tx, rx) = futures::channel::mpsc::unbounded();
    let events = events.inspect(move |event| {
        if let Ok(
            watcher::Event::Apply(obj)
            | watcher::Event::InitApply(obj)
            | watcher::Event::Delete(obj),
        ) = event
        {
            // Fails only once the other controller has stopped.
            let _ = tx.unbounded_send(obj.clone());
        }
    });
    (events, rx)
}

/// Every list and watch the controllers need, each made once: IdentityProviders and
/// ScimTokens (each the main trigger of its own controller and a trigger of the other) and the
/// metadata of Secrets (certificates and tokens, for both), ConfigMaps and compiled
/// configurations (for the IdentityProvider controller).
struct Watches {
    idps: SharedWatch<IdentityProvider>,
    tokens: SharedWatch<ScimToken>,
    oidc_clients: SharedWatch<OidcClient>,
    /// Secrets' metadata, for the IdentityProvider controller.
    secrets: WatchStream<PartialObjectMeta<Secret>>,
    /// The same Secrets' metadata, for the ScimToken controller.
    secrets_for_tokens: UnboundedReceiver<PartialObjectMeta<Secret>>,
    /// The same Secrets' metadata, for the OidcClient controller.
    secrets_for_clients: UnboundedReceiver<PartialObjectMeta<Secret>>,
    configmaps: WatchStream<PartialObjectMeta<ConfigMap>>,
    compiled: WatchStream<PartialObjectMeta<Secret>>,
}

impl Watches {
    fn new(client: &Client, settings: &Settings) -> Self {
        let ns = settings.watch_namespace.as_deref();
        // Metadata-only views (an `Api` of `PartialObjectMeta` lists and watches only metadata):
        // the mappers need names and annotations, never the Secrets' keys.
        let secret_meta: Api<PartialObjectMeta<Secret>> = scoped(client, ns);
        let (secrets, secrets_for_tokens) =
            tee_touched(watcher(secret_meta, watcher::Config::default()).default_backoff());
        let (secrets, secrets_for_clients) = tee_touched(secrets);
        let configmap_meta: Api<PartialObjectMeta<ConfigMap>> = scoped(client, ns);
        let compiled_api: Api<PartialObjectMeta<Secret>> =
            Api::namespaced(client.clone(), &settings.config_namespace);
        let compiled_label = format!("{}=true", crate::config::COMPILED_CONFIG_LABEL);
        Self {
            idps: SharedWatch::new(scoped(client, ns)),
            tokens: SharedWatch::new(scoped(client, ns)),
            oidc_clients: SharedWatch::new(scoped(client, ns)),
            secrets: secrets.touched_objects().boxed(),
            secrets_for_tokens,
            secrets_for_clients,
            configmaps: watcher(configmap_meta, watcher::Config::default())
                .default_backoff()
                .touched_objects()
                .boxed(),
            compiled: watcher(
                compiled_api,
                watcher::Config::default().labels(&compiled_label),
            )
            .default_backoff()
            .touched_objects()
            .boxed(),
        }
    }

    /// The IdentityProvider, ScimToken and OidcClient controllers, triggered by these watches.
    fn into_controllers(
        self,
        limits: kube::runtime::controller::Config,
    ) -> (
        Controller<IdentityProvider>,
        Controller<ScimToken>,
        Controller<OidcClient>,
    ) {
        let (idps, tokens) = (self.idps.store.clone(), self.tokens.store.clone());
        let clients = self.oidc_clients.store.clone();
        let (idp_controller, touched_idps) = self.idps.controller(limits.clone());
        let (touched_idps, touched_idps_for_clients) = tee_stream(touched_idps);
        let (token_controller, touched_tokens) = self.tokens.controller(limits.clone());
        let (client_controller, touched_clients) = self.oidc_clients.controller(limits);
        let (touched_clients, touched_clients_for_peers) = tee_stream(touched_clients);
        let (idps_for_configmaps, tokens_for_idps) = (idps.clone(), tokens.clone());
        let clients_for_idps = clients.clone();
        let idp_controller = idp_controller
            // A changed certificate Secret or ConfigMap re-reconciles the IdentityProviders
            // using it, and a changed token Secret those of its ScimTokens (the token hashes
            // come from it).
            .watches_stream(self.secrets, move |secret| {
                secret_to_idps(&idps, &tokens_for_idps, &clients_for_idps, &secret)
            })
            .watches_stream(self.configmaps, move |cm| {
                identity_provider::referencing(
                    &idps_for_configmaps,
                    &cm,
                    identity_provider::RefKind::ConfigMap,
                )
            })
            // Token changes (issue, rotation, deletion) recompile the token hashes of their IdP.
            .watches_stream(touched_tokens, |token: ScimToken| {
                references::idp_of(&token)
            })
            // So do OidcClient changes (their secrets, client IDs and redirect URIs).
            .watches_stream(touched_clients, |client: OidcClient| {
                references::idp_of(&client)
            })
            // A deleted or edited compiled Secret is rewritten.
            .watches_stream(self.compiled, |secret| {
                identity_provider::owner_of_compiled(&secret)
            });
        let tokens_for_secrets = tokens.clone();
        let token_controller = token_controller
            // An IdentityProvider appearing, disappearing or being disabled changes its tokens'
            // state.
            .watches_stream(touched_idps, move |idp: IdentityProvider| {
                scim_token::referencing_idp(&tokens, &idp)
            })
            // Bring-your-own token Secrets and generated token Secrets.
            .watches_stream(self.secrets_for_tokens.map(Ok), move |secret| {
                scim_token::referencing_secret(&tokens_for_secrets, &secret)
            });
        let (clients_for_secrets, clients_for_peers) = (clients.clone(), clients.clone());
        let client_controller = client_controller
            // The IdentityProvider's state is part of each of its clients' status.
            .watches_stream(touched_idps_for_clients, move |idp: IdentityProvider| {
                references::referencing_idp(&clients, &idp)
            })
            // An OidcClient's own Secret.
            .watches_stream(self.secrets_for_clients.map(Ok), move |secret| {
                references::referencing_secret(&clients_for_secrets, &secret)
            })
            // A client appearing or going away can start or end a client ID conflict of the
            // other clients of its IdentityProvider.
            .watches_stream(touched_clients_for_peers, move |client: OidcClient| {
                peers_of(&clients_for_peers, &client)
            });
        (idp_controller, token_controller, client_controller)
    }
}

/// Passes `stream` on and sends a copy of each object to the second stream returned, for a
/// second consumer (which ends when the first stream is dropped).
fn tee_stream<K: Clone + Send + 'static>(
    stream: WatchStream<K>,
) -> (WatchStream<K>, WatchStream<K>) {
    let (tx, rx) = futures::channel::mpsc::unbounded();
    let first = stream
        .inspect(move |item| {
            if let Ok(obj) = item {
                // Fails only once the second consumer has stopped.
                let _ = tx.unbounded_send(obj.clone());
            }
        })
        .boxed();
    (first, rx.map(Ok).boxed())
}

/// The other OidcClients of `client`'s IdentityProvider.
fn peers_of(clients: &Store<OidcClient>, client: &OidcClient) -> Vec<ObjectRef<OidcClient>> {
    clients
        .state()
        .iter()
        .filter(|c| {
            c.namespace() == client.namespace()
                && c.spec.identity_provider_ref == client.spec.identity_provider_ref
                && c.name_any() != client.name_any()
        })
        .map(|c| ObjectRef::from_obj(c.as_ref()))
        .collect()
}

/// The IdentityProviders to reconcile when `secret` changes: those using it as a certificate
/// Secret, and those of the ScimTokens and OidcClients reading or writing their credentials
/// there.
fn secret_to_idps(
    idps: &Store<IdentityProvider>,
    tokens: &Store<ScimToken>,
    clients: &Store<OidcClient>,
    secret: &PartialObjectMeta<Secret>,
) -> Vec<ObjectRef<IdentityProvider>> {
    let mut refs = identity_provider::referencing(idps, secret, identity_provider::RefKind::Secret);
    refs.extend(references::idps_of_secret(tokens, secret));
    refs.extend(references::idps_of_secret(clients, secret));
    refs
}

/// Once every IdentityProvider is known, deletes what earlier releases left in the operator
/// namespace that no reconciliation will move (retrying until done or `stop`).
async fn sweep_legacy(
    ctx: &Context,
    idps: Store<IdentityProvider>,
    stop: impl std::future::Future<Output = ()>,
) {
    let config: Api<Secret> = Api::namespaced(ctx.client.clone(), &ctx.settings.config_namespace);
    let sweep = async {
        let _ = idps.wait_until_ready().await;
        while let Err(e) = ctx.legacy.sweep(&idps, &config).await {
            tracing::warn!(error = %e, "could not remove what an earlier release left in the operator namespace; retrying");
            tokio::time::sleep(Duration::from_secs(5)).await;
        }
    };
    tokio::select! {
        () = sweep => {}
        () = stop => {}
    }
}

/// An `Api` in `namespace`, or in all namespaces.
fn scoped<K>(client: &Client, namespace: Option<&str>) -> Api<K>
where
    K: Resource<DynamicType = (), Scope = k8s_openapi::NamespaceResourceScope>,
{
    match namespace {
        Some(ns) => Api::namespaced(client.clone(), ns),
        None => Api::all(client.clone()),
    }
}

/// Whether a resource changed in a way its reconciliation depends on: its spec (generation),
/// finalizers or annotations.
fn changed<K: Resource>() -> impl kube::runtime::Predicate<K> {
    predicates::generation
        .combine(predicates::finalizers)
        .combine(predicates::annotations)
}

/// Requeues at `at` (at least one second from now, at most an hour), or in an hour.
pub(crate) fn requeue_until(at: Option<jiff::Timestamp>) -> Action {
    let hour = jiff::SignedDuration::from_hours(1);
    let wait = at
        .map(|t| {
            jiff::Timestamp::now()
                .duration_until(t)
                .max(jiff::SignedDuration::from_secs(1))
        })
        .unwrap_or(hour)
        .min(hour);
    Action::requeue(wait.unsigned_abs())
}

/// Publishes a Kubernetes Event about `obj` (best effort: a failure is only logged).
pub(crate) async fn publish_event<K: Resource<DynamicType = ()>>(
    ctx: &Context,
    obj: &K,
    type_: kube::runtime::events::EventType,
    reason: &str,
    note: String,
) {
    let event = kube::runtime::events::Event {
        type_,
        reason: reason.to_owned(),
        note: Some(note.chars().take(1000).collect()),
        action: "Reconcile".into(),
        secondary: None,
    };
    let regarding = obj.object_ref(&());
    let name_len = regarding.name.as_deref().map_or(0, str::len);
    // The recorder names an Event `{name}.{nanoseconds in hex}`, which the API server refuses
    // for names longer than this; such objects get an Event named by the API server instead.
    let result = if name_len + 17 <= names::MAX_NAME {
        ctx.recorder.publish(&event, &regarding).await
    } else {
        publish_unnamed_event(&ctx.client, &event, regarding).await
    };
    if let Err(e) = result {
        tracing::debug!(error = %e, "could not publish an event");
    }
}

/// Creates an Event about `regarding` with a name generated by the API server from the start
/// of the object's name.
async fn publish_unnamed_event(
    client: &Client,
    event: &kube::runtime::events::Event,
    regarding: k8s_openapi::api::core::v1::ObjectReference,
) -> Result<(), kube::Error> {
    use k8s_openapi::api::events::v1::Event;
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::MicroTime;
    let namespace = regarding
        .namespace
        .clone()
        .unwrap_or_else(|| "default".to_owned());
    // The API server keeps the first 58 characters of `generateName` and appends five random
    // ones; the prefix must be a valid name but for a trailing dash.
    let prefix: String = regarding
        .name
        .as_deref()
        .unwrap_or(FIELD_MANAGER)
        .chars()
        .take(57)
        .collect();
    let object = Event {
        metadata: kube::api::ObjectMeta {
            generate_name: Some(format!("{}-", prefix.trim_end_matches(['-', '.']))),
            namespace: Some(namespace.clone()),
            ..Default::default()
        },
        action: Some(event.action.clone()),
        reason: Some(event.reason.clone()),
        note: event.note.clone(),
        event_time: Some(MicroTime(jiff::Timestamp::now())),
        regarding: Some(regarding),
        reporting_controller: Some(FIELD_MANAGER.to_owned()),
        reporting_instance: Some(FIELD_MANAGER.to_owned()),
        type_: Some(
            match event.type_ {
                kube::runtime::events::EventType::Normal => "Normal",
                kube::runtime::events::EventType::Warning => "Warning",
            }
            .to_owned(),
        ),
        ..Default::default()
    };
    Api::<Event>::namespaced(client.clone(), &namespace)
        .create(&kube::api::PostParams::default(), &object)
        .await
        .map(|_| ())
}

/// The owner reference that makes `owner` the controller of a generated object.
pub(crate) fn owner_reference<K: Resource<DynamicType = ()>>(
    owner: &K,
) -> Result<k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference, Error> {
    owner
        .controller_owner_ref(&())
        .ok_or(Error::MissingObjectKey("uid"))
}

/// True when `meta` (a generated object) was written by this operator for an earlier object of
/// the same kind, namespace and name as `owner` that has since been deleted: it carries the
/// managed-by label and a controller reference to that name with another UID. Kubernetes'
/// garbage collector removes such an object; it is never taken over, so that nothing of a
/// deleted resource (keys, tokens) is trusted by the one that replaces it.
pub(crate) fn is_left_by_previous_incarnation<K: Resource<DynamicType = ()>>(
    meta: &kube::api::ObjectMeta,
    owner: &K,
) -> bool {
    let managed = meta
        .labels
        .as_ref()
        .and_then(|l| l.get(MANAGED_BY.0))
        .is_some_and(|v| v == MANAGED_BY.1);
    let (Some(name), Some(uid)) = (owner.meta().name.as_deref(), owner.meta().uid.as_deref())
    else {
        return false;
    };
    managed
        && meta.owner_references.as_ref().is_some_and(|refs| {
            refs.iter().any(|r| {
                r.controller == Some(true)
                    && r.api_version == K::api_version(&())
                    && r.kind == K::kind(&())
                    && r.name == name
                    && r.uid != uid
            })
        })
}

/// True when `obj` is controlled by the object with `uid`.
pub(crate) fn is_controlled_by(meta: &kube::api::ObjectMeta, uid: &str) -> bool {
    meta.owner_references.as_ref().is_some_and(|refs| {
        refs.iter()
            .any(|r| r.controller == Some(true) && r.uid == uid)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn idp(name: &str, uid: &str) -> IdentityProvider {
        let mut idp = IdentityProvider::new(name, serde_json::from_str(r#"{"idp":{}}"#).unwrap());
        idp.metadata.namespace = Some("ns".into());
        idp.metadata.uid = Some(uid.into());
        idp
    }

    fn secret_meta(owner: &IdentityProvider, managed: bool) -> kube::api::ObjectMeta {
        kube::api::ObjectMeta {
            labels: managed.then(|| [(MANAGED_BY.0.to_owned(), MANAGED_BY.1.to_owned())].into()),
            owner_references: Some(vec![owner.controller_owner_ref(&()).unwrap()]),
            ..Default::default()
        }
    }

    #[test]
    fn only_our_secrets_of_a_deleted_namesake_are_left_to_the_garbage_collector() {
        let current = idp("okta", "new-uid");
        let deleted = idp("okta", "old-uid");
        let other = idp("entra", "other-uid");
        assert!(is_left_by_previous_incarnation(
            &secret_meta(&deleted, true),
            &current
        ));
        // Its own Secret, another IdentityProvider's, or one without our label: not this case.
        assert!(!is_left_by_previous_incarnation(
            &secret_meta(&current, true),
            &current
        ));
        assert!(!is_left_by_previous_incarnation(
            &secret_meta(&other, true),
            &current
        ));
        assert!(!is_left_by_previous_incarnation(
            &secret_meta(&deleted, false),
            &current
        ));
        // A ScimToken of the same name is another kind.
        let mut token = ScimToken::new(
            "okta",
            serde_json::from_str(r#"{"identityProviderRef":{"name":"okta"}}"#).unwrap(),
        );
        token.metadata.uid = Some("token-uid".into());
        let mut meta = secret_meta(&deleted, true);
        meta.owner_references = Some(vec![token.controller_owner_ref(&()).unwrap()]);
        assert!(!is_left_by_previous_incarnation(&meta, &current));
    }
}
