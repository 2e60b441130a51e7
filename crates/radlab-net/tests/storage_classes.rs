//! The storage SOP class table is the registry's, picked by `is_storage_class_name`: the
//! table is regenerated from dicom-dictionary-std's source (PS3.6 Table A-1) and compared.

use radlab_net::{STORAGE_SOP_CLASSES, is_storage_class, is_storage_class_name};

/// dicom-dictionary-std's `src/uids.rs` in the cargo registry, when it is there.
fn registry_source() -> Option<String> {
    let home = std::env::var_os("CARGO_HOME")
        .map(std::path::PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| std::path::Path::new(&h).join(".cargo")))?;
    let src = home.join("registry/src");
    for index in std::fs::read_dir(src).ok()?.flatten() {
        let file = index.path().join("dicom-dictionary-std-0.10.1/src/uids.rs");
        if let Ok(text) = std::fs::read_to_string(&file) {
            return Some(text);
        }
    }
    None
}

#[test]
fn the_table_is_the_registry_by_the_rule() {
    let Some(source) = registry_source() else {
        radlab_testkit::skip(
            "the_table_is_the_registry_by_the_rule",
            "dicom-dictionary-std 0.10.1's source is not in the cargo registry",
        );
        return;
    };
    let start = source
        .find("pub(crate) const SOP_CLASSES")
        .expect("SOP_CLASSES table");
    let end = start + source[start..].find("];").expect("end of table");
    let mut expected = Vec::new();
    for line in source[start..end].lines() {
        let Some(args) = line.trim().strip_prefix("E::new(") else {
            continue;
        };
        let fields: Vec<&str> = args.split('"').collect();
        // E::new("uid", "name", "alias", SopClass, retired),
        let (uid, name) = (fields[1], fields[3]);
        let retired = fields[6].contains("true");
        if is_storage_class_name(uid, name) {
            expected.push((uid.to_string(), name.to_string(), retired));
        }
    }
    let table: Vec<(String, String, bool)> = STORAGE_SOP_CLASSES
        .iter()
        .map(|(u, n, r)| (u.to_string(), n.to_string(), *r))
        .collect();
    assert_eq!(table, expected);
}

#[test]
fn radiograph_classes_are_in_and_others_out() {
    for uid in [
        "1.2.840.10008.5.1.4.1.1.1",     // CR
        "1.2.840.10008.5.1.4.1.1.1.1",   // DX for presentation
        "1.2.840.10008.5.1.4.1.1.1.1.1", // DX for processing
        "1.2.840.10008.5.1.4.1.1.1.2",   // MG for presentation
        "1.2.840.10008.5.1.4.1.1.7",     // Secondary Capture
        "1.2.840.10008.5.1.4.1.1.2",     // CT
        "1.2.840.10008.5.1.4.1.1.88.22", // Enhanced SR
        "1.2.840.10008.5.1.4.1.1.104.1", // Encapsulated PDF
    ] {
        assert!(is_storage_class(uid), "{uid}");
    }
    for uid in [
        "1.2.840.10008.1.1",             // Verification
        "1.2.840.10008.1.3.10",          // Media Storage Directory
        "1.2.840.10008.1.20.1",          // Storage Commitment
        "1.2.840.10008.5.1.4.1.2.2.1",   // Study Root FIND
        "1.2.840.10008.5.1.4.1.1.201.2", // Inventory FIND
    ] {
        assert!(!is_storage_class(uid), "{uid}");
    }
}
