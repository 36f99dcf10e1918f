//! Arrow across the boundary through the Arrow C data interface (PyCapsule protocol):
//! no copies, results are pyarrow objects.

use std::sync::Arc;

use arrow::ffi::{from_ffi, to_ffi, FFI_ArrowArray, FFI_ArrowSchema};
use arrow::ffi_stream::{FFI_ArrowArrayStream, RecordBatchStreamReader};
use arrow_array::{Array, RecordBatch, RecordBatchReader, StructArray};
use arrow_schema::{DataType, Schema, SchemaRef};
use pyo3::prelude::*;
use pyo3::sync::PyOnceLock;
use pyo3::types::{PyCapsule, PyTuple, PyType};

use super::errors::SchemaError;

static RECORD_BATCH_TYPE: PyOnceLock<Py<PyType>> = PyOnceLock::new();
static SCHEMA_TYPE: PyOnceLock<Py<PyType>> = PyOnceLock::new();

fn pyarrow_type<'py>(
    py: Python<'py>,
    cell: &'static PyOnceLock<Py<PyType>>,
    name: &str,
) -> PyResult<Bound<'py, PyType>> {
    Ok(cell
        .get_or_try_init(py, || -> PyResult<Py<PyType>> {
            Ok(py
                .import("pyarrow")?
                .getattr(name)?
                .cast_into::<PyType>()?
                .unbind())
        })?
        .bind(py)
        .clone())
}

fn arrow_err(error: impl std::fmt::Display) -> PyErr {
    SchemaError::new_err(format!("Arrow C data interface: {error}"))
}

/// A Rust record batch as a `pyarrow.RecordBatch`.
pub fn batch_to_py(py: Python<'_>, batch: RecordBatch) -> PyResult<Py<PyAny>> {
    let array: StructArray = batch.into();
    let (ffi_array, ffi_schema) = to_ffi(&array.to_data()).map_err(arrow_err)?;
    let schema_capsule = PyCapsule::new_with_value(py, ffi_schema, c"arrow_schema")?;
    let array_capsule = PyCapsule::new_with_value(py, ffi_array, c"arrow_array")?;
    let cls = pyarrow_type(py, &RECORD_BATCH_TYPE, "RecordBatch")?;
    Ok(cls
        .call_method1("_import_from_c_capsule", (schema_capsule, array_capsule))?
        .unbind())
}

/// A Rust schema as a `pyarrow.Schema`.
pub fn schema_to_py(py: Python<'_>, schema: &Schema) -> PyResult<Py<PyAny>> {
    let ffi_schema = FFI_ArrowSchema::try_from(schema).map_err(arrow_err)?;
    let capsule = PyCapsule::new_with_value(py, ffi_schema, c"arrow_schema")?;
    let cls = pyarrow_type(py, &SCHEMA_TYPE, "Schema")?;
    Ok(cls
        .call_method1("_import_from_c_capsule", (capsule,))?
        .unbind())
}

/// Any object with `__arrow_c_schema__` (pyarrow.Schema, a Field, ...) as a Rust schema.
pub fn schema_from_py(obj: &Bound<'_, PyAny>) -> PyResult<SchemaRef> {
    let capsule = obj
        .call_method0("__arrow_c_schema__")?
        .cast_into::<PyCapsule>()?;
    let ptr = capsule.pointer_checked(Some(c"arrow_schema"))?;
    // SAFETY: the capsule named arrow_schema holds an FFI_ArrowSchema owned by the capsule;
    // we only borrow it for the conversion.
    let ffi_schema = unsafe { &*(ptr.as_ptr() as *const FFI_ArrowSchema) };
    Ok(Arc::new(Schema::try_from(ffi_schema).map_err(arrow_err)?))
}

/// Record batches from a pyarrow Table / RecordBatch / RecordBatchReader, or anything with
/// `__arrow_c_stream__` or `__arrow_c_array__` (pandas >= 2.2, polars, ...).
pub fn batches_from_py(obj: &Bound<'_, PyAny>) -> PyResult<(SchemaRef, Vec<RecordBatch>)> {
    if obj.hasattr("__arrow_c_stream__")? {
        let capsule = obj
            .call_method0("__arrow_c_stream__")?
            .cast_into::<PyCapsule>()?;
        let ptr = capsule.pointer_checked(Some(c"arrow_array_stream"))?;
        // SAFETY: the capsule holds an FFI_ArrowArrayStream; from_raw moves it out and
        // leaves a released stream behind, which the capsule's destructor ignores.
        let reader =
            unsafe { RecordBatchStreamReader::from_raw(ptr.as_ptr() as *mut FFI_ArrowArrayStream) }
                .map_err(arrow_err)?;
        let schema = reader.schema();
        let batches = reader.collect::<Result<Vec<_>, _>>().map_err(arrow_err)?;
        return Ok((schema, batches));
    }
    if obj.hasattr("__arrow_c_array__")? {
        let pair = obj
            .call_method0("__arrow_c_array__")?
            .cast_into::<PyTuple>()?;
        let schema_capsule = pair.get_item(0)?.cast_into::<PyCapsule>()?;
        let array_capsule = pair.get_item(1)?.cast_into::<PyCapsule>()?;
        let schema_ptr = schema_capsule.pointer_checked(Some(c"arrow_schema"))?;
        let array_ptr = array_capsule.pointer_checked(Some(c"arrow_array"))?;
        // SAFETY: as above; the array is moved out of its capsule, the schema borrowed.
        let data = unsafe {
            let ffi_array = FFI_ArrowArray::from_raw(array_ptr.as_ptr() as *mut FFI_ArrowArray);
            from_ffi(ffi_array, &*(schema_ptr.as_ptr() as *const FFI_ArrowSchema))
        }
        .map_err(arrow_err)?;
        if !matches!(data.data_type(), DataType::Struct(_)) {
            return Err(SchemaError::new_err(
                "expected a table or record batch, got a single array",
            ));
        }
        let batch = RecordBatch::from(StructArray::from(data));
        return Ok((batch.schema(), vec![batch]));
    }
    Err(pyo3::exceptions::PyTypeError::new_err(format!(
        "expected a pyarrow Table or RecordBatch, or an object with __arrow_c_stream__, got {}",
        obj.get_type().name()?
    )))
}
