//! The SCU side: associations requested from a PACS for C-ECHO ([`echo`]), C-FIND in the
//! Study Root Query/Retrieve Information Model ([`find`]), C-MOVE of one study to a
//! destination AE ([`move_study`]) and C-GET of one study on the same association
//! ([`get_study`]: the PACS's C-STORE sub-operations received as the storage SCP's are,
//! into staging files handed to a [`StoreHandler`]). The upper layer is dicom-ul's client;
//! command sets and the flat identifiers are encoded here ([`crate::dimse`]), always in
//! Implicit VR Little Endian (the one transfer syntax every PACS accepts for queries).

use std::collections::{BTreeMap, HashMap};
use std::net::TcpStream;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use dicom_ul::association::Association as _;
use dicom_ul::pdu::{
    PDataValue, PDataValueType, PresentationContextResultReason, UserVariableItem,
};
use dicom_ul::{ClientAssociation, ClientAssociationOptions, Pdu};

use crate::dimse::{self, Command, Request, command, status};
use crate::scp::{Pending, StoreHandler, StoreOutcome};
use crate::{ACCEPTED_TRANSFER_SYNTAXES, VERIFICATION};

/// Study Root Query/Retrieve Information Model - FIND.
pub const STUDY_ROOT_FIND: &str = "1.2.840.10008.5.1.4.1.2.2.1";
/// Study Root Query/Retrieve Information Model - MOVE.
pub const STUDY_ROOT_MOVE: &str = "1.2.840.10008.5.1.4.1.2.2.2";
/// Study Root Query/Retrieve Information Model - GET.
pub const STUDY_ROOT_GET: &str = "1.2.840.10008.5.1.4.1.2.2.3";
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
    /// The PACS (named) refused or broke off an operation on an association it accepted.
    #[error("{peer}: {why}")]
    Peer { peer: String, why: String },
}

/// One C-FIND match: its keys' values as text, by tag.
pub type Identifier = BTreeMap<u32, String>;

/// The final C-MOVE or C-GET response, and for a C-GET what became of the objects that
/// came back on the association.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RetrieveOutcome {
    pub status: u16,
    pub completed: u16,
    pub failed: u16,
    pub warning: u16,
    pub error_comment: String,
    /// C-GET: sub-operations (C-STORE-RQ) that reached us.
    pub received: u32,
    /// C-GET: of those, the ones our handler refused (answered with a failure status).
    pub refused: u32,
    /// C-GET: the first refusal's status comment (a reason code, no patient data).
    pub first_refusal: Option<String>,
}

impl RetrieveOutcome {
    /// Success with no failed sub-operation.
    pub fn is_success(&self) -> bool {
        self.status == status::SUCCESS && self.failed == 0
    }

    /// In words, for a job file: `C-GET status 0xB000: 2 completed, 1 failed, 0 warning
    /// sub-operations (comment)`, and for a C-GET how many failures we answered and how
    /// many never reached us (their SOP class or transfer syntax had no accepted context).
    pub fn describe(&self, operation: &str) -> String {
        let mut words = format!(
            "{operation} status 0x{:04X}: {} completed, {} failed, {} warning sub-operations{}",
            self.status,
            self.completed,
            self.failed,
            self.warning,
            comment(&self.error_comment)
        );
        if self.refused > 0 {
            words.push_str(&format!(
                "; radlab refused {}{}",
                self.refused,
                self.first_refusal
                    .as_deref()
                    .map(|c| format!(" (first: {c})"))
                    .unwrap_or_default()
            ));
        }
        let unsent = u32::from(self.failed).saturating_sub(self.refused);
        if operation == "C-GET" && unsent > 0 {
            words.push_str(&format!(
                "; {unsent} never sent to radlab (their SOP class or transfer syntax was not \
                 accepted on the association: add it with --sop-class, or the PACS could not \
                 send it)"
            ));
        }
        words
    }
}

/// The options of every association we request: AE titles, PDU size, timeouts.
fn client_options<'a>(peer: &Peer) -> ClientAssociationOptions<'a> {
    ClientAssociationOptions::new()
        .calling_ae_title(peer.calling_ae_title.trim().to_string())
        .called_ae_title(peer.called_ae_title.trim().to_string())
        .max_pdu_length(peer.max_pdu)
        .connection_timeout(peer.timeout)
        .read_timeout(peer.timeout)
        .write_timeout(peer.timeout)
}

fn associate(peer: &Peer, abstract_syntax: &'static str) -> Result<Assoc, ScuError> {
    let address = format!("{}:{}", peer.host, peer.port);
    let assoc = client_options(peer)
        .with_presentation_context(abstract_syntax, vec![IMPLICIT_VR_LE])
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
        let max = dimse::max_fragment(self.assoc().acceptor_max_pdu_length(), 16_384);
        for pdu in dimse::pdata_fragments(pc_id, kind, bytes, max) {
            self.assoc()
                .send(&pdu)
                .map_err(|e| ScuError::Protocol(format!("cannot send: {e}")))?;
        }
        Ok(())
    }

    /// The values of the next P-DATA-TF; an A-ABORT, an A-RELEASE-RQ (answered), another
    /// PDU, a broken connection or a timeout is an error.
    fn next_pdata(&mut self) -> Result<Vec<PDataValue>, ScuError> {
        let pdu = self.assoc().receive().map_err(|e| {
            ScuError::Protocol(format!(
                "the association broke: {}",
                crate::scp::error_chain(&e)
            ))
        })?;
        match pdu {
            Pdu::PData { data } => Ok(data),
            Pdu::AbortRQ { .. } => {
                self.inner = None;
                Err(ScuError::Protocol(
                    "the peer aborted the association".into(),
                ))
            }
            Pdu::ReleaseRQ => {
                let _ = self.assoc().send(&Pdu::ReleaseRP);
                self.inner = None;
                Err(ScuError::Protocol(
                    "the peer released the association mid-operation".into(),
                ))
            }
            other => Err(ScuError::Protocol(format!(
                "unexpected {}",
                crate::scp::pdu_name(&other)
            ))),
        }
    }

    /// Receive one message: the command set and its data set, if any.
    fn receive(&mut self) -> Result<(Command, Option<Vec<u8>>), ScuError> {
        let mut command_bytes = Vec::new();
        let mut data = Vec::new();
        let mut cmd: Option<Command> = None;
        loop {
            for value in self.next_pdata()? {
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
/// response's (remaining, completed, failed) counts. The outcome's C-GET counts stay 0.
pub fn move_study(
    peer: &Peer,
    destination: &str,
    study_instance_uid: &str,
    progress: &mut dyn FnMut(u16, u16, u16),
) -> Result<RetrieveOutcome, ScuError> {
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
        return Ok(RetrieveOutcome {
            status: rsp.status,
            completed: rsp.completed.unwrap_or(0),
            failed: rsp.failed.unwrap_or(0),
            warning: rsp.warning.unwrap_or(0),
            error_comment: rsp.error_comment,
            ..Default::default()
        });
    }
}

/// The storage SOP classes a C-GET proposes by default: those a radiograph retrieval meets,
/// most common first (when they do not all fit with one context per transfer syntax, the
/// last ones get a single context; see [`get_storage_contexts`]). Objects without pixels
/// (presentation states, key object selections, SR) are left out: radlab could not import
/// them anyway.
pub const RADIOGRAPH_STORAGE_CLASSES: &[&str] = &[
    "1.2.840.10008.5.1.4.1.1.1",     // Computed Radiography Image Storage
    "1.2.840.10008.5.1.4.1.1.1.1",   // Digital X-Ray Image Storage - For Presentation
    "1.2.840.10008.5.1.4.1.1.1.1.1", // Digital X-Ray Image Storage - For Processing
    "1.2.840.10008.5.1.4.1.1.7",     // Secondary Capture Image Storage
    "1.2.840.10008.5.1.4.1.1.1.2",   // Digital Mammography X-Ray - For Presentation
    "1.2.840.10008.5.1.4.1.1.1.2.1", // Digital Mammography X-Ray - For Processing
    "1.2.840.10008.5.1.4.1.1.1.3",   // Digital Intra-Oral X-Ray - For Presentation
    "1.2.840.10008.5.1.4.1.1.1.3.1", // Digital Intra-Oral X-Ray - For Processing
    "1.2.840.10008.5.1.4.1.1.7.2",   // Multi-frame Grayscale Byte Secondary Capture
    "1.2.840.10008.5.1.4.1.1.7.3",   // Multi-frame Grayscale Word Secondary Capture
    "1.2.840.10008.5.1.4.1.1.7.4",   // Multi-frame True Color Secondary Capture
    "1.2.840.10008.5.1.4.1.1.7.1",   // Multi-frame Single Bit Secondary Capture
];

/// Presentation context ids are odd numbers from 1 to 255: 128 contexts, one of them the
/// C-GET's.
pub const MAX_STORAGE_CONTEXTS: usize = 127;

/// The storage presentation contexts of a C-GET association for `sop_classes` (in their
/// order, duplicates dropped), each with the transfer syntaxes radlab decodes
/// ([`ACCEPTED_TRANSFER_SYNTAXES`]): one context per transfer syntax, so that the PACS can
/// send every object in its own encoding. When that makes more than
/// [`MAX_STORAGE_CONTEXTS`], the first classes keep one context per transfer syntax and the
/// others get one context listing all of them (the PACS then picks one, and may transcode
/// an object to it). Errors: no class, a UID that is not one, more classes than contexts.
pub fn get_storage_contexts(sop_classes: &[String]) -> Result<Vec<(String, Vec<String>)>, String> {
    let mut classes: Vec<&str> = Vec::new();
    for class in sop_classes {
        let class = class.trim();
        if !is_uid(class) {
            return Err(format!(
                "SOP class {class:?} is not a UID (digits and dots, at most 64 characters)"
            ));
        }
        if !classes.contains(&class) {
            classes.push(class);
        }
    }
    if classes.is_empty() {
        return Err("no storage SOP class to propose".into());
    }
    if classes.len() > MAX_STORAGE_CONTEXTS {
        return Err(format!(
            "{} storage SOP classes: at most {MAX_STORAGE_CONTEXTS} fit on one association",
            classes.len()
        ));
    }
    let syntaxes: Vec<String> = ACCEPTED_TRANSFER_SYNTAXES
        .iter()
        .map(|(uid, _)| uid.to_string())
        .collect();
    // Classes with a context per transfer syntax, the rest with one context each.
    let per_class = syntaxes.len();
    let full = if classes.len() * per_class <= MAX_STORAGE_CONTEXTS {
        classes.len()
    } else {
        (MAX_STORAGE_CONTEXTS - classes.len()) / (per_class - 1)
    };
    let mut contexts = Vec::new();
    for (i, class) in classes.iter().enumerate() {
        if i < full {
            for ts in &syntaxes {
                contexts.push((class.to_string(), vec![ts.clone()]));
            }
        } else {
            contexts.push((class.to_string(), syntaxes.clone()));
        }
    }
    Ok(contexts)
}

/// A UID: 1 to 64 characters, digits and dots, no empty component.
fn is_uid(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 64
        && s.split('.')
            .all(|c| !c.is_empty() && c.bytes().all(|b| b.is_ascii_digit()))
}

/// Sequence numbers of C-GET associations, for log lines and staging file names.
static GET_ASSOCIATIONS: AtomicU64 = AtomicU64::new(0);

/// A C-GET association: the GET context's id, and the storage contexts on which the PACS may
/// send (id to SOP class and transfer syntax).
struct GetAssociation {
    assoc: Assoc,
    storage: HashMap<u8, (String, String)>,
}

fn associate_get(
    peer: &Peer,
    storage: &[(String, Vec<String>)],
) -> Result<GetAssociation, ScuError> {
    let address = format!("{}:{}", peer.host, peer.port);
    let name = format!("{} at {address}", peer.called_ae_title.trim());
    if storage.is_empty() || storage.len() > MAX_STORAGE_CONTEXTS {
        return Err(ScuError::Protocol(format!(
            "a C-GET needs 1 to {MAX_STORAGE_CONTEXTS} storage presentation contexts, not {}",
            storage.len()
        )));
    }
    let mut options =
        client_options(peer).with_presentation_context(STUDY_ROOT_GET, vec![IMPLICIT_VR_LE]);
    let mut classes: Vec<&str> = Vec::new();
    for (class, syntaxes) in storage {
        options = options.with_presentation_context(
            class.as_str(),
            syntaxes.iter().map(String::as_str).collect(),
        );
        if !classes.contains(&class.as_str()) {
            classes.push(class);
        }
    }
    // We are the SCP of the storage classes on this association (PS3.4 C.4.3.1.2), never
    // their SCU.
    for class in &classes {
        options = options.with_role_selection(*class, false, true);
    }
    let assoc = options
        .establish_with(&address)
        .map_err(|e| ScuError::Association {
            peer: name.clone(),
            why: crate::scp::error_chain(&e),
        })?;
    let accepted = |pc: &&dicom_ul::pdu::PresentationContextNegotiated| {
        pc.reason == PresentationContextResultReason::Acceptance
    };
    let get_pc = assoc
        .presentation_contexts()
        .iter()
        .filter(accepted)
        .find(|pc| pc.abstract_syntax.trim_end_matches(['\0', ' ']) == STUDY_ROOT_GET)
        .map(|pc| pc.id);
    let Some(get_pc) = get_pc else {
        let _ = assoc.abort();
        return Err(ScuError::Peer {
            peer: name,
            why: "did not accept the Study Root Query/Retrieve GET presentation context \
                  (C-GET not offered; try `radlab pacs move`)"
                .into(),
        });
    };
    // PS3.7 D.3.3.4: without a role selection item in the answer the requestor is SCU only.
    // Some acceptors answer none at all and send anyway: then every accepted context is
    // taken, with a warning.
    let roles_answered = assoc
        .user_variables()
        .iter()
        .any(|v| matches!(v, UserVariableItem::ScuScpRoleSelectionSubItem(..)));
    let mut storage_contexts = HashMap::new();
    let mut accepted_contexts = 0usize;
    for pc in assoc.presentation_contexts().iter().filter(accepted) {
        if pc.id == get_pc {
            continue;
        }
        accepted_contexts += 1;
        let class = pc.abstract_syntax.trim_end_matches(['\0', ' ']).to_string();
        if roles_answered && !assoc.requestor_roles_for(&class).scp {
            continue;
        }
        let ts = pc.transfer_syntax.trim_end_matches(['\0', ' ']).to_string();
        storage_contexts.insert(pc.id, (class, ts));
    }
    if !roles_answered && accepted_contexts > 0 {
        tracing::warn!(
            "pacs: {}: no SCP/SCU role selection in the A-ASSOCIATE-AC; C-STORE sub-operations may not come",
            peer.called_ae_title.trim()
        );
    }
    if storage_contexts.is_empty() {
        let _ = assoc.abort();
        return Err(ScuError::Peer {
            peer: name,
            why: format!(
                "accepted none of the {} storage presentation contexts proposed for the \
                 objects of a C-GET{}",
                storage.len(),
                if accepted_contexts > 0 {
                    " with radlab as their SCP (role selection refused)"
                } else {
                    ""
                }
            ),
        });
    }
    tracing::info!(
        "pacs: C-GET association with {}: {} of {} storage presentation contexts accepted",
        peer.called_ae_title.trim(),
        storage_contexts.len(),
        storage.len()
    );
    Ok(GetAssociation {
        assoc: Assoc {
            inner: Some(assoc),
            pc_id: get_pc,
            next_message_id: 1,
        },
        storage: storage_contexts,
    })
}

/// C-GET (Study Root) of one study: an association proposing the GET context (Implicit VR
/// Little Endian) and the `storage` contexts ([`get_storage_contexts`]) with radlab as
/// their SCP; then each C-STORE sub-operation is received as the storage SCP receives one
/// (its data set written as it arrives, never re-encoded, after a file meta group naming
/// the PACS as source, into `staging_dir`), handed to `handler` and answered with its
/// status; the staging file is removed after. `progress` hears the (remaining, completed,
/// failed, warning) counts of each pending C-GET-RSP. The final one gives the outcome, with
/// how many objects reached us and how many we refused. A broken association leaves no
/// staging file.
pub fn get_study(
    peer: &Peer,
    study_instance_uid: &str,
    storage: &[(String, Vec<String>)],
    staging_dir: &Path,
    handler: &dyn StoreHandler,
    progress: &mut dyn FnMut(u16, u16, u16, u16),
) -> Result<RetrieveOutcome, ScuError> {
    let name = format!(
        "{} at {}:{}",
        peer.called_ae_title.trim(),
        peer.host,
        peer.port
    );
    let GetAssociation {
        assoc: mut a,
        storage: contexts,
    } = associate_get(peer, storage)?;
    let _ = crate::scp::make_staging_dir(staging_dir);
    let identifier = dimse::encode_identifier(&[
        (0x0008_0052, "STUDY".into()),
        (0x0020_000D, study_instance_uid.to_string()),
    ]);
    let mut get = GetReceiver {
        id: GET_ASSOCIATIONS.fetch_add(1, Ordering::Relaxed) + 1,
        origin: peer.called_ae_title.trim().to_string(),
        get_pc: a.pc_id,
        contexts: &contexts,
        staging_dir,
        handler,
        command_bytes: Vec::new(),
        command_pc: 0,
        pending: None,
        response: None,
        heard: false,
        outcome: RetrieveOutcome::default(),
    };
    let result = a
        .send(command::C_GET_RQ, STUDY_ROOT_GET, None, Some(&identifier))
        .and_then(|_| {
            loop {
                let values = a.next_pdata()?;
                if get.on_pdata(&mut a, values, progress)? {
                    break Ok(());
                }
            }
        });
    match result {
        Ok(()) => {
            a.release();
            tracing::info!(
                "pacs: C-GET association {} with {}: status 0x{:04X}, {} object(s) received, {} refused",
                get.id,
                get.origin,
                get.outcome.status,
                get.outcome.received,
                get.outcome.refused
            );
            Ok(get.outcome)
        }
        Err(e) => {
            // Dropping the pending object removes its partial file.
            let cut_short = get.pending.take().is_some();
            tracing::warn!(
                "pacs: C-GET association {} with {} ended: {e}{}",
                get.id,
                get.origin,
                if cut_short {
                    "; one incomplete object dropped"
                } else {
                    ""
                }
            );
            let hint = if get.heard {
                String::new()
            } else {
                format!(
                    " before answering the C-GET (does it allow C-GET for our AE title {}?)",
                    peer.calling_ae_title.trim()
                )
            };
            Err(ScuError::Peer {
                peer: name,
                why: format!("C-GET: {e}{hint}"),
            })
        }
    }
}

/// The state of a C-GET's association while its answers and sub-operations arrive.
struct GetReceiver<'a> {
    id: u64,
    /// The PACS's AE title: the source of the objects.
    origin: String,
    get_pc: u8,
    contexts: &'a HashMap<u8, (String, String)>,
    staging_dir: &'a Path,
    handler: &'a dyn StoreHandler,
    command_bytes: Vec<u8>,
    command_pc: u8,
    /// A C-STORE sub-operation whose data set is arriving.
    pending: Option<Pending>,
    /// A C-GET-RSP whose data set (a Failed SOP Instance UID List) is arriving; its bytes
    /// are counted, not kept.
    response: Option<(Command, usize)>,
    /// Whether the PACS answered anything (a response or a sub-operation).
    heard: bool,
    outcome: RetrieveOutcome,
}

impl GetReceiver<'_> {
    /// Take one P-DATA-TF; true once the final C-GET-RSP is in.
    fn on_pdata(
        &mut self,
        a: &mut Assoc,
        values: Vec<PDataValue>,
        progress: &mut dyn FnMut(u16, u16, u16, u16),
    ) -> Result<bool, ScuError> {
        let protocol = |why: &str| ScuError::Protocol(why.to_string());
        for value in values {
            let pc = value.presentation_context_id;
            if pc != self.get_pc && !self.contexts.contains_key(&pc) {
                return Err(ScuError::Protocol(format!(
                    "P-DATA on presentation context {pc} that was not accepted"
                )));
            }
            match value.value_type {
                PDataValueType::Command => {
                    if self.pending.is_some() || self.response.is_some() {
                        return Err(protocol("a command arrived inside a data set"));
                    }
                    if !self.command_bytes.is_empty() && self.command_pc != pc {
                        return Err(protocol("a command set changed presentation context"));
                    }
                    self.command_pc = pc;
                    self.command_bytes.extend_from_slice(&value.data);
                    if self.command_bytes.len() > 64 * 1024 {
                        return Err(protocol("command set over 64 KiB"));
                    }
                    if value.is_last {
                        let bytes = std::mem::take(&mut self.command_bytes);
                        let cmd = dimse::parse_command(&bytes)
                            .map_err(|e| ScuError::Protocol(e.to_string()))?;
                        if self.on_command(pc, cmd, progress)? {
                            return Ok(true);
                        }
                    }
                }
                PDataValueType::Data => {
                    if let Some(pending) = self.pending.as_mut() {
                        if pending.pc_id != pc {
                            return Err(protocol("a data set changed presentation context"));
                        }
                        pending.write(&value.data);
                        if value.is_last {
                            let pending = self.pending.take().expect("checked above");
                            self.finish_store(a, pending)?;
                        }
                    } else if let Some((_, bytes)) = self.response.as_mut() {
                        *bytes += value.data.len();
                        if *bytes > 1 << 20 {
                            return Err(protocol("a C-GET-RSP identifier over 1 MiB"));
                        }
                        if value.is_last {
                            let (rsp, _) = self.response.take().expect("checked above");
                            if self.on_response(rsp, progress) {
                                return Ok(true);
                            }
                        }
                    } else {
                        return Err(protocol("a data set arrived without a command"));
                    }
                }
            }
        }
        Ok(false)
    }

    /// A complete command set; true when it is the final C-GET-RSP (without a data set).
    fn on_command(
        &mut self,
        pc: u8,
        cmd: Command,
        progress: &mut dyn FnMut(u16, u16, u16, u16),
    ) -> Result<bool, ScuError> {
        self.heard = true;
        match cmd.command_field {
            command::C_STORE_RQ => {
                let Some((class, ts)) = self.contexts.get(&pc) else {
                    return Err(ScuError::Protocol(
                        "a C-STORE-RQ on the C-GET's presentation context".into(),
                    ));
                };
                if !cmd.has_data_set() {
                    return Err(ScuError::Protocol("C-STORE-RQ without a data set".into()));
                }
                self.outcome.received += 1;
                let partial = self.staging_dir.join(format!(
                    ".partial-get-{}-{}.dcm",
                    self.id, self.outcome.received
                ));
                self.pending = Some(Pending::start(pc, cmd, class, ts, partial, &self.origin));
                Ok(false)
            }
            command::C_GET_RSP if pc == self.get_pc => {
                if cmd.has_data_set() {
                    self.response = Some((cmd, 0));
                    return Ok(false);
                }
                Ok(self.on_response(cmd, progress))
            }
            other => Err(ScuError::Protocol(format!(
                "unexpected command 0x{other:04X} during a C-GET"
            ))),
        }
    }

    /// A complete C-GET-RSP; true when it is the final one.
    fn on_response(&mut self, rsp: Command, progress: &mut dyn FnMut(u16, u16, u16, u16)) -> bool {
        let counts = (
            rsp.completed.unwrap_or(0),
            rsp.failed.unwrap_or(0),
            rsp.warning.unwrap_or(0),
        );
        if status::is_pending(rsp.status) {
            progress(rsp.remaining.unwrap_or(0), counts.0, counts.1, counts.2);
            return false;
        }
        self.outcome.status = rsp.status;
        (
            self.outcome.completed,
            self.outcome.failed,
            self.outcome.warning,
        ) = counts;
        self.outcome.error_comment = rsp.error_comment;
        true
    }

    /// The last fragment of a sub-operation's data set is in: hand the object over, answer.
    fn finish_store(&mut self, a: &mut Assoc, mut pending: Pending) -> Result<(), ScuError> {
        let n = self.outcome.received;
        let done = self.staging_dir.join(format!("get-{}-{n}.dcm", self.id));
        let outcome = pending.finish(&done, self.handler, &self.origin, self.id);
        match &outcome {
            StoreOutcome::Stored => tracing::info!(
                "pacs: C-GET association {} object {n}: stored ({} bytes, transfer syntax {})",
                self.id,
                pending.bytes,
                pending.transfer_syntax
            ),
            StoreOutcome::Failed { status, comment } => {
                self.outcome.refused += 1;
                self.outcome
                    .first_refusal
                    .get_or_insert_with(|| comment.clone());
                tracing::warn!(
                    "pacs: C-GET association {} object {n}: failed with status 0x{status:04X}: {comment}",
                    self.id
                );
            }
        }
        let response = dimse::encode_response(&pending.response(&outcome));
        a.send_fragments(pending.pc_id, PDataValueType::Command, &response)
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
        let mut options = client_options(peer);
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
