//! # radlab-dicom
//!
//! Reading DICOM the way a hospital PACS produces it, decoding its pixels, and showing them
//! correctly.
//!
//! - [`DicomFile`] opens Part 10 files (with or without the 128-byte preamble) and bare
//!   ACR-NEMA style data sets, in every transfer syntax dicom-rs parses (implicit/explicit
//!   little endian, explicit big endian, deflated).
//! - [`decode_frame`] turns Pixel Data into [`Frame`]s of stored values: native data with
//!   any Bits Allocated (1, 8, 16, 32), Bits Stored and High Bit, signed or not; JPEG
//!   baseline and 12-bit extended, JPEG lossless (process 14, SV1), JPEG-LS, JPEG 2000 and
//!   RLE; multi-frame; colour converted to RGB.
//! - [`DisplaySettings`] and [`render_frame`] implement the greyscale pipeline (Modality LUT,
//!   VOI window or LUT with LINEAR / LINEAR_EXACT / SIGMOID, MONOCHROME1 inversion after VOI,
//!   Presentation LUT Shape), with a histogram window when the file has none.
//! - [`stored_frame`] and [`decoded_frame`] give one frame's bytes for WADO-RS: its
//!   compressed bitstream as stored, or native little endian.
//! - [`render`] scales and encodes to PNG, lossless WebP or JPEG; [`wrap`] turns PNG/JPEG pictures
//!   into Secondary Capture objects.
//! - [`dicom_json`] writes a data set in the DICOM JSON Model (PS3.18 F.2) for WADO-RS
//!   metadata and QIDO-RS, with bulk data as BulkDataURI or InlineBinary ([`JsonOptions`]).
//!
//! ```no_run
//! use radlab_dicom::{DicomFile, RenderOptions, render_file_to};
//! let file = DicomFile::open("chest.dcm")?;
//! let png = render_file_to(&file, &RenderOptions { max_side: Some(512), ..Default::default() },
//!                          radlab_dicom::render::ImageFormat::Png)?;
//! std::fs::write("chest.png", png)?;
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

mod decode;
mod display;
mod error;
mod frames;
mod info;
mod jpeg;
mod json;
mod lengths;
mod open;
pub mod render;
mod rle;
mod structure;
mod uid;
pub mod wrap;

pub use decode::{Frame, PixelHasher, PixelLayout, Samples, decode_all_frames, decode_frame};
pub use display::{
    AppliedVoi, DisplaySettings, LookupTable, ModalityLut, Palette, Rendered, VoiChoice,
    VoiFunction, Window, auto_window, min_max_window, render_frame,
};
pub use error::{DicomError, Result};
pub use frames::{
    EXPLICIT_VR_LITTLE_ENDIAN, FrameBytes, decoded_frame, stored_frame, stored_frame_ranges,
};
pub use info::{ImageAttributes, InstanceInfo};
pub use json::{JsonOptions, dicom_json};
pub use lengths::{MAX_SEQUENCE_DEPTH, pixel_data_span};
pub use open::{DicomFile, Framing};
pub use structure::check_structure;
pub use uid::{content_hash, derived_uid};

/// What to render.
#[derive(Debug, Clone, Default)]
pub struct RenderOptions {
    /// 0-based frame number.
    pub frame: u32,
    pub voi: VoiChoice,
    /// Longest side of the output in pixels (a thumbnail); `None` for full size.
    pub max_side: Option<u32>,
}

/// Decode, window and scale one frame of `file`.
pub fn render_file(file: &DicomFile, options: &RenderOptions) -> Result<(Rendered, AppliedVoi)> {
    let settings = DisplaySettings::from_file(file)?;
    let frame = decode_frame(file, options.frame)?;
    let (image, voi) = render_frame(&frame, &settings, &options.voi)?;
    let image = match options.max_side {
        Some(side) => render::fit_within(&image, side)?,
        None => image,
    };
    Ok((image, voi))
}

/// [`render_file`], encoded.
pub fn render_file_to(
    file: &DicomFile,
    options: &RenderOptions,
    format: render::ImageFormat,
) -> Result<Vec<u8>> {
    let (image, _) = render_file(file, options)?;
    render::encode_to_vec(&image, format)
}
