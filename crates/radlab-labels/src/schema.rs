//! A project's label schema: the labels its readers may use, with their scope (a box, the
//! whole image, the whole study), colour, hotkey, description, optional parent (a
//! hierarchy), attributes, and an optional export id (Kaggle's class ids for VinDr-CXR).
//! Names are free strings, kept verbatim (some datasets keep misspellings on purpose).
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
}

/// The built-in templates.
pub const TEMPLATES: [&str; 1] = ["vindr-cxr"];

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
        }
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
