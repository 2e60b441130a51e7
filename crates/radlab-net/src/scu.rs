//! The SCU side: associations requested from a PACS for C-ECHO ([`echo`]), C-FIND in the
//! Study Root Query/Retrieve Information Model ([`find`]) and C-MOVE of one study to a
//! destination AE ([`move_study`]). The upper layer is dicom-ul's client; command sets and
//! the flat identifiers are encoded here ([`crate::dimse`]), always in Implicit VR Little
//! Endian (the one transfer syntax every PACS accepts for queries).

use std::collections::BTreeMap;
use std::net::TcpStream;
use std::time::Duration;

use dicom_ul::pdu::{PDataValue, PDataValueType, PresentationContextResultReason};
use dicom_ul::{ClientAssociation, ClientAssociationOptions, Pdu};

use crate::VERIFICATION;
use crate::dimse::{self, Command, Request, command, status};

/// Study Root Query/Retrieve Information Model - FIND.
pub const STUDY_ROOT_FIND: &str = "1.2.840.10008.5.1.4.1.2.2.1";
/// Study Root Query/Retrieve Information Model - MOVE.
pub const STUDY_ROOT_MOVE: &str = "1.2.840.10008.5.1.4.1.2.2.2";
/// Implicit VR Little Endian.
const IMPLICIT_VR_LE: &str = "1.2.840.10008.1.2";

/// The PACS we talk to, and who we are.
#[derive(Debug, Clone)]
pub struct Peer {
    pub host: String,
    pub port: u16,
    /// The PACS's AE title (called).
    pub called_ae_title: String,
    /// Ours (calling).
    pub calling_ae_title: String,
    /// Connection, read and write timeout. A C-MOVE answers pending statuses while it runs,
    /// so this bounds the silence between two of them, not the whole move.
    pub timeout: Duration,
    /// The largest PDU we receive.
    pub max_pdu: u32,
}

/// Why an operation did not complete.
#[derive(Debug, thiserror::Error)]
pub enum ScuError {
    /// No association (connection refused, A-ASSOCIATE-RJ, timeout).
    #[error("no association with {peer}: {why}")]
    Association { peer: String, why: String },
    /// The peer did not accept the SOP class.
    #[error("the peer did not accept {0}")]
    NotAccepted(&'static str),
    /// The association broke or the peer sent something we did not expect.
    #[error("{0}")]
    Protocol(String),
}

/// One C-FIND match: its keys' values as text, by tag.
pub type Identifier = BTreeMap<u32, String>;

/// The final C-MOVE response.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MoveOutcome {
    pub status: u16,
    pub completed: u16,
    pub failed: u16,
    pub warning: u16,
    pub error_comment: String,
}

impl MoveOutcome {
    /// Success with no failed sub-operation.
    pub fn is_success(&self) -> bool {
        self.status == status::SUCCESS && self.failed == 0
    }
}

fn associate(peer: &Peer, abstract_syntax: &'static str) -> Result<Assoc, ScuError> {
    let address = format!("{}:{}", peer.host, peer.port);
    let assoc = ClientAssociationOptions::new()
        .calling_ae_title(peer.calling_ae_title.trim().to_string())
        .called_ae_title(peer.called_ae_title.trim().to_string())
        .with_presentation_context(abstract_syntax, vec![IMPLICIT_VR_LE])
        .max_pdu_length(peer.max_pdu)
        .connection_timeout(peer.timeout)
        .read_timeout(peer.timeout)
        .write_timeout(peer.timeout)
        .establish_with(&address)
        .map_err(|e| ScuError::Association {
            peer: format!("{} at {address}", peer.called_ae_title.trim()),
            why: crate::scp::error_chain(&e),
        })?;
    let pc = assoc
        .presentation_contexts()
        .iter()
        .find(|pc| pc.reason == PresentationContextResultReason::Acceptance)
        .map(|pc| pc.id);
    let Some(pc_id) = pc else {
        let _ = assoc.abort();
        return Err(ScuError::NotAccepted(abstract_syntax));
    };
    Ok(Assoc {
        inner: Some(assoc),
        pc_id,
        next_message_id: 1,
    })
}

/// A requested association with one accepted presentation context; released on
/// [`Assoc::release`], aborted when dropped otherwise.
struct Assoc {
    inner: Option<ClientAssociation<TcpStream>>,
    pc_id: u8,
    next_message_id: u16,
}

impl Drop for Assoc {
    fn drop(&mut self) {
        if let Some(a) = self.inner.take() {
            let _ = a.abort();
        }
    }
}

impl Assoc {
    fn assoc(&mut self) -> &mut ClientAssociation<TcpStream> {
        self.inner.as_mut().expect("live association")
    }

    fn release(mut self) {
        if let Some(a) = self.inner.take() {
            let _ = a.release();
        }
    }

    /// Send one message: command set and, when given, its identifier.
    fn send(
        &mut self,
        command_field: u16,
        sop_class: &str,
        move_destination: Option<&str>,
        identifier: Option<&[u8]>,
    ) -> Result<u16, ScuError> {
        let message_id = self.next_message_id;
        self.next_message_id = self.next_message_id.wrapping_add(1).max(1);
        let cmd = dimse::encode_request(&Request {
            command_field,
            message_id,
            affected_sop_class_uid: sop_class,
            move_destination,
            has_data_set: identifier.is_some(),
            ..Default::default()
        });
        let pc_id = self.pc_id;
        self.send_fragments(pc_id, PDataValueType::Command, &cmd)?;
        if let Some(id) = identifier {
            self.send_fragments(pc_id, PDataValueType::Data, id)?;
        }
        Ok(message_id)
    }

    fn send_fragments(
        &mut self,
        pc_id: u8,
        kind: PDataValueType,
        bytes: &[u8],
    ) -> Result<(), ScuError> {
        let max = match self.assoc().acceptor_max_pdu_length() {
            0 => 16_384,
            n => (n as usize).saturating_sub(12).max(64),
        };
        let chunks: Vec<&[u8]> = if bytes.is_empty() {
            vec![bytes]
        } else {
            bytes.chunks(max).collect()
        };
        let last = chunks.len() - 1;
        for (i, chunk) in chunks.into_iter().enumerate() {
            self.assoc()
                .send(&Pdu::PData {
                    data: vec![PDataValue {
                        presentation_context_id: pc_id,
                        value_type: kind.clone(),
                        is_last: i == last,
                        data: chunk.to_vec(),
                    }],
                })
                .map_err(|e| ScuError::Protocol(format!("cannot send: {e}")))?;
        }
        Ok(())
    }

    /// Receive one message: the command set and its data set, if any.
    fn receive(&mut self) -> Result<(Command, Option<Vec<u8>>), ScuError> {
        let mut command_bytes = Vec::new();
        let mut data = Vec::new();
        let mut cmd: Option<Command> = None;
        loop {
            let pdu = self.assoc().receive().map_err(|e| {
                ScuError::Protocol(format!(
                    "the association broke: {}",
                    crate::scp::error_chain(&e)
                ))
            })?;
            let values = match pdu {
                Pdu::PData { data } => data,
                Pdu::AbortRQ { .. } => {
                    self.inner = None;
                    return Err(ScuError::Protocol(
                        "the peer aborted the association".into(),
                    ));
                }
                Pdu::ReleaseRQ => {
                    let _ = self.assoc().send(&Pdu::ReleaseRP);
                    self.inner = None;
                    return Err(ScuError::Protocol(
                        "the peer released the association mid-operation".into(),
                    ));
                }
                other => {
                    return Err(ScuError::Protocol(format!(
                        "unexpected {}",
                        crate::scp::pdu_name(&other)
                    )));
                }
            };
            for value in values {
                match value.value_type {
                    PDataValueType::Command => {
                        if cmd.is_some() {
                            return Err(ScuError::Protocol(
                                "a command arrived before the data set".into(),
                            ));
                        }
                        command_bytes.extend_from_slice(&value.data);
                        if value.is_last {
                            let parsed = dimse::parse_command(&command_bytes)
                                .map_err(|e| ScuError::Protocol(e.to_string()))?;
                            if !parsed.has_data_set() {
                                return Ok((parsed, None));
                            }
                            cmd = Some(parsed);
                        }
                    }
                    PDataValueType::Data => {
                        if cmd.is_none() {
                            return Err(ScuError::Protocol(
                                "a data set arrived without a command".into(),
                            ));
                        }
                        data.extend_from_slice(&value.data);
                        if value.is_last {
                            return Ok((cmd.take().expect("checked"), Some(data)));
                        }
                    }
                }
            }
        }
    }
}

/// C-ECHO: the status of the response (0000 when the peer is there).
pub fn echo(peer: &Peer) -> Result<u16, ScuError> {
    let mut a = associate(peer, VERIFICATION)?;
    a.send(command::C_ECHO_RQ, VERIFICATION, None, None)?;
    let (rsp, _) = a.receive()?;
    if rsp.command_field != command::C_ECHO_RSP {
        return Err(ScuError::Protocol(format!(
            "expected C-ECHO-RSP, got command 0x{:04X}",
            rsp.command_field
        )));
    }
    a.release();
    Ok(rsp.status)
}

/// C-FIND (Study Root): the matches of `keys` (tags with values to match, empty values
/// asking for the key), Query/Retrieve Level `level` (`STUDY`, `SERIES`).
pub fn find(peer: &Peer, level: &str, keys: &[(u32, String)]) -> Result<Vec<Identifier>, ScuError> {
    let mut keys = keys.to_vec();
    keys.retain(|(tag, _)| *tag != 0x0008_0052);
    keys.push((0x0008_0052, level.to_string()));
    let identifier = dimse::encode_identifier(&keys);
    let mut a = associate(peer, STUDY_ROOT_FIND)?;
    a.send(command::C_FIND_RQ, STUDY_ROOT_FIND, None, Some(&identifier))?;
    let mut matches = Vec::new();
    loop {
        let (rsp, data) = a.receive()?;
        if rsp.command_field != command::C_FIND_RSP {
            return Err(ScuError::Protocol(format!(
                "expected C-FIND-RSP, got command 0x{:04X}",
                rsp.command_field
            )));
        }
        if status::is_pending(rsp.status) {
            let data = data.ok_or_else(|| {
                ScuError::Protocol("a pending C-FIND-RSP without an identifier".into())
            })?;
            matches.push(
                dimse::parse_identifier(&data).map_err(|e| ScuError::Protocol(e.to_string()))?,
            );
            continue;
        }
        if rsp.status != status::SUCCESS {
            return Err(ScuError::Protocol(format!(
                "C-FIND failed with status 0x{:04X}{}",
                rsp.status,
                comment(&rsp.error_comment)
            )));
        }
        break;
    }
    a.release();
    Ok(matches)
}

/// C-MOVE (Study Root) of one study to `destination`; `progress` hears each pending
/// response's (remaining, completed, failed) counts.
pub fn move_study(
    peer: &Peer,
    destination: &str,
    study_instance_uid: &str,
    progress: &mut dyn FnMut(u16, u16, u16),
) -> Result<MoveOutcome, ScuError> {
    let identifier = dimse::encode_identifier(&[
        (0x0008_0052, "STUDY".into()),
        (0x0020_000D, study_instance_uid.to_string()),
    ]);
    let mut a = associate(peer, STUDY_ROOT_MOVE)?;
    a.send(
        command::C_MOVE_RQ,
        STUDY_ROOT_MOVE,
        Some(destination),
        Some(&identifier),
    )?;
    loop {
        let (rsp, _) = a.receive()?;
        if rsp.command_field != command::C_MOVE_RSP {
            return Err(ScuError::Protocol(format!(
                "expected C-MOVE-RSP, got command 0x{:04X}",
                rsp.command_field
            )));
        }
        if status::is_pending(rsp.status) {
            progress(
                rsp.remaining.unwrap_or(0),
                rsp.completed.unwrap_or(0),
                rsp.failed.unwrap_or(0),
            );
            continue;
        }
        a.release();
        return Ok(MoveOutcome {
            status: rsp.status,
            completed: rsp.completed.unwrap_or(0),
            failed: rsp.failed.unwrap_or(0),
            warning: rsp.warning.unwrap_or(0),
            error_comment: rsp.error_comment,
        });
    }
}

/// An association for C-STORE requests (the sub-operations of a C-MOVE our SCP answers).
pub struct StoreScu {
    assoc: Assoc,
    /// Accepted contexts: (id, SOP class, the objects' own transfer syntax, the one
    /// accepted).
    contexts: Vec<(u8, String, String, String)>,
}

/// Explicit VR Little Endian.
const EXPLICIT_VR_LE: &str = "1.2.840.10008.1.2.1";

impl StoreScu {
    /// Request an association proposing, for each (SOP class, transfer syntax) pair, a
    /// presentation context with that transfer syntax alone (so the object is sent as it is
    /// stored), and for the uncompressed little endian ones a second context with the other
    /// one (the object re-encoded if only that is accepted). At most 128 contexts.
    pub fn open(peer: &Peer, pairs: &[(String, String)]) -> Result<StoreScu, ScuError> {
        let address = format!("{}:{}", peer.host, peer.port);
        let mut options = ClientAssociationOptions::new()
            .calling_ae_title(peer.calling_ae_title.trim().to_string())
            .called_ae_title(peer.called_ae_title.trim().to_string())
            .max_pdu_length(peer.max_pdu)
            .connection_timeout(peer.timeout)
            .read_timeout(peer.timeout)
            .write_timeout(peer.timeout);
        // (SOP class, own transfer syntax, proposed transfer syntax), in context id order.
        let mut proposed: Vec<(&str, &str, &str)> = Vec::new();
        for (class, ts) in pairs {
            proposed.push((class, ts, ts));
            match ts.as_str() {
                IMPLICIT_VR_LE => proposed.push((class, ts, EXPLICIT_VR_LE)),
                EXPLICIT_VR_LE => proposed.push((class, ts, IMPLICIT_VR_LE)),
                _ => {}
            }
        }
        proposed.truncate(128);
        for (class, _, ts) in &proposed {
            options = options.with_presentation_context(class.to_string(), vec![ts.to_string()]);
        }
        let assoc = options
            .establish_with(&address)
            .map_err(|e| ScuError::Association {
                peer: format!("{} at {address}", peer.called_ae_title.trim()),
                why: crate::scp::error_chain(&e),
            })?;
        let contexts = assoc
            .presentation_contexts()
            .iter()
            .filter(|pc| pc.reason == PresentationContextResultReason::Acceptance)
            .filter_map(|pc| {
                let (class, own, _) = proposed.get(usize::from(pc.id / 2))?;
                Some((
                    pc.id,
                    class.to_string(),
                    own.to_string(),
                    pc.transfer_syntax.trim_end_matches(['\0', ' ']).to_string(),
                ))
            })
            .collect();
        Ok(StoreScu {
            assoc: Assoc {
                inner: Some(assoc),
                pc_id: 0,
                next_message_id: 1,
            },
            contexts,
        })
    }

    /// The accepted context for an object of this SOP class and transfer syntax, its own
    /// encoding first: its id and the transfer syntax the data set must be sent in.
    pub fn context_for(&self, sop_class: &str, transfer_syntax: &str) -> Option<(u8, &str)> {
        let of_object = || {
            self.contexts
                .iter()
                .filter(|(_, c, own, _)| c == sop_class && own == transfer_syntax)
        };
        of_object()
            .find(|(_, _, own, accepted)| own == accepted)
            .or_else(|| of_object().next())
            .map(|(id, _, _, accepted)| (*id, accepted.as_str()))
    }

    /// Send one C-STORE-RQ with its data set on context `pc_id`; the response's status and
    /// Error Comment.
    pub fn store(
        &mut self,
        pc_id: u8,
        sop_class: &str,
        sop_instance: &str,
        data_set: &[u8],
        move_originator: Option<(&str, u16)>,
    ) -> Result<(u16, String), ScuError> {
        let message_id = self.assoc.next_message_id;
        self.assoc.next_message_id = message_id.wrapping_add(1).max(1);
        let cmd = dimse::encode_request(&Request {
            command_field: command::C_STORE_RQ,
            message_id,
            affected_sop_class_uid: sop_class,
            move_destination: None,
            has_data_set: true,
            affected_sop_instance_uid: Some(sop_instance),
            move_originator,
        });
        self.assoc
            .send_fragments(pc_id, PDataValueType::Command, &cmd)?;
        self.assoc
            .send_fragments(pc_id, PDataValueType::Data, data_set)?;
        let (rsp, _) = self.assoc.receive()?;
        if rsp.command_field != command::C_STORE_RSP {
            return Err(ScuError::Protocol(format!(
                "expected C-STORE-RSP, got command 0x{:04X}",
                rsp.command_field
            )));
        }
        Ok((rsp.status, rsp.error_comment))
    }

    /// Release the association.
    pub fn release(self) {
        self.assoc.release();
    }
}

fn comment(c: &str) -> String {
    if c.is_empty() {
        String::new()
    } else {
        format!(" ({c})")
    }
}
