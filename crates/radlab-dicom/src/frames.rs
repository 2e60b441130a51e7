//! The bytes of one frame, for WADO-RS: as stored (a native frame's bytes, or an
//! encapsulated frame's compressed bitstream) or decoded to native little endian.

use std::borrow::Cow;

use dicom_core::value::Value;
use dicom_dictionary_std::tags;
use dicom_object::mem::InMemElement;

use crate::decode::{Codec, PixelLayout, Samples, codec_of, decode_frame, frame_fragments};
use crate::error::{DicomError, Result};
use crate::open::DicomFile;

/// Explicit VR Little Endian: the transfer syntax of decoded frames.
pub const EXPLICIT_VR_LITTLE_ENDIAN: &str = "1.2.840.10008.1.2.1";

/// One frame's bytes and the transfer syntax they are in.
#[derive(Debug, Clone)]
pub struct FrameBytes {
    pub bytes: Vec<u8>,
    /// The transfer syntax UID of `bytes`: the file's for an encapsulated frame as stored,
    /// Explicit VR Little Endian for native and decoded ones.
    pub transfer_syntax: String,
}

fn pixel_element(file: &DicomFile) -> Result<&InMemElement> {
    file.object()
        .get(tags::PIXEL_DATA)
        .ok_or_else(|| DicomError::NoPixelData(String::new()))
}

fn check_index(layout: &PixelLayout, index: u32) -> Result<()> {
    if index >= layout.frames {
        return Err(DicomError::FrameOutOfRange {
            frame: index,
            frames: layout.frames,
        });
    }
    Ok(())
}

/// Frame `index` (0-based) as stored: for an encapsulated transfer syntax its fragments
/// joined (a JPEG, JPEG-LS, JPEG 2000 or RLE bitstream, never decoded); for a native one its
/// bytes in little endian (big endian files are swapped by the parser), which is the
/// Explicit VR Little Endian encoding of the frame.
pub fn stored_frame(file: &DicomFile, index: u32) -> Result<FrameBytes> {
    let layout = PixelLayout::from_object(file.object())?;
    check_index(&layout, index)?;
    match pixel_element(file)?.value() {
        Value::PixelSequence(seq) => Ok(FrameBytes {
            bytes: frame_fragments(seq.fragments(), seq.offset_table(), layout.frames, index)
                .into_owned(),
            transfer_syntax: file.transfer_syntax().to_string(),
        }),
        Value::Primitive(p) => {
            let all = p.to_bytes();
            Ok(FrameBytes {
                bytes: native_slice(&all, &layout, index)?.into_owned(),
                transfer_syntax: EXPLICIT_VR_LITTLE_ENDIAN.to_string(),
            })
        }
        Value::Sequence(_) => Err(DicomError::Parse(
            "Pixel Data (7FE0,0010) holds a sequence of items, not pixels".into(),
        )),
    }
}

/// The bytes of frame `index` of native pixel data, whole bytes per frame: frames of 1-bit
/// data that do not start on a byte boundary are repacked from bit 0.
fn native_slice<'a>(all: &'a [u8], layout: &PixelLayout, index: u32) -> Result<Cow<'a, [u8]>> {
    let frame_bits = crate::decode::native_frame_bits(layout);
    let start_bit = frame_bits * index as usize;
    let end_bit = start_bit + frame_bits;
    if all.len() * 8 < end_bit {
        return Err(crate::decode::truncated_pixel_data(layout, all.len()));
    }
    if start_bit.is_multiple_of(8) {
        return Ok(Cow::Borrowed(&all[start_bit / 8..end_bit.div_ceil(8)]));
    }
    let mut out = vec![0u8; frame_bits.div_ceil(8)];
    for i in 0..frame_bits {
        let bit = start_bit + i;
        if (all[bit / 8] >> (bit % 8)) & 1 == 1 {
            out[i / 8] |= 1 << (i % 8);
        }
    }
    Ok(Cow::Owned(out))
}

/// Frame `index` decoded to native Explicit VR Little Endian bytes: stored values at the
/// file's Bits Allocated (8, 16 or 32; 1-bit data packed), interleaved samples. Colour
/// frames of a compressed transfer syntax come out as RGB (as `decode_frame` gives them),
/// so their Photometric Interpretation is then RGB whatever the header says.
pub fn decoded_frame(file: &DicomFile, index: u32) -> Result<FrameBytes> {
    let layout = PixelLayout::from_object(file.object())?;
    check_index(&layout, index)?;
    if codec_of(file.transfer_syntax())? == Codec::Native {
        return stored_frame(file, index);
    }
    let frame = decode_frame(file, index)?;
    let bytes = match (layout.bits_allocated, &frame.samples) {
        (1, s) => {
            let mut out = vec![0u8; s.len().div_ceil(8)];
            for i in 0..s.len() {
                if s.get(i) & 1 == 1 {
                    out[i / 8] |= 1 << (i % 8);
                }
            }
            out
        }
        (8, s) => (0..s.len()).map(|i| s.get(i) as u8).collect(),
        (16, Samples::U16(v)) => v.iter().flat_map(|x| x.to_le_bytes()).collect(),
        (16, Samples::I16(v)) => v.iter().flat_map(|x| x.to_le_bytes()).collect(),
        (_, Samples::U32(v)) => v.iter().flat_map(|x| x.to_le_bytes()).collect(),
        (_, Samples::I32(v)) => v.iter().flat_map(|x| x.to_le_bytes()).collect(),
        (bits, s) => {
            // A 16-bit decode of data allocated in 32 bits, or the reverse: write at the
            // allocated width.
            let mut out = Vec::with_capacity(s.len() * bits as usize / 8);
            for i in 0..s.len() {
                let v = s.get(i);
                if bits == 32 {
                    out.extend_from_slice(&(v as i32).to_le_bytes());
                } else {
                    out.extend_from_slice(&(v as i16).to_le_bytes());
                }
            }
            out
        }
    };
    Ok(FrameBytes {
        bytes,
        transfer_syntax: EXPLICIT_VR_LITTLE_ENDIAN.to_string(),
    })
}

/// Where the fragments of frame `index` of an encapsulated Pixel Data lie in `bytes`, a whole
/// Part 10 file, found without parsing the data set (for WADO-RS, which serves frames as
/// stored from the file as it was catalogued). `frames` is the object's Number of Frames.
/// `None` when the file is not encapsulated, does not walk cleanly (see
/// [`crate::pixel_data_span`]), or maps fragments to frames in a way only a full parse
/// resolves (several fragments per frame without an offset table): use [`stored_frame`]
/// then.
pub fn stored_frame_ranges(
    bytes: &[u8],
    frames: u32,
    index: u32,
) -> Option<Vec<std::ops::Range<usize>>> {
    let span = crate::pixel_data_span(bytes)?;
    let el = bytes.get(span.clone())?;
    // (7FE0,0010) OB (OW in some writers), reserved, undefined length: encapsulated,
    // explicit VR little endian.
    if el.len() < 12
        || el[..4] != [0xE0, 0x7F, 0x10, 0x00]
        || !matches!(&el[4..6], b"OB" | b"OW")
        || el[8..12] != [0xFF; 4]
    {
        return None;
    }
    let u32_at = |at: usize| -> Option<u32> {
        Some(u32::from_le_bytes(bytes.get(at..at + 4)?.try_into().ok()?))
    };
    let mut at = span.start + 12;
    let mut offsets = Vec::new();
    let mut fragments = Vec::new();
    let mut first = true;
    loop {
        let group_element = (
            u16::from_le_bytes(bytes.get(at..at + 2)?.try_into().ok()?),
            u16::from_le_bytes(bytes.get(at + 2..at + 4)?.try_into().ok()?),
        );
        let len = u32_at(at + 4)? as usize;
        at += 8;
        match group_element {
            (0xFFFE, 0xE0DD) => break,
            (0xFFFE, 0xE000) => {
                let end = at.checked_add(len)?;
                if end > span.end {
                    return None;
                }
                if first {
                    if !len.is_multiple_of(4) {
                        return None;
                    }
                    offsets = (0..len / 4)
                        .map(|k| u32_at(at + 4 * k))
                        .collect::<Option<Vec<u32>>>()?;
                    first = false;
                } else {
                    fragments.push(at..end);
                }
                at = end;
            }
            _ => return None,
        }
    }
    let (frames, index) = (frames.max(1) as usize, index as usize);
    if index >= frames || fragments.is_empty() {
        return None;
    }
    if frames == 1 {
        return Some(fragments);
    }
    if fragments.len() == frames {
        return Some(vec![fragments[index].clone()]);
    }
    if offsets.len() == frames {
        // Offsets count from the first fragment item's tag, 8 header bytes per item.
        let base = fragments[0].start - 8;
        let lo = offsets[index] as usize;
        let hi = offsets.get(index + 1).map_or(usize::MAX, |v| *v as usize);
        let picked: Vec<_> = fragments
            .iter()
            .filter(|f| (f.start - 8 - base) >= lo && (f.start - 8 - base) < hi)
            .cloned()
            .collect();
        return (!picked.is_empty()).then_some(picked);
    }
    None
}
