//! The VinDr-CXR release (PhysioNet `annotations/`): box files with or without `rad_id`,
//! and image-label files with one 0/1 column per label. Columns are matched by header name,
//! never by position; label names are checked against the 28 labels of the dataset.

use std::io::{Read, Write};

use crate::kaggle::{columns, csv_error, quote, read_box};
use crate::labels::{canonical, is_known};
use crate::{Annotation, FormatError, ImageLabels, format_number};

/// Read `annotations_train.csv` (with `rad_id`) or `annotations_test.csv` (consensus,
/// without): whichever the header says.
pub fn read_annotations(reader: impl Read, file: &str) -> Result<Vec<Annotation>, FormatError> {
    let mut csv = csv::ReaderBuilder::new()
        .has_headers(true)
        .from_reader(reader);
    let headers = csv.headers().map_err(|e| csv_error(file, e))?.clone();
    let col = columns(
        &headers,
        &["image_id", "class_name", "x_min", "y_min", "x_max", "y_max"],
        file,
    )?;
    let rad = headers.iter().position(|h| h.trim() == "rad_id");
    let mut out = Vec::new();
    for record in csv.records() {
        let record = record.map_err(|e| csv_error(file, e))?;
        let line = record.position().map_or(0, |p| p.line());
        let at = |message: String| FormatError::line(file, line, message);
        let get = |i: usize| record.get(col[i]).unwrap_or("");
        let label = canonical(get(1));
        if !is_known(label) {
            return Err(at(format!(
                "class_name {label:?} is not one of the 28 VinDr-CXR labels"
            )));
        }
        let bbox = read_box([get(2), get(3), get(4), get(5)]).map_err(at)?;
        let reader = rad
            .and_then(|i| record.get(i))
            .map(str::trim)
            .filter(|r| !r.is_empty());
        out.push(Annotation {
            image_id: get(0).trim().to_string(),
            reader: reader.map(str::to_string),
            label: label.to_string(),
            bbox,
            score: None,
        });
    }
    Ok(out)
}

/// Write box annotations: with a `rad_id` column when any row has a reader (the train
/// file), without it otherwise (the test file's consensus).
pub fn write_annotations(mut out: impl Write, rows: &[Annotation]) -> std::io::Result<()> {
    let with_reader = rows.iter().any(|r| r.reader.is_some());
    if with_reader {
        writeln!(out, "image_id,rad_id,class_name,x_min,y_min,x_max,y_max")?;
    } else {
        writeln!(out, "image_id,class_name,x_min,y_min,x_max,y_max")?;
    }
    for a in rows {
        let coords = match a.bbox {
            Some(b) => b.map(format_number).join(","),
            None => ",,,".to_string(),
        };
        if with_reader {
            writeln!(
                out,
                "{},{},{},{coords}",
                quote(&a.image_id),
                quote(a.reader.as_deref().unwrap_or("")),
                quote(&a.label)
            )?;
        } else {
            writeln!(out, "{},{},{coords}", quote(&a.image_id), quote(&a.label))?;
        }
    }
    Ok(())
}

/// Read `image_labels_train.csv` (with `rad_id`) or `image_labels_test.csv`: every column
/// other than `image_id` and `rad_id` is a label, 0 or 1.
pub fn read_image_labels(reader: impl Read, file: &str) -> Result<Vec<ImageLabels>, FormatError> {
    let mut csv = csv::ReaderBuilder::new()
        .has_headers(true)
        .from_reader(reader);
    let headers = csv.headers().map_err(|e| csv_error(file, e))?.clone();
    let image_col = columns(&headers, &["image_id"], file)?[0];
    let rad = headers.iter().position(|h| h.trim() == "rad_id");
    let mut label_cols = Vec::new();
    for (i, h) in headers.iter().enumerate() {
        if i == image_col || Some(i) == rad {
            continue;
        }
        let name = canonical(h);
        if !is_known(name) {
            return Err(FormatError::file(
                file,
                format!("column {h:?} is not one of the 28 VinDr-CXR labels"),
            ));
        }
        if label_cols.iter().any(|(_, n): &(usize, String)| n == name) {
            return Err(FormatError::file(
                file,
                format!("label {name:?} has two columns"),
            ));
        }
        label_cols.push((i, name.to_string()));
    }
    let mut out = Vec::new();
    for record in csv.records() {
        let record = record.map_err(|e| csv_error(file, e))?;
        let line = record.position().map_or(0, |p| p.line());
        let mut labels = Vec::with_capacity(label_cols.len());
        for (i, name) in &label_cols {
            let v = match record.get(*i).unwrap_or("").trim() {
                "1" | "1.0" => true,
                "0" | "0.0" => false,
                other => {
                    return Err(FormatError::line(
                        file,
                        line,
                        format!("{name} is {other:?}; it must be 0 or 1"),
                    ));
                }
            };
            labels.push((name.clone(), v));
        }
        let reader = rad
            .and_then(|i| record.get(i))
            .map(str::trim)
            .filter(|r| !r.is_empty());
        out.push(ImageLabels {
            image_id: record.get(image_col).unwrap_or("").trim().to_string(),
            reader: reader.map(str::to_string),
            labels,
        });
    }
    Ok(out)
}

/// Write image labels; the columns are those of the first row, in its order.
pub fn write_image_labels(mut out: impl Write, rows: &[ImageLabels]) -> std::io::Result<()> {
    let with_reader = rows.iter().any(|r| r.reader.is_some());
    let names: Vec<&str> = rows
        .first()
        .map(|r| r.labels.iter().map(|(n, _)| n.as_str()).collect())
        .unwrap_or_default();
    let mut header = vec!["image_id"];
    if with_reader {
        header.push("rad_id");
    }
    header.extend(names.iter().copied());
    writeln!(
        out,
        "{}",
        header
            .iter()
            .map(|h| quote(h))
            .collect::<Vec<_>>()
            .join(",")
    )?;
    for r in rows {
        let mut fields = vec![quote(&r.image_id)];
        if with_reader {
            fields.push(quote(r.reader.as_deref().unwrap_or("")));
        }
        for name in &names {
            let v = r
                .labels
                .iter()
                .find(|(n, _)| n == name)
                .map(|(_, v)| *v)
                .ok_or_else(|| {
                    std::io::Error::new(
                        std::io::ErrorKind::InvalidInput,
                        format!("image {} has no value for {name:?}", r.image_id),
                    )
                })?;
            fields.push(if v { "1" } else { "0" }.to_string());
        }
        writeln!(out, "{}", fields.join(","))?;
    }
    Ok(())
}
