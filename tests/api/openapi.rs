//! The OpenAPI documents and Swagger UI pages, against the real server: the committed document is current,
//! every documented route is served, the pages and their assets are served from the binary, and each model's
//! document names its tensors and carries an example request that the model runs.

use crate::support;

use std::collections::BTreeSet;

use serde_json::{json, Value};
use support::{assert_error, bundled_repository, write_model, TestServer};

fn dataplane() -> Value {
    serde_json::from_str(oxinfer::http::openapi::dataplane_json()).unwrap()
}

#[test]
fn committed_document_is_current() {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/openapi/dataplane.json");
    let committed = std::fs::read_to_string(path).unwrap_or_default();
    assert!(
        committed == oxinfer::http::openapi::dataplane_json(),
        "openapi/dataplane.json differs from the document the code generates; regenerate it with \
         `cargo run -- openapi > openapi/dataplane.json` and commit it"
    );
}

#[test]
fn document_lists_each_route_once_with_a_unique_operation_id() {
    let document = dataplane();
    assert_eq!(document["openapi"], "3.1.0");
    let paths: BTreeSet<&str> = document["paths"]
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    let mut expected = BTreeSet::from([
        "/v2",
        "/v2/health/live",
        "/v2/health/ready",
        "/v2/models/stats",
        "/v2/repository/index",
        "/v2/repository/models/{name}/load",
        "/v2/repository/models/{name}/unload",
    ]);
    for base in ["/v2/models/{name}", "/v2/models/{name}/versions/{version}"] {
        for suffix in ["", "/ready", "/infer", "/config", "/stats"] {
            expected.insert(Box::leak(format!("{base}{suffix}").into_boxed_str()));
        }
    }
    assert_eq!(paths, expected);
    let mut ids = BTreeSet::new();
    for item in document["paths"].as_object().unwrap().values() {
        for operation in item.as_object().unwrap().values() {
            let id = operation["operationId"].as_str().unwrap();
            assert!(ids.insert(id.to_string()), "operationId {id} twice");
        }
    }
    let infer = &document["paths"]["/v2/models/{name}/infer"]["post"];
    for status in ["200", "400", "404", "413", "429", "500", "503", "504"] {
        assert!(
            infer["responses"].get(status).is_some(),
            "infer documents {status}"
        );
    }
    let responses = document["components"]["responses"].as_object().unwrap();
    for name in [
        "BadRequest",
        "NotFound",
        "MethodNotAllowed",
        "PayloadTooLarge",
        "Unavailable",
    ] {
        assert_eq!(
            responses[name]["content"]["application/json"]["schema"]["$ref"],
            "#/components/schemas/ErrorBody"
        );
    }
}

#[tokio::test]
async fn every_documented_route_is_served() {
    let s = TestServer::start(&bundled_repository()).await;
    let document = dataplane();
    for (path, item) in document["paths"].as_object().unwrap() {
        let url = path.replace("{name}", "iris").replace("{version}", "1");
        for method in item.as_object().unwrap().keys() {
            let request = match method.as_str() {
                "get" => s.client.get(s.url(&url)),
                "post" if url.starts_with("/v2/repository") => {
                    s.client.post(s.url(&url)).json(&serde_json::json!({}))
                }
                "post" => s.client.post(s.url(&url)).json(&support::iris_request()),
                other => panic!("unexpected method {other}"),
            };
            let r = request.send().await.unwrap();
            let status = r.status().as_u16();
            // Load and unload answer 200 with an empty body.
            let body: Value = serde_json::from_str(&r.text().await.unwrap()).unwrap_or(Value::Null);
            // iris is unversioned: its versioned routes answer the model's own 404, never "no route".
            let routed = !body["error"].as_str().unwrap_or("").contains("no route");
            assert!(routed && status != 405, "{method} {url}: {status} {body}");
        }
    }
}

#[tokio::test]
async fn dataplane_docs_page_and_assets_are_served_offline() {
    let s = TestServer::start(&bundled_repository()).await;
    let r = s.client.get(s.url("/v2/docs")).send().await.unwrap();
    assert_eq!(r.status().as_u16(), 200);
    assert_eq!(r.url().path(), "/v2/docs/", "redirected to the folder");
    let html = r.text().await.unwrap();
    assert!(html.contains("swagger-ui-bundle.js") && html.contains("url: \"dataplane.json\""));
    assert!(
        !html.contains("http://") && !html.contains("https://"),
        "no external asset"
    );
    for (file, content_type) in [
        ("swagger-ui-bundle.js", "application/javascript"),
        ("swagger-ui.css", "text/css"),
    ] {
        let r = s
            .client
            .get(s.url(&format!("/v2/docs/{file}")))
            .header("accept-encoding", "gzip, deflate")
            .send()
            .await
            .unwrap();
        assert_eq!(r.status().as_u16(), 200, "{file}");
        assert_eq!(r.headers()["content-type"], content_type);
        assert_eq!(r.headers()["content-encoding"], "gzip");
        let bytes = r.bytes().await.unwrap();
        assert_eq!(&bytes[..2], &[0x1f, 0x8b], "{file} is gzip");
        assert!(bytes.len() > 10_000);
        // A client that does not accept gzip gets the plain file (issue 21).
        let r = s
            .client
            .get(s.url(&format!("/v2/docs/{file}")))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status().as_u16(), 200, "{file}");
        assert_eq!(r.headers()["content-type"], content_type);
        assert!(r.headers().get("content-encoding").is_none(), "{file}");
        let plain = r.bytes().await.unwrap();
        assert!(plain.len() > bytes.len(), "{file}");
        assert!(std::str::from_utf8(&plain).is_ok(), "{file} is text");
    }
    let (status, document) = s.get("/v2/docs/dataplane.json").await;
    assert_eq!(status, 200);
    assert_eq!(document, dataplane());
    let r = s
        .client
        .post(s.url("/v2/docs/dataplane.json"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 405);
    assert!(r.json::<Value>().await.unwrap()["error"].is_string());
    assert_error(
        &s.get("/v2/docs/nothing.js").await,
        404,
        "no documentation file",
    );
}

/// The infer example of a model document, POSTed to the model's infer path of that document.
async fn run_document_example(s: &TestServer, document: &Value, infer_path: &str) -> Value {
    let operation = &document["paths"][infer_path]["post"];
    let body = &operation["requestBody"]["content"]["application/json"];
    assert_eq!(
        body["schema"]["$ref"],
        "#/components/schemas/ModelInferenceRequest"
    );
    let example = &body["example"];
    let (status, response) = s.post(infer_path, example).await;
    assert_eq!(status, 200, "example {example} of {infer_path}: {response}");
    response
}

#[tokio::test]
async fn each_bundled_model_document_names_its_tensors_and_its_example_runs() {
    let s = TestServer::start(&bundled_repository()).await;
    for model in [
        "iris",
        "iris-labels",
        "datatypes",
        "simple",
        "simple_string",
        "image_stats",
    ] {
        let (status, metadata) = s.get(&format!("/v2/models/{model}")).await;
        assert_eq!(status, 200);
        let (status, document) = s
            .get(&format!("/v2/models/{model}/docs/dataplane.json"))
            .await;
        assert_eq!(status, 200, "{model}: {document}");
        let paths: BTreeSet<&str> = document["paths"]
            .as_object()
            .unwrap()
            .keys()
            .map(String::as_str)
            .collect();
        let expected: BTreeSet<String> = ["", "/ready", "/infer", "/config", "/stats"]
            .iter()
            .map(|suffix| format!("/v2/models/{model}{suffix}"))
            .collect();
        assert_eq!(paths, expected.iter().map(String::as_str).collect());
        let schemas = &document["components"]["schemas"];
        for input in metadata["inputs"].as_array().unwrap() {
            let name = input["name"].as_str().unwrap();
            let schema = &schemas[format!("Input_{name}")];
            assert_eq!(
                schema["properties"]["name"]["enum"],
                json!([name]),
                "{model}"
            );
            assert_eq!(
                schema["properties"]["datatype"]["enum"][0],
                input["datatype"]
            );
            let shape = serde_json::to_string(&input["shape"])
                .unwrap()
                .replace(',', ", ");
            assert!(
                schema["description"].as_str().unwrap().contains(&shape),
                "{model}: {schema}"
            );
        }
        let request = &schemas["ModelInferenceRequest"]["properties"]["inputs"];
        assert_eq!(
            request["minItems"],
            metadata["inputs"].as_array().unwrap().len()
        );
        for output in metadata["outputs"].as_array().unwrap() {
            let name = output["name"].as_str().unwrap();
            let schema = &schemas[format!("Output_{name}")];
            assert_eq!(schema["properties"]["name"]["enum"], json!([name]));
            assert_eq!(
                schema["properties"]["datatype"]["enum"][0],
                output["datatype"]
            );
        }
        let response =
            run_document_example(&s, &document, &format!("/v2/models/{model}/infer")).await;
        assert_eq!(response["model_name"], model);
        let names: Vec<&Value> = response["outputs"]
            .as_array()
            .unwrap()
            .iter()
            .map(|o| &o["name"])
            .collect();
        let declared: Vec<&Value> = metadata["outputs"]
            .as_array()
            .unwrap()
            .iter()
            .map(|o| &o["name"])
            .collect();
        assert_eq!(names, declared, "{model}");
        let page = s
            .client
            .get(s.url(&format!("/v2/models/{model}/docs")))
            .send()
            .await
            .unwrap();
        assert_eq!(page.url().path(), format!("/v2/models/{model}/docs/"));
        assert!(page.text().await.unwrap().contains("dataplane.json"));
    }
    let iris = s.get("/v2/models/iris/docs/dataplane.json").await.1;
    let example = &iris["paths"]["/v2/models/iris/infer"]["post"]["requestBody"]["content"]
        ["application/json"]["example"];
    assert_eq!(
        *example,
        json!({"inputs": [{"name": "input", "shape": [1, 4], "datatype": "FP32", "data": [0, 0, 0, 0]}]})
    );
    let description = iris["info"]["description"].as_str().unwrap();
    assert!(
        description.contains("| input | `input` | FP32 | [-1, 4] |"),
        "{description}"
    );
    assert!(
        description.contains("| output | `probabilities` | FP32 | [-1, 3] |"),
        "{description}"
    );
}

#[tokio::test]
async fn versioned_model_document_uses_the_versioned_routes() {
    let root = tempfile::tempdir().unwrap();
    write_model(
        root.path(),
        "v1",
        &json!({"name": "flower", "parameters": {"version": "1"}}),
        Some("iris"),
    );
    write_model(
        root.path(),
        "v2",
        &json!({"name": "flower", "parameters": {"version": "2"}}),
        Some("iris"),
    );
    let s = TestServer::start(root.path()).await;
    let (status, document) = s
        .get("/v2/models/flower/versions/2/docs/dataplane.json")
        .await;
    assert_eq!(status, 200, "{document}");
    assert!(document["info"]["title"]
        .as_str()
        .unwrap()
        .contains("version 2"));
    let paths: Vec<&String> = document["paths"].as_object().unwrap().keys().collect();
    assert!(
        paths
            .iter()
            .all(|p| p.starts_with("/v2/models/flower/versions/2")),
        "{paths:?}"
    );
    let infer = &document["paths"]["/v2/models/flower/versions/2/infer"]["post"];
    assert!(
        infer["parameters"]
            .as_array()
            .unwrap()
            .iter()
            .all(|p| p["in"] != "path"),
        "no path parameter left: {infer}"
    );
    let response = run_document_example(&s, &document, "/v2/models/flower/versions/2/infer").await;
    assert_eq!(response["model_version"], "2");
    let page = s
        .client
        .get(s.url("/v2/models/flower/versions/2/docs"))
        .send()
        .await
        .unwrap();
    assert_eq!(page.url().path(), "/v2/models/flower/versions/2/docs/");
    let css = s
        .client
        .get(s.url("/v2/models/flower/versions/2/docs/swagger-ui.css"))
        .send()
        .await
        .unwrap();
    assert_eq!(css.status().as_u16(), 200);
}

#[tokio::test]
async fn docs_of_unknown_models_are_404_json() {
    let s = TestServer::start(&bundled_repository()).await;
    assert_error(
        &s.get("/v2/models/nope/docs/dataplane.json").await,
        404,
        "Model nope not found",
    );
    assert_error(
        &s.get("/v2/models/iris/versions/7/docs/dataplane.json")
            .await,
        404,
        "Model iris with version 7 not found",
    );
    assert_error(
        &s.get("/v2/models/iris/docs/other.json").await,
        404,
        "no documentation file",
    );
    // The page, its folder redirect and its assets are 404 too for an unknown model or version (issue 21),
    // rather than a page that says "Failed to load API definition".
    for (path, needle) in [
        ("/v2/models/nope/docs", "Model nope not found"),
        ("/v2/models/nope/docs/", "Model nope not found"),
        (
            "/v2/models/nope/docs/swagger-ui.css",
            "Model nope not found",
        ),
        ("/v2/models/nope/versions/1/docs/", "Model nope not found"),
        (
            "/v2/models/iris/versions/7/docs/",
            "Model iris with version 7 not found",
        ),
        (
            "/v2/models/iris/versions/7/docs/swagger-ui-bundle.js",
            "Model iris with version 7 not found",
        ),
    ] {
        assert_error(&s.get(path).await, 404, needle);
    }
    let page = s
        .client
        .get(s.url("/v2/models/iris/docs/"))
        .send()
        .await
        .unwrap();
    assert_eq!(page.status().as_u16(), 200);
}

/// GETs `path` with an optional `X-Forwarded-Prefix`, returning the document's `servers`.
async fn servers_of(s: &TestServer, path: &str, forwarded: Option<&str>) -> Value {
    let mut request = s.client.get(s.url(path));
    if let Some(prefix) = forwarded {
        request = request.header("x-forwarded-prefix", prefix);
    }
    let r = request.send().await.unwrap();
    assert_eq!(r.status().as_u16(), 200, "{path}");
    assert_eq!(r.headers()["vary"], "x-forwarded-prefix", "{path}");
    let document: Value = r.json().await.unwrap();
    assert!(document["paths"].as_object().is_some_and(|p| !p.is_empty()));
    document.get("servers").cloned().unwrap_or(Value::Null)
}

fn server_url(url: &str) -> Value {
    json!([{"url": url, "description": "the path prefix this document was requested under"}])
}

#[tokio::test]
async fn served_documents_name_the_forwarded_prefix_as_their_server() {
    let s = TestServer::start(&bundled_repository()).await;
    // No prefix: the committed text, no servers (OpenAPI's default is "/").
    let plain = s
        .client
        .get(s.url("/v2/docs/dataplane.json"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert_eq!(plain, oxinfer::http::openapi::dataplane_json());
    for path in [
        "/v2/docs/dataplane.json",
        "/v2/models/iris/docs/dataplane.json",
    ] {
        assert_eq!(servers_of(&s, path, None).await, Value::Null, "{path}");
        assert_eq!(
            servers_of(&s, path, Some("/prefix")).await,
            server_url("/prefix")
        );
        assert_eq!(
            servers_of(&s, path, Some("/team-a/models.v2/")).await,
            server_url("/team-a/models.v2")
        );
        // Hostile or odd values are ignored: the document keeps no servers.
        for hostile in [
            "//evil.example",
            "https://evil.example",
            "/a/../b",
            "/a b",
            "/a\"onload=\"x",
            "/%2e%2e",
            "relative",
        ] {
            assert_eq!(
                servers_of(&s, path, Some(hostile)).await,
                Value::Null,
                "{path} {hostile}"
            );
        }
        let long = format!("/{}", "a".repeat(300));
        assert_eq!(servers_of(&s, path, Some(&long)).await, Value::Null);
    }
}

#[tokio::test]
async fn served_documents_follow_root_path() {
    let mut settings = support::test_settings(&bundled_repository());
    settings.root_path = "/api".into();
    let s = TestServer::start_with(settings).await;
    for path in [
        "/v2/docs/dataplane.json",
        "/v2/models/iris/docs/dataplane.json",
    ] {
        // Reached under the root path, or through a proxy that stripped it: the root path either way.
        assert_eq!(
            servers_of(&s, &format!("/api{path}"), None).await,
            server_url("/api")
        );
        assert_eq!(servers_of(&s, path, None).await, server_url("/api"));
        // A proxy that stripped /p and kept the root path: the client used /p/api.
        assert_eq!(
            servers_of(&s, &format!("/api{path}"), Some("/p")).await,
            server_url("/p/api")
        );
        // A proxy that stripped the root path itself and says so.
        assert_eq!(servers_of(&s, path, Some("/api")).await, server_url("/api"));
        assert_eq!(
            servers_of(&s, path, Some("//evil.example")).await,
            server_url("/api")
        );
    }
    let page = s
        .client
        .get(s.url("/api/v2/models/iris/docs"))
        .send()
        .await
        .unwrap();
    assert_eq!(page.status().as_u16(), 200);
    assert_eq!(page.url().path(), "/api/v2/models/iris/docs/");
}
