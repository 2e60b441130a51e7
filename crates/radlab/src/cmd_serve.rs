//! `radlab serve` (the HTTP API) and `radlab user` (accounts on the command line).

use std::io::Read;
use std::net::SocketAddr;
use std::process::ExitCode;

use anyhow::{Context, Result, bail};
use clap::{Args, Subcommand};
use radlab_server::{AppState, ServerConfig};
use radlab_store::Catalog;

use crate::Cli;

#[derive(Args, Debug)]
pub struct ServeArgs {
    /// Address and port to listen on.
    #[arg(long, default_value = "127.0.0.1:8080")]
    listen: SocketAddr,
    /// Mark the session cookie Secure: set it when users reach the server over HTTPS
    /// (directly or through a TLS-terminating proxy).
    #[arg(long)]
    secure_cookies: bool,
    /// How long a sign-in lasts, in hours.
    #[arg(long, default_value_t = 12)]
    session_hours: i64,
    /// Start with the demo: the demo images in a VinDr-CXR project with reading tasks, and
    /// demo accounts (an administrator, three readers, two reviewers) whose passwords are
    /// printed once, the first time.
    #[arg(long)]
    demo: bool,
    /// The largest DICOM file an upload may carry, in MB.
    #[arg(long, default_value_t = 512)]
    max_upload_mb: usize,
    /// A web origin (e.g. https://viewer.example.org) whose pages may call the projects'
    /// DICOMweb with an API token (CORS): an OHIF viewer served from elsewhere. Repeatable.
    #[arg(long = "cors-origin")]
    cors_origins: Vec<String>,
    /// How many jobs (imports, label exports, fusion) this server runs at once; 0: it runs
    /// none and leaves the jobs it queues to the other servers on the same database.
    #[arg(long, default_value_t = 1)]
    job_workers: usize,
    /// Also receive images from a PACS or modality on this TCP port (the DICOM storage SCP
    /// of `radlab pacs listen`, C-ECHO and C-STORE; 0: any free port), importing each object
    /// into the same catalog and blob store.
    #[arg(long, value_name = "PORT")]
    dicom_port: Option<u16>,
    /// Address the DICOM port listens on (default: the address of --listen).
    #[arg(long, requires = "dicom_port")]
    dicom_bind: Option<String>,
    /// Our DICOM AE title; associations must call it.
    #[arg(long, default_value = "RADLAB", requires = "dicom_port")]
    dicom_aet: String,
    /// Calling AE title allowed to associate on the DICOM port (repeatable); without it any
    /// may.
    #[arg(long = "dicom-allow-calling", value_name = "AET", num_args = 1.., requires = "dicom_port")]
    dicom_allow_calling: Vec<String>,
    /// DICOM associations served at once.
    #[arg(long, default_value_t = 8, value_parser = clap::value_parser!(u32).range(1..=1024), requires = "dicom_port")]
    dicom_max_associations: u32,
    /// Largest PDU the DICOM port receives, in bytes.
    #[arg(long, default_value_t = 65_536, value_parser = clap::value_parser!(u32).range(4096..=4_194_304), requires = "dicom_port")]
    dicom_max_pdu: u32,
    /// De-identify every object received on the DICOM port with this profile before it is
    /// imported (profiles as for `radlab deid`; needs --key-file).
    #[arg(long, value_name = "PROFILE", requires = "dicom_port")]
    dicom_deid: Option<String>,
    /// An Annex E option for --dicom-deid (repeatable).
    #[arg(long = "dicom-deid-option", value_parser = crate::cmd_deid::parse_option, requires = "dicom_deid")]
    dicom_deid_options: Vec<radlab_deid::DeidOption>,
    /// The project key file for --dicom-deid.
    #[arg(long, env = "RADLAB_DEID_KEY_FILE")]
    key_file: Option<std::path::PathBuf>,
    /// With --dicom-deid: append the encrypted mapping back to the originals to this file.
    #[arg(long, requires = "dicom_deid")]
    dicom_deid_mapping: Option<std::path::PathBuf>,
    /// When the DICOM listener answers a C-STORE with Success (as `pacs listen --ack`).
    #[arg(long, value_enum, default_value = "queued", requires = "dicom_port")]
    dicom_ack: crate::cmd_pacs::Ack,
    /// Also answer C-FIND and C-MOVE (Study Root Query/Retrieve) on the DICOM port over the
    /// images of this project.
    #[arg(long, value_name = "PROJECT", requires = "dicom_port")]
    dicom_qr_project: Option<String>,
    /// A C-MOVE destination of the DICOM port, AET=HOST:PORT (repeatable).
    #[arg(
        long = "dicom-peer",
        value_name = "AET=HOST:PORT",
        requires = "dicom_qr_project"
    )]
    dicom_peers: Vec<radlab_net::MovePeer>,
}

pub fn serve(cli: &Cli, args: &ServeArgs) -> Result<ExitCode> {
    if args.job_workers > 64 {
        bail!("--job-workers {} must be 0 to 64", args.job_workers);
    }
    if !(1..=24 * 30).contains(&args.session_hours) {
        bail!("--session-hours {} must be 1 to 720", args.session_hours);
    }
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    rt.block_on(async {
        let catalog = if args.demo {
            let (catalog, blobs) = crate::cmd_import::stores(cli).await?;
            crate::cmd_import::import_demo_set(cli, &catalog, &blobs).await?;
            let uids: Vec<String> = catalog
                .list_instances(None)
                .await?
                .into_iter()
                .map(|r| r.sop_instance_uid)
                .collect();
            match radlab_server::demo::seed_demo(&catalog, &uids)
                .await
                .map_err(|e| anyhow::anyhow!(e.message))?
            {
                Some(accounts) => {
                    println!(
                        "demo project {}: {} images, 3 readers per image, 2 reviewers on test",
                        radlab_server::demo::DEMO_PROJECT,
                        uids.len()
                    );
                    println!("demo accounts (shown once; keep them):");
                    for (name, password) in &accounts {
                        println!("  {name:<10} {password}");
                    }
                }
                None => println!(
                    "demo project {} is there already; its accounts' passwords were printed \
                     when it was made",
                    radlab_server::demo::DEMO_PROJECT
                ),
            }
            catalog
        } else {
            Catalog::open(&cli.db_url()).await?
        };
        if catalog.count_users().await? == 0 {
            eprintln!(
                "no accounts yet: make the first administrator with `radlab user add NAME --admin`"
            );
        }
        // An S3 store that cannot be reached fails here, before the server says it is up.
        let blobs = cli.blob_store()?;
        blobs.check().await?;
        tracing::info!(store = blobs.location(), "blob store");
        if let Some(port) = args.dicom_port {
            let deid = match &args.dicom_deid {
                Some(profile) => Some(crate::cmd_pacs::deid(
                    profile,
                    &args.dicom_deid_options,
                    args.key_file.as_deref(),
                    None,
                    args.dicom_deid_mapping.as_deref(),
                    "--dicom-deid",
                )?),
                None => None,
            };
            let mut scp = crate::cmd_pacs::bind(
                cli,
                &crate::cmd_pacs::ScpSettings {
                    aet: args.dicom_aet.clone(),
                    bind: args
                        .dicom_bind
                        .clone()
                        .unwrap_or_else(|| args.listen.ip().to_string()),
                    port,
                    max_associations: args.dicom_max_associations as usize,
                    max_pdu: args.dicom_max_pdu,
                    allow_calling: args.dicom_allow_calling.clone(),
                    idle_timeout: std::time::Duration::from_secs(120),
                },
            )?;
            if let Some(project) = &args.dicom_qr_project {
                crate::cmd_pacs::check_qr_project(&catalog, project).await?;
                scp.query_retrieve = Some((
                    project.clone(),
                    crate::cmd_pacs::query_retrieve(
                        tokio::runtime::Handle::current(),
                        catalog.clone(),
                        blobs.clone(),
                        project,
                        args.dicom_peers.clone(),
                    ),
                ));
            }
            crate::cmd_pacs::announce(&scp, deid.as_ref(), args.dicom_ack)?;
            let importer = crate::cmd_pacs::Importer::new(
                tokio::runtime::Handle::current(),
                catalog.clone(),
                blobs.clone(),
                deid,
            );
            let handler =
                crate::cmd_pacs::store_handler(cli, args.dicom_ack, std::sync::Arc::new(importer))?;
            crate::cmd_pacs::spawn(scp, handler)?;
        }
        let listener = tokio::net::TcpListener::bind(args.listen)
            .await
            .with_context(|| format!("cannot listen on {}", args.listen))?;
        let address = listener.local_addr()?;
        if radlab_server::web::built() {
            println!("the web UI: http://{address}/");
        } else {
            println!("(this binary was built without the web UI: scripts/build-web, then rebuild)");
        }
        println!("the API and its documentation: http://{address}/api/v1/docs");
        // Tests and scripts read this line for the port when --listen asks for port 0.
        println!("radlab serving on http://{address}/api/v1/health");
        let state = AppState::new(
            catalog,
            ServerConfig {
                secure_cookies: args.secure_cookies,
                session_hours: args.session_hours,
                cors_origins: args.cors_origins.clone(),
            },
        )
        .with_uploads(
            blobs,
            cli.data_dir.join(".upload-staging"),
            args.max_upload_mb.saturating_mul(1024 * 1024),
        )
        .with_jobs(radlab_server::jobs::JobConfig {
            workers: args.job_workers,
            ..Default::default()
        });
        radlab_server::serve(listener, state)
            .await
            .context("the server stopped")?;
        Ok(ExitCode::SUCCESS)
    })
}

#[derive(Args, Debug)]
pub struct UserArgs {
    #[command(subcommand)]
    command: UserCommand,
}

#[derive(Subcommand, Debug)]
enum UserCommand {
    /// Add an account. The password is read from standard input (--password-stdin) or made
    /// up and printed once.
    Add {
        username: String,
        /// A site administrator (the first account should be one).
        #[arg(long)]
        admin: bool,
        /// Read the password from standard input (one line).
        #[arg(long)]
        password_stdin: bool,
    },
    /// List the accounts.
    Ls {
        #[arg(long)]
        json: bool,
    },
}

pub fn user(cli: &Cli, args: &UserArgs) -> Result<ExitCode> {
    let rt = crate::cmd_import::runtime()?;
    rt.block_on(async {
        let catalog = Catalog::open(&cli.db_url()).await?;
        let result = match &args.command {
            UserCommand::Add {
                username,
                admin,
                password_stdin,
            } => {
                let (password, made_up) = if *password_stdin {
                    let mut text = String::new();
                    std::io::stdin()
                        .read_to_string(&mut text)
                        .context("cannot read the password from standard input")?;
                    (text.lines().next().unwrap_or("").to_string(), false)
                } else {
                    (
                        radlab_server::auth::random_token("")
                            .map_err(|e| anyhow::anyhow!(e.message))?[..24]
                            .to_string(),
                        true,
                    )
                };
                let role = if *admin { "admin" } else { "user" };
                let user = radlab_server::add_user(&catalog, username, &password, role)
                    .await
                    .map_err(|e| anyhow::anyhow!(e.message))?;
                eprintln!("added {} ({role})", user.username);
                if made_up {
                    // Printed once, to the terminal of whoever ran the command; never logged.
                    println!("password: {password}");
                }
                Ok(ExitCode::SUCCESS)
            }
            UserCommand::Ls { json } => {
                let users = catalog.list_users().await?;
                if *json {
                    println!("{}", serde_json::to_string_pretty(&users)?);
                } else {
                    for u in &users {
                        println!(
                            "{:<24} {:<6} {}{}",
                            u.username,
                            u.site_role.as_str(),
                            u.created_at,
                            if u.disabled { "  disabled" } else { "" }
                        );
                    }
                }
                Ok(ExitCode::SUCCESS)
            }
        };
        catalog.close().await;
        result
    })
}
