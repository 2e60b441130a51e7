//! The DICOM JSON Model (PS3.18 F.2) of [`radlab_dicom::dicom_json`]: against dcmtk's
//! `dcm2json` (3.6.7) on every DICOM file of the shared corpus, and unit cases on objects
//! written to Part 10 bytes and read back (so that values come through the real parser, with
//! their padding).
//!
//! Comparison with dcm2json, element by element and item by item: the same keys, the same
//! vr, the same values (numbers within 1e-9 relative; FL as the same `f32`), the same
//! InlineBinary. Known differences, each accepted only in its exact form and counted:
//!
//! - Pixel Data: we write a BulkDataURI, dcm2json 3.6.7 has no bulk data option and writes
//!   it inline, or refuses the whole file when it is encapsulated ("JSON InlineBinary
//!   encoding not supported for compressed pixel data"). For those files dcm2json reads a
//!   copy with the top-level Pixel Data erased by `dcmodify -e`; only the vr of Pixel Data is
//!   compared.
//! - Trailing NULs in text other than UI: PS3.5 pads only UI (and binary values) with NUL;
//!   dcm2json keeps a NUL pad byte in e.g. a LO (`"0\u0000"`), we remove it as padding.
//!   (dcm2json deviates here; we assert the unpadded form.)
//! - FL: dcm2json prints 9 significant digits (`-77.2040634`), we print the shortest decimal
//!   of the same `f32` (`-77.20406`); compared as `f32`.
//! - Data Set Trailing Padding (FFFC,FFFC): not an attribute, its value has no significance
//!   (PS3.10 7.2); dcm2json writes it (as InlineBinary), we leave it out. Likewise a meta
//!   group (0002) that a broken file repeats inside its data set: dcm2json writes it, we
//!   leave group 0002 out.
//! - Specific Character Set: both write `"ISO_IR 192"`, since the JSON text is UTF-8.
//! - Curve Data (50xx,3000) in Implicit VR: the VR is ambiguous (OB or OW, retired element,
//!   not covered by PS3.5 A.1 any more); dicom-rs says OW, dcmtk OB. Same bytes required.
//!
//! Files dcm2json cannot convert at all (a character set its iconv lacks, extended characters
//! without Specific Character Set) and files we refuse to open (truncated, not DICOM) are
//! listed and skipped; at least 40 files must be compared.

use std::collections::BTreeMap;
use std::path::Path;
use std::process::Command;

use dicom_core::value::DataSetSequence;
use dicom_core::{DataElement, PrimitiveValue, Tag, VR, dicom_value};
use dicom_dictionary_std::{tags, uids};
use dicom_object::{FileMetaTableBuilder, InMemDicomObject};
use radlab_dicom::{DicomFile, JsonOptions, dicom_json};
use radlab_testkit::{corpus, has_tool};
use serde_json::{Map, Value, json};

// ---------------------------------------------------------------------------------------
// Comparison with dcm2json
// ---------------------------------------------------------------------------------------

/// dcm2json's JSON of `path`: `Err` with its message when it refuses the file.
fn dcm2json(path: &Path) -> Result<Value, String> {
    let out = Command::new("dcm2json")
        .arg(path)
        .output()
        .map_err(|e| format!("run dcm2json: {e}"))?;
    if !out.status.success() {
        return Err(String::from_utf8_lossy(&out.stderr).trim().to_string());
    }
    serde_json::from_slice(&out.stdout).map_err(|e| format!("dcm2json printed no JSON: {e}"))
}

/// A copy of `path` in `dir` with every Pixel Data erased, nested ones (icons) included
/// (`dcmodify -ea`).
fn without_pixel_data(path: &Path, dir: &Path) -> std::path::PathBuf {
    let copy = dir.join("no-pixel-data.dcm");
    std::fs::copy(path, &copy).expect("copy the file");
    let out = Command::new("dcmodify")
        .args(["-nb", "-q", "-ea", "(7FE0,0010)"])
        .arg(&copy)
        .output()
        .expect("run dcmodify");
    assert!(
        out.status.success(),
        "dcmodify -ea (7FE0,0010) {}: {}",
        path.display(),
        String::from_utf8_lossy(&out.stderr)
    );
    copy
}

#[derive(Default)]
struct Comparison {
    /// Whether dcm2json read a copy without Pixel Data.
    pixel_data_erased: bool,
    elements: usize,
    /// Known differences by kind.
    accepted: BTreeMap<&'static str, usize>,
    diffs: Vec<String>,
}

impl Comparison {
    fn accept(&mut self, kind: &'static str) {
        *self.accepted.entry(kind).or_default() += 1;
    }

    fn data_set(&mut self, at: &str, ours: &Map<String, Value>, theirs: &Map<String, Value>) {
        for (key, theirs_elem) in theirs {
            if key.starts_with("0002") {
                // A broken file repeating the meta group in its data set: dcm2json writes it,
                // we leave group 0002 out as the meta group it is.
                self.accept("group 0002 inside the data set, left out");
                continue;
            }
            if key == "FFFCFFFC" {
                // Data Set Trailing Padding: no attribute, its value has no significance
                // (PS3.10 7.2); dcm2json writes it inline, we leave it out.
                assert!(ours.get(key).is_none(), "{at}/{key} written");
                self.accept("Data Set Trailing Padding, left out");
                continue;
            }
            match ours.get(key) {
                None => self
                    .diffs
                    .push(format!("{at}/{key}: missing (dcm2json {theirs_elem})")),
                Some(ours_elem) => {
                    self.element(&format!("{at}/{key}"), key, ours_elem, theirs_elem)
                }
            }
        }
        for (key, ours_elem) in ours {
            if !theirs.contains_key(key) {
                if self.pixel_data_erased && key == "7FE00010" {
                    self.accept("Pixel Data erased for dcm2json (encapsulated), not compared");
                    continue;
                }
                self.diffs.push(format!("{at}/{key}: extra {ours_elem}"));
            }
        }
    }

    fn element(&mut self, at: &str, key: &str, ours: &Value, theirs: &Value) {
        self.elements += 1;
        let vr = ours["vr"].as_str().unwrap_or_default();
        let theirs_vr = theirs["vr"].as_str().unwrap_or_default();
        if vr != theirs_vr {
            let curve_data = key.starts_with("50") && key.ends_with("3000");
            if curve_data && vr == "OW" && theirs_vr == "OB" {
                self.accept("Curve Data OW (dicom-rs) vs OB (dcmtk), same bytes");
            } else {
                self.diffs
                    .push(format!("{at}: vr {vr} vs dcm2json {theirs_vr}"));
                return;
            }
        }
        if ours.get("BulkDataURI").is_some() {
            assert_eq!(
                key, "7FE00010",
                "{at}: only Pixel Data is bulk with no limit"
            );
            self.accept("Pixel Data as BulkDataURI, vr only");
            return;
        }
        if ours.get("InlineBinary") != theirs.get("InlineBinary") {
            self.diffs.push(format!("{at}: InlineBinary differs"));
        }
        match (ours.get("Value"), theirs.get("Value")) {
            (None, None) => {}
            (Some(Value::Array(a)), Some(Value::Array(b))) if a.len() == b.len() => {
                for (i, (x, y)) in a.iter().zip(b).enumerate() {
                    self.value(&format!("{at}[{i}]"), vr, x, y);
                }
            }
            (a, b) => self
                .diffs
                .push(format!("{at}: Value {a:?} vs dcm2json {b:?}")),
        }
    }

    fn value(&mut self, at: &str, vr: &str, ours: &Value, theirs: &Value) {
        match (ours, theirs) {
            (Value::Number(a), Value::Number(b)) => {
                let (a, b) = (a.as_f64().unwrap(), b.as_f64().unwrap());
                let same = if vr == "FL" {
                    if a != b {
                        self.accept("FL printed with fewer digits, same f32");
                    }
                    a as f32 == b as f32
                } else {
                    a == b || (a - b).abs() <= 1e-9 * a.abs().max(b.abs())
                };
                if !same {
                    self.diffs.push(format!("{at}: {a} vs dcm2json {b}"));
                }
            }
            (Value::Object(a), Value::Object(b)) if vr == "SQ" => self.data_set(at, a, b),
            (a, Value::String(b)) if vr != "UI" && b.ends_with('\0') => {
                // dcm2json keeps a NUL pad byte in text other than UI, and then cannot read
                // a DS or IS with it as a number: compare with the NUL removed.
                let b = b.trim_end_matches(['\0', ' ']);
                let same = match a {
                    Value::String(a) => a == b,
                    Value::Number(a) => b.trim().parse::<f64>().ok() == a.as_f64(),
                    _ => false,
                };
                if same {
                    self.accept("trailing NUL kept by dcm2json in non-UI text");
                } else {
                    self.diffs.push(format!("{at}: {a} vs dcm2json {b:?}"));
                }
            }
            (a, b) if a == b => {}
            (a, b) => self.diffs.push(format!("{at}: {a} vs dcm2json {b}")),
        }
    }
}

#[test]
fn matches_dcm2json_on_the_corpus() {
    let test = "matches_dcm2json_on_the_corpus";
    let Some(corpus) = corpus(test) else { return };
    if !has_tool(test, "dcm2json") || !has_tool(test, "dcmodify") {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let bulk = |tag: &str| format!("bulk/{tag}");
    // Everything inline but Pixel Data, as dcm2json writes it.
    let options = JsonOptions {
        inline_limit: usize::MAX,
        bulk_uri: Some(&bulk),
    };
    let mut cmp = Comparison::default();
    let mut compared = Vec::new();
    let mut skipped = Vec::new();
    for row in corpus.dicom_rows() {
        let path = corpus.path(&row.path);
        let ours = match DicomFile::open(&path) {
            Ok(f) => dicom_json(f.object(), &options),
            Err(e) => {
                skipped.push(format!("{}: we refuse it: {e}", row.path));
                continue;
            }
        };
        let mut erased = false;
        let theirs = match dcm2json(&path) {
            Ok(v) => v,
            Err(e) if e.contains("compressed pixel data") => {
                erased = true;
                dcm2json(&without_pixel_data(&path, tmp.path()))
                    .unwrap_or_else(|e| panic!("{}: dcm2json without Pixel Data: {e}", row.path))
            }
            Err(e) => {
                skipped.push(format!("{}: dcm2json refuses it: {e}", row.path));
                continue;
            }
        };
        cmp.pixel_data_erased = erased;
        let before = cmp.diffs.len();
        cmp.data_set("", ours.as_object().unwrap(), theirs.as_object().unwrap());
        for d in &mut cmp.diffs[before..] {
            *d = format!("{}: {d}", row.path);
        }
        compared.push(row.path.clone());
    }
    eprintln!(
        "compared {} files ({} elements) with dcm2json; accepted known differences: {:#?}",
        compared.len(),
        cmp.elements,
        cmp.accepted
    );
    for s in &skipped {
        eprintln!("skipped {s}");
    }
    assert!(
        cmp.diffs.is_empty(),
        "{} differences from dcm2json:\n{}",
        cmp.diffs.len(),
        cmp.diffs.join("\n")
    );
    assert!(
        compared.len() >= 40,
        "only {} files compared",
        compared.len()
    );
}

// ---------------------------------------------------------------------------------------
// Unit cases
// ---------------------------------------------------------------------------------------

fn text(tag: Tag, vr: VR, value: &str) -> DataElement<InMemDicomObject> {
    DataElement::new(tag, vr, PrimitiveValue::from(value))
}

/// `elements` as a Part 10 file (Explicit VR Little Endian, UTF-8).
fn part10(elements: Vec<DataElement<InMemDicomObject>>) -> Vec<u8> {
    let mut obj = InMemDicomObject::from_element_iter(elements);
    obj.put(text(tags::SPECIFIC_CHARACTER_SET, VR::CS, "ISO_IR 192"));
    obj.put(text(
        tags::SOP_CLASS_UID,
        VR::UI,
        uids::SECONDARY_CAPTURE_IMAGE_STORAGE,
    ));
    obj.put(text(tags::SOP_INSTANCE_UID, VR::UI, "1.2.3.4"));
    let file = obj
        .with_meta(
            FileMetaTableBuilder::new()
                .transfer_syntax(uids::EXPLICIT_VR_LITTLE_ENDIAN)
                .media_storage_sop_class_uid(uids::SECONDARY_CAPTURE_IMAGE_STORAGE)
                .media_storage_sop_instance_uid("1.2.3.4"),
        )
        .unwrap();
    radlab_dicom::wrap::to_part10_bytes(&DicomFile::from_object(file)).unwrap()
}

/// `elements` written as a Part 10 file and read back by the parser (so that values come
/// with their padding, split as a file gives them).
fn round_trip(elements: Vec<DataElement<InMemDicomObject>>) -> DicomFile {
    DicomFile::from_bytes(&part10(elements)).unwrap()
}

fn no_bulk() -> JsonOptions<'static> {
    JsonOptions {
        inline_limit: 64,
        bulk_uri: None,
    }
}

fn json_of(elements: Vec<DataElement<InMemDicomObject>>) -> Value {
    dicom_json(round_trip(elements).object(), &no_bulk())
}

fn person_name_elements() -> Vec<DataElement<InMemDicomObject>> {
    vec![
        text(
            tags::PATIENT_NAME,
            VR::PN,
            "Yamada^Tarou=山田^太郎=やまだ^たろう\\Doe^John^^^\\\\=Ideo Only",
        ),
        text(tags::REFERRING_PHYSICIAN_NAME, VR::PN, "^^^^"),
        text(tags::PERFORMING_PHYSICIAN_NAME, VR::PN, "Smith^Anne=="),
    ]
}

#[test]
fn person_names_with_three_groups() {
    let j = json_of(person_name_elements());
    assert_eq!(
        j["00100010"],
        json!({"vr": "PN", "Value": [
            {"Alphabetic": "Yamada^Tarou", "Ideographic": "山田^太郎", "Phonetic": "やまだ^たろう"},
            {"Alphabetic": "Doe^John"},
            null,
            {"Ideographic": "Ideo Only"},
        ]})
    );
    // Only separators: an empty name, no Value.
    assert_eq!(j["00080090"], json!({"vr": "PN"}));
    assert_eq!(
        j["00081050"],
        json!({"vr": "PN", "Value": [{"Alphabetic": "Smith^Anne"}]})
    );
    // The text is Unicode: the JSON declares UTF-8.
    assert_eq!(j["00080005"], json!({"vr": "CS", "Value": ["ISO_IR 192"]}));
}

fn empty_and_padded_elements() -> Vec<DataElement<InMemDicomObject>> {
    vec![
        text(tags::PATIENT_ID, VR::LO, ""),
        text(tags::PATIENT_BIRTH_DATE, VR::DA, ""),
        text(tags::ACCESSION_NUMBER, VR::SH, "   "),
        DataElement::new(tags::ROWS, VR::US, PrimitiveValue::Empty),
        text(tags::SERIES_NUMBER, VR::IS, ""),
        DataElement::new(tags::PIXEL_SPACING, VR::DS, PrimitiveValue::Empty),
        DataElement::new(
            tags::REFERENCED_IMAGE_SEQUENCE,
            VR::SQ,
            DataSetSequence::<InMemDicomObject>::empty(),
        ),
        DataElement::new(tags::PIXEL_DATA, VR::OB, PrimitiveValue::Empty),
        text(tags::IMAGE_TYPE, VR::CS, " ORIGINAL \\\\AXIAL"),
        text(tags::STUDY_DESCRIPTION, VR::LO, "  Chest  "),
        text(tags::IMAGE_COMMENTS, VR::LT, "  two\\lines \0"),
        text(tags::STUDY_INSTANCE_UID, VR::UI, "1.2.3"),
        text(tags::INSTITUTION_ADDRESS, VR::ST, " a\\b "),
    ]
}

#[test]
fn empty_values_and_padding() {
    let j = json_of(empty_and_padded_elements());
    for key in [
        "00100020", "00100030", "00080050", "00280010", "00200011", "00280030",
    ] {
        assert_eq!(j[key].as_object().unwrap().len(), 1, "{key}: {}", j[key]);
        assert!(j[key].get("Value").is_none(), "{key}: {}", j[key]);
    }
    assert_eq!(j["00081140"], json!({"vr": "SQ"}));
    assert_eq!(j["7FE00010"], json!({"vr": "OB"}));
    // Empty middle value: null; leading spaces of CS and LO are insignificant.
    assert_eq!(
        j["00080008"],
        json!({"vr": "CS", "Value": ["ORIGINAL", null, "AXIAL"]})
    );
    assert_eq!(j["00081030"], json!({"vr": "LO", "Value": ["Chest"]}));
    // LT and ST are single-valued: the backslash is text; leading spaces are significant.
    assert_eq!(
        j["00204000"],
        json!({"vr": "LT", "Value": ["  two\\lines"]})
    );
    assert_eq!(j["00080081"], json!({"vr": "ST", "Value": [" a\\b"]}));
    // The UID's NUL padding (odd length) is gone.
    assert_eq!(j["0020000D"], json!({"vr": "UI", "Value": ["1.2.3"]}));
}

fn nested_and_numeric_elements() -> Vec<DataElement<InMemDicomObject>> {
    let inner = InMemDicomObject::from_element_iter([
        text(tags::CODE_VALUE, VR::SH, "T-D3000"),
        text(tags::CODE_MEANING, VR::LO, "Chest"),
    ]);
    let item = InMemDicomObject::from_element_iter([
        text(tags::REFERENCED_SOP_INSTANCE_UID, VR::UI, "1.2.3.9"),
        DataElement::new(
            tags::REFERENCED_FRAME_NUMBER,
            VR::IS,
            PrimitiveValue::from("1\\2"),
        ),
        DataElement::new(
            tags::ANATOMIC_REGION_SEQUENCE,
            VR::SQ,
            DataSetSequence::from(vec![inner]),
        ),
        // Bulk data inside a sequence: inline when short, no value when long.
        DataElement::new(
            tags::PIXEL_DATA,
            VR::OB,
            PrimitiveValue::from(vec![1u8, 2, 3, 4]),
        ),
        DataElement::new(
            Tag(0x6000, 0x3000),
            VR::OW,
            PrimitiveValue::U16(vec![7u16; 100].into()),
        ),
    ]);
    vec![
        DataElement::new(
            tags::REFERENCED_IMAGE_SEQUENCE,
            VR::SQ,
            DataSetSequence::from(vec![item, InMemDicomObject::new_empty()]),
        ),
        DataElement::new(
            tags::FRAME_INCREMENT_POINTER,
            VR::AT,
            dicom_value!(Tags, [tags::FRAME_TIME, Tag(0x0018, 0x1065)]),
        ),
        DataElement::new(tags::ROWS, VR::US, PrimitiveValue::from(512u16)),
        DataElement::new(
            tags::SMALLEST_IMAGE_PIXEL_VALUE,
            VR::SS,
            PrimitiveValue::from(-5i16),
        ),
        DataElement::new(
            tags::SIMPLE_FRAME_LIST,
            VR::UL,
            dicom_value!(U32, [1, 4000000000]),
        ),
        DataElement::new(
            tags::RECOMMENDED_DISPLAY_FRAME_RATE_IN_FLOAT,
            VR::FL,
            dicom_value!(F32, [0.1, 2.5]),
        ),
        DataElement::new(
            tags::REFERENCE_PIXEL_X0,
            VR::SL,
            PrimitiveValue::from(-70000i32),
        ),
        DataElement::new(tags::SLICE_LOCATION, VR::DS, PrimitiveValue::from("-0.0")),
        DataElement::new(
            tags::WINDOW_CENTER,
            VR::DS,
            PrimitiveValue::from(" 40\\+1.5E2 \\1,5\\\\.5 "),
        ),
        DataElement::new(tags::INSTANCE_NUMBER, VR::IS, PrimitiveValue::from("+0012")),
        DataElement::new(tags::RESCALE_SLOPE, VR::DS, PrimitiveValue::from("NaN")),
        DataElement::new(tags::EXPOSURE_TIME, VR::IS, PrimitiveValue::from("1.5")),
    ]
}

#[test]
fn nested_sequences_numbers_and_tags() {
    let mut elements = nested_and_numeric_elements();
    // Not a JSON number: dcm2json refuses these (without -ee, which prints bare `nan`).
    elements.push(DataElement::new(
        tags::DIFFUSION_B_VALUE,
        VR::FD,
        dicom_value!(F64, [f64::INFINITY, f64::NAN, f64::NEG_INFINITY]),
    ));
    let j = json_of(elements);
    assert_eq!(
        j["00081140"],
        json!({"vr": "SQ", "Value": [
            {
                "00081155": {"vr": "UI", "Value": ["1.2.3.9"]},
                "00081160": {"vr": "IS", "Value": [1, 2]},
                "00082218": {"vr": "SQ", "Value": [{
                    "00080100": {"vr": "SH", "Value": ["T-D3000"]},
                    "00080104": {"vr": "LO", "Value": ["Chest"]},
                }]},
                "60003000": {"vr": "OW"},
                "7FE00010": {"vr": "OB", "InlineBinary": "AQIDBA=="},
            },
            {},
        ]})
    );
    assert_eq!(
        j["00280009"],
        json!({"vr": "AT", "Value": ["00181063", "00181065"]})
    );
    assert_eq!(j["00280010"], json!({"vr": "US", "Value": [512]}));
    assert_eq!(j["00280106"], json!({"vr": "SS", "Value": [-5]}));
    assert_eq!(
        j["00081161"],
        json!({"vr": "UL", "Value": [1, 4000000000u32]})
    );
    assert_eq!(j["00089459"], json!({"vr": "FL", "Value": [0.1, 2.5]}));
    assert_eq!(
        j["00189087"],
        json!({"vr": "FD", "Value": ["Infinity", "NaN", "-Infinity"]})
    );
    assert_eq!(j["00186020"], json!({"vr": "SL", "Value": [-70000]}));
    // DS: numbers; -0.0 stays a number equal to zero; a bad DS stays the string it was.
    let slice = &j["00201041"]["Value"][0];
    assert!(slice.is_number() && slice.as_f64() == Some(0.0), "{slice}");
    assert_eq!(
        j["00281050"],
        json!({"vr": "DS", "Value": [40, 150.0, "1,5", null, 0.5]})
    );
    assert_eq!(j["00281053"], json!({"vr": "DS", "Value": ["NaN"]}));
    assert_eq!(j["00200013"], json!({"vr": "IS", "Value": [12]}));
    assert_eq!(j["00181150"], json!({"vr": "IS", "Value": ["1.5"]}));
}

#[test]
fn bulk_data_options() {
    let file = round_trip(vec![
        DataElement::new(
            tags::PIXEL_DATA,
            VR::OW,
            PrimitiveValue::U16(vec![1u16, 2].into()),
        ),
        DataElement::new(
            Tag(0x0029, 0x0010),
            VR::LO,
            PrimitiveValue::from("ACME 1.0"),
        ),
        DataElement::new(
            Tag(0x0029, 0x1001),
            VR::OB,
            PrimitiveValue::from(vec![0u8; 10]),
        ),
        DataElement::new(
            Tag(0x0029, 0x1002),
            VR::UN,
            PrimitiveValue::from(vec![0xffu8; 200]),
        ),
        DataElement::new(Tag(0x0008, 0x0000), VR::UL, PrimitiveValue::from(8u32)),
    ]);
    let uri = |tag: &str| format!("https://pacs.example/instances/1.2.3.4/bulk/{tag}");
    let with_uri = dicom_json(
        file.object(),
        &JsonOptions {
            inline_limit: 64,
            bulk_uri: Some(&uri),
        },
    );
    // Pixel Data is always bulk, however small; the private UN is over the limit.
    assert_eq!(
        with_uri["7FE00010"],
        json!({"vr": "OW", "BulkDataURI": "https://pacs.example/instances/1.2.3.4/bulk/7FE00010"})
    );
    assert_eq!(
        with_uri["00291002"],
        json!({"vr": "UN", "BulkDataURI": "https://pacs.example/instances/1.2.3.4/bulk/00291002"})
    );
    assert_eq!(
        with_uri["00291001"],
        json!({"vr": "OB", "InlineBinary": "AAAAAAAAAAAAAA=="})
    );
    // Private creators are LO; group lengths and the meta group are left out.
    assert_eq!(
        with_uri["00290010"],
        json!({"vr": "LO", "Value": ["ACME 1.0"]})
    );
    assert!(with_uri.get("00080000").is_none());
    assert!(
        with_uri
            .as_object()
            .unwrap()
            .keys()
            .all(|k| !k.starts_with("0002"))
    );
    // Keys in tag order.
    let keys: Vec<&String> = with_uri.as_object().unwrap().keys().collect();
    let mut sorted = keys.clone();
    sorted.sort();
    assert_eq!(keys, sorted);

    // Without a bulk URI, bulk data leaves no key at all.
    let without = dicom_json(file.object(), &no_bulk());
    assert!(without.get("7FE00010").is_none());
    assert!(without.get("00291002").is_none());
    assert!(without.get("00291001").is_some());
    // A DefaultDicomObject and its InMemDicomObject give the same JSON.
    let data_set: &InMemDicomObject = file.object();
    assert_eq!(dicom_json(data_set, &no_bulk()), without);
}

/// The element sets of the unit cases, written to files, against dcm2json.
#[test]
fn unit_cases_match_dcm2json() {
    let test = "unit_cases_match_dcm2json";
    if !has_tool(test, "dcm2json") {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let bulk = |tag: &str| format!("bulk/{tag}");
    let options = JsonOptions {
        inline_limit: usize::MAX,
        bulk_uri: Some(&bulk),
    };
    let mut cmp = Comparison::default();
    for (name, elements) in [
        ("person names", person_name_elements()),
        ("empty and padded", empty_and_padded_elements()),
        ("nested and numeric", nested_and_numeric_elements()),
    ] {
        let path = tmp.path().join("case.dcm");
        std::fs::write(&path, part10(elements)).unwrap();
        let ours = dicom_json(DicomFile::open(&path).unwrap().object(), &options);
        let theirs = dcm2json(&path).unwrap_or_else(|e| panic!("{name}: {e}"));
        cmp.data_set(name, ours.as_object().unwrap(), theirs.as_object().unwrap());
    }
    eprintln!("accepted known differences: {:#?}", cmp.accepted);
    assert!(cmp.diffs.is_empty(), "{}", cmp.diffs.join("\n"));
}
