//! The triage network: a small CNN on a 64 x 64 grey image ([`INPUT_SIDE`], the image as
//! displayed, letterboxed and standardized by [`crate::preprocess`]) with two heads, the
//! class ([`Class`]: frontal, lateral, other, inverted) and the orientation (the eight of
//! [`Orientation::ALL`]). Trained and run with candle on the CPU; its weights are a
//! safetensors file small enough to ship in the binary.
//!
//! Layers: four blocks of 3 x 3 convolution (padding 1) + ReLU + 2 x 2 max pooling, with
//! 16, 32, 64 and 64 channels (64 -> 32 -> 16 -> 8 -> 4 pixels a side), a global mean, and a
//! linear layer to 12 outputs (4 class logits, then 8 orientation logits).
//!
//! Initialisation is seeded (He-uniform from our own xorshift generator, not candle's
//! unseeded one), so that `radlab triage train --seed S` gives the same weights on the same
//! data and machine.

use candle_core::{DType, Device, Tensor, Var};

use crate::dataset::Class;
use crate::preprocess::{Grey, Orientation};

/// The network's input side, in pixels.
pub const INPUT_SIDE: u32 = 64;
const CHANNELS: [usize; 5] = [1, 16, 32, 64, 64];
const OUTPUTS: usize = 12;

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

    /// Uniform in 0..n.
    pub fn below(&mut self, n: usize) -> usize {
        (self.unit() * n as f64) as usize % n.max(1)
    }
}

/// The network's parameters.
pub struct Net {
    /// (weight [out, in, 3, 3], bias [out]) per block.
    convs: Vec<(Var, Var)>,
    head_w: Var,
    head_b: Var,
}

/// What the network says of one image.
#[derive(Debug, Clone, PartialEq)]
pub struct Prediction {
    pub class: Class,
    /// Softmax probability of each class, in [`Class::ALL`] order.
    pub class_probabilities: [f32; 4],
    pub orientation: Orientation,
    pub orientation_probability: f32,
}

impl Net {
    /// Fresh parameters from `seed`.
    pub fn new(seed: u64) -> candle_core::Result<Net> {
        let mut rng = Rng::new(seed);
        let dev = Device::Cpu;
        let mut uniform = |shape: &[usize], fan_in: usize| {
            let bound = (6.0 / fan_in as f64).sqrt();
            let n: usize = shape.iter().product();
            let values: Vec<f32> = (0..n)
                .map(|_| ((rng.unit() * 2.0 - 1.0) * bound) as f32)
                .collect();
            Tensor::from_vec(values, shape, &dev).and_then(|t| Var::from_tensor(&t))
        };
        let mut convs = Vec::new();
        for w in CHANNELS.windows(2) {
            let (cin, cout) = (w[0], w[1]);
            let weight = uniform(&[cout, cin, 3, 3], cin * 9)?;
            let bias = Var::zeros(cout, DType::F32, &dev)?;
            convs.push((weight, bias));
        }
        let last = CHANNELS[CHANNELS.len() - 1];
        let head_w = uniform(&[OUTPUTS, last], last)?;
        let head_b = Var::zeros(OUTPUTS, DType::F32, &dev)?;
        Ok(Net {
            convs,
            head_w,
            head_b,
        })
    }

    /// Every parameter, for the optimiser.
    pub fn vars(&self) -> Vec<Var> {
        let mut v: Vec<Var> = Vec::new();
        for (w, b) in &self.convs {
            v.push(w.clone());
            v.push(b.clone());
        }
        v.push(self.head_w.clone());
        v.push(self.head_b.clone());
        v
    }

    fn named(&self) -> Vec<(String, &Var)> {
        let mut v = Vec::new();
        for (i, (w, b)) in self.convs.iter().enumerate() {
            v.push((format!("conv{i}.weight"), w));
            v.push((format!("conv{i}.bias"), b));
        }
        v.push(("head.weight".into(), &self.head_w));
        v.push(("head.bias".into(), &self.head_b));
        v
    }

    /// The weights as a safetensors file.
    pub fn to_safetensors(&self) -> candle_core::Result<Vec<u8>> {
        let named: Vec<(String, Tensor)> = self
            .named()
            .into_iter()
            .map(|(k, v)| (k, v.as_tensor().clone()))
            .collect();
        safetensors::serialize(named, None).map_err(candle_core::Error::wrap)
    }

    /// Weights read from a safetensors file's bytes; every tensor must be there with its
    /// shape.
    pub fn from_safetensors(bytes: &[u8]) -> candle_core::Result<Net> {
        let tensors = candle_core::safetensors::load_buffer(bytes, &Device::Cpu)?;
        let net = Net::new(0)?;
        for (name, var) in net.named() {
            let t = tensors
                .get(&name)
                .ok_or_else(|| candle_core::Error::Msg(format!("no tensor {name}")))?;
            if t.dims() != var.dims() {
                return Err(candle_core::Error::Msg(format!(
                    "tensor {name} is {:?}, expected {:?}",
                    t.dims(),
                    var.dims()
                )));
            }
            var.set(&t.to_dtype(DType::F32)?)?;
        }
        Ok(net)
    }

    /// Logits [N, 12] for a batch [N, 1, S, S].
    pub fn forward(&self, x: &Tensor) -> candle_core::Result<Tensor> {
        let mut x = x.clone();
        for (w, b) in &self.convs {
            let c = w.dims()[0];
            x = x
                .conv2d(w, 1, 1, 1, 1)?
                .broadcast_add(&b.reshape((1, c, 1, 1))?)?
                .relu()?
                .max_pool2d(2)?;
        }
        let pooled = x.flatten_from(2)?.mean(2)?;
        pooled
            .matmul(&self.head_w.t()?)?
            .broadcast_add(&self.head_b.as_tensor().unsqueeze(0)?)
    }

    /// What the network says of each image (each [`INPUT_SIDE`] square and standardized).
    pub fn predict(&self, inputs: &[Vec<f32>]) -> candle_core::Result<Vec<Prediction>> {
        let mut out = Vec::with_capacity(inputs.len());
        for chunk in inputs.chunks(64) {
            let x = batch(chunk)?;
            let logits = self.forward(&x)?;
            let class = candle_nn::ops::softmax(&logits.narrow(1, 0, 4)?, 1)?.to_vec2::<f32>()?;
            let orient = candle_nn::ops::softmax(&logits.narrow(1, 4, 8)?, 1)?.to_vec2::<f32>()?;
            for (c, o) in class.into_iter().zip(orient) {
                let ci = argmax(&c);
                let oi = argmax(&o);
                out.push(Prediction {
                    class: Class::ALL[ci],
                    class_probabilities: [c[0], c[1], c[2], c[3]],
                    orientation: Orientation::ALL[oi],
                    orientation_probability: o[oi],
                });
            }
        }
        Ok(out)
    }
}

/// The network's input for an image: letterboxed to [`INPUT_SIDE`], standardized.
pub fn input_of(grey: &Grey) -> Vec<f32> {
    grey.letterboxed(INPUT_SIDE).standardized()
}

/// A batch tensor [N, 1, S, S] of inputs.
pub fn batch(inputs: &[Vec<f32>]) -> candle_core::Result<Tensor> {
    let side = INPUT_SIDE as usize;
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
        let inputs = vec![vec![0.5f32; 64 * 64], vec![-0.25f32; 64 * 64]];
        let p1 = a.predict(&inputs).unwrap();
        let p2 = back.predict(&inputs).unwrap();
        assert_eq!(p1, p2);
        let sum: f32 = p1[0].class_probabilities.iter().sum();
        assert!((sum - 1.0).abs() < 1e-5);
        assert!(Net::from_safetensors(b"not safetensors").is_err());
    }
}
