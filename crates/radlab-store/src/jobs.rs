//! The job queue: long jobs (imports, label exports, fusion) stored in the catalog, so that
//! any of several `radlab serve` processes on one database may run them, each exactly once.
//!
//! A job is `queued` when made; a worker takes the oldest queued job with
//! [`Catalog::claim_next_job`] (an `UPDATE ... WHERE job_id = $1 AND state = 'queued'` whose
//! affected rows say whether this worker won it: on SQLite writes take turns, on PostgreSQL
//! a second updater waits for the first and then finds the row no longer queued), so two
//! workers never take the same job. The worker reports progress
//! ([`Catalog::job_progress`], [`Catalog::job_heartbeat`]: both refresh `heartbeat_at` and
//! say whether to go on) and ends it `done` ([`Catalog::finish_job`]), `failed`
//! ([`Catalog::fail_job`]) or `cancelled` ([`Catalog::job_cancelled`]). Every one of these
//! writes names the worker and changes nothing once the job is no longer that worker's, so a
//! worker that was presumed dead cannot overwrite what its successor did.
//! [`Catalog::cancel_job`] cancels a queued job at once and asks a running one to stop.
//! [`Catalog::requeue_stale_jobs`] gives the jobs of workers whose heartbeat stopped (a
//! server that died) back to the queue, up to [`MAX_ATTEMPTS`] takes.
//!
//! Times are fixed-width UTC text (`2025-01-31T12:00:00.123456Z`), so text order is time
//! order on both engines; servers sharing a database are assumed to have synchronised
//! clocks (heartbeats are compared across them).

use std::time::Duration;

use serde::Serialize;
use sqlx::Row;

use crate::catalog::Catalog;
use crate::error::{Result, StoreError};

/// A job that has been taken this many times (its workers died each time) is failed rather
/// than given out again: it may be what kills them.
pub const MAX_ATTEMPTS: i64 = 3;

/// Where a job is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum JobState {
    Queued,
    Running,
    Done,
    Failed,
    Cancelled,
}

impl JobState {
    pub fn as_str(&self) -> &'static str {
        match self {
            JobState::Queued => "queued",
            JobState::Running => "running",
            JobState::Done => "done",
            JobState::Failed => "failed",
            JobState::Cancelled => "cancelled",
        }
    }

    pub fn parse(s: &str) -> Option<JobState> {
        Some(match s {
            "queued" => JobState::Queued,
            "running" => JobState::Running,
            "done" => JobState::Done,
            "failed" => JobState::Failed,
            "cancelled" => JobState::Cancelled,
            _ => return None,
        })
    }

    /// Done, failed or cancelled: nothing more will happen to it.
    pub fn finished(&self) -> bool {
        matches!(
            self,
            JobState::Done | JobState::Failed | JobState::Cancelled
        )
    }
}

/// A job as stored.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Job {
    pub job_id: String,
    pub kind: String,
    /// Empty when the job belongs to no project.
    pub project_id: String,
    /// The parameters, a JSON object.
    pub params: String,
    pub state: JobState,
    pub cancel_requested: bool,
    pub done: i64,
    pub total: i64,
    pub message: String,
    /// The result, a JSON object; empty until done.
    pub result: String,
    /// The content hash of the result file in the blob store; empty when none.
    pub result_blob: String,
    /// The user id of who made it, and their name.
    pub created_by: String,
    pub created_by_name: String,
    pub created_at: String,
    pub started_at: String,
    pub finished_at: String,
    pub heartbeat_at: String,
    pub worker: String,
    pub attempts: i64,
}

/// What a worker should do after reporting.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum JobControl {
    /// Go on.
    Continue,
    /// Someone cancelled the job: stop, and record it with [`Catalog::job_cancelled`].
    Cancel,
    /// The job is no longer this worker's (it was presumed dead and the job given to
    /// another, or it was finished): stop and write nothing more.
    Lost,
}

/// What [`Catalog::requeue_stale_jobs`] did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct StaleJobs {
    /// Given back to the queue.
    pub requeued: u64,
    /// Failed: taken [`MAX_ATTEMPTS`] times already.
    pub failed: u64,
    /// Cancelled: their cancel had been asked for.
    pub cancelled: u64,
}

/// The time as fixed-width UTC text, microseconds included.
pub(crate) fn stamp(t: time::OffsetDateTime) -> String {
    let t = t.to_offset(time::UtcOffset::UTC);
    format!(
        "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}.{:06}Z",
        t.year(),
        u8::from(t.month()),
        t.day(),
        t.hour(),
        t.minute(),
        t.second(),
        t.microsecond()
    )
}

fn now() -> String {
    stamp(time::OffsetDateTime::now_utc())
}

const COLUMNS: &str = "j.job_id, j.kind, j.project_id, j.params, j.state, j.cancel_requested, \
     j.done, j.total, j.message, j.result, j.result_blob, j.created_by, \
     COALESCE(u.username, ''), j.created_at, j.started_at, j.finished_at, j.heartbeat_at, \
     j.worker, j.attempts FROM jobs j LEFT JOIN users u ON u.user_id = j.created_by";

fn job_of(r: &sqlx::any::AnyRow) -> Result<Job> {
    let state: String = r.try_get(4)?;
    Ok(Job {
        job_id: r.try_get(0)?,
        kind: r.try_get(1)?,
        project_id: r.try_get(2)?,
        params: r.try_get(3)?,
        state: JobState::parse(&state)
            .ok_or_else(|| StoreError::Database(format!("a job in unknown state {state:?}")))?,
        cancel_requested: r.try_get::<i64, _>(5)? != 0,
        done: r.try_get(6)?,
        total: r.try_get(7)?,
        message: r.try_get(8)?,
        result: r.try_get(9)?,
        result_blob: r.try_get(10)?,
        created_by: r.try_get(11)?,
        created_by_name: r.try_get(12)?,
        created_at: r.try_get(13)?,
        started_at: r.try_get(14)?,
        finished_at: r.try_get(15)?,
        heartbeat_at: r.try_get(16)?,
        worker: r.try_get(17)?,
        attempts: r.try_get(18)?,
    })
}

impl Catalog {
    /// Queue a job (`params` a JSON object; `project` empty for none) made by `created_by`
    /// (a user id).
    pub async fn enqueue_job(
        &self,
        job_id: &str,
        kind: &str,
        project: &str,
        params: &str,
        created_by: &str,
    ) -> Result<Job> {
        // Written and read back in one transaction: the answer is the job as queued, before
        // any server's worker can take it.
        let mut tx = self.pool.begin().await?;
        sqlx::query(
            "INSERT INTO jobs (job_id, kind, project_id, params, state, cancel_requested, done, \
             total, message, result, result_blob, created_by, created_at, started_at, \
             finished_at, heartbeat_at, worker, attempts) \
             VALUES ($1, $2, $3, $4, 'queued', 0, 0, 0, '', '', '', $5, $6, '', '', '', '', 0)",
        )
        .bind(job_id)
        .bind(kind)
        .bind(project)
        .bind(params)
        .bind(created_by)
        .bind(now())
        .execute(&mut *tx)
        .await?;
        let sql = format!("SELECT {COLUMNS} WHERE j.job_id = $1");
        let row = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(job_id)
            .fetch_optional(&mut *tx)
            .await?;
        tx.commit().await?;
        row.as_ref()
            .map(job_of)
            .transpose()?
            .ok_or_else(|| StoreError::Database(format!("job {job_id} vanished once queued")))
    }

    /// A job by id.
    pub async fn job(&self, job_id: &str) -> Result<Option<Job>> {
        let sql = format!("SELECT {COLUMNS} WHERE j.job_id = $1");
        sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(job_id)
            .fetch_optional(&self.pool)
            .await?
            .as_ref()
            .map(job_of)
            .transpose()
    }

    /// A page of jobs, newest first: those `created_by` made, or every job when `None`;
    /// and how many there are in all.
    pub async fn jobs(
        &self,
        created_by: Option<&str>,
        offset: i64,
        limit: i64,
    ) -> Result<(Vec<Job>, i64)> {
        let who = created_by.unwrap_or("");
        let sql = format!(
            "SELECT {COLUMNS} WHERE ($1 = '' OR j.created_by = $1) \
             ORDER BY j.created_at DESC, j.job_id DESC LIMIT $2 OFFSET $3"
        );
        let rows = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(who)
            .bind(limit)
            .bind(offset)
            .fetch_all(&self.pool)
            .await?;
        let total: i64 =
            sqlx::query("SELECT COUNT(*) FROM jobs WHERE ($1 = '' OR created_by = $1)")
                .bind(who)
                .fetch_one(&self.pool)
                .await?
                .try_get(0)?;
        Ok((rows.iter().map(job_of).collect::<Result<_>>()?, total))
    }

    /// Take the oldest queued job for `worker`, or `None` when the queue is empty. The
    /// update only succeeds while the job is still queued, so when another worker (of this
    /// server or another) took it first this one tries the next.
    pub async fn claim_next_job(&self, worker: &str) -> Result<Option<Job>> {
        // Each lost race means another worker took a job; the queue only shrinks.
        for _ in 0..100 {
            let Some(candidate) = sqlx::query(
                "SELECT job_id FROM jobs WHERE state = 'queued' \
                 ORDER BY created_at, job_id LIMIT 1",
            )
            .fetch_optional(&self.pool)
            .await?
            else {
                return Ok(None);
            };
            let job_id: String = candidate.try_get(0)?;
            let at = now();
            let won = sqlx::query(
                "UPDATE jobs SET state = 'running', worker = $2, started_at = $3, \
                 heartbeat_at = $3, attempts = attempts + 1 \
                 WHERE job_id = $1 AND state = 'queued'",
            )
            .bind(&job_id)
            .bind(worker)
            .bind(&at)
            .execute(&self.pool)
            .await?
            .rows_affected();
            if won == 1 {
                return self.job(&job_id).await;
            }
        }
        Ok(None)
    }

    /// Whether `worker` should go on with `job_id`, read after a write that refreshed its
    /// heartbeat (`updated` rows).
    async fn control(&self, job_id: &str, updated: u64) -> Result<JobControl> {
        if updated == 0 {
            return Ok(JobControl::Lost);
        }
        let cancel: i64 = sqlx::query("SELECT cancel_requested FROM jobs WHERE job_id = $1")
            .bind(job_id)
            .fetch_one(&self.pool)
            .await?
            .try_get(0)?;
        Ok(if cancel != 0 {
            JobControl::Cancel
        } else {
            JobControl::Continue
        })
    }

    /// Record a running job's progress (`done` of `total`, and what it is doing); refreshes
    /// its heartbeat. Says whether to go on.
    pub async fn job_progress(
        &self,
        job_id: &str,
        worker: &str,
        done: i64,
        total: i64,
        message: &str,
    ) -> Result<JobControl> {
        let updated = sqlx::query(
            "UPDATE jobs SET done = $3, total = $4, message = $5, heartbeat_at = $6 \
             WHERE job_id = $1 AND worker = $2 AND state = 'running'",
        )
        .bind(job_id)
        .bind(worker)
        .bind(done)
        .bind(total)
        .bind(message)
        .bind(now())
        .execute(&self.pool)
        .await?
        .rows_affected();
        self.control(job_id, updated).await
    }

    /// Refresh a running job's heartbeat (its worker is alive); says whether to go on.
    pub async fn job_heartbeat(&self, job_id: &str, worker: &str) -> Result<JobControl> {
        let updated = sqlx::query(
            "UPDATE jobs SET heartbeat_at = $3 \
             WHERE job_id = $1 AND worker = $2 AND state = 'running'",
        )
        .bind(job_id)
        .bind(worker)
        .bind(now())
        .execute(&self.pool)
        .await?
        .rows_affected();
        self.control(job_id, updated).await
    }

    /// End a job with the state, message and result given, if it is still `worker`'s.
    async fn end_job(
        &self,
        job_id: &str,
        worker: &str,
        state: JobState,
        message: &str,
        result: &str,
        result_blob: &str,
    ) -> Result<bool> {
        Ok(sqlx::query(
            "UPDATE jobs SET state = $3, message = $4, result = $5, result_blob = $6, \
             finished_at = $7, heartbeat_at = $7 \
             WHERE job_id = $1 AND worker = $2 AND state = 'running'",
        )
        .bind(job_id)
        .bind(worker)
        .bind(state.as_str())
        .bind(message)
        .bind(result)
        .bind(result_blob)
        .bind(now())
        .execute(&self.pool)
        .await?
        .rows_affected()
            == 1)
    }

    /// A job done: its result (a JSON object) and the hash of its result file in the blob
    /// store (written before this, or empty). False when the job was no longer `worker`'s.
    pub async fn finish_job(
        &self,
        job_id: &str,
        worker: &str,
        message: &str,
        result: &str,
        result_blob: &str,
    ) -> Result<bool> {
        self.end_job(job_id, worker, JobState::Done, message, result, result_blob)
            .await
    }

    /// A job failed, with why (shown to whoever may see the job).
    pub async fn fail_job(&self, job_id: &str, worker: &str, message: &str) -> Result<bool> {
        self.end_job(job_id, worker, JobState::Failed, message, "", "")
            .await
    }

    /// A running job stopped on its cancel.
    pub async fn job_cancelled(&self, job_id: &str, worker: &str, message: &str) -> Result<bool> {
        self.end_job(job_id, worker, JobState::Cancelled, message, "", "")
            .await
    }

    /// Cancel a job: a queued one is cancelled at once, a running one is asked to stop (its
    /// worker stops at its next progress report). A finished job is left as it is. Returns
    /// the job as it is afterwards, `None` when there is no such job.
    pub async fn cancel_job(&self, job_id: &str) -> Result<Option<Job>> {
        let at = now();
        let cancelled = sqlx::query(
            "UPDATE jobs SET state = 'cancelled', cancel_requested = 1, finished_at = $2, \
             message = 'cancelled before it started' WHERE job_id = $1 AND state = 'queued'",
        )
        .bind(job_id)
        .bind(&at)
        .execute(&self.pool)
        .await?
        .rows_affected();
        if cancelled == 0 {
            // Taken meanwhile, or running already.
            sqlx::query(
                "UPDATE jobs SET cancel_requested = 1 WHERE job_id = $1 AND state = 'running'",
            )
            .bind(job_id)
            .execute(&self.pool)
            .await?;
        }
        self.job(job_id).await
    }

    /// Running jobs whose heartbeat is older than `older_than` belonged to a worker that
    /// died (or lost the database): queue them again, cancel those whose cancel was asked
    /// for, and fail those taken [`MAX_ATTEMPTS`] times already.
    pub async fn requeue_stale_jobs(&self, older_than: Duration) -> Result<StaleJobs> {
        let now_t = time::OffsetDateTime::now_utc();
        let cutoff = stamp(
            now_t
                - time::Duration::try_from(older_than)
                    .map_err(|_| StoreError::Config("the stale time is too long".into()))?,
        );
        let at = stamp(now_t);
        let stale = "state = 'running' AND heartbeat_at < $1";
        let cancelled = sqlx::query(sqlx::AssertSqlSafe(format!(
            "UPDATE jobs SET state = 'cancelled', finished_at = $2, \
             message = 'cancelled (its worker stopped)' WHERE {stale} AND cancel_requested <> 0"
        )))
        .bind(&cutoff)
        .bind(&at)
        .execute(&self.pool)
        .await?
        .rows_affected();
        let failed = sqlx::query(sqlx::AssertSqlSafe(format!(
            "UPDATE jobs SET state = 'failed', finished_at = $2, message = $3 \
             WHERE {stale} AND attempts >= $4"
        )))
        .bind(&cutoff)
        .bind(&at)
        .bind(format!(
            "the servers running this job stopped answering {MAX_ATTEMPTS} times; it is not \
             tried again (their logs may say why)"
        ))
        .bind(MAX_ATTEMPTS)
        .execute(&self.pool)
        .await?
        .rows_affected();
        let requeued = sqlx::query(sqlx::AssertSqlSafe(format!(
            "UPDATE jobs SET state = 'queued', worker = '', heartbeat_at = '', \
             message = 'queued again: the server running it stopped answering' WHERE {stale}"
        )))
        .bind(&cutoff)
        .execute(&self.pool)
        .await?
        .rows_affected();
        Ok(StaleJobs {
            requeued,
            failed,
            cancelled,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stamps_sort_as_times() {
        let a = time::OffsetDateTime::from_unix_timestamp(1_738_324_800).unwrap();
        let b = a + time::Duration::microseconds(1);
        let c = a + time::Duration::seconds(1);
        let (sa, sb, sc) = (stamp(a), stamp(b), stamp(c));
        assert_eq!(sa, "2025-01-31T12:00:00.000000Z");
        assert!(sa < sb && sb < sc);
        assert_eq!(sa.len(), sc.len());
    }
}
