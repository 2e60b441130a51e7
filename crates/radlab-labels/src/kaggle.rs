//! Kaggle's VinBigData files: `train.csv` (`image_id, class_name, class_id, rad_id, x_min,
//! y_min, x_max, y_max`; "No finding" rows have class 14 and no box) and submissions
//! (`image_id, PredictionString`, the string repeating `class_id score x_min y_min x_max
//! y_max`; a normal image is `14 <score> 0 0 1 1`).

use std::collections::HashMap;
use std::io::{Read, Write};

use crate::labels::kaggle_class_id;
use crate::{Annotation, FormatError, KAGGLE_CLASSES, check_box, format_number, parse_number};

const TRAIN_COLUMNS: [&str; 8] = [
    "image_id",
    "class_name",
    "class_id",
    "rad_id",
    "x_min",
    "y_min",
    "x_max",
    "y_max",
];

/// The positions of `wanted` columns in a header, matched by name; an error names what is
/// missing.
pub(crate) fn columns(
    headers: &csv::StringRecord,
    wanted: &[&str],
    file: &str,
) -> Result<Vec<usize>, FormatError> {
    wanted
        .iter()
        .map(|w| {
            headers.iter().position(|h| h.trim() == *w).ok_or_else(|| {
                FormatError::file(
                    file,
                    format!(
                        "no {w:?} column (the header has: {})",
                        headers.iter().collect::<Vec<_>>().join(", ")
                    ),
                )
            })
        })
        .collect()
}

pub(crate) fn csv_error(file: &str, e: csv::Error) -> FormatError {
    match e.position() {
        Some(p) => FormatError::line(file, p.line(), e.to_string()),
        None => FormatError::file(file, e.to_string()),
    }
}

/// The whole input, read once (annotation files are small next to memory).
pub(crate) fn read_all(mut reader: impl Read, file: &str) -> Result<Vec<u8>, FormatError> {
    let mut bytes = Vec::new();
    reader
        .read_to_end(&mut bytes)
        .map_err(|e| FormatError::file(file, format!("cannot read: {e}")))?;
    Ok(bytes)
}

/// Four coordinate fields: all empty (no box) or all numbers.
pub(crate) fn read_box(fields: [&str; 4]) -> Result<Option<crate::BBox>, String> {
    if fields.iter().all(|f| f.trim().is_empty()) {
        return Ok(None);
    }
    let names = ["x_min", "y_min", "x_max", "y_max"];
    let mut b = [0.0; 4];
    for i in 0..4 {
        b[i] = parse_number(fields[i], names[i])?;
    }
    check_box(b).map(Some)
}

/// Read a Kaggle `train.csv`; `file` names it in errors.
pub fn read_train_csv(reader: impl Read, file: &str) -> Result<Vec<Annotation>, FormatError> {
    read_train_csv_bytes(&read_all(reader, file)?, file)
}

/// [`read_train_csv`] of a file already in memory.
pub fn read_train_csv_bytes(bytes: &[u8], file: &str) -> Result<Vec<Annotation>, FormatError> {
    let mut csv = csv::ReaderBuilder::new()
        .has_headers(true)
        .from_reader(bytes);
    let headers = csv.headers().map_err(|e| csv_error(file, e))?.clone();
    let col = columns(&headers, &TRAIN_COLUMNS, file)?;
    // A row takes at least 20 bytes: room for all of them at once (see read_submission).
    let mut out = Vec::with_capacity(bytes.len() / 20);
    // One record, reused: no allocation per row.
    let mut record = csv::StringRecord::new();
    while csv
        .read_record(&mut record)
        .map_err(|e| csv_error(file, e))?
    {
        let line = record.position().map_or(0, |p| p.line());
        let get = |i: usize| record.get(col[i]).unwrap_or("");
        let at = |message: String| FormatError::line(file, line, message);
        let name = get(1).trim();
        let id: u8 = get(2)
            .trim()
            .parse()
            .map_err(|_| at(format!("class_id is {:?}, not a number 0-14", get(2))))?;
        match KAGGLE_CLASSES.get(id as usize) {
            Some(expected) if *expected == name => {}
            Some(expected) => {
                return Err(at(format!(
                    "class_id {id} is {expected:?} in Kaggle's list, but class_name says {name:?}"
                )));
            }
            None => return Err(at(format!("class_id {id} is not one of 0-14"))),
        }
        let bbox = read_box([get(4), get(5), get(6), get(7)]).map_err(at)?;
        if bbox.is_none() && id != 14 {
            return Err(at(format!("{name:?} has no box; only No finding rows may")));
        }
        let reader = get(3).trim();
        out.push(Annotation {
            image_id: get(0).trim().to_string(),
            reader: (!reader.is_empty()).then(|| reader.to_string()),
            label: name.to_string(),
            bbox,
            score: None,
        });
    }
    Ok(out)
}

/// Write a Kaggle `train.csv`. Labels Kaggle did not keep are an error.
pub fn write_train_csv(mut out: impl Write, rows: &[Annotation]) -> std::io::Result<()> {
    writeln!(out, "{}", TRAIN_COLUMNS.join(","))?;
    for a in rows {
        let id = kaggle_class_id(&a.label).ok_or_else(|| {
            std::io::Error::new(
                std::io::ErrorKind::InvalidInput,
                format!("{:?} is not one of Kaggle's 15 classes", a.label),
            )
        })?;
        let coords = match a.bbox {
            Some(b) => b.map(format_number).join(","),
            None => ",,,".to_string(),
        };
        writeln!(
            out,
            "{},{},{},{},{}",
            quote(&a.image_id),
            quote(&a.label),
            id,
            quote(a.reader.as_deref().unwrap_or("")),
            coords
        )?;
    }
    Ok(())
}

/// CSV quoting for a text field, only where needed.
pub(crate) fn quote(s: &str) -> String {
    if s.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", s.replace('"', "\"\""))
    } else {
        s.to_string()
    }
}

/// `parse_number`, naming the value only when it fails (a submission holds hundreds of
/// thousands of numbers).
fn parse_lazy(text: &str, what: impl Fn() -> String) -> Result<f64, String> {
    match text.trim().parse::<f64>() {
        Ok(v) if v.is_finite() => Ok(v),
        _ => parse_number(text, &what()),
    }
}

/// Read a submission: every prediction, in file order.
pub fn read_submission(reader: impl Read, file: &str) -> Result<Vec<Annotation>, FormatError> {
    read_submission_bytes(&read_all(reader, file)?, file)
}

/// [`read_submission`] of a file already in memory.
pub fn read_submission_bytes(bytes: &[u8], file: &str) -> Result<Vec<Annotation>, FormatError> {
    let mut csv = csv::ReaderBuilder::new()
        .has_headers(true)
        .from_reader(bytes);
    let headers = csv.headers().map_err(|e| csv_error(file, e))?.clone();
    let col = columns(&headers, &["image_id", "PredictionString"], file)?;
    // A prediction takes at least 12 bytes ("0 1 0 0 1 1 "): room for all of them at once,
    // so the vector never moves (untouched capacity costs no memory).
    let mut out = Vec::with_capacity(bytes.len() / 12);
    let mut record = csv::StringRecord::new();
    while csv
        .read_record(&mut record)
        .map_err(|e| csv_error(file, e))?
    {
        let line = record.position().map_or(0, |p| p.line());
        let at = |message: String| FormatError::line(file, line, message);
        let image_id = record.get(col[0]).unwrap_or("").trim();
        let text = record.get(col[1]).unwrap_or("");
        // One pass over the values, six at a time (ASCII whitespace separates them).
        let mut g = [""; 6];
        let mut n_tokens = 0;
        for token in text.split_ascii_whitespace() {
            g[n_tokens % 6] = token;
            n_tokens += 1;
            if !n_tokens.is_multiple_of(6) {
                continue;
            }
            let k = n_tokens / 6 - 1;
            let which = |what: &str| format!("prediction {} {what}", k + 1);
            let id = parse_lazy(g[0], || which("class_id")).map_err(at)?;
            if id.fract() != 0.0 || !(0.0..=14.0).contains(&id) {
                return Err(at(format!("{} is {}, not 0-14", which("class_id"), g[0])));
            }
            let score = parse_lazy(g[1], || which("score")).map_err(at)?;
            let mut b = [0.0; 4];
            for i in 0..4 {
                b[i] = parse_lazy(g[2 + i], || which("coordinate")).map_err(at)?;
            }
            out.push(Annotation {
                image_id: image_id.to_string(),
                reader: None,
                label: KAGGLE_CLASSES[id as usize].to_string(),
                bbox: Some(check_box(b).map_err(at)?),
                score: Some(score),
            });
        }
        if !n_tokens.is_multiple_of(6) {
            return Err(at(format!(
                "PredictionString has {n_tokens} values; it must hold groups of 6 (class_id score x_min y_min x_max y_max)"
            )));
        }
        if n_tokens == 0 {
            // An image listed with no prediction: keep it known, with nothing on it.
            out.push(Annotation {
                image_id: image_id.to_string(),
                reader: None,
                label: String::new(),
                bbox: None,
                score: None,
            });
        }
    }
    Ok(out)
}

/// Write a submission: one row per image, in order of first appearance; an entry with an
/// empty label (an image with no prediction) gives an empty PredictionString.
pub fn write_submission(mut out: impl Write, predictions: &[Annotation]) -> std::io::Result<()> {
    let mut order: Vec<&str> = Vec::new();
    let mut by_image: HashMap<&str, Vec<String>> = HashMap::new();
    for p in predictions {
        let entry = by_image.entry(p.image_id.as_str()).or_insert_with(|| {
            order.push(p.image_id.as_str());
            Vec::new()
        });
        if p.label.is_empty() {
            continue;
        }
        let id = kaggle_class_id(&p.label).ok_or_else(|| {
            std::io::Error::new(
                std::io::ErrorKind::InvalidInput,
                format!("{:?} is not one of Kaggle's 15 classes", p.label),
            )
        })?;
        let b = p.bbox.unwrap_or([0.0, 0.0, 1.0, 1.0]);
        entry.push(format!(
            "{id} {} {}",
            format_number(p.score.unwrap_or(1.0)),
            b.map(format_number).join(" ")
        ));
    }
    writeln!(out, "image_id,PredictionString")?;
    for image in order {
        writeln!(out, "{},{}", quote(image), by_image[image].join(" "))?;
    }
    Ok(())
}
