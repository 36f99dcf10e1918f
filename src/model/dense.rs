//! The dense backend: graphs made only of dense layers (matrix product with constant weights,
//! constant bias or scale) and element-wise activations (ReLU and clips, tanh, sigmoid), run
//! by kafkaml's own kernels (`kernels`) instead of tract's plan.
//!
//! The layers are read off tract's decluttered graph, so TensorFlow and ONNX files (MatMul,
//! BiasAdd/Add, Gemm, Relu, Tanh, Sigmoid, ...) arrive in one form. A graph with anything
//! else is refused with the node at fault, and `Model` keeps running it through tract.
//!
//! Rows go through all layers in blocks of `BLOCK_ROWS` (the intermediate values stay in a
//! per-thread scratch buffer in cache, reused across calls), each layer as 16-column panels
//! times tiles of rows. Large batches are split over the cores (`pool`'s kept threads), only
//! when the work per call is large enough to pay for the hand-over.

use std::cell::RefCell;
use std::sync::OnceLock;

use tract_hir::internal::*;
use tract_hir::tract_core::ops::einsum::EinSum;

use super::kernels::{self, Activation, Isa, HALF, PANEL};
use super::pool;

/// Rows taken through every layer at once.
const BLOCK_ROWS: usize = 64;
/// Multiply-adds a call must have per extra thread before the batch is split (handing a part
/// to a worker and waiting for it costs a few microseconds; one core does ~1e5 multiply-adds
/// in that time on these kernels).
const SPLIT_MACS: usize = 1 << 21;

/// Why a graph is not a chain of dense layers: the node at fault, its op, and what is wrong.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NotDense {
    pub node: String,
    pub op: String,
    pub reason: String,
}

struct Layer {
    /// Values read per input row: the model's input width for the first layer, the
    /// previous layer's padded width after.
    k: usize,
    /// Output columns (without padding).
    n: usize,
    /// Full panels of `PANEL` columns.
    full: usize,
    /// Whether a narrow panel of `HALF` columns follows them.
    narrow: bool,
    /// `full` blocks of `k * PANEL`, then `k * HALF` for the narrow panel; zero-padded
    /// beyond `n`.
    w: Vec<f32>,
    /// `padded()` values, zero-padded.
    b: Vec<f32>,
    act: Activation,
    /// (first column, columns) of each tile column: pairs of full panels where the
    /// instruction set takes them, then single ones, then the narrow panel.
    spans: Vec<(usize, usize)>,
}

impl Layer {
    /// Columns computed: `n` rounded up to the panels.
    fn padded(&self) -> usize {
        self.full * PANEL + if self.narrow { HALF } else { 0 }
    }
}

/// A chain of dense layers, ready to run.
pub struct DenseNet {
    layers: Vec<Layer>,
    in_width: usize,
    out_width: usize,
    widest: usize,
    macs_per_row: usize,
    isa: Isa,
}

impl std::fmt::Debug for DenseNet {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let widths: Vec<usize> = self.layers.iter().map(|l| l.n).collect();
        f.debug_struct("DenseNet")
            .field("in_width", &self.in_width)
            .field("widths", &widths)
            .field("isa", &self.isa)
            .finish()
    }
}

/// A layer being read off the graph: weights `[k][n]` row-major, bias, activation.
struct Building {
    k: usize,
    n: usize,
    w: Vec<f32>,
    b: Vec<f32>,
    act: Activation,
}

fn refuse(node: &TypedNode, reason: impl Into<String>) -> NotDense {
    NotDense {
        node: node.name.clone(),
        op: node.op.name().to_string(),
        reason: reason.into(),
    }
}

/// Constant values of `fact` as f32 when it is a constant.
fn constant(fact: &TypedFact) -> Option<(Vec<usize>, Vec<f32>)> {
    let tensor = fact.konst.as_ref()?;
    if !matches!(tensor.datum_type(), DatumType::F32 | DatumType::F64) {
        return None;
    }
    let cast = tensor.cast_to::<f32>().ok()?;
    Some((
        tensor.shape().to_vec(),
        cast.as_slice::<f32>().ok()?.to_vec(),
    ))
}

impl DenseNet {
    /// Reads the layers off a decluttered model with one rank-2 f32 input and output.
    pub fn from_typed(model: &TypedModel) -> Result<DenseNet, NotDense> {
        let graph_err = |reason: String| NotDense {
            node: String::new(),
            op: String::new(),
            reason,
        };
        let inputs = model
            .input_outlets()
            .map_err(|e| graph_err(format!("{e}")))?;
        let outputs = model
            .output_outlets()
            .map_err(|e| graph_err(format!("{e}")))?;
        if inputs.len() != 1 || outputs.len() != 1 {
            return Err(graph_err("not one input and one output".into()));
        }
        let (input, output) = (inputs[0], outputs[0]);
        let in_fact = model
            .outlet_fact(input)
            .map_err(|e| graph_err(format!("{e}")))?;
        let in_node = model.node(input.node);
        if in_fact.datum_type != DatumType::F32 || in_fact.rank() != 2 {
            return Err(refuse(
                in_node,
                format!(
                    "the input is {:?} of rank {}, the dense backend takes float32 rows",
                    in_fact.datum_type,
                    in_fact.rank()
                ),
            ));
        }
        let in_width = in_fact.shape[1]
            .to_usize()
            .map_err(|_| refuse(in_node, "the input width is not fixed"))?;

        let mut done: Vec<Building> = Vec::new();
        let mut layer: Option<Building> = None;
        let mut width = in_width;
        let mut current = input;
        while current != output {
            let successors = &model.node(current.node).outputs[current.slot].successors;
            let here = model.node(current.node);
            if successors.len() != 1 {
                return Err(refuse(
                    here,
                    format!(
                        "its output feeds {} nodes; the dense backend runs a chain",
                        successors.len()
                    ),
                ));
            }
            let node = model.node(successors[0].node);
            if node.outputs.len() != 1 {
                return Err(refuse(node, "more than one output"));
            }
            let slot = successors[0].slot;
            // The node's other inputs must be constants.
            let mut other = None;
            for (i, outlet) in node.inputs.iter().enumerate() {
                if i == slot {
                    continue;
                }
                let fact = model
                    .outlet_fact(*outlet)
                    .map_err(|e| refuse(node, format!("{e}")))?;
                match constant(fact) {
                    Some(c) if other.is_none() => other = Some((i, c)),
                    _ => return Err(refuse(node, "an input that is not one float constant")),
                }
            }
            let op_name = node.op.name().to_string();
            if let Some(einsum) = node.op_as::<EinSum>() {
                let Some((wslot, (shape, values))) = other else {
                    return Err(refuse(node, "a matrix product without constant weights"));
                };
                if einsum.q_params.is_some() || shape.len() != 2 || node.inputs.len() != 2 {
                    return Err(refuse(node, "not a plain product with a weight matrix"));
                }
                let (k_pos, n_pos) = matmul_axes(einsum, slot, wslot).ok_or_else(|| {
                    refuse(node, format!("axes {} are not rows x weights", einsum.axes))
                })?;
                if shape[k_pos] != width {
                    return Err(refuse(
                        node,
                        format!("weights {shape:?} do not take {width} values"),
                    ));
                }
                let n = shape[n_pos];
                if n == 0 || width == 0 {
                    return Err(refuse(node, "a layer of width 0"));
                }
                let mut w = vec![0f32; width * n];
                for kk in 0..width {
                    for j in 0..n {
                        let (r, c) = if k_pos == 0 { (kk, j) } else { (j, kk) };
                        w[kk * n + j] = values[r * shape[1] + c];
                    }
                }
                if let Some(previous) = layer.take() {
                    done.push(previous);
                }
                layer = Some(Building {
                    k: width,
                    n,
                    w,
                    b: vec![0.0; n],
                    act: Activation::Identity,
                });
                width = n;
            } else if matches!(op_name.as_str(), "Add" | "Sub" | "Mul" | "Max" | "Min")
                && node.inputs.len() == 2
            {
                let Some((cslot, (shape, values))) = other else {
                    return Err(refuse(node, "no constant operand"));
                };
                let Some(current_layer) = layer.as_mut() else {
                    return Err(refuse(node, "comes before any dense layer"));
                };
                let per_column = shape.iter().rev().skip(1).all(|&d| d == 1)
                    && (values.len() == 1 || values.len() == width);
                if !per_column {
                    return Err(refuse(
                        node,
                        format!("its constant {shape:?} is not one value per column"),
                    ));
                }
                let value = |j: usize| values[if values.len() == 1 { 0 } else { j }];
                let linear = current_layer.act == Activation::Identity;
                match op_name.as_str() {
                    "Add" | "Sub" if linear => {
                        if op_name == "Sub" && cslot == 0 {
                            return Err(refuse(node, "a constant minus the layer"));
                        }
                        let sign = if op_name == "Sub" { -1.0 } else { 1.0 };
                        for (j, b) in current_layer.b.iter_mut().enumerate() {
                            *b += sign * value(j);
                        }
                    }
                    "Mul" if linear => {
                        let n = current_layer.n;
                        for (i, w) in current_layer.w.iter_mut().enumerate() {
                            *w *= value(i % n);
                        }
                        for (j, b) in current_layer.b.iter_mut().enumerate() {
                            *b *= value(j);
                        }
                    }
                    "Max" | "Min" => {
                        let bound = value(0);
                        if !values.iter().all(|v| *v == bound) || bound.is_nan() {
                            return Err(refuse(node, "a bound that differs per column"));
                        }
                        let (mut lo, mut hi) = match current_layer.act {
                            Activation::Identity => (f32::NEG_INFINITY, f32::INFINITY),
                            Activation::Clip { lo, hi } => (lo, hi),
                            _ => return Err(refuse(node, "a bound after tanh or sigmoid")),
                        };
                        if op_name == "Max" {
                            lo = lo.max(bound);
                        } else {
                            hi = hi.min(bound);
                        }
                        if lo > hi {
                            return Err(refuse(node, "an empty clip range"));
                        }
                        current_layer.act = Activation::Clip { lo, hi };
                    }
                    _ => return Err(refuse(node, "a bias or scale after the activation")),
                }
            } else if matches!(op_name.as_str(), "Tanh" | "Sigmoid") && node.inputs.len() == 1 {
                let Some(current_layer) = layer.as_mut() else {
                    return Err(refuse(node, "comes before any dense layer"));
                };
                if current_layer.act != Activation::Identity {
                    return Err(refuse(node, "a second activation on one layer"));
                }
                current_layer.act = if op_name == "Tanh" {
                    Activation::Tanh
                } else {
                    Activation::Sigmoid
                };
            } else {
                return Err(refuse(
                    node,
                    "not a dense layer, bias, scale or supported activation",
                ));
            }
            current = OutletId::new(node.id, 0);
        }
        if let Some(last) = layer.take() {
            done.push(last);
        }
        if done.is_empty() {
            return Err(graph_err("no dense layer".into()));
        }
        Ok(DenseNet::new(in_width, done, Isa::detect()))
    }

    fn new(in_width: usize, built: Vec<Building>, isa: Isa) -> DenseNet {
        let mut layers = Vec::with_capacity(built.len());
        let mut k_padded = in_width;
        for (index, b) in built.into_iter().enumerate() {
            let rest = b.n % PANEL;
            let (full, narrow) = if rest == 0 || rest > HALF {
                (b.n.div_ceil(PANEL), false)
            } else {
                (b.n / PANEL, true)
            };
            let padded = full * PANEL + if narrow { HALF } else { 0 };
            let k = if index == 0 { b.k } else { k_padded };
            let mut w = vec![0f32; k * padded];
            for kk in 0..b.k {
                for j in 0..b.n {
                    let at = if j < full * PANEL {
                        (j / PANEL) * k * PANEL + kk * PANEL + j % PANEL
                    } else {
                        full * k * PANEL + kk * HALF + (j - full * PANEL)
                    };
                    w[at] = b.w[kk * b.n + j];
                }
            }
            let mut bias = vec![0f32; padded];
            bias[..b.n].copy_from_slice(&b.b);
            let mut spans = Vec::with_capacity(full + 1);
            let mut p = 0;
            while p < full {
                let panels = (full - p).min(isa.max_panels());
                spans.push((p * PANEL, panels * PANEL));
                p += panels;
            }
            if narrow {
                spans.push((full * PANEL, HALF));
            }
            layers.push(Layer {
                k,
                n: b.n,
                full,
                narrow,
                w,
                b: bias,
                act: b.act,
                spans,
            });
            k_padded = padded;
        }
        let widest = layers.iter().map(Layer::padded).max().unwrap_or(PANEL);
        let macs_per_row = layers.iter().map(|l| l.k * l.n).sum::<usize>().max(1);
        let out_width = layers.last().map_or(0, |l| l.n);
        DenseNet {
            layers,
            in_width,
            out_width,
            widest,
            macs_per_row,
            isa,
        }
    }

    pub fn in_width(&self) -> usize {
        self.in_width
    }

    pub fn out_width(&self) -> usize {
        self.out_width
    }

    /// The instruction set the kernels use ("avx512", "avx2", "portable").
    pub fn isa(&self) -> &'static str {
        self.isa.as_str()
    }

    /// `rows` row-major `[n_rows, in_width]` into `out` `[n_rows, out_width]`.
    pub fn run(&self, rows: &[f32], n_rows: usize, out: &mut [f32]) {
        assert_eq!(rows.len(), n_rows * self.in_width);
        assert_eq!(out.len(), n_rows * self.out_width);
        let parts = (n_rows * self.macs_per_row / SPLIT_MACS)
            .clamp(1, pool::workers() + 1)
            .min(n_rows.div_ceil(BLOCK_ROWS).max(1));
        if parts == 1 {
            self.run_serial(rows, out);
            return;
        }
        pool::run_rows(
            rows,
            self.in_width,
            out,
            self.out_width,
            parts,
            &|input, output| self.run_serial(input, output),
        );
    }

    fn run_serial(&self, rows: &[f32], out: &mut [f32]) {
        thread_local! {
            static SCRATCH: RefCell<Vec<f32>> = const { RefCell::new(Vec::new()) };
        }
        SCRATCH.with(|cell| {
            let mut scratch = cell.borrow_mut();
            let half = BLOCK_ROWS * self.widest;
            if scratch.len() < 2 * half {
                scratch.resize(2 * half, 0.0);
            }
            let (a, b) = scratch.split_at_mut(half);
            let (iw, ow) = (self.in_width, self.out_width);
            for (block, out_block) in rows
                .chunks(BLOCK_ROWS * iw)
                .zip(out.chunks_mut(BLOCK_ROWS * ow))
            {
                let n = block.len() / iw;
                let mut stride = iw;
                for (index, layer) in self.layers.iter().enumerate() {
                    if index == 0 {
                        self.layer(layer, block, stride, n, a);
                    } else if index % 2 == 1 {
                        self.layer(layer, a, stride, n, b);
                    } else {
                        self.layer(layer, b, stride, n, a);
                    }
                    stride = layer.padded();
                }
                let last = if self.layers.len() % 2 == 1 { &*a } else { &*b };
                for (r, dst) in out_block.chunks_exact_mut(ow).enumerate() {
                    dst.copy_from_slice(&last[r * stride..r * stride + ow]);
                }
            }
        });
    }

    /// One layer on `n` rows of `src` (row stride `xs`) into `dst` (row stride: padded width).
    fn layer(&self, layer: &Layer, src: &[f32], xs: usize, n: usize, dst: &mut [f32]) {
        let os = layer.padded();
        let tile_rows = self.isa.tile_rows();
        let ws = layer.k * PANEL;
        for &(col, cols) in &layer.spans {
            // Weights of panel `p` start at `p * ws`; the narrow panel's after the full ones.
            let w = &layer.w[col / PANEL * ws..];
            let bias = &layer.b[col..col + cols];
            let mut r = 0;
            while r < n {
                let t = (n - r).min(tile_rows);
                kernels::tile(
                    self.isa,
                    t,
                    cols,
                    &src[r * xs..],
                    xs,
                    layer.k,
                    w,
                    ws,
                    bias,
                    &mut dst[r * os + col..],
                    os,
                    layer.act,
                );
                r += t;
            }
        }
    }
}

/// The number of cores to split big batches over (read once: the lookup reads cgroup files).
pub fn cores() -> usize {
    static CORES: OnceLock<usize> = OnceLock::new();
    *CORES.get_or_init(|| std::thread::available_parallelism().map_or(1, |n| n.get()))
}

/// For an einsum over (rows at `slot`, weights at `wslot`): the positions of the contracted
/// and the output axis in the weight matrix, when it is exactly `[batch, k] x W -> [batch, n]`.
fn matmul_axes(op: &EinSum, slot: usize, wslot: usize) -> Option<(usize, usize)> {
    let mut k_pos = None;
    let mut n_pos = None;
    let mut batch = false;
    for axis in op.axes.iter_all_axes() {
        let (x, w, o) = (&axis.inputs[slot], &axis.inputs[wslot], &axis.outputs[0]);
        match (x.as_slice(), w.as_slice(), o.as_slice()) {
            ([0], [], [0]) if !batch => batch = true,
            ([1], [p], []) if k_pos.is_none() => k_pos = Some(*p),
            ([], [p], [1]) if n_pos.is_none() => n_pos = Some(*p),
            _ => return None,
        }
    }
    match (batch, k_pos, n_pos) {
        (true, Some(k), Some(n)) if k != n => Some((k, n)),
        _ => None,
    }
}
