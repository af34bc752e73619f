//! The job-state port: the `jobs` item of each job (its bookmark, lease and hours set aside),
//! and [`update_job`], the one way the item is changed. The job's run records are the other
//! port, [`crate::RunLog`].

use std::sync::Mutex;
use std::time::Duration;

use async_trait::async_trait;
use backon::{ExponentialBuilder, Retryable};
use events::jobs::Job;

/// Where jobs keep their item: the ingest, and `elt skip | retry | status`.
#[async_trait]
pub trait JobStore: Send + Sync {
    /// The job's item, read consistently; `None` if the job has never been set up.
    async fn get_job(&self, job_id: &str) -> anyhow::Result<Option<Job>>;

    /// Writes `job` only if the stored item still has version `expected` (`None`: only if there is
    /// no item yet). An item without a version (seeded by hand) has version 0, and a version
    /// written as a string counts as its number. Attributes of the item that [`Job`] does not
    /// know are kept (see `events::jobs::JOB_ATTRIBUTES`). Returns false, writing nothing, when
    /// another writer got there first.
    async fn put_job(&self, job: &Job, expected: Option<u64>) -> anyhow::Result<bool>;
}

/// What a change makes of the job item as it is stored now. Short-lived, one at a time: the
/// size of the item inline costs nothing worth a box.
#[allow(clippy::large_enum_variant)]
pub enum Decision<T> {
    /// Write this item (`update_job` sets its version), then answer `T`.
    Write(Job, T),
    /// Nothing to write: the change is already there (a write whose reply was lost), or there is
    /// nothing to change. Answer `T`.
    Keep(T),
}

/// A change's answer, and the item as stored after it (`None`: there is no item).
pub struct Updated<T> {
    pub value: T,
    pub job: Option<Job>,
}

/// How many times [`update_job`] reads and tries to write, and its first pause in between
/// (doubling, with jitter).
#[derive(Debug, Clone, Copy)]
pub struct WriteRetry {
    pub attempts: u32,
    pub first_pause: Duration,
}

impl Default for WriteRetry {
    fn default() -> WriteRetry {
        WriteRetry {
            attempts: 5,
            first_pause: Duration::from_millis(50),
        }
    }
}

impl WriteRetry {
    /// The pauses between attempts: before retry `n`, between half and all of
    /// `first_pause × 2^(n-1)`. (backon's delays start at half the pause, and its jitter adds
    /// up to as much again.)
    pub fn backoff(&self) -> ExponentialBuilder {
        let half = self.first_pause / 2;
        ExponentialBuilder::default()
            .with_min_delay(half)
            .with_factor(2.0)
            .with_max_delay(half.saturating_mul(1 << 10))
            .with_jitter()
            .with_max_times(self.attempts.max(1) as usize - 1)
    }
}

/// Why a round of [`update_job`] did not settle the change.
enum Unsettled {
    /// `decide` refused: answered at once.
    Refused(anyhow::Error),
    /// The read or the write failed, or another writer got there first: worth another round.
    Again(String),
}

/// Changes job `job_id`: reads the item, asks `decide` what to make of it, and writes that
/// conditionally on the version read. A write refused by its condition, or one that failed
/// (its reply may have been lost after it succeeded), is followed by a pause, a fresh read and
/// a fresh decision: `decide` sees the item as stored, so it finds a change of its own already
/// in place, or another writer's change to build on. At most `retry.attempts` rounds, never a
/// spin. An error from `decide` is a refusal, returned at once.
pub async fn update_job<T: Send>(
    store: &dyn JobStore,
    job_id: &str,
    retry: WriteRetry,
    decide: impl FnMut(Option<&Job>) -> anyhow::Result<Decision<T>> + Send,
) -> anyhow::Result<Updated<T>> {
    // Each round is a new future that calls `decide`: they take turns through the lock.
    let decide = Mutex::new(decide);
    let outcome = (|| change_once(store, job_id, &decide))
        .retry(retry.backoff())
        .sleep(tokio::time::sleep)
        .when(|unsettled| matches!(unsettled, Unsettled::Again(_)))
        .notify(|unsettled, pause| {
            if let Unsettled::Again(problem) = unsettled {
                let pause_ms = pause.as_millis() as u64;
                tracing::warn!(
                    job_id,
                    problem,
                    pause_ms,
                    "the job did not change; reading it again"
                );
            }
        })
        .await;
    outcome.map_err(|unsettled| match unsettled {
        Unsettled::Refused(e) => e,
        Unsettled::Again(problem) => anyhow::anyhow!(
            "could not change job {job_id} in {} attempts: {problem}",
            retry.attempts.max(1)
        ),
    })
}

/// One round of [`update_job`]: read, decide, write conditionally on the version read.
async fn change_once<T, F>(
    store: &dyn JobStore,
    job_id: &str,
    decide: &Mutex<F>,
) -> Result<Updated<T>, Unsettled>
where
    F: FnMut(Option<&Job>) -> anyhow::Result<Decision<T>>,
{
    let current = store
        .get_job(job_id)
        .await
        .map_err(|e| Unsettled::Again(format!("reading the job: {e:#}")))?;
    let decision = {
        let mut decide = decide
            .lock()
            .map_err(|_| Unsettled::Refused(anyhow::anyhow!("a change of {job_id} panicked")))?;
        decide(current.as_ref()).map_err(Unsettled::Refused)?
    };
    let (mut job, value) = match decision {
        Decision::Keep(value) => {
            return Ok(Updated {
                value,
                job: current,
            })
        }
        Decision::Write(job, value) => (job, value),
    };
    let expected = current.as_ref().map(|c| c.version);
    job.version = expected.map_or(0, |v| v + 1);
    match store.put_job(&job, expected).await {
        Ok(true) => Ok(Updated {
            value,
            job: Some(job),
        }),
        Ok(false) => Err(Unsettled::Again("another writer changed it first".into())),
        Err(e) => Err(Unsettled::Again(format!("{e:#}"))),
    }
}

#[cfg(test)]
mod tests {
    use backon::BackoffBuilder;

    use super::*;

    /// A store in memory whose writes can lose their reply (written, then an error) or be
    /// refused whatever the version: the faults `update_job` must survive.
    #[derive(Default)]
    struct FaultyStore {
        job: Mutex<Option<Job>>,
        lose_replies: Mutex<u32>,
        refuse_all: bool,
        reads: Mutex<u32>,
        writes: Mutex<u32>,
    }

    #[async_trait]
    impl JobStore for FaultyStore {
        async fn get_job(&self, _: &str) -> anyhow::Result<Option<Job>> {
            *self.reads.lock().unwrap() += 1;
            Ok(self.job.lock().unwrap().clone())
        }

        async fn put_job(&self, job: &Job, expected: Option<u64>) -> anyhow::Result<bool> {
            let mut stored = self.job.lock().unwrap();
            if self.refuse_all || stored.as_ref().map(|j| j.version) != expected {
                return Ok(false);
            }
            *stored = Some(job.clone());
            *self.writes.lock().unwrap() += 1;
            let mut lose = self.lose_replies.lock().unwrap();
            if *lose > 0 {
                *lose -= 1;
                anyhow::bail!("connection reset (after the write)");
            }
            Ok(true)
        }
    }

    fn quick() -> WriteRetry {
        WriteRetry {
            attempts: 5,
            first_pause: Duration::from_millis(1),
        }
    }

    /// Takes a lease for `run`, recognising it already taken by `run` itself.
    fn take_lease(
        run: &str,
    ) -> impl FnMut(Option<&Job>) -> anyhow::Result<Decision<&'static str>> + Send + '_ {
        move |current| {
            let mut job = current
                .cloned()
                .unwrap_or_else(|| Job::new("j", 3, chrono::Utc::now()));
            if job.lease.as_ref().is_some_and(|l| l.run_id == run) {
                return Ok(Decision::Keep("mine already"));
            }
            job.lease = Some(events::jobs::Lease {
                run_id: run.into(),
                expires_at: 1,
            });
            Ok(Decision::Write(job, "taken"))
        }
    }

    #[tokio::test]
    async fn a_write_whose_reply_was_lost_is_recognised_on_reading_again() {
        let store = FaultyStore::default();
        *store.lose_replies.lock().unwrap() = 1;
        let updated = update_job(&store, "j", quick(), take_lease("r1"))
            .await
            .unwrap();
        assert_eq!(updated.value, "mine already");
        assert_eq!(*store.writes.lock().unwrap(), 1, "written once");
        assert_eq!(updated.job.unwrap().version, 0);

        let again = update_job(&store, "j", quick(), take_lease("r2"))
            .await
            .unwrap();
        assert_eq!((again.value, again.job.unwrap().version), ("taken", 1));
    }

    #[tokio::test]
    async fn a_write_that_can_never_succeed_gives_up_after_its_attempts() {
        let store = FaultyStore {
            refuse_all: true,
            ..FaultyStore::default()
        };
        let error = update_job(&store, "j", quick(), take_lease("r1"))
            .await
            .err()
            .unwrap()
            .to_string();
        assert!(error.contains("in 5 attempts"), "{error}");
        assert_eq!(*store.reads.lock().unwrap(), 5, "bounded, not a spin");
    }

    #[tokio::test]
    async fn a_refusal_is_returned_at_once() {
        let store = FaultyStore::default();
        let refused = update_job(&store, "j", quick(), |_| -> anyhow::Result<Decision<()>> {
            anyhow::bail!("2024-03-05-2 is not parked")
        })
        .await;
        assert!(refused.is_err());
        assert_eq!(*store.reads.lock().unwrap(), 1);
    }

    #[test]
    fn pauses_double_with_jitter() {
        let retry = WriteRetry::default();
        let pauses: Vec<Duration> = retry.backoff().build().collect();
        assert_eq!(pauses.len(), 4, "between 5 attempts");
        for (n, pause) in (1..).zip(pauses) {
            let full = retry.first_pause * (1 << (n - 1));
            assert!(pause >= full / 2 && pause <= full, "{n}: {pause:?}");
        }
    }
}
