//! The rest of a training block after its convolution, as one candle operation: batch
//! normalisation by the batch's own statistics, ReLU, and 2 x 2 max pooling.
//!
//! Through candle's element-wise operations this was most of a training step once the
//! convolution had its own operation ([`crate::conv`]): a transposed copy for the
//! statistics, a dozen broadcast passes, and a max-pool gradient built from an upsampled
//! mask. Here the forward pass reads the block's output once for the statistics and once
//! for the pooled result; the backward pass recomputes which pixel won each window and
//! gives the three gradients (input, scale, shift) in two passes:
//! - `z = gamma (x - mean) / sqrt(var + eps) + beta`, `y = max over the window of max(z, 0)`;
//! - the window's gradient goes to its first largest pixel, if that is above zero (as
//!   PyTorch's max pooling does);
//! - `dbeta = sum dz`, `dgamma = sum dz xhat`, and, the statistics being the batch's,
//!   `dx = gamma / sqrt(var + eps) (dz - dbeta / M - xhat dgamma / M)` over the channel's
//!   `M` values.
//!
//! Every sum is taken per channel in a fixed order (in f64), so the result does not depend
//! on the number of threads. Odd rows or columns beyond the last whole window count in the
//! statistics and get no gradient from the pooling, as in candle's `max_pool2d`.

use candle_core::{CpuStorage, CustomOp3, Layout, Shape, Storage, Tensor};
use rayon::prelude::*;

use crate::conv::values;

const NAME: &str = "norm_relu_pool";

/// What a block's normalisation measured of its batch, per channel: the mean and the
/// biased variance (the running statistics follow them).
#[derive(Debug, Clone, PartialEq)]
pub struct Stats {
    pub mean: Vec<f32>,
    pub var: Vec<f32>,
}

/// `x [N, C, H, W]` normalised per channel by the batch's statistics (scale `gamma [C]`,
/// shift `beta [C]`, `eps` added to the variance), through ReLU, max pooled 2 x 2:
/// `[N, C, H / 2, W / 2]`, and the statistics it was normalised by.
pub fn norm_relu_pool(
    x: &Tensor,
    gamma: &Tensor,
    beta: &Tensor,
    eps: f64,
) -> candle_core::Result<(Tensor, Stats)> {
    let (n, c, h, w) = x.dims4()?;
    if gamma.dims() != [c] || beta.dims() != [c] || h < 2 || w < 2 || n == 0 {
        return Err(candle_core::Error::Msg(format!(
            "norm_relu_pool wants maps of at least 2 x 2 and one scale and shift per channel, \
             not {:?}, {:?} and {:?}",
            x.dims(),
            gamma.dims(),
            beta.dims()
        )));
    }
    let x = x.contiguous()?;
    let stats = {
        let (storage, layout) = x.storage_and_layout();
        let Storage::Cpu(cpu) = &*storage else {
            return Err(candle_core::Error::Msg(
                "norm_relu_pool runs on the CPU".into(),
            ));
        };
        batch_stats(values(cpu, layout, NAME)?, n, c, h * w)
    };
    let inv_std = stats
        .var
        .iter()
        .map(|&v| (1.0 / (f64::from(v) + eps).sqrt()) as f32)
        .collect();
    let op = NormReluPool {
        mean: stats.mean.clone(),
        inv_std,
    };
    let y = x.apply_op3(&gamma.contiguous()?, &beta.contiguous()?, op)?;
    Ok((y, stats))
}

/// The per-channel mean and biased variance of `x [n, c, hw]`, each summed in f64 in the
/// order of the values.
fn batch_stats(x: &[f32], n: usize, c: usize, hw: usize) -> Stats {
    let count = (n * hw) as f64;
    let (mean, var) = (0..c)
        .into_par_iter()
        .map(|ch| {
            let planes = || (0..n).map(move |i| &x[(i * c + ch) * hw..][..hw]);
            let mut sum = 0f64;
            for p in planes() {
                sum += p.iter().map(|&v| f64::from(v)).sum::<f64>();
            }
            let mean = sum / count;
            let mut sq = 0f64;
            for p in planes() {
                sq += p
                    .iter()
                    .map(|&v| (f64::from(v) - mean).powi(2))
                    .sum::<f64>();
            }
            (mean as f32, (sq / count) as f32)
        })
        .unzip();
    Stats { mean, var }
}

struct NormReluPool {
    mean: Vec<f32>,
    inv_std: Vec<f32>,
}

/// One channel's plane `[h, w]` normalised by `z = a x + b`: for each 2 x 2 window, the
/// index in the plane of its first largest `z` and that `z`.
fn windows(
    plane: &[f32],
    w: usize,
    (ho, wo): (usize, usize),
    (a, b): (f32, f32),
) -> impl Iterator<Item = (usize, f32)> + '_ {
    (0..ho * wo).map(move |k| {
        let (i, j) = (k / wo, k % wo);
        let top = 2 * i * w + 2 * j;
        let mut best = (top, a * plane[top] + b);
        for at in [top + 1, top + w, top + w + 1] {
            let z = a * plane[at] + b;
            if z > best.1 {
                best = (at, z);
            }
        }
        best
    })
}

impl NormReluPool {
    /// Channel `ch`'s `z = a x + b` (a = gamma / sqrt(var + eps), b = beta - mean a).
    fn affine(&self, ch: usize, gamma: &[f32], beta: &[f32]) -> (f32, f32) {
        let a = gamma[ch] * self.inv_std[ch];
        (a, beta[ch] - self.mean[ch] * a)
    }
}

impl CustomOp3 for NormReluPool {
    fn name(&self) -> &'static str {
        NAME
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
        s3: &CpuStorage,
        l3: &Layout,
    ) -> candle_core::Result<(CpuStorage, Shape)> {
        let (x, gamma, beta) = (
            values(s1, l1, NAME)?,
            values(s2, l2, NAME)?,
            values(s3, l3, NAME)?,
        );
        let (n, c, h, w) = l1.shape().dims4()?;
        let (ho, wo) = (h / 2, w / 2);
        let mut out = vec![0f32; n * c * ho * wo];
        out.par_chunks_mut(ho * wo)
            .zip(x.par_chunks(h * w))
            .enumerate()
            .for_each(|(k, (out, plane))| {
                let ab = self.affine(k % c, gamma, beta);
                for (o, (_, z)) in out.iter_mut().zip(windows(plane, w, (ho, wo), ab)) {
                    *o = z.max(0.0);
                }
            });
        Ok((CpuStorage::F32(out), Shape::from((n, c, ho, wo))))
    }

    fn bwd(
        &self,
        x: &Tensor,
        gamma: &Tensor,
        beta: &Tensor,
        _res: &Tensor,
        grad: &Tensor,
    ) -> candle_core::Result<(Option<Tensor>, Option<Tensor>, Option<Tensor>)> {
        let (n, c, h, w) = x.dims4()?;
        let (ho, wo, hw) = (h / 2, w / 2, h * w);
        let xs = x.flatten_all()?.to_vec1::<f32>()?;
        let gs = grad.contiguous()?.flatten_all()?.to_vec1::<f32>()?;
        let gm = gamma.to_vec1::<f32>()?;
        let bt = beta.to_vec1::<f32>()?;
        // Per channel: sum dz (dbeta) and sum dz xhat (dgamma), over the batch in order.
        let (dbeta, dgamma): (Vec<f64>, Vec<f64>) = (0..c)
            .into_par_iter()
            .map(|ch| {
                let ab = self.affine(ch, &gm, &bt);
                let (mut sum, mut sum_xhat) = (0f64, 0f64);
                for i in 0..n {
                    let k = i * c + ch;
                    let plane = &xs[k * hw..][..hw];
                    let g = &gs[k * ho * wo..][..ho * wo];
                    for ((at, z), &dy) in windows(plane, w, (ho, wo), ab).zip(g) {
                        if z > 0.0 {
                            let xhat = (plane[at] - self.mean[ch]) * self.inv_std[ch];
                            sum += f64::from(dy);
                            sum_xhat += f64::from(dy) * f64::from(xhat);
                        }
                    }
                }
                (sum, sum_xhat)
            })
            .unzip();
        let count = (n * hw) as f64;
        let mut dx = vec![0f32; n * c * hw];
        dx.par_chunks_mut(hw)
            .zip(xs.par_chunks(hw))
            .zip(gs.par_chunks(ho * wo))
            .enumerate()
            .for_each(|(k, ((dx, plane), g))| {
                let ch = k % c;
                let (mean, inv) = (self.mean[ch], self.inv_std[ch]);
                let a = gm[ch] * inv;
                let db = (dbeta[ch] / count) as f32;
                let dg = (dgamma[ch] / count) as f32;
                for (v, &x) in dx.iter_mut().zip(plane) {
                    *v = -a * (db + (x - mean) * inv * dg);
                }
                for ((at, z), &dy) in windows(plane, w, (ho, wo), self.affine(ch, &gm, &bt)).zip(g)
                {
                    if z > 0.0 {
                        dx[at] += a * dy;
                    }
                }
            });
        let to = |v: Vec<f64>| -> candle_core::Result<Tensor> {
            Tensor::from_vec(
                v.into_iter().map(|s| s as f32).collect::<Vec<f32>>(),
                c,
                x.device(),
            )
        };
        Ok((
            Some(Tensor::from_vec(dx, x.dims(), x.device())?),
            Some(to(dgamma)?),
            Some(to(dbeta)?),
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::Rng;
    use candle_core::{Device, Var};

    fn random(shape: &[usize], rng: &mut Rng) -> Tensor {
        let n: usize = shape.iter().product();
        let v: Vec<f32> = (0..n).map(|_| rng.uniform(-2.0, 2.0) as f32).collect();
        Tensor::from_vec(v, shape, &Device::Cpu).unwrap()
    }

    /// The same block through candle's own operations, as `Net::forward_t` took it before
    /// (but for the pooling, [`pool`]).
    fn reference(x: &Tensor, gamma: &Tensor, beta: &Tensor) -> Tensor {
        let c = x.dims()[1];
        let flat = x.transpose(0, 1).unwrap().flatten_from(1).unwrap();
        let mean = flat.mean_keepdim(1).unwrap();
        let var = flat
            .broadcast_sub(&mean)
            .unwrap()
            .sqr()
            .unwrap()
            .mean_keepdim(1)
            .unwrap();
        let scale = gamma
            .div(
                &var.flatten_all()
                    .unwrap()
                    .affine(1.0, 1e-5)
                    .unwrap()
                    .sqrt()
                    .unwrap(),
            )
            .unwrap();
        let shift = beta
            .sub(&(mean.flatten_all().unwrap() * &scale).unwrap())
            .unwrap();
        let z = x
            .broadcast_mul(&scale.reshape((1, c, 1, 1)).unwrap())
            .unwrap()
            .broadcast_add(&shift.reshape((1, c, 1, 1)).unwrap())
            .unwrap()
            .relu()
            .unwrap();
        pool(&z)
    }

    /// 2 x 2 max pooling by candle's `max` over each window's four values. Not candle's
    /// `max_pool2d`: its gradient multiplies by the window's share of tied maxima instead of
    /// dividing by their number, so a window with one maximum passes on a quarter of its
    /// gradient (candle-core 0.10.2, backprop.rs).
    fn pool(x: &Tensor) -> Tensor {
        let (n, c, h, w) = x.dims4().unwrap();
        let (ho, wo) = (h / 2, w / 2);
        x.narrow(2, 0, 2 * ho)
            .unwrap()
            .narrow(3, 0, 2 * wo)
            .unwrap()
            .reshape((n, c, ho, 2, wo, 2))
            .unwrap()
            .permute((0, 1, 2, 4, 3, 5))
            .unwrap()
            .reshape((n, c, ho, wo, 4))
            .unwrap()
            .max(4)
            .unwrap()
    }

    fn close(a: &Tensor, b: &Tensor, tol: f32, what: &str) {
        let a = a.flatten_all().unwrap().to_vec1::<f32>().unwrap();
        let b = b.flatten_all().unwrap().to_vec1::<f32>().unwrap();
        assert_eq!(a.len(), b.len(), "{what}");
        let scale = b.iter().fold(1f32, |m, v| m.max(v.abs()));
        for (i, (x, y)) in a.iter().zip(&b).enumerate() {
            assert!((x - y).abs() <= tol * scale, "{what}[{i}]: {x} against {y}");
        }
    }

    #[test]
    fn the_block_and_its_gradients_agree_with_candles() {
        let mut rng = Rng::new(3);
        for shape in [[2, 3, 4, 4], [3, 2, 6, 5], [1, 4, 2, 2], [4, 1, 8, 8]] {
            let c = shape[1];
            let x = Var::from_tensor(&random(&shape, &mut rng)).unwrap();
            let gamma = Var::from_tensor(&random(&[c], &mut rng)).unwrap();
            let beta = Var::from_tensor(&random(&[c], &mut rng)).unwrap();
            let (y, stats) = norm_relu_pool(&x, &gamma, &beta, 1e-5).unwrap();
            let r = reference(&x, &gamma, &beta);
            close(&y, &r, 1e-5, "values");
            // The statistics the running ones follow: candle's mean and biased variance.
            let flat = x.transpose(0, 1).unwrap().flatten_from(1).unwrap();
            let mean = flat.mean_keepdim(1).unwrap();
            let var = flat
                .broadcast_sub(&mean)
                .unwrap()
                .sqr()
                .unwrap()
                .mean_keepdim(1);
            let of = |v: &[f32]| Tensor::new(v, &Device::Cpu).unwrap();
            close(&of(&stats.mean), &mean.flatten_all().unwrap(), 1e-5, "mean");
            close(
                &of(&stats.var),
                &var.unwrap().flatten_all().unwrap(),
                1e-5,
                "var",
            );
            // A loss that weighs each output differently, so that every path is exercised.
            let weights = random(y.dims(), &mut rng);
            let grads = (y * &weights)
                .unwrap()
                .sum_all()
                .unwrap()
                .backward()
                .unwrap();
            let expect = (r * &weights)
                .unwrap()
                .sum_all()
                .unwrap()
                .backward()
                .unwrap();
            for (v, what) in [(&x, "dx"), (&gamma, "dgamma"), (&beta, "dbeta")] {
                close(
                    grads.get(v).unwrap(),
                    expect.get(v).unwrap(),
                    1e-4,
                    &format!("{what} of {shape:?}"),
                );
            }
        }
    }

    #[test]
    fn the_result_does_not_depend_on_the_number_of_threads() {
        let mut rng = Rng::new(8);
        let x = Var::from_tensor(&random(&[5, 6, 8, 8], &mut rng)).unwrap();
        let gamma = random(&[6], &mut rng);
        let beta = random(&[6], &mut rng);
        let run = |threads: usize| {
            let pool = rayon::ThreadPoolBuilder::new()
                .num_threads(threads)
                .build()
                .unwrap();
            pool.install(|| {
                let (y, stats) = norm_relu_pool(&x, &gamma, &beta, 1e-5).unwrap();
                let g = y.sqr().unwrap().sum_all().unwrap().backward().unwrap();
                let dx = g.get(&x).unwrap().flatten_all().unwrap();
                (
                    y.flatten_all().unwrap().to_vec1::<f32>().unwrap(),
                    dx.to_vec1::<f32>().unwrap(),
                    stats,
                )
            })
        };
        let one = run(1);
        assert_eq!(one, run(2));
        assert_eq!(one, run(3));
    }

    #[test]
    fn bad_shapes_are_an_error_not_a_panic() {
        let mut rng = Rng::new(1);
        let g = random(&[2], &mut rng);
        for shape in [&[1, 2, 1, 4][..], &[0, 2, 4, 4], &[1, 3, 4, 4], &[2, 4, 4]] {
            let x = random(shape, &mut rng);
            assert!(norm_relu_pool(&x, &g, &g, 1e-5).is_err(), "{shape:?}");
        }
    }
}
