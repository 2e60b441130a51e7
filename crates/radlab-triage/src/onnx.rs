//! A site's own triage model, in ONNX, run by tract (pure Rust: nothing to download, no
//! native runtime), in place of the built-in network ([`crate::model::Net`]).
//!
//! The contract (docs/triage.md, "Plug in your own model"):
//! - **one input**, float32, shape `[N, C, S, S]`: `C` is 1 (grey) or 3 (the grey view
//!   replicated to the three channels), `S` is fixed by the model (any size: radlab scales each
//!   image to fit it), and `N` is dynamic (a `dim_param` such as `"N"`, or left unknown) or
//!   fixed (then radlab runs that many views a call, 1 for a model exported with batch 1);
//! - the input values are radlab's views of an image ([`crate::model::views`]): the image as
//!   displayed, scaled to fit `S` x `S` by area averaging, centred on black, in one of the eight
//!   orientations, grey levels inverted or not, then standardized to mean 0 and standard
//!   deviation 1 over the view;
//! - **the first output**, float, shape `[N, 4]` (class logits only: no orientation is said)
//!   or `[N, 12]` (4 class logits, then 8 orientation logits), in radlab's orders
//!   ([`crate::dataset::Class::ALL`]: frontal, lateral, other, inverted;
//!   [`crate::preprocess::Orientation::ALL`]). They are logits: radlab applies the softmax
//!   (to the class logits and to the orientation logits separately).
//!
//! [`OnnxClassifier::load`] checks all of this when the model is read, and says what is wrong
//! with the file's path in the message; running it never panics on a model's output either.
//! The same model and views give the same outputs on every run (tract runs one thread, and
//! views are always batched the same way).

use std::path::{Path, PathBuf};

use tract_onnx::prelude::*;
use tract_onnx::tract_hir::infer::Factoid;

use crate::model::{Classifier, Outputs};

/// The most views one call runs, for a model with a dynamic batch (a [`crate::model::judge`]
/// call asks for at most 32: four images of eight views).
const MAX_BATCH: usize = 64;

/// An ONNX model that follows the contract of the module, ready to run.
pub struct OnnxClassifier {
    path: PathBuf,
    plan: Arc<TypedSimplePlan>,
    channels: usize,
    side: u32,
    /// `Some(n)`: the model takes exactly `n` views a call.
    batch: Option<usize>,
    /// 4 (class) or 12 (class and orientation).
    outputs: usize,
}

impl std::fmt::Debug for OnnxClassifier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OnnxClassifier")
            .field("path", &self.path)
            .field("shape", &self.shape())
            .finish()
    }
}

/// The ONNX model at `path` as a classifier for [`crate::model::judge`] (see
/// [`OnnxClassifier::load`]).
pub fn load_classifier(path: &Path) -> Result<Box<dyn Classifier + Send + Sync>, String> {
    Ok(Box::new(OnnxClassifier::load(path)?))
}

impl OnnxClassifier {
    /// Read, check and optimise the model at `path`. Errors name the file and what is wrong:
    /// not an ONNX model, more than one input, an input that is not float32 `[N, 1 or 3, S, S]`
    /// with `S` fixed, an output that is not `[N, 4]` or `[N, 12]`.
    pub fn load(path: &Path) -> Result<OnnxClassifier, String> {
        let shown = path.display();
        let bad = |what: String| format!("{shown}: {what}");
        std::fs::metadata(path).map_err(|e| bad(format!("cannot read the model: {e}")))?;
        // The output's declared shape is not trusted: it is inferred from the graph, then
        // checked below.
        let mut model = tract_onnx::onnx()
            .with_ignore_output_shapes(true)
            .model_for_path(path)
            .map_err(|e| bad(format!("not an ONNX model radlab can read: {e:#}")))?;
        let inputs = model.input_outlets().map_err(|e| bad(e.to_string()))?.len();
        if inputs != 1 {
            return Err(bad(format!(
                "the model has {inputs} inputs; radlab feeds one, float32 [N, C, S, S]"
            )));
        }
        if model
            .output_outlets()
            .map_err(|e| bad(e.to_string()))?
            .is_empty()
        {
            return Err(bad("the model has no output".into()));
        }
        let fact = model.input_fact(0).map_err(|e| bad(e.to_string()))?.clone();
        let expected = "radlab feeds float32 [N, C, S, S] with C 1 or 3 and S fixed";
        match fact.datum_type.concretize() {
            Some(DatumType::F32) => {}
            Some(dt) => {
                return Err(bad(format!(
                    "the input is {dt:?}, not float32 ({expected})"
                )));
            }
            None => {
                return Err(bad(format!(
                    "the input's element type is not declared ({expected})"
                )));
            }
        }
        let dims: Vec<Option<TDim>> = fact.shape.dims().map(|d| d.concretize()).collect();
        let shown_dims = dims
            .iter()
            .map(|d| d.as_ref().map_or("?".to_string(), |d| d.to_string()))
            .collect::<Vec<_>>()
            .join(", ");
        if fact.shape.is_open() {
            return Err(bad(format!(
                "the input's shape is not declared ({expected})"
            )));
        }
        if dims.len() != 4 {
            return Err(bad(format!(
                "the input is [{shown_dims}], of rank {}, not [N, C, S, S] ({expected})",
                dims.len()
            )));
        }
        let fixed = |d: &Option<TDim>| d.as_ref().and_then(|d| d.as_i64());
        let channels = match fixed(&dims[1]) {
            Some(c @ (1 | 3)) => c as usize,
            _ => {
                return Err(bad(format!(
                    "the input is [{shown_dims}]: {} channels, not 1 or 3 ({expected})",
                    dims[1].as_ref().map_or("unknown".into(), |d| d.to_string())
                )));
            }
        };
        let side = match (fixed(&dims[2]), fixed(&dims[3])) {
            (Some(h), Some(w)) if h == w && (1..=4096).contains(&h) => h as u32,
            (Some(h), Some(w)) if h != w => {
                return Err(bad(format!(
                    "the input is [{shown_dims}]: {h} x {w} is not square ({expected})"
                )));
            }
            (Some(_), Some(_)) => {
                return Err(bad(format!(
                    "the input is [{shown_dims}]: side out of 1 to 4096 ({expected})"
                )));
            }
            _ => {
                return Err(bad(format!(
                    "the input is [{shown_dims}]: the side S is not fixed by the model \
                     ({expected}; export it with a fixed height and width)"
                )));
            }
        };
        let batch = match fixed(&dims[0]) {
            Some(n) if n >= 1 => Some(n as usize),
            Some(n) => {
                return Err(bad(format!(
                    "the input is [{shown_dims}]: a batch of {n} ({expected})"
                )));
            }
            None => None,
        };
        // The input fact made exact: the batch the model's own symbol, or `N` when the
        // model leaves it unknown.
        let n_dim = match (batch, &dims[0]) {
            (Some(n), _) => n.to_dim(),
            (None, Some(d)) => d.clone(),
            (None, None) => model.symbols.sym("N").to_dim(),
        };
        let exact = InferenceFact::dt_shape(
            DatumType::F32,
            tvec![
                n_dim.clone(),
                channels.to_dim(),
                (side as usize).to_dim(),
                (side as usize).to_dim()
            ],
        );
        model
            .set_input_fact(0, exact)
            .map_err(|e| bad(format!("the input: {e:#}")))?;
        let typed = model
            .into_typed()
            .map_err(|e| bad(format!("tract cannot analyse the model: {e:#}")))?;
        let out = typed.output_fact(0).map_err(|e| bad(e.to_string()))?;
        let out_dims = out.shape.dims().to_vec();
        let shown_out = out_dims
            .iter()
            .map(|d| d.to_string())
            .collect::<Vec<_>>()
            .join(", ");
        let expected_out = format!("radlab takes logits [{n_dim}, 4] or [{n_dim}, 12]");
        if !out.datum_type.is_float() {
            return Err(bad(format!(
                "the output is {:?}, not float ({expected_out})",
                out.datum_type
            )));
        }
        let outputs = match out_dims.as_slice() {
            [n, k] if *n == n_dim => match k.as_i64() {
                Some(4) => 4,
                Some(12) => 12,
                _ => {
                    return Err(bad(format!(
                        "the output is [{shown_out}], not [N, 4] or [N, 12] ({expected_out})"
                    )));
                }
            },
            _ => {
                return Err(bad(format!(
                    "the output is [{shown_out}], not [N, 4] or [N, 12] ({expected_out})"
                )));
            }
        };
        let plan = typed
            .into_optimized()
            .and_then(|m| m.into_runnable())
            .map_err(|e| bad(format!("tract cannot prepare the model: {e:#}")))?;
        Ok(OnnxClassifier {
            path: path.to_path_buf(),
            plan,
            channels,
            side,
            batch,
            outputs,
        })
    }

    /// The file it was read from.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Input channels: 1, or 3 (the grey view replicated).
    pub fn channels(&self) -> usize {
        self.channels
    }

    /// The fixed batch, or `None` when it is dynamic.
    pub fn batch(&self) -> Option<usize> {
        self.batch
    }

    /// Whether it says the orientation (12 outputs) or the class only (4).
    pub fn predicts_orientation(&self) -> bool {
        self.outputs == 12
    }

    /// Its input and output shapes, as `[N, 1, 64, 64] -> [N, 12]`.
    pub fn shape(&self) -> String {
        let n = self.batch.map_or("N".to_string(), |n| n.to_string());
        format!(
            "[{n}, {}, {s}, {s}] -> [{n}, {}]",
            self.channels,
            self.outputs,
            s = self.side
        )
    }

    /// A name for verdicts: `onnx ` and the file's name.
    pub fn name(&self) -> String {
        let file = self
            .path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_else(|| self.path.display().to_string());
        format!("onnx {file}")
    }

    /// Run one batch of views (each `side * side`), `rows` of them real and the rest
    /// padding up to a fixed batch; the logits of the real ones.
    fn run(&self, views: &[Vec<f32>], rows: usize) -> Result<Vec<f32>, String> {
        let plane = (self.side as usize).pow(2);
        let mut data = Vec::with_capacity(rows * self.channels * plane);
        for v in views {
            for _ in 0..self.channels {
                data.extend_from_slice(v);
            }
        }
        data.resize(rows * self.channels * plane, 0.0);
        let side = self.side as usize;
        let input = Tensor::from_shape(&[rows, self.channels, side, side], &data)
            .map_err(|e| format!("{}: {e:#}", self.path.display()))?;
        let result = self
            .plan
            .run(tvec![input.into_tvalue()])
            .map_err(|e| format!("{}: the model failed: {e:#}", self.path.display()))?;
        let out = result
            .first()
            .ok_or_else(|| format!("{}: the model gave no output", self.path.display()))?;
        if out.shape() != [rows, self.outputs] {
            return Err(format!(
                "{}: the model gave an output of shape {:?} for {rows} views, not [{rows}, {}]",
                self.path.display(),
                out.shape(),
                self.outputs
            ));
        }
        let out = out
            .cast_to::<f32>()
            .map_err(|e| format!("{}: {e:#}", self.path.display()))?;
        let logits = out
            .to_plain_array_view::<f32>()
            .map_err(|e| format!("{}: {e:#}", self.path.display()))?;
        Ok(logits
            .iter()
            .copied()
            .take(views.len() * self.outputs)
            .collect())
    }
}

impl Classifier for OnnxClassifier {
    fn side(&self) -> u32 {
        self.side
    }

    fn outputs(&self, inputs: &[Vec<f32>]) -> Result<Vec<Outputs>, String> {
        let plane = (self.side as usize).pow(2);
        if let Some(bad) = inputs.iter().position(|v| v.len() != plane) {
            return Err(format!(
                "{}: input {bad} has {} values, not {} x {}",
                self.path.display(),
                inputs[bad].len(),
                self.side,
                self.side
            ));
        }
        let per_call = self.batch.unwrap_or(MAX_BATCH);
        let mut out = Vec::with_capacity(inputs.len());
        for chunk in inputs.chunks(per_call) {
            let rows = self.batch.unwrap_or(chunk.len());
            let logits = self.run(chunk, rows)?;
            for row in logits.chunks(self.outputs) {
                let mut class = [0f32; 4];
                class.copy_from_slice(&softmax(&row[..4]));
                let orientation = (self.outputs == 12).then(|| {
                    let mut o = [0f32; 8];
                    o.copy_from_slice(&softmax(&row[4..12]));
                    o
                });
                out.push(Outputs { class, orientation });
            }
        }
        Ok(out)
    }
}

/// Softmax in f64 (the largest logit subtracted first); a row with a NaN or an infinity
/// gives NaN probabilities, which never win an argmax, rather than a panic.
fn softmax(logits: &[f32]) -> Vec<f32> {
    let max = logits
        .iter()
        .fold(f64::NEG_INFINITY, |m, &x| m.max(f64::from(x)));
    let exps: Vec<f64> = logits.iter().map(|&x| (f64::from(x) - max).exp()).collect();
    let sum: f64 = exps.iter().sum();
    exps.iter().map(|e| (e / sum) as f32).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn softmax_sums_to_one_and_keeps_the_order() {
        let p = softmax(&[1.0, 2.0, 3.0, -1000.0]);
        assert!((p.iter().sum::<f32>() - 1.0).abs() < 1e-6);
        assert!(p[2] > p[1] && p[1] > p[0] && p[3] == 0.0);
        let big = softmax(&[1e30, 0.0]);
        assert_eq!(big, vec![1.0, 0.0]);
    }

    #[test]
    fn a_missing_or_garbage_file_is_an_error_naming_it() {
        let dir = std::env::temp_dir().join(format!("radlab-onnx-unit-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let missing = dir.join("missing.onnx");
        let e = OnnxClassifier::load(&missing).unwrap_err();
        assert!(
            e.contains("missing.onnx") && e.contains("cannot read"),
            "{e}"
        );
        let garbage = dir.join("garbage.onnx");
        std::fs::write(&garbage, b"\xff\xfe not a protobuf at all \x00\x01").unwrap();
        let e = OnnxClassifier::load(&garbage).unwrap_err();
        assert!(e.contains("garbage.onnx"), "{e}");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
