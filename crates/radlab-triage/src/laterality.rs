//! Left against right: a second network that looks only at frontal radiographs turned
//! upright, at twice the triage network's resolution, and says whether the image is
//! mirrored.
//!
//! The triage network ([`crate::model`], 64 x 64) finds the rotation of a chest radiograph
//! reliably, but a mirror is told only by where the heart, the aortic knob and the gastric
//! bubble lie, which at 64 pixels can be lost in a hazy film or a crop. So, for each image
//! the triage network calls frontal, [`crate::model::judge`] turns it upright by the
//! orientation found, and asks this network (128 x 128, [`LATERALITY`]) about the upright
//! image and its mirror; their agreement decides the side: the image's orientation keeps
//! the rotation the triage network found and takes its mirror from here.
//!
//! Trained ([`train`]) on the frontal radiographs of the training part only, each drawn
//! with a crop (one in three a film of the upper chest, [`upper_chest`]; the others 55 to
//! 100% of its height and 65 to 100% of its width, so that films of one side more than the
//! other are seen), a tone curve, and mirrored or not at random.

use candle_nn::Optimizer as _;

use crate::dataset::Class;
use crate::infer::Forward;
use crate::model::{Arch, Classifier, LATERALITY, Net, Outputs, Rng, TRIAGE, batch};
use crate::preprocess::{Grey, Orientation};
use crate::train::{Prepared, TrainConfig, crop, one_cycle, optimiser, tone};

/// The side a frontal radiograph is kept at for the left-right network's crops: twice its
/// input.
pub const CROP_SOURCE_SIDE: u32 = 256;

/// The left-right network's epochs by default (`radlab triage train --laterality-epochs`).
pub const EPOCHS: usize = 90;

/// The left-right mirror: the orientation that flips an upright image.
pub const MIRROR: Orientation = Orientation::new(0, true);

/// The shipped weights of the left-right network (`radlab triage train` writes them).
pub const BUILTIN_WEIGHTS: &[u8] = include_bytes!("../weights/laterality.safetensors");

/// The built-in model: the triage network and the left-right network.
pub struct Builtin {
    pub triage: Forward,
    pub laterality: Forward,
}

impl Builtin {
    /// From the two networks' safetensors files.
    pub fn from_safetensors(triage: &[u8], laterality: &[u8]) -> Result<Builtin, String> {
        let load = |arch: Arch, bytes: &[u8], what: &str| {
            Net::from_safetensors_of(arch, bytes)
                .and_then(|n| n.inference())
                .map_err(|e| format!("the {what} weights: {e}"))
        };
        Ok(Builtin {
            triage: load(TRIAGE, triage, "triage network's")?,
            laterality: load(LATERALITY, laterality, "left-right network's")?,
        })
    }
}

impl Classifier for Builtin {
    fn side(&self) -> u32 {
        self.triage.side()
    }

    fn outputs(&self, inputs: &[Vec<f32>]) -> Result<Vec<Outputs>, String> {
        self.triage.outputs(inputs)
    }

    fn laterality_side(&self) -> Option<u32> {
        Some(LATERALITY.side)
    }

    fn mirrored(&self, inputs: &[Vec<f32>]) -> Result<Vec<f32>, String> {
        mirrored_by(&self.laterality, inputs)
    }
}

/// The probability that each input (an upright frontal radiograph, centred on black and
/// standardized at [`LATERALITY`]'s side) is mirrored, by the network `net`.
pub fn mirrored_by(net: &Forward, inputs: &[Vec<f32>]) -> Result<Vec<f32>, String> {
    let expected = (LATERALITY.side * LATERALITY.side) as usize;
    if let Some(bad) = inputs.iter().find(|x| x.len() != expected) {
        return Err(format!("an input of {} values, not {expected}", bad.len()));
    }
    Ok(net
        .logits(inputs)
        .into_iter()
        .map(|l| {
            // Softmax of two logits, in f64: p(mirrored) = 1 / (1 + e^(l0 - l1)).
            let d = f64::from(l[0]) - f64::from(l[1]);
            (1.0 / (1.0 + d.exp())) as f32
        })
        .collect())
}

/// The two inputs a left-right network of input `side` is asked about for an upright image
/// (scaled to fit that side): the image, then its mirror.
pub fn views(upright: &Grey, side: u32) -> [Vec<f32>; 2] {
    [
        upright.padded(side).standardized(),
        upright.oriented(MIRROR).padded(side).standardized(),
    ]
}

/// The probability that an upright image is mirrored from the network's outputs on its two
/// [`views`] (`p` for the image, `q` for its mirror): the mean of what each says.
pub fn side_of(p: f32, q: f32) -> f32 {
    ((f64::from(p) + 1.0 - f64::from(q)) / 2.0) as f32
}

/// A random crop of `source` scaled to fit the network's side, then a random tone curve.
/// One draw in three is a film of the upper chest ([`upper_chest`]); the others take 55 to
/// 100% of the height and 65 to 100% of the width, anywhere.
fn augment(source: &Grey, rng: &mut Rng) -> Grey {
    let cropped = if rng.below(3) == 0 {
        upper_chest(source, rng)
    } else {
        crop(source, (0.55, 1.0), (0.65, 1.0), rng)
    };
    let mut img = cropped.scaled_to_fit(LATERALITY.side);
    tone(&mut img, rng);
    img
}

/// A film of the upper chest cut from an upright frontal radiograph: from within the top
/// 5% of its height down through 45 to 75% of it (the heart's apex, the diaphragm and the
/// gastric bubble out of the field, as in a film collimated to the lungs' upper parts), and
/// 75 to 100% of its width. Without such draws the network placed the top half of only 172
/// of its 243 training radiographs: it had learned the side from the lower chest.
pub(crate) fn upper_chest(source: &Grey, rng: &mut Rng) -> Grey {
    let h = source.height as usize;
    let y0 = rng.below(h / 20 + 1);
    let rows = ((h as f64 * rng.uniform(0.45, 0.75)) as usize).clamp(1.min(h), h - y0);
    crop(
        &source.rows(y0 as u32, rows as u32),
        (1.0, 1.0),
        (0.75, 1.0),
        rng,
    )
}

/// Train the left-right network on the frontal radiographs among `examples`: each epoch
/// draws `2 * config.per_class` samples (with replacement; each mirrored or not, as
/// likely); `progress` hears each epoch's mean loss. The one-cycle learning rate
/// spans every step. The network returned has its normalisation folded.
pub fn train(
    examples: &[Prepared],
    config: &TrainConfig,
    progress: &mut dyn FnMut(usize, f32),
) -> candle_core::Result<Net> {
    // Seeds of their own, apart from the triage network's (seed, seed + 1).
    let mut net = Net::with_arch(LATERALITY, config.seed.wrapping_add(0x1a7e))?;
    let mut rng = Rng::new(config.seed.wrapping_add(0x1a7f));
    let mut opt = optimiser(&net, config)?;
    let frontal: Vec<&Grey> = examples
        .iter()
        .filter(|e| e.class == Class::Frontal)
        .filter_map(|e| e.detail.as_ref())
        .collect();
    if frontal.is_empty() {
        return Err(candle_core::Error::Msg(
            "no frontal radiograph to learn left from right".into(),
        ));
    }
    let batch_size = config.batch.max(1);
    let per_epoch = 2 * config.per_class;
    let total_steps = per_epoch.div_ceil(batch_size) * config.epochs;
    let mut step = 0usize;
    let dev = candle_core::Device::Cpu;
    for epoch in 0..config.epochs {
        let picks: Vec<usize> = (0..per_epoch).map(|_| rng.below(frontal.len())).collect();
        let mut total = 0f32;
        let mut batches = 0usize;
        for chunk in picks.chunks(batch_size) {
            let mut inputs = Vec::with_capacity(chunk.len());
            let mut labels = Vec::with_capacity(chunk.len());
            for &i in chunk {
                let img = augment(frontal[i], &mut rng);
                let mirror = rng.below(2) == 1;
                let img = if mirror { img.oriented(MIRROR) } else { img };
                inputs.push(img.padded(LATERALITY.side).standardized());
                labels.push(u32::from(mirror));
            }
            opt.set_learning_rate(one_cycle(config.learning_rate, step, total_steps));
            step += 1;
            let logits = net.forward_t(&batch(&inputs)?, true)?;
            let labels = candle_core::Tensor::new(labels.as_slice(), &dev)?;
            let loss = candle_nn::loss::cross_entropy(&logits, &labels)?;
            opt.backward_step(&loss)?;
            total += loss.to_scalar::<f32>()?;
            batches += 1;
        }
        progress(epoch + 1, total / batches.max(1) as f32);
    }
    net.folded()
}

/// How the left-right network does on upright frontal radiographs (each as stored and
/// mirrored): the probability each is called mirrored, as stored then mirrored.
pub fn sides(net: &Forward, uprights: &[Grey]) -> Result<Vec<(f32, f32)>, String> {
    let mut out = Vec::with_capacity(uprights.len());
    for chunk in uprights.chunks(32) {
        let mut inputs = Vec::with_capacity(chunk.len() * 4);
        for g in chunk {
            let fit = g.scaled_to_fit(LATERALITY.side);
            let [a, b] = views(&fit, LATERALITY.side);
            let [c, d] = views(&fit.oriented(MIRROR), LATERALITY.side);
            inputs.extend([a, b, c, d]);
        }
        let q = mirrored_by(net, &inputs)?;
        for r in q.chunks(4) {
            out.push((side_of(r[0], r[1]), side_of(r[2], r[3])));
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A "radiograph" with a bright square right of its centre (a heart on the image's
    /// right), noise elsewhere.
    fn radiograph(seed: u64) -> Grey {
        let mut rng = Rng::new(seed);
        let (w, h) = (300usize, 260usize);
        let pixels = (0..w * h)
            .map(|i| {
                let (x, y) = (i % w, i / w);
                let heart = (160..240).contains(&x) && (120..220).contains(&y);
                (if heart { 170 } else { 50 } + rng.below(60)) as u8
            })
            .collect();
        Grey {
            width: w as u32,
            height: h as u32,
            pixels,
        }
    }

    #[test]
    fn an_upper_chest_film_is_cut_from_the_top_of_the_radiograph() {
        // Each row of the source holds its own number, so a crop's rows tell where it was cut.
        let (w, h) = (200usize, 240usize);
        let source = Grey {
            width: w as u32,
            height: h as u32,
            pixels: (0..w * h).map(|i| (i / w) as u8).collect(),
        };
        let mut rng = Rng::new(11);
        for _ in 0..200 {
            let film = upper_chest(&source, &mut rng);
            let (fw, fh) = (film.width as usize, film.height as usize);
            assert!((150..=200).contains(&fw), "{fw}");
            assert!((108..=180).contains(&fh), "{fh}");
            let first = usize::from(film.pixels[0]);
            assert!(first <= h / 20, "cut from row {first}");
            for y in 0..fh {
                assert!(
                    film.pixels[y * fw..(y + 1) * fw]
                        .iter()
                        .all(|&v| usize::from(v) == first + y)
                );
            }
        }
        // Tiny images give a film, not a panic.
        for (w, h) in [(1u32, 1u32), (3, 1), (1, 9)] {
            let tiny = Grey {
                width: w,
                height: h,
                pixels: vec![7; (w * h) as usize],
            };
            let film = upper_chest(&tiny, &mut rng);
            assert!(film.width >= 1 && film.height >= 1);
        }
    }

    #[test]
    fn the_left_right_network_trains_the_same_twice_and_runs_as_candle_does() {
        let mut examples: Vec<Prepared> = (0..4)
            .map(|i| Prepared::new(&radiograph(i), Class::Frontal))
            .collect();
        examples.push(Prepared::new(&radiograph(9), Class::Other));
        assert!(examples[4].detail.is_none());
        assert_eq!(
            examples[0].detail.as_ref().map(|d| d.width),
            Some(CROP_SOURCE_SIDE)
        );
        let config = TrainConfig {
            seed: 5,
            epochs: 1,
            per_class: 6,
            batch: 6,
            learning_rate: 1e-3,
        };
        let mut losses = Vec::new();
        let a = train(&examples, &config, &mut |_, l| losses.push(l)).unwrap();
        let b = train(&examples, &config, &mut |_, _| {}).unwrap();
        let bytes = a.to_safetensors().unwrap();
        assert_eq!(bytes, b.to_safetensors().unwrap());
        assert!(losses.len() == 1 && losses[0].is_finite());
        assert_eq!(a.arch(), LATERALITY);
        // Its weights are not the triage network's, nor the other way round.
        let back = Net::from_safetensors_of(LATERALITY, &bytes).unwrap();
        assert_eq!(back.to_safetensors().unwrap(), bytes);
        assert!(Net::from_safetensors(&bytes).is_err());
        let triage = Net::new(1).unwrap().to_safetensors().unwrap();
        assert!(Builtin::from_safetensors(&triage, &bytes).is_ok());
        let swapped = Builtin::from_safetensors(&bytes, &triage).err().unwrap();
        assert!(swapped.contains("triage network"), "{swapped}");
        // No frontal radiograph, no training.
        assert!(train(&examples[4..], &config, &mut |_, _| {}).is_err());

        // The fast forward pass against candle's, on an upright image and its mirror.
        let fit = radiograph(3).scaled_to_fit(LATERALITY.side);
        let inputs = views(&fit, LATERALITY.side).to_vec();
        let logits = a
            .forward(&batch(&inputs).unwrap())
            .unwrap()
            .to_vec2::<f32>()
            .unwrap();
        let fast = a.inference().unwrap();
        let q = mirrored_by(&fast, &inputs).unwrap();
        for (l, q) in logits.iter().zip(&q) {
            let p = 1.0 / (1.0 + f64::from(l[0] - l[1]).exp());
            assert!((p - f64::from(*q)).abs() < 1e-5, "{p} {q}");
        }
        let s = sides(&fast, std::slice::from_ref(&fit)).unwrap();
        assert_eq!(s.len(), 1);
        // The mirrored image's two views are the image's, swapped.
        assert!((s[0].0 - (1.0 - s[0].1)).abs() < 1e-6, "{s:?}");
        assert!(mirrored_by(&fast, &[vec![0.0; 64 * 64]]).is_err());
    }
}
