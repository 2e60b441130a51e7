//! DICOM networking for radlab.
//!
//! So far: a storage SCP ([`scp::serve`]) answering C-ECHO (Verification) and C-STORE for
//! every storage SOP class of the standard registry ([`STORAGE_SOP_CLASSES`]), in the
//! transfer syntaxes radlab decodes ([`ACCEPTED_TRANSFER_SYNTAXES`]). Each received object
//! is written as a Part 10 file into a staging folder and handed to a [`scp::StoreHandler`]
//! (the `radlab` binary imports it into the catalog), whose answer becomes the C-STORE
//! status. The upper layer (PDUs, association negotiation) is dicom-rs's `dicom-ul`; the
//! DIMSE command sets are encoded and parsed here ([`dimse`]).
//!
//! With a [`qr::QueryRetrieve`] provider ([`serve_with`]), the SCP also answers C-FIND and
//! C-MOVE in the Study Root Query/Retrieve Information Model ([`qr`]): matches from the
//! provider (one project of the catalog), and C-MOVE sub-operations sent to known peers by
//! the C-STORE SCU of [`scu::StoreScu`].
//!
//! The SCU side ([`scu`]): C-ECHO, C-FIND (Study Root, study and series level), C-MOVE of
//! a study to an AE title (our own SCP, for `radlab pacs move`) and C-GET of a study, its
//! objects received on the same association (`radlab pacs get`). The resumable retrieval
//! job of `move` and `get` ([`job`]): the studies, what became of each, retries.
//!
//! The DICOMweb client ([`dicomweb_client`]): QIDO-RS search for studies and WADO-RS
//! retrieve of a study into Part 10 files (`multipart/related` parsed as it streams), with
//! bearer or basic authentication, for `radlab pacs web-find` and `web-retrieve`.

pub mod dicomweb_client;
pub mod dimse;
pub mod ingest;
pub mod job;
pub mod qr;
pub mod scp;
pub mod scu;
mod storage_classes;

pub use qr::{MovePeer, QueryRetrieve, QueryRetrieveConfig};
pub use scp::{ReceivedObject, ScpConfig, StoreHandler, StoreOutcome, serve, serve_with};
pub use storage_classes::STORAGE_SOP_CLASSES;

/// The Verification SOP Class (C-ECHO).
pub const VERIFICATION: &str = "1.2.840.10008.1.1";

/// Transfer syntaxes the SCP accepts, with their names: those radlab-dicom decodes.
/// Deflated Explicit VR Little Endian is left out: the workspace builds dicom-rs without
/// its `deflate` feature, so such a data set could not be read after it arrived.
pub const ACCEPTED_TRANSFER_SYNTAXES: &[(&str, &str)] = &[
    ("1.2.840.10008.1.2", "Implicit VR Little Endian"),
    ("1.2.840.10008.1.2.1", "Explicit VR Little Endian"),
    ("1.2.840.10008.1.2.2", "Explicit VR Big Endian (retired)"),
    ("1.2.840.10008.1.2.4.50", "JPEG Baseline (Process 1)"),
    ("1.2.840.10008.1.2.4.51", "JPEG Extended (Process 2 & 4)"),
    (
        "1.2.840.10008.1.2.4.57",
        "JPEG Lossless, Non-Hierarchical (Process 14)",
    ),
    (
        "1.2.840.10008.1.2.4.70",
        "JPEG Lossless, Non-Hierarchical, First-Order Prediction (Process 14 [Selection Value 1])",
    ),
    ("1.2.840.10008.1.2.4.80", "JPEG-LS Lossless"),
    ("1.2.840.10008.1.2.4.81", "JPEG-LS Lossy (Near-Lossless)"),
    ("1.2.840.10008.1.2.4.90", "JPEG 2000 (Lossless Only)"),
    ("1.2.840.10008.1.2.4.91", "JPEG 2000"),
    ("1.2.840.10008.1.2.5", "RLE Lossless"),
];

/// The rule that picks storage SOP classes out of the registry (PS3.6 Table A-1): the name,
/// without "(Retired)", "SOP Class", "- For Presentation", "- For Processing" and
/// "- Trial", ends with "Storage"; Media Storage Directory Storage (DICOMDIR, a media
/// object, never sent by C-STORE) is left out.
pub fn is_storage_class_name(uid: &str, name: &str) -> bool {
    if uid == "1.2.840.10008.1.3.10" {
        return false;
    }
    let mut base = name.trim();
    for suffix in [
        " (Retired)",
        " SOP Class",
        " - For Presentation",
        " - For Processing",
        " - Trial",
    ] {
        base = base.strip_suffix(suffix).unwrap_or(base);
    }
    base.ends_with("Storage")
}

/// Whether `uid` is a storage SOP class the SCP accepts.
pub fn is_storage_class(uid: &str) -> bool {
    STORAGE_SOP_CLASSES.iter().any(|(u, _, _)| *u == uid)
}
