//! The Annex E engine: walk a data set (recursively into sequences) and apply, to each
//! attribute, the action Table E.1-1 gives it under the chosen options.
//!
//! Choices where the standard leaves one to the implementation, without IOD-specific type
//! tables: X/Z becomes Z, X/D and X/Z/D and Z/D become D (a present value may be Type 1, and
//! a dummy keeps the object valid); X/Z/U* replaces the UIDs inside the sequence. Dummy
//! strings are keyed pseudonyms (`ANON-` and 8 hex digits of a keyed hash of the original),
//! so that grouping by patient or institution survives and nothing of the original leaks.
//! Free text marked C (Clean Descriptors) is emptied: cleaning prose automatically is not
//! reliable. Dates marked C are shifted by a keyed per-patient offset (Modified Dates).

use dicom_core::header::Header;
use dicom_core::value::{DataSetSequence, PrimitiveValue, Value};
use dicom_core::{DataElement, Tag, VR};
use dicom_dictionary_std::tags;
use dicom_object::{DefaultDicomObject, InMemDicomObject};

use crate::pixels::{PixelDecision, mask_pixels};
use crate::profile::{Profile, Resolved};
use crate::table::Action;

/// A secret of the project: UIDs, pseudonyms and date offsets derive from it, so the same
/// input gives the same output across files and runs, and nobody without it can invert them.
#[derive(Clone)]
pub struct DeidKey([u8; 32]);

impl DeidKey {
    /// A key from arbitrary secret bytes (hashed to 32 bytes).
    pub fn from_secret(secret: &[u8]) -> Self {
        DeidKey(*blake3::hash(secret).as_bytes())
    }

    fn hash(&self, domain: &str, value: &[u8]) -> [u8; 32] {
        let mut h = blake3::Hasher::new_keyed(&self.0);
        h.update(domain.as_bytes());
        h.update(&[0]);
        h.update(value);
        *h.finalize().as_bytes()
    }

    /// A 32-byte key for another purpose (the mapping file's cipher), independent of the
    /// hashes above.
    pub(crate) fn derive(&self, purpose: &str) -> [u8; 32] {
        self.hash(purpose, b"derived-key")
    }

    /// The `2.25.` UID that replaces `uid`.
    pub fn map_uid(&self, uid: &str) -> String {
        let digest = self.hash("uid", uid.as_bytes());
        let mut bytes = [0u8; 16];
        bytes.copy_from_slice(&digest[..16]);
        bytes[6] = (bytes[6] & 0x0f) | 0x80;
        bytes[8] = (bytes[8] & 0x3f) | 0x80;
        format!("2.25.{}", u128::from_be_bytes(bytes))
    }

    fn pseudonym(&self, value: &str) -> String {
        let digest = self.hash("pseudonym", value.as_bytes());
        format!(
            "ANON-{:02X}{:02X}{:02X}{:02X}",
            digest[0], digest[1], digest[2], digest[3]
        )
    }

    /// Days to subtract from every date of this patient (1 to 3650).
    pub(crate) fn date_offset_days(&self, patient_id: &str) -> i64 {
        let digest = self.hash("date-offset", patient_id.as_bytes());
        1 + (u64::from_le_bytes(digest[..8].try_into().unwrap()) % 3650) as i64
    }
}

impl std::fmt::Debug for DeidKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("DeidKey(..)") // never print the secret
    }
}

/// Why an object was not de-identified.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum NotDeidentified {
    /// Suspected of burned-in text that no rule cleans: listed for review, not written.
    Review(String),
    /// Its pixels were to be cleaned and could not be.
    PixelCleaning(String),
}

impl std::fmt::Display for NotDeidentified {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            NotDeidentified::Review(why) => write!(f, "routed to review: {why}"),
            NotDeidentified::PixelCleaning(why) => {
                write!(f, "cannot clean the burned-in text: {why}")
            }
        }
    }
}

impl Profile {
    /// De-identify a whole file: the burned-in text policy first (mask the pixels, or
    /// refuse with [`NotDeidentified::Review`]), then [`Profile::apply`].
    pub fn deidentify(&self, file: &mut DefaultDicomObject) -> Result<DeidReport, NotDeidentified> {
        let cleaned = match self.burned_in.decide(file) {
            PixelDecision::Keep => false,
            PixelDecision::Review(why) => return Err(NotDeidentified::Review(why)),
            PixelDecision::Mask(rule) => {
                mask_pixels(file, rule).map_err(NotDeidentified::PixelCleaning)?;
                true
            }
        };
        let mut report = self.attributes(file, cleaned);
        report.pixels_cleaned = cleaned;
        Ok(report)
    }

    /// De-identify the attributes of a file (its data set, and the file meta that names its
    /// UIDs); pixels are not looked at.
    pub fn apply(&self, file: &mut DefaultDicomObject) -> DeidReport {
        self.attributes(file, false)
    }

    /// [`Profile::apply`], marking Clean Pixel Data when the pixels were cleaned.
    fn attributes(&self, file: &mut DefaultDicomObject, pixels_cleaned: bool) -> DeidReport {
        let patient_id = file
            .get(tags::PATIENT_ID)
            .and_then(|e| e.to_str().ok())
            .map(|s| s.trim().to_string())
            .unwrap_or_default();
        let walk = Walk {
            profile: self,
            date_offset: self.key.date_offset_days(&patient_id),
        };
        let mut report = DeidReport::default();
        walk.dataset(file, 0, false, &mut report);
        for (tag, vr, value) in &self.add {
            file.put(DataElement::new(
                *tag,
                *vr,
                PrimitiveValue::from(value.as_str()),
            ));
            report.added += 1;
        }
        // Text the profile writes that is not ASCII (a replacement, an added value) may not be
        // representable in the file's character set: declare UTF-8, in which every value
        // (all held as text) is written again.
        let non_ascii = self.add.iter().any(|(_, _, v)| !v.is_ascii())
            || self
                .rules
                .values()
                .any(|r| matches!(r, crate::profile::Rule::Replace(v) if !v.is_ascii()));
        if non_ascii {
            file.put(DataElement::new(
                tags::SPECIFIC_CHARACTER_SET,
                VR::CS,
                PrimitiveValue::from("ISO_IR 192"),
            ));
        }
        self.mark(file, pixels_cleaned);
        if let Some(uid) = file
            .get(tags::SOP_INSTANCE_UID)
            .and_then(|e| e.to_str().ok())
            .map(|s| s.trim_end_matches('\0').to_string())
        {
            file.meta_mut().media_storage_sop_instance_uid = uid;
        }
        file.meta_mut().update_information_group_length();
        report
    }

    /// Patient Identity Removed, De-identification Method and its code sequence: the Basic
    /// Profile's code when the profile meets it, and the codes of the options it claims.
    fn mark(&self, obj: &mut InMemDicomObject, pixels_cleaned: bool) {
        obj.put(DataElement::new(
            tags::PATIENT_IDENTITY_REMOVED,
            VR::CS,
            PrimitiveValue::from("YES"),
        ));
        let mut codes: Vec<(&str, &str)> = Vec::new();
        if self.claims_basic {
            codes.push(("113100", "Basic Application Confidentiality Profile"));
        }
        if pixels_cleaned {
            codes.push(("113101", "Clean Pixel Data Option"));
        }
        codes.extend(self.claimed.iter().map(|o| o.code()));
        let method = if self.name == "annex-e-basic" {
            "radlab: DICOM PS3.15 Annex E Basic Profile".to_string()
        } else if self.claims_basic {
            format!(
                "radlab profile {} (PS3.15 Annex E Basic Profile)",
                self.name
            )
        } else {
            format!(
                "radlab profile {} (does not meet the Basic Profile)",
                self.name
            )
        };
        // A method recorded by an earlier de-identification stays, ours follows.
        let mut values: Vec<String> = obj
            .get(tags::DEIDENTIFICATION_METHOD)
            .and_then(|e| e.to_multi_str().ok().map(|v| v.to_vec()))
            .unwrap_or_default()
            .into_iter()
            .map(|v| v.trim_matches(['\0', ' ']).to_string())
            .filter(|v| !v.is_empty() && !v.starts_with("radlab"))
            .collect();
        let earlier = values.len();
        values.push(truncate_lo(&method));
        values.extend(
            codes
                .iter()
                .skip(1)
                .map(|(_, meaning)| truncate_lo(meaning)),
        );
        let mut seen = std::collections::HashSet::new();
        let mut i = 0;
        values.retain(|v| {
            i += 1;
            i <= earlier || seen.insert(v.clone())
        });
        obj.put(DataElement::new(
            tags::DEIDENTIFICATION_METHOD,
            VR::LO,
            PrimitiveValue::Strs(values.into()),
        ));
        if codes.is_empty() {
            // Nothing of ours to claim; codes of an earlier de-identification stay.
            return;
        }
        let mut items: Vec<InMemDicomObject> = match obj
            .get(tags::DEIDENTIFICATION_METHOD_CODE_SEQUENCE)
            .map(|e| e.value())
        {
            Some(Value::Sequence(seq)) => seq.items().to_vec(),
            _ => Vec::new(),
        };
        let has = |items: &[InMemDicomObject], code: &str| {
            items.iter().any(|i| {
                i.get(tags::CODE_VALUE)
                    .and_then(|e| e.to_str().ok())
                    .is_some_and(|v| v.trim() == code)
            })
        };
        let ours: Vec<(&str, &str)> = codes.into_iter().filter(|(c, _)| !has(&items, c)).collect();
        items.extend(ours.into_iter().map(|(value, meaning)| {
            InMemDicomObject::from_element_iter([
                DataElement::new(tags::CODE_VALUE, VR::SH, PrimitiveValue::from(value)),
                DataElement::new(
                    tags::CODING_SCHEME_DESIGNATOR,
                    VR::SH,
                    PrimitiveValue::from("DCM"),
                ),
                DataElement::new(tags::CODE_MEANING, VR::LO, PrimitiveValue::from(meaning)),
            ])
        }));
        obj.put(DataElement::new(
            tags::DEIDENTIFICATION_METHOD_CODE_SEQUENCE,
            VR::SQ,
            DataSetSequence::from(items),
        ));
    }
}

/// LO holds at most 64 characters.
fn truncate_lo(s: &str) -> String {
    s.chars().take(64).collect()
}

/// What was done, by action.
#[derive(Debug, Default, Clone, PartialEq, Eq, serde::Serialize)]
pub struct DeidReport {
    pub removed: usize,
    pub emptied: usize,
    pub dummied: usize,
    pub replaced: usize,
    pub uids_replaced: usize,
    pub dates_shifted: usize,
    pub kept_listed: usize,
    pub safe_private_kept: usize,
    pub added: usize,
    pub pixels_cleaned: bool,
}

struct Walk<'a> {
    profile: &'a Profile,
    date_offset: i64,
}

/// The private creator of the block holding private `tag`, from the same data set.
pub(crate) fn private_creator(obj: &InMemDicomObject, tag: Tag) -> Option<String> {
    if tag.0.is_multiple_of(2) || tag.1 < 0x0010 {
        return None;
    }
    let creator_tag = if tag.1 <= 0x00FF {
        tag
    } else {
        Tag(tag.0, tag.1 >> 8)
    };
    obj.get(creator_tag)
        .and_then(|e| e.to_str().ok())
        .map(|s| s.trim_matches(['\0', ' ']).to_string())
}

impl Walk<'_> {
    /// `content`: inside a Content Sequence (structured content), where free text, names,
    /// dates and UIDs of content items are cleaned though the table does not list them.
    fn dataset(
        &self,
        obj: &mut InMemDicomObject,
        depth: usize,
        content: bool,
        report: &mut DeidReport,
    ) {
        let tags: Vec<Tag> = obj.tags().collect();
        // Removing Overlay Data (60xx,3000) would leave an Overlay Plane module without its
        // Type 1 data, which breaks the object (dciodvfy): the whole group goes with it.
        let drop_overlays = matches!(
            self.profile.resolve(Tag(0x6000, 0x3000), depth),
            Some(Resolved::Act(Action::X))
        );
        // Private attributes are judged with their block's creator, read before anything
        // is removed.
        let creators: Vec<(Tag, Option<String>)> = tags
            .iter()
            .filter(|t| t.0 % 2 == 1)
            .map(|t| (*t, private_creator(obj, *t)))
            .collect();
        for tag in tags {
            if drop_overlays && (0x6000..=0x601E).contains(&tag.0) && tag.0 % 2 == 0 {
                obj.remove_element(tag);
                report.removed += 1;
                continue;
            }
            if tag.0 % 2 == 1 && !self.profile.rules.contains_key(&tag) {
                let creator = creators
                    .iter()
                    .find(|(t, _)| *t == tag)
                    .and_then(|(_, c)| c.as_deref());
                let action = self.profile.resolve(tag, depth);
                let keep = matches!(action, Some(Resolved::Act(Action::C)))
                    && self.profile.is_safe_private(tag, creator);
                if !keep {
                    obj.remove_element(tag);
                    report.removed += 1;
                    continue;
                }
                report.safe_private_kept += 1;
            }
            let Some(element) = obj.take(tag) else {
                continue;
            };
            if let Some(replacement) = self.element(element, depth, content, report) {
                obj.put(replacement);
            }
        }
        // A private creator whose block lost every element goes too.
        let orphans: Vec<Tag> = obj
            .tags()
            .filter(|t| t.0 % 2 == 1 && (0x0010..=0x00FF).contains(&t.1))
            .filter(|c| {
                !obj.tags()
                    .any(|t| t.0 == c.0 && t.1 > 0x00FF && (t.1 >> 8) == c.1)
            })
            .collect();
        for tag in orphans {
            obj.remove_element(tag);
            report.removed += 1;
        }
    }

    /// The element after its action, or `None` when it is removed.
    fn element(
        &self,
        element: DataElement<InMemDicomObject>,
        depth: usize,
        content: bool,
        report: &mut DeidReport,
    ) -> Option<DataElement<InMemDicomObject>> {
        let tag = element.tag();
        let vr = element.vr();
        let resolved = self.profile.resolve(tag, depth).or_else(|| {
            content
                .then(|| crate::profile::content_item_action(tag, vr, self.shifts_dates()))
                .flatten()
                .map(Resolved::Act)
        });
        let action = match resolved {
            None => {
                // Not listed: kept, but sequences are walked for listed attributes inside.
                return Some(self.recurse(element, depth, content, report));
            }
            Some(Resolved::Replace(value)) => {
                report.replaced += 1;
                return Some(DataElement::new(tag, vr, PrimitiveValue::from(value)));
            }
            Some(Resolved::Act(action)) => action,
        };
        let present = !element
            .value()
            .primitive()
            .is_some_and(|p| p.to_str().trim().is_empty());
        let action = match action {
            Action::XZ => Action::Z,
            Action::XD | Action::XZD => Action::D,
            Action::ZD if present => Action::D,
            Action::ZD => Action::Z,
            other => other,
        };
        match action {
            Action::X => {
                report.removed += 1;
                None
            }
            Action::Z => {
                report.emptied += 1;
                Some(empty(tag, vr))
            }
            Action::D => {
                if vr == VR::SQ {
                    return Some(self.recurse(element, depth, content, report));
                }
                if vr == VR::UI {
                    report.uids_replaced += 1;
                    return Some(self.uid(element));
                }
                report.dummied += 1;
                Some(self.dummy(element))
            }
            Action::U | Action::XZUStar => {
                if vr == VR::SQ {
                    Some(self.recurse(element, depth, content, report))
                } else if vr == VR::UI {
                    report.uids_replaced += 1;
                    Some(self.uid(element))
                } else {
                    report.emptied += 1;
                    Some(empty(tag, vr))
                }
            }
            Action::C => match vr {
                VR::SQ => Some(self.recurse(element, depth, content, report)),
                VR::DA | VR::DT => {
                    report.dates_shifted += 1;
                    Some(self.shift_dates(element))
                }
                VR::TM => {
                    report.kept_listed += 1;
                    Some(element)
                }
                VR::UI => {
                    report.uids_replaced += 1;
                    Some(self.uid(element))
                }
                // A safe private attribute (judged by the caller).
                _ if tag.0 % 2 == 1 => Some(element),
                _ => {
                    report.emptied += 1;
                    Some(empty(tag, vr))
                }
            },
            Action::K => {
                report.kept_listed += 1;
                Some(self.recurse(element, depth, content, report))
            }
            Action::XZ | Action::XD | Action::XZD | Action::ZD => unreachable!("resolved above"),
        }
    }

    /// Walk the items of a sequence; other elements pass through.
    fn recurse(
        &self,
        element: DataElement<InMemDicomObject>,
        depth: usize,
        content: bool,
        report: &mut DeidReport,
    ) -> DataElement<InMemDicomObject> {
        let tag = element.tag();
        let content = content || tag == tags::CONTENT_SEQUENCE;
        let vr = element.vr();
        match element.into_value() {
            Value::Sequence(seq) => {
                let items: Vec<InMemDicomObject> = seq
                    .into_items()
                    .into_iter()
                    .map(|mut item| {
                        self.dataset(&mut item, depth + 1, content, report);
                        item
                    })
                    .collect();
                DataElement::new(tag, VR::SQ, DataSetSequence::from(items))
            }
            other => DataElement::new(tag, vr, other),
        }
    }

    fn uid(&self, element: DataElement<InMemDicomObject>) -> DataElement<InMemDicomObject> {
        let tag = element.tag();
        let mapped: Vec<String> = element
            .to_multi_str()
            .map(|v| v.to_vec())
            .unwrap_or_default()
            .iter()
            .map(|u| u.trim_end_matches(['\0', ' ']))
            .filter(|u| !u.is_empty())
            .map(|u| self.profile.key.map_uid(u))
            .collect();
        DataElement::new(tag, VR::UI, PrimitiveValue::Strs(mapped.into()))
    }

    fn dummy(&self, element: DataElement<InMemDicomObject>) -> DataElement<InMemDicomObject> {
        let tag = element.tag();
        let vr = element.vr();
        let original = element.to_str().map(|s| s.to_string()).unwrap_or_default();
        let value = match vr {
            VR::DA | VR::DT if self.shifts_dates() => return self.shift_dates(element),
            VR::DA => PrimitiveValue::from("19000101"),
            VR::DT => PrimitiveValue::from("19000101000000"),
            VR::TM => PrimitiveValue::from("000000"),
            VR::AS => PrimitiveValue::from("000D"),
            VR::IS | VR::DS => PrimitiveValue::from("0"),
            VR::PN | VR::LO | VR::SH | VR::CS | VR::LT | VR::ST | VR::UT | VR::UC | VR::AE => {
                PrimitiveValue::from(self.profile.key.pseudonym(original.trim()))
            }
            VR::US => PrimitiveValue::from(0u16),
            VR::SS => PrimitiveValue::from(0i16),
            VR::UL => PrimitiveValue::from(0u32),
            VR::SL => PrimitiveValue::from(0i32),
            VR::FL => PrimitiveValue::from(0f32),
            VR::FD => PrimitiveValue::from(0f64),
            _ => PrimitiveValue::Empty,
        };
        DataElement::new(tag, vr, value)
    }

    fn shifts_dates(&self) -> bool {
        self.profile.shifts_dates()
    }

    /// Shift every date of a DA or DT value back by the patient's offset (times kept).
    fn shift_dates(&self, element: DataElement<InMemDicomObject>) -> DataElement<InMemDicomObject> {
        let tag = element.tag();
        let vr = element.vr();
        let values = element
            .to_multi_str()
            .map(|v| v.to_vec())
            .unwrap_or_default();
        let shifted: Vec<String> = values
            .iter()
            .map(|v| {
                let v = v.trim();
                match v.get(..8).and_then(parse_date) {
                    Some(days) => format!("{}{}", format_date(days - self.date_offset), &v[8..]),
                    // Not a date we can read: drop it rather than leak it.
                    None => String::new(),
                }
            })
            .collect();
        DataElement::new(tag, vr, PrimitiveValue::Strs(shifted.into()))
    }
}

fn empty(tag: Tag, vr: VR) -> DataElement<InMemDicomObject> {
    if vr == VR::SQ {
        DataElement::new(tag, VR::SQ, DataSetSequence::<InMemDicomObject>::empty())
    } else {
        DataElement::new(tag, vr, PrimitiveValue::Empty)
    }
}

/// Days since 1970-01-01 of a `YYYYMMDD` date.
pub(crate) fn parse_date(s: &str) -> Option<i64> {
    if s.len() != 8 || !s.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let y: i64 = s[..4].parse().ok()?;
    let m: i64 = s[4..6].parse().ok()?;
    let d: i64 = s[6..8].parse().ok()?;
    if !(1..=12).contains(&m) || !(1..=31).contains(&d) {
        return None;
    }
    // Howard Hinnant's days_from_civil.
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    Some(era * 146097 + doe - 719468)
}

fn format_date(days: i64) -> String {
    let z = days + 719468;
    let era = z.div_euclid(146097);
    let doe = z - era * 146097;
    let yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + if m <= 2 { 1 } else { 0 };
    format!("{y:04}{m:02}{d:02}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates_round_trip_through_day_numbers() {
        for d in ["19700101", "20000229", "20241231", "18991231", "20260301"] {
            assert_eq!(format_date(parse_date(d).unwrap()), d);
        }
        assert_eq!(
            parse_date("20240301").unwrap() - parse_date("20240229").unwrap(),
            1
        );
        assert_eq!(parse_date("2024.03.01"), None);
    }
}
