//! Scaling and encoding rendered frames: PNG and lossless WebP, full size or thumbnails.

use std::io::Write;
use std::path::Path;

use fast_image_resize::{FilterType, PixelType, ResizeAlg, ResizeOptions, Resizer, images::Image};
use image::{ExtendedColorType, ImageEncoder};

use crate::display::Rendered;
use crate::error::{DicomError, Result};

/// Output encodings.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ImageFormat {
    Png,
    /// Lossless WebP.
    WebP,
}

impl ImageFormat {
    /// The format named by a file extension (`png`, `webp`).
    pub fn from_path(path: &Path) -> Option<Self> {
        match path.extension()?.to_str()?.to_ascii_lowercase().as_str() {
            "png" => Some(ImageFormat::Png),
            "webp" => Some(ImageFormat::WebP),
            _ => None,
        }
    }

    pub fn mime_type(self) -> &'static str {
        match self {
            ImageFormat::Png => "image/png",
            ImageFormat::WebP => "image/webp",
        }
    }
}

/// Scale so that the longer side is `max_side` pixels, keeping the aspect ratio.
/// Images already that small are returned unchanged (thumbnails never upscale).
pub fn fit_within(image: &Rendered, max_side: u32) -> Result<Rendered> {
    let longest = image.width.max(image.height);
    if max_side == 0 || longest <= max_side {
        return Ok(image.clone());
    }
    let scale = max_side as f64 / longest as f64;
    let width = ((image.width as f64 * scale).round() as u32).max(1);
    let height = ((image.height as f64 * scale).round() as u32).max(1);
    let pixel_type = if image.channels == 3 {
        PixelType::U8x3
    } else {
        PixelType::U8
    };
    let src = Image::from_vec_u8(image.width, image.height, image.pixels.clone(), pixel_type)
        .map_err(|e| DicomError::Encode(format!("resize source: {e}")))?;
    let mut dst = Image::new(width, height, pixel_type);
    // Lanczos widens its support with the scale factor, so downscaling does not alias.
    Resizer::new()
        .resize(
            &src,
            &mut dst,
            &ResizeOptions::new().resize_alg(ResizeAlg::Convolution(FilterType::Lanczos3)),
        )
        .map_err(|e| DicomError::Encode(format!("resize: {e}")))?;
    Ok(Rendered {
        width,
        height,
        channels: image.channels,
        pixels: dst.into_vec(),
    })
}

/// Encode to `format` into `out`.
pub fn encode(image: &Rendered, format: ImageFormat, out: impl Write) -> Result<()> {
    let color = if image.channels == 3 {
        ExtendedColorType::Rgb8
    } else {
        ExtendedColorType::L8
    };
    let result = match format {
        ImageFormat::Png => image::codecs::png::PngEncoder::new_with_quality(
            out,
            image::codecs::png::CompressionType::Fast,
            image::codecs::png::FilterType::Adaptive,
        )
        .write_image(&image.pixels, image.width, image.height, color),
        ImageFormat::WebP => image::codecs::webp::WebPEncoder::new_lossless(out).write_image(
            &image.pixels,
            image.width,
            image.height,
            color,
        ),
    };
    result.map_err(|e| DicomError::Encode(e.to_string()))
}

/// Encode to a byte vector.
pub fn encode_to_vec(image: &Rendered, format: ImageFormat) -> Result<Vec<u8>> {
    let mut out = Vec::new();
    encode(image, format, &mut out)?;
    Ok(out)
}

/// Encode as baseline JPEG at `quality` (1-100; WADO-RS rendered images and thumbnails).
pub fn encode_jpeg(image: &Rendered, quality: u8) -> Result<Vec<u8>> {
    let color = if image.channels == 3 {
        ExtendedColorType::Rgb8
    } else {
        ExtendedColorType::L8
    };
    let mut out = Vec::new();
    image::codecs::jpeg::JpegEncoder::new_with_quality(&mut out, quality.clamp(1, 100))
        .write_image(&image.pixels, image.width, image.height, color)
        .map_err(|e| DicomError::Encode(e.to_string()))?;
    Ok(out)
}
