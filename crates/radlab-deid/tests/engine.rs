//! The Annex E engine: each action code and option on a hand-built data set, and the basic
//! profile on every DICOM file of the shared corpus.

use dicom_core::value::{DataSetSequence, PrimitiveValue, Value};
use dicom_core::{DataElement, Tag, VR};
use dicom_dictionary_std::{tags, uids};
use dicom_object::{DefaultDicomObject, FileMetaTableBuilder, InMemDicomObject};
use radlab_deid::{Action, DeidKey, DeidOption, Profile};
use radlab_dicom::DicomFile;
use radlab_testkit::corpus;

fn key() -> DeidKey {
    DeidKey::from_secret(b"test project key")
}

fn s(obj: &InMemDicomObject, tag: Tag) -> Option<String> {
    obj.get(tag).map(|e| {
        e.to_str()
            .map(|v| v.trim_end_matches(['\0', ' ']).to_string())
            .unwrap_or_default()
    })
}

/// The items of a sequence element.
fn items(obj: &InMemDicomObject, tag: Tag) -> Vec<InMemDicomObject> {
    match obj.get(tag).map(|e| e.value()) {
        Some(Value::Sequence(seq)) => seq.items().to_vec(),
        other => panic!("{tag:?} is not a sequence: {other:?}"),
    }
}

fn sample() -> DefaultDicomObject {
    let str_el = |tag, vr, v: &str| DataElement::new(tag, vr, PrimitiveValue::from(v));
    let referenced = InMemDicomObject::from_element_iter([
        str_el(
            tags::REFERENCED_SOP_CLASS_UID,
            VR::UI,
            uids::COMPUTED_RADIOGRAPHY_IMAGE_STORAGE,
        ),
        str_el(tags::REFERENCED_SOP_INSTANCE_UID, VR::UI, "1.2.3.4.5.6.7"),
    ]);
    let obj = InMemDicomObject::from_element_iter([
        str_el(
            tags::SOP_CLASS_UID,
            VR::UI,
            uids::COMPUTED_RADIOGRAPHY_IMAGE_STORAGE,
        ),
        str_el(tags::SOP_INSTANCE_UID, VR::UI, "1.2.3.4.5.6.8"),
        str_el(tags::STUDY_INSTANCE_UID, VR::UI, "1.2.3.4.5"),
        str_el(tags::STUDY_DATE, VR::DA, "20240229"),
        str_el(tags::CONTENT_DATE, VR::DA, "20240301"),
        str_el(tags::ACCESSION_NUMBER, VR::SH, "ACC12345"),
        str_el(tags::PATIENT_NAME, VR::PN, "Doe^Jane"),
        str_el(tags::PATIENT_ID, VR::LO, "PID-0042"),
        str_el(tags::PATIENT_BIRTH_DATE, VR::DA, "19600101"),
        str_el(tags::PATIENT_SEX, VR::CS, "F"),
        str_el(tags::PATIENT_AGE, VR::AS, "064Y"),
        str_el(tags::INSTITUTION_NAME, VR::LO, "St Elsewhere"),
        str_el(tags::STATION_NAME, VR::SH, "CR-ROOM-3"),
        str_el(tags::DEVICE_SERIAL_NUMBER, VR::LO, "SN-998877"),
        str_el(tags::STUDY_DESCRIPTION, VR::LO, "CHEST PA for Jane Doe"),
        str_el(tags::MODALITY, VR::CS, "CR"),
        str_el(tags::BODY_PART_EXAMINED, VR::CS, "CHEST"),
        DataElement::new(
            tags::REFERENCED_IMAGE_SEQUENCE,
            VR::SQ,
            DataSetSequence::from(vec![referenced]),
        ),
        str_el(Tag(0x0009, 0x0010), VR::LO, "ACME 1.0"),
        str_el(Tag(0x0009, 0x1001), VR::LO, "Jane Doe's secret"),
        DataElement::new(
            Tag(0x6000, 0x3000),
            VR::OW,
            PrimitiveValue::U16(vec![0u16; 4].into()),
        ),
        str_el(Tag(0x6000, 0x4000), VR::LT, "overlay comment"),
        DataElement::new(
            tags::PIXEL_DATA,
            VR::OW,
            PrimitiveValue::U16(vec![1u16, 2, 3, 4].into()),
        ),
    ]);
    obj.with_meta(
        FileMetaTableBuilder::new()
            .transfer_syntax(uids::EXPLICIT_VR_LITTLE_ENDIAN)
            .media_storage_sop_class_uid(uids::COMPUTED_RADIOGRAPHY_IMAGE_STORAGE)
            .media_storage_sop_instance_uid("1.2.3.4.5.6.8"),
    )
    .unwrap()
}

#[test]
fn the_table_holds_the_standards_rows_and_resolves_options() {
    assert_eq!(radlab_deid::annex_e_entries().len(), 621);
    let basic = Profile::annex_e(key(), []).unwrap();
    assert_eq!(basic.action_for(tags::PATIENT_NAME), Some(Action::Z));
    assert_eq!(basic.action_for(tags::SOP_INSTANCE_UID), Some(Action::U));
    assert_eq!(basic.action_for(Tag(0x6002, 0x3000)), Some(Action::X));
    assert_eq!(basic.action_for(Tag(0x5010, 0x0005)), Some(Action::X));
    assert_eq!(basic.action_for(Tag(0x0029, 0x1010)), Some(Action::X));
    assert_eq!(basic.action_for(tags::MODALITY), None);
    let dates = Profile::annex_e(key(), [DeidOption::RetainLongitudinalModifiedDates]).unwrap();
    assert_eq!(dates.action_for(tags::CONTENT_DATE), Some(Action::C));
    let full = Profile::annex_e(key(), [DeidOption::RetainLongitudinalFullDates]).unwrap();
    assert_eq!(full.action_for(tags::CONTENT_DATE), Some(Action::K));
    assert!(
        Profile::annex_e(
            key(),
            [
                DeidOption::RetainLongitudinalFullDates,
                DeidOption::RetainLongitudinalModifiedDates
            ]
        )
        .is_err()
    );
}

#[test]
fn basic_profile_applies_each_action_code() {
    let mut obj = sample();
    let report = Profile::annex_e(key(), []).unwrap().apply(&mut obj);
    // Z: emptied
    assert_eq!(s(&obj, tags::PATIENT_NAME).as_deref(), Some(""));
    assert_eq!(s(&obj, tags::ACCESSION_NUMBER).as_deref(), Some(""));
    // X: removed (private, overlays, device serial)
    assert!(obj.get(Tag(0x0009, 0x1001)).is_none());
    assert!(obj.get(Tag(0x0009, 0x0010)).is_none());
    assert!(obj.get(Tag(0x6000, 0x3000)).is_none());
    assert!(obj.get(Tag(0x6000, 0x4000)).is_none());
    assert!(obj.get(tags::STUDY_DESCRIPTION).is_none());
    // U: UIDs replaced consistently, file meta follows
    let sop = s(&obj, tags::SOP_INSTANCE_UID).unwrap();
    assert_eq!(sop, key().map_uid("1.2.3.4.5.6.8"));
    assert!(sop.starts_with("2.25."));
    assert_eq!(obj.meta().media_storage_sop_instance_uid(), sop);
    // X/Z/U*: the referenced instance inside the sequence is remapped the same way.
    let seq = items(&obj, tags::REFERENCED_IMAGE_SEQUENCE);
    assert_eq!(
        s(&seq[0], tags::REFERENCED_SOP_INSTANCE_UID).unwrap(),
        key().map_uid("1.2.3.4.5.6.7")
    );
    // D (Z/D with a value): a keyed pseudonym, the same for the same patient everywhere.
    let pid = s(&obj, tags::PATIENT_ID).unwrap();
    assert!(pid.starts_with("ANON-") && !pid.contains("0042"), "{pid}");
    // Not listed: kept.
    assert_eq!(s(&obj, tags::MODALITY).as_deref(), Some("CR"));
    assert_eq!(s(&obj, tags::BODY_PART_EXAMINED).as_deref(), Some("CHEST"));
    // Marked as de-identified, with the method's codes.
    assert_eq!(
        s(&obj, tags::PATIENT_IDENTITY_REMOVED).as_deref(),
        Some("YES")
    );
    let codes = items(&obj, tags::DEIDENTIFICATION_METHOD_CODE_SEQUENCE);
    assert_eq!(s(&codes[0], tags::CODE_VALUE).as_deref(), Some("113100"));
    // Pixel data untouched.
    assert_eq!(
        obj.get(tags::PIXEL_DATA)
            .unwrap()
            .to_bytes()
            .unwrap()
            .as_ref(),
        &[1u8, 0, 2, 0, 3, 0, 4, 0]
    );
    assert!(report.removed >= 5 && report.uids_replaced >= 3);
}

#[test]
fn options_keep_or_clean_what_they_name() {
    let options = [
        DeidOption::RetainLongitudinalModifiedDates,
        DeidOption::RetainPatientCharacteristics,
        DeidOption::RetainDeviceIdentity,
        DeidOption::RetainInstitutionIdentity,
        DeidOption::RetainUids,
    ];
    let mut obj = sample();
    Profile::annex_e(key(), options).unwrap().apply(&mut obj);
    // Modified dates: shifted by the same per-patient offset, so intervals survive.
    let study = s(&obj, tags::STUDY_DATE).unwrap();
    let content = s(&obj, tags::CONTENT_DATE).unwrap();
    assert_ne!(study, "20240229");
    assert!(content > study, "{study} .. {content}");
    assert_eq!(s(&obj, tags::PATIENT_SEX).as_deref(), Some("F"));
    assert_eq!(s(&obj, tags::PATIENT_AGE).as_deref(), Some("064Y"));
    assert_eq!(
        s(&obj, tags::DEVICE_SERIAL_NUMBER).as_deref(),
        Some("SN-998877")
    );
    assert_eq!(s(&obj, tags::STATION_NAME).as_deref(), Some("CR-ROOM-3"));
    assert_eq!(
        s(&obj, tags::INSTITUTION_NAME).as_deref(),
        Some("St Elsewhere")
    );
    assert_eq!(
        s(&obj, tags::SOP_INSTANCE_UID).as_deref(),
        Some("1.2.3.4.5.6.8")
    );
    let codes = items(&obj, tags::DEIDENTIFICATION_METHOD_CODE_SEQUENCE);
    assert_eq!(codes.len(), 1 + options.len());

    // Full dates: kept as they were.
    let mut obj = sample();
    Profile::annex_e(key(), [DeidOption::RetainLongitudinalFullDates])
        .unwrap()
        .apply(&mut obj);
    assert_eq!(s(&obj, tags::STUDY_DATE).as_deref(), Some("20240229"));
}

#[test]
fn the_interval_between_two_dates_of_a_patient_survives_the_shift() {
    let mut obj = sample();
    Profile::annex_e(key(), [DeidOption::RetainLongitudinalModifiedDates])
        .unwrap()
        .apply(&mut obj);
    // 2024-02-29 and 2024-03-01 are one day apart before and after.
    let study = s(&obj, tags::STUDY_DATE).unwrap();
    let content = s(&obj, tags::CONTENT_DATE).unwrap();
    let next = |d: &str| -> String {
        // the day after d, computed independently with a tiny calendar
        let (mut y, mut m, mut dd): (i32, u32, u32) = (
            d[..4].parse().unwrap(),
            d[4..6].parse().unwrap(),
            d[6..].parse().unwrap(),
        );
        let leap = (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
        let len = [
            31,
            if leap { 29 } else { 28 },
            31,
            30,
            31,
            30,
            31,
            31,
            30,
            31,
            30,
            31,
        ][m as usize - 1];
        dd += 1;
        if dd > len {
            dd = 1;
            m += 1;
            if m > 12 {
                m = 1;
                y += 1;
            }
        }
        format!("{y:04}{m:02}{dd:02}")
    };
    assert_eq!(next(&study), content);
}

/// Values of the input that the basic profile must not let through: names, IDs, dates,
/// UIDs of elements the table removes, empties or replaces (`listed`), and, to exclude them,
/// values that unlisted (kept) elements also carry (`kept`: a manufacturer named again in a
/// private creator).
fn identifying_values(
    obj: &InMemDicomObject,
    profile: &Profile,
    out: &mut Vec<String>,
    kept: &mut Vec<String>,
) {
    for element in obj.iter() {
        let tag = element.header().tag;
        if let Value::Sequence(seq) = element.value() {
            for item in seq.items() {
                identifying_values(item, profile, out, kept);
            }
            continue;
        }
        let listed = profile.action_for(tag).is_some_and(|a| a != Action::K);
        if !matches!(
            element.vr(),
            VR::PN | VR::LO | VR::SH | VR::UI | VR::DA | VR::LT | VR::ST
        ) {
            continue;
        }
        let target = if listed { &mut *out } else { &mut *kept };
        if let Ok(v) = element.to_str() {
            for part in v.split('\\') {
                let part = part.trim_matches(['\0', ' ']);
                if part.len() >= 6 {
                    target.push(part.to_string());
                }
            }
        }
    }
}

fn all_strings(obj: &InMemDicomObject, out: &mut Vec<String>) {
    for element in obj.iter() {
        if let Value::Sequence(seq) = element.value() {
            for item in seq.items() {
                all_strings(item, out);
            }
        } else if element.vr() != VR::OB
            && element.vr() != VR::OW
            && element.header().tag != tags::PIXEL_DATA
            && let Ok(v) = element.to_str()
        {
            out.push(v.to_string());
        }
    }
}

/// A digest of Pixel Data: native bytes, or the fragments of encapsulated data (the basic
/// offset table is an index that a writer may rebuild, not pixels).
fn pixel_digest(obj: &InMemDicomObject) -> Option<String> {
    let value = obj.get(tags::PIXEL_DATA)?.value();
    let mut h = blake3::Hasher::new();
    match value {
        Value::Primitive(p) => {
            h.update(&p.to_bytes());
        }
        Value::PixelSequence(seq) => {
            // Odd-length fragments (non-conformant inputs) are written padded to even length
            // with one zero byte, as PS3.5 A.4 requires: compare without that pad.
            for f in seq.fragments() {
                let f = if f.len() % 2 == 0 && f.last() == Some(&0) && f.len() > 1 {
                    &f[..f.len() - 1]
                } else {
                    &f[..]
                };
                h.update(f);
                h.update(b"|");
            }
        }
        Value::Sequence(_) => {}
    }
    Some(h.finalize().to_hex().to_string())
}

#[test]
fn basic_profile_on_every_corpus_file_leaves_no_listed_identifier_and_keeps_pixels() {
    let Some(corpus) = corpus("deid_basic_profile_on_the_corpus") else {
        return;
    };
    let profile = Profile::annex_e(key(), []).unwrap();
    let mut checked = 0;
    for row in corpus.dicom_rows() {
        let Ok(file) = DicomFile::open(corpus.path(&row.path)) else {
            continue;
        };
        let mut obj = file.into_object();
        let (mut before, mut kept) = (Vec::new(), Vec::new());
        identifying_values(&obj, &profile, &mut before, &mut kept);
        // (and the dummy date itself, which some inputs already carry)
        before.retain(|v| v != "19000101" && !kept.iter().any(|k| k.contains(v.as_str())));
        let pixels_before = pixel_digest(&obj);
        profile.apply(&mut obj);
        // Written and read back: still a valid Part 10 object.
        let mut bytes = Vec::new();
        obj.write_all(&mut bytes)
            .unwrap_or_else(|e| panic!("{}: {e}", row.path));
        let back = DicomFile::from_bytes(&bytes).unwrap_or_else(|e| panic!("{}: {e}", row.path));
        let back = back.object();
        let mut after = Vec::new();
        all_strings(back, &mut after);
        let text = after.join("\n");
        for value in &before {
            assert!(
                !text.contains(value.as_str()),
                "{}: {value:?} survived",
                row.path
            );
        }
        assert_eq!(
            s(back, tags::PATIENT_IDENTITY_REMOVED).as_deref(),
            Some("YES")
        );
        assert!(
            back.iter().all(|e| e.header().tag.0 % 2 == 0),
            "{}: private tags left",
            row.path
        );
        assert_eq!(
            pixel_digest(back),
            pixels_before,
            "{}: pixel data changed",
            row.path
        );
        checked += 1;
    }
    assert!(checked >= 45, "only {checked} files checked");
}

#[test]
fn the_verifier_finds_nothing_after_every_profile_and_flags_an_untouched_copy() {
    let Some(corpus) = corpus("verifier_on_the_corpus") else {
        return;
    };
    let profile = Profile::annex_e(key(), []).unwrap();
    // Every preset, and the basic profile with each option (the two date options apart).
    let mut profiles = vec![
        Profile::annex_e(key(), [DeidOption::RetainLongitudinalModifiedDates]).unwrap(),
        Profile::named("vindr-cxr", key(), []).unwrap(),
        Profile::named("vindr-mammo", key(), []).unwrap(),
        Profile::named(
            "vindr-mammo",
            key(),
            [DeidOption::RetainLongitudinalModifiedDates],
        )
        .unwrap(),
    ];
    for option in DeidOption::ALL {
        profiles.push(Profile::annex_e(key(), [option]).unwrap());
    }
    profiles.push(profile.clone());
    let mut leaks_seen = 0;
    for row in corpus.dicom_rows() {
        let Ok(file) = DicomFile::open(corpus.path(&row.path)) else {
            continue;
        };
        let input = file.into_object();
        for p in &profiles {
            let mut output = input.clone();
            p.apply(&mut output);
            // What is checked is what a reader gets back from the written file.
            let mut bytes = Vec::new();
            output.write_all(&mut bytes).unwrap();
            let back = DicomFile::from_bytes(&bytes).unwrap().into_object();
            let findings = radlab_deid::verify_against(&input, &back, p);
            assert!(
                findings.is_empty(),
                "{} ({} {:?}): {findings:?}",
                row.path,
                p.name(),
                p.options()
            );
            assert_eq!(
                pixel_digest(&back),
                pixel_digest(&input),
                "{} ({}): pixel data changed",
                row.path,
                p.name()
            );
        }
        // Not de-identified at all: the verifier must say so (at least its UIDs leak).
        let findings = radlab_deid::verify_against(&input, &input, &profile);
        assert!(!findings.is_empty(), "{}", row.path);
        leaks_seen += findings
            .iter()
            .filter(|f| f.kind == radlab_deid::FindingKind::LeakedValue)
            .count();
    }
    assert!(
        leaks_seen > 100,
        "the verifier found only {leaks_seen} leaks in raw inputs"
    );
}

#[test]
fn overlays_go_as_a_whole_group_unless_graphics_are_kept() {
    let mut obj = sample();
    obj.put(DataElement::new(
        Tag(0x6000, 0x0010),
        VR::US,
        PrimitiveValue::from(2u16),
    ));
    Profile::annex_e(key(), []).unwrap().apply(&mut obj);
    assert!(
        obj.iter()
            .all(|e| !(0x6000..=0x601E).contains(&e.header().tag.0))
    );
    let mut obj = sample();
    obj.put(DataElement::new(
        Tag(0x6000, 0x0010),
        VR::US,
        PrimitiveValue::from(2u16),
    ));
    Profile::annex_e(key(), [DeidOption::CleanGraphics])
        .unwrap()
        .apply(&mut obj);
    assert!(obj.get(Tag(0x6000, 0x0010)).is_some());
}

/// Every exact row of Table E.1-1 whose attribute holds text, with a value, under the basic
/// profile: each action code (and each compound code, as this engine resolves it) does what
/// PS3.15 E.1.1 says.
#[test]
fn every_table_row_gets_its_action() {
    use dicom_core::dictionary::{DataDictionary, DataDictionaryEntry};
    use dicom_dictionary_std::StandardDataDictionary;
    let profile = Profile::annex_e(key(), []).unwrap();
    let mut seen = std::collections::BTreeSet::new();
    for entry in radlab_deid::annex_e_entries() {
        let radlab_deid::TagPattern::Exact(g, e) = entry.tag else {
            continue;
        };
        let tag = Tag(g, e);
        let Some(vr) = StandardDataDictionary
            .by_tag(tag)
            .and_then(|d| d.vr().exact())
        else {
            continue;
        };
        let value = match vr {
            VR::LO | VR::SH | VR::PN | VR::LT | VR::ST | VR::UT | VR::UC | VR::CS => {
                "SECRET VALUE 1"
            }
            VR::DA => "20240115",
            VR::UI => "1.2.3.99.4",
            _ => continue,
        };
        if tag.0 == 0x0002 || tag.0 == 0x0000 || tag == tags::SPECIFIC_CHARACTER_SET {
            continue; // file meta and command elements are not data set attributes
        }
        let mut obj = sample();
        obj.put(DataElement::new(tag, vr, PrimitiveValue::from(value)));
        profile.apply(&mut obj);
        let got = s(&obj, tag);
        let what = format!("{} {tag:?} {:?}", entry.name, entry.basic);
        match entry.basic {
            Action::X => assert!(got.is_none(), "{what}: kept {got:?}"),
            Action::Z | Action::XZ => assert_eq!(got.as_deref(), Some(""), "{what}"),
            Action::K => assert_eq!(got.as_deref(), Some(value), "{what}"),
            Action::D | Action::XD | Action::XZD | Action::ZD | Action::U | Action::C => {
                let got = got.unwrap_or_else(|| panic!("{what}: removed"));
                assert!(!got.is_empty() && got != value, "{what}: {got:?}");
                if vr == VR::UI {
                    assert_eq!(got, key().map_uid(value), "{what}");
                }
            }
            Action::XZUStar => {
                assert!(
                    got.is_none_or(|g| g.is_empty() || g.starts_with("2.25.")),
                    "{what}"
                )
            }
        }
        seen.insert(format!("{:?}", entry.basic));
    }
    // Every code of the table was exercised on a text attribute.
    for code in ["X", "Z", "D", "U", "XZ", "XD", "XZD", "ZD"] {
        assert!(seen.contains(code), "no row with {code}: {seen:?}");
    }
}

#[test]
fn clean_descriptors_and_structured_content_keep_the_attribute_and_clean_its_text() {
    let mut obj = sample();
    let text_item = InMemDicomObject::from_element_iter([
        DataElement::new(tags::VALUE_TYPE, VR::CS, PrimitiveValue::from("TEXT")),
        DataElement::new(
            tags::TEXT_VALUE,
            VR::UT,
            PrimitiveValue::from("Jane Doe, seen by Dr Who"),
        ),
        DataElement::new(tags::UID, VR::UI, PrimitiveValue::from("1.2.3.4.77")),
    ]);
    obj.put(DataElement::new(
        tags::CONTENT_SEQUENCE,
        VR::SQ,
        DataSetSequence::from(vec![text_item]),
    ));
    Profile::annex_e(
        key(),
        [
            DeidOption::CleanDescriptors,
            DeidOption::CleanStructuredContent,
        ],
    )
    .unwrap()
    .apply(&mut obj);
    // Clean Descriptors: the description stays, emptied (free text is not cleaned word by word).
    assert_eq!(s(&obj, tags::STUDY_DESCRIPTION).as_deref(), Some(""));
    // Clean Structured Content: the content tree stays, its text replaced by a keyed
    // pseudonym (Text Value is Type 1C), its UIDs replaced.
    let content = items(&obj, tags::CONTENT_SEQUENCE);
    assert_eq!(s(&content[0], tags::VALUE_TYPE).as_deref(), Some("TEXT"));
    assert!(
        s(&content[0], tags::TEXT_VALUE).is_some_and(|v| v.starts_with("ANON-")),
        "{:?}",
        s(&content[0], tags::TEXT_VALUE)
    );
    assert_eq!(
        s(&content[0], tags::UID).unwrap(),
        key().map_uid("1.2.3.4.77")
    );
    // Basic profile alone: the description goes; the content tree (D: a replacement that
    // keeps SR objects valid) is cleaned the same way.
    let mut obj = sample();
    obj.put(DataElement::new(
        tags::CONTENT_SEQUENCE,
        VR::SQ,
        DataSetSequence::from(vec![InMemDicomObject::from_element_iter([
            DataElement::new(tags::TEXT_VALUE, VR::UT, PrimitiveValue::from("Jane Doe")),
        ])]),
    ));
    let input = obj.clone();
    let basic = Profile::annex_e(key(), []).unwrap();
    basic.apply(&mut obj);
    assert!(obj.get(tags::STUDY_DESCRIPTION).is_none());
    let content = items(&obj, tags::CONTENT_SEQUENCE);
    assert!(s(&content[0], tags::TEXT_VALUE).is_some_and(|v| v.starts_with("ANON-")));
    // And the verifier knows content text is identifying: an untouched copy is flagged.
    let findings = radlab_deid::verify_against(&input, &input, &basic);
    assert!(
        findings
            .iter()
            .any(|f| f.path.starts_with("(0040,A730)[0]/(0040,A160)")),
        "{findings:?}"
    );
}
