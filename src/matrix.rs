//! Arrow columns into one row-major (C-contiguous) float matrix, the shape models take.

use arrow_array::cast::AsArray;
use arrow_array::types::*;
use arrow_array::{Array, ArrowPrimitiveType, RecordBatch};
use arrow_schema::{DataType, SchemaRef};

#[derive(Debug, thiserror::Error, PartialEq)]
pub enum MatrixError {
    #[error("no column {name:?}; the columns are {available:?}")]
    UnknownColumn {
        name: String,
        available: Vec<String>,
    },
    #[error("column {name:?} has type {data_type}, which is not numeric")]
    NotNumeric { name: String, data_type: String },
    #[error("column {name:?} is null at row {row}; pass fill= to replace nulls")]
    Null { name: String, row: usize },
    #[error("batch {index} has a different schema than the first batch")]
    SchemaMismatch { index: usize },
    #[error("{0}")]
    Arrow(String),
}

/// Element types a matrix can have.
pub trait MatrixElement: Copy + Default + Send + 'static {
    fn from_f64(x: f64) -> Self;
    fn from_f32(x: f32) -> Self;
}

impl MatrixElement for f32 {
    fn from_f64(x: f64) -> Self {
        x as f32
    }
    fn from_f32(x: f32) -> Self {
        x
    }
}

impl MatrixElement for f64 {
    fn from_f64(x: f64) -> Self {
        x
    }
    fn from_f32(x: f32) -> Self {
        x as f64
    }
}

/// Column indices of `names` in `schema` (all columns when `names` is `None`), checked numeric.
pub fn select_columns(
    schema: &SchemaRef,
    names: Option<&[String]>,
) -> Result<Vec<usize>, MatrixError> {
    let available = || {
        schema
            .fields()
            .iter()
            .map(|f| f.name().clone())
            .collect::<Vec<_>>()
    };
    let indices: Vec<usize> = match names {
        None => (0..schema.fields().len()).collect(),
        Some(names) => names
            .iter()
            .map(|name| {
                schema
                    .index_of(name)
                    .map_err(|_| MatrixError::UnknownColumn {
                        name: name.clone(),
                        available: available(),
                    })
            })
            .collect::<Result<_, _>>()?,
    };
    for &i in &indices {
        let field = schema.field(i);
        let numeric = field.data_type().is_numeric()
            || matches!(field.data_type(), DataType::Boolean | DataType::Null);
        if !numeric {
            return Err(MatrixError::NotNumeric {
                name: field.name().clone(),
                data_type: field.data_type().to_string(),
            });
        }
    }
    Ok(indices)
}

/// Writes `columns` of `batches` into `out`, row-major: `out.len()` must be rows × columns.
/// Nulls become `fill`, or fail with the column and the row (counted across batches).
pub fn fill_matrix<T: MatrixElement>(
    batches: &[RecordBatch],
    columns: &[usize],
    fill: Option<f64>,
    out: &mut [T],
) -> Result<(), MatrixError> {
    let width = columns.len();
    let mut row_offset = 0;
    let first_schema = batches.first().map(|b| b.schema());
    for (index, batch) in batches.iter().enumerate() {
        if first_schema
            .as_ref()
            .is_some_and(|s| s.fields() != batch.schema().fields())
        {
            return Err(MatrixError::SchemaMismatch { index });
        }
        let rows = batch.num_rows();
        let block = &mut out[row_offset * width..(row_offset + rows) * width];
        for (j, &c) in columns.iter().enumerate() {
            let column = batch.column(c);
            let name = batch.schema().field(c).name().clone();
            if column.null_count() > 0 && fill.is_none() {
                let row = (0..rows).find(|&r| column.is_null(r)).unwrap_or(0);
                return Err(MatrixError::Null {
                    name,
                    row: row_offset + row,
                });
            }
            write_column(column.as_ref(), j, width, fill.unwrap_or(0.0), block)?;
        }
        row_offset += rows;
    }
    Ok(())
}

fn write_column<T: MatrixElement>(
    column: &dyn Array,
    j: usize,
    width: usize,
    fill: f64,
    block: &mut [T],
) -> Result<(), MatrixError> {
    fn strided<T: MatrixElement, P: ArrowPrimitiveType>(
        column: &dyn Array,
        j: usize,
        width: usize,
        fill: T,
        block: &mut [T],
        convert: impl Fn(P::Native) -> T,
    ) {
        let values = column.as_primitive::<P>();
        let cells = block[j..].iter_mut().step_by(width);
        if values.null_count() == 0 {
            for (cell, v) in cells.zip(values.values().iter()) {
                *cell = convert(*v);
            }
        } else {
            for (cell, v) in cells.zip(values.iter()) {
                *cell = v.map(&convert).unwrap_or(fill);
            }
        }
    }
    let fill_t = T::from_f64(fill);
    match column.data_type() {
        DataType::Float32 => {
            strided::<T, Float32Type>(column, j, width, fill_t, block, T::from_f32)
        }
        DataType::Float64 => {
            strided::<T, Float64Type>(column, j, width, fill_t, block, T::from_f64)
        }
        DataType::Int8 => {
            strided::<T, Int8Type>(column, j, width, fill_t, block, |v| T::from_f32(v as f32))
        }
        DataType::Int16 => {
            strided::<T, Int16Type>(column, j, width, fill_t, block, |v| T::from_f32(v as f32))
        }
        DataType::Int32 => {
            strided::<T, Int32Type>(column, j, width, fill_t, block, |v| T::from_f64(v as f64))
        }
        DataType::Int64 => {
            strided::<T, Int64Type>(column, j, width, fill_t, block, |v| T::from_f64(v as f64))
        }
        DataType::UInt8 => {
            strided::<T, UInt8Type>(column, j, width, fill_t, block, |v| T::from_f32(v as f32))
        }
        DataType::UInt16 => {
            strided::<T, UInt16Type>(column, j, width, fill_t, block, |v| T::from_f32(v as f32))
        }
        DataType::UInt32 => {
            strided::<T, UInt32Type>(column, j, width, fill_t, block, |v| T::from_f64(v as f64))
        }
        DataType::UInt64 => {
            strided::<T, UInt64Type>(column, j, width, fill_t, block, |v| T::from_f64(v as f64))
        }
        _ => {
            // Booleans, decimals, float16, nulls: through Arrow's cast, then as float64.
            let cast = arrow_cast::cast(column, &DataType::Float64)
                .map_err(|e| MatrixError::Arrow(e.to_string()))?;
            strided::<T, Float64Type>(cast.as_ref(), j, width, fill_t, block, T::from_f64)
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use arrow_array::{BooleanArray, Float64Array, Int64Array, StringArray};
    use arrow_schema::{Field, Schema};

    use super::*;

    fn batch(a: Vec<Option<f64>>, b: Vec<Option<i64>>) -> RecordBatch {
        let schema = Schema::new(vec![
            Field::new("a", DataType::Float64, true),
            Field::new("b", DataType::Int64, true),
            Field::new("flag", DataType::Boolean, true),
            Field::new("s", DataType::Utf8, true),
        ]);
        let n = a.len();
        RecordBatch::try_new(
            Arc::new(schema),
            vec![
                Arc::new(Float64Array::from(a)),
                Arc::new(Int64Array::from(b)),
                Arc::new(BooleanArray::from(vec![true; n])),
                Arc::new(StringArray::from(vec!["x"; n])),
            ],
        )
        .unwrap()
    }

    #[test]
    fn row_major_across_batches() {
        let batches = [
            batch(vec![Some(1.5), Some(2.5)], vec![Some(10), Some(20)]),
            batch(vec![Some(3.5)], vec![Some(30)]),
        ];
        let cols = select_columns(
            &batches[0].schema(),
            Some(&["b".into(), "a".into(), "flag".into()]),
        )
        .unwrap();
        let mut out = vec![0f32; 9];
        fill_matrix(&batches, &cols, None, &mut out).unwrap();
        assert_eq!(out, [10.0, 1.5, 1.0, 20.0, 2.5, 1.0, 30.0, 3.5, 1.0]);
    }

    #[test]
    fn nulls_raise_or_fill() {
        let batches = [
            batch(vec![Some(1.0)], vec![Some(1)]),
            batch(vec![Some(2.0), None], vec![Some(2), Some(3)]),
        ];
        let cols = select_columns(&batches[0].schema(), Some(&["a".into(), "b".into()])).unwrap();
        let mut out = vec![0f64; 6];
        let err = fill_matrix(&batches, &cols, None, &mut out).unwrap_err();
        assert_eq!(
            err,
            MatrixError::Null {
                name: "a".into(),
                row: 2
            }
        );
        fill_matrix(&batches, &cols, Some(-1.0), &mut out).unwrap();
        assert_eq!(out, [1.0, 1.0, 2.0, 2.0, -1.0, 3.0]);
    }

    #[test]
    fn bad_columns_are_named() {
        let schema = batch(vec![], vec![]).schema();
        assert!(matches!(
            select_columns(&schema, Some(&["s".into()])),
            Err(MatrixError::NotNumeric { .. })
        ));
        let err = select_columns(&schema, Some(&["zz".into()]))
            .unwrap_err()
            .to_string();
        assert!(err.contains("zz") && err.contains("flag"), "{err}");
    }
}
