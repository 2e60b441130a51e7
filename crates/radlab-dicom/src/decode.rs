//! Decoding Pixel Data into frames of stored values, for every transfer syntax we accept.
//!
//! Native (uncompressed) data is unpacked here, honouring Bits Allocated, Bits Stored,
//! High Bit, Pixel Representation and Planar Configuration. JPEG baseline and extended
//! (8 and 12 bit) go through `libjpeg-turbo-rs`, whose output matches IJG/dcmtk; the other
//! encapsulated syntaxes (JPEG lossless, JPEG-LS, JPEG 2000, RLE) through the dicom-rs codec
//! registry. Every frame is checked for length: a short or undecodable frame is an error,
//! never garbage pixels.

use std::borrow::Cow;

use dicom_core::value::Value;
use dicom_dictionary_std::tags;
use dicom_encoding::TransferSyntaxIndex;
use dicom_object::DefaultDicomObject;
use dicom_pixeldata::PixelDecoder;
use dicom_transfer_syntax_registry::TransferSyntaxRegistry;

use crate::error::{DicomError, Result};
use crate::info::{int, text};
use crate::open::DicomFile;

/// Stored pixel values of one frame, interleaved when there are several samples per pixel.
#[derive(Debug, Clone, PartialEq)]
pub enum Samples {
    U16(Vec<u16>),
    I16(Vec<i16>),
    /// Bits Allocated 32 (RT Dose and the like).
    U32(Vec<u32>),
    I32(Vec<i32>),
}

impl Samples {
    pub fn len(&self) -> usize {
        match self {
            Samples::U16(v) => v.len(),
            Samples::I16(v) => v.len(),
            Samples::U32(v) => v.len(),
            Samples::I32(v) => v.len(),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The value at `index`, widened.
    pub fn get(&self, index: usize) -> i64 {
        match self {
            Samples::U16(v) => v[index] as i64,
            Samples::I16(v) => v[index] as i64,
            Samples::U32(v) => v[index] as i64,
            Samples::I32(v) => v[index] as i64,
        }
    }

    /// Smallest and largest stored value; `(0, 0)` when empty.
    pub fn min_max(&self) -> (i64, i64) {
        fn mm<T: Copy + Ord + Into<i64>>(v: &[T]) -> (i64, i64) {
            let mut it = v.iter().copied();
            let Some(first) = it.next() else {
                return (0, 0);
            };
            let (lo, hi) = it.fold((first, first), |(lo, hi), x| (lo.min(x), hi.max(x)));
            (lo.into(), hi.into())
        }
        match self {
            Samples::U16(v) => mm(v),
            Samples::I16(v) => mm(v),
            Samples::U32(v) => mm(v),
            Samples::I32(v) => mm(v),
        }
    }

    /// All values widened to `i64` (for comparisons in tests and tools).
    pub fn to_i64_vec(&self) -> Vec<i64> {
        (0..self.len()).map(|i| self.get(i)).collect()
    }
}

/// One decoded frame.
#[derive(Debug, Clone)]
pub struct Frame {
    pub rows: u32,
    pub columns: u32,
    pub samples_per_pixel: u16,
    pub bits_stored: u16,
    pub signed: bool,
    /// The photometric interpretation of `samples`: `MONOCHROME1`, `MONOCHROME2`,
    /// `PALETTE COLOR`, or `RGB` (colour data is converted to RGB while decoding).
    pub photometric: String,
    pub samples: Samples,
}

/// The Image Pixel module values needed to decode.
#[derive(Debug, Clone)]
pub struct PixelLayout {
    pub rows: u32,
    pub columns: u32,
    pub frames: u32,
    pub samples_per_pixel: u16,
    pub bits_allocated: u16,
    pub bits_stored: u16,
    pub high_bit: u16,
    pub signed: bool,
    pub photometric: String,
    pub planar_configuration: u16,
}

impl PixelLayout {
    /// Read and validate the layout; errors name the attribute at fault.
    pub fn from_object(obj: &DefaultDicomObject) -> Result<Self> {
        if obj.get(tags::PIXEL_DATA).is_none() {
            let what = match text(obj, tags::MODALITY) {
                Some(m) => format!(" (Modality {m}: not an image object?)"),
                None => String::new(),
            };
            return Err(DicomError::NoPixelData(what));
        }
        let required = |tag, attribute: &'static str| {
            int(obj, tag).ok_or(DicomError::Attribute {
                attribute,
                detail: "absent or not a number".into(),
            })
        };
        let rows = required(tags::ROWS, "Rows (0028,0010)")?;
        let columns = required(tags::COLUMNS, "Columns (0028,0011)")?;
        let bits_allocated = required(tags::BITS_ALLOCATED, "Bits Allocated (0028,0100)")?;
        let bits_stored = int(obj, tags::BITS_STORED).unwrap_or(bits_allocated);
        let high_bit = int(obj, tags::HIGH_BIT).unwrap_or(bits_stored - 1);
        let samples_per_pixel = int(obj, tags::SAMPLES_PER_PIXEL).unwrap_or(1);
        let frames = int(obj, tags::NUMBER_OF_FRAMES)
            .filter(|n| *n > 0)
            .unwrap_or(1);
        let photometric = text(obj, tags::PHOTOMETRIC_INTERPRETATION)
            .map(|p| p.to_ascii_uppercase())
            .unwrap_or_else(|| {
                if samples_per_pixel == 3 {
                    "RGB"
                } else {
                    "MONOCHROME2"
                }
                .to_string()
            });
        let bad = |attribute, detail: String| Err(DicomError::Attribute { attribute, detail });
        if rows <= 0 || columns <= 0 || rows > 65535 || columns > 65535 {
            return bad(
                "Rows/Columns",
                format!("{rows} x {columns} is not a valid image size"),
            );
        }
        if !matches!(bits_allocated, 1 | 8 | 16 | 32) {
            return bad(
                "Bits Allocated (0028,0100)",
                format!("{bits_allocated} (expected 1, 8, 16 or 32)"),
            );
        }
        if bits_stored < 1 || bits_stored > bits_allocated {
            return bad(
                "Bits Stored (0028,0101)",
                format!("{bits_stored} with Bits Allocated {bits_allocated}"),
            );
        }
        if high_bit < bits_stored - 1 || high_bit >= bits_allocated {
            return bad(
                "High Bit (0028,0102)",
                format!(
                    "{high_bit} with Bits Stored {bits_stored}, Bits Allocated {bits_allocated}"
                ),
            );
        }
        if !matches!(samples_per_pixel, 1 | 3) {
            return bad(
                "Samples per Pixel (0028,0002)",
                format!("{samples_per_pixel} (expected 1 or 3)"),
            );
        }
        if frames > 1_000_000 {
            return bad(
                "Number of Frames (0028,0008)",
                format!("{frames} is implausible"),
            );
        }
        Ok(PixelLayout {
            rows: rows as u32,
            columns: columns as u32,
            frames: frames as u32,
            samples_per_pixel: samples_per_pixel as u16,
            bits_allocated: bits_allocated as u16,
            bits_stored: bits_stored as u16,
            high_bit: high_bit as u16,
            signed: int(obj, tags::PIXEL_REPRESENTATION) == Some(1),
            photometric,
            planar_configuration: int(obj, tags::PLANAR_CONFIGURATION).unwrap_or(0) as u16,
        })
    }

    /// Number of stored samples in one frame (native 4:2:2 data keeps two per pixel).
    pub fn frame_samples(&self) -> usize {
        let per_pixel = if self.photometric == "YBR_FULL_422" && self.samples_per_pixel == 3 {
            2
        } else {
            self.samples_per_pixel as usize
        };
        self.rows as usize * self.columns as usize * per_pixel
    }
}

/// Which decoder a transfer syntax uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Codec {
    Native,
    /// JPEG baseline / extended (DCT, 8 or 12 bit).
    JpegDct,
    /// JPEG lossless, processes 14 and 14 SV1.
    JpegLossless,
    /// RLE Lossless.
    Rle,
    /// Anything the dicom-rs registry decodes (JPEG lossless, JPEG-LS, JPEG 2000, RLE...).
    Registry(&'static str),
}

pub(crate) fn codec_of(ts_uid: &str) -> Result<Codec> {
    Ok(match ts_uid {
        "1.2.840.10008.1.2"
        | "1.2.840.10008.1.2.1"
        | "1.2.840.10008.1.2.2"
        | "1.2.840.10008.1.2.1.99" => Codec::Native,
        "1.2.840.10008.1.2.4.50" | "1.2.840.10008.1.2.4.51" => Codec::JpegDct,
        "1.2.840.10008.1.2.4.57" | "1.2.840.10008.1.2.4.70" => Codec::JpegLossless,
        "1.2.840.10008.1.2.4.80" | "1.2.840.10008.1.2.4.81" => Codec::Registry("JPEG-LS"),
        "1.2.840.10008.1.2.4.90" | "1.2.840.10008.1.2.4.91" => Codec::Registry("JPEG 2000"),
        "1.2.840.10008.1.2.5" => Codec::Rle,
        other => {
            let ts = TransferSyntaxRegistry.get(other);
            let name = ts.map(|t| t.name()).unwrap_or("unknown").to_string();
            match ts {
                Some(t) if t.can_decode_all() => Codec::Registry("registry codec"),
                _ => {
                    return Err(DicomError::UnsupportedTransferSyntax {
                        uid: other.to_string(),
                        name,
                    });
                }
            }
        }
    })
}

/// Decode frame `index` (0-based) of `file`.
pub fn decode_frame(file: &DicomFile, index: u32) -> Result<Frame> {
    let obj = file.object();
    let layout = PixelLayout::from_object(obj)?;
    if index >= layout.frames {
        return Err(DicomError::FrameOutOfRange {
            frame: index,
            frames: layout.frames,
        });
    }
    let pixel_data = obj
        .get(tags::PIXEL_DATA)
        .ok_or_else(|| DicomError::NoPixelData(String::new()))?;
    match (codec_of(file.transfer_syntax())?, pixel_data.value()) {
        (_, Value::Primitive(p)) => {
            let bytes = p.to_bytes();
            native_frame(&bytes, &layout, index)
        }
        (Codec::JpegDct, Value::PixelSequence(seq)) => {
            let data = frame_fragments(seq.fragments(), seq.offset_table(), layout.frames, index);
            crate::jpeg::decode_dct_frame(&data, &layout, index)
        }
        (Codec::JpegLossless, Value::PixelSequence(seq)) => {
            let data = frame_fragments(seq.fragments(), seq.offset_table(), layout.frames, index);
            crate::jpeg::decode_lossless_frame(&data, &layout, index)
        }
        (Codec::Rle, Value::PixelSequence(seq)) => {
            let data = frame_fragments(seq.fragments(), seq.offset_table(), layout.frames, index);
            let bytes = crate::rle::decode_rle_frame(&data, &layout, index)?;
            let decoded_layout = PixelLayout {
                frames: 1,
                planar_configuration: 0,
                ..layout.clone()
            };
            native_frame(&bytes, &decoded_layout, 0)
        }
        (Codec::Registry(name), Value::PixelSequence(_)) => {
            registry_frame(obj, &layout, index, name)
        }
        (Codec::Native, Value::PixelSequence(_)) => Err(DicomError::Parse(
            "Pixel Data is encapsulated but the transfer syntax is uncompressed".into(),
        )),
        (_, Value::Sequence(_)) => Err(DicomError::Parse(
            "Pixel Data (7FE0,0010) holds a sequence of items, not pixels".into(),
        )),
    }
}

/// Decode every frame.
pub fn decode_all_frames(file: &DicomFile) -> Result<Vec<Frame>> {
    let layout = PixelLayout::from_object(file.object())?;
    (0..layout.frames).map(|i| decode_frame(file, i)).collect()
}

/// The compressed bytes of frame `index`, joining the fragments that make it up.
pub(crate) fn frame_fragments<'a>(
    fragments: &'a [Vec<u8>],
    offset_table: &[u32],
    frames: u32,
    index: u32,
) -> Cow<'a, [u8]> {
    let index = index as usize;
    let frames = frames as usize;
    // One fragment per frame (the common case) is borrowed, not copied.
    if frames <= 1 && fragments.len() == 1 {
        return Cow::Borrowed(&fragments[0]);
    }
    if frames <= 1 {
        return Cow::Owned(fragments.concat());
    }
    if fragments.len() == frames {
        return Cow::Borrowed(&fragments[index]);
    }
    if offset_table.len() == frames {
        // Offsets count from the first fragment item's tag, 8 header bytes per item.
        let mut start = 0u64;
        let lo = offset_table[index] as u64;
        let hi = offset_table
            .get(index + 1)
            .map(|v| *v as u64)
            .unwrap_or(u64::MAX);
        let mut out = Vec::new();
        for fragment in fragments {
            if start >= lo && start < hi {
                out.extend_from_slice(fragment);
            }
            start += 8 + fragment.len() as u64;
        }
        return Cow::Owned(out);
    }
    // No usable offset table: a JPEG frame starts with a fragment that begins with SOI.
    let mut current: isize = -1;
    let mut out = Vec::new();
    for fragment in fragments {
        if fragment.starts_with(&[0xFF, 0xD8]) {
            current += 1;
        }
        if current == index as isize {
            out.extend_from_slice(fragment);
        }
    }
    Cow::Owned(out)
}

/// Bits one native frame occupies.
pub(crate) fn native_frame_bits(layout: &PixelLayout) -> usize {
    layout.frame_samples() * layout.bits_allocated as usize
}

/// Native Pixel Data shorter than all the frames the header describes.
pub(crate) fn truncated_pixel_data(layout: &PixelLayout, actual: usize) -> DicomError {
    DicomError::TruncatedPixelData {
        expected: (native_frame_bits(layout) * layout.frames as usize).div_ceil(8),
        actual,
        what: format!(
            "{} frame(s) of {} x {} x {} sample(s) at {} bits",
            layout.frames,
            layout.columns,
            layout.rows,
            layout.samples_per_pixel,
            layout.bits_allocated
        ),
    }
}

/// Unpack frame `index` of native Pixel Data.
fn native_frame(bytes: &[u8], layout: &PixelLayout, index: u32) -> Result<Frame> {
    let n = layout.frame_samples();
    let frame_bits = native_frame_bits(layout);
    let needed_bits = frame_bits * (index as usize + 1);
    if bytes.len() * 8 < needed_bits {
        return Err(truncated_pixel_data(layout, bytes.len()));
    }
    let shift = (layout.high_bit + 1 - layout.bits_stored) as u32;
    let samples = match layout.bits_allocated {
        1 => {
            let first_bit = frame_bits * index as usize;
            let v = (0..n)
                .map(|i| {
                    let bit = first_bit + i;
                    ((bytes[bit / 8] >> (bit % 8)) & 1) as u16
                })
                .collect();
            Samples::U16(v)
        }
        8 => {
            let raw = &bytes[n * index as usize..n * (index as usize + 1)];
            extract_16(raw.iter().map(|b| *b as u16), layout, shift)
        }
        16 => {
            let start = 2 * n * index as usize;
            let raw = &bytes[start..start + 2 * n];
            extract_16(
                raw.chunks_exact(2)
                    .map(|c| u16::from_le_bytes([c[0], c[1]])),
                layout,
                shift,
            )
        }
        32 => {
            let start = 4 * n * index as usize;
            let raw = &bytes[start..start + 4 * n];
            let mask = if layout.bits_stored == 32 {
                u32::MAX
            } else {
                (1u32 << layout.bits_stored) - 1
            };
            let values = raw
                .chunks_exact(4)
                .map(|c| (u32::from_le_bytes([c[0], c[1], c[2], c[3]]) >> shift) & mask);
            if layout.signed {
                let sign = 1u32 << (layout.bits_stored - 1);
                Samples::I32(
                    values
                        .map(|v| {
                            if v & sign != 0 {
                                (v | !mask) as i32
                            } else {
                                v as i32
                            }
                        })
                        .collect(),
                )
            } else {
                Samples::U32(values.collect())
            }
        }
        other => unreachable!("bits allocated {other} rejected by PixelLayout"),
    };
    let frame = Frame {
        rows: layout.rows,
        columns: layout.columns,
        samples_per_pixel: layout.samples_per_pixel,
        bits_stored: layout.bits_stored,
        signed: layout.signed,
        photometric: layout.photometric.clone(),
        samples,
    };
    normalise_colour(frame, layout.planar_configuration)
}

/// A frame from samples a codec produced (right-aligned, interleaved, colour already RGB).
pub(crate) fn frame_from_codec_output(
    mut values: Vec<u16>,
    layout: &PixelLayout,
    samples_per_pixel: u16,
) -> Frame {
    let photometric = if samples_per_pixel == 3 {
        "RGB".to_string()
    } else {
        layout.photometric.clone()
    };
    Frame {
        rows: layout.rows,
        columns: layout.columns,
        samples_per_pixel,
        bits_stored: layout.bits_stored,
        signed: layout.signed,
        photometric,
        samples: if layout.signed {
            extract_16(values.into_iter(), layout, 0)
        } else {
            // Unsigned: mask in place, so a large frame is not held twice.
            let bits = layout.bits_stored as u32;
            if bits < 16 {
                let mask = (1u16 << bits) - 1;
                values.iter_mut().for_each(|v| *v &= mask);
            }
            Samples::U16(values)
        },
    }
}

/// Mask to Bits Stored (after shifting down to bit 0) and sign-extend when signed.
fn extract_16(values: impl Iterator<Item = u16>, layout: &PixelLayout, shift: u32) -> Samples {
    let bits = layout.bits_stored as u32;
    let mask: u16 = if bits >= 16 {
        u16::MAX
    } else {
        (1u16 << bits) - 1
    };
    if layout.signed {
        let sign = 1u16 << (bits - 1);
        Samples::I16(
            values
                .map(|v| {
                    let v = (v >> shift) & mask;
                    if v & sign != 0 {
                        (v | !mask) as i16
                    } else {
                        v as i16
                    }
                })
                .collect(),
        )
    } else if shift == 0 && mask == u16::MAX {
        Samples::U16(values.collect())
    } else {
        Samples::U16(values.map(|v| (v >> shift) & mask).collect())
    }
}

/// Decode through the dicom-rs codec registry and bring the result into our layout.
fn registry_frame(
    obj: &DefaultDicomObject,
    layout: &PixelLayout,
    index: u32,
    codec: &'static str,
) -> Result<Frame> {
    // Third-party codecs must not take the process down on hostile input.
    let decoded = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        obj.decode_pixel_data_frame(index)
    }))
    .map_err(|_| DicomError::Codec {
        codec,
        frame: index,
        detail: "the decoder failed on malformed data (internal panic caught)".into(),
    })?
    .map_err(|e| DicomError::Codec {
        codec,
        frame: index,
        detail: e.to_string(),
    })?;
    let n = layout.frame_samples();
    let bytes_per_sample = decoded.bits_allocated().div_ceil(8) as usize;
    let data = decoded.data();
    if data.len() < n * bytes_per_sample {
        return Err(DicomError::Codec {
            codec,
            frame: index,
            detail: format!(
                "the decoder produced {} bytes, {} expected",
                data.len(),
                n * bytes_per_sample
            ),
        });
    }
    let decoded_layout = PixelLayout {
        frames: 1,
        bits_allocated: decoded.bits_allocated(),
        high_bit: layout.bits_stored - 1,
        photometric: if layout.samples_per_pixel == 3 {
            "RGB".to_string()
        } else {
            layout.photometric.clone()
        },
        planar_configuration: 0,
        ..layout.clone()
    };
    native_frame(&data[..n * bytes_per_sample], &decoded_layout, 0)
}

/// Bring colour frames to interleaved RGB (planar data and native YBR are converted);
/// greyscale and palette frames pass through.
fn normalise_colour(mut frame: Frame, planar_configuration: u16) -> Result<Frame> {
    if frame.samples_per_pixel != 3 {
        return Ok(frame);
    }
    let Samples::U16(values) = &mut frame.samples else {
        return Err(DicomError::Unsupported(
            "colour data must be unsigned with at most 16 bits per sample".into(),
        ));
    };
    let pixels = frame.rows as usize * frame.columns as usize;
    if planar_configuration == 1 && frame.photometric != "YBR_FULL_422" {
        let planar = std::mem::take(values);
        *values = (0..pixels * 3)
            .map(|i| planar[(i % 3) * pixels + i / 3])
            .collect();
    }
    let max = ((1u32 << frame.bits_stored) - 1) as f64;
    let half = (1u32 << (frame.bits_stored - 1)) as f64;
    let ybr_to_rgb = |y: f64, cb: f64, cr: f64| {
        let clamp = |v: f64| v.round().clamp(0.0, max) as u16;
        [
            clamp(y + 1.402 * (cr - half)),
            clamp(y - 0.344136 * (cb - half) - 0.714136 * (cr - half)),
            clamp(y + 1.772 * (cb - half)),
        ]
    };
    match frame.photometric.as_str() {
        "RGB" => {}
        "YBR_FULL" => {
            for px in values.chunks_exact_mut(3) {
                let rgb = ybr_to_rgb(px[0] as f64, px[1] as f64, px[2] as f64);
                px.copy_from_slice(&rgb);
            }
        }
        "YBR_FULL_422" => {
            // Native 4:2:2: each pair of pixels is stored as Y1 Y2 Cb Cr.
            let packed = std::mem::take(values);
            let mut out = Vec::with_capacity(pixels * 3);
            for quad in packed.chunks_exact(4).take(pixels.div_ceil(2)) {
                let (cb, cr) = (quad[2] as f64, quad[3] as f64);
                out.extend_from_slice(&ybr_to_rgb(quad[0] as f64, cb, cr));
                out.extend_from_slice(&ybr_to_rgb(quad[1] as f64, cb, cr));
            }
            out.truncate(pixels * 3);
            *values = out;
        }
        other => {
            return Err(DicomError::Unsupported(format!(
                "photometric interpretation {other} with 3 samples per pixel"
            )));
        }
    }
    frame.photometric = "RGB".into();
    Ok(frame)
}

/// A digest of decoded frames: equal for the same stored values, whatever the encoding.
pub struct PixelHasher(blake3::Hasher);

impl Default for PixelHasher {
    fn default() -> Self {
        Self::new()
    }
}

impl PixelHasher {
    pub fn new() -> Self {
        PixelHasher(blake3::Hasher::new())
    }

    pub fn add_frame(&mut self, frame: &Frame) {
        let h = &mut self.0;
        h.update(&frame.rows.to_le_bytes());
        h.update(&frame.columns.to_le_bytes());
        h.update(&frame.samples_per_pixel.to_le_bytes());
        // Widened to a fixed width so that the digest does not depend on the sample type.
        fn feed<T: Copy>(h: &mut blake3::Hasher, values: &[T], widen: impl Fn(T) -> i64) {
            let mut buf = Vec::with_capacity(8 * 4096);
            for chunk in values.chunks(4096) {
                buf.clear();
                buf.extend(chunk.iter().flat_map(|v| widen(*v).to_le_bytes()));
                h.update(&buf);
            }
        }
        match &frame.samples {
            Samples::U16(v) => feed(h, v, |x| x as i64),
            Samples::I16(v) => feed(h, v, |x| x as i64),
            Samples::U32(v) => feed(h, v, |x| x as i64),
            Samples::I32(v) => feed(h, v, |x| x as i64),
        }
    }

    pub fn finish(self) -> String {
        self.0.finalize().to_hex().to_string()
    }
}
