//! Prometheus metrics of the controller.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;

/// Labels: the reconciled kind.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct KindLabels {
    /// `IdentityProvider`, `ScimToken` or `OidcClient`.
    pub kind: &'static str,
}

/// Labels: kind and error reason.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ErrorLabels {
    /// `IdentityProvider`, `ScimToken` or `OidcClient`.
    pub kind: &'static str,
    /// The error variant.
    pub reason: &'static str,
}

/// Labels: kind and the Ready condition.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ReadyLabels {
    /// `IdentityProvider`, `ScimToken` or `OidcClient`.
    pub kind: &'static str,
    /// `True` or `False`.
    pub ready: String,
    /// The Ready condition's reason.
    pub reason: String,
}

/// The Ready condition (status, reason) of every object, keyed by kind and `namespace/name`.
type ReadyByObject = BTreeMap<(&'static str, String), (String, String)>;

/// The controller's metrics, registered in one registry.
#[derive(Clone)]
pub struct Metrics {
    reconciles: Family<KindLabels, Counter>,
    errors: Family<ErrorLabels, Counter>,
    duration: Family<KindLabels, Histogram>,
    objects: Family<ReadyLabels, Gauge>,
    ready_by_object: Arc<Mutex<ReadyByObject>>,
}

impl Metrics {
    /// Creates the metrics and registers them under the `sso_operator_controller` prefix.
    pub fn new(registry: &mut Registry) -> Self {
        let m = Self {
            reconciles: Family::default(),
            errors: Family::default(),
            duration: Family::new_with_constructor(|| {
                Histogram::new([
                    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
                ])
            }),
            objects: Family::default(),
            ready_by_object: Arc::default(),
        };
        let sub = registry.sub_registry_with_prefix("sso_operator_controller");
        sub.register("reconciles", "Reconciliations run", m.reconciles.clone());
        sub.register(
            "reconcile_errors",
            "Reconciliations that failed, by reason",
            m.errors.clone(),
        );
        sub.register(
            "reconcile_duration_seconds",
            "Time spent in one reconciliation",
            m.duration.clone(),
        );
        sub.register(
            "objects",
            "Objects by kind and Ready condition",
            m.objects.clone(),
        );
        m
    }

    /// Records one finished reconciliation.
    pub fn reconciled(&self, kind: &'static str, took: Duration, error: Option<&'static str>) {
        self.reconciles.get_or_create(&KindLabels { kind }).inc();
        self.duration
            .get_or_create(&KindLabels { kind })
            .observe(took.as_secs_f64());
        if let Some(reason) = error {
            self.errors
                .get_or_create(&ErrorLabels { kind, reason })
                .inc();
        }
    }

    /// Records the Ready condition of an object (`None` once it is deleted).
    pub fn set_ready(&self, kind: &'static str, key: String, ready: Option<(String, String)>) {
        let Ok(mut map) = self.ready_by_object.lock() else {
            return;
        };
        match ready {
            Some(v) => map.insert((kind, key), v),
            None => map.remove(&(kind, key)),
        };
        let mut counts: BTreeMap<ReadyLabels, i64> = BTreeMap::new();
        for ((k, _), (ready, reason)) in map.iter() {
            *counts
                .entry(ReadyLabels {
                    kind: k,
                    ready: ready.clone(),
                    reason: reason.clone(),
                })
                .or_default() += 1;
        }
        self.objects.clear();
        for (labels, n) in counts {
            self.objects.get_or_create(&labels).set(n);
        }
    }
}

impl PartialOrd for ReadyLabels {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for ReadyLabels {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        (self.kind, &self.ready, &self.reason).cmp(&(other.kind, &other.ready, &other.reason))
    }
}
