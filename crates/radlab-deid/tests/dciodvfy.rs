//! dicom3tools' `dciodvfy` reports no error on our de-identified output that it did not
//! report on the input (values inside the messages, such as UIDs, are masked so that the same
//! defect with a replaced UID counts as the same error).

use std::collections::BTreeSet;
use std::path::Path;
use std::process::Command;

use radlab_deid::{DeidKey, DeidOption, Profile};
use radlab_dicom::DicomFile;
use radlab_testkit::{corpus, has_tool};

fn errors(path: &Path) -> BTreeSet<String> {
    let out = Command::new("dciodvfy")
        .arg(path)
        .output()
        .expect("run dciodvfy");
    let text =
        String::from_utf8_lossy(&out.stderr).to_string() + &String::from_utf8_lossy(&out.stdout);
    text.lines()
        .filter(|l| l.starts_with("Error"))
        .map(mask_values)
        .collect()
}

/// Replace `<value>` spans and UID-like tokens with placeholders.
fn mask_values(line: &str) -> String {
    let mut out = String::new();
    let mut in_angle = false;
    for c in line.chars() {
        match c {
            '<' => {
                in_angle = true;
                out.push_str("<_>");
            }
            '>' => in_angle = false,
            _ if in_angle => {}
            _ => out.push(c),
        }
    }
    out.split_whitespace()
        .map(|w| {
            if w.contains('.') && w.chars().all(|c| c.is_ascii_digit() || c == '.') {
                "UID"
            } else {
                w
            }
        })
        .collect::<Vec<_>>()
        .join(" ")
}

/// Errors that follow from an attribute's absence (a missing Image Type makes its third
/// value "required"; a missing Presentation Intent Type makes a For Presentation attribute
/// misplaced; a missing Segmentation Type makes the next check read an enumerated value
/// wrongly).
const ALLOW_LIST_CONSEQUENCES: [&str; 4] = [
    "Error - Missing attribute",
    "Error - A value is required for value 3 in",
    "Error - May only be present in For Presentation images",
    "Error - Unrecognized enumerated value <_> for value 1 of attribute <_>",
];

#[test]
fn dciodvfy_finds_no_new_error_in_our_output() {
    let test = "dciodvfy_finds_no_new_error_in_our_output";
    let Some(corpus) = corpus(test) else { return };
    if !has_tool(test, "dciodvfy") {
        return;
    }
    let key = DeidKey::from_secret(b"dciodvfy test key");
    let profiles = [
        Profile::annex_e(key.clone(), []).unwrap(),
        Profile::annex_e(key.clone(), [DeidOption::RetainLongitudinalModifiedDates]).unwrap(),
        Profile::named("vindr-cxr", key.clone(), []).unwrap(),
        Profile::named("vindr-mammo", key, []).unwrap(),
    ];
    let tmp = tempfile::tempdir().unwrap();
    let mut checked = 0;
    let mut failures = Vec::new();
    for row in corpus.dicom_rows() {
        let path = corpus.path(&row.path);
        let Ok(file) = DicomFile::open(&path) else {
            continue;
        };
        let before = errors(&path);
        for (i, profile) in profiles.iter().enumerate() {
            let mut obj = file.object().clone();
            profile.apply(&mut obj);
            let out = tmp.path().join(format!("out{i}.dcm"));
            obj.write_to_file(&out).unwrap();
            let after = errors(&out);
            let mut new: Vec<_> = after.difference(&before).collect();
            if profile.name().starts_with("vindr") && row.path.starts_with("dicom/invalid/") {
                // Image allow-lists on broken or non-image objects: nothing to compare.
                continue;
            }
            let radiograph = matches!(
                row.fields.get("modality").map(String::as_str),
                Some("CR" | "DX" | "MG")
            );
            if profile.name().starts_with("vindr") && !radiograph {
                // The VinDr allow-lists keep what radiograph and mammography objects need;
                // on CT, MR, US... they drop Type 1 and 2 attributes of other modules: the
                // only new errors allowed there are missing attributes and what dciodvfy
                // derives from their absence. On radiographs they must add nothing.
                new.retain(|e| !ALLOW_LIST_CONSEQUENCES.iter().any(|c| e.starts_with(c)));
            }
            if !new.is_empty() {
                failures.push(format!("{} ({}): {new:?}", row.path, profile.name()));
            }
            checked += 1;
        }
    }
    assert!(
        failures.is_empty(),
        "new dciodvfy errors:\n{}",
        failures.join("\n")
    );
    assert!(checked >= 150, "only {checked} outputs checked");
}
