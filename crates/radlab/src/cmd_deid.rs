//! `radlab deid` and `radlab verify`.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context, Result, bail};
use clap::Args;
use radlab_deid::batch::{FileOutcome, deidentify_tree, verify_tree};
use radlab_deid::{AnnexEProfile, DeidKey, DeidOption};

#[derive(Args, Debug)]
pub struct ProfileArgs {
    /// The de-identification profile.
    #[arg(long, default_value = "annex-e-basic")]
    profile: String,
    /// An Annex E option (repeatable): retain-safe-private, retain-uids,
    /// retain-device-identity, retain-institution-identity, retain-patient-characteristics,
    /// retain-full-dates, retain-modified-dates, clean-descriptors, clean-structured-content,
    /// clean-graphics.
    #[arg(long = "option", value_parser = parse_option)]
    options: Vec<DeidOption>,
    /// A file holding the project's secret: UIDs, pseudonyms and date shifts derive from it,
    /// so the same key gives the same output for the same input. Keep it apart from the
    /// output.
    #[arg(long, env = "RADLAB_DEID_KEY_FILE")]
    key_file: PathBuf,
    /// Print one JSON object per file instead of the table.
    #[arg(long)]
    json: bool,
}

fn parse_option(s: &str) -> Result<DeidOption, String> {
    DeidOption::parse(s).ok_or_else(|| {
        let names: Vec<_> = DeidOption::ALL.iter().map(|o| o.name()).collect();
        format!("unknown option {s:?}; one of: {}", names.join(", "))
    })
}

impl ProfileArgs {
    fn profile(&self) -> Result<AnnexEProfile> {
        if self.profile != "annex-e-basic" {
            bail!(
                "unknown profile {:?}: this version provides annex-e-basic (with --option)",
                self.profile
            );
        }
        let secret = std::fs::read(&self.key_file)
            .with_context(|| format!("cannot read the key file {}", self.key_file.display()))?;
        if secret.len() < 16 {
            bail!(
                "{}: the key must hold at least 16 bytes of secret (e.g. head -c 32 /dev/urandom > key)",
                self.key_file.display()
            );
        }
        Ok(AnnexEProfile::new(
            DeidKey::from_secret(&secret),
            self.options.iter().copied(),
        )?)
    }
}

#[derive(Args, Debug)]
pub struct DeidArgs {
    /// A DICOM file or a folder of them.
    input: PathBuf,
    /// The output folder: OUT/<study>/<series>/<instance>.dcm, named by the new UIDs.
    output: PathBuf,
    #[command(flatten)]
    profile: ProfileArgs,
}

#[derive(Args, Debug)]
pub struct VerifyArgs {
    /// The folder `radlab deid` wrote.
    output: PathBuf,
    /// The input it was made from (file or folder).
    #[arg(long)]
    against: PathBuf,
    #[command(flatten)]
    profile: ProfileArgs,
}

pub fn deid(args: &DeidArgs) -> Result<ExitCode> {
    if !args.input.exists() {
        bail!("{}: no such file or folder", args.input.display());
    }
    let profile = args.profile.profile()?;
    let outcomes = deidentify_tree(&args.input, &args.output, &profile);
    report(&outcomes, args.profile.json, "de-identified")
}

pub fn verify(args: &VerifyArgs) -> Result<ExitCode> {
    let profile = args.profile.profile()?;
    let outcomes = verify_tree(&args.against, &args.output, &profile);
    report(&outcomes, args.profile.json, "verified clean")
}

fn report(outcomes: &[FileOutcome], json: bool, done: &str) -> Result<ExitCode> {
    let failed: Vec<&FileOutcome> = outcomes.iter().filter(|o| !o.ok()).collect();
    if json {
        for o in outcomes {
            println!("{}", serde_json::to_string(o)?);
        }
    } else {
        for o in &failed {
            println!(
                "FAILED  {}: {}",
                o.input,
                o.error.as_deref().unwrap_or("findings")
            );
            for f in &o.findings {
                println!(
                    "        {:?} at {}{}",
                    f.kind,
                    f.path,
                    f.source
                        .as_ref()
                        .map(|s| format!(" (value of input {s})"))
                        .unwrap_or_default()
                );
            }
        }
        println!(
            "{} file(s): {} {done}, {} failed",
            outcomes.len(),
            outcomes.len() - failed.len(),
            failed.len()
        );
    }
    Ok(if failed.is_empty() {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}
