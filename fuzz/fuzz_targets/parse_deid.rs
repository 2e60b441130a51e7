//! Bytes → parse → de-identify (Annex E basic profile) → encode → parse the output → verify
//! it against the input, in memory; then the same bytes through
//! `radlab_deid::batch::deidentify_file` (the path `radlab deid` takes for every file: the
//! Pixel Data span, the copy of the pixels, burned-in text routing, the atomic write) from a
//! file in /dev/shm. Errors are fine; panics, aborts, timeouts and memory blow-ups are bugs.
#![no_main]

use std::path::PathBuf;
use std::sync::LazyLock;

use libfuzzer_sys::fuzz_target;
use radlab_deid::batch::deidentify_file;
use radlab_deid::{DeidKey, DeidOption, Profile, verify_against};
use radlab_dicom::DicomFile;

static PROFILE: LazyLock<Profile> = LazyLock::new(|| {
    Profile::annex_e(
        DeidKey::from_secret(b"fuzz-key-0123456789"),
        Vec::<DeidOption>::new(),
    )
    .expect("the basic profile builds")
});

/// A scratch folder of this process (tmpfs where there is one).
static SCRATCH: LazyLock<PathBuf> = LazyLock::new(|| {
    let base = if std::path::Path::new("/dev/shm").is_dir() {
        PathBuf::from("/dev/shm")
    } else {
        std::env::temp_dir()
    };
    let dir = base.join(format!("radlab-fuzz-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("scratch folder");
    dir
});

fuzz_target!(|data: &[u8]| {
    if let Ok(file) = DicomFile::from_bytes(data) {
        let input = file.into_object();
        let mut output = input.clone();
        let _report = PROFILE.apply(&mut output);
        let mut bytes = Vec::new();
        if output.write_all(&mut bytes).is_ok()
            && let Ok(written) = DicomFile::from_bytes(&bytes)
        {
            let _findings = verify_against(&input, written.object(), &PROFILE);
        }
    }
    let input = SCRATCH.join("input.dcm");
    let out = SCRATCH.join("out");
    if std::fs::write(&input, data).is_ok() {
        let _outcome = deidentify_file(&input, &out, &PROFILE);
        let _ = std::fs::remove_dir_all(&out);
    }
});
