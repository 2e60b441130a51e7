//! Wrapping PNG and JPEG pictures as DICOM Secondary Capture objects.
//!
//! Many public chest X-ray sets ship as PNG or JPEG. To keep one catalog and one viewer path,
//! such files become Secondary Capture Image objects (PS3.3 A.8.1) with UIDs derived from the
//! file content (so a re-import is idempotent) and the source file name kept in Image Comments
//! and Derivation Description.

use dicom_core::value::PrimitiveValue;
use dicom_core::{DataElement, VR};
use dicom_dictionary_std::{tags, uids};
use dicom_object::{FileMetaTableBuilder, InMemDicomObject};
use image::DynamicImage;

use crate::error::{DicomError, Result};
use crate::open::DicomFile;
use crate::uid::derived_uid;

/// Whether the bytes look like a PNG or JPEG picture.
pub fn is_picture(bytes: &[u8]) -> bool {
    bytes.starts_with(b"\x89PNG\r\n\x1a\n") || bytes.starts_with(&[0xFF, 0xD8, 0xFF])
}

/// Build a Secondary Capture object from a PNG or JPEG file's bytes.
///
/// Greyscale pictures (including RGB ones whose three channels are equal, as many CXR PNGs
/// are) become MONOCHROME2 with 8 or 16 bits; true colour becomes RGB. Alpha is dropped.
pub fn wrap_picture(bytes: &[u8], source_name: &str) -> Result<DicomFile> {
    let picture = image::load_from_memory(bytes)
        .map_err(|e| DicomError::NotDicom(format!("not a readable PNG/JPEG picture: {e}")))?;
    let (width, height) = (picture.width(), picture.height());
    if width == 0 || height == 0 || width > 65535 || height > 65535 {
        return Err(DicomError::Unsupported(format!(
            "picture size {width} x {height} cannot be a DICOM image"
        )));
    }
    let (photometric, samples, bits, pixel_bytes) = picture_pixels(&picture);
    let content = blake3::hash(bytes);
    let key = content.as_bytes();
    let sop_uid = derived_uid("radlab:picture-sop", key);
    let comment = format!("Converted by radlab from {source_name}");

    let mut obj = InMemDicomObject::new_empty();
    let mut put_str = |tag, vr, value: &str| {
        obj.put(DataElement::new(tag, vr, PrimitiveValue::from(value)));
    };
    put_str(tags::SPECIFIC_CHARACTER_SET, VR::CS, "ISO_IR 192");
    put_str(tags::IMAGE_TYPE, VR::CS, "DERIVED\\SECONDARY");
    put_str(
        tags::SOP_CLASS_UID,
        VR::UI,
        uids::SECONDARY_CAPTURE_IMAGE_STORAGE,
    );
    put_str(tags::SOP_INSTANCE_UID, VR::UI, &sop_uid);
    put_str(
        tags::STUDY_INSTANCE_UID,
        VR::UI,
        &derived_uid("radlab:picture-study", key),
    );
    put_str(
        tags::SERIES_INSTANCE_UID,
        VR::UI,
        &derived_uid("radlab:picture-series", key),
    );
    put_str(tags::MODALITY, VR::CS, "OT");
    put_str(tags::CONVERSION_TYPE, VR::CS, "WSD");
    put_str(tags::PATIENT_ID, VR::LO, "");
    put_str(tags::PATIENT_NAME, VR::PN, "");
    put_str(tags::STUDY_DATE, VR::DA, "");
    put_str(tags::STUDY_TIME, VR::TM, "");
    put_str(tags::ACCESSION_NUMBER, VR::SH, "");
    put_str(tags::REFERRING_PHYSICIAN_NAME, VR::PN, "");
    put_str(tags::STUDY_ID, VR::SH, "");
    put_str(tags::SERIES_NUMBER, VR::IS, "1");
    put_str(tags::INSTANCE_NUMBER, VR::IS, "1");
    put_str(tags::PATIENT_ORIENTATION, VR::CS, "");
    put_str(tags::IMAGE_COMMENTS, VR::LT, &comment);
    put_str(tags::DERIVATION_DESCRIPTION, VR::ST, &comment);
    put_str(tags::BURNED_IN_ANNOTATION, VR::CS, "NO");
    put_str(tags::PHOTOMETRIC_INTERPRETATION, VR::CS, photometric);
    let mut put_us = |tag, value: u16| {
        obj.put(DataElement::new(tag, VR::US, PrimitiveValue::from(value)));
    };
    put_us(tags::SAMPLES_PER_PIXEL, samples);
    put_us(tags::ROWS, height as u16);
    put_us(tags::COLUMNS, width as u16);
    put_us(tags::BITS_ALLOCATED, bits);
    put_us(tags::BITS_STORED, bits);
    put_us(tags::HIGH_BIT, bits - 1);
    put_us(tags::PIXEL_REPRESENTATION, 0);
    if samples == 3 {
        put_us(tags::PLANAR_CONFIGURATION, 0);
    }
    let pixel_value = if bits == 16 {
        let words: Vec<u16> = pixel_bytes
            .chunks_exact(2)
            .map(|c| u16::from_le_bytes([c[0], c[1]]))
            .collect();
        DataElement::new(tags::PIXEL_DATA, VR::OW, PrimitiveValue::U16(words.into()))
    } else {
        DataElement::new(
            tags::PIXEL_DATA,
            VR::OB,
            PrimitiveValue::U8(pixel_bytes.into()),
        )
    };
    obj.put(pixel_value);
    let file = obj
        .with_meta(
            FileMetaTableBuilder::new()
                .transfer_syntax(uids::EXPLICIT_VR_LITTLE_ENDIAN)
                .media_storage_sop_class_uid(uids::SECONDARY_CAPTURE_IMAGE_STORAGE)
                .media_storage_sop_instance_uid(sop_uid),
        )
        .map_err(|e| DicomError::Encode(format!("file meta: {e}")))?;
    Ok(DicomFile::from_object(file))
}

/// Photometric, samples per pixel, bits, and little-endian pixel bytes.
fn picture_pixels(picture: &DynamicImage) -> (&'static str, u16, u16, Vec<u8>) {
    use DynamicImage as D;
    match picture {
        D::ImageLuma16(_) | D::ImageLumaA16(_) => {
            let grey = picture.to_luma16();
            let bytes = grey.as_raw().iter().flat_map(|v| v.to_le_bytes()).collect();
            ("MONOCHROME2", 1, 16, bytes)
        }
        D::ImageLuma8(_) | D::ImageLumaA8(_) => {
            ("MONOCHROME2", 1, 8, picture.to_luma8().into_raw())
        }
        _ => {
            let rgb = picture.to_rgb8();
            let grey = rgb.pixels().all(|p| p[0] == p[1] && p[1] == p[2]);
            if grey {
                let bytes = rgb.pixels().map(|p| p[0]).collect();
                ("MONOCHROME2", 1, 8, bytes)
            } else {
                ("RGB", 3, 8, rgb.into_raw())
            }
        }
    }
}

/// Serialise a DICOM object as a Part 10 file.
pub fn to_part10_bytes(file: &DicomFile) -> Result<Vec<u8>> {
    let mut out = Vec::new();
    file.object()
        .write_all(&mut out)
        .map_err(|e| DicomError::Encode(format!("cannot write the DICOM object: {e}")))?;
    Ok(out)
}
