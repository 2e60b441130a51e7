//! radlab's VOC AP against map-boxes (`mean_average_precision_for_boxes`, PyPI map-boxes,
//! through `tests/reference/map_boxes_ap.py`): map-boxes matches each image's detections in
//! input order rather than by score, so it agrees with VOC only when its input is sorted by
//! descending score; unsorted, its number moves while radlab's does not.

use radlab_labels::kaggle::read_train_csv;
use radlab_labels::{Annotation, KAGGLE_CLASSES};
use radlab_metrics::voc_map;
use radlab_testkit::{corpus, reference_python_with, run_reference};

fn corners(x: &Annotation) -> [f64; 4] {
    x.bbox.unwrap_or([0.0, 0.0, 1.0, 1.0])
}

fn query(gt: &[Annotation], det: &[Annotation]) -> serde_json::Value {
    serde_json::json!({
        "iou": 0.4,
        "gt": gt.iter().map(|g| {
            let b = corners(g);
            serde_json::json!([g.image_id, g.label, b[0], b[1], b[2], b[3]])
        }).collect::<Vec<_>>(),
        "det": det.iter().map(|d| {
            let b = corners(d);
            serde_json::json!([d.image_id, d.label, d.score, b[0], b[1], b[2], b[3]])
        }).collect::<Vec<_>>(),
    })
}

#[test]
fn map_boxes_agrees_only_on_input_sorted_by_score() {
    let test = "voc_against_map_boxes";
    let Some(corpus) = corpus(test) else { return };
    let Some(python) = reference_python_with(test, "map_boxes, pandas") else {
        return;
    };
    let bytes = std::fs::read(corpus.path("annotations/vinbigdata/train.csv")).unwrap();
    let rows = read_train_csv(&bytes[..], "train.csv").unwrap();
    let reader = "R8";
    let gt: Vec<Annotation> = rows
        .iter()
        .filter(|r| r.reader.as_deref() == Some(reader))
        .cloned()
        .collect();
    let images: std::collections::HashSet<&str> = gt.iter().map(|g| g.image_id.as_str()).collect();
    // Distinct scores (map-boxes sorts with an unstable quicksort and reads float32), each
    // box twice: the copy, jittered, scores higher or lower than the original at random.
    const P: usize = 100_003;
    let mut det: Vec<Annotation> = Vec::new();
    for (i, r) in rows
        .iter()
        .filter(|r| r.reader.as_deref() != Some(reader) && images.contains(r.image_id.as_str()))
        .enumerate()
    {
        let b = corners(r);
        det.push(Annotation {
            score: Some(((2 * i * 7919) % P) as f64 / P as f64),
            ..r.clone()
        });
        det.push(Annotation {
            bbox: Some([b[0] + 3.0, b[1] - 2.0, b[2] + 4.0, b[3] + 1.0]),
            score: Some(((2 * i * 7919 + 7919) % P) as f64 / P as f64),
            ..r.clone()
        });
    }
    let ours = voc_map(&KAGGLE_CLASSES, &gt, &det, 0.4);
    let mut sorted = det.clone();
    sorted.sort_by(|x, y| y.score.partial_cmp(&x.score).unwrap());
    let theirs_sorted = run_reference(&python, "map_boxes_ap.py", &query(&gt, &sorted));
    let theirs_unsorted = run_reference(&python, "map_boxes_ap.py", &query(&gt, &det));
    let m_sorted = theirs_sorted["map"].as_f64().unwrap();
    let m_unsorted = theirs_unsorted["map"].as_f64().unwrap();
    // radlab does not depend on the order of its input.
    assert_eq!(voc_map(&KAGGLE_CLASSES, &gt, &sorted, 0.4), ours);
    eprintln!(
        "{reader} as ground truth: radlab VOC {:.6}, map-boxes sorted {m_sorted:.6}, unsorted {m_unsorted:.6}",
        ours.map
    );
    assert!(
        (ours.map - m_sorted).abs() <= 1e-9,
        "{} vs {m_sorted}",
        ours.map
    );
    for c in &ours.classes {
        if let Some(ap) = c.ap {
            let theirs = theirs_sorted["classes"][&c.label].as_f64().unwrap();
            assert!((ap - theirs).abs() <= 1e-9, "{}: {ap} vs {theirs}", c.label);
        }
    }
    assert!(
        (ours.map - m_unsorted).abs() > 1e-3,
        "unsorted input should move map-boxes' number"
    );
}
