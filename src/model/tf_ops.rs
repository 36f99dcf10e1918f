//! TensorFlow ops kafkaml adds to tract-tensorflow's op register: ops that need only a
//! kernel tract already has (graph rewrites live in `normalize`).

use tract_hir::internal::*;
use tract_hir::ops;
use tract_hir::ops::activations::{broadcast_scalar, Elu, LeakyRelu, Selu, Softsign};
use tract_hir::ops::nn::{LayerLogSoftmax, LayerSoftmax};
use tract_tensorflow::model::ParsingContext;
use tract_tensorflow::tfpb::tensorflow::NodeDef;
use tract_tensorflow::Tensorflow;

/// tract-onnx's loader with kafkaml's additions (ops tf2onnx leaves in TensorFlow's names).
pub fn onnx() -> tract_onnx::Onnx {
    let mut onnx = tract_onnx::onnx();
    onnx.op_register
        .insert("Expm1", |_, _| Ok((expand(Composite::Expm1), vec![])));
    onnx.op_register
        .insert("Erfc", |_, _| Ok((expand(Composite::Erfc), vec![])));
    onnx.op_register
        .insert("Log1p", |_, _| Ok((expand(Composite::Log1p), vec![])));
    onnx
}

/// tract-tensorflow's loader with kafkaml's additions registered.
pub fn tensorflow() -> Tensorflow {
    let mut tf = tract_tensorflow::tensorflow();
    let reg = &mut tf.op_register;
    reg.insert("Elu", |_, _| Ok(expand(Elu(1.0))));
    reg.insert("Selu", |_, _| Ok(expand(Selu(1.673_263_2, 1.050_701))));
    reg.insert("LeakyRelu", leaky_relu);
    reg.insert("Softplus", |_, _| Ok(expand(Composite::Softplus)));
    reg.insert("Softsign", |_, _| Ok(expand(Softsign)));
    reg.insert("Log1p", |_, _| Ok(expand(Composite::Log1p)));
    reg.insert("Expm1", |_, _| Ok(expand(Composite::Expm1)));
    reg.insert("Erfc", |_, _| Ok(expand(Composite::Erfc)));
    reg.insert("SelectV2", |_, _| Ok(expand(tract_hir::ops::logic::Iff)));
    reg.insert("Square", |_, _| Ok(ops::math::square().into_hir()));
    reg.insert("Exp", |_, _| Ok(ops::math::exp().into_hir()));
    reg.insert("Sqrt", |_, _| Ok(ops::math::sqrt().into_hir()));
    reg.insert("Erf", |_, _| Ok(ops::math::erf().into_hir()));
    reg.insert("Reciprocal", |_, _| Ok(ops::math::recip().into_hir()));
    reg.insert("Inv", |_, _| Ok(ops::math::recip().into_hir()));
    reg.insert("Sign", |_, _| Ok(ops::math::sign().into_hir()));
    reg.insert("Floor", |_, _| Ok(ops::math::floor().into_hir()));
    reg.insert("Round", |_, _| {
        Ok(ops::math::round_half_to_even().into_hir())
    });
    reg.insert("Sin", |_, _| Ok(ops::math::sin().into_hir()));
    reg.insert("Cos", |_, _| Ok(ops::math::cos().into_hir()));
    // tract-tensorflow's Softmax normalises axis 1 of a 2-D view; TensorFlow's is the last axis.
    reg.insert("Softmax", |_, _| Ok(expand(LayerSoftmax::new(-1, false))));
    reg.insert("LogSoftmax", |_, _| {
        Ok(expand(LayerLogSoftmax::new(-1, false)))
    });
    // tract-tensorflow's ExpandDims maps a negative axis against the input's rank instead of
    // the output's (Keras' Conv1D uses axis -3).
    reg.insert("ExpandDims", |_, _| Ok(expand(ExpandDims)));
    reg.insert("BatchMatMul", batch_mat_mul);
    reg.insert("BatchMatMulV2", batch_mat_mul);
    reg.insert("BatchMatMulV3", batch_mat_mul);
    tf
}

fn leaky_relu(_ctx: &ParsingContext, node: &NodeDef) -> TractResult<Box<dyn InferenceOp>> {
    let alpha = node.get_attr_opt_float::<f32>("alpha")?.unwrap_or(0.2);
    Ok(expand(LeakyRelu(alpha)))
}

fn batch_mat_mul(_ctx: &ParsingContext, node: &NodeDef) -> TractResult<Box<dyn InferenceOp>> {
    let adj_x = node.get_attr_opt_bool("adj_x")?.unwrap_or(false);
    let adj_y = node.get_attr_opt_bool("adj_y")?.unwrap_or(false);
    Ok(expand(
        ops::matmul::MatMulInference::default()
            .with_a_trans(adj_x)
            .with_b_trans(adj_y),
    ))
}

fn unary_rules<'r, 'p: 'r, 's: 'r>(
    s: &mut Solver<'r>,
    inputs: &'p [TensorProxy],
    outputs: &'p [TensorProxy],
) -> InferenceResult {
    check_input_arity(inputs, 1)?;
    check_output_arity(outputs, 1)?;
    s.equals(&inputs[0].datum_type, &outputs[0].datum_type)?;
    s.equals(&inputs[0].shape, &outputs[0].shape)?;
    Ok(())
}

/// ExpandDims(x, axis) with a constant axis; a negative axis counts from the end of the
/// output (TensorFlow's meaning: -1 appends a dimension).
#[derive(Debug, Clone, Hash)]
struct ExpandDims;

fn expand_axis(axis: i64, input_rank: usize) -> TractResult<usize> {
    let out_rank = input_rank as i64 + 1;
    let axis = if axis < 0 { axis + out_rank } else { axis };
    if !(0..out_rank).contains(&axis) {
        bail!("ExpandDims axis out of range for an input of rank {input_rank}");
    }
    Ok(axis as usize)
}

impl Expansion for ExpandDims {
    fn name(&self) -> StaticName {
        "ExpandDims".into()
    }

    fn rules<'r, 'p: 'r, 's: 'r>(
        &'s self,
        s: &mut Solver<'r>,
        inputs: &'p [TensorProxy],
        outputs: &'p [TensorProxy],
    ) -> InferenceResult {
        check_input_arity(inputs, 2)?;
        check_output_arity(outputs, 1)?;
        let (data, output) = (&inputs[0], &outputs[0]);
        s.equals(&data.datum_type, &output.datum_type)?;
        s.equals(data.rank.bex() + 1, &output.rank)?;
        s.given_2(&inputs[1].value, &data.rank, move |s, axis, rank| {
            let axis = expand_axis(axis.cast_to_scalar::<i64>()?, rank as usize)?;
            for i in 0..rank as usize {
                let o = if i < axis { i } else { i + 1 };
                s.equals(&output.shape[o], &data.shape[i])?;
            }
            s.equals(output.shape[axis].bex(), 1i64.to_dim().bex())
        })
    }

    fn wire(
        &self,
        name: &str,
        model: &mut TypedModel,
        inputs: &[OutletId],
    ) -> TractResult<TVec<OutletId>> {
        let Some(axis) = model.outlet_fact(inputs[1])?.konst.clone() else {
            bail!("ExpandDims needs a constant axis")
        };
        let rank = model.outlet_fact(inputs[0])?.rank();
        let axis = expand_axis(axis.cast_to_scalar::<i64>()?, rank)?;
        model.wire_node(name, AxisOp::Add(axis), &[inputs[0]])
    }
}

/// Ops tract has no single kernel for, composed from its element-wise ones.
#[derive(Debug, Clone, Hash)]
pub(super) enum Composite {
    /// softplus(x) = max(x, 0) + ln(1 + exp(-|x|)): TensorFlow's values without overflowing
    /// for large x (tract's own Softplus computes ln(exp(x) + 1)).
    Softplus,
    /// log1p(x) = ln(1 + x).
    Log1p,
    /// expm1(x) = exp(x) - 1.
    Expm1,
    /// erfc(x) = 1 - erf(x).
    Erfc,
}

impl Expansion for Composite {
    fn name(&self) -> StaticName {
        format!("{self:?}").into()
    }

    fn rules<'r, 'p: 'r, 's: 'r>(
        &'s self,
        s: &mut Solver<'r>,
        inputs: &'p [TensorProxy],
        outputs: &'p [TensorProxy],
    ) -> InferenceResult {
        unary_rules(s, inputs, outputs)
    }

    fn wire(
        &self,
        name: &str,
        model: &mut TypedModel,
        inputs: &[OutletId],
    ) -> TractResult<TVec<OutletId>> {
        use ops::math::*;
        let one = model.add_const(format!("{name}.one"), broadcast_scalar(1.0, model, inputs)?)?;
        match self {
            Composite::Softplus => {
                let zero = model.add_const(
                    format!("{name}.zero"),
                    broadcast_scalar(0.0, model, inputs)?,
                )?;
                let pos = model.wire_node(format!("{name}.pos"), max(), &[inputs[0], zero])?;
                let abs_x = model.wire_node(format!("{name}.abs"), abs(), inputs)?;
                let neg = model.wire_node(format!("{name}.neg"), neg(), &abs_x)?;
                let e = model.wire_node(format!("{name}.exp"), exp(), &neg)?;
                let e1 = model.wire_node(format!("{name}.plus_one"), add(), &[e[0], one])?;
                let l = model.wire_node(format!("{name}.ln"), ln(), &e1)?;
                model.wire_node(name, add(), &[pos[0], l[0]])
            }
            Composite::Log1p => {
                let sum = model.wire_node(format!("{name}.plus_one"), add(), &[inputs[0], one])?;
                model.wire_node(name, ln(), &sum)
            }
            Composite::Expm1 => {
                let e = model.wire_node(format!("{name}.exp"), exp(), inputs)?;
                model.wire_node(name, sub(), &[e[0], one])
            }
            Composite::Erfc => {
                let e = model.wire_node(format!("{name}.erf"), erf(), inputs)?;
                model.wire_node(name, sub(), &[one, e[0]])
            }
        }
    }
}
