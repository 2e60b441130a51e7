//! The job queue on SQLite and PostgreSQL (when `RADLAB_TEST_POSTGRES` names a server):
//! oldest first, workers of two pools on one database never take the same job, progress
//! and cancel reach the worker, and a dead worker's job goes back to the queue, then fails
//! after `MAX_ATTEMPTS` takes; an import stops when its progress says it is cancelled.

use std::collections::HashSet;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use radlab_store::{
    BlobStore, Catalog, ImportOptions, ImportProgress, JobControl, JobState, MAX_ATTEMPTS,
    SiteRole, StoreError, import_paths,
};
use radlab_testkit::{corpus, postgres_database};

async fn with_user(url: &str) -> Catalog {
    let catalog = Catalog::open(url).await.unwrap();
    if catalog.count_users().await.unwrap() == 0 {
        catalog
            .create_user("u1", "maker", "not-a-hash", SiteRole::User)
            .await
            .unwrap();
    }
    catalog
}

async fn queue_and_claims(url: &str, backend: &str) {
    let a = with_user(url).await;
    let b = Catalog::open(url).await.unwrap();
    for i in 0..40 {
        a.enqueue_job(&format!("j{i:02}"), "fuse", "p", "{}", "u1")
            .await
            .unwrap();
    }
    let first = a.job("j00").await.unwrap().unwrap();
    assert_eq!(first.state, JobState::Queued);
    assert_eq!(first.created_by_name, "maker");
    // Eight workers, four on each pool, race for the forty jobs.
    let taken = Arc::new(Mutex::new(Vec::new()));
    let handles: Vec<_> = (0..8)
        .map(|w| {
            let catalog = if w % 2 == 0 { a.clone() } else { b.clone() };
            let taken = taken.clone();
            tokio::spawn(async move {
                let worker = format!("w{w}");
                while let Some(job) = catalog.claim_next_job(&worker).await.unwrap() {
                    assert_eq!(job.state, JobState::Running);
                    assert_eq!(job.worker, worker);
                    taken.lock().unwrap().push(job.job_id.clone());
                    assert!(
                        catalog
                            .finish_job(&job.job_id, &worker, "ok", "{}", "")
                            .await
                            .unwrap()
                    );
                }
            })
        })
        .collect();
    for h in handles {
        h.await.unwrap();
    }
    let taken = taken.lock().unwrap().clone();
    let distinct: HashSet<&String> = taken.iter().collect();
    assert_eq!(taken.len(), 40, "{backend}: a job taken twice");
    assert_eq!(distinct.len(), 40, "{backend}");
    let (jobs, total) = a.jobs(None, 0, 100).await.unwrap();
    assert_eq!(total, 40);
    assert!(
        jobs.iter()
            .all(|j| j.state == JobState::Done && j.attempts == 1),
        "{backend}"
    );
    assert_eq!(a.jobs(Some("nobody"), 0, 100).await.unwrap().1, 0);
    // Newest first, a page at a time.
    let (page, _) = a.jobs(Some("u1"), 38, 10).await.unwrap();
    let ids: Vec<&str> = page.iter().map(|j| j.job_id.as_str()).collect();
    assert_eq!(ids, ["j01", "j00"], "{backend}");
    a.close().await;
    b.close().await;
}

async fn lifecycle(url: &str, backend: &str) {
    let c = with_user(url).await;
    // Oldest first.
    c.enqueue_job("k1", "import", "", r#"{"paths":["/x"]}"#, "u1")
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(2)).await;
    c.enqueue_job("k2", "fuse", "p", "{}", "u1").await.unwrap();
    let job = c.claim_next_job("w1").await.unwrap().unwrap();
    assert_eq!(job.job_id, "k1", "{backend}");
    assert_eq!(
        c.job_progress("k1", "w1", 3, 10, "importing files")
            .await
            .unwrap(),
        JobControl::Continue
    );
    let seen = c.job("k1").await.unwrap().unwrap();
    assert_eq!(
        (seen.done, seen.total, seen.message.as_str()),
        (3, 10, "importing files")
    );
    // Another worker's reports change nothing.
    assert_eq!(
        c.job_progress("k1", "w2", 9, 10, "").await.unwrap(),
        JobControl::Lost
    );
    // Cancel: a running job is asked to stop, and stops at its next report.
    let asked = c.cancel_job("k1").await.unwrap().unwrap();
    assert_eq!(asked.state, JobState::Running);
    assert!(asked.cancel_requested);
    assert_eq!(
        c.job_heartbeat("k1", "w1").await.unwrap(),
        JobControl::Cancel
    );
    assert!(c.job_cancelled("k1", "w1", "stopped").await.unwrap());
    assert_eq!(
        c.job("k1").await.unwrap().unwrap().state,
        JobState::Cancelled
    );
    // A queued job is cancelled at once and never taken.
    c.enqueue_job("k3", "fuse", "p", "{}", "u1").await.unwrap();
    let k3 = c.cancel_job("k3").await.unwrap().unwrap();
    assert_eq!(k3.state, JobState::Cancelled);
    assert!(c.cancel_job("nope").await.unwrap().is_none());

    // A worker that stops answering: its job goes back to the queue, and its late writes
    // change nothing.
    let job = c.claim_next_job("w1").await.unwrap().unwrap();
    assert_eq!(job.job_id, "k2");
    tokio::time::sleep(Duration::from_millis(5)).await;
    assert_eq!(
        c.requeue_stale_jobs(Duration::from_secs(60))
            .await
            .unwrap()
            .requeued,
        0,
        "{backend}: a fresh heartbeat is not stale"
    );
    let stale = c.requeue_stale_jobs(Duration::ZERO).await.unwrap();
    assert_eq!(stale.requeued, 1, "{backend}");
    let k2 = c.job("k2").await.unwrap().unwrap();
    assert_eq!((k2.state, k2.worker.as_str()), (JobState::Queued, ""));
    assert_eq!(
        c.job_progress("k2", "w1", 1, 1, "").await.unwrap(),
        JobControl::Lost
    );
    assert!(!c.finish_job("k2", "w1", "", "{}", "").await.unwrap());
    let again = c.claim_next_job("w2").await.unwrap().unwrap();
    assert_eq!((again.job_id.as_str(), again.attempts), ("k2", 2));
    // Taken MAX_ATTEMPTS times, it fails instead of going round again.
    for n in 2..=MAX_ATTEMPTS {
        tokio::time::sleep(Duration::from_millis(5)).await;
        let stale = c.requeue_stale_jobs(Duration::ZERO).await.unwrap();
        if n < MAX_ATTEMPTS {
            assert_eq!(stale.requeued, 1);
            c.claim_next_job("w3").await.unwrap().unwrap();
        } else {
            assert_eq!(stale.failed, 1, "{backend}");
        }
    }
    let k2 = c.job("k2").await.unwrap().unwrap();
    assert_eq!(k2.state, JobState::Failed);
    assert!(k2.message.contains("stopped answering"), "{}", k2.message);
    assert!(c.claim_next_job("w4").await.unwrap().is_none());
    c.close().await;
}

fn sqlite(dir: &tempfile::TempDir) -> String {
    format!("sqlite://{}", dir.path().join("catalog.db").display())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn workers_never_share_a_job_on_sqlite() {
    let dir = tempfile::tempdir().unwrap();
    queue_and_claims(&sqlite(&dir), "sqlite").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn workers_never_share_a_job_on_postgres() {
    let Some(db) = postgres_database("jobs_claims") else {
        return;
    };
    queue_and_claims(&db.url, "postgres").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn job_lifecycle_on_sqlite() {
    let dir = tempfile::tempdir().unwrap();
    lifecycle(&sqlite(&dir), "sqlite").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn job_lifecycle_on_postgres() {
    let Some(db) = postgres_database("jobs_lifecycle") else {
        return;
    };
    lifecycle(&db.url, "postgres").await;
}

/// Cancelled once the first file is done.
#[derive(Default)]
struct CancelAfterOne(std::sync::atomic::AtomicU64);

impl ImportProgress for CancelAfterOne {
    fn file_done(&self, _display: &str) {
        self.0.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
    }

    fn cancelled(&self) -> bool {
        self.0.load(std::sync::atomic::Ordering::SeqCst) > 0
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cancelled_import_stops_between_batches() {
    let Some(corpus) = corpus("import_cancel") else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let catalog = Catalog::open(&sqlite(&dir)).await.unwrap();
    let blobs = BlobStore::local(dir.path().join("blobs")).unwrap();
    let progress = Arc::new(CancelAfterOne::default());
    let outcome = import_paths(
        &catalog,
        &blobs,
        &[corpus.path("dicom")],
        &ImportOptions {
            jobs: Some(1),
            ..ImportOptions::default()
        },
        progress.clone(),
    )
    .await;
    assert!(matches!(outcome, Err(StoreError::Cancelled)), "{outcome:?}");
    // It stopped early: far fewer files than the corpus holds were read.
    let read = progress.0.load(std::sync::atomic::Ordering::SeqCst);
    let files = corpus.dicom_rows().len() as u64;
    assert!(
        read >= 1 && read < files / 2,
        "{read} of {files} files read"
    );
    // What was written stays catalogued, and a new run finishes the job.
    let counts = catalog.counts().await.unwrap();
    assert!(counts.instances as u64 <= read);
    let summary = import_paths(
        &catalog,
        &blobs,
        &[corpus.path("dicom")],
        &ImportOptions::default(),
        Arc::new(radlab_store::NoProgress),
    )
    .await
    .unwrap();
    assert!(
        summary.already_present >= counts.instances as u64 && summary.imported > 0,
        "{summary:?}"
    );
}
