//! The network's forward pass for inference, without candle: each view computed on its own
//! (so the result does not depend on the batch or on the number of threads), convolutions
//! as one matrix product each (im2col, then `gemm` on one thread), the bias, ReLU and 2 x 2
//! max pooling in one pass, views spread over the cores with rayon. The same weights as
//! [`crate::model::Net`] (its normalisation folded); `model::tests` checks both agree.

use rayon::prelude::*;

/// One convolution block: weights [out, in * 9] row-major, bias [out].
struct Block {
    weight: Vec<f32>,
    bias: Vec<f32>,
    cin: usize,
    cout: usize,
}

/// The network's weights, laid out for [`Forward::logits`].
pub struct Forward {
    blocks: Vec<Block>,
    /// [outputs, channels] row-major.
    head_w: Vec<f32>,
    head_b: Vec<f32>,
    side: usize,
}

impl Forward {
    /// From each block's (weight [out, in, 3, 3] flattened, bias), the head's weight
    /// [outputs, channels] and bias, for square inputs of `side`.
    pub fn new(
        blocks: Vec<(Vec<f32>, Vec<f32>)>,
        head_w: Vec<f32>,
        head_b: Vec<f32>,
        side: usize,
    ) -> Forward {
        let mut cin = 1;
        let blocks = blocks
            .into_iter()
            .map(|(weight, bias)| {
                let cout = bias.len();
                let b = Block {
                    weight,
                    bias,
                    cin,
                    cout,
                };
                cin = cout;
                b
            })
            .collect();
        Forward {
            blocks,
            head_w,
            head_b,
            side,
        }
    }

    /// The logits of each input (each `side` x `side`, standardized), in order.
    pub fn logits(&self, inputs: &[Vec<f32>]) -> Vec<Vec<f32>> {
        inputs.par_iter().map(|x| self.one(x)).collect()
    }

    fn one(&self, input: &[f32]) -> Vec<f32> {
        let mut side = self.side;
        let mut x = input.to_vec();
        let mut cols = Vec::new();
        let mut conv = Vec::new();
        for b in &self.blocks {
            let hw = side * side;
            im2col(&x, b.cin, side, &mut cols);
            conv.clear();
            conv.resize(b.cout * hw, 0.0);
            // conv [cout, hw] = weight [cout, cin*9] x cols [cin*9, hw]
            // SAFETY: the three buffers are exactly m x k, k x n and m x n with the strides
            // given, and do not overlap.
            unsafe {
                gemm::gemm(
                    b.cout,
                    hw,
                    b.cin * 9,
                    conv.as_mut_ptr(),
                    1,
                    hw as isize,
                    false,
                    b.weight.as_ptr(),
                    1,
                    (b.cin * 9) as isize,
                    cols.as_ptr(),
                    1,
                    hw as isize,
                    0.0,
                    1.0,
                    false,
                    false,
                    false,
                    gemm::Parallelism::None,
                );
            }
            x = bias_relu_pool(&conv, &b.bias, side);
            side /= 2;
        }
        // Global mean per channel, then the head.
        let channels = self.blocks.last().map_or(1, |b| b.cout);
        let hw = (side * side).max(1);
        let pooled: Vec<f32> = (0..channels)
            .map(|c| x[c * hw..(c + 1) * hw].iter().sum::<f32>() / hw as f32)
            .collect();
        self.head_b
            .iter()
            .enumerate()
            .map(|(o, b)| {
                let row = &self.head_w[o * channels..(o + 1) * channels];
                b + row.iter().zip(&pooled).map(|(w, p)| w * p).sum::<f32>()
            })
            .collect()
    }
}

/// The nine shifted copies of `x` [c, side, side] (zero padding 1) as a [c * 9, side * side]
/// matrix, row c * 9 + ky * 3 + kx.
fn im2col(x: &[f32], c: usize, side: usize, cols: &mut Vec<f32>) {
    let hw = side * side;
    cols.clear();
    cols.resize(c * 9 * hw, 0.0);
    for ch in 0..c {
        let plane = &x[ch * hw..(ch + 1) * hw];
        for ky in 0..3 {
            for kx in 0..3 {
                let row = &mut cols[(ch * 9 + ky * 3 + kx) * hw..][..hw];
                for y in 0..side {
                    let sy = y as isize + ky as isize - 1;
                    if sy < 0 || sy >= side as isize {
                        continue;
                    }
                    let src = &plane[sy as usize * side..][..side];
                    let dst = &mut row[y * side..][..side];
                    // dst[x] = src[x + kx - 1]
                    match kx {
                        0 => dst[1..].copy_from_slice(&src[..side - 1]),
                        1 => dst.copy_from_slice(src),
                        _ => dst[..side - 1].copy_from_slice(&src[1..]),
                    }
                }
            }
        }
    }
}

/// Add each channel's bias, ReLU, and 2 x 2 max pooling: [c, side, side] -> [c, side/2,
/// side/2].
fn bias_relu_pool(x: &[f32], bias: &[f32], side: usize) -> Vec<f32> {
    let half = side / 2;
    let mut out = vec![0f32; bias.len() * half * half];
    for (c, b) in bias.iter().enumerate() {
        let plane = &x[c * side * side..(c + 1) * side * side];
        let dst = &mut out[c * half * half..(c + 1) * half * half];
        for y in 0..half {
            let r0 = &plane[2 * y * side..][..side];
            let r1 = &plane[(2 * y + 1) * side..][..side];
            for xx in 0..half {
                let m = r0[2 * xx]
                    .max(r0[2 * xx + 1])
                    .max(r1[2 * xx])
                    .max(r1[2 * xx + 1]);
                // max(relu(v + b)) = relu(max(v) + b)
                dst[y * half + xx] = (m + b).max(0.0);
            }
        }
    }
    out
}
