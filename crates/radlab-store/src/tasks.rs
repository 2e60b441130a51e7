//! Workflows and tasks: per split, how many blinded readers read each image and how many
//! reviewers then build the consensus; the assignment of reading tasks (N distinct readers
//! per image from the project's annotators, the least loaded first, never the same image
//! twice, re-runnable for new images); task states NEW, IN_PROGRESS, SUBMITTED; review tasks
//! made when the last reader of an image submits (consensus workflow); image states
//! waiting, in_reading, in_review, done.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use serde::Serialize;
use sqlx::Row;

use crate::catalog::{Catalog, now_rfc3339};
use crate::error::{Result, StoreError};
use crate::labels::ProjectRole;

/// How the images of a split are read.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Workflow {
    pub split: String,
    /// 'independent', 'consensus' or 'single'.
    pub kind: String,
    pub readers: i64,
    pub reviewers: i64,
}

impl Workflow {
    /// Check the numbers against the kind: single has 1 reader and no reviewer,
    /// independent N >= 1 readers and none, consensus N >= 1 readers and M >= 1 reviewers.
    pub fn check(&self) -> Result<()> {
        let bad = |m: String| Err(StoreError::Config(m));
        if !crate::project_images::SPLITS.contains(&self.split.as_str()) {
            return bad(format!(
                "split {:?}: use train, test or unassigned",
                self.split
            ));
        }
        match self.kind.as_str() {
            "single" if self.readers != 1 || self.reviewers != 0 => {
                bad("a single workflow has 1 reader and no reviewer".into())
            }
            "independent" if !(1..=20).contains(&self.readers) || self.reviewers != 0 => {
                bad("an independent workflow has 1 to 20 readers and no reviewer".into())
            }
            "consensus"
                if !(1..=20).contains(&self.readers) || !(1..=10).contains(&self.reviewers) =>
            {
                bad("a consensus workflow has 1 to 20 readers and 1 to 10 reviewers".into())
            }
            "single" | "independent" | "consensus" => Ok(()),
            other => bad(format!(
                "workflow {other:?}: use independent, consensus or single"
            )),
        }
    }
}

/// Per reader: their tasks by state, and the median time from start to submit.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ReaderProgress {
    pub username: String,
    pub new: i64,
    pub in_progress: i64,
    pub submitted: i64,
    /// Median seconds from start to submit over their submitted tasks.
    pub median_seconds_per_image: Option<f64>,
}

/// A task as its reader sees it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Task {
    pub task_id: String,
    pub project_id: String,
    pub image_id: String,
    pub user_id: String,
    pub username: String,
    pub kind: String,
    pub state: String,
    pub updated_at: String,
}

/// What an assignment run made.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Assignment {
    pub images: u64,
    pub tasks_created: u64,
    /// Reading tasks per annotator after the run (their whole load in the project).
    pub load: BTreeMap<String, u64>,
}

/// A deterministic spread for ties between equally loaded readers.
fn tie(image: &str, user: &str) -> u64 {
    let h = blake3::hash(format!("{image}\0{user}").as_bytes());
    u64::from_le_bytes(h.as_bytes()[..8].try_into().unwrap_or([0; 8]))
}

/// A new task id: unique (a hash of the task, the time and a counter of this process).
fn new_task_id(project: &str, image: &str, user: &str) -> String {
    static COUNTER: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let n = COUNTER.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let t = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    let h = blake3::hash(format!("{project}\0{image}\0{user}\0{t}\0{n}").as_bytes());
    format!("t_{}", &h.to_hex()[..24])
}

const TASK_COLUMNS: &str = "t.task_id, t.project_id, t.image_id, t.user_id, u.username, t.kind, \
                            t.state, t.updated_at";

fn task_of(r: &sqlx::any::AnyRow) -> std::result::Result<Task, sqlx::Error> {
    Ok(Task {
        task_id: r.try_get(0)?,
        project_id: r.try_get(1)?,
        image_id: r.try_get(2)?,
        user_id: r.try_get(3)?,
        username: r.try_get(4)?,
        kind: r.try_get(5)?,
        state: r.try_get(6)?,
        updated_at: r.try_get(7)?,
    })
}

impl Catalog {
    /// Set the workflow of a split.
    pub async fn set_workflow(&self, project: &str, w: &Workflow) -> Result<()> {
        w.check()?;
        sqlx::query(
            "INSERT INTO workflows (project_id, split, kind, readers, reviewers) \
             VALUES ($1, $2, $3, $4, $5) ON CONFLICT (project_id, split) DO UPDATE SET \
             kind = excluded.kind, readers = excluded.readers, reviewers = excluded.reviewers",
        )
        .bind(project)
        .bind(&w.split)
        .bind(&w.kind)
        .bind(w.readers)
        .bind(w.reviewers)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// The workflows of a project, by split.
    pub async fn workflows(&self, project: &str) -> Result<Vec<Workflow>> {
        let rows = sqlx::query(
            "SELECT split, kind, readers, reviewers FROM workflows WHERE project_id = $1 \
             ORDER BY split",
        )
        .bind(project)
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|r| {
                Ok(Workflow {
                    split: r.try_get(0)?,
                    kind: r.try_get(1)?,
                    readers: r.try_get(2)?,
                    reviewers: r.try_get(3)?,
                })
            })
            .collect()
    }

    async fn workflow(&self, project: &str, split: &str) -> Result<Workflow> {
        self.workflows(project)
            .await?
            .into_iter()
            .find(|w| w.split == split)
            .ok_or_else(|| {
                StoreError::Config(format!(
                    "split {split} of project {project} has no workflow: set one first"
                ))
            })
    }

    /// Members of a role: (user id, user name), by name.
    async fn pool_of(&self, project: &str, role: ProjectRole) -> Result<Vec<(String, String)>> {
        Ok(self
            .members(project)
            .await?
            .into_iter()
            .filter(|m| m.role == role)
            .map(|m| (m.user_id, m.username))
            .collect())
    }

    /// Give every image of `split` that has fewer reading tasks than its workflow's readers
    /// the missing ones: distinct annotators, the least loaded first (ties spread by a hash
    /// of image and user), never one who already has a task on the image. One transaction.
    pub async fn assign(&self, project: &str, split: &str) -> Result<Assignment> {
        let w = self.workflow(project, split).await?;
        let pool = self.pool_of(project, ProjectRole::Annotator).await?;
        if (pool.len() as i64) < w.readers {
            return Err(StoreError::Config(format!(
                "{} readers per image need at least {} annotators; the project has {}",
                w.readers,
                w.readers,
                pool.len()
            )));
        }
        // One assignment at a time per project, whichever server runs it: the project's row
        // is locked (PostgreSQL row lock; SQLite's write lock) before anything is read.
        let mut tx = self.pool.begin().await?;
        crate::catalog::lock_project(&mut tx, project).await?;
        let images: Vec<String> = sqlx::query(
            "SELECT image_id FROM project_images WHERE project_id = $1 AND split = $2 \
             AND state <> 'archived' ORDER BY image_id",
        )
        .bind(project)
        .bind(split)
        .fetch_all(&mut *tx)
        .await?
        .iter()
        .map(|r| r.try_get(0))
        .collect::<std::result::Result<_, _>>()?;
        // Who has what already: tasks per image, reading load per user.
        let mut on_image: HashMap<String, BTreeSet<String>> = HashMap::new();
        let mut readers_of: HashMap<String, i64> = HashMap::new();
        let mut load: HashMap<String, u64> = HashMap::new();
        for r in sqlx::query("SELECT image_id, user_id, kind FROM tasks WHERE project_id = $1")
            .bind(project)
            .fetch_all(&mut *tx)
            .await?
        {
            let (image, user, kind): (String, String, String) =
                (r.try_get(0)?, r.try_get(1)?, r.try_get(2)?);
            if kind == "reading" {
                *readers_of.entry(image.clone()).or_default() += 1;
                *load.entry(user.clone()).or_default() += 1;
            }
            on_image.entry(image).or_default().insert(user);
        }
        let mut new_tasks: Vec<(String, String)> = Vec::new();
        let mut touched = 0;
        for image in &images {
            let missing = w.readers - readers_of.get(image).copied().unwrap_or(0);
            if missing <= 0 {
                continue;
            }
            touched += 1;
            let taken = on_image.entry(image.clone()).or_default();
            let mut candidates: Vec<&(String, String)> =
                pool.iter().filter(|(id, _)| !taken.contains(id)).collect();
            if (candidates.len() as i64) < missing {
                return Err(StoreError::Config(format!(
                    "image {image} needs {missing} more readers but only {} annotators have no \
                     task on it",
                    candidates.len()
                )));
            }
            candidates.sort_by_key(|(id, _)| (load.get(id).copied().unwrap_or(0), tie(image, id)));
            for (id, _) in candidates.into_iter().take(missing as usize) {
                *load.entry(id.clone()).or_default() += 1;
                taken.insert(id.clone());
                new_tasks.push((image.clone(), id.clone()));
            }
        }
        let now = now_rfc3339();
        for chunk in new_tasks.chunks(1000) {
            let sql = format!(
                "INSERT INTO tasks (task_id, project_id, image_id, user_id, kind, state, \
                 created_at, updated_at) VALUES {}",
                crate::catalog::numbered_rows("(?, ?, ?, ?, 'reading', 'NEW', ?, ?)", chunk.len())
            );
            let mut q = sqlx::query(sqlx::AssertSqlSafe(sql));
            for (image, user) in chunk {
                q = q
                    .bind(new_task_id(project, image, user))
                    .bind(project)
                    .bind(image)
                    .bind(user)
                    .bind(&now)
                    .bind(&now);
            }
            q.execute(&mut *tx).await?;
        }
        for chunk in new_tasks.chunks(500) {
            let images: BTreeSet<&String> = chunk.iter().map(|(i, _)| i).collect();
            for image in images {
                sqlx::query(
                    "UPDATE project_images SET state = 'in_reading' WHERE project_id = $1 \
                     AND image_id = $2 AND state = 'waiting'",
                )
                .bind(project)
                .bind(image)
                .execute(&mut *tx)
                .await?;
            }
        }
        tx.commit().await?;
        let names: HashMap<&String, &String> = pool.iter().map(|(id, n)| (id, n)).collect();
        Ok(Assignment {
            images: touched,
            tasks_created: new_tasks.len() as u64,
            load: pool
                .iter()
                .map(|(id, _)| (names[id].clone(), load.get(id).copied().unwrap_or(0)))
                .collect(),
        })
    }

    /// A page of a user's tasks (in one project and state when given), oldest change first.
    pub async fn tasks_of(
        &self,
        user_id: &str,
        project: Option<&str>,
        state: Option<&str>,
        offset: i64,
        limit: i64,
    ) -> Result<Vec<Task>> {
        let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT {TASK_COLUMNS} FROM tasks t JOIN users u ON u.user_id = t.user_id \
             WHERE t.user_id = $1 AND ($2 = '' OR t.project_id = $2) AND ($3 = '' OR t.state = $3) \
             ORDER BY t.updated_at, t.task_id LIMIT $4 OFFSET $5"
        )))
        .bind(user_id)
        .bind(project.unwrap_or(""))
        .bind(state.unwrap_or(""))
        .bind(limit)
        .bind(offset)
        .fetch_all(&self.pool)
        .await?;
        Ok(rows
            .iter()
            .map(task_of)
            .collect::<std::result::Result<_, _>>()?)
    }

    /// The tasks of a project (of one image when given), by image then user.
    pub async fn project_tasks(&self, project: &str, image: Option<&str>) -> Result<Vec<Task>> {
        let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT {TASK_COLUMNS} FROM tasks t JOIN users u ON u.user_id = t.user_id \
             WHERE t.project_id = $1 AND ($2 = '' OR t.image_id = $2) \
             ORDER BY t.image_id, u.username"
        )))
        .bind(project)
        .bind(image.unwrap_or(""))
        .fetch_all(&self.pool)
        .await?;
        Ok(rows
            .iter()
            .map(task_of)
            .collect::<std::result::Result<_, _>>()?)
    }

    /// One task.
    pub async fn task(&self, task_id: &str) -> Result<Option<Task>> {
        let row = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT {TASK_COLUMNS} FROM tasks t JOIN users u ON u.user_id = t.user_id \
             WHERE t.task_id = $1"
        )))
        .bind(task_id)
        .fetch_optional(&self.pool)
        .await?;
        Ok(row.as_ref().map(task_of).transpose()?)
    }

    /// Move a task from one state to the next (NEW → IN_PROGRESS → SUBMITTED); a task not
    /// in `from` is a conflict. Submitting the last reading task of an image finishes it
    /// (independent, single) or opens its review tasks for the least loaded reviewers who
    /// did not read it (consensus); submitting the last review task finishes the image.
    pub async fn advance_task(&self, task_id: &str, from: &str, to: &str) -> Result<Task> {
        let task = self
            .task(task_id)
            .await?
            .ok_or_else(|| StoreError::Config(format!("no task {task_id}")))?;
        let now = now_rfc3339();
        let mut tx = self.pool.begin().await?;
        // One transition at a time per image, whichever server runs it, so that of two last
        // readers submitting at once exactly one opens the review.
        sqlx::query(
            "UPDATE project_images SET state = state WHERE project_id = $1 AND image_id = $2",
        )
        .bind(&task.project_id)
        .bind(&task.image_id)
        .execute(&mut *tx)
        .await?;
        // The first start and the last submit are kept (a reopened task starts again
        // without losing when it was first started).
        let n = sqlx::query(
            "UPDATE tasks SET state = $3, updated_at = $4, \
             started_at = CASE WHEN $3 = 'IN_PROGRESS' AND started_at = '' THEN $4 ELSE started_at END, \
             submitted_at = CASE WHEN $3 = 'SUBMITTED' THEN $4 ELSE submitted_at END \
             WHERE task_id = $1 AND state = $2",
        )
        .bind(task_id)
        .bind(from)
        .bind(to)
        .bind(&now)
        .execute(&mut *tx)
        .await?
        .rows_affected();
        if n == 0 {
            tx.rollback().await?;
            return Err(StoreError::Config(format!(
                "task {task_id} is {}, not {from}",
                task.state
            )));
        }
        if to == "IN_PROGRESS" && from == "SUBMITTED" {
            // Reopened: the image goes back to reading (or review).
            let state = if task.kind == "review" {
                "in_review"
            } else {
                "in_reading"
            };
            if task.kind == "reading" {
                let reviews: i64 = sqlx::query(
                    "SELECT COUNT(*) FROM tasks WHERE project_id = $1 AND image_id = $2 \
                     AND kind = 'review'",
                )
                .bind(&task.project_id)
                .bind(&task.image_id)
                .fetch_one(&mut *tx)
                .await?
                .try_get(0)?;
                if reviews > 0 {
                    tx.rollback().await?;
                    return Err(StoreError::Config(format!(
                        "image {} is in review, not reading: reopen a review task instead",
                        task.image_id
                    )));
                }
            }
            sqlx::query(
                "UPDATE project_images SET state = $3 WHERE project_id = $1 AND image_id = $2",
            )
            .bind(&task.project_id)
            .bind(&task.image_id)
            .bind(state)
            .execute(&mut *tx)
            .await?;
        }
        if to == "SUBMITTED" {
            let open: i64 = sqlx::query(
                "SELECT COUNT(*) FROM tasks WHERE project_id = $1 AND image_id = $2 \
                 AND kind = $3 AND state <> 'SUBMITTED'",
            )
            .bind(&task.project_id)
            .bind(&task.image_id)
            .bind(&task.kind)
            .fetch_one(&mut *tx)
            .await?
            .try_get(0)?;
            if open == 0 {
                let split: String = sqlx::query(
                    "SELECT split FROM project_images WHERE project_id = $1 AND image_id = $2",
                )
                .bind(&task.project_id)
                .bind(&task.image_id)
                .fetch_one(&mut *tx)
                .await?
                .try_get(0)?;
                // Read on the transaction's own connection: another pooled connection could
                // be the one a concurrent transaction is waiting to give back.
                let w: Option<Workflow> = sqlx::query(
                    "SELECT kind, readers, reviewers FROM workflows WHERE project_id = $1 \
                     AND split = $2",
                )
                .bind(&task.project_id)
                .bind(&split)
                .fetch_optional(&mut *tx)
                .await?
                .map(|r| -> std::result::Result<Workflow, sqlx::Error> {
                    Ok(Workflow {
                        split: split.clone(),
                        kind: r.try_get(0)?,
                        readers: r.try_get(1)?,
                        reviewers: r.try_get(2)?,
                    })
                })
                .transpose()?;
                let consensus = w.as_ref().is_some_and(|w| w.kind == "consensus");
                let review = match &w {
                    Some(w) if task.kind == "reading" && consensus => Some(w),
                    _ => None,
                };
                let next_state = if review.is_some() {
                    "in_review"
                } else {
                    "done"
                };
                if let Some(w) = review {
                    let readers: BTreeSet<String> = sqlx::query(
                        "SELECT user_id FROM tasks WHERE project_id = $1 AND image_id = $2",
                    )
                    .bind(&task.project_id)
                    .bind(&task.image_id)
                    .fetch_all(&mut *tx)
                    .await?
                    .iter()
                    .map(|r| r.try_get(0))
                    .collect::<std::result::Result<_, _>>()?;
                    let mut reviewers: Vec<(u64, u64, String)> = Vec::new();
                    let pool: Vec<String> = sqlx::query(
                        "SELECT user_id FROM project_members WHERE project_id = $1 \
                         AND role = 'reviewer' ORDER BY user_id",
                    )
                    .bind(&task.project_id)
                    .fetch_all(&mut *tx)
                    .await?
                    .iter()
                    .map(|r| r.try_get(0))
                    .collect::<std::result::Result<_, _>>()?;
                    for id in pool {
                        if readers.contains(&id) {
                            continue;
                        }
                        let load: i64 = sqlx::query(
                            "SELECT COUNT(*) FROM tasks WHERE project_id = $1 AND user_id = $2 \
                             AND kind = 'review'",
                        )
                        .bind(&task.project_id)
                        .bind(&id)
                        .fetch_one(&mut *tx)
                        .await?
                        .try_get(0)?;
                        reviewers.push((load as u64, tie(&task.image_id, &id), id));
                    }
                    if (reviewers.len() as i64) < w.reviewers {
                        tx.rollback().await?;
                        return Err(StoreError::Config(format!(
                            "image {} needs {} reviewers who did not read it; the project has {}",
                            task.image_id,
                            w.reviewers,
                            reviewers.len()
                        )));
                    }
                    reviewers.sort();
                    for (_, _, id) in reviewers.into_iter().take(w.reviewers as usize) {
                        sqlx::query(
                            "INSERT INTO tasks (task_id, project_id, image_id, user_id, kind, \
                             state, created_at, updated_at) \
                             VALUES ($1, $2, $3, $4, 'review', 'NEW', $5, $5)",
                        )
                        .bind(new_task_id(&task.project_id, &task.image_id, &id))
                        .bind(&task.project_id)
                        .bind(&task.image_id)
                        .bind(&id)
                        .bind(&now)
                        .execute(&mut *tx)
                        .await?;
                    }
                }
                sqlx::query(
                    "UPDATE project_images SET state = $3 WHERE project_id = $1 AND image_id = $2",
                )
                .bind(&task.project_id)
                .bind(&task.image_id)
                .bind(next_state)
                .execute(&mut *tx)
                .await?;
            }
        }
        tx.commit().await?;
        self.task(task_id)
            .await?
            .ok_or_else(|| StoreError::Database(format!("task {task_id} vanished")))
    }

    /// Images by split and state.
    pub async fn image_states(&self, project: &str) -> Result<Vec<(String, String, i64)>> {
        let rows = sqlx::query(
            "SELECT split, state, COUNT(*) FROM project_images WHERE project_id = $1 \
             GROUP BY split, state ORDER BY split, state",
        )
        .bind(project)
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|r| Ok((r.try_get(0)?, r.try_get(1)?, r.try_get(2)?)))
            .collect()
    }

    /// Each reader's (and reviewer's) tasks by state and median time per image.
    pub async fn reader_progress(&self, project: &str) -> Result<Vec<ReaderProgress>> {
        let rows = sqlx::query(
            "SELECT u.username, t.state, t.started_at, t.submitted_at FROM tasks t \
             JOIN users u ON u.user_id = t.user_id WHERE t.project_id = $1 ORDER BY u.username",
        )
        .bind(project)
        .fetch_all(&self.pool)
        .await?;
        let mut by: BTreeMap<String, (ReaderProgress, Vec<f64>)> = BTreeMap::new();
        let parse = |s: &str| {
            time::OffsetDateTime::parse(s, &time::format_description::well_known::Rfc3339).ok()
        };
        for r in rows {
            let name: String = r.try_get(0)?;
            let state: String = r.try_get(1)?;
            let (started, submitted): (String, String) = (r.try_get(2)?, r.try_get(3)?);
            let entry = by.entry(name.clone()).or_insert_with(|| {
                (
                    ReaderProgress {
                        username: name,
                        new: 0,
                        in_progress: 0,
                        submitted: 0,
                        median_seconds_per_image: None,
                    },
                    Vec::new(),
                )
            });
            match state.as_str() {
                "NEW" => entry.0.new += 1,
                "IN_PROGRESS" => entry.0.in_progress += 1,
                _ => entry.0.submitted += 1,
            }
            if let (Some(a), Some(b)) = (parse(&started), parse(&submitted)) {
                entry.1.push((b - a).as_seconds_f64());
            }
        }
        Ok(by
            .into_values()
            .map(|(mut p, mut times)| {
                times.sort_by(f64::total_cmp);
                p.median_seconds_per_image = (!times.is_empty()).then(|| {
                    let n = times.len();
                    if n % 2 == 1 {
                        times[n / 2]
                    } else {
                        (times[n / 2 - 1] + times[n / 2]) / 2.0
                    }
                });
                p
            })
            .collect())
    }

    /// Remove a task nobody has started (an owner un-assigns it).
    pub async fn unassign(&self, task_id: &str) -> Result<()> {
        let n = sqlx::query("DELETE FROM tasks WHERE task_id = $1 AND state = 'NEW'")
            .bind(task_id)
            .execute(&self.pool)
            .await?
            .rows_affected();
        if n == 0 {
            return Err(StoreError::Config(format!(
                "task {task_id} does not exist or has been started; only NEW tasks can be un-assigned"
            )));
        }
        Ok(())
    }

    /// Give a task that is not submitted to another user, who must not have a task on the
    /// image already; it starts again as NEW.
    pub async fn reassign(&self, task_id: &str, user_id: &str) -> Result<Task> {
        let task = self
            .task(task_id)
            .await?
            .ok_or_else(|| StoreError::Config(format!("no task {task_id}")))?;
        if task.state == "SUBMITTED" {
            return Err(StoreError::Config(format!(
                "task {task_id} is submitted; a submitted task keeps its reader"
            )));
        }
        let n = sqlx::query(
            "UPDATE tasks SET user_id = $2, state = 'NEW', updated_at = $3 WHERE task_id = $1 \
             AND NOT EXISTS (SELECT 1 FROM tasks o WHERE o.project_id = $4 AND o.image_id = $5 \
             AND o.user_id = $2)",
        )
        .bind(task_id)
        .bind(user_id)
        .bind(now_rfc3339())
        .bind(&task.project_id)
        .bind(&task.image_id)
        .execute(&self.pool)
        .await?
        .rows_affected();
        if n == 0 {
            return Err(StoreError::Config(format!(
                "that user already has a task on image {}",
                task.image_id
            )));
        }
        self.task(task_id)
            .await?
            .ok_or_else(|| StoreError::Database(format!("task {task_id} vanished")))
    }
}
