//! Lease-based leader election (coordination.k8s.io/v1), so that of several controller
//! replicas exactly one writes. It follows client-go's rules:
//!
//! - the leader renews its Lease every retry period, and stops leading when it could not
//!   renew within the renew deadline (shorter than the lease duration, so it has stopped
//!   before anyone else may take over);
//! - a standby decides that the Lease has expired by its own monotonic clock: the Lease is
//!   free once its record has not changed for the lease duration since this replica saw it
//!   change. The holder's `renewTime` is never compared with the local wall clock, so clock
//!   skew between nodes cannot make two replicas lead at once;
//! - every write is a compare-and-swap on the Lease's resourceVersion.
//!
//! A term of leadership ends when the Lease is lost; the caller campaigns again in the same
//! process ([`LeaderElection::acquire`] may be called any number of times).

use std::time::Duration;

use jiff::Timestamp;
use k8s_openapi::api::coordination::v1::{Lease, LeaseSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{MicroTime, OwnerReference};
use kube::Client;
use kube::api::{Api, ObjectMeta, PostParams};
use tokio::sync::watch;
use tokio::time::Instant;

/// The three durations of the election, checked against each other.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Timing {
    lease_duration: Duration,
    renew_deadline: Duration,
    retry_period: Duration,
}

/// Durations that cannot work together, with the flag to change.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum TimingError {
    /// The retry period is zero.
    #[error("--leader-retry-period must be longer than 0s")]
    ZeroRetryPeriod,
    /// The leader would give up before its second renewal attempt.
    #[error(
        "--leader-retry-period ({retry_period:?}) must be shorter than --leader-renew-deadline \
         ({renew_deadline:?}), so that the leader can retry a failed renewal before it stops leading"
    )]
    RetryNotShorterThanRenewDeadline {
        /// The retry period given.
        retry_period: Duration,
        /// The renew deadline given.
        renew_deadline: Duration,
    },
    /// Another replica could take over while the leader still works.
    #[error(
        "--leader-renew-deadline ({renew_deadline:?}) must be shorter than --leader-lease-duration \
         ({lease_duration:?}), so that a leader that cannot renew stops before another replica may take over"
    )]
    RenewDeadlineNotShorterThanLease {
        /// The renew deadline given.
        renew_deadline: Duration,
        /// The lease duration given.
        lease_duration: Duration,
    },
    /// The lease duration does not fit the Lease's `leaseDurationSeconds` (a 32-bit number).
    #[error("--leader-lease-duration ({0:?}) is too long: use at most 24h")]
    LeaseTooLong(Duration),
}

impl Timing {
    /// Checks `retry_period < renew_deadline < lease_duration`.
    pub fn new(
        lease_duration: Duration,
        renew_deadline: Duration,
        retry_period: Duration,
    ) -> Result<Self, TimingError> {
        if retry_period.is_zero() {
            return Err(TimingError::ZeroRetryPeriod);
        }
        if retry_period >= renew_deadline {
            return Err(TimingError::RetryNotShorterThanRenewDeadline {
                retry_period,
                renew_deadline,
            });
        }
        if renew_deadline >= lease_duration {
            return Err(TimingError::RenewDeadlineNotShorterThanLease {
                renew_deadline,
                lease_duration,
            });
        }
        if lease_duration > Duration::from_secs(24 * 3600) {
            return Err(TimingError::LeaseTooLong(lease_duration));
        }
        Ok(Self {
            lease_duration,
            renew_deadline,
            retry_period,
        })
    }

    /// How long a Lease stays valid after its record last changed.
    pub fn lease_duration(&self) -> Duration {
        self.lease_duration
    }

    /// How long the leader keeps leading without a successful renewal.
    pub fn renew_deadline(&self) -> Duration {
        self.renew_deadline
    }

    /// How often the leader renews and a standby checks the Lease.
    pub fn retry_period(&self) -> Duration {
        self.retry_period
    }

    fn lease_seconds(&self) -> i32 {
        // At most 24 h (checked in `new`); rounded up so the Lease never looks shorter.
        i32::try_from(self.lease_duration.as_secs_f64().ceil() as u64).unwrap_or(i32::MAX)
    }
}

impl Default for Timing {
    /// 10 s lease, 7 s renew deadline, 1 s retry: a killed leader is replaced 9 to 12 s
    /// after it died, and a leader that cannot reach the API server stops 3 s before
    /// anyone else may take over.
    fn default() -> Self {
        Self {
            lease_duration: Duration::from_secs(10),
            renew_deadline: Duration::from_secs(7),
            retry_period: Duration::from_secs(1),
        }
    }
}

/// One replica's candidacy for a Lease.
pub struct LeaderElection {
    lock: LeaseLock,
    observer: Observer,
}

/// The Lease and who this replica is: what reading and writing the record needs.
#[derive(Clone)]
struct LeaseLock {
    api: Api<Lease>,
    name: String,
    identity: String,
    timing: Timing,
    /// Set as the Lease's owner whenever this replica writes it, so that the Lease is deleted
    /// with its owner (the controller's Deployment).
    owner: Option<OwnerReference>,
}

impl LeaderElection {
    /// A candidate for the Lease `namespace/name` under `identity` (unique per replica).
    pub fn new(
        client: Client,
        namespace: &str,
        name: &str,
        identity: String,
        timing: Timing,
    ) -> Self {
        Self {
            lock: LeaseLock {
                api: Api::namespaced(client, namespace),
                name: name.to_owned(),
                identity,
                timing,
                owner: None,
            },
            observer: Observer::default(),
        }
    }

    /// Makes `owner` the Lease's owner from this replica's next write on (created, claimed or
    /// renewed): Kubernetes' garbage collector then deletes the Lease with its owner, so that
    /// uninstalling leaves no Lease behind.
    pub fn set_owner(&mut self, owner: OwnerReference) {
        self.lock.owner = Some(owner);
    }

    /// Whether an owner is set.
    pub fn has_owner(&self) -> bool {
        self.lock.owner.is_some()
    }

    /// This replica's identity in the Lease.
    pub fn identity(&self) -> &str {
        &self.lock.identity
    }

    /// Campaigns until this replica leads, then keeps renewing in the background until the
    /// returned term ends (leadership lost, or [`Term::release`]).
    pub async fn acquire(&mut self) -> Term {
        let timing = self.lock.timing;
        let mut failing = false;
        let mut last_holder = String::new();
        let renewed = loop {
            let started = Instant::now();
            // A hung request must not stall the campaign: bounded by the renew deadline.
            let outcome = tokio::time::timeout(
                timing.renew_deadline,
                self.lock.round(&mut self.observer, false),
            )
            .await;
            match outcome {
                Ok(Ok(Outcome::Leading)) => break started,
                Ok(Ok(Outcome::HeldBy(holder))) => {
                    if holder != last_holder {
                        tracing::info!(holder = %holder, lease = %self.lock.name, "another replica leads; standing by");
                        last_holder = holder;
                    }
                    failing = false;
                }
                Ok(Ok(Outcome::Conflict)) => failing = false,
                Ok(Err(e)) => {
                    if !failing {
                        tracing::warn!(error = %e, lease = %self.lock.name, "leader election: could not read or write the Lease; retrying");
                    }
                    failing = true;
                }
                Err(_) => {
                    if !failing {
                        tracing::warn!(lease = %self.lock.name, "leader election: the API server did not answer in time; retrying");
                    }
                    failing = true;
                }
            }
            tokio::time::sleep(timing.retry_period).await;
        };
        tracing::info!(identity = %self.lock.identity, lease = %self.lock.name, "became the leader");
        let (tx, rx) = watch::channel(true);
        let renew = tokio::spawn(self.lock.clone().keep_renewing(renewed, tx));
        Term {
            leading: rx,
            renew,
            lock: self.lock.clone(),
        }
    }
}

/// One term of leadership.
pub struct Term {
    leading: watch::Receiver<bool>,
    renew: tokio::task::JoinHandle<()>,
    lock: LeaseLock,
}

impl Term {
    /// Turns `false` when leadership is lost (the Lease could not be renewed within the
    /// renew deadline, or another replica holds it); the receiver also ends if renewing stops.
    pub fn leading(&self) -> watch::Receiver<bool> {
        self.leading.clone()
    }

    /// Stops renewing and clears the holder if it is still this replica, so that a standby
    /// takes over at once. Gives up after `within` (the API server may be unreachable).
    pub async fn release(self, within: Duration) {
        self.renew.abort();
        let lock = self.lock.clone();
        match tokio::time::timeout(within, lock.release()).await {
            Ok(Ok(true)) => tracing::info!(lease = %lock.name, "released the Lease"),
            Ok(Ok(false)) => {}
            Ok(Err(e)) => {
                tracing::warn!(error = %e, lease = %lock.name, "could not release the Lease; it expires by itself")
            }
            Err(_) => {
                tracing::warn!(lease = %lock.name, "releasing the Lease timed out; it expires by itself")
            }
        }
    }
}

impl Drop for Term {
    fn drop(&mut self) {
        self.renew.abort();
    }
}

/// What one round of reading (and maybe writing) the Lease found.
#[derive(Debug, PartialEq, Eq)]
enum Outcome {
    /// This replica holds the Lease now.
    Leading,
    /// Another replica holds a valid Lease.
    HeldBy(String),
    /// The Lease changed between reading and writing it.
    Conflict,
}

impl LeaseLock {
    /// Renews every retry period; sends `false` and returns when the Lease was not renewed
    /// within the renew deadline since the start of the last successful attempt, or another
    /// replica holds it.
    async fn keep_renewing(self, mut renewed: Instant, leading: watch::Sender<bool>) {
        let timing = self.timing;
        loop {
            let deadline = renewed + timing.renew_deadline;
            tokio::time::sleep_until((Instant::now() + timing.retry_period).min(deadline)).await;
            if Instant::now() >= deadline {
                tracing::error!(lease = %self.name, renew_deadline = ?timing.renew_deadline, "could not renew the Lease within the renew deadline; stopping leading");
                let _ = leading.send(false);
                return;
            }
            let started = Instant::now();
            // Only the leader's own record matters here: no observation is needed.
            let outcome =
                tokio::time::timeout_at(deadline, self.round(&mut Observer::default(), true)).await;
            match outcome {
                Ok(Ok(Outcome::Leading)) => renewed = started,
                Ok(Ok(Outcome::HeldBy(holder))) => {
                    tracing::error!(holder = %holder, lease = %self.name, "another replica holds the Lease; stopping leading");
                    let _ = leading.send(false);
                    return;
                }
                Ok(Ok(Outcome::Conflict)) => {
                    tracing::warn!(lease = %self.name, "the Lease changed while renewing it; retrying")
                }
                Ok(Err(e)) => {
                    tracing::warn!(error = %e, lease = %self.name, "could not renew the Lease; retrying")
                }
                Err(_) => {}
            }
        }
    }

    /// One round: reads the Lease and writes this replica into it when it may.
    async fn round(&self, observer: &mut Observer, leading: bool) -> Result<Outcome, kube::Error> {
        let Some(lease) = self.api.get_opt(&self.name).await? else {
            let lease = Lease {
                metadata: ObjectMeta {
                    name: Some(self.name.clone()),
                    owner_references: self.owner.clone().map(|o| vec![o]),
                    ..Default::default()
                },
                spec: Some(claimed(
                    &LeaseSpec::default(),
                    &self.identity,
                    Timestamp::now(),
                    self.timing.lease_seconds(),
                )),
            };
            return match self.api.create(&PostParams::default(), &lease).await {
                Ok(_) => Ok(Outcome::Leading),
                Err(kube::Error::Api(s)) if s.code == 409 => Ok(Outcome::Conflict),
                Err(e) => Err(e),
            };
        };
        let spec = lease.spec.clone().unwrap_or_default();
        let expired = observer.expired(&spec, Instant::now(), self.timing.lease_duration);
        if let Verdict::HeldBy(holder) = verdict(&spec, &self.identity, expired, leading) {
            return Ok(Outcome::HeldBy(holder));
        }
        let mut next = lease;
        if let Some(owner) = &self.owner {
            owned_by(&mut next.metadata, owner);
        }
        next.spec = Some(claimed(
            &spec,
            &self.identity,
            Timestamp::now(),
            self.timing.lease_seconds(),
        ));
        // The resourceVersion read above makes this a compare-and-swap.
        match self
            .api
            .replace(&self.name, &PostParams::default(), &next)
            .await
        {
            Ok(_) => Ok(Outcome::Leading),
            Err(kube::Error::Api(s)) if s.code == 409 => Ok(Outcome::Conflict),
            Err(e) => Err(e),
        }
    }

    /// Clears the holder if it is this replica; true when it did.
    async fn release(&self) -> Result<bool, kube::Error> {
        let Some(mut lease) = self.api.get_opt(&self.name).await? else {
            return Ok(false);
        };
        let spec = lease.spec.get_or_insert_with(Default::default);
        if spec.holder_identity.as_deref() != Some(self.identity.as_str()) {
            return Ok(false);
        }
        spec.holder_identity = None;
        spec.renew_time = Some(MicroTime(Timestamp::now()));
        self.api
            .replace(&self.name, &PostParams::default(), &lease)
            .await?;
        Ok(true)
    }
}

/// Makes `owner` the only owner in `meta` unless it already is one (a Lease written by a release
/// of another Deployment, or before owners were set, gets this one's).
fn owned_by(meta: &mut ObjectMeta, owner: &OwnerReference) {
    let owners = meta.owner_references.get_or_insert_with(Vec::new);
    if !owners.iter().any(|o| o.uid == owner.uid) {
        *owners = vec![owner.clone()];
    }
}

/// The Lease record this replica last saw and when, on its own monotonic clock, it saw it
/// change.
#[derive(Default)]
struct Observer {
    last: Option<(LeaseSpec, Instant)>,
}

impl Observer {
    /// Records `spec` as seen at `now`; true when the record has not changed for its lease
    /// duration (the holder's `leaseDurationSeconds`, or `fallback`) since this replica first
    /// saw it in this form.
    fn expired(&mut self, spec: &LeaseSpec, now: Instant, fallback: Duration) -> bool {
        let since = match &self.last {
            Some((seen, since)) if seen == spec => *since,
            _ => {
                self.last = Some((spec.clone(), now));
                now
            }
        };
        let duration = spec
            .lease_duration_seconds
            .and_then(|s| u64::try_from(s).ok())
            .filter(|s| *s > 0)
            .map_or(fallback, Duration::from_secs);
        now.saturating_duration_since(since) >= duration
    }
}

/// Whether this replica may write itself into the Lease.
#[derive(Debug, PartialEq, Eq)]
enum Verdict {
    /// Take or renew the Lease.
    Claim,
    /// Another replica holds it.
    HeldBy(String),
}

/// The election's rule: a free or released Lease, or one whose record did not change for its
/// duration, may be claimed; this replica's own Lease is renewed (also by a new campaign of
/// the same identity, which finds it still unexpired after an outage); a leader that finds
/// another holder has lost, whatever the times say.
fn verdict(spec: &LeaseSpec, identity: &str, expired: bool, leading: bool) -> Verdict {
    match spec.holder_identity.as_deref() {
        None | Some("") => Verdict::Claim,
        Some(holder) if holder == identity => Verdict::Claim,
        Some(holder) if leading || !expired => Verdict::HeldBy(holder.to_owned()),
        Some(_) => Verdict::Claim,
    }
}

/// The record after `identity` claims (or renews) it at `now`.
fn claimed(spec: &LeaseSpec, identity: &str, now: Timestamp, lease_seconds: i32) -> LeaseSpec {
    let mut next = spec.clone();
    if spec.holder_identity.as_deref() != Some(identity) {
        next.holder_identity = Some(identity.to_owned());
        next.acquire_time = Some(MicroTime(now));
        next.lease_transitions = Some(match spec.holder_identity.as_deref() {
            None | Some("") if spec.acquire_time.is_none() => 0,
            _ => spec.lease_transitions.unwrap_or(0).saturating_add(1),
        });
    }
    next.renew_time = Some(MicroTime(now));
    next.lease_duration_seconds = Some(lease_seconds);
    next
}

#[cfg(test)]
mod tests {
    use super::*;

    fn held_by(holder: &str, renew_time: Timestamp) -> LeaseSpec {
        LeaseSpec {
            holder_identity: Some(holder.to_owned()),
            lease_duration_seconds: Some(10),
            renew_time: Some(MicroTime(renew_time)),
            acquire_time: Some(MicroTime(renew_time)),
            lease_transitions: Some(3),
            ..Default::default()
        }
    }

    const FALLBACK: Duration = Duration::from_secs(15);

    #[test]
    fn durations_must_be_retry_then_renew_deadline_then_lease() {
        let s = Duration::from_secs;
        assert!(Timing::new(s(10), s(7), s(1)).is_ok());
        assert_eq!(
            Timing::new(s(10), s(7), s(0)),
            Err(TimingError::ZeroRetryPeriod)
        );
        let err = Timing::new(s(10), s(2), s(2)).unwrap_err();
        assert_eq!(
            err.to_string(),
            "--leader-retry-period (2s) must be shorter than --leader-renew-deadline (2s), so that \
             the leader can retry a failed renewal before it stops leading"
        );
        let err = Timing::new(s(10), s(10), s(2)).unwrap_err();
        assert!(
            err.to_string().starts_with(
                "--leader-renew-deadline (10s) must be shorter than --leader-lease-duration (10s)"
            ),
            "{err}"
        );
        assert!(Timing::new(s(90_000), s(7), s(1)).is_err());
        assert_eq!(Timing::default(), Timing::new(s(10), s(7), s(1)).unwrap());
    }

    #[test]
    fn a_standby_times_the_lease_from_when_it_saw_the_record_change_not_from_renew_time() {
        let start = Instant::now();
        let mut observer = Observer::default();
        // The holder's clock is an hour behind: its renewTime looks long expired.
        let spec = held_by("a", Timestamp::now() - jiff::SignedDuration::from_hours(1));
        assert!(!observer.expired(&spec, start, FALLBACK));
        assert!(!observer.expired(&spec, start + Duration::from_secs(9), FALLBACK));
        assert!(observer.expired(&spec, start + Duration::from_secs(10), FALLBACK));
    }

    #[test]
    fn a_holder_clock_ahead_does_not_keep_a_dead_lease_alive() {
        let start = Instant::now();
        let mut observer = Observer::default();
        let spec = held_by("a", Timestamp::now() + jiff::SignedDuration::from_hours(1));
        assert!(!observer.expired(&spec, start, FALLBACK));
        assert!(observer.expired(&spec, start + Duration::from_secs(10), FALLBACK));
    }

    #[test]
    fn every_renewal_restarts_the_standby_clock() {
        let start = Instant::now();
        let mut observer = Observer::default();
        let first = held_by("a", Timestamp::now());
        assert!(!observer.expired(&first, start, FALLBACK));
        let renewed = held_by("a", Timestamp::now() + jiff::SignedDuration::from_secs(1));
        assert!(!observer.expired(&renewed, start + Duration::from_secs(8), FALLBACK));
        assert!(!observer.expired(&renewed, start + Duration::from_secs(17), FALLBACK));
        assert!(observer.expired(&renewed, start + Duration::from_secs(18), FALLBACK));
    }

    #[test]
    fn a_lease_without_duration_uses_the_own_duration() {
        let start = Instant::now();
        let mut observer = Observer::default();
        let mut spec = held_by("a", Timestamp::now());
        spec.lease_duration_seconds = None;
        assert!(!observer.expired(&spec, start + Duration::from_secs(0), FALLBACK));
        assert!(!observer.expired(&spec, start + Duration::from_secs(14), FALLBACK));
        assert!(observer.expired(&spec, start + Duration::from_secs(15), FALLBACK));
    }

    #[test]
    fn who_may_claim_the_lease() {
        let now = Timestamp::now();
        let theirs = held_by("a", now);
        assert_eq!(
            verdict(&theirs, "b", false, false),
            Verdict::HeldBy("a".into())
        );
        assert_eq!(verdict(&theirs, "b", true, false), Verdict::Claim);
        // A leader that finds another holder has lost, even if the record looks expired.
        assert_eq!(
            verdict(&theirs, "b", true, true),
            Verdict::HeldBy("a".into())
        );
        // Its own record: renewed, and resumed by a new campaign of the same identity.
        assert_eq!(verdict(&theirs, "a", false, false), Verdict::Claim);
        assert_eq!(verdict(&theirs, "a", false, true), Verdict::Claim);
        // A released Lease is free at once.
        let mut released = theirs.clone();
        released.holder_identity = None;
        assert_eq!(verdict(&released, "b", false, false), Verdict::Claim);
    }

    #[test]
    fn claiming_counts_transitions_and_renewing_keeps_the_acquire_time() {
        let t0 = Timestamp::now();
        let first = claimed(&LeaseSpec::default(), "a", t0, 10);
        assert_eq!(first.holder_identity.as_deref(), Some("a"));
        assert_eq!(first.lease_transitions, Some(0));
        assert_eq!(first.lease_duration_seconds, Some(10));
        let t1 = t0 + jiff::SignedDuration::from_secs(1);
        let renewed = claimed(&first, "a", t1, 10);
        assert_eq!(renewed.acquire_time, Some(MicroTime(t0)));
        assert_eq!(renewed.renew_time, Some(MicroTime(t1)));
        assert_eq!(renewed.lease_transitions, Some(0));
        let taken = claimed(&renewed, "b", t1, 10);
        assert_eq!(taken.holder_identity.as_deref(), Some("b"));
        assert_eq!(taken.acquire_time, Some(MicroTime(t1)));
        assert_eq!(taken.lease_transitions, Some(1));
        let mut released = taken.clone();
        released.holder_identity = None;
        assert_eq!(claimed(&released, "a", t1, 10).lease_transitions, Some(2));
    }

    #[test]
    fn the_owner_replaces_other_owners_once() {
        let owner = |uid: &str| OwnerReference {
            api_version: "apps/v1".into(),
            kind: "Deployment".into(),
            name: "rel-sso-operator-controller".into(),
            uid: uid.into(),
            ..Default::default()
        };
        let mut meta = ObjectMeta::default();
        owned_by(&mut meta, &owner("a"));
        assert_eq!(meta.owner_references, Some(vec![owner("a")]));
        // A Lease left by a Deployment deleted before gets the current one.
        owned_by(&mut meta, &owner("b"));
        assert_eq!(meta.owner_references, Some(vec![owner("b")]));
        // Owners added by someone else next to ours stay.
        let mut both = vec![owner("b"), owner("c")];
        meta.owner_references = Some(both.clone());
        owned_by(&mut meta, &owner("b"));
        assert_eq!(meta.owner_references.as_mut(), Some(&mut both));
    }

    #[test]
    fn lease_seconds_round_up() {
        let t = Timing::new(
            Duration::from_millis(4500),
            Duration::from_secs(3),
            Duration::from_secs(1),
        )
        .unwrap();
        assert_eq!(t.lease_seconds(), 5);
    }
}
