//! # radlab-deid
//!
//! De-identification of DICOM objects per DICOM PS3.15 Annex E (Basic Application Level
//! Confidentiality Profile and its options).
//!
//! - The attribute table is generated from the standard's Table E.1-1
//!   ([`annex_e_entries`]), checked against the source by a test.
//! - [`AnnexEProfile`] applies it, recursively into sequences, with keyed, deterministic
//!   UID replacement (`2.25.` UIDs), pseudonyms and per-patient date shifting from a
//!   [`DeidKey`], and records Patient Identity Removed and the De-identification Method
//!   (code sequence from CID 7050).
//!
//! Work in progress (issue 3): presets (vindr-cxr, vindr-mammo, TOML profiles), safe
//! private tags, burned-in text, the verifier and the `radlab deid` / `verify` commands.

mod annex_e_table;
pub mod batch;
mod engine;
mod table;
mod verify;

pub use engine::{AnnexEProfile, DeidKey, DeidReport, ProfileError};
pub use table::{Action, DeidOption, ProfileEntry, TagPattern};
pub use verify::{Finding, FindingKind, verify_against};

/// Every row of PS3.15 Table E.1-1.
pub fn annex_e_entries() -> &'static [ProfileEntry] {
    annex_e_table::ANNEX_E
}
