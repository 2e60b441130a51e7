//! Typed metadata of an image instance: what the catalog and a dataset builder need.

use dicom_core::Tag;
use dicom_dictionary_std::tags;
use dicom_object::DefaultDicomObject;
use serde::Serialize;

use crate::open::DicomFile;
use crate::uid::derived_uid;

/// Patient / study / series / instance identity and the image attributes of one object.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct InstanceInfo {
    pub patient_id: String,
    pub patient_name: String,
    pub patient_sex: String,
    pub patient_birth_date: String,
    pub study_instance_uid: String,
    pub study_date: String,
    pub study_time: String,
    pub study_description: String,
    pub accession_number: String,
    pub series_instance_uid: String,
    pub series_number: Option<i64>,
    pub series_description: String,
    pub sop_instance_uid: String,
    pub sop_class_uid: String,
    pub instance_number: Option<i64>,
    pub modality: String,
    pub body_part_examined: String,
    pub view_position: String,
    pub laterality: String,
    pub manufacturer: String,
    pub manufacturer_model_name: String,
    /// `Some(true)` for Burned In Annotation = YES, `Some(false)` for NO, `None` when absent.
    pub burned_in_annotation: Option<bool>,
    pub transfer_syntax_uid: String,
    pub image: Option<ImageAttributes>,
}

/// Image Pixel module attributes; absent when the object has no Pixel Data.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct ImageAttributes {
    pub rows: u32,
    pub columns: u32,
    pub frames: u32,
    pub samples_per_pixel: u16,
    pub photometric_interpretation: String,
    pub bits_allocated: u16,
    pub bits_stored: u16,
    pub high_bit: u16,
    pub pixel_representation: u16,
    /// Row and column spacing in mm: Pixel Spacing, else Imager Pixel Spacing.
    pub pixel_spacing: Option<(f64, f64)>,
}

impl InstanceInfo {
    /// Read the metadata of `file`. Missing identifiers are derived deterministically so that
    /// every instance has a place in the patient / study / series hierarchy.
    pub fn from_file(file: &DicomFile) -> Self {
        let obj = file.object();
        let sop_instance_uid = text(obj, tags::SOP_INSTANCE_UID).unwrap_or_else(|| {
            obj.meta()
                .media_storage_sop_instance_uid()
                .trim_end_matches('\0')
                .to_string()
        });
        let sop_class_uid = text(obj, tags::SOP_CLASS_UID).unwrap_or_else(|| {
            obj.meta()
                .media_storage_sop_class_uid()
                .trim_end_matches('\0')
                .to_string()
        });
        let study_instance_uid = text(obj, tags::STUDY_INSTANCE_UID)
            .unwrap_or_else(|| derived_uid("radlab:study-of", sop_instance_uid.as_bytes()));
        let series_instance_uid = text(obj, tags::SERIES_INSTANCE_UID)
            .unwrap_or_else(|| derived_uid("radlab:series-of", sop_instance_uid.as_bytes()));
        let has_pixels = obj.get(tags::PIXEL_DATA).is_some();
        let image = has_pixels.then(|| ImageAttributes {
            rows: int(obj, tags::ROWS).unwrap_or(0) as u32,
            columns: int(obj, tags::COLUMNS).unwrap_or(0) as u32,
            frames: int(obj, tags::NUMBER_OF_FRAMES)
                .filter(|n| *n > 0)
                .unwrap_or(1) as u32,
            samples_per_pixel: int(obj, tags::SAMPLES_PER_PIXEL).unwrap_or(1) as u16,
            photometric_interpretation: text(obj, tags::PHOTOMETRIC_INTERPRETATION)
                .unwrap_or_default(),
            bits_allocated: int(obj, tags::BITS_ALLOCATED).unwrap_or(0) as u16,
            bits_stored: int(obj, tags::BITS_STORED).unwrap_or(0) as u16,
            high_bit: int(obj, tags::HIGH_BIT).unwrap_or(0) as u16,
            pixel_representation: int(obj, tags::PIXEL_REPRESENTATION).unwrap_or(0) as u16,
            pixel_spacing: spacing(obj, tags::PIXEL_SPACING)
                .or_else(|| spacing(obj, tags::IMAGER_PIXEL_SPACING)),
        });
        InstanceInfo {
            patient_id: text(obj, tags::PATIENT_ID).unwrap_or_default(),
            patient_name: text(obj, tags::PATIENT_NAME).unwrap_or_default(),
            patient_sex: text(obj, tags::PATIENT_SEX).unwrap_or_default(),
            patient_birth_date: text(obj, tags::PATIENT_BIRTH_DATE).unwrap_or_default(),
            study_instance_uid,
            study_date: text(obj, tags::STUDY_DATE).unwrap_or_default(),
            study_time: text(obj, tags::STUDY_TIME).unwrap_or_default(),
            study_description: text(obj, tags::STUDY_DESCRIPTION).unwrap_or_default(),
            accession_number: text(obj, tags::ACCESSION_NUMBER).unwrap_or_default(),
            series_instance_uid,
            series_number: int(obj, tags::SERIES_NUMBER),
            series_description: text(obj, tags::SERIES_DESCRIPTION).unwrap_or_default(),
            sop_instance_uid,
            sop_class_uid,
            instance_number: int(obj, tags::INSTANCE_NUMBER),
            modality: text(obj, tags::MODALITY).unwrap_or_default(),
            body_part_examined: text(obj, tags::BODY_PART_EXAMINED).unwrap_or_default(),
            view_position: text(obj, tags::VIEW_POSITION).unwrap_or_default(),
            laterality: text(obj, tags::IMAGE_LATERALITY)
                .or_else(|| text(obj, tags::LATERALITY))
                .unwrap_or_default(),
            manufacturer: text(obj, tags::MANUFACTURER).unwrap_or_default(),
            manufacturer_model_name: text(obj, tags::MANUFACTURER_MODEL_NAME).unwrap_or_default(),
            burned_in_annotation: text(obj, tags::BURNED_IN_ANNOTATION).and_then(|v| {
                match v.to_ascii_uppercase().as_str() {
                    "YES" => Some(true),
                    "NO" => Some(false),
                    _ => None,
                }
            }),
            transfer_syntax_uid: file.transfer_syntax().to_string(),
            image,
        }
    }
}

/// A trimmed string value; `None` when absent, empty or not text.
pub(crate) fn text(obj: &DefaultDicomObject, tag: Tag) -> Option<String> {
    let s = obj.get(tag)?.to_str().ok()?;
    let s = s.trim_matches(['\0', ' ']);
    (!s.is_empty()).then(|| s.to_string())
}

/// An integer value, accepting binary (US, SS, UL...) and text (IS) encodings.
pub(crate) fn int(obj: &DefaultDicomObject, tag: Tag) -> Option<i64> {
    let elem = obj.get(tag)?;
    if let Ok(v) = elem.to_int::<i64>() {
        return Some(v);
    }
    elem.to_str().ok()?.trim_matches(['\0', ' ']).parse().ok()
}

/// All numeric values of an element (DS, FL, FD, IS, US...).
pub(crate) fn floats(obj: &DefaultDicomObject, tag: Tag) -> Option<Vec<f64>> {
    let elem = obj.get(tag)?;
    let values = elem.to_multi_float64().ok()?;
    (!values.is_empty() && values.iter().all(|v| v.is_finite())).then_some(values)
}

fn spacing(obj: &DefaultDicomObject, tag: Tag) -> Option<(f64, f64)> {
    match floats(obj, tag)?.as_slice() {
        [r, c, ..] if *r > 0.0 && *c > 0.0 => Some((*r, *c)),
        [s] if *s > 0.0 => Some((*s, *s)),
        _ => None,
    }
}
