//! `_native.to_numpy`: Arrow columns into a C-contiguous numpy matrix, built in Rust.

use numpy::ndarray::Array2;
use numpy::IntoPyArray;
use pyo3::prelude::*;

use super::arrow::batches_from_py;
use super::errors::{matrix_error, ConfigError};
use crate::matrix::{fill_matrix, select_columns, MatrixElement};

/// The element types a matrix can be built with, from a `dtype=` argument.
pub enum ElementType {
    Float32,
    Float64,
}

pub fn element_type(dtype: &str) -> PyResult<ElementType> {
    match dtype {
        "float32" | "f4" => Ok(ElementType::Float32),
        "float64" | "f8" => Ok(ElementType::Float64),
        other => Err(ConfigError::new_err(format!(
            "dtype must be 'float32' or 'float64', got {other:?}"
        ))),
    }
}

/// Hands `values` (row-major, `rows` x `width`) to numpy without copying them.
pub fn matrix_to_py<T: numpy::Element>(
    py: Python<'_>,
    values: Vec<T>,
    rows: usize,
    width: usize,
) -> Py<PyAny> {
    let array = Array2::from_shape_vec((rows, width), values).expect("rows x columns values");
    array.into_pyarray(py).into_any().unbind()
}

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
    Ok(matrix_to_py(py, matrix, rows, width))
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
    match element_type(dtype)? {
        ElementType::Float32 => build::<f32>(py, &batches, &indices, fill),
        ElementType::Float64 => build::<f64>(py, &batches, &indices, fill),
    }
}
