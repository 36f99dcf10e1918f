//! The feature matrix of a decoded batch: named numeric columns, or one text column holding
//! a separated series of readings (the talk's car sensors: `"2.1#2.3#..."`).

use arrow_array::cast::AsArray;
use arrow_array::{Array, RecordBatch};
use arrow_schema::DataType;

use crate::matrix::{fill_matrix, select_columns};

/// Where a row's features come from.
#[derive(Debug, Clone, PartialEq)]
pub enum FeatureSpec {
    /// Numeric columns, in this order.
    Columns(Vec<String>),
    /// One text column of numbers separated by `separator`.
    Delimited { column: String, separator: char },
}

/// The rows that made it into the matrix, and why the others did not.
#[derive(Debug, Default)]
pub struct FeatureRows {
    /// Row-major [kept.len(), width].
    pub values: Vec<f32>,
    /// Indices (into the batch) of the rows in `values`, ascending.
    pub kept: Vec<usize>,
    /// (row index, reason) of the rows left out.
    pub rejected: Vec<(usize, String)>,
}

/// A problem with the batch as a whole (not one row): a missing or mistyped column.
#[derive(Debug, thiserror::Error, PartialEq)]
#[error("{0}")]
pub struct FeatureError(pub String);

/// Builds the feature matrix of `batch`; rows with nulls or unreadable readings are
/// rejected one by one, with the reason.
pub fn extract(
    batch: &RecordBatch,
    spec: &FeatureSpec,
    width: usize,
) -> Result<FeatureRows, FeatureError> {
    match spec {
        FeatureSpec::Columns(names) => from_columns(batch, names, width),
        FeatureSpec::Delimited { column, separator } => {
            from_delimited(batch, column, *separator, width)
        }
    }
}

fn from_columns(
    batch: &RecordBatch,
    names: &[String],
    width: usize,
) -> Result<FeatureRows, FeatureError> {
    if names.len() != width {
        return Err(FeatureError(format!(
            "{} feature columns given, but the model takes {width} features per row",
            names.len()
        )));
    }
    let columns =
        select_columns(&batch.schema(), Some(names)).map_err(|e| FeatureError(e.to_string()))?;
    let rows = batch.num_rows();
    let mut values = vec![0f32; rows * width];
    fill_matrix(
        std::slice::from_ref(batch),
        &columns,
        Some(0.0),
        &mut values,
    )
    .map_err(|e| FeatureError(e.to_string()))?;
    let mut null_in: Vec<Option<usize>> = vec![None; rows];
    for &c in &columns {
        let column = batch.column(c);
        if column.null_count() == 0 {
            continue;
        }
        for (row, slot) in null_in.iter_mut().enumerate() {
            if slot.is_none() && column.is_null(row) {
                *slot = Some(c);
            }
        }
    }
    if null_in.iter().all(Option::is_none) {
        return Ok(FeatureRows {
            values,
            kept: (0..rows).collect(),
            rejected: Vec::new(),
        });
    }
    let schema = batch.schema();
    let mut out = FeatureRows::default();
    for (row, null_column) in null_in.into_iter().enumerate() {
        match null_column {
            Some(c) => out.rejected.push((
                row,
                format!("feature column {:?} is null", schema.field(c).name()),
            )),
            None => {
                out.values
                    .extend_from_slice(&values[row * width..(row + 1) * width]);
                out.kept.push(row);
            }
        }
    }
    Ok(out)
}

fn from_delimited(
    batch: &RecordBatch,
    name: &str,
    separator: char,
    width: usize,
) -> Result<FeatureRows, FeatureError> {
    let schema = batch.schema();
    let index = schema.index_of(name).map_err(|_| {
        let available: Vec<&String> = schema.fields().iter().map(|f| f.name()).collect();
        FeatureError(format!("no column {name:?}; the columns are {available:?}"))
    })?;
    let column = batch.column(index);
    let text = match column.data_type() {
        DataType::Utf8 => column.as_string::<i32>(),
        other => {
            return Err(FeatureError(format!(
                "column {name:?} holds the {separator:?}-separated readings and must be text, not {other}"
            )))
        }
    };
    let mut out = FeatureRows {
        values: Vec::with_capacity(batch.num_rows() * width),
        ..FeatureRows::default()
    };
    for row in 0..batch.num_rows() {
        if text.is_null(row) {
            out.rejected.push((row, format!("column {name:?} is null")));
            continue;
        }
        let start = out.values.len();
        match parse_readings(text.value(row), separator, width, &mut out.values) {
            Ok(()) => out.kept.push(row),
            Err(reason) => {
                out.values.truncate(start);
                out.rejected
                    .push((row, format!("column {name:?}: {reason}")));
            }
        }
    }
    Ok(out)
}

/// Appends exactly `width` numbers read from `text` to `out`, or says what is wrong.
fn parse_readings(
    text: &str,
    separator: char,
    width: usize,
    out: &mut Vec<f32>,
) -> Result<(), String> {
    let mut count = 0;
    for (position, part) in text.trim().split(separator).enumerate() {
        let part = part.trim();
        let value: f32 = part
            .parse()
            .map_err(|_| format!("reading {position} ({part:?}) is not a number"))?;
        count += 1;
        if count > width {
            break;
        }
        out.push(value);
    }
    if count != width {
        let found = if count > width {
            format!("more than {width}")
        } else {
            count.to_string()
        };
        return Err(format!("{found} readings, the model takes {width}"));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use arrow_array::{Float64Array, Int64Array, StringArray};
    use arrow_schema::{Field, Schema};

    use super::*;

    fn numeric_batch() -> RecordBatch {
        let schema = Schema::new(vec![
            Field::new("id", DataType::Int64, false),
            Field::new("a", DataType::Float64, true),
            Field::new("b", DataType::Int64, true),
        ]);
        RecordBatch::try_new(
            Arc::new(schema),
            vec![
                Arc::new(Int64Array::from(vec![1, 2, 3])),
                Arc::new(Float64Array::from(vec![Some(0.5), None, Some(2.5)])),
                Arc::new(Int64Array::from(vec![Some(10), Some(20), Some(30)])),
            ],
        )
        .unwrap()
    }

    #[test]
    fn columns_in_the_order_given_and_rows_with_nulls_rejected() {
        let spec = FeatureSpec::Columns(vec!["b".into(), "a".into()]);
        let rows = extract(&numeric_batch(), &spec, 2).unwrap();
        assert_eq!(rows.values, vec![10.0, 0.5, 30.0, 2.5]);
        assert_eq!(rows.kept, vec![0, 2]);
        assert_eq!(
            rows.rejected,
            vec![(1, "feature column \"a\" is null".to_string())]
        );
    }

    #[test]
    fn wrong_columns_fail_the_batch() {
        let batch = numeric_batch();
        let unknown = extract(
            &batch,
            &FeatureSpec::Columns(vec!["a".into(), "zz".into()]),
            2,
        )
        .unwrap_err();
        assert!(unknown.0.contains("\"zz\""), "{unknown}");
        let wrong_width = extract(&batch, &FeatureSpec::Columns(vec!["a".into()]), 2).unwrap_err();
        assert!(wrong_width.0.contains("takes 2 features"), "{wrong_width}");
    }

    #[test]
    fn delimited_readings_are_split_and_checked() {
        let schema = Schema::new(vec![Field::new("sensorinput", DataType::Utf8, true)]);
        let text = StringArray::from(vec![
            Some("1#2.5#-3"),
            Some("1#2"),
            Some("1#x#3"),
            None,
            Some(" 4 # 5 # 6 "),
            Some("1#2#3#4"),
        ]);
        let batch = RecordBatch::try_new(Arc::new(schema), vec![Arc::new(text)]).unwrap();
        let spec = FeatureSpec::Delimited {
            column: "sensorinput".into(),
            separator: '#',
        };
        let rows = extract(&batch, &spec, 3).unwrap();
        assert_eq!(rows.values, vec![1.0, 2.5, -3.0, 4.0, 5.0, 6.0]);
        assert_eq!(rows.kept, vec![0, 4]);
        let reasons: Vec<&str> = rows.rejected.iter().map(|(_, r)| r.as_str()).collect();
        assert_eq!(
            rows.rejected.iter().map(|(i, _)| *i).collect::<Vec<_>>(),
            vec![1, 2, 3, 5]
        );
        assert!(
            reasons[0].ends_with("2 readings, the model takes 3"),
            "{}",
            reasons[0]
        );
        assert!(
            reasons[1].contains("reading 1 (\"x\") is not a number"),
            "{}",
            reasons[1]
        );
        assert!(reasons[2].contains("is null"));
        assert!(
            reasons[3].contains("more than 3 readings"),
            "{}",
            reasons[3]
        );
    }

    #[test]
    fn delimited_column_must_be_text() {
        let spec = FeatureSpec::Delimited {
            column: "a".into(),
            separator: '#',
        };
        let error = extract(&numeric_batch(), &spec, 3).unwrap_err();
        assert!(error.0.contains("must be text"), "{error}");
    }
}
