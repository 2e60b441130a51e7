//! The annotations of one layer of one image (a reader's own, or the consensus), read and
//! replaced as a whole through a task: the replacement is written to the append-only log as
//! the deletions and additions that turn the current state into the new one, under
//! optimistic concurrency (the writer names the version it read; a stale version is a
//! conflict and nothing is written).

use serde::{Deserialize, Serialize};
use sqlx::Row;

use crate::catalog::{Catalog, now_rfc3339};
use crate::error::{Result, StoreError};

/// One annotation of a layer.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LayerAnnotation {
    /// Set by the server; ignored on writes.
    #[serde(default)]
    pub annotation_id: String,
    pub label: String,
    /// `[x_min, y_min, x_max, y_max]` in image pixels; none for an image-level label.
    #[serde(default)]
    pub bbox: Option<[f64; 4]>,
    #[serde(default)]
    pub note: String,
}

/// A layer's current annotations and the version they are at.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct LayerState {
    /// The log position of the layer's last change (0: never written).
    pub version: i64,
    pub annotations: Vec<LayerAnnotation>,
}

/// Which layer: a reader's own ('reader' and the reader's name) or the consensus
/// ('consensus' and '') of one image of a project.
#[derive(Debug, Clone, Copy)]
pub struct LayerKey<'a> {
    pub project: &'a str,
    pub image_id: &'a str,
    pub layer: &'a str,
    pub reader: &'a str,
}

/// Why a layer write was refused.
#[derive(Debug)]
pub enum LayerWriteError {
    /// Someone wrote the layer since `expected` was read; `current` is where it is now.
    Stale {
        expected: i64,
        current: i64,
    },
    Store(StoreError),
}

impl From<StoreError> for LayerWriteError {
    fn from(e: StoreError) -> Self {
        LayerWriteError::Store(e)
    }
}

impl From<sqlx::Error> for LayerWriteError {
    fn from(e: sqlx::Error) -> Self {
        LayerWriteError::Store(e.into())
    }
}

fn number(text: &str) -> Option<f64> {
    text.parse().ok()
}

fn coordinate(v: f64) -> String {
    radlab_labels::format_number(v)
}

/// A layer's state read on `conn` (a pooled connection, or a transaction's own).
async fn read_layer(conn: &mut sqlx::AnyConnection, key: LayerKey<'_>) -> Result<LayerState> {
    let LayerKey {
        project,
        image_id,
        layer,
        reader,
    } = key;
    let rows = sqlx::query(
        "SELECT a.seq, a.op, a.annotation_id, a.label, a.x_min, a.y_min, a.x_max, a.y_max, \
         a.note FROM annotation_log a WHERE a.project_id = $1 AND a.image_id = $2 \
         AND a.layer = $3 AND a.reader = $4 ORDER BY a.seq",
    )
    .bind(project)
    .bind(image_id)
    .bind(layer)
    .bind(reader)
    .fetch_all(&mut *conn)
    .await?;
    let mut version = 0;
    let mut current: Vec<LayerAnnotation> = Vec::new();
    for r in rows {
        version = r.try_get::<i64, _>(0)?;
        let op: String = r.try_get(1)?;
        let id: String = r.try_get(2)?;
        if op == "delete" {
            current.retain(|a| a.annotation_id != id);
            continue;
        }
        let c: Vec<String> = (4..8)
            .map(|i| r.try_get(i))
            .collect::<std::result::Result<_, _>>()?;
        let bbox = match (number(&c[0]), number(&c[1]), number(&c[2]), number(&c[3])) {
            (Some(a), Some(b), Some(x), Some(y)) => Some([a, b, x, y]),
            _ => None,
        };
        current.push(LayerAnnotation {
            annotation_id: id,
            label: r.try_get(3)?,
            bbox,
            note: r.try_get(8)?,
        });
    }
    Ok(LayerState {
        version,
        annotations: current,
    })
}

impl Catalog {
    /// The current annotations of a layer ('reader' with its reader, or 'consensus' with
    /// reader '') of an image, in the order they were added, and the layer's version.
    pub async fn layer(&self, key: LayerKey<'_>) -> Result<LayerState> {
        let mut conn = self.pool.acquire().await?;
        read_layer(&mut conn, key).await
    }

    /// Replace a layer's annotations with `new` (checked by the caller), if the layer is
    /// still at `expected_version`: annotations equal to a current one (label, box, note) keep
    /// their id, the others are deleted or added. One transaction; returns the new state.
    pub async fn replace_layer(
        &self,
        key: LayerKey<'_>,
        expected_version: i64,
        new: &[LayerAnnotation],
        task_id: &str,
        author: &str,
    ) -> std::result::Result<LayerState, LayerWriteError> {
        let LayerKey {
            project,
            image_id,
            layer,
            reader,
        } = key;
        let mut tx = self.pool.begin().await?;
        crate::catalog::lock_project(&mut tx, project).await?;
        // The layer as it is inside the transaction: its version decides.
        let before = read_layer(&mut tx, key).await?;
        if before.version != expected_version {
            tx.rollback().await?;
            return Err(LayerWriteError::Stale {
                expected: expected_version,
                current: before.version,
            });
        }
        let same = |a: &LayerAnnotation, b: &LayerAnnotation| {
            a.label == b.label && a.bbox == b.bbox && a.note == b.note
        };
        let mut kept: Vec<bool> = vec![false; before.annotations.len()];
        let mut additions: Vec<&LayerAnnotation> = Vec::new();
        for a in new {
            match before
                .annotations
                .iter()
                .enumerate()
                .find(|(i, b)| !kept[*i] && same(a, b))
            {
                Some((i, _)) => kept[i] = true,
                None => additions.push(a),
            }
        }
        let deletions: Vec<&LayerAnnotation> = before
            .annotations
            .iter()
            .zip(&kept)
            .filter(|(_, k)| !**k)
            .map(|(a, _)| a)
            .collect();
        let mut seq: i64 =
            sqlx::query("SELECT COALESCE(MAX(seq), 0) FROM annotation_log WHERE project_id = $1")
                .bind(project)
                .fetch_one(&mut *tx)
                .await?
                .try_get(0)?;
        let now = now_rfc3339();
        for d in deletions {
            seq += 1;
            sqlx::query(
                "INSERT INTO annotation_log (project_id, seq, op, annotation_id, image_id, layer, \
                 reader, label, x_min, y_min, x_max, y_max, score, author, recorded_at, task_id, \
                 note) VALUES ($1, $2, 'delete', $3, $4, $5, $6, $7, '', '', '', '', '', $8, $9, \
                 $10, '')",
            )
            .bind(project)
            .bind(seq)
            .bind(&d.annotation_id)
            .bind(image_id)
            .bind(layer)
            .bind(reader)
            .bind(&d.label)
            .bind(author)
            .bind(&now)
            .bind(task_id)
            .execute(&mut *tx)
            .await?;
        }
        for a in additions {
            seq += 1;
            let b = a.bbox;
            let c = |i: usize| b.map(|b| coordinate(b[i])).unwrap_or_default();
            sqlx::query(
                "INSERT INTO annotation_log (project_id, seq, op, annotation_id, image_id, layer, \
                 reader, label, x_min, y_min, x_max, y_max, score, author, recorded_at, task_id, \
                 note) VALUES ($1, $2, 'add', $3, $4, $5, $6, $7, $8, $9, $10, $11, '', $12, $13, \
                 $14, $15)",
            )
            .bind(project)
            .bind(seq)
            .bind(format!("a{seq}"))
            .bind(image_id)
            .bind(layer)
            .bind(reader)
            .bind(&a.label)
            .bind(c(0))
            .bind(c(1))
            .bind(c(2))
            .bind(c(3))
            .bind(author)
            .bind(&now)
            .bind(task_id)
            .bind(&a.note)
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await?;
        Ok(self.layer(key).await?)
    }

    /// A task's comment.
    pub async fn set_task_comment(&self, task_id: &str, comment: &str) -> Result<()> {
        sqlx::query("UPDATE tasks SET comment = $2 WHERE task_id = $1")
            .bind(task_id)
            .bind(comment)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    pub async fn task_comment(&self, task_id: &str) -> Result<String> {
        Ok(sqlx::query("SELECT comment FROM tasks WHERE task_id = $1")
            .bind(task_id)
            .fetch_optional(&self.pool)
            .await?
            .map(|r| r.try_get(0))
            .transpose()?
            .unwrap_or_default())
    }

    /// The size (columns, rows) of a project's image, for checking boxes.
    pub async fn image_size(&self, project: &str, image_id: &str) -> Result<Option<(i64, i64)>> {
        let row = sqlx::query(
            "SELECT i.columns, i.rows FROM project_images p JOIN instances i \
             ON i.sop_instance_uid = p.sop_instance_uid WHERE p.project_id = $1 AND p.image_id = $2",
        )
        .bind(project)
        .bind(image_id)
        .fetch_optional(&self.pool)
        .await?;
        Ok(match row {
            Some(r) => Some((r.try_get(0)?, r.try_get(1)?)),
            None => None,
        })
    }
}
