//! `radlab pacs listen --qr-project` (and `radlab serve --dicom-qr-project`) as a Study Root
//! query/retrieve provider, driven by
//! dcmtk's `findscu` and `movescu`, with dcmtk's `storescp` as the move destination: C-FIND at
//! study, series and image level finds exactly the project's studies, series and instances
//! (not the catalogued images outside it), with the usual matching keys; C-MOVE of a study
//! delivers each of its instances with the data set byte for byte as catalogued; an unknown
//! destination is refused with A801.

mod common;

use std::collections::{BTreeMap, BTreeSet};

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use common::{radlab, text};
use radlab_store::{BlobStore, Catalog, ImageSelection, QidoQuery, Visibility};

const STUDY_UID: u32 = 0x0020_000D;
const SERIES_UID: u32 = 0x0020_000E;
const SOP_UID: u32 = 0x0008_0018;

struct Killed(Child);

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// `radlab pacs listen` on a free port; its port and a thread collecting its log.
fn start_scp(data: &Path, extra: &[&str]) -> (Killed, u16, std::thread::JoinHandle<String>) {
    let (child, port, line, log) = common::start_listen(data, extra);
    assert!(
        line.contains("query/retrieve over project qr (1 move destination(s))"),
        "{line}"
    );
    (Killed(child), port, log)
}

/// `findscu` (Study Root) with `keys`; its responses, read from the files `-X` writes.
fn findscu(port: u16, level: &str, keys: &[&str], tmp: &Path) -> Vec<BTreeMap<u32, String>> {
    let dir = tempfile::tempdir_in(tmp).unwrap();
    let mut cmd = Command::new("findscu");
    cmd.args(["-S", "-aet", "FINDSCU", "-aec", "RADLAB", "-X", "-od"])
        .arg(dir.path())
        .args(["-k", &format!("QueryRetrieveLevel={level}")]);
    for k in keys {
        cmd.args(["-k", k]);
    }
    let out = cmd
        .args(["127.0.0.1", &port.to_string()])
        .output()
        .expect("run findscu");
    assert!(out.status.success(), "findscu {keys:?}: {}", text(&out));
    assert!(
        !text(&out).contains("E: "),
        "findscu {keys:?}: {}",
        text(&out)
    );
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    files.sort();
    files
        .iter()
        .map(|f| {
            let bytes = std::fs::read(f).unwrap();
            let ts = radlab_dicom::DicomFile::from_bytes(&bytes)
                .unwrap()
                .transfer_syntax()
                .to_string();
            let data = radlab_net::qr::data_set_of(&bytes).unwrap();
            radlab_net::qr::read_identifier(data, &ts)
                .unwrap()
                .into_iter()
                .map(|(tag, v)| (tag, v.unwrap_or_default()))
                .collect()
        })
        .collect()
}

fn values(answers: &[BTreeMap<u32, String>], tag: u32) -> BTreeSet<String> {
    answers.iter().map(|a| a[&tag].clone()).collect()
}

fn movescu(port: u16, dest: &str, keys: &[&str]) -> String {
    let mut cmd = Command::new("movescu");
    cmd.args([
        "-S", "-v", "-aet", "MOVESCU", "-aec", "RADLAB", "-aem", dest,
    ]);
    for k in keys {
        cmd.args(["-k", k]);
    }
    let out = cmd
        .args(["127.0.0.1", &port.to_string()])
        .output()
        .expect("run movescu");
    text(&out)
}

/// Every file under `dir`: SOP Instance UID and the data set after the file meta group.
fn received(dir: &Path) -> BTreeMap<String, Vec<u8>> {
    let mut out = BTreeMap::new();
    for e in std::fs::read_dir(dir).unwrap() {
        let bytes = std::fs::read(e.unwrap().path()).unwrap();
        let file = radlab_dicom::DicomFile::from_bytes(&bytes).unwrap();
        let uid = radlab_dicom::InstanceInfo::from_file(&file).sop_instance_uid;
        out.insert(uid, radlab_net::qr::data_set_of(&bytes).unwrap().to_vec());
    }
    out
}

#[test]
fn findscu_and_movescu_against_a_project() {
    let test = "findscu_and_movescu_against_a_project";
    for tool in ["findscu", "movescu", "storescp"] {
        if !radlab_testkit::has_tool(test, tool) {
            return;
        }
    }
    let Some(corpus) = radlab_testkit::corpus(test) else {
        return;
    };
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    let out = radlab(
        &[
            "import",
            corpus.path("dicom/cxr").to_str().unwrap(),
            corpus.path("dicom/cxr_derived").to_str().unwrap(),
        ],
        &data,
    );
    assert!(out.status.success(), "{}", text(&out));

    // The project: the studies of three of the corpus's radiographs (JPEG 2000 with a second
    // instance in explicit VR, implicit VR, JPEG baseline); the catalog holds two more.
    let study_of = |file: &str| {
        let f = radlab_dicom::DicomFile::open(corpus.path(file)).unwrap();
        radlab_dicom::InstanceInfo::from_file(&f).study_instance_uid
    };
    let chosen: BTreeSet<String> = [
        "dicom/cxr/nema_wg04_RG1_J2KI_cr_chest_pa_mono1.dcm",
        "dicom/cxr/nih_cxr14_dx_sc_implicit_covid0000.dcm",
        "dicom/cxr/siim_acr_cr_chest_pa_jpeg_baseline.dcm",
    ]
    .iter()
    .map(|f| study_of(f))
    .collect();
    let rt = tokio::runtime::Runtime::new().unwrap();
    let catalog_url = format!("sqlite://{}", data.join("catalog.db").display());
    let (all_studies, studies, series, instances) = rt.block_on(async {
        let catalog = Catalog::open(&catalog_url).await.unwrap();
        let q = QidoQuery {
            limit: 1000,
            ..QidoQuery::default()
        };
        catalog.create_project("all", "vindr-cxr").await.unwrap();
        catalog
            .add_project_images("all", &ImageSelection::All, None, "train")
            .await
            .unwrap();
        let all = catalog
            .qido_studies("all", &Visibility::Project, &q)
            .await
            .unwrap();
        catalog.create_project("qr", "vindr-cxr").await.unwrap();
        catalog
            .add_project_images(
                "qr",
                &ImageSelection::Studies(chosen.iter().cloned().collect()),
                None,
                "train",
            )
            .await
            .unwrap();
        let studies = catalog
            .qido_studies("qr", &Visibility::Project, &q)
            .await
            .unwrap();
        let series = catalog
            .qido_series("qr", &Visibility::Project, &q)
            .await
            .unwrap();
        let instances = catalog
            .qido_instances("qr", &Visibility::Project, &q)
            .await
            .unwrap();
        catalog.close().await;
        (all, studies, series, instances)
    });
    assert_eq!(all_studies.len(), 5);
    let project: BTreeSet<String> = studies
        .iter()
        .map(|s| s.study_instance_uid.clone())
        .collect();
    assert_eq!(project, chosen);
    let outside: Vec<String> = all_studies
        .iter()
        .map(|s| s.study_instance_uid.clone())
        .filter(|u| !project.contains(u))
        .collect();
    assert_eq!(outside.len(), 2);

    // The move destination.
    let dest_dir = tmp.path().join("storescp");
    std::fs::create_dir(&dest_dir).unwrap();
    let dest_port = free_port();
    let _storescp = Killed(
        Command::new("storescp")
            .args(["-aet", "STORESCP", "+xa", "+B", "-od"])
            .arg(&dest_dir)
            .arg(dest_port.to_string())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start storescp"),
    );
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while std::net::TcpStream::connect(("127.0.0.1", dest_port)).is_err() {
        assert!(
            std::time::Instant::now() < deadline,
            "storescp did not start"
        );
        std::thread::sleep(Duration::from_millis(100));
    }

    let peer = format!("STORESCP=127.0.0.1:{dest_port}");
    let (scp, port, log) = start_scp(&data, &["--qr-project", "qr", "--peer", &peer]);

    // Study level: exactly the project's studies, with their counts and our AE title.
    let found = findscu(
        port,
        "STUDY",
        &[
            "StudyInstanceUID",
            "StudyDate",
            "ModalitiesInStudy",
            "NumberOfStudyRelatedInstances",
            "NumberOfStudyRelatedSeries",
            "AccessionNumber",
            "PatientID",
            "StudyDescription",
            "RetrieveAETitle",
        ],
        tmp.path(),
    );
    assert_eq!(values(&found, STUDY_UID), project);
    assert_eq!(found.len(), project.len());
    for s in &studies {
        let a = found
            .iter()
            .find(|a| a[&STUDY_UID] == s.study_instance_uid)
            .unwrap();
        assert_eq!(a[&0x0020_1208], s.instances.to_string());
        assert_eq!(a[&0x0020_1206], s.series.to_string());
        assert_eq!(a[&0x0008_0020], s.study_date);
        assert_eq!(a[&0x0008_0061], s.modalities.join("\\"));
        assert_eq!(a[&0x0010_0020], s.patient_id);
        assert_eq!(a[&0x0008_0054], "RADLAB");
    }
    // Modalities in Study, a list of them, a date range, a wildcard, a UID list.
    let with_modality = |m: &str| -> BTreeSet<String> {
        studies
            .iter()
            .filter(|s| s.modalities.iter().any(|x| x == m))
            .map(|s| s.study_instance_uid.clone())
            .collect()
    };
    let dx = findscu(
        port,
        "STUDY",
        &["ModalitiesInStudy=DX", "StudyInstanceUID"],
        tmp.path(),
    );
    assert_eq!(values(&dx, STUDY_UID), with_modality("DX"));
    assert!(!dx.is_empty());
    let both = findscu(
        port,
        "STUDY",
        &["ModalitiesInStudy=CR\\DX", "StudyInstanceUID"],
        tmp.path(),
    );
    assert_eq!(values(&both, STUDY_UID), project);
    let dated = studies
        .iter()
        .find(|s| !s.study_date.is_empty())
        .expect("a dated study");
    let range = format!("StudyDate={}-{}", dated.study_date, dated.study_date);
    let on_day = findscu(port, "STUDY", &[&range, "StudyInstanceUID"], tmp.path());
    let expected: BTreeSet<String> = studies
        .iter()
        .filter(|s| s.study_date == dated.study_date)
        .map(|s| s.study_instance_uid.clone())
        .collect();
    assert_eq!(values(&on_day, STUDY_UID), expected);
    let after = format!("StudyDate={}-", dated.study_date);
    let later = findscu(port, "STUDY", &[&after, "StudyInstanceUID"], tmp.path());
    let expected: BTreeSet<String> = studies
        .iter()
        .filter(|s| !s.study_date.is_empty() && s.study_date >= dated.study_date)
        .map(|s| s.study_instance_uid.clone())
        .collect();
    assert_eq!(values(&later, STUDY_UID), expected);
    let pid = &dated.patient_id;
    if pid.len() > 2 {
        let pattern = format!("PatientID={}*", &pid[..pid.len() - 2]);
        let wild = findscu(port, "STUDY", &[&pattern, "StudyInstanceUID"], tmp.path());
        assert!(values(&wild, STUDY_UID).contains(&dated.study_instance_uid));
    }
    let two: Vec<&String> = project.iter().take(2).collect();
    let list = format!("StudyInstanceUID={}\\{}", two[0], two[1]);
    let listed = findscu(port, "STUDY", &[&list], tmp.path());
    assert_eq!(
        values(&listed, STUDY_UID),
        two.iter().map(|s| s.to_string()).collect()
    );
    // A study outside the project is not found, even by its UID.
    let hidden = format!("StudyInstanceUID={}", outside[0]);
    assert!(findscu(port, "STUDY", &[&hidden], tmp.path()).is_empty());

    // Series level: the project's series, by study, by modality and body part.
    let found = findscu(
        port,
        "SERIES",
        &[
            "StudyInstanceUID",
            "SeriesInstanceUID",
            "Modality",
            "BodyPartExamined",
            "NumberOfSeriesRelatedInstances",
        ],
        tmp.path(),
    );
    let all_series: BTreeSet<String> = series
        .iter()
        .map(|s| s.series_instance_uid.clone())
        .collect();
    assert_eq!(values(&found, SERIES_UID), all_series);
    assert_eq!(values(&found, STUDY_UID), project);
    for s in &series {
        let a = found
            .iter()
            .find(|a| a[&SERIES_UID] == s.series_instance_uid)
            .unwrap();
        assert_eq!(a[&0x0008_0060], s.modality);
        assert_eq!(a[&0x0018_0015], s.body_part_examined);
        assert_eq!(a[&0x0020_1209], s.instances.to_string());
    }
    let cr = findscu(
        port,
        "SERIES",
        &["Modality=CR", "BodyPartExamined=CHEST", "SeriesInstanceUID"],
        tmp.path(),
    );
    let expected: BTreeSet<String> = series
        .iter()
        .filter(|s| s.modality == "CR" && s.body_part_examined == "CHEST")
        .map(|s| s.series_instance_uid.clone())
        .collect();
    assert!(!expected.is_empty());
    assert_eq!(values(&cr, SERIES_UID), expected);
    let hidden = format!("StudyInstanceUID={}", outside[1]);
    assert!(findscu(port, "SERIES", &[&hidden, "SeriesInstanceUID"], tmp.path()).is_empty());

    // Image level, in the study of two instances.
    let rg1 = study_of("dicom/cxr/nema_wg04_RG1_J2KI_cr_chest_pa_mono1.dcm");
    let key = format!("StudyInstanceUID={rg1}");
    let images = findscu(
        port,
        "IMAGE",
        &[
            &key,
            "SeriesInstanceUID",
            "SOPInstanceUID",
            "SOPClassUID",
            "Rows",
        ],
        tmp.path(),
    );
    let expected: BTreeSet<String> = instances
        .iter()
        .filter(|i| i.study_instance_uid == rg1)
        .map(|i| i.sop_instance_uid.clone())
        .collect();
    assert_eq!(expected.len(), 2);
    assert_eq!(values(&images, SOP_UID), expected);
    for a in &images {
        let i = instances
            .iter()
            .find(|i| i.sop_instance_uid == a[&SOP_UID])
            .unwrap();
        assert_eq!(a[&0x0028_0010], i.rows.to_string());
        assert_eq!(a[&0x0008_0016], i.sop_class_uid);
    }

    // C-MOVE of each study: every instance arrives with its data set as catalogued.
    let blobs = BlobStore::local(data.join("blobs")).unwrap();
    for study in &project {
        let key = format!("StudyInstanceUID={study}");
        let said = movescu(port, "STORESCP", &["QueryRetrieveLevel=STUDY", &key]);
        assert!(!said.contains("E: "), "movescu: {said}");
    }
    let got = received(&dest_dir);
    assert_eq!(
        got.keys().cloned().collect::<BTreeSet<_>>(),
        instances
            .iter()
            .map(|i| i.sop_instance_uid.clone())
            .collect::<BTreeSet<_>>()
    );
    for i in &instances {
        let stored = rt.block_on(blobs.get(&i.blob_hash)).unwrap();
        let want = radlab_net::qr::data_set_of(&stored).unwrap();
        assert!(
            got[&i.sop_instance_uid] == want,
            "the data set of an instance in {} arrived changed",
            i.transfer_syntax_uid
        );
    }

    // A study outside the project moves nothing; an unknown destination is refused.
    let key = format!("StudyInstanceUID={}", outside[0]);
    let said = movescu(port, "STORESCP", &["QueryRetrieveLevel=STUDY", &key]);
    assert!(!said.contains("E: "), "movescu: {said}");
    assert_eq!(received(&dest_dir).len(), instances.len());
    let key = format!("StudyInstanceUID={rg1}");
    let said = movescu(port, "NOWHERE", &["QueryRetrieveLevel=STUDY", &key]);
    assert!(
        said.contains("Final Move Response (Refused: MoveDestinationUnknown)"),
        "movescu: {said}"
    );

    drop(scp);
    let log = log.join().unwrap();
    assert!(log.contains("C-FIND at STUDY level"), "{log}");
    assert!(
        log.contains("to STORESCP: 2 completed, 0 failed, 0 warning"),
        "{log}"
    );
    assert!(log.contains("failed with status 0xA801"), "{log}");
    // Logs carry no UIDs.
    for i in &instances {
        assert!(!log.contains(&i.sop_instance_uid));
        assert!(!log.contains(&i.study_instance_uid));
    }

    // The same provider inside `radlab serve` (--dicom-qr-project, --dicom-peer): the
    // project's studies found, a study moved whole.
    let mut server = common::command()
        .args(["serve", "--listen", "127.0.0.1:0", "--dicom-port", "0"])
        .args(["--dicom-aet", "RADLAB", "--dicom-qr-project", "qr"])
        .args(["--dicom-peer", &peer, "--data-dir"])
        .arg(&data)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("start radlab serve");
    let (_, before) = common::serving_address(&mut server);
    let _server = Killed(server);
    let line = before
        .lines()
        .find(|l| l.starts_with("radlab pacs listening on "))
        .unwrap_or_else(|| panic!("no DICOM listener in: {before}"));
    assert!(
        line.contains("query/retrieve over project qr (1 move destination(s))"),
        "{line}"
    );
    let port: u16 = line["radlab pacs listening on ".len()..]
        .split_whitespace()
        .next()
        .and_then(|a| a.rsplit(':').next())
        .and_then(|p| p.parse().ok())
        .unwrap_or_else(|| panic!("{line}"));
    let found = findscu(port, "STUDY", &["StudyInstanceUID"], tmp.path());
    assert_eq!(values(&found, STUDY_UID), project);
    for entry in std::fs::read_dir(&dest_dir).unwrap() {
        std::fs::remove_file(entry.unwrap().path()).unwrap();
    }
    let key = format!("StudyInstanceUID={rg1}");
    let said = movescu(port, "STORESCP", &["QueryRetrieveLevel=STUDY", &key]);
    assert!(!said.contains("E: "), "movescu: {said}");
    let moved = received(&dest_dir);
    let of_rg1: BTreeSet<String> = instances
        .iter()
        .filter(|i| i.study_instance_uid == rg1)
        .map(|i| i.sop_instance_uid.clone())
        .collect();
    assert_eq!(moved.keys().cloned().collect::<BTreeSet<_>>(), of_rg1);
}
