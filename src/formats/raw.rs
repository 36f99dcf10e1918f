//! Raw messages: key and value bytes as two binary columns, nothing decoded.

use std::sync::Arc;

use arrow_array::{BinaryArray, RecordBatch};
use arrow_schema::{DataType, Field, Schema, SchemaRef};

use super::{BatchDecoder, Decoded, FormatError, Payload};

pub struct RawDecoder {
    schema: SchemaRef,
}

impl RawDecoder {
    pub fn new() -> Self {
        let schema = Schema::new(vec![
            Field::new("key", DataType::Binary, true),
            Field::new("value", DataType::Binary, true),
        ]);
        RawDecoder {
            schema: Arc::new(schema),
        }
    }
}

impl Default for RawDecoder {
    fn default() -> Self {
        Self::new()
    }
}

impl BatchDecoder for RawDecoder {
    fn schema(&self) -> SchemaRef {
        self.schema.clone()
    }

    fn decode(&mut self, payloads: &[Payload<'_>]) -> Result<Decoded, FormatError> {
        let keys: BinaryArray = payloads.iter().map(|p| p.key).collect();
        let values: BinaryArray = payloads.iter().map(|p| p.value).collect();
        let batch =
            RecordBatch::try_new(self.schema.clone(), vec![Arc::new(keys), Arc::new(values)])?;
        Ok(Decoded {
            batch,
            failures: Vec::new(),
        })
    }
}
