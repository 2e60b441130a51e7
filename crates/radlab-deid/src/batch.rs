//! De-identifying files and folders: in parallel, each output written to a temporary file and
//! renamed into place, verified against its input before it is kept, and reported per file.
//! A failed file never stops the batch and never leaves a partial output.

use std::path::{Path, PathBuf};

use dicom_dictionary_std::tags;
use radlab_dicom::DicomFile;
use rayon::prelude::*;
use serde::Serialize;

use crate::engine::{DeidReport, NotDeidentified};
use crate::mapping::MappingRecord;
use crate::profile::Profile;
use crate::verify::{Finding, verify_against};

/// What happened to one input file.
#[derive(Debug, Clone, Serialize)]
pub struct FileOutcome {
    pub input: String,
    /// Where the de-identified object was written (named by its new UIDs, never by
    /// anything of the input).
    pub output: Option<String>,
    pub error: Option<String>,
    /// Why the file was routed to review (burned-in text) instead of written.
    pub review: Option<String>,
    pub report: Option<DeidReport>,
    /// What the verifier found (the output is then discarded).
    pub findings: Vec<Finding>,
    /// Originals and their replacements, for the key-protected mapping file only: never
    /// printed.
    #[serde(skip)]
    pub mapping: Option<MappingRecord>,
}

impl FileOutcome {
    fn new(input: &Path) -> Self {
        FileOutcome {
            input: input.display().to_string(),
            output: None,
            error: None,
            review: None,
            report: None,
            findings: Vec::new(),
            mapping: None,
        }
    }

    /// Written and verified, or routed to review as the policy says.
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

/// De-identify every file under `input` into `out_dir`; `progress` is called after each.
pub fn deidentify_tree(
    input: &Path,
    out_dir: &Path,
    profile: &Profile,
    progress: &(dyn Fn(&FileOutcome) + Sync),
) -> Vec<FileOutcome> {
    deidentify_files(&input_files(input), out_dir, profile, progress)
}

/// De-identify `files` into `out_dir`.
pub fn deidentify_files(
    files: &[PathBuf],
    out_dir: &Path,
    profile: &Profile,
    progress: &(dyn Fn(&FileOutcome) + Sync),
) -> Vec<FileOutcome> {
    files
        .par_iter()
        .map(|path| {
            let outcome = deidentify_file(path, out_dir, profile);
            progress(&outcome);
            outcome
        })
        .collect()
}

/// De-identify one file; see the module docs for the guarantees.
pub fn deidentify_file(path: &Path, out_dir: &Path, profile: &Profile) -> FileOutcome {
    let mut outcome = FileOutcome::new(path);
    let mut input = match DicomFile::open(path) {
        Ok(f) => f.into_object(),
        Err(e) => {
            outcome.error = Some(e.to_string());
            return outcome;
        }
    };
    // Pixel Data moves to the output instead of being copied: the verifier and the mapping
    // read only the attributes of the input.
    let pixels = input.take(tags::PIXEL_DATA);
    let mut output = input.clone();
    if let Some(pixels) = pixels {
        output.put(pixels);
    }
    match profile.deidentify(&mut output) {
        Ok(report) => outcome.report = Some(report),
        Err(NotDeidentified::Review(why)) => {
            outcome.review = Some(why);
            return outcome;
        }
        Err(e) => {
            outcome.error = Some(e.to_string());
            return outcome;
        }
    }
    let Some(name) = profile.output_name(&input, &output) else {
        outcome.error = Some("the object has no Study, Series or SOP Instance UID".into());
        return outcome;
    };
    let target = out_dir.join(&name);
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
        Ok(()) => {
            outcome.output = Some(target.display().to_string());
            outcome.mapping = Some(MappingRecord::new(
                &input,
                &output,
                &name.to_string_lossy(),
                profile,
            ));
        }
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
pub fn verify_tree(input: &Path, out_dir: &Path, profile: &Profile) -> Vec<FileOutcome> {
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
            if let Err(e) = profile.deidentify(&mut expected) {
                match e {
                    NotDeidentified::Review(why) => outcome.review = Some(why),
                    other => outcome.error = Some(other.to_string()),
                }
                return outcome;
            }
            let Some(target) = profile
                .output_name(&input, &expected)
                .map(|name| out_dir.join(name))
            else {
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
