//! Reading a model file into an optimised tract plan: format detection, the TensorFlow and
//! ONNX front ends, input/output discovery and the symbolic batch dimension.

use std::path::Path;
use std::sync::Arc;

use tract_hir::internal::{DimLike, Factoid, GenericFactoid};
use tract_tensorflow::prelude::*;

use super::dense::DenseNet;
use super::{normalize, tf_ops, Backend, Model, ModelError, ModelFormat, Plan, Plans, TensorInfo};

/// An optimised plan for exactly `batch` rows.
pub(super) fn specialise(
    model: &InferenceModel,
    dt: DatumType,
    row_shape: &[usize],
    batch: usize,
) -> TractResult<Arc<Plan>> {
    let mut model = model.clone();
    let shape: Vec<usize> = std::iter::once(batch)
        .chain(row_shape.iter().copied())
        .collect();
    model.set_input_fact(0, InferenceFact::dt_shape(dt, shape))?;
    Ok(Arc::new(model.into_optimized()?.into_runnable()?))
}

/// By extension first (`.onnx`, `.pb`), else by content: an ONNX `ModelProto` starts with
/// its `ir_version` varint (field 1, tag byte 0x08), a `GraphDef` with a node (tag 0x0a).
pub(super) fn detect_format(path: &Path, bytes: &[u8]) -> ModelFormat {
    match path
        .extension()
        .and_then(|e| e.to_str())
        .map(|e| e.to_ascii_lowercase())
    {
        Some(ext) if ext == "onnx" => ModelFormat::Onnx,
        Some(ext) if ext == "pb" || ext == "graphdef" => ModelFormat::TensorFlow,
        _ if bytes.first() == Some(&0x08) => ModelFormat::Onnx,
        _ => ModelFormat::TensorFlow,
    }
}

pub(super) fn load(
    path: &Path,
    format: ModelFormat,
    bytes: &[u8],
    options: &super::LoadOptions,
) -> Result<Model, ModelError> {
    let malformed = |e: TractError| ModelError::Malformed {
        path: path.to_path_buf(),
        format: format.as_str(),
        reason: format!("{e:#}"),
    };
    let graph_err = |e: TractError| ModelError::Graph {
        path: path.to_path_buf(),
        reason: format!("{e:#}"),
    };
    let model = match format {
        ModelFormat::TensorFlow => {
            let tf = tf_ops::tensorflow();
            let mut graph = tf.read_frozen_model(&mut &bytes[..]).map_err(malformed)?;
            if graph.node.is_empty() {
                return Err(malformed(TractError::msg("the graph has no nodes")));
            }
            let io = normalize::normalize(
                &mut graph,
                options.inputs.as_deref(),
                options.outputs.as_deref(),
            )
            .map_err(|e| e.into_model_error(path))?;
            for node in &graph.node {
                if !tf.op_register.0.contains_key(&node.op) {
                    return Err(ModelError::UnsupportedOp {
                        path: path.to_path_buf(),
                        format: format.as_str(),
                        op: node.op.clone(),
                        node: node.name.clone(),
                    });
                }
            }
            let mut model = tf.parse_graph(&graph).map_err(malformed)?.0;
            model.set_input_names(&io.inputs).map_err(graph_err)?;
            model.set_output_names(&io.outputs).map_err(graph_err)?;
            model
        }
        ModelFormat::Onnx => {
            let mut model = tf_ops::onnx()
                .model_for_read(&mut &bytes[..])
                .map_err(malformed)?;
            if let Some(inputs) = &options.inputs {
                check_names(path, &model, inputs)?;
                model.set_input_names(inputs).map_err(graph_err)?;
            }
            if let Some(outputs) = &options.outputs {
                check_names(path, &model, outputs)?;
                model.set_output_names(outputs).map_err(graph_err)?;
            }
            for node in model.nodes() {
                let name = node.op.name();
                if let Some(op) = name
                    .strip_prefix("Unimplemented(")
                    .and_then(|s| s.strip_suffix(')'))
                {
                    return Err(ModelError::UnsupportedOp {
                        path: path.to_path_buf(),
                        format: format.as_str(),
                        op: op.to_string(),
                        node: node.name.clone(),
                    });
                }
            }
            model
        }
    };

    let input_outlets = model.input_outlets().map_err(graph_err)?.to_vec();
    let output_outlets = model.output_outlets().map_err(graph_err)?.to_vec();
    let names = |outlets: &[OutletId], model: &InferenceModel| {
        outlets
            .iter()
            .map(|o| model.node(o.node).name.clone())
            .collect::<Vec<_>>()
    };
    if input_outlets.len() != 1 {
        return Err(ModelError::Graph {
            path: path.to_path_buf(),
            reason: format!(
                "kafkaml runs models with one input, this one has {}: {:?} (choose one with inputs=[...])",
                input_outlets.len(),
                names(&input_outlets, &model)
            ),
        });
    }
    if output_outlets.len() != 1 {
        return Err(ModelError::Graph {
            path: path.to_path_buf(),
            reason: format!(
                "kafkaml runs models with one output, this one has {}: {:?} (choose one with outputs=[...])",
                output_outlets.len(),
                names(&output_outlets, &model)
            ),
        });
    }
    let input_name = model.node(input_outlets[0].node).name.clone();
    let output_name = model.node(output_outlets[0].node).name.clone();

    let fact = model.input_fact(0).map_err(graph_err)?.clone();
    let input_dt = fact.datum_type.concretize().unwrap_or(DatumType::F32);
    if !matches!(input_dt, DatumType::F32 | DatumType::F64) {
        return Err(ModelError::DType(format!(
            "{}: input {input_name:?} is {input_dt:?}; kafkaml feeds float32 or float64 inputs",
            path.display()
        )));
    }
    let declared: Option<Vec<Option<usize>>> = if fact.shape.is_open() {
        None
    } else {
        Some(
            fact.shape
                .dims()
                .map(|d| match d {
                    GenericFactoid::Only(d) => d.to_usize().ok(),
                    GenericFactoid::Any => None,
                })
                .collect(),
        )
    };
    let row_shape: Vec<usize> = match (&options.input_shape, &declared) {
        (Some(given), Some(declared)) => {
            let fits = declared.len() == given.len() + 1
                && declared[1..].iter().zip(given).all(|(d, g)| d.is_none_or(|d| d == *g));
            if !fits {
                return Err(ModelError::Shape(format!(
                    "{}: input_shape {given:?} does not fit input {input_name:?} declared as {}",
                    path.display(),
                    show_shape(declared)
                )));
            }
            given.clone()
        }
        (Some(given), None) => given.clone(),
        (None, Some(declared)) if !declared.is_empty() && declared[1..].iter().all(|d| d.is_some()) => {
            declared[1..].iter().map(|d| d.unwrap()).collect()
        }
        (None, declared) => {
            return Err(ModelError::Shape(format!(
                "{}: input {input_name:?} has {} shape; pass input_shape (one row, without the batch dimension)",
                path.display(),
                declared.as_ref().map_or("no declared".to_string(), |d| format!("the open {}", show_shape(d)))
            )))
        }
    };

    // One plan for every batch size (the batch a symbol) when the graph allows it; else
    // plans specialised per batch-size bucket on demand (see `Plans::PerBatch`).
    let batch = model.sym("N");
    let mut dims: TVec<TDim> = tvec![batch.into()];
    dims.extend(row_shape.iter().map(|d| d.to_dim()));
    let mut symbolic = model.clone();
    symbolic
        .set_input_fact(0, InferenceFact::dt_shape(input_dt, dims))
        .map_err(graph_err)?;
    // The decluttered graph is where the dense backend reads its layers (when asked to).
    let mut dense = None;
    let optimized = symbolic.into_typed().and_then(|typed| {
        let typed = typed.into_decluttered()?;
        if options.backend != Backend::Tract {
            dense = Some(DenseNet::from_typed(&typed));
        }
        typed.into_optimized()?.into_runnable()
    });
    let plans = match optimized {
        Ok(plan) => Plans::Symbolic(Arc::new(plan)),
        Err(symbolic_err) => {
            let plan = specialise(&model, input_dt, &row_shape, 1).map_err(|e| ModelError::Graph {
                path: path.to_path_buf(),
                reason: format!(
                    "cannot prepare the graph for rows of shape {row_shape:?}: {e:#} (with a symbolic batch: {symbolic_err:#})"
                ),
            })?;
            let cache = std::collections::HashMap::from([(1, plan)]);
            Plans::PerBatch {
                source: Box::new(model),
                cache: std::sync::Mutex::new(cache),
            }
        }
    };
    let typed = plans.any_plan().model().clone();
    let out_fact = typed.output_fact(0).map_err(graph_err)?.clone();
    let output_dt = out_fact.datum_type;
    let out_dims = out_fact.shape.dims();
    if out_dims.is_empty() {
        return Err(ModelError::Shape(format!(
            "{}: output {output_name:?} is a scalar, kafkaml needs one output row per input row",
            path.display()
        )));
    }
    let mut out_row = Vec::with_capacity(out_dims.len() - 1);
    for d in &out_dims[1..] {
        out_row.push(d.to_usize().map_err(|_| {
            ModelError::Shape(format!(
                "{}: output {output_name:?} has shape {:?}: only the batch dimension may vary",
                path.display(),
                out_dims
            ))
        })?);
    }
    if !matches!(
        output_dt,
        DatumType::F32 | DatumType::F64 | DatumType::F16 | DatumType::I32 | DatumType::I64
    ) {
        return Err(ModelError::DType(format!(
            "{}: output {output_name:?} is {output_dt:?}; kafkaml returns float32",
            path.display()
        )));
    }
    let input_width = row_shape.iter().product();
    let output_width = out_row.iter().product();
    let model = Model {
        plans,
        dense: None,
        path: path.to_path_buf(),
        format,
        input: TensorInfo {
            name: input_name,
            shape: std::iter::once(None)
                .chain(row_shape.iter().map(|d| Some(*d)))
                .collect(),
            dtype: dtype_name(input_dt),
        },
        output: TensorInfo {
            name: output_name,
            shape: std::iter::once(None)
                .chain(out_row.iter().map(|d| Some(*d)))
                .collect(),
            dtype: dtype_name(output_dt),
        },
        input_dt,
        output_dt,
        row_shape,
        input_width,
        output_width,
    };
    model.with_backend(options.backend, dense)
}

fn check_names(path: &Path, model: &InferenceModel, names: &[String]) -> Result<(), ModelError> {
    for name in names {
        if model.node_by_name(name).is_err() {
            let inputs: Vec<_> = model
                .input_outlets()
                .map(|o| o.iter().map(|o| model.node(o.node).name.clone()).collect())
                .unwrap_or_default();
            let outputs: Vec<_> = model
                .output_outlets()
                .map(|o| o.iter().map(|o| model.node(o.node).name.clone()).collect())
                .unwrap_or_default();
            return Err(ModelError::UnknownNode {
                path: path.to_path_buf(),
                name: name.clone(),
                candidates: format!("inputs {inputs:?}, outputs {outputs:?}"),
            });
        }
    }
    Ok(())
}

fn show_shape(dims: &[Option<usize>]) -> String {
    let parts: Vec<String> = dims
        .iter()
        .map(|d| d.map_or("?".to_string(), |d| d.to_string()))
        .collect();
    format!("[{}]", parts.join(", "))
}

fn dtype_name(dt: DatumType) -> String {
    match dt {
        DatumType::F16 => "float16",
        DatumType::F32 => "float32",
        DatumType::F64 => "float64",
        DatumType::I32 => "int32",
        DatumType::I64 => "int64",
        DatumType::Bool => "bool",
        _ => return format!("{dt:?}").to_lowercase(),
    }
    .to_string()
}
