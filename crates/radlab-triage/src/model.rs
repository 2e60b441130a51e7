//! The triage network: a small CNN on a 64 x 64 grey image ([`INPUT_SIDE`]: the image as
//! displayed, scaled to fit by area averaging, centred on black, standardized; see
//! [`crate::preprocess`]) with two heads, the class ([`Class`]: frontal, lateral, other,
//! inverted) and the orientation (the eight of [`Orientation::ALL`]). Trained and run with
//! candle on the CPU; its weights are a safetensors file small enough to ship in the binary.
//!
//! Layers: four blocks of 3 x 3 convolution (padding 1) + ReLU + 2 x 2 max pooling, with
//! 16, 32, 64 and 64 channels (64 -> 32 -> 16 -> 8 -> 4 pixels a side), and a linear layer
//! from the last map flattened (64 x 4 x 4, channel-major, as PyTorch's and ONNX's `Flatten`)
//! to 12 outputs (4 class logits, then 8 orientation logits). The head sees where each
//! feature is, not only that it is there: where the heart and the aortic knob lie is what
//! tells an image from its mirror. Training puts a
//! batch normalisation after each convolution; the shipped weights have it folded into the
//! convolution (`conv{i}.weight`, `conv{i}.bias`, `head.weight`, `head.bias`: the same
//! layout a PyTorch or ONNX copy of the network reads).
//!
//! Inference looks at each image in its eight orientations, and, unless those eight settle
//! it, also with its grey levels inverted in each: sixteen views at most, in a fixed order
//! ([`judge`]). The class probabilities are averaged over the orientations; frontal against
//! inverted is decided by comparing the image with its inversion; the orientation is the one
//! the views agree on best (the sum of their log-probabilities). The first eight settle an
//! image when one class has a mean probability of 0.9 or more and the best orientation leads
//! the next by 8 nats or more ([`settled`]); then its inversion would not change the verdict
//! in practice, and is not looked at. Where the model has a left-right network
//! ([`crate::laterality`], the built-in model's second network), each image called frontal
//! is then turned upright and that network says its side ([`place_sides`]). No random
//! transform is ever applied at inference.
//!
//! Initialisation is seeded (He-uniform from our own xorshift generator, not candle's
//! unseeded one), so that `radlab triage train --seed S` gives the same weights on the same
//! data and machine.

use candle_core::{D, DType, Device, Tensor, Var};

use crate::dataset::Class;
use crate::infer::Forward;
use crate::norm::norm_relu_pool;
use crate::preprocess::{Grey, Orientation};

/// The network's input side, in pixels.
pub const INPUT_SIDE: u32 = 64;

/// A network's shape: square inputs of `side`, blocks of 3 x 3 convolution, ReLU and 2 x 2
/// max pooling from one grey channel through `channels`, and a linear head from the last
/// map flattened to `outputs` logits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Arch {
    pub side: u32,
    /// The channels of the input (1) and of each block's output.
    pub channels: &'static [usize],
    pub outputs: usize,
}

impl Arch {
    /// The head's inputs: the last map (the input halved by each block) flattened.
    pub fn features(&self) -> usize {
        let last = self.side as usize >> (self.channels.len() - 1);
        self.channels[self.channels.len() - 1] * last * last
    }
}

/// The triage network: 64 x 64, four blocks, 4 class and 8 orientation logits.
pub const TRIAGE: Arch = Arch {
    side: INPUT_SIDE,
    channels: &[1, 16, 32, 64, 64],
    outputs: 12,
};

/// The left-right network ([`crate::laterality`]): an upright frontal radiograph at
/// 128 x 128, five blocks (narrow where the maps are large, so that it costs about one and
/// a half views of [`TRIAGE`]), and 2 logits: as stored, mirrored.
pub const LATERALITY: Arch = Arch {
    side: 128,
    channels: &[1, 8, 16, 32, 64, 64],
    outputs: 2,
};
const BN_EPS: f64 = 1e-5;
const BN_MOMENTUM: f64 = 0.1;

/// A small deterministic generator (xorshift64*), for initialisation and sampling.
#[derive(Debug, Clone)]
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Rng {
        Rng(seed ^ 0x9E37_79B9_7F4A_7C15 | 1)
    }

    pub fn next_u64(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    /// Uniform in [0, 1).
    pub fn unit(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }

    /// Uniform in [lo, hi).
    pub fn uniform(&mut self, lo: f64, hi: f64) -> f64 {
        lo + (hi - lo) * self.unit()
    }

    /// Uniform in 0..n.
    pub fn below(&mut self, n: usize) -> usize {
        (self.unit() * n as f64) as usize % n.max(1)
    }
}

/// Batch normalisation of one block while training: scale and shift learnt, the running
/// statistics kept for folding.
struct Norm {
    gamma: Var,
    beta: Var,
    mean: Tensor,
    var: Tensor,
}

/// The network's parameters.
pub struct Net {
    arch: Arch,
    /// (weight [out, in, 3, 3], bias [out]) per block.
    convs: Vec<(Var, Var)>,
    /// Present while training; folded away by [`Net::folded`].
    norms: Option<Vec<Norm>>,
    head_w: Var,
    head_b: Var,
}

/// What the network says of one image.
#[derive(Debug, Clone, PartialEq)]
pub struct Prediction {
    pub class: Class,
    /// Probability of each class, in [`Class::ALL`] order (the mean over the eight
    /// orientations of the image as given).
    pub class_probabilities: [f32; 4],
    /// The probability behind the class said (for frontal and inverted, the mean of the
    /// image's and its inversion's agreement).
    pub probability: f32,
    /// The image's orientation (applying its inverse gives the upright image), and the
    /// probability of it for the image as given; `None` from a model that does not predict
    /// orientation.
    pub orientation: Option<(Orientation, f32)>,
}

impl Prediction {
    /// A valid frontal chest radiograph, upright (or of unknown orientation).
    pub fn is_valid(&self) -> bool {
        self.class == Class::Frontal
            && self
                .orientation
                .is_none_or(|(o, _)| o == Orientation::ALL[0])
    }
}

/// What a classifier says of one input: class probabilities in [`Class::ALL`] order, and
/// orientation probabilities in [`Orientation::ALL`] order where it predicts them.
#[derive(Debug, Clone, PartialEq)]
pub struct Outputs {
    pub class: [f32; 4],
    pub orientation: Option<[f32; 8]>,
}

/// A network that triage can ask: the built-in one ([`Net::inference`]), or a site's own
/// model (ONNX).
/// Inputs are square grey images of side [`Classifier::side`], standardized ([`views`]).
pub trait Classifier {
    /// The input side in pixels.
    fn side(&self) -> u32;
    /// The outputs for each input, in order.
    fn outputs(&self, inputs: &[Vec<f32>]) -> Result<Vec<Outputs>, String>;
    /// The input side of the model's left-right network, where it has one
    /// ([`crate::laterality`]); then [`judge`] takes the side of each frontal image from it.
    fn laterality_side(&self) -> Option<u32> {
        None
    }
    /// For each input (a frontal image turned upright by the orientation found, centred on
    /// black and standardized at [`Classifier::laterality_side`]), the probability that it
    /// is mirrored.
    fn mirrored(&self, _inputs: &[Vec<f32>]) -> Result<Vec<f32>, String> {
        Err("this model has no left-right network".into())
    }
}

impl Classifier for Forward {
    fn side(&self) -> u32 {
        INPUT_SIDE
    }

    fn outputs(&self, inputs: &[Vec<f32>]) -> Result<Vec<Outputs>, String> {
        let expected = (INPUT_SIDE * INPUT_SIDE) as usize;
        if let Some(bad) = inputs.iter().find(|x| x.len() != expected) {
            return Err(format!("an input of {} values, not {expected}", bad.len()));
        }
        Ok(self
            .logits(inputs)
            .into_iter()
            .map(|l| {
                let mut class = [0f32; 4];
                let mut orientation = [0f32; 8];
                class.copy_from_slice(&softmax(&l[..4]));
                orientation.copy_from_slice(&softmax(&l[4..12]));
                Outputs {
                    class,
                    orientation: Some(orientation),
                }
            })
            .collect())
    }
}

/// Softmax in f64 (max subtracted first), rounded to f32.
fn softmax(logits: &[f32]) -> Vec<f32> {
    let max = logits.iter().fold(f32::NEG_INFINITY, |a, &b| a.max(b));
    let exps: Vec<f64> = logits.iter().map(|&l| f64::from(l - max).exp()).collect();
    let sum: f64 = exps.iter().sum();
    exps.iter().map(|e| (e / sum) as f32).collect()
}

/// What `classifier` says of each image (any size: scaled to fit its side here), decided by
/// [`decide`]: each image looked at first in its eight orientations ([`oriented_views`]),
/// and in their eight inversions too ([`views`]) only when the first eight do not settle
/// it ([`settled`]).
///
/// Where the model has a left-right network ([`Classifier::laterality_side`]), each image
/// called frontal is then turned upright by the orientation found and its side taken from
/// that network ([`place_sides`]).
pub fn judge(classifier: &dyn Classifier, images: &[Grey]) -> Result<Vec<Prediction>, String> {
    judge_at(classifier, images, images)
}

/// [`judge`], with the left-right network looking at `details` (the same images, at any
/// size of at least its side; scaled to fit it here) instead of `images` (which may then be
/// no larger than the triage network's side).
pub fn judge_at(
    classifier: &dyn Classifier,
    images: &[Grey],
    details: &[Grey],
) -> Result<Vec<Prediction>, String> {
    if details.len() != images.len() {
        return Err(format!(
            "{} images and {} details",
            images.len(),
            details.len()
        ));
    }
    let side = classifier.side();
    let mut out = Vec::with_capacity(images.len());
    // The image as given's orientation probabilities (its first view's), for the
    // probability of an orientation whose side the left-right network changes.
    let mut as_given: Vec<Option<[f32; 8]>> = Vec::with_capacity(images.len());
    let asked = |inputs: &[Vec<f32>]| -> Result<Vec<Outputs>, String> {
        let outputs = classifier.outputs(inputs)?;
        if outputs.len() != inputs.len() {
            return Err(format!(
                "the model gave {} outputs for {} inputs",
                outputs.len(),
                inputs.len()
            ));
        }
        Ok(outputs)
    };
    // Four images (32 views, then at most 32 more) a call.
    for chunk in images.chunks(4) {
        let fits: Vec<Grey> = chunk.iter().map(|g| g.scaled_to_fit(side)).collect();
        let upright: Vec<Vec<f32>> = fits.iter().flat_map(|f| oriented_views(f, side)).collect();
        let first = asked(&upright)?;
        let unsettled: Vec<usize> = (0..fits.len())
            .filter(|&i| !settled(&first[i * 8..(i + 1) * 8]))
            .collect();
        let inverted: Vec<Vec<f32>> = unsettled
            .iter()
            .flat_map(|&i| oriented_views(&fits[i].inverted(), side))
            .collect();
        let second = asked(&inverted)?;
        for (i, rows) in first.chunks(8).enumerate() {
            as_given.push(rows[0].orientation);
            match unsettled.iter().position(|&u| u == i) {
                None => out.push(decide(rows)),
                Some(j) => {
                    let all: Vec<Outputs> = rows
                        .iter()
                        .chain(&second[j * 8..(j + 1) * 8])
                        .cloned()
                        .collect();
                    out.push(decide(&all));
                }
            }
        }
    }
    if let Some(lside) = classifier.laterality_side() {
        place_sides(classifier, lside, details, &as_given, &mut out)?;
    }
    Ok(out)
}

/// The side of each image called frontal, from the model's left-right network: the image
/// (`details[i]` scaled to fit `lside`) turned upright by the orientation found, and its
/// mirror, each asked whether it is mirrored ([`crate::laterality::side_of`]). Where the
/// upright image is more likely mirrored than not, the orientation becomes its mirror
/// partner (the same rotation, the other side). The orientation's probability becomes that
/// of its rotation for the image as given (the sum over the two sides, from `as_given`)
/// times that of the side.
pub fn place_sides(
    classifier: &dyn Classifier,
    lside: u32,
    details: &[Grey],
    as_given: &[Option<[f32; 8]>],
    out: &mut [Prediction],
) -> Result<(), String> {
    // (image, the orientation found) of each image called frontal.
    let frontal: Vec<(usize, Orientation)> = out
        .iter()
        .enumerate()
        .filter(|(_, p)| p.class == Class::Frontal)
        .filter_map(|(i, p)| p.orientation.map(|(o, _)| (i, o)))
        .collect();
    // Sixteen images (32 inputs) a call.
    for chunk in frontal.chunks(16) {
        let mut inputs = Vec::with_capacity(chunk.len() * 2);
        for &(i, o) in chunk {
            let upright = details[i].scaled_to_fit(lside).oriented(o.inverse());
            inputs.extend(crate::laterality::views(&upright, lside));
        }
        let q = classifier.mirrored(&inputs)?;
        if q.len() != inputs.len() {
            return Err(format!(
                "the left-right network gave {} outputs for {} inputs",
                q.len(),
                inputs.len()
            ));
        }
        for (&(i, o), pair) in chunk.iter().zip(q.chunks(2)) {
            let mirrored = crate::laterality::side_of(pair[0], pair[1]);
            let partner = compose(o, crate::laterality::MIRROR);
            let (placed, p_side) = if mirrored > 0.5 {
                (partner, mirrored)
            } else {
                (o, 1.0 - mirrored)
            };
            let p_rotation = as_given
                .get(i)
                .copied()
                .flatten()
                .map_or(1.0, |v| v[o.index()] + v[partner.index()]);
            out[i].orientation = Some((placed, (p_rotation * p_side).min(1.0)));
        }
    }
    Ok(())
}

/// `a` in orientation `o`, then in orientation `k`: which of the eight it is.
pub fn compose(k: Orientation, o: Orientation) -> Orientation {
    // Both act on a 2 x 3 test image; the result is matched against the eight.
    let test = Grey {
        width: 3,
        height: 2,
        pixels: vec![0, 1, 2, 3, 4, 5],
    };
    let both = test.oriented(o).oriented(k);
    Orientation::ALL
        .into_iter()
        .find(|x| test.oriented(*x) == both)
        .unwrap_or(Orientation::ALL[0])
}

impl Net {
    /// A fresh [`TRIAGE`] network from `seed`, with batch normalisation for training.
    pub fn new(seed: u64) -> candle_core::Result<Net> {
        Net::with_arch(TRIAGE, seed)
    }

    /// Fresh parameters of shape `arch` from `seed`, with batch normalisation for training.
    pub fn with_arch(arch: Arch, seed: u64) -> candle_core::Result<Net> {
        let mut rng = Rng::new(seed);
        let dev = Device::Cpu;
        // He-uniform. (PyTorch's default, within 1/sqrt(fan_in), trained a worse network
        // here: 87.6% / 90.2% held out against 88.4% / 94.1%.)
        let mut uniform = |shape: &[usize], fan_in: usize| {
            let bound = (6.0 / fan_in as f64).sqrt();
            let n: usize = shape.iter().product();
            let values: Vec<f32> = (0..n)
                .map(|_| ((rng.unit() * 2.0 - 1.0) * bound) as f32)
                .collect();
            Tensor::from_vec(values, shape, &dev).and_then(|t| Var::from_tensor(&t))
        };
        let mut convs = Vec::new();
        let mut norms = Vec::new();
        for w in arch.channels.windows(2) {
            let (cin, cout) = (w[0], w[1]);
            let weight = uniform(&[cout, cin, 3, 3], cin * 9)?;
            let bias = Var::zeros(cout, DType::F32, &dev)?;
            convs.push((weight, bias));
            norms.push(Norm {
                gamma: Var::ones(cout, DType::F32, &dev)?,
                beta: Var::zeros(cout, DType::F32, &dev)?,
                mean: Tensor::zeros(cout, DType::F32, &dev)?,
                var: Tensor::ones(cout, DType::F32, &dev)?,
            });
        }
        let features = arch.features();
        let head_w = uniform(&[arch.outputs, features], features)?;
        let head_b = Var::zeros(arch.outputs, DType::F32, &dev)?;
        Ok(Net {
            arch,
            convs,
            norms: Some(norms),
            head_w,
            head_b,
        })
    }

    /// Every trained parameter, for the optimiser (the convolution biases are left out while
    /// a normalisation follows them: they would cancel).
    pub fn vars(&self) -> Vec<Var> {
        let mut v: Vec<Var> = Vec::new();
        for (i, (w, b)) in self.convs.iter().enumerate() {
            v.push(w.clone());
            match &self.norms {
                Some(norms) => {
                    v.push(norms[i].gamma.clone());
                    v.push(norms[i].beta.clone());
                }
                None => v.push(b.clone()),
            }
        }
        v.push(self.head_w.clone());
        v.push(self.head_b.clone());
        v
    }

    /// The network for inference: each normalisation folded into its convolution, with its
    /// running statistics (y = gamma (conv(x) - mean) / sqrt(var + eps) + beta).
    pub fn folded(&self) -> candle_core::Result<Net> {
        let Some(norms) = &self.norms else {
            return self.copy();
        };
        let mut convs = Vec::new();
        for ((w, b), n) in self.convs.iter().zip(norms) {
            let c = w.dims()[0];
            let scale = n
                .gamma
                .as_tensor()
                .div(&(n.var.affine(1.0, BN_EPS)?.sqrt()?))?;
            let weight = w.as_tensor().broadcast_mul(&scale.reshape((c, 1, 1, 1))?)?;
            let bias = ((b.as_tensor() - &n.mean)? * &scale)?.add(n.beta.as_tensor())?;
            convs.push((Var::from_tensor(&weight)?, Var::from_tensor(&bias)?));
        }
        Ok(Net {
            arch: self.arch,
            convs,
            norms: None,
            head_w: Var::from_tensor(self.head_w.as_tensor())?,
            head_b: Var::from_tensor(self.head_b.as_tensor())?,
        })
    }

    fn copy(&self) -> candle_core::Result<Net> {
        let mut convs = Vec::new();
        for (w, b) in &self.convs {
            convs.push((
                Var::from_tensor(w.as_tensor())?,
                Var::from_tensor(b.as_tensor())?,
            ));
        }
        Ok(Net {
            arch: self.arch,
            convs,
            norms: None,
            head_w: Var::from_tensor(self.head_w.as_tensor())?,
            head_b: Var::from_tensor(self.head_b.as_tensor())?,
        })
    }

    fn named(&self) -> Vec<(String, Tensor)> {
        let mut v = Vec::new();
        for (i, (w, b)) in self.convs.iter().enumerate() {
            v.push((format!("conv{i}.weight"), w.as_tensor().clone()));
            v.push((format!("conv{i}.bias"), b.as_tensor().clone()));
        }
        v.push(("head.weight".into(), self.head_w.as_tensor().clone()));
        v.push(("head.bias".into(), self.head_b.as_tensor().clone()));
        v
    }

    /// The weights for inference (normalisation folded) as a safetensors file.
    pub fn to_safetensors(&self) -> candle_core::Result<Vec<u8>> {
        let named = self.folded()?.named();
        safetensors::serialize(named, None).map_err(candle_core::Error::wrap)
    }

    /// The network for fast inference ([`Forward`]), its normalisation folded.
    pub fn inference(&self) -> candle_core::Result<Forward> {
        let net = self.folded()?;
        let mut blocks = Vec::new();
        for (w, b) in &net.convs {
            blocks.push((
                w.as_tensor().flatten_all()?.to_vec1::<f32>()?,
                b.as_tensor().to_vec1::<f32>()?,
            ));
        }
        Ok(Forward::new(
            blocks,
            net.head_w.as_tensor().flatten_all()?.to_vec1::<f32>()?,
            net.head_b.as_tensor().to_vec1::<f32>()?,
            self.arch.side as usize,
        ))
    }

    /// [`TRIAGE`] weights read from a safetensors file's bytes; every tensor must be there
    /// with its shape.
    pub fn from_safetensors(bytes: &[u8]) -> candle_core::Result<Net> {
        Net::from_safetensors_of(TRIAGE, bytes)
    }

    /// Weights of shape `arch` read from a safetensors file's bytes; every tensor must be
    /// there with its shape.
    pub fn from_safetensors_of(arch: Arch, bytes: &[u8]) -> candle_core::Result<Net> {
        let tensors = candle_core::safetensors::load_buffer(bytes, &Device::Cpu)?;
        let net = Net::with_arch(arch, 0)?.copy()?;
        for (name, tensor) in net.named() {
            let t = tensors
                .get(&name)
                .ok_or_else(|| candle_core::Error::Msg(format!("no tensor {name}")))?;
            if t.dims() != tensor.dims() {
                return Err(candle_core::Error::Msg(format!(
                    "tensor {name} is {:?}, expected {:?}",
                    t.dims(),
                    tensor.dims()
                )));
            }
        }
        let get = |name: &str| -> candle_core::Result<Var> {
            Var::from_tensor(&tensors[name].to_dtype(DType::F32)?)
        };
        let mut convs = Vec::new();
        for i in 0..net.convs.len() {
            convs.push((
                get(&format!("conv{i}.weight"))?,
                get(&format!("conv{i}.bias"))?,
            ));
        }
        Ok(Net {
            arch,
            convs,
            norms: None,
            head_w: get("head.weight")?,
            head_b: get("head.bias")?,
        })
    }

    /// Logits [N, 12] for a batch [N, 1, S, S]; while training (`train`), batch statistics
    /// normalise each block and the running statistics move toward them. Only the training
    /// path is for gradients: the others pool through candle's `max_pool2d`, whose gradient
    /// is a quarter of the true one ([`crate::norm`]).
    pub fn forward_t(&mut self, x: &Tensor, train: bool) -> candle_core::Result<Tensor> {
        let mut x = x.clone();
        for i in 0..self.convs.len() {
            let (w, b) = &self.convs[i];
            let c = w.dims()[0];
            x = conv3x3(&x, w.as_tensor())?;
            x = match self.norms.as_mut() {
                Some(norms) if train => {
                    // Batch statistics normalise the block ([`norm_relu_pool`], one operation
                    // with its ReLU and pooling); the running statistics move toward them.
                    let n = &mut norms[i];
                    let (b, _, h, w) = x.dims4()?;
                    let count = (b * h * w) as f64;
                    let (y, stats) =
                        norm_relu_pool(&x, n.gamma.as_tensor(), n.beta.as_tensor(), BN_EPS)?;
                    let m = Tensor::new(stats.mean.as_slice(), &Device::Cpu)?;
                    let v = Tensor::new(stats.var.as_slice(), &Device::Cpu)?;
                    n.mean = ((&n.mean * (1.0 - BN_MOMENTUM))? + (m * BN_MOMENTUM)?)?;
                    n.var = ((&n.var * (1.0 - BN_MOMENTUM))?
                        + (v * (BN_MOMENTUM * count / (count - 1.0).max(1.0)))?)?;
                    y
                }
                Some(norms) => {
                    let n = &norms[i];
                    let scale = n
                        .gamma
                        .as_tensor()
                        .div(&n.var.affine(1.0, BN_EPS)?.sqrt()?)?;
                    let shift = n.beta.as_tensor().sub(&(&n.mean * &scale)?)?;
                    x.broadcast_mul(&scale.reshape((1, c, 1, 1))?)?
                        .broadcast_add(&shift.reshape((1, c, 1, 1))?)?
                        .relu()?
                        .max_pool2d(2)?
                }
                None => x
                    .broadcast_add(&b.as_tensor().reshape((1, c, 1, 1))?)?
                    .relu()?
                    .max_pool2d(2)?,
            };
        }
        x.flatten_from(1)?
            .matmul(&self.head_w.t()?)?
            .broadcast_add(&self.head_b.as_tensor().unsqueeze(0)?)
    }

    /// Logits [N, 12] for a batch [N, 1, S, S], for inference through candle (normalisation
    /// folded first) with candle's own `conv2d`, a reference independent of [`conv3x3`];
    /// [`Net::inference`] is the faster path triage uses.
    pub fn forward(&self, x: &Tensor) -> candle_core::Result<Tensor> {
        if self.norms.is_some() {
            return self.folded()?.forward(x);
        }
        let mut x = x.clone();
        for (w, b) in &self.convs {
            let c = w.dims()[0];
            x = x
                .conv2d(w.as_tensor(), 1, 1, 1, 1)?
                .broadcast_add(&b.as_tensor().reshape((1, c, 1, 1))?)?
                .relu()?
                .max_pool2d(2)?;
        }
        x.flatten_from(1)?
            .matmul(&self.head_w.t()?)?
            .broadcast_add(&self.head_b.as_tensor().unsqueeze(0)?)
    }

    /// The network's shape.
    pub fn arch(&self) -> Arch {
        self.arch
    }

    /// Raw softmax outputs of a [`TRIAGE`] network for standardized inputs (each
    /// [`INPUT_SIDE`] squared): per input, the 4 class then the 8 orientation probabilities.
    pub fn probabilities(&self, inputs: &[Vec<f32>]) -> candle_core::Result<Vec<[f32; 12]>> {
        let mut out = Vec::with_capacity(inputs.len());
        for chunk in inputs.chunks(64) {
            let logits = self.forward(&batch(chunk)?)?;
            let class = candle_nn::ops::softmax(&logits.narrow(1, 0, 4)?, D::Minus1)?;
            let orient = candle_nn::ops::softmax(&logits.narrow(1, 4, 8)?, D::Minus1)?;
            let both = Tensor::cat(&[class, orient], 1)?.to_vec2::<f32>()?;
            for row in both {
                let mut a = [0f32; 12];
                a.copy_from_slice(&row);
                out.push(a);
            }
        }
        Ok(out)
    }
}

/// The image (scaled to fit) in each of the eight orientations of [`Orientation::ALL`], each
/// centred on black and standardized: the first eight views [`judge`] looks at.
pub fn oriented_views(fit: &Grey, side: u32) -> Vec<Vec<f32>> {
    Orientation::ALL
        .into_iter()
        .map(|o| fit.oriented(o).padded(side).standardized())
        .collect()
}

/// All sixteen views an image can be judged on: [`oriented_views`] of the image, then of its
/// inversion.
pub fn views(fit: &Grey, side: u32) -> Vec<Vec<f32>> {
    let mut all = oriented_views(fit, side);
    all.extend(oriented_views(&fit.inverted(), side));
    all
}

/// The mean class probability over the eight orientations at which an image's first eight
/// views settle its class.
pub const SETTLED_CLASS: f32 = 0.9;
/// The lead, in summed log-probability (nats), the best orientation must have over the next
/// for the first eight views to settle it: e^8, about 3,000 to 1.
pub const SETTLED_ORIENTATION: f64 = 8.0;

/// Whether an image's eight oriented views (its [`oriented_views`]' outputs) settle its
/// verdict without its inversion's: one class has a mean probability of [`SETTLED_CLASS`] or
/// more, and the best orientation leads the next by [`SETTLED_ORIENTATION`] or more (or the
/// model predicts none).
pub fn settled(upright: &[Outputs]) -> bool {
    if upright.len() < 8 {
        return false;
    }
    let upright = &upright[..8];
    let confident = mean_class(upright).iter().any(|&p| p >= SETTLED_CLASS);
    confident
        && orientation_scores(upright).is_none_or(|scores| {
            let mut sorted = scores;
            sorted.sort_by(|a, b| b.total_cmp(a));
            sorted[0] - sorted[1] >= SETTLED_ORIENTATION
        })
}

/// The mean class probabilities over `rows`.
fn mean_class(rows: &[Outputs]) -> [f32; 4] {
    let mut m = [0f64; 4];
    for r in rows {
        for (c, v) in m.iter_mut().enumerate() {
            *v += f64::from(r.class[c]);
        }
    }
    m.map(|v| (v / rows.len().max(1) as f64) as f32)
}

/// For each orientation o an image may have, the sum over `views` (view k shows the image
/// in orientation `ALL[k % 8]`) of the log-probability the view gives to what o becomes
/// there (`compose(k, o)`); `None` from a model that does not predict orientation.
fn orientation_scores(views: &[Outputs]) -> Option<[f64; 8]> {
    let table = composition();
    let rows = views
        .iter()
        .map(|v| v.orientation)
        .collect::<Option<Vec<[f32; 8]>>>()?;
    let mut scores = [0f64; 8];
    for (oi, score) in scores.iter_mut().enumerate() {
        *score = rows
            .iter()
            .enumerate()
            .map(|(k, v)| f64::from(v[table[k % 8][oi]]).max(1e-12).ln())
            .sum();
    }
    Some(scores)
}

/// The prediction from an image's views' outputs: its eight oriented views', then, where
/// given, its inversion's eight (see the module's text). When the first eight are
/// [`settled`], the inversion's are not used, given or not, so that deciding over all
/// sixteen gives what [`judge`] gives.
pub fn decide(p: &[Outputs]) -> Prediction {
    let p = if p.len() >= 16 && !settled(&p[..8]) {
        &p[..16]
    } else {
        &p[..p.len().min(8)]
    };
    let shown = mean_class(&p[..p.len().min(8)]);
    let mut ci = argmax(&shown);
    let mut probability = shown[ci];
    if p.len() == 16 && (ci == Class::Frontal.index() || ci == Class::Inverted.index()) {
        let inverted = mean_class(&p[8..16]);
        let (f, i) = (Class::Frontal.index(), Class::Inverted.index());
        let as_frontal = (shown[f] + inverted[i]) / 2.0;
        let as_inverted = (shown[i] + inverted[f]) / 2.0;
        if as_frontal >= as_inverted {
            ci = f;
            probability = as_frontal;
        } else {
            ci = i;
            probability = as_inverted;
        }
    }
    // Orientation o of the image: view k shows it in compose(k, o); the o whose views agree
    // best (the sum of their log-probabilities). The inversion's eight views vote as the
    // image's do: inverting moves no pixel.
    let orientation = orientation_scores(p).map(|scores| {
        let mut best = 0usize;
        for oi in 1..8 {
            if scores[oi] > scores[best] {
                best = oi;
            }
        }
        (
            Orientation::ALL[best],
            p.first()
                .and_then(|r| r.orientation)
                .map_or(0.0, |v| v[best]),
        )
    });
    Prediction {
        class: Class::ALL[ci],
        class_probabilities: shown,
        probability,
        orientation,
    }
}

/// `composition()[k][o]`: the index of [`compose`]`(ALL[k], ALL[o])`.
fn composition() -> &'static [[usize; 8]; 8] {
    static TABLE: std::sync::OnceLock<[[usize; 8]; 8]> = std::sync::OnceLock::new();
    TABLE.get_or_init(|| {
        let mut t = [[0usize; 8]; 8];
        for (k, row) in t.iter_mut().enumerate() {
            for (o, cell) in row.iter_mut().enumerate() {
                *cell = compose(Orientation::ALL[k], Orientation::ALL[o]).index();
            }
        }
        t
    })
}

/// A 3 x 3 convolution, padding 1, stride 1, no bias. x [N, C, H, H], w [O, C, 3, 3] ->
/// [N, O, H, H], with a backward pass of matrix products ([`crate::conv`]).
pub fn conv3x3(x: &Tensor, w: &Tensor) -> candle_core::Result<Tensor> {
    crate::conv::conv3x3(x, w)
}

/// A batch tensor [N, 1, S, S] of square inputs (S from the first input's length).
pub fn batch(inputs: &[Vec<f32>]) -> candle_core::Result<Tensor> {
    let side = inputs.first().map_or(0, |x| x.len().isqrt());
    let flat: Vec<f32> = inputs.iter().flat_map(|v| v.iter().copied()).collect();
    Tensor::from_vec(flat, (inputs.len(), 1, side, side), &Device::Cpu)
}

fn argmax(v: &[f32]) -> usize {
    let mut best = 0;
    for (i, x) in v.iter().enumerate() {
        if *x > v[best] {
            best = i;
        }
    }
    best
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn weights_round_trip_and_the_same_seed_gives_the_same_net() {
        let a = Net::new(3).unwrap();
        let b = Net::new(3).unwrap();
        let c = Net::new(4).unwrap();
        let bytes = a.to_safetensors().unwrap();
        assert_eq!(bytes, b.to_safetensors().unwrap());
        assert_ne!(bytes, c.to_safetensors().unwrap());
        let back = Net::from_safetensors(&bytes).unwrap();
        assert_eq!(back.to_safetensors().unwrap(), bytes);
        let fit = Grey {
            width: 64,
            height: 50,
            pixels: (0..64 * 50).map(|i| (i % 251) as u8).collect(),
        };
        let p1 = judge(&a.inference().unwrap(), std::slice::from_ref(&fit)).unwrap();
        let p2 = judge(&back.inference().unwrap(), std::slice::from_ref(&fit)).unwrap();
        // Folding the normalisation changes rounding only.
        assert_eq!(p1[0].class, p2[0].class);
        for (x, y) in p1[0]
            .class_probabilities
            .iter()
            .zip(p2[0].class_probabilities)
        {
            assert!((x - y).abs() < 1e-4, "{x} {y}");
        }
        let sum: f32 = p1[0].class_probabilities.iter().sum();
        assert!((sum - 1.0).abs() < 1e-5);
        assert!(Net::from_safetensors(b"not safetensors").is_err());
    }

    #[test]
    fn the_fast_forward_pass_agrees_with_candle() {
        let net = Net::new(11).unwrap().folded().unwrap();
        let mut rng = Rng::new(2);
        let inputs: Vec<Vec<f32>> = (0..3)
            .map(|_| {
                (0..64 * 64)
                    .map(|_| rng.unit() as f32 * 2.0 - 1.0)
                    .collect()
            })
            .collect();
        let candle = net.probabilities(&inputs).unwrap();
        let fast = net.inference().unwrap().outputs(&inputs).unwrap();
        for (c, f) in candle.iter().zip(&fast) {
            for (i, v) in f
                .class
                .iter()
                .chain(f.orientation.unwrap().iter())
                .enumerate()
            {
                assert!((c[i] - v).abs() < 1e-5, "{i}: {} {v}", c[i]);
            }
        }
        // The same input alone or in a batch: the same bits.
        let alone = net.inference().unwrap().outputs(&inputs[1..2]).unwrap();
        assert_eq!(alone[0], fast[1]);
    }

    #[test]
    fn orientations_compose_as_images_do() {
        let img = Grey {
            width: 3,
            height: 2,
            pixels: vec![9, 1, 2, 3, 4, 5],
        };
        for k in Orientation::ALL {
            for o in Orientation::ALL {
                assert_eq!(
                    img.oriented(o).oriented(k),
                    img.oriented(compose(k, o)),
                    "{k:?} after {o:?}"
                );
            }
            assert_eq!(compose(k.inverse(), k), Orientation::ALL[0]);
        }
    }

    /// A stand-in model: the same outputs for every view, the number of views asked counted.
    struct Fixed {
        class: [f32; 4],
        orientation: Option<[f32; 8]>,
        asked: std::sync::atomic::AtomicUsize,
    }

    impl Classifier for Fixed {
        fn side(&self) -> u32 {
            INPUT_SIDE
        }
        fn outputs(&self, inputs: &[Vec<f32>]) -> Result<Vec<Outputs>, String> {
            self.asked
                .fetch_add(inputs.len(), std::sync::atomic::Ordering::SeqCst);
            Ok(inputs
                .iter()
                .map(|_| Outputs {
                    class: self.class,
                    orientation: self.orientation,
                })
                .collect())
        }
    }

    #[test]
    fn the_inversion_is_looked_at_only_when_the_eight_orientations_do_not_settle_the_image() {
        let image = Grey {
            width: 90,
            height: 70,
            pixels: (0..90 * 70).map(|i| (i * 7 % 251) as u8).collect(),
        };
        let images = vec![image; 5];
        let ask = |class: [f32; 4], orientation: Option<[f32; 8]>| {
            let model = Fixed {
                class,
                orientation,
                asked: Default::default(),
            };
            let said = judge(&model, &images).unwrap();
            // Deciding over all sixteen views gives what judge gives.
            let all = model.outputs(&views(&images[0], INPUT_SIDE)).unwrap();
            assert_eq!(said[0], decide(&all));
            let asked = model.asked.load(std::sync::atomic::Ordering::SeqCst) - 16;
            (said, asked)
        };
        // A sure class and no orientation: eight views an image.
        let (said, asked) = ask([0.95, 0.02, 0.02, 0.01], None);
        assert_eq!(asked, 5 * 8);
        assert_eq!(said[0].class, Class::Frontal);
        assert_eq!(said[0].probability, 0.95);
        // An unsure class: sixteen, and the image is weighed against its inversion.
        let (said, asked) = ask([0.5, 0.1, 0.1, 0.3], None);
        assert_eq!(asked, 5 * 16);
        assert_eq!(said[0].class, Class::Frontal);
        assert_eq!(said[0].probability, 0.4);
        // A sure class but every view calling itself upright: each orientation of the image
        // gets one view's vote, so none leads; sixteen.
        let mut upright = [0.01f32; 8];
        upright[0] = 0.93;
        let (_, asked) = ask([0.95, 0.02, 0.02, 0.01], Some(upright));
        assert_eq!(asked, 5 * 16);
    }

    /// A stand-in model that finds an image's rotation (a bright bar marks the middle of
    /// its upright top edge) but cannot tell it from its mirror (it gives 0.6 to the
    /// rotation and 0.394 to its mirror partner), and whose left-right network says an
    /// upright image is mirrored when its bright square (the "heart") is on the left.
    struct Sided;

    /// The sums of a standardized square input over the middle of its top, right, bottom
    /// and left edges, and over its left and right halves away from them.
    fn regions(x: &[f32]) -> ([f32; 4], [f32; 2]) {
        let side = x.len().isqrt();
        let (edge, mid) = (side / 8, side * 3 / 8..side * 5 / 8);
        let mut edges = [0f32; 4];
        let mut halves = [0f32; 2];
        for (i, v) in x.iter().enumerate() {
            let (r, c) = (i / side, i % side);
            if r < edge && mid.contains(&c) {
                edges[0] += v;
            } else if c >= side - edge && mid.contains(&r) {
                edges[1] += v;
            } else if r >= side - edge && mid.contains(&c) {
                edges[2] += v;
            } else if c < edge && mid.contains(&r) {
                edges[3] += v;
            } else if (edge..side - edge).contains(&r) && (edge..side - edge).contains(&c) {
                halves[usize::from(c >= side / 2)] += v;
            }
        }
        (edges, halves)
    }

    impl Classifier for Sided {
        fn side(&self) -> u32 {
            INPUT_SIDE
        }
        fn outputs(&self, inputs: &[Vec<f32>]) -> Result<Vec<Outputs>, String> {
            Ok(inputs
                .iter()
                .map(|x| {
                    // The bar on edge r: the upright top turned clockwise r times.
                    let r = argmax(&regions(x).0);
                    let mut orientation = [0.001f32; 8];
                    orientation[r] = 0.6;
                    orientation[compose(Orientation::ALL[r], crate::laterality::MIRROR).index()] =
                        0.394;
                    Outputs {
                        class: [0.97, 0.01, 0.01, 0.01],
                        orientation: Some(orientation),
                    }
                })
                .collect())
        }
        fn laterality_side(&self) -> Option<u32> {
            Some(LATERALITY.side)
        }
        fn mirrored(&self, inputs: &[Vec<f32>]) -> Result<Vec<f32>, String> {
            Ok(inputs
                .iter()
                .map(|x| {
                    assert_eq!(x.len(), (LATERALITY.side * LATERALITY.side) as usize);
                    let (_, halves) = regions(x);
                    if halves[0] > halves[1] { 0.9 } else { 0.2 }
                })
                .collect())
        }
    }

    /// [`Sided`] without its left-right network.
    struct Unsided;

    impl Classifier for Unsided {
        fn side(&self) -> u32 {
            Sided.side()
        }
        fn outputs(&self, inputs: &[Vec<f32>]) -> Result<Vec<Outputs>, String> {
            Sided.outputs(inputs)
        }
    }

    #[test]
    fn the_left_right_network_places_the_side_and_the_triage_network_the_rotation() {
        // Upright: a dim square image, a bright bar in the middle of its top edge and a
        // bright square right of its centre.
        let n = 160usize;
        let mut upright = Grey {
            width: n as u32,
            height: n as u32,
            pixels: vec![40; n * n],
        };
        for y in 0..n {
            for x in 0..n {
                let bar = y < 12 && (70..90).contains(&x);
                let heart = (90..130).contains(&y) && (95..135).contains(&x);
                if bar || heart {
                    upright.pixels[y * n + x] = 220;
                }
            }
        }
        let images: Vec<Grey> = Orientation::ALL
            .iter()
            .map(|&o| upright.oriented(o))
            .collect();
        // The triage network alone: the rotation right, the side a guess (the same for an
        // image and its mirror, so half of the eight wrong).
        let alone = judge(&Unsided, &images).unwrap();
        let mut wrong = 0;
        for (o, p) in Orientation::ALL.iter().zip(&alone) {
            let (said, _) = p.orientation.unwrap();
            assert!(said == *o || said == compose(*o, crate::laterality::MIRROR));
            wrong += usize::from(said != *o);
        }
        assert_eq!(wrong, 4);
        // With its left-right network: each of the eight placed, the probability that of
        // the rotation (0.6 + 0.394) times the side's ((0.9 + 1 - 0.2) / 2 = 0.85).
        let placed = judge(&Sided, &images).unwrap();
        for (o, p) in Orientation::ALL.iter().zip(&placed) {
            let (said, probability) = p.orientation.unwrap();
            assert_eq!(said, *o);
            assert!((probability - 0.994 * 0.85).abs() < 1e-5, "{probability}");
        }
        // Details must match the images one for one.
        assert!(judge_at(&Sided, &images, &images[..3]).is_err());
    }
}
