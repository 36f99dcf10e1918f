//! A small Confluent Schema Registry client: schemas by id (cached) and registration.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use apache_avro::Schema as AvroSchema;

use super::FormatError;

/// How to reach a Schema Registry: its URL and optional basic-auth credentials.
#[derive(Debug, Clone)]
pub struct RegistryConfig {
    pub url: String,
    /// `"user:password"`, as confluent-kafka's `basic.auth.user.info`.
    pub basic_auth: Option<String>,
    pub timeout: Duration,
}

pub struct SchemaRegistry {
    config: RegistryConfig,
    http: reqwest::blocking::Client,
    by_id: HashMap<u32, Arc<AvroSchema>>,
}

#[derive(serde::Deserialize)]
struct SchemaResponse {
    schema: String,
}

#[derive(serde::Deserialize)]
struct IdResponse {
    id: u32,
}

impl SchemaRegistry {
    pub fn new(config: RegistryConfig) -> Result<Self, FormatError> {
        let http = reqwest::blocking::Client::builder()
            .timeout(config.timeout)
            .build()
            .map_err(|e| FormatError::Registry(e.to_string()))?;
        Ok(SchemaRegistry {
            config,
            http,
            by_id: HashMap::new(),
        })
    }

    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.config.url.trim_end_matches('/'))
    }

    fn with_auth(
        &self,
        request: reqwest::blocking::RequestBuilder,
    ) -> reqwest::blocking::RequestBuilder {
        match self
            .config
            .basic_auth
            .as_deref()
            .and_then(|info| info.split_once(':'))
        {
            Some((user, password)) => request.basic_auth(user, Some(password)),
            None => request,
        }
    }

    fn send<T: serde::de::DeserializeOwned>(
        &self,
        request: reqwest::blocking::RequestBuilder,
        what: &str,
    ) -> Result<T, FormatError> {
        let fail = |reason: String| {
            FormatError::Registry(format!("{what} at {}: {reason}", self.config.url))
        };
        let response = self
            .with_auth(request)
            .send()
            .map_err(|e| fail(e.to_string()))?;
        let status = response.status();
        let body = response.text().map_err(|e| fail(e.to_string()))?;
        if !status.is_success() {
            return Err(fail(format!("HTTP {status}: {body}")));
        }
        serde_json::from_str(&body).map_err(|e| fail(format!("unexpected answer {body:?}: {e}")))
    }

    /// The Avro schema registered under `id`, fetched once and cached.
    pub fn avro_schema(&mut self, id: u32) -> Result<Arc<AvroSchema>, FormatError> {
        if let Some(schema) = self.by_id.get(&id) {
            return Ok(schema.clone());
        }
        let response: SchemaResponse = self.send(
            self.http.get(self.url(&format!("/schemas/ids/{id}"))),
            &format!("fetching schema id {id}"),
        )?;
        let schema = AvroSchema::parse_str(&response.schema)
            .map_err(|e| FormatError::AvroSchema(format!("schema id {id}: {e}")))?;
        let schema = Arc::new(schema);
        self.by_id.insert(id, schema.clone());
        Ok(schema)
    }

    /// Registers `schema` under `subject` (or finds it registered) and returns its id.
    pub fn register(&mut self, subject: &str, schema: &AvroSchema) -> Result<u32, FormatError> {
        // The full schema, not its Parsing Canonical Form: that form strips logical types,
        // defaults and docs, so readers would get timestamps as longs and decimals as bytes,
        // and a registry could not check compatibility (added fields need their defaults).
        let text =
            serde_json::to_string(schema).map_err(|e| FormatError::AvroSchema(e.to_string()))?;
        let body = serde_json::json!({"schema": text, "schemaType": "AVRO"});
        let response: IdResponse = self.send(
            self.http
                .post(self.url(&format!("/subjects/{subject}/versions")))
                .header("Content-Type", "application/vnd.schemaregistry.v1+json")
                .json(&body),
            &format!("registering a schema under subject {subject:?}"),
        )?;
        self.by_id.insert(response.id, Arc::new(schema.clone()));
        Ok(response.id)
    }
}
