//! De-identifying files and folders: in parallel, each output written to a temporary file and
//! renamed into place, verified against its input before it is kept, and reported per file.
//! A failed file never stops the batch and never leaves a partial output.

use std::path::{Path, PathBuf};

use dicom_dictionary_std::tags;
use dicom_object::DefaultDicomObject;
use radlab_dicom::DicomFile;
use rayon::prelude::*;
use serde::Serialize;

use crate::engine::{AnnexEProfile, DeidReport};
use crate::verify::{Finding, verify_against};

/// What happened to one input file.
#[derive(Debug, Clone, Serialize)]
pub struct FileOutcome {
    pub input: String,
    /// Where the de-identified object was written (named by its new UIDs, never by
    /// anything of the input).
    pub output: Option<String>,
    pub error: Option<String>,
    pub report: Option<DeidReport>,
    /// What the verifier found (the output is then discarded).
    pub findings: Vec<Finding>,
}

impl FileOutcome {
    fn new(input: &Path) -> Self {
        FileOutcome {
            input: input.display().to_string(),
            output: None,
            error: None,
            report: None,
            findings: Vec::new(),
        }
    }

    pub fn ok(&self) -> bool {
        self.error.is_none() && self.findings.is_empty()
    }
}

/// Every file under `input` (a file or a folder), in name order.
pub fn input_files(input: &Path) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = walk(input);
    files.sort();
    files
}

fn walk(path: &Path) -> Vec<PathBuf> {
    if path.is_file() {
        return vec![path.to_path_buf()];
    }
    let Ok(entries) = std::fs::read_dir(path) else {
        return Vec::new();
    };
    entries
        .filter_map(|e| e.ok())
        .flat_map(|e| walk(&e.path()))
        .collect()
}

/// The output path of a de-identified object: `OUT/<study>/<series>/<instance>.dcm`.
pub fn output_path(out_dir: &Path, obj: &DefaultDicomObject) -> Option<PathBuf> {
    let uid = |tag| {
        obj.get(tag)
            .and_then(|e| e.to_str().ok())
            .map(|s| s.trim_end_matches(['\0', ' ']).to_string())
            .filter(|s| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit() || b == b'.'))
    };
    Some(
        out_dir
            .join(uid(tags::STUDY_INSTANCE_UID)?)
            .join(uid(tags::SERIES_INSTANCE_UID)?)
            .join(format!("{}.dcm", uid(tags::SOP_INSTANCE_UID)?)),
    )
}

/// De-identify every file under `input` into `out_dir`.
pub fn deidentify_tree(input: &Path, out_dir: &Path, profile: &AnnexEProfile) -> Vec<FileOutcome> {
    input_files(input)
        .par_iter()
        .map(|path| deidentify_file(path, out_dir, profile))
        .collect()
}

/// De-identify one file; see the module docs for the guarantees.
pub fn deidentify_file(path: &Path, out_dir: &Path, profile: &AnnexEProfile) -> FileOutcome {
    let mut outcome = FileOutcome::new(path);
    let input = match DicomFile::open(path) {
        Ok(f) => f.into_object(),
        Err(e) => {
            outcome.error = Some(e.to_string());
            return outcome;
        }
    };
    let mut output = input.clone();
    outcome.report = Some(profile.apply(&mut output));
    let Some(target) = output_path(out_dir, &output) else {
        outcome.error = Some("the object has no Study, Series or SOP Instance UID".into());
        return outcome;
    };
    let mut bytes = Vec::new();
    if let Err(e) = output.write_all(&mut bytes) {
        outcome.error = Some(format!("cannot encode the de-identified object: {e}"));
        return outcome;
    }
    // Verify what will be on disk, read back, not the in-memory object.
    match DicomFile::from_bytes(&bytes) {
        Ok(written) => outcome.findings = verify_against(&input, written.object(), profile),
        Err(e) => {
            outcome.error = Some(format!("the written object does not read back: {e}"));
            return outcome;
        }
    }
    if !outcome.findings.is_empty() {
        outcome.error = Some(format!(
            "the verifier found {} problem(s); no output written",
            outcome.findings.len()
        ));
        return outcome;
    }
    match write_atomically(&target, &bytes) {
        Ok(()) => outcome.output = Some(target.display().to_string()),
        Err(e) => outcome.error = Some(format!("cannot write {}: {e}", target.display())),
    }
    outcome
}

/// Write to a temporary file beside `target`, then rename: readers never see half a file.
fn write_atomically(target: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let dir = target.parent().unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir)?;
    let tmp = dir.join(format!(
        ".{}.tmp-{}",
        target.file_name().unwrap_or_default().to_string_lossy(),
        std::process::id()
    ));
    let result = std::fs::write(&tmp, bytes).and_then(|()| std::fs::rename(&tmp, target));
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result
}

/// Verify the outputs of a previous run: for each input file, find its output (by the UIDs
/// the same key gives it) and check it.
pub fn verify_tree(input: &Path, out_dir: &Path, profile: &AnnexEProfile) -> Vec<FileOutcome> {
    input_files(input)
        .par_iter()
        .map(|path| {
            let mut outcome = FileOutcome::new(path);
            let input = match DicomFile::open(path) {
                Ok(f) => f.into_object(),
                Err(e) => {
                    outcome.error = Some(format!("input: {e}"));
                    return outcome;
                }
            };
            let mut expected = input.clone();
            profile.apply(&mut expected);
            let Some(target) = output_path(out_dir, &expected) else {
                outcome.error = Some("the input has no Study, Series or SOP Instance UID".into());
                return outcome;
            };
            outcome.output = Some(target.display().to_string());
            match DicomFile::open(&target) {
                Ok(written) => outcome.findings = verify_against(&input, written.object(), profile),
                Err(e) => outcome.error = Some(format!("output: {e}")),
            }
            outcome
        })
        .collect()
}
