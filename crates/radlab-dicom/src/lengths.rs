//! A quick walk over the element headers of a file held in memory, before dicom-rs parses it.
//!
//! dicom-rs allocates (and zero-fills) a value's declared length before it reads the value, so
//! one damaged length field, such as 0xFFFFFFF0 in a text element or a pixel data fragment,
//! costs gigabytes of memory and seconds of page faults before the read fails at the end of the
//! data. Its object builder also recurses once per nested sequence. This walk follows the file
//! meta group as `FileMetaTable::read_from` reads it and the data set as dicom-rs's
//! `DataSetReader` does (same header decoders, same state machine, values skipped instead of
//! read), and checks that every defined length of an element, sequence, item or fragment fits
//! in the bytes that remain, and that sequences nest at most [`MAX_SEQUENCE_DEPTH`] deep.
//! Anything else it does not understand ends the walk and is left to dicom-rs to report.

use std::io::Read;

use dicom_core::dictionary::{DataDictionary, DataDictionaryEntry};
use dicom_core::header::{DataElementHeader, HasLength, Header, SequenceItemHeader};
use dicom_core::{Tag, VR};
use dicom_dictionary_std::{StandardDataDictionary, tags};
use dicom_encoding::decode::DecodeFrom;
use dicom_encoding::transfer_syntax::{Codec, DynDecoder};
use dicom_encoding::{TransferSyntax, TransferSyntaxIndex};
use dicom_transfer_syntax_registry::{TransferSyntaxRegistry, entries};

use crate::error::DicomError;

/// Deepest nesting of sequences accepted. Real objects (structured reports included) stay far
/// below this; deeper nesting only comes from damaged or hostile files.
pub const MAX_SEQUENCE_DEPTH: usize = 64;

/// Check the file meta group that starts at `DICM` (`from_dicm`), then the data set after it
/// in the transfer syntax the meta group names. `offset` is where `DICM` lies in the file, so
/// that errors give positions in the file.
pub(crate) fn check_part10(from_dicm: &[u8], offset: usize) -> Result<(), DicomError> {
    let Some((data_set_at, ts_uid)) = check_meta(from_dicm, offset)? else {
        return Ok(());
    };
    let Some(ts) = TransferSyntaxRegistry.get(ts_uid.trim_end_matches(['\0', ' '])) else {
        return Ok(()); // dicom-rs reports the unknown transfer syntax
    };
    if let Codec::Dataset(adapter) = ts.codec() {
        // Deflated Explicit VR Little Endian: walk the inflated data set, as far as it
        // inflates (dicom-rs parses up to the same point before it fails).
        let Some(adapter) = adapter else {
            return Ok(());
        };
        let mut inflated = Vec::new();
        let _ = adapter
            .adapt_reader(Box::new(&from_dicm[data_set_at..]))
            .read_to_end(&mut inflated);
        return Walker::new(&inflated, 0, 0, INFLATED, ts).map_or(Ok(()), |mut w| w.data_set());
    }
    check_data_set(from_dicm, data_set_at, offset, ts)
}

/// Where the top-level Pixel Data element of a Part 10 file held in `bytes` lies, header
/// included, when the file is not deflated and walks cleanly to its end: the bytes before
/// and after it then make a complete file without pixels, and the element can be copied as
/// it is into an object of the same transfer syntax. `None` in every other case.
pub fn pixel_data_span(bytes: &[u8]) -> Option<std::ops::Range<usize>> {
    let offset = if bytes.get(128..132) == Some(b"DICM") {
        128
    } else if bytes.get(..4) == Some(b"DICM") {
        0
    } else {
        return None;
    };
    let from_dicm = &bytes[offset..];
    let (data_set_at, ts_uid) = check_meta(from_dicm, offset).ok()??;
    let ts = TransferSyntaxRegistry.get(ts_uid.trim_end_matches(['\0', ' ']))?;
    if matches!(ts.codec(), Codec::Dataset(_)) {
        return None;
    }
    let mut walker = Walker::new(from_dicm, data_set_at, offset, "", ts)?;
    walker.data_set().ok()?;
    match walker.pixel_data {
        Some((start, Some(end))) if walker.complete && end <= from_dicm.len() => {
            Some(start + offset..end + offset)
        }
        _ => None,
    }
}

/// How positions in the inflated data set of a deflated file are named.
const INFLATED: &str = " of the inflated data set";

/// Check a data set in the given transfer syntax that starts at `start` of `bytes`.
pub(crate) fn check_data_set(
    bytes: &[u8],
    start: usize,
    offset: usize,
    ts: &TransferSyntax,
) -> Result<(), DicomError> {
    Walker::new(bytes, start, offset, "", ts).map_or(Ok(()), |mut w| w.data_set())
}

/// Walk the meta group as `FileMetaTable::read_from` does: `DICM`, (0002,0000) with a 4-byte
/// value, then elements until the group length is used up. Returns where the data set starts
/// and the transfer syntax UID, or `None` where dicom-rs will fail on its own.
fn check_meta(from_dicm: &[u8], offset: usize) -> Result<Option<(usize, String)>, DicomError> {
    let decoder = entries::EXPLICIT_VR_LITTLE_ENDIAN
        .decoder_for::<&[u8]>()
        .expect("explicit VR little endian has a decoder");
    let mut pos = 4; // after DICM
    let Some((header, header_len)) = decode_header(&decoder, from_dicm, pos) else {
        return Ok(None);
    };
    if header.tag() != Tag(0x0002, 0x0000) || header.length().0 != 4 {
        return Ok(None);
    }
    pos += header_len;
    let Some(group_length) = from_dicm.get(pos..pos + 4) else {
        return Ok(None);
    };
    let group_length = u32::from_le_bytes(group_length.try_into().expect("4 bytes"));
    pos += 4;
    let mut read: u32 = 0;
    let mut ts_uid = String::new();
    while read < group_length {
        let Some((header, header_len)) = decode_header(&decoder, from_dicm, pos) else {
            return Ok(None);
        };
        let Some(len) = header.length().get() else {
            return Ok(None);
        };
        pos += header_len;
        check_fits(from_dicm, header.tag(), pos, len, offset, "")?;
        if header.tag() == tags::TRANSFER_SYNTAX_UID {
            ts_uid = String::from_utf8_lossy(&from_dicm[pos..pos + len as usize]).into_owned();
        }
        pos += len as usize;
        read = read.saturating_add(header_len as u32).saturating_add(len);
    }
    Ok(Some((pos, ts_uid)))
}

fn decode_header<'a>(
    decoder: &DynDecoder<&'a [u8]>,
    bytes: &'a [u8],
    pos: usize,
) -> Option<(DataElementHeader, usize)> {
    let mut source = bytes.get(pos..)?;
    decoder.decode_header(&mut source).ok()
}

/// What dicom-rs's `DataSetReader` keeps on its stack of open sequences and items.
struct Open {
    sequence: bool,
    /// Where the sequence or item ends, when its length is defined.
    end: Option<usize>,
    /// Inside encapsulated Pixel Data: items are fragments, read as bytes.
    pixel_data: bool,
}

struct Walker<'a> {
    bytes: &'a [u8],
    /// Where the next byte is read.
    pos: usize,
    /// Where dicom-rs believes it is: it counts a binary value (US, SL, FD, AT, ...) whose
    /// length is not a multiple of the value size as read in full but reads only the whole
    /// values, so its position runs ahead of the bytes read. Ends of sequences and items with
    /// defined lengths are compared with this count, as dicom-rs does.
    logical: usize,
    offset: usize,
    /// Appended to positions in messages: which bytes they count.
    space: &'static str,
    decoder: DynDecoder<&'a [u8]>,
    /// The top-level Pixel Data element: where its header starts, and where it ends once
    /// the walk has passed it.
    pixel_data: Option<(usize, Option<usize>)>,
    /// The walk reached the end of the bytes with every sequence closed.
    complete: bool,
}

impl<'a> Walker<'a> {
    fn new(
        bytes: &'a [u8],
        pos: usize,
        offset: usize,
        space: &'static str,
        ts: &TransferSyntax,
    ) -> Option<Self> {
        Some(Walker {
            bytes,
            pos,
            logical: pos,
            offset,
            space,
            decoder: ts.decoder_for::<&[u8]>()?,
            pixel_data: None,
            complete: false,
        })
    }

    /// `DataSetReader::next`, token by token, skipping values.
    fn data_set(&mut self) -> Result<(), DicomError> {
        let mut open: Vec<Open> = Vec::new();
        let mut in_sequence = false;
        let mut delimiter_check_pending = false;
        // The next fragment is the Basic Offset Table.
        let mut first_fragment = false;
        loop {
            if open.is_empty()
                && let Some((start, end @ None)) = &mut self.pixel_data
                && self.pos > *start
            {
                *end = Some(self.pos);
            }
            if open.is_empty() && self.pos == self.bytes.len() {
                self.complete = true;
            }
            if delimiter_check_pending {
                if let Some(Open {
                    sequence,
                    end: Some(end),
                    ..
                }) = open.last()
                {
                    if *end == self.logical {
                        in_sequence = !*sequence;
                        open.pop();
                        continue;
                    }
                    if *end < self.logical {
                        return Ok(()); // dicom-rs: inconsistent sequence end
                    }
                }
                delimiter_check_pending = false;
            }

            if in_sequence {
                let Some(item) = self.item_header() else {
                    return Ok(()); // the end of the data, or not an item: dicom-rs decides
                };
                self.advance(8, 8);
                match item {
                    SequenceItemHeader::Item { len } => {
                        let Some(last) = open.last() else {
                            return Ok(());
                        };
                        let pixel_data = last.pixel_data;
                        let end = self.end_of(Tag(0xFFFE, 0xE000), len.get())?;
                        in_sequence = false;
                        open.push(Open {
                            sequence: false,
                            end,
                            pixel_data,
                        });
                        if len.0 == 0 {
                            delimiter_check_pending = true;
                        }
                    }
                    SequenceItemHeader::ItemDelimiter => {
                        open.pop();
                        in_sequence = true;
                        delimiter_check_pending = true;
                    }
                    SequenceItemHeader::SequenceDelimiter => {
                        open.pop();
                        in_sequence = false;
                        delimiter_check_pending = true;
                    }
                }
            } else if let Some(Open {
                sequence: false,
                end,
                pixel_data: true,
            }) = open.last()
            {
                // A fragment's bytes (or the offset table, read as whole u32 values); its
                // length was checked when the item opened.
                let Some(end) = *end else {
                    return Ok(()); // dicom-rs: undefined item length
                };
                let len = end - self.logical;
                if first_fragment && !len.is_multiple_of(4) {
                    return Ok(()); // dicom-rs reads this offset table in two parts; let it
                }
                first_fragment = false;
                self.advance(len, len);
                delimiter_check_pending = true;
            } else {
                let Some((header, header_len)) = decode_header(&self.decoder, self.bytes, self.pos)
                else {
                    return Ok(()); // the end of the data, or a broken header: dicom-rs decides
                };
                let tag = header.tag();
                if open.is_empty() && tag == tags::PIXEL_DATA && self.pixel_data.is_none() {
                    self.pixel_data = Some((self.pos, None));
                }
                self.advance(header_len, header_len);
                let len = header.length();
                if header.vr() == VR::SQ {
                    let end = self.end_of(tag, len.get())?;
                    self.push_sequence(&mut open, end, false)?;
                    in_sequence = true;
                    if len.0 == 0 {
                        delimiter_check_pending = true;
                    }
                } else if tag == Tag(0xFFFE, 0xE00D) {
                    if !open.is_empty() {
                        in_sequence = true;
                        open.pop();
                        delimiter_check_pending = true;
                    }
                } else if tag == tags::PIXEL_DATA && len.is_undefined() {
                    self.push_sequence(&mut open, None, true)?;
                    let Some(item) = self.item_header() else {
                        return Ok(());
                    };
                    self.advance(8, 8);
                    match item {
                        SequenceItemHeader::Item { len } => {
                            let end = self.end_of(Tag(0xFFFE, 0xE000), len.get())?;
                            first_fragment = len.0 != 0;
                            in_sequence = false;
                            open.push(Open {
                                sequence: false,
                                end,
                                pixel_data: true,
                            });
                            if len.0 == 0 {
                                delimiter_check_pending = true;
                            }
                        }
                        SequenceItemHeader::SequenceDelimiter => {
                            open.pop();
                            in_sequence = false;
                        }
                        SequenceItemHeader::ItemDelimiter => return Ok(()),
                    }
                } else if len.is_undefined() {
                    // dicom-rs reads any other element of undefined length as a sequence.
                    self.push_sequence(&mut open, None, false)?;
                    in_sequence = true;
                } else {
                    // A value: dicom-rs allocates `len` bytes, then reads them.
                    self.end_of(tag, len.get())?;
                    let len = len.0 as usize;
                    let size = match header.vr() {
                        VR::US | VR::OW | VR::SS => 2,
                        VR::AT | VR::FL | VR::OF | VR::SL | VR::UL | VR::OL => 4,
                        VR::FD | VR::OD | VR::SV | VR::UV | VR::OV => 8,
                        _ => 1,
                    };
                    self.advance(len - len % size, len);
                    delimiter_check_pending = true;
                }
            }
        }
    }

    fn advance(&mut self, read: usize, counted: usize) {
        self.pos += read;
        self.logical += counted;
    }

    /// The next item header (always 8 bytes, implicit VR), if there is one.
    fn item_header(&self) -> Option<SequenceItemHeader> {
        let mut source = self.bytes.get(self.pos..)?;
        self.decoder.decode_item_header(&mut source).ok()
    }

    /// Where (in dicom-rs's count) a value of `len` bytes from the current position ends, or
    /// an error when the data ends first.
    fn end_of(&self, tag: Tag, len: Option<u32>) -> Result<Option<usize>, DicomError> {
        let Some(len) = len else {
            return Ok(None);
        };
        check_fits(self.bytes, tag, self.pos, len, self.offset, self.space)?;
        Ok(Some(self.logical + len as usize))
    }

    fn push_sequence(
        &self,
        open: &mut Vec<Open>,
        end: Option<usize>,
        pixel_data: bool,
    ) -> Result<(), DicomError> {
        if open.iter().filter(|o| o.sequence).count() >= MAX_SEQUENCE_DEPTH {
            return Err(DicomError::Parse(format!(
                "sequences nest more than {MAX_SEQUENCE_DEPTH} deep at byte {}{}",
                self.pos + self.offset,
                self.space
            )));
        }
        open.push(Open {
            sequence: true,
            end,
            pixel_data,
        });
        Ok(())
    }
}

/// An error when a value of `len` bytes at `value_at` runs past the end of `bytes`.
/// `offset` is added to positions so that they count from the start of the file.
fn check_fits(
    bytes: &[u8],
    tag: Tag,
    value_at: usize,
    len: u32,
    offset: usize,
    space: &str,
) -> Result<(), DicomError> {
    let remaining = bytes.len().saturating_sub(value_at);
    if len as usize <= remaining {
        return Ok(());
    }
    Err(DicomError::Truncated(format!(
        "{} at byte {}{space} declares a length of {len} bytes but only {remaining} bytes follow",
        describe(tag),
        value_at + offset,
    )))
}

/// `(0010,0010) PatientName`, `(FFFE,E000) item`, or the bare tag of an unknown element.
fn describe(tag: Tag) -> String {
    if tag == Tag(0xFFFE, 0xE000) {
        return format!("{tag} item");
    }
    match StandardDataDictionary.by_tag(tag) {
        Some(entry) => format!("{tag} {}", entry.alias()),
        None => format!("{tag}"),
    }
}
