//! The published API document (`/api/v1/openapi.json`) against the server
//! that serves it: a valid OpenAPI 3 document (checked by
//! `openapi-spec-validator`, installed by `.ci/install-api-tools.sh`), every
//! route the server serves described and nothing described that is not
//! served, and the statuses a request without a token gets are documented.

use std::collections::BTreeSet;
use std::process::Command;

use crate::util::HttpTest;

/// The document as the server embeds it.
const DOCUMENT: &str = include_str!("../src/http/openapi.json");
/// The route table's source: what the server serves.
const ROUTES_SOURCE: &str = include_str!("../src/http/mod.rs");

/// `(METHOD, path)` of every route in the route table, with scopes'
/// prefixes: each `.route("PATH", web::METHOD()` after a
/// `web::scope("PREFIX")` gets the prefix.
fn served_routes() -> BTreeSet<(String, String)> {
    let mut routes = BTreeSet::new();
    let mut prefix = String::new();
    let mut rest = ROUTES_SOURCE;
    loop {
        let scope = rest.find("web::scope(\"");
        let route = rest.find(".route(");
        let (at, is_scope) = match (scope, route) {
            (Some(s), Some(r)) if s < r => (s, true),
            (_, Some(r)) => (r, false),
            (Some(s), None) => (s, true),
            (None, None) => break,
        };
        rest = &rest[at..];
        if is_scope {
            let start = "web::scope(\"".len();
            let end = rest[start..].find('"').expect("scope prefix") + start;
            prefix = rest[start..end].to_owned();
            rest = &rest[end..];
            continue;
        }
        let open = rest.find('"').expect("route path") + 1;
        let close = rest[open..].find('"').expect("route path end") + open;
        let path = &rest[open..close];
        let after = &rest[close..];
        let method_at = after.find("web::").expect("route method") + "web::".len();
        let method_end = after[method_at..].find('(').expect("method call") + method_at;
        let method = after[method_at..method_end].to_uppercase();
        routes.insert((method, format!("{prefix}{path}")));
        rest = &rest[close..];
    }
    routes
}

/// `(METHOD, path)` of every operation in the document.
fn documented_routes(doc: &serde_json::Value) -> BTreeSet<(String, String)> {
    let mut routes = BTreeSet::new();
    for (path, ops) in doc["paths"].as_object().expect("paths") {
        for method in ops.as_object().expect("operations").keys() {
            if method != "parameters" {
                routes.insert((method.to_uppercase(), path.clone()));
            }
        }
    }
    routes
}

/// Goal: the document is valid OpenAPI 3. Method: the reference validator
/// from PyPI (`openapi-spec-validator`), which knows the schema rules a
/// JSON parse does not (an empty `required` list was one).
#[test]
fn openapi_document_is_valid() {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/src/http/openapi.json");
    let out = Command::new("python3")
        .args([
            "-c",
            "import json, sys\n\
             from openapi_spec_validator import validate\n\
             validate(json.load(open(sys.argv[1])))\n",
            path,
        ])
        .output()
        .expect("python3 runs");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        !stderr.contains("No module named"),
        "openapi-spec-validator is missing: run .ci/install-api-tools.sh\n{stderr}"
    );
    assert!(out.status.success(), "invalid OpenAPI document:\n{stderr}");
}

/// Goal: every route the server serves is described, and every described
/// operation is served. Method: the route table's source against the
/// document's paths and methods.
#[test]
fn every_route_is_documented_and_served() {
    let doc: serde_json::Value = serde_json::from_str(DOCUMENT).expect("document");
    let served = served_routes();
    assert!(served.len() >= 20, "the route table parse found {served:?}");
    let documented = documented_routes(&doc);
    let undocumented: Vec<_> = served.difference(&documented).collect();
    let unserved: Vec<_> = documented.difference(&served).collect();
    assert!(
        undocumented.is_empty(),
        "served, not described: {undocumented:?}"
    );
    assert!(unserved.is_empty(), "described, not served: {unserved:?}");
}

/// Goal: what a request without a token gets is in the document. Method:
/// each operation is called over HTTP without a token (a JSON body `{}`
/// where one is expected, path parameters filled with a plausible id);
/// its status must be one the operation documents.
#[actix_rt::test]
async fn answers_without_a_token_are_documented() {
    let doc: serde_json::Value = serde_json::from_str(DOCUMENT).expect("document");
    let t = HttpTest::start(crate::util::http_config(3_600_000, 3_600_000)).await;
    let mut wrong = Vec::new();
    for (path, ops) in doc["paths"].as_object().expect("paths") {
        for (method, op) in ops.as_object().expect("operations") {
            if method == "parameters" {
                continue;
            }
            let url_path = path
                .replace("{file}", "style.css")
                .replace("{call_id}", "no-such-call")
                .replace("{agent_id}", "ann")
                .replace("{action}", "hold")
                .replace("{mode}", "monitor")
                .replace("{seq}", "1");
            let body = op.get("requestBody").map(|_| serde_json::json!({}));
            let (status, _) = t.call(&method.to_uppercase(), &url_path, None, body).await;
            let responses = op["responses"].as_object().expect("responses");
            let documented = responses.contains_key(&status.to_string())
                || (status == 101 && responses.contains_key("101"));
            if !documented {
                wrong.push(format!("{} {url_path}: {status}", method.to_uppercase()));
            }
        }
    }
    t.http.stop().await;
    assert!(wrong.is_empty(), "undocumented statuses: {wrong:#?}");
}
