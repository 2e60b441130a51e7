//! The VinDr-CXR label set: 22 local (box) labels and 6 global (image-level) labels, and
//! the Kaggle class ids of the 14 local labels Kaggle kept plus "No finding" (14). The ids
//! are not in alphabetical order (DOMAIN.md section 2; a test checks this table against
//! `vindr_cxr_labels.csv`).

/// Whether a label is drawn as boxes or given to the whole image.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scope {
    Local,
    Global,
}

/// One label of the VinDr-CXR set.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Label {
    pub name: &'static str,
    pub scope: Scope,
    pub kaggle_class_id: Option<u8>,
}

const fn local(name: &'static str, id: Option<u8>) -> Label {
    Label {
        name,
        scope: Scope::Local,
        kaggle_class_id: id,
    }
}

const fn global(name: &'static str, id: Option<u8>) -> Label {
    Label {
        name,
        scope: Scope::Global,
        kaggle_class_id: id,
    }
}

/// The 22 local labels, in the paper's order.
pub const LOCAL_LABELS: [Label; 22] = [
    local("Aortic enlargement", Some(0)),
    local("Atelectasis", Some(1)),
    local("Calcification", Some(2)),
    local("Cardiomegaly", Some(3)),
    local("Clavicle fracture", None),
    local("Consolidation", Some(4)),
    local("Edema", None),
    local("Emphysema", None),
    local("Enlarged PA", None),
    local("ILD", Some(5)),
    local("Infiltration", Some(6)),
    local("Lung Opacity", Some(7)),
    local("Lung cavity", None),
    local("Lung cyst", None),
    local("Mediastinal shift", None),
    local("Nodule/Mass", Some(8)),
    local("Pleural effusion", Some(10)),
    local("Pleural thickening", Some(11)),
    local("Pneumothorax", Some(12)),
    local("Pulmonary fibrosis", Some(13)),
    local("Rib fracture", None),
    local("Other lesion", Some(9)),
];

/// The 6 global labels; "Other disease" is spelled as in the PhysioNet CSV header (the
/// paper says "Other diseases": both are accepted when reading).
pub const GLOBAL_LABELS: [Label; 6] = [
    global("COPD", None),
    global("Lung tumor", None),
    global("Pneumonia", None),
    global("Tuberculosis", None),
    global("Other disease", None),
    global("No finding", Some(14)),
];

/// Kaggle's 15 classes by id.
pub const KAGGLE_CLASSES: [&str; 15] = [
    "Aortic enlargement",
    "Atelectasis",
    "Calcification",
    "Cardiomegaly",
    "Consolidation",
    "ILD",
    "Infiltration",
    "Lung Opacity",
    "Nodule/Mass",
    "Other lesion",
    "Pleural effusion",
    "Pleural thickening",
    "Pneumothorax",
    "Pulmonary fibrosis",
    "No finding",
];

/// The Kaggle class id of a label name, if Kaggle kept it.
pub fn kaggle_class_id(name: &str) -> Option<u8> {
    KAGGLE_CLASSES
        .iter()
        .position(|c| *c == name)
        .map(|i| i as u8)
}

/// The label's canonical name: "Other diseases" reads as "Other disease".
pub(crate) fn canonical(name: &str) -> &str {
    match name.trim() {
        "Other diseases" => "Other disease",
        other => other,
    }
}

/// Whether `name` is one of the 28 labels (after [`canonical`]).
pub(crate) fn is_known(name: &str) -> bool {
    let name = canonical(name);
    LOCAL_LABELS
        .iter()
        .chain(GLOBAL_LABELS.iter())
        .any(|l| l.name == name)
}
