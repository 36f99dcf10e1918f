//! Arrow columns into one row-major (C-contiguous) float matrix, the shape models take.

use std::any::{Any, TypeId};
use std::ops::Range;

use arrow_array::cast::AsArray;
use arrow_array::types::*;
use arrow_array::{Array, ArrayRef, ArrowPrimitiveType, RecordBatch};
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
    /// Rows handed over in a way this matrix does not take: a bug, not bad data.
    #[error("internal error: {0}")]
    Internal(String),
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

/// Takes the rows of record batches as a read decodes them.
pub trait RowSink: Send {
    fn append(&mut self, batch: &RecordBatch) -> Result<(), MatrixError>;

    /// The columns (indices into `schema`) of a float32 matrix, which takes rows decoded
    /// straight to float32 (`append_float32_rows`); `None` when it takes only batches.
    fn float32_columns(&mut self, _schema: &SchemaRef) -> Option<Vec<usize>> {
        None
    }

    /// Appends row-major rows of the columns `float32_columns` gave.
    fn append_float32_rows(&mut self, _values: &[f32]) -> Result<(), MatrixError> {
        Err(MatrixError::Internal(
            "this matrix takes record batches only".into(),
        ))
    }
}

/// A matrix that grows by the rows of each batch appended, so a read can fill it as it
/// decodes: each batch's float64 columns are written while they are still in the cache and
/// then dropped, instead of a whole table being kept for `fill_matrix` at the end.
pub struct MatrixRows<T> {
    /// The columns asked for by name (all when `None`), resolved by the first batch's schema.
    names: Option<Vec<String>>,
    columns: Option<Vec<usize>>,
    fill: Option<f64>,
    /// Rows to reserve room for once the width is known.
    expected_rows: usize,
    values: Vec<T>,
    rows: usize,
}

impl<T: MatrixElement> MatrixRows<T> {
    /// `expected_rows` is the room reserved (a snapshot's size, say); more rows still fit.
    pub fn new(names: Option<Vec<String>>, fill: Option<f64>, expected_rows: usize) -> Self {
        MatrixRows {
            names,
            columns: None,
            fill,
            expected_rows,
            values: Vec::new(),
            rows: 0,
        }
    }

    fn resolve_columns(&mut self, schema: &SchemaRef) -> Result<&[usize], MatrixError> {
        if self.columns.is_none() {
            let columns = select_columns(schema, self.names.as_deref())?;
            // Reserved once, so the matrix is not copied as it grows.
            self.values.reserve(self.expected_rows * columns.len());
            self.columns = Some(columns);
        }
        Ok(self.columns.as_deref().expect("resolved above"))
    }

    /// The matrix's values (row-major), its rows and its columns. `schema` resolves the
    /// columns when no rows came (so an empty read still has its width, or a clear error).
    pub fn finish(
        mut self,
        schema: Option<&SchemaRef>,
    ) -> Result<(Vec<T>, usize, usize), MatrixError> {
        if let Some(schema) = schema {
            self.resolve_columns(schema)?;
        }
        let width = match &self.columns {
            Some(columns) => columns.len(),
            None => self.names.as_ref().map_or(0, Vec::len),
        };
        Ok((self.values, self.rows, width))
    }
}

impl<T: MatrixElement> RowSink for MatrixRows<T> {
    fn float32_columns(&mut self, schema: &SchemaRef) -> Option<Vec<usize>> {
        if TypeId::of::<T>() != TypeId::of::<f32>() {
            return None;
        }
        // An unknown column is left to `append`, which names it; no columns, too.
        let columns = self.resolve_columns(schema).ok()?;
        (!columns.is_empty()).then(|| columns.to_vec())
    }

    fn append_float32_rows(&mut self, rows: &[f32]) -> Result<(), MatrixError> {
        let width = self.columns.as_ref().map_or(0, Vec::len);
        let Some(values) = (&mut self.values as &mut dyn Any).downcast_mut::<Vec<f32>>() else {
            return Err(MatrixError::Internal(
                "float32 rows for a float64 matrix".into(),
            ));
        };
        if width == 0 || !rows.len().is_multiple_of(width) {
            return Err(MatrixError::Internal(format!(
                "{} values are not rows of {width} columns",
                rows.len()
            )));
        }
        values.extend_from_slice(rows);
        self.rows += rows.len() / width;
        Ok(())
    }

    fn append(&mut self, batch: &RecordBatch) -> Result<(), MatrixError> {
        let rows_before = self.rows;
        let columns = self.resolve_columns(&batch.schema())?.to_vec();
        let start = self.values.len();
        self.values
            .resize(start + batch.num_rows() * columns.len(), T::default());
        fill_matrix(
            std::slice::from_ref(batch),
            &columns,
            self.fill,
            &mut self.values[start..],
        )
        .map_err(|error| match error {
            // Rows count from the first row of the whole matrix.
            MatrixError::Null { name, row } => MatrixError::Null {
                name,
                row: rows_before + row,
            },
            other => other,
        })?;
        self.rows += batch.num_rows();
        Ok(())
    }
}

/// Rows written per pass over the columns: each column writes its strided values into a
/// tile that stays in the cache (a whole batch per column evicted every row between columns).
const TILE_ROWS: usize = 1024;
/// Below this many cells one thread fills the matrix; above it, up to `MAX_THREADS` share it.
const PARALLEL_CELLS: usize = 1 << 20;
const MAX_THREADS: usize = 4;

/// Writes `columns` of `batches` into `out`, row-major: `out.len()` must be rows × columns.
/// Nulls become `fill`, or fail with the column and the row (counted across batches).
pub fn fill_matrix<T: MatrixElement>(
    batches: &[RecordBatch],
    columns: &[usize],
    fill: Option<f64>,
    out: &mut [T],
) -> Result<(), MatrixError> {
    let width = columns.len();
    let sources = numeric_sources(batches, columns, fill)?;
    let mut tiles = Vec::new();
    for (batch, source) in sources.iter().enumerate() {
        let rows = batches[batch].num_rows();
        tiles.extend((0..rows).step_by(TILE_ROWS).map(|first| Tile {
            source,
            first,
            rows: TILE_ROWS.min(rows - first),
        }));
    }
    let threads = if out.len() >= PARALLEL_CELLS {
        std::thread::available_parallelism().map_or(1, |n| n.get().min(MAX_THREADS))
    } else {
        1
    };
    let fill = T::from_f64(fill.unwrap_or(0.0));
    let tiles_per_thread = tiles.len().div_ceil(threads).max(1);
    std::thread::scope(|scope| {
        let mut rest = out;
        for group in tiles.chunks(tiles_per_thread) {
            let rows: usize = group.iter().map(|tile| tile.rows).sum();
            let (part, after) = std::mem::take(&mut rest).split_at_mut(rows * width);
            rest = after;
            scope.spawn(move || {
                let mut part = part;
                for tile in group {
                    let (block, after) = std::mem::take(&mut part).split_at_mut(tile.rows * width);
                    part = after;
                    tile.write(block, width, fill);
                }
            });
        }
    });
    Ok(())
}

/// A run of rows of one batch, written by one pass over its columns.
struct Tile<'a> {
    source: &'a [ArrayRef],
    first: usize,
    rows: usize,
}

impl Tile<'_> {
    fn write<T: MatrixElement>(&self, block: &mut [T], width: usize, fill: T) {
        for (j, column) in self.source.iter().enumerate() {
            let rows = self.first..self.first + self.rows;
            write_column(column.as_ref(), rows, j, width, fill, block);
        }
    }
}

/// Each batch's selected columns, those that are not integers or floats cast to float64; in
/// order, the first null when there is no fill (so the error is the same on every run) and
/// the first batch whose schema differs.
fn numeric_sources(
    batches: &[RecordBatch],
    columns: &[usize],
    fill: Option<f64>,
) -> Result<Vec<Vec<ArrayRef>>, MatrixError> {
    let first_schema = batches.first().map(|b| b.schema());
    let mut row_offset = 0;
    let mut sources = Vec::with_capacity(batches.len());
    for (index, batch) in batches.iter().enumerate() {
        if first_schema
            .as_ref()
            .is_some_and(|s| s.fields() != batch.schema().fields())
        {
            return Err(MatrixError::SchemaMismatch { index });
        }
        let mut source = Vec::with_capacity(columns.len());
        for &c in columns {
            let column = batch.column(c);
            if column.null_count() > 0 && fill.is_none() {
                let row = (0..batch.num_rows())
                    .find(|&r| column.is_null(r))
                    .unwrap_or(0);
                return Err(MatrixError::Null {
                    name: batch.schema().field(c).name().clone(),
                    row: row_offset + row,
                });
            }
            source.push(if is_written_directly(column.data_type()) {
                column.clone()
            } else {
                // Booleans, decimals, float16, nulls: through Arrow's cast, as float64.
                arrow_cast::cast(column, &DataType::Float64)
                    .map_err(|e| MatrixError::Arrow(e.to_string()))?
            });
        }
        sources.push(source);
        row_offset += batch.num_rows();
    }
    Ok(sources)
}

/// The types `write_column` writes; the other numeric types are cast to float64 first.
fn is_written_directly(data_type: &DataType) -> bool {
    use DataType::*;
    matches!(
        data_type,
        Float32 | Float64 | Int8 | Int16 | Int32 | Int64 | UInt8 | UInt16 | UInt32 | UInt64
    )
}

/// Writes `rows` of an integer or float column into column `j` of `block`.
fn write_column<T: MatrixElement>(
    column: &dyn Array,
    rows: Range<usize>,
    j: usize,
    width: usize,
    fill: T,
    block: &mut [T],
) {
    fn strided<T: MatrixElement, P: ArrowPrimitiveType>(
        column: &dyn Array,
        rows: Range<usize>,
        j: usize,
        width: usize,
        fill: T,
        block: &mut [T],
        convert: impl Fn(P::Native) -> T,
    ) {
        let array = column.as_primitive::<P>();
        let values = &array.values()[rows.clone()];
        let cells = block[j..].iter_mut().step_by(width);
        if array.null_count() == 0 {
            for (cell, v) in cells.zip(values) {
                *cell = convert(*v);
            }
        } else {
            for ((cell, v), row) in cells.zip(values).zip(rows) {
                *cell = if array.is_valid(row) {
                    convert(*v)
                } else {
                    fill
                };
            }
        }
    }
    match column.data_type() {
        DataType::Float32 => {
            strided::<T, Float32Type>(column, rows, j, width, fill, block, T::from_f32)
        }
        DataType::Float64 => {
            strided::<T, Float64Type>(column, rows, j, width, fill, block, T::from_f64)
        }
        DataType::Int8 => strided::<T, Int8Type>(column, rows, j, width, fill, block, |v| {
            T::from_f32(v as f32)
        }),
        DataType::Int16 => strided::<T, Int16Type>(column, rows, j, width, fill, block, |v| {
            T::from_f32(v as f32)
        }),
        DataType::Int32 => strided::<T, Int32Type>(column, rows, j, width, fill, block, |v| {
            T::from_f64(v as f64)
        }),
        DataType::Int64 => strided::<T, Int64Type>(column, rows, j, width, fill, block, |v| {
            T::from_f64(v as f64)
        }),
        DataType::UInt8 => strided::<T, UInt8Type>(column, rows, j, width, fill, block, |v| {
            T::from_f32(v as f32)
        }),
        DataType::UInt16 => strided::<T, UInt16Type>(column, rows, j, width, fill, block, |v| {
            T::from_f32(v as f32)
        }),
        DataType::UInt32 => strided::<T, UInt32Type>(column, rows, j, width, fill, block, |v| {
            T::from_f64(v as f64)
        }),
        DataType::UInt64 => strided::<T, UInt64Type>(column, rows, j, width, fill, block, |v| {
            T::from_f64(v as f64)
        }),
        other => unreachable!("numeric_sources casts {other} to float64 (is_written_directly)"),
    }
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
    fn large_matrices_are_filled_tile_by_tile_on_several_threads_in_row_order() {
        // Enough cells for several threads; batch lengths that are not multiples of a tile.
        let lengths = [1500, 400_000, 7];
        let mut first_row = 0i64;
        let mut batches = Vec::new();
        for n in lengths {
            let rows = first_row..first_row + n;
            let a = rows.clone().map(|r| (r % 1000 != 999).then_some(r as f64));
            batches.push(batch(a.collect(), rows.map(|r| Some(-r)).collect()));
            first_row += n;
        }
        let cols = select_columns(
            &batches[0].schema(),
            Some(&["a".into(), "b".into(), "flag".into()]),
        )
        .unwrap();
        let total = first_row as usize;
        assert!(total * 3 >= PARALLEL_CELLS);
        let mut out = vec![0f64; total * 3];
        fill_matrix(&batches, &cols, Some(-0.5), &mut out).unwrap();
        for (r, row) in out.chunks(3).enumerate() {
            let a = if r % 1000 == 999 { -0.5 } else { r as f64 };
            assert_eq!(row, [a, -(r as f64), 1.0], "row {r}");
        }
        let err = fill_matrix(&batches, &cols, None, &mut out).unwrap_err();
        assert_eq!(
            err,
            MatrixError::Null {
                name: "a".into(),
                row: 999
            }
        );
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

    #[test]
    fn rows_appended_batch_by_batch_make_one_matrix() {
        let names = Some(vec!["b".to_string(), "a".to_string()]);
        let mut rows = MatrixRows::<f32>::new(names.clone(), None, 1_000);
        rows.append(&batch(vec![Some(1.5), Some(2.5)], vec![Some(10), Some(20)]))
            .unwrap();
        assert!(
            rows.values.capacity() >= 2_000,
            "room for the expected rows"
        );
        rows.append(&batch(vec![Some(3.5)], vec![Some(30)]))
            .unwrap();
        let schema = batch(vec![], vec![]).schema();
        let (values, n, width) = rows.finish(Some(&schema)).unwrap();
        assert_eq!((n, width), (3, 2));
        assert_eq!(values, vec![10.0, 1.5, 20.0, 2.5, 30.0, 3.5]);

        // A null names its row counted from the matrix's first row, not the batch's.
        let mut rows = MatrixRows::<f64>::new(names.clone(), None, 0);
        rows.append(&batch(vec![Some(1.0); 3], vec![Some(1); 3]))
            .unwrap();
        let error = rows
            .append(&batch(vec![Some(1.0); 2], vec![Some(1), None]))
            .unwrap_err();
        assert_eq!(
            error,
            MatrixError::Null {
                name: "b".into(),
                row: 4
            }
        );

        // No rows: the width still comes from the schema, and a bad column still fails.
        let numbers = batch(vec![], vec![]).project(&[0, 1]).unwrap().schema();
        let empty = MatrixRows::<f32>::new(None, None, 0);
        let (values, n, width) = empty.finish(Some(&numbers)).unwrap();
        assert_eq!((values.len(), n, width), (0, 0, 2));
        let strings = MatrixRows::<f32>::new(Some(vec!["s".into()]), None, 0);
        assert!(matches!(
            strings.finish(Some(&schema)),
            Err(MatrixError::NotNumeric { .. })
        ));
    }
}
