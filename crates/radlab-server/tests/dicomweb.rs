//! DICOMweb over HTTP, on SQLite and PostgreSQL, with the corpus's radiographs and other
//! objects in a project: QIDO-RS matching and paging; WADO-RS metadata (every instance, Pixel
//! Data as a BulkDataURI), frames as stored and decoded (equal to the decoder's stored
//! values), instances byte for byte, rendered and thumbnail images of the asked size, ETags,
//! 304s and byte ranges; who sees what (an annotator only the images of their tasks); STOW-RS
//! with a part that fails alone; multipart/form-data uploads all or nothing; the errors.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;

use common::{User, block_on, error_code, login, post, sqlite_url, start_with};
use radlab_server::{ServerConfig, add_user};
use radlab_testkit::{Corpus, HttpResponse, corpus, http, postgres_database};

const ROOT: &str = "/api/v1/projects/cxr/dicomweb";
const ANY_SYNTAX: &str = "multipart/related; type=\"application/octet-stream\"; transfer-syntax=*";

fn get(addr: SocketAddr, u: &User, path: &str, headers: &[(&str, &str)]) -> HttpResponse {
    let mut h = u.h().to_vec();
    h.extend_from_slice(headers);
    http(addr, "GET", path, &h, b"")
}

/// The parts of a multipart answer: each part's Content-Type and bytes.
fn parts(r: &HttpResponse) -> Vec<(String, Vec<u8>)> {
    let ct = r.header("content-type").unwrap_or("").to_string();
    assert!(ct.starts_with("multipart/related"), "not multipart: {ct}");
    let boundary = ct
        .split(';')
        .filter_map(|p| p.split_once('='))
        .find(|(k, _)| k.trim() == "boundary")
        .map(|(_, v)| v.trim().trim_matches('"').to_string())
        .expect("a boundary");
    let delim = format!("--{boundary}");
    let body = &r.body;
    let find = |from: usize, what: &[u8]| {
        body[from..]
            .windows(what.len())
            .position(|w| w == what)
            .map(|p| p + from)
    };
    let mut out = Vec::new();
    let mut at = find(0, delim.as_bytes()).expect("first delimiter") + delim.len();
    loop {
        if body[at..].starts_with(b"--") {
            return out;
        }
        at += 2;
        let head_end = find(at, b"\r\n\r\n").expect("part headers");
        let head = String::from_utf8_lossy(&body[at..head_end]).to_string();
        let content_type = head
            .lines()
            .find_map(|l| l.strip_prefix("Content-Type: "))
            .unwrap_or("")
            .to_string();
        let start = head_end + 4;
        let end = find(start, format!("\r\n{delim}").as_bytes()).expect("next delimiter");
        out.push((content_type, body[start..end].to_vec()));
        at = end + 2 + delim.len();
    }
}

fn tag_value<'a>(item: &'a serde_json::Value, tag: &str) -> &'a serde_json::Value {
    &item[tag]["Value"][0]
}

fn multipart_body(boundary: &str, parts: &[(&str, &[u8])], form: bool) -> Vec<u8> {
    let mut body = Vec::new();
    for (n, (name, bytes)) in parts.iter().enumerate() {
        body.extend_from_slice(format!("--{boundary}\r\n").as_bytes());
        if form {
            body.extend_from_slice(
                format!(
                    "Content-Disposition: form-data; name=\"files\"; filename=\"{name}\"\r\n\
                     Content-Type: application/dicom\r\n\r\n"
                )
                .as_bytes(),
            );
        } else {
            body.extend_from_slice(
                format!("Content-Type: application/dicom\r\nContent-ID: <{n}>\r\n\r\n").as_bytes(),
            );
        }
        body.extend_from_slice(bytes);
        body.extend_from_slice(b"\r\n");
    }
    body.extend_from_slice(format!("--{boundary}--\r\n").as_bytes());
    body
}

/// The object files of the project: the radiographs in train, some others in test.
const OTHERS: [&str; 5] = [
    "dicom/other/pydicom_MR_small_bigendian.dcm",
    "dicom/other/pydicom_JPEG2000_nm_wholebody.dcm",
    "dicom/other/fodicom_HasFragmentSequence_xa_multiframe.dcm",
    "dicom/other/nema_wg04_RG2_JLSN_cr_hip.dcm",
    "dicom/other/fodicom_D_CLUNIE_CT1_RLE_FRAGS_ct_chest.dcm",
];

fn dicomweb_works(url: &str, corpus: &Corpus) {
    let dir = tempfile::tempdir().unwrap();
    let blobs_dir = dir.path().join("blobs");
    let blobs = radlab_store::BlobStore::local(&blobs_dir).unwrap();
    let staging = dir.path().join("staging");
    let (addr, catalog) = start_with(url, ServerConfig::default(), |s| {
        s.with_uploads(blobs.clone(), staging.clone(), 20_000_000)
    });
    // The corpus's files, by SOP Instance UID.
    let mut files: BTreeMap<String, (std::path::PathBuf, radlab_dicom::InstanceInfo)> =
        BTreeMap::new();
    let mut paths: Vec<std::path::PathBuf> = std::fs::read_dir(corpus.path("dicom/cxr"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    paths.sort();
    let cxr_count = paths.len();
    paths.extend(OTHERS.iter().map(|p| corpus.path(p)));
    for p in &paths {
        let f = radlab_dicom::DicomFile::open(p).unwrap();
        let info = radlab_dicom::InstanceInfo::from_file(&f);
        files.insert(info.sop_instance_uid.clone(), (p.clone(), info));
    }
    block_on(async {
        for n in ["owner", "r1", "r2", "rev1", "outsider"] {
            add_user(&catalog, n, &format!("{n} password 1"), "user")
                .await
                .unwrap();
        }
        let summary = radlab_store::import_paths(
            &catalog,
            &blobs,
            &paths,
            &radlab_store::ImportOptions::default(),
            std::sync::Arc::new(radlab_store::NoProgress),
        )
        .await
        .unwrap();
        assert_eq!(
            summary.imported as usize,
            paths.len(),
            "{:?}",
            summary.problems
        );
    });
    let owner = login(addr, "owner");
    assert_eq!(
        post(
            addr,
            &owner,
            "/api/v1/projects",
            r#"{"project_id":"cxr","template":"vindr-cxr"}"#
        )
        .status,
        201
    );
    for (n, role) in [
        ("r1", "annotator"),
        ("r2", "annotator"),
        ("rev1", "reviewer"),
    ] {
        let body = format!(r#"{{"username":"{n}","role":"{role}"}}"#);
        assert_eq!(
            post(addr, &owner, "/api/v1/projects/cxr/members", &body).status,
            201
        );
    }
    let uid_of = |p: &std::path::PathBuf| {
        files
            .iter()
            .find(|(_, (q, _))| q == p)
            .map(|(u, _)| u.clone())
            .unwrap()
    };
    let train: Vec<String> = paths[..cxr_count].iter().map(uid_of).collect();
    let test: Vec<String> = paths[cxr_count..].iter().map(uid_of).collect();
    for (uids, split) in [(&train, "train"), (&test, "test")] {
        let body = serde_json::json!({"instances": uids, "split": split}).to_string();
        assert_eq!(
            post(addr, &owner, "/api/v1/projects/cxr/images", &body).status,
            200
        );
    }

    // --- QIDO-RS: studies, series, instances agree with the files -----------------------
    let mut by_study: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for (uid, (_, info)) in &files {
        by_study
            .entry(info.study_instance_uid.clone())
            .or_default()
            .insert(uid.clone());
    }
    let r = get(addr, &owner, &format!("{ROOT}/studies"), &[]);
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    assert_eq!(r.header("content-type"), Some("application/dicom+json"));
    let studies = r.json();
    let studies = studies.as_array().unwrap();
    assert_eq!(studies.len(), by_study.len());
    for s in studies {
        let uid = tag_value(s, "0020000D").as_str().unwrap();
        assert_eq!(
            tag_value(s, "00201208").as_i64().unwrap() as usize,
            by_study[uid].len(),
            "instances of study {uid}"
        );
        assert!(
            s["00081190"]["Value"][0]
                .as_str()
                .unwrap()
                .ends_with(&format!("/studies/{uid}"))
        );
    }
    // Paging: two pages hold every study once, in UID order.
    let first = get(addr, &owner, &format!("{ROOT}/studies?limit=3"), &[]).json();
    let rest = get(
        addr,
        &owner,
        &format!("{ROOT}/studies?limit=100&offset=3"),
        &[],
    )
    .json();
    let paged: Vec<String> = first
        .as_array()
        .unwrap()
        .iter()
        .chain(rest.as_array().unwrap())
        .map(|s| tag_value(s, "0020000D").as_str().unwrap().to_string())
        .collect();
    assert_eq!(paged, by_study.keys().cloned().collect::<Vec<_>>());
    // Matching: modality, patient ID, patient name with wildcards in any case, dates.
    let modality_of = |m: &str| -> BTreeSet<String> {
        files
            .values()
            .filter(|(_, i)| i.modality == m)
            .map(|(_, i)| i.study_instance_uid.clone())
            .collect()
    };
    for m in ["CR", "MR", "DX"] {
        let got: BTreeSet<String> = get(
            addr,
            &owner,
            &format!("{ROOT}/studies?ModalitiesInStudy={m}"),
            &[],
        )
        .json()
        .as_array()
        .unwrap()
        .iter()
        .map(|s| tag_value(s, "0020000D").as_str().unwrap().to_string())
        .collect();
        assert_eq!(got, modality_of(m), "ModalitiesInStudy={m}");
    }
    let (_, some) = files
        .values()
        .find(|(_, i)| !i.patient_id.is_empty())
        .unwrap();
    let got = get(
        addr,
        &owner,
        &format!("{ROOT}/studies?PatientID={}", urlencode(&some.patient_id)),
        &[],
    )
    .json();
    assert!(
        got.as_array()
            .unwrap()
            .iter()
            .all(|s| tag_value(s, "00100020") == some.patient_id.as_str())
    );
    assert!(!got.as_array().unwrap().is_empty());
    let named: Vec<&radlab_dicom::InstanceInfo> = files
        .values()
        .map(|(_, i)| i)
        .filter(|i| i.patient_name.len() >= 3)
        .collect();
    if let Some(i) = named.first() {
        let prefix: String = i
            .patient_name
            .chars()
            .take(2)
            .collect::<String>()
            .to_lowercase();
        let got = get(
            addr,
            &owner,
            &format!("{ROOT}/studies?PatientName={}*", urlencode(&prefix)),
            &[],
        )
        .json();
        let got: BTreeSet<String> = got
            .as_array()
            .unwrap()
            .iter()
            .map(|s| tag_value(s, "0020000D").as_str().unwrap().to_string())
            .collect();
        let want: BTreeSet<String> = files
            .values()
            .filter(|(_, j)| j.patient_name.to_lowercase().starts_with(&prefix))
            .map(|(_, j)| j.study_instance_uid.clone())
            .collect();
        assert_eq!(got, want, "PatientName={prefix}*");
    }
    let dated: BTreeSet<String> = files
        .values()
        .filter(|(_, i)| i.study_date.as_str() >= "20000101" && !i.study_date.is_empty())
        .map(|(_, i)| i.study_instance_uid.clone())
        .collect();
    let got: BTreeSet<String> = get(
        addr,
        &owner,
        &format!("{ROOT}/studies?StudyDate=20000101-"),
        &[],
    )
    .json()
    .as_array()
    .unwrap()
    .iter()
    .map(|s| tag_value(s, "0020000D").as_str().unwrap().to_string())
    .collect();
    assert_eq!(got, dated, "StudyDate=20000101-");
    assert_eq!(
        get(addr, &owner, &format!("{ROOT}/studies?StudyDate=2020"), &[]).status,
        400
    );
    // Series and instances of each study.
    for (study, uids) in &by_study {
        let series = get(addr, &owner, &format!("{ROOT}/studies/{study}/series"), &[]).json();
        let mut seen = BTreeSet::new();
        for se in series.as_array().unwrap() {
            let se_uid = tag_value(se, "0020000E").as_str().unwrap();
            let inst = get(
                addr,
                &owner,
                &format!("{ROOT}/studies/{study}/series/{se_uid}/instances"),
                &[],
            )
            .json();
            assert_eq!(
                tag_value(se, "00201209").as_i64().unwrap() as usize,
                inst.as_array().unwrap().len()
            );
            for i in inst.as_array().unwrap() {
                let uid = tag_value(i, "00080018").as_str().unwrap().to_string();
                let info = &files[&uid].1;
                assert_eq!(
                    tag_value(i, "00280010").as_i64(),
                    Some(info.image.as_ref().unwrap().rows as i64)
                );
                assert_eq!(
                    tag_value(i, "00280011").as_i64(),
                    Some(info.image.as_ref().unwrap().columns as i64)
                );
                seen.insert(uid);
            }
        }
        assert_eq!(&seen, uids);
    }

    // --- WADO-RS ----------------------------------------------------------------------------
    for (uid, (path, info)) in &files {
        let base = format!(
            "{ROOT}/studies/{}/series/{}/instances/{uid}",
            info.study_instance_uid, info.series_instance_uid
        );
        let original = std::fs::read(path).unwrap();
        let file = radlab_dicom::DicomFile::open(path).unwrap();
        // Metadata: the instance's attributes, Pixel Data by reference.
        let r = get(addr, &owner, &format!("{base}/metadata"), &[]);
        assert_eq!(r.status, 200, "{uid}: {}", String::from_utf8_lossy(&r.body));
        let meta = r.json();
        let meta = &meta.as_array().unwrap()[0];
        assert_eq!(tag_value(meta, "00080018"), uid.as_str());
        assert_eq!(
            tag_value(meta, "00280010").as_i64(),
            Some(info.image.as_ref().unwrap().rows as i64)
        );
        let bulk = meta["7FE00010"]["BulkDataURI"].as_str().unwrap();
        assert!(
            bulk.ends_with(&format!("{base}/bulkdata/7FE00010")),
            "{bulk}"
        );
        assert_eq!(tag_value(meta, "00083002"), file.transfer_syntax());
        // Caching: a strong ETag, 304 on a match, immutable.
        let etag = r.header("etag").unwrap().to_string();
        assert_eq!(
            r.header("cache-control"),
            Some("private, max-age=31536000, immutable")
        );
        let again = get(
            addr,
            &owner,
            &format!("{base}/metadata"),
            &[("if-none-match", &etag)],
        );
        assert_eq!((again.status, again.body.len()), (304, 0));
        // Another ETag: the whole answer, not an empty one.
        let other = get(
            addr,
            &owner,
            &format!("{base}/metadata"),
            &[("if-none-match", "\"not-this-one\"")],
        );
        assert_eq!((other.status, other.json()), (200, r.json()));

        // The instance, byte for byte, single part with ranges, and multipart. A bare data
        // set (ACR-NEMA style) goes out as a PS3.10 file: preamble, file meta, its bytes.
        let r = get(addr, &owner, &base, &[("accept", "application/dicom")]);
        assert_eq!(r.status, 200);
        let part10 = original.len() > 132 && &original[128..132] == b"DICM";
        let original = if part10 {
            original
        } else {
            assert_eq!(&r.body[128..132], b"DICM", "{uid}: a Part 10 file");
            assert!(r.body.ends_with(&original), "{uid}: the data set unchanged");
            let meta = radlab_dicom::DicomFile::from_bytes(&r.body).unwrap();
            assert_eq!(meta.transfer_syntax(), file.transfer_syntax());
            assert_eq!(
                radlab_dicom::InstanceInfo::from_file(&meta).sop_instance_uid,
                *uid
            );
            r.body.clone()
        };
        assert_eq!(r.body, original, "{uid}: the stored object");
        let r = get(
            addr,
            &owner,
            &base,
            &[("accept", "application/dicom"), ("range", "bytes=128-131")],
        );
        assert_eq!(r.status, 206);
        assert_eq!(r.body, original[128..132].to_vec());
        assert_eq!(
            r.header("content-range"),
            Some(format!("bytes 128-131/{}", original.len()).as_str())
        );
        let r = get(
            addr,
            &owner,
            &base,
            &[
                ("accept", "application/dicom"),
                ("range", &format!("bytes={}-", original.len())),
            ],
        );
        assert_eq!(r.status, 416);
        let r = get(addr, &owner, &base, &[]);
        let p = parts(&r);
        assert_eq!(p.len(), 1);
        assert_eq!(p[0].1, original);
        assert!(p[0].0.starts_with("application/dicom"));

        // Frames: decoded (the default) equal the decoder's stored values; as stored, the
        // file's own bitstream.
        let frames = info.image.as_ref().unwrap().frames.max(1);
        let list: Vec<String> = (1..=frames.min(3)).map(|n| n.to_string()).collect();
        let r = get(
            addr,
            &owner,
            &format!("{base}/frames/{}", list.join(",")),
            &[],
        );
        assert_eq!(r.status, 200, "{uid}: {}", String::from_utf8_lossy(&r.body));
        let decoded = parts(&r);
        assert_eq!(decoded.len(), list.len());
        for (n, (ct, bytes)) in decoded.iter().enumerate() {
            assert_eq!(
                ct,
                "application/octet-stream; transfer-syntax=1.2.840.10008.1.2.1"
            );
            let frame = radlab_dicom::decode_frame(&file, n as u32).unwrap();
            let bits = info.image.as_ref().unwrap().bits_allocated;
            let values: Vec<i64> = match bits {
                8 => bytes.iter().map(|b| *b as i64).collect(),
                16 => bytes
                    .chunks_exact(2)
                    .map(|c| {
                        let v = u16::from_le_bytes([c[0], c[1]]);
                        if frame.signed {
                            v as i16 as i64
                        } else {
                            v as i64
                        }
                    })
                    .collect(),
                other => panic!("{uid}: bits allocated {other} not in this test"),
            };
            // Stored values as the decoder gives them, masked to Bits Stored for the raw
            // native bytes.
            let mask = (1i64 << info.image.as_ref().unwrap().bits_stored) - 1;
            let want = frame.samples.to_i64_vec();
            assert_eq!(values.len(), want.len(), "{uid} frame {}", n + 1);
            let same = values
                .iter()
                .zip(&want)
                .all(|(a, b)| a == b || (a & mask) == (b & mask));
            assert!(same, "{uid} frame {}: decoded values differ", n + 1);
        }
        let r = get(
            addr,
            &owner,
            &format!("{base}/frames/1"),
            &[("accept", ANY_SYNTAX)],
        );
        let stored = parts(&r);
        let ts = file.transfer_syntax().to_string();
        let encapsulated = !matches!(
            ts.as_str(),
            "1.2.840.10008.1.2" | "1.2.840.10008.1.2.1" | "1.2.840.10008.1.2.2"
        );
        if encapsulated {
            assert_eq!(
                stored[0].0,
                format!("application/octet-stream; transfer-syntax={ts}")
            );
            let magic: &[u8] = match ts.as_str() {
                "1.2.840.10008.1.2.4.90" | "1.2.840.10008.1.2.4.91" => &[0xFF, 0x4F],
                "1.2.840.10008.1.2.5" => &[],
                _ => &[0xFF, 0xD8],
            };
            assert!(stored[0].1.starts_with(magic), "{uid}: a {ts} bitstream");
            // A frame of one fragment is that fragment.
            if let dicom_core::value::Value::PixelSequence(seq) = file
                .object()
                .get(dicom_dictionary_std::tags::PIXEL_DATA)
                .unwrap()
                .value()
                && frames == 1
            {
                assert_eq!(stored[0].1, seq.fragments().concat(), "{uid}");
            }
            // Asking for another encapsulated syntax is refused.
            let other = "multipart/related; type=\"application/octet-stream\"; transfer-syntax=1.2.840.10008.1.2.4.201";
            let r = get(
                addr,
                &owner,
                &format!("{base}/frames/1"),
                &[("accept", other)],
            );
            assert_eq!((r.status, error_code(&r).as_str()), (406, "not_acceptable"));
        } else {
            assert_eq!(
                stored[0].1, decoded[0].1,
                "{uid}: native frames are the same either way"
            );
        }
        assert_eq!(
            get(addr, &owner, &format!("{base}/frames/{}", frames + 1), &[]).status,
            404
        );
        assert_eq!(
            get(addr, &owner, &format!("{base}/frames/x"), &[]).status,
            400
        );

        // Rendered and thumbnails: the asked format and size.
        let r = get(
            addr,
            &owner,
            &format!("{base}/rendered?viewport=256,256"),
            &[],
        );
        assert_eq!(r.status, 200, "{uid}: {}", String::from_utf8_lossy(&r.body));
        assert_eq!(r.header("content-type"), Some("image/jpeg"));
        let img = image::load_from_memory(&r.body).unwrap();
        assert!(
            img.width().max(img.height()) == 256
                || (info
                    .image
                    .as_ref()
                    .unwrap()
                    .columns
                    .max(info.image.as_ref().unwrap().rows)
                    < 256)
        );
        let r = get(
            addr,
            &owner,
            &format!("{base}/thumbnail"),
            &[("accept", "image/png")],
        );
        assert_eq!(r.header("content-type"), Some("image/png"));
        let img = image::load_from_memory(&r.body).unwrap();
        assert!(img.width() <= 128 && img.height() <= 128);
        let r = get(
            addr,
            &owner,
            &format!("{base}/frames/1/rendered?window=100,50,sigmoid&quality=50"),
            &[],
        );
        assert_eq!(r.status, 200);
        assert_eq!(
            get(addr, &owner, &format!("{base}/rendered?window=1,0"), &[]).status,
            400
        );
        assert_eq!(
            get(
                addr,
                &owner,
                &format!("{base}/rendered"),
                &[("accept", "image/gif")]
            )
            .status,
            406
        );
    }
    // Series and study level.
    let (study, uids) = by_study.iter().next().unwrap();
    let r = get(
        addr,
        &owner,
        &format!("{ROOT}/studies/{study}"),
        &[(
            "accept",
            "multipart/related; type=\"application/dicom\"; transfer-syntax=*",
        )],
    );
    assert_eq!(parts(&r).len(), uids.len());
    let r = get(
        addr,
        &owner,
        &format!("{ROOT}/studies/{study}/metadata"),
        &[],
    );
    assert_eq!(r.json().as_array().unwrap().len(), uids.len());
    assert_eq!(
        get(
            addr,
            &owner,
            &format!("{ROOT}/studies/{study}/thumbnail"),
            &[]
        )
        .status,
        200
    );
    assert_eq!(
        get(addr, &owner, &format!("{ROOT}/studies/1.2.3.999"), &[]).status,
        404
    );
    assert_eq!(
        get(addr, &owner, &format!("{ROOT}/studies/1.2.*"), &[]).status,
        400
    );

    // --- Who sees what -----------------------------------------------------------------
    assert_eq!(
        http(addr, "GET", &format!("{ROOT}/studies"), &[], b"").status,
        401
    );
    let outsider = login(addr, "outsider");
    assert_eq!(
        get(addr, &outsider, &format!("{ROOT}/studies"), &[]).status,
        403
    );
    let r1 = login(addr, "r1");
    // No task yet: nothing.
    assert_eq!(
        get(addr, &r1, &format!("{ROOT}/studies"), &[])
            .json()
            .as_array()
            .unwrap()
            .len(),
        0
    );
    // Reviewers see the project.
    let rev1 = login(addr, "rev1");
    assert_eq!(
        get(addr, &rev1, &format!("{ROOT}/studies"), &[])
            .json()
            .as_array()
            .unwrap()
            .len(),
        by_study.len()
    );
    // r1 and r2 are given the training images, one reader each.
    let r = common::json(
        addr,
        "PUT",
        "/api/v1/projects/cxr/workflows/train",
        &owner.h(),
        r#"{"kind":"single","readers":1}"#,
    );
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    let r = post(
        addr,
        &owner,
        "/api/v1/projects/cxr/assign",
        r#"{"split":"train"}"#,
    );
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    let mut mine = BTreeSet::new();
    let tasks = get(addr, &r1, "/api/v1/tasks", &[]).json();
    for t in tasks["tasks"].as_array().unwrap() {
        let image_id = t["image_id"].as_str().unwrap();
        let uid = train
            .iter()
            .find(|u| radlab_labels::export::vindr_image_id(u) == image_id)
            .unwrap();
        // The worklist says where each image is in the project's DICOMweb.
        let info = &files[uid].1;
        assert_eq!(t["sop_instance_uid"].as_str(), Some(uid.as_str()));
        assert_eq!(
            t["dicomweb"].as_str().unwrap(),
            format!(
                "{ROOT}/studies/{}/series/{}/instances/{uid}",
                info.study_instance_uid, info.series_instance_uid
            )
        );
        mine.insert(uid.clone());
    }
    assert!(!mine.is_empty() && mine.len() < train.len(), "{tasks}");
    let seen: BTreeSet<String> = get(addr, &r1, &format!("{ROOT}/instances"), &[])
        .json()
        .as_array()
        .unwrap()
        .iter()
        .map(|i| tag_value(i, "00080018").as_str().unwrap().to_string())
        .collect();
    assert_eq!(
        seen, mine,
        "an annotator sees the images of their tasks, nothing else"
    );
    for uid in &train {
        let info = &files[uid].1;
        let base = format!(
            "{ROOT}/studies/{}/series/{}/instances/{uid}",
            info.study_instance_uid, info.series_instance_uid
        );
        for suffix in ["/metadata", "/frames/1", "/rendered", "/thumbnail", ""] {
            let r = get(addr, &r1, &format!("{base}{suffix}"), &[]);
            let want = if mine.contains(uid) { 200 } else { 404 };
            assert_eq!(r.status, want, "r1 {suffix} of {uid}");
        }
    }

    // --- STOW-RS -------------------------------------------------------------------------
    let counts = || block_on(async { catalog.counts().await.unwrap() });
    let new_file = std::fs::read(corpus.path("dicom/other/pydicom_CT_small.dcm")).unwrap();
    let new_info = radlab_dicom::InstanceInfo::from_file(
        &radlab_dicom::DicomFile::from_bytes(&new_file).unwrap(),
    );
    let body = multipart_body(
        "b0undary",
        &[("ct", &new_file), ("junk", b"not dicom at all")],
        false,
    );
    let ct = "multipart/related; type=\"application/dicom\"; boundary=b0undary";
    let stow = |u: &User, path: &str, ct: &str, body: &[u8]| {
        let mut h = u.h().to_vec();
        h.push(("content-type", ct));
        http(addr, "POST", path, &h, body)
    };
    let before = counts();
    let r = stow(&r1, &format!("{ROOT}/studies"), ct, &body);
    assert_eq!(r.status, 403);
    assert_eq!(counts(), before);
    let r = stow(&owner, &format!("{ROOT}/studies?split=test"), ct, &body);
    assert_eq!(r.status, 202, "{}", String::from_utf8_lossy(&r.body));
    let answer = r.json();
    let stored = answer["00081199"]["Value"].as_array().unwrap();
    assert_eq!(stored.len(), 1);
    assert_eq!(
        tag_value(&stored[0], "00081155"),
        new_info.sop_instance_uid.as_str()
    );
    let failed = answer["00081198"]["Value"].as_array().unwrap();
    assert_eq!(failed.len(), 1);
    assert_eq!(tag_value(&failed[0], "00081197").as_i64(), Some(0xC000));
    assert_eq!(counts().instances, before.instances + 1);
    let found = get(
        addr,
        &owner,
        &format!(
            "{ROOT}/instances?SOPInstanceUID={}",
            new_info.sop_instance_uid
        ),
        &[],
    )
    .json();
    assert_eq!(found.as_array().unwrap().len(), 1);
    // Into a named study: an object of another study fails alone (409 when all fail).
    let body = multipart_body("xyz", &[("ct", &new_file)], false);
    let r = stow(
        &owner,
        &format!("{ROOT}/studies/1.2.3.4"),
        "multipart/related; type=\"application/dicom\"; boundary=xyz",
        &body,
    );
    assert_eq!(r.status, 409);
    assert_eq!(
        tag_value(&r.json()["00081198"]["Value"][0], "00081197").as_i64(),
        Some(0xA900)
    );
    let r = stow(
        &owner,
        &format!("{ROOT}/studies"),
        "application/dicom",
        &new_file,
    );
    assert_eq!(r.status, 415);
    let r = stow(
        &owner,
        &format!("{ROOT}/studies"),
        "multipart/related; type=\"application/dicom\"",
        &body,
    );
    assert_eq!(r.status, 400, "no boundary");

    // --- multipart/form-data uploads: all or nothing ---------------------------------------
    let a = std::fs::read(corpus.path("dicom/other/kakadu_cr_hand_pa_j2k.dcm")).unwrap();
    let b = std::fs::read(corpus.path("dicom/other/nema_wg04_RG3_J2KR_cr_extremity_ap_mono1.dcm"))
        .unwrap();
    let form = "multipart/form-data; boundary=----form7";
    let before = counts();
    let bad = multipart_body("----form7", &[("a.dcm", &a), ("notes.txt", b"hello")], true);
    let r = stow(
        &owner,
        "/api/v1/projects/cxr/upload?split=train",
        form,
        &bad,
    );
    assert_eq!(r.status, 422, "{}", String::from_utf8_lossy(&r.body));
    assert!(
        r.json()["error"]["message"]
            .as_str()
            .unwrap()
            .contains("notes.txt")
    );
    assert_eq!(counts(), before, "nothing stored");
    let good = multipart_body("----form7", &[("a.dcm", &a), ("b.dcm", &b)], true);
    let r = stow(
        &owner,
        "/api/v1/projects/cxr/upload?split=train",
        form,
        &good,
    );
    assert_eq!(r.status, 201, "{}", String::from_utf8_lossy(&r.body));
    assert_eq!(r.json()["files"].as_array().unwrap().len(), 2);
    assert!(counts().instances > before.instances);
}

fn urlencode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'*' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

#[test]
fn dicomweb_on_sqlite() {
    let Some(corpus) = corpus("server_dicomweb_sqlite") else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    dicomweb_works(&sqlite_url(&dir), &corpus);
}

#[test]
fn dicomweb_on_postgres() {
    let Some(corpus) = corpus("server_dicomweb_postgres") else {
        return;
    };
    let Some(db) = postgres_database("server_dicomweb") else {
        return;
    };
    dicomweb_works(&db.url, &corpus);
}

/// dicomweb-client (a third-party DICOMweb library) searches, reads metadata, instances,
/// frames in three forms and rendered images, and stores an object; everything compared with
/// the original files as pydicom reads them (tests/reference/dicomweb_client_check.py).
#[test]
fn a_third_party_dicomweb_client_reads_and_stores() {
    let Some(corpus) = corpus("server_dicomweb_client") else {
        return;
    };
    let Some(python) =
        radlab_testkit::reference_python_with("server_dicomweb_client", "dicomweb_client")
    else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let blobs = radlab_store::BlobStore::local(dir.path().join("blobs")).unwrap();
    let staging = dir.path().join("staging");
    let config = ServerConfig {
        cors_origins: vec!["http://viewer.example".into()],
        ..ServerConfig::default()
    };
    let (addr, catalog) = start_with(&sqlite_url(&dir), config, |s| {
        s.with_uploads(blobs.clone(), staging.clone(), 20_000_000)
    });
    let mut paths: Vec<std::path::PathBuf> = std::fs::read_dir(corpus.path("dicom/cxr"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    paths.sort();
    paths.extend(OTHERS.iter().map(|p| corpus.path(p)));
    block_on(async {
        add_user(&catalog, "owner", "owner password 1", "user")
            .await
            .unwrap();
        radlab_store::import_paths(
            &catalog,
            &blobs,
            &paths,
            &radlab_store::ImportOptions::default(),
            std::sync::Arc::new(radlab_store::NoProgress),
        )
        .await
        .unwrap();
    });
    let owner = login(addr, "owner");
    assert_eq!(
        post(
            addr,
            &owner,
            "/api/v1/projects",
            r#"{"project_id":"cxr","template":"vindr-cxr"}"#
        )
        .status,
        201
    );
    let r = post(
        addr,
        &owner,
        "/api/v1/projects/cxr/images",
        r#"{"all":true,"split":"train"}"#,
    );
    assert_eq!(r.status, 200);
    let token = post(addr, &owner, "/api/v1/tokens", r#"{"name":"client"}"#).json()["token"]
        .as_str()
        .unwrap()
        .to_string();
    let files: Vec<String> = paths.iter().map(|p| p.display().to_string()).collect();
    let out = std::process::Command::new(python)
        .arg(radlab_testkit::repo_root().join("tests/reference/dicomweb_client_check.py"))
        .arg(format!("http://{addr}{ROOT}"))
        .arg(&token)
        .arg(serde_json::to_string(&files).unwrap())
        .arg(corpus.path("dicom/other/pydicom_CT_small.dcm"))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "dicomweb-client: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    // A viewer page from an allowed origin (--cors-origin): its preflight is answered
    // without credentials, its requests with a token get the allow headers; another origin
    // gets none; other paths get none.
    let studies = format!("{ROOT}/studies");
    let preflight = http(
        addr,
        "OPTIONS",
        &studies,
        &[
            ("origin", "http://viewer.example"),
            ("access-control-request-method", "GET"),
            ("access-control-request-headers", "authorization"),
        ],
        b"",
    );
    assert_eq!(preflight.status, 204);
    assert_eq!(
        preflight.header("access-control-allow-origin"),
        Some("http://viewer.example")
    );
    assert!(
        preflight
            .header("access-control-allow-headers")
            .unwrap()
            .contains("authorization")
    );
    let bearer = format!("Bearer {token}");
    let r = http(
        addr,
        "GET",
        &studies,
        &[
            ("origin", "http://viewer.example"),
            ("authorization", &bearer),
        ],
        b"",
    );
    assert_eq!(r.status, 200);
    assert_eq!(
        r.header("access-control-allow-origin"),
        Some("http://viewer.example")
    );
    assert!(
        r.header("access-control-expose-headers")
            .unwrap()
            .contains("etag")
    );
    let r = http(
        addr,
        "GET",
        &studies,
        &[
            ("origin", "http://elsewhere.example"),
            ("authorization", &bearer),
        ],
        b"",
    );
    assert_eq!(r.header("access-control-allow-origin"), None);
    let r = http(
        addr,
        "OPTIONS",
        "/api/v1/projects",
        &[("origin", "http://viewer.example")],
        b"",
    );
    assert_eq!(r.header("access-control-allow-origin"), None);
    eprintln!("dicomweb-client checked: {report}");
    assert_eq!(report["instances"].as_u64(), Some(files.len() as u64));
    assert_eq!(report["frames_decoded"].as_u64(), Some(files.len() as u64));
    assert!(report["frames_by_media_type"].as_u64().unwrap() >= 4);
    assert_eq!(report["stored"].as_u64(), Some(1));
}
