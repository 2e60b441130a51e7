//! RLE Lossless (PS3.5 Annex G): a 64-byte header of segment offsets, then one PackBits
//! segment per byte plane, most significant byte first, sample by sample.

use crate::decode::PixelLayout;
use crate::error::{DicomError, Result};

const CODEC: &str = "RLE";

/// Decode one RLE frame to native little-endian, interleaved bytes (Planar Configuration 0).
pub(crate) fn decode_rle_frame(data: &[u8], layout: &PixelLayout, index: u32) -> Result<Vec<u8>> {
    let err = |detail: String| DicomError::Codec {
        codec: CODEC,
        frame: index,
        detail,
    };
    if data.len() < 64 {
        return Err(err(format!(
            "the frame is {} bytes, shorter than the RLE header",
            data.len()
        )));
    }
    let header: Vec<u32> = data[..64]
        .chunks_exact(4)
        .map(|c| u32::from_le_bytes([c[0], c[1], c[2], c[3]]))
        .collect();
    let segments = header[0] as usize;
    let bytes_per_sample = (layout.bits_allocated as usize).div_ceil(8);
    let samples = layout.samples_per_pixel as usize;
    let expected = bytes_per_sample * samples;
    if segments != expected {
        return Err(err(format!(
            "{segments} segments, but {samples} sample(s) of {} bits need {expected}",
            layout.bits_allocated
        )));
    }
    let pixels = layout.rows as usize * layout.columns as usize;
    let mut out = vec![0u8; pixels * expected];
    for segment in 0..segments {
        let start = header[1 + segment] as usize;
        let end = if segment + 1 < segments {
            header[2 + segment] as usize
        } else {
            data.len()
        };
        if start < 64 || start > end || end > data.len() {
            return Err(err(format!(
                "segment {} has invalid offsets {start}..{end}",
                segment + 1
            )));
        }
        let plane = unpack_bits(&data[start..end], pixels)
            .map_err(|detail| err(format!("segment {}: {detail}", segment + 1)))?;
        // Segment order: sample 0 MSB .. LSB, sample 1 MSB .. LSB, ...
        let sample = segment / bytes_per_sample;
        let byte_in_sample = bytes_per_sample - 1 - segment % bytes_per_sample;
        let offset = sample * bytes_per_sample + byte_in_sample;
        for (i, b) in plane.into_iter().enumerate() {
            out[i * expected + offset] = b;
        }
    }
    Ok(out)
}

/// PackBits: n in 0..=127 copies n+1 literal bytes, n in -127..=-1 repeats the next byte
/// 1-n times, -128 is a no-op. Decoding stops once `len` bytes are out (segments are
/// padded to even length).
fn unpack_bits(src: &[u8], len: usize) -> std::result::Result<Vec<u8>, String> {
    let mut out = Vec::with_capacity(len);
    let mut i = 0;
    while out.len() < len {
        let Some(&control) = src.get(i) else {
            return Err(format!("ends after {} of {len} bytes", out.len()));
        };
        i += 1;
        let n = control as i8;
        if n >= 0 {
            let count = n as usize + 1;
            let literal = src
                .get(i..i + count)
                .ok_or_else(|| format!("literal run past the end after {} bytes", out.len()))?;
            out.extend_from_slice(literal);
            i += count;
        } else if n != -128 {
            let count = 1 - n as isize;
            let value = *src
                .get(i)
                .ok_or_else(|| format!("replicate run past the end after {} bytes", out.len()))?;
            out.extend(std::iter::repeat_n(value, count as usize));
            i += 1;
        }
    }
    out.truncate(len);
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn packbits_literal_and_replicate_runs() {
        // 3 literals, then 'z' four times, a no-op, one literal.
        let src = [2, b'a', b'b', b'c', (-3i8) as u8, b'z', 0x80, 0, b'q'];
        assert_eq!(unpack_bits(&src, 8).unwrap(), b"abczzzzq");
        assert!(unpack_bits(&src[..4], 8).is_err());
    }
}
