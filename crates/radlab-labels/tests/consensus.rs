//! Reader consensus: quorum, contributing readers, the No finding rule, the file written,
//! and the real train.csv fused as WBF of its readers.

use radlab_labels::consensus::{
    ConsensusOptions, Method, Quorum, fuse_image, fuse_readers, write_consensus,
};
use radlab_labels::fusion::{NmsOptions, SourceBox, WbfOptions, weighted_boxes_fusion};
use radlab_labels::kaggle::read_train_csv;
use radlab_labels::{Annotation, read_box_annotations};
use radlab_testkit::corpus;

fn a(image: &str, reader: &str, label: &str, b: Option<[f64; 4]>) -> Annotation {
    Annotation {
        image_id: image.into(),
        reader: Some(reader.into()),
        label: label.into(),
        bbox: b,
        score: None,
    }
}

fn three_readers() -> Vec<Annotation> {
    vec![
        a("A", "R8", "Nodule/Mass", Some([10.0, 10.0, 50.0, 50.0])),
        a("A", "R9", "Nodule/Mass", Some([12.0, 10.0, 52.0, 50.0])),
        a(
            "A",
            "R10",
            "Nodule/Mass",
            Some([200.0, 200.0, 240.0, 240.0]),
        ),
        a(
            "A",
            "R10",
            "Aortic enlargement",
            Some([100.0, 80.0, 160.0, 140.0]),
        ),
        a(
            "B",
            "R8",
            "Cardiomegaly",
            Some([300.0, 600.0, 900.0, 800.0]),
        ),
        a("B", "R9", "No finding", None),
        a("B", "R10", "No finding", None),
        a("C", "R8", "No finding", None),
        a("C", "R9", "No finding", None),
        a("C", "R10", "No finding", None),
    ]
}

#[test]
fn quorum_parses_counts_and_shares() {
    assert_eq!(Quorum::parse("2").unwrap(), Quorum::Count(2));
    assert_eq!(Quorum::parse("0.5").unwrap(), Quorum::Share(0.5));
    assert_eq!(Quorum::parse("2/3").unwrap().needed(3), 2);
    assert_eq!(Quorum::parse("0.5").unwrap().needed(3), 2);
    assert_eq!(Quorum::parse("0.5").unwrap().needed(4), 2);
    assert_eq!(Quorum::parse("1.0").unwrap().needed(3), 3);
    for bad in ["0", "1.5", "x", "1/0", "-1", "0.0"] {
        assert!(Quorum::parse(bad).is_err(), "{bad}");
    }
}

#[test]
fn fused_boxes_name_their_readers_and_the_quorum_drops_lone_ones() {
    let rows = three_readers();
    let all = fuse_readers(&rows, &ConsensusOptions::default()).unwrap();
    let on = |image: &str| -> Vec<_> { all.iter().filter(|f| f.image_id == image).collect() };
    // A: R8 and R9 agree on the nodule (IoU 0.9); R10's nodule and aorta stand alone.
    let a = on("A");
    assert_eq!(a.len(), 3);
    assert_eq!(a[0].readers, ["R8", "R9"]);
    assert_eq!(a[0].bbox, Some([11.0, 10.0, 51.0, 50.0]));
    assert!((a[0].score - 2.0 / 3.0).abs() < 1e-15);
    assert_eq!(a[0].of_readers, 3);
    assert!(a[1..].iter().all(|f| f.readers == ["R10"]));
    // B: one reader's box makes it abnormal, so No finding goes.
    let b = on("B");
    assert_eq!(b.len(), 1);
    assert_eq!(b[0].label, "Cardiomegaly");
    // C: every reader said No finding.
    let c = on("C");
    assert_eq!((c[0].label.as_str(), c[0].bbox), ("No finding", None));
    assert_eq!(c[0].readers, ["R8", "R9", "R10"]);

    let two = ConsensusOptions {
        quorum: Some(Quorum::Count(2)),
        ..ConsensusOptions::default()
    };
    let q = fuse_readers(&rows, &two).unwrap();
    let labels: Vec<(&str, &str)> = q
        .iter()
        .map(|f| (f.image_id.as_str(), f.label.as_str()))
        .collect();
    // B's lone box is dropped, which leaves B normal: the consensus says so.
    assert_eq!(
        labels,
        [
            ("A", "Nodule/Mass"),
            ("B", "No finding"),
            ("C", "No finding")
        ]
    );
    assert_eq!(q[1].readers, ["R9", "R10"]);

    // Hard NMS: the kept box lists the readers whose boxes it suppressed.
    let nms = ConsensusOptions {
        method: Method::Nms(NmsOptions {
            iou_thr: 0.4,
            ..NmsOptions::default()
        }),
        quorum: Some(Quorum::Share(0.5)),
        ..ConsensusOptions::default()
    };
    let n = fuse_readers(&rows[..4], &nms).unwrap();
    assert_eq!(n.len(), 1);
    assert_eq!(n[0].readers, ["R8", "R9"]);
    assert_eq!(n[0].bbox, Some([10.0, 10.0, 50.0, 50.0]));
}

#[test]
fn reader_weights_and_pitfalls() {
    let rows = three_readers();
    let mut weighted = ConsensusOptions::default();
    weighted.reader_weights.insert("R9".into(), 3.0);
    let f = fuse_readers(&rows[..2], &weighted).unwrap();
    // R9's box weighs 3: x_min = (10 + 3 * 12) / 4.
    assert_eq!(f[0].bbox.unwrap()[0], 11.5);
    weighted.reader_weights.insert("R8".into(), 0.0);
    let e = fuse_readers(&rows, &weighted).unwrap_err();
    assert!(e.contains("image A") && e.contains("positive"), "{e}");
    let mut over = rows[0].clone();
    over.score = Some(1.5);
    let refs = [&over];
    let e = fuse_image("A", &refs, &ConsensusOptions::default()).unwrap_err();
    assert!(e.contains("not in [0, 1]"), "{e}");
}

#[test]
fn the_consensus_file_reads_back() {
    let fused = fuse_readers(&three_readers(), &ConsensusOptions::default()).unwrap();
    let mut out = Vec::new();
    write_consensus(&mut out, &fused).unwrap();
    let text = String::from_utf8(out.clone()).unwrap();
    assert!(text.starts_with("image_id,class_name,x_min,y_min,x_max,y_max,score,readers\n"));
    assert!(text.contains(",R8;R9\n"), "{text}");
    let back = read_box_annotations(&out, "consensus.csv").unwrap();
    assert_eq!(back.len(), fused.len());
    for (b, f) in back.iter().zip(&fused) {
        assert_eq!(
            (&b.image_id, &b.label, b.bbox, b.reader.as_deref()),
            (&f.image_id, &f.label, f.bbox, None)
        );
    }
    let e = read_box_annotations(b"image,label\nx,y\n", "odd.csv").unwrap_err();
    assert!(e.to_string().contains("odd.csv"), "{e}");
}

#[test]
fn the_real_train_csv_fuses_as_wbf_of_each_images_readers() {
    let Some(corpus) = corpus("consensus_of_the_real_train_csv") else {
        return;
    };
    let bytes = std::fs::read(corpus.path("annotations/vinbigdata/train.csv")).unwrap();
    let rows = read_train_csv(&bytes[..], "train.csv").unwrap();
    let options = ConsensusOptions::default();
    let fused = fuse_readers(&rows, &options).unwrap();
    // Per image and label, the consensus is WBF of the readers as sources (IoU 0.4).
    let mut checked = 0;
    for (image, group) in radlab_labels::consensus::by_image(&rows).iter().take(500) {
        let mut readers: Vec<&str> = group.iter().filter_map(|r| r.reader.as_deref()).collect();
        readers.sort_unstable();
        readers.dedup();
        let sources: Vec<Vec<SourceBox>> = readers
            .iter()
            .map(|r| {
                group
                    .iter()
                    .filter(|g| g.reader.as_deref() == Some(*r))
                    .filter_map(|g| {
                        Some(SourceBox {
                            bbox: g.bbox?,
                            score: 1.0,
                            label: radlab_labels::kaggle_class_id(&g.label)? as u32,
                        })
                    })
                    .collect()
            })
            .collect();
        let expected = weighted_boxes_fusion(
            &sources,
            &WbfOptions {
                iou_thr: 0.4,
                ..WbfOptions::default()
            },
        )
        .unwrap();
        let mine: Vec<_> = fused
            .iter()
            .filter(|f| f.image_id == *image && f.bbox.is_some())
            .collect();
        assert_eq!(mine.len(), expected.len(), "{image}");
        for e in &expected {
            assert!(
                mine.iter().any(|m| m.bbox == Some(e.bbox)
                    && m.score == e.score
                    && m.readers.len() == e.sources.len()),
                "{image}"
            );
        }
        checked += 1;
    }
    assert_eq!(checked, 500);
    // Every image has something to say; with a quorum of 2, every box has 2 readers.
    let images: std::collections::HashSet<&str> =
        rows.iter().map(|r| r.image_id.as_str()).collect();
    let said: std::collections::HashSet<&str> = fused.iter().map(|f| f.image_id.as_str()).collect();
    assert_eq!(images, said);
    let two = ConsensusOptions {
        quorum: Some(Quorum::Count(2)),
        ..options
    };
    let q = fuse_readers(&rows, &two).unwrap();
    assert!(
        q.iter()
            .filter(|f| f.bbox.is_some())
            .all(|f| f.readers.len() >= 2)
    );
    let boxes = |v: &[radlab_labels::consensus::ConsensusFinding]| {
        v.iter().filter(|f| f.bbox.is_some()).count()
    };
    assert!(boxes(&q) < boxes(&fused));
    eprintln!(
        "{} images: {} boxes fused, {} kept by a quorum of 2",
        images.len(),
        boxes(&fused),
        boxes(&q)
    );
}

/// The community's consensus (each reader a source, score 1, WBF per class at IoU 0.4) on
/// 3,000 real images, against ensemble-boxes. Every score ties: the reference's descending
/// sort (`argsort()[::-1]`) puts ties in reverse input order, so it is handed the readers in
/// reverse name order and each reader's boxes reversed, which is radlab's order reversed.
#[test]
fn the_community_consensus_of_real_images_matches_ensemble_boxes() {
    let test = "consensus_against_ensemble_boxes";
    let Some(corpus) = corpus(test) else { return };
    let Some(python) = radlab_testkit::reference_python_with(test, "ensemble_boxes") else {
        return;
    };
    let rows = read_train_csv(
        &std::fs::read(corpus.path("annotations/vinbigdata/train.csv")).unwrap()[..],
        "train.csv",
    )
    .unwrap();
    let mut size = std::collections::HashMap::new();
    let sizes = std::fs::read_to_string(corpus.path("annotations/vinbigdata/train_image_size.csv"))
        .unwrap();
    for line in sizes.lines().skip(1) {
        let f: Vec<&str> = line.split(',').collect();
        size.insert(
            f[0].to_string(),
            (f[2].parse::<f64>().unwrap(), f[1].parse::<f64>().unwrap()),
        );
    }
    let groups: Vec<_> = radlab_labels::consensus::by_image(&rows)
        .into_iter()
        .filter(|(_, g)| g.iter().any(|a| a.bbox.is_some()))
        .take(3000)
        .collect();
    let mut images = Vec::new();
    for (image, group) in &groups {
        let (w, h) = size[*image];
        let mut readers: Vec<&str> = group.iter().filter_map(|r| r.reader.as_deref()).collect();
        readers.sort_unstable();
        readers.dedup();
        readers.reverse();
        let sources: Vec<Vec<serde_json::Value>> = readers
            .iter()
            .map(|r| {
                let mut boxes: Vec<serde_json::Value> = group
                    .iter()
                    .filter(|g| g.reader.as_deref() == Some(*r))
                    .filter_map(|g| {
                        let b = g.bbox?;
                        let id = radlab_labels::kaggle_class_id(&g.label)?;
                        Some(serde_json::json!([
                            b[0] / w,
                            b[1] / h,
                            b[2] / w,
                            b[3] / h,
                            1.0,
                            id
                        ]))
                    })
                    .collect();
                boxes.reverse();
                boxes
            })
            .collect();
        images.push(sources);
    }
    let query = serde_json::json!({
        "options": {"iou_thr": 0.4, "skip_box_thr": 0.0, "weights": null, "conf_type": "avg",
                    "allows_overflow": false},
        "images": images,
    });
    let reference = radlab_testkit::run_reference(&python, "wbf.py", &query);
    let mut compared = 0;
    for (k, (image, group)) in groups.iter().enumerate() {
        let (w, h) = size[*image];
        let ours = radlab_labels::consensus::fuse_image(image, group, &ConsensusOptions::default())
            .unwrap();
        let ours: Vec<_> = ours.iter().filter(|f| f.bbox.is_some()).collect();
        let theirs = reference[k].as_array().unwrap();
        assert_eq!(ours.len(), theirs.len(), "{image}");
        for t in theirs {
            let t: Vec<f64> = t
                .as_array()
                .unwrap()
                .iter()
                .map(|v| v.as_f64().unwrap())
                .collect();
            let found = ours.iter().any(|o| {
                let b = o.bbox.unwrap();
                let n = [b[0] / w, b[1] / h, b[2] / w, b[3] / h];
                radlab_labels::kaggle_class_id(&o.label) == Some(t[5] as u8)
                    && (0..4).all(|j| (n[j] - t[j]).abs() < 2e-6)
                    && (o.score - t[4]).abs() < 2e-6
            });
            assert!(found, "{image}: the reference's {t:?} is not among ours");
            compared += 1;
        }
    }
    assert!(compared > 8000, "{compared}");
}

#[test]
fn zero_area_boxes_keep_their_label_and_duplicates_fuse() {
    let rows = vec![
        a("Z", "R8", "Nodule/Mass", Some([30.0, 30.0, 30.0, 60.0])),
        a("Z", "R9", "No finding", None),
        a("Z", "R10", "No finding", None),
        // The same box twice from one reader: one source, one fused box.
        a("D", "R8", "Cardiomegaly", Some([0.0, 0.0, 10.0, 10.0])),
        a("D", "R8", "Cardiomegaly", Some([0.0, 0.0, 10.0, 10.0])),
        a("D", "R9", "Cardiomegaly", Some([0.0, 0.0, 10.0, 10.0])),
    ];
    let f = fuse_readers(&rows, &ConsensusOptions::default()).unwrap();
    // A degenerate box is still a reader's finding: Z is not normal.
    assert_eq!(f[0].image_id, "Z");
    assert_eq!((f[0].label.as_str(), f[0].bbox), ("Nodule/Mass", None));
    assert_eq!(f[0].readers, ["R8"]);
    assert!(f.iter().all(|x| x.label != "No finding"));
    let d: Vec<_> = f.iter().filter(|x| x.image_id == "D").collect();
    assert_eq!(d.len(), 1);
    assert_eq!(d[0].readers, ["R8", "R9"]);
    assert_eq!(d[0].bbox, Some([0.0, 0.0, 10.0, 10.0]));
    // With a quorum of 2, the lone degenerate mark goes and Z is normal.
    let two = ConsensusOptions {
        quorum: Some(Quorum::Count(2)),
        ..ConsensusOptions::default()
    };
    let q = fuse_readers(&rows[..3], &two).unwrap();
    assert_eq!(q.len(), 1);
    assert_eq!(q[0].label, "No finding");
    assert_eq!(q[0].readers, ["R9", "R10"]);
}
