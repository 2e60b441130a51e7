//! Query/retrieve as a provider (SCP role of the Study Root Query/Retrieve Information Model,
//! FIND and MOVE): what a C-FIND or C-MOVE identifier asks for, read into [`QueryKeys`]
//! (PS3.4 C.2.2.2: universal, single value, wildcard, list of UID and date range matching),
//! the answer identifiers built from a [`QueryRetrieve`] provider's values with the return
//! keys that were asked for, and the data set of a stored object cut out of its Part 10
//! file for a C-STORE sub-operation. The provider (the `radlab` binary: one project of the
//! catalog) does the matching it can ([`QueryKeys`]); keys it cannot are matched here on
//! the values it returns, and a pending answer says `FF01` when one could not be matched at
//! all.

use std::collections::BTreeMap;

use dicom_core::dictionary::DataDictionary;
use dicom_core::{DataElement, PrimitiveValue, Tag, VR};
use dicom_encoding::transfer_syntax::TransferSyntaxIndex;
use dicom_object::{InMemDicomObject, StandardDataDictionary};
use dicom_transfer_syntax_registry::TransferSyntaxRegistry;

use crate::dimse::status;

pub use crate::scu::{STUDY_ROOT_FIND, STUDY_ROOT_MOVE};

/// Query/Retrieve Level (0008,0052) of the Study Root model.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Level {
    Study,
    Series,
    Image,
}

impl Level {
    pub fn name(self) -> &'static str {
        match self {
            Level::Study => "STUDY",
            Level::Series => "SERIES",
            Level::Image => "IMAGE",
        }
    }
}

/// The matching keys of an identifier that a provider matches itself. Empty lists and
/// `None` match everything; text values may hold the wildcards `*` and `?`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QueryKeys {
    pub level: Level,
    /// List of UID matching: any of them.
    pub study_instance_uids: Vec<String>,
    pub series_instance_uids: Vec<String>,
    pub sop_instance_uids: Vec<String>,
    /// Modalities in Study (0008,0061) at study level, Modality (0008,0060) below: any of
    /// them.
    pub modalities: Vec<String>,
    pub patient_id: Option<String>,
    pub patient_name: Option<String>,
    pub accession_number: Option<String>,
    pub study_description: Option<String>,
    pub series_description: Option<String>,
    pub body_part_examined: Option<String>,
    pub sop_class_uid: Option<String>,
    /// Study Date (`YYYYMMDD`), an inclusive range whose ends may be open.
    pub study_date: Option<(Option<String>, Option<String>)>,
    pub series_number: Option<i64>,
    pub instance_number: Option<i64>,
}

impl QueryKeys {
    pub fn new(level: Level) -> QueryKeys {
        QueryKeys {
            level,
            study_instance_uids: Vec::new(),
            series_instance_uids: Vec::new(),
            sop_instance_uids: Vec::new(),
            modalities: Vec::new(),
            patient_id: None,
            patient_name: None,
            accession_number: None,
            study_description: None,
            series_description: None,
            body_part_examined: None,
            sop_class_uid: None,
            study_date: None,
            series_number: None,
            instance_number: None,
        }
    }
}

/// One catalogued object to send in a C-MOVE sub-operation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredInstance {
    pub sop_class_uid: String,
    pub sop_instance_uid: String,
    pub transfer_syntax_uid: String,
    /// Where the provider finds its bytes (the blob hash).
    pub key: String,
}

/// A match: attribute values by tag, as text (several values joined by `\`).
pub type Match = BTreeMap<u32, String>;

/// The catalog side of query/retrieve; called from the association threads, several at
/// once. Errors are short texts for the log and the Error Comment (no patient data).
pub trait QueryRetrieve: Send + Sync + 'static {
    /// The matches of `keys` at their level, with the values of the attributes the provider
    /// knows at that level.
    fn find(&self, keys: &QueryKeys) -> Result<Vec<Match>, String>;
    /// The instances under the entities `keys` match (for C-MOVE).
    fn instances(&self, keys: &QueryKeys) -> Result<Vec<StoredInstance>, String>;
    /// The stored object's bytes (a Part 10 file, or a bare data set).
    fn load(&self, instance: &StoredInstance) -> Result<Vec<u8>, String>;
}

/// A peer C-MOVE may send to: `AET=HOST:PORT`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MovePeer {
    pub ae_title: String,
    pub host: String,
    pub port: u16,
}

impl std::str::FromStr for MovePeer {
    type Err = String;
    fn from_str(s: &str) -> Result<MovePeer, String> {
        let bad = || format!("{s:?} is not AET=HOST:PORT");
        let (aet, address) = s.split_once('=').ok_or_else(bad)?;
        let (host, port) = address.rsplit_once(':').ok_or_else(bad)?;
        let port: u16 = port.parse().map_err(|_| bad())?;
        let host = host.trim_start_matches('[').trim_end_matches(']');
        crate::scp::check_ae_title(aet.trim()).map_err(|e| e.to_string())?;
        if host.is_empty() || port == 0 {
            return Err(bad());
        }
        Ok(MovePeer {
            ae_title: aet.trim().to_string(),
            host: host.to_string(),
            port,
        })
    }
}

/// Query/retrieve for the SCP: the provider and the peers C-MOVE may send to.
#[derive(Clone)]
pub struct QueryRetrieveConfig {
    pub provider: std::sync::Arc<dyn QueryRetrieve>,
    pub peers: Vec<MovePeer>,
}

/// A C-FIND or C-MOVE identifier, read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Query {
    pub keys: QueryKeys,
    /// The top-level attributes of the identifier (return keys), in tag order; sequences and
    /// Query/Retrieve Level left out.
    pub requested: Vec<u32>,
    /// Keys with a value the provider does not match: matched here on the values of each
    /// match; one the match has no value for cannot be matched (`FF01`).
    pub extra: Vec<(u32, String)>,
}

const QUERY_RETRIEVE_LEVEL: u32 = 0x0008_0052;
const SPECIFIC_CHARACTER_SET: u32 = 0x0008_0005;
const RETRIEVE_AE_TITLE: u32 = 0x0008_0054;
const MODALITIES_IN_STUDY: u32 = 0x0008_0061;
const MODALITY: u32 = 0x0008_0060;

fn dictionary_vr(tag: u32) -> VR {
    StandardDataDictionary
        .by_tag(Tag((tag >> 16) as u16, tag as u16))
        .map(|e| e.vr.relaxed())
        .unwrap_or(VR::UN)
}

fn transfer_syntax(uid: &str) -> Result<&'static dicom_encoding::TransferSyntax, String> {
    TransferSyntaxRegistry
        .get(uid)
        .ok_or_else(|| format!("unknown transfer syntax {uid}"))
}

/// The top-level elements of an identifier in `transfer_syntax`: tag and text value
/// (`None` for a sequence).
pub fn read_identifier(
    bytes: &[u8],
    transfer_syntax_uid: &str,
) -> Result<Vec<(u32, Option<String>)>, String> {
    let ts = transfer_syntax(transfer_syntax_uid)?;
    let object = InMemDicomObject::read_dataset_with_ts(bytes, ts)
        .map_err(|e| format!("the identifier does not parse: {e}"))?;
    Ok(object
        .iter()
        .map(|e| {
            let tag = e.header().tag;
            let tag = (u32::from(tag.0) << 16) | u32::from(tag.1);
            let value = match e.value() {
                dicom_core::value::Value::Primitive(p) => Some(
                    p.to_str()
                        .trim_matches(|c: char| c == ' ' || c == '\0')
                        .to_string(),
                ),
                _ => None,
            };
            (tag, value)
        })
        .collect())
}

fn failure(status: u16, comment: impl Into<String>) -> (u16, String) {
    (status, comment.into())
}

/// A date range value (`D`, `D-`, `-D`, `D1-D2`; dots of the old `YYYY.MM.DD` form dropped).
fn date_range(value: &str) -> Option<(Option<String>, Option<String>)> {
    let end = |s: &str| -> Option<Option<String>> {
        let s: String = s.trim().chars().filter(|c| *c != '.').collect();
        if s.is_empty() {
            Some(None)
        } else if s.len() == 8 && s.bytes().all(|b| b.is_ascii_digit()) {
            Some(Some(s))
        } else {
            None
        }
    };
    match value.split_once('-') {
        Some((from, to)) => {
            let range = (end(from)?, end(to)?);
            (range.0.is_some() || range.1.is_some()).then_some(range)
        }
        None => {
            let d = end(value)??;
            Some((Some(d.clone()), Some(d)))
        }
    }
}

/// Read an identifier's elements into a query (`A900` when the level is missing or not
/// one of the Study Root's, `C000` for a value that cannot be a key of its kind).
pub fn parse_query(elements: &[(u32, Option<String>)]) -> Result<Query, (u16, String)> {
    let level = elements
        .iter()
        .find(|(t, _)| *t == QUERY_RETRIEVE_LEVEL)
        .and_then(|(_, v)| v.as_deref())
        .ok_or_else(|| failure(status::IDENTIFIER_MISMATCH, "no Query/Retrieve Level"))?;
    let level = match level {
        "STUDY" => Level::Study,
        "SERIES" => Level::Series,
        "IMAGE" => Level::Image,
        other => {
            return Err(failure(
                status::IDENTIFIER_MISMATCH,
                format!("Query/Retrieve Level {other:?} is not STUDY, SERIES or IMAGE"),
            ));
        }
    };
    let mut keys = QueryKeys::new(level);
    let mut requested = Vec::new();
    let mut extra = Vec::new();
    for (tag, value) in elements {
        let tag = *tag;
        if tag == QUERY_RETRIEVE_LEVEL || tag >> 16 == 0x0002 {
            continue;
        }
        let Some(value) = value else {
            // A sequence: neither matched nor returned.
            continue;
        };
        requested.push(tag);
        if value.is_empty() || value == "*" || tag == SPECIFIC_CHARACTER_SET {
            continue;
        }
        let list = || -> Vec<String> {
            value
                .split('\\')
                .map(|v| v.trim().to_string())
                .filter(|v| !v.is_empty())
                .collect()
        };
        let text = || Some(value.clone());
        let number = || -> Result<Option<i64>, (u16, String)> {
            value.trim().parse().map(Some).map_err(|_| {
                failure(
                    status::UNABLE_TO_PROCESS,
                    format!("({:04X},{:04X}) is not a number", tag >> 16, tag & 0xFFFF),
                )
            })
        };
        match tag {
            0x0020_000D => keys.study_instance_uids = list(),
            0x0020_000E => keys.series_instance_uids = list(),
            0x0008_0018 => keys.sop_instance_uids = list(),
            MODALITIES_IN_STUDY if level == Level::Study => keys.modalities = list(),
            MODALITY if level != Level::Study => keys.modalities = list(),
            0x0010_0020 => keys.patient_id = text(),
            0x0010_0010 => keys.patient_name = text(),
            0x0008_0050 => keys.accession_number = text(),
            0x0008_1030 => keys.study_description = text(),
            0x0008_103E => keys.series_description = text(),
            0x0018_0015 => keys.body_part_examined = text(),
            0x0008_0016 => keys.sop_class_uid = text(),
            0x0008_0020 => {
                keys.study_date = Some(date_range(value).ok_or_else(|| {
                    failure(
                        status::UNABLE_TO_PROCESS,
                        "Study Date is not a date or a date range",
                    )
                })?)
            }
            0x0020_0011 => keys.series_number = number()?,
            0x0020_0013 => keys.instance_number = number()?,
            _ => extra.push((tag, value.clone())),
        }
    }
    requested.sort_unstable();
    requested.dedup();
    Ok(Query {
        keys,
        requested,
        extra,
    })
}

/// PS3.4 C.2.2.2 on one value: a list (any of its values), a range for dates and times, or
/// a single value with `*` and `?`.
fn value_matches(tag: u32, pattern: &str, value: &str) -> bool {
    if pattern.contains('\\') {
        return pattern.split('\\').any(|p| value_matches(tag, p, value));
    }
    let vr = dictionary_vr(tag);
    if matches!(vr, VR::DA | VR::TM | VR::DT)
        && let Some((from, to)) = pattern.split_once('-')
    {
        let (from, to) = (from.trim(), to.trim());
        return !value.is_empty()
            && (from.is_empty() || value >= from)
            && (to.is_empty() || value <= to);
    }
    wildcard(pattern.as_bytes(), value.as_bytes())
}

fn wildcard(p: &[u8], v: &[u8]) -> bool {
    match p.split_first() {
        None => v.is_empty(),
        Some((b'*', rest)) => (0..=v.len()).any(|i| wildcard(rest, &v[i..])),
        Some((b'?', rest)) => !v.is_empty() && wildcard(rest, &v[1..]),
        Some((c, rest)) => v.first() == Some(c) && wildcard(rest, &v[1..]),
    }
}

/// Whether a match passes the keys the provider did not match, and whether each of them
/// could be matched (the match had a value for it).
pub fn matches_extra(query: &Query, m: &Match) -> (bool, bool) {
    let mut all_matched = true;
    for (tag, pattern) in &query.extra {
        match m.get(tag) {
            Some(value) => {
                if !value_matches(*tag, pattern, value) {
                    return (false, true);
                }
            }
            None => all_matched = false,
        }
    }
    (true, all_matched)
}

/// A C-FIND answer: Query/Retrieve Level, then every requested key with the match's value
/// (empty where it has none), Retrieve AE Title our AE title, and Specific Character Set
/// ISO_IR 192 when a value is not ASCII; encoded in `transfer_syntax`.
pub fn encode_match(
    query: &Query,
    m: &Match,
    retrieve_ae_title: &str,
    transfer_syntax_uid: &str,
) -> Result<Vec<u8>, String> {
    let ts = transfer_syntax(transfer_syntax_uid)?;
    let mut object = InMemDicomObject::new_empty();
    let mut put = |tag: u32, value: &str| {
        let vr = dictionary_vr(tag);
        let value = match vr {
            _ if value.is_empty() => PrimitiveValue::Empty,
            VR::US => value
                .parse::<u16>()
                .map(PrimitiveValue::from)
                .unwrap_or(PrimitiveValue::Empty),
            VR::UL => value
                .parse::<u32>()
                .map(PrimitiveValue::from)
                .unwrap_or(PrimitiveValue::Empty),
            VR::SS | VR::SL | VR::FL | VR::FD | VR::AT | VR::OB | VR::OW | VR::SQ | VR::UN => {
                PrimitiveValue::Empty
            }
            _ => {
                let mut v = value.to_string();
                if v.len() % 2 == 1 {
                    v.push(if vr == VR::UI { '\0' } else { ' ' });
                }
                PrimitiveValue::from(v)
            }
        };
        let vr = if vr == VR::SQ { VR::UN } else { vr };
        object.put(DataElement::new(
            Tag((tag >> 16) as u16, tag as u16),
            vr,
            value,
        ));
    };
    put(QUERY_RETRIEVE_LEVEL, query.keys.level.name());
    let mut non_ascii = false;
    for tag in &query.requested {
        let value = match *tag {
            RETRIEVE_AE_TITLE => retrieve_ae_title.trim(),
            SPECIFIC_CHARACTER_SET => continue,
            t => m.get(&t).map(String::as_str).unwrap_or(""),
        };
        non_ascii |= !value.is_ascii();
        put(*tag, value);
    }
    if non_ascii {
        put(SPECIFIC_CHARACTER_SET, "ISO_IR 192");
    } else if query.requested.contains(&SPECIFIC_CHARACTER_SET) {
        put(SPECIFIC_CHARACTER_SET, "");
    }
    let mut out = Vec::new();
    object
        .write_dataset_with_ts(&mut out, ts)
        .map_err(|e| format!("cannot encode an answer: {e}"))?;
    Ok(out)
}

/// The Failed SOP Instance UID List (0008,0058) of a final C-MOVE-RSP, as an identifier.
pub fn encode_failed_list(uids: &[String], transfer_syntax_uid: &str) -> Result<Vec<u8>, String> {
    let ts = transfer_syntax(transfer_syntax_uid)?;
    let mut value = uids.join("\\");
    if value.len() % 2 == 1 {
        value.push('\0');
    }
    let object = InMemDicomObject::from_element_iter([DataElement::new(
        Tag(0x0008, 0x0058),
        VR::UI,
        PrimitiveValue::from(value),
    )]);
    let mut out = Vec::new();
    object
        .write_dataset_with_ts(&mut out, ts)
        .map_err(|e| format!("cannot encode the failed list: {e}"))?;
    Ok(out)
}

/// The data set of a stored object: what follows the preamble and file meta group of a Part
/// 10 file (the whole of a bare data set).
pub fn data_set_of(bytes: &[u8]) -> Result<&[u8], String> {
    let mut at = if bytes.len() >= 132 && &bytes[128..132] == b"DICM" {
        132
    } else if bytes.starts_with(b"DICM") {
        4
    } else {
        return Ok(bytes);
    };
    // File meta elements: explicit VR little endian, group 0002.
    while let Some(h) = bytes.get(at..at + 8) {
        if u16::from_le_bytes([h[0], h[1]]) != 0x0002 {
            break;
        }
        let vr = &h[4..6];
        let long = matches!(
            vr,
            b"OB"
                | b"OW"
                | b"OF"
                | b"OD"
                | b"OL"
                | b"OV"
                | b"SQ"
                | b"UT"
                | b"UN"
                | b"UC"
                | b"UR"
                | b"SV"
                | b"UV"
        );
        let (len, header) = if long {
            let l = bytes
                .get(at + 8..at + 12)
                .ok_or("the file meta group is cut short")?;
            (u32::from_le_bytes([l[0], l[1], l[2], l[3]]) as usize, 12)
        } else {
            (u16::from_le_bytes([h[6], h[7]]) as usize, 8)
        };
        at = at
            .checked_add(header + len)
            .filter(|end| *end <= bytes.len())
            .ok_or("the file meta group is cut short")?;
    }
    Ok(&bytes[at..])
}

/// Re-encode a data set of an uncompressed transfer syntax in another one (implicit and
/// explicit VR little endian, when the destination accepted only the other one).
pub fn transcode(data_set: &[u8], from: &str, to: &str) -> Result<Vec<u8>, String> {
    let object = InMemDicomObject::read_dataset_with_ts(data_set, transfer_syntax(from)?)
        .map_err(|e| format!("the stored object does not parse: {e}"))?;
    let mut out = Vec::with_capacity(data_set.len() + 1024);
    object
        .write_dataset_with_ts(&mut out, transfer_syntax(to)?)
        .map_err(|e| format!("cannot re-encode the object: {e}"))?;
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    const IMPLICIT: &str = "1.2.840.10008.1.2";
    const EXPLICIT: &str = "1.2.840.10008.1.2.1";

    #[test]
    fn identifiers_read_into_keys() {
        let bytes = crate::dimse::encode_identifier(&[
            (0x0008_0052, "STUDY".into()),
            (0x0020_000D, "1.2.3\\1.2.4".into()),
            (0x0008_0020, "20040101-".into()),
            (0x0008_0061, "CR\\DX".into()),
            (0x0008_0050, "A*".into()),
            (0x0010_0040, "F".into()),
            (0x0008_0030, String::new()),
            (0x0020_1208, String::new()),
        ]);
        let q = parse_query(&read_identifier(&bytes, IMPLICIT).unwrap()).unwrap();
        assert_eq!(q.keys.level, Level::Study);
        assert_eq!(q.keys.study_instance_uids, ["1.2.3", "1.2.4"]);
        assert_eq!(
            q.keys.study_date,
            Some((Some("20040101".to_string()), None))
        );
        assert_eq!(q.keys.modalities, ["CR", "DX"]);
        assert_eq!(q.keys.accession_number.as_deref(), Some("A*"));
        assert_eq!(q.extra, [(0x0010_0040, "F".to_string())]);
        assert_eq!(
            q.requested,
            [
                0x0008_0020,
                0x0008_0030,
                0x0008_0050,
                0x0008_0061,
                0x0010_0040,
                0x0020_000D,
                0x0020_1208
            ]
        );
        let mut m = Match::new();
        m.insert(0x0010_0040, "F".into());
        assert_eq!(matches_extra(&q, &m), (true, true));
        m.insert(0x0010_0040, "M".into());
        assert!(!matches_extra(&q, &m).0);
        assert_eq!(matches_extra(&q, &Match::new()), (true, false));

        for (value, want) in [
            ("20040101", Some((Some("20040101"), Some("20040101")))),
            ("-20041231", Some((None, Some("20041231")))),
            (
                "2004.01.01-2004.12.31",
                Some((Some("20040101"), Some("20041231"))),
            ),
            ("2004", None),
            ("-", None),
        ] {
            let want = want.map(|(a, b): (Option<&str>, Option<&str>)| {
                (a.map(str::to_string), b.map(str::to_string))
            });
            assert_eq!(date_range(value), want, "{value}");
        }
        let no_level = crate::dimse::encode_identifier(&[(0x0020_000D, String::new())]);
        let e = parse_query(&read_identifier(&no_level, IMPLICIT).unwrap()).unwrap_err();
        assert_eq!(e.0, status::IDENTIFIER_MISMATCH);
    }

    #[test]
    fn wildcards_and_ranges() {
        assert!(value_matches(0x0008_0050, "A*1?", "ABC12"));
        assert!(!value_matches(0x0008_0050, "A*1?", "ABC1"));
        assert!(value_matches(0x0008_0050, "X\\ABC", "ABC"));
        assert!(value_matches(0x0008_0030, "0800-1200", "093000"));
        assert!(!value_matches(0x0008_0030, "0800-0900", "093000"));
        assert!(!value_matches(0x0008_0030, "-0900", ""));
    }

    #[test]
    fn answers_carry_the_requested_keys_in_both_encodings() {
        let bytes = crate::dimse::encode_identifier(&[
            (0x0008_0052, "IMAGE".into()),
            (0x0008_0018, String::new()),
            (0x0008_0054, String::new()),
            (0x0028_0010, String::new()),
            (0x0010_0010, String::new()),
            (0x0011_0010, String::new()),
        ]);
        let q = parse_query(&read_identifier(&bytes, IMPLICIT).unwrap()).unwrap();
        let mut m = Match::new();
        m.insert(0x0008_0018, "1.2.345".into());
        m.insert(0x0028_0010, "2048".into());
        m.insert(0x0010_0010, "Ünal^Ayşe".into());
        for ts in [IMPLICIT, EXPLICIT] {
            let out = encode_match(&q, &m, "RADLAB", ts).unwrap();
            let read: BTreeMap<u32, Option<String>> =
                read_identifier(&out, ts).unwrap().into_iter().collect();
            assert_eq!(read[&0x0008_0052].as_deref(), Some("IMAGE"));
            assert_eq!(read[&0x0008_0018].as_deref(), Some("1.2.345"));
            assert_eq!(read[&0x0008_0054].as_deref(), Some("RADLAB"));
            assert_eq!(read[&0x0028_0010].as_deref(), Some("2048"));
            assert_eq!(read[&0x0008_0005].as_deref(), Some("ISO_IR 192"));
            assert_eq!(read[&0x0011_0010].as_deref(), Some(""));
        }
        let list = encode_failed_list(&["1.2.3".into(), "1.2.45".into()], IMPLICIT).unwrap();
        let read = read_identifier(&list, IMPLICIT).unwrap();
        assert_eq!(read, [(0x0008_0058, Some("1.2.3\\1.2.45".to_string()))]);
    }

    #[test]
    fn data_sets_are_cut_out_of_part10_files() {
        let data = crate::dimse::encode_identifier(&[(0x0008_0018, "1.2.3".into())]);
        let meta = dicom_object::FileMetaTableBuilder::new()
            .media_storage_sop_class_uid("1.2.840.10008.5.1.4.1.1.1")
            .media_storage_sop_instance_uid("1.2.3")
            .transfer_syntax(IMPLICIT)
            .implementation_class_uid("1.2.3.4")
            .build()
            .unwrap();
        let mut file = vec![0u8; 128];
        file.extend_from_slice(b"DICM");
        meta.write(&mut file).unwrap();
        let head = file.len();
        file.extend_from_slice(&data);
        assert_eq!(data_set_of(&file).unwrap(), &data[..]);
        assert_eq!(data_set_of(&file[128..]).unwrap(), &data[..]);
        assert_eq!(data_set_of(&data).unwrap(), &data[..]);
        assert!(data_set_of(&file[..head - 3]).is_err());
        let explicit = transcode(&data, IMPLICIT, EXPLICIT).unwrap();
        assert_eq!(transcode(&explicit, EXPLICIT, IMPLICIT).unwrap(), data);
    }

    #[test]
    fn peers_parse() {
        let p: MovePeer = "STORESCP=127.0.0.1:11113".parse().unwrap();
        assert_eq!(p.ae_title, "STORESCP");
        assert_eq!(p.port, 11113);
        assert!("STORESCP=127.0.0.1".parse::<MovePeer>().is_err());
        assert!("127.0.0.1:104".parse::<MovePeer>().is_err());
    }
}
