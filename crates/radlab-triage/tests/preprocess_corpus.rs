//! The preprocessing over the shared corpus: every chest radiograph (DICOM in 7 transfer
//! syntaxes, PNG and JPEG pictures) becomes a 128 x 128 network input, the same bytes on a
//! second run; broken and odd files (truncated, no pixel data, colour, tiny) give pixels or a
//! sentence, never a panic.

use std::path::{Path, PathBuf};

use radlab_triage::preprocess::{Grey, Orientation, load_grey};

fn files(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap().flatten() {
            let p = e.path();
            if p.is_dir() {
                stack.push(p);
            } else if p.extension().and_then(|x| x.to_str()).is_some_and(|x| {
                ["dcm", "png", "jpg", "jpeg"].contains(&x.to_ascii_lowercase().as_str())
            }) {
                out.push(p);
            }
        }
    }
    out.sort();
    out
}

fn input(g: &Grey) -> Vec<u8> {
    g.letterboxed(128)
        .standardized()
        .iter()
        .flat_map(|v| v.to_le_bytes())
        .collect()
}

#[test]
fn every_corpus_radiograph_becomes_the_same_input_twice() {
    const TEST: &str = "every_corpus_radiograph_becomes_the_same_input_twice";
    let Some(corpus) = radlab_testkit::corpus(TEST) else {
        return;
    };
    // Every DICOM radiograph, and the first three pictures of each source (the whole set
    // takes minutes in a debug build).
    let mut chosen = files(&corpus.path("dicom/cxr"));
    chosen.extend(files(&corpus.path("dicom/cxr_derived")));
    for source in std::fs::read_dir(corpus.path("png/cxr")).unwrap().flatten() {
        if source.path().is_dir() {
            chosen.extend(files(&source.path()).into_iter().take(3));
        }
    }
    for file in &chosen {
        let g = load_grey(file).unwrap_or_else(|e| panic!("{}: {e}", file.display()));
        assert!(g.width >= 64 && g.height >= 64, "{}", file.display());
        let a = input(&g);
        let b = input(&load_grey(file).unwrap());
        assert_eq!(a.len(), 128 * 128 * 4);
        assert_eq!(a, b, "{} changed between runs", file.display());
        // Every orientation undoes to the original.
        let small = g.letterboxed(128);
        for o in Orientation::ALL {
            assert_eq!(small.oriented(o).oriented(o.inverse()), small);
        }
    }
    assert!(chosen.len() >= 30, "{} radiographs", chosen.len());
}

#[test]
fn odd_and_broken_files_give_pixels_or_a_reason() {
    const TEST: &str = "odd_and_broken_files_give_pixels_or_a_reason";
    let Some(corpus) = radlab_testkit::corpus(TEST) else {
        return;
    };
    let (mut ok, mut refused) = (0, 0);
    for dir in [
        "dicom/other",
        "dicom/invalid",
        "dicom/cxr_edge",
        "png/other",
    ] {
        for file in files(&corpus.path(dir)) {
            match load_grey(&file) {
                Ok(g) => {
                    assert_eq!(g.pixels.len(), g.width as usize * g.height as usize);
                    let _ = input(&g);
                    ok += 1;
                }
                Err(e) => {
                    assert!(!e.0.is_empty());
                    refused += 1;
                }
            }
        }
    }
    // The truncated and pixel-less files are refused; the other modalities load.
    assert!(refused >= 3, "{refused}");
    assert!(ok >= 60, "{ok}");
}

#[test]
fn the_manifest_gives_every_class_and_a_split_held_out_by_patient() {
    const TEST: &str = "the_manifest_gives_every_class_and_a_split_held_out_by_patient";
    let Some(corpus) = radlab_testkit::corpus(TEST) else {
        return;
    };
    use radlab_triage::dataset::{Class, from_manifest, split_by_group};
    let examples = from_manifest(&corpus.root).unwrap();
    let count = |c: Class| examples.iter().filter(|e| e.class == c).count();
    assert!(count(Class::Frontal) >= 270, "{}", count(Class::Frontal));
    assert_eq!(count(Class::Lateral), 3);
    assert!(count(Class::Inverted) >= 20);
    assert!(count(Class::Other) >= 50, "{}", count(Class::Other));
    // Every example is a file with pixels the network can see.
    for e in &examples {
        let path = corpus.path(&e.path);
        load_grey(&path).unwrap_or_else(|err| panic!("{}: {err}", e.path));
    }
    let (train, test) = split_by_group(&examples, 0.2, 2026);
    let groups = |ix: &[usize]| -> std::collections::BTreeSet<&str> {
        ix.iter().map(|&i| examples[i].group.as_str()).collect()
    };
    assert!(groups(&train).is_disjoint(&groups(&test)));
    for c in Class::ALL {
        assert!(
            test.iter().any(|&i| examples[i].class == c),
            "no {} held out",
            c.name()
        );
    }
}
