//! The built-in label-schema templates: each passes its own checks, lists the published labels
//! with their exact released spellings, counts and scopes, and is found by name.

use std::collections::BTreeSet;

use radlab_labels::schema::{LabelSchema, LabelScope, TEMPLATES};

/// The names of a schema's labels of one scope, in order.
fn names(schema: &LabelSchema, scope: LabelScope) -> Vec<&str> {
    schema
        .labels
        .iter()
        .filter(|l| l.scope == scope)
        .map(|l| l.name.as_str())
        .collect()
}

/// What every template shares: its checks pass, colours are distinct, box labels have distinct
/// hotkeys and the others none, exactly one label is exclusive, no export ids unless Kaggle's.
fn common(schema: &LabelSchema, template: &str, exclusive: &str) {
    schema.check().unwrap();
    assert_eq!(schema.template.as_deref(), Some(template));
    let colours: BTreeSet<_> = schema.labels.iter().map(|l| l.color.as_str()).collect();
    assert_eq!(colours.len(), schema.labels.len(), "{template}: colours");
    for l in &schema.labels {
        assert_eq!(
            l.hotkey.is_some(),
            l.scope == LabelScope::Local,
            "{template}: {}",
            l.name
        );
        assert!(l.parent.is_none());
    }
    let exclusives: Vec<_> = schema
        .labels
        .iter()
        .filter(|l| l.exclusive)
        .map(|l| l.name.as_str())
        .collect();
    assert_eq!(exclusives, [exclusive]);
    if template != "vindr-cxr" {
        assert!(schema.labels.iter().all(|l| l.export_id.is_none()));
    }
    // A template survives JSON (how a project stores it) unchanged.
    let json = serde_json::to_string(schema).unwrap();
    assert_eq!(&serde_json::from_str::<LabelSchema>(&json).unwrap(), schema);
}

#[test]
fn templates_lists_all_four_and_each_is_found_by_name() {
    assert_eq!(
        TEMPLATES,
        ["vindr-cxr", "vindr-mammo", "vindr-spinexr", "pedicxr"]
    );
    for t in TEMPLATES {
        let schema = LabelSchema::template(t).unwrap();
        assert_eq!(schema.template.as_deref(), Some(t));
        schema.check().unwrap();
    }
    assert_eq!(
        LabelSchema::template("vindr-mammo"),
        Some(LabelSchema::vindr_mammo())
    );
    assert_eq!(
        LabelSchema::template("vindr-spinexr"),
        Some(LabelSchema::vindr_spinexr())
    );
    assert_eq!(
        LabelSchema::template("pedicxr"),
        Some(LabelSchema::pedicxr())
    );
    assert_eq!(LabelSchema::template("vindr-pcxr"), None);
    assert_eq!(LabelSchema::template("VinDr-Mammo"), None);
}

#[test]
fn vindr_cxr_is_unchanged() {
    let s = LabelSchema::vindr_cxr();
    common(&s, "vindr-cxr", "No finding");
    assert_eq!(names(&s, LabelScope::Local).len(), 22);
    assert_eq!(names(&s, LabelScope::Image).len(), 6);
    assert_eq!(
        s.labels.iter().filter(|l| l.export_id.is_some()).count(),
        15
    );
}

#[test]
fn vindr_mammo_has_the_released_categories_and_breast_assessments() {
    let s = LabelSchema::vindr_mammo();
    common(&s, "vindr-mammo", "No Finding");
    assert_eq!(
        names(&s, LabelScope::Local),
        [
            "Suspicious Lymph Node",
            "Mass",
            "Suspicious Calcification",
            "Asymmetry",
            "Focal Asymmetry",
            "Global Asymmetry",
            "Architectural Distortion",
            "Skin Thickening",
            "Skin Retraction",
            "Nipple Retraction",
        ]
    );
    assert_eq!(names(&s, LabelScope::Image), ["No Finding"]);
    assert_eq!(
        names(&s, LabelScope::Breast),
        [
            "BI-RADS 1",
            "BI-RADS 2",
            "BI-RADS 3",
            "BI-RADS 4",
            "BI-RADS 5",
            "DENSITY A",
            "DENSITY B",
            "DENSITY C",
            "DENSITY D",
        ]
    );
    assert!(names(&s, LabelScope::Study).is_empty());
    let keys: Vec<_> = s
        .labels
        .iter()
        .filter_map(|l| l.hotkey.as_deref())
        .collect();
    assert_eq!(keys, ["1", "2", "3", "4", "5", "6", "7", "8", "9", "0"]);

    // A BI-RADS grade on the six graded categories, none on the other four.
    let graded = [
        "Mass",
        "Suspicious Calcification",
        "Architectural Distortion",
        "Asymmetry",
        "Focal Asymmetry",
        "Global Asymmetry",
    ];
    for l in &s.labels {
        if graded.contains(&l.name.as_str()) {
            assert_eq!(l.attributes.len(), 1, "{}", l.name);
            assert_eq!(l.attributes[0].name, "finding_birads");
            assert_eq!(
                l.attributes[0].values,
                ["BI-RADS 3", "BI-RADS 4", "BI-RADS 5"]
            );
        } else {
            assert!(l.attributes.is_empty(), "{}", l.name);
        }
    }
}

#[test]
fn vindr_spinexr_has_seven_lesions_and_no_finding() {
    let s = LabelSchema::vindr_spinexr();
    common(&s, "vindr-spinexr", "No finding");
    assert_eq!(
        names(&s, LabelScope::Local),
        [
            "Osteophytes",
            "Disc space narrowing",
            "Surgical implant",
            "Foraminal stenosis",
            "Spondylolysthesis",
            "Vertebral collapse",
            "Other lesions",
        ]
    );
    assert_eq!(names(&s, LabelScope::Image), ["No finding"]);
    assert_eq!(s.labels.len(), 8);
    let keys: Vec<_> = s
        .labels
        .iter()
        .filter_map(|l| l.hotkey.as_deref())
        .collect();
    assert_eq!(keys, ["1", "2", "3", "4", "5", "6", "7"]);
    // The released misspelling is the name; the description says what it means.
    let l = s.label("Spondylolysthesis").unwrap();
    assert!(l.description.starts_with("Spondylolisthesis"));
    assert!(s.label("Spondylolisthesis").is_none());
}

#[test]
fn pedicxr_has_36_findings_and_15_image_labels_spelled_as_released() {
    let s = LabelSchema::pedicxr();
    common(&s, "pedicxr", "No finding");
    assert_eq!(
        names(&s, LabelScope::Local),
        [
            "Boot-shaped heart",
            "Peribronchovascular interstitial opacity",
            "Reticulonodular opacity",
            "Bronchial thickening",
            "Enlarged PA",
            "Cardiomegaly",
            "Diffuse aveolar opacity",
            "Other opacity",
            "Other lesion",
            "Consolidation",
            "Mediastinal shift",
            "Anterior mediastinal mass",
            "Dextro cardia",
            "Pleural effusion",
            "Stomach on the right side",
            "Atelectasis",
            "Lung hyperinflation",
            "Egg on string sign",
            "Interstitial lung disease - ILD",
            "Infiltration",
            "Lung cavity",
            "Pneumothorax",
            "Edema",
            "Pleural thickening",
            "Other nodule/mass",
            "Clavicle fracture",
            "Chest wall mass",
            "Lung cyst",
            "Emphysema",
            "Bronchectasis",
            "Expanded edges of the anterior ribs",
            "Pulmonary fibrosis",
            "Paraveterbral mass",
            "Aortic enlargement",
            "Calcification",
            "Intrathoracic digestive structure",
        ]
    );
    assert_eq!(
        names(&s, LabelScope::Image),
        [
            "No finding",
            "Bronchitis",
            "Brocho-pneumonia",
            "Other disease",
            "Bronchiolitis",
            "Situs inversus",
            "Pneumonia",
            "Pleuro-pneumonia",
            "Diagphramatic hernia",
            "Tuberculosis",
            "Congenital emphysema",
            "CPAM",
            "Hyaline membrane disease",
            "Mediastinal tumor",
            "Lung tumor",
        ]
    );
    assert_eq!(s.labels.len(), 51);
    // 36 box labels use every digit and letter once.
    let keys: String = s
        .labels
        .iter()
        .filter_map(|l| l.hotkey.as_deref())
        .collect();
    assert_eq!(keys, "1234567890abcdefghijklmnopqrstuvwxyz");
    // Misspellings kept; the corrected spelling is only in the description.
    for (released, meant) in [
        ("Brocho-pneumonia", "Bronchopneumonia"),
        ("Diagphramatic hernia", "Diaphragmatic hernia"),
        ("Diffuse aveolar opacity", "Diffuse alveolar opacity"),
        ("Bronchectasis", "Bronchiectasis"),
        ("Paraveterbral mass", "Paravertebral mass"),
    ] {
        assert!(s.label(released).unwrap().description.starts_with(meant));
        assert!(s.label(meant).is_none(), "{meant}");
    }
}

#[test]
fn breast_scope_is_serialized_as_breast() {
    assert_eq!(
        serde_json::to_string(&LabelScope::Breast).unwrap(),
        r#""breast""#
    );
    let s: LabelScope = serde_json::from_str(r#""breast""#).unwrap();
    assert_eq!(s, LabelScope::Breast);
    // A template in use may be extended but its breast labels keep their scope.
    let old = LabelSchema::vindr_mammo();
    let mut new = old.clone();
    new.labels
        .iter_mut()
        .find(|l| l.name == "BI-RADS 1")
        .unwrap()
        .scope = LabelScope::Image;
    assert!(old.check_extension(&new).is_err());
}

#[test]
fn window_presets_are_kept_checked_and_free_to_change_in_use() {
    let base = LabelSchema::vindr_cxr();
    // None by default, and none written: a template's JSON is unchanged.
    assert!(base.window_presets.is_empty());
    assert!(
        !serde_json::to_string(&base)
            .unwrap()
            .contains("window_presets")
    );
    let with: LabelSchema = serde_json::from_value(serde_json::json!({
        "template": "vindr-cxr",
        "labels": serde_json::to_value(&base.labels).unwrap(),
        "window_presets": [
            {"name": "Lung", "center": 0.4, "width": 0.8, "relative": true},
            {"name": "Soft tissue", "center": 40, "width": 400}
        ]
    }))
    .unwrap();
    with.check().unwrap();
    assert_eq!(with.window_presets.len(), 2);
    assert!(with.window_presets[0].relative && !with.window_presets[1].relative);
    // A schema in use may change its presets (they label nothing).
    base.check_extension(&with).unwrap();
    for (bad, says) in [
        (r#"[{"name": "", "center": 1, "width": 1}]"#, "a name"),
        (r#"[{"name": "A", "center": 1, "width": 0}]"#, "above 0"),
        (
            r#"[{"name": "A", "center": 1, "width": 1}, {"name": "A", "center": 2, "width": 1}]"#,
            "twice",
        ),
    ] {
        let mut s = with.clone();
        s.window_presets = serde_json::from_str(bad).unwrap();
        let e = s.check().unwrap_err();
        assert!(e.contains(says), "{bad}: {e}");
    }
}
