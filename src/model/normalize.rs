//! TensorFlow graph normalisation: rewrite a frozen `GraphDef` from TF 2.x / Keras 3 into the
//! dialect tract-tensorflow's (legacy) loader understands, before tract sees it.
//!
//! - input/output discovery: placeholders and sinks, or the names the caller gave (a node
//!   named as an input that is not a placeholder becomes one: the graph is cut there);
//! - control inputs dropped and the graph pruned to what the outputs need;
//! - compact constants expanded (TensorFlow stores `[0, 0, ..., 0]` as an empty value list and
//!   `[a, b, b, ..., b]` as `[a, b]`: an empty list means zeros, a short one repeats its last
//!   value);
//! - ops rewritten into ones tract runs: `SquaredDifference` → `Sub` + `Square`,
//!   `FusedBatchNorm{,V2,V3}` (inference) → `Rsqrt`/`Mul`/`Sub`/`AddV2` for any rank,
//!   `ZerosLike` → `Mul` by 0, `IdentityN` (what `tf.custom_gradient` leaves, e.g. around `silu`) bypassed,
//!   `StopGradient`/`Snapshot`/`PreventGradient`/`EnsureShape`/`CheckNumerics` → `Identity`;
//! - `Cast` of a constant folded into a constant of the cast's type.
//!
//! Ops that only need a kernel (Elu, LeakyRelu, Selu, Softplus, Square, Exp, Sqrt,
//! BatchMatMulV2, ...) are registered in `tf_ops` instead.

use std::collections::{HashMap, HashSet};
use std::path::Path;

use tract_tensorflow::tfpb::tensorflow::attr_value::Value;
use tract_tensorflow::tfpb::tensorflow::{
    AttrValue, DataType, GraphDef, NodeDef, TensorProto, TensorShapeProto,
};

use super::ModelError;

/// Ops that never produce a model output even when nothing consumes them.
const NOT_OUTPUTS: &[&str] = &[
    "Const",
    "NoOp",
    "Placeholder",
    "PlaceholderWithDefault",
    "Assert",
    "SaveV2",
    "RestoreV2",
    "VarHandleOp",
    "VariableV2",
];

/// The graph's inputs and outputs after normalisation (node names).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Io {
    pub inputs: Vec<String>,
    pub outputs: Vec<String>,
}

#[derive(Debug)]
pub enum NormalizeError {
    UnknownNode {
        name: String,
        candidates: String,
    },
    Unsupported {
        op: String,
        node: String,
        reason: String,
    },
    Invalid(String),
}

impl NormalizeError {
    pub fn into_model_error(self, path: &Path) -> ModelError {
        match self {
            NormalizeError::UnknownNode { name, candidates } => ModelError::UnknownNode {
                path: path.to_path_buf(),
                name,
                candidates,
            },
            NormalizeError::Unsupported { op, node, reason } => ModelError::Graph {
                path: path.to_path_buf(),
                reason: format!("op {op} (node {node:?}) cannot run: {reason}"),
            },
            NormalizeError::Invalid(reason) => ModelError::Malformed {
                path: path.to_path_buf(),
                format: "tensorflow",
                reason,
            },
        }
    }
}

/// `"name:1"` → `("name", 1)`, `"^name"` → `("name", 0)`.
fn parse_ref(input: &str) -> (&str, usize) {
    let input = input.strip_prefix('^').unwrap_or(input);
    match input.rsplit_once(':') {
        Some((node, slot)) => match slot.parse() {
            Ok(slot) => (node, slot),
            Err(_) => (input, 0),
        },
        None => (input, 0),
    }
}

pub fn normalize(
    graph: &mut GraphDef,
    inputs: Option<&[String]>,
    outputs: Option<&[String]>,
) -> Result<Io, NormalizeError> {
    let mut seen = HashSet::new();
    for node in &graph.node {
        if !seen.insert(node.name.as_str()) {
            return Err(NormalizeError::Invalid(format!(
                "two nodes are named {:?}",
                node.name
            )));
        }
    }
    bypass_identity_n(graph)?;
    for node in &mut graph.node {
        node.input.retain(|i| !i.starts_with('^'));
    }
    let candidates = || {
        let placeholders: Vec<_> = graph
            .node
            .iter()
            .filter(|n| n.op == "Placeholder")
            .map(|n| n.name.clone())
            .collect();
        format!("placeholders {:?}, sinks {:?}", placeholders, sinks(graph))
    };
    let check = |names: &[String]| -> Result<Vec<String>, NormalizeError> {
        names
            .iter()
            .map(|n| {
                let (name, _) = parse_ref(n);
                if graph.node.iter().any(|node| node.name == name) {
                    Ok(name.to_string())
                } else {
                    Err(NormalizeError::UnknownNode {
                        name: n.clone(),
                        candidates: candidates(),
                    })
                }
            })
            .collect()
    };
    let given_inputs = inputs.map(check).transpose()?;
    let outputs = match outputs {
        Some(names) => check(names)?,
        None => sinks(graph),
    };
    if outputs.is_empty() {
        return Err(NormalizeError::Invalid(
            "the graph has no output (no sink node)".into(),
        ));
    }
    if let Some(given) = &given_inputs {
        for node in &mut graph.node {
            if given.contains(&node.name) && node.op != "Placeholder" {
                cut_to_placeholder(node);
            }
        }
    }
    prune(graph, &outputs);
    let inputs = match given_inputs {
        Some(given) => given,
        None => graph
            .node
            .iter()
            .filter(|n| n.op == "Placeholder")
            .map(|n| n.name.clone())
            .collect(),
    };
    for node in &mut graph.node {
        for attr in node.attr.values_mut() {
            if let Some(Value::Tensor(tensor)) = &mut attr.value {
                expand_compact_constant(tensor).map_err(|reason| {
                    NormalizeError::Invalid(format!("constant {:?}: {reason}", node.name))
                })?;
            }
        }
    }
    fold_constant_casts(graph);
    rewrite_ops(graph)?;
    Ok(Io { inputs, outputs })
}

/// Nodes whose outputs nobody consumes, minus constants, placeholders and bookkeeping.
fn sinks(graph: &GraphDef) -> Vec<String> {
    let consumed: HashSet<&str> = graph
        .node
        .iter()
        .flat_map(|n| {
            n.input
                .iter()
                .filter(|i| !i.starts_with('^'))
                .map(|i| parse_ref(i).0)
        })
        .collect();
    graph
        .node
        .iter()
        .filter(|n| !consumed.contains(n.name.as_str()) && !NOT_OUTPUTS.contains(&n.op.as_str()))
        .map(|n| n.name.clone())
        .collect()
}

fn cut_to_placeholder(node: &mut NodeDef) {
    let dtype = ["T", "dtype", "DstT"]
        .iter()
        .find_map(|k| match node.attr.get(*k).and_then(|a| a.value.as_ref()) {
            Some(Value::Type(t)) => Some(*t),
            _ => None,
        })
        .unwrap_or(DataType::DtFloat as i32);
    node.op = "Placeholder".into();
    node.input.clear();
    node.attr.clear();
    node.attr.insert(
        "dtype".into(),
        AttrValue {
            value: Some(Value::Type(dtype)),
        },
    );
}

/// Keeps only the nodes the outputs depend on (data edges; placeholders stop the walk).
fn prune(graph: &mut GraphDef, outputs: &[String]) {
    let by_name: HashMap<&str, &NodeDef> =
        graph.node.iter().map(|n| (n.name.as_str(), n)).collect();
    let mut keep: HashSet<String> = HashSet::new();
    let mut stack: Vec<&str> = outputs.iter().map(|s| s.as_str()).collect();
    while let Some(name) = stack.pop() {
        if !keep.insert(name.to_string()) {
            continue;
        }
        if let Some(node) = by_name.get(name) {
            stack.extend(node.input.iter().map(|i| parse_ref(i).0));
        }
    }
    graph.node.retain(|n| keep.contains(&n.name));
}

/// Routes consumers of `IdentityN:k` to the IdentityN's k-th input, then drops it.
fn bypass_identity_n(graph: &mut GraphDef) -> Result<(), NormalizeError> {
    let forward: HashMap<String, Vec<String>> = graph
        .node
        .iter()
        .filter(|n| n.op == "IdentityN")
        .map(|n| {
            (
                n.name.clone(),
                n.input
                    .iter()
                    .filter(|i| !i.starts_with('^'))
                    .cloned()
                    .collect(),
            )
        })
        .collect();
    if forward.is_empty() {
        return Ok(());
    }
    for node in &mut graph.node {
        for input in &mut node.input {
            // IdentityN may feed IdentityN: follow the chain.
            for _ in 0..64 {
                if input.starts_with('^') {
                    break;
                }
                let (src, slot) = parse_ref(input);
                let Some(targets) = forward.get(src) else {
                    break;
                };
                let target = targets.get(slot).ok_or_else(|| {
                    NormalizeError::Invalid(format!(
                        "{:?} reads output {slot} of IdentityN {src:?}, which has {}",
                        node.name,
                        targets.len()
                    ))
                })?;
                *input = target.clone();
            }
        }
    }
    graph.node.retain(|n| n.op != "IdentityN");
    Ok(())
}

/// Number of elements of a tensor shape; `None` when a dimension is unknown.
fn element_count(shape: Option<&TensorShapeProto>) -> Option<usize> {
    let Some(shape) = shape else { return Some(1) };
    if shape.unknown_rank {
        return None;
    }
    shape.dim.iter().try_fold(1usize, |acc, d| {
        (d.size >= 0).then(|| acc * d.size as usize)
    })
}

fn fill<T: Clone + Default>(values: &mut Vec<T>, count: usize) {
    if values.len() < count {
        let last = values.last().cloned().unwrap_or_default();
        values.resize(count, last);
    }
}

/// Expands TensorFlow's compact constant encoding: an empty value list means all zeros, a
/// list shorter than the shape repeats its last value. Content given as raw bytes is left.
pub fn expand_compact_constant(t: &mut TensorProto) -> Result<(), String> {
    if !t.tensor_content.is_empty() {
        return Ok(());
    }
    let Some(count) = element_count(t.tensor_shape.as_ref()) else {
        return Ok(());
    };
    let dtype = DataType::from_i32(t.dtype).ok_or_else(|| format!("unknown dtype {}", t.dtype))?;
    let len = match dtype {
        DataType::DtFloat => (t.float_val.len(), fill(&mut t.float_val, count)).0,
        DataType::DtDouble => (t.double_val.len(), fill(&mut t.double_val, count)).0,
        DataType::DtInt32
        | DataType::DtInt16
        | DataType::DtInt8
        | DataType::DtUint8
        | DataType::DtUint16 => (t.int_val.len(), fill(&mut t.int_val, count)).0,
        DataType::DtInt64 => (t.int64_val.len(), fill(&mut t.int64_val, count)).0,
        DataType::DtBool => (t.bool_val.len(), fill(&mut t.bool_val, count)).0,
        DataType::DtHalf | DataType::DtBfloat16 => {
            (t.half_val.len(), fill(&mut t.half_val, count)).0
        }
        DataType::DtUint32 => (t.uint32_val.len(), fill(&mut t.uint32_val, count)).0,
        DataType::DtUint64 => (t.uint64_val.len(), fill(&mut t.uint64_val, count)).0,
        DataType::DtString => (t.string_val.len(), fill(&mut t.string_val, count)).0,
        _ => return Ok(()),
    };
    if len > count {
        return Err(format!("{len} values for a shape of {count} elements"));
    }
    Ok(())
}

fn float_attr(node: &NodeDef, name: &str) -> Option<f32> {
    match node.attr.get(name).and_then(|a| a.value.as_ref()) {
        Some(Value::F(f)) => Some(*f),
        _ => None,
    }
}

fn bool_attr(node: &NodeDef, name: &str) -> Option<bool> {
    match node.attr.get(name).and_then(|a| a.value.as_ref()) {
        Some(Value::B(b)) => Some(*b),
        _ => None,
    }
}

fn str_attr(node: &NodeDef, name: &str) -> Option<String> {
    match node.attr.get(name).and_then(|a| a.value.as_ref()) {
        Some(Value::S(s)) => Some(String::from_utf8_lossy(s).into_owned()),
        _ => None,
    }
}

fn type_attr(node: &NodeDef, name: &str) -> i32 {
    match node.attr.get(name).and_then(|a| a.value.as_ref()) {
        Some(Value::Type(t)) => *t,
        _ => DataType::DtFloat as i32,
    }
}

fn new_node(name: String, op: &str, inputs: &[&str], dtype: i32) -> NodeDef {
    let mut node = NodeDef {
        name,
        op: op.into(),
        ..Default::default()
    };
    node.input = inputs.iter().map(|s| s.to_string()).collect();
    node.attr.insert(
        "T".into(),
        AttrValue {
            value: Some(Value::Type(dtype)),
        },
    );
    node
}

fn scalar_const(name: String, value: f32) -> NodeDef {
    const_node(
        name,
        TensorProto {
            dtype: DataType::DtFloat as i32,
            tensor_shape: Some(TensorShapeProto::default()),
            float_val: vec![value],
            ..Default::default()
        },
    )
}

fn const_node(name: String, tensor: TensorProto) -> NodeDef {
    let mut node = NodeDef {
        name,
        op: "Const".into(),
        ..Default::default()
    };
    node.attr.insert(
        "dtype".into(),
        AttrValue {
            value: Some(Value::Type(tensor.dtype)),
        },
    );
    node.attr.insert(
        "value".into(),
        AttrValue {
            value: Some(Value::Tensor(tensor)),
        },
    );
    node
}

/// A `Cast` of a constant becomes a constant of the cast's type: Keras 3's `Rescaling` with
/// integer factors leaves `Cast(Const int32)`, which tract cannot evaluate while analysing.
fn fold_constant_casts(graph: &mut GraphDef) {
    let constants: HashMap<String, TensorProto> = graph
        .node
        .iter()
        .filter(|n| n.op == "Const")
        .filter_map(
            |n| match n.attr.get("value").and_then(|a| a.value.as_ref()) {
                Some(Value::Tensor(tensor)) => Some((n.name.clone(), tensor.clone())),
                _ => None,
            },
        )
        .collect();
    for node in &mut graph.node {
        if node.op != "Cast" || node.input.len() != 1 {
            continue;
        }
        let (source, slot) = parse_ref(&node.input[0]);
        let Some(tensor) = constants.get(source).filter(|_| slot == 0) else {
            continue;
        };
        if let Some(folded) = cast_constant(tensor, type_attr(node, "DstT")) {
            *node = const_node(node.name.clone(), folded);
        }
    }
}

/// A constant's values converted to `target` as TensorFlow's `Cast` does (floats to integers
/// truncate); `None` for types this does not handle (the `Cast` then stays).
fn cast_constant(tensor: &TensorProto, target: i32) -> Option<TensorProto> {
    enum Values {
        Floats(Vec<f64>),
        Integers(Vec<i64>),
    }
    let content = &tensor.tensor_content;
    let words = |size: usize| content.chunks_exact(size);
    let values = match DataType::from_i32(tensor.dtype)? {
        DataType::DtFloat if !content.is_empty() => Values::Floats(
            words(4)
                .map(|w| f32::from_le_bytes(w.try_into().unwrap()) as f64)
                .collect(),
        ),
        DataType::DtFloat => Values::Floats(tensor.float_val.iter().map(|v| *v as f64).collect()),
        DataType::DtDouble if !content.is_empty() => Values::Floats(
            words(8)
                .map(|w| f64::from_le_bytes(w.try_into().unwrap()))
                .collect(),
        ),
        DataType::DtDouble => Values::Floats(tensor.double_val.clone()),
        DataType::DtInt32 if !content.is_empty() => Values::Integers(
            words(4)
                .map(|w| i32::from_le_bytes(w.try_into().unwrap()) as i64)
                .collect(),
        ),
        DataType::DtInt32 => Values::Integers(tensor.int_val.iter().map(|v| *v as i64).collect()),
        DataType::DtInt64 if !content.is_empty() => Values::Integers(
            words(8)
                .map(|w| i64::from_le_bytes(w.try_into().unwrap()))
                .collect(),
        ),
        DataType::DtInt64 => Values::Integers(tensor.int64_val.clone()),
        DataType::DtBool if content.is_empty() => {
            Values::Integers(tensor.bool_val.iter().map(|v| *v as i64).collect())
        }
        _ => return None,
    };
    let as_floats = || match &values {
        Values::Floats(v) => v.clone(),
        Values::Integers(v) => v.iter().map(|x| *x as f64).collect(),
    };
    let as_integers = || match &values {
        Values::Floats(v) => v.iter().map(|x| x.trunc() as i64).collect(),
        Values::Integers(v) => v.clone(),
    };
    let mut folded = TensorProto {
        dtype: target,
        tensor_shape: tensor.tensor_shape.clone(),
        ..Default::default()
    };
    match DataType::from_i32(target)? {
        DataType::DtFloat => folded.float_val = as_floats().into_iter().map(|v| v as f32).collect(),
        DataType::DtDouble => folded.double_val = as_floats(),
        DataType::DtInt32 => folded.int_val = as_integers().into_iter().map(|v| v as i32).collect(),
        DataType::DtInt64 => folded.int64_val = as_integers(),
        DataType::DtBool => folded.bool_val = as_floats().into_iter().map(|v| v != 0.0).collect(),
        _ => return None,
    }
    Some(folded)
}

const IDENTITY_LIKE: &[&str] = &[
    "StopGradient",
    "Snapshot",
    "PreventGradient",
    "EnsureShape",
    "CheckNumerics",
];

fn rewrite_ops(graph: &mut GraphDef) -> Result<(), NormalizeError> {
    // Which nodes have outputs beyond :0 read (batch-norm statistics must not be).
    let extra_outputs_read: HashSet<String> = graph
        .node
        .iter()
        .flat_map(|n| n.input.iter())
        .filter_map(|i| {
            let (node, slot) = parse_ref(i);
            (slot > 0).then(|| node.to_string())
        })
        .collect();
    let mut out = Vec::with_capacity(graph.node.len());
    for mut node in std::mem::take(&mut graph.node) {
        let name = node.name.clone();
        match node.op.as_str() {
            op if IDENTITY_LIKE.contains(&op) => {
                node.op = "Identity".into();
                node.input.truncate(1);
                out.push(node);
            }
            "ZerosLike" => {
                // x * 0 keeps x's shape and dtype (float graphs: Keras' shrink activations).
                let t = type_attr(&node, "T");
                let zero = format!("{name}/kafkaml_zero");
                out.push(scalar_const(zero.clone(), 0.0));
                let x = node.input.first().cloned().unwrap_or_default();
                out.push(new_node(name, "Mul", &[&x, &zero], t));
            }
            "SquaredDifference" => {
                let t = type_attr(&node, "T");
                let sub = format!("{name}/kafkaml_sub");
                let inputs: Vec<&str> = node.input.iter().map(|s| s.as_str()).collect();
                out.push(new_node(sub.clone(), "Sub", &inputs, t));
                out.push(new_node(name, "Square", &[&sub], t));
            }
            "FusedBatchNorm" | "FusedBatchNormV2" | "FusedBatchNormV3" => {
                let unsupported = |reason: &str| NormalizeError::Unsupported {
                    op: node.op.clone(),
                    node: name.clone(),
                    reason: reason.to_string(),
                };
                if bool_attr(&node, "is_training").unwrap_or(true) {
                    return Err(unsupported(
                        "is_training=true (freeze the model for inference)",
                    ));
                }
                if let Some(format) = str_attr(&node, "data_format") {
                    if format.starts_with("NC") {
                        return Err(unsupported("channels-first data_format"));
                    }
                }
                if extra_outputs_read.contains(&name) {
                    return Err(unsupported("the graph reads its batch statistics outputs"));
                }
                if node.input.len() < 5 {
                    return Err(unsupported("expected 5 inputs"));
                }
                let epsilon = float_attr(&node, "epsilon").unwrap_or(1e-4);
                let t = type_attr(&node, "T");
                let [x, scale, offset, mean, var] = [0, 1, 2, 3, 4].map(|i| node.input[i].clone());
                let part = |p: &str| format!("{name}/kafkaml_{p}");
                out.push(scalar_const(part("epsilon"), epsilon));
                out.push(new_node(
                    part("var_eps"),
                    "AddV2",
                    &[&var, &part("epsilon")],
                    t,
                ));
                out.push(new_node(part("rsqrt"), "Rsqrt", &[&part("var_eps")], t));
                out.push(new_node(part("scale"), "Mul", &[&scale, &part("rsqrt")], t));
                out.push(new_node(part("x_scaled"), "Mul", &[&x, &part("scale")], t));
                out.push(new_node(
                    part("mean_scaled"),
                    "Mul",
                    &[&mean, &part("scale")],
                    t,
                ));
                out.push(new_node(
                    part("shift"),
                    "Sub",
                    &[&offset, &part("mean_scaled")],
                    t,
                ));
                out.push(new_node(
                    name.clone(),
                    "AddV2",
                    &[&part("x_scaled"), &part("shift")],
                    t,
                ));
            }
            _ => out.push(node),
        }
    }
    graph.node = out;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{LoadOptions, Model};
    use tract_tensorflow::tfpb;

    fn const_node(name: &str, shape: &[i64], values: &[f32]) -> NodeDef {
        let tensor = TensorProto {
            dtype: DataType::DtFloat as i32,
            tensor_shape: Some(TensorShapeProto {
                dim: shape
                    .iter()
                    .map(|&size| tfpb::tensorflow::tensor_shape_proto::Dim {
                        size,
                        name: String::new(),
                    })
                    .collect(),
                unknown_rank: false,
            }),
            float_val: values.to_vec(),
            ..Default::default()
        };
        tfpb::node()
            .name(name)
            .op("Const")
            .attr("dtype", DataType::DtFloat)
            .attr("value", tensor)
    }

    fn placeholder(width: i64) -> NodeDef {
        let shape = TensorShapeProto {
            dim: [-1, width]
                .iter()
                .map(|&size| tfpb::tensorflow::tensor_shape_proto::Dim {
                    size,
                    name: String::new(),
                })
                .collect(),
            unknown_rank: false,
        };
        tfpb::node()
            .name("x")
            .op("Placeholder")
            .attr("dtype", DataType::DtFloat)
            .attr("shape", shape)
    }

    /// Writes the graph to a temporary .pb and loads it the way users do.
    fn load(graph: GraphDef, tag: &str) -> Model {
        let dir = std::env::temp_dir().join(format!("kafkaml-norm-{}-{tag}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("g.pb");
        std::fs::write(&path, graph.write_to_bytes().unwrap()).unwrap();
        let model = Model::load(&path, &LoadOptions::default());
        std::fs::remove_dir_all(&dir).ok();
        model.unwrap_or_else(|e| panic!("{tag}: {e}"))
    }

    fn sample(n: usize, width: usize) -> Vec<f32> {
        (0..n * width)
            .map(|i| ((i as f32) * 0.37).sin() * 3.0)
            .collect()
    }

    fn assert_close(got: &[f32], want: &[f32], tol: f32, what: &str) {
        assert_eq!(got.len(), want.len(), "{what}");
        for (i, (g, w)) in got.iter().zip(want).enumerate() {
            assert!(
                (g - w).abs() <= tol * w.abs().max(1.0),
                "{what}[{i}]: got {g}, want {w}"
            );
        }
    }

    #[test]
    fn compact_constants_expand() {
        let mut t = TensorProto {
            dtype: DataType::DtFloat as i32,
            tensor_shape: Some(TensorShapeProto {
                dim: vec![tfpb::tensorflow::tensor_shape_proto::Dim {
                    size: 4,
                    name: String::new(),
                }],
                unknown_rank: false,
            }),
            ..Default::default()
        };
        expand_compact_constant(&mut t).unwrap();
        assert_eq!(t.float_val, vec![0.0; 4]);
        t.float_val = vec![1.0, 2.5];
        expand_compact_constant(&mut t).unwrap();
        assert_eq!(t.float_val, vec![1.0, 2.5, 2.5, 2.5]);
        t.dtype = DataType::DtInt64 as i32;
        t.int64_val = vec![7];
        expand_compact_constant(&mut t).unwrap();
        assert_eq!(t.int64_val, vec![7; 4]);
        t.int64_val = vec![1, 2, 3, 4, 5];
        assert!(expand_compact_constant(&mut t).is_err());
    }

    #[test]
    fn compact_constants_load_and_run() {
        // x @ W + b with W stored as [1, 2] (repeat last) and b stored empty (zeros).
        let graph = tfpb::graph()
            .node(placeholder(3))
            .node(const_node("w", &[3, 2], &[1.0, 2.0]))
            .node(const_node("b", &[2], &[]))
            .node(
                tfpb::node()
                    .name("mm")
                    .op("MatMul")
                    .input("x")
                    .input("w")
                    .attr("T", DataType::DtFloat)
                    .attr("transpose_a", false)
                    .attr("transpose_b", false),
            )
            .node(
                tfpb::node()
                    .name("y")
                    .op("BiasAdd")
                    .input("mm")
                    .input("b")
                    .attr("T", DataType::DtFloat),
            );
        let model = load(graph, "compact");
        let x = sample(5, 3);
        let w = [1.0, 2.0, 2.0, 2.0, 2.0, 2.0];
        let want: Vec<f32> = x
            .chunks(3)
            .flat_map(|r| (0..2).map(move |j| (0..3).map(|k| r[k] * w[k * 2 + j]).sum::<f32>()))
            .collect();
        assert_close(&model.predict_rows(&x, 5).unwrap(), &want, 1e-5, "compact");
    }

    #[test]
    fn casts_of_constants_fold_and_run() {
        // Keras 3's Rescaling(3, offset=5): x * Cast(int32 3) + Cast(int32 5).
        let int_const = |name: &str, value: i32| {
            let tensor = TensorProto {
                dtype: DataType::DtInt32 as i32,
                tensor_shape: Some(TensorShapeProto::default()),
                int_val: vec![value],
                ..Default::default()
            };
            tfpb::node()
                .name(name)
                .op("Const")
                .attr("dtype", DataType::DtInt32)
                .attr("value", tensor)
        };
        let cast = |name: &str, input: &str| {
            tfpb::node()
                .name(name)
                .op("Cast")
                .input(input)
                .attr("SrcT", DataType::DtInt32)
                .attr("DstT", DataType::DtFloat)
        };
        let binary = |name: &str, op: &str, a: &str, b: &str| {
            tfpb::node()
                .name(name)
                .op(op)
                .input(a)
                .input(b)
                .attr("T", DataType::DtFloat)
        };
        let graph = tfpb::graph()
            .node(placeholder(2))
            .node(int_const("scale", 3))
            .node(int_const("offset", 5))
            .node(cast("scale_f", "scale"))
            .node(cast("offset_f", "offset"))
            .node(binary("mul", "Mul", "x", "scale_f"))
            .node(binary("y", "AddV2", "mul", "offset_f"));
        let model = load(graph, "cast");
        let x = sample(4, 2);
        let want: Vec<f32> = x.iter().map(|v| v * 3.0 + 5.0).collect();
        assert_close(&model.predict_rows(&x, 4).unwrap(), &want, 1e-6, "cast");

        let folded = cast_constant(
            &TensorProto {
                dtype: DataType::DtFloat as i32,
                float_val: vec![2.7, -2.7],
                ..Default::default()
            },
            DataType::DtInt32 as i32,
        )
        .unwrap();
        assert_eq!(folded.int_val, vec![2, -2], "floats to integers truncate");
    }

    fn unary_graph(op: &str, attrs: Vec<(&str, AttrValue)>) -> GraphDef {
        let mut node = tfpb::node()
            .name("y")
            .op(op)
            .input("x")
            .attr("T", DataType::DtFloat);
        for (k, v) in attrs {
            node = node.attr(k, v);
        }
        tfpb::graph().node(placeholder(6)).node(node)
    }

    fn check_unary(op: &str, attrs: Vec<(&str, AttrValue)>, reference: fn(f64) -> f64, tol: f32) {
        let model = load(unary_graph(op, attrs), op);
        let mut x = sample(7, 6);
        x[0] = 40.0; // large values: stable softplus, no overflow
        x[1] = -40.0;
        if matches!(op, "Sqrt" | "Rsqrt" | "Log" | "Log1p") {
            x.iter_mut().for_each(|v| *v = v.abs() + 0.1);
        }
        let want: Vec<f32> = x.iter().map(|&v| reference(v as f64) as f32).collect();
        assert_close(&model.predict_rows(&x, 7).unwrap(), &want, tol, op);
    }

    #[test]
    fn activation_ops_match_reference() {
        check_unary(
            "Elu",
            vec![],
            |x| if x > 0.0 { x } else { x.exp() - 1.0 },
            1e-6,
        );
        check_unary(
            "Selu",
            vec![],
            |x| {
                1.0507009873554805
                    * if x > 0.0 {
                        x
                    } else {
                        1.6732632423543772 * (x.exp() - 1.0)
                    }
            },
            1e-6,
        );
        check_unary(
            "LeakyRelu",
            vec![("alpha", 0.3f32.into())],
            |x| if x > 0.0 { x } else { 0.3 * x },
            1e-6,
        );
        check_unary(
            "Softplus",
            vec![],
            |x| x.max(0.0) + (-x.abs()).exp().ln_1p(),
            1e-6,
        );
        check_unary("Softsign", vec![], |x| x / (1.0 + x.abs()), 1e-6);
        check_unary("Square", vec![], |x| x * x, 1e-6);
        check_unary("Exp", vec![], f64::exp, 1e-5);
        check_unary("Sqrt", vec![], f64::sqrt, 1e-6);
        check_unary("Erf", vec![], erf_ref, 1e-5);
        check_unary("Sigmoid", vec![], |x| 1.0 / (1.0 + (-x).exp()), 1e-6);
        check_unary("Reciprocal", vec![], |x| 1.0 / x, 1e-5);
        check_unary("Log1p", vec![], f64::ln_1p, 1e-6);
        check_unary("Expm1", vec![], f64::exp_m1, 1e-5);
        check_unary("Erfc", vec![], |x| 1.0 - erf_ref(x), 1e-5);
        check_unary("ZerosLike", vec![], |_| 0.0, 0.0);
    }

    /// erf by its series / continued fraction: enough for a 1e-6 reference.
    fn erf_ref(x: f64) -> f64 {
        if x.abs() > 5.0 {
            return x.signum();
        }
        let mut sum = x;
        let mut term = x;
        let mut n = 0.0;
        while term.abs() > 1e-17 * sum.abs().max(1e-300) && n < 200.0 {
            n += 1.0;
            term *= -x * x / n;
            sum += term / (2.0 * n + 1.0);
        }
        sum * 2.0 / std::f64::consts::PI.sqrt()
    }

    #[test]
    fn softmax_runs_over_the_last_axis() {
        let model = load(unary_graph("Softmax", vec![]), "softmax");
        let x = sample(3, 6);
        let want: Vec<f32> = x
            .chunks(6)
            .flat_map(|r| {
                let m = r.iter().cloned().fold(f32::MIN, f32::max);
                let s: f32 = r.iter().map(|v| (v - m).exp()).sum();
                r.iter().map(move |v| (v - m).exp() / s).collect::<Vec<_>>()
            })
            .collect();
        assert_close(&model.predict_rows(&x, 3).unwrap(), &want, 1e-6, "Softmax");
    }

    #[test]
    fn squared_difference_and_batch_matmul() {
        let graph = tfpb::graph()
            .node(placeholder(4))
            .node(const_node("c", &[4], &[1.0, -2.0, 0.5, 3.0]))
            .node(const_node(
                "w",
                &[4, 4],
                &(0..16).map(|i| i as f32 * 0.1).collect::<Vec<_>>(),
            ))
            .node(
                tfpb::node()
                    .name("d")
                    .op("SquaredDifference")
                    .input("x")
                    .input("c")
                    .attr("T", DataType::DtFloat),
            )
            .node(
                tfpb::node()
                    .name("y")
                    .op("BatchMatMulV2")
                    .input("d")
                    .input("w")
                    .attr("T", DataType::DtFloat)
                    .attr("adj_x", false)
                    .attr("adj_y", true),
            );
        let model = load(graph, "sqdiff");
        let x = sample(3, 4);
        let c = [1.0, -2.0, 0.5, 3.0];
        let want: Vec<f32> = x
            .chunks(4)
            .flat_map(|r| {
                let d: Vec<f32> = r.iter().zip(c).map(|(a, b)| (a - b) * (a - b)).collect();
                // adj_y: y = d @ w^T, w[j][k] = (4j + k) * 0.1
                (0..4).map(move |j| (0..4).map(|k| d[k] * (4 * j + k) as f32 * 0.1).sum::<f32>())
            })
            .collect();
        assert_close(
            &model.predict_rows(&x, 3).unwrap(),
            &want,
            1e-5,
            "SquaredDifference+BatchMatMulV2",
        );
    }

    #[test]
    fn fused_batch_norm_v3_rank_2_and_4() {
        for rank4 in [false, true] {
            let mut graph = tfpb::graph().node(placeholder(3));
            let mut input = "x".to_string();
            if rank4 {
                graph = graph
                    .node(
                        tfpb::node()
                            .name("shape")
                            .op("Const")
                            .attr("dtype", DataType::DtInt32)
                            .attr(
                                "value",
                                TensorProto {
                                    dtype: DataType::DtInt32 as i32,
                                    tensor_shape: Some(TensorShapeProto {
                                        dim: vec![tfpb::tensorflow::tensor_shape_proto::Dim {
                                            size: 4,
                                            name: String::new(),
                                        }],
                                        unknown_rank: false,
                                    }),
                                    int_val: vec![-1, 1, 1, 3],
                                    ..Default::default()
                                },
                            ),
                    )
                    .node(
                        tfpb::node()
                            .name("r")
                            .op("Reshape")
                            .input("x")
                            .input("shape")
                            .attr("T", DataType::DtFloat)
                            .attr("Tshape", DataType::DtInt32),
                    );
                input = "r".into();
            }
            graph = graph
                .node(const_node("gamma", &[3], &[1.0, 2.0, 0.5]))
                .node(const_node("beta", &[3], &[0.0, 1.0, -1.0]))
                .node(const_node("mean", &[3], &[0.5, -0.5, 2.0]))
                .node(const_node("var", &[3], &[1.0, 4.0, 0.25]))
                .node(
                    tfpb::node()
                        .name("y")
                        .op("FusedBatchNormV3")
                        .input(&input)
                        .input("gamma")
                        .input("beta")
                        .input("mean")
                        .input("var")
                        .attr("T", DataType::DtFloat)
                        .attr("U", DataType::DtFloat)
                        .attr("epsilon", 0.001f32)
                        .attr("is_training", false)
                        .attr("data_format", "NHWC"),
                );
            let model = load(graph, if rank4 { "bn4" } else { "bn2" });
            let x = sample(4, 3);
            let (g, b, m, v) = (
                [1.0, 2.0, 0.5],
                [0.0, 1.0, -1.0],
                [0.5, -0.5, 2.0],
                [1.0, 4.0, 0.25],
            );
            let want: Vec<f32> = x
                .chunks(3)
                .flat_map(|r| {
                    (0..3).map(move |c| (r[c] - m[c]) * g[c] / (v[c] + 0.001f32).sqrt() + b[c])
                })
                .collect();
            assert_close(
                &model.predict_rows(&x, 4).unwrap(),
                &want,
                1e-5,
                "FusedBatchNormV3",
            );
        }
    }

    #[test]
    fn identity_n_and_control_inputs_are_bypassed() {
        let graph = tfpb::graph()
            .node(placeholder(2))
            .node(tfpb::node().name("noop").op("NoOp"))
            .node(
                tfpb::node()
                    .name("s")
                    .op("Sigmoid")
                    .input("x")
                    .attr("T", DataType::DtFloat),
            )
            .node(
                tfpb::node()
                    .name("m")
                    .op("Mul")
                    .input("x")
                    .input("s")
                    .input("^noop")
                    .attr("T", DataType::DtFloat),
            )
            .node(
                tfpb::node()
                    .name("idn")
                    .op("IdentityN")
                    .input("m")
                    .input("x"),
            )
            .node(
                tfpb::node()
                    .name("y")
                    .op("StopGradient")
                    .input("idn:0")
                    .attr("T", DataType::DtFloat),
            );
        let model = load(graph, "idn");
        let x = sample(2, 2);
        let want: Vec<f32> = x.iter().map(|v| v / (1.0 + (-v).exp())).collect();
        assert_close(
            &model.predict_rows(&x, 2).unwrap(),
            &want,
            1e-6,
            "silu via IdentityN",
        );
    }

    #[test]
    fn expand_dims_negative_axis_counts_from_the_output_end() {
        for (axis, shape) in [
            (-1, vec![None, Some(6), Some(1)]),
            (-2, vec![None, Some(1), Some(6)]),
        ] {
            let axis_node = tfpb::node()
                .name("axis")
                .op("Const")
                .attr("dtype", DataType::DtInt32)
                .attr(
                    "value",
                    TensorProto {
                        dtype: DataType::DtInt32 as i32,
                        tensor_shape: Some(TensorShapeProto::default()),
                        int_val: vec![axis],
                        ..Default::default()
                    },
                );
            let graph = tfpb::graph().node(placeholder(6)).node(axis_node).node(
                tfpb::node()
                    .name("y")
                    .op("ExpandDims")
                    .input("x")
                    .input("axis")
                    .attr("T", DataType::DtFloat)
                    .attr("Tdim", DataType::DtInt32),
            );
            let model = load(graph, &format!("expand{axis}"));
            assert_eq!(model.output().shape, shape, "axis {axis}");
            let x = sample(3, 6);
            assert_eq!(model.predict_rows(&x, 3).unwrap(), x);
        }
    }

    #[test]
    fn unknown_op_names_op_and_node() {
        let graph = unary_graph("FancyNewOp", vec![]);
        let dir = std::env::temp_dir().join(format!("kafkaml-norm-{}-unknown", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("g.pb");
        std::fs::write(&path, graph.write_to_bytes().unwrap()).unwrap();
        let err = Model::load(&path, &LoadOptions::default()).unwrap_err();
        std::fs::remove_dir_all(&dir).ok();
        let message = err.to_string();
        assert!(
            message.contains("FancyNewOp") && message.contains("\"y\""),
            "{message}"
        );
    }

    #[test]
    fn sinks_skip_constants_and_given_names_are_checked() {
        let mut graph = tfpb::graph()
            .node(placeholder(2))
            .node(const_node("unused", &[1], &[1.0]))
            .node(
                tfpb::node()
                    .name("y")
                    .op("Relu")
                    .input("x")
                    .attr("T", DataType::DtFloat),
            );
        let io = normalize(&mut graph.clone(), None, None).unwrap();
        assert_eq!(
            io,
            Io {
                inputs: vec!["x".into()],
                outputs: vec!["y".into()]
            }
        );
        let err = normalize(&mut graph, None, Some(&["nope:0".to_string()])).unwrap_err();
        assert!(matches!(err, NormalizeError::UnknownNode { .. }));
    }
}
