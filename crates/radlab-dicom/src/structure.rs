//! Checking Pixel Data without decoding it: lengths, frame boundaries and the marker
//! structure of each compressed frame (JPEG, JPEG-LS, JPEG 2000, RLE).
//!
//! This is what `radlab import --check structure` runs instead of a full decode: it finds
//! truncated files, missing frames, codestreams for another image size and broken JPEG 2000
//! tile-part chains at a small fraction of the cost of decoding, as a PACS does on ingest.
//! It cannot find damage inside entropy-coded data; a full decode (the default) does.

use dicom_core::value::Value;
use dicom_dictionary_std::tags;

use crate::decode::{
    Codec, PixelLayout, codec_of, frame_fragments, native_frame_bits, truncated_pixel_data,
};
use crate::error::{DicomError, Result};
use crate::open::DicomFile;

/// Check that every frame of `file` is present and structurally sound.
pub fn check_structure(file: &DicomFile) -> Result<()> {
    let obj = file.object();
    let layout = PixelLayout::from_object(obj)?;
    let pixel_data = obj
        .get(tags::PIXEL_DATA)
        .ok_or_else(|| DicomError::NoPixelData(String::new()))?;
    let codec = codec_of(file.transfer_syntax())?;
    match pixel_data.value() {
        Value::Primitive(p) => {
            let available = p.to_bytes().len();
            let expected = (native_frame_bits(&layout) * layout.frames as usize).div_ceil(8);
            if available < expected {
                return Err(truncated_pixel_data(&layout, available));
            }
            Ok(())
        }
        Value::PixelSequence(seq) => {
            for index in 0..layout.frames {
                let data =
                    frame_fragments(seq.fragments(), seq.offset_table(), layout.frames, index);
                let (name, result) = match codec {
                    Codec::JpegDct | Codec::JpegLossless => ("JPEG", jpeg(&data, &layout)),
                    Codec::Registry("JPEG-LS") => ("JPEG-LS", jpeg(&data, &layout)),
                    Codec::Registry("JPEG 2000") => ("JPEG 2000", j2k(&data, &layout)),
                    Codec::Rle => ("RLE", rle(&data)),
                    Codec::Registry(other) => (other, non_empty(&data)),
                    Codec::Native => (
                        "native",
                        Err(
                            "Pixel Data is encapsulated but the transfer syntax is uncompressed"
                                .to_string(),
                        ),
                    ),
                };
                result.map_err(|detail| DicomError::Codec {
                    codec: name,
                    frame: index,
                    detail,
                })?;
            }
            Ok(())
        }
        Value::Sequence(_) => Err(DicomError::Parse(
            "Pixel Data (7FE0,0010) holds a sequence of items, not pixels".into(),
        )),
    }
}

type Check = std::result::Result<(), String>;

fn non_empty(data: &[u8]) -> Check {
    if data.is_empty() {
        Err("the frame has no compressed data".into())
    } else {
        Ok(())
    }
}

fn be16(data: &[u8], at: usize) -> std::result::Result<usize, String> {
    data.get(at..at + 2)
        .map(|b| u16::from_be_bytes([b[0], b[1]]) as usize)
        .ok_or_else(|| {
            format!(
                "the stream ends at byte {} inside a marker segment",
                data.len()
            )
        })
}

fn be32(data: &[u8], at: usize) -> std::result::Result<usize, String> {
    data.get(at..at + 4)
        .map(|b| u32::from_be_bytes([b[0], b[1], b[2], b[3]]) as usize)
        .ok_or_else(|| {
            format!(
                "the stream ends at byte {} inside a marker segment",
                data.len()
            )
        })
}

/// The stream without the zero bytes that pad DICOM fragments to even length.
fn unpadded(data: &[u8]) -> &[u8] {
    let end = data.iter().rposition(|b| *b != 0).map_or(0, |i| i + 1);
    &data[..end]
}

fn check_size(width: usize, height: usize, layout: &PixelLayout) -> Check {
    if width != layout.columns as usize || height != layout.rows as usize {
        return Err(format!(
            "the codestream is {width} x {height} but the header says {} x {}",
            layout.columns, layout.rows
        ));
    }
    Ok(())
}

/// JPEG and JPEG-LS: SOI, a frame header for this image size, a scan, and EOI at the end.
fn jpeg(data: &[u8], layout: &PixelLayout) -> Check {
    non_empty(data)?;
    if !data.starts_with(&[0xFF, 0xD8]) {
        return Err("the frame does not start with a JPEG SOI marker".into());
    }
    let mut i = 2;
    let mut seen_frame = false;
    loop {
        if i + 4 > data.len() {
            return Err(format!(
                "the stream ends at byte {} before any scan",
                data.len()
            ));
        }
        if data[i] != 0xFF {
            return Err(format!(
                "expected a marker at byte {i}, found {:#04x}",
                data[i]
            ));
        }
        let marker = data[i + 1];
        if marker == 0xFF {
            i += 1; // fill byte
            continue;
        }
        let length = be16(data, i + 2)?;
        let is_frame = matches!(marker, 0xC0..=0xCF if !matches!(marker, 0xC4 | 0xC8 | 0xCC))
            || marker == 0xF7;
        if is_frame {
            let height = be16(data, i + 5)?;
            let width = be16(data, i + 7)?;
            check_size(width, height, layout)?;
            seen_frame = true;
        }
        if marker == 0xDA {
            break;
        }
        i += 2 + length;
    }
    if !seen_frame {
        return Err("no frame header (SOF) before the first scan".into());
    }
    // Encoders pad frames with fill bytes or trailing data after EOI; a truncated stream
    // has no EOI near its end at all.
    let tail = &data[data.len().saturating_sub(64)..];
    if !tail.windows(2).any(|w| w == [0xFF, 0xD9]) {
        return Err("the stream does not end with an EOI marker: truncated?".into());
    }
    Ok(())
}

/// JPEG 2000: SOC, SIZ for this image size, then a chain of tile-parts whose lengths lead
/// exactly to EOC.
fn j2k(data: &[u8], layout: &PixelLayout) -> Check {
    non_empty(data)?;
    // A JP2 file (boxes) rather than a bare codestream: use its contiguous codestream box.
    let data = if data.get(4..8) == Some(b"jP  ") {
        let at = data
            .windows(4)
            .position(|w| w == b"jp2c")
            .ok_or("a JP2 file without a codestream box")?;
        &data[at + 4..]
    } else {
        data
    };
    let data = unpadded(data);
    if !data.starts_with(&[0xFF, 0x4F, 0xFF, 0x51]) {
        return Err("the frame does not start with JPEG 2000 SOC and SIZ markers".into());
    }
    let x = be32(data, 8)?;
    let y = be32(data, 12)?;
    let x0 = be32(data, 16)?;
    let y0 = be32(data, 20)?;
    check_size(x.saturating_sub(x0), y.saturating_sub(y0), layout)?;
    // Main header: marker segments up to the first SOT.
    let mut i = 2;
    while be16(data, i)? != 0xFF90 {
        let marker = be16(data, i)?;
        if marker >> 8 != 0xFF {
            return Err(format!("expected a marker at byte {i} of the main header"));
        }
        i += 2 + be16(data, i + 2)?;
    }
    // Tile-parts: SOT carries Psot, the length of the tile-part from its SOT marker.
    loop {
        match be16(data, i)? {
            0xFF90 => {
                let psot = be32(data, i + 6)?;
                if psot == 0 {
                    // The last tile-part runs to EOC.
                    return if data.ends_with(&[0xFF, 0xD9]) {
                        Ok(())
                    } else {
                        Err("the last tile-part does not end with EOC: truncated?".into())
                    };
                }
                if psot < 14 {
                    return Err(format!(
                        "tile-part at byte {i} has an invalid length {psot}"
                    ));
                }
                i += psot;
            }
            0xFFD9 if i + 2 == data.len() => return Ok(()),
            0xFFD9 => {
                return Err(format!(
                    "EOC at byte {i} but {} bytes follow",
                    data.len() - i - 2
                ));
            }
            other => {
                return Err(format!(
                    "expected a tile-part (SOT) or EOC at byte {i}, found {other:#06x}: the \
                     tile-part lengths do not match the data"
                ));
            }
        }
    }
}

/// RLE: a header whose segment offsets lie within the frame, in order.
fn rle(data: &[u8]) -> Check {
    if data.len() < 64 {
        return Err(format!(
            "the frame is {} bytes, shorter than the RLE header",
            data.len()
        ));
    }
    let word = |k: usize| u32::from_le_bytes(data[4 * k..4 * k + 4].try_into().unwrap()) as usize;
    let segments = word(0);
    if !(1..=15).contains(&segments) {
        return Err(format!("{segments} segments (1 to 15 allowed)"));
    }
    let mut previous = 63;
    for k in 1..=segments {
        let offset = word(k);
        if offset <= previous || offset >= data.len() {
            return Err(format!(
                "segment {k} starts at {offset}, outside the frame or out of order"
            ));
        }
        previous = offset;
    }
    Ok(())
}
