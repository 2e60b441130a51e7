//! Our decoded frames against the reference decoders (dcmtk's dcmdjpeg / dcmdrle / dcmdjpls,
//! pydicom + pylibjpeg-openjpeg for JPEG 2000), sample for sample, for every decodable DICOM
//! file of the shared corpus: exact for lossless transfer syntaxes, within 1 grey level for
//! lossy JPEG (IJG-family decoders may round the IDCT differently).

use radlab_dicom::{DicomFile, decode_all_frames};
use radlab_testkit::{corpus, has_tool, reference_decode, reference_python};

/// Transfer syntaxes whose decoders may legitimately differ by rounding.
const LOSSY_DCT: &[&str] = &["1.2.840.10008.1.2.4.50", "1.2.840.10008.1.2.4.51"];

#[test]
fn decoded_frames_equal_the_reference_decoders() {
    let test = "decoded_frames_equal_the_reference_decoders";
    let Some(corpus) = corpus(test) else { return };
    let Some(python) = reference_python(test) else {
        return;
    };
    if !has_tool(test, "dcmdjpeg") {
        return;
    }
    let rows: Vec<_> = corpus
        .dicom_rows()
        .into_iter()
        .filter(|r| {
            r.decode_pydicom.starts_with("ok")
                || r.path.contains("JPLY")
                || r.path.contains("GH1376")
        })
        .collect();
    let files: Vec<_> = rows.iter().map(|r| corpus.path(&r.path)).collect();
    let references = reference_decode(&python, &files);
    let mut failures = Vec::new();
    let mut compared = 0;
    for ((row, path), reference) in rows.iter().zip(&files).zip(&references) {
        let Some(expected) = &reference.samples else {
            failures.push(format!(
                "{}: the reference failed: {}",
                row.path, reference.info["error"]
            ));
            continue;
        };
        let file = DicomFile::open(path).unwrap_or_else(|e| panic!("{}: {e}", row.path));
        let frames = match decode_all_frames(&file) {
            Ok(f) => f,
            Err(e) => {
                failures.push(format!("{}: we fail to decode: {e}", row.path));
                continue;
            }
        };
        let ours: Vec<i64> = frames.iter().flat_map(|f| f.samples.to_i64_vec()).collect();
        if ours.len() != expected.len() {
            failures.push(format!(
                "{}: {} samples decoded, the reference ({}) has {}",
                row.path,
                ours.len(),
                reference.info["decoder"],
                expected.len()
            ));
            continue;
        }
        let differing = ours.iter().zip(expected).filter(|(a, b)| a != b).count();
        let max_diff = ours
            .iter()
            .zip(expected)
            .map(|(a, b)| (a - b).abs())
            .max()
            .unwrap_or(0);
        let tolerance = if LOSSY_DCT.contains(&file.transfer_syntax()) {
            1
        } else {
            0
        };
        println!(
            "{:<62} {:<30} max |diff| {max_diff} on {differing} of {} samples",
            row.path,
            reference.info["decoder"].as_str().unwrap_or("?"),
            ours.len()
        );
        if max_diff > tolerance {
            failures.push(format!(
                "{}: max |diff| {max_diff} > {tolerance} against {} ({differing} samples differ)",
                row.path, reference.info["decoder"]
            ));
        }
        compared += 1;
    }
    assert!(
        failures.is_empty(),
        "decode mismatches:\n{}",
        failures.join("\n")
    );
    assert!(compared >= 40, "only {compared} files compared");
}
