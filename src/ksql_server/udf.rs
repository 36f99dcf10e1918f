//! kafkaml models as KSQL scalar functions: `ANOMALY(sensorinput)` scores a whole batch of
//! rows in one model call (never one call per row).

use std::sync::Arc;

use kafkaml_engine::functions::{BindError, BoundFunction, RowError, ScalarFunction};
use kafkaml_engine::types::SqlType;
use kafkaml_engine::value::{ColumnValues, Value};

use crate::formats::float_fields::parse_float32_fields;
use crate::model::Model;

/// How the function's arguments become a model input row.
#[derive(Debug, Clone, PartialEq)]
pub enum UdfInput {
    /// One STRING argument of numbers separated by this text (the talk's `"2.10# 2.13# ..."`).
    Separated(String),
    /// One numeric argument per model input, in order (named for `DESCRIBE FUNCTION`).
    Columns(Vec<String>),
}

/// What the function returns for a row.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UdfOutput {
    /// The mean squared difference between the row and the model's output (autoencoders).
    ReconstructionError,
    /// The model's first output value.
    Prediction,
}

/// A model registered as a scalar function.
pub struct ModelUdf {
    name: String,
    model: Arc<Model>,
    input: UdfInput,
    output: UdfOutput,
}

impl ModelUdf {
    /// Checks that the model and the input description agree (the width of `Columns`, an
    /// autoencoder for `ReconstructionError`).
    pub fn new(
        name: &str,
        model: Arc<Model>,
        input: UdfInput,
        output: UdfOutput,
    ) -> Result<Self, String> {
        if let UdfInput::Columns(columns) = &input {
            if columns.len() != model.input_width() {
                return Err(format!(
                    "{name}: {} input columns given ({}), the model takes {} features",
                    columns.len(),
                    columns.join(", "),
                    model.input_width()
                ));
            }
        }
        if let UdfInput::Separated(separator) = &input {
            if separator.is_empty() {
                return Err(format!("{name}: the input separator must not be empty"));
            }
        }
        if output == UdfOutput::ReconstructionError && model.input_width() != model.output_width() {
            return Err(format!(
                "{name}: output=\"reconstruction_error\" needs an autoencoder, but the model maps {} features to {}; use output=\"prediction\"",
                model.input_width(),
                model.output_width()
            ));
        }
        Ok(ModelUdf {
            name: name.to_ascii_uppercase(),
            model,
            input,
            output,
        })
    }
}

impl ScalarFunction for ModelUdf {
    fn name(&self) -> &str {
        &self.name
    }
    fn category(&self) -> &str {
        "MODEL"
    }
    fn description(&self) -> &str {
        match self.output {
            UdfOutput::ReconstructionError => {
                "Scores each row with a kafkaml model: the mean squared reconstruction error."
            }
            UdfOutput::Prediction => {
                "Scores each row with a kafkaml model: its first output value."
            }
        }
    }
    fn signatures(&self) -> Vec<String> {
        match &self.input {
            UdfInput::Separated(separator) => vec![format!(
                "{}(readings VARCHAR /* {} numbers separated by '{separator}' */) => DOUBLE",
                self.name,
                self.model.input_width()
            )],
            UdfInput::Columns(columns) => {
                let params: Vec<String> = columns.iter().map(|c| format!("{c} DOUBLE")).collect();
                vec![format!("{}({}) => DOUBLE", self.name, params.join(", "))]
            }
        }
    }
    fn bind(&self, arg_types: &[SqlType]) -> Result<Arc<dyn BoundFunction>, BindError> {
        let fits = match &self.input {
            UdfInput::Separated(_) => matches!(arg_types, [SqlType::String]),
            UdfInput::Columns(columns) => {
                arg_types.len() == columns.len() && arg_types.iter().all(SqlType::is_numeric)
            }
        };
        if !fits {
            return Err(kafkaml_engine::functions::no_overload(
                &self.name, arg_types,
            ));
        }
        Ok(Arc::new(BoundModelUdf {
            model: self.model.clone(),
            input: self.input.clone(),
            output: self.output,
        }))
    }
}

struct BoundModelUdf {
    model: Arc<Model>,
    input: UdfInput,
    output: UdfOutput,
}

impl BoundModelUdf {
    /// One row's features, or why the row cannot be scored. `scratch` is reused across rows.
    fn features(
        &self,
        args: &[&Value],
        out: &mut Vec<f32>,
        scratch: &mut Vec<u8>,
    ) -> Result<bool, String> {
        let width = self.model.input_width();
        match &self.input {
            UdfInput::Separated(separator) => {
                let Some(Value::String(text)) = args.first() else {
                    return Ok(false);
                };
                let start = out.len();
                // Plain numbers split by a one-byte separator (`2.10#2.13#...`): parsed 32
                // bytes at a time, as the CSV decoder does; the same float64-then-float32
                // values as the loop below, which takes everything else (spaces, exponents).
                if let [byte] = separator.as_bytes() {
                    out.resize(start + width, 0.0);
                    if parse_float32_fields(text.as_bytes(), *byte, &mut out[start..], scratch) {
                        return Ok(true);
                    }
                    out.truncate(start);
                }
                for (position, part) in text.split(separator.as_str()).enumerate() {
                    let part = part.trim();
                    let value = lexical_core::parse::<f64>(part.as_bytes()).map_err(|_| {
                        format!("reading {} is not a number: {part:?}", position + 1)
                    })?;
                    out.push(value as f32);
                }
                let found = out.len() - start;
                if found != width {
                    out.truncate(start);
                    return Err(format!("{found} readings, the model takes {width}"));
                }
                Ok(true)
            }
            UdfInput::Columns(_) => {
                if args.iter().any(|v| v.is_null()) {
                    return Ok(false);
                }
                for value in args {
                    out.push(value.as_f64().unwrap_or(f64::NAN) as f32);
                }
                Ok(true)
            }
        }
    }

    fn score(&self, features: &[f32], rows: usize) -> Result<Vec<f64>, String> {
        match self.output {
            UdfOutput::ReconstructionError => Ok(self
                .model
                .reconstruction_error(features, rows)
                .map_err(|e| e.to_string())?
                .into_iter()
                .map(f64::from)
                .collect()),
            UdfOutput::Prediction => {
                let predicted = self
                    .model
                    .predict_rows(features, rows)
                    .map_err(|e| e.to_string())?;
                let width = self.model.output_width().max(1);
                Ok(predicted
                    .chunks(width)
                    .map(|row| f64::from(row[0]))
                    .collect())
            }
        }
    }
}

impl BoundFunction for BoundModelUdf {
    fn return_type(&self) -> SqlType {
        SqlType::Double
    }

    fn call(&self, args: &[Value]) -> Result<Value, String> {
        let mut features = Vec::with_capacity(self.model.input_width());
        let refs: Vec<&Value> = args.iter().collect();
        if !self.features(&refs, &mut features, &mut Vec::new())? {
            return Ok(Value::Null);
        }
        Ok(Value::Double(self.score(&features, 1)?[0]))
    }

    fn call_columns(
        &self,
        args: &[ColumnValues],
        rows: usize,
        errors: &mut Vec<RowError>,
    ) -> ColumnValues {
        let mut features = Vec::with_capacity(rows * self.model.input_width());
        let mut scored_rows = Vec::with_capacity(rows);
        let mut out = vec![Value::Null; rows];
        let mut scratch = Vec::new();
        for row in 0..rows {
            let refs: Vec<&Value> = args.iter().map(|column| &column[row]).collect();
            match self.features(&refs, &mut features, &mut scratch) {
                Ok(true) => scored_rows.push(row),
                Ok(false) => {}
                Err(message) => errors.push(RowError { row, message }),
            }
        }
        if scored_rows.is_empty() {
            return out;
        }
        match self.score(&features, scored_rows.len()) {
            Ok(scores) => {
                for (row, score) in scored_rows.into_iter().zip(scores) {
                    out[row] = Value::Double(score);
                }
            }
            Err(message) => errors.extend(scored_rows.into_iter().map(|row| RowError {
                row,
                message: message.clone(),
            })),
        }
        out
    }
}
