//! DIMSE command sets (PS3.7 section 9 and annex E): group 0000 elements, always in
//! Implicit VR Little Endian. Only what the storage SCP needs is read and written.

/// Command Field values (PS3.7 E.1).
pub mod command {
    pub const C_STORE_RQ: u16 = 0x0001;
    pub const C_STORE_RSP: u16 = 0x8001;
    pub const C_ECHO_RQ: u16 = 0x0030;
    pub const C_ECHO_RSP: u16 = 0x8030;
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
            0x0800 => cmd.data_set_type = us()?,
            0x1000 => cmd.affected_sop_instance_uid = uid_text(value),
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

/// A response command set: C-ECHO-RSP or C-STORE-RSP.
#[derive(Debug, Clone)]
pub struct Response<'a> {
    pub command_field: u16,
    pub message_id_responded: u16,
    pub affected_sop_class_uid: &'a str,
    /// Absent for C-ECHO-RSP.
    pub affected_sop_instance_uid: Option<&'a str>,
    pub status: u16,
    /// Error Comment (0000,0902), at most 64 characters, for failure statuses.
    pub error_comment: Option<&'a str>,
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
    put(&mut body, 0x0800, &NO_DATA_SET.to_le_bytes());
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
    let mut out = Vec::with_capacity(body.len() + 12);
    put(&mut out, 0x0000, &(body.len() as u32).to_le_bytes());
    out.extend_from_slice(&body);
    out
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

    #[test]
    fn a_response_reads_back() {
        let bytes = encode_response(&Response {
            command_field: command::C_STORE_RSP,
            message_id_responded: 7,
            affected_sop_class_uid: "1.2.840.10008.5.1.4.1.1.1",
            affected_sop_instance_uid: Some("1.2.3"),
            status: status::CANNOT_UNDERSTAND,
            error_comment: Some("undecodable"),
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
    fn truncated_command_sets_are_errors() {
        let bytes = encode_response(&Response {
            command_field: command::C_ECHO_RSP,
            message_id_responded: 1,
            affected_sop_class_uid: crate::VERIFICATION,
            affected_sop_instance_uid: None,
            status: status::SUCCESS,
            error_comment: None,
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
