//! The Swagger UI at `/swagger`: its files over plain HTTP, and the page in a real headless
//! Chromium, driven over the DevTools protocol: it renders the server's OpenAPI document, and
//! "Try it out" on an authenticated operation, with the session token set through the UI,
//! shows the live 200 answer.
//!
//! Without Chromium on PATH (or `CODERD_CHROMIUM`) the browser test prints a loud SKIPPED line
//! and passes; `.ci/run` installs Chromium, so CI runs it.

use std::io::{BufRead, BufReader, Write};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use reqwest::header;
use serde_json::{json, Value};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

use crate::harness::{TestServer, OWNER_EMAIL};

/// The page, under each of its names.
const PAGE_PATHS: [&str; 3] = ["/swagger", "/swagger/", "/swagger/index.html"];

async fn get(url: &str) -> reqwest::Response {
    reqwest::get(url).await.expect("GET")
}

fn content_type(resp: &reqwest::Response) -> String {
    resp.headers()
        .get(header::CONTENT_TYPE)
        .map(|v| v.to_str().unwrap().to_string())
        .unwrap_or_default()
}

/// The values of every `src="…"` and `href="…"` attribute in `html`.
fn linked_urls(html: &str) -> Vec<String> {
    let mut urls = Vec::new();
    for attr in ["src=\"", "href=\""] {
        for (at, _) in html.match_indices(attr) {
            let rest = &html[at + attr.len()..];
            urls.push(rest[..rest.find('"').unwrap()].to_string());
        }
    }
    urls
}

async fn assert_json_404(url: &str) {
    let resp = get(url).await;
    assert_eq!(resp.status(), 404, "{url}");
    assert_eq!(
        content_type(&resp),
        "application/json; charset=utf-8",
        "{url}"
    );
    let body: codersdk::Response = resp.json().await.expect("a codersdk.Response body");
    assert_eq!(body.message, "Route not found.", "{url}");
}

#[tokio::test]
async fn swagger_page_and_files_come_from_the_binary() {
    let srv = TestServer::start().await;

    let mut page = None;
    for path in PAGE_PATHS {
        let resp = get(&format!("{}{path}", srv.url)).await;
        assert_eq!(resp.status(), 200, "{path}");
        assert_eq!(content_type(&resp), "text/html; charset=utf-8", "{path}");
        assert_eq!(resp.headers()[header::CACHE_CONTROL], "no-cache", "{path}");
        let html = resp.text().await.unwrap();
        assert_eq!(page.get_or_insert_with(|| html.clone()), &html, "{path}");
    }
    let html = page.unwrap();
    assert!(
        !html.contains("http://") && !html.contains("https://"),
        "the page names no other host:\n{html}"
    );
    assert_eq!(
        html.matches("<script").count(),
        html.matches("<script src=").count(),
        "no inline scripts (a strict CSP must stay possible):\n{html}"
    );

    let urls = linked_urls(&html);
    for expected in [
        "/swagger/swagger-ui-bundle.js",
        "/swagger/swagger-initializer.js",
        "/swagger/swagger-ui.css",
    ] {
        assert!(
            urls.iter().any(|u| u == expected),
            "the page loads {expected}: {urls:?}"
        );
    }
    for url in &urls {
        assert!(
            url.starts_with("/swagger/"),
            "{url}: the page loads only this server's files"
        );
        let resp = get(&format!("{}{url}", srv.url)).await;
        assert_eq!(resp.status(), 200, "{url}");
        let want = match url.rsplit('.').next().unwrap() {
            "js" => "text/javascript; charset=utf-8",
            "css" => "text/css; charset=utf-8",
            "png" => "image/png",
            other => panic!("{url}: unexpected kind of file {other}"),
        };
        assert_eq!(content_type(&resp), want, "{url}");
        assert_eq!(resp.headers()[header::CACHE_CONTROL], "no-cache", "{url}");
        assert!(!resp.bytes().await.unwrap().is_empty(), "{url}");
    }

    // The initializer starts the UI on this server's document, and exposes it as window.ui.
    let init = get(&format!("{}/swagger/swagger-initializer.js", srv.url))
        .await
        .text()
        .await
        .unwrap();
    assert!(init.contains("\"/api/v2/openapi.json\""), "{init}");
    assert!(init.contains("window.ui ="), "{init}");
    assert!(
        !init.contains("http://") && !init.contains("https://"),
        "{init}"
    );
    let doc: Value = get(&format!("{}/api/v2/openapi.json", srv.url))
        .await
        .json()
        .await
        .unwrap();
    assert!(doc["openapi"].as_str().unwrap().starts_with("3.1"), "{doc}");
    assert_eq!(
        doc["components"]["securitySchemes"]["CoderSessionToken"]["name"],
        "Coder-Session-Token"
    );

    // Revalidation: the same ETag answers 304 without a body.
    let bundle = format!("{}/swagger/swagger-ui-bundle.js", srv.url);
    let etag = get(&bundle).await.headers()[header::ETAG].clone();
    let again = reqwest::Client::new()
        .get(&bundle)
        .header(header::IF_NONE_MATCH, etag.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(again.status(), 304);
    assert_eq!(again.headers()[header::ETAG], etag);
    assert!(again.bytes().await.unwrap().is_empty());

    for path in [
        "/swagger/no-such-file.js",
        "/swagger/a/b",
        "/swagger/index.htm",
    ] {
        assert_json_404(&format!("{}{path}", srv.url)).await;
    }
}

#[tokio::test]
async fn swagger_can_be_turned_off() {
    let srv = TestServer::start_with(|o| o.swagger_enable = false).await;
    for path in PAGE_PATHS.iter().chain(&[
        "/swagger/swagger-ui-bundle.js",
        "/swagger/swagger-initializer.js",
    ]) {
        assert_json_404(&format!("{}{path}", srv.url)).await;
    }
    // The document itself stays.
    assert_eq!(
        get(&format!("{}/api/v2/openapi.json", srv.url))
            .await
            .status(),
        200
    );
}

/// How long any one thing in the browser may take (the machine may be busy with other tests).
const BROWSER_STEP: Duration = Duration::from_secs(30);

/// The operation the browser test tries out: authenticated, no required parameters, and its
/// answer shows whose token was used.
const TRY_METHOD: &str = "get";
const TRY_PATH: &str = "/users";

#[tokio::test]
async fn swagger_try_it_out_in_headless_chromium() {
    let Some(binary) = find_chromium() else {
        // Straight to stderr: the test harness would swallow `eprintln!` of a passing test.
        let _ = writeln!(
            std::io::stderr(),
            "SKIPPED: chromium not found on PATH; the Swagger UI browser test did not run"
        );
        return;
    };
    let srv = TestServer::start().await;
    let (owner, _) = srv.owner().await;
    let token = owner.token().unwrap().to_string();
    let doc: Value = get(&format!("{}/api/v2/openapi.json", srv.url))
        .await
        .json()
        .await
        .unwrap();
    let operations = count_operations(&doc);

    let chromium = Chromium::start(&binary);
    let mut page = Cdp::open_page(&chromium.devtools_url).await;
    page.call("Runtime.enable", json!({})).await;
    page.call("Network.enable", json!({})).await;
    page.call("Log.enable", json!({})).await;
    page.call(
        "Page.navigate",
        json!({ "url": format!("{}/swagger", srv.url) }),
    )
    .await;

    let title = page
        .wait_for(
            "the document's title",
            "document.querySelector('.swagger-ui .info .title')?.textContent",
        )
        .await;
    let want_title = doc["info"]["title"].as_str().unwrap();
    assert!(
        title.as_str().unwrap().starts_with(want_title),
        "title {title}, document says {want_title:?}"
    );
    page.wait_for(
        "the Authorize button",
        "document.querySelector('.swagger-ui .auth-wrapper .authorize')?.textContent",
    )
    .await;

    if operations == 0 {
        let _ = writeln!(
            std::io::stderr(),
            "SKIPPED: /api/v2/openapi.json lists no operations; the Swagger UI Try-it-out step \
             did not run (only the page's rendering was checked)"
        );
        page.assert_only_local_requests(&srv.url);
        return;
    }
    assert!(
        doc["paths"][TRY_PATH][TRY_METHOD].is_object(),
        "the document lists {TRY_METHOD} {TRY_PATH}, which this test tries out"
    );
    // Swagger UI renders long lists virtually (only what is near the viewport is in the
    // page), so the operations it lists are counted in its own state.
    let listed = page
        .wait_for(
            "every operation listed",
            &format!(
                "(n => n === {operations} ? n : null)\
                 (window.ui.getSystem().specSelectors.operations()?.size)"
            ),
        )
        .await;
    assert_eq!(listed, operations);
    // Show only the tag of the operation tried out, so that it is rendered.
    let tag = doc["paths"][TRY_PATH][TRY_METHOD]["tags"][0]
        .as_str()
        .unwrap();
    page.eval(&format!(
        "window.ui.getSystem().layoutActions.updateFilter({})",
        json!(tag)
    ))
    .await;

    // The token, as the Authorize dialog would set it.
    page.eval(&format!(
        "window.ui.preauthorizeApiKey('CoderSessionToken', {})",
        json!(token)
    ))
    .await;

    let block = format!(
        "[...document.querySelectorAll('.opblock.opblock-{TRY_METHOD}')].find(b => \
         b.querySelector('.opblock-summary-path')?.dataset.path === '{TRY_PATH}')"
    );
    page.click(
        &format!("{TRY_METHOD} {TRY_PATH}"),
        &format!("{block}?.querySelector('.opblock-summary-control')"),
    )
    .await;
    page.click(
        "Try it out",
        &format!("{block}?.querySelector('button.try-out__btn')"),
    )
    .await;
    page.click(
        "Execute",
        &format!("{block}?.querySelector('button.execute')"),
    )
    .await;
    let live = page
        .wait_for(
            "the live response",
            &format!(
                "(b => {{ \
                   const status = b?.querySelector('.live-responses-table tr.response .response-col_status'); \
                   const body = b?.querySelector('.live-responses-table tr.response .response-col_description pre'); \
                   const curl = b?.querySelector('.curl-command .curl'); \
                   return status && body && curl ? {{ status: status.textContent.trim(), \
                     body: body.textContent, curl: curl.textContent }} : null; \
                 }})({block})"
            ),
        )
        .await;
    assert_eq!(live["status"], "200", "live response: {live}");
    let body: Value = serde_json::from_str(live["body"].as_str().unwrap())
        .unwrap_or_else(|e| panic!("the live body is JSON ({e}): {live}"));
    assert_eq!(body["count"], 1, "{body}");
    assert_eq!(body["users"][0]["email"], OWNER_EMAIL, "{body}");
    let curl = live["curl"].as_str().unwrap();
    assert!(
        curl.contains(&format!("{}/api/v2{TRY_PATH}", srv.url))
            && curl.contains(&format!("Coder-Session-Token: {token}")),
        "the request went to this server with the token: {curl}"
    );
    page.assert_only_local_requests(&srv.url);
}

fn count_operations(doc: &Value) -> usize {
    const METHODS: [&str; 8] = [
        "get", "put", "post", "delete", "options", "head", "patch", "trace",
    ];
    doc["paths"].as_object().map_or(0, |paths| {
        paths
            .values()
            .map(|item| METHODS.iter().filter(|m| item.get(**m).is_some()).count())
            .sum()
    })
}

/// `CODERD_CHROMIUM`, else the first of Chromium's usual names on PATH.
fn find_chromium() -> Option<PathBuf> {
    if let Some(p) = std::env::var_os("CODERD_CHROMIUM").filter(|p| !p.is_empty()) {
        return Some(PathBuf::from(p));
    }
    let path = std::env::var_os("PATH")?;
    ["chromium", "chromium-browser", "google-chrome"]
        .iter()
        .flat_map(|name| std::env::split_paths(&path).map(move |dir| dir.join(name)))
        .find(|p| is_executable(p))
}

fn is_executable(p: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    p.metadata()
        .is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
}

/// A headless Chromium in its own process group, killed with its profile on drop (whether the
/// test passed or not).
struct Chromium {
    child: Child,
    profile: PathBuf,
    devtools_url: String,
}

impl Chromium {
    fn start(binary: &Path) -> Chromium {
        let profile =
            std::env::temp_dir().join(format!("coderd-chromium-{}", uuid::Uuid::new_v4()));
        std::fs::create_dir_all(&profile).unwrap();
        let mut child = Command::new(binary)
            .args([
                "--headless=new",
                "--no-sandbox",
                "--disable-gpu",
                "--disable-dev-shm-usage",
                "--no-first-run",
                "--no-default-browser-check",
                "--window-size=1280,1024",
                "--remote-debugging-port=0",
            ])
            .arg(format!("--user-data-dir={}", profile.display()))
            .arg("about:blank")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .process_group(0)
            .spawn()
            .unwrap_or_else(|e| panic!("starting {}: {e}", binary.display()));
        let stderr = child.stderr.take().unwrap();
        // From here on the guard owns the process: a panic below still kills it.
        let mut chromium = Chromium {
            child,
            profile,
            devtools_url: String::new(),
        };
        let (tx, rx) = std::sync::mpsc::channel();
        let seen = Arc::new(Mutex::new(Vec::new()));
        let lines = seen.clone();
        // Reads stderr to its end, so that Chromium never blocks on a full pipe.
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                if let Some(at) = line.find("ws://") {
                    let _ = tx.send(line[at..].trim().to_string());
                }
                lines.lock().unwrap().push(line);
            }
        });
        chromium.devtools_url = rx.recv_timeout(BROWSER_STEP).unwrap_or_else(|_| {
            panic!(
                "Chromium printed no `DevTools listening on ws://…` line; its stderr:\n{}",
                seen.lock().unwrap().join("\n")
            )
        });
        chromium
    }
}

impl Drop for Chromium {
    fn drop(&mut self) {
        let pid = self.child.id() as i32;
        // SAFETY: kill has no memory-safety preconditions; -pid is the group started above.
        unsafe { libc::kill(-pid, libc::SIGKILL) };
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.profile);
    }
}

/// A DevTools protocol connection to one page: commands, and the events that came meanwhile.
struct Cdp {
    socket: WebSocketStream<MaybeTlsStream<TcpStream>>,
    session: Option<String>,
    next_id: u64,
    /// URLs the page requested.
    requests: Vec<String>,
    /// Uncaught exceptions, console errors and browser log errors.
    errors: Vec<String>,
}

impl Cdp {
    /// Connects to the browser and attaches to a new page.
    async fn open_page(devtools_url: &str) -> Cdp {
        let (socket, _) =
            tokio::time::timeout(BROWSER_STEP, tokio_tungstenite::connect_async(devtools_url))
                .await
                .expect("connecting to Chromium in time")
                .expect("connecting to Chromium");
        let mut cdp = Cdp {
            socket,
            session: None,
            next_id: 0,
            requests: Vec::new(),
            errors: Vec::new(),
        };
        let target = cdp
            .call("Target.createTarget", json!({ "url": "about:blank" }))
            .await;
        let attached = cdp
            .call(
                "Target.attachToTarget",
                json!({ "targetId": target["targetId"], "flatten": true }),
            )
            .await;
        cdp.session = Some(attached["sessionId"].as_str().unwrap().to_string());
        cdp
    }

    /// Sends a command and waits for its result, recording the events that arrive meanwhile.
    async fn call(&mut self, method: &str, params: Value) -> Value {
        self.next_id += 1;
        let id = self.next_id;
        let mut command = json!({ "id": id, "method": method, "params": params });
        if let Some(session) = &self.session {
            command["sessionId"] = json!(session);
        }
        self.socket
            .send(Message::text(command.to_string()))
            .await
            .unwrap_or_else(|e| panic!("sending {method}: {e}"));
        let answer = tokio::time::timeout(BROWSER_STEP, async {
            loop {
                let frame = self
                    .socket
                    .next()
                    .await
                    .unwrap_or_else(|| panic!("Chromium closed the connection during {method}"))
                    .unwrap_or_else(|e| panic!("reading Chromium's answer to {method}: {e}"));
                let Message::Text(text) = frame else { continue };
                let msg: Value = serde_json::from_str(&text).unwrap();
                if msg["id"] == id {
                    return msg;
                }
                self.record(&msg);
            }
        })
        .await
        .unwrap_or_else(|_| panic!("Chromium did not answer {method} within {BROWSER_STEP:?}"));
        if let Some(error) = answer.get("error") {
            panic!("{method} failed: {error}");
        }
        answer["result"].clone()
    }

    fn record(&mut self, event: &Value) {
        let p = &event["params"];
        match event["method"].as_str().unwrap_or_default() {
            "Network.requestWillBeSent" => self
                .requests
                .push(p["request"]["url"].as_str().unwrap().to_string()),
            "Runtime.exceptionThrown" => self.errors.push(format!(
                "exception: {}",
                p["exceptionDetails"]["exception"]["description"]
            )),
            "Runtime.consoleAPICalled" if p["type"] == "error" => {
                self.errors.push(format!("console.error: {}", p["args"]))
            }
            "Log.entryAdded" if p["entry"]["level"] == "error" => {
                self.errors.push(format!("log: {}", p["entry"]))
            }
            _ => {}
        }
    }

    /// Evaluates `js` in the page (awaiting a promise) and returns its value.
    async fn eval(&mut self, js: &str) -> Value {
        let r = self
            .call(
                "Runtime.evaluate",
                json!({ "expression": js, "returnByValue": true, "awaitPromise": true }),
            )
            .await;
        if let Some(e) = r.get("exceptionDetails") {
            panic!("evaluating {js}: {e}");
        }
        r["result"]["value"].clone()
    }

    /// Polls `js` until it gives something other than null, undefined or false.
    async fn wait_for(&mut self, what: &str, js: &str) -> Value {
        let deadline = tokio::time::Instant::now() + BROWSER_STEP;
        loop {
            let v = self.eval(js).await;
            if !(v.is_null() || v == false) {
                return v;
            }
            if tokio::time::Instant::now() > deadline {
                let text = self.eval("document.body?.innerText.slice(0, 2000)").await;
                panic!(
                    "waited {BROWSER_STEP:?} for {what} ({js}); page errors: {:#?}\npage text: {}",
                    self.errors,
                    text.as_str().unwrap_or_default()
                );
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    /// Clicks, with the mouse, the middle of the element `element_js` evaluates to, once it
    /// exists; it must be what a user would hit there.
    async fn click(&mut self, what: &str, element_js: &str) {
        let at = self
            .wait_for(
                what,
                &format!(
                    "(el => {{ \
                       if (!el) return null; \
                       el.scrollIntoView({{ block: 'center', behavior: 'instant' }}); \
                       const r = el.getBoundingClientRect(); \
                       const x = r.x + r.width / 2, y = r.y + r.height / 2; \
                       const hit = document.elementFromPoint(x, y); \
                       return hit && el.contains(hit) ? [x, y] : null; \
                     }})({element_js})"
                ),
            )
            .await;
        for kind in ["mousePressed", "mouseReleased"] {
            self.call(
                "Input.dispatchMouseEvent",
                json!({ "type": kind, "x": at[0], "y": at[1], "button": "left", "clickCount": 1 }),
            )
            .await;
        }
    }

    /// Everything the page loaded came from `base` (no CDN, no validator badge), and nothing
    /// failed on the way.
    fn assert_only_local_requests(&self, base: &str) {
        assert!(
            self.requests
                .iter()
                .any(|u| u.ends_with("/api/v2/openapi.json")),
            "the page loaded the document: {:?}",
            self.requests
        );
        for url in &self.requests {
            assert!(
                url.starts_with(&format!("{base}/")) || url.starts_with("data:"),
                "the page loaded {url}, which is not on this server"
            );
        }
        assert!(self.errors.is_empty(), "page errors: {:#?}", self.errors);
    }
}
