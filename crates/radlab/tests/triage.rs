//! `radlab triage` (rules on metadata, and the network on pixels) over the shared corpus:
//! the rules pass every chest radiograph of `dicom/cxr` and `dicom/cxr_derived`, and no
//! frontal radiograph is rejected without a stated reason; every object of `dicom/other`
//! (other modalities, body parts, colour, tiny, multi-frame, radiotherapy) is rejected with a
//! reason naming the attribute; the broken files of `dicom/invalid` get a verdict, not a
//! crash; pictures are judged too; bad pictures get a reason; the output is the same bytes on
//! every run; `--fix-orientation` writes an upright rendering and leaves the original alone.

mod common;

/// Of the 11 frontal radiographs of `dicom/cxr` and `dicom/cxr_derived`, how many the shipped
/// network keeps at least (docs/triage-report.md): a guard against a worse network.
const MIN_FRONTAL_KEPT: usize = 9;

/// A frontal radiograph of the training part of the corpus, for `--fix-orientation`.
const FIX_ORIENTATION_EXAMPLE: &str = "png/cxr/openi_iu/106_IM-0042-1001.png";

use std::collections::BTreeMap;
use std::path::Path;

use common::{command, text};

fn verdicts(paths: &[&Path]) -> (Vec<u8>, BTreeMap<String, serde_json::Value>) {
    verdicts_with(&[], paths)
}

fn verdicts_with(
    options: &[&str],
    paths: &[&Path],
) -> (Vec<u8>, BTreeMap<String, serde_json::Value>) {
    let out = command()
        .arg("triage")
        .arg("--json")
        .args(options)
        .args(paths)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out));
    let mut by_name = BTreeMap::new();
    for line in String::from_utf8(out.stdout.clone()).unwrap().lines() {
        let v: serde_json::Value = serde_json::from_str(line).unwrap();
        let path = v["path"].as_str().unwrap().to_string();
        by_name.insert(path, v);
    }
    (out.stdout, by_name)
}

#[test]
fn the_corpus_radiographs_pass_and_every_other_object_is_rejected_with_a_reason() {
    const TEST: &str =
        "the_corpus_radiographs_pass_and_every_other_object_is_rejected_with_a_reason";
    let Some(corpus) = radlab_testkit::corpus(TEST) else {
        return;
    };
    let folders = [
        "dicom/cxr",
        "dicom/cxr_derived",
        "dicom/other",
        "dicom/invalid",
    ]
    .map(|f| corpus.path(f));
    let paths: Vec<&Path> = folders.iter().map(|p| p.as_path()).collect();
    // The rules alone pass every chest radiograph.
    let (_, rules) = verdicts_with(&["--rules-only"], &paths);
    let (bytes, all) = verdicts(&paths);
    let under = |folder: &str| -> Vec<&serde_json::Value> {
        let prefix = corpus.path(folder).display().to_string();
        all.iter()
            .filter(|(p, _)| p.starts_with(&prefix))
            .map(|(_, v)| v)
            .collect()
    };
    let cxr: Vec<_> = ["dicom/cxr", "dicom/cxr_derived"]
        .iter()
        .flat_map(|f| under(f))
        .collect();
    assert!(cxr.len() >= 10, "{}", cxr.len());
    let mut kept = 0;
    for v in &cxr {
        assert_eq!(v["kind"], "dicom", "{v}");
        assert_eq!(rules[v["path"].as_str().unwrap()]["valid"], true, "{v}");
        assert!(v.get("class").is_none() || v["class"].is_string());
        assert!(v["probability"].as_f64().is_some(), "{v}");
        if v["valid"] == true {
            kept += 1;
        } else {
            // Never rejected without a stated reason.
            let findings = v["findings"].as_array().unwrap();
            assert!(!findings.is_empty(), "{v}");
            assert!(
                findings
                    .iter()
                    .all(|f| f["reason"].as_str().unwrap().contains("the network sees")),
                "{v}"
            );
        }
    }
    // The shipped network keeps most of them (docs/triage-report.md lists each).
    assert!(kept >= MIN_FRONTAL_KEPT, "{kept} of {} kept", cxr.len());
    let other = under("dicom/other");
    assert!(other.len() >= 25, "{}", other.len());
    for v in &other {
        assert_eq!(v["valid"], false, "{v}");
        let findings = v["findings"].as_array().unwrap();
        assert!(!findings.is_empty(), "{v}");
        for f in findings {
            assert!(!f["code"].as_str().unwrap().is_empty());
            assert!(f["reason"].as_str().unwrap().len() > 10, "{f}");
        }
    }
    // Named rules on objects we know: a hand by its body part, a hip, a colour photograph,
    // a CT by its modality, a structured report as no image.
    let codes = |name: &str| -> Vec<String> {
        let (_, v) = all
            .iter()
            .find(|(p, _)| p.ends_with(name))
            .unwrap_or_else(|| panic!("{name} not triaged"));
        v["findings"]
            .as_array()
            .unwrap()
            .iter()
            .map(|f| f["code"].as_str().unwrap().to_string())
            .collect()
    };
    assert!(codes("kakadu_cr_hand_pa_j2k.dcm").contains(&"body-part".to_string()));
    assert!(codes("nema_wg04_RG2_JLSN_cr_hip.dcm").contains(&"body-part".to_string()));
    assert!(codes("fodicom_JPEGwithIcon_xc_photo.dcm").contains(&"colour".to_string()));
    assert!(codes("pydicom_CT_small.dcm").contains(&"modality".to_string()));
    assert!(codes("pydicom_test-SR.dcm").contains(&"not-an-image".to_string()));
    // Broken files: a verdict each, with the parser's reason.
    let invalid = under("dicom/invalid");
    assert!(invalid.len() >= 3);
    for v in &invalid {
        assert_eq!(v["valid"], false, "{v}");
    }
    assert!(invalid.iter().any(|v| v["kind"] == "unreadable"));
    // Deterministic: the same bytes again.
    let (again, _) = verdicts(&paths);
    assert_eq!(bytes, again);
}

#[test]
fn pictures_are_judged_and_a_missing_path_is_an_error() {
    const TEST: &str = "pictures_are_judged_and_a_missing_path_is_an_error";
    let Some(corpus) = radlab_testkit::corpus(TEST) else {
        return;
    };
    let pictures = corpus.path("png/cxr/figure1");
    let (_, all) = verdicts(&[pictures.as_path()]);
    let mut judged = 0;
    for (path, v) in &all {
        if path.ends_with(".csv") {
            // A folder's other files get a verdict too: not an image.
            assert_eq!(v["kind"], "unreadable", "{v}");
            continue;
        }
        assert_eq!(v["kind"], "picture", "{v}");
        // No metadata: the network judges them.
        assert!(v["class"].is_string(), "{v}");
        assert!(
            v["valid"] == true || !v["findings"].as_array().unwrap().is_empty(),
            "{v}"
        );
        judged += 1;
    }
    assert!(judged >= 5, "{judged}");
    let out = command()
        .args(["triage", "/no/such/file.dcm"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    assert!(text(&out).contains("/no/such/file.dcm"), "{}", text(&out));
}

#[test]
fn a_project_is_triaged_from_the_store_and_an_overrule_survives_a_new_run() {
    const TEST: &str = "a_project_is_triaged_from_the_store_and_an_overrule_survives_a_new_run";
    let Some(corpus) = radlab_testkit::corpus(TEST) else {
        return;
    };
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    let hand = corpus.path("dicom/other/kakadu_cr_hand_pa_j2k.dcm");
    let chest = corpus.path("dicom/cxr/siim_acr_cr_chest_pa_jpeg_baseline.dcm");
    // A frontal radiograph turned 90 degrees, imported as a picture (wrapped in DICOM).
    let original = image::open(corpus.path(FIX_ORIENTATION_EXAMPLE))
        .unwrap()
        .to_luma8();
    let turned = tmp.path().join("turned.png");
    image::imageops::rotate90(&original).save(&turned).unwrap();
    let out = common::radlab(
        &[
            "import",
            hand.to_str().unwrap(),
            chest.to_str().unwrap(),
            turned.to_str().unwrap(),
        ],
        &data,
    );
    assert!(out.status.success(), "{}", text(&out));
    let url = format!("sqlite://{}", data.join("catalog.db").display());
    let rt = tokio::runtime::Runtime::new().unwrap();
    let catalog = rt.block_on(radlab_store::Catalog::open(&url)).unwrap();
    rt.block_on(async {
        catalog.create_project("p", "vindr-cxr").await.unwrap();
        catalog
            .add_project_images("p", &radlab_store::ImageSelection::All, None, "train")
            .await
            .unwrap();
    });
    let run = || {
        let out = common::radlab(
            &["triage", "--project", "p", "--json", "--fix-orientation"],
            &data,
        );
        assert!(out.status.success(), "{}", text(&out));
        String::from_utf8(out.stdout)
            .unwrap()
            .lines()
            .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap())
            .collect::<Vec<_>>()
    };
    let blob_files = || -> Vec<(std::path::PathBuf, Vec<u8>)> {
        common::files_under(&data.join("blobs"))
            .into_iter()
            .map(|p| {
                let bytes = std::fs::read(&p).unwrap();
                (p, bytes)
            })
            .collect()
    };
    let stored_before = blob_files();
    let first = run();
    assert_eq!(first.len(), 3);
    let (turned_verdicts, first): (Vec<_>, Vec<_>) = first
        .into_iter()
        .partition(|v| v["class"] == "frontal" && v["orientation"] == "90");
    // The turned radiograph: seen as frontal, rotated 90 degrees, rejected for that, and an
    // upright rendering stored with its verdict: a PNG of exactly the stored image's displayed
    // pixels, turned upright.
    // Every blob stored before is still there with the same bytes.
    assert_eq!(turned_verdicts.len(), 1, "{turned_verdicts:?} {first:?}");
    let t = &turned_verdicts[0];
    assert_eq!(t["class"], "frontal", "{t}");
    assert_eq!(t["valid"], false, "{t}");
    // A picture wrapped at import is a secondary capture (Modality OT): the rules say so too.
    let codes: Vec<&str> = t["findings"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["code"].as_str().unwrap())
        .collect();
    assert!(codes.contains(&"orientation"), "{t}");
    let upright_blob = t["upright_blob"].as_str().unwrap();
    assert_eq!(upright_blob.len(), 64, "{t}");
    let blobs = radlab_store::BlobStore::local(data.join("blobs")).unwrap();
    let png = rt.block_on(blobs.get(upright_blob)).unwrap();
    let fixed = image::load_from_memory(&png).unwrap().to_luma8();
    assert_eq!(fixed.dimensions(), original.dimensions());
    // The stored object's rendering as displayed, turned back: the same pixels.
    let sop = t["sop_instance_uid"].as_str().unwrap();
    let id = rt
        .block_on(catalog.instance_identity(sop))
        .unwrap()
        .unwrap();
    let stored = rt.block_on(blobs.get(&id.blob_hash)).unwrap();
    let shown = radlab_triage::preprocess::grey_of_dicom(
        &radlab_dicom::DicomFile::from_bytes(&stored).unwrap(),
    )
    .unwrap();
    let back = shown.oriented(radlab_triage::Orientation::new(270, false));
    assert_eq!((back.width, back.height), fixed.dimensions());
    assert!(
        fixed.as_raw() == &back.pixels,
        "not the stored image's pixels turned upright"
    );
    let stored_after = blob_files();
    assert_eq!(stored_after.len(), stored_before.len() + 1);
    for kept in &stored_before {
        assert!(stored_after.contains(kept), "{} changed", kept.0.display());
    }
    let rejected: Vec<_> = first.iter().filter(|v| v["valid"] == false).collect();
    assert_eq!(rejected.len(), 1, "{first:?}");
    assert_eq!(rejected[0]["findings"][0]["code"], "body-part");
    // The network looked too: its name, class, probability and orientation are recorded; both
    // other images are upright, so no upright rendering is stored for them.
    for v in &first {
        assert!(
            v["model"]
                .as_str()
                .unwrap()
                .starts_with("rules + radlab-cnn blake3:"),
            "{v}"
        );
        assert!(!v["class"].as_str().unwrap().is_empty(), "{v}");
        assert!(
            v["probability"].as_str().unwrap().parse::<f64>().is_ok(),
            "{v}"
        );
        assert_eq!(v["upright_blob"], "", "{v}");
    }
    let image = rejected[0]["image_id"].as_str().unwrap().to_string();
    rt.block_on(catalog.overrule_triage("p", &image, Some(true), "admin"))
        .unwrap();
    let second = run();
    assert_eq!(second.len(), 3);
    // The same rendering again: content-addressed, nothing new stored.
    assert_eq!(blob_files(), stored_after);
    let again = second
        .iter()
        .find(|v| v["image_id"] == image.as_str())
        .unwrap();
    assert_eq!(again["valid"], false);
    assert_eq!(again["overruled"], true);
    // An unknown project is a clear error.
    let out = common::radlab(&["triage", "--project", "nope"], &data);
    assert_eq!(out.status.code(), Some(2));
    assert!(text(&out).contains("no project nope"), "{}", text(&out));
    rt.block_on(catalog.close());
}

/// Bad pictures (colour, tiny, huge, broken) and a file that is no image get a verdict with a
/// reason, never a crash; the same bytes on a second run. Needs no corpus.
#[test]
fn bad_input_gets_a_verdict_with_a_reason() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let colour = image::RgbImage::from_fn(320, 300, |x, y| {
        image::Rgb([(x % 256) as u8, (y % 256) as u8, ((x + y) % 256) as u8])
    });
    colour.save(dir.join("colour.png")).unwrap();
    image::GrayImage::from_pixel(12, 10, image::Luma([90]))
        .save(dir.join("tiny.png"))
        .unwrap();
    image::GrayImage::from_pixel(20_001, 2, image::Luma([90]))
        .save(dir.join("huge.png"))
        .unwrap();
    let mut broken = std::fs::read(dir.join("tiny.png")).unwrap();
    broken.truncate(40);
    std::fs::write(dir.join("broken.png"), &broken).unwrap();
    std::fs::write(dir.join("notes.txt"), "not an image\n").unwrap();
    let (bytes, all) = verdicts(&[dir]);
    let get = |name: &str| -> &serde_json::Value {
        all.iter()
            .find(|(p, _)| p.ends_with(name))
            .map(|(_, v)| v)
            .unwrap_or_else(|| panic!("{name}: no verdict"))
    };
    let codes = |name: &str| -> Vec<String> {
        get(name)["findings"]
            .as_array()
            .unwrap()
            .iter()
            .map(|f| f["code"].as_str().unwrap().to_string())
            .collect()
    };
    for name in [
        "colour.png",
        "tiny.png",
        "huge.png",
        "broken.png",
        "notes.txt",
    ] {
        let v = get(name);
        assert_eq!(v["valid"], false, "{v}");
        for f in v["findings"].as_array().unwrap() {
            assert!(f["reason"].as_str().unwrap().len() > 10, "{f}");
        }
    }
    assert!(codes("colour.png").contains(&"colour".to_string()));
    assert!(codes("tiny.png").contains(&"size".to_string()));
    assert_eq!(codes("huge.png"), ["undecodable-pixels"]);
    assert!(
        get("huge.png")["findings"][0]["reason"]
            .as_str()
            .unwrap()
            .contains("20001 x 2")
    );
    assert_eq!(codes("broken.png"), ["undecodable-pixels"]);
    assert_eq!(get("notes.txt")["kind"], "unreadable");
    // The network looked at the pictures it could decode.
    assert!(get("colour.png")["class"].is_string());
    assert!(get("broken.png").get("class").is_none());
    let (again, _) = verdicts(&[dir]);
    assert_eq!(bytes, again);
}

/// A frontal radiograph turned 90 degrees: the network says so, and `--fix-orientation`
/// writes an upright PNG with exactly the original's pixels; the input file is untouched and
/// an upright image gets no rendering.
#[test]
fn fix_orientation_writes_an_upright_rendering_and_keeps_the_original() {
    const TEST: &str = "fix_orientation_writes_an_upright_rendering_and_keeps_the_original";
    let Some(corpus) = radlab_testkit::corpus(TEST) else {
        return;
    };
    let tmp = tempfile::tempdir().unwrap();
    let original = image::open(corpus.path(FIX_ORIENTATION_EXAMPLE))
        .unwrap()
        .to_luma8();
    let upright_in = tmp.path().join("upright.png");
    original.save(&upright_in).unwrap();
    let turned = tmp.path().join("turned.png");
    image::imageops::rotate90(&original).save(&turned).unwrap();
    let before = std::fs::read(&turned).unwrap();
    let out_dir = tmp.path().join("fixed");
    let option = format!("--fix-orientation={}", out_dir.display());
    let (_, all) = verdicts_with(&[&option], &[&turned, &upright_in]);
    let v = &all[&turned.display().to_string()];
    assert_eq!(v["class"], "frontal", "{v}");
    assert_eq!(v["orientation"], "90", "{v}");
    assert_eq!(v["valid"], false, "{v}");
    assert_eq!(v["findings"][0]["code"], "orientation", "{v}");
    let written = v["upright"].as_str().unwrap();
    assert_eq!(
        Path::new(written),
        out_dir.join("turned.png.upright.png").as_path()
    );
    let fixed = image::open(written).unwrap().to_luma8();
    assert_eq!(fixed.dimensions(), original.dimensions());
    assert!(
        fixed.as_raw() == original.as_raw(),
        "not the original's pixels"
    );
    assert_eq!(std::fs::read(&turned).unwrap(), before);
    let u = &all[&upright_in.display().to_string()];
    assert_eq!(u["orientation"], "0", "{u}");
    assert!(u.get("upright").is_none(), "{u}");
    assert!(!out_dir.join("upright.png.upright.png").exists());
}

#[test]
fn a_site_model_is_read_and_checked_before_anything_is_judged() {
    const TEST: &str = "a_site_model_is_read_and_checked_before_anything_is_judged";
    let dir = tempfile::tempdir().unwrap();
    let scans = dir.path().join("scans");
    std::fs::create_dir(&scans).unwrap();
    std::fs::write(scans.join("note.txt"), "not an image\n").unwrap();
    let garbage = dir.path().join("garbage.onnx");
    std::fs::write(&garbage, "this is not a model\n").unwrap();
    let garbage = garbage.to_str().unwrap();
    // Not a model: exit 2 with the file named, and nothing judged, for files and projects.
    let out = command()
        .args(["triage", "--model", garbage])
        .arg(&scans)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    assert!(out.stdout.is_empty(), "{}", text(&out));
    let said = text(&out);
    assert!(
        said.contains(garbage) && said.contains("not an ONNX model"),
        "{said}"
    );
    let data = dir.path().join("data");
    let out = common::radlab(&["triage", "--project", "nope", "--model", garbage], &data);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    assert!(text(&out).contains(garbage), "{}", text(&out));

    // A model of the contract (3 channels, side 96, the class only) is read and named.
    let Some(python) = radlab_testkit::reference_python_with(TEST, "onnx") else {
        return;
    };
    let model = dir.path().join("site.onnx");
    let made = std::process::Command::new(&python)
        .arg(radlab_testkit::repo_root().join("tests/reference/onnx_from_safetensors.py"))
        .args(["random", model.to_str().unwrap()])
        .args(["--channels", "3", "--side", "96", "--outputs", "4"])
        .output()
        .unwrap();
    assert!(made.status.success(), "{}", text(&made));
    image::GrayImage::from_fn(300, 280, |x, y| image::Luma([((x * y) % 251) as u8]))
        .save(scans.join("picture.png"))
        .unwrap();
    let out = command()
        .args(["triage", "--model", model.to_str().unwrap()])
        .arg(&scans)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out));
    assert!(
        String::from_utf8_lossy(&out.stderr)
            .contains("(rules + onnx site.onnx [N, 3, 96, 96] -> [N, 4])"),
        "{}",
        text(&out)
    );
    let out = command()
        .args(["triage", "--json", "--model", model.to_str().unwrap()])
        .arg(&scans)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out));
    let lines: Vec<serde_json::Value> = String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let note = lines
        .iter()
        .find(|l| l["path"].as_str().unwrap().ends_with("note.txt"))
        .unwrap();
    assert_eq!(note["kind"], "unreadable", "{note}");
    // The site's model judged the picture: a class, and no orientation (class outputs only).
    let picture = lines
        .iter()
        .find(|l| l["path"].as_str().unwrap().ends_with("picture.png"))
        .unwrap();
    assert!(picture["class"].is_string(), "{picture}");
    assert!(picture.get("orientation").is_none(), "{picture}");
}
