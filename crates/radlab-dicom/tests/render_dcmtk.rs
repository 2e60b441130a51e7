//! Windowed 8-bit renderings against dcmtk's `dcmj2pnm`, and the polarity of chest films.
//!
//! Tolerance: 1 grey level per pixel. dcmtk builds its output LUT with its own rounding
//! (float arithmetic and truncation in places), so values on the exact boundary between two
//! output levels may land one level apart; anything more is a bug.

use std::path::Path;
use std::process::Command;

use radlab_dicom::{
    DicomFile, DisplaySettings, RenderOptions, VoiChoice, VoiFunction, Window, decode_frame,
    render_file,
};
use radlab_testkit::{corpus, has_tool};

/// Read a binary PGM (P5, maxval 255) as written by dcmj2pnm.
fn read_pgm(path: &Path) -> (u32, u32, Vec<u8>) {
    let data = std::fs::read(path).expect("pgm written");
    let mut fields = Vec::new();
    let mut i = 0;
    while fields.len() < 4 {
        while data[i].is_ascii_whitespace() {
            i += 1;
        }
        if data[i] == b'#' {
            while data[i] != b'\n' {
                i += 1;
            }
            continue;
        }
        let start = i;
        while !data[i].is_ascii_whitespace() {
            i += 1;
        }
        fields.push(String::from_utf8_lossy(&data[start..i]).to_string());
    }
    assert_eq!(fields[0], "P5", "{}: not a binary PGM", path.display());
    let w: u32 = fields[1].parse().unwrap();
    let h: u32 = fields[2].parse().unwrap();
    assert_eq!(fields[3], "255");
    (w, h, data[i + 1..].to_vec())
}

fn dcmj2pnm(file: &Path, args: &[String], out: &Path) {
    let output = Command::new("dcmj2pnm")
        .args(args)
        .arg(file)
        .arg(out)
        .output()
        .expect("run dcmj2pnm");
    assert!(
        output.status.success(),
        "dcmj2pnm {args:?} {}: {}",
        file.display(),
        String::from_utf8_lossy(&output.stderr)
    );
}

/// Files dcmtk's free build decodes (no JPEG 2000): the frontal CXRs of the corpus.
fn dcmtk_readable_cxrs(corpus: &radlab_testkit::Corpus) -> Vec<String> {
    corpus
        .dicom_rows()
        .into_iter()
        .filter(|r| r.expected == "frontal_cxr" && !r.transfer_syntax.contains("JPEG 2000"))
        .map(|r| r.path.clone())
        .collect()
}

#[test]
fn windowed_renderings_match_dcmj2pnm() {
    let test = "windowed_renderings_match_dcmj2pnm";
    let Some(corpus) = corpus(test) else { return };
    if !has_tool(test, "dcmj2pnm") {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("ref.pgm");
    let mut failures = Vec::new();
    let mut compared = 0;
    for rel in dcmtk_readable_cxrs(&corpus) {
        let path = corpus.path(&rel);
        let file = DicomFile::open(&path).unwrap();
        let frame = decode_frame(&file, 0).unwrap();
        let settings = DisplaySettings::from_file(&file).unwrap();
        let (lo, hi) = frame.samples.min_max();
        let (a, b) = (
            settings.modality_lut.apply(lo as f64),
            settings.modality_lut.apply(hi as f64),
        );
        // A window over the middle half of the value range, in modality units.
        let (center, width) = ((a + b) / 2.0, ((b - a) / 2.0).max(2.0).round());
        let mut cases: Vec<(String, Vec<String>, VoiChoice)> = vec![
            (
                "explicit LINEAR window".into(),
                vec!["+Ww".into(), center.to_string(), width.to_string()],
                VoiChoice::Window(Window::linear(center, width)),
            ),
            (
                "explicit SIGMOID window".into(),
                vec![
                    "+Ww".into(),
                    center.to_string(),
                    width.to_string(),
                    "+Wfs".into(),
                ],
                VoiChoice::Window(Window {
                    function: VoiFunction::Sigmoid,
                    ..Window::linear(center, width)
                }),
            ),
        ];
        if !settings.windows.is_empty() {
            cases.push((
                "the file's first window".into(),
                vec!["+Wi".into(), "1".into()],
                VoiChoice::FileWindow(0),
            ));
        }
        for (what, args, voi) in cases {
            let mut args = args;
            // ACR-NEMA files have no meta group: tell dcmtk to read a bare data set.
            if file.framing() == radlab_dicom::Framing::BareDataSet {
                args.extend(["-f".into(), "-ti".into()]);
            }
            dcmj2pnm(&path, &args, &out);
            let (w, h, reference) = read_pgm(&out);
            let (ours, _) = render_file(
                &file,
                &RenderOptions {
                    voi,
                    ..Default::default()
                },
            )
            .unwrap();
            assert_eq!((ours.width, ours.height), (w, h), "{rel}: size");
            let diffs: Vec<i32> = ours
                .pixels
                .iter()
                .zip(&reference)
                .map(|(a, b)| (*a as i32 - *b as i32).abs())
                .collect();
            let max = diffs.iter().copied().max().unwrap_or(0);
            let off = diffs.iter().filter(|d| **d > 0).count();
            println!(
                "{rel:<62} {what:<26} max |diff| {max}, {:.3}% of pixels differ",
                100.0 * off as f64 / diffs.len() as f64
            );
            if max > 1 {
                failures.push(format!("{rel} ({what}): max |diff| {max} against dcmj2pnm"));
            }
            compared += 1;
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
    assert!(compared >= 20, "only {compared} renderings compared");
}

/// On a correctly displayed frontal chest film the mediastinum and spine (centre) are
/// brighter than the lung fields (either side). MONOCHROME1 files must come out that way
/// too: inversion after VOI.
#[test]
fn chest_films_show_bright_mediastinum_and_dark_lungs() {
    let test = "chest_films_show_bright_mediastinum_and_dark_lungs";
    let Some(corpus) = corpus(test) else { return };
    let mut checked_mono1 = 0;
    for row in corpus.dicom_rows() {
        // Skipped on purpose: the tampered header (MONOCHROME1 over MONOCHROME2 pixels) must
        // render inverted, and the cp1251 DX's header contradicts its pixels (see manifest).
        if row.expected != "frontal_cxr" || row.path.contains("cp1251") {
            continue;
        }
        let file = DicomFile::open(corpus.path(&row.path)).unwrap();
        let (img, _) = render_file(&file, &RenderOptions::default()).unwrap();
        let mean = |x0: f64, x1: f64| {
            let (w, h) = (img.width as f64, img.height as f64);
            let mut sum = 0u64;
            let mut n = 0u64;
            for y in (h * 0.35) as u32..(h * 0.65) as u32 {
                for x in (w * x0) as u32..(w * x1) as u32 {
                    sum += img.pixels[(y * img.width + x) as usize] as u64;
                    n += 1;
                }
            }
            sum as f64 / n as f64
        };
        let centre = mean(0.46, 0.54);
        let lungs = (mean(0.2, 0.32) + mean(0.68, 0.8)) / 2.0;
        println!("{:<62} centre {centre:.0} lungs {lungs:.0}", row.path);
        assert!(
            centre > lungs + 10.0,
            "{}: centre {centre:.0} is not brighter than the lungs {lungs:.0}: wrong polarity",
            row.path
        );
        if row.photometric == "MONOCHROME1" {
            checked_mono1 += 1;
        }
    }
    assert!(
        checked_mono1 >= 5,
        "only {checked_mono1} MONOCHROME1 films checked"
    );
    // The tampered file says MONOCHROME1 over MONOCHROME2 pixels: following its header, the
    // lungs come out bright.
    let fake =
        DicomFile::open(corpus.path("dicom/cxr_edge/txv_Fake_MONOHR1_siim_cr_chest.dcm")).unwrap();
    let real =
        DicomFile::open(corpus.path("dicom/cxr/siim_acr_cr_chest_pa_jpeg_baseline.dcm")).unwrap();
    let (a, _) = render_file(&fake, &RenderOptions::default()).unwrap();
    let (b, _) = render_file(&real, &RenderOptions::default()).unwrap();
    // Mirror images of each other, up to the truncation to 8 bits.
    assert!(
        a.pixels
            .iter()
            .zip(&b.pixels)
            .all(|(x, y)| (*x as i32 - (255 - *y as i32)).abs() <= 1)
    );
}
