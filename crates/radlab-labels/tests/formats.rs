//! The formats on the real Kaggle `train.csv` and public predictions of the shared corpus,
//! and on hand-made files for the errors.

use radlab_labels::kaggle::{read_submission, read_train_csv, write_submission, write_train_csv};
use radlab_labels::vindr::{
    read_annotations, read_image_labels, write_annotations, write_image_labels,
};
use radlab_labels::{
    Annotation, GLOBAL_LABELS, KAGGLE_CLASSES, LOCAL_LABELS, Scope, format_number,
};
use radlab_testkit::corpus;

#[test]
fn the_label_table_is_the_shared_one() {
    let Some(corpus) = corpus("the_label_table_is_the_shared_one") else {
        return;
    };
    let text =
        std::fs::read_to_string(corpus.path("annotations/labels/vindr_cxr_labels.csv")).unwrap();
    let mut rdr = csv::Reader::from_reader(text.as_bytes());
    let rows: Vec<csv::StringRecord> = rdr.records().map(|r| r.unwrap()).collect();
    let ours: Vec<_> = LOCAL_LABELS.iter().chain(GLOBAL_LABELS.iter()).collect();
    assert_eq!(rows.len(), ours.len());
    for (row, label) in rows.iter().zip(ours) {
        assert_eq!(&row[0], label.name);
        let scope = if label.scope == Scope::Local {
            "local"
        } else {
            "global"
        };
        assert_eq!(&row[1], scope, "{}", label.name);
        assert_eq!(
            row[2].parse::<u8>().ok(),
            label.kaggle_class_id,
            "{}",
            label.name
        );
        if let Some(id) = label.kaggle_class_id {
            assert_eq!(KAGGLE_CLASSES[id as usize], label.name);
        }
    }
}

#[test]
fn the_real_kaggle_train_csv_round_trips_byte_for_byte() {
    let Some(corpus) = corpus("kaggle_train_csv_round_trip") else {
        return;
    };
    let path = corpus.path("annotations/vinbigdata/train.csv");
    let bytes = std::fs::read(&path).unwrap();
    let rows = read_train_csv(&bytes[..], "train.csv").unwrap();
    assert_eq!(rows.len(), 50959);
    // Every reader's boxes, with their rad_id.
    let readers: std::collections::BTreeSet<_> =
        rows.iter().filter_map(|r| r.reader.as_deref()).collect();
    assert!(readers.len() >= 17, "{readers:?}");
    assert!(rows.iter().all(|r| r.reader.is_some()));
    let no_finding = rows.iter().filter(|r| r.label == "No finding").count();
    assert!(rows.iter().filter(|r| r.bbox.is_none()).count() == no_finding);
    let mut again = Vec::new();
    write_train_csv(&mut again, &rows).unwrap();
    assert!(
        again == bytes,
        "the written train.csv differs from the original"
    );
}

#[test]
fn vindr_release_files_round_trip_and_match_columns_by_name() {
    let Some(corpus) = corpus("vindr_release_round_trip") else {
        return;
    };
    let bytes = std::fs::read(corpus.path("annotations/vinbigdata/train.csv")).unwrap();
    let rows = read_train_csv(&bytes[..], "train.csv").unwrap();
    // annotations_train.csv from the Kaggle rows, and back.
    let mut train = Vec::new();
    write_annotations(&mut train, &rows).unwrap();
    assert!(train.starts_with(b"image_id,rad_id,class_name,x_min"));
    let back = read_annotations(&train[..], "annotations_train.csv").unwrap();
    assert_eq!(back, rows);
    // The consensus file has no rad_id.
    let consensus: Vec<Annotation> = rows
        .iter()
        .take(100)
        .map(|r| Annotation {
            reader: None,
            ..r.clone()
        })
        .collect();
    let mut test = Vec::new();
    write_annotations(&mut test, &consensus).unwrap();
    assert!(test.starts_with(b"image_id,class_name,x_min"));
    assert_eq!(
        read_annotations(&test[..], "annotations_test.csv").unwrap(),
        consensus
    );
    // Columns in another order are read by name.
    let shuffled = "class_name,x_max,image_id,y_max,rad_id,x_min,y_min\n\
                    Cardiomegaly,1653.0,9a50,1831.0,R10,691.0,1375.0\n";
    let a = read_annotations(shuffled.as_bytes(), "shuffled.csv").unwrap();
    assert_eq!(a[0].bbox, Some([691.0, 1375.0, 1653.0, 1831.0]));
    assert_eq!(a[0].reader.as_deref(), Some("R10"));
}

#[test]
fn image_labels_accept_both_spellings_of_other_disease_and_round_trip() {
    let text = "image_id,rad_id,COPD,Lung tumor,Pneumonia,Tuberculosis,Other diseases,No finding\n\
                a1,R1,0,0,1,0,1,0\n\
                a1,R2,0,0,1,0,0,0\n\
                b2,R3,0,0,0,0,0,1\n";
    let rows = read_image_labels(text.as_bytes(), "image_labels_train.csv").unwrap();
    assert_eq!(rows.len(), 3);
    assert_eq!(rows[0].labels[4], ("Other disease".to_string(), true));
    let mut out = Vec::new();
    write_image_labels(&mut out, &rows).unwrap();
    let out = String::from_utf8(out).unwrap();
    assert_eq!(
        out,
        text.replace("Other diseases", "Other disease"),
        "written with the PhysioNet header spelling"
    );
    // Test file: no rad_id; columns in any order.
    let test = "No finding,image_id,Pneumonia\n1,c3,0\n";
    let rows = read_image_labels(test.as_bytes(), "image_labels_test.csv").unwrap();
    assert_eq!(rows[0].reader, None);
    assert_eq!(rows[0].labels[0], ("No finding".to_string(), true));
}

#[test]
fn the_public_submissions_read_and_write_back_to_the_same_predictions() {
    let Some(corpus) = corpus("kaggle_submissions") else {
        return;
    };
    for name in [
        "sample_submission.csv",
        "test_detection_submission_yolov5.csv",
    ] {
        let bytes = std::fs::read(corpus.path(&format!("annotations/predictions/{name}"))).unwrap();
        let preds = read_submission(&bytes[..], name).unwrap();
        let images: std::collections::BTreeSet<_> = preds.iter().map(|p| &p.image_id).collect();
        assert_eq!(images.len(), 3000, "{name}");
        let mut out = Vec::new();
        write_submission(&mut out, &preds).unwrap();
        let again = read_submission(&out[..], name).unwrap();
        assert_eq!(again, preds, "{name}");
    }
}

#[test]
fn bad_rows_are_refused_with_the_file_line_and_column() {
    let header = "image_id,class_name,class_id,rad_id,x_min,y_min,x_max,y_max\n";
    let cases = [
        ("a,Cardiomegaly,3,R1,1.0,2.0,x,4.0\n", "x_max is \"x\""),
        (
            "a,Cardiomegaly,4,R1,1.0,2.0,3.0,4.0\n",
            "class_id 4 is \"Consolidation\"",
        ),
        ("a,Cardiomegaly,3,R1,,,,\n", "has no box"),
        ("a,Cardiomegaly,3,R1,5.0,2.0,3.0,4.0\n", "x_max < x_min"),
        ("a,Cardiomegaly,21,R1,1.0,2.0,3.0,4.0\n", "not one of 0-14"),
        ("a,Cardiomegaly,3,R1,1.0,2.0,3.0\n", "line 2"),
        ("a,Cardiomegaly,3,R1,nan,2.0,3.0,4.0\n", "finite"),
    ];
    for (row, needle) in cases {
        let text = format!("{header}{row}");
        let e = read_train_csv(text.as_bytes(), "train.csv")
            .unwrap_err()
            .to_string();
        assert!(e.contains(needle), "{row}: {e}");
        assert!(e.starts_with("train.csv"), "{e}");
    }
    let e = read_train_csv("image_id,class_name\n".as_bytes(), "t.csv")
        .unwrap_err()
        .to_string();
    assert!(e.contains("no \"class_id\" column"), "{e}");
    let e = read_submission(
        "image_id,PredictionString\na,14 1 0 0 1\n".as_bytes(),
        "s.csv",
    )
    .unwrap_err()
    .to_string();
    assert!(
        e.contains("s.csv, line 2") && e.contains("groups of 6"),
        "{e}"
    );
    let e = read_image_labels("image_id,Flu\na,1\n".as_bytes(), "l.csv")
        .unwrap_err()
        .to_string();
    assert!(e.contains("\"Flu\" is not one of the 28"), "{e}");
    let e = read_annotations(
        "image_id,class_name,x_min,y_min,x_max,y_max\na,Fracture,1,2,3,4\n".as_bytes(),
        "a.csv",
    )
    .unwrap_err()
    .to_string();
    assert!(e.contains("a.csv, line 2") && e.contains("Fracture"), "{e}");
}

#[test]
fn numbers_are_written_as_python_writes_floats() {
    for (v, text) in [
        (691.0, "691.0"),
        (0.5, "0.5"),
        (1234.5678, "1234.5678"),
        (0.1 + 0.2, "0.30000000000000004"),
        (-3.0, "-3.0"),
    ] {
        assert_eq!(format_number(v), text);
    }
}

fn sizes(corpus: &radlab_testkit::Corpus) -> radlab_labels::coco::Sizes {
    let text = std::fs::read_to_string(corpus.path("annotations/vinbigdata/train_image_size.csv"))
        .unwrap();
    let mut rdr = csv::Reader::from_reader(text.as_bytes());
    let h = rdr.headers().unwrap().clone();
    let (i, hh, ww) = (
        h.iter().position(|c| c == "image_id").unwrap(),
        h.iter().position(|c| c == "height").unwrap(),
        h.iter().position(|c| c == "width").unwrap(),
    );
    rdr.records()
        .map(|r| {
            let r = r.unwrap();
            (
                r[i].to_string(),
                (r[ww].parse().unwrap(), r[hh].parse().unwrap()),
            )
        })
        .collect()
}

#[test]
fn coco_and_yolo_carry_every_box_of_the_real_train_csv() {
    use radlab_labels::coco;
    let Some(corpus) = corpus("coco_yolo_round_trip") else {
        return;
    };
    let bytes = std::fs::read(corpus.path("annotations/vinbigdata/train.csv")).unwrap();
    let rows = read_train_csv(&bytes[..], "train.csv").unwrap();
    let sizes = sizes(&corpus);
    let classes = &KAGGLE_CLASSES[..14];
    let boxed: Vec<Annotation> = rows.iter().filter(|r| r.bbox.is_some()).cloned().collect();
    // COCO: every box back, with its reader; "No finding" images listed without boxes.
    let mut json = Vec::new();
    coco::write_dataset(&mut json, &rows, &sizes, classes, ".png").unwrap();
    let (back, images) = coco::read_dataset(&json[..], "train.json").unwrap();
    let all_images: std::collections::BTreeSet<_> = rows.iter().map(|r| &r.image_id).collect();
    assert_eq!(images.by_id.len(), all_images.len());
    assert_eq!(back.len(), boxed.len());
    for (a, b) in back.iter().zip(&boxed) {
        assert_eq!(
            (&a.image_id, &a.reader, &a.label),
            (&b.image_id, &b.reader, &b.label)
        );
        let (x, y) = (a.bbox.unwrap(), b.bbox.unwrap());
        for k in 0..4 {
            assert!((x[k] - y[k]).abs() < 1e-9, "{x:?} vs {y:?}");
        }
    }
    // COCO results against that dataset.
    let results = r#"[{"image_id": 1, "category_id": 4, "bbox": [10, 20, 30, 40], "score": 0.5}]"#;
    let preds = coco::read_results(results.as_bytes(), "results.json", &images).unwrap();
    assert_eq!(preds[0].label, "Cardiomegaly");
    assert_eq!(preds[0].bbox, Some([10.0, 20.0, 40.0, 60.0]));
    let bad = r#"[{"image_id": 999999, "category_id": 4, "bbox": [1, 2, 3, 4], "score": 0.5}]"#;
    let e = coco::read_results(bad.as_bytes(), "results.json", &images)
        .unwrap_err()
        .to_string();
    assert!(e.contains("results.json") && e.contains("999999"), "{e}");
    // YOLO: every box back within the six decimals the format keeps.
    let files = coco::to_yolo(&rows, &sizes, classes).unwrap();
    assert_eq!(files.len(), all_images.len());
    let mut n = 0;
    for (image, text) in &files {
        let got = coco::from_yolo(text, image, sizes[image], classes, "x.txt").unwrap();
        let want: Vec<&Annotation> = boxed.iter().filter(|b| &b.image_id == image).collect();
        assert_eq!(got.len(), want.len());
        for (g, w) in got.iter().zip(want) {
            assert_eq!(g.label, w.label);
            let (x, y) = (g.bbox.unwrap(), w.bbox.unwrap());
            let tolerance = 1e-6 * sizes[image].0.max(sizes[image].1) as f64;
            for k in 0..4 {
                assert!((x[k] - y[k]).abs() <= tolerance, "{image}: {x:?} vs {y:?}");
            }
            n += 1;
        }
    }
    assert_eq!(n, boxed.len());
    let e = coco::from_yolo("3 0.5 0.5 0.1\n", "img", (100, 100), classes, "img.txt")
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("img.txt, line 1") && e.contains("4 values"),
        "{e}"
    );
}
