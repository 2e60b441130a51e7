//! pynetdicom's byte-exact PDU fixtures (`pynetdicom/tests/encoded_pdu_items.py`, shipped in
//! its package; the version is pinned in `tests/reference/requirements.txt`) through the
//! dicom-rs `ul` crate radlab's SCP and SCU are built on: each is parsed with
//! `dicom_ul::read_pdu` and written again with `dicom_ul::write_pdu`, and the bytes must be
//! the same.
//!
//! Whole PDUs go through as they are. The fixtures that are single items (an application
//! context, a presentation context, a user information sub-item, a presentation data value)
//! are first put inside the smallest PDU that carries them, built from the other fixtures, so
//! that they go through the same two calls.
//!
//! Where dicom-ul cannot give the same bytes back, the fixture is in [`CASES`] with what it
//! does and why, so that a change of dicom-ul's behaviour (better or worse) fails this test;
//! so does a fixture that pynetdicom adds or drops.
//!
//! The other way round, the PDUs radlab's own SCU and SCP send (recorded by a relay between
//! them) must be read by pynetdicom and encoded again by it to the same bytes.

use radlab_testkit::{reference_python_with, run_reference};
use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::Duration;

/// Where a fixture goes before it is parsed.
#[derive(Clone, Copy, Debug)]
enum Carrier {
    /// A whole PDU, as it is.
    Pdu,
    /// An A-ASSOCIATE-RQ variable item (application context, presentation context, user
    /// information), in place of the default one of its type.
    RqItem,
    /// An A-ASSOCIATE-AC variable item, in place of the default one of its type.
    AcItem,
    /// A user information sub-item, alone in the user information item of an A-ASSOCIATE-RQ.
    RqUserSubItem,
    /// A user information sub-item, alone in the user information item of an A-ASSOCIATE-AC.
    AcUserSubItem,
    /// An abstract or transfer syntax sub-item of a proposed presentation context (ID 1),
    /// beside the default of the other kind, in an A-ASSOCIATE-RQ.
    SyntaxSubItem,
    /// A presentation data value item, alone in a P-DATA-TF.
    PdvItem,
    /// The message control header and fragment of a presentation data value item (context
    /// ID 1), alone in a P-DATA-TF.
    PdvContent,
}

/// What dicom-ul does with a fixture.
#[derive(Clone, Copy, Debug)]
enum Expect {
    /// Parses and writes back byte for byte.
    Exact,
    /// Parses, and writes back the same bytes except a zero at these offsets (of the PDU as
    /// parsed); why.
    Zeroed(&'static [usize], &'static str),
    /// Parses, but `write_pdu` refuses what it parsed; why.
    Unwritable(&'static str),
    /// `read_pdu` refuses it; why.
    Unreadable(&'static str),
}

impl Expect {
    /// Why dicom-ul does not give a fixture back byte for byte.
    fn reason(self) -> Option<&'static str> {
        match self {
            Expect::Exact => None,
            Expect::Zeroed(_, why) | Expect::Unwritable(why) | Expect::Unreadable(why) => Some(why),
        }
    }
}

/// Every fixture of the pinned pynetdicom, with where it goes and what dicom-ul does with it.
const CASES: &[(&str, Carrier, Expect)] = {
    use Carrier::*;
    use Expect::*;
    &[
        // Whole PDUs.
        ("a_associate_rq", Pdu, Exact),
        (
            "a_associate_rq_called",
            Pdu,
            Unwritable(
                "the Called-AE-title is 16 spaces (PS3.8 Table 9-11: shall not be used); \
                 read_pdu takes it as \"\", and write_pdu refuses an all-space AE title",
            ),
        ),
        (
            "a_associate_rq_calling",
            Pdu,
            Unwritable(
                "the Calling-AE-title is 16 spaces (PS3.8 Table 9-11: shall not be used); \
                 read_pdu takes it as \"\", and write_pdu refuses an all-space AE title",
            ),
        ),
        ("a_associate_rq_role", Pdu, Exact),
        ("a_associate_rq_user_async", Pdu, Exact),
        (
            "a_associate_rq_user_id_user_pass",
            Pdu,
            Zeroed(
                &[105],
                "the presentation context item's second reserved byte is FFH; dicom-ul does not \
                 keep reserved fields and writes 00H (PS3.8 Table 9-13: sent as 00H, not tested)",
            ),
        ),
        ("a_associate_rq_user_id_ext_neg", Pdu, Exact),
        ("a_associate_rq_com_ext_neg", Pdu, Exact),
        ("a_associate_ac", Pdu, Exact),
        (
            "a_associate_ac_user",
            Pdu,
            Unreadable(
                "the fixture's PDU-length (B8H) is 14 bytes short of its body: the User \
                 Identity sub-item (59H) was appended without counting it; dicom-ul reads \
                 PDU-length bytes and finds the user information item cut short \
                 (user_identity_ac, below, goes through in a well-formed PDU)",
            ),
        ),
        ("a_associate_ac_zero_ts", Pdu, Exact),
        (
            "a_associate_ac_no_ts",
            Pdu,
            Unreadable(
                "a presentation context rejected (result 3, abstract syntax not supported) \
                 with no Transfer Syntax sub-item; PS3.8 9.3.3.2 asks for one (not \
                 significant when not accepted), and dicom-ul refuses the item without it",
            ),
        ),
        ("a_associate_rj", Pdu, Exact),
        ("a_release_rq", Pdu, Exact),
        ("a_release_rp", Pdu, Exact),
        ("a_abort", Pdu, Exact),
        ("a_p_abort", Pdu, Exact),
        ("p_data_tf", Pdu, Exact),
        ("p_data_tf_rq", Pdu, Exact),
        ("p_data_tf_n_event_report", Pdu, Exact),
        // A-ASSOCIATE variable items.
        ("application_context", RqItem, Exact),
        ("application_context_empty", RqItem, Exact),
        ("presentation_context_rq", RqItem, Exact),
        (
            "presentation_context_rq_utf8",
            RqItem,
            Zeroed(
                &[105],
                "the item's second reserved byte is FFH; dicom-ul writes 00H (its abstract \
                 syntax, a UID with U+200B between components, goes through unchanged)",
            ),
        ),
        ("presentation_context_ac", AcItem, Exact),
        ("user_information", RqItem, Exact),
        ("abstract_syntax", SyntaxSubItem, Exact),
        ("transfer_syntax", SyntaxSubItem, Exact),
        // User information sub-items.
        ("maximum_length_received", RqUserSubItem, Exact),
        ("implementation_class_uid", RqUserSubItem, Exact),
        ("implementation_class_uid_empty", RqUserSubItem, Exact),
        ("implementation_version_name", RqUserSubItem, Exact),
        ("implementation_version_name_empty", RqUserSubItem, Exact),
        ("asynchronous_window_ops", RqUserSubItem, Exact),
        ("role_selection", RqUserSubItem, Exact),
        ("role_selection_odd", RqUserSubItem, Exact),
        ("extended_negotiation", RqUserSubItem, Exact),
        ("common_extended_negotiation", RqUserSubItem, Exact),
        ("user_identity_rq_user_nopw", RqUserSubItem, Exact),
        ("user_identity_rq_user_pass", RqUserSubItem, Exact),
        ("user_identity_ac", AcUserSubItem, Exact),
        // P-DATA-TF contents.
        ("presentation_data_value", PdvItem, Exact),
        ("presentation_data", PdvContent, Exact),
    ]
};

/// A PDU: type, reserved byte, 4-byte length, body.
fn pdu(pdu_type: u8, body: &[u8]) -> Vec<u8> {
    let mut out = vec![pdu_type, 0];
    out.extend_from_slice(&u32::try_from(body.len()).unwrap().to_be_bytes());
    out.extend_from_slice(body);
    out
}

/// An item with a 2-byte length: type, reserved byte, length, body.
fn item(item_type: u8, body: &[u8]) -> Vec<u8> {
    let mut out = vec![item_type, 0];
    out.extend_from_slice(&u16::try_from(body.len()).unwrap().to_be_bytes());
    out.extend_from_slice(body);
    out
}

/// An A-ASSOCIATE-RQ (`0x01`) or -AC (`0x02`) with these variable items.
fn associate(pdu_type: u8, items: &[&[u8]]) -> Vec<u8> {
    let mut body = vec![0, 1, 0, 0];
    body.extend_from_slice(b"ANY-SCP         ");
    body.extend_from_slice(b"ECHOSCU         ");
    body.extend_from_slice(&[0; 32]);
    for i in items {
        body.extend_from_slice(i);
    }
    pdu(pdu_type, &body)
}

/// The bytes to parse for fixture `name` put in `carrier`.
fn carried(name: &str, carrier: Carrier, fixtures: &BTreeMap<String, Vec<u8>>) -> Vec<u8> {
    let f = |n: &str| -> &[u8] { &fixtures[n] };
    let own = f(name);
    // The defaults the single items replace, themselves fixtures.
    let app = f("application_context");
    let pc_rq = f("presentation_context_rq");
    let pc_ac = f("presentation_context_ac");
    let user = item(0x50, f("maximum_length_received"));
    let pick = |default: &'static str| {
        if own[0] == f(default)[0] {
            own
        } else {
            f(default)
        }
    };
    match carrier {
        Carrier::Pdu => own.to_vec(),
        Carrier::RqItem => {
            let user_now = if own[0] == 0x50 { own } else { &user };
            associate(
                0x01,
                &[
                    pick("application_context"),
                    pick("presentation_context_rq"),
                    user_now,
                ],
            )
        }
        Carrier::AcItem => associate(
            0x02,
            &[
                pick("application_context"),
                pick("presentation_context_ac"),
                &user,
            ],
        ),
        Carrier::RqUserSubItem => associate(0x01, &[app, pc_rq, &item(0x50, own)]),
        Carrier::AcUserSubItem => associate(0x02, &[app, pc_ac, &item(0x50, own)]),
        Carrier::SyntaxSubItem => {
            let mut body = vec![1, 0, 0, 0];
            body.extend_from_slice(pick("abstract_syntax"));
            body.extend_from_slice(pick("transfer_syntax"));
            associate(0x01, &[app, &item(0x20, &body), &user])
        }
        Carrier::PdvItem => pdu(0x04, own),
        Carrier::PdvContent => {
            let mut pdv = u32::try_from(own.len() + 1).unwrap().to_be_bytes().to_vec();
            pdv.push(1);
            pdv.extend_from_slice(own);
            pdu(0x04, &pdv)
        }
    }
}

/// What happened to `bytes` through dicom-ul.
enum Outcome {
    Exact,
    Differs(Vec<u8>),
    Unwritable(String),
    Unreadable(String),
}

fn round_trip(bytes: &[u8]) -> Outcome {
    let mut buf = bytes;
    let parsed = match dicom_ul::read_pdu(&mut buf, dicom_ul::pdu::MAXIMUM_PDU_SIZE, true) {
        Ok(Some(p)) => p,
        Ok(None) => return Outcome::Unreadable("read_pdu: incomplete PDU".into()),
        Err(e) => return Outcome::Unreadable(format!("read_pdu: {e}")),
    };
    if !buf.is_empty() {
        return Outcome::Unreadable(format!("read_pdu left {} bytes unread", buf.len()));
    }
    let mut out = Vec::new();
    if let Err(e) = dicom_ul::write_pdu(&mut out, &parsed) {
        return Outcome::Unwritable(format!("write_pdu of {parsed:?}: {e}"));
    }
    if out == bytes {
        Outcome::Exact
    } else {
        Outcome::Differs(out)
    }
}

/// Whether `out` is `bytes` with exactly the bytes at `offsets` changed, to zero.
fn zeroed_at(bytes: &[u8], out: &[u8], offsets: &[usize]) -> bool {
    bytes.len() == out.len()
        && bytes.iter().zip(out).enumerate().all(|(i, (a, b))| {
            if offsets.contains(&i) {
                *a != 0 && *b == 0
            } else {
                a == b
            }
        })
}

fn from_hex(s: &str) -> Vec<u8> {
    assert!(s.len().is_multiple_of(2), "odd hex length");
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).expect("hex"))
        .collect()
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

#[test]
fn pynetdicom_pdu_fixtures_round_trip_through_dicom_ul() {
    let test = "pynetdicom_pdu_fixtures_round_trip_through_dicom_ul";
    let Some(python) = reference_python_with(test, "pynetdicom") else {
        return;
    };
    let out = run_reference(&python, "pdu_fixtures.py", &Default::default());
    let version = out["version"].as_str().expect("version");
    let fixtures: BTreeMap<String, Vec<u8>> = out["fixtures"]
        .as_object()
        .expect("fixtures")
        .iter()
        .map(|(k, v)| (k.clone(), from_hex(v.as_str().expect("hex string"))))
        .collect();
    eprintln!("pynetdicom {version}: {} fixtures", fixtures.len());

    let mut failures = Vec::new();
    let cases: BTreeMap<&str, (Carrier, Expect)> =
        CASES.iter().map(|&(n, c, e)| (n, (c, e))).collect();
    for name in fixtures.keys() {
        if !cases.contains_key(name.as_str()) {
            failures.push(format!(
                "{name}: a fixture this test does not know; add it to CASES"
            ));
        }
    }
    let mut exact = 0;
    for (&name, &(carrier, expect)) in &cases {
        if !fixtures.contains_key(name) {
            failures.push(format!(
                "{name}: in CASES but not among pynetdicom {version}'s fixtures"
            ));
            continue;
        }
        let bytes = carried(name, carrier, &fixtures);
        let outcome = round_trip(&bytes);
        let seen = match &outcome {
            Outcome::Exact => {
                exact += 1;
                "byte-exact".to_string()
            }
            Outcome::Differs(out) => {
                let at = bytes.iter().zip(out).position(|(a, b)| a != b);
                format!(
                    "differs (first at byte {}, {} -> {} bytes)\n    in:  {}\n    out: {}",
                    at.unwrap_or(bytes.len().min(out.len())),
                    bytes.len(),
                    out.len(),
                    hex(&bytes),
                    hex(out)
                )
            }
            Outcome::Unwritable(e) => format!("unwritable: {e}\n    in:  {}", hex(&bytes)),
            Outcome::Unreadable(e) => format!("unreadable: {e}\n    in:  {}", hex(&bytes)),
        };
        eprintln!("{name} ({carrier:?}): {seen}");
        if let Some(why) = expect.reason() {
            eprintln!("    expected: {why}");
        }
        let as_expected = match (&outcome, expect) {
            (Outcome::Exact, Expect::Exact)
            | (Outcome::Unwritable(_), Expect::Unwritable(_))
            | (Outcome::Unreadable(_), Expect::Unreadable(_)) => true,
            (Outcome::Differs(out), Expect::Zeroed(offsets, _)) => zeroed_at(&bytes, out, offsets),
            _ => false,
        };
        if !as_expected {
            failures.push(format!(
                "{name} ({carrier:?}): expected {expect:?}, got {seen}"
            ));
        }
    }
    eprintln!(
        "{exact} of {} fixtures round-trip byte for byte",
        cases.len()
    );
    assert!(
        failures.is_empty(),
        "dicom-ul's handling of pynetdicom {version}'s fixtures changed:\n{}",
        failures.join("\n")
    );
}

/// One whole PDU from `stream`, or `None` at its end.
fn read_raw_pdu(stream: &mut TcpStream) -> Option<Vec<u8>> {
    let mut pdu = vec![0; 6];
    stream.read_exact(&mut pdu).ok()?;
    let len = u32::from_be_bytes(pdu[2..6].try_into().unwrap()) as usize;
    pdu.resize(6 + len, 0);
    stream.read_exact(&mut pdu[6..]).ok()?;
    Some(pdu)
}

/// The PDUs that passed a relay, in order, each with who sent it (`"scu"` or `"scp"`).
type Recorded = Vec<(&'static str, Vec<u8>)>;

/// A relay for one connection to `target`, on the port returned, recording each PDU that
/// passes; join the handle after the connection ends.
fn recording_relay(target: SocketAddr) -> (u16, thread::JoinHandle<Recorded>) {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind the relay");
    let port = listener.local_addr().unwrap().port();
    let handle = thread::spawn(move || {
        let (scu, _) = listener.accept().expect("accept the SCU");
        let scp = TcpStream::connect(target).expect("connect to the SCP");
        let log = Arc::new(Mutex::new(Vec::new()));
        let pump = |from: &'static str, mut rx: TcpStream, mut tx: TcpStream| {
            let log = Arc::clone(&log);
            thread::spawn(move || {
                rx.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
                while let Some(pdu) = read_raw_pdu(&mut rx) {
                    log.lock().unwrap().push((from, pdu.clone()));
                    if tx.write_all(&pdu).is_err() {
                        break;
                    }
                }
                let _ = tx.shutdown(Shutdown::Write);
            })
        };
        let up = pump("scu", scu.try_clone().unwrap(), scp.try_clone().unwrap());
        let down = pump("scp", scp, scu);
        up.join().unwrap();
        down.join().unwrap();
        Arc::try_unwrap(log).unwrap().into_inner().unwrap()
    });
    (port, handle)
}

struct NothingStored;

impl radlab_net::StoreHandler for NothingStored {
    fn store(&self, _: &radlab_net::ReceivedObject<'_>) -> radlab_net::StoreOutcome {
        radlab_net::StoreOutcome::Stored
    }
}

/// The PDUs radlab's SCU and SCP send (a C-ECHO with its association and release, and an
/// association the SCP rejects), read by pynetdicom: each must decode and pynetdicom's
/// encoding of what it decoded must be the same bytes.
#[test]
fn pynetdicom_reads_the_pdus_radlab_sends() {
    let test = "pynetdicom_reads_the_pdus_radlab_sends";
    let Some(python) = reference_python_with(test, "pynetdicom") else {
        return;
    };
    let staging = tempfile::tempdir().expect("staging dir");
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind the SCP");
    let scp_addr = listener.local_addr().unwrap();
    let config = radlab_net::ScpConfig {
        ae_title: "RADLAB".into(),
        staging_dir: staging.path().to_path_buf(),
        ..Default::default()
    };
    thread::spawn(move || radlab_net::serve(listener, config, Arc::new(NothingStored)));

    let mut sent = BTreeMap::new();
    for (called, ok) in [("RADLAB", true), ("SOMEONE-ELSE", false)] {
        let (port, relay) = recording_relay(scp_addr);
        let peer = radlab_net::scu::Peer {
            host: "127.0.0.1".into(),
            port,
            called_ae_title: called.into(),
            calling_ae_title: "PDUTEST".into(),
            timeout: Duration::from_secs(20),
            max_pdu: 16_384,
        };
        let echo = radlab_net::scu::echo(&peer);
        assert_eq!(echo.is_ok(), ok, "C-ECHO calling {called}: {echo:?}");
        for (i, (from, pdu)) in relay.join().expect("relay").into_iter().enumerate() {
            sent.insert(format!("calling {called}, PDU {i} from our {from}"), pdu);
        }
    }
    let kinds: Vec<u8> = sent.values().map(|p| p[0]).collect();
    for kind in 1..=6 {
        assert!(
            kinds.contains(&kind),
            "no PDU of type {kind} among {kinds:?}"
        );
    }

    let query = serde_json::json!({
        "decode": sent.iter().map(|(k, v)| (k.clone(), hex(v))).collect::<BTreeMap<_, _>>()
    });
    let out = run_reference(&python, "pdu_fixtures.py", &query);
    let version = out["version"].as_str().expect("version");
    let mut failures = Vec::new();
    for (name, pdu) in &sent {
        let got = &out["decoded"][name];
        eprintln!("{name}: {} -> {}", hex(pdu), got["type"]);
        if let Some(e) = got["error"].as_str() {
            failures.push(format!(
                "{name}: pynetdicom cannot decode {}: {e}",
                hex(pdu)
            ));
        } else if got["reencoded"].as_str() != Some(hex(pdu).as_str()) {
            failures.push(format!(
                "{name}: pynetdicom re-encodes differently\n    ours:       {}\n    pynetdicom: {}\n{}",
                hex(pdu),
                got["reencoded"],
                got["text"].as_str().unwrap_or_default()
            ));
        }
    }
    eprintln!("pynetdicom {version} read {} PDUs of radlab's", sent.len());
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}
