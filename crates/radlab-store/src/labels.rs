//! Projects and their annotations in the catalog: an append-only log per project (who
//! wrote what, when), from which the current labels are derived. Coordinates are kept as the
//! text of their shortest round-trip form, so labels read back exactly as they were given.

use std::collections::HashSet;

use radlab_labels::{Annotation, format_number};
use serde::Serialize;
use sqlx::Row;

use crate::catalog::{Catalog, now_rfc3339};
use crate::error::{Result, StoreError};

/// Which layer of a project's labels an annotation belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Layer {
    /// One reader's own labels (`reader` names them).
    Reader,
    /// The consensus: reviewed or fused labels.
    Consensus,
    /// A model's predictions.
    Model,
}

impl Layer {
    pub fn as_str(&self) -> &'static str {
        match self {
            Layer::Reader => "reader",
            Layer::Consensus => "consensus",
            Layer::Model => "model",
        }
    }

    fn parse(s: &str) -> Option<Layer> {
        Some(match s {
            "reader" => Layer::Reader,
            "consensus" => Layer::Consensus,
            "model" => Layer::Model,
            _ => return None,
        })
    }
}

/// A project and how many annotations it holds now.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ProjectSummary {
    pub project_id: String,
    /// The template its label schema started from ("custom" when none).
    pub template: String,
    pub created_at: String,
    pub annotations: i64,
    pub images: i64,
}

/// The template a stored schema started from: a bare template name (older catalogs), or the
/// `template` of a schema document; "custom" otherwise.
fn schema_template(stored: &str) -> String {
    if radlab_labels::schema::LabelSchema::template(stored.trim()).is_some() {
        return stored.trim().to_string();
    }
    serde_json::from_str::<radlab_labels::schema::LabelSchema>(stored)
        .ok()
        .and_then(|s| s.template)
        .unwrap_or_else(|| "custom".to_string())
}

/// A project name: letters, digits, `-`, `_` and `.`, 1 to 64 of them.
fn check_project(name: &str) -> Result<()> {
    let ok = !name.is_empty()
        && name.len() <= 64
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'));
    if ok {
        Ok(())
    } else {
        Err(StoreError::Config(format!(
            "project name {name:?}: use 1 to 64 letters, digits, '-', '_' or '.'"
        )))
    }
}

fn coordinate(v: Option<f64>) -> String {
    v.map(format_number).unwrap_or_default()
}

fn parse(text: &str, what: &str, project: &str) -> Result<Option<f64>> {
    if text.is_empty() {
        return Ok(None);
    }
    text.parse().map(Some).map_err(|_| {
        StoreError::Database(format!(
            "project {project}: stored {what} {text:?} is not a number (the catalog was \
             written by something other than radlab)"
        ))
    })
}

/// The last sequence number of a project's log, read inside the writing transaction after
/// the project's row is locked (so writers take turns).
async fn last_seq(tx: &mut sqlx::Transaction<'_, sqlx::Any>, project: &str) -> Result<i64> {
    Ok(
        sqlx::query("SELECT COALESCE(MAX(seq), 0) FROM annotation_log WHERE project_id = $1")
            .bind(project)
            .fetch_one(&mut **tx)
            .await?
            .try_get(0)?,
    )
}

impl Catalog {
    /// Create a project with a label schema (a template name such as `vindr-cxr`, or a
    /// schema document). An existing project is an error.
    pub async fn create_project(&self, project: &str, label_schema: &str) -> Result<()> {
        check_project(project)?;
        let done = sqlx::query(
            "INSERT INTO projects (project_id, label_schema, created_at) VALUES ($1, $2, $3) \
             ON CONFLICT DO NOTHING",
        )
        .bind(project)
        .bind(label_schema)
        .bind(now_rfc3339())
        .execute(&self.pool)
        .await?
        .rows_affected();
        if done == 0 {
            return Err(StoreError::Config(format!(
                "project {project} exists already"
            )));
        }
        Ok(())
    }

    /// Whether a project exists.
    pub async fn project_exists(&self, project: &str) -> Result<bool> {
        Ok(sqlx::query("SELECT 1 FROM projects WHERE project_id = $1")
            .bind(project)
            .fetch_optional(&self.pool)
            .await?
            .is_some())
    }

    /// Every project, with its current annotation and image counts.
    pub async fn list_projects(&self) -> Result<Vec<ProjectSummary>> {
        let rows = sqlx::query(
            "SELECT project_id, label_schema, created_at FROM projects ORDER BY project_id",
        )
        .fetch_all(&self.pool)
        .await?;
        let mut out = Vec::new();
        for r in rows {
            let project_id: String = r.try_get(0)?;
            // Counted in the database: the current annotations are the additions with no
            // deletion.
            let counts = sqlx::query(
                "SELECT COUNT(*), COUNT(DISTINCT a.image_id) FROM annotation_log a \
                 WHERE a.project_id = $1 AND a.op = 'add' AND NOT EXISTS (\
                   SELECT 1 FROM annotation_log d WHERE d.project_id = a.project_id \
                   AND d.annotation_id = a.annotation_id AND d.op = 'delete')",
            )
            .bind(&project_id)
            .fetch_one(&self.pool)
            .await?;
            out.push(ProjectSummary {
                annotations: counts.try_get(0)?,
                images: counts.try_get(1)?,
                project_id,
                template: schema_template(&r.try_get::<String, _>(1)?),
                created_at: r.try_get(2)?,
            });
        }
        Ok(out)
    }

    /// Append annotations to a project's log, in one transaction (all or nothing), in the
    /// order given. A reader annotation goes to the reader layer under its reader; one
    /// without a reader goes to `layer_without_reader` (consensus or model). Returns how
    /// many rows were written.
    pub async fn add_annotations(
        &self,
        project: &str,
        annotations: &[Annotation],
        layer_without_reader: Layer,
        author: &str,
    ) -> Result<u64> {
        if !self.project_exists(project).await? {
            return Err(StoreError::Config(format!(
                "no project {project}: create it first (radlab labels import --create)"
            )));
        }
        let now = now_rfc3339();
        let mut tx = self.pool.begin().await?;
        crate::catalog::lock_project(&mut tx, project).await?;
        let next = last_seq(&mut tx, project).await?;
        // Multi-row inserts, 500 rows (7,000 parameters) at a time.
        for (c, chunk) in annotations.chunks(500).enumerate() {
            let sql = format!(
                "INSERT INTO annotation_log (project_id, seq, op, annotation_id, image_id, layer, \
                 reader, label, x_min, y_min, x_max, y_max, score, author, recorded_at) VALUES {}",
                crate::catalog::numbered_rows(
                    "(?, ?, 'add', ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                    chunk.len()
                )
            );
            let mut q = sqlx::query(sqlx::AssertSqlSafe(sql));
            for (i, a) in chunk.iter().enumerate() {
                let seq = next + 1 + (c * 500 + i) as i64;
                let layer = if a.reader.is_some() {
                    Layer::Reader
                } else {
                    layer_without_reader
                };
                let b = a.bbox;
                q = q
                    .bind(project)
                    .bind(seq)
                    .bind(format!("a{seq}"))
                    .bind(&a.image_id)
                    .bind(layer.as_str())
                    .bind(a.reader.as_deref().unwrap_or(""))
                    .bind(&a.label)
                    .bind(coordinate(b.map(|b| b[0])))
                    .bind(coordinate(b.map(|b| b[1])))
                    .bind(coordinate(b.map(|b| b[2])))
                    .bind(coordinate(b.map(|b| b[3])))
                    .bind(coordinate(a.score))
                    .bind(author)
                    .bind(&now);
            }
            q.execute(&mut *tx).await?;
        }
        tx.commit().await?;
        Ok(annotations.len() as u64)
    }

    /// Record the deletion of annotations (by id) in the log.
    pub async fn delete_annotations(
        &self,
        project: &str,
        ids: &[String],
        author: &str,
    ) -> Result<u64> {
        let current: HashSet<String> = self
            .annotations(project, &[])
            .await?
            .into_iter()
            .map(|(id, _)| id)
            .collect();
        if let Some(missing) = ids.iter().find(|id| !current.contains(*id)) {
            return Err(StoreError::Config(format!(
                "project {project} has no annotation {missing}"
            )));
        }
        let now = now_rfc3339();
        let mut tx = self.pool.begin().await?;
        crate::catalog::lock_project(&mut tx, project).await?;
        let next = last_seq(&mut tx, project).await?;
        for (i, id) in ids.iter().enumerate() {
            // A delete row repeats the image, layer and reader of what it deletes.
            sqlx::query(
                "INSERT INTO annotation_log (project_id, seq, op, annotation_id, image_id, layer, \
                 reader, label, x_min, y_min, x_max, y_max, score, author, recorded_at) \
                 SELECT project_id, $2, 'delete', annotation_id, image_id, layer, reader, label, \
                 '', '', '', '', '', $3, $4 FROM annotation_log \
                 WHERE project_id = $1 AND annotation_id = $5 AND op = 'add'",
            )
            .bind(project)
            .bind(next + 1 + i as i64)
            .bind(author)
            .bind(&now)
            .bind(id)
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await?;
        Ok(ids.len() as u64)
    }

    /// The current annotations of a project (added and not deleted), in the order they were
    /// added, with their ids; only those of `layers` unless it is empty.
    pub async fn annotations(
        &self,
        project: &str,
        layers: &[Layer],
    ) -> Result<Vec<(String, Annotation)>> {
        let rows = sqlx::query(
            "SELECT a.annotation_id, a.image_id, a.layer, a.reader, a.label, a.x_min, a.y_min, \
             a.x_max, a.y_max, a.score FROM annotation_log a \
             WHERE a.project_id = $1 AND a.op = 'add' AND NOT EXISTS (\
               SELECT 1 FROM annotation_log d WHERE d.project_id = a.project_id \
               AND d.annotation_id = a.annotation_id AND d.op = 'delete') \
             ORDER BY a.seq",
        )
        .bind(project)
        .fetch_all(&self.pool)
        .await?;
        let mut out = Vec::with_capacity(rows.len());
        for r in rows {
            let row_layer: String = r.try_get(2)?;
            let row_layer = Layer::parse(&row_layer).ok_or_else(|| {
                StoreError::Database(format!("project {project}: unknown layer {row_layer:?}"))
            })?;
            if !layers.is_empty() && !layers.contains(&row_layer) {
                continue;
            }
            let reader: String = r.try_get(3)?;
            let c: Vec<String> = (5..9)
                .map(|i| r.try_get(i))
                .collect::<std::result::Result<_, _>>()?;
            let bbox = match (
                parse(&c[0], "x_min", project)?,
                parse(&c[1], "y_min", project)?,
                parse(&c[2], "x_max", project)?,
                parse(&c[3], "y_max", project)?,
            ) {
                (Some(a), Some(b), Some(x), Some(y)) => Some([a, b, x, y]),
                _ => None,
            };
            let score: String = r.try_get(9)?;
            out.push((
                r.try_get(0)?,
                Annotation {
                    image_id: r.try_get(1)?,
                    reader: (row_layer == Layer::Reader).then_some(reader),
                    label: r.try_get(4)?,
                    bbox,
                    score: parse(&score, "score", project)?,
                },
            ));
        }
        Ok(out)
    }
}

/// A role in a project.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum ProjectRole {
    Owner,
    Annotator,
    Reviewer,
}

impl ProjectRole {
    pub fn as_str(&self) -> &'static str {
        match self {
            ProjectRole::Owner => "owner",
            ProjectRole::Annotator => "annotator",
            ProjectRole::Reviewer => "reviewer",
        }
    }

    pub fn parse(s: &str) -> Option<ProjectRole> {
        Some(match s {
            "owner" => ProjectRole::Owner,
            "annotator" => ProjectRole::Annotator,
            "reviewer" => ProjectRole::Reviewer,
            _ => return None,
        })
    }
}

/// A member of a project.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Member {
    pub user_id: String,
    pub username: String,
    pub role: ProjectRole,
}

impl Catalog {
    /// A project's label schema as stored (a schema document, or a template name).
    pub async fn project_schema(&self, project: &str) -> Result<Option<String>> {
        let row = sqlx::query("SELECT label_schema FROM projects WHERE project_id = $1")
            .bind(project)
            .fetch_optional(&self.pool)
            .await?;
        row.map(|r| r.try_get(0)).transpose().map_err(Into::into)
    }

    /// Replace a project's label schema.
    pub async fn set_project_schema(&self, project: &str, schema: &str) -> Result<()> {
        sqlx::query("UPDATE projects SET label_schema = $2 WHERE project_id = $1")
            .bind(project)
            .bind(schema)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    /// How many rows a project's annotation log holds (0: nobody has labelled yet).
    pub async fn annotation_log_len(&self, project: &str) -> Result<i64> {
        Ok(
            sqlx::query("SELECT COUNT(*) FROM annotation_log WHERE project_id = $1")
                .bind(project)
                .fetch_one(&self.pool)
                .await?
                .try_get(0)?,
        )
    }

    /// Give a user a role in a project (idempotent).
    pub async fn add_member(&self, project: &str, user_id: &str, role: ProjectRole) -> Result<()> {
        sqlx::query(
            "INSERT INTO project_members (project_id, user_id, role, added_at) \
             VALUES ($1, $2, $3, $4) ON CONFLICT DO NOTHING",
        )
        .bind(project)
        .bind(user_id)
        .bind(role.as_str())
        .bind(now_rfc3339())
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// A user's roles in a project.
    pub async fn member_roles(&self, project: &str, user_id: &str) -> Result<Vec<ProjectRole>> {
        let rows = sqlx::query(
            "SELECT role FROM project_members WHERE project_id = $1 AND user_id = $2 ORDER BY role",
        )
        .bind(project)
        .bind(user_id)
        .fetch_all(&self.pool)
        .await?;
        let mut roles = Vec::new();
        for r in rows {
            let role: String = r.try_get(0)?;
            roles.extend(ProjectRole::parse(&role));
        }
        roles.sort();
        Ok(roles)
    }

    /// A project's members, by name then role.
    pub async fn members(&self, project: &str) -> Result<Vec<Member>> {
        let rows = sqlx::query(
            "SELECT m.user_id, u.username, m.role FROM project_members m \
             JOIN users u ON u.user_id = m.user_id WHERE m.project_id = $1 \
             ORDER BY u.username, m.role",
        )
        .bind(project)
        .fetch_all(&self.pool)
        .await?;
        let mut out = Vec::new();
        for r in rows {
            let role: String = r.try_get(2)?;
            if let Some(role) = ProjectRole::parse(&role) {
                out.push(Member {
                    user_id: r.try_get(0)?,
                    username: r.try_get(1)?,
                    role,
                });
            }
        }
        Ok(out)
    }

    /// The ids of the projects a user is a member of.
    pub async fn projects_of(&self, user_id: &str) -> Result<Vec<String>> {
        let rows = sqlx::query(
            "SELECT DISTINCT project_id FROM project_members WHERE user_id = $1 ORDER BY project_id",
        )
        .bind(user_id)
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|r| r.try_get(0).map_err(Into::into))
            .collect()
    }
}
