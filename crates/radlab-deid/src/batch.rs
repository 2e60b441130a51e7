//! De-identifying files and folders: in parallel, each output written to a temporary file and
//! renamed into place, verified against its input before it is kept, and reported per file.
//! A failed file never stops the batch and never leaves a partial output.

use std::path::{Path, PathBuf};

use dicom_core::Tag;
use dicom_core::value::PrimitiveValue;
use dicom_dictionary_std::tags;
use dicom_encoding::TransferSyntaxIndex;
use dicom_object::{DefaultDicomObject, InMemDicomObject};
use radlab_dicom::DicomFile;
use rayon::prelude::*;
use serde::Serialize;

use crate::engine::{DeidReport, NotDeidentified};
use crate::mapping::MappingRecord;
use crate::pixels::PixelDecision;
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
    let bytes = match std::fs::read(path) {
        Ok(b) => b,
        Err(e) => {
            outcome.error = Some(radlab_dicom::DicomError::from(e).to_string());
            return outcome;
        }
    };
    if let Some(span) = radlab_dicom::pixel_data_span(&bytes)
        && fast_path(&bytes, span, out_dir, profile, &mut outcome)
    {
        return outcome;
    }
    slow_path(&bytes, out_dir, profile, &mut outcome);
    outcome
}

/// The common case, without touching the pixels: parse the file around its Pixel Data,
/// de-identify and verify that, and write it with the Pixel Data element copied byte for
/// byte from the input. Returns `false` (nothing done) where the full path is needed: a
/// bare data set, pixels to mask, text after the pixels that is not ASCII.
fn fast_path(
    bytes: &[u8],
    span: std::ops::Range<usize>,
    out_dir: &Path,
    profile: &Profile,
    outcome: &mut FileOutcome,
) -> bool {
    let mut around = Vec::with_capacity(bytes.len() - span.len());
    around.extend_from_slice(&bytes[..span.start]);
    around.extend_from_slice(&bytes[span.end..]);
    let Ok(file) = DicomFile::from_bytes(&around) else {
        return false;
    };
    if file.framing() == radlab_dicom::Framing::BareDataSet {
        return false;
    }
    let input = file.into_object();
    match profile.burned_in.decide_with(&input, true) {
        PixelDecision::Keep => {}
        PixelDecision::Review(why) => {
            outcome.review = Some(why);
            return true;
        }
        PixelDecision::Mask(_) => return false,
    }
    let mut output = input.clone();
    let report = profile.apply(&mut output);
    // Elements after Pixel Data (trailing padding, private groups the profile keeps) are
    // written after the copied pixels.
    let after: Vec<Tag> = output.tags().filter(|t| *t > tags::PIXEL_DATA).collect();
    let mut tail = InMemDicomObject::new_empty();
    for tag in &after {
        if let Some(e) = output.take(*tag) {
            if e.value().primitive().is_some_and(|p| {
                matches!(p, PrimitiveValue::Str(_) | PrimitiveValue::Strs(_))
                    && !p.to_str().is_ascii()
            }) {
                return false;
            }
            tail.put(e);
        }
    }
    let Some(name) = profile.output_name(&input, &output) else {
        outcome.error = Some("the object has no Study, Series or SOP Instance UID".into());
        return true;
    };
    let mut head = Vec::new();
    if let Err(e) = output.write_all(&mut head) {
        outcome.error = Some(format!("cannot encode the de-identified object: {e}"));
        return true;
    }
    let mut tail_bytes = Vec::new();
    if !after.is_empty() {
        let ts = dicom_transfer_syntax_registry::TransferSyntaxRegistry.get(
            output
                .meta()
                .transfer_syntax()
                .trim_end_matches(['\0', ' ']),
        );
        let Some(ts) = ts else {
            return false;
        };
        if tail.write_dataset_with_ts(&mut tail_bytes, ts).is_err() {
            return false;
        }
    }
    // Verify what will be on disk: the written attributes read back, with the elements
    // after the pixels.
    let mut written = match DicomFile::from_bytes(&head) {
        Ok(w) => w.into_object(),
        Err(e) => {
            outcome.error = Some(format!("the written object does not read back: {e}"));
            return true;
        }
    };
    for e in tail.into_iter() {
        written.put(e);
    }
    outcome.report = Some(report);
    outcome.findings = verify_against(&input, &written, profile);
    finish(
        &[&head, &bytes[span], &tail_bytes],
        &input,
        &output,
        out_dir,
        &name,
        profile,
        outcome,
    );
    true
}

/// Parse the whole file, pixels included (masking needs them), and write it anew.
fn slow_path(bytes: &[u8], out_dir: &Path, profile: &Profile, outcome: &mut FileOutcome) {
    let mut input = match DicomFile::from_bytes(bytes) {
        Ok(f) => f.into_object(),
        Err(e) => {
            outcome.error = Some(e.to_string());
            return;
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
            return;
        }
        Err(e) => {
            outcome.error = Some(e.to_string());
            return;
        }
    }
    let Some(name) = profile.output_name(&input, &output) else {
        outcome.error = Some("the object has no Study, Series or SOP Instance UID".into());
        return;
    };
    let mut bytes = Vec::new();
    if let Err(e) = output.write_all(&mut bytes) {
        outcome.error = Some(format!("cannot encode the de-identified object: {e}"));
        return;
    }
    // Verify what will be on disk, read back, not the in-memory object.
    match DicomFile::from_bytes(&bytes) {
        Ok(written) => outcome.findings = verify_against(&input, written.object(), profile),
        Err(e) => {
            outcome.error = Some(format!("the written object does not read back: {e}"));
            return;
        }
    }
    finish(&[&bytes], &input, &output, out_dir, &name, profile, outcome);
}

/// Refuse on findings, else write the parts atomically and record the mapping.
fn finish(
    parts: &[&[u8]],
    input: &DefaultDicomObject,
    output: &DefaultDicomObject,
    out_dir: &Path,
    name: &Path,
    profile: &Profile,
    outcome: &mut FileOutcome,
) {
    if !outcome.findings.is_empty() {
        outcome.error = Some(format!(
            "the verifier found {} problem(s); no output written",
            outcome.findings.len()
        ));
        return;
    }
    let target = out_dir.join(name);
    match write_atomically(&target, parts) {
        Ok(()) => {
            outcome.output = Some(target.display().to_string());
            outcome.mapping = Some(MappingRecord::new(
                input,
                output,
                &name.to_string_lossy(),
                profile,
            ));
        }
        Err(e) => outcome.error = Some(format!("cannot write {}: {e}", target.display())),
    }
}

/// Write to a temporary file beside `target`, then rename: readers never see half a file.
fn write_atomically(target: &Path, parts: &[&[u8]]) -> std::io::Result<()> {
    use std::io::Write;
    let dir = target.parent().unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir)?;
    let tmp = dir.join(format!(
        ".{}.tmp-{}",
        target.file_name().unwrap_or_default().to_string_lossy(),
        std::process::id()
    ));
    let result = std::fs::File::create(&tmp)
        .and_then(|mut f| parts.iter().try_for_each(|p| f.write_all(p)))
        .and_then(|()| std::fs::rename(&tmp, target));
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
