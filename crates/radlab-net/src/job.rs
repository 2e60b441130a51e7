//! Retrieval jobs: the resumable list of studies of `radlab pacs move` and `radlab pacs get`
//! ([`PacsJob`]; the studies of a `web-retrieve` job are [`JobStudy`] too), what became of
//! each, the retry backoff ([`Retries`]), when a study counts as retrieved ([`verdict`]), and
//! the loop that takes the studies in turn ([`run`]). A job file holds Study Instance UIDs
//! and the PACS's address, nothing read from the data sets.

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::scu::{RetrieveOutcome, ScuError};

/// Why a job file could not be read or written.
#[derive(Debug, thiserror::Error)]
pub enum JobError {
    #[error("cannot read {}: {source}", path.display())]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("cannot write {}: {source}", path.display())]
    Write {
        path: PathBuf,
        source: std::io::Error,
    },
    /// Not a job file, or one of another operation; `why` says which and what to do.
    #[error("{}: {why}", path.display())]
    Invalid { path: PathBuf, why: String },
}

/// Where a study of a job stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum StudyState {
    Pending,
    Done,
    Failed,
}

/// One study of a retrieval job.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct JobStudy {
    pub study_instance_uid: String,
    pub state: StudyState,
    /// Instances the PACS says the study has (C-FIND, QIDO-RS), when it said.
    pub expected: Option<u32>,
    /// Instances stored during the last attempt at the study.
    pub arrived: u32,
    /// Attempts, over all runs.
    pub attempts: u32,
    /// Why the last attempt failed.
    pub failure: Option<String>,
}

impl JobStudy {
    /// A study not tried yet, with the instance count a listing gave.
    pub fn new(study_instance_uid: String, expected: Option<u32>) -> JobStudy {
        JobStudy {
            study_instance_uid,
            state: StudyState::Pending,
            expected,
            arrived: 0,
            attempts: 0,
            failure: None,
        }
    }

    /// What an attempt came to: done with the instances that arrived, or failed and why.
    pub fn record(&mut self, result: Result<u32, String>) {
        match result {
            Ok(arrived) => {
                self.state = StudyState::Done;
                self.failure = None;
                self.arrived = arrived;
            }
            Err(why) => {
                self.state = StudyState::Failed;
                self.failure = Some(why);
            }
        }
    }
}

/// The DIMSE operation of a PACS retrieval job.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Operation {
    /// C-MOVE to a storage SCP (ours, running meanwhile).
    Move,
    /// C-GET: the objects come back on the same association.
    Get,
}

impl Operation {
    /// As in the job file and the command: `move`, `get`.
    pub fn name(self) -> &'static str {
        match self {
            Operation::Move => "move",
            Operation::Get => "get",
        }
    }

    /// `C-MOVE`, `C-GET`.
    pub fn dimse(self) -> &'static str {
        match self {
            Operation::Move => "C-MOVE",
            Operation::Get => "C-GET",
        }
    }
}

/// The PACS of a job (so that `--resume` needs no connection options).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct JobPeer {
    pub host: String,
    pub port: u16,
    pub aec: String,
    pub aet: String,
}

/// A retrieval job file of `radlab pacs move` or `get`: what to fetch, from where, how, and
/// what became of each study.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct PacsJob {
    pub version: u32,
    /// `move` or `get` ([`Operation::name`]).
    pub operation: String,
    pub pacs: JobPeer,
    /// The Move Destination of a `move` job.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub destination: Option<String>,
    /// The storage SOP classes a `get` job proposes beyond the default ones.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub sop_classes: Vec<String>,
    pub studies: Vec<JobStudy>,
}

impl PacsJob {
    /// A new job of `studies` (UID, instance count when known).
    pub fn new(
        operation: Operation,
        pacs: JobPeer,
        destination: Option<String>,
        studies: Vec<(String, Option<u32>)>,
    ) -> PacsJob {
        PacsJob {
            version: 1,
            operation: operation.name().into(),
            pacs,
            destination,
            sop_classes: Vec::new(),
            studies: studies
                .into_iter()
                .map(|(uid, expected)| JobStudy::new(uid, expected))
                .collect(),
        }
    }

    /// Read a job file to resume with `operation`. A job is resumed by the operation it was
    /// created for: a `move` job given to `get` (or the reverse) is refused, saying which
    /// command resumes it.
    pub fn load(path: &Path, operation: Operation) -> Result<PacsJob, JobError> {
        let invalid = |why: String| JobError::Invalid {
            path: path.to_path_buf(),
            why,
        };
        let bytes = std::fs::read(path).map_err(|source| JobError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        let job: PacsJob = serde_json::from_slice(&bytes).map_err(|e| {
            invalid(format!(
                "not a retrieval job file of `radlab pacs move` or `get` ({e}); those of \
                 `web-retrieve` resume with `radlab pacs web-retrieve --resume`"
            ))
        })?;
        if job.version != 1 {
            return Err(invalid(format!(
                "a job file of version 1 is expected, not {}",
                job.version
            )));
        }
        if job.operation != operation.name() {
            let other = [Operation::Move, Operation::Get]
                .into_iter()
                .find(|o| o.name() == job.operation);
            return Err(invalid(match other {
                Some(other) => format!(
                    "a {} job ({}) is resumed by the operation it was created for: \
                     `radlab pacs {} --resume {}`",
                    other.name(),
                    other.dimse(),
                    other.name(),
                    path.display()
                ),
                None => format!(
                    "a job of operation move or get is expected, not {:?}",
                    job.operation
                ),
            }));
        }
        if operation == Operation::Move && job.destination.is_none() {
            return Err(invalid("a move job without its destination".into()));
        }
        Ok(job)
    }

    /// Written to a temporary file beside it, then renamed: a crash leaves the old or the
    /// new job, never half of one.
    pub fn save(&self, path: &Path) -> Result<(), JobError> {
        save_json(self, path)
    }

    /// Studies in `state`.
    pub fn count(&self, state: StudyState) -> usize {
        self.studies.iter().filter(|s| s.state == state).count()
    }

    /// Indexes of the studies not done.
    pub fn todo(&self) -> Vec<usize> {
        (0..self.studies.len())
            .filter(|&i| self.studies[i].state != StudyState::Done)
            .collect()
    }
}

/// Write `value` as JSON to a temporary file beside `path`, then rename it.
pub fn save_json<T: Serialize>(value: &T, path: &Path) -> Result<(), JobError> {
    let write = |path: &Path, source| JobError::Write {
        path: path.to_path_buf(),
        source,
    };
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).map_err(|e| write(dir, e))?;
    }
    let tmp = path.with_extension("json.tmp");
    let bytes = serde_json::to_vec_pretty(value).map_err(|e| write(&tmp, e.into()))?;
    std::fs::write(&tmp, bytes).map_err(|e| write(&tmp, e))?;
    std::fs::rename(&tmp, path).map_err(|e| write(path, e))
}

/// Attempts per study in a run, and the wait between them.
#[derive(Debug, Clone, Copy)]
pub struct Retries {
    /// Attempts per study in one run (at least 1).
    pub attempts: u32,
    /// Seconds before the second attempt, doubled for each next one, at most 60.
    pub retry_delay: f64,
}

impl Retries {
    /// The wait before attempt `attempt` (0-based; called from the second on).
    pub fn delay_before(&self, attempt: u32) -> Duration {
        let seconds = (self.retry_delay.max(0.0) * 2f64.powi(attempt as i32 - 1)).clamp(0.0, 60.0);
        Duration::from_secs_f64(if seconds.is_nan() { 0.0 } else { seconds })
    }
}

/// Whether an attempt at a study retrieved it: the final response Success with no failed
/// sub-operation, at least one instance arrived (counted by what radlab stored, not by the
/// PACS's word) and no fewer than `expected`. `Ok` with the instances that arrived, or why
/// not.
pub fn verdict(
    operation: Operation,
    result: &Result<RetrieveOutcome, ScuError>,
    arrived: u32,
    expected: Option<u32>,
) -> Result<u32, String> {
    match result {
        Err(e) => Err(e.to_string()),
        Ok(o) if !o.is_success() => Err(o.describe(operation.dimse())),
        Ok(_) if arrived == 0 => Err(format!(
            "nothing arrived: the PACS {} no instance (study unknown to it?)",
            match operation {
                Operation::Move => "moved",
                Operation::Get => "sent",
            }
        )),
        Ok(_) => match expected {
            Some(expected) if arrived < expected => {
                Err(format!("{arrived} of {expected} instances arrived"))
            }
            _ => Ok(arrived),
        },
    }
}

/// What [`run`] did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RunSummary {
    /// Studies done in this run.
    pub done: usize,
    /// Instances that arrived for them.
    pub instances: u32,
}

/// Take each study of the job that is not done, in order, up to `retries.attempts` times in
/// this run, waiting [`Retries::delay_before`] between attempts. `attempt` fetches a study
/// (it may fill in `expected`, and sets `arrived`) and says how many instances it brought,
/// or why it failed; its attempt is counted, its state and failure recorded, and the job
/// saved to `path` after every attempt. `report` hears each attempt's end: the study, its
/// position among the studies of this run (1-based) and their number, and the attempt
/// (0-based) of this run.
pub fn run(
    job: &mut PacsJob,
    path: &Path,
    retries: Retries,
    attempt: &mut dyn FnMut(&mut JobStudy) -> Result<u32, String>,
    report: &mut dyn FnMut(&JobStudy, usize, usize, u32),
) -> Result<RunSummary, JobError> {
    let todo = job.todo();
    let mut summary = RunSummary::default();
    for (n, &i) in todo.iter().enumerate() {
        for a in 0..retries.attempts.max(1) {
            if a > 0 {
                std::thread::sleep(retries.delay_before(a));
            }
            let study = &mut job.studies[i];
            study.attempts += 1;
            let result = attempt(study);
            study.record(result);
            job.save(path)?;
            let study = &job.studies[i];
            report(study, n + 1, todo.len(), a);
            if study.state == StudyState::Done {
                summary.done += 1;
                summary.instances += study.arrived;
                break;
            }
        }
    }
    Ok(summary)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn peer() -> JobPeer {
        JobPeer {
            host: "127.0.0.1".into(),
            port: 104,
            aec: "PACS".into(),
            aet: "RADLAB".into(),
        }
    }

    #[test]
    fn a_job_resumes_only_with_its_own_operation() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("job.json");
        let job = PacsJob::new(
            Operation::Move,
            peer(),
            Some("RADLAB".into()),
            vec![("1.2.3".into(), Some(2))],
        );
        job.save(&path).unwrap();
        let text = std::fs::read_to_string(&path).unwrap();
        assert!(text.contains("\"operation\": \"move\""), "{text}");
        assert!(!text.contains("sop_classes"), "{text}");
        assert!(PacsJob::load(&path, Operation::Move).is_ok());
        let e = PacsJob::load(&path, Operation::Get)
            .unwrap_err()
            .to_string();
        assert!(e.contains("radlab pacs move --resume"), "{e}");

        let get = PacsJob::new(Operation::Get, peer(), None, vec![("1.2.3".into(), None)]);
        get.save(&path).unwrap();
        let text = std::fs::read_to_string(&path).unwrap();
        assert!(!text.contains("destination"), "{text}");
        assert_eq!(
            PacsJob::load(&path, Operation::Get).unwrap().studies[0].state,
            StudyState::Pending
        );
        let e = PacsJob::load(&path, Operation::Move)
            .unwrap_err()
            .to_string();
        assert!(e.contains("radlab pacs get --resume"), "{e}");

        std::fs::write(&path, br#"{"version": 1, "operation": "web-retrieve"}"#).unwrap();
        let e = PacsJob::load(&path, Operation::Get)
            .unwrap_err()
            .to_string();
        assert!(e.contains("web-retrieve --resume"), "{e}");
        std::fs::write(&path, b"not json").unwrap();
        assert!(PacsJob::load(&path, Operation::Get).is_err());
    }

    #[test]
    fn the_backoff_doubles_up_to_a_minute() {
        let r = Retries {
            attempts: 5,
            retry_delay: 2.0,
        };
        assert_eq!(r.delay_before(1), Duration::from_secs(2));
        assert_eq!(r.delay_before(2), Duration::from_secs(4));
        assert_eq!(r.delay_before(10), Duration::from_secs(60));
        let odd = Retries {
            attempts: 1,
            retry_delay: f64::NAN,
        };
        assert_eq!(odd.delay_before(1), Duration::ZERO);
    }

    #[test]
    fn verdicts_need_success_arrivals_and_the_expected_count() {
        let ok = Ok(RetrieveOutcome::default());
        assert_eq!(verdict(Operation::Get, &ok, 2, Some(2)), Ok(2));
        assert_eq!(verdict(Operation::Get, &ok, 3, None), Ok(3));
        assert_eq!(
            verdict(Operation::Get, &ok, 1, Some(2)),
            Err("1 of 2 instances arrived".into())
        );
        assert!(
            verdict(Operation::Move, &ok, 0, None)
                .unwrap_err()
                .contains("moved no instance")
        );
        let partial = Ok(RetrieveOutcome {
            status: 0xB000,
            completed: 1,
            failed: 2,
            received: 2,
            refused: 1,
            first_refusal: Some("not imported: no-pixel-data".into()),
            ..Default::default()
        });
        let why = verdict(Operation::Get, &partial, 1, None).unwrap_err();
        assert!(
            why.starts_with("C-GET status 0xB000: 1 completed, 2 failed"),
            "{why}"
        );
        assert!(why.contains("radlab refused 1 (first: not imported: no-pixel-data)"));
        assert!(why.contains("1 never sent to radlab"), "{why}");
    }

    #[test]
    fn run_counts_attempts_and_stops_at_the_first_success() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("jobs/job.json");
        let mut job = PacsJob::new(
            Operation::Get,
            peer(),
            None,
            vec![("1".into(), None), ("2".into(), None), ("3".into(), None)],
        );
        job.studies[2].state = StudyState::Done;
        let retries = Retries {
            attempts: 3,
            retry_delay: 0.0,
        };
        let mut calls = Vec::new();
        let mut reports = Vec::new();
        let summary = run(
            &mut job,
            &path,
            retries,
            &mut |s| {
                calls.push(s.study_instance_uid.clone());
                s.arrived = 4;
                if s.study_instance_uid == "1" && s.attempts < 2 {
                    Err("busy".into())
                } else if s.study_instance_uid == "2" {
                    Err("unknown".into())
                } else {
                    Ok(4)
                }
            },
            &mut |s, n, of, a| reports.push((s.study_instance_uid.clone(), n, of, a)),
        )
        .unwrap();
        assert_eq!(calls, ["1", "1", "2", "2", "2"]);
        assert_eq!(
            summary,
            RunSummary {
                done: 1,
                instances: 4
            }
        );
        assert_eq!(reports[0], ("1".into(), 1, 2, 0));
        assert_eq!(reports[4], ("2".into(), 2, 2, 2));
        let saved = PacsJob::load(&path, Operation::Get).unwrap();
        assert_eq!(saved.studies[0].state, StudyState::Done);
        assert_eq!(saved.studies[0].attempts, 2);
        assert_eq!(saved.studies[1].state, StudyState::Failed);
        assert_eq!(saved.studies[1].failure.as_deref(), Some("unknown"));
        assert_eq!(saved.studies[2].attempts, 0);
    }
}
