//! DIMSE command sets (PS3.7 section 9 and annex E): group 0000 elements, always in
//! Implicit VR Little Endian. What the storage SCP and the SCU (echo, find, move, get) need is
//! read and written; [`encode_identifier`] and [`parse_identifier`] handle the flat
//! Implicit VR Little Endian identifiers of C-FIND and C-MOVE.

/// Command Field values (PS3.7 E.1).
pub mod command {
    pub const C_STORE_RQ: u16 = 0x0001;
    pub const C_STORE_RSP: u16 = 0x8001;
    pub const C_ECHO_RQ: u16 = 0x0030;
    pub const C_ECHO_RSP: u16 = 0x8030;
    pub const C_FIND_RQ: u16 = 0x0020;
    pub const C_FIND_RSP: u16 = 0x8020;
    pub const C_MOVE_RQ: u16 = 0x0021;
    pub const C_MOVE_RSP: u16 = 0x8021;
    pub const C_GET_RQ: u16 = 0x0010;
    pub const C_GET_RSP: u16 = 0x8010;
    /// C-CANCEL-RQ: has no response.
    pub const C_CANCEL_RQ: u16 = 0x0FFF;
}

/// Status values (PS3.7 annex C, PS3.4 B.2.3).
pub mod status {
    pub const SUCCESS: u16 = 0x0000;
    /// Refused: out of resources.
    pub const OUT_OF_RESOURCES: u16 = 0xA700;
    /// Error: data set does not match SOP class.
    pub const DATA_SET_MISMATCH: u16 = 0xA900;
    /// Error: cannot understand.
    pub const CANNOT_UNDERSTAND: u16 = 0xC000;
    /// Refused: SOP class not supported.
    pub const SOP_CLASS_NOT_SUPPORTED: u16 = 0x0122;
    /// Unrecognized operation.
    pub const UNRECOGNIZED_OPERATION: u16 = 0x0211;
    /// Pending (C-FIND matches, C-MOVE sub-operations continuing).
    pub const PENDING: u16 = 0xFF00;
    /// Pending, some optional keys not supported (C-FIND).
    pub const PENDING_WARNING: u16 = 0xFF01;
    /// Warning: sub-operations complete, one or more failures (C-MOVE, C-GET).
    pub const SUB_OPERATIONS_WITH_FAILURES: u16 = 0xB000;
    /// Refused: Move Destination unknown (C-MOVE).
    pub const MOVE_DESTINATION_UNKNOWN: u16 = 0xA801;
    /// Refused: out of resources, unable to perform sub-operations (C-MOVE).
    pub const UNABLE_TO_PERFORM_SUB_OPERATIONS: u16 = 0xA702;
    /// Error: identifier does not match SOP class (C-FIND, C-MOVE).
    pub const IDENTIFIER_MISMATCH: u16 = 0xA900;
    /// Failed: unable to process (C-FIND, C-MOVE).
    pub const UNABLE_TO_PROCESS: u16 = 0xC000;

    /// Whether `status` is one of the pending statuses.
    pub fn is_pending(status: u16) -> bool {
        status == PENDING || status == PENDING_WARNING
    }
}

/// Command Data Set Type value meaning "no data set follows".
pub const NO_DATA_SET: u16 = 0x0101;

/// The fields of a received command set that the SCP uses.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Command {
    pub command_field: u16,
    pub message_id: u16,
    pub affected_sop_class_uid: String,
    pub affected_sop_instance_uid: String,
    pub data_set_type: u16,
    /// Move Destination (0000,0600), in C-MOVE requests.
    pub move_destination: String,
    /// Message ID Being Responded To (0000,0120), in responses.
    pub message_id_responded: u16,
    /// Status (0000,0900), in responses.
    pub status: u16,
    /// Error Comment (0000,0902), in failure responses.
    pub error_comment: String,
    /// Number of Remaining / Completed / Failed / Warning Sub-operations (0000,1020-1023),
    /// in C-MOVE and C-GET responses.
    pub remaining: Option<u16>,
    pub completed: Option<u16>,
    pub failed: Option<u16>,
    pub warning: Option<u16>,
}

impl Command {
    pub fn has_data_set(&self) -> bool {
        self.data_set_type != NO_DATA_SET
    }
}

/// A command set that could not be read.
#[derive(Debug, thiserror::Error)]
#[error("malformed command set: {0}")]
pub struct MalformedCommand(pub &'static str);

/// Read a command set (Implicit VR Little Endian, group 0000 only).
pub fn parse_command(bytes: &[u8]) -> Result<Command, MalformedCommand> {
    let mut cmd = Command::default();
    let mut seen_field = false;
    let mut at = 0usize;
    while at < bytes.len() {
        let header = bytes
            .get(at..at + 8)
            .ok_or(MalformedCommand("truncated element header"))?;
        let group = u16::from_le_bytes([header[0], header[1]]);
        let element = u16::from_le_bytes([header[2], header[3]]);
        let len = u32::from_le_bytes([header[4], header[5], header[6], header[7]]) as usize;
        if group != 0x0000 {
            return Err(MalformedCommand("element outside group 0000"));
        }
        let value = bytes
            .get(at + 8..at + 8 + len)
            .ok_or(MalformedCommand("element longer than the command set"))?;
        let us = || -> Result<u16, MalformedCommand> {
            value
                .get(..2)
                .map(|v| u16::from_le_bytes([v[0], v[1]]))
                .ok_or(MalformedCommand("short US value"))
        };
        match element {
            0x0002 => cmd.affected_sop_class_uid = uid_text(value),
            0x0100 => {
                cmd.command_field = us()?;
                seen_field = true;
            }
            0x0110 => cmd.message_id = us()?,
            0x0120 => cmd.message_id_responded = us()?,
            0x0600 => cmd.move_destination = uid_text(value),
            0x0800 => cmd.data_set_type = us()?,
            0x0900 => cmd.status = us()?,
            0x0902 => cmd.error_comment = uid_text(value),
            0x1000 => cmd.affected_sop_instance_uid = uid_text(value),
            0x1020 => cmd.remaining = Some(us()?),
            0x1021 => cmd.completed = Some(us()?),
            0x1022 => cmd.failed = Some(us()?),
            0x1023 => cmd.warning = Some(us()?),
            _ => {}
        }
        at += 8 + len;
    }
    if !seen_field {
        return Err(MalformedCommand("no Command Field (0000,0100)"));
    }
    Ok(cmd)
}

fn uid_text(value: &[u8]) -> String {
    String::from_utf8_lossy(value)
        .trim_end_matches(['\0', ' '])
        .trim_start()
        .to_string()
}

/// A response command set: C-ECHO-RSP, C-STORE-RSP, C-FIND-RSP, C-MOVE-RSP.
#[derive(Debug, Clone, Default)]
pub struct Response<'a> {
    pub command_field: u16,
    pub message_id_responded: u16,
    pub affected_sop_class_uid: &'a str,
    /// Absent for C-ECHO-RSP.
    pub affected_sop_instance_uid: Option<&'a str>,
    pub status: u16,
    /// Error Comment (0000,0902), at most 64 characters, for failure statuses.
    pub error_comment: Option<&'a str>,
    /// Number of Remaining, Completed, Failed and Warning Sub-operations (C-MOVE-RSP).
    pub sub_operations: Option<[u16; 4]>,
    /// Whether a data set (an identifier) follows.
    pub has_data_set: bool,
}

/// Encode a response command set, Command Group Length first.
pub fn encode_response(r: &Response<'_>) -> Vec<u8> {
    let mut body = Vec::with_capacity(160);
    put(
        &mut body,
        0x0002,
        &padded(r.affected_sop_class_uid.as_bytes(), 0),
    );
    put(&mut body, 0x0100, &r.command_field.to_le_bytes());
    put(&mut body, 0x0120, &r.message_id_responded.to_le_bytes());
    let data_set_type = if r.has_data_set { 0x0000 } else { NO_DATA_SET };
    put(&mut body, 0x0800, &data_set_type.to_le_bytes());
    put(&mut body, 0x0900, &r.status.to_le_bytes());
    if let Some(comment) = r.error_comment {
        let text: String = comment
            .chars()
            .filter(|c| c.is_ascii() && !c.is_ascii_control() && *c != '\\')
            .take(64)
            .collect();
        put(&mut body, 0x0902, &padded(text.as_bytes(), b' '));
    }
    if let Some(uid) = r.affected_sop_instance_uid {
        put(&mut body, 0x1000, &padded(uid.as_bytes(), 0));
    }
    if let Some(counts) = r.sub_operations {
        // Number of Remaining Sub-operations only in pending responses.
        for (element, n) in (0x1020u16..).zip(counts) {
            if element != 0x1020 || status::is_pending(r.status) {
                put(&mut body, element, &n.to_le_bytes());
            }
        }
    }
    let mut out = Vec::with_capacity(body.len() + 12);
    put(&mut out, 0x0000, &(body.len() as u32).to_le_bytes());
    out.extend_from_slice(&body);
    out
}

/// A request command set: C-ECHO-RQ, C-FIND-RQ, C-MOVE-RQ, C-GET-RQ or C-STORE-RQ.
#[derive(Debug, Clone, Default)]
pub struct Request<'a> {
    pub command_field: u16,
    pub message_id: u16,
    pub affected_sop_class_uid: &'a str,
    /// Move Destination (0000,0600), for C-MOVE-RQ.
    pub move_destination: Option<&'a str>,
    /// Whether an identifier (data set) follows.
    pub has_data_set: bool,
    /// Affected SOP Instance UID (0000,1000), for C-STORE-RQ.
    pub affected_sop_instance_uid: Option<&'a str>,
    /// Move Originator AE Title and Message ID (0000,1030-1031), for the C-STORE-RQ of a
    /// C-MOVE sub-operation.
    pub move_originator: Option<(&'a str, u16)>,
}

/// Encode a request command set, Command Group Length first (priority medium, where the
/// command has one).
pub fn encode_request(r: &Request<'_>) -> Vec<u8> {
    let mut body = Vec::with_capacity(160);
    put(
        &mut body,
        0x0002,
        &padded(r.affected_sop_class_uid.as_bytes(), 0),
    );
    put(&mut body, 0x0100, &r.command_field.to_le_bytes());
    put(&mut body, 0x0110, &r.message_id.to_le_bytes());
    if let Some(dest) = r.move_destination {
        put(&mut body, 0x0600, &padded(dest.trim().as_bytes(), b' '));
    }
    if r.command_field != command::C_ECHO_RQ {
        put(&mut body, 0x0700, &0u16.to_le_bytes());
    }
    let data_set_type = if r.has_data_set { 0x0000 } else { NO_DATA_SET };
    put(&mut body, 0x0800, &data_set_type.to_le_bytes());
    if let Some(uid) = r.affected_sop_instance_uid {
        put(&mut body, 0x1000, &padded(uid.as_bytes(), 0));
    }
    if let Some((aet, id)) = r.move_originator {
        put(&mut body, 0x1030, &padded(aet.trim().as_bytes(), b' '));
        put(&mut body, 0x1031, &id.to_le_bytes());
    }
    let mut out = Vec::with_capacity(body.len() + 12);
    put(&mut out, 0x0000, &(body.len() as u32).to_le_bytes());
    out.extend_from_slice(&body);
    out
}

/// The largest P-DATA value for a peer that receives PDUs of at most `peer_max` bytes
/// (0: no limit announced, then `unlimited`): the PDU less its headers.
pub(crate) fn max_fragment(peer_max: u32, unlimited: usize) -> usize {
    match peer_max {
        0 => unlimited,
        n => (n as usize).saturating_sub(12).max(64),
    }
}

/// `bytes` (a command set or a data set) as P-DATA-TF PDUs of one value each, no value
/// longer than `max`, the last one marked; an empty message is one empty value.
pub(crate) fn pdata_fragments(
    pc_id: u8,
    kind: dicom_ul::pdu::PDataValueType,
    bytes: &[u8],
    max: usize,
) -> impl Iterator<Item = dicom_ul::Pdu> + '_ {
    let count = bytes.len().div_ceil(max.max(1)).max(1);
    (0..count).map(move |i| {
        let chunk = bytes
            .get(i * max..((i + 1) * max).min(bytes.len()))
            .unwrap_or(&[]);
        dicom_ul::Pdu::PData {
            data: vec![dicom_ul::pdu::PDataValue {
                presentation_context_id: pc_id,
                value_type: kind.clone(),
                is_last: i + 1 == count,
                data: chunk.to_vec(),
            }],
        }
    })
}

/// Value Representations whose values are padded with NUL rather than space.
const UI_TAGS: &[u32] = &[
    0x0008_0016, // SOP Class UID
    0x0008_0018, // SOP Instance UID
    0x0020_000D, // Study Instance UID
    0x0020_000E, // Series Instance UID
];

/// Encode a flat identifier (Implicit VR Little Endian): text values by tag, written in tag
/// order (UIDs padded with NUL, the rest with a space; an empty value asks for the key).
pub fn encode_identifier(keys: &[(u32, String)]) -> Vec<u8> {
    let mut keys: Vec<&(u32, String)> = keys.iter().collect();
    keys.sort_by_key(|(tag, _)| *tag);
    let mut out = Vec::new();
    for (tag, value) in keys {
        let pad = if UI_TAGS.contains(tag) { 0 } else { b' ' };
        let value = padded(value.as_bytes(), pad);
        out.extend_from_slice(&((tag >> 16) as u16).to_le_bytes());
        out.extend_from_slice(&((tag & 0xFFFF) as u16).to_le_bytes());
        out.extend_from_slice(&(value.len() as u32).to_le_bytes());
        out.extend_from_slice(&value);
    }
    out
}

/// Read an Implicit VR Little Endian identifier: the top-level elements' values as text
/// (trailing spaces and NULs removed), decoded in the identifier's Specific Character Set
/// (its first value: ISO_IR 100 Latin-1, ISO_IR 192 UTF-8 and the other single-byte sets
/// dicom-rs knows; the default repertoire, or a set it does not know, read as UTF-8 with
/// replacement characters); sequences are skipped.
pub fn parse_identifier(
    bytes: &[u8],
) -> Result<std::collections::BTreeMap<u32, String>, MalformedCommand> {
    let raw = identifier_values(bytes)?;
    let charset = raw.get(&0x0008_0005).map(|v| uid_text(v)).and_then(|code| {
        let first = code.split('\\').next().unwrap_or("").trim().to_string();
        dicom_encoding::text::SpecificCharacterSet::from_code(&first)
    });
    Ok(raw
        .into_iter()
        .map(|(tag, value)| {
            let text = match &charset {
                // UIDs, dates, numbers and codes are ASCII whatever the set.
                Some(cs) if !value.is_ascii() => {
                    use dicom_encoding::text::TextCodec as _;
                    cs.decode(&value)
                        .map(|t| t.trim_end_matches(['\0', ' ']).trim_start().to_string())
                        .unwrap_or_else(|_| uid_text(&value))
                }
                _ => uid_text(&value),
            };
            (tag, text)
        })
        .collect())
}

/// The top-level elements' raw values of an Implicit VR Little Endian identifier.
fn identifier_values(
    bytes: &[u8],
) -> Result<std::collections::BTreeMap<u32, Vec<u8>>, MalformedCommand> {
    let mut out = std::collections::BTreeMap::new();
    let mut at = 0usize;
    while at < bytes.len() {
        let (tag, len) = element_header(bytes, at)?;
        at += 8;
        if len == u32::MAX {
            at = skip_undefined(bytes, at, 0)?;
            continue;
        }
        let value = bytes
            .get(at..at + len as usize)
            .ok_or(MalformedCommand("element longer than the identifier"))?;
        out.insert(tag, value.to_vec());
        at += len as usize;
    }
    Ok(out)
}

fn element_header(bytes: &[u8], at: usize) -> Result<(u32, u32), MalformedCommand> {
    let h = bytes
        .get(at..at + 8)
        .ok_or(MalformedCommand("truncated element header"))?;
    let group = u16::from_le_bytes([h[0], h[1]]) as u32;
    let element = u16::from_le_bytes([h[2], h[3]]) as u32;
    let len = u32::from_le_bytes([h[4], h[5], h[6], h[7]]);
    Ok((group << 16 | element, len))
}

/// Skip the content of an undefined-length sequence or item from `at` to past its
/// delimiter.
fn skip_undefined(bytes: &[u8], mut at: usize, depth: u32) -> Result<usize, MalformedCommand> {
    if depth > 32 {
        return Err(MalformedCommand("sequences nested too deep"));
    }
    loop {
        let (tag, len) = element_header(bytes, at)?;
        at += 8;
        match tag {
            0xFFFE_E0DD | 0xFFFE_E00D => return Ok(at),
            _ if len == u32::MAX => at = skip_undefined(bytes, at, depth + 1)?,
            _ => {
                at = at
                    .checked_add(len as usize)
                    .filter(|end| *end <= bytes.len())
                    .ok_or(MalformedCommand("element longer than the identifier"))?
            }
        }
    }
}

fn padded(value: &[u8], pad: u8) -> Vec<u8> {
    let mut v = value.to_vec();
    if v.len() % 2 == 1 {
        v.push(pad);
    }
    v
}

fn put(out: &mut Vec<u8>, element: u16, value: &[u8]) {
    out.extend_from_slice(&0u16.to_le_bytes());
    out.extend_from_slice(&element.to_le_bytes());
    out.extend_from_slice(&(value.len() as u32).to_le_bytes());
    out.extend_from_slice(value);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn raw_element(tag: u32, value: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        out.extend_from_slice(&((tag >> 16) as u16).to_le_bytes());
        out.extend_from_slice(&((tag & 0xFFFF) as u16).to_le_bytes());
        out.extend_from_slice(&(value.len() as u32).to_le_bytes());
        out.extend_from_slice(value);
        out
    }

    #[test]
    fn identifiers_are_read_in_their_character_set() {
        let name = 0x0010_0010;
        // Latin-1, as many European PACS answer.
        let mut latin = raw_element(0x0008_0005, b"ISO_IR 100");
        latin.extend(raw_element(name, b"M\xfcller^J\xf6rg "));
        assert_eq!(parse_identifier(&latin).unwrap()[&name], "Müller^Jörg");
        // UTF-8, declared.
        let mut utf8 = raw_element(0x0008_0005, b"ISO_IR 192");
        utf8.extend(raw_element(name, "Nguyễn^Văn".as_bytes()));
        assert_eq!(parse_identifier(&utf8).unwrap()[&name], "Nguyễn^Văn");
        // No character set: ASCII as is.
        let plain = raw_element(name, b"DOE^JOHN");
        assert_eq!(parse_identifier(&plain).unwrap()[&name], "DOE^JOHN");
        // The first of several values chooses.
        let mut multi = raw_element(0x0008_0005, b"ISO_IR 100\\ISO 2022 IR 87");
        multi.extend(raw_element(name, b"\xc5sa"));
        assert_eq!(parse_identifier(&multi).unwrap()[&name], "Åsa");
    }

    #[test]
    fn a_response_reads_back() {
        let bytes = encode_response(&Response {
            command_field: command::C_STORE_RSP,
            message_id_responded: 7,
            affected_sop_class_uid: "1.2.840.10008.5.1.4.1.1.1",
            affected_sop_instance_uid: Some("1.2.3"),
            status: status::CANNOT_UNDERSTAND,
            error_comment: Some("undecodable"),
            ..Default::default()
        });
        // Group length covers everything after its own element.
        let len = u32::from_le_bytes(bytes[8..12].try_into().unwrap()) as usize;
        assert_eq!(len, bytes.len() - 12);
        let cmd = parse_command(&bytes).unwrap();
        assert_eq!(cmd.command_field, command::C_STORE_RSP);
        assert_eq!(cmd.affected_sop_class_uid, "1.2.840.10008.5.1.4.1.1.1");
        assert_eq!(cmd.affected_sop_instance_uid, "1.2.3");
        assert!(!cmd.has_data_set());
    }

    #[test]
    fn a_request_and_an_identifier_read_back() {
        let bytes = encode_request(&Request {
            command_field: command::C_MOVE_RQ,
            message_id: 3,
            affected_sop_class_uid: "1.2.840.10008.5.1.4.1.2.2.2",
            move_destination: Some("RADLAB"),
            has_data_set: true,
            ..Default::default()
        });
        let len = u32::from_le_bytes(bytes[8..12].try_into().unwrap()) as usize;
        assert_eq!(len, bytes.len() - 12);
        let cmd = parse_command(&bytes).unwrap();
        assert_eq!(cmd.command_field, command::C_MOVE_RQ);
        assert_eq!(cmd.message_id, 3);
        assert!(cmd.has_data_set());

        let id = encode_identifier(&[
            (0x0020_000D, "1.2.3".into()),
            (0x0008_0052, "STUDY".into()),
            (0x0008_0061, String::new()),
        ]);
        // Tag order, even lengths, UID padded with NUL.
        assert_eq!(&id[..4], &[0x08, 0, 0x52, 0]);
        assert_eq!(id.len() % 2, 0);
        let mut with_seq = id.clone();
        // An undefined-length sequence with one undefined-length item, then a last element.
        with_seq.extend_from_slice(&[0x08, 0, 0x15, 0x11, 0xFF, 0xFF, 0xFF, 0xFF]);
        with_seq.extend_from_slice(&[0xFE, 0xFF, 0x00, 0xE0, 0xFF, 0xFF, 0xFF, 0xFF]);
        with_seq.extend_from_slice(&[0x08, 0, 0x50, 0, 2, 0, 0, 0, b'A', b' ']);
        with_seq.extend_from_slice(&[0xFE, 0xFF, 0x0D, 0xE0, 0, 0, 0, 0]);
        with_seq.extend_from_slice(&[0xFE, 0xFF, 0xDD, 0xE0, 0, 0, 0, 0]);
        with_seq.extend_from_slice(&[0x10, 0, 0x20, 0, 2, 0, 0, 0, b'P', b' ']);
        let map = parse_identifier(&with_seq).unwrap();
        assert_eq!(map[&0x0020_000D], "1.2.3");
        assert_eq!(map[&0x0008_0052], "STUDY");
        assert_eq!(map[&0x0008_0061], "");
        assert_eq!(map[&0x0010_0020], "P");
        assert!(!map.contains_key(&0x0008_0050));
        for cut in 0..with_seq.len() {
            let _ = parse_identifier(&with_seq[..cut]);
        }
    }

    #[test]
    fn truncated_command_sets_are_errors() {
        let bytes = encode_response(&Response {
            command_field: command::C_ECHO_RSP,
            message_id_responded: 1,
            affected_sop_class_uid: crate::VERIFICATION,
            affected_sop_instance_uid: None,
            status: status::SUCCESS,
            error_comment: None,
            ..Default::default()
        });
        assert!(parse_command(&bytes).is_ok());
        // Never a panic, whatever the cut; a cut inside an element is an error.
        for cut in 0..bytes.len() {
            let _ = parse_command(&bytes[..cut]);
        }
        assert!(parse_command(&bytes[..bytes.len() - 1]).is_err());
        assert!(parse_command(&[0, 0]).is_err());
        assert!(parse_command(&[]).is_err());
    }
}
