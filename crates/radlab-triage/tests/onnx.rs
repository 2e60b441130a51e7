//! A site's own model in ONNX (radlab_triage::onnx) against the built-in network: the same
//! weights written as an ONNX graph by `tests/reference/onnx_from_safetensors.py` (the onnx
//! package's helper API) give the candle network's outputs on the corpus's radiographs, and
//! the same verdicts; the contract's other shapes load; bad files are errors naming them.
//! Skipped, loudly, without the reference Python's onnx package or without the corpus.

use std::path::{Path, PathBuf};
use std::process::Command;

use radlab_triage::model::{Classifier, Net, judge, views};
use radlab_triage::onnx::{OnnxClassifier, load_classifier};
use radlab_triage::preprocess::{Grey, load_grey};

fn script() -> PathBuf {
    radlab_testkit::repo_root().join("tests/reference/onnx_from_safetensors.py")
}

/// Run the script with `args`; panics with its stderr when it fails.
fn make(python: &Path, args: &[&str]) {
    let out = Command::new(python)
        .arg(script())
        .args(args)
        .output()
        .expect("run onnx_from_safetensors.py");
    assert!(
        out.status.success(),
        "onnx_from_safetensors.py {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

fn s(p: &Path) -> &str {
    p.to_str().expect("UTF-8 temp path")
}

/// A synthetic radiograph-like picture (a bright body on dark, not square).
fn synthetic(width: u32, height: u32, seed: u32) -> Grey {
    let pixels = (0..width * height)
        .map(|i| {
            let (x, y) = (i % width, i / width);
            let body = if x > width / 5 && x < width * 4 / 5 && y > height / 8 {
                120
            } else {
                10
            };
            (body + (x * 7 + y * 3 + seed * 11) % 60) as u8
        })
        .collect();
    Grey {
        width,
        height,
        pixels,
    }
}

#[test]
fn the_built_in_network_as_onnx_says_what_candle_says_on_the_corpus() {
    const TEST: &str = "the_built_in_network_as_onnx_says_what_candle_says_on_the_corpus";
    let Some(corpus) = radlab_testkit::corpus(TEST) else {
        return;
    };
    let Some(python) = radlab_testkit::reference_python_with(TEST, "onnx") else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let weights = dir.path().join("net7.safetensors");
    let bytes = Net::new(7).unwrap().to_safetensors().unwrap();
    std::fs::write(&weights, &bytes).unwrap();
    let model = dir.path().join("net7.onnx");
    make(&python, &["net", s(&weights), s(&model)]);

    let onnx = OnnxClassifier::load(&model).unwrap();
    assert_eq!(onnx.side(), 64);
    assert_eq!(onnx.channels(), 1);
    assert_eq!(onnx.batch(), None);
    assert!(onnx.predicts_orientation());
    assert_eq!(onnx.shape(), "[N, 1, 64, 64] -> [N, 12]");
    // The very weights in the file (batch normalisation already folded).
    let net = Net::from_safetensors(&bytes).unwrap().inference().unwrap();

    let mut files: Vec<PathBuf> = std::fs::read_dir(corpus.path("dicom/cxr"))
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|x| x == "dcm"))
        .collect();
    files.sort();
    assert!(files.len() >= 3, "{} radiographs in dicom/cxr", files.len());
    let images: Vec<Grey> = files
        .iter()
        .take(5)
        .map(|f| load_grey(f).unwrap_or_else(|e| panic!("{}: {e}", f.display())))
        .collect();

    // Each of the sixteen views of each image: every probability within 1e-4.
    let inputs: Vec<Vec<f32>> = images
        .iter()
        .flat_map(|g| views(&g.scaled_to_fit(64), 64))
        .collect();
    let a = net.outputs(&inputs).unwrap();
    let b = onnx.outputs(&inputs).unwrap();
    assert_eq!(a.len(), inputs.len());
    assert_eq!(b.len(), inputs.len());
    let mut worst = 0f32;
    for (x, y) in a.iter().zip(&b) {
        let (xo, yo) = (x.orientation.unwrap(), y.orientation.unwrap());
        for (p, q) in x.class.iter().chain(&xo).zip(y.class.iter().chain(&yo)) {
            worst = worst.max((p - q).abs());
        }
    }
    eprintln!("largest difference between candle and tract: {worst:e}");
    assert!(worst < 1e-4, "candle and tract differ by {worst}");

    // The same verdicts, through the trait object the CLI gets.
    let boxed = load_classifier(&model).unwrap();
    let said_net = judge(&net, &images).unwrap();
    let said_onnx = judge(boxed.as_ref(), &images).unwrap();
    for ((p, q), f) in said_net.iter().zip(&said_onnx).zip(&files) {
        assert_eq!(p.class, q.class, "{}", f.display());
        assert_eq!(
            p.orientation.map(|o| o.0),
            q.orientation.map(|o| o.0),
            "{}",
            f.display()
        );
        assert!((p.probability - q.probability).abs() < 1e-4);
    }
    // Deterministic: the same bits on a second run.
    assert_eq!(onnx.outputs(&inputs).unwrap(), b);
}

#[test]
fn the_contracts_other_shapes_load_and_run() {
    const TEST: &str = "the_contracts_other_shapes_load_and_run";
    let Some(python) = radlab_testkit::reference_python_with(TEST, "onnx") else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let images = [synthetic(300, 240, 1), synthetic(200, 260, 2)];

    // Three channels, side 96, the class only: no orientation.
    let rgb = dir.path().join("rgb96.onnx");
    make(
        &python,
        &[
            "random",
            s(&rgb),
            "--channels",
            "3",
            "--side",
            "96",
            "--outputs",
            "4",
            "--seed",
            "3",
        ],
    );
    let m = OnnxClassifier::load(&rgb).unwrap();
    assert_eq!((m.side(), m.channels(), m.batch()), (96, 3, None));
    assert!(!m.predicts_orientation());
    let said = judge(&m, &images).unwrap();
    assert_eq!(said.len(), 2);
    for p in &said {
        assert_eq!(p.orientation, None);
        let sum: f32 = p.class_probabilities.iter().sum();
        assert!((sum - 1.0).abs() < 1e-5, "{sum}");
    }

    // A model exported with batch 1 runs one view at a time and says what the same weights
    // with a dynamic batch say.
    let dynamic = dir.path().join("dynamic.onnx");
    let one = dir.path().join("one.onnx");
    make(&python, &["random", s(&dynamic), "--seed", "5"]);
    make(&python, &["random", s(&one), "--seed", "5", "--batch", "1"]);
    let (d, o) = (
        OnnxClassifier::load(&dynamic).unwrap(),
        OnnxClassifier::load(&one).unwrap(),
    );
    assert_eq!(o.batch(), Some(1));
    assert_eq!(o.shape(), "[1, 1, 64, 64] -> [1, 12]");
    let inputs: Vec<Vec<f32>> = views(&images[0].scaled_to_fit(64), 64);
    let (a, b) = (d.outputs(&inputs).unwrap(), o.outputs(&inputs).unwrap());
    assert_eq!(b.len(), 16);
    for (x, y) in a.iter().zip(&b) {
        for (p, q) in x.class.iter().zip(&y.class) {
            assert!((p - q).abs() < 1e-5, "{p} {q}");
        }
        assert!(y.orientation.is_some());
    }
    // A fixed batch of 3: the last call padded, the padding's outputs dropped.
    let three = dir.path().join("three.onnx");
    make(
        &python,
        &["random", s(&three), "--seed", "5", "--batch", "3"],
    );
    let t = OnnxClassifier::load(&three).unwrap();
    let c = t.outputs(&inputs).unwrap();
    assert_eq!(c.len(), 16);
    for (x, y) in a.iter().zip(&c) {
        for (p, q) in x.class.iter().zip(&y.class) {
            assert!((p - q).abs() < 1e-5, "{p} {q}");
        }
    }
    // Inputs of the wrong size are an error, not a panic.
    assert!(d.outputs(&[vec![0.0; 10]]).is_err());
}

#[test]
fn bad_models_are_errors_naming_the_file() {
    const TEST: &str = "bad_models_are_errors_naming_the_file";
    let Some(python) = radlab_testkit::reference_python_with(TEST, "onnx") else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let path = |name: &str| dir.path().join(name);

    std::fs::write(path("text.onnx"), "this is not a model\n").unwrap();
    std::fs::write(
        path("weights.onnx"),
        Net::new(1).unwrap().to_safetensors().unwrap(),
    )
    .unwrap();
    make(&python, &["flat", s(&path("flat.onnx"))]);
    make(&python, &["random", s(&path("two.onnx")), "--outputs", "2"]);
    make(
        &python,
        &["random", s(&path("free-side.onnx")), "--side", "0"],
    );
    make(
        &python,
        &["random", s(&path("two-channels.onnx")), "--channels", "2"],
    );
    let cases = [
        ("missing.onnx", "cannot read"),
        ("text.onnx", "not an ONNX model"),
        ("weights.onnx", ""),
        ("flat.onnx", "rank 2"),
        ("two.onnx", "not [N, 4] or [N, 12]"),
        ("free-side.onnx", "not fixed"),
        ("two-channels.onnx", "2 channels"),
    ];
    for (name, says) in cases {
        let e = OnnxClassifier::load(&path(name))
            .err()
            .unwrap_or_else(|| panic!("{name} loaded"));
        eprintln!("{e}");
        assert!(e.contains(name), "{name}: {e}");
        assert!(e.contains(says), "{name}: {e}");
        assert!(load_classifier(&path(name)).is_err());
    }
}
