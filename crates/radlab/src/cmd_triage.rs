//! `radlab triage FILES`: a verdict per file from the rules on metadata (radlab-triage),
//! as text or JSON lines.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Result, bail};
use clap::Args;
use radlab_triage::{RuleConfig, triage_file};

#[derive(Args, Debug)]
pub struct TriageArgs {
    /// DICOM files, PNG or JPEG pictures, or folders of them (walked recursively, in name
    /// order).
    #[arg(required = true)]
    paths: Vec<PathBuf>,
    /// A Modality value the project takes (repeatable; default CR and DX).
    #[arg(long = "modality", value_name = "MODALITY")]
    modalities: Vec<String>,
    /// One JSON object per line: the path as given, kind, valid, findings (code, reason).
    #[arg(long)]
    json: bool,
}

pub fn triage(args: &TriageArgs) -> Result<ExitCode> {
    let mut config = RuleConfig::default();
    if !args.modalities.is_empty() {
        config.modalities = args
            .modalities
            .iter()
            .map(|m| m.trim().to_ascii_uppercase())
            .collect();
    }
    let mut files = Vec::new();
    for path in &args.paths {
        if path.is_dir() {
            let mut found: Vec<PathBuf> = walk(path);
            found.sort();
            files.extend(found);
        } else if path.exists() {
            files.push(path.clone());
        } else {
            bail!("{}: no such file or folder", path.display());
        }
    }
    let (mut valid, mut rejected) = (0usize, 0usize);
    for file in &files {
        let verdict = triage_file(file, &config);
        if verdict.valid {
            valid += 1;
        } else {
            rejected += 1;
        }
        if args.json {
            println!("{}", serde_json::to_string(&verdict)?);
        } else if verdict.valid {
            println!("{}: valid ({})", verdict.path, verdict.kind);
        } else {
            let reasons: Vec<String> = verdict
                .findings
                .iter()
                .map(|f| format!("{}: {}", f.code, f.reason))
                .collect();
            println!("{}: rejected: {}", verdict.path, reasons.join("; "));
        }
    }
    if !args.json {
        eprintln!(
            "{valid} valid, {rejected} rejected of {} file(s)",
            files.len()
        );
    }
    Ok(ExitCode::SUCCESS)
}

fn walk(dir: &std::path::Path) -> Vec<PathBuf> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    entries
        .filter_map(|e| e.ok())
        .flat_map(|e| {
            let p = e.path();
            if p.is_dir() { walk(&p) } else { vec![p] }
        })
        .collect()
}
