//! `radlab deid`, `radlab verify` and `radlab deid-mapping`.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{Context, Result, bail};
use clap::Args;
use indicatif::{ProgressBar, ProgressStyle};
use radlab_deid::batch::{FileOutcome, deidentify_files, input_files, verify_tree};
use radlab_deid::mapping::{MappingRecord, append_mapping, read_mapping};
use radlab_deid::{DeidKey, DeidOption, Profile};

#[derive(Args, Debug, Clone)]
pub struct ProfileArgs {
    /// The de-identification profile: annex-e-basic, vindr-cxr (VinDr-CXR's allow-list,
    /// files named md5(SOP Instance UID)), vindr-mammo (the richer VinDr-Mammo allow-list,
    /// md5(study)/md5(instance)), or a TOML profile file (see docs/deid.md).
    #[arg(long, default_value = "annex-e-basic")]
    profile: String,
    /// An Annex E option (repeatable): retain-safe-private, retain-uids,
    /// retain-device-identity, retain-institution-identity, retain-patient-characteristics,
    /// retain-full-dates, retain-modified-dates, clean-descriptors, clean-structured-content,
    /// clean-graphics.
    #[arg(long = "option", value_parser = parse_option)]
    options: Vec<DeidOption>,
    /// A file holding the project's secret: UIDs, pseudonyms, date shifts and the mapping's
    /// encryption derive from it, so the same key gives the same output for the same input.
    /// Keep it apart from the output.
    #[arg(long, env = "RADLAB_DEID_KEY_FILE")]
    key_file: PathBuf,
    /// Burned-in text rules (TOML, the [burned_in] table of a profile: devices known to
    /// burn text, mask rectangles per device and size, what to do with unmatched images).
    #[arg(long)]
    burned_in: Option<PathBuf>,
}

pub fn parse_option(s: &str) -> Result<DeidOption, String> {
    DeidOption::parse(s).ok_or_else(|| {
        let names: Vec<_> = DeidOption::ALL.iter().map(|o| o.name()).collect();
        format!("unknown option {s:?}; one of: {}", names.join(", "))
    })
}

pub fn read_key(path: &Path) -> Result<DeidKey> {
    let secret = std::fs::read(path)
        .with_context(|| format!("cannot read the key file {}", path.display()))?;
    if secret.len() < 16 {
        bail!(
            "{}: the key must hold at least 16 bytes of secret (e.g. head -c 32 /dev/urandom > key)",
            path.display()
        );
    }
    Ok(DeidKey::from_secret(&secret))
}

impl ProfileArgs {
    pub fn new(
        profile: String,
        options: Vec<DeidOption>,
        key_file: PathBuf,
        burned_in: Option<PathBuf>,
    ) -> Self {
        ProfileArgs {
            profile,
            options,
            key_file,
            burned_in,
        }
    }

    pub fn profile(&self) -> Result<Profile> {
        let key = read_key(&self.key_file)?;
        let mut profile = Profile::named(&self.profile, key, self.options.iter().copied())?;
        if let Some(path) = &self.burned_in {
            let text = std::fs::read_to_string(path)
                .with_context(|| format!("cannot read {}", path.display()))?;
            profile = profile.with_burned_in(radlab_deid::burned_in_policy_from_toml(
                &text,
                &path.display().to_string(),
            )?);
        }
        if !profile.claims_basic_profile() {
            eprintln!(
                "warning: profile {} keeps attributes that the Basic Profile and its options remove; \
                 the output will not claim the Basic Profile",
                profile.name()
            );
        }
        Ok(profile)
    }
}

#[derive(Args, Debug, Clone)]
pub struct DeidArgs {
    /// A DICOM file or a folder of them.
    input: PathBuf,
    /// The output folder (layout set by the profile; annex-e-basic writes
    /// OUT/<study>/<series>/<instance>.dcm, named by the new UIDs).
    output: PathBuf,
    #[command(flatten)]
    pub profile: ProfileArgs,
    #[command(flatten)]
    pub batch: BatchArgs,
}

/// What every batch run takes besides the profile.
#[derive(Args, Debug, Clone)]
pub struct BatchArgs {
    /// Keep the mapping back to the originals (original UIDs, patient ID, accession number,
    /// date shift) in this file, encrypted with the key; it must be outside the output.
    #[arg(long)]
    pub mapping: Option<PathBuf>,
    /// Write the input paths routed to review (suspected burned-in text) to this file.
    #[arg(long)]
    pub review_list: Option<PathBuf>,
    /// Print one JSON object per file instead of the table.
    #[arg(long)]
    pub json: bool,
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
    /// Print one JSON object per file instead of the table.
    #[arg(long)]
    json: bool,
}

#[derive(Args, Debug)]
pub struct MappingArgs {
    /// The mapping file `radlab deid --mapping` wrote.
    mapping: PathBuf,
    /// The key file it was written with.
    #[arg(long, env = "RADLAB_DEID_KEY_FILE")]
    key_file: PathBuf,
    /// Only the record of this output file (relative to the output folder).
    #[arg(long)]
    output: Option<String>,
}

pub fn deid(args: &DeidArgs) -> Result<ExitCode> {
    let profile = args.profile.profile()?;
    let (outcomes, _) = run_batch(&args.input, &args.output, &profile, &args.batch)?;
    report(&outcomes, args.batch.json, "de-identified")
}

/// De-identify `input` into `output` with the batch options; the outcomes, and whether
/// every file was written or routed as the policy says.
pub fn run_batch(
    input: &Path,
    output: &Path,
    profile: &Profile,
    batch: &BatchArgs,
) -> Result<(Vec<FileOutcome>, bool)> {
    if !input.exists() {
        bail!("{}: no such file or folder", input.display());
    }
    if let Some(mapping) = &batch.mapping {
        check_apart(mapping, output)?;
    }
    let files = input_files(input);
    let bar = if batch.json {
        ProgressBar::hidden()
    } else {
        ProgressBar::new(files.len() as u64).with_style(
            ProgressStyle::with_template(
                "{spinner} {bar:40} {pos}/{len} files  {per_sec}  eta {eta}",
            )
            .expect("valid template"),
        )
    };
    let outcomes = deidentify_files(&files, output, profile, &|_| bar.inc(1));
    bar.finish_and_clear();
    if let Some(mapping) = &batch.mapping {
        let records: Vec<MappingRecord> =
            outcomes.iter().filter_map(|o| o.mapping.clone()).collect();
        append_mapping(mapping, profile.key(), &records)?;
    }
    if let Some(list) = &batch.review_list {
        let mut text = String::new();
        for o in outcomes.iter().filter(|o| o.review.is_some()) {
            text.push_str(&o.input);
            text.push('\n');
        }
        std::fs::write(list, text).with_context(|| format!("cannot write {}", list.display()))?;
    }
    let all_ok = outcomes.iter().all(|o| o.ok());
    Ok((outcomes, all_ok))
}

/// The mapping must not travel with the output.
fn check_apart(mapping: &Path, output: &Path) -> Result<()> {
    let abs = |p: &Path| -> PathBuf {
        let p = if p.is_absolute() {
            p.to_path_buf()
        } else {
            std::env::current_dir().unwrap_or_default().join(p)
        };
        // Resolve what exists (symlinks, ..) so that a path into OUT is seen as such.
        let mut existing = p.as_path();
        let mut rest = Vec::new();
        while !existing.exists() {
            match (existing.parent(), existing.file_name()) {
                (Some(parent), Some(name)) => {
                    rest.push(name.to_os_string());
                    existing = parent;
                }
                _ => break,
            }
        }
        let mut resolved = existing
            .canonicalize()
            .unwrap_or_else(|_| existing.to_path_buf());
        for name in rest.into_iter().rev() {
            resolved.push(name);
        }
        resolved
    };
    if abs(mapping).starts_with(abs(output)) {
        bail!(
            "--mapping {}: the mapping re-identifies the output, so it must be kept outside the output folder {}",
            mapping.display(),
            output.display()
        );
    }
    Ok(())
}

pub fn verify(args: &VerifyArgs) -> Result<ExitCode> {
    let profile = args.profile.profile()?;
    let outcomes = verify_tree(&args.against, &args.output, &profile);
    report(&outcomes, args.json, "verified clean")
}

pub fn show_mapping(args: &MappingArgs) -> Result<ExitCode> {
    let key = read_key(&args.key_file)?;
    let records = read_mapping(&args.mapping, &key)?;
    let mut found = false;
    for r in records
        .iter()
        .filter(|r| args.output.as_ref().is_none_or(|o| &r.output == o))
    {
        println!("{}", serde_json::to_string(r)?);
        found = true;
    }
    if !found && args.output.is_some() {
        bail!(
            "no record for that output file in {}",
            args.mapping.display()
        );
    }
    Ok(ExitCode::SUCCESS)
}

pub fn report(outcomes: &[FileOutcome], json: bool, done: &str) -> Result<ExitCode> {
    let failed: Vec<&FileOutcome> = outcomes.iter().filter(|o| !o.ok()).collect();
    let reviewed = outcomes.iter().filter(|o| o.review.is_some()).count();
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
        for o in outcomes.iter().filter(|o| o.review.is_some()) {
            println!(
                "REVIEW  {}: {}",
                o.input,
                o.review.as_deref().unwrap_or_default()
            );
        }
        println!(
            "{} file(s): {} {done}, {} routed to review, {} failed",
            outcomes.len(),
            outcomes.len() - failed.len() - reviewed,
            reviewed,
            failed.len()
        );
    }
    Ok(if failed.is_empty() {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}
