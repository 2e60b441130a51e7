//! The `radlab` binary, driven as a user would.

mod common;

use common::{radlab, text};

use std::path::Path;
use std::process::Command;

use radlab_testkit::corpus;

#[test]
fn every_subcommand_has_help() {
    let tmp = tempfile::tempdir().unwrap();
    for sub in [
        "import",
        "ls",
        "render",
        "info",
        "demo",
        "deid",
        "verify",
        "deid-mapping",
        "eval",
        "fuse",
        "agree",
        "labels",
        "split",
        "export",
        "serve",
        "user",
        "pacs",
        "triage",
    ] {
        let out = radlab(&[sub, "--help"], tmp.path());
        assert!(out.status.success(), "{sub} --help: {}", text(&out));
        assert!(text(&out).contains("Usage: radlab"), "{sub}");
    }
    let out = radlab(&["--help"], tmp.path());
    assert!(text(&out).contains("import"));
}

#[test]
fn output_into_a_closed_pipe_ends_quietly() {
    // `radlab info FILE | head -c 1`: the reader gone before radlab writes.
    let Some(corpus) = corpus("output_into_a_closed_pipe_ends_quietly") else {
        return;
    };
    let mut child = common::command()
        .arg("info")
        .arg(corpus.path("dicom/cxr/nema_wg04_RG1_J2KI_cr_chest_pa_mono1.dcm"))
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    drop(child.stdout.take());
    let out = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!stderr.contains("panicked"), "{stderr}");
}

#[test]
fn demo_loads_the_shipped_set_and_renders_it_twice_without_duplicates() {
    let tmp = tempfile::tempdir().unwrap();
    let out = radlab(&["demo", "--size", "128"], tmp.path());
    assert!(out.status.success(), "{}", text(&out));
    let renders: Vec<_> = std::fs::read_dir(tmp.path().join("renders"))
        .unwrap()
        .collect();
    assert_eq!(renders.len(), 5, "{}", text(&out));
    for entry in renders {
        let img = image::open(entry.unwrap().path()).unwrap();
        assert_eq!(img.width().max(img.height()), 128);
    }
    let again = radlab(&["demo"], tmp.path());
    assert!(text(&again).contains("Nothing new"), "{}", text(&again));
    let ls = radlab(&["ls", "--json"], tmp.path());
    let v: serde_json::Value = serde_json::from_slice(&ls.stdout).unwrap();
    assert_eq!(v["counts"]["instances"], 5);
}

#[test]
fn render_writes_png_and_webp_with_window_and_size() {
    let Some(corpus) = corpus("render_writes_png_and_webp") else {
        return;
    };
    let tmp = tempfile::tempdir().unwrap();
    let file = corpus.path("dicom/cxr/nema_wg04_RG1_J2KI_cr_chest_pa_mono1.dcm");
    let file = file.to_str().unwrap();
    let png = tmp.path().join("a.png");
    let out = radlab(
        &[
            "render",
            file,
            "-o",
            png.to_str().unwrap(),
            "--window",
            "8000,16000",
            "--size",
            "256",
        ],
        tmp.path(),
    );
    assert!(out.status.success(), "{}", text(&out));
    let img = image::open(&png).unwrap();
    assert_eq!((img.width(), img.height()), (241, 256));
    let webp = tmp.path().join("a.webp");
    let out = radlab(&["render", file, "-o", webp.to_str().unwrap()], tmp.path());
    assert!(out.status.success(), "{}", text(&out));
    let img = image::open(&webp).unwrap();
    assert_eq!((img.width(), img.height()), (1841, 1955));
}

#[test]
fn bad_input_gets_a_clear_error_naming_the_file_not_a_panic() {
    let tmp = tempfile::tempdir().unwrap();
    let junk = tmp.path().join("notes.dcm");
    std::fs::write(&junk, "hello").unwrap();
    let out = radlab(
        &["render", junk.to_str().unwrap(), "-o", "x.png"],
        tmp.path(),
    );
    assert_eq!(out.status.code(), Some(2));
    let msg = text(&out);
    assert!(
        msg.contains("notes.dcm") && msg.contains("not a DICOM file"),
        "{msg}"
    );
    assert!(!msg.contains("panicked"));
    let out = radlab(
        &["render", junk.to_str().unwrap(), "-o", "x.gif"],
        tmp.path(),
    );
    assert!(text(&out).contains(".png or .webp"), "{}", text(&out));
    let out = radlab(
        &[
            "render",
            junk.to_str().unwrap(),
            "-o",
            "x.png",
            "--window",
            "40",
        ],
        tmp.path(),
    );
    assert!(text(&out).contains("CENTER,WIDTH"), "{}", text(&out));
    let out = radlab(&["import", "/no/such/folder"], tmp.path());
    assert!(text(&out).contains("/no/such/folder: no such file or folder"));
}

#[test]
fn import_twice_over_the_corpus_says_the_second_run_added_nothing() {
    let Some(corpus) = corpus("import_twice_over_the_corpus") else {
        return;
    };
    let tmp = tempfile::tempdir().unwrap();
    let dicom = corpus.path("dicom");
    let first = radlab(&["import", dicom.to_str().unwrap(), "--json"], tmp.path());
    assert!(first.status.success(), "{}", text(&first));
    let summary: serde_json::Value = serde_json::from_slice(&first.stdout).unwrap();
    assert!(summary["imported"].as_u64().unwrap() >= 30);
    assert!(summary["quarantined"].as_u64().unwrap() >= 7);
    let second = radlab(&["import", dicom.to_str().unwrap()], tmp.path());
    let out = text(&second);
    assert!(out.contains("Nothing new"), "{out}");
    assert!(out.contains("imported                 0"), "{out}");
    let ls = radlab(&["ls", "--quarantine"], tmp.path());
    assert!(
        text(&ls).contains("undecodable_pixel_data"),
        "{}",
        text(&ls)
    );
}

#[test]
fn deid_writes_verified_outputs_and_verify_catches_a_raw_file() {
    let Some(corpus) = corpus("deid_and_verify") else {
        return;
    };
    let tmp = tempfile::tempdir().unwrap();
    let key = tmp.path().join("project.key");
    std::fs::write(&key, b"0123456789abcdef0123456789abcdef").unwrap();
    let input = corpus.path("dicom/cxr");
    let out = tmp.path().join("out");
    let key_arg = key.to_str().unwrap();
    let run = radlab(
        &[
            "deid",
            input.to_str().unwrap(),
            out.to_str().unwrap(),
            "--key-file",
            key_arg,
            "--option",
            "retain-modified-dates",
        ],
        tmp.path(),
    );
    assert!(run.status.success(), "{}", text(&run));
    assert!(
        text(&run).contains("5 de-identified, 0 routed to review, 0 failed"),
        "{}",
        text(&run)
    );
    let verify = |extra: &[&str]| {
        let mut args = vec![
            "verify",
            out.to_str().unwrap(),
            "--against",
            input.to_str().unwrap(),
            "--key-file",
            key_arg,
        ];
        args.extend_from_slice(extra);
        radlab(&args, tmp.path())
    };
    let ok = verify(&["--option", "retain-modified-dates"]);
    assert!(ok.status.success(), "{}", text(&ok));
    // Replace one output with its raw input: the verifier must fail and say where.
    let outputs: Vec<_> = common::files_under(&out);
    assert_eq!(outputs.len(), 5);
    let json = radlab(
        &[
            "deid",
            input.to_str().unwrap(),
            tmp.path().join("again").to_str().unwrap(),
            "--key-file",
            key_arg,
            "--option",
            "retain-modified-dates",
            "--json",
        ],
        tmp.path(),
    );
    let first: serde_json::Value =
        serde_json::from_str(text(&json).lines().next().unwrap()).unwrap();
    let raw_input = first["input"].as_str().unwrap();
    let target = out.join(
        Path::new(first["output"].as_str().unwrap())
            .strip_prefix(tmp.path().join("again"))
            .unwrap(),
    );
    std::fs::copy(raw_input, &target).unwrap();
    let bad = verify(&["--option", "retain-modified-dates"]);
    assert_eq!(bad.status.code(), Some(1), "{}", text(&bad));
    assert!(text(&bad).contains("LeakedValue"), "{}", text(&bad));
    // No key, no run: the error says what to do.
    let nokey = radlab(
        &[
            "deid",
            input.to_str().unwrap(),
            out.to_str().unwrap(),
            "--key-file",
            "/no/key",
        ],
        tmp.path(),
    );
    assert!(
        text(&nokey).contains("cannot read the key file /no/key"),
        "{}",
        text(&nokey)
    );
}

#[test]
fn vindr_preset_writes_md5_names_and_a_mapping_only_the_key_opens() {
    let Some(corpus) = corpus("vindr_preset_and_mapping") else {
        return;
    };
    let tmp = tempfile::tempdir().unwrap();
    let key = tmp.path().join("project.key");
    std::fs::write(&key, b"0123456789abcdef0123456789abcdef").unwrap();
    let input = corpus.path("dicom/cxr");
    let out = tmp.path().join("out");
    let map = tmp.path().join("private/map.bin");
    std::fs::create_dir_all(map.parent().unwrap()).unwrap();
    let args = |out: &Path, map: &Path| {
        vec![
            "deid".to_string(),
            input.to_str().unwrap().to_string(),
            out.to_str().unwrap().to_string(),
            "--profile".into(),
            "vindr-cxr".into(),
            "--key-file".into(),
            key.to_str().unwrap().to_string(),
            "--mapping".into(),
            map.to_str().unwrap().to_string(),
        ]
    };
    // The mapping may not travel inside the output.
    let inside = out.join("map.bin");
    let a = args(&out, &inside);
    let refused = radlab(
        &a.iter().map(String::as_str).collect::<Vec<_>>(),
        tmp.path(),
    );
    assert_eq!(refused.status.code(), Some(2), "{}", text(&refused));
    assert!(
        text(&refused).contains("outside the output folder"),
        "{}",
        text(&refused)
    );
    let a = args(&out, &map);
    let run = radlab(
        &a.iter().map(String::as_str).collect::<Vec<_>>(),
        tmp.path(),
    );
    assert!(run.status.success(), "{}", text(&run));
    let names: Vec<String> = common::files_under(&out)
        .iter()
        .map(|p| p.file_name().unwrap().to_string_lossy().to_string())
        .collect();
    assert_eq!(names.len(), 5);
    assert!(
        names.iter().all(|n| n.len() == 32 + 6
            && n.ends_with(".dicom")
            && n[..32].bytes().all(|b| b.is_ascii_hexdigit())),
        "{names:?}"
    );
    let show = radlab(
        &[
            "deid-mapping",
            map.to_str().unwrap(),
            "--key-file",
            key.to_str().unwrap(),
        ],
        tmp.path(),
    );
    assert!(show.status.success(), "{}", text(&show));
    let records: Vec<serde_json::Value> = String::from_utf8_lossy(&show.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(records.len(), 5);
    for r in &records {
        assert!(names.contains(&r["output"].as_str().unwrap().to_string()));
        assert!(r["sop_uid"].as_str().unwrap().starts_with("2.25."));
        assert!(!r["original_sop_uid"].as_str().unwrap().starts_with("2.25."));
    }
    let other_key = tmp.path().join("other.key");
    std::fs::write(&other_key, b"another key, 32 bytes long......").unwrap();
    let wrong = radlab(
        &[
            "deid-mapping",
            map.to_str().unwrap(),
            "--key-file",
            other_key.to_str().unwrap(),
        ],
        tmp.path(),
    );
    assert!(!wrong.status.success());
    assert!(text(&wrong).contains("cannot decrypt"), "{}", text(&wrong));
    let verify = radlab(
        &[
            "verify",
            out.to_str().unwrap(),
            "--against",
            input.to_str().unwrap(),
            "--profile",
            "vindr-cxr",
            "--key-file",
            key.to_str().unwrap(),
        ],
        tmp.path(),
    );
    assert!(verify.status.success(), "{}", text(&verify));
}

#[test]
fn import_deid_catalogues_only_de_identified_objects_and_routes_ultrasound_to_review() {
    let Some(corpus) = corpus("import_deid") else {
        return;
    };
    let tmp = tempfile::tempdir().unwrap();
    let key = tmp.path().join("project.key");
    std::fs::write(&key, b"0123456789abcdef0123456789abcdef").unwrap();
    let review = tmp.path().join("review.txt");
    let input = corpus.path("dicom/other");
    let run = radlab(
        &[
            "import",
            input.to_str().unwrap(),
            "--deid",
            "annex-e-basic",
            "--key-file",
            key.to_str().unwrap(),
            "--review-list",
            review.to_str().unwrap(),
        ],
        tmp.path(),
    );
    assert!(run.status.success(), "{}", text(&run));
    let routed = std::fs::read_to_string(&review).unwrap();
    assert_eq!(routed.lines().count(), 2, "{routed}");
    assert!(routed.lines().all(|l| l.contains("_us")), "{routed}");
    let ls = radlab(&["ls", "--json"], tmp.path());
    let v: serde_json::Value = serde_json::from_slice(&ls.stdout).unwrap();
    let instances = v["instances"].as_array().unwrap();
    assert!(instances.len() >= 20, "{}", text(&ls));
    // Catalogued from the staging copy, which is gone: no original path is kept.
    for i in instances {
        let src = i["source_path"].as_str().unwrap();
        assert!(src.contains(".deid-staging-"), "{src}");
    }
    assert!(std::fs::read_dir(tmp.path()).unwrap().all(|e| {
        !e.unwrap()
            .file_name()
            .to_string_lossy()
            .starts_with(".deid-staging")
    }));
    // Without a key, --deid refuses and says how to give one.
    let nokey = Command::new(env!("CARGO_BIN_EXE_radlab"))
        .args([
            "import",
            input.to_str().unwrap(),
            "--deid",
            "annex-e-basic",
            "--data-dir",
        ])
        .arg(tmp.path())
        .env_remove("RADLAB_DEID_KEY_FILE")
        .output()
        .unwrap();
    assert!(text(&nokey).contains("--key-file"), "{}", text(&nokey));
}

#[test]
fn eval_scores_a_submission_and_refuses_images_outside_the_ground_truth() {
    let Some(corpus) = corpus("eval_cli") else {
        return;
    };
    let tmp = tempfile::tempdir().unwrap();
    let gt_path = corpus.path("annotations/vinbigdata/train.csv");
    let rows =
        radlab_labels::kaggle::read_train_csv(&std::fs::read(&gt_path).unwrap()[..], "train.csv")
            .unwrap();
    // Reader R9's boxes as a submission, scored against every reader's rows.
    let pred: Vec<radlab_labels::Annotation> = rows
        .iter()
        .filter(|r| r.reader.as_deref() == Some("R9"))
        .enumerate()
        .map(|(i, r)| radlab_labels::Annotation {
            reader: None,
            score: Some(1.0 - (i % 100) as f64 / 100.0),
            ..r.clone()
        })
        .collect();
    let sub = tmp.path().join("submission.csv");
    let mut bytes = Vec::new();
    radlab_labels::kaggle::write_submission(&mut bytes, &pred).unwrap();
    std::fs::write(&sub, &bytes).unwrap();
    let out = radlab(
        &[
            "eval",
            "--gt",
            gt_path.to_str().unwrap(),
            "--pred",
            sub.to_str().unwrap(),
            "--json",
        ],
        tmp.path(),
    );
    assert!(out.status.success(), "{}", text(&out));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let pred_back = radlab_labels::kaggle::read_submission(&bytes[..], "submission.csv").unwrap();
    let expected = radlab_metrics::voc_map(&radlab_labels::KAGGLE_CLASSES, &rows, &pred_back, 0.4);
    assert!((v["voc"]["map"].as_f64().unwrap() - expected.map).abs() < 1e-12);
    let auc = v["no_finding_auroc"]["auc"].as_f64().unwrap();
    assert!(auc > 0.5 && auc <= 1.0, "{auc}");
    assert!(expected.map > 0.1 && expected.map < 1.0, "{}", expected.map);
    let table = radlab(
        &[
            "eval",
            "--gt",
            gt_path.to_str().unwrap(),
            "--pred",
            sub.to_str().unwrap(),
        ],
        tmp.path(),
    );
    assert!(
        text(&table).contains("mAP over the 15 classes"),
        "{}",
        text(&table)
    );
    // Predictions for images the ground truth does not have: a clear error.
    let test_sub = corpus.path("annotations/predictions/sample_submission.csv");
    let bad = radlab(
        &[
            "eval",
            "--gt",
            gt_path.to_str().unwrap(),
            "--pred",
            test_sub.to_str().unwrap(),
        ],
        tmp.path(),
    );
    assert_eq!(bad.status.code(), Some(2));
    assert!(
        text(&bad).contains("is not in the ground truth"),
        "{}",
        text(&bad)
    );
}

/// A small Kaggle train.csv: image A with two nodules, B with a cardiomegaly, C normal.
const EVAL_GT: &str = "image_id,class_name,class_id,rad_id,x_min,y_min,x_max,y_max
A,Nodule/Mass,8,R1,10.0,10.0,50.0,50.0
A,Nodule/Mass,8,R1,100.0,100.0,140.0,140.0
B,Cardiomegaly,3,R1,500.0,600.0,900.0,800.0
C,No finding,14,R1,,,,
";

fn eval_files(dir: &Path, sub: &str) -> (String, String) {
    let gt = dir.join("gt.csv");
    let pred = dir.join("sub.csv");
    std::fs::write(&gt, EVAL_GT).unwrap();
    std::fs::write(&pred, sub).unwrap();
    (
        gt.to_str().unwrap().to_string(),
        pred.to_str().unwrap().to_string(),
    )
}

#[test]
fn eval_reports_coco_froc_auroc_kaggle_compat_and_an_html_report() {
    let tmp = tempfile::tempdir().unwrap();
    // Duplicates, a zero-area box, a box reaching outside the image, tied scores.
    let (gt, pred) = eval_files(
        tmp.path(),
        "image_id,PredictionString
A,8 0.9 10 10 50 50 8 0.9 10 10 50 50 8 0.5 100 100 100 140 8 0.5 95 95 145 145
B,3 0.8 -20 600 900 800 8 0.3 0 0 5 5
C,14 0.7 0 0 1 1
",
    );
    let html = tmp.path().join("report.html");
    let out = radlab(
        &[
            "eval",
            "--gt",
            &gt,
            "--pred",
            &pred,
            "--kaggle-compat",
            "--json",
            "--html",
            html.to_str().unwrap(),
        ],
        tmp.path(),
    );
    assert!(out.status.success(), "{}", text(&out));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let rows = radlab_labels::kaggle::read_train_csv(EVAL_GT.as_bytes(), "gt.csv").unwrap();
    let preds =
        radlab_labels::kaggle::read_submission(&std::fs::read(&pred).unwrap()[..], "sub.csv")
            .unwrap();
    let voc = radlab_metrics::voc_map(&radlab_labels::KAGGLE_CLASSES, &rows, &preds, 0.4);
    assert!((v["voc"]["map"].as_f64().unwrap() - voc.map).abs() < 1e-12);
    // Nodules: TP, duplicate FP, zero-area FP, TP; Cardiomegaly (box past the left edge,
    // scored as given): TP; No finding: TP.
    assert_eq!(v["voc"]["classes"][8]["true_positives"], 2);
    assert_eq!(v["voc"]["classes"][3]["true_positives"], 1);
    let images = ["A", "B", "C"];
    let coco = radlab_metrics::coco_eval(
        &radlab_labels::KAGGLE_CLASSES,
        &images,
        &rows,
        &preds,
        &radlab_metrics::CocoParams::default(),
    );
    assert!((v["coco"]["stats"]["ap"].as_f64().unwrap() - coco.stats.ap).abs() < 1e-12);
    assert_eq!(v["froc"]["overall"]["ground_truth"], 3);
    assert_eq!(v["froc"]["images"], 3);
    assert!(v["kaggle_compat"]["map"].as_f64().is_some());
    let aurocs = v["auroc"].as_array().unwrap();
    let nf = aurocs.iter().find(|a| a["label"] == "No finding").unwrap();
    assert_eq!(nf["auc"], 1.0);
    assert_eq!(v["no_finding_auroc"]["auc"], 1.0);
    // A label present on every image or on none: not computed, with the reason.
    let atel = aurocs.iter().find(|a| a["label"] == "Atelectasis").unwrap();
    assert!(atel["skipped"].as_str().unwrap().contains("both classes"));
    let page = std::fs::read_to_string(&html).unwrap();
    assert!(page.starts_with("<!DOCTYPE html>"));
    assert!(page.matches("<svg").count() >= 4, "PR, FROC and ROC charts");
    assert!(!page.contains("<script"), "no JavaScript");
    assert!(page.contains("kaggle-compat"));
    // The table names every section.
    let table = radlab(&["eval", "--gt", &gt, "--pred", &pred], tmp.path());
    let t = text(&table);
    for section in [
        "PASCAL VOC",
        "COCO",
        "FROC",
        "AUROC",
        "mAP over the 3 classes",
    ] {
        assert!(t.contains(section), "{section}: {t}");
    }
    // --metrics selects.
    let only = radlab(
        &[
            "eval",
            "--gt",
            &gt,
            "--pred",
            &pred,
            "--metrics",
            "voc",
            "--json",
        ],
        tmp.path(),
    );
    let v: serde_json::Value = serde_json::from_slice(&only.stdout).unwrap();
    assert!(v.get("voc").is_some() && v.get("coco").is_none() && v.get("froc").is_none());
}

#[test]
fn eval_edge_cases_no_predictions_unknown_images_and_coco_json() {
    let tmp = tempfile::tempdir().unwrap();
    // No predictions at all: every AP is 0, nothing fails.
    let (gt, pred) = eval_files(tmp.path(), "image_id,PredictionString\nA,\nB,\nC,\n");
    let out = radlab(
        &["eval", "--gt", &gt, "--pred", &pred, "--json"],
        tmp.path(),
    );
    assert!(out.status.success(), "{}", text(&out));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["voc"]["map"], 0.0);
    assert_eq!(v["coco"]["stats"]["ap"], 0.0);
    assert_eq!(v["froc"]["overall"]["cpm"], 0.0);
    // An image the ground truth lacks: exit 2, naming the file and the image.
    let (gt, pred) = eval_files(tmp.path(), "image_id,PredictionString\nZZZ,8 0.5 1 1 2 2\n");
    let bad = radlab(&["eval", "--gt", &gt, "--pred", &pred], tmp.path());
    assert_eq!(bad.status.code(), Some(2));
    assert!(
        text(&bad).contains("sub.csv")
            && text(&bad).contains("image ZZZ is not in the ground truth"),
        "{}",
        text(&bad)
    );
    // COCO dataset and results JSON.
    let dataset = r#"{"images":[{"id":1,"file_name":"A.png","width":1000,"height":1000},{"id":2,"file_name":"B.png","width":1000,"height":1000}],
        "annotations":[{"id":1,"image_id":1,"category_id":1,"bbox":[10,10,40,40],"area":1600,"iscrowd":0},
                       {"id":2,"image_id":2,"category_id":2,"bbox":[500,600,400,200],"area":80000,"iscrowd":0}],
        "categories":[{"id":1,"name":"Nodule/Mass"},{"id":2,"name":"Cardiomegaly"}]}"#;
    let results = r#"[{"image_id":1,"category_id":1,"bbox":[10,10,40,40],"score":0.9},
                      {"image_id":2,"category_id":2,"bbox":[500,600,400,200],"score":0.8}]"#;
    let gt_json = tmp.path().join("gt.json");
    let res_json = tmp.path().join("results.json");
    std::fs::write(&gt_json, dataset).unwrap();
    std::fs::write(&res_json, results).unwrap();
    let out = radlab(
        &[
            "eval",
            "--gt",
            gt_json.to_str().unwrap(),
            "--pred",
            res_json.to_str().unwrap(),
            "--json",
        ],
        tmp.path(),
    );
    assert!(out.status.success(), "{}", text(&out));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["voc"]["map"], 1.0);
    assert!((v["coco"]["stats"]["ap"].as_f64().unwrap() - 1.0).abs() < 1e-12);
    assert_eq!(v["coco"]["classes"].as_array().unwrap().len(), 2);
    // COCO results against a CSV ground truth: refused, naming both files.
    let out = radlab(
        &["eval", "--gt", &gt, "--pred", res_json.to_str().unwrap()],
        tmp.path(),
    );
    assert_eq!(out.status.code(), Some(2));
    assert!(
        text(&out).contains("results.json") && text(&out).contains("gt.csv"),
        "{}",
        text(&out)
    );
    // COCO results naming an image the dataset lacks: the file, the result and the id.
    std::fs::write(
        &res_json,
        r#"[{"image_id":7,"category_id":1,"bbox":[1,1,2,2],"score":0.5}]"#,
    )
    .unwrap();
    let out = radlab(
        &[
            "eval",
            "--gt",
            gt_json.to_str().unwrap(),
            "--pred",
            res_json.to_str().unwrap(),
        ],
        tmp.path(),
    );
    assert_eq!(out.status.code(), Some(2));
    assert!(
        text(&out).contains("results.json") && text(&out).contains("image_id 7"),
        "{}",
        text(&out)
    );
}

#[test]
fn split_keeps_patients_whole_is_reproducible_and_refuses_bad_parts() {
    let Some(corpus) = corpus("split_cli") else {
        return;
    };
    let tmp = tempfile::tempdir().unwrap();
    let labels = corpus.path("annotations/vinbigdata/train.csv");
    let labels = labels.to_str().unwrap();
    // Synthetic patients: images in id order, two per patient.
    let mut ids: Vec<String> = std::fs::read_to_string(labels)
        .unwrap()
        .lines()
        .skip(1)
        .map(|l| l.split(',').next().unwrap().to_string())
        .collect::<std::collections::BTreeSet<_>>()
        .into_iter()
        .collect();
    ids.sort();
    let groups = tmp.path().join("groups.csv");
    let mut csv = String::from("image_id,patient_id\n");
    for (i, id) in ids.iter().enumerate() {
        csv.push_str(&format!("{id},P{}\n", i / 2));
    }
    std::fs::write(&groups, &csv).unwrap();
    let run = |extra: &[&str], out: &Path| {
        let mut args = vec![
            "split",
            "--labels",
            labels,
            "--groups",
            groups.to_str().unwrap(),
            "--out",
            out.to_str().unwrap(),
        ];
        args.extend_from_slice(extra);
        radlab(&args, tmp.path())
    };
    let a = tmp.path().join("a.csv");
    let out = run(&["--folds", "5", "--seed", "42"], &a);
    assert!(out.status.success(), "{}", text(&out));
    assert!(text(&out).contains("Cardiomegaly"), "{}", text(&out));
    let written = std::fs::read_to_string(&a).unwrap();
    let rows: Vec<(&str, &str)> = written
        .lines()
        .skip(1)
        .map(|l| l.split_once(',').unwrap())
        .collect();
    assert!(written.starts_with("image_id,fold\n"));
    assert_eq!(rows.len(), ids.len());
    let fold_of: std::collections::BTreeMap<&str, &str> = rows.iter().copied().collect();
    for pair in ids.chunks(2) {
        assert_eq!(
            fold_of[pair[0].as_str()],
            fold_of[pair[pair.len() - 1].as_str()]
        );
    }
    let record: serde_json::Value =
        serde_json::from_slice(&std::fs::read(tmp.path().join("a.json")).unwrap()).unwrap();
    assert_eq!(record["seed"], 42);
    assert_eq!(record["group_count"], ids.len().div_ceil(2));
    // Same seed, same bytes; another seed, another split.
    let b = tmp.path().join("b.csv");
    assert!(run(&["--folds", "5", "--seed", "42"], &b).status.success());
    assert_eq!(std::fs::read(&a).unwrap(), std::fs::read(&b).unwrap());
    assert!(run(&["--folds", "5", "--seed", "7"], &b).status.success());
    assert_ne!(std::fs::read(&a).unwrap(), std::fs::read(&b).unwrap());
    // Train/test.
    assert!(run(&["--test", "0.2"], &b).status.success());
    let tt = std::fs::read_to_string(&b).unwrap();
    assert!(tt.starts_with("image_id,split\n"));
    let test_share = tt.lines().filter(|l| l.ends_with(",test")).count() as f64 / ids.len() as f64;
    assert!((test_share - 0.2).abs() < 0.005, "{test_share}");
    // Bad parts and groups: exit 2, a message that says what to do.
    let bad = run(&["--parts", "train=0.7,test=0.2"], &b);
    assert_eq!(bad.status.code(), Some(2));
    assert!(text(&bad).contains("must sum to 1"), "{}", text(&bad));
    let bad = run(&["--folds", "1"], &b);
    assert_eq!(bad.status.code(), Some(2));
    assert!(text(&bad).contains("at least 2"), "{}", text(&bad));
    std::fs::write(&groups, csv.lines().take(10).collect::<Vec<_>>().join("\n")).unwrap();
    let bad = run(&["--folds", "5"], &b);
    assert_eq!(bad.status.code(), Some(2));
    assert!(text(&bad).contains("has no group"), "{}", text(&bad));
}

#[test]
fn split_takes_groups_from_the_catalog() {
    let Some(corpus) = corpus("split_group_by_catalog") else {
        return;
    };
    let tmp = tempfile::tempdir().unwrap();
    let input = corpus.path("dicom/cxr");
    let import = radlab(&["import", input.to_str().unwrap()], tmp.path());
    assert!(import.status.success(), "{}", text(&import));
    let ls = radlab(&["ls", "--json"], tmp.path());
    let v: serde_json::Value = serde_json::from_slice(&ls.stdout).unwrap();
    let sops: Vec<String> = v["instances"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["sop_instance_uid"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(sops.len(), 5);
    // Labels keyed by SOP Instance UID for some images, by VinDr name for the others.
    let mut csv = String::from("image_id,class_name,class_id,rad_id,x_min,y_min,x_max,y_max\n");
    for (k, sop) in sops.iter().enumerate() {
        let key = if k % 2 == 0 {
            sop.clone()
        } else {
            radlab_labels::export::vindr_image_id(sop)
        };
        csv.push_str(&format!("{key},No finding,14,R1,,,,\n"));
    }
    let labels = tmp.path().join("labels.csv");
    std::fs::write(&labels, csv).unwrap();
    let out_csv = tmp.path().join("split.csv");
    let out = radlab(
        &[
            "split",
            "--labels",
            labels.to_str().unwrap(),
            "--group-by",
            "study",
            "--test",
            "0.4",
            "--out",
            out_csv.to_str().unwrap(),
        ],
        tmp.path(),
    );
    assert!(out.status.success(), "{}", text(&out));
    let written = std::fs::read_to_string(&out_csv).unwrap();
    assert_eq!(written.lines().count(), 6, "{written}");
    let record: serde_json::Value =
        serde_json::from_slice(&std::fs::read(tmp.path().join("split.json")).unwrap()).unwrap();
    assert_eq!(record["groups"], "catalog by study");
    // An image the catalog does not hold.
    std::fs::write(
        &labels,
        "image_id,class_name,class_id,rad_id,x_min,y_min,x_max,y_max\n1.2.3,No finding,14,R1,,,,\n",
    )
    .unwrap();
    let out = radlab(
        &[
            "split",
            "--labels",
            labels.to_str().unwrap(),
            "--group-by",
            "patient",
            "--folds",
            "2",
            "--out",
            out_csv.to_str().unwrap(),
        ],
        tmp.path(),
    );
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    assert!(text(&out).contains("not in the catalog"), "{}", text(&out));
}

/// A key file left in the environment (RADLAB_DEID_KEY_FILE, for the de-identifying
/// commands) does not stop a plain import: the key is read only with --deid.
#[test]
fn a_key_in_the_environment_does_not_block_a_plain_import() {
    let tmp = tempfile::tempdir().unwrap();
    let key = tmp.path().join("project.key");
    std::fs::write(&key, [7u8; 32]).unwrap();
    let file = radlab_testkit::repo_root().join("demo/nih_cxr14_dx_sc_implicit_covid0000.dcm");
    let out = common::command()
        .args(["import"])
        .arg(&file)
        .arg("--data-dir")
        .arg(tmp.path().join("data"))
        .env("RADLAB_DEID_KEY_FILE", &key)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", common::text(&out));
}
