//! `radlab render` and `radlab info`.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context, Result, bail};
use clap::Args;
use radlab_dicom::render::{self, ImageFormat};
use radlab_dicom::{
    DicomFile, DisplaySettings, InstanceInfo, PixelLayout, RenderOptions, VoiChoice, VoiFunction,
    Window, render_file,
};

#[derive(Args, Debug)]
pub struct RenderArgs {
    /// The DICOM file.
    file: PathBuf,
    /// Output image; the extension picks the format (.png or .webp).
    #[arg(short, long)]
    output: PathBuf,
    /// Window as CENTER,WIDTH in modality units (e.g. 2048,4096); default: the file's first
    /// window, else its VOI LUT, else a window from the histogram.
    #[arg(long, value_parser = parse_window, allow_hyphen_values = true)]
    window: Option<(f64, f64)>,
    /// VOI LUT function for --window.
    #[arg(long, value_enum, default_value = "linear")]
    voi_function: VoiFunctionArg,
    /// Use the file's Nth window (1-based) instead of the first.
    #[arg(long, conflicts_with = "window")]
    file_window: Option<usize>,
    /// Ignore the file's windows and use one from the histogram.
    #[arg(long, conflicts_with_all = ["window", "file_window"])]
    auto_window: bool,
    /// Longest side of the output in pixels (a thumbnail); default full size.
    #[arg(long)]
    size: Option<u32>,
    /// Frame number (1-based) of a multi-frame object.
    #[arg(long, default_value_t = 1)]
    frame: u32,
}

#[derive(clap::ValueEnum, Clone, Copy, Debug)]
enum VoiFunctionArg {
    Linear,
    LinearExact,
    Sigmoid,
}

fn parse_window(s: &str) -> Result<(f64, f64), String> {
    let (c, w) = s
        .split_once(',')
        .ok_or_else(|| format!("{s:?}: expected CENTER,WIDTH such as 40,400"))?;
    let c: f64 = c
        .trim()
        .parse()
        .map_err(|_| format!("{c:?} is not a number"))?;
    let w: f64 = w
        .trim()
        .parse()
        .map_err(|_| format!("{w:?} is not a number"))?;
    if !w.is_finite() || w <= 0.0 || !c.is_finite() {
        return Err(format!("{s:?}: the width must be positive"));
    }
    Ok((c, w))
}

pub fn render(args: &RenderArgs) -> Result<ExitCode> {
    let format = ImageFormat::from_path(&args.output).with_context(|| {
        format!(
            "{}: unknown output format; name the file .png or .webp",
            args.output.display()
        )
    })?;
    if args.frame == 0 {
        bail!("--frame counts from 1");
    }
    let file = DicomFile::open(&args.file).with_context(|| format!("{}", args.file.display()))?;
    let voi = if let Some((center, width)) = args.window {
        VoiChoice::Window(Window {
            center,
            width,
            function: match args.voi_function {
                VoiFunctionArg::Linear => VoiFunction::Linear,
                VoiFunctionArg::LinearExact => VoiFunction::LinearExact,
                VoiFunctionArg::Sigmoid => VoiFunction::Sigmoid,
            },
            explanation: None,
        })
    } else if let Some(n) = args.file_window {
        VoiChoice::FileWindow(n.saturating_sub(1))
    } else if args.auto_window {
        VoiChoice::Auto
    } else {
        VoiChoice::Default
    };
    let options = RenderOptions {
        frame: args.frame - 1,
        voi,
        max_side: args.size,
    };
    let (image, applied) =
        render_file(&file, &options).with_context(|| format!("{}", args.file.display()))?;
    let bytes = render::encode_to_vec(&image, format)?;
    std::fs::write(&args.output, bytes)
        .with_context(|| format!("cannot write {}", args.output.display()))?;
    tracing::info!(
        ?applied,
        width = image.width,
        height = image.height,
        "rendered"
    );
    Ok(ExitCode::SUCCESS)
}

#[derive(Args, Debug)]
pub struct InfoArgs {
    /// The DICOM file.
    file: PathBuf,
}

pub fn info(args: &InfoArgs) -> Result<ExitCode> {
    let file = DicomFile::open(&args.file).with_context(|| format!("{}", args.file.display()))?;
    let info = InstanceInfo::from_file(&file);
    let windows = DisplaySettings::from_file(&file)
        .map(|s| s.windows)
        .unwrap_or_default();
    let layout_problem = PixelLayout::from_object(file.object())
        .err()
        .map(|e| e.to_string());
    let out = serde_json::json!({
        "framing": file.framing(),
        "instance": info,
        "windows": windows,
        "pixel_problem": layout_problem,
    });
    println!("{}", serde_json::to_string_pretty(&out)?);
    Ok(ExitCode::SUCCESS)
}
