//! Opening DICOM files: Part 10 with or without preamble, and bare ACR-NEMA style data sets.

use std::io::ErrorKind;
use std::path::Path;

use dicom_core::Tag;
use dicom_dictionary_std::tags;
use dicom_encoding::TransferSyntaxIndex;
use dicom_object::{
    DefaultDicomObject, FileMetaTableBuilder, InMemDicomObject, OpenFileOptions, file::ReadPreamble,
};
use dicom_transfer_syntax_registry::{TransferSyntaxRegistry, entries};

use crate::error::{DicomError, Result};
use crate::lengths;
use crate::uid::derived_uid;

/// How the file was framed on disk.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Framing {
    /// 128-byte preamble, `DICM`, file meta group.
    Part10,
    /// `DICM` and file meta group without the preamble.
    Part10NoPreamble,
    /// A bare data set with no file meta (ACR-NEMA style); the transfer syntax was inferred.
    BareDataSet,
}

/// A parsed DICOM object with how it was framed.
pub struct DicomFile {
    object: DefaultDicomObject,
    framing: Framing,
}

impl std::fmt::Debug for DicomFile {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DicomFile")
            .field("framing", &self.framing)
            .field("transfer_syntax", &self.transfer_syntax())
            .finish()
    }
}

impl DicomFile {
    /// Read and parse the file at `path`.
    pub fn open(path: impl AsRef<Path>) -> Result<Self> {
        let bytes = std::fs::read(path.as_ref())?;
        Self::from_bytes(&bytes)
    }

    /// Parse a whole file held in memory.
    pub fn from_bytes(bytes: &[u8]) -> Result<Self> {
        if bytes.len() >= 132 && &bytes[128..132] == b"DICM" {
            return Self::from_part10(&bytes[128..], Framing::Part10);
        }
        if bytes.len() >= 4 && &bytes[..4] == b"DICM" {
            return Self::from_part10(bytes, Framing::Part10NoPreamble);
        }
        Self::from_bare_data_set(bytes)
    }

    fn from_part10(from_dicm: &[u8], framing: Framing) -> Result<Self> {
        let offset = match framing {
            Framing::Part10 => 128,
            _ => 0,
        };
        // dicom-rs trusts declared lengths (it allocates them before reading): check them first.
        lengths::check_part10(from_dicm, offset)?;
        let object = OpenFileOptions::new()
            .read_preamble(ReadPreamble::Never)
            .from_reader(from_dicm)
            .map_err(|e| classify_read_error(&e))?;
        Ok(DicomFile { object, framing })
    }

    /// ACR-NEMA files and some exports carry no preamble and no meta group. We accept them
    /// only when the first element is a plausible data set element, so that arbitrary bytes
    /// are not mistaken for DICOM.
    fn from_bare_data_set(bytes: &[u8]) -> Result<Self> {
        let ts_uid = guess_bare_transfer_syntax(bytes).ok_or_else(|| {
            DicomError::NotDicom(
                "no DICM marker at byte 128 or 0, and the data does not start with a DICOM \
                 element (expected group 0008 in little endian)"
                    .into(),
            )
        })?;
        let ts = TransferSyntaxRegistry
            .get(ts_uid)
            .expect("built-in transfer syntax is registered");
        lengths::check_data_set(bytes, 0, 0, ts)?;
        let dataset = InMemDicomObject::read_dataset_with_ts(bytes, ts)
            .map_err(|e| classify_read_error(&e))?;
        let sop_instance = string_of(&dataset, tags::SOP_INSTANCE_UID)
            .unwrap_or_else(|| derived_uid("radlab:acr-nema-sop", bytes));
        let sop_class = string_of(&dataset, tags::SOP_CLASS_UID)
            .unwrap_or_else(|| "1.2.840.10008.5.1.4.1.1.7".to_string());
        let object = dataset
            .with_meta(
                FileMetaTableBuilder::new()
                    .transfer_syntax(ts_uid)
                    .media_storage_sop_class_uid(sop_class)
                    .media_storage_sop_instance_uid(sop_instance),
            )
            .map_err(|e| DicomError::Parse(format!("cannot build a file meta group: {e}")))?;
        Ok(DicomFile {
            object,
            framing: Framing::BareDataSet,
        })
    }

    pub fn object(&self) -> &DefaultDicomObject {
        &self.object
    }

    pub fn into_object(self) -> DefaultDicomObject {
        self.object
    }

    pub fn framing(&self) -> Framing {
        self.framing
    }

    /// The transfer syntax UID, without trailing padding.
    pub fn transfer_syntax(&self) -> &str {
        self.object
            .meta()
            .transfer_syntax()
            .trim_end_matches(['\0', ' '])
    }

    /// Wrap an object built in memory.
    pub fn from_object(object: DefaultDicomObject) -> Self {
        DicomFile {
            object,
            framing: Framing::Part10,
        }
    }
}

fn string_of(obj: &InMemDicomObject, tag: Tag) -> Option<String> {
    let s = obj.get(tag)?.to_str().ok()?;
    let s = s.trim_matches(['\0', ' ']);
    (!s.is_empty()).then(|| s.to_string())
}

/// Little endian implicit or explicit VR, judged from the first element header.
fn guess_bare_transfer_syntax(bytes: &[u8]) -> Option<&'static str> {
    if bytes.len() < 8 {
        return None;
    }
    let group = u16::from_le_bytes([bytes[0], bytes[1]]);
    // Bare data sets start with the identifying group (optionally its group length at 0008,0000)
    // or, rarely, a command group; anything else is not a data set.
    if !matches!(group, 0x0000 | 0x0002 | 0x0008) {
        return None;
    }
    let vr = &bytes[4..6];
    let explicit = vr.iter().all(u8::is_ascii_uppercase)
        && dicom_core::VR::from_binary([vr[0], vr[1]]).is_some();
    Some(if explicit {
        entries::EXPLICIT_VR_LITTLE_ENDIAN.uid()
    } else {
        entries::IMPLICIT_VR_LITTLE_ENDIAN.uid()
    })
}

/// Map a parser error to our error, telling a file that ends early from one that is malformed.
fn classify_read_error(err: &(dyn std::error::Error + 'static)) -> DicomError {
    let message = full_message(err);
    let mut source: Option<&(dyn std::error::Error + 'static)> = Some(err);
    while let Some(e) = source {
        let eof = e
            .downcast_ref::<std::io::Error>()
            .is_some_and(|io| io.kind() == ErrorKind::UnexpectedEof);
        let text = e.to_string();
        if eof || text.contains("end of file") || text.contains("UnexpectedEof") {
            return DicomError::Truncated(message);
        }
        source = e.source();
    }
    if message.contains("magic code") || message.contains("DICM") {
        DicomError::NotDicom(message)
    } else {
        DicomError::Parse(message)
    }
}

/// The error with its chain of causes, one line.
fn full_message(err: &(dyn std::error::Error + 'static)) -> String {
    let mut out = err.to_string();
    let mut source = err.source();
    while let Some(e) = source {
        let text = e.to_string();
        if !out.contains(&text) {
            out.push_str(": ");
            out.push_str(&text);
        }
        source = e.source();
    }
    out
}
