//! Helpers both benchmarks use to set up templates through the real API.

use std::time::{Duration, Instant};

use codersdk::Client;
use reqwest::Method;
use serde_json::{json, Value};
use uuid::Uuid;

pub const OWNER_EMAIL: &str = "owner@example.com";
pub const OWNER_PASSWORD: &str = "SomeSecurePassword!";

/// A template archive holding one `echo.json` (see docs/echo-provisioner.md).
pub fn echo_tar(echo: &Value) -> Vec<u8> {
    let data = serde_json::to_vec(echo).expect("echo.json");
    let mut b = tar::Builder::new(Vec::new());
    let mut h = tar::Header::new_ustar();
    h.set_size(data.len() as u64);
    h.set_mode(0o644);
    h.set_entry_type(tar::EntryType::Regular);
    b.append_data(&mut h, "echo.json", data.as_slice())
        .expect("tar");
    b.into_inner().expect("tar")
}

/// Creates the first user on the server at `base` and logs in: the owner's client, the
/// first-user answer (its organization) and the session token.
pub async fn first_owner(base: &str) -> (Client, codersdk::CreateFirstUserResponse, String) {
    let anon = Client::new(base);
    let first = anon
        .create_first_user(&codersdk::CreateFirstUserRequest {
            email: OWNER_EMAIL.into(),
            username: "owner".into(),
            name: "Owner".into(),
            password: OWNER_PASSWORD.into(),
            trial: false,
        })
        .await
        .expect("first user");
    let token = anon
        .login_with_password(OWNER_EMAIL, OWNER_PASSWORD)
        .await
        .expect("login")
        .session_token;
    (anon.with_token(token.clone()), first, token)
}

/// Sends JSON and returns the JSON answer, panicking on any error.
pub async fn api(c: &Client, method: Method, path: &str, body: Option<Value>) -> Value {
    c.request::<Value, Value>(method.clone(), path, body.as_ref())
        .await
        .unwrap_or_else(|e| panic!("{method} {path}: {e}"))
}

/// The `id` of an API answer.
pub fn id(v: &Value) -> Uuid {
    serde_json::from_value(v["id"].clone()).unwrap_or_else(|_| panic!("no id in {v}"))
}

/// Uploads `echo` as an echo template version, waits (at most a minute) for its import, and
/// makes it the template `name`. Returns the template's and the version's ids.
pub async fn create_template(c: &Client, org: Uuid, name: &str, echo: &Value) -> (Uuid, Uuid) {
    let (_, file) = c
        .upload("application/x-tar", echo_tar(echo))
        .await
        .expect("uploading a template archive");
    let v = api(
        c,
        Method::POST,
        &format!("/api/v2/organizations/{org}/templateversions"),
        Some(json!({"storage_method": "file", "provisioner": "echo", "file_id": file.hash})),
    )
    .await;
    let version = id(&v);
    let started = Instant::now();
    loop {
        let v = api(
            c,
            Method::GET,
            &format!("/api/v2/templateversions/{version}"),
            None,
        )
        .await;
        match v["job"]["status"].as_str() {
            Some("succeeded") => break,
            Some("pending" | "running") => {}
            other => panic!("template import ended {other:?}: {}", v["job"]),
        }
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "template import did not finish"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let t = api(
        c,
        Method::POST,
        &format!("/api/v2/organizations/{org}/templates"),
        Some(json!({"name": name, "template_version_id": version})),
    )
    .await;
    (id(&t), version)
}
