//! The 3 x 3 convolution (padding 1, stride 1, no bias) the networks train with: a candle
//! operation whose forward and backward passes are each one matrix product per image.
//!
//! candle's own `conv2d` takes its input's gradient through `conv_transpose2d`, which on the
//! CPU is a loop of scalar products over every pixel, channel and tap; it was most of a
//! training step. Here, for each image of the batch:
//! - forward: `out [O, HW] = w [O, C*9] x cols [C*9, HW]`, `cols` the input's nine shifted
//!   copies ([`crate::infer::im2col`], as inference builds them);
//! - the weights' gradient: `g [O, HW] x cols^T [HW, C*9]`, the images' products summed in
//!   batch order;
//! - the input's gradient: `w^T [C*9, O] x g [O, HW]`, folded back onto the image by
//!   [`col2im`] (the adjoint of `im2col`), skipped where the input needs none (the batch of
//!   images itself).
//!
//! Images are spread over the cores with rayon, each product on one thread, and every sum
//! is taken in a fixed order: the result does not depend on the number of threads.

use candle_core::{CpuStorage, CustomOp2, Layout, Shape, Tensor};
use rayon::prelude::*;

use crate::infer::im2col;

/// `x [N, C, H, H]` convolved with `w [O, C, 3, 3]` (padding 1, stride 1): `[N, O, H, H]`.
pub fn conv3x3(x: &Tensor, w: &Tensor) -> candle_core::Result<Tensor> {
    let (_, c, h, wd) = x.dims4()?;
    let (_, wc, kh, kw) = w.dims4()?;
    if h != wd || wc != c || kh != 3 || kw != 3 {
        return Err(candle_core::Error::Msg(format!(
            "conv3x3 wants square maps and 3 x 3 weights of the input's channels, not {:?} and {:?}",
            x.dims(),
            w.dims()
        )));
    }
    x.contiguous()?.apply_op2(&w.contiguous()?, Conv3x3)
}

struct Conv3x3;

/// The f32 values of a contiguous tensor's storage (an error naming the operation `op`
/// otherwise); [`crate::norm`] uses it too.
pub(crate) fn values<'a>(
    s: &'a CpuStorage,
    l: &Layout,
    op: &str,
) -> candle_core::Result<&'a [f32]> {
    let (start, end) = l
        .contiguous_offsets()
        .ok_or_else(|| candle_core::Error::Msg(format!("{op} wants contiguous tensors")))?;
    Ok(&s.as_slice::<f32>()?[start..end])
}

/// `dst [m, n] = a [m, k] x b [k, n]` by `gemm` on one thread, `a` and `b` each given as
/// (slice, (row stride, column stride)), `dst` row-major; every element of `dst` is written
/// (it is not read). Inference's convolutions ([`crate::infer`]) use it too.
#[allow(clippy::too_many_arguments)]
pub(crate) fn product(
    m: usize,
    n: usize,
    k: usize,
    dst: &mut [f32],
    a: &[f32],
    (a_rs, a_cs): (usize, usize),
    b: &[f32],
    (b_rs, b_cs): (usize, usize),
) {
    assert!(dst.len() >= m * n);
    assert!(m == 0 || k == 0 || a.len() > (m - 1) * a_rs + (k - 1) * a_cs);
    assert!(n == 0 || k == 0 || b.len() > (k - 1) * b_rs + (n - 1) * b_cs);
    // SAFETY: the asserts above: dst is m x n row-major, a and b hold every element their
    // strides reach; the three do not overlap (dst is a unique borrow).
    unsafe {
        gemm::gemm(
            m,
            n,
            k,
            dst.as_mut_ptr(),
            1,
            n as isize,
            false,
            a.as_ptr(),
            a_cs as isize,
            a_rs as isize,
            b.as_ptr(),
            b_cs as isize,
            b_rs as isize,
            0.0,
            1.0,
            false,
            false,
            false,
            gemm::Parallelism::None,
        );
    }
}

/// The adjoint of [`im2col`]: each row `c * 9 + ky * 3 + kx` of `cols` [c * 9, side * side]
/// added back at the shift it was taken from, into `dx` [c, side * side] (overwritten).
pub(crate) fn col2im(cols: &[f32], c: usize, side: usize, dx: &mut [f32]) {
    let hw = side * side;
    dx[..c * hw].fill(0.0);
    if side == 0 {
        return;
    }
    for ch in 0..c {
        let plane = &mut dx[ch * hw..(ch + 1) * hw];
        for ky in 0..3 {
            for kx in 0..3 {
                let row = &cols[(ch * 9 + ky * 3 + kx) * hw..][..hw];
                // row[y, x] was plane[y + ky - 1, x + kx - 1].
                for y in 0..side {
                    let sy = y + ky;
                    if sy < 1 || sy > side {
                        continue;
                    }
                    let src = &row[y * side..(y + 1) * side];
                    let dst = &mut plane[(sy - 1) * side..sy * side];
                    match kx {
                        0 => add(&mut dst[..side - 1], &src[1..]),
                        1 => add(dst, src),
                        _ => add(&mut dst[1..], &src[..side - 1]),
                    }
                }
            }
        }
    }
}

fn add(dst: &mut [f32], src: &[f32]) {
    for (d, s) in dst.iter_mut().zip(src) {
        *d += s;
    }
}

/// The shapes of a convolution's operands: (N, C, side, O).
fn shapes(x: &[usize], w: &[usize]) -> (usize, usize, usize, usize) {
    (x[0], x[1], x[2], w[0])
}

impl CustomOp2 for Conv3x3 {
    fn name(&self) -> &'static str {
        "conv3x3"
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
    ) -> candle_core::Result<(CpuStorage, Shape)> {
        let (x, w) = (values(s1, l1, "conv3x3")?, values(s2, l2, "conv3x3")?);
        let (n, c, side, o) = shapes(l1.dims(), l2.dims());
        let hw = side * side;
        let mut out = vec![0f32; n * o * hw];
        out.par_chunks_mut(o * hw.max(1))
            .zip(x.par_chunks(c * hw.max(1)))
            .for_each(|(out, x)| {
                let mut cols = vec![0f32; c * 9 * hw];
                im2col(x, c, side, &mut cols);
                product(o, hw, c * 9, out, w, (c * 9, 1), &cols, (hw, 1));
            });
        Ok((CpuStorage::F32(out), Shape::from((n, o, side, side))))
    }

    fn bwd(
        &self,
        x: &Tensor,
        w: &Tensor,
        _res: &Tensor,
        grad: &Tensor,
    ) -> candle_core::Result<(Option<Tensor>, Option<Tensor>)> {
        let (n, c, side, o) = shapes(x.dims(), w.dims());
        let hw = side * side;
        let xs = x.flatten_all()?.to_vec1::<f32>()?;
        let ws = w.flatten_all()?.to_vec1::<f32>()?;
        let gs = grad.contiguous()?.flatten_all()?.to_vec1::<f32>()?;
        let k = c * 9;
        let want_dx = x.track_op();
        // Per image: its share of the weights' gradient, and its input's gradient.
        let parts: Vec<(Vec<f32>, Vec<f32>)> = xs
            .par_chunks(c * hw.max(1))
            .zip(gs.par_chunks(o * hw.max(1)))
            .map(|(x, g)| {
                let mut cols = vec![0f32; k * hw];
                im2col(x, c, side, &mut cols);
                let mut dw = vec![0f32; o * k];
                // dw [O, C*9] = g [O, HW] x cols^T [HW, C*9]
                product(o, k, hw, &mut dw, g, (hw, 1), &cols, (1, hw));
                let mut dx = Vec::new();
                if want_dx {
                    // dcols [C*9, HW] = w^T [C*9, O] x g [O, HW]
                    product(k, hw, o, &mut cols, &ws, (1, k), g, (hw, 1));
                    dx = vec![0f32; c * hw];
                    col2im(&cols, c, side, &mut dx);
                }
                (dw, dx)
            })
            .collect();
        let mut dw = vec![0f32; o * k];
        for (part, _) in &parts {
            add(&mut dw, part);
        }
        let dw = Tensor::from_vec(dw, w.dims(), w.device())?;
        let dx = if want_dx {
            let mut dx = Vec::with_capacity(n * c * hw);
            for (_, part) in &parts {
                dx.extend_from_slice(part);
            }
            Some(Tensor::from_vec(dx, x.dims(), x.device())?)
        } else {
            None
        };
        Ok((dx, Some(dw)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::Rng;
    use candle_core::{Device, Var};

    fn random(shape: &[usize], rng: &mut Rng) -> Vec<f32> {
        (0..shape.iter().product::<usize>())
            .map(|_| rng.uniform(-1.0, 1.0) as f32)
            .collect()
    }

    fn close(a: &Tensor, b: &Tensor, what: &str) {
        let a = a.flatten_all().unwrap().to_vec1::<f32>().unwrap();
        let b = b.flatten_all().unwrap().to_vec1::<f32>().unwrap();
        assert_eq!(a.len(), b.len(), "{what}");
        for (i, (x, y)) in a.iter().zip(&b).enumerate() {
            assert!(
                (x - y).abs() <= 1e-4 * (1.0 + y.abs()),
                "{what}[{i}]: {x} against candle's {y}"
            );
        }
    }

    /// The values and both gradients agree with candle's `conv2d` and its backward pass,
    /// for several shapes, down to a 1 x 1 map.
    #[test]
    fn the_convolution_and_its_gradients_agree_with_candles() {
        let dev = Device::Cpu;
        let mut rng = Rng::new(7);
        for (n, c, side, o) in [(3, 1, 8, 4), (2, 3, 5, 2), (4, 8, 16, 16), (2, 2, 1, 3)] {
            let xv = Var::from_vec(
                random(&[n, c, side, side], &mut rng),
                (n, c, side, side),
                &dev,
            )
            .unwrap();
            let wv = Var::from_vec(random(&[o, c, 3, 3], &mut rng), (o, c, 3, 3), &dev).unwrap();
            let up = Tensor::from_vec(
                random(&[n, o, side, side], &mut rng),
                (n, o, side, side),
                &dev,
            )
            .unwrap();
            let ours = conv3x3(xv.as_tensor(), wv.as_tensor()).unwrap();
            let theirs = xv.as_tensor().conv2d(wv.as_tensor(), 1, 1, 1, 1).unwrap();
            let what = format!("{n}x{c}x{side} -> {o}");
            close(&ours, &theirs, &format!("{what} values"));
            let g1 = (ours * &up).unwrap().sum_all().unwrap().backward().unwrap();
            let g2 = (theirs * &up)
                .unwrap()
                .sum_all()
                .unwrap()
                .backward()
                .unwrap();
            for (v, name) in [(&xv, "input"), (&wv, "weights")] {
                close(
                    g1.get(v.as_tensor()).unwrap(),
                    g2.get(v.as_tensor()).unwrap(),
                    &format!("{what} {name}' gradient"),
                );
            }
        }
    }

    /// The input's gradient is not computed for a tensor that is not being learned.
    #[test]
    fn a_constant_input_gets_no_gradient() {
        let dev = Device::Cpu;
        let x = Tensor::ones((1, 1, 4, 4), candle_core::DType::F32, &dev).unwrap();
        let w = Var::ones((2, 1, 3, 3), candle_core::DType::F32, &dev).unwrap();
        let g = conv3x3(&x, w.as_tensor())
            .unwrap()
            .sum_all()
            .unwrap()
            .backward()
            .unwrap();
        assert!(g.get(&x).is_none());
        // Each weight tap sees the 16 pixels' ones that its shift keeps inside: 9 to 16.
        let dw = g.get(w.as_tensor()).unwrap().flatten_all().unwrap();
        let dw = dw.to_vec1::<f32>().unwrap();
        assert_eq!(&dw[..9], &[9., 12., 9., 12., 16., 12., 9., 12., 9.]);
    }

    /// The values and both gradients are the same bits on one thread as on several.
    #[test]
    fn the_result_does_not_depend_on_the_number_of_threads() {
        let run = |threads: usize| {
            let pool = rayon::ThreadPoolBuilder::new()
                .num_threads(threads)
                .build()
                .unwrap();
            pool.install(|| {
                let dev = Device::Cpu;
                let mut rng = Rng::new(11);
                let (n, c, side, o) = (6, 4, 12, 8);
                let x = Var::from_vec(
                    random(&[n, c, side, side], &mut rng),
                    (n, c, side, side),
                    &dev,
                )
                .unwrap();
                let w = Var::from_vec(random(&[o, c, 3, 3], &mut rng), (o, c, 3, 3), &dev).unwrap();
                let y = conv3x3(x.as_tensor(), w.as_tensor()).unwrap();
                let g = y.sqr().unwrap().sum_all().unwrap().backward().unwrap();
                [
                    y,
                    g.get(x.as_tensor()).unwrap().clone(),
                    g.get(w.as_tensor()).unwrap().clone(),
                ]
                .map(|t| t.flatten_all().unwrap().to_vec1::<f32>().unwrap())
            })
        };
        let one = run(1);
        for threads in [2, 3] {
            let many = run(threads);
            for (a, b) in one.iter().zip(&many) {
                assert!(
                    a.iter().zip(b).all(|(x, y)| x.to_bits() == y.to_bits()),
                    "{threads} threads"
                );
            }
        }
    }

    #[test]
    fn bad_shapes_are_an_error_not_a_panic() {
        let dev = Device::Cpu;
        let x = Tensor::zeros((1, 2, 4, 5), candle_core::DType::F32, &dev).unwrap();
        let w = Tensor::zeros((2, 2, 3, 3), candle_core::DType::F32, &dev).unwrap();
        assert!(conv3x3(&x, &w).is_err());
        let x = Tensor::zeros((1, 1, 4, 4), candle_core::DType::F32, &dev).unwrap();
        assert!(conv3x3(&x, &w).is_err());
    }
}
