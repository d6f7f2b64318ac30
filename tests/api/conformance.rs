//! Conformance report: every operation of the API reference, probed against the real server.
//! An operation is implemented when its route exists (not `404 Route not found.` and not 405).
//! Every answer goes through the checked client, so a documented response that disagrees with
//! the reference fails here as everywhere else.

use reqwest::Method;

use crate::harness::{schema, TestServer};

/// Fills a reference path's parameters with values that name something plausible.
fn concrete(path: &str, org: &str) -> String {
    path.split('/')
        .map(|seg| match seg {
            "{user}" => "me".to_string(),
            "{organization}" => org.to_string(),
            s if s.starts_with('{') && s.ends_with('}') => {
                let name = &s[1..s.len() - 1];
                if name.ends_with("name") {
                    "missing-name".to_string()
                } else if name == "buildnumber" {
                    "1".to_string()
                } else {
                    uuid::Uuid::new_v4().to_string()
                }
            }
            s => s.to_string(),
        })
        .collect::<Vec<_>>()
        .join("/")
}

/// Whether the server routes an operation: sends it (with `{}` as the body of writes) and
/// checks the answer is neither `404 Route not found.` nor 405. Never probe `/users/logout`
/// with a session still needed.
pub(crate) async fn is_routed(
    client: &codersdk::Client,
    method: &str,
    path: &str,
    org: &str,
) -> bool {
    let m = Method::from_bytes(method.as_bytes()).unwrap();
    let body =
        matches!(method, "POST" | "PUT" | "PATCH").then(|| ("application/json", b"{}".to_vec()));
    let raw = client
        .send(m, &format!("/api/v2{}", concrete(path, org)), body, &[])
        .await
        .unwrap_or_else(|e| panic!("{method} {path}: {e}"));
    let not_found = raw.status == 404
        && raw
            .json::<codersdk::Response>()
            .is_ok_and(|r| r.message == "Route not found.");
    raw.status != 405 && !not_found
}

#[tokio::test]
async fn every_reference_operation_is_routed() {
    let srv = TestServer::start().await;
    let (owner, first) = srv.owner().await;
    let org = first.organization_id.to_string();
    let mut ops: Vec<(String, String)> = schema::spec().subset_operations();
    ops.sort();
    let mut missing = Vec::new();
    for (method, path) in &ops {
        // Logging out would end the session the rest of the probes use.
        if path == "/users/logout" {
            continue;
        }
        let unrouted = !is_routed(&owner, method, path, &org).await;
        if unrouted {
            missing.push(format!("{method} {path}"));
        }
    }
    let implemented = ops.len() - missing.len();
    println!(
        "conformance: {implemented} implemented / {} total operations in the reference",
        ops.len()
    );
    for m in &missing {
        println!("conformance: not implemented: {m}");
    }
    // The reference holds exactly the operations in scope: every one must be routed.
    assert!(
        missing.is_empty(),
        "reference operations without a route: {missing:?}"
    );
}

/// Operations outside the reference that Coder's clients call on their main paths (the CLI,
/// VS Code, JetBrains, terraform-provider-coderd, the dashboard). Their answers are checked
/// against `upstream-swagger-full.json` like any other.
pub(crate) const CLIENT_OPERATIONS: &[(&str, &str)] = &[
    ("GET", "/organizations/{organization}/members/{user}"),
    ("GET", "/organizations/{organization}/members/roles"),
    ("GET", "/deployment/ssh"),
    ("GET", "/deployment/config"),
    ("GET", "/users/{user}/login-type"),
    ("GET", "/users/{user}/autofill-parameters"),
    ("GET", "/regions"),
    ("GET", "/users/{user}/appearance"),
    ("PUT", "/users/{user}/appearance"),
    ("GET", "/experiments/available"),
];

/// Client operations not implemented yet (counted in the report; the test fails once one is
/// routed, so the lists stay true).
const CLIENT_OPERATIONS_MISSING: &[(&str, &str)] = &[];

#[tokio::test]
async fn client_operations_beyond_the_reference_are_routed() {
    let srv = TestServer::start().await;
    let (owner, first) = srv.owner().await;
    let org = first.organization_id.to_string();
    let mut missing = Vec::new();
    for (method, path) in CLIENT_OPERATIONS {
        if !is_routed(&owner, method, path, &org).await {
            missing.push(format!("{method} {path}"));
        }
    }
    let mut unexpected = Vec::new();
    for (method, path) in CLIENT_OPERATIONS_MISSING {
        if is_routed(&owner, method, path, &org).await {
            unexpected.push(format!("{method} {path}"));
        }
    }
    let total = CLIENT_OPERATIONS.len() + CLIENT_OPERATIONS_MISSING.len();
    println!(
        "conformance: {} implemented / {total} total operations beyond the reference that clients call",
        CLIENT_OPERATIONS.len() - missing.len() + unexpected.len(),
    );
    for (method, path) in CLIENT_OPERATIONS_MISSING {
        println!("conformance: not implemented: {method} {path}");
    }
    assert!(
        unexpected.is_empty(),
        "routed now, move them to CLIENT_OPERATIONS: {unexpected:?}"
    );
    assert!(
        missing.is_empty(),
        "client operations without a route: {missing:?}"
    );
}
