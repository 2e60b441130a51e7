//! Times the triage network on the CPU, for `bench/triage.py` (radlab against PyTorch).
//!
//! ```text
//! triage_bench --weights W [--laterality-weights L] --out DIR [--runs R] [--latency-images K] (--files-from LIST | FILES...)
//! triage_bench --make-weights OUT [--seed S]
//! triage_bench --weights W --cold FILE
//! triage_bench --weights W --cold-views DIR
//! triage_bench --weights W --network DIR [--runs R] [--latency-images K]
//! ```
//!
//! The main mode loads each file with `preprocess::load_grey` (files that do not load are
//! skipped and counted) and writes to DIR, for PyTorch to read the very same bytes:
//! - `views.f32`: the sixteen views of each image (`model::views` of the image scaled to
//!   fit), raw little-endian f32, shape [files, 16, 64, 64];
//! - `files.txt`: the files loaded, one a line, in that order;
//! - `rust_probs.f32`: the network's softmax outputs for every view (`Classifier::outputs`),
//!   [files, 16, 12] (4 class then 8 orientation probabilities);
//! - `rust_verdicts.txt`: per image, the class and orientation indices `model::decide` gave;
//! - `composition.txt`: the 8 x 8 table of `model::compose` indices `decide` uses.
//!
//! Those outputs and verdicts are the triage network's alone (PyTorch's copy is of it). With
//! `--laterality-weights`, the timings below are of the whole built-in model, the left-right
//! network looking again at each image called frontal (as `radlab triage` runs it).
//!
//! Then it times, warm (one untimed pass first), R passes each:
//! - `judge`: `model::judge` over the decoded images (scale to fit, views, network, decide);
//!   the JSON line also counts the images whose first eight views do not settle them;
//! - `judge_latency`: `model::judge` of one image at a time (8 or 16 views), over the
//!   first K images;
//! - `end_to_end`: `load_grey` (decode) then `model::judge`, one file after another;
//! - `decode`: `load_grey` alone, one file after another;
//!
//! and prints one JSON line of the times, in seconds, every pass or call (no paths in it;
//! `bench/triage.py` takes the medians).
//!
//! `--network DIR` times the network alone on DIR/views.f32 (written by the main mode), R
//! passes after an untimed one, and prints one JSON line: `network`, `Classifier::outputs`
//! on all the views, 64 views (4 images) a call, and `network_latency`, 16 views (one
//! image) a call over the first K images. `bench/triage.py` runs it in turns with PyTorch.
//!
//! `--cold FILE` loads the weights, decodes FILE, judges it and prints its verdict as one
//! JSON line; `--cold-views DIR` does the same from the first image's views in DIR/views.f32
//! (what PyTorch's cold start reads). Both are timed from outside, as fresh processes.
//! `--make-weights` writes a seeded untrained network (`Net::new(seed)`, normalisation
//! folded) for benchmarking before the trained weights exist.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Instant;

use radlab_triage::infer::Forward;
use radlab_triage::laterality::Builtin;
use radlab_triage::model::{self, Classifier, Net, Outputs, Prediction};
use radlab_triage::preprocess::{Grey, Orientation, load_grey};

const SIDE: usize = model::INPUT_SIDE as usize;
const VIEWS: usize = 16;

#[derive(Default)]
struct Args {
    weights: Option<PathBuf>,
    laterality_weights: Option<PathBuf>,
    out: Option<PathBuf>,
    runs: usize,
    latency_images: usize,
    make_weights: Option<PathBuf>,
    seed: u64,
    cold: Option<PathBuf>,
    cold_views: Option<PathBuf>,
    network: Option<PathBuf>,
    files: Vec<PathBuf>,
}

type Res<T> = Result<T, String>;

fn parse() -> Res<Args> {
    let mut a = Args {
        runs: 5,
        latency_images: 64,
        seed: 1,
        ..Args::default()
    };
    let mut it = std::env::args().skip(1);
    while let Some(arg) = it.next() {
        let mut value = || it.next().ok_or(format!("{arg} needs a value"));
        match arg.as_str() {
            "--weights" => a.weights = Some(value()?.into()),
            "--laterality-weights" => a.laterality_weights = Some(value()?.into()),
            "--out" => a.out = Some(value()?.into()),
            "--runs" => a.runs = value()?.parse().map_err(|e| format!("--runs: {e}"))?,
            "--latency-images" => {
                a.latency_images = value()?
                    .parse()
                    .map_err(|e| format!("--latency-images: {e}"))?
            }
            "--make-weights" => a.make_weights = Some(value()?.into()),
            "--seed" => a.seed = value()?.parse().map_err(|e| format!("--seed: {e}"))?,
            "--cold" => a.cold = Some(value()?.into()),
            "--cold-views" => a.cold_views = Some(value()?.into()),
            "--network" => a.network = Some(value()?.into()),
            "--files-from" => {
                let list = value()?;
                let text = std::fs::read_to_string(&list).map_err(|e| format!("{list}: {e}"))?;
                a.files
                    .extend(text.lines().filter(|l| !l.is_empty()).map(PathBuf::from));
            }
            s if s.starts_with("--") => return Err(format!("unknown option {s}")),
            _ => a.files.push(arg.into()),
        }
    }
    Ok(a)
}

fn main() {
    if let Err(e) = run() {
        eprintln!("triage_bench: {e}");
        std::process::exit(1);
    }
}

fn run() -> Res<()> {
    let args = parse()?;
    if let Some(path) = &args.make_weights {
        let bytes = Net::new(args.seed)
            .and_then(|n| n.to_safetensors())
            .map_err(|e| e.to_string())?;
        return std::fs::write(path, bytes).map_err(|e| format!("{}: {e}", path.display()));
    }
    let weights = args.weights.as_ref().ok_or("--weights is needed")?;
    let bytes = std::fs::read(weights).map_err(|e| format!("{}: {e}", weights.display()))?;
    let net = Net::from_safetensors(&bytes)
        .and_then(|n| n.inference())
        .map_err(|e| e.to_string())?;
    let whole = match &args.laterality_weights {
        Some(path) => {
            let side = std::fs::read(path).map_err(|e| format!("{}: {e}", path.display()))?;
            Some(Builtin::from_safetensors(&bytes, &side)?)
        }
        None => None,
    };
    if let Some(file) = &args.cold {
        let grey = load_grey(file).map_err(|e| e.to_string())?;
        let model: &dyn Classifier = whole.as_ref().map_or(&net, |w| w as &dyn Classifier);
        let p = model::judge(model, std::slice::from_ref(&grey))?;
        println!("{}", verdict_json(&p[0]));
        return Ok(());
    }
    if let Some(dir) = &args.cold_views {
        let inputs = read_first_views(&dir.join("views.f32"))?;
        let outputs = net.outputs(&inputs)?;
        println!("{}", verdict_json(&model::decide(&outputs)));
        return Ok(());
    }
    if let Some(dir) = &args.network {
        return network(&net, &args, &dir.join("views.f32"));
    }
    let out = args.out.as_ref().ok_or("--out is needed")?;
    if args.files.is_empty() {
        return Err("no files given".into());
    }
    let model: &dyn Classifier = whole.as_ref().map_or(&net, |w| w as &dyn Classifier);
    bench(&net, model, &args, out)
}

fn verdict_json(p: &Prediction) -> String {
    format!(
        "{{\"class\": {}, \"orientation\": {}, \"valid\": {}}}",
        p.class.index(),
        p.orientation.map_or(-1, |(o, _)| o.index() as i64),
        p.is_valid()
    )
}

fn read_first_views(path: &Path) -> Res<Vec<Vec<f32>>> {
    let mut buf = vec![0u8; VIEWS * SIDE * SIDE * 4];
    std::fs::File::open(path)
        .and_then(|mut f| std::io::Read::read_exact(&mut f, &mut buf))
        .map_err(|e| format!("{}: {e}", path.display()))?;
    Ok(to_views(&buf))
}

fn read_views(path: &Path) -> Res<Vec<Vec<f32>>> {
    let buf = std::fs::read(path).map_err(|e| format!("{}: {e}", path.display()))?;
    if buf.is_empty() || buf.len() % (VIEWS * SIDE * SIDE * 4) != 0 {
        return Err(format!("{}: not whole images of views", path.display()));
    }
    Ok(to_views(&buf))
}

fn to_views(buf: &[u8]) -> Vec<Vec<f32>> {
    buf.chunks_exact(SIDE * SIDE * 4)
        .map(|view| {
            view.chunks_exact(4)
                .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
                .collect()
        })
        .collect()
}

fn write(path: &Path, bytes: &[u8]) -> Res<()> {
    std::fs::File::create(path)
        .and_then(|mut f| f.write_all(bytes))
        .map_err(|e| format!("{}: {e}", path.display()))
}

/// Seconds of each of `runs` calls of `f`, after one untimed call.
fn timed(runs: usize, mut f: impl FnMut() -> Res<()>) -> Res<Vec<f64>> {
    f()?;
    let mut times = Vec::with_capacity(runs);
    for _ in 0..runs {
        let t = Instant::now();
        f()?;
        times.push(t.elapsed().as_secs_f64());
    }
    Ok(times)
}

/// `net` is the triage network (its outputs written, its verdicts checked against
/// `model::decide`); `model` is what the timings run (`net`, or the whole built-in model).
fn bench(net: &Forward, model: &dyn Classifier, args: &Args, out: &Path) -> Res<()> {
    std::fs::create_dir_all(out).map_err(|e| format!("{}: {e}", out.display()))?;
    // Decode every file once (untimed), keeping those that load.
    let mut files = Vec::new();
    let mut greys: Vec<Grey> = Vec::new();
    let mut skipped = 0usize;
    for f in &args.files {
        match load_grey(f) {
            Ok(g) => {
                files.push(f.clone());
                greys.push(g);
            }
            Err(_) => skipped += 1,
        }
    }
    if greys.is_empty() {
        return Err("no file loaded".into());
    }
    let n = greys.len();

    // (a) The sixteen views of each image (judge computes the first eight of each, and the
    // last eight of those the first do not settle).
    let views: Vec<Vec<f32>> = greys
        .iter()
        .flat_map(|g| model::views(&g.scaled_to_fit(net.side()), net.side()))
        .collect();
    let mut bytes = Vec::with_capacity(views.len() * SIDE * SIDE * 4);
    for v in &views {
        if v.len() != SIDE * SIDE {
            return Err(format!("a view of {} values", v.len()));
        }
        bytes.extend(v.iter().flat_map(|x| x.to_le_bytes()));
    }
    write(&out.join("views.f32"), &bytes)?;
    let list: String = files.iter().map(|f| format!("{}\n", f.display())).collect();
    write(&out.join("files.txt"), list.as_bytes())?;

    // (c) Raw softmax outputs of every view, and the verdicts, for the cross-check.
    let mut outputs: Vec<Outputs> = Vec::with_capacity(views.len());
    for chunk in views.chunks(4 * VIEWS) {
        outputs.extend(net.outputs(chunk)?);
    }
    let mut probs = Vec::with_capacity(outputs.len() * 12 * 4);
    for o in &outputs {
        let orientation = o.orientation.ok_or("the network gave no orientation")?;
        for x in o.class.iter().chain(orientation.iter()) {
            probs.extend(x.to_le_bytes());
        }
    }
    write(&out.join("rust_probs.f32"), &probs)?;
    let verdicts = model::judge(net, &greys)?;
    let mut text = String::new();
    let unsettled = outputs
        .chunks(VIEWS)
        .filter(|o| !model::settled(&o[..8]))
        .count();
    for (p, o) in verdicts.iter().zip(outputs.chunks(VIEWS)) {
        // judge and decide over the outputs written must agree.
        if *p != model::decide(o) {
            return Err("judge and decide of the written outputs differ".into());
        }
        let orientation = p.orientation.map_or(-1, |(o, _)| o.index() as i64);
        text.push_str(&format!("{} {}\n", p.class.index(), orientation));
    }
    write(&out.join("rust_verdicts.txt"), text.as_bytes())?;
    let mut table = String::new();
    for k in Orientation::ALL {
        let row: Vec<String> = Orientation::ALL
            .iter()
            .map(|o| model::compose(k, *o).index().to_string())
            .collect();
        table.push_str(&row.join(" "));
        table.push('\n');
    }
    write(&out.join("composition.txt"), table.as_bytes())?;

    // (b) Warm timings.
    let runs = args.runs.max(1);
    let judge = timed(runs, || {
        std::hint::black_box(model::judge(model, &greys)?);
        Ok(())
    })?;
    let k = args.latency_images.clamp(1, n);
    let mut latencies = Vec::new();
    timed(runs, || {
        for g in &greys[..k] {
            let t = Instant::now();
            std::hint::black_box(model::judge(model, std::slice::from_ref(g))?);
            latencies.push(t.elapsed().as_secs_f64());
        }
        Ok(())
    })?;
    // The untimed pass's latencies are dropped.
    let latencies = latencies.split_off(k);
    // (d) Decode and judge, one file after another.
    let end_to_end = timed(runs, || {
        for f in &files {
            let g = load_grey(f).map_err(|e| e.to_string())?;
            std::hint::black_box(model::judge(model, std::slice::from_ref(&g))?);
        }
        Ok(())
    })?;
    let decode = timed(runs, || {
        for f in &files {
            std::hint::black_box(load_grey(f).map_err(|e| e.to_string())?);
        }
        Ok(())
    })?;

    // (e) One JSON line.
    println!(
        "{{\"images\": {n}, \"skipped\": {skipped}, \"unsettled\": {unsettled}, \
         \"views\": {}, \"runs\": {runs}, \
         \"threads\": {}, \"judge_s\": {}, \"end_to_end_s\": {}, \"decode_s\": {}, \
         \"latency_images\": {k}, \"judge_latency_s\": {}}}",
        views.len(),
        threads(),
        json_list(&judge),
        json_list(&end_to_end),
        json_list(&decode),
        json_list(&latencies),
    );
    Ok(())
}

/// Times the network alone on the views of `path` (see the module's text).
fn network(net: &Forward, args: &Args, path: &Path) -> Res<()> {
    let views = read_views(path)?;
    let n = views.len() / VIEWS;
    let runs = args.runs.max(1);
    let k = args.latency_images.clamp(1, n);
    let network = timed(runs, || {
        for chunk in views.chunks(4 * VIEWS) {
            std::hint::black_box(net.outputs(chunk)?);
        }
        Ok(())
    })?;
    let mut network_1 = Vec::new();
    timed(runs, || {
        for chunk in views[..k * VIEWS].chunks(VIEWS) {
            let t = Instant::now();
            std::hint::black_box(net.outputs(chunk)?);
            network_1.push(t.elapsed().as_secs_f64());
        }
        Ok(())
    })?;
    let network_1 = network_1.split_off(k);
    println!(
        "{{\"images\": {n}, \"runs\": {runs}, \"threads\": {}, \"network_s\": {}, \
         \"latency_images\": {k}, \"network_latency_s\": {}}}",
        threads(),
        json_list(&network),
        json_list(&network_1),
    );
    Ok(())
}

fn threads() -> usize {
    std::thread::available_parallelism().map_or(1, |p| p.get())
}

/// Seconds as a JSON list.
fn json_list(v: &[f64]) -> String {
    let items: Vec<String> = v.iter().map(|s| format!("{s:.6}")).collect();
    format!("[{}]", items.join(", "))
}
