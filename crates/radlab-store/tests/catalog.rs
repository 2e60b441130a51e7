//! The catalog and `import`, run against every backend: SQLite always, PostgreSQL when
//! `RADLAB_TEST_POSTGRES` names a server (scripts/test sets it; each test makes and drops its
//! own database there).

use std::path::{Path, PathBuf};
use std::sync::Arc;

use radlab_dicom::{DicomFile, RenderOptions, render_file};
use radlab_store::import::{discover, import_sources};
use radlab_store::{BlobStore, Catalog, ImportOptions, ImportSummary, NoProgress, import_paths};
use radlab_testkit::{corpus, skip};
use sqlx::any::AnyPoolOptions;

/// Run an administrative statement (database names cannot be bind parameters).
async fn admin_exec(pool: &sqlx::AnyPool, sql: String) {
    sqlx::query(sqlx::AssertSqlSafe(sql))
        .execute(pool)
        .await
        .unwrap();
}

/// A catalog + blob store in a temporary place, on one backend.
struct Env {
    name: &'static str,
    catalog: Catalog,
    blobs: BlobStore,
    _dir: tempfile::TempDir,
    postgres: Option<(String, String)>,
}

impl Env {
    async fn drop_db(self) {
        self.catalog.close().await;
        if let Some((admin, db)) = self.postgres {
            let pool = AnyPoolOptions::new()
                .max_connections(1)
                .connect(&admin)
                .await
                .unwrap();
            admin_exec(&pool, format!("DROP DATABASE IF EXISTS {db} WITH (FORCE)")).await;
        }
    }
}

async fn sqlite_env() -> Env {
    sqlx::any::install_default_drivers();
    let dir = tempfile::tempdir().unwrap();
    Env {
        name: "sqlite",
        catalog: Catalog::open(&format!(
            "sqlite://{}",
            dir.path().join("catalog.db").display()
        ))
        .await
        .unwrap(),
        blobs: BlobStore::local(dir.path().join("blobs")).unwrap(),
        _dir: dir,
        postgres: None,
    }
}

async fn environments(test: &str) -> Vec<Env> {
    let mut out = vec![sqlite_env().await];
    match std::env::var("RADLAB_TEST_POSTGRES") {
        Ok(admin) if !admin.is_empty() => {
            let db = format!(
                "radlab_test_{}_{}",
                std::process::id(),
                test.chars()
                    .filter(|c| c.is_ascii_alphanumeric())
                    .collect::<String>()
            )
            .to_lowercase();
            let pool = AnyPoolOptions::new()
                .max_connections(1)
                .connect(&admin)
                .await
                .unwrap_or_else(|e| panic!("RADLAB_TEST_POSTGRES={admin}: {e}"));
            admin_exec(&pool, format!("DROP DATABASE IF EXISTS {db} WITH (FORCE)")).await;
            admin_exec(&pool, format!("CREATE DATABASE {db}")).await;
            pool.close().await;
            let (base, _) = admin
                .rsplit_once('/')
                .expect("postgres URL with a database");
            let dir = tempfile::tempdir().unwrap();
            out.push(Env {
                name: "postgres",
                catalog: Catalog::open(&format!("{base}/{db}")).await.unwrap(),
                blobs: BlobStore::local(dir.path().join("blobs")).unwrap(),
                _dir: dir,
                postgres: Some((admin, db)),
            });
        }
        _ => skip(
            &format!("{test} on PostgreSQL"),
            "RADLAB_TEST_POSTGRES is not set (scripts/test sets it when a server is reachable)",
        ),
    }
    out
}

async fn import(env: &Env, paths: &[PathBuf]) -> ImportSummary {
    import_paths(
        &env.catalog,
        &env.blobs,
        paths,
        &ImportOptions::default(),
        Arc::new(NoProgress),
    )
    .await
    .unwrap()
}

/// The reason code each manifest `expected` value must be quarantined with, for files the
/// reference decoder (pydicom) could not decode.
fn expected_reason(expected: &str) -> Option<&'static str> {
    Some(match expected {
        "header_only" | "no_pixel_data" => "no_pixel_data",
        "invalid_pixel_data" => "undecodable_pixel_data",
        "truncated_file" => "truncated_file",
        "truncated_pixel_data" => "truncated_pixel_data",
        "no_file_meta" => "not_dicom",
        _ => return None,
    })
}

/// Files where radlab does better than the manifest's reference (pydicom 3.0.2) and why;
/// each is checked against dcmtk in `radlab-dicom`'s decode_reference test.
const DECODED_DESPITE_MANIFEST: &[(&str, &str)] = &[
    (
        "dicom/invalid/fodicom_GH1376_truncated_pixeldata.dcm",
        "its meta group says JPEG Lossless and the whole image is in the codestream; a stray \
         copy of group 0002 inside the data set makes pydicom read it as uncompressed",
    ),
    (
        "dicom/other/nema_wg04_RG2_JPLY_cr_hip_jpeg_ext12.dcm",
        "12-bit JPEG extended, which pydicom's plugins cannot decode and we can",
    ),
];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn corpus_import_matches_the_manifest_file_by_file_and_a_second_run_adds_nothing() {
    let test = "corpus_import_matches_the_manifest";
    let Some(corpus) = corpus(test) else { return };
    for env in environments(test).await {
        let dicom_dir = corpus.path("dicom");
        let first = import(&env, std::slice::from_ref(&dicom_dir)).await;
        let instances = env.catalog.list_instances(None).await.unwrap();
        let sources = env.catalog.list_sources().await.unwrap();
        let quarantine = env.catalog.list_quarantine().await.unwrap();
        let rows = corpus.dicom_rows();
        assert_eq!(first.files_seen as usize, rows.len(), "{}", env.name);
        for row in &rows {
            let path = corpus
                .path(&row.path)
                .canonicalize()
                .unwrap()
                .display()
                .to_string();
            // The file's instance (it may have come first from another encoding of it).
            let imported = sources
                .iter()
                .find(|(p, _)| *p == path)
                .and_then(|(_, uid)| instances.iter().find(|i| i.sop_instance_uid == *uid));
            let quarantined = quarantine.iter().find(|q| q.source_path == path);
            let should_import = row.decode_pydicom.starts_with("ok")
                || DECODED_DESPITE_MANIFEST.iter().any(|(p, _)| *p == row.path);
            if should_import {
                let instance = imported.unwrap_or_else(|| {
                    panic!(
                        "[{}] {} should be imported; quarantined as {quarantined:?}",
                        env.name, row.path
                    )
                });
                // Rendered from the blob store, not the source file.
                let blob = env.blobs.get(&instance.blob_hash).await.unwrap();
                let file = DicomFile::from_bytes(&blob).unwrap();
                let (img, _) = render_file(&file, &RenderOptions::default())
                    .unwrap_or_else(|e| panic!("[{}] {}: {e}", env.name, row.path));
                assert!(img.width > 0 && img.height > 0);
                assert_eq!(instance.modality, row.fields["modality"], "{}", row.path);
            } else {
                let want = expected_reason(&row.expected)
                    .unwrap_or_else(|| panic!("no expected reason for {:?}", row.expected));
                let q = quarantined.unwrap_or_else(|| {
                    panic!("[{}] {} should be quarantined ({want})", env.name, row.path)
                });
                assert_eq!(
                    q.reason_code, want,
                    "[{}] {}: {}",
                    env.name, row.path, q.reason
                );
                assert!(imported.is_none());
            }
        }
        assert_eq!(first.imported as usize, instances.len());
        // The derived files of the corpus re-encode their originals losslessly under the same
        // SOP Instance UID: recorded as other sources of one instance, not as conflicts.
        assert_eq!(
            (first.imported + first.other_encodings) as usize,
            sources.len()
        );
        assert!(first.other_encodings >= 5, "{first:?}");
        assert_eq!(first.quarantined as usize, quarantine.len());
        let counts = env.catalog.counts().await.unwrap();

        let second = import(&env, &[dicom_dir]).await;
        assert!(
            second.added_nothing(),
            "[{}] second run: {second:?}",
            env.name
        );
        assert_eq!(
            second.already_present,
            first.imported + first.other_encodings,
            "[{}]",
            env.name
        );
        assert_eq!(
            second.already_quarantined, first.quarantined,
            "[{}]",
            env.name
        );
        assert_eq!(
            env.catalog.counts().await.unwrap(),
            counts,
            "[{}]",
            env.name
        );
        env.drop_db().await;
    }
}

fn copy_into(dir: &Path, corpus: &radlab_testkit::Corpus, rel: &str, name: &str) -> PathBuf {
    let to = dir.join(name);
    std::fs::copy(corpus.path(rel), &to).unwrap();
    to
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn truncated_non_dicom_and_vanished_files_never_abort_the_batch() {
    let test = "bad_files_never_abort_the_batch";
    let Some(corpus) = corpus(test) else { return };
    for env in environments(test).await {
        let dir = tempfile::tempdir().unwrap();
        let good = "dicom/cxr/siim_acr_cr_chest_pa_jpeg_baseline.dcm";
        copy_into(dir.path(), &corpus, good, "a_good.dcm");
        let bytes =
            std::fs::read(corpus.path("dicom/cxr_derived/siim_cr_chest_pa_mono2_explicit_le.dcm"))
                .unwrap();
        std::fs::write(
            dir.path().join("b_truncated.dcm"),
            &bytes[..bytes.len() * 6 / 10],
        )
        .unwrap();
        std::fs::write(dir.path().join("c_notes.txt"), "not a DICOM file\n").unwrap();
        let vanishing = copy_into(
            dir.path(),
            &corpus,
            "dicom/cxr_derived/siim_cr_chest_pa_mono2_rle.dcm",
            "d_vanishing.dcm",
        );
        copy_into(
            dir.path(),
            &corpus,
            "dicom/other/pydicom_CT_small.dcm",
            "e_good_ct.dcm",
        );

        let (sources, problems) = discover(&[dir.path().to_path_buf()]);
        assert_eq!(sources.len(), 5);
        std::fs::remove_file(&vanishing).unwrap(); // deleted mid-import
        let summary = import_sources(
            &env.catalog,
            &env.blobs,
            &[dir.path().display().to_string()],
            sources,
            problems,
            &ImportOptions::default(),
            Arc::new(NoProgress),
        )
        .await
        .unwrap();
        assert_eq!(summary.imported, 2, "[{}] {summary:?}", env.name);
        let reasons: Vec<(String, String)> = summary
            .problems
            .iter()
            .map(|p| {
                (
                    Path::new(&p.source_path)
                        .file_name()
                        .unwrap()
                        .to_string_lossy()
                        .to_string(),
                    p.reason_code.clone(),
                )
            })
            .collect();
        assert!(
            reasons.contains(&("b_truncated.dcm".into(), "truncated_file".into())),
            "{reasons:?}"
        );
        assert!(
            reasons.contains(&("c_notes.txt".into(), "not_dicom".into())),
            "{reasons:?}"
        );
        assert!(
            reasons.contains(&("d_vanishing.dcm".into(), "io".into())),
            "{reasons:?}"
        );
        // Every problem names its file and says why.
        for p in &summary.problems {
            assert!(!p.reason.is_empty() && !p.source_path.is_empty());
        }
        env.drop_db().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn zip_archives_and_pictures_are_imported_idempotently() {
    let test = "zip_archives_and_pictures";
    let Some(corpus) = corpus(test) else { return };
    for env in environments(test).await {
        let dir = tempfile::tempdir().unwrap();
        // A zip holding a DICOM and a greyscale PNG; an RGB PNG and a JPEG beside it.
        let zip_path = dir.path().join("batch.zip");
        {
            let mut zip = zip::ZipWriter::new(std::fs::File::create(&zip_path).unwrap());
            let options = zip::write::SimpleFileOptions::default();
            for (name, rel) in [
                (
                    "studies/one.dcm",
                    "dicom/cxr/nih_cxr14_dx_sc_implicit_covid0000.dcm",
                ),
                ("png/hannover.png", "png/cxr/hannover/006f3a8a.png"),
            ] {
                zip.start_file(name, options).unwrap();
                std::io::Write::write_all(&mut zip, &std::fs::read(corpus.path(rel)).unwrap())
                    .unwrap();
            }
            zip.finish().unwrap();
        }
        let rgb_png = corpus
            .manifest
            .iter()
            .find(|r| r.path.starts_with("png/cxr/openi_iu/") && r.path.ends_with(".png"))
            .expect("an Open-i RGB PNG")
            .path
            .clone();
        let jpeg = corpus
            .manifest
            .iter()
            .find(|r| r.path.starts_with("png/cxr/figure1/") && r.path.ends_with(".jpg"))
            .expect("a Figure1 JPEG")
            .path
            .clone();
        copy_into(dir.path(), &corpus, &rgb_png, "openi.png");
        copy_into(dir.path(), &corpus, &jpeg, "figure1.jpg");

        let first = import(&env, &[dir.path().to_path_buf()]).await;
        assert_eq!(first.imported, 4, "[{}] {first:?}", env.name);
        let rows = env.catalog.list_instances(None).await.unwrap();
        let png_row = rows
            .iter()
            .find(|r| r.source_path.ends_with("batch.zip!png/hannover.png"))
            .unwrap();
        assert_eq!(png_row.photometric, "MONOCHROME2");
        assert_eq!(png_row.modality, "OT");
        let blob = env.blobs.get(&png_row.blob_hash).await.unwrap();
        let file = DicomFile::from_bytes(&blob).unwrap();
        let info = radlab_dicom::InstanceInfo::from_file(&file);
        assert_eq!(info.sop_class_uid, "1.2.840.10008.5.1.4.1.1.7");
        let (img, _) = render_file(&file, &RenderOptions::default()).unwrap();
        let original = image::open(corpus.path("png/cxr/hannover/006f3a8a.png"))
            .unwrap()
            .to_luma8();
        assert_eq!((img.width, img.height), original.dimensions());
        // Greyscale pixels survive the wrapping unchanged (no window in the file: auto VOI
        // may stretch contrast, so compare the decoded stored values instead).
        let frame = radlab_dicom::decode_frame(&file, 0).unwrap();
        assert_eq!(
            frame.samples.to_i64_vec(),
            original
                .as_raw()
                .iter()
                .map(|v| *v as i64)
                .collect::<Vec<_>>()
        );
        let second = import(&env, &[dir.path().to_path_buf()]).await;
        assert!(second.added_nothing(), "[{}] {second:?}", env.name);
        assert_eq!(second.already_present, 4);
        env.drop_db().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_different_object_with_a_known_sop_instance_uid_is_quarantined_not_overwritten() {
    let test = "conflicting_sop_instance_uid";
    let Some(corpus) = corpus(test) else { return };
    for env in environments(test).await {
        let dir = tempfile::tempdir().unwrap();
        let original = copy_into(
            dir.path(),
            &corpus,
            "dicom/other/pydicom_CT_small.dcm",
            "a.dcm",
        );
        let first = import(&env, std::slice::from_ref(&original)).await;
        assert_eq!(first.imported, 1);
        let hash_before = env.catalog.list_instances(None).await.unwrap()[0]
            .blob_hash
            .clone();
        // Same header, one pixel changed (the 100th byte of Pixel Data, explicit VR OW).
        let mut bytes = std::fs::read(&original).unwrap();
        let tag = [0xE0, 0x7F, 0x10, 0x00];
        let at = bytes
            .windows(4)
            .rposition(|w| w == tag)
            .expect("Pixel Data element");
        bytes[at + 12 + 100] ^= 0x01;
        let edited = dir.path().join("b.dcm");
        std::fs::write(&edited, &bytes).unwrap();
        let second = import(&env, &[edited]).await;
        assert_eq!(second.imported, 0, "{second:?}");
        assert_eq!(second.quarantined, 1, "{second:?}");
        assert_eq!(
            second.problems[0].reason_code,
            "conflicting_sop_instance_uid"
        );
        let rows = env.catalog.list_instances(None).await.unwrap();
        assert_eq!(rows.len(), 1);
        assert_eq!(
            rows[0].blob_hash, hash_before,
            "the catalogued object was kept"
        );
        env.drop_db().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn structure_checks_quarantine_the_same_corpus_files_as_a_full_decode() {
    let Some(corpus) = corpus("structure_checks_match_full_decode") else {
        return;
    };
    let dicom_dir = corpus.path("dicom");
    let mut outcomes = Vec::new();
    for check in [
        radlab_store::PixelCheck::Decode,
        radlab_store::PixelCheck::Structure,
    ] {
        let env = sqlite_env().await;
        let options = ImportOptions {
            check,
            ..Default::default()
        };
        let summary = import_paths(
            &env.catalog,
            &env.blobs,
            std::slice::from_ref(&dicom_dir),
            &options,
            Arc::new(NoProgress),
        )
        .await
        .unwrap();
        let mut quarantined: Vec<(String, String)> = summary
            .problems
            .iter()
            .map(|p| (p.source_path.clone(), p.reason_code.clone()))
            .collect();
        quarantined.sort();
        outcomes.push((summary.imported, summary.other_encodings, quarantined));
        env.drop_db().await;
    }
    assert_eq!(outcomes[0], outcomes[1], "decode vs structure");
}

/// Kaggle's real train.csv into a project and back out: every reader's boxes with their
/// rad_id, the same bytes written again; deletions are logged, not lost; a project that
/// does not exist, or exists already, is a clear error.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_real_train_csv_round_trips_through_a_project() {
    let test = "train_csv_round_trips_through_a_project";
    let Some(corpus) = corpus(test) else { return };
    let original = std::fs::read(corpus.path("annotations/vinbigdata/train.csv")).unwrap();
    let rows = radlab_labels::kaggle::read_train_csv(&original[..], "train.csv").unwrap();
    for env in environments(test).await {
        let c = &env.catalog;
        let e = c
            .add_annotations("vbd", &rows, radlab_store::Layer::Consensus, "test")
            .await
            .unwrap_err();
        assert!(e.to_string().contains("no project vbd"), "{e}");
        c.create_project("vbd", "vindr-cxr").await.unwrap();
        assert!(c.create_project("vbd", "vindr-cxr").await.is_err());
        assert!(c.create_project("no spaces", "vindr-cxr").await.is_err());
        let n = c
            .add_annotations(
                "vbd",
                &rows,
                radlab_store::Layer::Consensus,
                "import:train.csv",
            )
            .await
            .unwrap();
        assert_eq!(n as usize, rows.len(), "{}", env.name);
        let back = c.annotations("vbd", &[]).await.unwrap();
        let annotations: Vec<radlab_labels::Annotation> =
            back.iter().map(|(_, a)| a.clone()).collect();
        assert_eq!(annotations, rows, "{}", env.name);
        let mut written = Vec::new();
        radlab_labels::kaggle::write_train_csv(&mut written, &annotations).unwrap();
        assert!(
            written == original,
            "{}: the exported train.csv differs",
            env.name
        );
        // Every reader layer holds that reader's rows.
        let readers = c
            .annotations("vbd", &[radlab_store::Layer::Reader])
            .await
            .unwrap();
        assert_eq!(readers.len(), rows.len());
        assert!(
            c.annotations("vbd", &[radlab_store::Layer::Consensus])
                .await
                .unwrap()
                .is_empty()
        );
        // A deletion is a new log row: the current state loses the annotation.
        let first = back[0].0.clone();
        c.delete_annotations("vbd", std::slice::from_ref(&first), "test")
            .await
            .unwrap();
        let now = c.annotations("vbd", &[]).await.unwrap();
        assert_eq!(now.len(), rows.len() - 1);
        assert!(now.iter().all(|(id, _)| *id != first));
        assert!(
            c.delete_annotations("vbd", &[first], "test")
                .await
                .unwrap_err()
                .to_string()
                .contains("no annotation")
        );
        let projects = c.list_projects().await.unwrap();
        assert_eq!(projects[0].annotations as usize, rows.len() - 1);
        assert_eq!(projects[0].images, 11_254);
        env.drop_db().await;
    }
}
