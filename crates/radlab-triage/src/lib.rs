//! Triage: which images are usable frontal chest radiographs, and why the others are not.
//!
//! So far the rules on metadata ([`rules`]): each finding is a stable code and a sentence
//! naming the attribute and its value; a missing attribute is never a finding. And the
//! deterministic path from a file to the pixels a network looks at ([`preprocess`]: the
//! image as displayed, letterboxed by area averaging, standardized; the eight orientations
//! and the grey-level inversion training needs), and the examples it will learn from
//! ([`dataset`]: the corpus manifest's classes, split held out by patient). The CNN on
//! pixels (class and orientation) is the next step of issue 8.

pub mod dataset;
pub mod model;
pub mod onnx;
pub mod preprocess;
pub mod rules;
pub mod train;

use std::path::Path;

use serde::Serialize;

pub use rules::{Finding, ImageMeta, Metadata, RuleConfig};

/// What triage says of one file.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Verdict {
    /// The path as given.
    pub path: String,
    /// `dicom`, `picture` (PNG or JPEG: no metadata to judge) or `unreadable`.
    pub kind: &'static str,
    /// No rule found anything against it.
    pub valid: bool,
    pub findings: Vec<Finding>,
}

/// Judge one file: a DICOM object by its metadata, a PNG or JPEG picture (nothing to read:
/// valid for the rules), anything else unreadable with the parser's reason.
pub fn triage_file(path: &Path, config: &RuleConfig) -> Verdict {
    let shown = path.display().to_string();
    let verdict = |kind, findings: Vec<Finding>| Verdict {
        path: shown.clone(),
        kind,
        valid: findings.is_empty(),
        findings,
    };
    match radlab_dicom::DicomFile::open(path) {
        Ok(file) => verdict("dicom", rules::check(&Metadata::from_file(&file), config)),
        Err(e) => {
            if is_picture(path) {
                return verdict("picture", Vec::new());
            }
            verdict(
                "unreadable",
                vec![Finding {
                    code: "unreadable",
                    reason: format!("not a DICOM file radlab can read: {e}"),
                }],
            )
        }
    }
}

/// Judge a DICOM object held in memory (a blob of the store), shown as `shown`.
pub fn triage_bytes(bytes: &[u8], shown: &str, config: &RuleConfig) -> Verdict {
    let (kind, findings) = match radlab_dicom::DicomFile::from_bytes(bytes) {
        Ok(file) => ("dicom", rules::check(&Metadata::from_file(&file), config)),
        Err(e) => (
            "unreadable",
            vec![Finding {
                code: "unreadable",
                reason: format!("not a DICOM object radlab can read: {e}"),
            }],
        ),
    };
    Verdict {
        path: shown.to_string(),
        kind,
        valid: findings.is_empty(),
        findings,
    }
}

/// A PNG or JPEG file, by its first bytes.
fn is_picture(path: &Path) -> bool {
    let mut head = [0u8; 8];
    let Ok(mut f) = std::fs::File::open(path) else {
        return false;
    };
    let n = std::io::Read::read(&mut f, &mut head).unwrap_or(0);
    let head = &head[..n];
    head.starts_with(b"\x89PNG\r\n\x1a\n") || head.starts_with(&[0xFF, 0xD8, 0xFF])
}
