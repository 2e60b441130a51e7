//! Triage: which images are usable frontal chest radiographs, and why the others are not.
//!
//! Two judges, each finding a stable code and a sentence:
//! - the rules on metadata ([`rules`]): a missing attribute is never a finding;
//! - a network on pixels ([`model`]: class and orientation, trained by [`train`] on the
//!   corpus's examples of [`dataset`], fed by the deterministic [`preprocess`]), the
//!   built-in one shipped in the binary ([`builtin`], with a second network that takes the
//!   side of frontal images: [`laterality`]) or a site's own.
//!
//! [`Triage`] runs both on a file or a blob; its [`Verdict`] says the class, the probability,
//! the orientation, whether the image is valid, and why not.

pub mod conv;
pub mod dataset;
pub mod infer;
pub mod laterality;
pub mod model;
pub mod norm;
pub mod onnx;
pub mod preprocess;
pub mod rules;
pub mod train;

use std::path::Path;

use serde::Serialize;

pub use dataset::Class;
pub use model::{Classifier, Net, Prediction};
pub use preprocess::{Grey, Orientation};
pub use rules::{Finding, ImageMeta, Metadata, RuleConfig};

/// The shipped weights of the built-in network (`radlab triage train` writes them).
pub const BUILTIN_WEIGHTS: &[u8] = include_bytes!("../weights/triage.safetensors");

/// The built-in model, from [`BUILTIN_WEIGHTS`] and [`laterality::BUILTIN_WEIGHTS`], ready
/// for inference.
pub fn builtin() -> Result<laterality::Builtin, String> {
    laterality::Builtin::from_safetensors(BUILTIN_WEIGHTS, laterality::BUILTIN_WEIGHTS)
}

/// A short name of weights for verdicts: `radlab-cnn blake3:` and the first 12 hex digits
/// of the weights file's BLAKE3 hash.
pub fn weights_id(bytes: &[u8]) -> String {
    let hex = blake3::hash(bytes).to_hex();
    format!("radlab-cnn blake3:{}", &hex[..12])
}

/// The name of the built-in model, or of one made of the same two networks: the triage
/// network's [`weights_id`], then ` + left-right blake3:` and the first 12 hex digits of the
/// left-right network's weights' hash.
pub fn model_id(triage: &[u8], laterality: &[u8]) -> String {
    let hex = blake3::hash(laterality).to_hex();
    format!("{} + left-right blake3:{}", weights_id(triage), &hex[..12])
}

/// What triage says of one file.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Verdict {
    /// The path as given.
    pub path: String,
    /// `dicom`, `picture` (PNG or JPEG) or `unreadable`.
    pub kind: &'static str,
    /// The network's class (`frontal`, `lateral`, `other`, `inverted`); absent when no
    /// network looked (no pixels to look at, or rules only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub class: Option<&'static str>,
    /// The probability of that class, to 4 decimals.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub probability: Option<f64>,
    /// The orientation the image is in (`0`, `90`, ... `mirrored 270`: mirrored left-right
    /// first, then rotated clockwise); `0` is upright.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub orientation: Option<String>,
    /// A valid frontal chest radiograph: no finding at all.
    pub valid: bool,
    pub findings: Vec<Finding>,
    /// Where an upright rendering was written (`--fix-orientation`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub upright: Option<String>,
    /// The decision's pixels, when the caller asked to keep them (to fix the orientation).
    #[serde(skip)]
    pub grey: Option<Grey>,
    #[serde(skip)]
    pub prediction: Option<Prediction>,
}

/// The rules and, when given one, a network: judges files and blobs.
pub struct Triage {
    pub rules: RuleConfig,
    classifier: Option<Box<dyn Classifier + Send + Sync>>,
    model: String,
    /// Keep the displayed pixels in each verdict (for [`upright`]).
    pub keep_pixels: bool,
}

impl Triage {
    /// The rules alone.
    pub fn rules_only(rules: RuleConfig) -> Triage {
        Triage {
            rules,
            classifier: None,
            model: "rules".into(),
            keep_pixels: false,
        }
    }

    /// The rules and the built-in network.
    pub fn builtin(rules: RuleConfig) -> Result<Triage, String> {
        Ok(Triage::with_classifier(
            rules,
            Box::new(builtin()?),
            model_id(BUILTIN_WEIGHTS, laterality::BUILTIN_WEIGHTS),
        ))
    }

    /// The rules and another classifier, named `model` in the verdicts.
    pub fn with_classifier(
        rules: RuleConfig,
        classifier: Box<dyn Classifier + Send + Sync>,
        model: String,
    ) -> Triage {
        Triage {
            rules,
            classifier: Some(classifier),
            model: format!("rules + {model}"),
            keep_pixels: false,
        }
    }

    /// What judged: `rules`, or `rules + ` the network's name.
    pub fn model(&self) -> &str {
        &self.model
    }

    /// Judge one file: a DICOM object by its metadata and its pixels, a PNG or JPEG picture
    /// by its size, colour and pixels, anything else unreadable with the parser's reason.
    pub fn file(&self, path: &Path) -> Verdict {
        let shown = path.display().to_string();
        let bytes = match std::fs::read(path) {
            Ok(b) => b,
            Err(e) => {
                return finish(
                    shown,
                    "unreadable",
                    vec![Finding {
                        code: "unreadable",
                        reason: format!("cannot read the file: {e}"),
                    }],
                );
            }
        };
        match radlab_dicom::DicomFile::from_bytes(&bytes) {
            Ok(file) => self.dicom(&file, shown),
            Err(e) => {
                if is_picture(&bytes) {
                    return self.picture(&bytes, shown);
                }
                finish(
                    shown,
                    "unreadable",
                    vec![Finding {
                        code: "unreadable",
                        reason: format!("not a DICOM file radlab can read: {e}"),
                    }],
                )
            }
        }
    }

    /// Judge a DICOM object held in memory (a blob of the store), shown as `shown`.
    pub fn bytes(&self, bytes: &[u8], shown: &str) -> Verdict {
        match radlab_dicom::DicomFile::from_bytes(bytes) {
            Ok(file) => self.dicom(&file, shown.to_string()),
            Err(e) => finish(
                shown.to_string(),
                "unreadable",
                vec![Finding {
                    code: "unreadable",
                    reason: format!("not a DICOM object radlab can read: {e}"),
                }],
            ),
        }
    }

    fn dicom(&self, file: &radlab_dicom::DicomFile, shown: String) -> Verdict {
        let meta = Metadata::from_file(file);
        let mut findings = rules::check(&meta, &self.rules);
        let mut verdict = finish(shown, "dicom", Vec::new());
        if meta.image.is_some() && self.classifier.is_some() {
            match preprocess::grey_of_dicom(file) {
                Ok(grey) => self.look(&grey, &mut verdict, &mut findings),
                Err(e) => findings.push(Finding {
                    code: "undecodable-pixels",
                    reason: format!(
                        "the pixels cannot be decoded ({e}); re-export the image from its source"
                    ),
                }),
            }
        }
        verdict.valid = findings.is_empty();
        verdict.findings = findings;
        verdict
    }

    fn picture(&self, bytes: &[u8], shown: String) -> Verdict {
        let mut findings = Vec::new();
        let mut verdict = finish(shown, "picture", Vec::new());
        match preprocess::picture_of_bytes(bytes) {
            Ok(picture) => {
                findings.extend(rules::check_picture(
                    picture.grey.width,
                    picture.grey.height,
                    picture.colour,
                ));
                if self.classifier.is_some() {
                    self.look(&picture.grey, &mut verdict, &mut findings);
                }
            }
            Err(e) => findings.push(Finding {
                code: "undecodable-pixels",
                reason: format!("{e}; re-export the picture as PNG or JPEG"),
            }),
        }
        verdict.valid = findings.is_empty();
        verdict.findings = findings;
        verdict
    }

    /// The network's look at the pixels: its class, probability and orientation into the
    /// verdict, a finding when it is not an upright frontal chest radiograph.
    fn look(&self, grey: &Grey, verdict: &mut Verdict, findings: &mut Vec<Finding>) {
        let Some(classifier) = &self.classifier else {
            return;
        };
        match model::judge(classifier.as_ref(), std::slice::from_ref(grey)) {
            Ok(mut said) if !said.is_empty() => {
                let p = said.remove(0);
                let rounded = |x: f32| (f64::from(x) * 1e4).round() / 1e4;
                verdict.class = Some(p.class.name());
                verdict.probability = Some(rounded(p.probability));
                verdict.orientation = p.orientation.map(|(o, _)| o.name());
                if p.class != Class::Frontal {
                    findings.push(Finding {
                        code: match p.class {
                            Class::Lateral => "network-lateral",
                            Class::Inverted => "network-inverted",
                            _ => "network-other",
                        },
                        reason: format!(
                            "the network sees {} (p {:.3}), not a frontal chest radiograph",
                            match p.class {
                                Class::Lateral => "a lateral chest radiograph",
                                Class::Inverted => "a chest radiograph with inverted grey levels",
                                _ => "another body part, modality or picture",
                            },
                            p.probability
                        ),
                    });
                } else if let Some((o, po)) = p.orientation.filter(|(o, _)| o.index() != 0) {
                    findings.push(Finding {
                        code: "orientation",
                        reason: format!(
                            "the network sees a frontal chest radiograph {} (p {po:.3}); \
                             --fix-orientation stores an upright rendering",
                            describe(o)
                        ),
                    });
                }
                if self.keep_pixels {
                    verdict.grey = Some(grey.clone());
                }
                verdict.prediction = Some(p);
            }
            Ok(_) => {}
            Err(e) => findings.push(Finding {
                code: "network-failed",
                reason: format!("the network could not judge the pixels: {e}"),
            }),
        }
    }
}

/// An orientation in words: "rotated 90 degrees clockwise", "mirrored left-right".
pub fn describe(o: Orientation) -> String {
    match (o.mirrored, o.degrees) {
        (false, 0) => "upright".into(),
        (false, d) => format!("rotated {d} degrees clockwise"),
        (true, 0) => "mirrored left-right".into(),
        (true, d) => format!("mirrored left-right and rotated {d} degrees clockwise"),
    }
}

/// The upright rendering of a verdict's pixels (kept with [`Triage::keep_pixels`]) when the
/// network saw a frontal radiograph in another orientation, as PNG bytes.
pub fn upright(verdict: &Verdict) -> Option<Vec<u8>> {
    let grey = verdict.grey.as_ref()?;
    let p = verdict.prediction.as_ref()?;
    let (o, _) = p.orientation?;
    if p.class != Class::Frontal || o.index() == 0 {
        return None;
    }
    let fixed = grey.oriented(o.inverse());
    let mut png = Vec::new();
    let encoder = image::codecs::png::PngEncoder::new(&mut png);
    image::ImageEncoder::write_image(
        encoder,
        &fixed.pixels,
        fixed.width,
        fixed.height,
        image::ExtendedColorType::L8,
    )
    .ok()?;
    Some(png)
}

fn finish(path: String, kind: &'static str, findings: Vec<Finding>) -> Verdict {
    Verdict {
        path,
        kind,
        class: None,
        probability: None,
        orientation: None,
        valid: findings.is_empty(),
        findings,
        upright: None,
        grey: None,
        prediction: None,
    }
}

/// A PNG or JPEG file, by its first bytes.
fn is_picture(bytes: &[u8]) -> bool {
    bytes.starts_with(b"\x89PNG\r\n\x1a\n") || bytes.starts_with(&[0xFF, 0xD8, 0xFF])
}
