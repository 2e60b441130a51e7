//! The images of a project: catalogued instances added by a selection (all, one import,
//! listed studies or instances, optionally one modality), each under the id labels use (the
//! VinDr-CXR name, md5 of the SOP Instance UID), in a split and a state.

use serde::Serialize;
use sqlx::Row;

use crate::catalog::{Catalog, now_rfc3339};
use crate::error::{Result, StoreError};

/// Which catalogued instances to add.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ImageSelection {
    All,
    /// The instances one `radlab import` run brought.
    Import(String),
    Studies(Vec<String>),
    Instances(Vec<String>),
    /// The catalog's instances matching QIDO-RS keys (modality, body part, dates, patient,
    /// descriptions...), at most a million.
    Query(Box<crate::QidoQuery>),
}

/// A split of a project.
pub const SPLITS: [&str; 3] = ["train", "test", "unassigned"];

/// One image of a project.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ProjectImage {
    pub image_id: String,
    pub sop_instance_uid: String,
    pub study_instance_uid: String,
    pub modality: String,
    pub split: String,
    pub state: String,
}

/// How many images an addition brought, and how many were in the project already.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Added {
    pub added: u64,
    pub already: u64,
}

fn check_split(split: &str) -> Result<()> {
    if SPLITS.contains(&split) {
        Ok(())
    } else {
        Err(StoreError::Config(format!(
            "split {split:?}: use train, test or unassigned"
        )))
    }
}

impl Catalog {
    /// SOP Instance UIDs of a selection (of one modality when given), in UID order.
    async fn select_instances(
        &self,
        selection: &ImageSelection,
        modality: Option<&str>,
    ) -> Result<Vec<String>> {
        let modality = modality.unwrap_or("");
        if let ImageSelection::Query(q) = selection {
            let mut q = (**q).clone();
            if !modality.is_empty() {
                q.modality = Some(modality.to_string());
            }
            return self.catalog_instances_matching(&q, 1_000_000).await;
        }
        let rows = match selection {
            ImageSelection::All => {
                sqlx::query(
                    "SELECT sop_instance_uid FROM instances WHERE ($1 = '' OR modality = $1) \
                     ORDER BY sop_instance_uid",
                )
                .bind(modality)
                .fetch_all(&self.pool)
                .await?
            }
            ImageSelection::Import(id) => {
                sqlx::query(
                    "SELECT sop_instance_uid FROM instances WHERE import_id = $1 \
                     AND ($2 = '' OR modality = $2) ORDER BY sop_instance_uid",
                )
                .bind(id)
                .bind(modality)
                .fetch_all(&self.pool)
                .await?
            }
            ImageSelection::Studies(uids) => {
                let mut rows = Vec::new();
                for uid in uids {
                    rows.extend(
                        sqlx::query(
                            "SELECT i.sop_instance_uid FROM instances i JOIN series s \
                             ON s.series_instance_uid = i.series_instance_uid \
                             WHERE s.study_instance_uid = $1 AND ($2 = '' OR i.modality = $2)",
                        )
                        .bind(uid)
                        .bind(modality)
                        .fetch_all(&self.pool)
                        .await?,
                    );
                }
                rows
            }
            ImageSelection::Query(_) => unreachable!("answered above"),
            ImageSelection::Instances(uids) => {
                // Looked up 1,000 at a time; the first one missing (in the order given) is
                // the error.
                let wanted: Vec<&String> = {
                    let mut seen = std::collections::HashSet::new();
                    uids.iter().filter(|u| seen.insert(*u)).collect()
                };
                let mut rows = Vec::new();
                for chunk in wanted.chunks(1000) {
                    let sql = format!(
                        "SELECT sop_instance_uid FROM instances WHERE ($1 = '' OR modality = $2) \
                         AND sop_instance_uid IN ({})",
                        crate::catalog::numbered_rows_after("?", chunk.len(), 2)
                    );
                    let mut q = sqlx::query(sqlx::AssertSqlSafe(self.bulk_sql(sql)))
                        .bind(modality)
                        .bind(modality);
                    for uid in chunk {
                        q = q.bind(*uid);
                    }
                    rows.extend(q.fetch_all(&self.pool).await?);
                }
                let found: std::collections::HashSet<String> =
                    rows.iter()
                        .map(|r| r.try_get(0))
                        .collect::<std::result::Result<_, _>>()?;
                if let Some(uid) = wanted.iter().find(|u| !found.contains(u.as_str())) {
                    return Err(StoreError::Config(format!(
                        "instance {uid} is not in the catalog (or not of modality {modality})"
                    )));
                }
                rows
            }
        };
        let mut uids: Vec<String> = rows
            .iter()
            .map(|r| r.try_get(0))
            .collect::<std::result::Result<_, _>>()?;
        uids.sort();
        uids.dedup();
        Ok(uids)
    }

    /// Add the selected instances to a project in `split`, in one transaction; instances
    /// already in the project keep their split.
    pub async fn add_project_images(
        &self,
        project: &str,
        selection: &ImageSelection,
        modality: Option<&str>,
        split: &str,
    ) -> Result<Added> {
        check_split(split)?;
        if !self.project_exists(project).await? {
            return Err(StoreError::Config(format!("no project {project}")));
        }
        let uids = self.select_instances(selection, modality).await?;
        let now = now_rfc3339();
        let mut tx = self.pool.begin().await?;
        let mut added = 0;
        // Multi-row inserts of 5,000 rows (25,000 parameters).
        for chunk in uids.chunks(5000) {
            let sql = format!(
                "INSERT INTO project_images (project_id, sop_instance_uid, image_id, split, \
                 state, added_at) VALUES {} ON CONFLICT DO NOTHING",
                crate::catalog::numbered_rows("(?, ?, ?, ?, 'waiting', ?)", chunk.len())
            );
            let mut q = sqlx::query(sqlx::AssertSqlSafe(self.bulk_sql(sql)));
            for uid in chunk {
                q = q
                    .bind(project)
                    .bind(uid)
                    .bind(radlab_labels::export::vindr_image_id(uid))
                    .bind(split)
                    .bind(&now);
            }
            added += q.execute(&mut *tx).await?.rows_affected();
        }
        let mut counts = crate::tasks::CountChanges::default();
        counts.image(project, split, "waiting", added as i64);
        counts.apply(&mut tx).await?;
        tx.commit().await?;
        self.refresh_statistics("project_images", added as usize)
            .await;
        Ok(Added {
            added,
            already: uids.len() as u64 - added,
        })
    }

    /// A page of a project's images (by image id), of one split when given, and how many
    /// there are in all.
    pub async fn project_images(
        &self,
        project: &str,
        split: Option<&str>,
        offset: i64,
        limit: i64,
    ) -> Result<(Vec<ProjectImage>, i64)> {
        if let Some(s) = split {
            check_split(s)?;
        }
        let split = split.unwrap_or("");
        let total: i64 = sqlx::query(
            "SELECT COUNT(*) FROM project_images WHERE project_id = $1 AND ($2 = '' OR split = $2)",
        )
        .bind(project)
        .bind(split)
        .fetch_one(&self.pool)
        .await?
        .try_get(0)?;
        let rows = sqlx::query(
            "SELECT p.image_id, p.sop_instance_uid, s.study_instance_uid, i.modality, p.split, \
             p.state FROM project_images p \
             JOIN instances i ON i.sop_instance_uid = p.sop_instance_uid \
             JOIN series s ON s.series_instance_uid = i.series_instance_uid \
             WHERE p.project_id = $1 AND ($2 = '' OR p.split = $2) \
             ORDER BY p.image_id LIMIT $3 OFFSET $4",
        )
        .bind(project)
        .bind(split)
        .bind(limit)
        .bind(offset)
        .fetch_all(&self.pool)
        .await?;
        let images = rows
            .iter()
            .map(|r| {
                Ok(ProjectImage {
                    image_id: r.try_get(0)?,
                    sop_instance_uid: r.try_get(1)?,
                    study_instance_uid: r.try_get(2)?,
                    modality: r.try_get(3)?,
                    split: r.try_get(4)?,
                    state: r.try_get(5)?,
                })
            })
            .collect::<std::result::Result<Vec<_>, sqlx::Error>>()?;
        Ok((images, total))
    }

    /// Move images (by image id) to another split, all or none: an unknown id changes
    /// nothing.
    pub async fn set_split(&self, project: &str, image_ids: &[String], split: &str) -> Result<u64> {
        check_split(split)?;
        let mut tx = self.pool.begin().await?;
        // The project's row first: SQLite's write lock before the reads, and one change of
        // splits at a time per project, so that the split read below stays as it is.
        crate::catalog::lock_project(&mut tx, project).await?;
        let mut counts = crate::tasks::CountChanges::default();
        let mut moved = 0;
        for id in image_ids {
            let from: Option<String> = sqlx::query(
                "SELECT split FROM project_images WHERE project_id = $1 AND image_id = $2",
            )
            .bind(project)
            .bind(id)
            .fetch_optional(&mut *tx)
            .await?
            .map(|r| r.try_get(0))
            .transpose()?;
            // The state as it is once the row is locked, for the counts.
            let state: Option<String> = sqlx::query(
                "UPDATE project_images SET split = $3 WHERE project_id = $1 AND image_id = $2 \
                 RETURNING state",
            )
            .bind(project)
            .bind(id)
            .bind(split)
            .fetch_optional(&mut *tx)
            .await?
            .map(|r| r.try_get(0))
            .transpose()?;
            let (Some(from), Some(state)) = (from, state) else {
                tx.rollback().await?;
                return Err(StoreError::Config(format!(
                    "project {project} has no image {id}"
                )));
            };
            counts.image(project, &from, &state, -1);
            counts.image(project, split, &state, 1);
            moved += 1;
        }
        counts.apply(&mut tx).await?;
        tx.commit().await?;
        Ok(moved)
    }
}
