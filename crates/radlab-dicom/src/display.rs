//! The greyscale display pipeline of PS3.3 C.11: Modality LUT, VOI LUT, then polarity.
//!
//! stored value -> Modality LUT (Rescale Slope/Intercept or Modality LUT Sequence)
//! -> VOI (a window with LINEAR, LINEAR_EXACT or SIGMOID, or a VOI LUT Sequence, or an
//! automatic window from the histogram when the file has none) -> 8-bit P-values, inverted
//! for MONOCHROME1 (after VOI, as the standard orders it) or a Presentation LUT Shape of
//! INVERSE. Colour frames (RGB, palette) bypass VOI.

use dicom_core::Tag;
use dicom_core::value::Value;
use dicom_dictionary_std::tags;
use dicom_object::{DefaultDicomObject, InMemDicomObject};
use serde::Serialize;

use crate::decode::{Frame, Samples};
use crate::error::{DicomError, Result};
use crate::info::{floats, int, text};
use crate::open::DicomFile;

/// The VOI LUT Function (0028,1056).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Default)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum VoiFunction {
    #[default]
    Linear,
    LinearExact,
    Sigmoid,
}

impl VoiFunction {
    pub fn parse(s: &str) -> Option<Self> {
        match s.trim().to_ascii_uppercase().as_str() {
            "LINEAR" => Some(VoiFunction::Linear),
            "LINEAR_EXACT" => Some(VoiFunction::LinearExact),
            "SIGMOID" => Some(VoiFunction::Sigmoid),
            _ => None,
        }
    }
}

/// A window in modality (rescaled) units.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Window {
    pub center: f64,
    pub width: f64,
    pub function: VoiFunction,
    /// Window Center & Width Explanation, when the file gives one.
    pub explanation: Option<String>,
}

impl Window {
    pub fn linear(center: f64, width: f64) -> Self {
        Window {
            center,
            width,
            function: VoiFunction::Linear,
            explanation: None,
        }
    }

    /// Map a modality value to [0, 1] per PS3.3 C.11.2.1.2 (output range normalised).
    pub fn apply(&self, x: f64) -> f64 {
        let (c, w) = (self.center, self.width);
        match self.function {
            // C.11.2.1.2.1 requires width >= 1 for LINEAR; files with rescaled float values
            // (RT images, dose maps) carry narrower windows, which only LINEAR_EXACT's
            // formula (the limit of LINEAR) renders meaningfully.
            VoiFunction::Linear if w >= 1.0 => {
                if x <= c - 0.5 - (w - 1.0) / 2.0 {
                    0.0
                } else if x > c - 0.5 + (w - 1.0) / 2.0 || w == 1.0 {
                    // (width 1 is a threshold at the centre)
                    1.0
                } else {
                    (x - (c - 0.5)) / (w - 1.0) + 0.5
                }
            }
            VoiFunction::Linear | VoiFunction::LinearExact => {
                let w = w.max(f64::MIN_POSITIVE);
                if x <= c - w / 2.0 {
                    0.0
                } else if x > c + w / 2.0 {
                    1.0
                } else {
                    (x - c) / w + 0.5
                }
            }
            VoiFunction::Sigmoid => {
                let w = w.max(f64::MIN_POSITIVE);
                1.0 / (1.0 + (-4.0 * (x - c) / w).exp())
            }
        }
    }
}

/// A LUT from a Modality or VOI LUT Sequence item.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct LookupTable {
    pub first_mapped: i64,
    pub bits_per_entry: u16,
    pub data: Vec<u16>,
    pub explanation: Option<String>,
}

impl LookupTable {
    fn lookup(&self, x: f64) -> u16 {
        let last = self.data.len() as i64 - 1;
        let i = (x.floor() as i64 - self.first_mapped).clamp(0, last);
        self.data[i as usize]
    }

    fn from_item(item: &InMemDicomObject, what: &'static str) -> Result<Self> {
        let bad = |detail: String| DicomError::Attribute {
            attribute: what,
            detail,
        };
        let descriptor = item
            .get(tags::LUT_DESCRIPTOR)
            .ok_or_else(|| bad("LUT Descriptor (0028,3002) is missing".into()))?;
        let desc: Vec<i64> = descriptor
            .to_multi_int::<i64>()
            .map_err(|e| bad(format!("LUT Descriptor: {e}")))?;
        let [entries, first, bits] = desc[..] else {
            return Err(bad(format!(
                "LUT Descriptor has {} values, 3 expected",
                desc.len()
            )));
        };
        let entries = if entries == 0 {
            65536
        } else {
            entries as usize
        };
        // The first value mapped is US or SS depending on the data; 16-bit two's complement
        // values above 32767 mean negative inputs when the image is signed.
        let first = if descriptor.vr() == dicom_core::VR::SS && first > 32767 {
            first - 65536
        } else {
            first
        };
        let data_elem = item
            .get(tags::LUT_DATA)
            .ok_or_else(|| bad("LUT Data (0028,3006) is missing".into()))?;
        let bytes = data_elem
            .to_bytes()
            .map_err(|e| bad(format!("LUT Data: {e}")))?;
        let data = lut_entries(&bytes, entries, bits).map_err(|e| bad(format!("LUT Data: {e}")))?;
        if !(1..=16).contains(&bits) {
            return Err(bad(format!("{bits} bits per LUT entry (expected 1 to 16)")));
        }
        Ok(LookupTable {
            first_mapped: first,
            bits_per_entry: bits as u16,
            data,
            explanation: item
                .get(tags::LUT_EXPLANATION)
                .and_then(|e| e.to_str().ok())
                .map(|s| s.trim().to_string()),
        })
    }
}

/// The Modality LUT stage.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub enum ModalityLut {
    Rescale { slope: f64, intercept: f64 },
    Table(LookupTable),
}

impl ModalityLut {
    pub fn apply(&self, stored: f64) -> f64 {
        match self {
            ModalityLut::Rescale { slope, intercept } => stored * slope + intercept,
            ModalityLut::Table(t) => t.lookup(stored) as f64,
        }
    }
}

/// How to choose the VOI transform for a rendering.
#[derive(Debug, Clone, PartialEq, Default)]
pub enum VoiChoice {
    /// The file's first window, else its first VOI LUT, else a window from the histogram.
    #[default]
    Default,
    /// An explicit window (modality units), e.g. from `--window C,W` or a viewer preset.
    Window(Window),
    /// The file's window number `n` (0-based).
    FileWindow(usize),
    /// The file's VOI LUT number `n` (0-based).
    FileLut(usize),
    /// A window from the histogram, ignoring what the file says.
    Auto,
    /// The full range of values in the frame.
    MinMax,
}

/// Palette Color lookup tables (PS3.3 C.7.6.3.1.5).
#[derive(Debug, Clone, PartialEq)]
pub struct Palette {
    pub first_mapped: i64,
    pub bits: u16,
    pub red: Vec<u16>,
    pub green: Vec<u16>,
    pub blue: Vec<u16>,
}

/// Everything of an object that the display of its frames depends on.
#[derive(Debug, Clone, PartialEq)]
pub struct DisplaySettings {
    pub photometric: String,
    pub modality_lut: ModalityLut,
    pub windows: Vec<Window>,
    pub voi_luts: Vec<LookupTable>,
    pub presentation_lut_shape: Option<String>,
    /// Pixel Padding Value and optional Range Limit, in stored values.
    pub padding: Option<(i64, Option<i64>)>,
    pub palette: Option<Palette>,
}

impl DisplaySettings {
    pub fn from_file(file: &DicomFile) -> Result<Self> {
        Self::from_object(file.object())
    }

    pub fn from_object(obj: &DefaultDicomObject) -> Result<Self> {
        let photometric = text(obj, tags::PHOTOMETRIC_INTERPRETATION)
            .map(|p| p.to_ascii_uppercase())
            .unwrap_or_else(|| "MONOCHROME2".into());
        let modality_lut = match first_item(obj, tags::MODALITY_LUT_SEQUENCE) {
            Some(item) => ModalityLut::Table(LookupTable::from_item(
                item,
                "Modality LUT Sequence (0028,3000)",
            )?),
            None => {
                let slope = floats(obj, tags::RESCALE_SLOPE)
                    .and_then(|v| v.first().copied())
                    .filter(|s| *s != 0.0)
                    .unwrap_or(1.0);
                let intercept = floats(obj, tags::RESCALE_INTERCEPT)
                    .and_then(|v| v.first().copied())
                    .unwrap_or(0.0);
                ModalityLut::Rescale { slope, intercept }
            }
        };
        let centers = floats(obj, tags::WINDOW_CENTER).unwrap_or_default();
        let widths = floats(obj, tags::WINDOW_WIDTH).unwrap_or_default();
        let function = text(obj, tags::VOILUT_FUNCTION)
            .and_then(|f| VoiFunction::parse(&f))
            .unwrap_or_default();
        let explanations: Vec<String> = obj
            .get(tags::WINDOW_CENTER_WIDTH_EXPLANATION)
            .and_then(|e| e.to_multi_str().ok().map(|v| v.to_vec()))
            .unwrap_or_default();
        let windows = centers
            .iter()
            .zip(&widths)
            .enumerate()
            .filter(|(_, (_, w))| **w > 0.0)
            .map(|(i, (c, w))| Window {
                center: *c,
                width: *w,
                function,
                explanation: explanations
                    .get(i)
                    .map(|s| s.trim().to_string())
                    .filter(|s| !s.is_empty()),
            })
            .collect();
        let voi_luts = match obj.get(tags::VOILUT_SEQUENCE).map(|e| e.value()) {
            Some(Value::Sequence(seq)) => seq
                .items()
                .iter()
                .map(|item| LookupTable::from_item(item, "VOI LUT Sequence (0028,3010)"))
                .collect::<Result<Vec<_>>>()?,
            _ => Vec::new(),
        };
        let signed = int(obj, tags::PIXEL_REPRESENTATION) == Some(1);
        let as_stored = |v: i64| if signed && v > 32767 { v - 65536 } else { v };
        let padding = int(obj, tags::PIXEL_PADDING_VALUE).map(|p| {
            (
                as_stored(p),
                int(obj, tags::PIXEL_PADDING_RANGE_LIMIT).map(as_stored),
            )
        });
        let palette = if photometric == "PALETTE COLOR" {
            Some(palette(obj)?)
        } else {
            None
        };
        Ok(DisplaySettings {
            photometric,
            modality_lut,
            windows,
            voi_luts,
            presentation_lut_shape: text(obj, tags::PRESENTATION_LUT_SHAPE)
                .map(|s| s.to_ascii_uppercase()),
            padding,
            palette,
        })
    }

    /// Whether the P-values are inverted: MONOCHROME1 (after VOI, per PS3.3 C.7.6.3.1.2), or
    /// a MONOCHROME2 image whose Presentation LUT Shape is INVERSE. A MONOCHROME1 image is
    /// inverted once even when it also says INVERSE, as DX images must (C.8.11.6.1.2).
    pub fn inverted(&self, frame_photometric: &str) -> bool {
        frame_photometric == "MONOCHROME1"
            || (frame_photometric == "MONOCHROME2"
                && self.presentation_lut_shape.as_deref() == Some("INVERSE"))
    }

    fn is_padding(&self, stored: i64) -> bool {
        match self.padding {
            Some((p, Some(limit))) => stored >= p.min(limit) && stored <= p.max(limit),
            Some((p, None)) => stored == p,
            None => false,
        }
    }
}

/// The first `entries` values of LUT data: one byte each when the table is 8-bit and stored
/// as bytes (OB, or US with 8-bit entries packed by some writers), else 16-bit words.
fn lut_entries(bytes: &[u8], entries: usize, bits: i64) -> std::result::Result<Vec<u16>, String> {
    let values: Vec<u16> = if bits <= 8 && bytes.len() == entries {
        bytes.iter().map(|b| *b as u16).collect()
    } else {
        bytes
            .chunks_exact(2)
            .map(|c| u16::from_le_bytes([c[0], c[1]]))
            .collect()
    };
    if values.len() < entries {
        return Err(format!(
            "{} entries, the descriptor says {entries}",
            values.len()
        ));
    }
    Ok(values[..entries].to_vec())
}

fn first_item(obj: &DefaultDicomObject, tag: Tag) -> Option<&InMemDicomObject> {
    match obj.get(tag)?.value() {
        Value::Sequence(seq) => seq.items().first(),
        _ => None,
    }
}

fn palette(obj: &DefaultDicomObject) -> Result<Palette> {
    let bad = |detail: String| DicomError::Attribute {
        attribute: "Palette Color Lookup Table (0028,1101-1203)",
        detail,
    };
    let descriptor = |tag| -> Result<Vec<i64>> {
        obj.get(tag)
            .ok_or_else(|| bad("a descriptor is missing".into()))?
            .to_multi_int::<i64>()
            .map_err(|e| bad(e.to_string()))
    };
    let data = |tag, entries: usize, bits: i64| -> Result<Vec<u16>> {
        let elem = obj.get(tag).ok_or_else(|| {
            bad("the table data is missing (segmented palettes are not supported)".into())
        })?;
        let bytes = elem.to_bytes().map_err(|e| bad(e.to_string()))?;
        lut_entries(&bytes, entries, bits).map_err(bad)
    };
    let red_desc = descriptor(tags::RED_PALETTE_COLOR_LOOKUP_TABLE_DESCRIPTOR)?;
    let [entries, first, bits] = red_desc[..] else {
        return Err(bad("the descriptor must have 3 values".into()));
    };
    let entries = if entries == 0 {
        65536
    } else {
        entries as usize
    };
    Ok(Palette {
        first_mapped: first,
        bits: bits as u16,
        red: data(tags::RED_PALETTE_COLOR_LOOKUP_TABLE_DATA, entries, bits)?,
        green: data(tags::GREEN_PALETTE_COLOR_LOOKUP_TABLE_DATA, entries, bits)?,
        blue: data(tags::BLUE_PALETTE_COLOR_LOOKUP_TABLE_DATA, entries, bits)?,
    })
}

/// An 8-bit image ready to encode: 1 (grey) or 3 (RGB) channels, row-major.
#[derive(Debug, Clone, PartialEq)]
pub struct Rendered {
    pub width: u32,
    pub height: u32,
    pub channels: u8,
    pub pixels: Vec<u8>,
}

/// The VOI transform actually applied, for display in tools and logs.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub enum AppliedVoi {
    Window(Window),
    Lut { index: usize },
    None,
}

/// Render a decoded frame to 8 bits.
pub fn render_frame(
    frame: &Frame,
    settings: &DisplaySettings,
    choice: &VoiChoice,
) -> Result<(Rendered, AppliedVoi)> {
    match frame.photometric.as_str() {
        "MONOCHROME1" | "MONOCHROME2" => render_grey(frame, settings, choice),
        "RGB" => Ok((render_rgb(frame), AppliedVoi::None)),
        "PALETTE COLOR" => {
            let palette = settings.palette.as_ref().ok_or_else(|| {
                DicomError::Unsupported("PALETTE COLOR without palette tables".into())
            })?;
            Ok((render_palette(frame, palette), AppliedVoi::None))
        }
        other => Err(DicomError::Unsupported(format!(
            "photometric interpretation {other}"
        ))),
    }
}

fn render_rgb(frame: &Frame) -> Rendered {
    let shift = frame.bits_stored.saturating_sub(8) as u32;
    let pixels = (0..frame.samples.len())
        .map(|i| (frame.samples.get(i) >> shift).clamp(0, 255) as u8)
        .collect();
    Rendered {
        width: frame.columns,
        height: frame.rows,
        channels: 3,
        pixels,
    }
}

fn render_palette(frame: &Frame, palette: &Palette) -> Rendered {
    let last = palette.red.len() as i64 - 1;
    let shift = palette.bits.saturating_sub(8) as u32;
    let mut pixels = Vec::with_capacity(frame.samples.len() * 3);
    for i in 0..frame.samples.len() {
        let idx = (frame.samples.get(i) - palette.first_mapped).clamp(0, last) as usize;
        for table in [&palette.red, &palette.green, &palette.blue] {
            pixels.push((table[idx] >> shift) as u8);
        }
    }
    Rendered {
        width: frame.columns,
        height: frame.rows,
        channels: 3,
        pixels,
    }
}

/// The VOI transform for a frame: the chosen one, or the file's default.
fn resolve_voi(
    frame: &Frame,
    settings: &DisplaySettings,
    choice: &VoiChoice,
) -> Result<AppliedVoi> {
    let voi = match choice {
        VoiChoice::Window(w) => AppliedVoi::Window(w.clone()),
        VoiChoice::FileWindow(i) => AppliedVoi::Window(settings.windows.get(*i).cloned().ok_or(
            DicomError::Attribute {
                attribute: "Window Center/Width (0028,1050/1051)",
                detail: format!(
                    "window {} requested, the file has {}",
                    i + 1,
                    settings.windows.len()
                ),
            },
        )?),
        VoiChoice::FileLut(i) => {
            if *i >= settings.voi_luts.len() {
                return Err(DicomError::Attribute {
                    attribute: "VOI LUT Sequence (0028,3010)",
                    detail: format!(
                        "LUT {} requested, the file has {}",
                        i + 1,
                        settings.voi_luts.len()
                    ),
                });
            }
            AppliedVoi::Lut { index: *i }
        }
        VoiChoice::Default => {
            if let Some(w) = settings.windows.first() {
                // A window that misses the image entirely (the whole frame one flat grey) is
                // a header defect; show the image with a histogram window instead.
                let (lo, hi) = modality_range(frame, settings, 0.0);
                if w.apply(lo) == w.apply(hi) {
                    tracing::warn!(
                        center = w.center,
                        width = w.width,
                        "the file's window does not overlap the pixel values; using a window \
                         from the histogram"
                    );
                    AppliedVoi::Window(auto_window(frame, settings))
                } else {
                    AppliedVoi::Window(w.clone())
                }
            } else if !settings.voi_luts.is_empty() {
                AppliedVoi::Lut { index: 0 }
            } else {
                AppliedVoi::Window(auto_window(frame, settings))
            }
        }
        VoiChoice::Auto => AppliedVoi::Window(auto_window(frame, settings)),
        VoiChoice::MinMax => AppliedVoi::Window(min_max_window(frame, settings)),
    };
    Ok(voi)
}

/// A window over the full range of modality values of the frame (padding excluded).
pub fn min_max_window(frame: &Frame, settings: &DisplaySettings) -> Window {
    let (lo, hi) = modality_range(frame, settings, 0.0);
    Window::linear((lo + hi) / 2.0 + 0.5, (hi - lo + 1.0).max(1.0))
}

/// A window from the histogram: the central 99% of the modality values, padding excluded,
/// so that collimator edges, markers and padding do not flatten the contrast.
pub fn auto_window(frame: &Frame, settings: &DisplaySettings) -> Window {
    let (lo, hi) = modality_range(frame, settings, 0.005);
    let mut w = Window::linear((lo + hi) / 2.0 + 0.5, (hi - lo + 1.0).max(1.0));
    w.explanation = Some("AUTO (0.5-99.5 percentile)".into());
    w
}

/// The `tail` and `1 - tail` quantiles of the modality values of a greyscale frame.
fn modality_range(frame: &Frame, settings: &DisplaySettings, tail: f64) -> (f64, f64) {
    let (min, max) = frame.samples.min_max();
    let span = (max - min) as usize + 1;
    let to_modality = |stored: i64| settings.modality_lut.apply(stored as f64);
    if span > 1 << 20 || (tail == 0.0 && settings.padding.is_none()) {
        let (a, b) = (to_modality(min), to_modality(max));
        return (a.min(b), a.max(b));
    }
    let mut counts = vec![0u64; span];
    fn count<T: Copy + Into<i64>>(values: &[T], min: i64, counts: &mut [u64]) {
        for v in values {
            counts[((*v).into() - min) as usize] += 1;
        }
    }
    match &frame.samples {
        Samples::U16(v) => count(v, min, &mut counts),
        Samples::I16(v) => count(v, min, &mut counts),
        Samples::U32(v) => count(v, min, &mut counts),
        Samples::I32(v) => count(v, min, &mut counts),
    }
    // Padding values (and a padding range) do not count.
    for (i, c) in counts.iter_mut().enumerate() {
        if settings.is_padding(min + i as i64) {
            *c = 0;
        }
    }
    let total: u64 = counts.iter().sum();
    if total == 0 {
        let (a, b) = (to_modality(min), to_modality(max));
        return (a.min(b), a.max(b));
    }
    let cut = (total as f64 * tail).floor() as u64;
    let mut acc = 0;
    let mut lo = min;
    for (i, c) in counts.iter().enumerate() {
        acc += c;
        if acc > cut {
            lo = min + i as i64;
            break;
        }
    }
    acc = 0;
    let mut hi = max;
    for (i, c) in counts.iter().enumerate().rev() {
        acc += c;
        if acc > cut {
            hi = min + i as i64;
            break;
        }
    }
    let (a, b) = (to_modality(lo), to_modality(hi));
    (a.min(b), a.max(b))
}

fn render_grey(
    frame: &Frame,
    settings: &DisplaySettings,
    choice: &VoiChoice,
) -> Result<(Rendered, AppliedVoi)> {
    let voi = resolve_voi(frame, settings, choice)?;
    let invert = settings.inverted(&frame.photometric);
    let to_p = |stored: i64| -> u8 {
        let m = settings.modality_lut.apply(stored as f64);
        let y = match &voi {
            AppliedVoi::Window(w) => w.apply(m),
            AppliedVoi::Lut { index } => {
                let lut = &settings.voi_luts[*index];
                lut.lookup(m) as f64 / ((1u32 << lut.bits_per_entry) - 1) as f64
            }
            AppliedVoi::None => m,
        };
        // Invert before quantising, and truncate as dcmtk does: the output then equals
        // dcmj2pnm's for the same window, pixel for pixel.
        let y = y.clamp(0.0, 1.0);
        ((if invert { 1.0 - y } else { y }) * 255.0) as u8
    };
    let pixels = match &frame.samples {
        Samples::U16(v) => map_with_table(v, |x| x as i64, &to_p),
        Samples::I16(v) => map_with_table(v, |x| x as i64, &to_p),
        Samples::U32(v) => v.iter().map(|x| to_p(*x as i64)).collect(),
        Samples::I32(v) => v.iter().map(|x| to_p(*x as i64)).collect(),
    };
    Ok((
        Rendered {
            width: frame.columns,
            height: frame.rows,
            channels: 1,
            pixels,
        },
        voi,
    ))
}

/// Map 16-bit samples through a table built once over the frame's value range.
fn map_with_table<T: Copy + Ord>(
    values: &[T],
    widen: impl Fn(T) -> i64,
    to_p: &impl Fn(i64) -> u8,
) -> Vec<u8> {
    let Some(min) = values.iter().copied().min() else {
        return Vec::new();
    };
    let max = values.iter().copied().max().unwrap_or(min);
    let (lo, hi) = (widen(min), widen(max));
    let table: Vec<u8> = (lo..=hi).map(to_p).collect();
    values
        .iter()
        .map(|v| table[(widen(*v) - lo) as usize])
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frame(values: Vec<u16>, photometric: &str) -> Frame {
        Frame {
            rows: 1,
            columns: values.len() as u32,
            samples_per_pixel: 1,
            bits_stored: 16,
            signed: false,
            photometric: photometric.into(),
            samples: Samples::U16(values),
        }
    }

    fn settings(photometric: &str) -> DisplaySettings {
        DisplaySettings {
            photometric: photometric.into(),
            modality_lut: ModalityLut::Rescale {
                slope: 1.0,
                intercept: 0.0,
            },
            windows: Vec::new(),
            voi_luts: Vec::new(),
            presentation_lut_shape: None,
            padding: None,
            palette: None,
        }
    }

    // PS3.3 C.11.2.1.2.1, worked by hand for center 2048, width 4096:
    // x <= 2047.5 - 2047.5 = 0 -> 0; x > 2047.5 + 2047.5 = 4095 -> 1;
    // x = 2047.5 -> ((2047.5 - 2047.5) / 4095 + 0.5) = 0.5.
    #[test]
    fn linear_window_follows_the_standard() {
        let w = Window::linear(2048.0, 4096.0);
        assert_eq!(w.apply(0.0), 0.0);
        assert_eq!(w.apply(4095.5), 1.0);
        assert!((w.apply(2047.5) - 0.5).abs() < 1e-12);
        assert!((w.apply(1.0) - (1.0 / 4095.0)).abs() < 1e-12);
        // Width 1 is a threshold at the centre.
        let t = Window::linear(100.0, 1.0);
        assert_eq!(t.apply(99.4), 0.0);
        assert_eq!(t.apply(99.6), 1.0);
    }

    #[test]
    fn linear_exact_and_sigmoid_follow_the_standard() {
        let e = Window {
            function: VoiFunction::LinearExact,
            ..Window::linear(100.0, 50.0)
        };
        assert_eq!(e.apply(75.0), 0.0);
        assert!((e.apply(100.0) - 0.5).abs() < 1e-12);
        assert!((e.apply(110.0) - 0.7).abs() < 1e-12);
        assert_eq!(e.apply(125.1), 1.0);
        let s = Window {
            function: VoiFunction::Sigmoid,
            ..Window::linear(100.0, 50.0)
        };
        assert!((s.apply(100.0) - 0.5).abs() < 1e-12);
        // y = 1 / (1 + exp(-4 (x - c) / w)) at x = c + w/4: 1 / (1 + e^-1)
        assert!((s.apply(112.5) - 1.0 / (1.0 + (-1.0f64).exp())).abs() < 1e-12);
        // A narrow LINEAR window (< 1, float modality units) uses the exact formula.
        let narrow = Window::linear(0.1, 0.2);
        assert!((narrow.apply(0.15) - 0.75).abs() < 1e-12);
    }

    #[test]
    fn monochrome1_is_inverted_after_voi_and_presentation_shape_is_honoured() {
        let f = frame(vec![0, 1000, 4095], "MONOCHROME1");
        let choice = VoiChoice::Window(Window::linear(2048.0, 4096.0));
        let (img, _) = render_frame(&f, &settings("MONOCHROME1"), &choice).unwrap();
        assert_eq!(img.pixels, vec![255, 192, 0]);
        let f2 = frame(vec![0, 1000, 4095], "MONOCHROME2");
        let (img2, _) = render_frame(&f2, &settings("MONOCHROME2"), &choice).unwrap();
        assert_eq!(img2.pixels, vec![0, 62, 255]);
        let mut inverse = settings("MONOCHROME2");
        inverse.presentation_lut_shape = Some("INVERSE".into());
        let (img3, _) = render_frame(&f2, &inverse, &choice).unwrap();
        assert_eq!(img3.pixels, vec![255, 192, 0]);
        // MONOCHROME1 that also says INVERSE (as DX requires) is inverted once.
        let mut mono1_inverse = settings("MONOCHROME1");
        mono1_inverse.presentation_lut_shape = Some("INVERSE".into());
        let (img4, _) = render_frame(&f, &mono1_inverse, &choice).unwrap();
        assert_eq!(img4.pixels, img.pixels);
    }

    #[test]
    fn rescale_and_voi_lut_sequence_apply_in_order() {
        let f = frame(vec![0, 10, 20], "MONOCHROME2");
        let mut s = settings("MONOCHROME2");
        s.modality_lut = ModalityLut::Rescale {
            slope: 2.0,
            intercept: -10.0,
        };
        // Modality values -10, 10, 30; the LUT maps 0..=3 -> 0, 1, 2, 3 (2 bits) from 9.
        s.voi_luts.push(LookupTable {
            first_mapped: 9,
            bits_per_entry: 2,
            data: vec![0, 1, 2, 3],
            explanation: None,
        });
        let (img, voi) = render_frame(&f, &s, &VoiChoice::Default).unwrap();
        assert_eq!(voi, AppliedVoi::Lut { index: 0 });
        // -10 clamps to entry 0; 10 is entry 1 (1/3); 30 clamps to entry 3.
        assert_eq!(img.pixels, vec![0, 85, 255]);
    }

    #[test]
    fn auto_window_ignores_padding_and_outliers() {
        let mut values = vec![0u16; 100]; // padding
        values.extend((0..1000).map(|i| 1000 + i as u16));
        values.push(60000); // a burned-in marker
        let f = frame(values, "MONOCHROME2");
        let mut s = settings("MONOCHROME2");
        s.padding = Some((0, None));
        let w = auto_window(&f, &s);
        assert!(w.center > 1400.0 && w.center < 1600.0, "{w:?}");
        assert!(w.width > 900.0 && w.width < 1100.0, "{w:?}");
    }

    #[test]
    fn a_window_that_misses_the_data_falls_back_to_the_histogram() {
        let f = frame((30000..31000).collect(), "MONOCHROME2");
        let mut s = settings("MONOCHROME2");
        s.windows.push(Window::linear(100.0, 50.0));
        let (img, voi) = render_frame(&f, &s, &VoiChoice::Default).unwrap();
        assert!(matches!(voi, AppliedVoi::Window(w) if w.center > 30000.0));
        assert!(img.pixels.iter().any(|p| *p < 50) && img.pixels.iter().any(|p| *p > 200));
    }
}
