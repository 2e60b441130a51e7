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

/// One reader's queue in one project.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct QueueSummary {
    pub project_id: String,
    pub new: i64,
    pub in_progress: i64,
    pub submitted: i64,
    /// Median seconds from start to submit over their submitted tasks.
    pub median_seconds_per_image: Option<f64>,
    pub submitted_last_day: i64,
    pub submitted_last_week: i64,
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

/// The median of some durations; `None` for none.
fn median(mut times: Vec<f64>) -> Option<f64> {
    times.sort_by(f64::total_cmp);
    let n = times.len();
    match n {
        0 => None,
        _ if n % 2 == 1 => Some(times[n / 2]),
        _ => Some((times[n / 2 - 1] + times[n / 2]) / 2.0),
    }
}

/// A deterministic spread for ties between equally loaded readers.
fn tie(image: &str, user: &str) -> u64 {
    let mut h = blake3::Hasher::new();
    h.update(image.as_bytes());
    h.update(&[0]);
    h.update(user.as_bytes());
    u64::from_le_bytes(h.finalize().as_bytes()[..8].try_into().unwrap_or([0; 8]))
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

/// What a transaction changes in the counts the progress reads instead of counting rows:
/// `image_counts` (a project's images by split and state) and `task_counts` (its tasks by
/// user and state). Every transaction that adds images or tasks or changes their split,
/// state or user records its changes here and applies them last, before its commit: image
/// counts then task counts, each in key order, so that two transactions never wait on each
/// other's counter rows in opposite orders.
#[derive(Default)]
pub(crate) struct CountChanges {
    images: BTreeMap<(String, String, String), i64>,
    tasks: BTreeMap<(String, String, String), i64>,
}

impl CountChanges {
    pub(crate) fn image(&mut self, project: &str, split: &str, state: &str, by: i64) {
        *self
            .images
            .entry((project.to_string(), split.to_string(), state.to_string()))
            .or_default() += by;
    }

    pub(crate) fn task(&mut self, project: &str, user: &str, state: &str, by: i64) {
        *self
            .tasks
            .entry((project.to_string(), user.to_string(), state.to_string()))
            .or_default() += by;
    }

    pub(crate) async fn apply(self, conn: &mut sqlx::AnyConnection) -> Result<()> {
        const IMAGES: &str = "INSERT INTO image_counts (project_id, split, state, n) \
            VALUES ($1, $2, $3, $4) ON CONFLICT (project_id, split, state) \
            DO UPDATE SET n = image_counts.n + excluded.n";
        const TASKS: &str = "INSERT INTO task_counts (project_id, user_id, state, n) \
            VALUES ($1, $2, $3, $4) ON CONFLICT (project_id, user_id, state) \
            DO UPDATE SET n = task_counts.n + excluded.n";
        let images = self.images.into_iter().map(|c| (c, IMAGES));
        let tasks = self.tasks.into_iter().map(|c| (c, TASKS));
        for (((project, key, state), by), sql) in images.chain(tasks) {
            if by == 0 {
                continue;
            }
            sqlx::query(sql)
                .bind(&project)
                .bind(&key)
                .bind(&state)
                .bind(by)
                .execute(&mut *conn)
                .await?;
        }
        Ok(())
    }
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
            candidates
                .sort_by_cached_key(|(id, _)| (load.get(id).copied().unwrap_or(0), tie(image, id)));
            for (id, _) in candidates.into_iter().take(missing as usize) {
                *load.entry(id.clone()).or_default() += 1;
                taken.insert(id.clone());
                new_tasks.push((image.clone(), id.clone()));
            }
        }
        let now = now_rfc3339();
        // Inserted by user, then id: each user's tasks are written together, so a worklist
        // reads few pages (and its index is written in order) rather than pages all over
        // the table (the ids are random).
        let mut rows: Vec<(&String, String, &String)> = new_tasks
            .iter()
            .map(|(image, user)| (user, new_task_id(project, image, user), image))
            .collect();
        rows.sort_unstable();
        // Multi-row inserts of 10,000 tasks: the project and the time bound once, each row
        // binds its id, image and user (30,003 parameters, under SQLite's 32,766 and
        // PostgreSQL's 65,535).
        for chunk in rows.chunks(10_000) {
            let sql = format!(
                "INSERT INTO tasks (task_id, project_id, image_id, user_id, kind, state, \
                 created_at, updated_at) SELECT v.column1, $1, v.column2, v.column3, \
                 'reading', 'NEW', $2, $3 FROM (VALUES {}) v",
                crate::catalog::numbered_rows_after("(?, ?, ?)", chunk.len(), 3)
            );
            let mut q = sqlx::query(sqlx::AssertSqlSafe(self.bulk_sql(sql)))
                .bind(project)
                .bind(&now)
                .bind(&now);
            for (user, id, image) in chunk {
                q = q.bind(id).bind(*image).bind(*user);
            }
            q.execute(&mut *tx).await?;
        }
        // The images that got tasks start reading. An image waits only while it has no
        // task, so the waiting images that have tasks now are those that just got them.
        let started = sqlx::query(
            "UPDATE project_images SET state = 'in_reading' WHERE project_id = $1 \
             AND split IN ('train', 'test', 'unassigned') AND state = 'waiting' AND EXISTS (SELECT 1 FROM tasks t \
             WHERE t.project_id = project_images.project_id \
             AND t.image_id = project_images.image_id) RETURNING split",
        )
        .bind(project)
        .fetch_all(&mut *tx)
        .await?;
        let mut counts = CountChanges::default();
        for r in &started {
            let split: String = r.try_get(0)?;
            counts.image(project, &split, "waiting", -1);
            counts.image(project, &split, "in_reading", 1);
        }
        for (_, user) in &new_tasks {
            counts.task(project, user, "NEW", 1);
        }
        counts.apply(&mut tx).await?;
        tx.commit().await?;
        self.refresh_statistics("tasks", new_tasks.len()).await;
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
        // Only the filters given, so that the page is read in order from the index
        // tasks_worklist rather than sorted from all of the user's tasks.
        let (project, state) = (
            project.filter(|p| !p.is_empty()),
            state.filter(|s| !s.is_empty()),
        );
        let mut filters = String::new();
        let mut n = 3;
        for (column, value) in [("project_id", project), ("state", state)] {
            if value.is_some() {
                n += 1;
                filters.push_str(&format!(" AND t.{column} = ${n}"));
            }
        }
        let mut q = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT {TASK_COLUMNS} FROM tasks t JOIN users u ON u.user_id = t.user_id \
             WHERE t.user_id = $1{filters} ORDER BY t.updated_at, t.task_id LIMIT $2 OFFSET $3"
        )))
        .bind(user_id)
        .bind(limit)
        .bind(offset);
        for value in [project, state].into_iter().flatten() {
            q = q.bind(value);
        }
        let rows = q.fetch_all(&self.pool).await?;
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
        // Its split and state as they are now, for the counts.
        let image = sqlx::query(
            "UPDATE project_images SET state = state WHERE project_id = $1 AND image_id = $2 \
             RETURNING split, state",
        )
        .bind(&task.project_id)
        .bind(&task.image_id)
        .fetch_optional(&mut *tx)
        .await?;
        let (image_split, image_state): (String, String) = match &image {
            Some(r) => (r.try_get(0)?, r.try_get(1)?),
            None => (String::new(), String::new()),
        };
        // The first start and the last submit are kept (a reopened task starts again
        // without losing when it was first started).
        let moved = sqlx::query(
            "UPDATE tasks SET state = $3, updated_at = $4, \
             started_at = CASE WHEN $3 = 'IN_PROGRESS' AND started_at = '' THEN $4 ELSE started_at END, \
             submitted_at = CASE WHEN $3 = 'SUBMITTED' THEN $4 ELSE submitted_at END \
             WHERE task_id = $1 AND state = $2 RETURNING user_id",
        )
        .bind(task_id)
        .bind(from)
        .bind(to)
        .bind(&now)
        .fetch_optional(&mut *tx)
        .await?;
        let Some(moved) = moved else {
            tx.rollback().await?;
            return Err(StoreError::Config(format!(
                "task {task_id} is {}, not {from}",
                task.state
            )));
        };
        let mut counts = CountChanges::default();
        let user: String = moved.try_get(0)?;
        counts.task(&task.project_id, &user, from, -1);
        counts.task(&task.project_id, &user, to, 1);
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
            if image.is_some() {
                counts.image(&task.project_id, &image_split, &image_state, -1);
                counts.image(&task.project_id, &image_split, state, 1);
            }
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
                        counts.task(&task.project_id, &id, "NEW", 1);
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
                if image.is_some() {
                    counts.image(&task.project_id, &image_split, &image_state, -1);
                    counts.image(&task.project_id, &image_split, next_state, 1);
                }
            }
        }
        counts.apply(&mut tx).await?;
        tx.commit().await?;
        self.task(task_id)
            .await?
            .ok_or_else(|| StoreError::Database(format!("task {task_id} vanished")))
    }

    /// Images by split and state: the counts `image_counts` keeps (every write of an
    /// image's split or state changes them in its transaction).
    pub async fn image_states(&self, project: &str) -> Result<Vec<(String, String, i64)>> {
        let rows = sqlx::query(
            "SELECT split, state, n FROM image_counts WHERE project_id = $1 AND n > 0 \
             ORDER BY split, state",
        )
        .bind(project)
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|r| Ok((r.try_get(0)?, r.try_get(1)?, r.try_get(2)?)))
            .collect()
    }

    /// The images whose readers have all submitted (in review or done). The splits are
    /// named so that the index (project, split, state) finds them.
    pub async fn read_images(&self, project: &str) -> Result<Vec<String>> {
        let rows = sqlx::query(
            "SELECT image_id FROM project_images WHERE project_id = $1 \
             AND split IN ('train', 'test', 'unassigned') AND state IN ('in_review', 'done')",
        )
        .bind(project)
        .fetch_all(&self.pool)
        .await?;
        Ok(rows
            .iter()
            .map(|r| r.try_get(0))
            .collect::<std::result::Result<_, _>>()?)
    }

    /// The submitted reading tasks of the images in review or done: (image id, reader's
    /// name), by image then name.
    pub async fn submitted_readings(&self, project: &str) -> Result<Vec<(String, String)>> {
        let rows = sqlx::query(
            "SELECT t.image_id, u.username FROM project_images p \
             JOIN tasks t ON t.project_id = p.project_id AND t.image_id = p.image_id \
             JOIN users u ON u.user_id = t.user_id \
             WHERE p.project_id = $1 AND p.split IN ('train', 'test', 'unassigned') \
             AND p.state IN ('in_review', 'done') \
             AND t.kind = 'reading' AND t.state = 'SUBMITTED' ORDER BY t.image_id, u.username",
        )
        .bind(project)
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|r| Ok((r.try_get(0)?, r.try_get(1)?)))
            .collect()
    }

    /// Each reader's (and reviewer's) tasks by state and median time per image: the counts
    /// are those `task_counts` keeps (every write of a task changes them in its
    /// transaction); only the tasks with a start and a submit time are read (index
    /// tasks_submitted).
    pub async fn reader_progress(&self, project: &str) -> Result<Vec<ReaderProgress>> {
        let counts = sqlx::query(
            "SELECT u.username, c.state, c.n FROM task_counts c \
             JOIN users u ON u.user_id = c.user_id WHERE c.project_id = $1 AND c.n > 0",
        )
        .bind(project)
        .fetch_all(&self.pool)
        .await?;
        let mut by: BTreeMap<String, (ReaderProgress, Vec<f64>)> = BTreeMap::new();
        for r in counts {
            let name: String = r.try_get(0)?;
            let state: String = r.try_get(1)?;
            let n: i64 = r.try_get(2)?;
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
                "NEW" => entry.0.new += n,
                "IN_PROGRESS" => entry.0.in_progress += n,
                _ => entry.0.submitted += n,
            }
        }
        // A reopened task keeps its first start and last submit: every task with both
        // counts, whatever its state.
        let times = sqlx::query(
            "SELECT u.username, t.started_at, t.submitted_at FROM tasks t \
             JOIN users u ON u.user_id = t.user_id WHERE t.project_id = $1 \
             AND t.submitted_at <> '' AND t.started_at <> ''",
        )
        .bind(project)
        .fetch_all(&self.pool)
        .await?;
        let parse = |s: &str| {
            time::OffsetDateTime::parse(s, &time::format_description::well_known::Rfc3339).ok()
        };
        for r in times {
            let name: String = r.try_get(0)?;
            let (started, submitted): (String, String) = (r.try_get(1)?, r.try_get(2)?);
            if let (Some(entry), Some(a), Some(b)) =
                (by.get_mut(&name), parse(&started), parse(&submitted))
            {
                entry.1.push((b - a).as_seconds_f64());
            }
        }
        Ok(by
            .into_values()
            .map(|(mut p, times)| {
                p.median_seconds_per_image = median(times);
                p
            })
            .collect())
    }

    /// A reader's own queue in each of their projects: tasks by state, the median seconds
    /// from start to submit, and how many they submitted in the last 24 hours and 7 days
    /// (their pace, for the worklist).
    pub async fn queue_summary(&self, user_id: &str) -> Result<Vec<QueueSummary>> {
        let counts = sqlx::query(
            "SELECT project_id, state, n FROM task_counts WHERE user_id = $1 AND n > 0 \
             ORDER BY project_id",
        )
        .bind(user_id)
        .fetch_all(&self.pool)
        .await?;
        let mut by: BTreeMap<String, (QueueSummary, Vec<f64>)> = BTreeMap::new();
        for r in counts {
            let project: String = r.try_get(0)?;
            let state: String = r.try_get(1)?;
            let n: i64 = r.try_get(2)?;
            let q = &mut by
                .entry(project.clone())
                .or_insert_with(|| {
                    let q = QueueSummary {
                        project_id: project,
                        new: 0,
                        in_progress: 0,
                        submitted: 0,
                        median_seconds_per_image: None,
                        submitted_last_day: 0,
                        submitted_last_week: 0,
                    };
                    (q, Vec::new())
                })
                .0;
            match state.as_str() {
                "NEW" => q.new += n,
                "IN_PROGRESS" => q.in_progress += n,
                _ => q.submitted += n,
            }
        }
        let times = sqlx::query(
            "SELECT project_id, started_at, submitted_at FROM tasks WHERE user_id = $1 \
             AND submitted_at <> ''",
        )
        .bind(user_id)
        .fetch_all(&self.pool)
        .await?;
        let parse = |s: &str| {
            time::OffsetDateTime::parse(s, &time::format_description::well_known::Rfc3339).ok()
        };
        let now = time::OffsetDateTime::now_utc();
        for r in times {
            let project: String = r.try_get(0)?;
            let (started, submitted): (String, String) = (r.try_get(1)?, r.try_get(2)?);
            let Some((q, durations)) = by.get_mut(&project) else {
                continue;
            };
            if let Some(b) = parse(&submitted) {
                let age = now - b;
                if age <= time::Duration::days(1) {
                    q.submitted_last_day += 1;
                }
                if age <= time::Duration::days(7) {
                    q.submitted_last_week += 1;
                }
                if let Some(a) = parse(&started) {
                    durations.push((b - a).as_seconds_f64());
                }
            }
        }
        Ok(by
            .into_values()
            .map(|(mut q, times)| {
                q.median_seconds_per_image = median(times);
                q
            })
            .collect())
    }

    /// Remove a task nobody has started (an owner un-assigns it).
    pub async fn unassign(&self, task_id: &str) -> Result<()> {
        // The delete is the transaction's first statement (SQLite's write lock before any
        // read); it says whose task it was, for the counts.
        let mut tx = self.pool.begin().await?;
        let gone = sqlx::query(
            "DELETE FROM tasks WHERE task_id = $1 AND state = 'NEW' RETURNING project_id, user_id",
        )
        .bind(task_id)
        .fetch_optional(&mut *tx)
        .await?;
        let Some(gone) = gone else {
            tx.rollback().await?;
            return Err(StoreError::Config(format!(
                "task {task_id} does not exist or has been started; only NEW tasks can be un-assigned"
            )));
        };
        let (project, user): (String, String) = (gone.try_get(0)?, gone.try_get(1)?);
        let mut counts = CountChanges::default();
        counts.task(&project, &user, "NEW", -1);
        counts.apply(&mut tx).await?;
        tx.commit().await?;
        Ok(())
    }

    /// Give a task that is not submitted to another user, who must not have a task on the
    /// image already; it starts again as NEW.
    pub async fn reassign(&self, task_id: &str, user_id: &str) -> Result<Task> {
        let task = self
            .task(task_id)
            .await?
            .ok_or_else(|| StoreError::Config(format!("no task {task_id}")))?;
        let submitted = || {
            StoreError::Config(format!(
                "task {task_id} is submitted; a submitted task keeps its reader"
            ))
        };
        if task.state == "SUBMITTED" {
            return Err(submitted());
        }
        let mut tx = self.pool.begin().await?;
        // The image's row is locked first, as a transition does: the task's user and state
        // read next stay as they are until the commit.
        sqlx::query(
            "UPDATE project_images SET state = state WHERE project_id = $1 AND image_id = $2",
        )
        .bind(&task.project_id)
        .bind(&task.image_id)
        .execute(&mut *tx)
        .await?;
        let now = sqlx::query("SELECT user_id, state FROM tasks WHERE task_id = $1")
            .bind(task_id)
            .fetch_optional(&mut *tx)
            .await?;
        let Some(now) = now else {
            tx.rollback().await?;
            return Err(StoreError::Config(format!("no task {task_id}")));
        };
        let (from_user, from_state): (String, String) = (now.try_get(0)?, now.try_get(1)?);
        if from_state == "SUBMITTED" {
            tx.rollback().await?;
            return Err(submitted());
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
        .execute(&mut *tx)
        .await?
        .rows_affected();
        if n == 0 {
            tx.rollback().await?;
            return Err(StoreError::Config(format!(
                "that user already has a task on image {}",
                task.image_id
            )));
        }
        let mut counts = CountChanges::default();
        counts.task(&task.project_id, &from_user, &from_state, -1);
        counts.task(&task.project_id, user_id, "NEW", 1);
        counts.apply(&mut tx).await?;
        tx.commit().await?;
        self.task(task_id)
            .await?
            .ok_or_else(|| StoreError::Database(format!("task {task_id} vanished")))
    }
}
