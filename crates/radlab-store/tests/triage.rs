//! Triage verdicts on SQLite and PostgreSQL (when `RADLAB_TEST_POSTGRES` names a server):
//! recorded per image of a project, replaced by a new run, an administrator's overrule kept
//! across runs and taken back.

use radlab_store::{Catalog, NewVerdict};
use radlab_testkit::postgres_database;

fn verdict(image: &str, valid: bool, findings: &str) -> NewVerdict {
    NewVerdict {
        image_id: image.into(),
        sop_instance_uid: format!("1.2.3.{image}"),
        model: "rules".into(),
        valid,
        class: String::new(),
        probability: String::new(),
        findings: serde_json::from_str(findings).unwrap(),
        orientation: if valid { "0".into() } else { "90".into() },
        upright_blob: if valid {
            String::new()
        } else {
            format!("blob-{image}")
        },
    }
}

async fn verdicts_and_overrules(url: &str) {
    let catalog = Catalog::open(url).await.unwrap();
    assert!(
        catalog
            .record_triage("nope", &[verdict("a", true, "[]")])
            .await
            .is_err()
    );
    catalog.create_project("p", "vindr-cxr").await.unwrap();
    let hand = r#"[{"code":"body-part","reason":"Body Part Examined \"HAND\" is not the chest"}]"#;
    catalog
        .record_triage("p", &[verdict("b", false, hand), verdict("a", true, "[]")])
        .await
        .unwrap();
    let got = catalog.triage_verdicts("p").await.unwrap();
    assert_eq!(got.len(), 2);
    assert_eq!(got[0].verdict.image_id, "a");
    assert!(got[0].verdict.valid && got[0].effective_valid() && got[0].overruled.is_none());
    assert!(!got[1].verdict.valid);
    assert_eq!(got[1].verdict.findings[0]["code"], "body-part");
    assert_eq!(got[1].verdict.orientation, "90");
    assert_eq!(got[1].verdict.upright_blob, "blob-b");
    assert_eq!(got[0].verdict.upright_blob, "");
    // An administrator keeps the hand; a new run does not undo it.
    assert!(
        catalog
            .overrule_triage("p", "b", Some(true), "admin")
            .await
            .unwrap()
    );
    assert!(
        !catalog
            .overrule_triage("p", "zz", Some(true), "admin")
            .await
            .unwrap()
    );
    catalog
        .record_triage("p", &[verdict("b", false, hand)])
        .await
        .unwrap();
    let b = &catalog.triage_verdicts("p").await.unwrap()[1];
    assert_eq!(b.overruled, Some(true));
    assert_eq!(b.overruled_by, "admin");
    assert!(!b.verdict.valid && b.effective_valid());
    // Taken back.
    catalog
        .overrule_triage("p", "b", None, "admin")
        .await
        .unwrap();
    let b = &catalog.triage_verdicts("p").await.unwrap()[1];
    assert_eq!(b.overruled, None);
    assert!(!b.effective_valid());
    catalog.close().await;
}

#[tokio::test]
async fn triage_verdicts_on_sqlite() {
    let dir = tempfile::tempdir().unwrap();
    verdicts_and_overrules(&format!(
        "sqlite://{}",
        dir.path().join("catalog.db").display()
    ))
    .await;
}

#[tokio::test]
async fn triage_verdicts_on_postgres() {
    let Some(db) = postgres_database("triage_verdicts") else {
        return;
    };
    verdicts_and_overrules(&db.url).await;
}
