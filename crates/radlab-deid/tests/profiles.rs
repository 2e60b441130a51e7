//! Presets, TOML profiles, safe private attributes, burned-in text, the date-range check of
//! the verifier, character sets and the key-protected mapping.

use dicom_core::value::{PrimitiveValue, Value};
use dicom_core::{DataElement, Tag, VR};
use dicom_dictionary_std::{tags, uids};
use dicom_object::{DefaultDicomObject, FileMetaTableBuilder, InMemDicomObject};
use radlab_deid::mapping::{append_mapping, read_mapping};
use radlab_deid::{
    DeidKey, DeidOption, FindingKind, NotDeidentified, Profile, VINDR_CXR_KEPT,
    burned_in_policy_from_toml, verify_against,
};
use radlab_dicom::{DicomFile, decode_frame};
use radlab_testkit::corpus;

fn key() -> DeidKey {
    DeidKey::from_secret(b"profiles test key")
}

fn s(obj: &InMemDicomObject, tag: Tag) -> Option<String> {
    obj.get(tag).map(|e| {
        e.to_str()
            .map(|v| v.trim_end_matches(['\0', ' ']).to_string())
            .unwrap_or_default()
    })
}

fn codes(obj: &InMemDicomObject) -> Vec<String> {
    match obj
        .get(tags::DEIDENTIFICATION_METHOD_CODE_SEQUENCE)
        .map(|e| e.value())
    {
        Some(Value::Sequence(seq)) => seq
            .items()
            .iter()
            .filter_map(|i| s(i, tags::CODE_VALUE))
            .collect(),
        _ => Vec::new(),
    }
}

fn el(tag: Tag, vr: VR, v: &str) -> DataElement<InMemDicomObject> {
    DataElement::new(tag, vr, PrimitiveValue::from(v))
}

fn sample() -> DefaultDicomObject {
    InMemDicomObject::from_element_iter([
        el(
            tags::SOP_CLASS_UID,
            VR::UI,
            uids::DIGITAL_X_RAY_IMAGE_STORAGE_FOR_PRESENTATION,
        ),
        el(tags::SOP_INSTANCE_UID, VR::UI, "1.2.3.4.100.1"),
        el(tags::STUDY_INSTANCE_UID, VR::UI, "1.2.3.4.100"),
        el(tags::SERIES_INSTANCE_UID, VR::UI, "1.2.3.4.100.0"),
        el(tags::STUDY_DATE, VR::DA, "20230105"),
        el(tags::ACQUISITION_DATE, VR::DA, "20230107"),
        el(tags::STUDY_TIME, VR::TM, "101500"),
        el(tags::ACCESSION_NUMBER, VR::SH, "ACC-778899"),
        el(tags::PATIENT_NAME, VR::PN, "Nguyen^Van^A"),
        el(tags::PATIENT_ID, VR::LO, "HOSP-000123"),
        el(tags::PATIENT_BIRTH_DATE, VR::DA, "19580611"),
        el(tags::PATIENT_SEX, VR::CS, "M"),
        el(tags::PATIENT_AGE, VR::AS, "064Y"),
        el(tags::INSTITUTION_NAME, VR::LO, "Hospital 108"),
        el(tags::STUDY_DESCRIPTION, VR::LO, "Chest PA"),
        el(tags::MODALITY, VR::CS, "DX"),
        el(tags::BODY_PART_EXAMINED, VR::CS, "CHEST"),
        el(tags::PHOTOMETRIC_INTERPRETATION, VR::CS, "MONOCHROME2"),
        el(Tag(0x0019, 0x0010), VR::LO, "GEMS_ACQU_01"),
        el(Tag(0x0019, 0x1023), VR::DS, "12.5"),
        el(Tag(0x0019, 0x1030), VR::LO, "operator Tran"),
        el(Tag(0x0029, 0x0010), VR::LO, "ACME PRIVATE"),
        el(Tag(0x0029, 0x1001), VR::LO, "Nguyen Van A"),
        DataElement::new(tags::ROWS, VR::US, PrimitiveValue::from(4u16)),
        DataElement::new(tags::COLUMNS, VR::US, PrimitiveValue::from(4u16)),
        DataElement::new(tags::SAMPLES_PER_PIXEL, VR::US, PrimitiveValue::from(1u16)),
        DataElement::new(tags::BITS_ALLOCATED, VR::US, PrimitiveValue::from(16u16)),
        DataElement::new(tags::BITS_STORED, VR::US, PrimitiveValue::from(12u16)),
        DataElement::new(tags::HIGH_BIT, VR::US, PrimitiveValue::from(11u16)),
        DataElement::new(
            tags::PIXEL_REPRESENTATION,
            VR::US,
            PrimitiveValue::from(0u16),
        ),
        DataElement::new(
            tags::PIXEL_DATA,
            VR::OW,
            PrimitiveValue::U16((1..=16u16).collect::<Vec<_>>().into()),
        ),
    ])
    .with_meta(
        FileMetaTableBuilder::new()
            .transfer_syntax(uids::EXPLICIT_VR_LITTLE_ENDIAN)
            .media_storage_sop_class_uid(uids::DIGITAL_X_RAY_IMAGE_STORAGE_FOR_PRESENTATION)
            .media_storage_sop_instance_uid("1.2.3.4.100.1"),
    )
    .unwrap()
}

#[test]
fn the_vindr_cxr_list_is_the_published_one() {
    let Some(corpus) = corpus("the_vindr_cxr_list_is_the_published_one") else {
        return;
    };
    // The CSV's header says keyword,tag but its columns hold the tag (decimal) first.
    let csv = std::fs::read_to_string(corpus.path("annotations/deid/vindr_cxr_retained_tags.csv"))
        .unwrap();
    let mut published: Vec<u32> = csv
        .lines()
        .skip(1)
        .filter(|l| !l.trim().is_empty())
        .map(|l| l.split(',').next().unwrap().trim().parse().unwrap())
        .collect();
    let mut ours: Vec<u32> = VINDR_CXR_KEPT
        .iter()
        .map(|(g, e)| ((*g as u32) << 16) | *e as u32)
        .collect();
    published.sort();
    ours.sort();
    assert_eq!(ours, published);
}

#[test]
fn vindr_cxr_keeps_its_allow_list_and_names_files_by_md5_of_the_sop_uid() {
    let input = sample();
    let profile = Profile::named("vindr-cxr", key(), []).unwrap();
    let mut out = input.clone();
    profile.deidentify(&mut out).unwrap();
    assert_eq!(s(&out, tags::PATIENT_SEX).as_deref(), Some("M"));
    assert_eq!(s(&out, tags::PATIENT_AGE).as_deref(), Some("064Y"));
    for gone in [
        tags::INSTITUTION_NAME,
        tags::STUDY_DESCRIPTION,
        tags::ACQUISITION_DATE,
        Tag(0x0019, 0x1023),
        Tag(0x0029, 0x1001),
    ] {
        assert!(out.get(gone).is_none(), "{gone:?} kept");
    }
    // What the IOD requires stays: identifying Type 2 attributes empty, technical ones kept.
    for empty in [tags::PATIENT_NAME, tags::STUDY_DATE, tags::ACCESSION_NUMBER] {
        assert_eq!(s(&out, empty).as_deref(), Some(""), "{empty:?}");
    }
    assert!(s(&out, tags::PATIENT_ID).unwrap().starts_with("ANON-"));
    assert_eq!(s(&out, tags::MODALITY).as_deref(), Some("DX"));
    assert_eq!(s(&out, tags::BODY_PART_EXAMINED).as_deref(), Some("CHEST"));
    // Structure: class kept, instance UIDs keyed, marks present.
    assert_eq!(
        s(&out, tags::SOP_INSTANCE_UID).unwrap(),
        key().map_uid("1.2.3.4.100.1")
    );
    assert_eq!(
        s(&out, tags::SOP_CLASS_UID).as_deref(),
        Some(uids::DIGITAL_X_RAY_IMAGE_STORAGE_FOR_PRESENTATION)
    );
    assert_eq!(
        s(&out, tags::PATIENT_IDENTITY_REMOVED).as_deref(),
        Some("YES")
    );
    // Keeping sex and age is what Retain Patient Characteristics allows.
    assert_eq!(codes(&out), ["113100", "113108"]);
    assert_eq!(
        out.get(tags::PIXEL_DATA).unwrap().to_bytes().unwrap(),
        input.get(tags::PIXEL_DATA).unwrap().to_bytes().unwrap()
    );
    // md5("1.2.3.4.100.1"), computed independently.
    let name = profile.output_name(&input, &out).unwrap();
    assert_eq!(
        name.to_str().unwrap(),
        format!("{:x}.dicom", md5_of(b"1.2.3.4.100.1"))
    );
    assert!(verify_against(&input, &out, &profile).is_empty());
}

/// MD5 via the system's md5sum, so the test does not check our code with itself.
fn md5_of(bytes: &[u8]) -> u128 {
    use std::io::Write;
    let mut child = std::process::Command::new("md5sum")
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("md5sum (coreutils)");
    child.stdin.take().unwrap().write_all(bytes).unwrap();
    let out = child.wait_with_output().unwrap();
    u128::from_str_radix(&String::from_utf8_lossy(&out.stdout)[..32], 16).unwrap()
}

#[test]
fn vindr_mammo_keeps_view_laterality_and_modality_and_groups_by_study() {
    let mut input = sample();
    input.put(el(tags::IMAGE_LATERALITY, VR::CS, "L"));
    input.put(el(tags::VIEW_POSITION, VR::CS, "MLO"));
    input.put(el(tags::MODALITY, VR::CS, "MG"));
    input.put(el(tags::BODY_PART_EXAMINED, VR::CS, "BREAST"));
    let profile = Profile::named("vindr-mammo", key(), []).unwrap();
    let mut out = input.clone();
    profile.deidentify(&mut out).unwrap();
    for (tag, v) in [
        (tags::IMAGE_LATERALITY, "L"),
        (tags::VIEW_POSITION, "MLO"),
        (tags::MODALITY, "MG"),
        (tags::BODY_PART_EXAMINED, "BREAST"),
    ] {
        assert_eq!(s(&out, tag).as_deref(), Some(v));
    }
    assert_eq!(
        s(&out, tags::STUDY_INSTANCE_UID).unwrap(),
        key().map_uid("1.2.3.4.100")
    );
    let name = profile.output_name(&input, &out).unwrap();
    assert_eq!(
        name.to_str().unwrap(),
        format!(
            "{:x}/{:x}.dicom",
            md5_of(b"1.2.3.4.100"),
            md5_of(b"1.2.3.4.100.1")
        )
    );
    assert!(verify_against(&input, &out, &profile).is_empty());
}

#[test]
fn a_toml_profile_applies_each_rule_and_adds_attributes() {
    let text = r#"
        name = "lung-study"
        options = ["retain-patient-characteristics"]
        [tags]
        StudyDescription = "keep"
        InstitutionName = { replace = "Site A" }
        AccessionNumber = "hash"
        StudyDate = "shift"
        AcquisitionDate = "shift"
        PatientSex = "empty"
        BodyPartExamined = "remove"
        "(0008,0060)" = "keep"
        [add]
        ClinicalTrialSponsorName = "Lung study 2026"
    "#;
    let profile = Profile::from_toml(text, "lung.toml", key(), []).unwrap();
    let input = sample();
    let mut out = input.clone();
    profile.deidentify(&mut out).unwrap();
    assert_eq!(
        s(&out, tags::STUDY_DESCRIPTION).as_deref(),
        Some("Chest PA")
    );
    assert_eq!(s(&out, tags::INSTITUTION_NAME).as_deref(), Some("Site A"));
    let acc = s(&out, tags::ACCESSION_NUMBER).unwrap();
    assert!(acc.starts_with("ANON-") && !acc.contains("778899"));
    // Shifted by the same offset: two days apart before and after.
    let (study, acq) = (
        s(&out, tags::STUDY_DATE).unwrap(),
        s(&out, tags::ACQUISITION_DATE).unwrap(),
    );
    assert_ne!(study, "20230105");
    assert_eq!(
        days(&acq) - days(&study),
        2,
        "{study} .. {acq}: the interval changed"
    );
    assert_eq!(s(&out, tags::PATIENT_SEX).as_deref(), Some(""));
    assert!(out.get(tags::BODY_PART_EXAMINED).is_none());
    assert_eq!(
        s(&out, tags::CLINICAL_TRIAL_SPONSOR_NAME).as_deref(),
        Some("Lung study 2026")
    );
    // Keeping Study Description is covered by Clean Descriptors? No: K on a C attribute
    // keeps free text the Basic Profile removes, so the Basic Profile is not claimed.
    assert!(!profile.claims_basic_profile());
    assert!(!codes(&out).contains(&"113100".to_string()));
    assert!(
        s(&out, tags::DEIDENTIFICATION_METHOD)
            .unwrap()
            .contains("does not meet the Basic Profile")
    );
}

/// Days since an arbitrary epoch, by counting (independent of the engine's calendar).
fn days(d: &str) -> i64 {
    let (y, m, dd): (i64, i64, i64) = (
        d[..4].parse().unwrap(),
        d[4..6].parse().unwrap(),
        d[6..].parse().unwrap(),
    );
    let leap = |y: i64| (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
    let mut n = 0;
    for year in 1800..y {
        n += if leap(year) { 366 } else { 365 };
    }
    let months = [
        31,
        if leap(y) { 29 } else { 28 },
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
    ];
    n + months[..(m - 1) as usize].iter().sum::<i64>() + dd
}

#[test]
fn toml_errors_name_the_file_and_the_key() {
    let bad = [
        ("[tags]\nNoSuchKeyword = \"keep\"", "NoSuchKeyword"),
        ("[tags]\nPatientName = \"scramble\"", "scramble"),
        ("[tags]\nPatientName = \"shift\"", "shift applies to dates"),
        ("options = [\"retain-everything\"]", "retain-everything"),
        ("file_names = \"sha1\"", "sha1"),
        ("base = \"hipaa\"", "hipaa"),
        ("colour = 1", "colour"),
        (
            "[burned_in]\n[[burned_in.masks]]\nregions = []",
            "at least one region",
        ),
    ];
    for (text, needle) in bad {
        let e = Profile::from_toml(text, "site.toml", key(), [])
            .unwrap_err()
            .to_string();
        assert!(e.contains(needle), "{text:?}: {e}");
        assert!(
            e.contains("site.toml") || needle == "hipaa",
            "{text:?}: {e}"
        );
    }
}

#[test]
fn retain_safe_private_keeps_only_listed_private_attributes_with_their_creator() {
    let input = sample();
    let profile = Profile::annex_e(key(), [DeidOption::RetainSafePrivate]).unwrap();
    let mut out = input.clone();
    profile.apply(&mut out);
    assert_eq!(
        s(&out, Tag(0x0019, 0x0010)).as_deref(),
        Some("GEMS_ACQU_01")
    );
    assert_eq!(s(&out, Tag(0x0019, 0x1023)).as_deref(), Some("12.5"));
    assert!(out.get(Tag(0x0019, 0x1030)).is_none());
    assert!(out.get(Tag(0x0029, 0x0010)).is_none());
    assert!(out.get(Tag(0x0029, 0x1001)).is_none());
    assert!(codes(&out).contains(&"113111".to_string()));
    assert!(verify_against(&input, &out, &profile).is_empty());
    // A user's own safe attribute, by creator and element.
    let text = "options = [\"retain-safe-private\"]\n[[safe_private]]\ncreator = \"ACME PRIVATE\"\ngroup = 0x0029\nelement = 0x01\n";
    let own = Profile::from_toml(text, "own.toml", key(), []).unwrap();
    let mut out = input.clone();
    own.apply(&mut out);
    assert!(out.get(Tag(0x0029, 0x1001)).is_some());
    // Without the option nothing private survives, and the verifier flags what does.
    let basic = Profile::annex_e(key(), []).unwrap();
    let findings = verify_against(&input, &out, &basic);
    assert!(
        findings
            .iter()
            .any(|f| f.kind == FindingKind::PrivateAttribute && f.path == "(0029,1001)"),
        "{findings:?}"
    );
}

#[test]
fn the_verifier_flags_a_date_outside_the_shifted_range() {
    let input = sample();
    let profile = Profile::annex_e(key(), [DeidOption::RetainLongitudinalModifiedDates]).unwrap();
    let mut out = input.clone();
    profile.apply(&mut out);
    assert!(verify_against(&input, &out, &profile).is_empty());
    out.put(el(tags::CONTENT_DATE, VR::DA, "20991231"));
    let findings = verify_against(&input, &out, &profile);
    assert!(
        findings
            .iter()
            .any(|f| f.kind == FindingKind::DateOutOfRange && f.path == "(0008,0023)"),
        "{findings:?}"
    );
}

#[test]
fn burned_in_text_is_routed_to_review_or_masked_and_only_then_claimed() {
    let mut input = sample();
    input.put(el(tags::BURNED_IN_ANNOTATION, VR::CS, "YES"));
    let basic = Profile::annex_e(key(), []).unwrap();
    let mut out = input.clone();
    match basic.deidentify(&mut out) {
        Err(NotDeidentified::Review(why)) => assert!(why.contains("Burned In Annotation")),
        other => panic!("not routed: {other:?}"),
    }
    let policy = burned_in_policy_from_toml(
        "[[masks]]\nmodality = \"DX\"\nrows = 4\ncolumns = 4\nregions = [[0, 0, 4, 1], [3, 3, 9, 9]]\n",
        "rules.toml",
    )
    .unwrap();
    // (with an option, so that its code and meaning are written next to Clean Pixel Data)
    let masking = Profile::annex_e(key(), [DeidOption::RetainPatientCharacteristics])
        .unwrap()
        .with_burned_in(policy);
    let mut out = input.clone();
    let report = masking.deidentify(&mut out).unwrap();
    assert!(report.pixels_cleaned);
    let bytes = out.get(tags::PIXEL_DATA).unwrap().to_bytes().unwrap();
    let px: Vec<u16> = bytes
        .chunks(2)
        .map(|c| u16::from_le_bytes([c[0], c[1]]))
        .collect();
    // Row 0 and the bottom-right pixel blanked to the darkest value (1); the rest as before.
    let mut expected: Vec<u16> = (1..=16).collect();
    expected[..4].fill(1);
    expected[15] = 1;
    assert_eq!(px, expected);
    assert_eq!(s(&out, tags::BURNED_IN_ANNOTATION).as_deref(), Some("NO"));
    assert!(codes(&out).contains(&"113101".to_string()));
    let mut unique = codes(&out);
    unique.dedup();
    assert_eq!(unique, codes(&out), "a method code written twice");
    let method = out
        .get(tags::DEIDENTIFICATION_METHOD)
        .unwrap()
        .to_multi_str()
        .unwrap()
        .to_vec();
    let mut sorted = method.clone();
    sorted.sort();
    sorted.dedup();
    assert_eq!(sorted.len(), method.len(), "{method:?}");
    assert!(verify_against(&input, &out, &masking).is_empty());
    // Not suspect: Clean Pixel Data is not claimed.
    let mut clean = sample();
    basic.deidentify(&mut clean).unwrap();
    assert!(!codes(&clean).contains(&"113101".to_string()));
}

#[test]
fn ultrasound_from_the_corpus_is_routed_or_masked_frame_by_frame() {
    let Some(corpus) = corpus("ultrasound_burned_in") else {
        return;
    };
    let path = corpus.path("dicom/other/pydicom_examples_ybr_color_us_multiframe.dcm");
    let input = DicomFile::open(&path).unwrap().into_object();
    let basic = Profile::annex_e(key(), []).unwrap();
    assert!(matches!(
        basic.deidentify(&mut input.clone()),
        Err(NotDeidentified::Review(_))
    ));
    let masking = basic.clone().with_burned_in(
        burned_in_policy_from_toml(
            "[[masks]]\nmodality = \"US\"\nregions = [[0, 0, 100000, 20]]\n",
            "us.toml",
        )
        .unwrap(),
    );
    let mut out = input.clone();
    masking.deidentify(&mut out).unwrap();
    let before = DicomFile::from_object(input.clone());
    let after = DicomFile::from_object(out.clone());
    for frame in 0..2 {
        let a = decode_frame(&before, frame).unwrap();
        let b = decode_frame(&after, frame).unwrap();
        let row = a.columns as usize * 3;
        assert_eq!(b.photometric, "RGB");
        let (lo, _) = a.samples.min_max();
        assert!(b.samples.to_i64_vec()[..20 * row].iter().all(|&v| v == lo));
        assert_eq!(
            b.samples.to_i64_vec()[20 * row..],
            a.samples.to_i64_vec()[20 * row..],
            "frame {frame}: pixels outside the mask changed"
        );
    }
    assert!(verify_against(&input, &out, &masking).is_empty());
}

#[test]
fn declared_character_sets_survive_and_kept_text_is_unchanged() {
    let Some(corpus) = corpus("deid_character_sets") else {
        return;
    };
    let profile = Profile::annex_e(
        key(),
        [
            DeidOption::RetainPatientCharacteristics,
            DeidOption::RetainDeviceIdentity,
            DeidOption::RetainInstitutionIdentity,
        ],
    )
    .unwrap();
    let mut checked = 0;
    for row in corpus.dicom_rows() {
        let Ok(file) = DicomFile::open(corpus.path(&row.path)) else {
            continue;
        };
        let input = file.into_object();
        let mut out = input.clone();
        profile.apply(&mut out);
        let mut bytes = Vec::new();
        out.write_all(&mut bytes).unwrap();
        let back = DicomFile::from_bytes(&bytes).unwrap().into_object();
        assert_eq!(
            s(&back, tags::SPECIFIC_CHARACTER_SET),
            s(&input, tags::SPECIFIC_CHARACTER_SET),
            "{}",
            row.path
        );
        // Every text attribute the profile keeps reads back as it was.
        for e in input.iter() {
            let tag = e.header().tag;
            let text_vr = matches!(
                e.vr(),
                VR::PN | VR::LO | VR::SH | VR::LT | VR::ST | VR::UT | VR::UC | VR::CS
            );
            // (overlay groups go whole when their data is removed)
            if text_vr
                && tag.0 % 2 == 0
                && !(0x6000..=0x60FF).contains(&tag.0)
                && tag.0 != 0x0012
                && profile
                    .action_for(tag)
                    .is_none_or(|a| a == radlab_deid::Action::K)
            {
                assert_eq!(s(&back, tag), s(&input, tag), "{}: {tag:?}", row.path);
            }
        }
        checked += 1;
    }
    assert!(checked >= 45);
}

#[test]
fn the_mapping_reopens_only_with_the_key() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("map.bin");
    let profile = Profile::annex_e(key(), [DeidOption::RetainLongitudinalModifiedDates]).unwrap();
    let input = sample();
    let out_dir = dir.path().join("out");
    let src = dir.path().join("in.dcm");
    input.write_to_file(&src).unwrap();
    let outcome = radlab_deid::batch::deidentify_file(&src, &out_dir, &profile);
    assert!(outcome.ok(), "{outcome:?}");
    let record = outcome.mapping.clone().unwrap();
    assert_eq!(record.original_patient_id, "HOSP-000123");
    assert_eq!(record.original_sop_uid, "1.2.3.4.100.1");
    assert_eq!(record.sop_uid, key().map_uid("1.2.3.4.100.1"));
    assert!(record.date_shift_days.is_some());
    // Nothing identifying is printed in the per-file report.
    let json = serde_json::to_string(&outcome).unwrap();
    assert!(!json.contains("HOSP-000123") && !json.contains("1.2.3.4.100.1"));
    append_mapping(&path, &key(), std::slice::from_ref(&record)).unwrap();
    append_mapping(&path, &key(), std::slice::from_ref(&record)).unwrap();
    assert_eq!(read_mapping(&path, &key()).unwrap(), vec![record]);
    let raw = std::fs::read(&path).unwrap();
    assert!(!raw.windows(11).any(|w| w == b"HOSP-000123"));
    let e = read_mapping(&path, &DeidKey::from_secret(b"another key"))
        .unwrap_err()
        .to_string();
    assert!(e.contains("cannot decrypt"), "{e}");
}

#[test]
fn a_short_number_that_happens_to_occur_in_a_new_uid_is_not_a_leak() {
    // A device serial number made of digits of the SOP Instance UID's replacement.
    let new_uid = key().map_uid("1.2.3.4.100.1");
    let digits = &new_uid[10..15];
    let mut input = sample();
    input.put(el(tags::DEVICE_SERIAL_NUMBER, VR::LO, digits));
    let profile = Profile::annex_e(key(), []).unwrap();
    let mut out = input.clone();
    profile.apply(&mut out);
    assert_eq!(s(&out, tags::SOP_INSTANCE_UID).unwrap(), new_uid);
    assert!(verify_against(&input, &out, &profile).is_empty());
    // The same number in a text attribute is a leak.
    out.put(el(
        tags::IMAGE_COMMENTS,
        VR::LT,
        &format!("serial {digits}"),
    ));
    let findings = verify_against(&input, &out, &profile);
    assert!(
        findings
            .iter()
            .any(|f| f.path == "(0020,4000)" && f.source.as_deref() == Some("(0018,1000)")),
        "{findings:?}"
    );
}

#[test]
fn undeclared_bytes_round_trip_and_non_ascii_replacements_switch_the_file_to_utf8() {
    // Latin-1 bytes with no Specific Character Set: kept byte for byte.
    let mut input = sample();
    input.put(DataElement::new(
        tags::INSTITUTION_NAME,
        VR::LO,
        PrimitiveValue::from("H\u{f4}pital \u{e9}t\u{e9}"),
    ));
    let profile = Profile::annex_e(key(), [DeidOption::RetainInstitutionIdentity]).unwrap();
    let mut out = input.clone();
    profile.apply(&mut out);
    let mut bytes = Vec::new();
    out.write_all(&mut bytes).unwrap();
    assert!(
        bytes.windows(11).any(|w| w == b"H\xf4pital \xe9t\xe9"),
        "the Latin-1 bytes were not kept as they were"
    );
    let back = DicomFile::from_bytes(&bytes).unwrap().into_object();
    assert_eq!(
        s(&back, tags::INSTITUTION_NAME).as_deref(),
        Some("H\u{f4}pital \u{e9}t\u{e9}")
    );
    // A replacement in Vietnamese cannot be written in the default repertoire: the output
    // declares UTF-8 and every value reads back as it was meant.
    let text = "[tags]\nInstitutionName = { replace = \"B\u{1ec7}nh vi\u{1ec7}n 108\" }\n[add]\nClinicalTrialSponsorName = \"Vi\u{1ec7}n\"\n";
    let vn = Profile::from_toml(
        text,
        "vn.toml",
        key(),
        [DeidOption::RetainPatientCharacteristics],
    )
    .unwrap();
    let mut out = input.clone();
    vn.apply(&mut out);
    let mut bytes = Vec::new();
    out.write_all(&mut bytes).unwrap();
    let back = DicomFile::from_bytes(&bytes).unwrap().into_object();
    assert_eq!(
        s(&back, tags::SPECIFIC_CHARACTER_SET).as_deref(),
        Some("ISO_IR 192")
    );
    assert_eq!(
        s(&back, tags::INSTITUTION_NAME).as_deref(),
        Some("B\u{1ec7}nh vi\u{1ec7}n 108")
    );
    assert_eq!(s(&back, tags::PATIENT_AGE).as_deref(), Some("064Y"));
}
