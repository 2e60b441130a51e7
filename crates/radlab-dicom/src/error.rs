//! Errors of DICOM reading, decoding and rendering, each naming what failed and why.

use thiserror::Error;

/// Why a DICOM object could not be read, decoded or rendered.
///
/// Every variant carries enough context for a user to act on; the [`DicomError::reason_code`]
/// gives a stable short code that the catalog stores with quarantined files.
#[derive(Debug, Error)]
pub enum DicomError {
    #[error("cannot read the file: {0}")]
    Io(#[from] std::io::Error),
    #[error("not a DICOM file: {0}")]
    NotDicom(String),
    #[error("the file ends early: {0}")]
    Truncated(String),
    #[error("cannot parse the DICOM data set: {0}")]
    Parse(String),
    #[error("the object has no Pixel Data (7FE0,0010){0}")]
    NoPixelData(String),
    #[error("missing or invalid attribute {attribute}: {detail}")]
    Attribute {
        attribute: &'static str,
        detail: String,
    },
    #[error("the Pixel Data holds {actual} bytes but {expected} are needed for {what}")]
    TruncatedPixelData {
        expected: usize,
        actual: usize,
        what: String,
    },
    #[error("transfer syntax {uid} ({name}) is not supported for decoding")]
    UnsupportedTransferSyntax { uid: String, name: String },
    #[error("cannot decode the compressed pixel data ({codec}) of frame {frame}: {detail}")]
    Codec {
        codec: &'static str,
        frame: u32,
        detail: String,
    },
    #[error("frame {frame} requested but the object has {frames} frame(s)")]
    FrameOutOfRange { frame: u32, frames: u32 },
    #[error("unsupported pixel layout: {0}")]
    Unsupported(String),
    #[error("cannot encode the output image: {0}")]
    Encode(String),
}

impl DicomError {
    /// A short, stable code for the kind of failure (stored in the quarantine list).
    pub fn reason_code(&self) -> &'static str {
        match self {
            DicomError::Io(_) => "io",
            DicomError::NotDicom(_) => "not_dicom",
            DicomError::Truncated(_) => "truncated_file",
            DicomError::Parse(_) => "parse_error",
            DicomError::NoPixelData(_) => "no_pixel_data",
            DicomError::Attribute { .. } => "invalid_attribute",
            DicomError::TruncatedPixelData { .. } => "truncated_pixel_data",
            DicomError::UnsupportedTransferSyntax { .. } => "unsupported_transfer_syntax",
            DicomError::Codec { .. } => "undecodable_pixel_data",
            DicomError::FrameOutOfRange { .. } => "frame_out_of_range",
            DicomError::Unsupported(_) => "unsupported_pixel_layout",
            DicomError::Encode(_) => "encode_error",
        }
    }
}

pub type Result<T, E = DicomError> = std::result::Result<T, E>;
