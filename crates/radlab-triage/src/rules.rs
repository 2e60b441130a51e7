//! Rules on metadata: each finding names the attribute it read, the value, and why the
//! object is not a usable chest radiograph. A missing attribute is never a finding (many
//! real chest radiographs lack Body Part Examined and View Position); only what an
//! attribute says counts.

use serde::Serialize;

/// The metadata the rules read, taken from a DICOM object ([`Metadata::from_file`]) or
/// built by hand (tests, other sources). Empty strings stand for absent attributes.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Metadata {
    pub sop_class_uid: String,
    pub modality: String,
    pub body_part_examined: String,
    pub view_position: String,
    pub protocol_name: String,
    pub series_description: String,
    pub study_description: String,
    /// Burned In Annotation: `Some(true)` for YES.
    pub burned_in_annotation: Option<bool>,
    /// The Image Pixel module; `None` when the object has no Pixel Data.
    pub image: Option<ImageMeta>,
}

/// What the rules read of the Image Pixel module.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ImageMeta {
    pub rows: u32,
    pub columns: u32,
    pub frames: u32,
    pub samples_per_pixel: u16,
    pub photometric_interpretation: String,
    /// Row and column spacing in mm (Pixel Spacing, else Imager Pixel Spacing).
    pub pixel_spacing: Option<(f64, f64)>,
}

impl Metadata {
    /// The rules' view of a parsed DICOM file.
    pub fn from_file(file: &radlab_dicom::DicomFile) -> Metadata {
        let info = radlab_dicom::InstanceInfo::from_file(file);
        let protocol_name = file
            .object()
            .get(dicom_dictionary_std::tags::PROTOCOL_NAME)
            .and_then(|e| e.to_str().ok())
            .map(|s| s.trim_end_matches(['\0', ' ']).to_string())
            .unwrap_or_default();
        Metadata {
            sop_class_uid: info.sop_class_uid,
            modality: info.modality,
            body_part_examined: info.body_part_examined,
            view_position: info.view_position,
            protocol_name,
            series_description: info.series_description,
            study_description: info.study_description,
            burned_in_annotation: info.burned_in_annotation,
            image: info.image.map(|i| ImageMeta {
                rows: i.rows,
                columns: i.columns,
                frames: i.frames,
                samples_per_pixel: i.samples_per_pixel,
                photometric_interpretation: i.photometric_interpretation,
                pixel_spacing: i.pixel_spacing,
            }),
        }
    }
}

/// How the rules judge: the modalities a project takes.
#[derive(Debug, Clone, PartialEq)]
pub struct RuleConfig {
    /// Modality values accepted (upper case); default CR and DX.
    pub modalities: Vec<String>,
}

impl Default for RuleConfig {
    fn default() -> Self {
        RuleConfig {
            modalities: vec!["CR".into(), "DX".into()],
        }
    }
}

/// One rule's finding: a stable code, and a sentence naming the attribute and its value.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Finding {
    pub code: &'static str,
    pub reason: String,
}

/// Smallest and largest plausible image side, in pixels.
pub const MIN_SIDE: u32 = 256;
pub const MAX_SIDE: u32 = 10_000;
/// Plausible field of view of a chest radiograph, each side, in mm (a newborn's chest on a
/// detector crop to a 43 cm cassette, with room for tags that keep the spacing of an
/// image later downsampled).
pub const MIN_FIELD_MM: f64 = 100.0;
pub const MAX_FIELD_MM: f64 = 700.0;

/// The rules a PNG or JPEG picture can be judged by (it has no metadata): its size, and
/// colour (a pixel whose channels differ).
pub fn check_picture(width: u32, height: u32, colour: bool) -> Vec<Finding> {
    let mut out = Vec::new();
    if width.min(height) < MIN_SIDE || width.max(height) > MAX_SIDE {
        out.push(Finding {
            code: "size",
            reason: format!(
                "{width} x {height} pixels is outside {MIN_SIDE} to {MAX_SIDE} pixels a side"
            ),
        });
    }
    if colour {
        out.push(Finding {
            code: "colour",
            reason: "a colour picture: a radiograph is greyscale".into(),
        });
    }
    out
}

/// Every rule's finding for `meta`, in a fixed order (empty: nothing in the metadata says it
/// is not a chest radiograph).
pub fn check(meta: &Metadata, config: &RuleConfig) -> Vec<Finding> {
    let mut out = Vec::new();
    let mut add = |code: &'static str, reason: String| out.push(Finding { code, reason });

    if let Some(kind) = non_image_class(&meta.sop_class_uid) {
        add(
            "not-an-image",
            format!(
                "SOP Class UID {} is {kind}, not an image",
                meta.sop_class_uid
            ),
        );
    }
    let modality = meta.modality.trim().to_ascii_uppercase();
    if !modality.is_empty() && !config.modalities.contains(&modality) {
        add(
            "modality",
            format!(
                "Modality {modality} is not {}",
                config.modalities.join(" or ")
            ),
        );
    }
    let body_part = meta.body_part_examined.trim();
    if !body_part.is_empty() && !uninformative(body_part) && !names_chest(body_part) {
        add(
            "body-part",
            format!("Body Part Examined {body_part:?} is not the chest"),
        );
    }
    for (attribute, value) in [
        ("Protocol Name", &meta.protocol_name),
        ("Series Description", &meta.series_description),
        ("Study Description", &meta.study_description),
    ] {
        if let Some(region) = names_other_region(value) {
            add(
                "protocol-region",
                format!("{attribute} {value:?} names the {region}, not the chest"),
            );
            break;
        }
    }
    let view = meta.view_position.trim().to_ascii_uppercase();
    if let Some(kind) = non_frontal_view(&view) {
        add(
            "view",
            format!("View Position {view} is {kind}, not frontal (PA or AP)"),
        );
    }
    if meta.burned_in_annotation == Some(true) {
        add(
            "burned-in-annotation",
            "Burned In Annotation is YES: text is burned into the pixels".into(),
        );
    }
    match &meta.image {
        None => add(
            "no-pixel-data",
            "no Pixel Data: there is no image to label".into(),
        ),
        Some(image) => {
            let (r, c) = (image.rows, image.columns);
            if r.min(c) < MIN_SIDE || r.max(c) > MAX_SIDE {
                add(
                    "size",
                    format!("{c} x {r} pixels is outside {MIN_SIDE} to {MAX_SIDE} pixels a side"),
                );
            }
            if image.frames > 1 {
                add(
                    "multi-frame",
                    format!("{} frames: a radiograph has one", image.frames),
                );
            }
            let photometric = image.photometric_interpretation.trim().to_ascii_uppercase();
            if image.samples_per_pixel > 1
                || (!photometric.is_empty() && !photometric.starts_with("MONOCHROME"))
            {
                add(
                    "colour",
                    format!(
                        "Photometric Interpretation {photometric} with {} sample(s) per pixel: a radiograph is greyscale",
                        image.samples_per_pixel
                    ),
                );
            }
            if let Some((row_mm, col_mm)) = image.pixel_spacing
                && r > 0
                && c > 0
            {
                let (height, width) = (row_mm * f64::from(r), col_mm * f64::from(c));
                if !(MIN_FIELD_MM..=MAX_FIELD_MM).contains(&height)
                    || !(MIN_FIELD_MM..=MAX_FIELD_MM).contains(&width)
                {
                    add(
                        "pixel-spacing",
                        format!(
                            "pixel spacing {row_mm} x {col_mm} mm gives a {width:.0} x {height:.0} mm field, outside {MIN_FIELD_MM:.0} to {MAX_FIELD_MM:.0} mm a side"
                        ),
                    );
                }
            }
        }
    }
    out
}

/// The family of a SOP class that holds no radiograph (structured reports, presentation
/// states, documents, waveforms, radiotherapy, segmentations, raw data), by UID prefix.
fn non_image_class(uid: &str) -> Option<&'static str> {
    const FAMILIES: &[(&str, &str)] = &[
        (
            "1.2.840.10008.5.1.4.1.1.88.",
            "a structured report or key object selection",
        ),
        ("1.2.840.10008.5.1.4.1.1.11.", "a presentation state"),
        ("1.2.840.10008.5.1.4.1.1.104.", "an encapsulated document"),
        ("1.2.840.10008.5.1.4.1.1.9.", "a waveform"),
        ("1.2.840.10008.5.1.4.1.1.481.", "a radiotherapy object"),
        (
            "1.2.840.10008.5.1.4.1.1.66",
            "raw data, a registration or a segmentation",
        ),
        ("1.2.840.10008.5.1.4.1.1.67", "a real-world value mapping"),
        ("1.2.840.10008.5.1.4.1.1.68.", "a surface"),
        ("1.2.840.10008.5.1.4.1.1.200.", "a protocol"),
        ("1.2.840.10008.5.1.4.1.1.201.", "an inventory"),
    ];
    let uid = uid.trim_end_matches(['\0', ' ']);
    FAMILIES
        .iter()
        .find(|(prefix, _)| uid.starts_with(prefix))
        .map(|(_, kind)| *kind)
}

/// Values that say nothing about the region.
fn uninformative(value: &str) -> bool {
    matches!(
        value.trim().to_ascii_uppercase().as_str(),
        "UNKNOWN" | "OTHER" | "NONE" | "*" | "-" | "N/A" | "NA" | "UNSPECIFIED"
    )
}

/// The words of a free-text value, upper case, split on anything not a letter.
fn words(value: &str) -> Vec<String> {
    value
        .split(|c: char| !c.is_alphabetic())
        .filter(|w| !w.is_empty())
        .map(str::to_uppercase)
        .collect()
}

/// Chest in the languages of the sites radlab serves (DICOM's CHEST and THORAX first).
const CHEST_WORDS: &[&str] = &[
    "CHEST",
    "THORAX",
    "THORACIC",
    "LUNG",
    "LUNGS",
    "CXR",
    "TORAX",
    "TÓRAX",
    "PECHO",
    "POITRINE",
    "BRUST",
    "BRUSTKORB",
    "TORACE",
    "NGUC",
    "NGỰC",
    "PHOI",
    "PHỔI",
];

fn names_chest(value: &str) -> bool {
    let compact = value.trim().to_uppercase();
    words(value)
        .iter()
        .any(|w| CHEST_WORDS.contains(&w.as_str()))
        // DICOM's own terms without separators: CHESTPA, PORTCHEST...
        || ["CHEST", "THORAX"].iter().any(|t| compact.contains(t))
}

/// Regions that are not the chest, as words of free text (protocols and descriptions), with
/// the region's name for the reason. Words only: `ARM` does not match `PHARMACY`.
const OTHER_REGIONS: &[(&str, &str)] = &[
    ("SKULL", "skull"),
    ("HEAD", "head"),
    ("BRAIN", "brain"),
    ("SINUS", "sinuses"),
    ("SINUSES", "sinuses"),
    ("FACE", "face"),
    ("MANDIBLE", "mandible"),
    ("DENTAL", "teeth"),
    ("TEETH", "teeth"),
    ("NECK", "neck"),
    ("CSPINE", "spine"),
    ("TSPINE", "spine"),
    ("LSPINE", "spine"),
    ("SPINE", "spine"),
    ("CERVICAL", "cervical spine"),
    ("LUMBAR", "lumbar spine"),
    ("SACRUM", "sacrum"),
    ("ABDOMEN", "abdomen"),
    ("ABD", "abdomen"),
    ("KUB", "abdomen"),
    ("PELVIS", "pelvis"),
    ("HIP", "hip"),
    ("HIPS", "hip"),
    ("FEMUR", "femur"),
    ("KNEE", "knee"),
    ("KNEES", "knee"),
    ("TIBIA", "leg"),
    ("FIBULA", "leg"),
    ("LEG", "leg"),
    ("ANKLE", "ankle"),
    ("FOOT", "foot"),
    ("FEET", "foot"),
    ("TOE", "foot"),
    ("TOES", "foot"),
    ("CALCANEUS", "foot"),
    ("SHOULDER", "shoulder"),
    ("HUMERUS", "arm"),
    ("ARM", "arm"),
    ("ELBOW", "elbow"),
    ("FOREARM", "forearm"),
    ("WRIST", "wrist"),
    ("HAND", "hand"),
    ("HANDS", "hand"),
    ("FINGER", "hand"),
    ("FINGERS", "hand"),
    ("THUMB", "hand"),
    ("EXTREMITY", "extremity"),
    ("BREAST", "breast"),
    ("MAMMO", "breast"),
    ("MAMMOGRAPHY", "breast"),
    ("MAMMOSCREENING", "breast"),
];

/// The region a free-text value names, when it names one that is not the chest and does
/// not also name the chest ("chest and abdomen" is kept).
fn names_other_region(value: &str) -> Option<&'static str> {
    if value.trim().is_empty() || names_chest(value) {
        return None;
    }
    let words = words(value);
    OTHER_REGIONS
        .iter()
        .find(|(word, _)| words.iter().any(|w| w == word))
        .map(|(_, region)| *region)
}

/// What a non-frontal View Position is (DICOM's defined terms and common vendor values).
fn non_frontal_view(view: &str) -> Option<&'static str> {
    match view {
        "LL" | "RL" | "LAT" | "LATERAL" | "LLAT" | "RLAT" => Some("a lateral view"),
        "LAO" | "RAO" | "LPO" | "RPO" | "OBL" | "OBLIQUE" => Some("an oblique view"),
        "MLO" | "CC" | "ML" | "LM" | "XCC" | "XCCL" | "XCCM" | "SIO" | "FB" => {
            Some("a mammography view")
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn chest() -> Metadata {
        Metadata {
            sop_class_uid: "1.2.840.10008.5.1.4.1.1.1".into(),
            modality: "CR".into(),
            body_part_examined: "CHEST".into(),
            view_position: "PA".into(),
            image: Some(ImageMeta {
                rows: 2048,
                columns: 2048,
                frames: 1,
                samples_per_pixel: 1,
                photometric_interpretation: "MONOCHROME2".into(),
                pixel_spacing: Some((0.175, 0.175)),
            }),
            ..Metadata::default()
        }
    }

    fn codes(m: &Metadata) -> Vec<&'static str> {
        check(m, &RuleConfig::default())
            .into_iter()
            .map(|f| f.code)
            .collect()
    }

    #[test]
    fn a_chest_radiograph_has_no_finding_and_missing_tags_are_none() {
        assert!(codes(&chest()).is_empty());
        let bare = Metadata {
            image: chest().image,
            ..Metadata::default()
        };
        assert!(codes(&bare).is_empty(), "{:?}", codes(&bare));
        for part in [
            "THORAX",
            "Chest",
            "CHEST_PA",
            "PORTCHEST",
            "Tórax",
            "unknown",
            "Lungs",
        ] {
            let m = Metadata {
                body_part_examined: part.into(),
                ..chest()
            };
            assert!(codes(&m).is_empty(), "{part}: {:?}", codes(&m));
        }
    }

    #[test]
    fn each_rule_names_what_it_read() {
        let cases: Vec<(Metadata, &str, &str)> = vec![
            (
                Metadata {
                    modality: "CT".into(),
                    ..chest()
                },
                "modality",
                "Modality CT is not CR or DX",
            ),
            (
                Metadata {
                    body_part_examined: "HAND".into(),
                    ..chest()
                },
                "body-part",
                "\"HAND\"",
            ),
            (
                Metadata {
                    series_description: "XR C Spine 2 views".into(),
                    ..chest()
                },
                "protocol-region",
                "names the spine",
            ),
            (
                Metadata {
                    view_position: "LL".into(),
                    ..chest()
                },
                "view",
                "lateral",
            ),
            (
                Metadata {
                    burned_in_annotation: Some(true),
                    ..chest()
                },
                "burned-in-annotation",
                "YES",
            ),
            (
                Metadata {
                    image: None,
                    ..chest()
                },
                "no-pixel-data",
                "no Pixel Data",
            ),
            (
                Metadata {
                    sop_class_uid: "1.2.840.10008.5.1.4.1.1.88.33".into(),
                    ..chest()
                },
                "not-an-image",
                "structured report",
            ),
        ];
        for (meta, code, says) in cases {
            let found = check(&meta, &RuleConfig::default());
            assert_eq!(found.len(), 1, "{code}: {found:?}");
            assert_eq!(found[0].code, code);
            assert!(found[0].reason.contains(says), "{}", found[0].reason);
        }
    }

    #[test]
    fn sizes_spacing_frames_and_colour() {
        let with = |rows, columns, frames, spp: u16, pi: &str, spacing| Metadata {
            image: Some(ImageMeta {
                rows,
                columns,
                frames,
                samples_per_pixel: spp,
                photometric_interpretation: pi.into(),
                pixel_spacing: spacing,
            }),
            ..chest()
        };
        assert_eq!(codes(&with(16, 16, 1, 1, "MONOCHROME2", None)), ["size"]);
        assert_eq!(
            codes(&with(20_000, 2048, 1, 1, "MONOCHROME2", None)),
            ["size"]
        );
        assert_eq!(
            codes(&with(2048, 2048, 1, 1, "MONOCHROME2", Some((2.26, 2.26)))),
            ["pixel-spacing"]
        );
        // A downsampled image that kept its detector spacing (the SIIM radiographs).
        assert!(codes(&with(1024, 1024, 1, 1, "MONOCHROME2", Some((0.168, 0.168)))).is_empty());
        assert_eq!(
            codes(&with(512, 512, 30, 1, "MONOCHROME2", None)),
            ["multi-frame"]
        );
        assert_eq!(
            codes(&with(600, 600, 1, 3, "YBR_FULL_422", None)),
            ["colour"]
        );
        assert_eq!(
            codes(&with(600, 600, 1, 1, "PALETTE COLOR", None)),
            ["colour"]
        );
    }

    #[test]
    fn free_text_matches_words_and_keeps_the_chest() {
        assert_eq!(names_other_region("XRAY RIGHT HAND"), Some("hand"));
        assert_eq!(names_other_region("HIP JOINT"), Some("hip"));
        assert_eq!(names_other_region("Chest and abdomen"), None);
        assert_eq!(names_other_region("PHARMACY"), None);
        assert_eq!(names_other_region("view: PA"), None);
        assert_eq!(names_other_region(""), None);
    }

    #[test]
    fn a_project_chooses_its_modalities() {
        let config = RuleConfig {
            modalities: vec!["CR".into(), "DX".into(), "OT".into()],
        };
        let m = Metadata {
            modality: "OT".into(),
            ..chest()
        };
        assert!(check(&m, &config).is_empty());
        assert_eq!(codes(&m), ["modality"]);
    }
}
