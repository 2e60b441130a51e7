//! JPEG frames through `libjpeg-turbo-rs`: baseline and extended (DCT, 8 and 12 bit) and
//! lossless (process 14, any predictor, 2 to 16 bit).
//!
//! dicom-rs's pure-Rust decoder refuses 12-bit streams (`SamplePrecision(12)`), which older
//! CR systems still send; libjpeg-turbo-rs decodes them and its 8-bit output matches the IJG
//! decoder that dcmtk uses, sample for sample.

use libjpeg_turbo_rs as ljt;

use crate::decode::{Frame, PixelLayout, frame_from_codec_output};
use crate::error::{DicomError, Result};

const CODEC: &str = "JPEG baseline/extended";
const LOSSLESS: &str = "JPEG lossless";

/// Sample precision from the first SOF marker, if any.
fn sof_precision(data: &[u8]) -> Option<u8> {
    let mut i = 0;
    while i + 4 < data.len() {
        if data[i] != 0xFF {
            i += 1;
            continue;
        }
        let marker = data[i + 1];
        match marker {
            0xC0..=0xCF if !matches!(marker, 0xC4 | 0xC8 | 0xCC) => {
                return data.get(i + 4).copied();
            }
            0xD8 | 0x01 | 0xD0..=0xD7 | 0xFF => i += 2,
            0xDA => return None,
            _ => {
                let len = u16::from_be_bytes([data[i + 2], data[i + 3]]) as usize;
                i += 2 + len;
            }
        }
    }
    None
}

/// The decoded stream must be the image the header describes.
fn check_geometry(
    width: usize,
    height: usize,
    components: usize,
    layout: &PixelLayout,
) -> std::result::Result<(), String> {
    if width != layout.columns as usize || height != layout.rows as usize {
        return Err(format!(
            "the JPEG stream is {width} x {height} but the header says {} x {}",
            layout.columns, layout.rows
        ));
    }
    if components != layout.samples_per_pixel as usize {
        return Err(format!(
            "the JPEG stream has {components} component(s) but Samples per Pixel is {}",
            layout.samples_per_pixel
        ));
    }
    Ok(())
}

pub(crate) fn decode_dct_frame(data: &[u8], layout: &PixelLayout, index: u32) -> Result<Frame> {
    let err = |detail: String| DicomError::Codec {
        codec: CODEC,
        frame: index,
        detail,
    };
    if data.is_empty() {
        return Err(err("the frame has no compressed data".into()));
    }
    let precision = sof_precision(data).ok_or_else(|| err("no SOF marker found".into()))?;
    let (width, height, components, values): (usize, usize, usize, Vec<u16>) = if precision > 8 {
        let image = match ljt::decompress_12bit(data) {
            Ok(image) => image,
            Err(strict) => {
                // Some encoders write header fields libjpeg only warns about (the NEMA 12-bit
                // set has Se=0 in a DCT scan); the image is whole unless data ran short.
                let (image, warnings) = ljt::precision::decompress_12bit_lenient(data)
                    .map_err(|_| err(strict.to_string()))?;
                if let Some(w) = warnings
                    .iter()
                    .find(|w| matches!(w, ljt::DecodeWarning::TruncatedData { .. }))
                {
                    return Err(err(format!("compressed data ends early: {w:?}")));
                }
                image
            }
        };
        let values = image
            .data
            .iter()
            .map(|v| (*v).clamp(0, 4095) as u16)
            .collect();
        (image.width, image.height, image.num_components, values)
    } else {
        let image = ljt::decompress(data).map_err(|e| err(e.to_string()))?;
        let components = match image.pixel_format {
            ljt::PixelFormat::Grayscale => 1,
            ljt::PixelFormat::Rgb => 3,
            other => return Err(err(format!("unexpected output format {other:?}"))),
        };
        let values = image.data.iter().map(|v| *v as u16).collect();
        (image.width, image.height, components, values)
    };
    check_geometry(width, height, components, layout).map_err(err)?;
    Ok(frame_from_codec_output(values, layout, components as u16))
}

/// A lossless JPEG frame. Strict: a stream that ends before its last row is an error (the
/// decoder would otherwise pad it with grey, which is how truncated files hide).
pub(crate) fn decode_lossless_frame(
    data: &[u8],
    layout: &PixelLayout,
    index: u32,
) -> Result<Frame> {
    let err = |detail: String| DicomError::Codec {
        codec: LOSSLESS,
        frame: index,
        detail,
    };
    if data.is_empty() {
        return Err(err("the frame has no compressed data".into()));
    }
    let image =
        ljt::precision::decompress_lossless_arbitrary(data).map_err(|e| err(e.to_string()))?;
    check_geometry(image.width, image.height, image.num_components, layout).map_err(err)?;
    let components = image.num_components as u16;
    Ok(frame_from_codec_output(image.data, layout, components))
}
