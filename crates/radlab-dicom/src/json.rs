//! The DICOM JSON Model (PS3.18 Annex F.2), as WADO-RS metadata and QIDO-RS answers use it.
//! See [`dicom_json`] for the encoding rules.

use dicom_core::header::Header;
use dicom_core::value::{PrimitiveValue, Value as DicomValue};
use dicom_core::{Tag, VR};
use dicom_object::InMemDicomObject;
use dicom_object::mem::InMemElement;
use serde_json::{Map, Number, Value};

/// Pixel Data (7FE0,0010).
const PIXEL_DATA: Tag = Tag(0x7FE0, 0x0010);
/// Data Set Trailing Padding (FFFC,FFFC).
const DATA_SET_TRAILING_PADDING: Tag = Tag(0xFFFC, 0xFFFC);
/// Specific Character Set (0008,0005).
const SPECIFIC_CHARACTER_SET: Tag = Tag(0x0008, 0x0005);

/// How bulk data is written.
///
/// At the top level of the data set, binary values (VR OB, OD, OF, OL, OV, OW, UN) longer than
/// [`inline_limit`](Self::inline_limit) bytes, and Pixel Data (7FE0,0010) always (native or
/// encapsulated), are written as `{"vr": .., "BulkDataURI": bulk_uri(tag)}`, or left out
/// entirely when [`bulk_uri`](Self::bulk_uri) is `None`. Shorter ones are `InlineBinary`.
///
/// Inside sequences there is no BulkDataURI: a binary value up to the limit is
/// `InlineBinary` (Pixel Data included, e.g. an icon image), a longer one, or encapsulated
/// pixel data, is written as `{"vr": ..}` with its value left out.
#[derive(Clone, Copy)]
pub struct JsonOptions<'a> {
    /// Binary values longer than this many bytes, and top-level Pixel Data always, are bulk
    /// data; shorter ones are written as InlineBinary (base64).
    pub inline_limit: usize,
    /// Makes the BulkDataURI of a top-level element from its tag as 8 upper-case hex digits
    /// (e.g. `"7FE00010"`); `None`: leave bulk data out entirely (no key at all for top-level
    /// elements over the limit and for Pixel Data).
    pub bulk_uri: Option<&'a dyn Fn(&str) -> String>,
}

impl std::fmt::Debug for JsonOptions<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("JsonOptions")
            .field("inline_limit", &self.inline_limit)
            .field("bulk_uri", &self.bulk_uri.map(|_| "Fn(&str) -> String"))
            .finish()
    }
}

/// The data set (not the file meta group 0002) as a DICOM JSON object: keys are 8 upper-case
/// hex digits, in tag order. Works on a [`dicom_object::DefaultDicomObject`] too (it derefs
/// to its data set). See [`JsonOptions`] for bulk data, including bulk data inside sequences
/// (no BulkDataURI there: short values inline, longer ones without a value).
///
/// Each element is `{"vr": "XX", "Value": [...]}`. The rules followed:
///
/// - Group Length elements (gggg,0000) are left out (F.2.2), and so are the file meta group
///   (0002, also when a broken file repeats it inside the data set) and Data Set Trailing
///   Padding (FFFC,FFFC), which carries nothing.
/// - An element with an empty value is `{"vr": ..}` with no `Value` (F.2.5); an empty value
///   among several (`A\` or `\B`) is `null`.
/// - Text (AE, AS, CS, DA, DT, LO, SH, TM, UC, UI) is split on the backslash; LT, ST, UT and
///   UR are single-valued and never split. Trailing spaces and NULs are padding and removed
///   from every text value; leading spaces are removed too where PS3.5 calls them
///   insignificant (AE, CS, DS, IS, LO, SH) and kept where they are significant (LT, ST, UT,
///   UC, PN...).
/// - PN is `{"Alphabetic": .., "Ideographic": .., "Phonetic": ..}` from the `=`-separated
///   component groups, empty groups left out, trailing empty components dropped (`Doe^^^` is
///   `Doe`; PS3.5 6.2.1 makes them equivalent); a name of separators only is empty.
/// - Text is decoded with the Specific Character Set, so every string is Unicode and the JSON
///   is UTF-8: a Specific Character Set (0008,0005), when present (even empty), is written as
///   `"ISO_IR 192"` (as dcmtk's `dcm2json` does), so that a reader turning the JSON back into
///   binary DICOM encodes the text in the character set it is actually in.
/// - IS and DS are JSON numbers (DS `"1.5"` → `1.5`, `"100"` → `100`); a value that is not a
///   valid number of its VR is written as the string it is (PS3.18 allows strings for IS and
///   DS). US, SS, UL, SL, FL, FD are numbers; SV and UV too, except beyond ±(2^53 − 1), where
///   they are strings so that JavaScript readers keep every digit. FL and FD values that are
///   NaN or infinite are the strings `"NaN"`, `"Infinity"`, `"-Infinity"`. FL values are
///   written with the shortest decimal that reads back as the same `f32` (`0.1`, not
///   `0.10000000149011612`).
/// - AT is `"GGGGEEEE"`.
/// - SQ is an array of DICOM JSON objects, one per item (an empty item is `{}`).
/// - Binary VRs (OB, OD, OF, OL, OV, OW, UN) are `InlineBinary` (base64 of the little endian
///   value) up to [`JsonOptions::inline_limit`] bytes; see [`JsonOptions`] for bulk data.
pub fn dicom_json(obj: &InMemDicomObject, options: &JsonOptions) -> Value {
    data_set(obj, options, true)
}

/// The tag as the 8 upper-case hex digits DICOM JSON uses for keys and AT values.
fn tag_hex(tag: Tag) -> String {
    format!("{:04X}{:04X}", tag.group(), tag.element())
}

fn data_set(obj: &InMemDicomObject, options: &JsonOptions, top: bool) -> Value {
    let mut map = Map::new();
    for elem in obj {
        let tag = elem.tag();
        if tag.group() == 0x0002 || tag.element() == 0x0000 || tag == DATA_SET_TRAILING_PADDING {
            continue;
        }
        if let Some(value) = element(elem, options, top) {
            map.insert(tag_hex(tag), value);
        }
    }
    Value::Object(map)
}

/// One attribute object; `None` when it is top-level bulk data without a `bulk_uri`.
fn element(elem: &InMemElement, options: &JsonOptions, top: bool) -> Option<Value> {
    let tag = elem.tag();
    let vr = elem.vr();
    let mut out = Map::new();
    out.insert("vr".into(), Value::String(vr.to_string().to_string()));
    // A bulk data reference: at the top level a BulkDataURI (or nothing), nested no value.
    let bulk = |mut out: Map<String, Value>| -> Option<Value> {
        if top {
            let uri = options.bulk_uri?;
            out.insert("BulkDataURI".into(), Value::String(uri(&tag_hex(tag))));
        }
        Some(Value::Object(out))
    };
    match elem.value() {
        DicomValue::Sequence(seq) => {
            if !seq.items().is_empty() {
                let items = seq
                    .items()
                    .iter()
                    .map(|item| data_set(item, options, false))
                    .collect();
                out.insert("Value".into(), Value::Array(items));
            }
        }
        DicomValue::PixelSequence(_) => return bulk(out),
        DicomValue::Primitive(value) => match vr {
            VR::OB | VR::OD | VR::OF | VR::OL | VR::OV | VR::OW | VR::UN => {
                let bytes = le_bytes(value);
                if bytes.is_empty() {
                    return Some(Value::Object(out));
                }
                if bytes.len() > options.inline_limit || (top && tag == PIXEL_DATA) {
                    return bulk(out);
                }
                out.insert("InlineBinary".into(), Value::String(base64(&bytes)));
            }
            VR::SQ => {}
            _ => {
                let mut values = values(vr, value);
                if tag == SPECIFIC_CHARACTER_SET {
                    // The strings were decoded to Unicode: the JSON text is UTF-8.
                    values = vec![Value::String("ISO_IR 192".into())];
                }
                if !values.is_empty() {
                    out.insert("Value".into(), Value::Array(values));
                }
            }
        },
    }
    Some(Value::Object(out))
}

/// The `Value` array of a non-binary, non-sequence element; empty for an empty value.
fn values(vr: VR, value: &PrimitiveValue) -> Vec<Value> {
    match vr {
        // Binary numbers, and IS / DS when an object was built with numbers.
        VR::US | VR::SS | VR::UL | VR::SL | VR::UV | VR::SV | VR::FL | VR::FD | VR::IS | VR::DS => {
            if let Some(numbers) = binary_numbers(value) {
                return numbers;
            }
        }
        VR::AT => {
            if let Some(tags) = tags(value) {
                return tags;
            }
        }
        _ => {}
    }
    let values: Vec<Value> = text_values(vr, value)
        .into_iter()
        .map(|part| match part {
            None => Value::Null,
            Some(s) => match vr {
                VR::PN => person_name(&s),
                VR::IS => is_number(&s),
                VR::DS => ds_number(&s),
                // Numbers held as text (unusual): same rules as DS.
                VR::US | VR::SS | VR::UL | VR::SL | VR::UV | VR::SV | VR::FL | VR::FD => {
                    ds_number(&s)
                }
                _ => Value::String(s),
            },
        })
        .collect();
    // A lone empty value (e.g. a PN of only separators) is an empty element.
    if values.len() == 1 && values[0].is_null() {
        return Vec::new();
    }
    values
}

/// Numbers held in binary form (US, SS... and IS/DS built as numbers); `None` for text or an
/// empty value (handled as text).
fn binary_numbers(value: &PrimitiveValue) -> Option<Vec<Value>> {
    use PrimitiveValue as P;
    let numbers = match value {
        P::U8(v) => v.iter().map(|&n| Value::from(n)).collect(),
        P::I16(v) => v.iter().map(|&n| Value::from(n)).collect(),
        P::U16(v) => v.iter().map(|&n| Value::from(n)).collect(),
        P::I32(v) => v.iter().map(|&n| Value::from(n)).collect(),
        P::U32(v) => v.iter().map(|&n| Value::from(n)).collect(),
        P::I64(v) => v.iter().map(|&n| big_int(n as i128)).collect(),
        P::U64(v) => v.iter().map(|&n| big_int(n as i128)).collect(),
        P::F32(v) => v.iter().map(|&n| f32_value(n)).collect(),
        P::F64(v) => v.iter().map(|&n| float_value(n)).collect(),
        _ => return None,
    };
    Some(numbers)
}

/// The largest integer JavaScript represents exactly (2^53 − 1).
const MAX_SAFE_INTEGER: i128 = (1 << 53) - 1;

/// A 64-bit integer as a number, or as a string beyond ±(2^53 − 1) (PS3.18 F.2.3, note to
/// Table F.2.3-1: a string may be used to keep the precision).
fn big_int(n: i128) -> Value {
    if n.abs() <= MAX_SAFE_INTEGER {
        Value::Number(if n < 0 {
            Number::from(n as i64)
        } else {
            Number::from(n as u64)
        })
    } else {
        Value::String(n.to_string())
    }
}

/// A float as a number; NaN and infinities as strings (JSON has no number for them).
fn float_value(n: f64) -> Value {
    match Number::from_f64(n) {
        Some(number) => Value::Number(number),
        None if n.is_nan() => Value::String("NaN".into()),
        None if n > 0.0 => Value::String("Infinity".into()),
        None => Value::String("-Infinity".into()),
    }
}

/// An `f32` through its shortest decimal form, so that 0.1f32 is written 0.1.
fn f32_value(n: f32) -> Value {
    if !n.is_finite() {
        return float_value(f64::from(n));
    }
    float_value(n.to_string().parse().unwrap_or(f64::from(n)))
}

/// An IS value: a JSON number when it is a valid integer string, else the string itself.
fn is_number(s: &str) -> Value {
    if s.bytes()
        .all(|b| b.is_ascii_digit() || b == b'+' || b == b'-')
        && let Ok(n) = s.parse::<i64>()
    {
        return big_int(n as i128);
    }
    Value::String(s.to_string())
}

/// A DS value: a JSON number when it is a valid decimal string (an integer when it has no
/// fraction or exponent), else the string itself (e.g. `"1,5"`, `"NaN"`, `"1e999"`).
fn ds_number(s: &str) -> Value {
    let valid_chars = s
        .bytes()
        .all(|b| b.is_ascii_digit() || matches!(b, b'+' | b'-' | b'.' | b'e' | b'E'));
    if !valid_chars || !s.bytes().any(|b| b.is_ascii_digit()) {
        return Value::String(s.to_string());
    }
    if let Ok(n) = s.parse::<i64>()
        && (n as i128).abs() <= MAX_SAFE_INTEGER
    {
        return Value::from(n);
    }
    match s.parse::<f64>() {
        Ok(f) if f.is_finite() => float_value(f),
        _ => Value::String(s.to_string()),
    }
}

/// AT values as `"GGGGEEEE"`; `None` for text or an empty value.
fn tags(value: &PrimitiveValue) -> Option<Vec<Value>> {
    use PrimitiveValue as P;
    let tags: Vec<Tag> = match value {
        P::Tags(t) => t.to_vec(),
        P::U16(v) if v.len() % 2 == 0 => v.chunks(2).map(|c| Tag(c[0], c[1])).collect(),
        P::U32(v) => v.iter().map(|&n| Tag((n >> 16) as u16, n as u16)).collect(),
        _ => return None,
    };
    Some(
        tags.into_iter()
            .map(|t| Value::String(tag_hex(t)))
            .collect(),
    )
}

/// A PN value: its non-empty component groups by name, each without trailing empty
/// components (`"Doe^^^"` is `"Doe"`, PS3.5 6.2.1); `null` when all groups are empty.
fn person_name(s: &str) -> Value {
    let mut map = Map::new();
    for (name, group) in ["Alphabetic", "Ideographic", "Phonetic"]
        .into_iter()
        .zip(s.splitn(3, '='))
    {
        let group = group.trim_end_matches(['^', ' ']);
        if !group.is_empty() {
            map.insert(name.into(), Value::String(group.to_string()));
        }
    }
    if map.is_empty() {
        Value::Null
    } else {
        Value::Object(map)
    }
}

/// Whether a text VR may hold several values separated by backslashes.
fn multi_valued(vr: VR) -> bool {
    !matches!(vr, VR::LT | VR::ST | VR::UT | VR::UR)
}

/// Whether leading spaces are insignificant (PS3.5 Table 6.2-1).
fn trims_leading(vr: VR) -> bool {
    matches!(vr, VR::AE | VR::CS | VR::DS | VR::IS | VR::LO | VR::SH)
}

/// The values of a text element, padding removed; `None` for an empty value among several.
/// An empty list when the whole value is empty (or only padding).
fn text_values(vr: VR, value: &PrimitiveValue) -> Vec<Option<String>> {
    use PrimitiveValue as P;
    let raw: Vec<String> = match value {
        P::Empty => return Vec::new(),
        P::Str(s) => vec![s.clone()],
        P::Strs(v) => v.to_vec(),
        P::Date(v) => v.iter().map(|d| d.to_encoded()).collect(),
        P::Time(v) => v.iter().map(|t| t.to_encoded()).collect(),
        P::DateTime(v) => v.iter().map(|t| t.to_encoded()).collect(),
        other => other.to_multi_str().into_owned(),
    };
    // Single-valued VRs keep a backslash as text; programmatic `Strs` of them are rejoined.
    let joined = (!multi_valued(vr)).then(|| raw.join("\\"));
    let parts: Vec<&str> = match &joined {
        Some(whole) => vec![whole.as_str()],
        None => raw.iter().flat_map(|s| s.split('\\')).collect(),
    };
    let trimmed: Vec<&str> = parts
        .into_iter()
        .map(|p| {
            let p = p.trim_end_matches([' ', '\0']);
            if trims_leading(vr) {
                p.trim_start_matches(' ')
            } else {
                p
            }
        })
        .collect();
    if trimmed.len() == 1 && trimmed[0].is_empty() {
        return Vec::new();
    }
    trimmed
        .into_iter()
        .map(|p| (!p.is_empty()).then(|| p.to_string()))
        .collect()
}

/// A binary value as its little endian bytes (PS3.18 F.2.7: the rules of PS3.5 apply).
fn le_bytes(value: &PrimitiveValue) -> Vec<u8> {
    use PrimitiveValue as P;
    match value {
        P::Empty => Vec::new(),
        P::U8(v) => v.to_vec(),
        P::I16(v) => v.iter().flat_map(|n| n.to_le_bytes()).collect(),
        P::U16(v) => v.iter().flat_map(|n| n.to_le_bytes()).collect(),
        P::I32(v) => v.iter().flat_map(|n| n.to_le_bytes()).collect(),
        P::U32(v) => v.iter().flat_map(|n| n.to_le_bytes()).collect(),
        P::I64(v) => v.iter().flat_map(|n| n.to_le_bytes()).collect(),
        P::U64(v) => v.iter().flat_map(|n| n.to_le_bytes()).collect(),
        P::F32(v) => v.iter().flat_map(|n| n.to_le_bytes()).collect(),
        P::F64(v) => v.iter().flat_map(|n| n.to_le_bytes()).collect(),
        P::Tags(v) => v
            .iter()
            .flat_map(|t| {
                let [a, b] = t.group().to_le_bytes();
                let [c, d] = t.element().to_le_bytes();
                [a, b, c, d]
            })
            .collect(),
        other => other.to_raw_str().into_owned().into_bytes(),
    }
}

/// Standard base64 (RFC 4648, with padding).
fn base64(bytes: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(bytes.len().div_ceil(3) * 4);
    for chunk in bytes.chunks(3) {
        let b = [
            chunk[0],
            chunk.get(1).copied().unwrap_or(0),
            chunk.get(2).copied().unwrap_or(0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(ALPHABET[(n >> (18 - 6 * i)) as usize & 63] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base64_matches_rfc4648_vectors() {
        for (input, expected) in [
            ("", ""),
            ("f", "Zg=="),
            ("fo", "Zm8="),
            ("foo", "Zm9v"),
            ("foob", "Zm9vYg=="),
            ("fooba", "Zm9vYmE="),
            ("foobar", "Zm9vYmFy"),
        ] {
            assert_eq!(base64(input.as_bytes()), expected);
        }
        assert_eq!(base64(&[0xff, 0xfe, 0xfd]), "//79");
    }

    #[test]
    fn decimal_strings() {
        assert_eq!(ds_number("1.5"), serde_json::json!(1.5));
        assert_eq!(ds_number("100"), serde_json::json!(100));
        assert_eq!(ds_number("+2.5E-3"), serde_json::json!(0.0025));
        assert_eq!(ds_number(".5"), serde_json::json!(0.5));
        assert_eq!(ds_number("-0.0").as_f64(), Some(0.0));
        assert_eq!(ds_number("NaN"), serde_json::json!("NaN"));
        assert_eq!(ds_number("1,5"), serde_json::json!("1,5"));
        assert_eq!(ds_number("1e999"), serde_json::json!("1e999"));
        assert_eq!(ds_number("-"), serde_json::json!("-"));
        assert_eq!(is_number("-12"), serde_json::json!(-12));
        assert_eq!(is_number("1.0"), serde_json::json!("1.0"));
    }
}
