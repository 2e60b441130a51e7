//! Training and evaluating the triage network on the corpus's examples
//! ([`crate::dataset`]), deterministically: a seed fixes the initial weights, the sampling,
//! the augmentation and the orientations; the same data and seed give the same weights on
//! the same machine.
//!
//! Each epoch draws the same number of samples of every class (with replacement), each
//! augmented (a crop keeping 80 to 100% of each side, a tone curve: gamma within e^±0.4,
//! black and white points moved by up to 60 and 55 grey levels) and shown in a random one of
//! the eight orientations; the inverted class takes the corpus's inverted radiographs and
//! frontal ones inverted here, each as likely (the image inverted, its margins left black).
//! The loss is the class cross-entropy plus the orientation cross-entropy (not for the
//! "other" class, whose upright is undefined); AdamW with a one-cycle learning rate (warm-up
//! over the first tenth, then cosine annealing) spanning the first three quarters of the
//! steps, the rest at its floor.

use candle_nn::Optimizer as _;

use crate::dataset::Class;
use crate::model::{Classifier, INPUT_SIDE, Net, Prediction, Rng, batch, judge_at};
use crate::preprocess::{Grey, Orientation};

/// Knobs of a training run.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct TrainConfig {
    pub seed: u64,
    pub epochs: usize,
    /// Samples of each class per epoch.
    pub per_class: usize,
    pub batch: usize,
    /// The peak learning rate.
    pub learning_rate: f64,
}

impl Default for TrainConfig {
    fn default() -> Self {
        TrainConfig {
            seed: 2026,
            epochs: 60,
            per_class: 256,
            batch: 32,
            learning_rate: 3e-3,
        }
    }
}

/// The share of a run's steps over which the learning rate goes through its one cycle; the
/// steps after it hold the cycle's floor (peak / 250,000), where the weights barely move.
/// (The shipped weights were trained so; a cycle over every step was tried and did no
/// better: docs/triage.md.)
const ANNEAL_SHARE: (usize, usize) = (3, 4);

/// The side augmentation crops from before scaling to the input side.
const CROP_SOURCE_SIDE: u32 = 128;

/// An example ready for the network: its image scaled to fit the input side (as inference
/// sees it) and to fit twice that (for crops), its class.
#[derive(Debug, Clone)]
pub struct Prepared {
    pub fit: Grey,
    pub large: Grey,
    /// A frontal radiograph scaled to fit twice the left-right network's side, for its
    /// crops ([`crate::laterality`]); `None` for the other classes.
    pub detail: Option<Grey>,
    pub class: Class,
}

impl Prepared {
    pub fn new(image: &Grey, class: Class) -> Prepared {
        Prepared {
            fit: image.scaled_to_fit(INPUT_SIDE),
            large: image.scaled_to_fit(CROP_SOURCE_SIDE),
            detail: (class == Class::Frontal)
                .then(|| image.scaled_to_fit(crate::laterality::CROP_SOURCE_SIDE)),
            class,
        }
    }

    /// The image as the left-right network's inference sees it, before turning: scaled to
    /// fit its side.
    pub fn at_laterality_side(&self) -> Grey {
        self.large.scaled_to_fit(crate::model::LATERALITY.side)
    }
}

/// A random crop (80 to 100% of each side) scaled to fit the input side, then a random tone
/// curve.
fn augment(p: &Prepared, rng: &mut Rng) -> Grey {
    let mut img = crop(&p.large, (0.8, 1.0), (0.8, 1.0), rng).scaled_to_fit(INPUT_SIDE);
    tone(&mut img, rng);
    img
}

/// A random crop of `src`: its height a share of the image's drawn from `heights`, then its
/// width from `widths`, then its place (at least 8 pixels a side where the image has them).
pub(crate) fn crop(src: &Grey, heights: (f64, f64), widths: (f64, f64), rng: &mut Rng) -> Grey {
    let (w, h) = (src.width as usize, src.height as usize);
    let (fh, fw) = (
        rng.uniform(heights.0, heights.1),
        rng.uniform(widths.0, widths.1),
    );
    let ch = ((h as f64 * fh) as usize).clamp(1.min(h), h).max(8.min(h));
    let cw = ((w as f64 * fw) as usize).clamp(1.min(w), w).max(8.min(w));
    let y0 = rng.below(h - ch + 1);
    let x0 = rng.below(w - cw + 1);
    let mut pixels = Vec::with_capacity(cw * ch);
    for y in y0..y0 + ch {
        pixels.extend_from_slice(&src.pixels[y * w + x0..y * w + x0 + cw]);
    }
    Grey {
        width: cw as u32,
        height: ch as u32,
        pixels,
    }
}

/// A random tone curve: gamma within e^±0.4, the black point raised by up to 60 grey
/// levels, the white point lowered by up to 55.
pub(crate) fn tone(img: &mut Grey, rng: &mut Rng) {
    let gamma = rng.uniform(-0.4, 0.4).exp();
    let lo = rng.uniform(0.0, 60.0);
    let hi = rng.uniform(200.0, 255.0);
    let lut: Vec<u8> = (0..256)
        .map(|v| {
            (lo + (hi - lo) * (v as f64 / 255.0).powf(gamma))
                .round()
                .clamp(0.0, 255.0) as u8
        })
        .collect();
    for v in &mut img.pixels {
        *v = lut[usize::from(*v)];
    }
}

/// One training sample: the input, the class and orientation to learn.
fn sample(p: &Prepared, invert: bool, o: Orientation, rng: &mut Rng) -> (Vec<f32>, u32, u32) {
    let mut img = augment(p, rng);
    if invert {
        img = img.inverted();
    }
    let class = if invert { Class::Inverted } else { p.class };
    (
        img.oriented(o).padded(INPUT_SIDE).standardized(),
        class.index() as u32,
        o.index() as u32,
    )
}

/// The one-cycle learning rate at `step` of `total`: from peak/25 up to the peak over the
/// first tenth (cosine), then down to peak/250000 (cosine).
pub(crate) fn one_cycle(peak: f64, step: usize, total: usize) -> f64 {
    let warm = (total as f64 * 0.1).max(1.0);
    let (start, end) = (peak / 25.0, peak / 25.0 / 1e4);
    let cos = |from: f64, to: f64, t: f64| {
        to + (from - to) * (1.0 + (std::f64::consts::PI * t).cos()) / 2.0
    };
    let s = step as f64;
    if s < warm {
        cos(start, peak, s / warm)
    } else {
        cos(
            peak,
            end,
            ((s - warm) / (total as f64 - warm).max(1.0)).min(1.0),
        )
    }
}

/// AdamW over `net`'s parameters, at `config`'s peak learning rate, weight decay 1e-4.
pub(crate) fn optimiser(net: &Net, config: &TrainConfig) -> candle_core::Result<candle_nn::AdamW> {
    candle_nn::AdamW::new(
        net.vars(),
        candle_nn::ParamsAdamW {
            lr: config.learning_rate,
            weight_decay: 1e-4,
            ..Default::default()
        },
    )
}

/// Train a network on `examples`; `progress` hears each epoch's mean loss. The network
/// returned has its normalisation folded, ready for inference.
pub fn train(
    examples: &[Prepared],
    config: &TrainConfig,
    progress: &mut dyn FnMut(usize, f32),
) -> candle_core::Result<Net> {
    let mut net = Net::new(config.seed)?;
    let mut opt = optimiser(&net, config)?;
    let mut rng = Rng::new(config.seed.wrapping_add(1));
    let of = |c: Class| -> Vec<usize> {
        examples
            .iter()
            .enumerate()
            .filter(|(_, e)| e.class == c)
            .map(|(i, _)| i)
            .collect()
    };
    let frontal = of(Class::Frontal);
    let pools: Vec<(Class, Vec<usize>)> = Class::ALL.iter().map(|&c| (c, of(c))).collect();
    let batch_size = config.batch.max(1);
    // The classes that draw samples: those with examples, and the inverted class also from
    // the frontal radiographs it inverts (so with no inverted example of its own).
    let drawing = pools
        .iter()
        .filter(|(c, p)| !p.is_empty() || (*c == Class::Inverted && !frontal.is_empty()))
        .count();
    let per_epoch = (drawing.max(1) * config.per_class).div_ceil(batch_size);
    // The learning rate goes through its cycle over the first ANNEAL_SHARE of the steps.
    let total_steps = per_epoch * config.epochs * ANNEAL_SHARE.0 / ANNEAL_SHARE.1;
    let mut step = 0usize;
    let dev = candle_core::Device::Cpu;
    for epoch in 0..config.epochs {
        // (example, invert it) pairs, per_class of each class.
        let mut picks: Vec<(usize, bool)> = Vec::new();
        for (class, pool) in &pools {
            for _ in 0..config.per_class {
                let pick = match class {
                    // One of the corpus's inverted radiographs or of the frontal ones
                    // inverted here, each as likely.
                    Class::Inverted => {
                        let k = rng.below((pool.len() + frontal.len()).max(1));
                        match (pool.get(k), frontal.get(k.wrapping_sub(pool.len()))) {
                            (Some(&i), _) => (i, false),
                            (None, Some(&i)) => (i, true),
                            (None, None) => continue,
                        }
                    }
                    _ if pool.is_empty() => continue,
                    _ => (pool[rng.below(pool.len())], false),
                };
                picks.push(pick);
            }
        }
        // Shuffle (Fisher-Yates).
        for i in (1..picks.len()).rev() {
            let j = rng.below(i + 1);
            picks.swap(i, j);
        }
        let mut total = 0f32;
        let mut batches = 0usize;
        for chunk in picks.chunks(batch_size) {
            let mut inputs = Vec::with_capacity(chunk.len());
            let mut classes = Vec::with_capacity(chunk.len());
            let mut orients = Vec::with_capacity(chunk.len());
            let mut weights = Vec::with_capacity(chunk.len());
            for &(i, invert) in chunk {
                let o = Orientation::ALL[rng.below(8)];
                let (x, c, oi) = sample(&examples[i], invert, o, &mut rng);
                inputs.push(x);
                weights.push(if c == Class::Other.index() as u32 {
                    0f32
                } else {
                    1.0
                });
                classes.push(c);
                orients.push(oi);
            }
            opt.set_learning_rate(one_cycle(config.learning_rate, step, total_steps));
            step += 1;
            let x = batch(&inputs)?;
            let logits = net.forward_t(&x, true)?;
            let class_t = candle_core::Tensor::new(classes.as_slice(), &dev)?;
            let orient_t = candle_core::Tensor::new(orients.as_slice(), &dev)?;
            let weight_t = candle_core::Tensor::new(weights.as_slice(), &dev)?;
            // Orientation: per-sample cross-entropy, masked for "other", averaged over all.
            let log_p = candle_nn::ops::log_softmax(&logits.narrow(1, 4, 8)?, 1)?;
            let picked = log_p.gather(&orient_t.unsqueeze(1)?, 1)?.squeeze(1)?;
            let orient_loss = (picked * weight_t)?.mean_all()?.neg()?;
            let loss = (candle_nn::loss::cross_entropy(&logits.narrow(1, 0, 4)?, &class_t)?
                + orient_loss)?;
            opt.backward_step(&loss)?;
            total += loss.to_scalar::<f32>()?;
            batches += 1;
        }
        progress(epoch + 1, total / batches.max(1) as f32);
    }
    net.folded()
}

/// Held-out results: the class confusion matrix (rows truth, columns prediction, in
/// [`Class::ALL`] order) over every held-out image in its stored orientation and, for the
/// frontal ones, also inverted; the orientation accuracy over every held-out chest image
/// (frontal and lateral) in each of the eight orientations.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Evaluation {
    pub confusion: [[u32; 4]; 4],
    pub orientation_right: u32,
    pub orientation_total: u32,
    /// Valid (frontal, upright) against everything else.
    pub valid_right: u32,
    pub valid_total: u32,
    /// Every case whose class was wrong, in example order.
    pub class_mistakes: Vec<ClassMistake>,
    /// Every chest image with an orientation wrong, in example order.
    pub orientation_mistakes: Vec<OrientationMistake>,
}

/// A held-out case the network put in the wrong class.
#[derive(Debug, Clone, PartialEq)]
pub struct ClassMistake {
    /// Index into the examples evaluated.
    pub example: usize,
    /// The case is the example inverted here (a frontal radiograph's inverted copy).
    pub inverted_here: bool,
    pub truth: Class,
    pub said: Class,
    pub probability: f32,
}

/// A held-out chest image judged in a wrong orientation in some of its eight.
#[derive(Debug, Clone, PartialEq)]
pub struct OrientationMistake {
    /// Index into the examples evaluated.
    pub example: usize,
    /// How many of its eight orientations were judged wrong.
    pub wrong: u32,
    /// The orientation the network gives the image as stored (upright: `0`).
    pub upright_seen_as: Option<Orientation>,
}

impl Evaluation {
    pub fn precision(&self, c: Class) -> Option<f64> {
        let col: u32 = (0..4).map(|r| self.confusion[r][c.index()]).sum();
        (col > 0).then(|| f64::from(self.confusion[c.index()][c.index()]) / f64::from(col))
    }

    pub fn recall(&self, c: Class) -> Option<f64> {
        let row: u32 = self.confusion[c.index()].iter().sum();
        (row > 0).then(|| f64::from(self.confusion[c.index()][c.index()]) / f64::from(row))
    }

    pub fn orientation_accuracy(&self) -> f64 {
        f64::from(self.orientation_right) / f64::from(self.orientation_total.max(1))
    }

    pub fn valid_accuracy(&self) -> f64 {
        f64::from(self.valid_right) / f64::from(self.valid_total.max(1))
    }
}

/// Judge a classifier on held-out examples, as inference does ([`judge`]).
pub fn evaluate(net: &dyn Classifier, examples: &[Prepared]) -> Result<Evaluation, String> {
    let mut ev = Evaluation::default();
    // Classes: stored orientation; frontal ones also inverted.
    let mut images = Vec::new();
    let mut details = Vec::new();
    // (example, inverted here, truth)
    let mut cases = Vec::new();
    for (i, e) in examples.iter().enumerate() {
        images.push(e.fit.clone());
        details.push(e.at_laterality_side());
        cases.push((i, false, e.class));
        if e.class == Class::Frontal {
            images.push(e.fit.inverted());
            details.push(e.at_laterality_side().inverted());
            cases.push((i, true, Class::Inverted));
        }
    }
    let predicted: Vec<Prediction> = judge_at(net, &images, &details)?;
    for (&(example, inverted_here, t), p) in cases.iter().zip(&predicted) {
        ev.confusion[t.index()][p.class.index()] += 1;
        ev.valid_total += 1;
        let valid_truth = t == Class::Frontal;
        let valid_said = p.class == Class::Frontal;
        if valid_truth == valid_said {
            ev.valid_right += 1;
        }
        if p.class != t {
            ev.class_mistakes.push(ClassMistake {
                example,
                inverted_here,
                truth: t,
                said: p.class,
                probability: p.probability,
            });
        }
    }
    // Orientation: every chest image in every orientation.
    let mut images = Vec::new();
    let mut details = Vec::new();
    let mut wanted = Vec::new();
    for (i, e) in examples
        .iter()
        .enumerate()
        .filter(|(_, e)| matches!(e.class, Class::Frontal | Class::Lateral))
    {
        let detail = e.at_laterality_side();
        for o in Orientation::ALL {
            images.push(e.fit.oriented(o));
            details.push(detail.oriented(o));
            wanted.push((i, o));
        }
    }
    let said: Vec<Option<Orientation>> = judge_at(net, &images, &details)?
        .iter()
        .map(|p| p.orientation.map(|(x, _)| x))
        .collect();
    // Eight cases per image, the upright one first.
    for (w, s) in wanted.chunks(8).zip(said.chunks(8)) {
        let wrong = w
            .iter()
            .zip(s)
            .filter(|((_, o), s)| **s != Some(*o))
            .count() as u32;
        ev.orientation_total += w.len() as u32;
        ev.orientation_right += w.len() as u32 - wrong;
        if wrong > 0 {
            ev.orientation_mistakes.push(OrientationMistake {
                example: w[0].0,
                wrong,
                upright_seen_as: s[0],
            });
        }
    }
    Ok(ev)
}

/// The corpus's examples, prepared and split (a fifth held out by patient, stratified by
/// source).
pub struct Corpus {
    pub root: std::path::PathBuf,
    pub examples: Vec<crate::dataset::Example>,
    pub prepared: Vec<Prepared>,
    pub train: Vec<usize>,
    pub test: Vec<usize>,
}

impl Corpus {
    /// Load the examples of `root` (the folder of `manifest.csv`) and split them by patient
    /// with `seed`.
    pub fn load(root: &std::path::Path, seed: u64) -> Result<Corpus, String> {
        let examples = crate::dataset::from_manifest(root).map_err(|e| e.to_string())?;
        let mut prepared = Vec::with_capacity(examples.len());
        for e in &examples {
            let grey = crate::preprocess::load_grey(&root.join(&e.path))
                .map_err(|err| format!("{}: {err}", e.path))?;
            prepared.push(Prepared::new(&grey, e.class));
        }
        let (train, test) = crate::dataset::split_by_group(&examples, 0.2, seed);
        Ok(Corpus {
            root: root.to_path_buf(),
            examples,
            prepared,
            train,
            test,
        })
    }

    pub fn subset(&self, ix: &[usize]) -> Vec<Prepared> {
        ix.iter().map(|&i| self.prepared[i].clone()).collect()
    }
}

/// One DICOM file of the corpus and what triage says of it.
pub struct FileVerdict {
    /// Relative to the corpus root.
    pub path: String,
    /// The manifest's `expected`.
    pub expected: String,
    pub verdict: crate::Verdict,
}

/// An evaluation of a classifier on the corpus.
pub struct CorpusEvaluation {
    pub train_examples: usize,
    pub test_examples: usize,
    pub held_out: Evaluation,
    /// The held-out examples' paths (relative to the corpus root), in the order
    /// [`CorpusEvaluation::held_out`]'s mistakes count them.
    pub held_out_paths: Vec<String>,
    /// Every DICOM file under `dicom/` of the corpus, judged by the rules and the network.
    pub dicom: Vec<FileVerdict>,
    /// Films of the upper chest: for each of [`UPPER_CHEST_SHARES`], the top share of each
    /// held-out frontal radiograph, judged as the held-out images are (as stored, inverted,
    /// and in its eight orientations).
    pub upper_chest: Vec<(f64, Evaluation)>,
}

/// The shares of the height kept from the top of each held-out frontal radiograph for the
/// report's films of the upper chest.
pub const UPPER_CHEST_SHARES: [f64; 3] = [0.5, 0.6, 0.7];

/// Train on the corpus's training part; `progress` hears each step.
pub fn train_on_corpus(
    corpus: &Corpus,
    config: &TrainConfig,
    progress: &mut dyn FnMut(&str),
) -> Result<(Net, Vec<f32>), String> {
    progress(&format!(
        "{} examples: {} for training, {} held out by patient",
        corpus.examples.len(),
        corpus.train.len(),
        corpus.test.len()
    ));
    let mut losses = Vec::new();
    let net = train(&corpus.subset(&corpus.train), config, &mut |epoch, loss| {
        losses.push(loss);
        progress(&format!("epoch {epoch}: loss {loss:.4}"));
    })
    .map_err(|e| e.to_string())?;
    Ok((net, losses))
}

/// Train the left-right network ([`crate::laterality`]) on the training part's frontal
/// radiographs; `progress` hears each epoch.
pub fn train_laterality_on_corpus(
    corpus: &Corpus,
    config: &TrainConfig,
    progress: &mut dyn FnMut(&str),
) -> Result<Net, String> {
    crate::laterality::train(&corpus.subset(&corpus.train), config, &mut |epoch, loss| {
        progress(&format!("left-right epoch {epoch}: loss {loss:.4}"))
    })
    .map_err(|e| e.to_string())
}

/// Judge `classifier` on the held-out part, and run the whole triage (rules and network)
/// over every file under `dicom/` of the corpus.
pub fn evaluate_on_corpus(
    corpus: &Corpus,
    classifier: Box<dyn Classifier + Send + Sync>,
    model: String,
) -> Result<CorpusEvaluation, String> {
    let held_out = evaluate(classifier.as_ref(), &corpus.subset(&corpus.test))?;
    let mut upper_chest = Vec::new();
    for share in UPPER_CHEST_SHARES {
        let films: Vec<Prepared> = corpus
            .test
            .iter()
            .filter_map(|&i| corpus.prepared[i].detail.as_ref())
            .map(|d| Prepared::new(&d.top(share), Class::Frontal))
            .collect();
        upper_chest.push((share, evaluate(classifier.as_ref(), &films)?));
    }
    let expected = crate::dataset::expected_by_path(&corpus.root).map_err(|e| e.to_string())?;
    let triage = crate::Triage::with_classifier(crate::RuleConfig::default(), classifier, model);
    let mut files = Vec::new();
    walk(&corpus.root.join("dicom"), &mut files);
    files.sort();
    let dicom = files
        .iter()
        .map(|f| {
            let rel = f
                .strip_prefix(&corpus.root)
                .unwrap_or(f)
                .to_string_lossy()
                .replace('\\', "/");
            let mut verdict = triage.file(f);
            verdict.path = rel.clone();
            FileVerdict {
                expected: expected.get(&rel).cloned().unwrap_or_default(),
                path: rel,
                verdict,
            }
        })
        .collect();
    Ok(CorpusEvaluation {
        train_examples: corpus.train.len(),
        test_examples: corpus.test.len(),
        held_out,
        held_out_paths: corpus
            .test
            .iter()
            .map(|&i| corpus.examples[i].path.clone())
            .collect(),
        dicom,
        upper_chest,
    })
}

fn walk(dir: &std::path::Path, out: &mut Vec<std::path::PathBuf>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for e in entries.flatten() {
        let p = e.path();
        if p.is_dir() {
            walk(&p, out);
        } else {
            out.push(p);
        }
    }
}

/// The evaluation report, as Markdown: `how` says what produced the weights and the
/// report.
pub fn report(ev: &CorpusEvaluation, how: &str) -> String {
    let held = &ev.held_out;
    let pct = |x: Option<f64>| x.map_or("-".to_string(), |v| format!("{:.1}%", v * 100.0));
    let mut s = String::new();
    s.push_str("# Triage network: evaluation\n\n");
    s.push_str(how);
    s.push_str(&format!(
        "\n\n{} examples for training, {} held out by patient (the manifest's family), a fifth \
         of the patients of each source (folder and manifest class; see docs/triage.md). \
         Every figure below is from inference as `radlab triage` runs it: each image looked \
         at in its eight orientations, and also inverted in each where those eight do not \
         settle it.\n\n",
        ev.train_examples, ev.test_examples
    ));
    s.push_str("## Held out by patient\n\n");
    s.push_str(&format!(
        "- valid (frontal) against outlier: {:.1}% ({} of {}; goal 98%). The held-out images \
         in their stored orientation, and each frontal one also inverted.\n",
        held.valid_accuracy() * 100.0,
        held.valid_right,
        held.valid_total
    ));
    s.push_str(&format!(
        "- orientation: {:.1}% ({} of {}; goal 99%). Each held-out chest radiograph in each \
         of the 8 orientations.\n\n",
        held.orientation_accuracy() * 100.0,
        held.orientation_right,
        held.orientation_total
    ));
    let missed: Vec<&str> = [
        (held.valid_accuracy() >= 0.98, "valid against outlier"),
        (held.orientation_accuracy() >= 0.99, "orientation"),
    ]
    .into_iter()
    .filter(|(met, _)| !met)
    .map(|(_, goal)| goal)
    .collect();
    if missed.is_empty() {
        s.push_str("Both goals are met.\n\n");
    } else {
        s.push_str(&format!(
            "**Goal not met: {}**. The verdicts say what the network sees, with its \
             probability, and an administrator overrules them on the Triage tab.\n\n",
            missed.join(", ")
        ));
    }
    s.push_str("| class | precision | recall | held out |\n|---|---|---|---|\n");
    for c in Class::ALL {
        let n: u32 = held.confusion[c.index()].iter().sum();
        s.push_str(&format!(
            "| {} | {} | {} | {n} |\n",
            c.name(),
            pct(held.precision(c)),
            pct(held.recall(c))
        ));
    }
    s.push_str(&confusion_table(&held.confusion));
    s.push_str(&mistakes(held, &ev.held_out_paths));
    if !ev.upper_chest.is_empty() {
        s.push_str(
            "\n## Films of the upper chest, held out\n\nThe top of each held-out frontal \
             radiograph, full width (the heart's apex, the diaphragm and the gastric bubble \
             cut off as the share shrinks), judged as above: as stored and inverted for the \
             class, in each of the 8 orientations for the orientation. No goal; it shows how \
             far the orientation holds when the lower chest is out of the field.\n\n\
             | top of each | valid / outlier | orientation |\n|---|---|---|\n",
        );
        for (share, e) in &ev.upper_chest {
            s.push_str(&format!(
                "| {:.0}% | {:.1}% ({} of {}) | {:.1}% ({} of {}) |\n",
                share * 100.0,
                e.valid_accuracy() * 100.0,
                e.valid_right,
                e.valid_total,
                e.orientation_accuracy() * 100.0,
                e.orientation_right,
                e.orientation_total
            ));
        }
    }
    // Every DICOM file.
    let mut conf = [[0u32; 4]; 4];
    for f in &ev.dicom {
        if let (Some(t), Some(p)) = (
            Class::of_expected(&f.expected),
            f.verdict.class.and_then(Class::of_name),
        ) {
            conf[t.index()][p.index()] += 1;
        }
    }
    let eval = Evaluation {
        confusion: conf,
        ..Default::default()
    };
    s.push_str(&format!(
        "\n## Every file under `dicom/` of the corpus\n\n{} files, judged as `radlab triage` \
         judges them (the rules, then the network where there are pixels). Files of the \
         training part are included (the split is by patient family, see above).\n\n",
        ev.dicom.len()
    ));
    s.push_str("The network's class against the manifest's, over the files with pixels:\n\n");
    s.push_str("| class | precision | recall | files |\n|---|---|---|---|\n");
    for c in Class::ALL {
        let n: u32 = conf[c.index()].iter().sum();
        s.push_str(&format!(
            "| {} | {} | {} | {n} |\n",
            c.name(),
            pct(eval.precision(c)),
            pct(eval.recall(c))
        ));
    }
    s.push_str(&confusion_table(&conf));
    let frontal: Vec<&FileVerdict> = ev
        .dicom
        .iter()
        .filter(|f| f.expected == "frontal_cxr")
        .collect();
    let kept = frontal.iter().filter(|f| f.verdict.valid).count();
    let unexplained = frontal
        .iter()
        .filter(|f| !f.verdict.valid && f.verdict.findings.is_empty())
        .count();
    s.push_str(&format!(
        "\nFrontal chest radiographs (manifest `frontal_cxr`): {kept} of {} valid; {unexplained} \
         rejected without a stated reason.\n\n",
        frontal.len()
    ));
    s.push_str(
        "| file | manifest | network | p | orientation | verdict |\n|---|---|---|---|---|---|\n",
    );
    for f in &ev.dicom {
        let v = &f.verdict;
        let codes: Vec<&str> = v.findings.iter().map(|x| x.code).collect();
        s.push_str(&format!(
            "| `{}` | {} | {} | {} | {} | {} |\n",
            f.path,
            if f.expected.is_empty() {
                "-"
            } else {
                &f.expected
            },
            v.class.unwrap_or("-"),
            v.probability.map_or("-".to_string(), |p| format!("{p:.3}")),
            v.orientation.as_deref().unwrap_or("-"),
            if v.valid {
                "valid".to_string()
            } else {
                format!("rejected: {}", codes.join(", "))
            }
        ));
    }
    s
}

/// The held-out mistakes, each named: the class ones, then the orientation ones.
fn mistakes(held: &Evaluation, paths: &[String]) -> String {
    let path = |i: usize| paths.get(i).map_or("?", String::as_str);
    let mut s = String::from("\nEach held-out case in the wrong class");
    if held.class_mistakes.is_empty() {
        s.push_str(": none.\n");
    } else {
        s.push_str(":\n\n| file | truth | the network | p |\n|---|---|---|---|\n");
        for m in &held.class_mistakes {
            s.push_str(&format!(
                "| `{}`{} | {} | {} | {:.3} |\n",
                path(m.example),
                if m.inverted_here {
                    ", inverted here"
                } else {
                    ""
                },
                m.truth.name(),
                m.said.name(),
                m.probability
            ));
        }
    }
    s.push_str("\nEach held-out chest radiograph judged in a wrong orientation");
    if held.orientation_mistakes.is_empty() {
        s.push_str(": none.\n");
    } else {
        s.push_str(
            " (of its eight; as stored, the image is upright, `0`):\n\n\
             | file | wrong of 8 | as stored, seen as |\n|---|---|---|\n",
        );
        for m in &held.orientation_mistakes {
            s.push_str(&format!(
                "| `{}` | {} | {} |\n",
                path(m.example),
                m.wrong,
                m.upright_seen_as.map_or("-".to_string(), |o| o.name())
            ));
        }
    }
    s
}

fn confusion_table(conf: &[[u32; 4]; 4]) -> String {
    let mut s = String::from("\nConfusion (rows: truth; columns: the network):\n\n| | ");
    s.push_str(
        &Class::ALL
            .iter()
            .map(|c| c.name())
            .collect::<Vec<_>>()
            .join(" | "),
    );
    s.push_str(" |\n|---|---|---|---|---|\n");
    for c in Class::ALL {
        s.push_str(&format!(
            "| {} | {} |\n",
            c.name(),
            conf[c.index()]
                .iter()
                .map(|n| n.to_string())
                .collect::<Vec<_>>()
                .join(" | ")
        ));
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_report_gives_the_films_of_the_upper_chest_each_share_a_row() {
        let held = Evaluation {
            confusion: [[4, 0, 0, 0], [0, 1, 0, 0], [0, 0, 3, 0], [0, 0, 0, 4]],
            orientation_right: 36,
            orientation_total: 40,
            valid_right: 12,
            valid_total: 12,
            ..Default::default()
        };
        let top = |right| Evaluation {
            orientation_right: right,
            orientation_total: 32,
            valid_right: 7,
            valid_total: 8,
            ..Default::default()
        };
        let mut ev = CorpusEvaluation {
            train_examples: 30,
            test_examples: 8,
            held_out: held,
            held_out_paths: Vec::new(),
            dicom: Vec::new(),
            upper_chest: vec![(0.5, top(8)), (0.7, top(30))],
        };
        let md = report(&ev, "how");
        assert!(md.contains("## Films of the upper chest, held out"), "{md}");
        assert!(
            md.contains("| 50% | 87.5% (7 of 8) | 25.0% (8 of 32) |"),
            "{md}"
        );
        assert!(
            md.contains("| 70% | 87.5% (7 of 8) | 93.8% (30 of 32) |"),
            "{md}"
        );
        // The section comes after the held-out mistakes and before the DICOM files.
        let at = |s: &str| md.find(s).unwrap();
        assert!(at("Each held-out case") < at("upper chest, held out"));
        assert!(at("upper chest, held out") < at("## Every file under"));
        ev.upper_chest.clear();
        assert!(!report(&ev, "how").contains("upper chest"));
    }

    fn picture(seed: u64, class: Class) -> Prepared {
        let mut rng = Rng::new(seed);
        // A bright left half (a "heart" side), noise elsewhere: not symmetric, so every
        // orientation differs.
        let pixels = (0..96 * 80)
            .map(|i| {
                let x = i % 96;
                let base = if x < 40 { 180 } else { 60 };
                (base + rng.below(40)) as u8
            })
            .collect();
        Prepared::new(
            &Grey {
                width: 96,
                height: 80,
                pixels,
            },
            class,
        )
    }

    #[test]
    fn training_is_deterministic_and_evaluation_counts_every_case() {
        let examples: Vec<Prepared> = (0..6)
            .map(|i| picture(i, if i < 4 { Class::Frontal } else { Class::Other }))
            .collect();
        let config = TrainConfig {
            seed: 9,
            epochs: 1,
            per_class: 4,
            batch: 8,
            learning_rate: 1e-3,
        };
        let mut losses = Vec::new();
        let a = train(&examples, &config, &mut |_, l| losses.push(l)).unwrap();
        let b = train(&examples, &config, &mut |_, _| {}).unwrap();
        assert_eq!(a.to_safetensors().unwrap(), b.to_safetensors().unwrap());
        assert!(losses.len() == 1 && losses[0].is_finite());
        let ev = evaluate(&a.inference().unwrap(), &examples).unwrap();
        // 6 images, the 4 frontal ones also inverted; 4 chest images in 8 orientations.
        assert_eq!(ev.valid_total, 10);
        assert_eq!(ev.confusion.iter().flatten().sum::<u32>(), 10);
        assert_eq!(ev.orientation_total, 32);
        // Every mistake is named: the confusion's off-diagonal cases, the wrong orientations.
        let off: u32 = (0..4)
            .flat_map(|r| (0..4).filter(move |c| *c != r).map(move |c| (r, c)))
            .map(|(r, c)| ev.confusion[r][c])
            .sum();
        assert_eq!(ev.class_mistakes.len() as u32, off);
        for m in &ev.class_mistakes {
            assert_ne!(m.truth, m.said);
            assert!(m.example < examples.len());
            assert_eq!(m.inverted_here, m.truth == Class::Inverted);
        }
        let wrong: u32 = ev.orientation_mistakes.iter().map(|m| m.wrong).sum();
        assert_eq!(wrong, ev.orientation_total - ev.orientation_right);
        assert!(
            ev.orientation_mistakes
                .iter()
                .all(|m| (1..=8).contains(&m.wrong))
        );
    }
}
