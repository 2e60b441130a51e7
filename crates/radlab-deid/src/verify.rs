//! The PHI verifier: after de-identification, look everywhere in the output (file meta,
//! every element at every depth, private and binary ones included) for what the input held
//! that must not survive.
//!
//! Findings name the element and the kind of leak, never the leaked value, so a report can
//! be shared and logged.

use dicom_core::header::Header;
use dicom_core::value::Value;
use dicom_core::{Tag, VR};
use dicom_dictionary_std::tags;
use dicom_object::{DefaultDicomObject, InMemDicomObject};
use serde::Serialize;

use crate::engine::AnnexEProfile;
use crate::table::Action;

/// One problem in a de-identified object.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Finding {
    /// Where: tags from the top level down, e.g. `(0008,1140)[0]/(0008,1155)`.
    pub path: String,
    pub kind: FindingKind,
    /// For leaks: the input element whose value appeared.
    pub source: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum FindingKind {
    /// A value of an identifying input element appears in this output element.
    LeakedValue,
    /// The profile removes this attribute, yet it is present.
    ShouldBeRemoved,
    /// A private attribute outside any retained safe-private block.
    PrivateAttribute,
    /// Patient Identity Removed is not YES.
    NotMarked,
}

const DUMMIES: [&[u8]; 3] = [b"19000101", b"19000101000000", b"000000"];

/// An identifying value of the input and where it was.
struct Secret {
    value: Vec<u8>,
    source: String,
}

/// Check `output` (de-identified with `profile`) against the `input` it came from.
pub fn verify_against(
    input: &DefaultDicomObject,
    output: &DefaultDicomObject,
    profile: &AnnexEProfile,
) -> Vec<Finding> {
    let mut secrets = Vec::new();
    let mut kept = Vec::new();
    collect_secrets(input, profile, "", &mut secrets, &mut kept);
    // A value that a kept attribute also carries (the manufacturer repeated in a private
    // creator) is not a leak; nor are the engine's own dummy values.
    secrets.retain(|s| {
        !DUMMIES.contains(&s.value.as_slice())
            && !kept.iter().any(|k: &Vec<u8>| contains_ci(k, &s.value))
    });
    // File meta of the input: its instance UID is a secret too.
    let meta_uid = input
        .meta()
        .media_storage_sop_instance_uid()
        .trim_end_matches('\0');
    if meta_uid.len() >= 8 && !profile.options().contains(&crate::DeidOption::RetainUids) {
        secrets.push(Secret {
            value: meta_uid.as_bytes().to_vec(),
            source: "(0002,0003)".into(),
        });
    }
    let mut findings = Vec::new();
    let meta = output.meta();
    for (tag, value) in [
        ("(0002,0003)", meta.media_storage_sop_instance_uid()),
        ("(0002,0002)", meta.media_storage_sop_class_uid()),
    ] {
        scan_bytes(value.as_bytes(), tag, &secrets, &mut findings);
    }
    scan(output, profile, "", &secrets, &mut findings);
    let marked = output
        .get(tags::PATIENT_IDENTITY_REMOVED)
        .and_then(|e| e.to_str().ok())
        .is_some_and(|v| v.trim() == "YES");
    if !marked {
        findings.push(Finding {
            path: "(0012,0062)".into(),
            kind: FindingKind::NotMarked,
            source: None,
        });
    }
    findings
}

fn tag_text(tag: Tag) -> String {
    format!("({:04X},{:04X})", tag.0, tag.1)
}

/// Identifying values: every value of an attribute the profile does not keep, plus names
/// (PN) anywhere; UIDs of the DICOM standard itself (1.2.840.10008...) are not secrets.
fn collect_secrets(
    obj: &InMemDicomObject,
    profile: &AnnexEProfile,
    prefix: &str,
    out: &mut Vec<Secret>,
    kept: &mut Vec<Vec<u8>>,
) {
    for element in obj.iter() {
        let tag = element.tag();
        let path = format!("{prefix}{}", tag_text(tag));
        if let Value::Sequence(seq) = element.value() {
            for (i, item) in seq.items().iter().enumerate() {
                collect_secrets(item, profile, &format!("{path}[{i}]/"), out, kept);
            }
            continue;
        }
        let action = profile.action_for(tag);
        // Times marked C are kept by the Modified Dates option (only dates move).
        let kept_by_profile = matches!(action, None | Some(Action::K))
            || (action == Some(Action::C) && element.vr() == VR::TM);
        let identifying = !kept_by_profile || element.vr() == VR::PN;
        // Binary numbers (a private FD of 2048) are not text that can leak, and would match
        // digits of unrelated UIDs.
        let min_len = match element.vr() {
            VR::PN
            | VR::LO
            | VR::SH
            | VR::LT
            | VR::ST
            | VR::UT
            | VR::UC
            | VR::UI
            | VR::DA
            | VR::DT
            | VR::AE
            | VR::CS
            | VR::TM => 4,
            VR::IS | VR::DS => 6,
            _ => continue,
        };
        if tag == tags::PIXEL_DATA {
            continue;
        }
        let Ok(text) = element.to_str() else { continue };
        if !identifying {
            kept.push(text.as_bytes().to_vec());
            continue;
        }
        for part in text.split('\\') {
            let part = part.trim_matches(['\0', ' ']);
            // Short values (sex, a single digit) would match everywhere and say nothing.
            if part.len() < min_len || part.starts_with("1.2.840.10008.") {
                continue;
            }
            out.push(Secret {
                value: part.as_bytes().to_vec(),
                source: path.clone(),
            });
        }
    }
}

fn scan(
    obj: &InMemDicomObject,
    profile: &AnnexEProfile,
    prefix: &str,
    secrets: &[Secret],
    findings: &mut Vec<Finding>,
) {
    for element in obj.iter() {
        let tag = element.tag();
        let path = format!("{prefix}{}", tag_text(tag));
        if tag.0 % 2 == 1
            && !profile
                .options()
                .contains(&crate::DeidOption::RetainSafePrivate)
        {
            findings.push(Finding {
                path: path.clone(),
                kind: FindingKind::PrivateAttribute,
                source: None,
            });
        }
        if profile.action_for(tag) == Some(Action::X) {
            findings.push(Finding {
                path: path.clone(),
                kind: FindingKind::ShouldBeRemoved,
                source: None,
            });
        }
        match element.value() {
            Value::Sequence(seq) => {
                for (i, item) in seq.items().iter().enumerate() {
                    scan(item, profile, &format!("{path}[{i}]/"), secrets, findings);
                }
            }
            Value::Primitive(p) if tag != tags::PIXEL_DATA => {
                scan_bytes(&p.to_bytes(), &path, secrets, findings);
            }
            _ => {}
        }
    }
}

fn scan_bytes(bytes: &[u8], path: &str, secrets: &[Secret], findings: &mut Vec<Finding>) {
    for secret in secrets {
        if contains_ci(bytes, &secret.value) {
            findings.push(Finding {
                path: path.to_string(),
                kind: FindingKind::LeakedValue,
                source: Some(secret.source.clone()),
            });
        }
    }
}

/// Whether `needle` occurs in `hay`, ignoring ASCII case.
fn contains_ci(hay: &[u8], needle: &[u8]) -> bool {
    !needle.is_empty()
        && hay.len() >= needle.len()
        && hay
            .windows(needle.len())
            .any(|w| w.eq_ignore_ascii_case(needle))
}
