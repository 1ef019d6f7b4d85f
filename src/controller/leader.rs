//! Lease-based leader election (coordination.k8s.io/v1), so that of several controller
//! replicas exactly one writes. The leader renews its Lease every few seconds; a standby
//! takes over once the Lease has not been renewed for its duration. A leader that cannot
//! renew stops leading before another replica may take over.

use std::time::Duration;

use jiff::Timestamp;
use k8s_openapi::api::coordination::v1::{Lease, LeaseSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::MicroTime;
use kube::Client;
use kube::api::{Api, ObjectMeta, PostParams};
use tokio::sync::watch;

/// Settings of the election.
#[derive(Clone, Debug)]
pub struct LeaderElection {
    /// Lease namespace.
    pub namespace: String,
    /// Lease name.
    pub name: String,
    /// This replica's identity (pod name plus a random suffix).
    pub identity: String,
    /// How long a Lease stays valid without renewal.
    pub lease_duration: Duration,
    /// How often the leader renews, and a standby retries.
    pub retry_period: Duration,
}

impl LeaderElection {
    /// Defaults: 15 s lease, 2 s retry.
    pub fn new(namespace: &str, name: &str, identity: String) -> Self {
        Self {
            namespace: namespace.to_owned(),
            name: name.to_owned(),
            identity,
            lease_duration: Duration::from_secs(15),
            retry_period: Duration::from_secs(2),
        }
    }

    /// Campaigns until this replica leads, then keeps renewing in the background. The returned
    /// receiver turns `false` when leadership is lost; `release` gives the Lease up at shutdown.
    pub async fn acquire(self, client: Client) -> (watch::Receiver<bool>, Releaser) {
        let api: Api<Lease> = Api::namespaced(client, &self.namespace);
        loop {
            match self.try_acquire_or_renew(&api).await {
                Ok(true) => break,
                Ok(false) => {}
                Err(e) => {
                    tracing::warn!(error = %e, lease = %self.name, "leader election: could not read or write the Lease")
                }
            }
            tokio::time::sleep(self.retry_period).await;
        }
        tracing::info!(identity = %self.identity, lease = %self.name, "became the leader");
        let (tx, rx) = watch::channel(true);
        let me = self.clone();
        let renew_api = api.clone();
        let task = tokio::spawn(async move {
            let mut last_renew = tokio::time::Instant::now();
            loop {
                tokio::time::sleep(me.retry_period).await;
                match me.try_acquire_or_renew(&renew_api).await {
                    Ok(true) => last_renew = tokio::time::Instant::now(),
                    Ok(false) => {
                        tracing::error!(lease = %me.name, "leadership was taken by another replica");
                        let _ = tx.send(false);
                        return;
                    }
                    Err(e) => tracing::warn!(error = %e, "leader election: renewal failed"),
                }
                // Stop leading before the Lease can expire for the others.
                if last_renew.elapsed() > me.lease_duration.mul_f32(0.8) {
                    tracing::error!(lease = %me.name, "could not renew the Lease in time; stopping leading");
                    let _ = tx.send(false);
                    return;
                }
            }
        });
        (
            rx,
            Releaser {
                api,
                election: self,
                renew: task,
            },
        )
    }

    /// One round: true when this replica holds the Lease afterwards.
    async fn try_acquire_or_renew(&self, api: &Api<Lease>) -> Result<bool, kube::Error> {
        let now = Timestamp::now();
        let seconds = i32::try_from(self.lease_duration.as_secs()).unwrap_or(15);
        match api.get_opt(&self.name).await? {
            None => {
                let lease = Lease {
                    metadata: ObjectMeta {
                        name: Some(self.name.clone()),
                        ..Default::default()
                    },
                    spec: Some(LeaseSpec {
                        holder_identity: Some(self.identity.clone()),
                        lease_duration_seconds: Some(seconds),
                        acquire_time: Some(MicroTime(now)),
                        renew_time: Some(MicroTime(now)),
                        lease_transitions: Some(0),
                        ..Default::default()
                    }),
                };
                match api.create(&PostParams::default(), &lease).await {
                    Ok(_) => Ok(true),
                    Err(kube::Error::Api(s)) if s.code == 409 => Ok(false),
                    Err(e) => Err(e),
                }
            }
            Some(mut lease) => {
                let spec = lease.spec.get_or_insert_with(Default::default);
                let holder = spec.holder_identity.clone().unwrap_or_default();
                let renewed = spec
                    .renew_time
                    .as_ref()
                    .map(|t| t.0)
                    .unwrap_or(Timestamp::UNIX_EPOCH);
                let duration = spec.lease_duration_seconds.unwrap_or(seconds);
                let expired = renewed + jiff::SignedDuration::from_secs(i64::from(duration)) <= now;
                let mine = holder == self.identity;
                if !mine && !holder.is_empty() && !expired {
                    return Ok(false);
                }
                if !mine {
                    spec.holder_identity = Some(self.identity.clone());
                    spec.acquire_time = Some(MicroTime(now));
                    spec.lease_transitions = Some(spec.lease_transitions.unwrap_or(0) + 1);
                }
                spec.renew_time = Some(MicroTime(now));
                spec.lease_duration_seconds = Some(seconds);
                // The resourceVersion in `lease` makes this a compare-and-swap.
                match api
                    .replace(&self.name, &PostParams::default(), &lease)
                    .await
                {
                    Ok(_) => Ok(true),
                    Err(kube::Error::Api(s)) if s.code == 409 => Ok(false),
                    Err(e) => Err(e),
                }
            }
        }
    }
}

/// Gives the Lease up at graceful shutdown so that a standby takes over at once.
pub struct Releaser {
    api: Api<Lease>,
    election: LeaderElection,
    renew: tokio::task::JoinHandle<()>,
}

impl Releaser {
    /// Stops renewing and clears the holder if it is still this replica.
    pub async fn release(self) {
        self.renew.abort();
        if let Ok(Some(mut lease)) = self.api.get_opt(&self.election.name).await {
            let spec = lease.spec.get_or_insert_with(Default::default);
            if spec.holder_identity.as_deref() == Some(self.election.identity.as_str()) {
                spec.holder_identity = None;
                let _ = self
                    .api
                    .replace(&self.election.name, &PostParams::default(), &lease)
                    .await;
                tracing::info!(lease = %self.election.name, "released the Lease");
            }
        }
    }
}
