//! # radlab-deid
//!
//! De-identification of DICOM objects per DICOM PS3.15 Annex E (Basic Application Level
//! Confidentiality Profile and its options).
//!
//! - The attribute table is generated from the standard's Table E.1-1
//!   ([`annex_e_entries`]), checked against the source by a test.
//! - [`Profile`] applies it, recursively into sequences, with keyed, deterministic
//!   UID replacement (`2.25.` UIDs), pseudonyms and per-patient date shifting from a
//!   [`DeidKey`], and records Patient Identity Removed and the De-identification Method
//!   (code sequence from CID 7050).
//! - [`Profile`] also holds the presets (`vindr-cxr`, `vindr-mammo`: allow-lists with
//!   their file naming), user profiles in TOML (keep, remove, empty, replace, hash, shift,
//!   add), the safe private attributes, and the burned-in text policy ([`BurnedInPolicy`]:
//!   route to review, or blank configured rectangles and claim Clean Pixel Data).
//! - [`verify_against`] looks for what must not survive; [`batch`] runs files and folders
//!   in parallel with atomic writes; [`mapping`] keeps the way back to the originals,
//!   encrypted with the project key, apart from the output.

mod annex_e_table;
pub mod batch;
mod engine;
pub mod mapping;
mod pixels;
mod profile;
mod table;
mod verify;

pub use engine::{DeidKey, DeidReport, NotDeidentified};
pub use pixels::{BurnedInPolicy, MaskRule, PixelDecision, TextBurningDevice, mask_pixels};
pub use profile::{
    Naming, Profile, ProfileError, Rule, SafePrivate, VINDR_CXR_KEPT, VINDR_MAMMO_EXTRA,
    burned_in_policy_from_toml,
};
pub use table::{Action, DeidOption, ProfileEntry, TagPattern};
pub use verify::{Finding, FindingKind, verify_against};

/// Every row of PS3.15 Table E.1-1.
pub fn annex_e_entries() -> &'static [ProfileEntry] {
    annex_e_table::ANNEX_E
}
