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
    /// [outputs, channels x side x side of the last map] row-major.
    head_w: Vec<f32>,
    head_b: Vec<f32>,
    side: usize,
}

impl Forward {
    /// From each block's (weight [out, in, 3, 3] flattened, bias), the head's weight
    /// [outputs, the last map's values (channels x side x side, channel-major)] and bias, for
    /// square inputs of `side`.
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

    /// The input side.
    pub fn side(&self) -> u32 {
        self.side as u32
    }

    /// The logits of each input (each `side` x `side`, standardized), in order.
    pub fn logits(&self, inputs: &[Vec<f32>]) -> Vec<Vec<f32>> {
        inputs.par_iter().map(|x| self.one(x)).collect()
    }

    fn one(&self, input: &[f32]) -> Vec<f32> {
        SCRATCH.with(|scratch| {
            let scratch = &mut *scratch.borrow_mut();
            self.one_with(input, scratch)
        })
    }

    fn one_with(&self, input: &[f32], scratch: &mut Scratch) -> Vec<f32> {
        let Scratch {
            x,
            next,
            cols,
            conv,
        } = scratch;
        let mut side = self.side;
        x.clear();
        x.extend_from_slice(input);
        for b in &self.blocks {
            let hw = side * side;
            let cols = grown(cols, b.cin * 9 * hw);
            im2col(x, b.cin, side, cols);
            // Every element of conv is written by gemm (it does not read it).
            let conv = grown(conv, b.cout * hw);
            // conv [cout, hw] = weight [cout, cin*9] x cols [cin*9, hw]
            crate::conv::product(
                b.cout,
                hw,
                b.cin * 9,
                conv,
                &b.weight,
                (b.cin * 9, 1),
                cols,
                (hw, 1),
            );
            bias_relu_pool(conv, &b.bias, side, next);
            std::mem::swap(x, next);
            side /= 2;
        }
        // The head, on the last map flattened (channel-major, as it lies in x).
        let features = self.head_w.len() / self.head_b.len().max(1);
        let flat = &x[..features];
        self.head_b
            .iter()
            .enumerate()
            .map(|(o, b)| {
                let row = &self.head_w[o * features..(o + 1) * features];
                b + row.iter().zip(flat).map(|(w, v)| w * v).sum::<f32>()
            })
            .collect()
    }
}

/// A thread's working buffers, kept from view to view (no allocation or clearing per view:
/// every element a view reads was written for it).
#[derive(Default)]
struct Scratch {
    x: Vec<f32>,
    next: Vec<f32>,
    cols: Vec<f32>,
    conv: Vec<f32>,
}

thread_local! {
    static SCRATCH: std::cell::RefCell<Scratch> = std::cell::RefCell::new(Scratch::default());
}

/// The first `n` elements of `buf`, grown (never shrunk) to hold them.
fn grown(buf: &mut Vec<f32>, n: usize) -> &mut [f32] {
    if buf.len() < n {
        buf.resize(n, 0.0);
    }
    &mut buf[..n]
}

/// The nine shifted copies of `x` [c, side, side] (zero padding 1) as a [c * 9, side * side]
/// matrix, row c * 9 + ky * 3 + kx; every element of `cols` is written. Each copy is one
/// block move of the rows it keeps (a shift by one for kx 0 and 2, the column it wraps into
/// zeroed after), not one move per row.
pub(crate) fn im2col(x: &[f32], c: usize, side: usize, cols: &mut [f32]) {
    let hw = side * side;
    for ch in 0..c {
        let plane = &x[ch * hw..(ch + 1) * hw];
        for ky in 0..3 {
            // Output rows y whose source row y + ky - 1 is inside the image.
            let (y0, y1) = match ky {
                0 => (1.min(side), side),
                1 => (0, side),
                _ => (0, side.saturating_sub(1)),
            };
            for kx in 0..3 {
                let row = &mut cols[(ch * 9 + ky * 3 + kx) * hw..][..hw];
                row[..y0 * side].fill(0.0);
                row[y1 * side..].fill(0.0);
                let dst = &mut row[y0 * side..y1 * side];
                let n = dst.len();
                if n == 0 {
                    continue;
                }
                let src = &plane[(y0 + ky - 1) * side..][..n];
                // dst[y, x] = plane[y + ky - 1, x + kx - 1], zero outside.
                match kx {
                    0 => {
                        dst[1..].copy_from_slice(&src[..n - 1]);
                        for r in dst.chunks_exact_mut(side) {
                            r[0] = 0.0;
                        }
                    }
                    1 => dst.copy_from_slice(src),
                    _ => {
                        dst[..n - 1].copy_from_slice(&src[1..]);
                        for r in dst.chunks_exact_mut(side) {
                            r[side - 1] = 0.0;
                        }
                    }
                }
            }
        }
    }
}

/// Add each channel's bias, ReLU, and 2 x 2 max pooling: [c, side, side] -> [c, side/2,
/// side/2] into `out` (its length set, every element written).
fn bias_relu_pool(x: &[f32], bias: &[f32], side: usize, out: &mut Vec<f32>) {
    let half = side / 2;
    let n = bias.len() * half * half;
    let out = grown(out, n);
    for (c, b) in bias.iter().enumerate() {
        let plane = &x[c * side * side..(c + 1) * side * side];
        let dst = &mut out[c * half * half..(c + 1) * half * half];
        for (y, d) in dst.chunks_exact_mut(half).enumerate() {
            let r0 = &plane[2 * y * side..][..side];
            let r1 = &plane[(2 * y + 1) * side..][..side];
            for ((o, a), c) in d.iter_mut().zip(r0.chunks_exact(2)).zip(r1.chunks_exact(2)) {
                let m = larger(larger(a[0], a[1]), larger(c[0], c[1]));
                // max(relu(v + b)) = relu(max(v) + b)
                *o = larger(m + b, 0.0);
            }
        }
    }
}

/// The larger of two values, for finite ones (the pass sees no NaN: its inputs are
/// standardized pixels and finite weights); a plain comparison the compiler turns into one
/// vector instruction, where `f32::max` must also handle NaN.
#[inline(always)]
fn larger(a: f32, b: f32) -> f32 {
    if a > b { a } else { b }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn im2col_is_the_shifted_copies_with_zero_padding() {
        for side in 1..=9 {
            let c = 2;
            let x: Vec<f32> = (0..c * side * side).map(|i| i as f32 + 1.0).collect();
            // Garbage first: every element must be written.
            let mut cols = vec![f32::NAN; c * 9 * side * side];
            im2col(&x, c, side, &mut cols);
            for ch in 0..c {
                for ky in 0..3 {
                    for kx in 0..3 {
                        for y in 0..side {
                            for xx in 0..side {
                                let (sy, sx) =
                                    (y as isize + ky as isize - 1, xx as isize + kx as isize - 1);
                                let inside = (0..side as isize).contains(&sy)
                                    && (0..side as isize).contains(&sx);
                                let want = if inside {
                                    x[ch * side * side + sy as usize * side + sx as usize]
                                } else {
                                    0.0
                                };
                                let got =
                                    cols[(ch * 9 + ky * 3 + kx) * side * side + y * side + xx];
                                assert_eq!(
                                    got, want,
                                    "side {side} ch {ch} k {ky},{kx} at {y},{xx}"
                                );
                            }
                        }
                    }
                }
            }
        }
    }

    #[test]
    fn pooling_takes_the_largest_of_each_square_after_bias_and_relu() {
        let x = vec![
            1.0, -2.0, 3.0, 0.5, //
            -1.0, 0.0, -4.0, -5.0, //
            -9.0, -8.0, 2.0, 2.5, //
            -7.0, -6.0, 1.0, 0.0,
        ];
        let mut out = vec![f32::NAN; 7];
        bias_relu_pool(&x, &[-1.5], 4, &mut out);
        assert_eq!(&out[..4], &[0.0, 1.5, 0.0, 1.0]);
    }
}
