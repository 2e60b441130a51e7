//! Profiles: what to do with each attribute. A profile is Annex E (the standard's table under
//! the chosen options), optionally narrowed to an allow-list (the VinDr presets), with
//! per-attribute rules and added attributes on top (user profiles in TOML), a way of naming
//! output files, the safe private attributes to keep, and the burned-in text policy.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use dicom_core::Tag;
use dicom_core::VR;
use dicom_core::dictionary::{DataDictionary, DataDictionaryEntry};
use dicom_dictionary_std::{StandardDataDictionary, tags};
use dicom_object::DefaultDicomObject;
use serde::Deserialize;

use crate::engine::DeidKey;
use crate::pixels::{BurnedInPolicy, MaskRule, TextBurningDevice};
use crate::table::{Action, DeidOption, ProfileEntry, TagPattern};

/// What a profile rule does to one attribute (user profiles, presets).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Rule {
    /// Keep the value as it is.
    Keep,
    /// Remove the attribute.
    Remove,
    /// Keep the attribute with an empty value.
    Empty,
    /// Replace the value with this text.
    Replace(String),
    /// Replace with a keyed hash: a `2.25.` UID for UIDs, a pseudonym for text.
    Hash,
    /// Shift dates by the patient's keyed offset (DA and DT).
    Shift,
}

/// How output files are named (relative to the output folder).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Naming {
    /// `<new study UID>/<new series UID>/<new SOP instance UID>.dcm`.
    Uids,
    /// `<md5 of the original SOP Instance UID>.dicom` (VinDr-CXR's release layout).
    Md5Sop,
    /// `<md5 of the original Study UID>/<md5 of the original SOP Instance UID>.dicom`
    /// (VinDr-Mammo's layout).
    Md5StudySop,
}

/// A private attribute known to hold no identifying information (PS3.15 E.3.10): kept
/// under the Retain Safe Private option.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct SafePrivate {
    pub creator: String,
    pub group: u16,
    /// The element within the creator's block (the low byte, `xx` of `gggg,xxEE`).
    pub element: u8,
}

/// Why a profile could not be built: each names the option, tag or line at fault.
#[derive(Debug, thiserror::Error)]
pub enum ProfileError {
    #[error("options {0} and {1} exclude each other")]
    Conflict(&'static str, &'static str),
    #[error("unknown profile {0:?}: one of annex-e-basic, vindr-cxr, vindr-mammo, or a .toml file")]
    UnknownPreset(String),
    #[error("{file}: {message}")]
    File { file: String, message: String },
}

/// The table, indexed once.
struct TableIndex {
    exact: HashMap<(u16, u16), &'static ProfileEntry>,
    patterns: Vec<&'static ProfileEntry>,
}

fn table() -> &'static TableIndex {
    static TABLE: OnceLock<TableIndex> = OnceLock::new();
    TABLE.get_or_init(|| {
        let mut exact = HashMap::new();
        let mut patterns = Vec::new();
        for entry in crate::annex_e_entries() {
            match entry.tag {
                TagPattern::Exact(g, e) => {
                    exact.insert((g, e), entry);
                }
                _ => patterns.push(entry),
            }
        }
        TableIndex { exact, patterns }
    })
}

fn table_entry(tag: Tag) -> Option<&'static ProfileEntry> {
    let t = table();
    t.exact.get(&(tag.0, tag.1)).copied().or_else(|| {
        t.patterns
            .iter()
            .copied()
            .find(|p| p.tag.matches(tag.0, tag.1))
    })
}

/// What the engine does to one attribute.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Resolved<'a> {
    Act(Action),
    Replace(&'a str),
}

/// A de-identification profile; see the module docs.
#[derive(Debug, Clone)]
pub struct Profile {
    pub(crate) name: String,
    pub(crate) options: BTreeSet<DeidOption>,
    pub(crate) key: DeidKey,
    /// Top-level attributes kept by an allow-list profile; everything else goes.
    pub(crate) allow_list: Option<HashSet<Tag>>,
    pub(crate) rules: HashMap<Tag, Rule>,
    /// Attributes added to every output (tag, VR, value).
    pub(crate) add: Vec<(Tag, VR, String)>,
    pub(crate) naming: Naming,
    pub(crate) safe_private: Vec<SafePrivate>,
    pub(crate) burned_in: BurnedInPolicy,
    /// The options whose codes the output may claim, and whether it may claim the Basic
    /// Profile at all (a user rule that keeps what the profile removes forbids it).
    pub(crate) claimed: BTreeSet<DeidOption>,
    pub(crate) claims_basic: bool,
}

/// The structural attributes an allow-list profile keeps (UIDs replaced) so that its output
/// is still a DICOM object that names its class and instance.
const ALLOW_LIST_STRUCTURE: [(Tag, Action); 5] = [
    (tags::SPECIFIC_CHARACTER_SET, Action::K),
    (tags::SOP_CLASS_UID, Action::K),
    (tags::SOP_INSTANCE_UID, Action::U),
    (tags::STUDY_INSTANCE_UID, Action::U),
    (tags::SERIES_INSTANCE_UID, Action::U),
];

/// Attributes that the radiograph and mammography IODs (CR, DX, MG, Secondary Capture:
/// Patient, General Study, General Series, General Image, DX and Mammography modules)
/// require (Type 1 and 2) and that the VinDr lists drop. An allow-list profile keeps them in
/// the form Annex E gives them (names, IDs, dates emptied; technical and coded values kept),
/// so that its output stays a valid object: dciodvfy reports nothing new on radiographs.
const ALLOW_LIST_IOD: [Tag; 33] = [
    tags::MANUFACTURER,
    tags::VIEW_CODE_SEQUENCE,
    tags::PATIENT_NAME,
    tags::PATIENT_ID,
    tags::PATIENT_BIRTH_DATE,
    tags::PATIENT_SEX,
    tags::STUDY_DATE,
    tags::STUDY_TIME,
    tags::REFERRING_PHYSICIAN_NAME,
    tags::STUDY_ID,
    tags::ACCESSION_NUMBER,
    tags::MODALITY,
    tags::SERIES_NUMBER,
    tags::LATERALITY,
    tags::INSTANCE_NUMBER,
    tags::PATIENT_ORIENTATION,
    tags::IMAGE_TYPE,
    tags::CONVERSION_TYPE,
    tags::DETECTOR_TYPE,
    tags::POSITIONER_TYPE,
    tags::ORGAN_EXPOSED,
    tags::ANATOMIC_REGION_SEQUENCE,
    tags::ACQUISITION_CONTEXT_SEQUENCE,
    tags::BODY_PART_EXAMINED,
    tags::VIEW_POSITION,
    tags::IMAGE_LATERALITY,
    tags::PRESENTATION_INTENT_TYPE,
    tags::PIXEL_INTENSITY_RELATIONSHIP,
    tags::PIXEL_INTENSITY_RELATIONSHIP_SIGN,
    tags::IMAGER_PIXEL_SPACING,
    tags::RESCALE_TYPE,
    tags::PRESENTATION_LUT_SHAPE,
    tags::BURNED_IN_ANNOTATION,
];

impl Profile {
    /// The Annex E Basic Profile with `options`.
    pub fn annex_e(
        key: DeidKey,
        options: impl IntoIterator<Item = DeidOption>,
    ) -> Result<Self, ProfileError> {
        let options: BTreeSet<DeidOption> = options.into_iter().collect();
        if options.contains(&DeidOption::RetainLongitudinalFullDates)
            && options.contains(&DeidOption::RetainLongitudinalModifiedDates)
        {
            return Err(ProfileError::Conflict(
                DeidOption::RetainLongitudinalFullDates.name(),
                DeidOption::RetainLongitudinalModifiedDates.name(),
            ));
        }
        let mut profile = Profile {
            name: "annex-e-basic".into(),
            claimed: options.clone(),
            options,
            key,
            allow_list: None,
            rules: HashMap::new(),
            add: Vec::new(),
            naming: Naming::Uids,
            safe_private: builtin_safe_private(),
            burned_in: BurnedInPolicy::default(),
            claims_basic: true,
        };
        profile.compute_claims();
        Ok(profile)
    }

    /// A built-in profile by name (`annex-e-basic`, `vindr-cxr`, `vindr-mammo`) or a TOML
    /// profile file (a name ending in `.toml`); `options` are added to the profile's own.
    pub fn named(
        name: &str,
        key: DeidKey,
        options: impl IntoIterator<Item = DeidOption>,
    ) -> Result<Self, ProfileError> {
        if name.ends_with(".toml") {
            return Profile::from_toml_file(Path::new(name), key, options);
        }
        let mut profile = Profile::annex_e(key, options)?;
        match name {
            "annex-e-basic" => {}
            "vindr-cxr" => {
                profile.allow_list = Some(VINDR_CXR_KEPT.iter().map(|&t| Tag::from(t)).collect());
                profile.naming = Naming::Md5Sop;
            }
            "vindr-mammo" => {
                profile.allow_list = Some(
                    VINDR_CXR_KEPT
                        .iter()
                        .chain(VINDR_MAMMO_EXTRA)
                        .map(|&t| Tag::from(t))
                        .collect(),
                );
                profile.naming = Naming::Md5StudySop;
            }
            other => return Err(ProfileError::UnknownPreset(other.to_string())),
        }
        profile.name = name.to_string();
        profile.compute_claims();
        Ok(profile)
    }

    /// A user profile; see [`Profile::from_toml`].
    pub fn from_toml_file(
        path: &Path,
        key: DeidKey,
        options: impl IntoIterator<Item = DeidOption>,
    ) -> Result<Self, ProfileError> {
        let text = std::fs::read_to_string(path).map_err(|e| ProfileError::File {
            file: path.display().to_string(),
            message: format!("cannot read it: {e}"),
        })?;
        Profile::from_toml(&text, &path.display().to_string(), key, options)
    }

    /// A user profile from TOML text (`origin` names it in errors):
    ///
    /// ```toml
    /// name = "lung-study"
    /// base = "annex-e-basic"            # or vindr-cxr, vindr-mammo
    /// options = ["retain-modified-dates"]
    /// file_names = "uids"               # or md5-sop, md5-study-sop
    ///
    /// [tags]                            # keyword or "(gggg,eeee)"
    /// PatientSex = "keep"
    /// StudyDescription = "remove"       # keep, remove, empty, hash, shift
    /// InstitutionName = { replace = "Hospital A" }
    ///
    /// [add]
    /// ClinicalTrialSponsorName = "Lung study 2026"
    ///
    /// [[safe_private]]                  # kept with retain-safe-private
    /// creator = "ACME 1.0"
    /// group = 0x0009
    /// element = 0x01
    ///
    /// [burned_in]                       # see BurnedInPolicy
    /// ```
    pub fn from_toml(
        text: &str,
        origin: &str,
        key: DeidKey,
        options: impl IntoIterator<Item = DeidOption>,
    ) -> Result<Self, ProfileError> {
        let err = |message: String| ProfileError::File {
            file: origin.to_string(),
            message,
        };
        let spec: TomlProfile = toml::from_str(text).map_err(|e| err(e.to_string()))?;
        let mut all_options: Vec<DeidOption> = options.into_iter().collect();
        for name in &spec.options {
            all_options.push(DeidOption::parse(name).ok_or_else(|| {
                err(format!(
                    "options: unknown option {name:?}; one of: {}",
                    DeidOption::ALL.map(|o| o.name()).join(", ")
                ))
            })?);
        }
        let base = spec.base.as_deref().unwrap_or("annex-e-basic");
        if base.ends_with(".toml") {
            return Err(err(format!(
                "base: {base:?} must be a built-in profile, not a file"
            )));
        }
        let mut profile = Profile::named(base, key, all_options)?;
        profile.name = spec.name.unwrap_or_else(|| origin.to_string());
        if let Some(naming) = &spec.file_names {
            profile.naming = match naming.as_str() {
                "uids" => Naming::Uids,
                "md5-sop" => Naming::Md5Sop,
                "md5-study-sop" => Naming::Md5StudySop,
                other => {
                    return Err(err(format!(
                        "file_names: {other:?} is not one of uids, md5-sop, md5-study-sop"
                    )));
                }
            };
        }
        for (name, spec) in &spec.tags {
            let (tag, vr) = lookup(name).ok_or_else(|| {
                err(format!(
                    "tags: {name:?} is neither a DICOM keyword nor a tag like \"(0010,0010)\""
                ))
            })?;
            let rule = match spec {
                RuleSpec::Word(w) => match w.as_str() {
                    "keep" => Rule::Keep,
                    "remove" => Rule::Remove,
                    "empty" => Rule::Empty,
                    "hash" => Rule::Hash,
                    "shift" => Rule::Shift,
                    other => {
                        return Err(err(format!(
                            "tags.{name}: {other:?} is not one of keep, remove, empty, hash, shift, {{ replace = \"...\" }}"
                        )));
                    }
                },
                RuleSpec::Replace { replace } => Rule::Replace(replace.clone()),
            };
            if rule == Rule::Shift && !matches!(vr, Some(VR::DA | VR::DT)) {
                return Err(err(format!(
                    "tags.{name}: shift applies to dates (DA, DT), not to {}",
                    vr.map(|v| v.to_string()).unwrap_or("this attribute")
                )));
            }
            profile.rules.insert(tag, rule);
        }
        for (name, value) in &spec.add {
            let (tag, vr) = lookup(name)
                .ok_or_else(|| err(format!("add: {name:?} is not a DICOM keyword or tag")))?;
            let vr = vr.ok_or_else(|| {
                err(format!(
                    "add: {name:?} has no VR in the dictionary; name a standard attribute"
                ))
            })?;
            if matches!(
                vr,
                VR::SQ | VR::OB | VR::OW | VR::OF | VR::OD | VR::OL | VR::UN
            ) {
                return Err(err(format!(
                    "add: {name:?} is {vr}; only text values can be added"
                )));
            }
            profile.add.push((tag, vr, value.clone()));
        }
        profile.safe_private.extend(spec.safe_private);
        if let Some(burned) = spec.burned_in {
            profile.burned_in = burned.into_policy().map_err(err)?;
        }
        profile.compute_claims();
        Ok(profile)
    }

    /// Replace the burned-in text policy (from the command line).
    pub fn with_burned_in(mut self, policy: BurnedInPolicy) -> Self {
        self.burned_in = policy;
        self
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    pub fn options(&self) -> &BTreeSet<DeidOption> {
        &self.options
    }

    pub fn key(&self) -> &DeidKey {
        &self.key
    }

    pub fn naming(&self) -> Naming {
        self.naming
    }

    pub fn burned_in(&self) -> &BurnedInPolicy {
        &self.burned_in
    }

    /// Whether the output may claim the Basic Profile (code 113100).
    pub fn claims_basic_profile(&self) -> bool {
        self.claims_basic
    }

    /// The action for a top-level `tag`; `None` when nothing lists it (kept).
    pub fn action_for(&self, tag: Tag) -> Option<Action> {
        match self.resolve(tag, 0)? {
            Resolved::Act(a) => Some(a),
            Resolved::Replace(_) => Some(Action::D),
        }
    }

    /// The Annex E table's action for `tag` under this profile's options.
    pub fn table_action(&self, tag: Tag) -> Option<Action> {
        let entry = table_entry(tag)?;
        let by_option = entry
            .options
            .iter()
            .find(|(option, _)| self.options.contains(option))
            .map(|(_, action)| *action);
        Some(by_option.unwrap_or(entry.basic))
    }

    /// What to do with `tag` at nesting `depth` (0 = top level).
    pub(crate) fn resolve(&self, tag: Tag, depth: usize) -> Option<Resolved<'_>> {
        if let Some(rule) = self.rules.get(&tag) {
            return Some(match rule {
                Rule::Keep => Resolved::Act(Action::K),
                Rule::Remove => Resolved::Act(Action::X),
                Rule::Empty => Resolved::Act(Action::Z),
                Rule::Replace(v) => Resolved::Replace(v),
                Rule::Hash => Resolved::Act(Action::D),
                Rule::Shift => Resolved::Act(Action::C),
            });
        }
        if depth == 0
            && let Some(allowed) = &self.allow_list
        {
            if allowed.contains(&tag) {
                return Some(Resolved::Act(Action::K));
            }
            if let Some((_, action)) = ALLOW_LIST_STRUCTURE.iter().find(|(t, _)| *t == tag) {
                return Some(Resolved::Act(*action));
            }
            if ALLOW_LIST_IOD.contains(&tag) {
                // Present as the IOD requires: emptied or replaced where Annex E lists it,
                // else (technical, coded) kept.
                return Some(Resolved::Act(self.table_action(tag).unwrap_or(Action::K)));
            }
            return Some(Resolved::Act(Action::X));
        }
        self.table_action(tag).map(Resolved::Act)
    }

    /// Whether dates of this profile move (the Modified Dates option, or a shift rule).
    pub(crate) fn shifts_dates(&self) -> bool {
        self.options
            .contains(&DeidOption::RetainLongitudinalModifiedDates)
            || self.rules.values().any(|r| *r == Rule::Shift)
    }

    /// Whether the private attribute `tag` whose block was reserved by `creator` is on the
    /// safe list (private creators themselves: whether any element of theirs is).
    pub(crate) fn is_safe_private(&self, tag: Tag, creator: Option<&str>) -> bool {
        if !self.options.contains(&DeidOption::RetainSafePrivate) {
            return false;
        }
        let Some(creator) = creator.map(str::trim) else {
            return false;
        };
        let creator_element = (0x0010..=0x00FF).contains(&tag.1);
        self.safe_private.iter().any(|s| {
            s.group == tag.0
                && s.creator.eq_ignore_ascii_case(creator)
                && (creator_element || s.element == (tag.1 & 0xFF) as u8)
        })
    }

    /// Which options the output may claim: the profile's own, plus those that cover what
    /// its rules and allow-list keep; and whether anything kept is covered by no option.
    fn compute_claims(&mut self) {
        let mut claimed = self.options.clone();
        let mut basic = true;
        let kept: Vec<Tag> = self
            .rules
            .iter()
            .filter(|(_, r)| **r == Rule::Keep)
            .map(|(t, _)| *t)
            .chain(self.allow_list.iter().flatten().copied())
            .collect();
        for tag in kept {
            let Some(entry) = table_entry(tag) else {
                continue;
            };
            if entry.basic == Action::K || tag == tags::PIXEL_DATA {
                continue;
            }
            match entry
                .options
                .iter()
                .find(|(o, a)| *a == Action::K && !is_date_option(*o))
                .or_else(|| {
                    entry
                        .options
                        .iter()
                        .find(|(o, a)| *a == Action::K && claimed.contains(o))
                }) {
                Some((option, _)) => {
                    claimed.insert(*option);
                }
                None => basic = false,
            }
        }
        if self.rules.values().any(|r| *r == Rule::Shift)
            && !claimed.contains(&DeidOption::RetainLongitudinalFullDates)
        {
            claimed.insert(DeidOption::RetainLongitudinalModifiedDates);
        }
        self.claimed = claimed;
        self.claims_basic = basic;
    }

    /// Where the output of `input` (before) / `output` (after de-identification) goes,
    /// relative to the output folder; `None` when the object lacks the UIDs to name it.
    pub fn output_name(
        &self,
        input: &DefaultDicomObject,
        output: &DefaultDicomObject,
    ) -> Option<PathBuf> {
        let uid = |obj: &DefaultDicomObject, tag| {
            obj.get(tag)
                .and_then(|e| e.to_str().ok())
                .map(|s| s.trim_end_matches(['\0', ' ']).to_string())
                .filter(|s| !s.is_empty())
        };
        let safe =
            |s: String| Some(s).filter(|s| s.bytes().all(|b| b.is_ascii_digit() || b == b'.'));
        let md5 = |s: String| {
            use md5::Digest;
            hex::encode(md5::Md5::digest(s.as_bytes()))
        };
        match self.naming {
            Naming::Uids => Some(
                PathBuf::from(safe(uid(output, tags::STUDY_INSTANCE_UID)?)?)
                    .join(safe(uid(output, tags::SERIES_INSTANCE_UID)?)?)
                    .join(format!(
                        "{}.dcm",
                        safe(uid(output, tags::SOP_INSTANCE_UID)?)?
                    )),
            ),
            Naming::Md5Sop => Some(PathBuf::from(format!(
                "{}.dicom",
                md5(uid(input, tags::SOP_INSTANCE_UID)?)
            ))),
            Naming::Md5StudySop => Some(
                PathBuf::from(md5(uid(input, tags::STUDY_INSTANCE_UID)?)).join(format!(
                    "{}.dicom",
                    md5(uid(input, tags::SOP_INSTANCE_UID)?)
                )),
            ),
        }
    }
}

/// A burned-in text policy from TOML text shaped like a profile's `[burned_in]` table
/// (`origin` names it in errors):
///
/// ```toml
/// unmatched = "review"      # or "keep"
/// [[devices]]               # suspect even when Burned In Annotation is not YES
/// manufacturer = "ACME"
/// model = "Sono 5"
/// [[masks]]                 # blank [x, y, width, height] on matching images
/// modality = "US"
/// rows = 480
/// columns = 640
/// regions = [[0, 0, 640, 40]]
/// ```
pub fn burned_in_policy_from_toml(
    text: &str,
    origin: &str,
) -> Result<BurnedInPolicy, ProfileError> {
    let err = |message: String| ProfileError::File {
        file: origin.to_string(),
        message,
    };
    let spec: TomlBurnedIn = toml::from_str(text).map_err(|e| err(e.to_string()))?;
    spec.into_policy().map_err(err)
}

/// What happens to an attribute of a content item (inside a Content Sequence, at any
/// depth) that Table E.1-1 does not list. The table gives the Content Sequence D (C under
/// Clean Structured Content) and leaves its items to the implementation: the tree is kept
/// (its coded concepts, relationships and values types identify nobody), its free text and
/// names are replaced by keyed pseudonyms (Text Value and Person Name are Type 1C in their
/// content items: emptying them would break the object), its dates replaced (or shifted),
/// its UIDs remapped.
pub(crate) fn content_item_action(tag: Tag, vr: VR, shifting: bool) -> Option<Action> {
    match vr {
        VR::PN | VR::LT | VR::ST | VR::UT | VR::UC => Some(Action::D),
        _ if tag == tags::TEXT_VALUE => Some(Action::D),
        VR::DA | VR::DT if shifting => Some(Action::C),
        VR::DA | VR::DT | VR::TM => Some(Action::D),
        _ if tag == tags::UID => Some(Action::U),
        _ => None,
    }
}

fn is_date_option(o: DeidOption) -> bool {
    matches!(
        o,
        DeidOption::RetainLongitudinalFullDates | DeidOption::RetainLongitudinalModifiedDates
    )
}

/// A keyword or `(gggg,eeee)` / `gggg,eeee`, with the dictionary's VR when it has one.
fn lookup(name: &str) -> Option<(Tag, Option<VR>)> {
    let dict = StandardDataDictionary;
    let tag = dict.parse_tag(name.trim())?;
    let vr = dict.by_tag(tag).and_then(|e| e.vr().exact());
    Some((tag, vr))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct TomlProfile {
    name: Option<String>,
    base: Option<String>,
    #[serde(default)]
    options: Vec<String>,
    file_names: Option<String>,
    #[serde(default)]
    tags: BTreeMap<String, RuleSpec>,
    #[serde(default)]
    add: BTreeMap<String, String>,
    #[serde(default)]
    safe_private: Vec<SafePrivate>,
    burned_in: Option<TomlBurnedIn>,
}

#[derive(Deserialize)]
#[serde(untagged)]
enum RuleSpec {
    Word(String),
    Replace { replace: String },
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct TomlBurnedIn {
    /// `review` (default: suspect images are not written, and listed for review) or
    /// `keep` (written as they are; the Clean Pixel Data option is then not claimed).
    unmatched: Option<String>,
    #[serde(default)]
    devices: Vec<TextBurningDevice>,
    #[serde(default)]
    masks: Vec<MaskRule>,
}

impl TomlBurnedIn {
    fn into_policy(self) -> Result<BurnedInPolicy, String> {
        let mut policy = BurnedInPolicy::default();
        match self.unmatched.as_deref() {
            None | Some("review") => {}
            Some("keep") => policy.review_unmatched = false,
            Some(other) => {
                return Err(format!(
                    "burned_in.unmatched: {other:?} is not one of review, keep"
                ));
            }
        }
        for m in &self.masks {
            m.check()?;
        }
        policy.devices.extend(self.devices);
        policy.masks = self.masks;
        Ok(policy)
    }
}

/// The 25 attributes of VinDr-CXR's published de-identification allow-list, as in
/// `vindr_cxr_retained_tags.csv` (a test checks this list against that file): patient sex,
/// age, size and weight, the Image Pixel module, window and rescale, the lossy-compression
/// flags, and Pixel Data.
pub const VINDR_CXR_KEPT: [(u16, u16); 25] = [
    (0x0010, 0x0040), // Patient's Sex
    (0x0010, 0x1010), // Patient's Age
    (0x0010, 0x1020), // Patient's Size
    (0x0010, 0x1030), // Patient's Weight
    (0x0028, 0x0004), // Photometric Interpretation
    (0x0028, 0x0010), // Rows
    (0x0028, 0x0011), // Columns
    (0x0028, 0x0030), // Pixel Spacing
    (0x0028, 0x0034), // Pixel Aspect Ratio
    (0x0028, 0x0100), // Bits Allocated
    (0x0028, 0x0101), // Bits Stored
    (0x0028, 0x0102), // High Bit
    (0x0028, 0x0103), // Pixel Representation
    (0x0028, 0x0106), // Smallest Image Pixel Value
    (0x0028, 0x0107), // Largest Image Pixel Value
    (0x0028, 0x1050), // Window Center
    (0x0028, 0x1051), // Window Width
    (0x0028, 0x1052), // Rescale Intercept
    (0x0028, 0x1053), // Rescale Slope
    (0x7FE0, 0x0010), // Pixel Data
    (0x0028, 0x2110), // Lossy Image Compression
    (0x0028, 0x2112), // Lossy Image Compression Ratio
    (0x0028, 0x2114), // Lossy Image Compression Method
    (0x0028, 0x0002), // Samples per Pixel
    (0x0028, 0x0008), // Number of Frames
];

/// What VinDr-Mammo kept beyond the CXR list (DOMAIN.md section 1): modality, body part,
/// laterality and view, the VOI LUT, the device make and model (reported per image in the
/// dataset's metadata), and what the breast-imaging display needs.
pub const VINDR_MAMMO_EXTRA: &[(u16, u16)] = &[
    (0x0008, 0x0060), // Modality
    (0x0008, 0x0068), // Presentation Intent Type
    (0x0008, 0x0070), // Manufacturer
    (0x0008, 0x1090), // Manufacturer's Model Name
    (0x0018, 0x0015), // Body Part Examined
    (0x0018, 0x1164), // Imager Pixel Spacing
    (0x0018, 0x5101), // View Position
    (0x0020, 0x0060), // Laterality
    (0x0020, 0x0062), // Image Laterality
    (0x0028, 0x0006), // Planar Configuration
    (0x0028, 0x1040), // Pixel Intensity Relationship
    (0x0028, 0x1041), // Pixel Intensity Relationship Sign
    (0x0028, 0x1054), // Rescale Type
    (0x0028, 0x1056), // VOI LUT Function
    (0x0028, 0x3010), // VOI LUT Sequence
    (0x0028, 0x0301), // Burned In Annotation
    (0x2050, 0x0020), // Presentation LUT Shape
    (0x0054, 0x0220), // View Code Sequence
];

/// Private attributes of PS3.15 Table E.3.10-1 (Safe Private Attributes) that radlab keeps
/// under Retain Safe Private: quantitative values readers need (scaling, SUV, diffusion
/// b-values). A subset of the standard's table; a profile adds its own with
/// `[[safe_private]]`.
fn builtin_safe_private() -> Vec<SafePrivate> {
    let s = |creator: &str, group: u16, element: u8| SafePrivate {
        creator: creator.into(),
        group,
        element,
    };
    vec![
        s("Philips MR Imaging DD 001", 0x2005, 0x0D), // Scale Intercept
        s("Philips MR Imaging DD 001", 0x2005, 0x0E), // Scale Slope
        s("Philips PET Private Group", 0x7053, 0x00), // SUV Factor
        s("Philips PET Private Group", 0x7053, 0x09), // Activity Concentration Factor
        s("GEMS_ACQU_01", 0x0019, 0x23),              // Table speed
        s("SIEMENS MR HEADER", 0x0019, 0x0C),         // B value
        s("SIEMENS MR HEADER", 0x0019, 0x0D),         // Diffusion directionality
        s("SIEMENS MR HEADER", 0x0019, 0x0E),         // Diffusion gradient direction
    ]
}
