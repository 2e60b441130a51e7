//! Bytes → parse → de-identify (Annex E basic profile) → encode → parse the output → verify
//! it against the input: the path `radlab deid` takes for every file (see
//! `radlab_deid::batch::deidentify_file`), minus the disk. Errors are fine; panics, aborts,
//! timeouts and memory blow-ups are bugs.
#![no_main]

use std::sync::LazyLock;

use libfuzzer_sys::fuzz_target;
use radlab_deid::{DeidKey, DeidOption, Profile, verify_against};
use radlab_dicom::DicomFile;

static PROFILE: LazyLock<Profile> = LazyLock::new(|| {
    Profile::annex_e(
        DeidKey::from_secret(b"fuzz-key-0123456789"),
        Vec::<DeidOption>::new(),
    )
    .expect("the basic profile builds")
});

fuzz_target!(|data: &[u8]| {
    let Ok(file) = DicomFile::from_bytes(data) else {
        return;
    };
    let input = file.into_object();
    let mut output = input.clone();
    let _report = PROFILE.apply(&mut output);
    let mut bytes = Vec::new();
    if output.write_all(&mut bytes).is_err() {
        return;
    }
    if let Ok(written) = DicomFile::from_bytes(&bytes) {
        let _findings = verify_against(&input, written.object(), &PROFILE);
    }
});
