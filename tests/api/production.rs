//! Running in production: the client's real address behind a trusted proxy (and never from an
//! untrusted one), the Secure cookie and redirects that follow the access URL, and `/metrics`
//! under upstream's names, parsed as Prometheus parses it.

use std::time::{Duration, Instant};

use reqwest::Method;
use serde_json::json;

use crate::harness::echo::create_template;
use crate::harness::replica::{free_port, Replica};
use crate::harness::workspace::WorkspaceApi;
use crate::harness::{create_owner, TestServer, OWNER_EMAIL, OWNER_PASSWORD};

type Exposition = openmetrics_parser::MetricsExposition<
    openmetrics_parser::PrometheusType,
    openmetrics_parser::PrometheusValue,
>;

/// `/metrics` of `base`, parsed with a Prometheus text-format parser.
pub async fn scrape(base: &str) -> Exposition {
    let resp = reqwest::get(format!("{base}/metrics")).await.unwrap();
    assert_eq!(resp.status(), 200);
    let ct = resp.headers()["content-type"].to_str().unwrap().to_string();
    assert!(ct.starts_with("text/plain; version=0.0.4"), "{ct}");
    let text = resp.text().await.unwrap();
    openmetrics_parser::prometheus::parse_prometheus(&text)
        .unwrap_or_else(|e| panic!("unparsable /metrics: {e:?}\n{text}"))
}

/// The value of the sample of family `name` whose labels include `labels` (a histogram's
/// count), if any.
pub fn sample(s: &Exposition, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
    use openmetrics_parser::PrometheusValue as V;
    s.families
        .get(name)?
        .iter_samples()
        .find(|x| {
            let set = x.get_labelset().expect("a sample's labels");
            labels
                .iter()
                .all(|(k, v)| set.get_label_value(k) == Some(*v))
        })
        .map(|x| match &x.value {
            V::Unknown(n) | V::Gauge(n) => n.as_f64(),
            V::Counter(c) => c.value.as_f64(),
            V::Histogram(h) => h.count.unwrap_or(0) as f64,
            V::Summary(_) => f64::NAN,
        })
}

#[tokio::test]
async fn metrics_have_upstreams_names_and_labels() {
    let srv = TestServer::start().await;
    let (owner, first) = srv.owner().await;
    for _ in 0..3 {
        owner
            .get_json::<serde_json::Value>("/api/v2/users/me")
            .await
            .unwrap();
    }
    let echo = json!({"start": {"logs": [{"output": "hi"}], "resources": [{"name": "vm", "type": "echo_vm"}]}});
    let (t, _) = create_template(&owner, first.organization_id, "metrics", &echo).await;
    owner.running_workspace(t.id, "dev").await;
    // A WebSocket that stays open while we scrape.
    let w: Vec<codersdk::Workspace> = owner
        .get_json::<serde_json::Value>("/api/v2/workspaces")
        .await
        .map(|v| serde_json::from_value(v["workspaces"].clone()).unwrap())
        .unwrap();
    let req = crate::harness::ws_request(
        &srv.url,
        &format!("/api/v2/workspaces/{}/watch-ws", w[0].id),
        owner.token().unwrap(),
    );
    let (socket, _) = tokio_tungstenite::connect_async(req).await.unwrap();

    // Counting requests in flight does not turn sized answers into chunked ones.
    let sized = reqwest::get(format!("{}/api/v2/buildinfo", srv.url))
        .await
        .unwrap();
    assert!(sized.content_length().is_some_and(|n| n > 0));
    assert!(sized.headers().get("transfer-encoding").is_none());

    let s = scrape(&srv.url).await;
    let me = [("method", "GET"), ("path", "/api/v2/users/{user}")];
    assert!(
        sample(
            &s,
            "coderd_api_requests_processed_total",
            &[("code", "200"), me[0], me[1]]
        )
        .unwrap()
            >= 3.0
    );
    assert!(sample(&s, "coderd_api_request_latencies_seconds", &me).unwrap() >= 3.0);
    // The scrape itself is a request in flight.
    assert_eq!(
        sample(
            &s,
            "coderd_api_concurrent_requests",
            &[("path", "/metrics")]
        ),
        Some(1.0)
    );
    assert_eq!(
        sample(
            &s,
            "coderd_api_concurrent_websockets",
            &[("path", "/api/v2/workspaces/{workspace}/watch-ws")]
        ),
        Some(1.0)
    );
    assert_eq!(
        sample(
            &s,
            "coderd_api_workspace_latest_build",
            &[("status", "succeeded")]
        ),
        Some(1.0)
    );
    assert_eq!(
        sample(
            &s,
            "coderd_provisionerd_jobs_current",
            &[("provisioner", "echo")]
        ),
        Some(0.0)
    );
    // The import and the build.
    assert!(
        sample(
            &s,
            "coderd_provisionerd_job_timings_seconds",
            &[("provisioner", "echo"), ("status", "success")]
        )
        .unwrap()
            >= 2.0
    );
    assert_eq!(sample(&s, "coderd_db_pool_max_connections", &[]), Some(5.0));
    assert!(sample(&s, "coderd_db_pool_connections", &[("state", "idle")]).is_some());
    assert!(sample(&s, "coder_pubsub_receive_latency_seconds", &[]).unwrap() >= 0.0);
    assert!(sample(&s, "coder_pubsub_send_latency_seconds", &[]).unwrap() >= 0.0);
    assert_eq!(
        sample(&s, "coder_pubsub_latency_measure_errs_total", &[]),
        Some(0.0)
    );
    assert_eq!(sample(&s, "coderd_open_streams", &[]), Some(1.0));
    assert!(sample(&s, "coderd_pubsub_subscribers", &[]).unwrap() >= 1.0);

    drop(socket);
    let started = Instant::now();
    loop {
        let s = scrape(&srv.url).await;
        let open = sample(
            &s,
            "coderd_api_concurrent_websockets",
            &[("path", "/api/v2/workspaces/{workspace}/watch-ws")],
        );
        if open == Some(0.0) {
            assert_eq!(
                sample(
                    &s,
                    "coderd_api_websocket_durations_seconds",
                    &[("path", "/api/v2/workspaces/{workspace}/watch-ws")]
                ),
                Some(1.0)
            );
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "the WebSocket is still counted"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    srv.stop().await;
}

/// Anonymous requests with `X-Forwarded-For: ip`, until the API limit (5) answers 429.
async fn anonymous_budget(base: &str, ip: &str) -> usize {
    let http = reqwest::Client::new();
    for n in 0..10 {
        let status = http
            .get(format!("{base}/api/v2/buildinfo"))
            .header("X-Forwarded-For", ip)
            .send()
            .await
            .unwrap()
            .status();
        if status == 429 {
            return n;
        }
    }
    10
}

/// The address recorded on the newest API key.
async fn newest_key_ip(db_url: &str) -> Option<String> {
    use sqlx::Connection;
    let mut db = sqlx::PgConnection::connect(db_url).await.unwrap();
    sqlx::query_scalar("SELECT host(ip_address) FROM api_keys ORDER BY created_at DESC LIMIT 1")
        .fetch_one(&mut db)
        .await
        .unwrap()
}

async fn login_from(base: &str, ip: &str) -> reqwest::Response {
    reqwest::Client::new()
        .post(format!("{base}/api/v2/users/login"))
        .header("X-Forwarded-For", ip)
        .json(&json!({"email": OWNER_EMAIL, "password": OWNER_PASSWORD}))
        .send()
        .await
        .unwrap()
}

#[tokio::test]
async fn forwarded_addresses_are_believed_only_from_trusted_origins() {
    let trusted = TestServer::start_with(|o| {
        o.dangerous_disable_rate_limits = false;
        o.api_rate_limit = 5;
        o.proxy_trusted_headers = vec!["X-Forwarded-For".into()];
        o.proxy_trusted_origins = vec!["127.0.0.0/8".into()];
    })
    .await;
    // Each client behind the proxy has its own budget; the first address of a list counts.
    assert_eq!(anonymous_budget(&trusted.url, "203.0.113.1").await, 5);
    assert_eq!(
        anonymous_budget(&trusted.url, "203.0.113.2, 127.0.0.1").await,
        5
    );
    assert_eq!(anonymous_budget(&trusted.url, "203.0.113.2").await, 0);
    create_owner(&trusted.client).await;
    assert_eq!(login_from(&trusted.url, "198.51.100.7").await.status(), 201);
    assert_eq!(
        newest_key_ip(&trusted.db_url).await.as_deref(),
        Some("198.51.100.7")
    );
    trusted.stop().await;

    // The same headers from a peer outside the trusted networks are ignored (and removed).
    let untrusted = TestServer::start_with(|o| {
        o.dangerous_disable_rate_limits = false;
        o.api_rate_limit = 5;
        o.proxy_trusted_headers = vec!["X-Forwarded-For".into()];
        o.proxy_trusted_origins = vec!["10.0.0.0/8".into()];
    })
    .await;
    assert_eq!(anonymous_budget(&untrusted.url, "203.0.113.1").await, 5);
    assert_eq!(anonymous_budget(&untrusted.url, "203.0.113.2").await, 0);
    create_owner(&untrusted.client).await;
    assert_eq!(
        login_from(&untrusted.url, "198.51.100.7").await.status(),
        201
    );
    assert_eq!(
        newest_key_ip(&untrusted.db_url).await.as_deref(),
        Some("127.0.0.1")
    );
    untrusted.stop().await;
}

#[tokio::test]
async fn bad_proxy_settings_are_refused_at_start() {
    let mut o = crate::harness::test_options(&crate::harness::fresh_database().await);
    o.proxy_trusted_origins = vec!["10.0.0.1".into()];
    let err = coderd::server::start(o, Default::default())
        .await
        .err()
        .expect("a network without a prefix length is refused");
    assert!(format!("{err:#}").contains("parse proxy origin"), "{err:#}");
}

fn session_cookie(resp: &reqwest::Response) -> String {
    resp.headers()
        .get_all("set-cookie")
        .iter()
        .map(|v| v.to_str().unwrap().to_string())
        .find(|c| c.starts_with("coder_session_token="))
        .expect("a session cookie")
}

#[tokio::test]
async fn the_access_urls_scheme_decides_the_secure_cookie() {
    for (access_url, explicit, secure) in [
        ("https://coder.example.com", None, true),
        ("http://coder.example.com", None, false),
        ("https://coder.example.com", Some(false), false),
        ("http://coder.example.com", Some(true), true),
    ] {
        let srv = TestServer::start_with(|o| {
            o.access_url = Some(access_url.into());
            o.secure_auth_cookie = explicit;
        })
        .await;
        create_owner(&srv.client).await;
        let cookie = session_cookie(&login_from(&srv.url, "").await);
        assert_eq!(
            cookie.contains("; Secure"),
            secure,
            "{access_url} with {explicit:?}: {cookie}"
        );
        srv.stop().await;
    }
}

#[tokio::test]
async fn requests_are_redirected_to_the_access_url() {
    let srv = TestServer::start_with(|o| {
        o.access_url = Some("http://coder.example.com:8080".into());
        o.redirect_to_access_url = true;
    })
    .await;
    let http = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let get = |path: &str, host: Option<&str>| {
        let mut r = http.get(format!("{}{path}", srv.url));
        if let Some(h) = host {
            r = r.header("Host", h);
        }
        r.send()
    };
    let r = get("/api/v2/buildinfo?x=1", None).await.unwrap();
    assert_eq!(r.status(), 307);
    assert_eq!(
        r.headers()["location"],
        "http://coder.example.com:8080/api/v2/buildinfo?x=1"
    );
    assert_eq!(get("/healthz", None).await.unwrap().status(), 200);
    let r = get("/api/v2/buildinfo", Some("coder.example.com:8080"))
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    srv.stop().await;

    // An https:// access URL: plain HTTP is sent there, unless a trusted proxy says the
    // client came over https.
    let srv = TestServer::start_with(|o| {
        o.access_url = Some("https://coder.example.com".into());
        o.redirect_to_access_url = true;
        o.proxy_trusted_headers = vec!["X-Forwarded-For".into()];
        o.proxy_trusted_origins = vec!["127.0.0.1/32".into()];
    })
    .await;
    let send = |proto: &str| {
        http.request(Method::GET, format!("{}/api/v2/buildinfo", srv.url))
            .header("Host", "coder.example.com")
            .header("X-Forwarded-Proto", proto)
            .send()
    };
    let r = send("http").await.unwrap();
    assert_eq!(r.status(), 307);
    assert_eq!(
        r.headers()["location"],
        "https://coder.example.com/api/v2/buildinfo"
    );
    assert_eq!(send("https").await.unwrap().status(), 200);
    srv.stop().await;
}

#[tokio::test]
async fn metrics_on_a_listener_of_their_own() {
    let mut o = crate::harness::test_options(&crate::harness::fresh_database().await);
    o.prometheus_enable = true;
    o.prometheus_address = "127.0.0.1:0".into();
    let running = coderd::server::start(o, Default::default()).await.unwrap();
    let addr = running.prometheus_addr().expect("a metrics listener");
    assert_ne!(addr, running.local_addr());
    reqwest::get(format!("http://{}/healthz", running.local_addr()))
        .await
        .unwrap();
    let s = scrape(&format!("http://{addr}")).await;
    assert_eq!(
        sample(
            &s,
            "coderd_api_requests_processed_total",
            &[("code", "200"), ("path", "/healthz")]
        ),
        Some(1.0)
    );
    // Only metrics live there.
    let other = reqwest::get(format!("http://{addr}/api/v2/buildinfo"))
        .await
        .unwrap();
    assert_eq!(other.status(), 404);
    running.shutdown().await;
    assert!(
        reqwest::get(format!("http://{addr}/metrics"))
            .await
            .is_err(),
        "the metrics listener outlived the server"
    );
}

/// The binary installs the layer that times every SQL statement.
#[tokio::test]
async fn the_binary_times_every_statement() {
    let db_url = crate::harness::fresh_database().await;
    let mut srv = Replica::spawn(&db_url, free_port(), &[("CODER_PROVISIONER_DAEMONS", "0")]);
    srv.wait_healthy().await;
    let base = srv.url.clone();
    create_owner(&crate::harness::checked_client(&base)).await;
    let s = scrape(&base).await;
    for query in ["SELECT users", "INSERT api_keys"] {
        assert!(
            sample(&s, "coderd_db_query_latencies_seconds", &[("query", query)]).unwrap_or(0.0)
                >= 1.0,
            "{query} was not timed"
        );
    }
}

/// A self-signed certificate for `localhost` in `dir` (cert.pem, key.pem), made by openssl.
pub fn test_certificate(dir: &std::path::Path) -> Result<(), String> {
    let made = std::process::Command::new("openssl")
        .args([
            "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
        ])
        .args([
            "-subj",
            "/CN=localhost",
            "-addext",
            "subjectAltName=DNS:localhost",
        ])
        .arg("-keyout")
        .arg(dir.join("key.pem"))
        .arg("-out")
        .arg(dir.join("cert.pem"))
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .status()
        .map_err(|e| format!("openssl not found ({e})"))?;
    if made.success() {
        Ok(())
    } else {
        Err("openssl could not make a certificate".into())
    }
}

/// `curl -i` over TLS, trusting `dir/cert.pem`; the whole answer as text.
pub async fn curl_tls(dir: &std::path::Path, args: &[&str], url: &str) -> String {
    let out = tokio::process::Command::new("curl")
        .args(["-s", "-i", "--cacert"])
        .arg(dir.join("cert.pem"))
        .args(args)
        .arg(url)
        .output()
        .await
        .expect("running curl");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[tokio::test]
async fn tls_in_the_server_itself() {
    let dir = std::env::temp_dir().join(format!("coderd-tls-{}", uuid::Uuid::new_v4()));
    std::fs::create_dir_all(&dir).unwrap();
    if let Err(why) = test_certificate(&dir) {
        eprintln!("SKIPPED: {why}: the TLS test (tests/api/production.rs) did not run");
        return;
    }
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let srv = TestServer::start_with(|o| {
        o.tls_enable = true;
        o.tls_address = format!("127.0.0.1:{port}");
        o.tls_cert_file = Some(dir.join("cert.pem"));
        o.tls_key_file = Some(dir.join("key.pem"));
        o.access_url = Some(format!("https://localhost:{port}"));
        o.redirect_to_access_url = true;
    })
    .await;
    let https = format!("https://localhost:{port}");
    let answer = curl_tls(&dir, &[], &format!("{https}/api/v2/buildinfo")).await;
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    let first =
        json!({"email": OWNER_EMAIL, "username": "owner", "password": OWNER_PASSWORD}).to_string();
    let created = curl_tls(
        &dir,
        &[
            "-H",
            "Content-Type: application/json",
            "--data-binary",
            &first,
        ],
        &format!("{https}/api/v2/users/first"),
    )
    .await;
    assert!(created.starts_with("HTTP/1.1 201"), "{created}");
    let body = json!({"email": OWNER_EMAIL, "password": OWNER_PASSWORD}).to_string();
    let login = curl_tls(
        &dir,
        &[
            "-H",
            "Content-Type: application/json",
            "--data-binary",
            &body,
        ],
        &format!("{https}/api/v2/users/login"),
    )
    .await;
    assert!(login.starts_with("HTTP/1.1 201"), "{login}");
    let cookie = login
        .lines()
        .find(|l| {
            l.to_ascii_lowercase()
                .starts_with("set-cookie: coder_session_token=")
        })
        .unwrap_or_else(|| panic!("no session cookie: {login}"));
    assert!(cookie.contains("; Secure"), "{cookie}");
    // Plain HTTP on the HTTP listener is sent to the https:// access URL.
    let plain = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap()
        .get(format!("{}/api/v2/buildinfo", srv.url))
        .send()
        .await
        .unwrap();
    assert_eq!(plain.status(), 307);
    assert_eq!(
        plain.headers()["location"],
        format!("{https}/api/v2/buildinfo").as_str()
    );
    srv.stop().await;
    let _ = std::fs::remove_dir_all(&dir);
}

/// A minimal OTLP/HTTP (JSON) collector: every span it receives, flattened.
async fn otlp_receiver() -> (
    String,
    std::sync::Arc<std::sync::Mutex<Vec<serde_json::Value>>>,
) {
    use std::sync::{Arc, Mutex};
    let spans: Arc<Mutex<Vec<serde_json::Value>>> = Arc::default();
    let received = spans.clone();
    let app = axum::Router::new().route(
        "/v1/traces",
        axum::routing::post(move |body: axum::body::Bytes| {
            let received = received.clone();
            async move {
                let v: serde_json::Value =
                    serde_json::from_slice(&body).expect("OTLP/JSON export request");
                let mut got = received.lock().unwrap();
                for rs in v["resourceSpans"].as_array().into_iter().flatten() {
                    for ss in rs["scopeSpans"].as_array().into_iter().flatten() {
                        got.extend(ss["spans"].as_array().into_iter().flatten().cloned());
                    }
                }
                axum::Json(json!({}))
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await });
    (url, spans)
}

#[tokio::test]
async fn traces_reach_an_otlp_collector() {
    let (collector, spans) = otlp_receiver().await;
    let db_url = crate::harness::fresh_database().await;
    let mut srv = Replica::spawn(
        &db_url,
        free_port(),
        &[
            ("CODER_TRACE_ENABLE", "true"),
            ("OTEL_EXPORTER_OTLP_ENDPOINT", &collector),
            ("OTEL_BSP_SCHEDULE_DELAY", "100"),
        ],
    );
    srv.wait_healthy().await;
    let base = srv.url.clone();
    let (owner, first) = create_owner(&crate::harness::checked_client(&base)).await;
    let echo = json!({"start": {"resources": [{"name": "vm", "type": "echo_vm"}]}});
    let (t, _) = create_template(&owner, first.organization_id, "traced", &echo).await;
    let w = owner.running_workspace(t.id, "dev").await;
    owner
        .get_json::<serde_json::Value>(&format!("/api/v2/workspaces/{}", w.id))
        .await
        .unwrap();

    // The request's span, and the statements it ran as its children, in one trace.
    let started = Instant::now();
    loop {
        {
            let got = spans.lock().unwrap();
            let requests: Vec<&serde_json::Value> = got
                .iter()
                .filter(|s| s["name"] == "GET /api/v2/workspaces/{workspace}")
                .collect();
            let tree = requests.iter().find_map(|r| {
                let children: Vec<&str> = got
                    .iter()
                    .filter(|s| s["traceId"] == r["traceId"] && s["parentSpanId"] == r["spanId"])
                    .filter_map(|s| s["name"].as_str())
                    .collect();
                (!children.is_empty()).then_some((r, children))
            });
            if let Some((request, children)) = tree {
                assert!(
                    children.iter().any(|c| c.starts_with("SELECT ")),
                    "{children:?}"
                );
                let status = request["attributes"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .find(|a| a["key"] == "http.response.status_code")
                    .map(|a| a["value"].clone());
                assert!(
                    status.is_some_and(|v| v.to_string().contains("200")),
                    "{request}"
                );
                break;
            }
        }
        assert!(
            started.elapsed() < Duration::from_secs(20),
            "no span tree for GET /api/v2/workspaces/{{workspace}} arrived"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// The id-keyed render statement runs on connections that keep its generic plan; everything
/// else keeps PostgreSQL's default. With one connection allowed there is one pool, on the
/// default (docs/decisions.md, "plan_cache_mode").
#[tokio::test]
async fn only_the_render_pool_forces_generic_plans() {
    let db_url = crate::harness::fresh_database().await;
    for (max, want) in [
        (5, ("auto", "force_generic_plan")),
        (2, ("auto", "force_generic_plan")),
        (1, ("auto", "auto")),
    ] {
        let store = coderd_db::Store::connect(&coderd_db::ConnectConfig {
            url: db_url.clone(),
            max_connections: max,
            connect_timeout: Duration::from_secs(10),
        })
        .await
        .expect("connecting");
        let (general, keyed) = store
            .plan_cache_modes()
            .await
            .expect("reading the settings");
        assert_eq!(
            (general.as_str(), keyed.as_str()),
            want,
            "max_connections = {max}"
        );
        assert_eq!(store.pool_usage().2, max, "connections allowed in all");
        store.close().await;
    }
}
