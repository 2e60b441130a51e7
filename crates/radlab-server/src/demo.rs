//! The demo project `radlab serve --demo` starts with: the catalogued demo images in a
//! VinDr-CXR project (the first three in train, read by 3 independent readers; the rest in
//! test, 3 readers then 2 reviewers), and its accounts: an administrator, three readers and
//! two reviewers, with made-up passwords returned once.

use radlab_labels::schema::LabelSchema;
use radlab_store::{Catalog, ImageSelection, ProjectRole, Workflow};

use crate::auth::random_token;
use crate::error::ApiError;

/// The demo project's id.
pub const DEMO_PROJECT: &str = "vindr-cxr-demo";

/// The demo accounts: name, site role, project role.
pub const DEMO_ACCOUNTS: [(&str, &str, Option<ProjectRole>); 6] = [
    ("admin", "admin", Some(ProjectRole::Owner)),
    ("reader1", "user", Some(ProjectRole::Annotator)),
    ("reader2", "user", Some(ProjectRole::Annotator)),
    ("reader3", "user", Some(ProjectRole::Annotator)),
    ("reviewer1", "user", Some(ProjectRole::Reviewer)),
    ("reviewer2", "user", Some(ProjectRole::Reviewer)),
];

/// Make the demo project over `instances` (SOP Instance UIDs) unless it exists. Returns the
/// accounts made and their passwords (to print once), or `None` when the project was there.
pub async fn seed_demo(
    catalog: &Catalog,
    instances: &[String],
) -> Result<Option<Vec<(String, String)>>, ApiError> {
    if catalog.project_exists(DEMO_PROJECT).await? {
        return Ok(None);
    }
    if instances.len() < 4 {
        return Err(ApiError::bad_request(
            "the demo needs at least 4 catalogued images (radlab demo imports them)",
        ));
    }
    let mut made = Vec::new();
    let mut ids = Vec::new();
    for (name, site_role, _) in DEMO_ACCOUNTS {
        let existing = catalog.user_for_login(name).await?;
        let user = match existing {
            Some((u, _)) => u,
            None => {
                let password = random_token("")?[..16].to_string();
                let u = crate::add_user(catalog, name, &password, site_role).await?;
                made.push((name.to_string(), password));
                u
            }
        };
        ids.push(user.user_id);
    }
    let schema =
        serde_json::to_string(&LabelSchema::vindr_cxr()).map_err(|_| ApiError::internal())?;
    catalog.create_project(DEMO_PROJECT, &schema).await?;
    for ((_, _, role), id) in DEMO_ACCOUNTS.iter().zip(&ids) {
        if let Some(role) = role {
            catalog.add_member(DEMO_PROJECT, id, *role).await?;
        }
    }
    let mut uids = instances.to_vec();
    uids.sort();
    let (train, test) = uids.split_at(3);
    for (part, split) in [(train, "train"), (test, "test")] {
        catalog
            .add_project_images(
                DEMO_PROJECT,
                &ImageSelection::Instances(part.to_vec()),
                None,
                split,
            )
            .await?;
    }
    for w in [
        Workflow {
            split: "train".into(),
            kind: "independent".into(),
            readers: 3,
            reviewers: 0,
        },
        Workflow {
            split: "test".into(),
            kind: "consensus".into(),
            readers: 3,
            reviewers: 2,
        },
    ] {
        catalog.set_workflow(DEMO_PROJECT, &w).await?;
        catalog.assign(DEMO_PROJECT, &w.split).await?;
    }
    Ok(Some(made))
}
