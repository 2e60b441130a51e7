//! Burned-in text: which images may carry identifying text in their pixels, and cleaning
//! them by blanking rectangles configured per device and image size (as RSNA CTP's pixel
//! anonymizer does). An image suspected of burned-in text that no rule cleans is routed to
//! a review list instead of being written.

use dicom_core::value::PrimitiveValue;
use dicom_core::{DataElement, VR};
use dicom_dictionary_std::{tags, uids};
use dicom_object::DefaultDicomObject;
use radlab_dicom::{DicomFile, PixelLayout, Samples, decode_all_frames};
use serde::Deserialize;

/// A device (or modality) known to burn text into its images. Each field that is given must
/// match: `manufacturer` and `model` as case-insensitive substrings of Manufacturer and
/// Manufacturer's Model Name, `modality` exactly.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TextBurningDevice {
    pub manufacturer: Option<String>,
    pub model: Option<String>,
    pub modality: Option<String>,
}

/// Rectangles to blank on images of one device and size: each region is
/// `[x, y, width, height]` in pixels from the top left corner.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MaskRule {
    pub manufacturer: Option<String>,
    pub model: Option<String>,
    pub modality: Option<String>,
    pub rows: Option<u32>,
    pub columns: Option<u32>,
    pub regions: Vec<[u32; 4]>,
}

impl MaskRule {
    pub(crate) fn check(&self) -> Result<(), String> {
        if self.regions.is_empty() {
            return Err(
                "burned_in.masks: a mask needs at least one region [x, y, width, height]".into(),
            );
        }
        if self.regions.iter().any(|r| r[2] == 0 || r[3] == 0) {
            return Err("burned_in.masks: a region has zero width or height".into());
        }
        Ok(())
    }
}

/// What to do about burned-in text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BurnedInPolicy {
    /// Devices whose images are suspect even when Burned In Annotation is not YES.
    pub devices: Vec<TextBurningDevice>,
    pub masks: Vec<MaskRule>,
    /// Route suspect images that no mask matches to review (`true`) or write them as they
    /// are (`false`).
    pub review_unmatched: bool,
}

impl Default for BurnedInPolicy {
    /// Ultrasound burns patient and exam text into nearly every image.
    fn default() -> Self {
        BurnedInPolicy {
            devices: vec![TextBurningDevice {
                manufacturer: None,
                model: None,
                modality: Some("US".into()),
            }],
            masks: Vec::new(),
            review_unmatched: true,
        }
    }
}

/// The decision for one image.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PixelDecision<'a> {
    /// Nothing suspected, or suspect but kept as the policy says.
    Keep,
    /// Blank these rectangles.
    Mask(&'a MaskRule),
    /// Do not write; list for review, with the reason.
    Review(String),
}

fn text(obj: &DefaultDicomObject, tag: dicom_core::Tag) -> String {
    obj.get(tag)
        .and_then(|e| e.to_str().ok())
        .map(|s| s.trim_matches(['\0', ' ']).to_string())
        .unwrap_or_default()
}

fn contains_ci(hay: &str, needle: &str) -> bool {
    hay.to_ascii_lowercase()
        .contains(&needle.to_ascii_lowercase())
}

fn matches(
    obj: &DefaultDicomObject,
    manufacturer: &Option<String>,
    model: &Option<String>,
    modality: &Option<String>,
) -> bool {
    manufacturer
        .as_ref()
        .is_none_or(|m| contains_ci(&text(obj, tags::MANUFACTURER), m))
        && model
            .as_ref()
            .is_none_or(|m| contains_ci(&text(obj, tags::MANUFACTURER_MODEL_NAME), m))
        && modality
            .as_ref()
            .is_none_or(|m| text(obj, tags::MODALITY).eq_ignore_ascii_case(m))
}

impl BurnedInPolicy {
    /// Decide for `obj` (the input, before de-identification).
    pub fn decide(&self, obj: &DefaultDicomObject) -> PixelDecision<'_> {
        self.decide_with(obj, obj.get(tags::PIXEL_DATA).is_some())
    }

    /// [`BurnedInPolicy::decide`] for an object read without its Pixel Data.
    pub(crate) fn decide_with(
        &self,
        obj: &DefaultDicomObject,
        has_pixels: bool,
    ) -> PixelDecision<'_> {
        if !has_pixels {
            return PixelDecision::Keep;
        }
        let rows = obj.get(tags::ROWS).and_then(|e| e.to_int::<u32>().ok());
        let columns = obj.get(tags::COLUMNS).and_then(|e| e.to_int::<u32>().ok());
        if let Some(rule) = self.masks.iter().find(|r| {
            matches(obj, &r.manufacturer, &r.model, &r.modality)
                && r.rows.is_none_or(|v| Some(v) == rows)
                && r.columns.is_none_or(|v| Some(v) == columns)
        }) {
            return PixelDecision::Mask(rule);
        }
        if !self.review_unmatched {
            return PixelDecision::Keep;
        }
        if text(obj, tags::BURNED_IN_ANNOTATION).eq_ignore_ascii_case("YES") {
            return PixelDecision::Review(
                "Burned In Annotation is YES and no mask rule matches this device and size".into(),
            );
        }
        if let Some(d) = self
            .devices
            .iter()
            .find(|d| matches(obj, &d.manufacturer, &d.model, &d.modality))
        {
            let what = [
                d.modality.as_ref().map(|m| format!("modality {m}")),
                d.manufacturer.as_ref().map(|m| format!("manufacturer {m}")),
                d.model.as_ref().map(|m| format!("model {m}")),
            ]
            .into_iter()
            .flatten()
            .collect::<Vec<_>>()
            .join(", ");
            return PixelDecision::Review(format!(
                "{what} is on the list of devices that burn text into images, and no mask rule matches"
            ));
        }
        PixelDecision::Keep
    }
}

/// Blank the rule's rectangles in every frame of `obj`, which is rewritten as uncompressed
/// Explicit VR Little Endian (colour as interleaved RGB). The blank value is the darkest
/// stored value of the frame as displayed (the largest for MONOCHROME1).
pub fn mask_pixels(obj: &mut DefaultDicomObject, rule: &MaskRule) -> Result<(), String> {
    let layout = PixelLayout::from_object(obj).map_err(|e| e.to_string())?;
    if !matches!(layout.bits_allocated, 8 | 16 | 32) {
        return Err(format!(
            "cannot clean pixel data with Bits Allocated {}",
            layout.bits_allocated
        ));
    }
    let file = DicomFile::from_object(obj.clone());
    let frames = decode_all_frames(&file).map_err(|e| e.to_string())?;
    let mut bytes = Vec::new();
    let mut photometric = layout.photometric.clone();
    for mut frame in frames {
        let (lo, hi) = frame.samples.min_max();
        let blank = if frame.photometric == "MONOCHROME1" {
            hi
        } else {
            lo
        };
        let spp = frame.samples_per_pixel as usize;
        let (w, h) = (frame.columns as usize, frame.rows as usize);
        for r in &rule.regions {
            let (x0, y0) = (r[0] as usize, r[1] as usize);
            let x1 = (x0 + r[2] as usize).min(w);
            let y1 = (y0 + r[3] as usize).min(h);
            for y in y0.min(h)..y1 {
                let start = (y * w + x0.min(w)) * spp;
                let end = (y * w + x1) * spp;
                fill(&mut frame.samples, start..end, blank);
            }
        }
        photometric = frame.photometric.clone();
        append_le(&mut bytes, &frame.samples, layout.bits_allocated);
    }
    if bytes.len() % 2 == 1 {
        bytes.push(0);
    }
    let vr = if layout.bits_allocated == 8 {
        VR::OB
    } else {
        VR::OW
    };
    obj.put(DataElement::new(
        tags::PIXEL_DATA,
        vr,
        PrimitiveValue::U8(bytes.into()),
    ));
    obj.put(DataElement::new(
        tags::PHOTOMETRIC_INTERPRETATION,
        VR::CS,
        PrimitiveValue::from(photometric.as_str()),
    ));
    if layout.samples_per_pixel > 1 {
        obj.put(DataElement::new(
            tags::PLANAR_CONFIGURATION,
            VR::US,
            PrimitiveValue::from(0u16),
        ));
    }
    obj.put(DataElement::new(
        tags::BURNED_IN_ANNOTATION,
        VR::CS,
        PrimitiveValue::from("NO"),
    ));
    obj.meta_mut().transfer_syntax = uids::EXPLICIT_VR_LITTLE_ENDIAN.to_string();
    Ok(())
}

fn fill(samples: &mut Samples, range: std::ops::Range<usize>, value: i64) {
    let range = range.start.min(samples.len())..range.end.min(samples.len());
    match samples {
        Samples::U16(v) => v[range].fill(value as u16),
        Samples::I16(v) => v[range].fill(value as i16),
        Samples::U32(v) => v[range].fill(value as u32),
        Samples::I32(v) => v[range].fill(value as i32),
    }
}

fn append_le(out: &mut Vec<u8>, samples: &Samples, bits_allocated: u16) {
    match (samples, bits_allocated) {
        (Samples::U16(v), 8) => out.extend(v.iter().map(|&x| x as u8)),
        (Samples::I16(v), 8) => out.extend(v.iter().map(|&x| x as u8)),
        (Samples::U16(v), _) => v.iter().for_each(|x| out.extend(x.to_le_bytes())),
        (Samples::I16(v), _) => v.iter().for_each(|x| out.extend(x.to_le_bytes())),
        (Samples::U32(v), _) => v.iter().for_each(|x| out.extend(x.to_le_bytes())),
        (Samples::I32(v), _) => v.iter().for_each(|x| out.extend(x.to_le_bytes())),
    }
}
