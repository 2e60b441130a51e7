//! The storage SCP: associations accepted on a TCP listener, one thread each up to a limit,
//! C-ECHO answered, C-STORE data sets written as Part 10 files into a staging folder and
//! handed to a [`StoreHandler`].
//!
//! Each object is written to `STAGING/.partial-A-N.dcm`, synced, renamed to `A-N.dcm` once
//! complete, given to the handler, and removed whatever the handler answered; an object cut
//! short by an abort or a lost connection is removed without reaching the handler. Log
//! lines carry association numbers, AE titles, byte counts, statuses and reason codes,
//! never UIDs or anything read from the data set.

use std::borrow::Cow;
use std::collections::HashMap;
use std::fs::File;
use std::io::{BufWriter, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::Duration;

use dicom_object::meta::FileMetaTableBuilder;
use dicom_ul::association::server::AccessControl;
use dicom_ul::pdu::{
    AssociationRJ, AssociationRJResult, AssociationRJServiceProviderPresentationReason,
    AssociationRJServiceUserReason, AssociationRJSource, PDataValue, PDataValueType,
    PresentationContextResultReason, UserIdentity,
};
use dicom_ul::{Pdu, ServerAssociation, ServerAssociationOptions};

use crate::dimse::{self, Command, Response, command, status};
use crate::qr::{self, QueryRetrieveConfig, STUDY_ROOT_FIND, STUDY_ROOT_MOVE};
use crate::{ACCEPTED_TRANSFER_SYNTAXES, STORAGE_SOP_CLASSES, VERIFICATION};

/// Implementation Class UID written into the file meta of received objects
/// (`2.25.` and the name-based UUID v5 of the URL
/// `https://example.invalid/radlab/dicom-implementation`).
pub const IMPLEMENTATION_CLASS_UID: &str = "2.25.238404534211185142454656638455866288052";
/// Implementation Version Name written into the file meta of received objects.
pub const IMPLEMENTATION_VERSION_NAME: &str = "RADLAB_010";

/// How the SCP runs.
#[derive(Debug, Clone)]
pub struct ScpConfig {
    /// Our AE title; an association must call it.
    pub ae_title: String,
    /// Associations served at once; more are rejected (transient, local limit exceeded).
    pub max_associations: usize,
    /// The largest PDU we receive (announced in the A-ASSOCIATE-AC).
    pub max_pdu: u32,
    /// Calling AE titles allowed to associate; empty allows any.
    pub allow_calling: Vec<String>,
    /// Folder for objects being received (created if absent).
    pub staging_dir: PathBuf,
    /// A peer silent for this long loses its association.
    pub idle_timeout: Duration,
}

impl Default for ScpConfig {
    fn default() -> Self {
        ScpConfig {
            ae_title: "RADLAB".into(),
            max_associations: 8,
            max_pdu: 65_536,
            allow_calling: Vec::new(),
            staging_dir: PathBuf::from(".pacs-staging"),
            idle_timeout: Duration::from_secs(120),
        }
    }
}

/// One object received in full, as a Part 10 file at `path`.
#[derive(Debug, Clone)]
pub struct ReceivedObject<'a> {
    pub path: &'a Path,
    pub calling_ae_title: &'a str,
    /// Sequence number of the association since the SCP started.
    pub association: u64,
    pub sop_class_uid: &'a str,
    pub sop_instance_uid: &'a str,
    pub transfer_syntax_uid: &'a str,
    /// Bytes of the data set as received.
    pub data_set_bytes: u64,
}

/// What became of a received object: the C-STORE-RSP status.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StoreOutcome {
    Stored,
    /// A failure status (0xA7xx, 0xA9xx, 0xCxxx) and a short comment for the peer (a reason
    /// code; no patient data).
    Failed {
        status: u16,
        comment: String,
    },
}

/// Takes each received object (imports it); its answer is the C-STORE status. Called from
/// the association threads, several at once.
pub trait StoreHandler: Send + Sync + 'static {
    fn store(&self, object: &ReceivedObject<'_>) -> StoreOutcome;
}

/// Errors that stop the SCP (per-association errors are logged, not returned).
#[derive(Debug, thiserror::Error)]
pub enum ScpError {
    #[error("cannot create the staging folder {path}: {source}")]
    Staging {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("AE title {0:?} is not 1 to 16 characters of printable ASCII without backslash")]
    AeTitle(String),
}

/// Check an AE title (PS3.5: 16 characters at most, no backslash or control characters,
/// not all spaces).
pub fn check_ae_title(title: &str) -> Result<(), ScpError> {
    let ok = !title.trim().is_empty()
        && title.len() <= 16
        && title
            .chars()
            .all(|c| c.is_ascii() && !c.is_ascii_control() && c != '\\');
    if ok {
        Ok(())
    } else {
        Err(ScpError::AeTitle(title.to_string()))
    }
}

/// Who may associate: the called AE title must be ours, the calling one on the allow list
/// when there is one.
#[derive(Debug, Clone)]
struct AeControl {
    allow_calling: Vec<String>,
}

impl AccessControl for AeControl {
    fn check_access(
        &self,
        this_ae_title: &str,
        calling_ae_title: &str,
        called_ae_title: &str,
        _user_identity: Option<&UserIdentity>,
    ) -> Result<(), AssociationRJServiceUserReason> {
        if called_ae_title.trim() != this_ae_title.trim() {
            return Err(AssociationRJServiceUserReason::CalledAETitleNotRecognized);
        }
        let calling = calling_ae_title.trim();
        if !self.allow_calling.is_empty() && !self.allow_calling.iter().any(|a| a == calling) {
            return Err(AssociationRJServiceUserReason::CallingAETitleNotRecognized);
        }
        Ok(())
    }
}

type Options =
    ServerAssociationOptions<'static, AeControl, dicom_ul::association::server::DefaultNegotiation>;

fn association_options(config: &ScpConfig, query_retrieve: bool) -> Options {
    let mut options = ServerAssociationOptions::new()
        .ae_access_control(AeControl {
            allow_calling: config
                .allow_calling
                .iter()
                .map(|a| a.trim().to_string())
                .collect(),
        })
        .ae_title(config.ae_title.trim().to_string())
        .max_pdu_length(config.max_pdu)
        .read_timeout(config.idle_timeout)
        .with_abstract_syntax(VERIFICATION);
    for (uid, _, _) in STORAGE_SOP_CLASSES {
        options = options.with_abstract_syntax(*uid);
    }
    if query_retrieve {
        options = options
            .with_abstract_syntax(STUDY_ROOT_FIND)
            .with_abstract_syntax(STUDY_ROOT_MOVE);
    }
    // dicom-ul picks, per presentation context, the first transfer syntax the requestor
    // proposed that is in this list (and that dicom-rs can read): the sender's order wins.
    for (uid, _) in ACCEPTED_TRANSFER_SYNTAXES {
        options = options.with_transfer_syntax(*uid);
    }
    options
}

/// Serve associations on `listener` until it fails (runs forever otherwise).
pub fn serve(
    listener: TcpListener,
    config: ScpConfig,
    handler: Arc<dyn StoreHandler>,
) -> Result<(), ScpError> {
    serve_with(listener, config, handler, None)
}

/// [`serve`], answering C-FIND and C-MOVE (Study Root) too when `query_retrieve` is given.
pub fn serve_with(
    listener: TcpListener,
    config: ScpConfig,
    handler: Arc<dyn StoreHandler>,
    query_retrieve: Option<QueryRetrieveConfig>,
) -> Result<(), ScpError> {
    check_ae_title(&config.ae_title)?;
    make_staging_dir(&config.staging_dir).map_err(|source| ScpError::Staging {
        path: config.staging_dir.clone(),
        source,
    })?;
    let options = Arc::new(association_options(&config, query_retrieve.is_some()));
    let query_retrieve = query_retrieve.map(Arc::new);
    let config = Arc::new(config);
    let active = Arc::new(AtomicUsize::new(0));
    let counter = AtomicU64::new(0);
    for stream in listener.incoming() {
        let stream = match stream {
            Ok(s) => s,
            Err(e) => {
                tracing::warn!("pacs: accept failed: {e}");
                continue;
            }
        };
        let id = counter.fetch_add(1, Ordering::Relaxed) + 1;
        let peer = stream
            .peer_addr()
            .map(|a| a.to_string())
            .unwrap_or_else(|_| "?".into());
        if active.fetch_add(1, Ordering::SeqCst) >= config.max_associations {
            active.fetch_sub(1, Ordering::SeqCst);
            tracing::warn!(
                "pacs: association {id} from {peer} rejected: {} associations already open",
                config.max_associations
            );
            std::thread::spawn(move || reject_busy(stream));
            continue;
        }
        let guard = ActiveGuard(active.clone());
        let options = options.clone();
        let config = config.clone();
        let handler = handler.clone();
        let qr = query_retrieve.clone();
        let spawned = std::thread::Builder::new()
            .name(format!("pacs-assoc-{id}"))
            .spawn(move || {
                let _guard = guard;
                run_association(
                    stream,
                    id,
                    &peer,
                    &options,
                    &config,
                    handler.as_ref(),
                    qr.as_deref(),
                );
            });
        if let Err(e) = spawned {
            tracing::error!("pacs: cannot start a thread for association {id}: {e}");
        }
    }
    Ok(())
}

struct ActiveGuard(Arc<AtomicUsize>);

impl Drop for ActiveGuard {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}

/// Read the A-ASSOCIATE-RQ and answer A-ASSOCIATE-RJ (transient, local limit exceeded).
fn reject_busy(mut stream: TcpStream) {
    let _ = stream.set_read_timeout(Some(Duration::from_secs(10)));
    let _ = stream.set_write_timeout(Some(Duration::from_secs(10)));
    let mut header = [0u8; 6];
    if stream.read_exact(&mut header).is_err() || header[0] != 0x01 {
        return;
    }
    let len = u32::from_be_bytes([header[2], header[3], header[4], header[5]]) as u64;
    if len > 1 << 20 || std::io::copy(&mut (&mut stream).take(len), &mut std::io::sink()).is_err() {
        return;
    }
    let rj = Pdu::AssociationRJ(AssociationRJ {
        result: AssociationRJResult::Transient,
        source: AssociationRJSource::ServiceProviderPresentation(
            AssociationRJServiceProviderPresentationReason::LocalLimitExceeded,
        ),
    });
    let mut out = Vec::new();
    if dicom_ul::write_pdu(&mut out, &rj).is_ok() {
        let _ = stream.write_all(&out);
    }
}

/// A C-STORE whose data set is arriving: that of a peer storing to our SCP, or a C-GET
/// sub-operation on an association we requested (`scu::get_study`).
pub(crate) struct Pending {
    pub(crate) pc_id: u8,
    pub(crate) command: Command,
    pub(crate) transfer_syntax: String,
    partial: PathBuf,
    /// `None` once writing failed (the rest of the data set is read and dropped).
    file: Option<BufWriter<File>>,
    failure: Option<(u16, String)>,
    pub(crate) bytes: u64,
}

impl Drop for Pending {
    fn drop(&mut self) {
        self.file = None;
        let _ = std::fs::remove_file(&self.partial);
    }
}

impl Pending {
    /// Start receiving the data set of a C-STORE-RQ that arrived on a presentation context
    /// of `abstract_syntax` and `transfer_syntax`: the SOP class is checked against the
    /// context's, and `partial` is created with a preamble and a file meta group naming
    /// `calling` as Source Application Entity Title. A failure is kept for the response; the
    /// rest of the data set is then read and dropped.
    pub(crate) fn start(
        pc_id: u8,
        command: Command,
        abstract_syntax: &str,
        transfer_syntax: &str,
        partial: PathBuf,
        calling: &str,
    ) -> Pending {
        let mut pending = Pending {
            pc_id,
            command,
            transfer_syntax: transfer_syntax.to_string(),
            partial,
            file: None,
            failure: None,
            bytes: 0,
        };
        if pending.command.affected_sop_class_uid != abstract_syntax {
            pending.failure = Some((
                status::DATA_SET_MISMATCH,
                "SOP class differs from the presentation context".into(),
            ));
        } else {
            match start_file(&pending, calling) {
                Ok(file) => pending.file = Some(file),
                Err(e) => {
                    pending.failure = Some((
                        status::OUT_OF_RESOURCES,
                        format!("cannot write the object: {e}"),
                    ))
                }
            }
        }
        pending
    }

    /// Append one fragment of the data set, exactly as received.
    pub(crate) fn write(&mut self, data: &[u8]) {
        self.bytes += data.len() as u64;
        if let Some(file) = self.file.as_mut()
            && let Err(e) = file.write_all(data)
        {
            self.file = None;
            self.failure = Some((
                status::OUT_OF_RESOURCES,
                format!("cannot write the object: {}", e.kind()),
            ));
        }
    }

    /// The last fragment is in: the file synced and renamed to `done`, handed to `handler`
    /// (a panic becomes a failure), and removed whatever it answered. What became of it.
    pub(crate) fn finish(
        &mut self,
        done: &Path,
        handler: &dyn StoreHandler,
        calling: &str,
        association: u64,
    ) -> StoreOutcome {
        if let Some((status, comment)) = self.failure.take() {
            return StoreOutcome::Failed { status, comment };
        }
        if let Err(e) = self.complete_file(done) {
            return StoreOutcome::Failed {
                status: status::OUT_OF_RESOURCES,
                comment: format!("cannot write the object: {e}"),
            };
        }
        let object = ReceivedObject {
            path: done,
            calling_ae_title: calling,
            association,
            sop_class_uid: &self.command.affected_sop_class_uid,
            sop_instance_uid: &self.command.affected_sop_instance_uid,
            transfer_syntax_uid: &self.transfer_syntax,
            data_set_bytes: self.bytes,
        };
        let outcome =
            std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| handler.store(&object)))
                .unwrap_or_else(|_| StoreOutcome::Failed {
                    status: status::CANNOT_UNDERSTAND,
                    comment: "internal error while importing".into(),
                });
        let _ = std::fs::remove_file(done);
        outcome
    }

    /// Flush and sync the partial file and rename it to its complete name.
    fn complete_file(&mut self, done: &Path) -> std::io::Result<()> {
        let Some(file) = self.file.take() else {
            return Err(std::io::Error::other("no file"));
        };
        let file = file.into_inner().map_err(|e| e.into_error())?;
        file.sync_all()?;
        drop(file);
        std::fs::rename(&self.partial, done)
    }

    /// The C-STORE-RSP saying `outcome`.
    pub(crate) fn response<'a>(&'a self, outcome: &'a StoreOutcome) -> Response<'a> {
        let (status, comment) = match outcome {
            StoreOutcome::Stored => (status::SUCCESS, None),
            StoreOutcome::Failed { status, comment } => (*status, Some(comment.as_str())),
        };
        Response {
            command_field: command::C_STORE_RSP,
            message_id_responded: self.command.message_id,
            affected_sop_class_uid: &self.command.affected_sop_class_uid,
            affected_sop_instance_uid: Some(&self.command.affected_sop_instance_uid),
            status,
            error_comment: comment,
            ..Default::default()
        }
    }
}

fn run_association(
    stream: TcpStream,
    id: u64,
    peer: &str,
    options: &Options,
    config: &ScpConfig,
    handler: &dyn StoreHandler,
    qr: Option<&QueryRetrieveConfig>,
) {
    let mut assoc = match options.establish(stream) {
        Ok(a) => a,
        Err(e) => {
            tracing::warn!(
                "pacs: association {id} from {peer} not established: {}",
                error_chain(&e)
            );
            return;
        }
    };
    let calling = dicom_ul::association::Association::peer_ae_title(&assoc)
        .trim()
        .to_string();
    let contexts: HashMap<u8, (String, String)> = assoc
        .presentation_contexts()
        .iter()
        .filter(|pc| pc.reason == PresentationContextResultReason::Acceptance)
        .map(|pc| {
            (
                pc.id,
                (
                    pc.abstract_syntax.trim_end_matches(['\0', ' ']).to_string(),
                    pc.transfer_syntax.trim_end_matches(['\0', ' ']).to_string(),
                ),
            )
        })
        .collect();
    tracing::info!(
        "pacs: association {id} from {calling} at {peer}: {} of {} presentation contexts accepted",
        contexts.len(),
        assoc.presentation_contexts().len()
    );
    let mut session = Session {
        id,
        calling: &calling,
        contexts: &contexts,
        config,
        handler,
        qr,
        command_bytes: Vec::new(),
        pending: None,
        query: None,
        objects: 0,
        stored: 0,
        failed: 0,
    };
    let end = loop {
        let pdu = match assoc.receive() {
            Ok(pdu) => pdu,
            Err(e) => {
                let (lost, why) = receive_failure(&e);
                if lost {
                    break why;
                }
                // A malformed or oversized PDU: the state of the stream is unknown, so the
                // association ends with an A-ABORT (best effort) and the socket is closed.
                let _ = assoc.abort();
                break format!("aborted: {why}");
            }
        };
        match pdu {
            Pdu::PData { data } => {
                if let Err(e) = session.on_pdata(&mut assoc, data) {
                    let _ = assoc.abort();
                    break format!("aborted: {e}");
                }
            }
            Pdu::ReleaseRQ => {
                let _ = assoc.send(&Pdu::ReleaseRP);
                break "released".to_string();
            }
            Pdu::AbortRQ { .. } => break "aborted by the peer".to_string(),
            other => {
                let _ = assoc.abort();
                break format!("aborted: unexpected {}", pdu_name(&other));
            }
        }
    };
    let cut_short = session.pending.take().is_some() || session.query.take().is_some();
    tracing::info!(
        "pacs: association {id} {end}: {} object(s), {} stored, {} failed{}",
        session.objects,
        session.stored,
        session.failed,
        if cut_short {
            ", one incomplete object dropped"
        } else {
            ""
        }
    );
}

/// Whether a receive error means the connection is gone (closed by the peer, timed out, an
/// I/O error), and a log line's words for it, with the causes of the error.
fn receive_failure(e: &dicom_ul::association::Error) -> (bool, String) {
    use dicom_ul::association::Error as E;
    let chain = error_chain(e);
    let mut io = None;
    let mut source = std::error::Error::source(e);
    while let Some(cause) = source {
        if let Some(e) = cause.downcast_ref::<std::io::Error>() {
            io = Some(e.kind());
            break;
        }
        source = cause.source();
    }
    match (e, io) {
        (E::ConnectionClosed { .. }, _) => (true, "connection closed by the peer".into()),
        (_, Some(std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut)) => {
            (true, "dropped: the peer was silent too long".into())
        }
        (_, Some(std::io::ErrorKind::UnexpectedEof)) => (
            true,
            format!("connection closed by the peer inside a PDU ({chain})"),
        ),
        (_, Some(_)) => (true, format!("connection lost: {chain}")),
        _ => (false, format!("malformed PDU: {chain}")),
    }
}

/// An error and its causes, joined by ": " (dicom-ul's own messages say little alone).
pub(crate) fn error_chain(e: &dyn std::error::Error) -> String {
    let mut chain = e.to_string();
    let mut source = e.source();
    while let Some(cause) = source {
        chain.push_str(": ");
        chain.push_str(&cause.to_string());
        source = cause.source();
    }
    chain
}

pub(crate) fn pdu_name(pdu: &Pdu) -> &'static str {
    match pdu {
        Pdu::AssociationRQ(_) => "A-ASSOCIATE-RQ",
        Pdu::AssociationAC(_) => "A-ASSOCIATE-AC",
        Pdu::AssociationRJ(_) => "A-ASSOCIATE-RJ",
        Pdu::PData { .. } => "P-DATA-TF",
        Pdu::ReleaseRQ => "A-RELEASE-RQ",
        Pdu::ReleaseRP => "A-RELEASE-RP",
        Pdu::AbortRQ { .. } => "A-ABORT",
        _ => "unknown PDU",
    }
}

struct Session<'a> {
    id: u64,
    calling: &'a str,
    contexts: &'a HashMap<u8, (String, String)>,
    config: &'a ScpConfig,
    handler: &'a dyn StoreHandler,
    qr: Option<&'a QueryRetrieveConfig>,
    command_bytes: Vec<u8>,
    pending: Option<Pending>,
    /// A C-FIND or C-MOVE whose identifier is arriving.
    query: Option<PendingQuery>,
    objects: u64,
    stored: u64,
    failed: u64,
}

impl Session<'_> {
    fn on_pdata(
        &mut self,
        assoc: &mut ServerAssociation<TcpStream>,
        values: Vec<PDataValue>,
    ) -> Result<(), String> {
        for value in values {
            if !self.contexts.contains_key(&value.presentation_context_id) {
                return Err(format!(
                    "P-DATA on presentation context {} that was not accepted",
                    value.presentation_context_id
                ));
            }
            match value.value_type {
                PDataValueType::Command => {
                    if self.pending.is_some() || self.query.is_some() {
                        return Err("a command arrived inside a data set".into());
                    }
                    self.command_bytes.extend_from_slice(&value.data);
                    if self.command_bytes.len() > 64 * 1024 {
                        return Err("command set over 64 KiB".into());
                    }
                    if value.is_last {
                        let bytes = std::mem::take(&mut self.command_bytes);
                        let cmd = dimse::parse_command(&bytes).map_err(|e| e.to_string())?;
                        self.on_command(assoc, value.presentation_context_id, cmd)?;
                    }
                }
                PDataValueType::Data => {
                    if let Some(query) = self.query.as_mut() {
                        if query.pc_id != value.presentation_context_id {
                            return Err("an identifier changed presentation context".into());
                        }
                        query.bytes.extend_from_slice(&value.data);
                        if query.bytes.len() > 1 << 20 {
                            return Err("identifier over 1 MiB".into());
                        }
                        if value.is_last {
                            let query = self.query.take().expect("checked above");
                            self.finish_query(assoc, query)?;
                        }
                        continue;
                    }
                    let Some(pending) = self.pending.as_mut() else {
                        return Err("a data set arrived without a command".into());
                    };
                    if pending.pc_id != value.presentation_context_id {
                        return Err("a data set changed presentation context".into());
                    }
                    pending.write(&value.data);
                    if value.is_last {
                        let pending = self.pending.take().expect("checked above");
                        self.finish_store(assoc, pending)?;
                    }
                }
            }
        }
        Ok(())
    }

    fn on_command(
        &mut self,
        assoc: &mut ServerAssociation<TcpStream>,
        pc_id: u8,
        cmd: Command,
    ) -> Result<(), String> {
        let (abstract_syntax, transfer_syntax) = &self.contexts[&pc_id];
        match cmd.command_field {
            command::C_ECHO_RQ => {
                tracing::debug!("pacs: association {}: C-ECHO", self.id);
                respond(
                    assoc,
                    pc_id,
                    &Response {
                        command_field: command::C_ECHO_RSP,
                        message_id_responded: cmd.message_id,
                        affected_sop_class_uid: VERIFICATION,
                        affected_sop_instance_uid: None,
                        status: status::SUCCESS,
                        error_comment: None,
                        ..Default::default()
                    },
                )
            }
            command::C_STORE_RQ => {
                if !cmd.has_data_set() {
                    return Err("C-STORE-RQ without a data set".into());
                }
                self.objects += 1;
                let n = self.objects;
                let partial = self
                    .config
                    .staging_dir
                    .join(format!(".partial-{}-{n}.dcm", self.id));
                self.pending = Some(Pending::start(
                    pc_id,
                    cmd,
                    abstract_syntax,
                    transfer_syntax,
                    partial,
                    self.calling,
                ));
                Ok(())
            }
            // Each on its own model's context: a C-FIND on the MOVE context (or the reverse)
            // is an unrecognised operation there.
            command::C_FIND_RQ | command::C_MOVE_RQ
                if self.qr.is_some()
                    && ((cmd.command_field == command::C_FIND_RQ
                        && abstract_syntax == STUDY_ROOT_FIND)
                        || (cmd.command_field == command::C_MOVE_RQ
                            && abstract_syntax == STUDY_ROOT_MOVE)) =>
            {
                if !cmd.has_data_set() {
                    return Err("C-FIND-RQ or C-MOVE-RQ without an identifier".into());
                }
                self.query = Some(PendingQuery {
                    pc_id,
                    command: cmd,
                    bytes: Vec::new(),
                });
                Ok(())
            }
            command::C_CANCEL_RQ => {
                // Answers are sent as they are found; a cancel arriving after the last one
                // has nothing left to stop, and it has no response.
                tracing::debug!("pacs: association {}: C-CANCEL ignored", self.id);
                Ok(())
            }
            other => {
                tracing::warn!(
                    "pacs: association {}: unsupported command 0x{other:04X}",
                    self.id
                );
                respond(
                    assoc,
                    pc_id,
                    &Response {
                        command_field: other | 0x8000,
                        message_id_responded: cmd.message_id,
                        affected_sop_class_uid: &cmd.affected_sop_class_uid,
                        affected_sop_instance_uid: None,
                        status: status::UNRECOGNIZED_OPERATION,
                        error_comment: None,
                        ..Default::default()
                    },
                )
            }
        }
    }

    fn finish_store(
        &mut self,
        assoc: &mut ServerAssociation<TcpStream>,
        mut pending: Pending,
    ) -> Result<(), String> {
        let n = self.objects;
        let done = self.config.staging_dir.join(format!("{}-{n}.dcm", self.id));
        let outcome = pending.finish(&done, self.handler, self.calling, self.id);
        match &outcome {
            StoreOutcome::Stored => {
                self.stored += 1;
                tracing::info!(
                    "pacs: association {} object {n}: stored ({} bytes, transfer syntax {})",
                    self.id,
                    pending.bytes,
                    pending.transfer_syntax
                );
            }
            StoreOutcome::Failed { status, comment } => {
                self.failed += 1;
                tracing::warn!(
                    "pacs: association {} object {n}: failed with status 0x{status:04X}: {comment}",
                    self.id
                );
            }
        }
        respond(assoc, pending.pc_id, &pending.response(&outcome))
    }
}

/// A C-FIND or C-MOVE request whose identifier is arriving.
struct PendingQuery {
    pc_id: u8,
    command: Command,
    bytes: Vec<u8>,
}

/// Run a provider call, a panic becoming an error.
fn guarded<T>(f: impl FnOnce() -> Result<T, String>) -> Result<T, String> {
    std::panic::catch_unwind(std::panic::AssertUnwindSafe(f))
        .unwrap_or_else(|_| Err("internal error in the catalog provider".into()))
}

impl Session<'_> {
    fn finish_query(
        &mut self,
        assoc: &mut ServerAssociation<TcpStream>,
        q: PendingQuery,
    ) -> Result<(), String> {
        let transfer_syntax = self.contexts[&q.pc_id].1.clone();
        let query = qr::read_identifier(&q.bytes, &transfer_syntax)
            .map_err(|e| (status::IDENTIFIER_MISMATCH, e))
            .and_then(|elements| qr::parse_query(&elements));
        if q.command.command_field == command::C_FIND_RQ {
            self.find(assoc, &q, &transfer_syntax, query)
        } else {
            self.move_instances(assoc, &q, &transfer_syntax, query)
        }
    }

    fn find(
        &mut self,
        assoc: &mut ServerAssociation<TcpStream>,
        q: &PendingQuery,
        transfer_syntax: &str,
        query: Result<qr::Query, (u16, String)>,
    ) -> Result<(), String> {
        let id = self.id;
        let answer = |assoc: &mut ServerAssociation<TcpStream>,
                      status: u16,
                      comment: Option<&str>,
                      data: Option<&[u8]>| {
            send_message(
                assoc,
                q.pc_id,
                &Response {
                    command_field: command::C_FIND_RSP,
                    message_id_responded: q.command.message_id,
                    affected_sop_class_uid: STUDY_ROOT_FIND,
                    status,
                    error_comment: comment,
                    has_data_set: data.is_some(),
                    ..Default::default()
                },
                data,
            )
        };
        let fail = |assoc: &mut ServerAssociation<TcpStream>, status: u16, comment: &str| {
            tracing::warn!(
                "pacs: association {id}: C-FIND failed with status 0x{status:04X}: {comment}"
            );
            answer(assoc, status, Some(comment), None)
        };
        let query = match query {
            Ok(query) => query,
            Err((status, comment)) => return fail(assoc, status, &comment),
        };
        let provider = &self.qr.expect("checked on the command").provider;
        let matches = match guarded(|| provider.find(&query.keys)) {
            Ok(m) => m,
            Err(e) => {
                tracing::error!("pacs: association {id}: C-FIND: {e}");
                // The provider's first phrase ("the catalog failed", "too many values...");
                // what follows it may quote the database.
                let why = format!("unable to process: {}", e.split(':').next().unwrap_or(""));
                return answer(assoc, status::UNABLE_TO_PROCESS, Some(&why), None);
            }
        };
        let mut answered = 0u64;
        for m in &matches {
            let (passes, all_matched) = qr::matches_extra(&query, m);
            if !passes {
                continue;
            }
            let data = match qr::encode_match(&query, m, &self.config.ae_title, transfer_syntax) {
                Ok(data) => data,
                Err(e) => return fail(assoc, status::UNABLE_TO_PROCESS, &e),
            };
            let pending = if all_matched {
                status::PENDING
            } else {
                status::PENDING_WARNING
            };
            answer(assoc, pending, None, Some(&data))?;
            answered += 1;
        }
        tracing::info!(
            "pacs: association {id}: C-FIND at {} level: {answered} match(es)",
            query.keys.level.name()
        );
        answer(assoc, status::SUCCESS, None, None)
    }

    fn move_instances(
        &mut self,
        assoc: &mut ServerAssociation<TcpStream>,
        q: &PendingQuery,
        transfer_syntax: &str,
        query: Result<qr::Query, (u16, String)>,
    ) -> Result<(), String> {
        let id = self.id;
        let destination = q.command.move_destination.trim().to_string();
        let answer = |assoc: &mut ServerAssociation<TcpStream>,
                      status: u16,
                      comment: Option<&str>,
                      counts: Option<[u16; 4]>,
                      data: Option<&[u8]>| {
            send_message(
                assoc,
                q.pc_id,
                &Response {
                    command_field: command::C_MOVE_RSP,
                    message_id_responded: q.command.message_id,
                    affected_sop_class_uid: STUDY_ROOT_MOVE,
                    status,
                    error_comment: comment,
                    sub_operations: counts,
                    has_data_set: data.is_some(),
                    ..Default::default()
                },
                data,
            )
        };
        let fail = |assoc: &mut ServerAssociation<TcpStream>, status: u16, comment: &str| {
            tracing::warn!(
                "pacs: association {id}: C-MOVE to {destination} failed with status 0x{status:04X}: {comment}"
            );
            answer(assoc, status, Some(comment), None, None)
        };
        let qr = self.qr.expect("checked on the command");
        let query = match query {
            Ok(query) => query,
            Err((status, comment)) => return fail(assoc, status, &comment),
        };
        let Some(peer) = qr.peers.iter().find(|p| p.ae_title == destination) else {
            return fail(
                assoc,
                status::MOVE_DESTINATION_UNKNOWN,
                "move destination unknown",
            );
        };
        let keys = &query.keys;
        let unique = match keys.level {
            qr::Level::Study => &keys.study_instance_uids,
            qr::Level::Series => &keys.series_instance_uids,
            qr::Level::Image => &keys.sop_instance_uids,
        };
        if unique.is_empty() {
            return fail(
                assoc,
                status::IDENTIFIER_MISMATCH,
                "no unique key at the Query/Retrieve Level",
            );
        }
        let instances = match guarded(|| qr.provider.instances(keys)) {
            Ok(i) => i,
            Err(e) => {
                tracing::error!("pacs: association {id}: C-MOVE: {e}");
                // The provider's first phrase ("the catalog failed", "too many values...");
                // what follows it may quote the database.
                let why = format!("unable to process: {}", e.split(':').next().unwrap_or(""));
                return answer(assoc, status::UNABLE_TO_PROCESS, Some(&why), None, None);
            }
        };
        let total = instances.len();
        let clamp = |n: usize| n.min(usize::from(u16::MAX)) as u16;
        if total == 0 {
            tracing::info!("pacs: association {id}: C-MOVE to {destination}: nothing matched");
            return answer(assoc, status::SUCCESS, None, Some([0, 0, 0, 0]), None);
        }
        let mut pairs: Vec<(String, String)> = Vec::new();
        for i in &instances {
            let pair = (i.sop_class_uid.clone(), i.transfer_syntax_uid.clone());
            if !pairs.contains(&pair) {
                pairs.push(pair);
            }
        }
        let scu_peer = crate::scu::Peer {
            host: peer.host.clone(),
            port: peer.port,
            called_ae_title: peer.ae_title.clone(),
            calling_ae_title: self.config.ae_title.clone(),
            timeout: self.config.idle_timeout,
            max_pdu: self.config.max_pdu,
        };
        let mut store = match crate::scu::StoreScu::open(&scu_peer, &pairs) {
            Ok(store) => store,
            Err(e) => {
                tracing::warn!("pacs: association {id}: C-MOVE to {destination}: {e}");
                let uids: Vec<String> = instances
                    .iter()
                    .map(|i| i.sop_instance_uid.clone())
                    .collect();
                let list = qr::encode_failed_list(&uids, transfer_syntax).ok();
                return answer(
                    assoc,
                    status::UNABLE_TO_PERFORM_SUB_OPERATIONS,
                    Some("cannot associate with the move destination"),
                    Some([0, 0, clamp(total), 0]),
                    list.as_deref(),
                );
            }
        };
        answer(
            assoc,
            status::PENDING,
            None,
            Some([clamp(total), 0, 0, 0]),
            None,
        )?;
        let (mut completed, mut failed, mut warning) = (0usize, 0usize, 0usize);
        let mut failed_uids = Vec::new();
        for (n, instance) in instances.iter().enumerate() {
            let outcome = guarded(|| {
                let (pc_id, accepted) = store
                    .context_for(&instance.sop_class_uid, &instance.transfer_syntax_uid)
                    .ok_or("the destination did not accept its SOP class and transfer syntax")?;
                let accepted = accepted.to_string();
                let bytes = qr.provider.load(instance)?;
                let data = qr::data_set_of(&bytes)?;
                let data = if accepted == instance.transfer_syntax_uid {
                    Cow::Borrowed(data)
                } else {
                    Cow::Owned(qr::transcode(
                        data,
                        &instance.transfer_syntax_uid,
                        &accepted,
                    )?)
                };
                store
                    .store(
                        pc_id,
                        &instance.sop_class_uid,
                        &instance.sop_instance_uid,
                        &data,
                        Some((self.calling, q.command.message_id)),
                    )
                    .map(|(status, _)| status)
                    .map_err(|e| e.to_string())
            });
            match outcome {
                Ok(status::SUCCESS) => completed += 1,
                Ok(s) if s & 0xF000 == 0xB000 => warning += 1,
                Ok(s) => {
                    tracing::warn!(
                        "pacs: association {id}: C-MOVE to {destination}: object {} refused with status 0x{s:04X}",
                        n + 1
                    );
                    failed += 1;
                    failed_uids.push(instance.sop_instance_uid.clone());
                }
                Err(e) => {
                    tracing::warn!(
                        "pacs: association {id}: C-MOVE to {destination}: object {} not sent: {e}",
                        n + 1
                    );
                    failed += 1;
                    failed_uids.push(instance.sop_instance_uid.clone());
                }
            }
            if n + 1 < total {
                answer(
                    assoc,
                    status::PENDING,
                    None,
                    Some([
                        clamp(total - n - 1),
                        clamp(completed),
                        clamp(failed),
                        clamp(warning),
                    ]),
                    None,
                )?;
            }
        }
        store.release();
        tracing::info!(
            "pacs: association {id}: C-MOVE at {} level to {destination}: {completed} completed, {failed} failed, {warning} warning",
            keys.level.name()
        );
        let counts = Some([0, clamp(completed), clamp(failed), clamp(warning)]);
        if failed == 0 && warning == 0 {
            return answer(assoc, status::SUCCESS, None, counts, None);
        }
        let list = if failed_uids.is_empty() {
            None
        } else {
            qr::encode_failed_list(&failed_uids, transfer_syntax).ok()
        };
        answer(
            assoc,
            status::SUB_OPERATIONS_WITH_FAILURES,
            Some("some sub-operations failed"),
            counts,
            list.as_deref(),
        )
    }
}

/// Create the staging folder, readable by this user only (received objects may be
/// identified until they are de-identified).
pub fn make_staging_dir(dir: &Path) -> std::io::Result<()> {
    std::fs::create_dir_all(dir)?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt as _;
        std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700))?;
    }
    Ok(())
}

/// Create the partial file with its preamble and file meta group.
fn start_file(pending: &Pending, calling: &str) -> Result<BufWriter<File>, String> {
    let meta = FileMetaTableBuilder::new()
        .media_storage_sop_class_uid(pending.command.affected_sop_class_uid.as_str())
        .media_storage_sop_instance_uid(pending.command.affected_sop_instance_uid.as_str())
        .transfer_syntax(pending.transfer_syntax.as_str())
        .implementation_class_uid(IMPLEMENTATION_CLASS_UID)
        .implementation_version_name(IMPLEMENTATION_VERSION_NAME)
        .source_application_entity_title(Cow::from(calling).into_owned())
        .build()
        .map_err(|e| format!("file meta: {e}"))?;
    // The staging folder is made again if it went away while the SCP ran.
    if let Some(dir) = pending.partial.parent() {
        make_staging_dir(dir).map_err(|e| format!("staging folder: {}", e.kind()))?;
    }
    let mut open = std::fs::OpenOptions::new();
    open.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut open, 0o600);
    let file = open
        .open(&pending.partial)
        .map_err(|e| e.kind().to_string())?;
    let mut out = BufWriter::with_capacity(1 << 20, file);
    out.write_all(&[0u8; 128])
        .and_then(|_| out.write_all(b"DICM"))
        .map_err(|e| e.kind().to_string())?;
    meta.write(&mut out)
        .map_err(|e| format!("file meta: {e}"))?;
    Ok(out)
}

fn respond(
    assoc: &mut ServerAssociation<TcpStream>,
    pc_id: u8,
    response: &Response<'_>,
) -> Result<(), String> {
    send_message(assoc, pc_id, response, None)
}

/// Send a response command set and, when given, its data set, in P-DATA-TF PDUs no longer
/// than the requestor receives.
fn send_message(
    assoc: &mut ServerAssociation<TcpStream>,
    pc_id: u8,
    response: &Response<'_>,
    data: Option<&[u8]>,
) -> Result<(), String> {
    let max = dimse::max_fragment(assoc.requestor_max_pdu_length(), 1 << 20);
    let command = dimse::encode_response(response);
    let parts = [
        (PDataValueType::Command, Some(command.as_slice())),
        (PDataValueType::Data, data),
    ];
    for (kind, bytes) in parts {
        let Some(bytes) = bytes else { continue };
        for pdu in dimse::pdata_fragments(pc_id, kind, bytes, max) {
            assoc
                .send(&pdu)
                .map_err(|e| format!("cannot send the response: {e}"))?;
        }
    }
    Ok(())
}
