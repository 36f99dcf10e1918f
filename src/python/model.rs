//! `_native.Model`: a loaded tract model. Takes C-contiguous float32 matrices (the Python
//! wrapper `kafkaml.Model` converts numpy, pandas and Arrow inputs) and runs with the GIL
//! released.

use std::path::PathBuf;
use std::sync::Arc;

use numpy::ndarray::{Array1, Array2};
use numpy::{IntoPyArray, PyReadonlyArray2, PyUntypedArrayMethods};
use pyo3::prelude::*;

use super::errors::{model_error, ConfigError};
use crate::model::{Backend, LoadOptions, Model, ModelError, TensorInfo};

/// The native model behind :class:`kafkaml.Model`.
#[pyclass(name = "Model", module = "kafkaml._native", frozen)]
pub struct PyModel {
    inner: Arc<Model>,
}

impl PyModel {
    /// The shared core model (for other bindings, e.g. a stream scorer).
    pub fn model(&self) -> Arc<Model> {
        self.inner.clone()
    }
}

type InfoTuple = (String, Vec<Option<usize>>, String);

fn info(t: &TensorInfo) -> InfoTuple {
    (t.name.clone(), t.shape.clone(), t.dtype.clone())
}

fn rows_of<'a>(model: &Model, x: &'a PyReadonlyArray2<'_, f32>) -> PyResult<(&'a [f32], usize)> {
    let shape = x.shape();
    if shape[1] != model.input_width() {
        return Err(model_error(ModelError::Shape(format!(
            "the input has {} features per row, the model takes {}",
            shape[1],
            model.input_width()
        ))));
    }
    let rows = x.as_slice().map_err(|_| {
        model_error(ModelError::Shape(
            "the input matrix must be C-contiguous".into(),
        ))
    })?;
    Ok((rows, shape[0]))
}

#[pymethods]
impl PyModel {
    #[staticmethod]
    #[pyo3(signature = (path, inputs=None, outputs=None, input_shape=None, backend="auto"))]
    fn load(
        py: Python<'_>,
        path: PathBuf,
        inputs: Option<Vec<String>>,
        outputs: Option<Vec<String>>,
        input_shape: Option<Vec<usize>>,
        backend: &str,
    ) -> PyResult<Self> {
        let backend = Backend::parse(backend).ok_or_else(|| {
            ConfigError::new_err(format!(
                "backend must be \"auto\", \"dense\" or \"tract\", not {backend:?}"
            ))
        })?;
        let options = LoadOptions {
            inputs,
            outputs,
            input_shape,
            backend,
        };
        let model = py
            .detach(|| Model::load(&path, &options))
            .map_err(model_error)?;
        Ok(PyModel {
            inner: Arc::new(model),
        })
    }

    #[getter]
    fn input(&self) -> InfoTuple {
        info(self.inner.input())
    }

    #[getter]
    fn output(&self) -> InfoTuple {
        info(self.inner.output())
    }

    #[getter]
    fn input_width(&self) -> usize {
        self.inner.input_width()
    }

    #[getter]
    fn output_width(&self) -> usize {
        self.inner.output_width()
    }

    #[getter]
    fn path(&self) -> String {
        self.inner.path().to_string_lossy().into_owned()
    }

    #[getter]
    fn format(&self) -> &'static str {
        self.inner.format().as_str()
    }

    #[getter]
    fn backend(&self) -> &'static str {
        self.inner.backend()
    }

    #[getter]
    fn dense_isa(&self) -> Option<&'static str> {
        self.inner.dense_isa()
    }

    /// Runs the model on a C-contiguous float32 matrix [rows, input_width].
    fn predict(&self, py: Python<'_>, x: PyReadonlyArray2<'_, f32>) -> PyResult<Py<PyAny>> {
        let model = &self.inner;
        let (rows, n) = rows_of(model, &x)?;
        let out = py
            .detach(|| model.predict_rows(rows, n))
            .map_err(model_error)?;
        let array = Array2::from_shape_vec((n, model.output_width()), out)
            .map_err(|e| model_error(ModelError::Shape(e.to_string())))?;
        Ok(array.into_pyarray(py).into_any().unbind())
    }

    /// Per-row mean squared error between the input and the model's reconstruction.
    fn reconstruction_error(
        &self,
        py: Python<'_>,
        x: PyReadonlyArray2<'_, f32>,
    ) -> PyResult<Py<PyAny>> {
        let model = &self.inner;
        let (rows, n) = rows_of(model, &x)?;
        let out = py
            .detach(|| model.reconstruction_error(rows, n))
            .map_err(model_error)?;
        Ok(Array1::from_vec(out).into_pyarray(py).into_any().unbind())
    }
}
