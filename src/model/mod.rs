//! Model inference in Rust: TensorFlow frozen graphs and ONNX files, run by tract or by
//! kafkaml's own dense kernels.
//!
//! `Model::load` reads a file once (format chosen by extension, else by content), normalises
//! TensorFlow graphs so that what Keras 2.x/3 freezes loads (see `normalize`), fixes the
//! batch dimension to a symbol so any batch size runs without reloading, and optimises the
//! graph. A graph made only of dense layers and element-wise activations also gets the dense
//! backend (`dense`): checked against tract's plan on probe rows at load, it then runs every
//! call; anything else runs through tract. A loaded `Model` is `Send + Sync`: every call
//! builds its own small execution state, so threads share one model without locks.

mod dense;
mod foreign;
mod kernels;
mod load;
mod normalize;
mod pool;
mod tf_ops;

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use tract_tensorflow::prelude::*;

pub use dense::NotDense;

/// Rows per chunk when a large batch is split across threads.
const PARALLEL_MIN_ROWS: usize = 4096;
/// Rows per tract run: big batches run in slices this size, which keep the intermediate
/// tensors in cache (one 100,000-row run was 2.5x slower than 100 runs of 1,000 rows).
const CHUNK_ROWS: usize = 1024;

/// What went wrong loading or running a model. Messages name the file, node or op at fault.
#[derive(thiserror::Error, Debug)]
pub enum ModelError {
    #[error("cannot read model file {path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{path} is not a valid {format} model: {reason}")]
    Malformed {
        path: PathBuf,
        format: &'static str,
        reason: String,
    },
    /// A Keras file, a SavedModel folder or another format kafkaml does not run.
    #[error(
        "{path} is {what}; kafkaml loads TensorFlow frozen graphs (.pb) and ONNX files: {advice}"
    )]
    NotLoadable {
        path: PathBuf,
        what: String,
        advice: String,
    },
    #[error("{path}: op {op} (node {node:?}) is not supported by kafkaml's {format} loader")]
    UnsupportedOp {
        path: PathBuf,
        format: &'static str,
        op: String,
        node: String,
    },
    #[error("{path}: no node named {name:?} (candidates: {candidates})")]
    UnknownNode {
        path: PathBuf,
        name: String,
        candidates: String,
    },
    #[error("{path}: {reason}")]
    Graph { path: PathBuf, reason: String },
    #[error("shape mismatch: {0}")]
    Shape(String),
    #[error("dtype mismatch: {0}")]
    DType(String),
    #[error("inference failed: {0}")]
    Run(String),
    /// `backend="dense"` was asked for a graph the dense backend does not run.
    #[error("{path}: the dense backend cannot run node {node:?} (op {op}): {reason}")]
    NotDense {
        path: PathBuf,
        node: String,
        op: String,
        reason: String,
    },
}

/// Which backend runs a model: chosen at load ([`Backend::Auto`]) or forced.
#[derive(Default, Clone, Copy, Debug, PartialEq, Eq)]
pub enum Backend {
    /// The dense kernels when the graph is a chain of dense layers (and they agree with
    /// tract on probe rows), else tract.
    #[default]
    Auto,
    /// Always tract's plan.
    Tract,
    /// The dense kernels, or an error naming the node they cannot run.
    Dense,
}

impl Backend {
    pub fn parse(name: &str) -> Option<Backend> {
        match name {
            "auto" => Some(Backend::Auto),
            "tract" => Some(Backend::Tract),
            "dense" => Some(Backend::Dense),
            _ => None,
        }
    }
}

/// Options for [`Model::load`]; the defaults discover inputs, outputs and shapes.
#[derive(Default, Clone, Debug)]
pub struct LoadOptions {
    /// Input node names (TensorFlow: node names, `:0` suffixes allowed; ONNX: graph input
    /// names). A TensorFlow node that is not a placeholder becomes one: the graph is cut there.
    pub inputs: Option<Vec<String>>,
    /// Output node names; by default the graph's sinks.
    pub outputs: Option<Vec<String>>,
    /// The shape of one row, without the batch dimension (e.g. `[30]` or `[28, 28, 1]`);
    /// needed only when the file does not declare it.
    pub input_shape: Option<Vec<usize>>,
    /// Which backend runs the model.
    pub backend: Backend,
}

/// The file format a model was loaded from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ModelFormat {
    TensorFlow,
    Onnx,
}

impl ModelFormat {
    pub fn as_str(&self) -> &'static str {
        match self {
            ModelFormat::TensorFlow => "tensorflow",
            ModelFormat::Onnx => "onnx",
        }
    }
}

/// Name, shape and dtype of a model input or output. `shape[0]` is `None`: the batch.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TensorInfo {
    pub name: String,
    pub shape: Vec<Option<usize>>,
    pub dtype: String,
}

type Plan = TypedSimplePlan<TypedModel>;

/// Batches above this run in chunks when plans are specialised per batch size.
const FIXED_MAX_BATCH: usize = 256;

/// How a model serves different batch sizes.
enum Plans {
    /// One plan, batch dimension symbolic: any size runs (the usual case).
    Symbolic(Arc<Plan>),
    /// Graphs whose shape arithmetic tract cannot do symbolically (e.g. some tf2onnx
    /// Flatten/Reshape chains): a plan per power-of-two batch size up to `FIXED_MAX_BATCH`,
    /// built on first use; short batches are padded with zero rows (rows are independent).
    PerBatch {
        source: Box<InferenceModel>,
        cache: std::sync::Mutex<std::collections::HashMap<usize, Arc<Plan>>>,
    },
}

impl Plans {
    fn any_plan(&self) -> Arc<Plan> {
        match self {
            Plans::Symbolic(plan) => plan.clone(),
            Plans::PerBatch { cache, .. } => {
                let cache = cache.lock().unwrap_or_else(|e| e.into_inner());
                cache
                    .values()
                    .next()
                    .expect("a PerBatch model is built with one plan")
                    .clone()
            }
        }
    }
}

/// A loaded, optimised model with one input and one output, batch dimension symbolic.
pub struct Model {
    plans: Plans,
    /// Set when the dense backend runs this model.
    dense: Option<dense::DenseNet>,
    path: PathBuf,
    format: ModelFormat,
    input: TensorInfo,
    output: TensorInfo,
    input_dt: DatumType,
    output_dt: DatumType,
    row_shape: Vec<usize>,
    input_width: usize,
    output_width: usize,
}

impl std::fmt::Debug for Model {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Model")
            .field("path", &self.path)
            .field("format", &self.format)
            .field("input", &self.input)
            .field("output", &self.output)
            .field("backend", &self.backend())
            .finish()
    }
}

#[allow(dead_code)]
fn assert_send_sync<T: Send + Sync>() {}
const _: fn() = || assert_send_sync::<Model>();

impl Model {
    /// Loads a TensorFlow frozen GraphDef (`.pb`) or an ONNX file (`.onnx`). Keras files and
    /// SavedModel folders are refused with [`ModelError::NotLoadable`], which says how to
    /// convert them.
    pub fn load(path: &Path, options: &LoadOptions) -> Result<Model, ModelError> {
        if path.is_dir() {
            return Err(foreign::directory(path));
        }
        let bytes = std::fs::read(path).map_err(|source| ModelError::Io {
            path: path.to_path_buf(),
            source,
        })?;
        if let Some(error) = foreign::file(path, &bytes) {
            return Err(error);
        }
        let format = load::detect_format(path, &bytes);
        let path_buf = path.to_path_buf();
        // tract and prost should return errors, but a malformed file must never crash the
        // caller: a panic while loading becomes a ModelError too.
        catch_unwind(AssertUnwindSafe(|| {
            load::load(&path_buf, format, &bytes, options)
        }))
        .unwrap_or_else(|panic| {
            Err(ModelError::Malformed {
                path: path_buf.clone(),
                format: format.as_str(),
                reason: format!("the loader failed: {}", panic_message(&panic)),
            })
        })
    }

    /// Features per row: the product of the input's non-batch dimensions.
    pub fn input_width(&self) -> usize {
        self.input_width
    }

    /// Values per output row: the product of the output's non-batch dimensions.
    pub fn output_width(&self) -> usize {
        self.output_width
    }

    /// The model's input (name, shape with `None` for the batch, dtype).
    pub fn input(&self) -> &TensorInfo {
        &self.input
    }

    /// The model's output (name, shape with `None` for the batch, dtype).
    pub fn output(&self) -> &TensorInfo {
        &self.output
    }

    /// The file the model came from.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The file format the model was loaded from.
    pub fn format(&self) -> ModelFormat {
        self.format
    }

    /// Which backend runs the model: `"dense"` (kafkaml's kernels) or `"tract"`.
    pub fn backend(&self) -> &'static str {
        if self.dense.is_some() {
            "dense"
        } else {
            "tract"
        }
    }

    /// The instruction set of the dense kernels (`"avx512"`, `"avx2"`, `"portable"`), when
    /// they run the model.
    pub fn dense_isa(&self) -> Option<&'static str> {
        self.dense.as_ref().map(|d| d.isa())
    }

    /// Installs the dense backend when `choice` allows it, the graph is dense and the
    /// kernels agree with tract's plan on probe rows.
    fn with_backend(
        mut self,
        choice: Backend,
        dense: Option<Result<dense::DenseNet, NotDense>>,
    ) -> Result<Model, ModelError> {
        let not_dense = |path: &Path, refusal: NotDense| ModelError::NotDense {
            path: path.to_path_buf(),
            node: refusal.node,
            op: refusal.op,
            reason: refusal.reason,
        };
        let net = match (choice, dense) {
            (Backend::Tract, _) => return Ok(self),
            (Backend::Auto, None | Some(Err(_))) => return Ok(self),
            (Backend::Dense, None) => {
                return Err(not_dense(
                    &self.path,
                    NotDense {
                        node: self.input.name.clone(),
                        op: "graph".into(),
                        reason: "tract could not prepare the graph with a symbolic batch".into(),
                    },
                ))
            }
            (Backend::Dense, Some(Err(refusal))) => return Err(not_dense(&self.path, refusal)),
            (_, Some(Ok(net))) => net,
        };
        let fits = net.in_width() == self.input_width
            && net.out_width() == self.output_width
            && self.input_dt == DatumType::F32
            && self.output_dt == DatumType::F32;
        let probe_error = if fits {
            self.probe(&net)?
        } else {
            f32::INFINITY
        };
        if probe_error <= 1e-4 {
            self.dense = Some(net);
        } else if choice == Backend::Dense {
            return Err(ModelError::Graph {
                path: self.path.clone(),
                reason: format!(
                    "the dense backend does not reproduce tract's outputs on probe rows (max difference {probe_error})"
                ),
            });
        }
        Ok(self)
    }

    /// Largest difference between the dense kernels and tract on 37 pseudo-random rows
    /// (relative to the outputs' size when they exceed 1).
    fn probe(&self, net: &dense::DenseNet) -> Result<f32, ModelError> {
        const ROWS: usize = 37;
        let mut seed = 0x2545_f491_u32;
        let rows: Vec<f32> = (0..ROWS * self.input_width)
            .map(|_| {
                seed ^= seed << 13;
                seed ^= seed >> 17;
                seed ^= seed << 5;
                (seed >> 8) as f32 / (1u32 << 23) as f32 - 1.0
            })
            .map(|u| 3.0 * u)
            .collect();
        let mut want = vec![0f32; ROWS * self.output_width];
        self.run_rows(&rows, ROWS, &mut want)?;
        let mut got = vec![0f32; want.len()];
        net.run(&rows, ROWS, &mut got);
        Ok(got
            .iter()
            .zip(&want)
            .map(|(g, w)| (g - w).abs() / w.abs().max(1.0))
            .fold(
                0f32,
                |m, d| if d.is_nan() { f32::INFINITY } else { m.max(d) },
            ))
    }

    /// `rows` is row-major [n_rows, input_width]; returns row-major [n_rows, output_width].
    /// Large batches are split across the machine's cores (rows are scored independently).
    pub fn predict_rows(&self, rows: &[f32], n_rows: usize) -> Result<Vec<f32>, ModelError> {
        if rows.len() != n_rows * self.input_width {
            return Err(ModelError::Shape(format!(
                "{} values given for {} rows, the model takes {} features per row ({} expected)",
                rows.len(),
                n_rows,
                self.input_width,
                n_rows * self.input_width
            )));
        }
        let mut out = output_buffer(n_rows * self.output_width);
        if n_rows == 0 {
            return Ok(out);
        }
        if let Some(net) = &self.dense {
            return catch_unwind(AssertUnwindSafe(|| net.run(rows, n_rows, &mut out)))
                .map(|()| out)
                .map_err(|panic| {
                    ModelError::Run(format!(
                        "the dense kernels failed: {}",
                        panic_message(&panic)
                    ))
                });
        }
        let threads = pool::workers() + 1;
        if threads < 2 || n_rows < 2 * PARALLEL_MIN_ROWS {
            self.run_rows(rows, n_rows, &mut out)?;
            return Ok(out);
        }
        let first_error = Mutex::new(None);
        pool::run_rows(
            rows,
            self.input_width,
            &mut out,
            self.output_width,
            threads,
            &|input, output| {
                if let Err(error) = self.run_rows(input, input.len() / self.input_width, output) {
                    first_error
                        .lock()
                        .unwrap_or_else(|e| e.into_inner())
                        .get_or_insert(error);
                }
            },
        );
        match first_error.into_inner().unwrap_or_else(|e| e.into_inner()) {
            Some(error) => Err(error),
            None => Ok(out),
        }
    }

    /// Per-row mean squared error between input and reconstruction (input_width == output_width).
    pub fn reconstruction_error(
        &self,
        rows: &[f32],
        n_rows: usize,
    ) -> Result<Vec<f32>, ModelError> {
        if self.input_width != self.output_width {
            return Err(ModelError::Shape(format!(
                "reconstruction error needs output width == input width, the model maps {} features to {}",
                self.input_width, self.output_width
            )));
        }
        let predicted = self.predict_rows(rows, n_rows)?;
        Ok(mse_per_row(rows, &predicted, self.input_width))
    }

    fn run_rows(&self, rows: &[f32], n_rows: usize, out: &mut [f32]) -> Result<(), ModelError> {
        let (iw, ow) = (self.input_width, self.output_width);
        if iw == 0 || ow == 0 || n_rows <= CHUNK_ROWS {
            return self.run_chunk(rows, n_rows, out);
        }
        for (rows, out) in rows
            .chunks(CHUNK_ROWS * iw)
            .zip(out.chunks_mut(CHUNK_ROWS * ow))
        {
            self.run_chunk(rows, rows.len() / iw, out)?;
        }
        Ok(())
    }

    fn run_chunk(&self, rows: &[f32], n_rows: usize, out: &mut [f32]) -> Result<(), ModelError> {
        let (source, cache) = match &self.plans {
            Plans::Symbolic(plan) => return self.run_plan(plan, rows, n_rows, out),
            Plans::PerBatch { source, cache } => (source, cache),
        };
        let (iw, ow) = (self.input_width, self.output_width);
        for (rows, out) in rows
            .chunks(FIXED_MAX_BATCH * iw)
            .zip(out.chunks_mut(FIXED_MAX_BATCH * ow))
        {
            let n = rows.len() / iw;
            let bucket = n.next_power_of_two();
            let cached = cache
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .get(&bucket)
                .cloned();
            let plan = match cached {
                Some(plan) => plan,
                None => {
                    let plan = load::specialise(source, self.input_dt, &self.row_shape, bucket)
                        .map_err(|e| {
                            ModelError::Run(format!("preparing a plan for {bucket} rows: {e:#}"))
                        })?;
                    cache
                        .lock()
                        .unwrap_or_else(|e| e.into_inner())
                        .insert(bucket, plan.clone());
                    plan
                }
            };
            if bucket == n {
                self.run_plan(&plan, rows, n, out)?;
            } else {
                let mut padded = rows.to_vec();
                padded.resize(bucket * iw, 0.0);
                let mut full = vec![0f32; bucket * ow];
                self.run_plan(&plan, &padded, bucket, &mut full)?;
                out.copy_from_slice(&full[..n * ow]);
            }
        }
        Ok(())
    }

    fn run_plan(
        &self,
        plan: &Plan,
        rows: &[f32],
        n_rows: usize,
        out: &mut [f32],
    ) -> Result<(), ModelError> {
        let mut shape = Vec::with_capacity(self.row_shape.len() + 1);
        shape.push(n_rows);
        shape.extend_from_slice(&self.row_shape);
        let input = match self.input_dt {
            DatumType::F32 => Tensor::from_shape(&shape, rows),
            DatumType::F64 => {
                let wide: Vec<f64> = rows.iter().map(|&v| v as f64).collect();
                Tensor::from_shape(&shape, &wide)
            }
            other => {
                return Err(ModelError::DType(format!(
                    "the model's input is {other:?}, kafkaml feeds float32 or float64"
                )))
            }
        }
        .map_err(|e| ModelError::Shape(format!("{e:#}")))?;
        let result = catch_unwind(AssertUnwindSafe(|| plan.run(tvec![input.into_tvalue()])))
            .unwrap_or_else(|panic| {
                Err(TractError::msg(format!(
                    "tract panicked: {}",
                    panic_message(&panic)
                )))
            })
            .map_err(|e| ModelError::Run(format!("{e:#}")))?;
        let output = result
            .into_iter()
            .next()
            .ok_or_else(|| ModelError::Run("the model produced no output".into()))?;
        if output.len() != out.len() {
            return Err(ModelError::Shape(format!(
                "the model produced {} values ({:?}) for {} rows, expected {} per row",
                output.len(),
                output.shape(),
                n_rows,
                self.output_width
            )));
        }
        let dtype_err = |e: TractError| ModelError::DType(format!("{e:#}"));
        match self.output_dt {
            DatumType::F32 => out.copy_from_slice(output.as_slice::<f32>().map_err(dtype_err)?),
            DatumType::F64 => {
                for (o, v) in out
                    .iter_mut()
                    .zip(output.as_slice::<f64>().map_err(dtype_err)?)
                {
                    *o = *v as f32;
                }
            }
            _ => {
                let cast = output.cast_to::<f32>().map_err(dtype_err)?;
                out.copy_from_slice(cast.as_slice::<f32>().map_err(dtype_err)?);
            }
        }
        Ok(())
    }
}

/// A zeroed output buffer. Big ones are fresh memory from the OS (glibc maps allocations
/// over 32 MB, and smaller ones once its heap was trimmed), which the first write faults in
/// 4 KiB at a time: for a 100,000-row batch that was more time than the arithmetic. On
/// Linux the 2 MiB-aligned inside of such a buffer is marked for transparent huge pages, so
/// it faults in 2 MiB at a time (where the system allows it; a hint, never an error).
fn output_buffer(len: usize) -> Vec<f32> {
    let out = vec![0f32; len];
    #[cfg(target_os = "linux")]
    {
        const HUGE: usize = 2 << 20;
        let bytes = len * std::mem::size_of::<f32>();
        if bytes >= 2 * HUGE {
            let start = out.as_ptr() as usize;
            let first = start.next_multiple_of(HUGE);
            let last = (start + bytes) / HUGE * HUGE;
            if last > first {
                // SAFETY: the range lies inside `out`'s allocation; MADV_HUGEPAGE changes
                // how pages are backed, never their contents.
                unsafe {
                    libc::madvise(
                        first as *mut libc::c_void,
                        last - first,
                        libc::MADV_HUGEPAGE,
                    );
                }
            }
        }
    }
    out
}

/// Per-row mean squared error between two row-major matrices of the same width.
pub fn mse_per_row(a: &[f32], b: &[f32], width: usize) -> Vec<f32> {
    if width == 0 {
        return vec![0.0; 0];
    }
    a.chunks_exact(width)
        .zip(b.chunks_exact(width))
        .map(|(x, y)| {
            let sum: f64 = x
                .iter()
                .zip(y)
                .map(|(p, q)| {
                    let d = (*p - *q) as f64;
                    d * d
                })
                .sum();
            (sum / width as f64) as f32
        })
        .collect()
}

fn panic_message(panic: &Box<dyn std::any::Any + Send>) -> String {
    if let Some(s) = panic.downcast_ref::<&str>() {
        (*s).to_string()
    } else if let Some(s) = panic.downcast_ref::<String>() {
        s.clone()
    } else {
        "panic".to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fixtures() -> Option<PathBuf> {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/fixtures/talk");
        dir.join("autoencoder_fraud.pb").exists().then_some(dir)
    }

    /// Reads a little-endian float32 C-order .npy file (the fixtures' format).
    fn read_npy_f32(path: &Path) -> (Vec<usize>, Vec<f32>) {
        let bytes = std::fs::read(path).unwrap();
        assert_eq!(&bytes[..6], b"\x93NUMPY");
        let header_len = u16::from_le_bytes([bytes[8], bytes[9]]) as usize;
        let header = std::str::from_utf8(&bytes[10..10 + header_len]).unwrap();
        assert!(header.contains("'<f4'") && header.contains("'fortran_order': False"));
        let shape_src = &header[header.find("'shape': (").unwrap() + 10..];
        let shape: Vec<usize> = shape_src[..shape_src.find(')').unwrap()]
            .split(',')
            .filter_map(|s| s.trim().parse().ok())
            .collect();
        let data = bytes[10 + header_len..]
            .chunks_exact(4)
            .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
            .collect();
        (shape, data)
    }

    #[test]
    fn talk_autoencoder_matches_tensorflow() {
        let Some(dir) = fixtures() else {
            eprintln!("skipping: ../shared/fixtures/talk not found beside the checkout");
            return;
        };
        let model =
            Model::load(&dir.join("autoencoder_fraud.pb"), &LoadOptions::default()).unwrap();
        assert_eq!(model.input_width(), 30);
        assert_eq!(model.output_width(), 30);
        assert_eq!(model.input().name, "CreditCardInput");
        assert_eq!(model.output().name, "Decoder2/Relu");
        let (shape, x) = read_npy_f32(&dir.join("creditcard_small_x.npy"));
        let (_, expected) = read_npy_f32(&dir.join("autoencoder_fraud_tf_output.npy"));
        let got = model.predict_rows(&x, shape[0]).unwrap();
        let worst = got
            .iter()
            .zip(&expected)
            .map(|(a, b)| (a - b).abs())
            .fold(0f32, f32::max);
        assert!(worst < 1e-5, "max abs difference {worst}");
        // Batch size changes need no reload; a single row gives the same values.
        let one = model.predict_rows(&x[30..60], 1).unwrap();
        assert!(one
            .iter()
            .zip(&expected[30..60])
            .all(|(a, b)| (a - b).abs() < 1e-5));
        let errors = model.reconstruction_error(&x, shape[0]).unwrap();
        assert_eq!(errors.len(), shape[0]);
        let manual = mse_per_row(&x[..30], &expected[..30], 30)[0];
        assert!((errors[0] - manual).abs() <= 1e-4 * manual.max(1.0));
    }

    #[test]
    fn large_batches_split_across_threads_agree() {
        let Some(dir) = fixtures() else { return };
        let model =
            Model::load(&dir.join("autoencoder_fraud.pb"), &LoadOptions::default()).unwrap();
        let (shape, x) = read_npy_f32(&dir.join("creditcard_small_x.npy"));
        let reps = 10;
        let big: Vec<f32> = (0..reps).flat_map(|_| x.iter().copied()).collect();
        let got = model.predict_rows(&big, shape[0] * reps).unwrap();
        let small = model.predict_rows(&x, shape[0]).unwrap();
        for r in 0..reps {
            let part = &got[r * small.len()..(r + 1) * small.len()];
            assert!(part.iter().zip(&small).all(|(a, b)| (a - b).abs() < 1e-6));
        }
    }

    #[test]
    fn wrong_width_is_a_shape_error() {
        let Some(dir) = fixtures() else { return };
        let model =
            Model::load(&dir.join("autoencoder_fraud.pb"), &LoadOptions::default()).unwrap();
        let err = model.predict_rows(&[0.0; 29], 1).unwrap_err();
        assert!(matches!(err, ModelError::Shape(_)), "{err}");
        assert!(model.predict_rows(&[], 0).unwrap().is_empty());
    }

    #[test]
    fn garbage_and_truncated_files_are_errors() {
        let dir = std::env::temp_dir().join(format!("kafkaml-model-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let garbage = dir.join("garbage.pb");
        std::fs::write(&garbage, b"this is not a protobuf \xff\xff\xff\xff").unwrap();
        let err = Model::load(&garbage, &LoadOptions::default()).unwrap_err();
        assert!(err.to_string().contains("garbage.pb"), "{err}");
        let missing = Model::load(&dir.join("missing.onnx"), &LoadOptions::default()).unwrap_err();
        assert!(matches!(missing, ModelError::Io { .. }));
        if let Some(fixtures) = fixtures() {
            let bytes = std::fs::read(fixtures.join("autoencoder_fraud.pb")).unwrap();
            let truncated = dir.join("truncated.pb");
            std::fs::write(&truncated, &bytes[..bytes.len() * 2 / 3]).unwrap();
            let err = Model::load(&truncated, &LoadOptions::default()).unwrap_err();
            assert!(err.to_string().contains("truncated.pb"), "{err}");
        }
        std::fs::remove_dir_all(&dir).ok();
    }

    #[test]
    fn model_is_shared_between_threads() {
        let Some(dir) = fixtures() else { return };
        let model = Arc::new(
            Model::load(&dir.join("autoencoder_fraud.pb"), &LoadOptions::default()).unwrap(),
        );
        let (shape, x) = read_npy_f32(&dir.join("creditcard_small_x.npy"));
        let expected: Vec<f32> = (0..shape[0])
            .flat_map(|row| model.predict_rows(&x[row * 30..row * 30 + 30], 1).unwrap())
            .collect();
        std::thread::scope(|s| {
            for t in 0..4 {
                let model = model.clone();
                let (x, expected, n) = (&x, &expected, shape[0]);
                s.spawn(move || {
                    for i in 0..50 {
                        let row = (t * 50 + i) % n;
                        let got = model.predict_rows(&x[row * 30..row * 30 + 30], 1).unwrap();
                        assert_eq!(&got[..], &expected[row * 30..row * 30 + 30]);
                    }
                });
            }
        });
    }
}
