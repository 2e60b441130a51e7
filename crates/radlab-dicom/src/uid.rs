//! Deterministic DICOM UIDs in the `2.25.` (UUID-derived) form.

/// A UID of the form `2.25.<decimal UUID>`, derived from `namespace` and `content`.
///
/// The same inputs always give the same UID, so re-importing a file that needed generated
/// UIDs (an ACR-NEMA file without SOP Instance UID, a PNG wrapped as Secondary Capture) gives
/// the same identifiers and stays idempotent. The 128 bits are a BLAKE3 digest shaped as a
/// version-8 UUID (RFC 9562), as PS3.5 B.2 asks of `2.25.` UIDs.
pub fn derived_uid(namespace: &str, content: &[u8]) -> String {
    let mut hasher = blake3::Hasher::new();
    hasher.update(namespace.as_bytes());
    hasher.update(&[0]);
    hasher.update(content);
    let digest = hasher.finalize();
    let mut bytes = [0u8; 16];
    bytes.copy_from_slice(&digest.as_bytes()[..16]);
    bytes[6] = (bytes[6] & 0x0f) | 0x80; // version 8
    bytes[8] = (bytes[8] & 0x3f) | 0x80; // RFC 9562 variant
    format!("2.25.{}", u128::from_be_bytes(bytes))
}

/// The hex BLAKE3 digest used as the content hash of files and blobs.
pub fn content_hash(bytes: &[u8]) -> String {
    blake3::hash(bytes).to_hex().to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn derived_uids_are_stable_valid_and_distinct() {
        let a = derived_uid("sop", b"abc");
        assert_eq!(a, derived_uid("sop", b"abc"));
        assert_ne!(a, derived_uid("study", b"abc"));
        assert!(a.starts_with("2.25."));
        assert!(a.len() <= 64, "UIDs are at most 64 characters: {a}");
        assert!(a[5..].chars().all(|c| c.is_ascii_digit()));
        assert!(!a[5..].starts_with('0'));
    }
}
