//! The mapping back to the originals: for each output file, the identifiers it replaced.
//! It is stored apart from the output, encrypted (XChaCha20-Poly1305) with a key derived
//! from the project key, so only whoever holds that key can re-identify.
//!
//! File layout: `RADLAB-MAP1\n`, a 24-byte nonce, then the ciphertext of JSON lines (one
//! [`MappingRecord`] each). Each write re-encrypts the whole file with a fresh nonce.

use std::path::Path;

use chacha20poly1305::aead::{Aead, AeadCore, KeyInit, OsRng};
use chacha20poly1305::{XChaCha20Poly1305, XNonce};
use dicom_core::Tag;
use dicom_dictionary_std::tags;
use dicom_object::DefaultDicomObject;
use serde::{Deserialize, Serialize};

use crate::engine::DeidKey;
use crate::profile::Profile;

const MAGIC: &[u8] = b"RADLAB-MAP1\n";

/// One output file and what it replaced.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MappingRecord {
    /// The output file, relative to the output folder.
    pub output: String,
    pub original_patient_id: String,
    pub original_accession_number: String,
    pub original_study_uid: String,
    pub original_series_uid: String,
    pub original_sop_uid: String,
    pub patient_id: String,
    pub study_uid: String,
    pub series_uid: String,
    pub sop_uid: String,
    /// Days the patient's dates were moved back (when they were shifted).
    pub date_shift_days: Option<i64>,
}

fn text(obj: &DefaultDicomObject, tag: Tag) -> String {
    obj.get(tag)
        .and_then(|e| e.to_str().ok())
        .map(|s| s.trim_matches(['\0', ' ']).to_string())
        .unwrap_or_default()
}

impl MappingRecord {
    pub(crate) fn new(
        input: &DefaultDicomObject,
        output: &DefaultDicomObject,
        name: &str,
        profile: &Profile,
    ) -> Self {
        let patient_id = text(input, tags::PATIENT_ID);
        MappingRecord {
            output: name.to_string(),
            original_accession_number: text(input, tags::ACCESSION_NUMBER),
            original_study_uid: text(input, tags::STUDY_INSTANCE_UID),
            original_series_uid: text(input, tags::SERIES_INSTANCE_UID),
            original_sop_uid: text(input, tags::SOP_INSTANCE_UID),
            patient_id: text(output, tags::PATIENT_ID),
            study_uid: text(output, tags::STUDY_INSTANCE_UID),
            series_uid: text(output, tags::SERIES_INSTANCE_UID),
            sop_uid: text(output, tags::SOP_INSTANCE_UID),
            date_shift_days: profile
                .shifts_dates()
                .then(|| profile.key.date_offset_days(&patient_id)),
            original_patient_id: patient_id,
        }
    }
}

/// Why the mapping could not be read or written.
#[derive(Debug, thiserror::Error)]
pub enum MappingError {
    #[error("{0}: {1}")]
    Io(String, std::io::Error),
    #[error("{0}: not a radlab mapping file")]
    NotMapping(String),
    #[error("{0}: cannot decrypt it with this key (wrong key file, or the file was altered)")]
    WrongKey(String),
    #[error("{0}: the decrypted mapping is malformed: {1}")]
    Malformed(String, String),
}

fn cipher(key: &DeidKey) -> XChaCha20Poly1305 {
    XChaCha20Poly1305::new(&key.derive("mapping-file").into())
}

/// Read every record of the mapping at `path` with `key`.
pub fn read_mapping(path: &Path, key: &DeidKey) -> Result<Vec<MappingRecord>, MappingError> {
    let name = path.display().to_string();
    let bytes = std::fs::read(path).map_err(|e| MappingError::Io(name.clone(), e))?;
    let body = bytes
        .strip_prefix(MAGIC)
        .filter(|b| b.len() >= 24)
        .ok_or_else(|| MappingError::NotMapping(name.clone()))?;
    let (nonce, ciphertext) = body.split_at(24);
    let nonce: [u8; 24] = nonce.try_into().expect("24 bytes split off");
    let plain = cipher(key)
        .decrypt(&XNonce::from(nonce), ciphertext)
        .map_err(|_| MappingError::WrongKey(name.clone()))?;
    let text = String::from_utf8(plain)
        .map_err(|e| MappingError::Malformed(name.clone(), e.to_string()))?;
    text.lines()
        .filter(|l| !l.is_empty())
        .map(|l| {
            serde_json::from_str(l)
                .map_err(|e| MappingError::Malformed(name.clone(), e.to_string()))
        })
        .collect()
}

/// Add `records` to the mapping at `path` (created if absent; an existing one must open
/// with the same key), written atomically.
pub fn append_mapping(
    path: &Path,
    key: &DeidKey,
    records: &[MappingRecord],
) -> Result<(), MappingError> {
    let name = path.display().to_string();
    let mut all = if path.exists() {
        read_mapping(path, key)?
    } else {
        Vec::new()
    };
    // A rerun over the same files replaces their records rather than repeating them.
    all.retain(|r| !records.iter().any(|n| n.output == r.output));
    all.extend(records.iter().cloned());
    let mut plain = String::new();
    for r in &all {
        plain.push_str(&serde_json::to_string(r).expect("records serialise"));
        plain.push('\n');
    }
    let nonce = XChaCha20Poly1305::generate_nonce(&mut OsRng);
    let ciphertext = cipher(key)
        .encrypt(&nonce, plain.as_bytes())
        .expect("encryption of an in-memory buffer does not fail");
    let mut out = MAGIC.to_vec();
    out.extend_from_slice(&nonce);
    out.extend_from_slice(&ciphertext);
    let tmp = path.with_extension("tmp-radlab");
    std::fs::write(&tmp, &out)
        .and_then(|()| std::fs::rename(&tmp, path))
        .map_err(|e| {
            let _ = std::fs::remove_file(&tmp);
            MappingError::Io(name, e)
        })
}
