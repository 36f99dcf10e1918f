use super::*;

const V1: &str = r#"{"type":"record","name":"R","fields":[{"name":"a","type":"int"}]}"#;

struct Client {
    server: RegistryServer,
    http: reqwest::blocking::Client,
}

impl Client {
    fn new() -> Self {
        let server = RegistryServer::start(Arc::new(Registry::in_memory()), "127.0.0.1:0").unwrap();
        Client {
            server,
            http: reqwest::blocking::Client::new(),
        }
    }

    fn call(&self, method: &str, path: &str, body: Option<String>) -> (u16, String, Value) {
        let url = format!("{}{path}", self.server.url());
        let mut request = self
            .http
            .request(method.parse().unwrap(), url)
            .header("Content-Type", CONTENT_TYPE);
        if let Some(body) = body {
            request = request.body(body);
        }
        let response = request.send().unwrap();
        let status = response.status().as_u16();
        let content_type = response
            .headers()
            .get("content-type")
            .map(|v| v.to_str().unwrap().to_string())
            .unwrap_or_default();
        let text = response.text().unwrap();
        let value = serde_json::from_str(&text).unwrap_or(Value::Null);
        (status, content_type, value)
    }

    fn schema_body(schema: &str) -> Option<String> {
        Some(json!({"schema": schema}).to_string())
    }
}

#[test]
fn registers_looks_up_and_reads_back_through_the_rest_api() {
    let client = Client::new();
    let (status, content_type, body) = client.call(
        "POST",
        "/subjects/t-value/versions?normalize=False",
        Client::schema_body(V1),
    );
    assert_eq!((status, content_type.as_str()), (200, CONTENT_TYPE));
    assert_eq!(body["id"], 1);
    let (_, _, body) = client.call("GET", "/schemas/ids/1?subject=t-value", None);
    assert_eq!(body["schema"], V1);
    let (_, _, body) = client.call("GET", "/schemas/ids/1/schema", None);
    assert_eq!(body["name"], "R");
    let (_, _, body) = client.call(
        "POST",
        "/subjects/t-value?normalize=False&deleted=False",
        Client::schema_body(V1),
    );
    assert_eq!(
        (body["id"].as_u64(), body["version"].as_u64()),
        (Some(1), Some(1))
    );
    let (_, _, body) = client.call("GET", "/subjects/t-value/versions/latest", None);
    assert_eq!(body["subject"], "t-value");
    assert_eq!(client.call("GET", "/subjects", None).2, json!(["t-value"]));
    assert_eq!(
        client.call("GET", "/subjects/t-value/versions", None).2,
        json!([1])
    );
    assert_eq!(
        client.call("GET", "/schemas/ids/1/versions", None).2,
        json!([{"subject": "t-value", "version": 1}])
    );
    assert_eq!(
        client.call("GET", "/schemas/types", None).2,
        json!(["AVRO"])
    );
    assert_eq!(
        client.call("GET", "/associations/resources/-/t", None).2,
        json!([])
    );
    let (_, _, body) = client.call(
        "POST",
        "/compatibility/subjects/t-value/versions/latest?verbose=true",
        Client::schema_body(
            r#"{"type":"record","name":"R","fields":[{"name":"a","type":"string"}]}"#,
        ),
    );
    assert_eq!(body["is_compatible"], false);
    assert!(!body["messages"].as_array().unwrap().is_empty());
    assert_eq!(client.server.stats().requests, 11);
}

#[test]
fn config_and_mode_round_trip() {
    let client = Client::new();
    assert_eq!(
        client.call("GET", "/config", None).2["compatibilityLevel"],
        "BACKWARD"
    );
    let put = client.call(
        "PUT",
        "/config/s",
        Some(r#"{"compatibility":"full_transitive"}"#.into()),
    );
    assert_eq!(put.2["compatibility"], "FULL_TRANSITIVE");
    assert_eq!(
        client.call("GET", "/config/s", None).2["compatibilityLevel"],
        "FULL_TRANSITIVE"
    );
    assert_eq!(
        client.call("DELETE", "/config/s", None).2["compatibilityLevel"],
        "FULL_TRANSITIVE"
    );
    assert_eq!(client.call("GET", "/config/s", None).2["error_code"], 40408);
    assert_eq!(
        client.call("GET", "/config/s?defaultToGlobal=true", None).2["compatibilityLevel"],
        "BACKWARD"
    );
    let bad = client.call(
        "PUT",
        "/config",
        Some(r#"{"compatibility":"SOMETIMES"}"#.into()),
    );
    assert_eq!((bad.0, bad.2["error_code"].as_u64()), (422, Some(42203)));
    assert_eq!(
        client
            .call("PUT", "/mode", Some(r#"{"mode":"READONLY"}"#.into()))
            .2["mode"],
        "READONLY"
    );
    let refused = client.call("POST", "/subjects/s/versions", Client::schema_body(V1));
    assert_eq!(
        (refused.0, refused.2["error_code"].as_u64()),
        (422, Some(42205))
    );
    let import = client.call("PUT", "/mode", Some(r#"{"mode":"IMPORT"}"#.into()));
    assert_eq!(import.2["error_code"], 42204);
}

#[test]
fn bad_input_gets_registry_error_codes_never_a_500() {
    let client = Client::new();
    let cases: Vec<(&str, &str, Option<String>, u16, u64)> = vec![
        (
            "POST",
            "/subjects/s/versions",
            Some("{not json".into()),
            400,
            400,
        ),
        (
            "POST",
            "/subjects/s/versions",
            Some("[1,2]".into()),
            400,
            400,
        ),
        (
            "POST",
            "/subjects/s/versions",
            Some("{}".into()),
            422,
            42201,
        ),
        (
            "POST",
            "/subjects/s/versions",
            Client::schema_body("{\"type\": \"recordz\"}"),
            422,
            42201,
        ),
        (
            "POST",
            "/subjects/s/versions",
            Client::schema_body("not json"),
            422,
            42201,
        ),
        (
            "POST",
            "/subjects/s/versions",
            Some(json!({"schema": "{}", "schemaType": "PROTOBUF"}).to_string()),
            422,
            42201,
        ),
        (
            "POST",
            "/subjects/s/versions",
            Client::schema_body(
                r#"{"type":"record","name":"N","fields":[{"name":"n","type":"N"}]}"#,
            ),
            422,
            42201,
        ),
        ("GET", "/subjects/nope/versions", None, 404, 40401),
        ("GET", "/subjects/nope/versions/1", None, 404, 40401),
        ("GET", "/subjects/nope/versions/zero", None, 422, 42202),
        ("GET", "/schemas/ids/77", None, 404, 40403),
        ("GET", "/schemas/ids/abc", None, 404, 40403),
        ("GET", "/no/such/thing", None, 404, 404),
        ("PATCH", "/subjects", None, 405, 405),
        ("GET", "/subjects?deleted=maybe", None, 400, 400),
    ];
    for (method, path, body, status, code) in cases {
        let (got_status, _, got) = client.call(method, path, body.clone());
        assert_eq!(
            (got_status, got["error_code"].as_u64()),
            (status, Some(code)),
            "{method} {path} {body:?}: {got}"
        );
        assert!(got["message"].as_str().is_some_and(|m| !m.is_empty()));
    }
    // A version that exists in no subject (after one is registered).
    client.call("POST", "/subjects/s/versions", Client::schema_body(V1));
    assert_eq!(
        client.call("GET", "/subjects/s/versions/9", None).2["error_code"],
        40402
    );
    // A body over the limit is refused before it is read in full.
    let huge = "x".repeat(MAX_BODY_BYTES + 1024);
    let (status, _, body) = client.call("POST", "/subjects/s/versions", Some(huge));
    assert_eq!((status, body["error_code"].as_u64()), (413, Some(413)));
    assert_eq!(client.server.stats().server_errors, 0);
}

#[test]
fn subjects_with_slashes_and_percent_escapes_are_decoded() {
    let client = Client::new();
    client.call(
        "POST",
        "/subjects/a%2Fb%20c/versions",
        Client::schema_body(V1),
    );
    assert_eq!(client.call("GET", "/subjects", None).2, json!(["a/b c"]));
    assert_eq!(
        parse_query("x=1&flag&y=a%3Db+c"),
        [
            ("x".to_string(), "1".to_string()),
            ("flag".to_string(), String::new()),
            ("y".to_string(), "a=b c".to_string()),
        ]
    );
    assert_eq!(percent_decode("100%"), "100%");
}
