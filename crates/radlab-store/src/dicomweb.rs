//! What DICOMweb reads from the catalog: a project's studies, series and instances as
//! QIDO-RS matches them (attribute filters, wildcards, date ranges, paging), and the
//! instances a WADO-RS request names, limited to what the caller may see.

use std::collections::HashSet;

use serde::Serialize;
use sqlx::Row;

use crate::catalog::Catalog;
use crate::error::Result;

/// Who is looking: everything in the project, or only the images a user has a task on (an
/// annotator sees the images they were given, nothing else of the project).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Visibility {
    Project,
    TasksOf(String),
}

/// QIDO-RS matching keys (PS3.18 8.3.4), already parsed. Empty strings and `None` do not
/// filter. Text keys may hold the wildcards `*` and `?`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct QidoQuery {
    pub study_instance_uid: Option<String>,
    pub series_instance_uid: Option<String>,
    pub sop_instance_uid: Option<String>,
    pub patient_id: Option<String>,
    /// Matched without regard to case.
    pub patient_name: Option<String>,
    pub accession_number: Option<String>,
    pub study_description: Option<String>,
    pub series_description: Option<String>,
    /// Series Modality (series and instance level) or Modalities in Study (study level).
    pub modality: Option<String>,
    pub body_part_examined: Option<String>,
    /// Inclusive range of Study Date (`YYYYMMDD`); either end may be open.
    pub study_date: Option<(Option<String>, Option<String>)>,
    pub series_number: Option<i64>,
    pub instance_number: Option<i64>,
    pub sop_class_uid: Option<String>,
    pub offset: i64,
    pub limit: i64,
}

/// A study of a project, with the counts QIDO-RS returns.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct StudyMatch {
    pub study_instance_uid: String,
    pub study_date: String,
    pub study_time: String,
    pub accession_number: String,
    pub study_description: String,
    pub patient_id: String,
    pub patient_name: String,
    pub patient_sex: String,
    pub patient_birth_date: String,
    /// Distinct series modalities, sorted.
    pub modalities: Vec<String>,
    pub series: i64,
    pub instances: i64,
}

/// A series of a project.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct SeriesMatch {
    pub study_instance_uid: String,
    pub series_instance_uid: String,
    pub modality: String,
    pub body_part_examined: String,
    pub series_number: Option<i64>,
    pub series_description: String,
    pub instances: i64,
}

/// An instance of a project, with where its object is.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct InstanceMatch {
    pub study_instance_uid: String,
    pub series_instance_uid: String,
    pub sop_instance_uid: String,
    pub sop_class_uid: String,
    pub instance_number: Option<i64>,
    pub rows: i64,
    pub columns: i64,
    pub frames: i64,
    pub bits_allocated: i64,
    pub transfer_syntax_uid: String,
    pub blob_hash: String,
    pub size_bytes: i64,
}

/// A WHERE clause under construction, with its numbered parameters.
struct Filter {
    clauses: Vec<String>,
    /// The parameters, `$1` first.
    params: Vec<Param>,
}

enum Param {
    Text(String),
    Int(i64),
}

impl Filter {
    fn new(project: &str, visibility: &Visibility) -> Self {
        let mut f = Filter {
            clauses: vec!["p.project_id = $1".into()],
            params: vec![Param::Text(project.to_string())],
        };
        if let Visibility::TasksOf(user) = visibility {
            let n = f.push_text(user.clone());
            f.clauses.push(format!(
                "EXISTS (SELECT 1 FROM tasks t WHERE t.project_id = p.project_id \
                 AND t.image_id = p.image_id AND t.user_id = ${n})"
            ));
        }
        f
    }

    /// No project: the whole catalog (adding images to a project by query).
    fn catalog() -> Self {
        Filter {
            clauses: vec!["1 = 1".into()],
            params: Vec::new(),
        }
    }

    /// Add a parameter; its number.
    fn push(&mut self, p: Param) -> usize {
        self.params.push(p);
        self.params.len()
    }

    fn push_text(&mut self, v: String) -> usize {
        self.push(Param::Text(v))
    }

    /// `column` equal to `value`, or LIKE it when it holds wildcards.
    fn text(&mut self, column: &str, value: &Option<String>, fold_case: bool) {
        let Some(v) = value.as_deref().filter(|v| !v.is_empty() && *v != "*") else {
            return;
        };
        if v.contains('*') || v.contains('?') {
            let mut pattern = String::with_capacity(v.len());
            for c in v.chars() {
                match c {
                    '*' => pattern.push('%'),
                    '?' => pattern.push('_'),
                    '%' | '_' | '\\' => {
                        pattern.push('\\');
                        pattern.push(c);
                    }
                    c => pattern.push(c),
                }
            }
            let (col, pat) = if fold_case {
                (format!("LOWER({column})"), pattern.to_lowercase())
            } else {
                (column.to_string(), pattern)
            };
            let n = self.push_text(pat);
            self.clauses.push(format!("{col} LIKE ${n} ESCAPE '\\'"));
        } else if fold_case {
            let n = self.push_text(v.to_lowercase());
            self.clauses.push(format!("LOWER({column}) = ${n}"));
        } else {
            let n = self.push_text(v.to_string());
            self.clauses.push(format!("{column} = ${n}"));
        }
    }

    fn int(&mut self, column: &str, value: Option<i64>) {
        if let Some(v) = value {
            let n = self.push(Param::Int(v));
            self.clauses.push(format!("{column} = ${n}"));
        }
    }

    fn date_range(&mut self, column: &str, range: &Option<(Option<String>, Option<String>)>) {
        if let Some((from, to)) = range {
            if let Some(f) = from {
                let n = self.push_text(f.clone());
                self.clauses
                    .push(format!("{column} <> '' AND {column} >= ${n}"));
            }
            if let Some(t) = to {
                let n = self.push_text(t.clone());
                self.clauses
                    .push(format!("{column} <> '' AND {column} <= ${n}"));
            }
        }
    }

    fn apply(&mut self, q: &QidoQuery, study_level_modality: bool) {
        self.text("st.study_instance_uid", &q.study_instance_uid, false);
        self.text("s.series_instance_uid", &q.series_instance_uid, false);
        self.text("i.sop_instance_uid", &q.sop_instance_uid, false);
        self.text("i.sop_class_uid", &q.sop_class_uid, false);
        self.text("pt.patient_id", &q.patient_id, false);
        self.text("pt.patient_name", &q.patient_name, true);
        self.text("st.accession_number", &q.accession_number, false);
        self.text("st.study_description", &q.study_description, true);
        self.text("s.series_description", &q.series_description, true);
        self.text("s.body_part_examined", &q.body_part_examined, false);
        if study_level_modality {
            if let Some(m) = q.modality.as_deref().filter(|m| !m.is_empty()) {
                let n = self.push_text(m.to_string());
                self.clauses.push(format!(
                    "st.study_instance_uid IN (SELECT s2.study_instance_uid FROM series s2 \
                     WHERE s2.modality = ${n})"
                ));
            }
        } else {
            self.text("s.modality", &q.modality, false);
        }
        self.date_range("st.study_date", &q.study_date);
        self.int("s.series_number", q.series_number);
        self.int("i.instance_number", q.instance_number);
    }

    fn where_sql(&self) -> String {
        self.clauses.join(" AND ")
    }

    fn bind<'q>(
        &'q self,
        mut query: sqlx::query::Query<'q, sqlx::Any, sqlx::any::AnyArguments>,
    ) -> sqlx::query::Query<'q, sqlx::Any, sqlx::any::AnyArguments> {
        for p in &self.params {
            query = match p {
                Param::Text(v) => query.bind(v),
                Param::Int(v) => query.bind(*v),
            };
        }
        query
    }
}

const FROM: &str = "FROM project_images p \
     JOIN instances i ON i.sop_instance_uid = p.sop_instance_uid \
     JOIN series s ON s.series_instance_uid = i.series_instance_uid \
     JOIN studies st ON st.study_instance_uid = s.study_instance_uid \
     JOIN patients pt ON pt.patient_key = st.patient_key";

fn page(q: &QidoQuery) -> (i64, i64) {
    (q.limit.clamp(1, 10_000), q.offset.max(0))
}

impl Catalog {
    /// The project's studies matching `q`, by Study Instance UID, a page of them.
    pub async fn qido_studies(
        &self,
        project: &str,
        visibility: &Visibility,
        q: &QidoQuery,
    ) -> Result<Vec<StudyMatch>> {
        let mut f = Filter::new(project, visibility);
        f.apply(q, true);
        let (limit, offset) = page(q);
        let sql = format!(
            "SELECT st.study_instance_uid, st.study_date, st.study_time, st.accession_number, \
             st.study_description, pt.patient_id, pt.patient_name, pt.patient_sex, \
             pt.patient_birth_date, COUNT(DISTINCT s.series_instance_uid), COUNT(*) {FROM} \
             WHERE {} GROUP BY st.study_instance_uid, st.study_date, st.study_time, \
             st.accession_number, st.study_description, pt.patient_id, pt.patient_name, \
             pt.patient_sex, pt.patient_birth_date \
             ORDER BY st.study_instance_uid LIMIT {limit} OFFSET {offset}",
            f.where_sql()
        );
        let rows = f
            .bind(sqlx::query(sqlx::AssertSqlSafe(sql)))
            .fetch_all(&self.pool)
            .await?;
        let mut studies = Vec::with_capacity(rows.len());
        for r in &rows {
            studies.push(StudyMatch {
                study_instance_uid: r.try_get(0)?,
                study_date: r.try_get(1)?,
                study_time: r.try_get(2)?,
                accession_number: r.try_get(3)?,
                study_description: r.try_get(4)?,
                patient_id: r.try_get(5)?,
                patient_name: r.try_get(6)?,
                patient_sex: r.try_get(7)?,
                patient_birth_date: r.try_get(8)?,
                modalities: Vec::new(),
                series: r.try_get(9)?,
                instances: r.try_get(10)?,
            });
        }
        // Modalities in Study, for the page's studies only.
        for study in &mut studies {
            let rows = sqlx::query(
                "SELECT DISTINCT modality FROM series WHERE study_instance_uid = $1 \
                 ORDER BY modality",
            )
            .bind(&study.study_instance_uid)
            .fetch_all(&self.pool)
            .await?;
            study.modalities = rows
                .iter()
                .map(|r| r.try_get::<String, _>(0))
                .collect::<std::result::Result<Vec<_>, _>>()?
                .into_iter()
                .filter(|m| !m.is_empty())
                .collect();
        }
        Ok(studies)
    }

    /// The project's series matching `q`, by study then Series Number then UID.
    pub async fn qido_series(
        &self,
        project: &str,
        visibility: &Visibility,
        q: &QidoQuery,
    ) -> Result<Vec<SeriesMatch>> {
        let mut f = Filter::new(project, visibility);
        f.apply(q, false);
        let (limit, offset) = page(q);
        let sql = format!(
            "SELECT st.study_instance_uid, s.series_instance_uid, s.modality, \
             s.body_part_examined, s.series_number, s.series_description, COUNT(*) {FROM} \
             WHERE {} GROUP BY st.study_instance_uid, s.series_instance_uid, s.modality, \
             s.body_part_examined, s.series_number, s.series_description \
             ORDER BY st.study_instance_uid, s.series_number, s.series_instance_uid \
             LIMIT {limit} OFFSET {offset}",
            f.where_sql()
        );
        let rows = f
            .bind(sqlx::query(sqlx::AssertSqlSafe(sql)))
            .fetch_all(&self.pool)
            .await?;
        rows.iter()
            .map(|r| {
                Ok(SeriesMatch {
                    study_instance_uid: r.try_get(0)?,
                    series_instance_uid: r.try_get(1)?,
                    modality: r.try_get(2)?,
                    body_part_examined: r.try_get(3)?,
                    series_number: r.try_get(4)?,
                    series_description: r.try_get(5)?,
                    instances: r.try_get(6)?,
                })
            })
            .collect()
    }

    /// The project's instances matching `q`, by study, series, Instance Number, UID. WADO-RS
    /// uses it too, with the UIDs of the request as keys.
    pub async fn qido_instances(
        &self,
        project: &str,
        visibility: &Visibility,
        q: &QidoQuery,
    ) -> Result<Vec<InstanceMatch>> {
        let mut f = Filter::new(project, visibility);
        f.apply(q, false);
        let (limit, offset) = page(q);
        let sql = format!(
            "SELECT st.study_instance_uid, s.series_instance_uid, i.sop_instance_uid, \
             i.sop_class_uid, i.instance_number, i.rows, i.columns, i.frames, \
             i.bits_allocated, i.transfer_syntax_uid, i.blob_hash, i.size_bytes {FROM} \
             WHERE {} ORDER BY st.study_instance_uid, s.series_number, s.series_instance_uid, \
             i.instance_number, i.sop_instance_uid LIMIT {limit} OFFSET {offset}",
            f.where_sql()
        );
        let rows = f
            .bind(sqlx::query(sqlx::AssertSqlSafe(sql)))
            .fetch_all(&self.pool)
            .await?;
        rows.iter()
            .map(|r| {
                Ok(InstanceMatch {
                    study_instance_uid: r.try_get(0)?,
                    series_instance_uid: r.try_get(1)?,
                    sop_instance_uid: r.try_get(2)?,
                    sop_class_uid: r.try_get(3)?,
                    instance_number: r.try_get(4)?,
                    rows: r.try_get(5)?,
                    columns: r.try_get(6)?,
                    frames: r.try_get(7)?,
                    bits_allocated: r.try_get(8)?,
                    transfer_syntax_uid: r.try_get(9)?,
                    blob_hash: r.try_get(10)?,
                    size_bytes: r.try_get(11)?,
                })
            })
            .collect()
    }

    /// Rows of `select ... IN (values)`, run 500 values at a time; `project`, when given, is
    /// `$1` of `select`.
    async fn rows_among(
        &self,
        select: &str,
        project: Option<&str>,
        values: &[String],
    ) -> Result<Vec<sqlx::any::AnyRow>> {
        let first = usize::from(project.is_some());
        let mut rows = Vec::new();
        for chunk in values.chunks(500) {
            let sql = format!(
                "{select} IN ({})",
                crate::catalog::numbered_rows_after("?", chunk.len(), first)
            );
            let mut q = sqlx::query(sqlx::AssertSqlSafe(sql));
            if let Some(p) = project {
                q = q.bind(p);
            }
            for v in chunk {
                q = q.bind(v);
            }
            rows.extend(q.fetch_all(&self.pool).await?);
        }
        Ok(rows)
    }

    /// Which of `uids` (SOP Instance UIDs) the catalog holds.
    pub async fn catalogued_among(&self, uids: &[String]) -> Result<HashSet<String>> {
        let select = "SELECT sop_instance_uid FROM instances WHERE sop_instance_uid";
        let rows = self.rows_among(select, None, uids).await?;
        Ok(rows
            .iter()
            .map(|r| r.try_get(0))
            .collect::<std::result::Result<_, _>>()?)
    }

    /// Which of `uids` (SOP Instance UIDs) are images of `project`.
    pub async fn project_images_among(
        &self,
        project: &str,
        uids: &[String],
    ) -> Result<HashSet<String>> {
        let select = "SELECT sop_instance_uid FROM project_images WHERE project_id = $1 \
                      AND sop_instance_uid";
        let rows = self.rows_among(select, Some(project), uids).await?;
        Ok(rows
            .iter()
            .map(|r| r.try_get(0))
            .collect::<std::result::Result<_, _>>()?)
    }

    /// Where images of `project` are in DICOMweb: (Study, Series, SOP Instance UID) by image
    /// id, for the ids of `image_ids` the project has (a worklist page gives its viewer the
    /// location of each image).
    pub async fn image_locations(
        &self,
        project: &str,
        image_ids: &[String],
    ) -> Result<std::collections::HashMap<String, (String, String, String)>> {
        let select = "SELECT p.image_id, s.study_instance_uid, s.series_instance_uid, \
                      p.sop_instance_uid FROM project_images p \
                      JOIN instances i ON i.sop_instance_uid = p.sop_instance_uid \
                      JOIN series s ON s.series_instance_uid = i.series_instance_uid \
                      WHERE p.project_id = $1 AND p.image_id";
        let rows = self.rows_among(select, Some(project), image_ids).await?;
        Ok(rows
            .iter()
            .map(|r| Ok((r.try_get(0)?, (r.try_get(1)?, r.try_get(2)?, r.try_get(3)?))))
            .collect::<std::result::Result<_, sqlx::Error>>()?)
    }

    /// SOP Instance UIDs of the whole catalog matching `q` (its keys as QIDO-RS reads them:
    /// study-level modality, date ranges, wildcards), in UID order, at most `limit`.
    pub async fn catalog_instances_matching(
        &self,
        q: &QidoQuery,
        limit: i64,
    ) -> Result<Vec<String>> {
        let mut f = Filter::catalog();
        f.apply(q, true);
        let sql = format!(
            "SELECT i.sop_instance_uid FROM instances i \
             JOIN series s ON s.series_instance_uid = i.series_instance_uid \
             JOIN studies st ON st.study_instance_uid = s.study_instance_uid \
             JOIN patients pt ON pt.patient_key = st.patient_key \
             WHERE {} ORDER BY i.sop_instance_uid LIMIT {}",
            f.where_sql(),
            limit.max(1)
        );
        let rows = f
            .bind(sqlx::query(sqlx::AssertSqlSafe(sql)))
            .fetch_all(&self.pool)
            .await?;
        rows.iter()
            .map(|r| r.try_get(0).map_err(Into::into))
            .collect()
    }
}
