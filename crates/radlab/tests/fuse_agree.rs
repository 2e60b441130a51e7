//! `radlab fuse` and `radlab agree`, driven as a user would.

mod common;

use std::path::Path;
use std::process::Output;

use common::text;
use radlab_testkit::corpus;

/// `radlab ARGS` run in `dir` (relative paths and the default data folder are there).
fn radlab(args: &[&str], dir: &Path) -> Output {
    common::command()
        .args(args)
        .current_dir(dir)
        .output()
        .expect("run radlab")
}

const SMALL: &str = "\
image_id,rad_id,class_name,x_min,y_min,x_max,y_max
A,R8,Nodule/Mass,10,10,50,50
A,R9,Nodule/Mass,12,10,52,50
A,R10,Nodule/Mass,200,200,240,240
B,R8,Cardiomegaly,300,600,900,800
B,R9,No finding,,,,
B,R10,No finding,,,,
";

#[test]
fn fuse_writes_a_consensus_with_its_readers_and_a_quorum() {
    let tmp = tempfile::tempdir().unwrap();
    std::fs::write(tmp.path().join("train.csv"), SMALL).unwrap();
    let out = radlab(
        &[
            "fuse",
            "--labels",
            "train.csv",
            "--out",
            "fused.csv",
            "--quorum",
            "2",
        ],
        tmp.path(),
    );
    assert!(out.status.success(), "{}", text(&out));
    let fused = std::fs::read_to_string(tmp.path().join("fused.csv")).unwrap();
    assert_eq!(
        fused,
        "image_id,class_name,x_min,y_min,x_max,y_max,score,readers\n\
         A,Nodule/Mass,11.0,10.0,51.0,50.0,0.6666666666666666,R8;R9\n\
         B,No finding,,,,,0.6666666666666666,R9;R10\n"
    );
    // The consensus is ground truth for eval.
    let out = radlab(&["fuse", "--labels", "train.csv", "--out", "-"], tmp.path());
    assert!(out.status.success(), "{}", text(&out));
    assert_eq!(String::from_utf8_lossy(&out.stdout).lines().count(), 4);
    // Bad options and files name what is wrong, and leave the output alone.
    for (args, says) in [
        (vec!["--quorum", "0"], "quorum"),
        (vec!["--method", "vote"], "--method"),
        (vec!["--conf-type", "median"], "--conf-type"),
        (vec!["--weights", "R8=0"], "--weights"),
        (vec!["--fusion-iou", "1.5"], "--fusion-iou"),
    ] {
        let mut all = vec!["fuse", "--labels", "train.csv", "--out", "fused.csv"];
        all.extend(args);
        let out = radlab(&all, tmp.path());
        assert_eq!(out.status.code(), Some(2), "{}", text(&out));
        assert!(text(&out).contains(says), "{}", text(&out));
    }
    std::fs::write(
        tmp.path().join("bad.csv"),
        "image_id,rad_id,class_name,x_min,y_min,x_max,y_max\nA,R1,Nodule/Mass,10,10,x,50\n",
    )
    .unwrap();
    let out = radlab(
        &["fuse", "--labels", "bad.csv", "--out", "fused.csv"],
        tmp.path(),
    );
    assert_eq!(out.status.code(), Some(2));
    assert!(
        text(&out).contains("bad.csv, line 2") && text(&out).contains("x_max"),
        "{}",
        text(&out)
    );
    assert!(
        std::fs::read_to_string(tmp.path().join("fused.csv"))
            .unwrap()
            .contains("R8;R9")
    );
}

#[test]
fn agree_prints_kappas_box_f1_and_reader_scores() {
    let tmp = tempfile::tempdir().unwrap();
    std::fs::write(tmp.path().join("train.csv"), SMALL).unwrap();
    std::fs::write(
        tmp.path().join("image_labels.csv"),
        "image_id,rad_id,Lung tumor,Pneumonia,Tuberculosis,Other diseases,COPD,No finding\n\
         A,R8,1,0,0,0,0,0\nA,R9,1,0,0,0,0,0\nA,R10,0,0,0,1,0,0\n\
         B,R8,0,1,0,0,0,0\nB,R9,0,0,0,0,0,1\nB,R10,0,0,0,0,0,1\n",
    )
    .unwrap();
    let out = radlab(
        &[
            "agree",
            "--labels",
            "train.csv",
            "--image-labels",
            "image_labels.csv",
            "--json",
        ],
        tmp.path(),
    );
    assert!(out.status.success(), "{}", text(&out));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let labels: Vec<&str> = v["image_labels"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| l["label"].as_str().unwrap())
        .collect();
    assert_eq!(labels[0], "Lung tumor");
    assert!(labels.contains(&"Other disease"), "{labels:?}");
    let nodule = &v["boxes"][radlab_labels::kaggle_class_id("Nodule/Mass").unwrap() as usize];
    assert_eq!(nodule["matches"], 1);
    let readers: Vec<&str> = v["readers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["reader"].as_str().unwrap())
        .collect();
    assert_eq!(readers, ["R8", "R9", "R10"]);
    let out = radlab(
        &["agree", "--labels", "train.csv", "--markdown"],
        tmp.path(),
    );
    assert!(out.status.success(), "{}", text(&out));
    assert!(text(&out).contains("| reader | images | rows | mAP | mAP findings |"));
    // A consensus file has no readers to compare.
    std::fs::write(
        tmp.path().join("consensus.csv"),
        "image_id,class_name,x_min,y_min,x_max,y_max\nA,Nodule/Mass,1,1,5,5\n",
    )
    .unwrap();
    let out = radlab(&["agree", "--labels", "consensus.csv"], tmp.path());
    assert_eq!(out.status.code(), Some(2));
    assert!(text(&out).contains("rad_id"), "{}", text(&out));
}

#[test]
fn agree_on_the_real_train_csv_gives_the_documented_reader_table() {
    let Some(corpus) = corpus("agree_on_train_csv") else {
        return;
    };
    let tmp = tempfile::tempdir().unwrap();
    let train = corpus.path("annotations/vinbigdata/train.csv");
    let out = radlab(
        &["agree", "--labels", train.to_str().unwrap(), "--markdown"],
        tmp.path(),
    );
    assert!(out.status.success(), "{}", text(&out));
    let table = String::from_utf8_lossy(&out.stdout).to_string();
    // docs/agreement.md quotes this output; the test keeps the two the same.
    let docs =
        std::fs::read_to_string(radlab_testkit::repo_root().join("docs/agreement.md")).unwrap();
    for line in table.lines().filter(|l| l.starts_with("| R")) {
        assert!(docs.contains(line), "docs/agreement.md lacks {line:?}");
    }
}

#[test]
fn labels_go_into_a_project_and_back_out() {
    let tmp = tempfile::tempdir().unwrap();
    std::fs::write(tmp.path().join("train.csv"), SMALL).unwrap();
    std::fs::write(
        tmp.path().join("bad.csv"),
        "image_id,rad_id,class_name,x_min,y_min,x_max,y_max\nA,R1,Unicorn,1,1,2,2\n",
    )
    .unwrap();
    let run = |args: &[&str]| {
        let mut all = vec!["--data-dir", "data"];
        all.extend(args);
        radlab(&all, tmp.path())
    };
    let out = run(&["labels", "import", "--project", "p1", "train.csv"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(text(&out).contains("--create"), "{}", text(&out));
    // A bad file among good ones: nothing is written, the project is not made.
    let out = run(&[
        "labels",
        "import",
        "--project",
        "p1",
        "--create",
        "train.csv",
        "bad.csv",
    ]);
    assert_eq!(out.status.code(), Some(2));
    assert!(text(&out).contains("bad.csv, line 2") && text(&out).contains("Unicorn"));
    let out = run(&["labels", "ls", "--json"]);
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim(),
        "[]",
        "{}",
        text(&out)
    );
    let out = run(&[
        "labels",
        "import",
        "--project",
        "p1",
        "--create",
        "train.csv",
    ]);
    assert!(out.status.success(), "{}", text(&out));
    let out = run(&["labels", "ls"]);
    assert!(
        text(&out).contains("p1") && text(&out).contains("vindr-cxr"),
        "{}",
        text(&out)
    );
    let out = run(&[
        "labels",
        "import",
        "--project",
        "p2",
        "--create",
        "--schema",
        "mystery",
        "train.csv",
    ]);
    assert_eq!(out.status.code(), Some(2));
    assert!(text(&out).contains("vindr-cxr"), "{}", text(&out));
    let out = run(&[
        "labels",
        "export",
        "--project",
        "p1",
        "--format",
        "vindr",
        "--out",
        "-",
    ]);
    assert!(out.status.success(), "{}", text(&out));
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        SMALL
            .replace(",10,10,50,50", ",10.0,10.0,50.0,50.0")
            .replace(",12,10,52,50", ",12.0,10.0,52.0,50.0")
            .replace(",200,200,240,240", ",200.0,200.0,240.0,240.0")
            .replace(",300,600,900,800", ",300.0,600.0,900.0,800.0")
    );
    let out = run(&[
        "labels",
        "export",
        "--project",
        "p1",
        "--layer",
        "consensus",
        "--out",
        "-",
    ]);
    assert!(out.status.success(), "{}", text(&out));
    assert_eq!(String::from_utf8_lossy(&out.stdout).lines().count(), 1);
    let out = run(&["labels", "export", "--project", "nope", "--out", "-"]);
    assert!(text(&out).contains("no project nope"), "{}", text(&out));
}
