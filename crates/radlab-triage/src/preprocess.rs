//! The pixels triage looks at: deterministic from file to network input, with no random
//! transform anywhere (training makes its variants explicitly, by [`Orientation`] and
//! [`Grey::inverted`]).
//!
//! 1. [`load_grey`]: a DICOM file's first frame as displayed (radlab-dicom's PS3.3 C.11
//!    pipeline: rescale, the file's first window or a histogram window, MONOCHROME1
//!    inverted, 8 bits), or a PNG or JPEG picture, as 8-bit grey (colour by ITU-R BT.601
//!    luma in integers).
//! 2. [`Grey::letterboxed`]: the longest side scaled to the network's side, the aspect kept,
//!    the rest black; each output pixel the exact mean of the source area it covers.
//! 3. [`Grey::standardized`]: `f32` values with mean 0 and standard deviation 1 over the
//!    image (a constant image gives zeros), summed in a fixed order so that every run and
//!    every machine gives the same bits.

use std::path::Path;

/// An 8-bit greyscale image, row by row.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Grey {
    pub width: u32,
    pub height: u32,
    pub pixels: Vec<u8>,
}

/// Why pixels could not be had: a sentence naming what failed (no patient data).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct PixelError(pub String);

/// The largest picture side accepted (a guard against decompression bombs).
pub const MAX_PICTURE_SIDE: u32 = 20_000;

/// The first frame of a DICOM file as displayed, or a PNG or JPEG picture, as grey; the
/// file read once.
pub fn load_grey(path: &Path) -> Result<Grey, PixelError> {
    let bytes =
        std::fs::read(path).map_err(|e| PixelError(format!("cannot read the file: {e}")))?;
    match radlab_dicom::DicomFile::from_bytes(&bytes) {
        Ok(file) => grey_of_dicom(&file),
        Err(dicom_error) => {
            picture_of_bytes(&bytes)
                .map(|p| p.grey)
                .map_err(|e| match e.0.as_str() {
                    NOT_A_PICTURE => PixelError(format!(
                        "neither DICOM ({dicom_error}) nor a PNG or JPEG picture"
                    )),
                    _ => e,
                })
        }
    }
}

/// A parsed DICOM object's first frame as displayed, as grey.
pub fn grey_of_dicom(file: &radlab_dicom::DicomFile) -> Result<Grey, PixelError> {
    let (rendered, _) = radlab_dicom::render_file(file, &radlab_dicom::RenderOptions::default())
        .map_err(|e| PixelError(format!("pixels not decodable: {e}")))?;
    from_interleaved(
        rendered.width,
        rendered.height,
        rendered.channels,
        rendered.pixels,
    )
}

/// A PNG or JPEG picture as grey, and whether it has colour (a pixel whose channels differ).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Picture {
    pub grey: Grey,
    pub colour: bool,
}

const NOT_A_PICTURE: &str = "not a PNG or JPEG picture";

/// A PNG or JPEG picture held in memory (its size checked against [`MAX_PICTURE_SIDE`]
/// before decoding).
pub fn picture_of_bytes(bytes: &[u8]) -> Result<Picture, PixelError> {
    let reader = || {
        image::ImageReader::new(std::io::Cursor::new(bytes))
            .with_guessed_format()
            .map_err(|e| PixelError(format!("cannot read the file: {e}")))
    };
    let first = reader()?;
    if !matches!(
        first.format(),
        Some(image::ImageFormat::Png | image::ImageFormat::Jpeg)
    ) {
        return Err(PixelError(NOT_A_PICTURE.into()));
    }
    let (w, h) = first
        .into_dimensions()
        .map_err(|e| PixelError(format!("picture not decodable: {e}")))?;
    if w.max(h) > MAX_PICTURE_SIDE || w == 0 || h == 0 {
        return Err(PixelError(format!(
            "a {w} x {h} picture is outside 1 to {MAX_PICTURE_SIDE} pixels a side"
        )));
    }
    let picture = reader()?
        .decode()
        .map_err(|e| PixelError(format!("picture not decodable: {e}")))?;
    let (w, h) = (picture.width(), picture.height());
    match picture {
        // Grey already: BT.601 luma of (v, v, v) is v, so no colour round trip.
        image::DynamicImage::ImageLuma8(grey) => Ok(Picture {
            grey: Grey {
                width: w,
                height: h,
                pixels: grey.into_raw(),
            },
            colour: false,
        }),
        other => {
            let raw = other.to_rgb8().into_raw();
            let colour = raw.chunks_exact(3).any(|p| p[0] != p[1] || p[1] != p[2]);
            Ok(Picture {
                grey: from_interleaved(w, h, 3, raw)?,
                colour,
            })
        }
    }
}

/// Grey from 1 (grey) or 3 (RGB) interleaved 8-bit channels.
pub fn from_interleaved(
    width: u32,
    height: u32,
    channels: u8,
    pixels: Vec<u8>,
) -> Result<Grey, PixelError> {
    let n = width as usize * height as usize;
    match channels {
        1 if pixels.len() == n => Ok(Grey {
            width,
            height,
            pixels,
        }),
        3 if pixels.len() == n * 3 => Ok(Grey {
            width,
            height,
            pixels: pixels
                .chunks_exact(3)
                .map(|p| {
                    // BT.601 luma, integer weights summing to 2^16.
                    let y = 19_595 * u32::from(p[0])
                        + 38_470 * u32::from(p[1])
                        + 7_471 * u32::from(p[2]);
                    ((y + 32_768) >> 16) as u8
                })
                .collect(),
        }),
        _ => Err(PixelError(format!(
            "{channels} channel(s) and {} bytes for a {width} x {height} image",
            pixels.len()
        ))),
    }
}

/// One of the eight orientations of an image: a rotation clockwise by a multiple of 90
/// degrees, after a left-right mirror when `mirrored`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Orientation {
    /// 0, 90, 180 or 270.
    pub degrees: u16,
    pub mirrored: bool,
}

impl Orientation {
    /// The eight, upright first, in a fixed order (the network's class order).
    pub const ALL: [Orientation; 8] = [
        Orientation::new(0, false),
        Orientation::new(90, false),
        Orientation::new(180, false),
        Orientation::new(270, false),
        Orientation::new(0, true),
        Orientation::new(90, true),
        Orientation::new(180, true),
        Orientation::new(270, true),
    ];

    pub const fn new(degrees: u16, mirrored: bool) -> Orientation {
        Orientation { degrees, mirrored }
    }

    /// Its position in [`Orientation::ALL`].
    pub fn index(self) -> usize {
        usize::from(self.degrees / 90 % 4) + if self.mirrored { 4 } else { 0 }
    }

    /// The orientation that undoes this one (applied after it, gives the upright image).
    pub fn inverse(self) -> Orientation {
        if self.mirrored {
            // Mirror then rotate r: undone by rotating -r then mirroring, which is a mirror
            // followed by a rotation of r.
            self
        } else {
            Orientation::new((360 - self.degrees) % 360, false)
        }
    }

    /// A name for reports: `0`, `90`, ..., `mirrored 270`.
    pub fn name(self) -> String {
        if self.mirrored {
            format!("mirrored {}", self.degrees)
        } else {
            self.degrees.to_string()
        }
    }
}

impl Grey {
    /// The band of `count` rows from row `from` (both clamped to the image), full width.
    pub fn rows(&self, from: u32, count: u32) -> Grey {
        let from = from.min(self.height);
        let count = count.min(self.height - from);
        let w = self.width as usize;
        Grey {
            width: self.width,
            height: count,
            pixels: self.pixels[from as usize * w..(from + count) as usize * w].to_vec(),
        }
    }

    /// The top `share` (0 to 1) of the image's rows, at least one where it has any: a film
    /// of the upper chest, for an upright radiograph.
    pub fn top(&self, share: f64) -> Grey {
        let rows = (f64::from(self.height) * share.clamp(0.0, 1.0)).round() as u32;
        self.rows(0, rows.max(1))
    }

    /// This image in orientation `o` (mirrored left-right first, then rotated clockwise).
    pub fn oriented(&self, o: Orientation) -> Grey {
        let mut img = self.clone();
        if o.mirrored {
            for row in img.pixels.chunks_exact_mut(img.width as usize) {
                row.reverse();
            }
        }
        for _ in 0..(o.degrees / 90 % 4) {
            img = img.rotated_clockwise();
        }
        img
    }

    fn rotated_clockwise(&self) -> Grey {
        let (w, h) = (self.width as usize, self.height as usize);
        let mut out = vec![0u8; w * h];
        // Output is h wide and w high; output (x, y) comes from source (y, h - 1 - x).
        for y in 0..w {
            for x in 0..h {
                out[y * h + x] = self.pixels[(h - 1 - x) * w + y];
            }
        }
        Grey {
            width: self.height,
            height: self.width,
            pixels: out,
        }
    }

    /// The grey levels reversed (a radiograph shown with the wrong photometric
    /// interpretation).
    pub fn inverted(&self) -> Grey {
        Grey {
            width: self.width,
            height: self.height,
            pixels: self.pixels.iter().map(|v| 255 - v).collect(),
        }
    }

    /// A `side` x `side` image: this one scaled so its longest side is `side`, the aspect
    /// kept, centred, the margins black; each output pixel the mean of the source area it
    /// covers (area averaging, exact in rational arithmetic up to the final rounding), also
    /// when enlarging.
    pub fn letterboxed(&self, side: u32) -> Grey {
        self.scaled_to_fit(side).padded(side)
    }

    /// This image scaled by area averaging so its longest side is `side` (the aspect kept,
    /// each side at least one pixel): [`Grey::letterboxed`] without the margins.
    pub fn scaled_to_fit(&self, side: u32) -> Grey {
        let (w, h) = (self.width.max(1), self.height.max(1));
        let longest = w.max(h);
        let sw = ((u64::from(w) * u64::from(side) + u64::from(longest) / 2) / u64::from(longest))
            .max(1) as u32;
        let sh = ((u64::from(h) * u64::from(side) + u64::from(longest) / 2) / u64::from(longest))
            .max(1) as u32;
        self.area_resized(sw, sh)
    }

    /// This image centred on a black `side` x `side` square (it must fit).
    pub fn padded(&self, side: u32) -> Grey {
        let (sw, sh) = (self.width.min(side), self.height.min(side));
        let (x0, y0) = ((side - sw) / 2, (side - sh) / 2);
        let stride = self.width as usize;
        let mut out = vec![0u8; side as usize * side as usize];
        for y in 0..sh as usize {
            let dst = (y0 as usize + y) * side as usize + x0 as usize;
            out[dst..dst + sw as usize]
                .copy_from_slice(&self.pixels[y * stride..y * stride + sw as usize]);
        }
        Grey {
            width: side,
            height: side,
            pixels: out,
        }
    }

    /// Area-averaged resize to `nw` x `nh`: separable, each axis by the exact overlap of
    /// source and destination pixels, in integer arithmetic (weights in units of
    /// 1 / (old * new)).
    fn area_resized(&self, nw: u32, nh: u32) -> Grey {
        if self.pixels.is_empty() {
            return Grey {
                width: nw,
                height: nh,
                pixels: vec![0; nw as usize * nh as usize],
            };
        }
        let (w, h) = (self.width as usize, self.height as usize);
        let (nw, nh) = (nw as usize, nh as usize);
        let xw = axis_weights(w, nw);
        let yw = axis_weights(h, nh);
        // Vertical pass first, a whole source row at a time (each source row feeds at most
        // two destination rows): sums scaled by h, at most 255 h, which u32 holds for any
        // side this crate accepts. Then the horizontal pass over the nh summed rows. The
        // sums are exact integers, so the order of the passes does not change a bit.
        debug_assert!(h as u64 * 255 <= u64::from(u32::MAX));
        let total = (w as u64) * (h as u64);
        let mut column_sums = vec![0u32; w];
        let mut out = vec![0u8; nw * nh];
        for (y, taps) in yw.iter().enumerate() {
            column_sums.fill(0);
            for &(j, wt) in taps {
                let wt = wt as u32;
                let row = &self.pixels[j * w..(j + 1) * w];
                for (sum, &v) in column_sums.iter_mut().zip(row) {
                    *sum += u32::from(v) * wt;
                }
            }
            for (x, taps) in xw.iter().enumerate() {
                let sum: u64 = taps
                    .iter()
                    .map(|&(i, wt)| u64::from(column_sums[i]) * wt)
                    .sum();
                out[y * nw + x] = ((sum + total / 2) / total) as u8;
            }
        }
        Grey {
            width: nw as u32,
            height: nh as u32,
            pixels: out,
        }
    }

    /// Values with mean 0 and standard deviation 1 (zeros for a constant image), for the
    /// network; computed in f64 in pixel order, then rounded to f32.
    pub fn standardized(&self) -> Vec<f32> {
        let n = self.pixels.len().max(1) as f64;
        let mean = self.pixels.iter().map(|&v| f64::from(v)).sum::<f64>() / n;
        let var = self
            .pixels
            .iter()
            .map(|&v| (f64::from(v) - mean).powi(2))
            .sum::<f64>()
            / n;
        let sd = var.sqrt();
        if sd < 1e-9 {
            return vec![0.0; self.pixels.len()];
        }
        self.pixels
            .iter()
            .map(|&v| ((f64::from(v) - mean) / sd) as f32)
            .collect()
    }
}

/// For each destination pixel of an axis of `old` source pixels resized to `new`, the source
/// pixels it covers and their weights, in units where a destination pixel's weights sum to
/// `old` (source pixel i spans [i * new, (i + 1) * new), destination d spans
/// [d * old, (d + 1) * old)).
fn axis_weights(old: usize, new: usize) -> Vec<Vec<(usize, u64)>> {
    (0..new)
        .map(|d| {
            let (start, end) = (d * old, (d + 1) * old);
            let first = start / new;
            let last = (end - 1) / new;
            (first..=last.min(old - 1))
                .filter_map(|i| {
                    let lo = (i * new).max(start);
                    let hi = ((i + 1) * new).min(end);
                    (hi > lo).then_some((i, (hi - lo) as u64))
                })
                .collect()
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ramp(w: u32, h: u32) -> Grey {
        Grey {
            width: w,
            height: h,
            pixels: (0..w * h).map(|i| (i * 7 % 251) as u8).collect(),
        }
    }

    #[test]
    fn a_band_of_rows_and_the_top_share_stay_inside_the_image() {
        let g = ramp(5, 40);
        let band = g.rows(10, 4);
        assert_eq!((band.width, band.height), (5, 4));
        assert_eq!(band.pixels, g.pixels[50..70]);
        assert_eq!(g.rows(38, 9).height, 2);
        assert_eq!(g.rows(99, 3).height, 0);
        assert_eq!(g.top(0.5).pixels, g.pixels[..100]);
        assert_eq!(g.top(0.0).height, 1);
        assert_eq!(g.top(7.0).height, 40);
        let empty = Grey {
            width: 3,
            height: 0,
            pixels: Vec::new(),
        };
        assert_eq!(empty.top(0.5).height, 0);
    }

    #[test]
    fn orientations_form_the_dihedral_group() {
        let img = ramp(5, 3);
        for o in Orientation::ALL {
            assert_eq!(Orientation::ALL[o.index()], o);
            let turned = img.oriented(o);
            if o.degrees % 180 == 90 {
                assert_eq!((turned.width, turned.height), (3, 5));
            }
            assert_eq!(turned.oriented(o.inverse()), img, "{}", o.name());
        }
        // Distinct: the eight orientations of an asymmetric image all differ.
        let all: std::collections::BTreeSet<Vec<u8>> = Orientation::ALL
            .iter()
            .map(|&o| {
                let t = img.oriented(o);
                let mut key = vec![t.width as u8];
                key.extend(t.pixels);
                key
            })
            .collect();
        assert_eq!(all.len(), 8);
        // 90 degrees clockwise: the first column, read bottom to top, becomes the first row.
        let t = img.oriented(Orientation::new(90, false));
        assert_eq!(
            &t.pixels[..3],
            &[img.pixels[10], img.pixels[5], img.pixels[0]]
        );
    }

    #[test]
    fn area_averaging_is_exact_and_letterboxing_keeps_the_aspect() {
        // 4 x 2 down to 2 x 1: each output pixel the mean of a 2 x 2 block.
        let img = Grey {
            width: 4,
            height: 2,
            pixels: vec![0, 10, 20, 30, 40, 50, 60, 70],
        };
        let r = img.area_resized(2, 1);
        assert_eq!(r.pixels, vec![25, 45]);
        // A constant image stays constant at any size.
        let flat = Grey {
            width: 7,
            height: 3,
            pixels: vec![123; 21],
        };
        assert!(flat.area_resized(5, 2).pixels.iter().all(|&v| v == 123));
        assert!(flat.area_resized(11, 9).pixels.iter().all(|&v| v == 123));
        // Letterbox: 200 x 100 into 64: a 64 x 32 band centred, black above and below.
        let wide = Grey {
            width: 200,
            height: 100,
            pixels: vec![200; 20_000],
        };
        let l = wide.letterboxed(64);
        assert_eq!((l.width, l.height), (64, 64));
        assert!(l.pixels[..16 * 64].iter().all(|&v| v == 0));
        assert!(l.pixels[16 * 64..48 * 64].iter().all(|&v| v == 200));
        assert!(l.pixels[48 * 64..].iter().all(|&v| v == 0));
    }

    #[test]
    fn area_resize_equals_the_direct_double_sum() {
        // The separable passes against the definition: each output pixel the rounded exact
        // mean over the source, weighted by the overlap areas, shrinking and enlarging.
        for (w, h, nw, nh) in [(97, 61, 64, 40), (13, 29, 64, 64), (640, 480, 64, 48)] {
            let img = ramp(w, h);
            let got = img.area_resized(nw, nh);
            let xw = axis_weights(w as usize, nw as usize);
            let yw = axis_weights(h as usize, nh as usize);
            let total = u64::from(w) * u64::from(h);
            for (y, ytaps) in yw.iter().enumerate() {
                for (x, xtaps) in xw.iter().enumerate() {
                    let mut sum = 0u64;
                    for &(j, wy) in ytaps {
                        for &(i, wx) in xtaps {
                            sum += u64::from(img.pixels[j * w as usize + i]) * wx * wy;
                        }
                    }
                    let want = ((sum + total / 2) / total) as u8;
                    assert_eq!(
                        got.pixels[y * nw as usize + x],
                        want,
                        "{w}x{h} to {nw}x{nh}"
                    );
                }
            }
        }
    }

    #[test]
    fn standardized_values_and_colour_to_grey() {
        let img = ramp(16, 16);
        let v = img.standardized();
        let mean: f64 = v.iter().map(|&x| f64::from(x)).sum::<f64>() / v.len() as f64;
        let var: f64 = v
            .iter()
            .map(|&x| (f64::from(x) - mean).powi(2))
            .sum::<f64>()
            / v.len() as f64;
        assert!(mean.abs() < 1e-6 && (var - 1.0).abs() < 1e-5);
        assert!(
            Grey {
                width: 2,
                height: 1,
                pixels: vec![9, 9]
            }
            .standardized()
                == vec![0.0, 0.0]
        );
        let g = from_interleaved(2, 1, 3, vec![255, 255, 255, 255, 0, 0]).unwrap();
        assert_eq!(g.pixels, vec![255, 76]);
        assert!(from_interleaved(2, 2, 3, vec![0; 5]).is_err());
        assert_eq!(ramp(3, 3).inverted().inverted(), ramp(3, 3));
    }
}
