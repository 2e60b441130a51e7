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

use crate::engine::private_creator;
use crate::profile::{Profile, Resolved};
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
    /// A date outside the range the input's dates were shifted into.
    DateOutOfRange,
}

/// Attributes the engine itself writes (marks, cleaned-pixel flags) or the profile adds.
fn written_by_engine(profile: &Profile, tag: Tag) -> bool {
    [
        tags::PATIENT_IDENTITY_REMOVED,
        tags::DEIDENTIFICATION_METHOD,
        tags::DEIDENTIFICATION_METHOD_CODE_SEQUENCE,
        tags::BURNED_IN_ANNOTATION,
    ]
    .contains(&tag)
        || profile.add.iter().any(|(t, _, _)| *t == tag)
}

/// Whether the profile keeps `tag` (at `depth`) as it is.
fn kept_by_profile(
    profile: &Profile,
    obj: &InMemDicomObject,
    tag: Tag,
    vr: VR,
    depth: usize,
    content: bool,
) -> bool {
    if tag.0 % 2 == 1 && !profile.rules.contains_key(&tag) {
        return matches!(profile.resolve(tag, depth), Some(Resolved::Act(Action::C)))
            && profile.is_safe_private(tag, private_creator(obj, tag).as_deref());
    }
    match profile.resolve(tag, depth) {
        // Free text, names, dates and UIDs of structured content are cleaned.
        None if content => crate::profile::content_item_action(tag, vr, false).is_none(),
        None | Some(Resolved::Act(Action::K)) => true,
        // Times marked C are kept by the Modified Dates option (only dates move).
        Some(Resolved::Act(Action::C)) => vr == VR::TM,
        _ => false,
    }
}

const DUMMIES: [&[u8]; 3] = [b"19000101", b"19000101000000", b"000000"];

/// What the walk over the input finds.
#[derive(Default)]
struct Found {
    secrets: Vec<Secret>,
    /// Values of attributes the profile keeps.
    kept: Vec<Vec<u8>>,
    dates: Dates,
}

/// An identifying value of the input and where it was.
struct Secret {
    /// Lower-cased.
    value: Vec<u8>,
    source: String,
    /// A UID: looked for as a whole value in UI elements (a short number found inside a
    /// fresh `2.25.` UID is chance, not a leak).
    uid: bool,
}

/// Check `output` (de-identified with `profile`) against the `input` it came from.
pub fn verify_against(
    input: &DefaultDicomObject,
    output: &DefaultDicomObject,
    profile: &Profile,
) -> Vec<Finding> {
    let mut found = Found::default();
    collect_secrets(input, profile, "", (0, false), &mut found);
    let Found {
        mut secrets,
        kept,
        mut dates,
    } = found;
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
            value: meta_uid.to_ascii_lowercase().into_bytes(),
            source: "(0002,0003)".into(),
            uid: true,
        });
    }
    let mut findings = Vec::new();
    let meta = output.meta();
    for (tag, value) in [
        ("(0002,0003)", meta.media_storage_sop_instance_uid()),
        ("(0002,0002)", meta.media_storage_sop_class_uid()),
    ] {
        scan_bytes(value.as_bytes(), true, tag, &secrets, &mut findings);
    }
    scan(output, profile, "", 0, &secrets, &mut findings);
    if profile.shifts_dates() {
        let patient_id = input
            .get(tags::PATIENT_ID)
            .and_then(|e| e.to_str().ok())
            .map(|s| s.trim().to_string())
            .unwrap_or_default();
        dates.offset = profile.key.date_offset_days(&patient_id);
        check_dates(output, "", &dates, &mut findings);
    }
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
    profile: &Profile,
    prefix: &str,
    (depth, content): (usize, bool),
    found: &mut Found,
) {
    for element in obj.iter() {
        let tag = element.tag();
        let path = format!("{prefix}{}", tag_text(tag));
        if let Value::Sequence(seq) = element.value() {
            let content = content || tag == tags::CONTENT_SEQUENCE;
            for (i, item) in seq.items().iter().enumerate() {
                collect_secrets(
                    item,
                    profile,
                    &format!("{path}[{i}]/"),
                    (depth + 1, content),
                    found,
                );
            }
            continue;
        }
        let Found {
            secrets: out,
            kept,
            dates,
        } = found;
        let is_kept = kept_by_profile(profile, obj, tag, element.vr(), depth, content);
        if matches!(element.vr(), VR::DA | VR::DT)
            && let Ok(values) = element.to_multi_str()
        {
            for v in values.iter() {
                if let Some(day) = v.trim().get(..8).and_then(crate::engine::parse_date) {
                    if is_kept {
                        dates.kept.push(day);
                    } else {
                        dates.min = Some(dates.min.map_or(day, |m: i64| m.min(day)));
                        dates.max = Some(dates.max.map_or(day, |m: i64| m.max(day)));
                    }
                }
            }
        }
        let identifying = !is_kept || element.vr() == VR::PN;
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
                value: part.to_ascii_lowercase().into_bytes(),
                source: path.clone(),
                uid: element.vr() == VR::UI,
            });
        }
    }
}

fn scan(
    obj: &InMemDicomObject,
    profile: &Profile,
    prefix: &str,
    depth: usize,
    secrets: &[Secret],
    findings: &mut Vec<Finding>,
) {
    for element in obj.iter() {
        let tag = element.tag();
        let path = format!("{prefix}{}", tag_text(tag));
        let engine = depth == 0 && written_by_engine(profile, tag);
        if tag.0 % 2 == 1
            && !profile.rules.contains_key(&tag)
            && !kept_by_profile(profile, obj, tag, element.vr(), depth, false)
        {
            findings.push(Finding {
                path: path.clone(),
                kind: FindingKind::PrivateAttribute,
                source: None,
            });
        }
        if !engine
            && tag.0 % 2 == 0
            && profile.resolve(tag, depth) == Some(Resolved::Act(Action::X))
        {
            findings.push(Finding {
                path: path.clone(),
                kind: FindingKind::ShouldBeRemoved,
                source: None,
            });
        }
        match element.value() {
            Value::Sequence(seq) if !engine => {
                for (i, item) in seq.items().iter().enumerate() {
                    scan(
                        item,
                        profile,
                        &format!("{path}[{i}]/"),
                        depth + 1,
                        secrets,
                        findings,
                    );
                }
            }
            // The marks are the engine's own fixed text.
            Value::Primitive(p) if tag != tags::PIXEL_DATA && !engine => {
                scan_bytes(
                    &p.to_bytes(),
                    element.vr() == VR::UI,
                    &path,
                    secrets,
                    findings,
                );
            }
            _ => {}
        }
    }
}

fn scan_bytes(
    bytes: &[u8],
    uid_element: bool,
    path: &str,
    secrets: &[Secret],
    findings: &mut Vec<Finding>,
) {
    let mut leak = |secret: &Secret| {
        findings.push(Finding {
            path: path.to_string(),
            kind: FindingKind::LeakedValue,
            source: Some(secret.source.clone()),
        })
    };
    if uid_element {
        for value in bytes.split(|&b| b == b'\\') {
            let value = value.trim_ascii_end();
            let value = value.strip_suffix(b"\0").unwrap_or(value);
            for secret in secrets.iter().filter(|s| s.uid) {
                if value.eq_ignore_ascii_case(&secret.value) {
                    leak(secret);
                }
            }
        }
        return;
    }
    let hay = bytes.to_ascii_lowercase();
    let trimmed = hay.trim_ascii();
    if is_pseudonym(trimmed.strip_suffix(b"\0").unwrap_or(trimmed)) {
        return;
    }
    for secret in secrets {
        if !secret.value.is_empty() && memchr::memmem::find(&hay, &secret.value).is_some() {
            leak(secret);
        }
    }
}

/// The engine's keyed pseudonym (`ANON-` and 8 hex digits): random to anyone without the
/// key, so a short secret found in it is chance.
fn is_pseudonym(v: &[u8]) -> bool {
    v.len() == 13 && v.starts_with(b"anon-") && v[5..].iter().all(|b| b.is_ascii_hexdigit())
}

/// Whether `needle` occurs in `hay`, ignoring ASCII case.
fn contains_ci(hay: &[u8], needle: &[u8]) -> bool {
    !needle.is_empty()
        && hay.len() >= needle.len()
        && hay
            .windows(needle.len())
            .any(|w| w.eq_ignore_ascii_case(needle))
}

/// The input's dates: those the profile shifts (their range) and those it keeps.
#[derive(Default)]
struct Dates {
    min: Option<i64>,
    max: Option<i64>,
    kept: Vec<i64>,
    offset: i64,
}

/// With shifted dates, every date of the output must be a kept input date, the engine's
/// dummy, or inside the input's range moved back by the patient's offset.
fn check_dates(obj: &InMemDicomObject, prefix: &str, dates: &Dates, findings: &mut Vec<Finding>) {
    let dummy = crate::engine::parse_date("19000101");
    for element in obj.iter() {
        let tag = element.tag();
        let path = format!("{prefix}{}", tag_text(tag));
        if let Value::Sequence(seq) = element.value() {
            for (i, item) in seq.items().iter().enumerate() {
                check_dates(item, &format!("{path}[{i}]/"), dates, findings);
            }
            continue;
        }
        if !matches!(element.vr(), VR::DA | VR::DT) {
            continue;
        }
        let Ok(values) = element.to_multi_str() else {
            continue;
        };
        let out_of_range = values.iter().any(|v| {
            let Some(day) = v.trim().get(..8).and_then(crate::engine::parse_date) else {
                return false;
            };
            let in_range = match (dates.min, dates.max) {
                (Some(lo), Some(hi)) => (lo - dates.offset..=hi - dates.offset).contains(&day),
                _ => false,
            };
            !(in_range || dates.kept.contains(&day) || Some(day) == dummy)
        });
        if out_of_range {
            findings.push(Finding {
                path,
                kind: FindingKind::DateOutOfRange,
                source: None,
            });
        }
    }
}
