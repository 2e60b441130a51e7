//! Damaged length fields fail fast with an error naming the element, instead of dicom-rs
//! allocating (and zero-filling) the declared length first: synthetic files, built here.

use std::time::{Duration, Instant};

use radlab_dicom::{DicomError, DicomFile, MAX_SEQUENCE_DEPTH};

const EXPLICIT_LE: &str = "1.2.840.10008.1.2.1";
const IMPLICIT_LE: &str = "1.2.840.10008.1.2";
const BOGUS: u32 = 0xFFFF_FFF0;
const UNDEFINED: u32 = 0xFFFF_FFFF;

fn even(value: &[u8], pad: u8) -> Vec<u8> {
    let mut v = value.to_vec();
    if !v.len().is_multiple_of(2) {
        v.push(pad);
    }
    v
}

fn tag(group: u16, element: u16) -> Vec<u8> {
    let mut out = group.to_le_bytes().to_vec();
    out.extend(element.to_le_bytes());
    out
}

/// An explicit VR little endian element with a 16-bit length (UI, PN, ...).
fn explicit_short(group: u16, element: u16, vr: &[u8; 2], value: &[u8]) -> Vec<u8> {
    let value = even(value, if vr == b"UI" { 0 } else { b' ' });
    let mut out = tag(group, element);
    out.extend(vr);
    out.extend((value.len() as u16).to_le_bytes());
    out.extend(value);
    out
}

/// An explicit VR little endian header with a 32-bit length (OB, SQ, UT, ...), no value.
fn explicit_long_header(group: u16, element: u16, vr: &[u8; 2], len: u32) -> Vec<u8> {
    let mut out = tag(group, element);
    out.extend(vr);
    out.extend([0, 0]);
    out.extend(len.to_le_bytes());
    out
}

/// An implicit VR header (tag and 32-bit length), no value; also items and delimiters.
fn implicit_header(group: u16, element: u16, len: u32) -> Vec<u8> {
    let mut out = tag(group, element);
    out.extend(len.to_le_bytes());
    out
}

fn implicit(group: u16, element: u16, value: &[u8]) -> Vec<u8> {
    let value = even(value, b' ');
    let mut out = implicit_header(group, element, value.len() as u32);
    out.extend(value);
    out
}

/// Preamble, DICM, a file meta group naming `ts`, then `data_set`.
fn part10(ts: &str, data_set: &[u8]) -> Vec<u8> {
    let mut meta = explicit_long_header(0x0002, 0x0001, b"OB", 2);
    meta.extend([0, 1]);
    meta.extend(explicit_short(
        0x0002,
        0x0002,
        b"UI",
        b"1.2.840.10008.5.1.4.1.1.7",
    ));
    meta.extend(explicit_short(0x0002, 0x0003, b"UI", b"1.2.3.4.5.6.7"));
    meta.extend(explicit_short(0x0002, 0x0010, b"UI", ts.as_bytes()));
    meta.extend(explicit_short(0x0002, 0x0012, b"UI", b"1.2.3.4"));
    let mut out = vec![0u8; 128];
    out.extend(b"DICM");
    out.extend(explicit_short(
        0x0002,
        0x0000,
        b"UL",
        &(meta.len() as u32).to_le_bytes(),
    ));
    out.extend(meta);
    out.extend(data_set);
    out
}

fn identifying_implicit() -> Vec<u8> {
    let mut ds = implicit(0x0008, 0x0016, b"1.2.840.10008.5.1.4.1.1.7\0");
    ds.extend(implicit(0x0008, 0x0018, b"1.2.3.4.5.6.7\0"));
    ds
}

/// Parse, and insist that it took well under a second (the damaged files this guards
/// against took 5 to 45 s) and failed as `Truncated` naming the element and the length.
fn assert_fails_fast(bytes: &[u8], element: &str) -> String {
    let start = Instant::now();
    let result = DicomFile::from_bytes(bytes);
    let took = start.elapsed();
    assert!(took < Duration::from_secs(1), "took {took:?}");
    let err = result.expect_err("a length past the end of the file must not parse");
    let message = err.to_string();
    assert!(matches!(err, DicomError::Truncated(_)), "{message}");
    assert_eq!(err.reason_code(), "truncated_file");
    assert!(message.contains(element), "{message}");
    assert!(message.contains(&BOGUS.to_string()), "{message}");
    message
}

#[test]
fn bogus_length_in_a_text_element() {
    let mut ds = identifying_implicit();
    ds.extend(implicit_header(0x0010, 0x0010, BOGUS)); // Patient's Name
    ds.extend(b"Doe^Jane");
    let file = part10(IMPLICIT_LE, &ds);
    let message = assert_fails_fast(&file, "(0010,0010) PatientName");
    // The position counts from the start of the file, preamble included.
    let at = file.len() - 8;
    assert!(message.contains(&format!("at byte {at} ")), "{message}");
}

#[test]
fn bogus_length_in_an_explicit_vr_text_element() {
    let mut ds = explicit_short(0x0008, 0x0016, b"UI", b"1.2.840.10008.5.1.4.1.1.7");
    ds.extend(explicit_short(0x0008, 0x0018, b"UI", b"1.2.3.4.5.6.7"));
    ds.extend(explicit_long_header(0x4000, 0x4000, b"UT", BOGUS)); // Text Comments
    ds.extend(b"no comment");
    assert_fails_fast(&part10(EXPLICIT_LE, &ds), "(4000,4000)");
}

#[test]
fn bogus_length_of_a_sequence_item() {
    let mut ds = explicit_short(0x0008, 0x0016, b"UI", b"1.2.840.10008.5.1.4.1.1.7");
    ds.extend(explicit_short(0x0008, 0x0018, b"UI", b"1.2.3.4.5.6.7"));
    ds.extend(explicit_long_header(0x0008, 0x1140, b"SQ", UNDEFINED)); // Referenced Image Seq
    ds.extend(implicit_header(0xFFFE, 0xE000, BOGUS));
    ds.extend(explicit_short(
        0x0008,
        0x1150,
        b"UI",
        b"1.2.840.10008.5.1.4.1.1.7",
    ));
    ds.extend(implicit_header(0xFFFE, 0xE0DD, 0));
    assert_fails_fast(&part10(EXPLICIT_LE, &ds), "(FFFE,E000) item");
}

#[test]
fn bogus_length_of_an_element_inside_a_sequence_item() {
    let mut ds = identifying_implicit();
    ds.extend(implicit_header(0x0008, 0x1140, UNDEFINED)); // Referenced Image Sequence
    ds.extend(implicit_header(0xFFFE, 0xE000, UNDEFINED));
    ds.extend(implicit(0x0008, 0x1150, b"1.2.840.10008.5.1.4.1.1.7\0"));
    ds.extend(implicit_header(0x0008, 0x1155, BOGUS)); // Referenced SOP Instance UID
    ds.extend(b"1.2.3\0");
    assert_fails_fast(
        &part10(IMPLICIT_LE, &ds),
        "(0008,1155) ReferencedSOPInstanceUID",
    );
}

#[test]
fn bogus_length_of_a_pixel_data_fragment() {
    let mut ds = explicit_short(0x0008, 0x0016, b"UI", b"1.2.840.10008.5.1.4.1.1.7");
    ds.extend(explicit_short(0x0008, 0x0018, b"UI", b"1.2.3.4.5.6.7"));
    ds.extend(explicit_long_header(0x7FE0, 0x0010, b"OB", UNDEFINED));
    ds.extend(implicit_header(0xFFFE, 0xE000, 0)); // empty offset table
    ds.extend(implicit_header(0xFFFE, 0xE000, BOGUS));
    ds.extend([0xFF, 0xD8, 0xFF, 0xD9]);
    assert_fails_fast(&part10("1.2.840.10008.1.2.4.50", &ds), "(FFFE,E000) item");
}

#[test]
fn bogus_length_in_a_bare_data_set() {
    let mut ds = implicit(0x0008, 0x0060, b"CR");
    ds.extend(implicit_header(0x0010, 0x0010, BOGUS));
    ds.extend(b"Doe^Jane");
    let message = assert_fails_fast(&ds, "(0010,0010) PatientName");
    assert!(message.contains("at byte 18 "), "{message}");
}

#[test]
fn sequences_nested_too_deep_are_refused() {
    let mut ds = identifying_implicit();
    for _ in 0..=MAX_SEQUENCE_DEPTH {
        ds.extend(implicit_header(0x0008, 0x1140, UNDEFINED));
        ds.extend(implicit_header(0xFFFE, 0xE000, UNDEFINED));
    }
    let err = DicomFile::from_bytes(&part10(IMPLICIT_LE, &ds)).unwrap_err();
    assert!(matches!(err, DicomError::Parse(_)), "{err}");
    assert!(err.to_string().contains("nest"), "{err}");
}

#[test]
fn well_formed_nesting_and_lengths_still_parse() {
    let mut ds = identifying_implicit();
    for _ in 0..4 {
        ds.extend(implicit_header(0x0008, 0x1140, UNDEFINED));
        ds.extend(implicit_header(0xFFFE, 0xE000, UNDEFINED));
        ds.extend(implicit(0x0008, 0x1150, b"1.2.840.10008.5.1.4.1.1.7\0"));
    }
    for _ in 0..4 {
        ds.extend(implicit_header(0xFFFE, 0xE00D, 0));
        ds.extend(implicit_header(0xFFFE, 0xE0DD, 0));
    }
    ds.extend(implicit(0x0010, 0x0010, b"Doe^Jane"));
    let file = DicomFile::from_bytes(&part10(IMPLICIT_LE, &ds)).expect("well-formed file");
    let name = file
        .object()
        .element(dicom_dictionary_std::tags::PATIENT_NAME)
        .unwrap()
        .to_str()
        .unwrap()
        .to_string();
    assert_eq!(name.trim(), "Doe^Jane");
}
