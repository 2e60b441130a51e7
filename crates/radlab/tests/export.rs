//! `radlab export`, driven as a user would, on the corpus's chest radiographs with
//! synthetic annotations keyed by each file's image id: the VinDr-CXR layout exactly, the
//! manifest's checksums, boxes scaled with PNG images (CSV, COCO, YOLO), de-identified
//! DICOMs that pass `radlab verify`, a version never overwritten, and nothing left behind
//! by a bad label file.

mod common;

use common::{radlab, text};

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::Output;

use radlab_labels::export::vindr_image_id;
use radlab_testkit::corpus;

/// One corpus image: its file, SOP Instance UID, VinDr name and size.
struct Image {
    path: PathBuf,
    sop: String,
    id: String,
    width: f64,
    height: f64,
}

fn images(dir: &Path, data: &Path) -> Vec<Image> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    files.sort();
    files
        .into_iter()
        .map(|path| {
            let out = radlab(&["info", path.to_str().unwrap()], data);
            assert!(out.status.success(), "{}", text(&out));
            let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
            let sop = v["instance"]["sop_instance_uid"]
                .as_str()
                .unwrap()
                .to_string();
            let image = &v["instance"]["image"];
            Image {
                id: vindr_image_id(&sop),
                sop,
                width: image["columns"].as_f64().unwrap(),
                height: image["rows"].as_f64().unwrap(),
                path,
            }
        })
        .collect()
}

/// The boxes of the synthetic annotations: reader, label, box (pixels), per image index.
fn boxes_of(k: usize, img: &Image) -> Vec<(&'static str, &'static str, [f64; 4])> {
    let (w, h) = (img.width, img.height);
    if k == 2 {
        return Vec::new(); // a normal image: three No finding rows
    }
    let b = [w * 0.25, h * 0.5, w * 0.75, h * 0.8];
    let near = [w * 0.26, h * 0.49, w * 0.74, h * 0.81];
    vec![
        ("R1", "Cardiomegaly", b),
        ("R2", "Cardiomegaly", near),
        (
            "R3",
            "Aortic enlargement",
            [w * 0.4, h * 0.2, w * 0.55, h * 0.4],
        ),
        ("R1", "Nodule/Mass", [10.5, 20.25, 60.0, 90.0]),
    ]
}

/// A Kaggle train.csv of synthetic readers: images 0, 1 keyed by SOP Instance UID, the rest
/// by VinDr name.
fn write_annotations(imgs: &[Image], path: &Path) {
    let mut csv = String::from("image_id,class_name,class_id,rad_id,x_min,y_min,x_max,y_max\n");
    for (k, img) in imgs.iter().enumerate() {
        let key = if k < 2 { &img.sop } else { &img.id };
        let boxes = boxes_of(k, img);
        if boxes.is_empty() {
            for r in ["R1", "R2", "R3"] {
                csv.push_str(&format!("{key},No finding,14,{r},,,,\n"));
            }
        }
        for (r, label, b) in boxes {
            let id = radlab_labels::kaggle_class_id(label).unwrap();
            csv.push_str(&format!(
                "{key},{label},{id},{r},{},{},{},{}\n",
                b[0], b[1], b[2], b[3]
            ));
        }
        if k != 2 {
            // R2 also said No finding on image 3: the consensus must drop it.
            if k == 3 {
                csv.push_str(&format!("{key},No finding,14,R2,,,,\n"));
            }
        }
    }
    std::fs::write(path, csv).unwrap();
}

/// Images 1 and 3 in test, the others in train (keyed by SOP Instance UID).
fn write_split(imgs: &[Image], path: &Path) {
    let mut csv = String::from("image_id,split\n");
    for (k, img) in imgs.iter().enumerate() {
        let part = if k == 1 || k == 3 { "test" } else { "train" };
        csv.push_str(&format!("{},{part}\n", img.sop));
    }
    std::fs::write(path, csv).unwrap();
}

fn relative(root: &Path) -> BTreeSet<String> {
    common::files_under(root)
        .iter()
        .map(|p| p.strip_prefix(root).unwrap().to_string_lossy().to_string())
        .collect()
}

struct Setup {
    tmp: tempfile::TempDir,
    imgs: Vec<Image>,
    input: PathBuf,
    key: PathBuf,
    annotations: PathBuf,
    split: PathBuf,
}

fn setup(test: &str) -> Option<Setup> {
    let corpus = corpus(test)?;
    let tmp = tempfile::tempdir().unwrap();
    let input = corpus.path("dicom/cxr");
    let imgs = images(&input, tmp.path());
    assert_eq!(imgs.len(), 5);
    let key = tmp.path().join("project.key");
    std::fs::write(&key, b"0123456789abcdef0123456789abcdef").unwrap();
    let annotations = tmp.path().join("train.csv");
    write_annotations(&imgs, &annotations);
    let split = tmp.path().join("split.csv");
    write_split(&imgs, &split);
    Some(Setup {
        tmp,
        imgs,
        input,
        key,
        annotations,
        split,
    })
}

impl Setup {
    fn export(&self, extra: &[&str], version: &str) -> Output {
        let out = self.tmp.path().join("datasets");
        let mut args = vec![
            "export",
            "--annotations",
            self.annotations.to_str().unwrap(),
            "--split",
            self.split.to_str().unwrap(),
            "--out",
            out.to_str().unwrap(),
            "--name",
            "cxr",
            "--dataset-version",
            version,
            "--key-file",
            self.key.to_str().unwrap(),
        ];
        args.extend_from_slice(extra);
        radlab(&args, &self.tmp.path().join("data"))
    }

    fn root(&self, version: &str) -> PathBuf {
        self.tmp
            .path()
            .join("datasets")
            .join(format!("cxr-{version}"))
    }
}

fn sha256(bytes: &[u8]) -> String {
    use sha2::Digest;
    sha2::Sha256::digest(bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

fn read_csv(path: &Path) -> (Vec<String>, Vec<Vec<String>>) {
    let mut r = csv::Reader::from_path(path).unwrap();
    let headers = r.headers().unwrap().iter().map(str::to_string).collect();
    let rows = r
        .records()
        .map(|rec| rec.unwrap().iter().map(str::to_string).collect())
        .collect();
    (headers, rows)
}

fn check_manifest(root: &Path) -> serde_json::Value {
    let manifest: serde_json::Value =
        serde_json::from_slice(&std::fs::read(root.join("manifest.json")).unwrap()).unwrap();
    let listed: BTreeSet<String> = manifest["files"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| {
            let path = f["path"].as_str().unwrap();
            let bytes = std::fs::read(root.join(path)).unwrap();
            assert_eq!(f["sha256"].as_str().unwrap(), sha256(&bytes), "{path}");
            assert_eq!(f["bytes"].as_u64().unwrap(), bytes.len() as u64, "{path}");
            path.to_string()
        })
        .collect();
    let mut on_disk = relative(root);
    on_disk.remove("manifest.json");
    assert_eq!(listed, on_disk, "the manifest lists every file but itself");
    manifest
}

#[test]
fn dicom_export_has_the_vindr_layout_verified_images_and_a_checked_manifest() {
    let Some(s) = setup("export_dicom") else {
        return;
    };
    let run = s.export(
        &["--images", s.input.to_str().unwrap(), "--coco", "--yolo"],
        "1.0",
    );
    assert!(run.status.success(), "{}", text(&run));
    let root = s.root("1.0");
    let ids: Vec<&str> = s.imgs.iter().map(|i| i.id.as_str()).collect();
    let part = |k: usize| if k == 1 || k == 3 { "test" } else { "train" };
    let mut expected: BTreeSet<String> = [
        "manifest.json",
        "annotations/annotations_train.csv",
        "annotations/annotations_test.csv",
        "annotations/image_labels_train.csv",
        "annotations/image_labels_test.csv",
        "coco/train.json",
        "coco/test.json",
        "labels/classes.txt",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    for (k, id) in ids.iter().enumerate() {
        expected.insert(format!("{}/{id}.dicom", part(k)));
        expected.insert(format!("labels/{}/{id}.txt", part(k)));
    }
    assert_eq!(relative(&root), expected);
    // Nothing else beside the version folder (no partial folders).
    let siblings: Vec<_> = std::fs::read_dir(root.parent().unwrap())
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(siblings.len(), 1, "{siblings:?}");

    let manifest = check_manifest(&root);
    assert_eq!(manifest["image_counts"]["train"], 3);
    assert_eq!(manifest["image_counts"]["test"], 2);
    assert_eq!(manifest["deidentification"]["profile"], "vindr-cxr");
    assert_eq!(manifest["format"], "dicom");
    assert_eq!(manifest["split"]["file"], "split.csv");
    assert_eq!(manifest["labels"]["train"], "per reader (rad_id)");
    assert!(manifest["created"].as_str().unwrap().contains('T'));
    assert_eq!(
        manifest["label_counts"]["train"]["Cardiomegaly"]["boxes"], 4,
        "{}",
        manifest["label_counts"]
    );
    // No original identifier anywhere in the manifest or the label files.
    let all_text: String = ["manifest.json", "annotations/annotations_train.csv"]
        .iter()
        .map(|p| std::fs::read_to_string(root.join(p)).unwrap())
        .collect();
    for img in &s.imgs {
        assert!(!all_text.contains(&img.sop), "an original SOP UID leaked");
    }

    // Train: per reader, with rad_id and the boxes as given.
    let (h, rows) = read_csv(&root.join("annotations/annotations_train.csv"));
    assert_eq!(
        h,
        [
            "image_id",
            "rad_id",
            "class_name",
            "x_min",
            "y_min",
            "x_max",
            "y_max"
        ]
    );
    assert_eq!(rows.len(), 4 + 4 + 3);
    let train_ids: BTreeSet<&str> = rows.iter().map(|r| r[0].as_str()).collect();
    assert_eq!(train_ids, BTreeSet::from([ids[0], ids[2], ids[4]]));
    let b = boxes_of(0, &s.imgs[0])[0].2;
    let first = rows
        .iter()
        .find(|r| r[0] == ids[0] && r[1] == "R1" && r[2] == "Cardiomegaly")
        .unwrap();
    for (i, v) in b.iter().enumerate() {
        assert_eq!(first[3 + i].parse::<f64>().unwrap(), *v);
    }
    // Test: fused, no rad_id; the two Cardiomegaly boxes became one; the stray No finding
    // of image 3 is gone.
    let (h, rows) = read_csv(&root.join("annotations/annotations_test.csv"));
    assert_eq!(
        h,
        ["image_id", "class_name", "x_min", "y_min", "x_max", "y_max"]
    );
    for id in [ids[1], ids[3]] {
        let of: Vec<&Vec<String>> = rows.iter().filter(|r| r[0] == id).collect();
        let labels: Vec<&str> = of.iter().map(|r| r[1].as_str()).collect();
        assert_eq!(
            labels.iter().filter(|l| **l == "Cardiomegaly").count(),
            1,
            "{of:?}"
        );
        assert!(!labels.contains(&"No finding"), "{of:?}");
        assert_eq!(of.len(), 3, "{of:?}");
    }
    let (h, rows) = read_csv(&root.join("annotations/image_labels_train.csv"));
    assert_eq!(&h[..3], ["image_id", "rad_id", "Aortic enlargement"]);
    assert_eq!(h.len(), 2 + 28);
    assert_eq!(rows.len(), 3 * 3, "three readers per train image");
    let normal = rows.iter().find(|r| r[0] == ids[2]).unwrap();
    assert_eq!(normal.last().unwrap(), "1", "No finding is the last column");
    let (h, rows) = read_csv(&root.join("annotations/image_labels_test.csv"));
    assert_eq!(h.len(), 1 + 28);
    assert_eq!(rows.len(), 2);

    // COCO and YOLO in DICOM pixels.
    let coco: serde_json::Value =
        serde_json::from_slice(&std::fs::read(root.join("coco/train.json")).unwrap()).unwrap();
    let im = coco["images"]
        .as_array()
        .unwrap()
        .iter()
        .find(|i| i["file_name"] == format!("{}.dicom", ids[0]))
        .unwrap();
    assert_eq!(im["width"].as_f64().unwrap(), s.imgs[0].width);
    assert_eq!(coco["categories"].as_array().unwrap().len(), 22);
    let yolo = std::fs::read_to_string(root.join(format!("labels/train/{}.txt", ids[2]))).unwrap();
    assert!(yolo.is_empty(), "a normal image has an empty label file");

    // Every output passes `radlab verify` against its original.
    for (k, img) in s.imgs.iter().enumerate() {
        let out = radlab(
            &[
                "verify",
                root.join(part(k)).to_str().unwrap(),
                "--against",
                img.path.to_str().unwrap(),
                "--profile",
                "vindr-cxr",
                "--key-file",
                s.key.to_str().unwrap(),
            ],
            s.tmp.path(),
        );
        assert!(out.status.success(), "{}: {}", img.id, text(&out));
        assert!(text(&out).contains("1 verified clean"), "{}", text(&out));
    }

    // The same version again is refused, and nothing changes.
    let before = std::fs::read(root.join("manifest.json")).unwrap();
    let again = s.export(&["--images", s.input.to_str().unwrap()], "1.0");
    assert_eq!(again.status.code(), Some(2), "{}", text(&again));
    assert!(text(&again).contains("already exists"), "{}", text(&again));
    assert_eq!(std::fs::read(root.join("manifest.json")).unwrap(), before);

    // From the catalog instead of a folder: the same de-identified bytes (same key).
    let data = s.tmp.path().join("data");
    let import = radlab(&["import", s.input.to_str().unwrap()], &data);
    assert!(import.status.success(), "{}", text(&import));
    let from_catalog = s.export(&[], "1.1");
    assert!(from_catalog.status.success(), "{}", text(&from_catalog));
    let other = s.root("1.1");
    for (k, id) in ids.iter().enumerate() {
        let name = format!("{}/{id}.dicom", part(k));
        assert_eq!(
            std::fs::read(root.join(&name)).unwrap(),
            std::fs::read(other.join(&name)).unwrap(),
            "{name}"
        );
    }
    // Labels from a project of the catalog instead of the file: the same dataset labels.
    let imported = radlab(
        &[
            "labels",
            "import",
            "--project",
            "cxr",
            "--create",
            s.annotations.to_str().unwrap(),
        ],
        &data,
    );
    assert!(imported.status.success(), "{}", text(&imported));
    let datasets = s.tmp.path().join("datasets");
    let from_project = radlab(
        &[
            "export",
            "--project",
            "cxr",
            "--split",
            s.split.to_str().unwrap(),
            "--out",
            datasets.to_str().unwrap(),
            "--name",
            "cxr",
            "--dataset-version",
            "1.2",
            "--key-file",
            s.key.to_str().unwrap(),
        ],
        &data,
    );
    assert!(from_project.status.success(), "{}", text(&from_project));
    for file in [
        "annotations_train.csv",
        "annotations_test.csv",
        "image_labels_train.csv",
    ] {
        let name = format!("annotations/{file}");
        assert_eq!(
            std::fs::read(other.join(&name)).unwrap(),
            std::fs::read(s.root("1.2").join(&name)).unwrap(),
            "{name}"
        );
    }
    let manifest: serde_json::Value =
        serde_json::from_slice(&std::fs::read(s.root("1.2").join("manifest.json")).unwrap())
            .unwrap();
    assert_eq!(manifest["labels"]["annotations_file"], "project cxr");
    // The staged originals were removed from the data folder.
    assert!(
        std::fs::read_dir(&data).unwrap().all(|e| !e
            .unwrap()
            .file_name()
            .to_string_lossy()
            .contains("export")),
    );
}

#[test]
fn png_export_scales_boxes_in_csv_coco_and_yolo() {
    let Some(s) = setup("export_png") else {
        return;
    };
    let run = s.export(
        &[
            "--images",
            s.input.to_str().unwrap(),
            "--format",
            "png",
            "--size",
            "256",
            "--coco",
            "--yolo",
            "--labels",
            "fused",
        ],
        "2.0",
    );
    assert!(run.status.success(), "{}", text(&run));
    let root = s.root("2.0");
    let manifest = check_manifest(&root);
    assert_eq!(manifest["format"], "png");
    let by_id: BTreeMap<&str, &serde_json::Value> = manifest["images"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| (i["image_id"].as_str().unwrap(), i))
        .collect();
    let part = |k: usize| if k == 1 || k == 3 { "test" } else { "train" };
    let (_, train_rows) = read_csv(&root.join("annotations/annotations_train.csv"));
    let coco: serde_json::Value =
        serde_json::from_slice(&std::fs::read(root.join("coco/train.json")).unwrap()).unwrap();
    for (k, img) in s.imgs.iter().enumerate() {
        let png = root.join(part(k)).join(format!("{}.png", img.id));
        let decoded = image::open(&png).unwrap();
        let (w, h) = (decoded.width() as f64, decoded.height() as f64);
        assert_eq!(w.max(h), 256.0_f64.min(img.width.max(img.height)));
        let m = by_id[img.id.as_str()];
        assert_eq!(m["width"].as_f64().unwrap(), w);
        assert_eq!(m["original_width"].as_f64().unwrap(), img.width);
        assert_eq!(m["original_height"].as_f64().unwrap(), img.height);
        let (sx, sy) = (w / img.width, h / img.height);
        if part(k) != "train" || k == 2 {
            continue;
        }
        // The fused train rows (--labels fused): the lone Nodule/Mass box of R1 passes
        // through fusion unchanged, so it must equal the original times the factors.
        let nodule = boxes_of(k, img)[3].2;
        let want = [
            nodule[0] * sx,
            nodule[1] * sy,
            nodule[2] * sx,
            nodule[3] * sy,
        ];
        let row = train_rows
            .iter()
            .find(|r| r[0] == img.id && r[1] == "Nodule/Mass")
            .unwrap_or_else(|| panic!("{train_rows:?}"));
        for i in 0..4 {
            let got: f64 = row[2 + i].parse().unwrap();
            assert!((got - want[i]).abs() < 1e-9, "{got} vs {}", want[i]);
        }
        // COCO: [x, y, w, h] of the same box, the image listed at the PNG's size.
        let coco_image = coco["images"]
            .as_array()
            .unwrap()
            .iter()
            .find(|i| i["file_name"] == format!("{}.png", img.id))
            .unwrap();
        assert_eq!(coco_image["width"].as_f64().unwrap(), w);
        let nodule_category = 16; // Nodule/Mass is the 16th local label
        assert_eq!(
            coco["categories"][nodule_category - 1]["name"],
            "Nodule/Mass"
        );
        let ann = coco["annotations"]
            .as_array()
            .unwrap()
            .iter()
            .find(|a| a["image_id"] == coco_image["id"] && a["category_id"] == nodule_category)
            .unwrap();
        let bb: Vec<f64> = ann["bbox"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_f64().unwrap())
            .collect();
        assert!((bb[0] - want[0]).abs() < 1e-9 && (bb[2] - (want[2] - want[0])).abs() < 1e-9);
        // YOLO: normalised by the PNG size, the same as the original box by the original
        // size.
        let yolo =
            std::fs::read_to_string(root.join(format!("labels/train/{}.txt", img.id))).unwrap();
        let line = yolo
            .lines()
            .find(|l| l.starts_with(&format!("{} ", nodule_category - 1)))
            .unwrap();
        let v: Vec<f64> = line
            .split_whitespace()
            .skip(1)
            .map(|x| x.parse().unwrap())
            .collect();
        let cx = (nodule[0] + nodule[2]) / 2.0 / img.width;
        let bw = (nodule[2] - nodule[0]) / img.width;
        assert!(
            (v[0] - cx).abs() < 2e-6 && (v[2] - bw).abs() < 2e-6,
            "{line}"
        );
    }
    // Fused train: no rad_id column.
    let (h, _) = read_csv(&root.join("annotations/annotations_train.csv"));
    assert_eq!(h[1], "class_name");
}

#[test]
fn a_bad_label_file_or_unknown_image_leaves_no_folder() {
    let Some(s) = setup("export_bad_labels") else {
        return;
    };
    let datasets = s.tmp.path().join("datasets");
    // A box with x_max < x_min on line 3.
    let mut csv = std::fs::read_to_string(&s.annotations).unwrap();
    let mut lines: Vec<String> = csv.lines().map(str::to_string).collect();
    let f: Vec<&str> = lines[2].split(',').collect();
    lines[2] = format!(
        "{},{},{},{},900,{},100,{}",
        f[0], f[1], f[2], f[3], f[5], f[7]
    );
    csv = lines.join("\n") + "\n";
    std::fs::write(&s.annotations, &csv).unwrap();
    let out = s.export(&["--images", s.input.to_str().unwrap()], "3.0");
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    assert!(
        text(&out).contains("line 3") && text(&out).contains("train.csv"),
        "{}",
        text(&out)
    );
    assert!(!datasets.exists() || std::fs::read_dir(&datasets).unwrap().count() == 0);
    // An image that is in no folder: refused before anything is written.
    lines.remove(2);
    lines.push("1.2.3.4.5,Cardiomegaly,3,R1,1.0,1.0,5.0,5.0".into());
    std::fs::write(&s.annotations, lines.join("\n") + "\n").unwrap();
    let out = s.export(&["--images", s.input.to_str().unwrap()], "3.0");
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    assert!(text(&out).contains("1.2.3.4.5"), "{}", text(&out));
    assert!(!datasets.exists() || std::fs::read_dir(&datasets).unwrap().count() == 0);
    // A split naming a part the layout does not have.
    let bad_split = s.tmp.path().join("bad_split.csv");
    std::fs::write(
        &bad_split,
        format!("image_id,split\n{},validation\n", s.imgs[0].sop),
    )
    .unwrap();
    write_annotations(&s.imgs, &s.annotations);
    let mut args = vec![
        "export".to_string(),
        "--annotations".into(),
        s.annotations.to_str().unwrap().into(),
        "--split".into(),
        bad_split.to_str().unwrap().into(),
        "--images".into(),
        s.input.to_str().unwrap().into(),
        "--out".into(),
        datasets.to_str().unwrap().into(),
        "--name".into(),
        "cxr".into(),
        "--dataset-version".into(),
        "3.0".into(),
        "--key-file".into(),
        s.key.to_str().unwrap().into(),
    ];
    let run = |args: &[String]| {
        radlab(
            &args.iter().map(String::as_str).collect::<Vec<_>>(),
            s.tmp.path(),
        )
    };
    let out = run(&args);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    assert!(text(&out).contains("validation"), "{}", text(&out));
    assert!(!datasets.exists() || std::fs::read_dir(&datasets).unwrap().count() == 0);
    // A failure late in the run, after the images were de-identified and placed: a VinDr
    // annotations file with a box on a global label, which COCO has no category for.
    let vindr = s.tmp.path().join("annotations_train.csv");
    std::fs::write(
        &vindr,
        format!(
            "image_id,rad_id,class_name,x_min,y_min,x_max,y_max\n{},R1,COPD,1.0,1.0,50.0,50.0\n",
            s.imgs[0].id
        ),
    )
    .unwrap();
    args[2] = vindr.to_str().unwrap().into();
    args[4] = s.split.to_str().unwrap().into();
    args.push("--coco".into());
    let out = run(&args);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    assert!(text(&out).contains("COPD"), "{}", text(&out));
    assert_eq!(
        std::fs::read_dir(&datasets).unwrap().count(),
        0,
        "no version folder and no partial folder are left"
    );
}
