//! A project's label schema: the labels its readers may use, with their scope (a box, the
//! whole image, one breast, the whole study), colour, hotkey, description, optional parent
//! (a hierarchy), attributes, and an optional export id (Kaggle's class ids for VinDr-CXR).
//! Names are free strings, kept verbatim (some datasets keep misspellings on purpose).
//!
//! Built-in templates ([`TEMPLATES`], [`LabelSchema::template`]), each with the label names
//! exactly as its dataset released them:
//! - `vindr-cxr`: VinDr-CXR, 22 box labels and 6 image labels, Kaggle's class ids;
//! - `vindr-mammo`: VinDr-Mammo, 10 finding categories drawn as boxes (six of them with a
//!   `finding_birads` attribute), "No Finding", and the breast-level assessment (BI-RADS 1-5,
//!   density A-D) as breast-scope labels;
//! - `vindr-spinexr`: VinDr-SpineXR, 7 lesion classes drawn as boxes and "No finding";
//! - `pedicxr`: PediCXR (VinDr-PCXR), 36 findings drawn as boxes and 15 image-level labels
//!   (diseases and "No finding"), misspellings of the release kept.
//!
//! Only VinDr-CXR has export ids (Kaggle's); no published id map exists for the others.
//!
//! A schema may be edited freely until the project's first annotation; after that it may
//! only be extended: every existing label stays, with the same name, scope and export id
//! (colour, hotkey and description may change), and new labels may be added
//! ([`LabelSchema::check_extension`]).

use std::collections::BTreeSet;

use serde::{Deserialize, Serialize};

use crate::labels::{GLOBAL_LABELS, LOCAL_LABELS, Scope};

/// Where a label applies.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LabelScope {
    /// A box (later a polygon) on the image.
    Local,
    /// The whole image.
    Image,
    /// The whole study (all its images).
    Study,
    /// One breast (mammography): a breast-level assessment such as BI-RADS or density, given
    /// on the images of that breast (its laterality); no box, like an image label.
    Breast,
}

/// One attribute a label can carry (e.g. a BI-RADS grade on a mammography finding).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LabelAttribute {
    pub name: String,
    /// The values allowed; empty for free text.
    #[serde(default)]
    pub values: Vec<String>,
}

/// One label of a schema.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SchemaLabel {
    pub name: String,
    pub scope: LabelScope,
    /// `#rrggbb`.
    pub color: String,
    /// One key (a letter or digit), unique in the schema.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hotkey: Option<String>,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub description: String,
    /// The name of the label this one refines.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub parent: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub attributes: Vec<LabelAttribute>,
    /// The id this label is exported with (Kaggle's class id), when it has one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub export_id: Option<u32>,
    /// Exclusive with every other label of the image ("No finding").
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub exclusive: bool,
}

/// A project's labels.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LabelSchema {
    /// The template it started from, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub template: Option<String>,
    pub labels: Vec<SchemaLabel>,
    /// The viewer's window presets for the project's images, replacing its lung /
    /// mediastinum / bone (none: the viewer's own).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub window_presets: Vec<WindowPreset>,
}

/// A window preset of the viewer: a centre and width in modality units (CT's Hounsfield
/// units), or, `relative`, as fractions of the image's own range of values from displayed
/// black (0) to displayed white (1), for radiographs, whose values have no fixed scale.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct WindowPreset {
    pub name: String,
    pub center: f64,
    pub width: f64,
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub relative: bool,
}

// `check` refuses non-finite centres and widths, so equality is an equivalence here.
impl Eq for WindowPreset {}

/// The built-in templates.
pub const TEMPLATES: [&str; 4] = ["vindr-cxr", "vindr-mammo", "vindr-spinexr", "pedicxr"];

/// VinDr-Mammo's finding categories (the values of `finding_categories` in
/// `finding_annotations.csv`), "No Finding" last, in the order and spelling of `ALL_LESIONS`
/// in the dataset authors' split notebook (github.com/vinbigdata-medical/vindr-mammo,
/// `split_data.ipynb`). Dataset: Nguyen et al., "VinDr-Mammo: A large-scale benchmark dataset
/// for computer-aided diagnosis in full-field digital mammography", Sci. Data (2023),
/// doi:10.1038/s41597-023-02100-7; PhysioNet vindr-mammo 1.0.0, doi:10.13026/br2v-7517.
pub const VINDR_MAMMO_FINDINGS: [&str; 11] = [
    "Suspicious Lymph Node",
    "Mass",
    "Suspicious Calcification",
    "Asymmetry",
    "Focal Asymmetry",
    "Global Asymmetry",
    "Architectural Distortion",
    "Skin Thickening",
    "Skin Retraction",
    "Nipple Retraction",
    "No Finding",
];

/// The VinDr-Mammo categories whose boxes carry a BI-RADS grade (`birads_LESIONS` of the same
/// notebook); the other four have an empty `finding_birads`.
pub const VINDR_MAMMO_GRADED: [&str; 6] = [
    "Mass",
    "Suspicious Calcification",
    "Architectural Distortion",
    "Focal Asymmetry",
    "Global Asymmetry",
    "Asymmetry",
];

/// The values of `finding_birads` on a graded VinDr-Mammo finding: the dataset keeps only
/// non-benign findings (`BIRADS345` of the same notebook).
pub const VINDR_MAMMO_FINDING_BIRADS: [&str; 3] = ["BI-RADS 3", "BI-RADS 4", "BI-RADS 5"];

/// The values of `breast_birads` in VinDr-Mammo's `breast-level_annotations.csv`, one per
/// breast (the notebook's `BI-RADS {1..5}`).
pub const VINDR_MAMMO_BREAST_BIRADS: [&str; 5] = [
    "BI-RADS 1",
    "BI-RADS 2",
    "BI-RADS 3",
    "BI-RADS 4",
    "BI-RADS 5",
];

/// The values of `breast_density` in the same file, one per breast (`DENSITY {A..D}`).
pub const VINDR_MAMMO_BREAST_DENSITY: [&str; 4] =
    ["DENSITY A", "DENSITY B", "DENSITY C", "DENSITY D"];

/// VinDr-SpineXR's 7 lesion classes (`lesion_type` in `annotations/train.csv` and
/// `test.csv`), in the paper's order, spelled as in the authors' detector config
/// (github.com/vinbigdata-medical/vindr-spinexr, `spine/configs/sparsercnn.yaml`, `FINDINGS`),
/// "Spondylolysthesis" included; "No finding" is the 8th `lesion_type`
/// (`spine/classification/cls_dataset_dict.py`). Paper: Nguyen et al., "VinDr-SpineXR: A deep
/// learning framework for spinal lesions detection and classification from radiographs",
/// MICCAI 2021, arXiv:2106.12930.
pub const VINDR_SPINEXR_LESIONS: [&str; 7] = [
    "Osteophytes",
    "Disc space narrowing",
    "Surgical implant",
    "Foraminal stenosis",
    "Spondylolysthesis",
    "Vertebral collapse",
    "Other lesions",
];

/// PediCXR's 36 findings (the `class_name` values of `annotations_train.csv` and
/// `annotations_test.csv` other than "No finding"), spelled as released: "Diffuse aveolar
/// opacity", "Bronchectasis", "Paraveterbral mass" are the release's spellings (lists that
/// follow the paper's wording correct them). Dataset: Pham et al., "PediCXR: An open,
/// large-scale chest radiograph dataset for interpretation of common thoracic diseases in
/// children", Sci. Data (2023), doi:10.1038/s41597-023-02102-5; PhysioNet vindr-pcxr 1.0.0,
/// doi:10.13026/k8qc-na36 (files behind a credentialed licence). The spellings come from
/// public code that reads the release CSVs, not from a list by the authors: three
/// independent projects agree on every name, two of them on this order.
pub const PEDICXR_FINDINGS: [&str; 36] = [
    "Boot-shaped heart",
    "Peribronchovascular interstitial opacity",
    "Reticulonodular opacity",
    "Bronchial thickening",
    "Enlarged PA",
    "Cardiomegaly",
    "Diffuse aveolar opacity",
    "Other opacity",
    "Other lesion",
    "Consolidation",
    "Mediastinal shift",
    "Anterior mediastinal mass",
    "Dextro cardia",
    "Pleural effusion",
    "Stomach on the right side",
    "Atelectasis",
    "Lung hyperinflation",
    "Egg on string sign",
    "Interstitial lung disease - ILD",
    "Infiltration",
    "Lung cavity",
    "Pneumothorax",
    "Edema",
    "Pleural thickening",
    "Other nodule/mass",
    "Clavicle fracture",
    "Chest wall mass",
    "Lung cyst",
    "Emphysema",
    "Bronchectasis",
    "Expanded edges of the anterior ribs",
    "Pulmonary fibrosis",
    "Paraveterbral mass",
    "Aortic enlargement",
    "Calcification",
    "Intrathoracic digestive structure",
];

/// PediCXR's 15 image-level labels: the label columns of `image_labels_train.csv` and
/// `image_labels_test.csv` in their order, "No finding" and "Other disease" included, spelled
/// as released ("Brocho-pneumonia", "Diagphramatic hernia").
pub const PEDICXR_DISEASES: [&str; 15] = [
    "No finding",
    "Bronchitis",
    "Brocho-pneumonia",
    "Other disease",
    "Bronchiolitis",
    "Situs inversus",
    "Pneumonia",
    "Pleuro-pneumonia",
    "Diagphramatic hernia",
    "Tuberculosis",
    "Congenital emphysema",
    "CPAM",
    "Hyaline membrane disease",
    "Mediastinal tumor",
    "Lung tumor",
];

/// What a released misspelling means, shown as the label's description.
const MEANT: [(&str, &str); 6] = [
    ("Spondylolysthesis", "Spondylolisthesis"),
    ("Diffuse aveolar opacity", "Diffuse alveolar opacity"),
    ("Bronchectasis", "Bronchiectasis"),
    ("Paraveterbral mass", "Paravertebral mass"),
    ("Brocho-pneumonia", "Bronchopneumonia"),
    ("Diagphramatic hernia", "Diaphragmatic hernia"),
];

/// Hotkeys for up to 36 box labels, in order.
const KEYS: &str = "1234567890abcdefghijklmnopqrstuvwxyz";

/// A distinct colour for the `i`-th of `n` labels (hues around the circle).
fn palette(i: usize, n: usize) -> String {
    let h = i as f64 / n.max(1) as f64 * 6.0;
    let x = 1.0 - (h % 2.0 - 1.0).abs();
    let (r, g, b) = match h as u32 {
        0 => (1.0, x, 0.0),
        1 => (x, 1.0, 0.0),
        2 => (0.0, 1.0, x),
        3 => (0.0, x, 1.0),
        4 => (x, 0.0, 1.0),
        _ => (1.0, 0.0, x),
    };
    // Not too pale on a dark viewer: scale into 64..=255.
    let c = |v: f64| (64.0 + v * 191.0).round() as u8;
    format!("#{:02x}{:02x}{:02x}", c(r), c(g), c(b))
}

impl LabelSchema {
    /// A built-in template by name.
    pub fn template(name: &str) -> Option<LabelSchema> {
        match name {
            "vindr-cxr" => Some(Self::vindr_cxr()),
            "vindr-mammo" => Some(Self::vindr_mammo()),
            "vindr-spinexr" => Some(Self::vindr_spinexr()),
            "pedicxr" => Some(Self::pedicxr()),
            _ => None,
        }
    }

    /// VinDr-CXR: the 22 local and 6 global labels with their exact spellings, Kaggle's
    /// class ids as export ids, "No finding" exclusive; hotkeys 1-9, 0, then a-l for the
    /// local labels, none for the global ones (they are ticked in a list).
    pub fn vindr_cxr() -> LabelSchema {
        let all: Vec<_> = LOCAL_LABELS.iter().chain(GLOBAL_LABELS.iter()).collect();
        let keys: Vec<String> = "1234567890abcdefghijkl".chars().map(String::from).collect();
        let labels = all
            .iter()
            .enumerate()
            .map(|(i, l)| SchemaLabel {
                name: l.name.to_string(),
                scope: match l.scope {
                    Scope::Local => LabelScope::Local,
                    Scope::Global => LabelScope::Image,
                },
                color: palette(i, all.len()),
                hotkey: (l.scope == Scope::Local).then(|| keys[i].clone()),
                description: String::new(),
                parent: None,
                attributes: Vec::new(),
                export_id: l.kaggle_class_id.map(u32::from),
                exclusive: l.name == "No finding",
            })
            .collect();
        LabelSchema {
            template: Some("vindr-cxr".into()),
            labels,
            window_presets: Vec::new(),
        }
    }

    /// A template from its labels in order: colours around the palette, hotkeys 1-9, 0, then
    /// a-z for the box labels (none for the others, ticked in a list), `exclusive` exclusive,
    /// a description for a released misspelling, no export ids.
    fn from_names(template: &str, rows: &[(&str, LabelScope)], exclusive: &str) -> LabelSchema {
        let mut keys = KEYS.chars().map(String::from);
        let labels = rows
            .iter()
            .enumerate()
            .map(|(i, &(name, scope))| SchemaLabel {
                name: name.to_string(),
                scope,
                color: palette(i, rows.len()),
                hotkey: if scope == LabelScope::Local {
                    keys.next()
                } else {
                    None
                },
                description: MEANT
                    .iter()
                    .find(|(as_released, _)| *as_released == name)
                    .map(|(_, meant)| format!("{meant}; the name is kept as released"))
                    .unwrap_or_default(),
                parent: None,
                attributes: Vec::new(),
                export_id: None,
                exclusive: name == exclusive,
            })
            .collect();
        LabelSchema {
            template: Some(template.into()),
            labels,
            window_presets: Vec::new(),
        }
    }

    /// VinDr-Mammo ([`VINDR_MAMMO_FINDINGS`]): the 10 finding categories as box labels
    /// (hotkeys 1-9, 0; a box with several categories is one annotation per category, same
    /// box), the six graded ones with a `finding_birads` attribute (BI-RADS 3-5); "No Finding"
    /// an exclusive image label (its rows have no box); the breast-level assessment as
    /// breast-scope labels named as the values of `breast_birads` (BI-RADS 1-5) and
    /// `breast_density` (DENSITY A-D), one of each per breast. Laterality and view
    /// (L/R, CC/MLO) are image metadata, not labels.
    pub fn vindr_mammo() -> LabelSchema {
        let rows: Vec<(&str, LabelScope)> = VINDR_MAMMO_FINDINGS
            .iter()
            .map(|&n| {
                let scope = if n == "No Finding" {
                    LabelScope::Image
                } else {
                    LabelScope::Local
                };
                (n, scope)
            })
            .chain(
                VINDR_MAMMO_BREAST_BIRADS
                    .iter()
                    .chain(VINDR_MAMMO_BREAST_DENSITY.iter())
                    .map(|&n| (n, LabelScope::Breast)),
            )
            .collect();
        let mut schema = Self::from_names("vindr-mammo", &rows, "No Finding");
        for l in &mut schema.labels {
            if VINDR_MAMMO_GRADED.contains(&l.name.as_str()) {
                l.attributes.push(LabelAttribute {
                    name: "finding_birads".into(),
                    values: VINDR_MAMMO_FINDING_BIRADS.map(String::from).to_vec(),
                });
            } else if VINDR_MAMMO_BREAST_BIRADS.contains(&l.name.as_str()) {
                l.description = "Breast-level BI-RADS assessment (breast_birads)".into();
            } else if VINDR_MAMMO_BREAST_DENSITY.contains(&l.name.as_str()) {
                l.description = "Breast density, ACR category (breast_density)".into();
            }
        }
        schema
    }

    /// VinDr-SpineXR ([`VINDR_SPINEXR_LESIONS`]): the 7 lesion classes as box labels (hotkeys
    /// 1-7), "No finding" an exclusive image label. A study's views are separate images.
    pub fn vindr_spinexr() -> LabelSchema {
        let rows: Vec<(&str, LabelScope)> = VINDR_SPINEXR_LESIONS
            .iter()
            .map(|&n| (n, LabelScope::Local))
            .chain([("No finding", LabelScope::Image)])
            .collect();
        Self::from_names("vindr-spinexr", &rows, "No finding")
    }

    /// PediCXR ([`PEDICXR_FINDINGS`], [`PEDICXR_DISEASES`]): the 36 findings as box labels
    /// (hotkeys 1-9, 0, a-z), the 15 image-level labels (diseases, "Other disease", "No
    /// finding" exclusive) without hotkeys; misspellings kept as released, the meant word in
    /// the description. One reader per image in the release: a `single` workflow.
    pub fn pedicxr() -> LabelSchema {
        let rows: Vec<(&str, LabelScope)> = PEDICXR_FINDINGS
            .iter()
            .map(|&n| (n, LabelScope::Local))
            .chain(PEDICXR_DISEASES.iter().map(|&n| (n, LabelScope::Image)))
            .collect();
        Self::from_names("pedicxr", &rows, "No finding")
    }

    /// Check the schema on its own: names present and unique, colours `#rrggbb`, hotkeys
    /// single characters and unique, parents that exist (and no cycle), export ids unique.
    pub fn check(&self) -> Result<(), String> {
        if self.labels.is_empty() {
            return Err("a schema needs at least one label".into());
        }
        let mut names = BTreeSet::new();
        let mut keys = BTreeSet::new();
        let mut ids = BTreeSet::new();
        for l in &self.labels {
            let name = l.name.as_str();
            if name.trim().is_empty() || name.trim() != name || name.len() > 100 {
                return Err(format!(
                    "label name {name:?}: 1 to 100 characters, no leading or trailing spaces"
                ));
            }
            if !names.insert(name) {
                return Err(format!("label {name:?} appears twice"));
            }
            let c = l.color.as_bytes();
            if !(c.len() == 7 && c[0] == b'#' && c[1..].iter().all(u8::is_ascii_hexdigit)) {
                return Err(format!(
                    "label {name:?}: colour {:?} is not #rrggbb",
                    l.color
                ));
            }
            if let Some(k) = &l.hotkey {
                if k.chars().count() != 1 || !k.chars().all(|c| c.is_ascii_alphanumeric()) {
                    return Err(format!(
                        "label {name:?}: hotkey {k:?} must be one letter or digit"
                    ));
                }
                if !keys.insert(k.to_ascii_lowercase()) {
                    return Err(format!("hotkey {k:?} is given to two labels"));
                }
            }
            if let Some(id) = l.export_id
                && !ids.insert(id)
            {
                return Err(format!("export id {id} is given to two labels"));
            }
            for a in &l.attributes {
                if a.name.trim().is_empty() {
                    return Err(format!("label {name:?}: an attribute has no name"));
                }
            }
        }
        let mut presets = BTreeSet::new();
        for p in &self.window_presets {
            if p.name.trim().is_empty() || p.name.len() > 40 {
                return Err(format!(
                    "window preset {:?}: a name of 1 to 40 characters",
                    p.name
                ));
            }
            if !presets.insert(p.name.as_str()) {
                return Err(format!("window preset {:?} appears twice", p.name));
            }
            if !p.center.is_finite() || !p.width.is_finite() || p.width <= 0.0 {
                return Err(format!(
                    "window preset {:?}: centre and width must be numbers, the width above 0",
                    p.name
                ));
            }
        }
        if self.window_presets.len() > 9 {
            return Err("at most 9 window presets (Shift+1 to Shift+9)".into());
        }
        for l in &self.labels {
            // Walk up the parents: each must exist, and the walk must end.
            let mut seen = BTreeSet::from([l.name.as_str()]);
            let mut at = l;
            while let Some(p) = &at.parent {
                let Some(parent) = self.labels.iter().find(|x| &x.name == p) else {
                    return Err(format!(
                        "label {:?}: parent {p:?} is not a label of the schema",
                        l.name
                    ));
                };
                if !seen.insert(parent.name.as_str()) {
                    return Err(format!("label {:?}: its parents form a cycle", l.name));
                }
                at = parent;
            }
        }
        Ok(())
    }

    /// Whether `new` only extends `self` (what a schema in use may do): every label of
    /// `self` is still there with the same scope, parent and export id.
    pub fn check_extension(&self, new: &LabelSchema) -> Result<(), String> {
        new.check()?;
        for old in &self.labels {
            let Some(l) = new.labels.iter().find(|l| l.name == old.name) else {
                return Err(format!(
                    "label {:?} is in use and cannot be removed or renamed; add labels instead",
                    old.name
                ));
            };
            if l.scope != old.scope || l.parent != old.parent || l.export_id != old.export_id {
                return Err(format!(
                    "label {:?} is in use: its scope, parent and export id cannot change",
                    old.name
                ));
            }
        }
        Ok(())
    }

    pub fn label(&self, name: &str) -> Option<&SchemaLabel> {
        self.labels.iter().find(|l| l.name == name)
    }
}
