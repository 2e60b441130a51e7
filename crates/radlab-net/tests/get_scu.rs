//! `scu::get_study` against a scripted C-GET SCP written here on dicom-ul's server side: the
//! association it requests (the GET context, storage contexts of one transfer syntax each,
//! SCP role selection), a sub-operation's data set arriving in several fragments written
//! after a file meta group exactly as sent and handed to the handler, the handler's status
//! answered, the staging file removed; a pending response's counts; the failures: the
//! association cut in the middle of an object (no staging file left), the GET context
//! refused, the storage roles refused, an A-ABORT answering the request.

use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::Duration;

use dicom_ul::association::server::{AcceptAny, Negotiation};
use dicom_ul::pdu::{PDataValue, PDataValueType, RequestorRoles};
use dicom_ul::{Pdu, ServerAssociation, ServerAssociationOptions};
use radlab_net::dimse::{self, Request, Response, command, status};
use radlab_net::scu::{self, Peer, STUDY_ROOT_GET, ScuError};
use radlab_net::{ReceivedObject, StoreHandler, StoreOutcome};

const CR: &str = "1.2.840.10008.5.1.4.1.1.1";
const EXPLICIT_VR_LE: &str = "1.2.840.10008.1.2.1";

/// Grants the roles asked for (`true`), or answers every role selection with the SCP role
/// refused (`false`).
#[derive(Debug, Clone, Copy)]
struct Roles(bool);

impl Negotiation for Roles {
    fn negotiate_roles(&self, _: &str, scu: bool, scp: bool) -> Option<RequestorRoles> {
        Some(RequestorRoles {
            scu,
            scp: scp && self.0,
        })
    }
}

/// An object as the handler saw it.
struct Seen {
    /// The staging file's bytes.
    bytes: Vec<u8>,
    calling: String,
    sop: String,
    transfer_syntax: String,
}

/// Stores everything, keeping what it saw.
#[derive(Default)]
struct Recorder {
    seen: Mutex<Vec<Seen>>,
}

impl StoreHandler for Recorder {
    fn store(&self, object: &ReceivedObject<'_>) -> StoreOutcome {
        self.seen.lock().unwrap().push(Seen {
            bytes: std::fs::read(object.path).unwrap(),
            calling: object.calling_ae_title.to_string(),
            sop: object.sop_instance_uid.to_string(),
            transfer_syntax: object.transfer_syntax_uid.to_string(),
        });
        StoreOutcome::Stored
    }
}

fn peer(port: u16) -> Peer {
    Peer {
        host: "127.0.0.1".into(),
        port,
        called_ae_title: "FAKEPACS".into(),
        calling_ae_title: "RADLAB".into(),
        timeout: Duration::from_secs(10),
        max_pdu: 16_384,
    }
}

/// A PACS on a free port that offers `abstract_syntaxes` in explicit VR little endian only,
/// with `roles`, then runs `script` on the association.
fn fake_pacs(
    abstract_syntaxes: &[&'static str],
    roles: Roles,
    script: impl FnOnce(&mut ServerAssociation<TcpStream>) + Send + 'static,
) -> (u16, std::thread::JoinHandle<()>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let mut options = ServerAssociationOptions::new()
        .accept_any()
        .ae_title("FAKEPACS")
        .with_negotiation(roles)
        .with_transfer_syntax(EXPLICIT_VR_LE)
        .with_transfer_syntax("1.2.840.10008.1.2");
    for a in abstract_syntaxes {
        options = options.with_abstract_syntax(*a);
    }
    let handle = std::thread::spawn(move || {
        let (stream, _) = listener.accept().unwrap();
        let Ok(mut assoc) = establish(&options, stream) else {
            return;
        };
        script(&mut assoc);
    });
    (port, handle)
}

fn establish(
    options: &ServerAssociationOptions<'static, AcceptAny, Roles>,
    stream: TcpStream,
) -> Result<ServerAssociation<TcpStream>, ()> {
    options.establish(stream).map_err(|_| ())
}

/// The id of the accepted context of `class` in `ts`.
fn context(assoc: &ServerAssociation<TcpStream>, class: &str, ts: &str) -> u8 {
    assoc
        .presentation_contexts()
        .iter()
        .find(|pc| {
            pc.abstract_syntax.trim_end_matches('\0') == class
                && pc.transfer_syntax.trim_end_matches('\0') == ts
        })
        .unwrap_or_else(|| panic!("no context for {class} in {ts}"))
        .id
}

fn send(assoc: &mut ServerAssociation<TcpStream>, pc: u8, kind: PDataValueType, bytes: &[u8]) {
    send_part(assoc, pc, kind, bytes, true);
}

fn send_part(
    assoc: &mut ServerAssociation<TcpStream>,
    pc: u8,
    kind: PDataValueType,
    bytes: &[u8],
    is_last: bool,
) {
    assoc
        .send(&Pdu::PData {
            data: vec![PDataValue {
                presentation_context_id: pc,
                value_type: kind,
                is_last,
                data: bytes.to_vec(),
            }],
        })
        .unwrap();
}

/// Read one message: its command set, and its data set's bytes if one follows.
fn read_message(assoc: &mut ServerAssociation<TcpStream>) -> (dimse::Command, Vec<u8>) {
    let mut cmd_bytes = Vec::new();
    let mut data = Vec::new();
    let mut cmd = None;
    loop {
        let Pdu::PData { data: values } = assoc.receive().unwrap() else {
            panic!("expected P-DATA");
        };
        for v in values {
            match v.value_type {
                PDataValueType::Command => {
                    cmd_bytes.extend_from_slice(&v.data);
                    if v.is_last {
                        let c = dimse::parse_command(&cmd_bytes).unwrap();
                        if !c.has_data_set() {
                            return (c, data);
                        }
                        cmd = Some(c);
                    }
                }
                PDataValueType::Data => {
                    data.extend_from_slice(&v.data);
                    if v.is_last {
                        return (cmd.unwrap(), data);
                    }
                }
            }
        }
    }
}

fn get_response(
    assoc: &mut ServerAssociation<TcpStream>,
    pc: u8,
    message_id: u16,
    status: u16,
    counts: [u16; 4],
) {
    let rsp = dimse::encode_response(&Response {
        command_field: command::C_GET_RSP,
        message_id_responded: message_id,
        affected_sop_class_uid: STUDY_ROOT_GET,
        status,
        sub_operations: Some(counts),
        ..Default::default()
    });
    send(assoc, pc, PDataValueType::Command, &rsp);
}

/// A C-STORE-RQ of a CR object and its data set in `fragments`, the last one marked last.
fn send_store(
    assoc: &mut ServerAssociation<TcpStream>,
    pc: u8,
    message_id: u16,
    sop_instance: &str,
    fragments: &[&[u8]],
) {
    let rq = dimse::encode_request(&Request {
        command_field: command::C_STORE_RQ,
        message_id,
        affected_sop_class_uid: CR,
        has_data_set: true,
        affected_sop_instance_uid: Some(sop_instance),
        ..Default::default()
    });
    send(assoc, pc, PDataValueType::Command, &rq);
    for (i, fragment) in fragments.iter().enumerate() {
        send_part(
            assoc,
            pc,
            PDataValueType::Data,
            fragment,
            i + 1 == fragments.len(),
        );
    }
}

/// An explicit VR little endian data set: SOP Instance UID and a small Pixel Data.
fn data_set() -> Vec<u8> {
    let mut d = Vec::new();
    d.extend_from_slice(&[0x08, 0, 0x18, 0, b'U', b'I', 6, 0]);
    d.extend_from_slice(b"1.2.3\0");
    d.extend_from_slice(&[0xE0, 0x7F, 0x10, 0, b'O', b'W', 0, 0, 8, 0, 0, 0]);
    d.extend_from_slice(&[1, 2, 3, 4, 5, 6, 7, 8]);
    d
}

fn staged(dir: &Path) -> Vec<PathBuf> {
    std::fs::read_dir(dir)
        .map(|r| r.map(|e| e.unwrap().path()).collect())
        .unwrap_or_default()
}

#[test]
fn a_sub_operation_is_received_as_sent_handed_over_and_answered() {
    let (port, pacs) = fake_pacs(&[STUDY_ROOT_GET, CR], Roles(true), |assoc| {
        let get_pc = context(assoc, STUDY_ROOT_GET, "1.2.840.10008.1.2");
        let cr_pc = context(assoc, CR, EXPLICIT_VR_LE);
        let (rq, identifier) = read_message(assoc);
        assert_eq!(rq.command_field, command::C_GET_RQ);
        let keys = dimse::parse_identifier(&identifier).unwrap();
        assert_eq!(keys[&0x0008_0052], "STUDY");
        assert_eq!(keys[&0x0020_000D], "1.2.9.9");
        get_response(assoc, get_pc, rq.message_id, status::PENDING, [2, 0, 0, 0]);
        // The data set in three fragments.
        let data = data_set();
        send_store(
            assoc,
            cr_pc,
            7,
            "1.2.3",
            &[&data[..5], &data[5..20], &data[20..]],
        );
        let (rsp, _) = read_message(assoc);
        assert_eq!(rsp.command_field, command::C_STORE_RSP);
        assert_eq!(rsp.message_id_responded, 7);
        assert_eq!(rsp.status, status::SUCCESS);
        get_response(assoc, get_pc, rq.message_id, status::PENDING, [1, 1, 0, 0]);
        // A second object, which the handler refuses.
        send_store(assoc, cr_pc, 8, "1.2.4", &[&data]);
        let (rsp, _) = read_message(assoc);
        assert_eq!(rsp.status, 0xC000);
        assert_eq!(rsp.error_comment, "not imported: no-pixel-data");
        // The final response with a Failed SOP Instance UID List (read and ignored).
        let rsp = dimse::encode_response(&Response {
            command_field: command::C_GET_RSP,
            message_id_responded: rq.message_id,
            affected_sop_class_uid: STUDY_ROOT_GET,
            status: status::SUB_OPERATIONS_WITH_FAILURES,
            sub_operations: Some([0, 1, 1, 0]),
            has_data_set: true,
            ..Default::default()
        });
        send(assoc, get_pc, PDataValueType::Command, &rsp);
        let list = dimse::encode_identifier(&[(0x0008_0058, "1.2.4".into())]);
        send(assoc, get_pc, PDataValueType::Data, &list);
        assert!(matches!(assoc.receive().unwrap(), Pdu::ReleaseRQ));
        let _ = assoc.send(&Pdu::ReleaseRP);
    });
    let tmp = tempfile::tempdir().unwrap();
    let staging = tmp.path().join("staging");
    let handler = RefusesSecond(Recorder::default());
    let contexts = scu::get_storage_contexts(&[CR.to_string()]).unwrap();
    let mut pending = Vec::new();
    let outcome = scu::get_study(
        &peer(port),
        "1.2.9.9",
        &contexts,
        &staging,
        &handler,
        &mut |r, c, f, w| pending.push([r, c, f, w]),
    )
    .unwrap();
    pacs.join().unwrap();
    assert_eq!(pending, [[2, 0, 0, 0], [1, 1, 0, 0]]);
    assert_eq!(
        (outcome.status, outcome.completed, outcome.failed),
        (0xB000, 1, 1)
    );
    assert_eq!((outcome.received, outcome.refused), (2, 1));
    assert_eq!(
        outcome.first_refusal.as_deref(),
        Some("not imported: no-pixel-data")
    );
    let seen = handler.0.seen.lock().unwrap();
    assert_eq!(seen.len(), 2);
    let Seen {
        bytes,
        calling,
        sop,
        transfer_syntax: ts,
    } = &seen[0];
    assert_eq!(&bytes[..128], &[0u8; 128][..]);
    assert_eq!(&bytes[128..132], b"DICM");
    // The data set follows the file meta group byte for byte.
    assert!(bytes.ends_with(&data_set()));
    let meta = &bytes[132..bytes.len() - data_set().len()];
    let meta_text = String::from_utf8_lossy(meta);
    assert!(meta_text.contains(EXPLICIT_VR_LE) && meta_text.contains("FAKEPACS"));
    assert!(meta_text.contains(radlab_net::scp::IMPLEMENTATION_CLASS_UID));
    assert_eq!(
        (calling.as_str(), sop.as_str(), ts.as_str()),
        ("FAKEPACS", "1.2.3", EXPLICIT_VR_LE)
    );
    assert!(staged(&staging).is_empty(), "{:?}", staged(&staging));
}

/// Stores the first object, refuses the next ones.
struct RefusesSecond(Recorder);

impl StoreHandler for RefusesSecond {
    fn store(&self, object: &ReceivedObject<'_>) -> StoreOutcome {
        let first = self.0.seen.lock().unwrap().is_empty();
        self.0.store(object);
        if first {
            StoreOutcome::Stored
        } else {
            StoreOutcome::Failed {
                status: 0xC000,
                comment: "not imported: no-pixel-data".into(),
            }
        }
    }
}

#[test]
fn an_association_cut_in_the_middle_of_an_object_leaves_no_staging_file() {
    let tmp = tempfile::tempdir().unwrap();
    let staging = tmp.path().join("staging");
    let watched = staging.clone();
    let (port, pacs) = fake_pacs(&[STUDY_ROOT_GET, CR], Roles(true), move |assoc| {
        let cr_pc = context(assoc, CR, EXPLICIT_VR_LE);
        let _ = read_message(assoc);
        // The first fragment of a data set only.
        send_store(assoc, cr_pc, 1, "1.2.3", &[]);
        send_part(assoc, cr_pc, PDataValueType::Data, &data_set()[..10], false);
        // The partial file is there while the object arrives.
        let start = std::time::Instant::now();
        while staged(&watched).is_empty() && start.elapsed() < Duration::from_secs(10) {
            std::thread::sleep(Duration::from_millis(20));
        }
        assert_eq!(staged(&watched).len(), 1);
        // Gone without a word.
    });
    let handler = Recorder::default();
    let contexts = scu::get_storage_contexts(&[CR.to_string()]).unwrap();
    let e = scu::get_study(
        &peer(port),
        "1.2.9.9",
        &contexts,
        &staging,
        &handler,
        &mut |_, _, _, _| {},
    )
    .unwrap_err();
    pacs.join().unwrap();
    let text = e.to_string();
    assert!(text.starts_with("FAKEPACS at 127.0.0.1:"), "{text}");
    assert!(text.contains("C-GET: the association broke"), "{text}");
    assert!(handler.seen.lock().unwrap().is_empty());
    assert!(staged(&staging).is_empty(), "{:?}", staged(&staging));
}

/// A C-GET of CR objects from the fake PACS on `port` that fails: the error.
fn failed_get(port: u16, pacs: std::thread::JoinHandle<()>) -> ScuError {
    let tmp = tempfile::tempdir().unwrap();
    let contexts = scu::get_storage_contexts(&[CR.to_string()]).unwrap();
    let e = scu::get_study(
        &peer(port),
        "1.2.9.9",
        &contexts,
        tmp.path(),
        &Recorder::default(),
        &mut |_, _, _, _| {},
    )
    .unwrap_err();
    pacs.join().unwrap();
    e
}

#[test]
fn an_abort_before_any_answer_names_the_pacs_and_asks_about_c_get() {
    let (port, pacs) = fake_pacs(&[STUDY_ROOT_GET, CR], Roles(true), |assoc| {
        let _ = read_message(assoc);
        let _ = assoc.send(&Pdu::AbortRQ {
            source: dicom_ul::pdu::AbortRQSource::ServiceUser,
        });
    });
    let text = failed_get(port, pacs).to_string();
    assert!(
        text.contains("FAKEPACS")
            && text.contains("the peer aborted the association")
            && text.contains("does it allow C-GET for our AE title RADLAB?"),
        "{text}"
    );
}

#[test]
fn a_pacs_without_the_get_context_or_the_storage_roles_is_a_clear_error() {
    let run = |abstract_syntaxes: &[&'static str], roles: Roles| {
        let (port, pacs) = fake_pacs(abstract_syntaxes, roles, |_| {});
        failed_get(port, pacs)
    };
    let e = run(&[CR], Roles(true));
    assert!(matches!(e, ScuError::Peer { .. }), "{e:?}");
    assert!(
        e.to_string()
            .contains("did not accept the Study Root Query/Retrieve GET"),
        "{e}"
    );
    let e = run(&[STUDY_ROOT_GET], Roles(true));
    assert!(
        e.to_string()
            .contains("accepted none of the 12 storage presentation contexts"),
        "{e}"
    );
    // The storage contexts accepted, our SCP role not: nothing could be sent to us.
    let e = run(&[STUDY_ROOT_GET, CR], Roles(false));
    assert!(e.to_string().contains("role selection refused"), "{e}");
}

#[test]
fn storage_contexts_fit_one_association() {
    let defaults: Vec<String> = scu::RADIOGRAPH_STORAGE_CLASSES
        .iter()
        .map(|c| c.to_string())
        .collect();
    for class in &defaults {
        assert!(radlab_net::is_storage_class(class), "{class}");
    }
    let contexts = scu::get_storage_contexts(&defaults).unwrap();
    assert!(
        contexts.len() <= scu::MAX_STORAGE_CONTEXTS,
        "{}",
        contexts.len()
    );
    let syntaxes = radlab_net::ACCEPTED_TRANSFER_SYNTAXES.len();
    // CR, DX, MG and Secondary Capture: each transfer syntax in a context of its own.
    for class in &defaults[..6] {
        let of_class: Vec<_> = contexts.iter().filter(|(c, _)| c == class).collect();
        assert_eq!(of_class.len(), syntaxes, "{class}");
        assert!(of_class.iter().all(|(_, ts)| ts.len() == 1));
    }
    // Every class proposed, the last ones with every syntax in one context.
    for class in &defaults {
        assert!(contexts.iter().any(|(c, _)| c == class), "{class}");
    }
    let last = contexts.last().unwrap();
    assert_eq!(last.1.len(), syntaxes);

    // Extra classes (duplicates dropped) still fit; bad ones are refused.
    let mut more = defaults.clone();
    more.push("1.2.840.10008.5.1.4.1.1.2".into());
    more.push(CR.into());
    let contexts = scu::get_storage_contexts(&more).unwrap();
    assert!(contexts.len() <= scu::MAX_STORAGE_CONTEXTS);
    assert!(
        contexts
            .iter()
            .any(|(c, _)| c == "1.2.840.10008.5.1.4.1.1.2")
    );
    assert!(scu::get_storage_contexts(&["1.2.x".into()]).is_err());
    assert!(scu::get_storage_contexts(&["1..2".into()]).is_err());
    assert!(scu::get_storage_contexts(&[]).is_err());
    let many: Vec<String> = (0..200).map(|i| format!("1.2.3.{i}")).collect();
    assert!(scu::get_storage_contexts(&many).is_err());
    // A handful of classes: one context per transfer syntax each.
    let two = scu::get_storage_contexts(&[CR.into(), "1.2.840.10008.5.1.4.1.1.7".into()]).unwrap();
    assert_eq!(two.len(), 2 * syntaxes);
}
