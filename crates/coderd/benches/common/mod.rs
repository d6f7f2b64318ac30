//! What the benchmarks share with the tests (`tests/support`): the first user, echo templates
//! and typed workspace calls. Plus raw JSON calls for what the benchmarks measure or bulk-load.
//! Not every benchmark uses every fixture.

#[path = "../../../../tests/support/echo.rs"]
#[allow(dead_code)]
pub mod echo;
#[path = "../../../../tests/support/users.rs"]
#[allow(dead_code)]
pub mod users;
#[path = "../../../../tests/support/workspace.rs"]
#[allow(dead_code)]
pub mod workspace;

use std::time::Duration;

use codersdk::Client;
use reqwest::Method;
use serde_json::Value;
use uuid::Uuid;

/// How long a benchmark waits for the builds of its setup, queued by the hundred.
#[allow(dead_code)]
pub const SETUP_TIMEOUT: Duration = Duration::from_secs(600);

/// Creates the first user on the server at `base` and logs in: the owner's client, the
/// first-user answer (its organization) and the session token.
pub async fn first_owner(base: &str) -> (Client, codersdk::CreateFirstUserResponse, String) {
    let (owner, first) = users::create_owner(&Client::new(base)).await;
    let token = owner.token().expect("a session token").to_string();
    (owner, first, token)
}

/// Sends JSON and returns the JSON answer, panicking on any error.
#[allow(dead_code)]
pub async fn api(c: &Client, method: Method, path: &str, body: Option<Value>) -> Value {
    c.request::<Value, Value>(method.clone(), path, body.as_ref())
        .await
        .unwrap_or_else(|e| panic!("{method} {path}: {e}"))
}

/// The `id` of an API answer.
#[allow(dead_code)]
pub fn id(v: &Value) -> Uuid {
    serde_json::from_value(v["id"].clone()).unwrap_or_else(|_| panic!("no id in {v}"))
}
