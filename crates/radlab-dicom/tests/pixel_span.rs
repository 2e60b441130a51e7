//! `pixel_data_span`: the bytes around the span are the same object without its pixels, and
//! the span is the Pixel Data element exactly as the full parse reads it.

use dicom_core::value::Value;
use dicom_dictionary_std::tags;
use radlab_dicom::{DicomFile, pixel_data_span};
use radlab_testkit::corpus;

#[test]
fn the_bytes_around_the_pixel_data_span_are_the_object_without_its_pixels() {
    let Some(corpus) = corpus("pixel_data_span") else {
        return;
    };
    let (mut with_span, mut checked) = (0, 0);
    for row in corpus.dicom_rows() {
        let bytes = std::fs::read(corpus.path(&row.path)).unwrap();
        let Ok(full) = DicomFile::from_bytes(&bytes) else {
            continue;
        };
        checked += 1;
        let Some(span) = pixel_data_span(&bytes) else {
            continue;
        };
        with_span += 1;
        let mut rest = bytes[..span.start].to_vec();
        rest.extend_from_slice(&bytes[span.end..]);
        let head = DicomFile::from_bytes(&rest).unwrap_or_else(|e| panic!("{}: {e}", row.path));
        assert!(head.object().get(tags::PIXEL_DATA).is_none());
        let full_tags: Vec<_> = full
            .object()
            .tags()
            .filter(|t| *t != tags::PIXEL_DATA)
            .collect();
        let head_tags: Vec<_> = head.object().tags().collect();
        assert_eq!(head_tags, full_tags, "{}", row.path);
        assert_eq!(head.transfer_syntax(), full.transfer_syntax());
        // The span re-read on its own, after the head, gives the same pixels.
        let pixel = full.object().get(tags::PIXEL_DATA).unwrap();
        match pixel.value() {
            Value::PixelSequence(seq) => {
                let last = seq.fragments().last().unwrap();
                // The last fragment ends right before the sequence delimiter item.
                let bytes = &bytes[..span.end];
                let tail = &bytes[span.end - 8 - last.len()..span.end - 8];
                assert!(tail == &last[..], "{}: last fragment differs", row.path);
            }
            Value::Primitive(p) => {
                let raw = p.to_bytes();
                assert!(
                    bytes[span.clone()].ends_with(&raw)
                        || full.transfer_syntax() == "1.2.840.10008.1.2.2",
                    "{}",
                    row.path
                );
            }
            Value::Sequence(_) => panic!("{}: pixel data as a sequence", row.path),
        }
    }
    assert!(checked >= 40, "{checked}");
    assert!(
        with_span >= 40,
        "only {with_span} of {checked} files have a span"
    );
}

/// `stored_frame_ranges` (fragments found without parsing, for WADO-RS) gives, for every
/// frame of every encapsulated corpus file where it answers, the bytes `stored_frame` gives
/// after a full parse; it answers for every single-frame encapsulated file.
#[test]
fn frames_cut_without_parsing_equal_frames_after_a_full_parse() {
    let Some(corpus) = corpus("stored_frame_ranges") else {
        return;
    };
    let (mut answered, mut single_frame) = (0, 0);
    for row in corpus.dicom_rows() {
        let bytes = std::fs::read(corpus.path(&row.path)).unwrap();
        let Ok(file) = DicomFile::from_bytes(&bytes) else {
            continue;
        };
        let Some(pixel) = file.object().get(tags::PIXEL_DATA) else {
            continue;
        };
        if !matches!(pixel.value(), Value::PixelSequence(_)) || pixel_data_span(&bytes).is_none() {
            continue;
        }
        let frames = radlab_dicom::InstanceInfo::from_file(&file)
            .image
            .map_or(1, |i| i.frames.max(1));
        for n in 0..frames {
            let Ok(full) = radlab_dicom::stored_frame(&file, n) else {
                continue;
            };
            match radlab_dicom::stored_frame_ranges(&bytes, frames, n) {
                Some(ranges) => {
                    let cut: Vec<u8> = ranges
                        .iter()
                        .flat_map(|r| bytes[r.clone()].to_vec())
                        .collect();
                    assert_eq!(cut, full.bytes, "{} frame {}", row.path, n + 1);
                    answered += 1;
                }
                None => assert!(frames > 1, "{}: a single frame is always cut", row.path),
            }
        }
        if frames == 1 {
            single_frame += 1;
        }
    }
    assert!(
        answered >= 10 && single_frame >= 5,
        "{answered} frames, {single_frame} files"
    );
}
