//! `_native.to_numpy`: Arrow columns into a C-contiguous numpy matrix, built in Rust.

use numpy::ndarray::Array2;
use numpy::IntoPyArray;
use pyo3::prelude::*;

use super::arrow::batches_from_py;
use super::errors::{matrix_error, ConfigError};
use crate::matrix::{fill_matrix, select_columns, MatrixElement};

fn build<T: MatrixElement + numpy::Element>(
    py: Python<'_>,
    batches: &[arrow_array::RecordBatch],
    columns: &[usize],
    fill: Option<f64>,
) -> PyResult<Py<PyAny>> {
    let rows: usize = batches.iter().map(|b| b.num_rows()).sum();
    let width = columns.len();
    let matrix = py.detach(|| {
        let mut out = vec![T::default(); rows * width];
        fill_matrix(batches, columns, fill, &mut out).map(|()| out)
    });
    let matrix = matrix.map_err(matrix_error)?;
    let array = Array2::from_shape_vec((rows, width), matrix).expect("rows x columns elements");
    Ok(array.into_pyarray(py).into_any().unbind())
}

#[pyfunction]
#[pyo3(signature = (data, columns=None, dtype="float32", fill=None))]
pub fn to_numpy(
    py: Python<'_>,
    data: &Bound<'_, PyAny>,
    columns: Option<Vec<String>>,
    dtype: &str,
    fill: Option<f64>,
) -> PyResult<Py<PyAny>> {
    let (schema, batches) = batches_from_py(data)?;
    let indices = select_columns(&schema, columns.as_deref()).map_err(matrix_error)?;
    match dtype {
        "float32" | "f4" => build::<f32>(py, &batches, &indices, fill),
        "float64" | "f8" => build::<f64>(py, &batches, &indices, fill),
        other => Err(ConfigError::new_err(format!(
            "dtype must be 'float32' or 'float64', got {other:?}"
        ))),
    }
}
