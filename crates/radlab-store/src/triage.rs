//! Triage verdicts per image of a project (radlab-triage's rules and network), with an
//! administrator's overrule that a new run keeps, and the blob of an upright rendering when
//! one was stored.

use sqlx::Row;

use crate::catalog::{Catalog, now_rfc3339};
use crate::error::{Result, StoreError};

/// A verdict to record: what judged (`model`), and what it said of the image.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct NewVerdict {
    pub image_id: String,
    pub sop_instance_uid: String,
    pub model: String,
    pub valid: bool,
    pub class: String,
    pub probability: String,
    /// An array of `{"code", "reason"}`.
    pub findings: serde_json::Value,
    /// The orientation the network saw (`0` upright ... `mirrored 270`); empty from the
    /// rules alone.
    pub orientation: String,
    /// The blob hash of an upright rendering (PNG), when one was stored; empty otherwise.
    pub upright_blob: String,
}

/// A recorded verdict, and an administrator's decision on it.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct Verdict {
    #[serde(flatten)]
    pub verdict: NewVerdict,
    pub judged_at: String,
    /// An administrator's decision, when there is one: it wins over `valid`.
    pub overruled: Option<bool>,
    pub overruled_by: String,
    pub overruled_at: String,
}

impl Verdict {
    /// What counts: the overrule if any, else the verdict.
    pub fn effective_valid(&self) -> bool {
        self.overruled.unwrap_or(self.verdict.valid)
    }
}

impl Catalog {
    /// Record verdicts for images of `project` (replacing earlier ones, keeping any
    /// overrule), in one transaction.
    pub async fn record_triage(&self, project: &str, verdicts: &[NewVerdict]) -> Result<u64> {
        if !self.project_exists(project).await? {
            return Err(StoreError::Config(format!("no project {project}")));
        }
        let now = now_rfc3339();
        let mut tx = self.pool.begin().await?;
        let mut n = 0;
        for v in verdicts {
            n += sqlx::query(
                "INSERT INTO triage_verdicts (project_id, image_id, sop_instance_uid, model, \
                 valid, class, probability, findings, judged_at, overruled, overruled_by, \
                 overruled_at, orientation, upright_blob) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, -1, '', '', $10, $11) \
                 ON CONFLICT (project_id, image_id) DO UPDATE SET \
                 sop_instance_uid = excluded.sop_instance_uid, model = excluded.model, \
                 valid = excluded.valid, class = excluded.class, \
                 probability = excluded.probability, findings = excluded.findings, \
                 judged_at = excluded.judged_at, orientation = excluded.orientation, \
                 upright_blob = excluded.upright_blob",
            )
            .bind(project)
            .bind(&v.image_id)
            .bind(&v.sop_instance_uid)
            .bind(&v.model)
            .bind(i64::from(v.valid))
            .bind(&v.class)
            .bind(&v.probability)
            .bind(v.findings.to_string())
            .bind(&now)
            .bind(&v.orientation)
            .bind(&v.upright_blob)
            .execute(&mut *tx)
            .await?
            .rows_affected();
        }
        tx.commit().await?;
        Ok(n)
    }

    /// The verdicts of `project`, by image id.
    pub async fn triage_verdicts(&self, project: &str) -> Result<Vec<Verdict>> {
        let rows = sqlx::query(
            "SELECT image_id, sop_instance_uid, model, valid, class, probability, findings, \
             judged_at, overruled, overruled_by, overruled_at, orientation, upright_blob \
             FROM triage_verdicts \
             WHERE project_id = $1 ORDER BY image_id",
        )
        .bind(project)
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|r| {
                let findings: String = r.try_get(6)?;
                let overruled: i64 = r.try_get(8)?;
                Ok(Verdict {
                    verdict: NewVerdict {
                        image_id: r.try_get(0)?,
                        sop_instance_uid: r.try_get(1)?,
                        model: r.try_get(2)?,
                        valid: r.try_get::<i64, _>(3)? == 1,
                        class: r.try_get(4)?,
                        probability: r.try_get(5)?,
                        findings: serde_json::from_str(&findings)
                            .unwrap_or(serde_json::Value::Array(Vec::new())),
                        orientation: r.try_get(11)?,
                        upright_blob: r.try_get(12)?,
                    },
                    judged_at: r.try_get(7)?,
                    overruled: (overruled >= 0).then_some(overruled == 1),
                    overruled_by: r.try_get(9)?,
                    overruled_at: r.try_get(10)?,
                })
            })
            .collect::<std::result::Result<Vec<_>, sqlx::Error>>()
            .map_err(Into::into)
    }

    /// An administrator's decision on one image (`None` takes it back); false when the
    /// image has no verdict.
    pub async fn overrule_triage(
        &self,
        project: &str,
        image_id: &str,
        valid: Option<bool>,
        by: &str,
    ) -> Result<bool> {
        let (value, by, at) = match valid {
            Some(v) => (i64::from(v), by.to_string(), now_rfc3339()),
            None => (-1, String::new(), String::new()),
        };
        let n = sqlx::query(
            "UPDATE triage_verdicts SET overruled = $1, overruled_by = $2, overruled_at = $3 \
             WHERE project_id = $4 AND image_id = $5",
        )
        .bind(value)
        .bind(by)
        .bind(at)
        .bind(project)
        .bind(image_id)
        .execute(&self.pool)
        .await?
        .rows_affected();
        Ok(n > 0)
    }
}
