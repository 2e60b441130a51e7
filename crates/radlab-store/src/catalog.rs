//! The catalog database: SQLite by default, PostgreSQL for scale, one schema and one set of
//! migrations for both (sqlx `Any` driver, portable SQL, `$n` placeholders).

use std::path::Path;
use std::str::FromStr;

use radlab_dicom::InstanceInfo;
use serde::Serialize;
use sqlx::any::{AnyConnectOptions, AnyPoolOptions};
use sqlx::{AnyPool, ConnectOptions, Executor, Row};

use crate::error::{Result, StoreError};

static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations");

/// Which database engine backs the catalog.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Backend {
    Sqlite,
    Postgres,
}

/// A connection pool to the catalog, migrated to the current schema.
#[derive(Clone, Debug)]
pub struct Catalog {
    pub(crate) pool: AnyPool,
    backend: Backend,
}

/// One instance to record, with where it came from.
#[derive(Debug, Clone)]
pub struct NewInstance {
    pub info: InstanceInfo,
    pub content_hash: String,
    pub blob_hash: String,
    /// Hash of the decoded stored values of every frame (see `radlab_dicom::pixel_hash`).
    pub pixel_hash: String,
    pub size_bytes: u64,
    /// `dicom` or `picture` (a PNG/JPEG wrapped as Secondary Capture).
    pub source_kind: &'static str,
    pub source_path: String,
    pub source_name: String,
}

/// What happened to an instance on insert.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum InsertOutcome {
    Inserted,
    /// The same content is already in the catalog.
    AlreadyPresent,
    /// The instance is catalogued from another file holding the same pixels in another
    /// encoding (a transcoded copy); this file was recorded as another source of it.
    SameInstanceOtherEncoding,
    /// Another object with this SOP Instance UID but different content is in the catalog.
    ConflictingUid {
        existing_content_hash: String,
    },
}

/// What identifies a catalogued object's content.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InstanceIdentity {
    pub content_hash: String,
    pub blob_hash: String,
    /// Empty when the instance was imported with structure checks only.
    pub pixel_hash: String,
}

/// A file that could not be used.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct QuarantineEntry {
    pub source_path: String,
    pub content_hash: String,
    pub size_bytes: u64,
    pub reason_code: String,
    pub reason: String,
}

/// A row of `radlab ls`.
#[derive(Debug, Clone, Serialize)]
pub struct InstanceRow {
    pub sop_instance_uid: String,
    pub study_instance_uid: String,
    pub series_instance_uid: String,
    pub patient_id: String,
    pub modality: String,
    pub body_part_examined: String,
    pub view_position: String,
    pub photometric: String,
    pub rows: i64,
    pub columns: i64,
    pub frames: i64,
    pub bits_stored: i64,
    pub pixel_spacing: String,
    pub transfer_syntax_uid: String,
    pub manufacturer: String,
    pub burned_in_annotation: Option<String>,
    pub blob_hash: String,
    pub size_bytes: i64,
    pub source_path: String,
}

/// How many of each thing the catalog holds.
#[derive(Debug, Clone, Default, Serialize, PartialEq, Eq)]
pub struct CatalogCounts {
    pub patients: i64,
    pub studies: i64,
    pub series: i64,
    pub instances: i64,
    pub quarantined: i64,
}

impl Catalog {
    /// Open (creating if needed) the catalog at `url`: `sqlite://PATH` or a bare file path for
    /// SQLite, `postgres://...` for PostgreSQL. Migrations run on open.
    pub async fn open(url: &str) -> Result<Self> {
        sqlx::any::install_default_drivers();
        let (url, backend) = normalise_url(url)?;
        let options = AnyConnectOptions::from_str(&url)
            .map_err(|e| StoreError::Config(format!("invalid database URL: {e}")))?
            .disable_statement_logging();
        let pool = AnyPoolOptions::new()
            .max_connections(if backend == Backend::Sqlite { 4 } else { 8 })
            .after_connect(move |conn, _| {
                Box::pin(async move {
                    if backend == Backend::Sqlite {
                        // WAL lets readers (ls, the server) run beside an import; NORMAL
                        // sync is durable across application crashes, as WAL intends.
                        conn.execute("PRAGMA journal_mode = WAL").await?;
                        conn.execute("PRAGMA synchronous = NORMAL").await?;
                        conn.execute("PRAGMA busy_timeout = 30000").await?;
                        conn.execute("PRAGMA foreign_keys = ON").await?;
                        // 64 MiB of page cache per connection (SQLite's default is 2 MiB):
                        // the indexes of a project of 100,000 images and 300,000 tasks stay
                        // in memory while they are written and read.
                        conn.execute("PRAGMA cache_size = -65536").await?;
                    }
                    Ok(())
                })
            })
            .connect_with(options)
            .await
            .map_err(|e| StoreError::Database(format!("cannot connect to the catalog: {e}")))?;
        MIGRATOR
            .run(&pool)
            .await
            .map_err(|e| StoreError::Database(format!("cannot migrate the catalog: {e}")))?;
        Ok(Catalog { pool, backend })
    }

    pub fn backend(&self) -> Backend {
        self.backend
    }

    pub async fn close(&self) {
        self.pool.close().await;
    }

    /// Content hashes of every file that brought an instance (to skip known files before
    /// parsing them).
    pub async fn instance_content_hashes(&self) -> Result<Vec<String>> {
        let rows = sqlx::query("SELECT DISTINCT content_hash FROM instance_sources")
            .fetch_all(&self.pool)
            .await?;
        Ok(rows.iter().map(|r| r.get::<String, _>(0)).collect())
    }

    /// Content hashes of quarantined files.
    pub async fn quarantined_content_hashes(&self) -> Result<Vec<String>> {
        let rows =
            sqlx::query("SELECT DISTINCT content_hash FROM quarantine WHERE content_hash <> ''")
                .fetch_all(&self.pool)
                .await?;
        Ok(rows.iter().map(|r| r.get::<String, _>(0)).collect())
    }

    /// Record a batch of instances in one transaction.
    pub async fn insert_instances(
        &self,
        batch: &[NewInstance],
        import_id: &str,
    ) -> Result<Vec<InsertOutcome>> {
        let now = now_rfc3339();
        let mut tx = self.pool.begin().await?;
        let mut outcomes = Vec::with_capacity(batch.len());
        for new in batch {
            let i = &new.info;
            let patient_key = if i.patient_id.is_empty() {
                format!("anonymous:{}", i.study_instance_uid)
            } else {
                i.patient_id.clone()
            };
            sqlx::query(
                "INSERT INTO patients (patient_key, patient_id, patient_name, patient_sex, \
                 patient_birth_date) VALUES ($1, $2, $3, $4, $5) ON CONFLICT DO NOTHING",
            )
            .bind(&patient_key)
            .bind(&i.patient_id)
            .bind(&i.patient_name)
            .bind(&i.patient_sex)
            .bind(&i.patient_birth_date)
            .execute(&mut *tx)
            .await?;
            sqlx::query(
                "INSERT INTO studies (study_instance_uid, patient_key, study_date, study_time, \
                 accession_number, study_description) VALUES ($1, $2, $3, $4, $5, $6) \
                 ON CONFLICT DO NOTHING",
            )
            .bind(&i.study_instance_uid)
            .bind(&patient_key)
            .bind(&i.study_date)
            .bind(&i.study_time)
            .bind(&i.accession_number)
            .bind(&i.study_description)
            .execute(&mut *tx)
            .await?;
            sqlx::query(
                "INSERT INTO series (series_instance_uid, study_instance_uid, modality, \
                 body_part_examined, series_number, series_description) \
                 VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT DO NOTHING",
            )
            .bind(&i.series_instance_uid)
            .bind(&i.study_instance_uid)
            .bind(&i.modality)
            .bind(&i.body_part_examined)
            .bind(i.series_number)
            .bind(&i.series_description)
            .execute(&mut *tx)
            .await?;
            let img = i.image.as_ref();
            let inserted = sqlx::query(
                "INSERT INTO instances (sop_instance_uid, series_instance_uid, sop_class_uid, \
                 instance_number, content_hash, blob_hash, pixel_hash, size_bytes, \
                 transfer_syntax_uid, \
                 modality, body_part_examined, view_position, laterality, photometric, rows, \
                 columns, frames, samples_per_pixel, bits_allocated, bits_stored, \
                 pixel_representation, pixel_spacing, manufacturer, \
                 model_name, burned_in_annotation, source_kind, source_path, source_name, \
                 import_id, imported_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, \
                 $12, $13, $14, $15, $16, $17, $18, $19, $20, $21, $22, $23, $24, $25, $26, $27, \
                 $28, $29, $30) ON CONFLICT DO NOTHING",
            )
            .bind(&i.sop_instance_uid)
            .bind(&i.series_instance_uid)
            .bind(&i.sop_class_uid)
            .bind(i.instance_number)
            .bind(&new.content_hash)
            .bind(&new.blob_hash)
            .bind(&new.pixel_hash)
            .bind(new.size_bytes as i64)
            .bind(&i.transfer_syntax_uid)
            .bind(&i.modality)
            .bind(&i.body_part_examined)
            .bind(&i.view_position)
            .bind(&i.laterality)
            .bind(
                img.map(|m| m.photometric_interpretation.clone())
                    .unwrap_or_default(),
            )
            .bind(img.map(|m| m.rows as i64).unwrap_or(0))
            .bind(img.map(|m| m.columns as i64).unwrap_or(0))
            .bind(img.map(|m| m.frames as i64).unwrap_or(0))
            .bind(img.map(|m| m.samples_per_pixel as i64).unwrap_or(0))
            .bind(img.map(|m| m.bits_allocated as i64).unwrap_or(0))
            .bind(img.map(|m| m.bits_stored as i64).unwrap_or(0))
            .bind(img.map(|m| m.pixel_representation as i64).unwrap_or(0))
            .bind(
                img.and_then(|m| m.pixel_spacing)
                    .map(|(r, c)| format!("{r}\\{c}"))
                    .unwrap_or_default(),
            )
            .bind(&i.manufacturer)
            .bind(&i.manufacturer_model_name)
            .bind(i.burned_in_annotation.map(|b| if b { "YES" } else { "NO" }))
            .bind(new.source_kind)
            .bind(&new.source_path)
            .bind(&new.source_name)
            .bind(import_id)
            .bind(&now)
            .execute(&mut *tx)
            .await?
            .rows_affected();
            let outcome = if inserted == 1 {
                InsertOutcome::Inserted
            } else {
                let existing = sqlx::query(
                    "SELECT content_hash, pixel_hash FROM instances WHERE sop_instance_uid = $1",
                )
                .bind(&i.sop_instance_uid)
                .fetch_optional(&mut *tx)
                .await?
                .map(|r| (r.get::<String, _>(0), r.get::<String, _>(1)));
                let known_source = sqlx::query(
                    "SELECT 1 FROM instance_sources WHERE content_hash = $1 \
                     AND sop_instance_uid = $2",
                )
                .bind(&new.content_hash)
                .bind(&i.sop_instance_uid)
                .fetch_optional(&mut *tx)
                .await?
                .is_some();
                match existing {
                    // This very file (or a byte-identical copy) is already a source of it.
                    Some((content, _)) if content == new.content_hash || known_source => {
                        InsertOutcome::AlreadyPresent
                    }
                    Some((_, pixels)) if !pixels.is_empty() && pixels == new.pixel_hash => {
                        InsertOutcome::SameInstanceOtherEncoding
                    }
                    Some((content, _)) => InsertOutcome::ConflictingUid {
                        existing_content_hash: content,
                    },
                    // Same content under another SOP Instance UID cannot happen (the UID is
                    // in the content); a unique-index race is reported as present.
                    None => InsertOutcome::AlreadyPresent,
                }
            };
            if matches!(
                outcome,
                InsertOutcome::Inserted
                    | InsertOutcome::AlreadyPresent
                    | InsertOutcome::SameInstanceOtherEncoding
            ) {
                insert_source(&mut tx, new, import_id, &now).await?;
            }
            outcomes.push(outcome);
        }
        tx.commit().await?;
        Ok(outcomes)
    }

    /// Add files to the quarantine list; returns how many were new.
    pub async fn quarantine(&self, entries: &[QuarantineEntry], import_id: &str) -> Result<u64> {
        let now = now_rfc3339();
        let mut tx = self.pool.begin().await?;
        let mut added = 0;
        for e in entries {
            let id = radlab_dicom::content_hash(
                format!("{}\0{}", e.source_path, e.content_hash).as_bytes(),
            );
            added += sqlx::query(
                "INSERT INTO quarantine (quarantine_id, source_path, content_hash, size_bytes, \
                 reason_code, reason, import_id, recorded_at) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8) ON CONFLICT DO NOTHING",
            )
            .bind(&id)
            .bind(&e.source_path)
            .bind(&e.content_hash)
            .bind(e.size_bytes as i64)
            .bind(&e.reason_code)
            .bind(&e.reason)
            .bind(import_id)
            .bind(&now)
            .execute(&mut *tx)
            .await?
            .rows_affected();
        }
        tx.commit().await?;
        Ok(added)
    }

    pub async fn begin_import(&self, import_id: &str, paths: &[String]) -> Result<()> {
        sqlx::query(
            "INSERT INTO imports (import_id, started_at, paths, files_seen, imported, \
             already_present, quarantined) VALUES ($1, $2, $3, 0, 0, 0, 0)",
        )
        .bind(import_id)
        .bind(now_rfc3339())
        .bind(serde_json::to_string(paths).unwrap_or_default())
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    pub async fn finish_import(
        &self,
        import_id: &str,
        files_seen: u64,
        imported: u64,
        already_present: u64,
        quarantined: u64,
    ) -> Result<()> {
        sqlx::query(
            "UPDATE imports SET finished_at = $2, files_seen = $3, imported = $4, \
             already_present = $5, quarantined = $6 WHERE import_id = $1",
        )
        .bind(import_id)
        .bind(now_rfc3339())
        .bind(files_seen as i64)
        .bind(imported as i64)
        .bind(already_present as i64)
        .bind(quarantined as i64)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    pub async fn counts(&self) -> Result<CatalogCounts> {
        let row = sqlx::query(
            "SELECT (SELECT COUNT(*) FROM patients), (SELECT COUNT(*) FROM studies), \
             (SELECT COUNT(*) FROM series), (SELECT COUNT(*) FROM instances), \
             (SELECT COUNT(*) FROM quarantine)",
        )
        .fetch_one(&self.pool)
        .await?;
        Ok(CatalogCounts {
            patients: row.get(0),
            studies: row.get(1),
            series: row.get(2),
            instances: row.get(3),
            quarantined: row.get(4),
        })
    }

    /// Instances, optionally only those of one modality, in a stable order.
    pub async fn list_instances(&self, modality: Option<&str>) -> Result<Vec<InstanceRow>> {
        let rows = sqlx::query(
            "SELECT i.sop_instance_uid, s.study_instance_uid, i.series_instance_uid, \
             p.patient_id, i.modality, i.body_part_examined, i.view_position, i.photometric, \
             i.rows, i.columns, i.frames, i.bits_stored, i.transfer_syntax_uid, i.manufacturer, \
             i.burned_in_annotation, i.blob_hash, i.size_bytes, i.source_path, i.pixel_spacing \
             FROM instances i JOIN series se ON se.series_instance_uid = i.series_instance_uid \
             JOIN studies s ON s.study_instance_uid = se.study_instance_uid \
             JOIN patients p ON p.patient_key = s.patient_key \
             WHERE ($1 = '' OR i.modality = $1) ORDER BY i.source_path, i.sop_instance_uid",
        )
        .bind(modality.unwrap_or(""))
        .fetch_all(&self.pool)
        .await?;
        Ok(rows
            .iter()
            .map(|r| InstanceRow {
                sop_instance_uid: r.get(0),
                study_instance_uid: r.get(1),
                series_instance_uid: r.get(2),
                patient_id: r.get(3),
                modality: r.get(4),
                body_part_examined: r.get(5),
                view_position: r.get(6),
                photometric: r.get(7),
                rows: r.get(8),
                columns: r.get(9),
                frames: r.get(10),
                bits_stored: r.get(11),
                transfer_syntax_uid: r.get(12),
                manufacturer: r.get(13),
                burned_in_annotation: r.get(14),
                blob_hash: r.get(15),
                size_bytes: r.get(16),
                source_path: r.get(17),
                pixel_spacing: r.get(18),
            })
            .collect())
    }

    /// Every file that brought an instance: (source path, SOP Instance UID).
    pub async fn list_sources(&self) -> Result<Vec<(String, String)>> {
        let rows = sqlx::query(
            "SELECT source_path, sop_instance_uid FROM instance_sources \
             ORDER BY source_path, sop_instance_uid",
        )
        .fetch_all(&self.pool)
        .await?;
        Ok(rows.iter().map(|r| (r.get(0), r.get(1))).collect())
    }

    pub async fn list_quarantine(&self) -> Result<Vec<QuarantineEntry>> {
        let rows = sqlx::query(
            "SELECT source_path, content_hash, size_bytes, reason_code, reason FROM quarantine \
             ORDER BY source_path, content_hash",
        )
        .fetch_all(&self.pool)
        .await?;
        Ok(rows
            .iter()
            .map(|r| QuarantineEntry {
                source_path: r.get(0),
                content_hash: r.get(1),
                size_bytes: r.get::<i64, _>(2) as u64,
                reason_code: r.get(3),
                reason: r.get(4),
            })
            .collect())
    }

    pub async fn instance_identity(
        &self,
        sop_instance_uid: &str,
    ) -> Result<Option<InstanceIdentity>> {
        Ok(sqlx::query(
            "SELECT content_hash, blob_hash, pixel_hash FROM instances WHERE sop_instance_uid = $1",
        )
        .bind(sop_instance_uid)
        .fetch_optional(&self.pool)
        .await?
        .map(|r| InstanceIdentity {
            content_hash: r.get(0),
            blob_hash: r.get(1),
            pixel_hash: r.get(2),
        }))
    }

    /// Record `new` as another file of its (catalogued) instance.
    pub async fn add_source(&self, new: &NewInstance, import_id: &str) -> Result<()> {
        let mut conn = self.pool.acquire().await?;
        insert_source(&mut conn, new, import_id, &now_rfc3339()).await
    }

    pub async fn set_pixel_hash(&self, sop_instance_uid: &str, pixel_hash: &str) -> Result<()> {
        sqlx::query("UPDATE instances SET pixel_hash = $2 WHERE sop_instance_uid = $1")
            .bind(sop_instance_uid)
            .bind(pixel_hash)
            .execute(&self.pool)
            .await?;
        Ok(())
    }
}

async fn insert_source(
    conn: &mut sqlx::AnyConnection,
    new: &NewInstance,
    import_id: &str,
    now: &str,
) -> Result<()> {
    sqlx::query(
        "INSERT INTO instance_sources (content_hash, source_path, sop_instance_uid, \
         transfer_syntax_uid, size_bytes, import_id, recorded_at) \
         VALUES ($1, $2, $3, $4, $5, $6, $7) ON CONFLICT DO NOTHING",
    )
    .bind(&new.content_hash)
    .bind(&new.source_path)
    .bind(&new.info.sop_instance_uid)
    .bind(&new.info.transfer_syntax_uid)
    .bind(new.size_bytes as i64)
    .bind(import_id)
    .bind(now)
    .execute(conn)
    .await?;
    Ok(())
}

/// Accept `sqlite://path`, `sqlite:path`, `postgres://...`, `postgresql://...` or a bare path.
fn normalise_url(url: &str) -> Result<(String, Backend)> {
    if url.starts_with("postgres://") || url.starts_with("postgresql://") {
        return Ok((url.to_string(), Backend::Postgres));
    }
    let path = url
        .strip_prefix("sqlite://")
        .or_else(|| url.strip_prefix("sqlite:"))
        .unwrap_or(url);
    let (path, query) = path.split_once('?').unwrap_or((path, ""));
    if path.is_empty() {
        return Err(StoreError::Config(
            "empty SQLite path: give --db sqlite://PATH or postgres://USER@HOST/DB".into(),
        ));
    }
    if path.contains("://") {
        return Err(StoreError::Config(format!(
            "unsupported database URL scheme in {url:?}: use sqlite://PATH or postgres://..."
        )));
    }
    if let Some(parent) = Path::new(path).parent()
        && !parent.as_os_str().is_empty()
    {
        std::fs::create_dir_all(parent).map_err(|e| {
            StoreError::Config(format!("cannot create the folder of {path:?}: {e}"))
        })?;
    }
    let query = if query.is_empty() {
        "mode=rwc".to_string()
    } else {
        query.to_string()
    };
    Ok((format!("sqlite://{path}?{query}"), Backend::Sqlite))
}

/// Lock a project's row for the rest of the transaction: the first statement of every
/// transaction that writes a project's tasks or annotations. On PostgreSQL it serialises
/// those writers per project; on SQLite it takes the write lock before anything is read (a
/// transaction that reads first and writes later fails at once with SQLITE_BUSY when another
/// connection committed in between).
pub(crate) async fn lock_project(
    tx: &mut sqlx::Transaction<'_, sqlx::Any>,
    project: &str,
) -> Result<()> {
    sqlx::query("UPDATE projects SET created_at = created_at WHERE project_id = $1")
        .bind(project)
        .execute(&mut **tx)
        .await?;
    Ok(())
}

impl Catalog {
    /// After a bulk write of `rows` rows into `table` (10,000 or more), PostgreSQL's planner
    /// statistics are refreshed at once rather than at autovacuum's next pass (up to a
    /// minute later): until then it plans a 300,000-row table as a near empty one (a
    /// worklist page then sorts all of a reader's tasks instead of reading them in order
    /// from their index). Best effort: a failure changes nothing but the plans.
    pub(crate) async fn refresh_statistics(&self, table: &'static str, rows: usize) {
        if self.backend == Backend::Postgres && rows >= 10_000 {
            let _ = sqlx::query(sqlx::AssertSqlSafe(format!("ANALYZE {table}")))
                .execute(&self.pool)
                .await;
        }
    }

    /// A statement with many placeholders (`$1`, `$2`, ... each once, in order), as this
    /// catalog's engine takes it best. On SQLite every `$n` becomes an anonymous `?`: a
    /// named parameter (`$n` and `?n` both are) is looked up by name and number in a list
    /// of them all, for every one of them, when the statement is parsed and when sqlx binds
    /// it (seconds for a 5,000-row insert); anonymous ones are not. PostgreSQL takes `$n`.
    pub(crate) fn bulk_sql(&self, sql: String) -> String {
        if self.backend == Backend::Postgres {
            return sql;
        }
        let mut out = String::with_capacity(sql.len());
        let mut chars = sql.chars().peekable();
        let mut expected = 1;
        while let Some(c) = chars.next() {
            if c == '$' && chars.peek().is_some_and(char::is_ascii_digit) {
                let mut n = 0usize;
                while let Some(d) = chars.peek().and_then(|d| d.to_digit(10)) {
                    n = n * 10 + d as usize;
                    chars.next();
                }
                debug_assert_eq!(n, expected, "bulk_sql: $n once each, in order");
                expected += 1;
                out.push('?');
            } else {
                out.push(c);
            }
        }
        out
    }
}

/// `rows` copies of a row template for a multi-row insert, joined by commas, each `?`
/// replaced by the next `$n` placeholder: `(?, ?, 'add')` twice is
/// `($1, $2, 'add'),($3, $4, 'add')`.
pub(crate) fn numbered_rows(template: &str, rows: usize) -> String {
    numbered_rows_after(template, rows, 0)
}

/// [`numbered_rows`] numbered from `first + 1`, after the statement's own `$1` to
/// `$first`: `?` three times after 1 is `$2,$3,$4`.
pub(crate) fn numbered_rows_after(template: &str, rows: usize, first: usize) -> String {
    let mut out = String::with_capacity(rows * (template.len() + 16));
    let mut n = first;
    for i in 0..rows {
        if i > 0 {
            out.push(',');
        }
        for c in template.chars() {
            if c == '?' {
                n += 1;
                out.push('$');
                out.push_str(&n.to_string());
            } else {
                out.push(c);
            }
        }
    }
    out
}

pub(crate) fn now_rfc3339() -> String {
    time::OffsetDateTime::now_utc()
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_default()
}
