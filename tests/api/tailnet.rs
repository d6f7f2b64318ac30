//! Into a workspace through coderd-rs: the real `coder` CLI and the real `coder agent`
//! (`CODERD_CODER_CLI`), coordinated by this server and relayed by its embedded DERP relay.
//! `coder ssh`, OpenSSH through `coder ssh --stdio` (what VS Code and JetBrains run),
//! `coder config-ssh`, `coder port-forward` and `coder ping`, with direct connections blocked
//! so that every packet crosses our relay; then across two replicas.

use std::process::Stdio;
use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use uuid::Uuid;

use crate::agents::{agent_echo, until, AgentProcess};
use crate::cli::{cli_or_skip, CliOutput, CoderCli};
use crate::harness::echo::create_template;
use crate::harness::replica::free_port;
use crate::harness::workspace::WorkspaceApi;
use crate::harness::TestServer;

/// Runs a CLI command until it succeeds (the agent may still be coming up), 60 s at most.
async fn until_ok(cli: &CoderCli, args: &[&str]) -> CliOutput {
    let started = Instant::now();
    loop {
        let out = cli.run_plain(args).await;
        if out.status.success() || started.elapsed() > Duration::from_secs(60) {
            return out;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

/// A TCP echo server on 127.0.0.1 (the "workspace" is this machine): what port-forward reaches.
async fn echo_server() -> u16 {
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = l.local_addr().unwrap().port();
    tokio::spawn(async move {
        while let Ok((mut s, _)) = l.accept().await {
            tokio::spawn(async move {
                let mut buf = [0u8; 4096];
                while let Ok(n) = s.read(&mut buf).await {
                    if n == 0 || s.write_all(&buf[..n]).await.is_err() {
                        break;
                    }
                }
            });
        }
    });
    port
}

/// The everyday ways into a workspace, through the relay only.
#[tokio::test]
async fn ssh_openssh_port_forward_and_ping_through_the_relay() {
    let Some(bin) = cli_or_skip() else { return };
    let srv = TestServer::start_with(|o| o.block_direct = true).await;
    let (owner, first) = srv.owner().await;
    let token = Uuid::new_v4();
    let (t, _) = create_template(&owner, first.organization_id, "agent", &agent_echo(token)).await;
    let w = owner.running_workspace(t.id, "dev").await;
    let agent = AgentProcess::start(&bin, &srv.url, token);
    until(&owner, w.id, "connected and ready", Some(&agent), |a| {
        a.status == "connected" && a.lifecycle_state == "ready"
    })
    .await;
    let cli = CoderCli::new(&bin, &srv.url, owner.token().unwrap());

    // The connection info the CLI reads first: our relay, and direct connections blocked.
    let info: serde_json::Value = owner
        .get_json(&format!(
            "/api/v2/workspaceagents/{}/connection",
            w.latest_build.resources[0].agents[0].id
        ))
        .await
        .unwrap();
    assert_eq!(info["disable_direct_connections"], true, "{info}");
    assert_eq!(
        info["derp_map"]["Regions"]["999"]["EmbeddedRelay"], true,
        "{info}"
    );

    // coder ssh with a command.
    let out = until_ok(&cli, &["ssh", "dev", "--", "echo", "hi"]).await;
    assert!(
        out.status.success() && out.stdout.trim_end() == "hi",
        "coder ssh: {out:#?}\nagent log:\n{}",
        agent.log()
    );

    // coder ping: the pongs come back through the embedded relay.
    let out = cli.run_plain(&["ping", "dev", "-n", "3"]).await;
    let all = format!("{}{}", out.stdout, out.stderr);
    assert!(out.status.success(), "coder ping: {out:#?}");
    assert!(
        all.contains("pong from dev") && all.contains("DERP(Coder Embedded Relay)"),
        "coder ping went through the relay: {out:#?}"
    );

    // OpenSSH with `coder ssh --stdio` as its ProxyCommand, as VS Code and JetBrains run it.
    if std::process::Command::new("ssh").arg("-V").output().is_ok() {
        openssh_and_config_ssh(&cli, &bin).await;
    } else {
        use std::io::Write;
        let _ = writeln!(
            std::io::stderr(),
            "SKIPPED: ssh not found (apt-get install openssh-client): the OpenSSH steps were not run"
        );
    }

    // coder port-forward --tcp: a port on the workspace's host, reached from here.
    port_forward(&cli, &bin).await;
    // The agent's other streams were content all along (its reinit watch reads pings).
    let log = agent.log();
    assert!(
        !log.contains("failed to wait for agent reinitialization"),
        "agent log:\n{log}"
    );
    drop(agent);
}

/// OpenSSH's client, non-interactive and trusting the host key it meets (a test workspace),
/// with `first` options in front: runs `echo <word>` on host `coder.dev` and checks the word
/// comes back.
async fn openssh_echo(mut cmd: tokio::process::Command, first: &[&str], word: &str) {
    let out = cmd
        .args(first)
        .args([
            "-o",
            "StrictHostKeyChecking=no",
            "-o",
            "UserKnownHostsFile=/dev/null",
            "-o",
            "BatchMode=yes",
            "-o",
            "LogLevel=ERROR",
            "coder.dev",
            "echo",
            word,
        ])
        .stdin(Stdio::null())
        .output()
        .await
        .unwrap();
    assert!(
        out.status.success() && String::from_utf8_lossy(&out.stdout).trim_end() == word,
        "ssh {first:?}: {}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

async fn openssh_and_config_ssh(cli: &CoderCli, bin: &std::path::Path) {
    // `coder ssh --stdio` as the ProxyCommand, as VS Code and JetBrains run it.
    let proxy = format!("ProxyCommand={} ssh --stdio dev", bin.display());
    let ssh = cli.command(std::path::Path::new("ssh"), &[]);
    openssh_echo(ssh, &["-o", &proxy], "through-openssh").await;

    // coder config-ssh writes a host entry that works with plain `ssh`.
    cli.store_login();
    let config = cli.config_dir().join("ssh_config");
    let out = cli
        .run_plain(&[
            "--global-config",
            cli.config_dir().to_str().unwrap(),
            "config-ssh",
            "--ssh-config-file",
            config.to_str().unwrap(),
            "--yes",
        ])
        .await;
    assert!(out.status.success(), "config-ssh: {out:#?}");
    let written = std::fs::read_to_string(&config).unwrap();
    assert!(written.contains("coder."), "{written}");
    let ssh = tokio::process::Command::new("ssh");
    openssh_echo(ssh, &["-F", config.to_str().unwrap()], "through-config-ssh").await;
}

async fn port_forward(cli: &CoderCli, bin: &std::path::Path) {
    let remote = echo_server().await;
    let local = free_port();
    let mut forward = cli
        .command(
            bin,
            &["port-forward", "dev", "--tcp", &format!("{local}:{remote}")],
        )
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let started = Instant::now();
    let mut conn = loop {
        if let Ok(c) = tokio::net::TcpStream::connect(("127.0.0.1", local)).await {
            break c;
        }
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "coder port-forward never listened on {local}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    let payload: Vec<u8> = (0..200_000u32).map(|i| (i % 251) as u8).collect();
    let (mut r, mut wr) = conn.split();
    let send = async {
        wr.write_all(&payload).await.unwrap();
    };
    let recv = async {
        let mut got = vec![0u8; payload.len()];
        r.read_exact(&mut got).await.unwrap();
        got
    };
    let (_, got) =
        tokio::time::timeout(Duration::from_secs(60), async { tokio::join!(send, recv) })
            .await
            .expect("the forwarded echo answered");
    assert!(got == payload, "the forwarded bytes came back unchanged");
    let _ = forward.kill().await;
}

/// A client on one replica, the agent on another: coordination crosses the database's pubsub
/// and packets cross the relays' mesh (each reaches DERP at the replica it was pointed at).
#[tokio::test]
async fn ssh_with_client_and_agent_on_different_replicas() {
    use crate::harness::replica::Replica;
    let Some(bin) = cli_or_skip() else { return };
    let srv = TestServer::start_with(|o| o.block_direct = true).await;
    let (owner, first) = srv.owner().await;
    let token = Uuid::new_v4();
    let (t, _) = create_template(&owner, first.organization_id, "agent", &agent_echo(token)).await;
    let w = owner.running_workspace(t.id, "dev").await;
    let mut other = Replica::spawn(
        &srv.db_url,
        free_port(),
        &[
            ("CODER_PROVISIONER_DAEMONS", "0"),
            ("CODER_BLOCK_DIRECT", "true"),
        ],
    );
    other.wait_healthy().await;
    let agent = AgentProcess::start(&bin, &other.url, token);
    until(&owner, w.id, "connected and ready", Some(&agent), |a| {
        a.status == "connected" && a.lifecycle_state == "ready"
    })
    .await;
    let cli = CoderCli::new(&bin, &srv.url, owner.token().unwrap());
    let out = until_ok(&cli, &["ssh", "dev", "--", "echo", "across"]).await;
    assert!(
        out.status.success() && out.stdout.trim_end() == "across",
        "coder ssh across replicas: {out:#?}\nagent log:\n{}\nother replica's log:\n{}",
        agent.log(),
        other.log_text()
    );
    let out = cli.run_plain(&["ping", "dev", "-n", "2"]).await;
    assert!(
        out.status.success() && format!("{}{}", out.stdout, out.stderr).contains("DERP("),
        "{out:#?}"
    );
    // The packets crossed from this replica's relay to the other's.
    let metrics = reqwest::get(format!("{}/metrics", srv.url))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let forwarded: f64 = metrics
        .lines()
        .find_map(|l| l.strip_prefix("coderd_derp_packets{outcome=\"forwarded\"} "))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or_else(|| panic!("no forwarded packet count in:\n{metrics}"));
    assert!(
        forwarded > 0.0,
        "no packet went through the mesh:\n{metrics}"
    );
    drop(agent);
    other.signal("-TERM");
    let _ = other.wait_exit(Duration::from_secs(30)).await;
}

/// Coordination is refused to a user who may not SSH into the workspace: they are told the
/// agent does not exist, and `coder ssh` fails without reaching it.
#[tokio::test]
async fn a_user_who_may_not_ssh_is_refused_at_coordination() {
    let srv = TestServer::start().await;
    let (owner, first) = srv.owner().await;
    let token = Uuid::new_v4();
    let (t, _) = create_template(&owner, first.organization_id, "agent", &agent_echo(token)).await;
    let w = owner.running_workspace(t.id, "dev").await;
    let agent_id = w.latest_build.resources[0].agents[0].id;
    let (member, _) = srv.member(&owner, "member").await;
    // Upstream's answer for an agent that is not connected.
    let (status, body) = crate::harness::raw_json(
        &owner,
        "GET",
        &format!("/api/v2/workspaceagents/{agent_id}/listening-ports"),
        None,
    )
    .await;
    assert_eq!(status, 400, "{body}");
    assert!(
        body["message"]
            .as_str()
            .unwrap_or_default()
            .contains("must be in the"),
        "{body}"
    );

    let req = crate::harness::ws_request(
        &srv.url,
        &format!("/api/v2/workspaceagents/{agent_id}/coordinate?version=2.0"),
        member.token().unwrap(),
    );
    match tokio_tungstenite::connect_async(req).await {
        Err(tokio_tungstenite::tungstenite::Error::Http(resp)) => {
            assert_eq!(resp.status(), 404);
        }
        other => panic!("a member may not coordinate with the owner's agent: {other:?}"),
    }
    // The owner may.
    let req = crate::harness::ws_request(
        &srv.url,
        &format!("/api/v2/workspaceagents/{agent_id}/coordinate?version=2.0"),
        owner.token().unwrap(),
    );
    assert!(tokio_tungstenite::connect_async(req).await.is_ok());

    if let Some(bin) = crate::cli::coder_cli() {
        let (m2, _) = srv.member(&owner, "other").await;
        let cli = CoderCli::new(&bin, &srv.url, m2.token().unwrap());
        let out = cli
            .run_plain(&["ssh", "owner/dev", "--", "echo", "hi"])
            .await;
        assert!(!out.status.success(), "{out:#?}");
        assert!(!out.stdout.contains("hi"), "{out:#?}");
    }
}

/// What a client sees of coordination across replicas: the agent's node, gossiped from the
/// replica holding the agent, and the agent `LOST` once that replica is killed. A tunnel to an
/// agent the connection was not opened for is refused.
#[tokio::test]
async fn coordination_crosses_replicas_and_outlives_a_dead_one() {
    use crate::harness::replica::Replica;
    use crate::harness::tailnet::Coordination;
    let Some(bin) = cli_or_skip() else { return };
    let srv = TestServer::start().await;
    let (owner, first) = srv.owner().await;
    let token = Uuid::new_v4();
    let (t, _) = create_template(&owner, first.organization_id, "agent", &agent_echo(token)).await;
    let w = owner.running_workspace(t.id, "dev").await;
    let agent_id = w.latest_build.resources[0].agents[0].id;
    let mut other = Replica::spawn(
        &srv.db_url,
        free_port(),
        &[("CODER_PROVISIONER_DAEMONS", "0")],
    );
    other.wait_healthy().await;
    let agent = AgentProcess::start(&bin, &other.url, token);
    until(&owner, w.id, "connected and ready", Some(&agent), |a| {
        a.status == "connected" && a.lifecycle_state == "ready"
    })
    .await;

    let mut c = Coordination::open(&srv.url, agent_id, owner.token().unwrap()).await;
    c.update_self(1).await;
    c.add_tunnel(agent_id).await;
    let u = c.until(agent_id, 1, Duration::from_secs(30)).await;
    let node = u.node.expect("the agent's node");
    assert!(!node.key.is_empty(), "the real agent's node: {node:?}");
    assert!(!node.disco.is_empty(), "the real agent's node: {node:?}");

    // kill -9: no goodbye; the silence says it.
    other.signal("-KILL");
    assert!(other.wait_exit(Duration::from_secs(10)).await.is_some());
    let started = Instant::now();
    c.until(agent_id, 3, Duration::from_secs(45)).await;
    assert!(
        started.elapsed() < Duration::from_secs(30),
        "the agent was reported lost after {:?}",
        started.elapsed()
    );
    drop(agent);

    // A tunnel to anything but the connection's agent ends the call with an error.
    let mut c = Coordination::open(&srv.url, agent_id, owner.token().unwrap()).await;
    c.add_tunnel(Uuid::new_v4()).await;
    let mut refused = false;
    while let Some(r) = c.next(Duration::from_secs(10)).await {
        match r {
            Ok(resp) if resp.error.contains("may not open a tunnel") => refused = true,
            Ok(_) => {}
            Err(e) => {
                assert!(e.contains("may not open a tunnel"), "{e}");
                refused = true;
                break;
            }
        }
    }
    assert!(refused, "the tunnel was refused");
}

/// Garbage on `/derp` and on a coordination stream closes that connection; the relay goes on
/// relaying for everyone else.
#[tokio::test]
async fn garbage_on_derp_and_coordination_is_cut_off() {
    use coderd_wire::derp::{ClientConn, Event, KeyPair};
    use futures_util::{SinkExt, StreamExt};
    use tokio_tungstenite::tungstenite::Message;
    use tokio_util::compat::TokioAsyncReadCompatExt;
    let srv = TestServer::start().await;
    let addr = srv.url.trim_start_matches("http://").to_string();

    async fn upgraded(addr: &str) -> tokio::net::TcpStream {
        let mut tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
        tcp.write_all(
            format!("GET /derp HTTP/1.1\r\nHost: {addr}\r\nUpgrade: DERP\r\nConnection: Upgrade\r\n\r\n")
                .as_bytes(),
        )
        .await
        .unwrap();
        let mut head = Vec::new();
        while !head.ends_with(b"\r\n\r\n") {
            let mut b = [0u8; 1];
            assert_eq!(tcp.read(&mut b).await.unwrap(), 1);
            head.push(b[0]);
        }
        let head = String::from_utf8_lossy(&head).to_string();
        assert!(head.starts_with("HTTP/1.1 101"), "{head}");
        assert!(
            head.to_ascii_lowercase().contains("derp-public-key:"),
            "{head}"
        );
        tcp
    }

    async fn closed(tcp: &mut tokio::net::TcpStream) -> bool {
        let mut buf = [0u8; 4096];
        tokio::time::timeout(Duration::from_secs(15), async {
            loop {
                match tcp.read(&mut buf).await {
                    Ok(0) | Err(_) => return,
                    Ok(_) => {}
                }
            }
        })
        .await
        .is_ok()
    }

    // A well-behaved pair, connected before and still relaying after.
    let (ka, kb) = (KeyPair::generate(), KeyPair::generate());
    let mut a = ClientConn::handshake(upgraded(&addr).await.compat(), &ka, None)
        .await
        .unwrap();
    let mut b = ClientConn::handshake(upgraded(&addr).await.compat(), &kb, None)
        .await
        .unwrap();

    let garbage: [&[u8]; 4] = [
        // Not DERP at all.
        b"hello there, relay\r\n",
        // A client info frame claiming 2 GiB.
        &[0x02, 0x7f, 0xff, 0xff, 0xff],
        // A client info too short to hold a key.
        &[0x02, 0, 0, 0, 4, 1, 2, 3, 4],
        // 32 bytes of key, a nonce and a box that opens with no key.
        &[[0x02, 0, 0, 0, 80].as_slice(), &[7u8; 80]].concat(),
    ];
    for bytes in garbage {
        let mut tcp = upgraded(&addr).await;
        tcp.write_all(bytes).await.unwrap();
        assert!(
            closed(&mut tcp).await,
            "the relay kept a connection that sent {bytes:?}"
        );
    }
    // Nobody asked for an upgrade: a clear 426.
    let resp = reqwest::get(format!("{}/derp", srv.url)).await.unwrap();
    assert_eq!(resp.status(), 426);
    assert!(resp
        .text()
        .await
        .unwrap()
        .contains("DERP requires connection upgrade"));
    // The latency check answers.
    let resp = reqwest::get(format!("{}/derp/latency-check", srv.url))
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);

    a.send(&kb.public(), b"still here").await.unwrap();
    loop {
        match tokio::time::timeout(Duration::from_secs(10), b.recv()).await {
            Ok(Ok(Event::Packet { src, data })) => {
                assert_eq!((src, data.as_slice()), (ka.public(), &b"still here"[..]));
                break;
            }
            Ok(Ok(_)) => {}
            other => panic!("the relay stopped relaying: {other:?}"),
        }
    }

    // DERP over a WebSocket (what clients fall back to behind strict proxies) relays too.
    let mut req = crate::harness::ws_request(&srv.url, "/derp", "unused");
    req.headers_mut()
        .insert("Sec-WebSocket-Protocol", "derp".parse().unwrap());
    let (ws, resp) = tokio_tungstenite::connect_async(req).await.unwrap();
    assert_eq!(
        resp.headers().get("sec-websocket-protocol").unwrap(),
        "derp"
    );
    let kc = KeyPair::generate();
    let mut c = ClientConn::handshake(crate::harness::tailnet::WsBytes::new(ws), &kc, None)
        .await
        .unwrap();
    c.send(&kb.public(), b"over a websocket").await.unwrap();
    loop {
        match tokio::time::timeout(Duration::from_secs(10), b.recv()).await {
            Ok(Ok(Event::Packet { src, data })) => {
                assert_eq!(
                    (src, data.as_slice()),
                    (kc.public(), &b"over a websocket"[..])
                );
                break;
            }
            Ok(Ok(_)) => {}
            other => panic!("nothing came over the WebSocket relay: {other:?}"),
        }
    }

    // Garbage on a coordination stream ends it; the server answers on.
    let (owner, first) = srv.owner().await;
    let token = Uuid::new_v4();
    let (t, _) = create_template(&owner, first.organization_id, "agent", &agent_echo(token)).await;
    let w = owner.running_workspace(t.id, "dev").await;
    let agent_id = w.latest_build.resources[0].agents[0].id;
    for bytes in [
        &b"GET / HTTP/1.1\r\n\r\n"[..],
        &[0, 0, 0, 2, 0, 0, 0, 1, 0xff, 0xff, 0xff, 0xff],
    ] {
        let req = crate::harness::ws_request(
            &srv.url,
            &format!("/api/v2/workspaceagents/{agent_id}/coordinate?version=2.0"),
            owner.token().unwrap(),
        );
        let (mut ws, _) = tokio_tungstenite::connect_async(req).await.unwrap();
        ws.send(Message::Binary(bytes.to_vec().into()))
            .await
            .unwrap();
        let ended = tokio::time::timeout(Duration::from_secs(10), async {
            while let Some(m) = ws.next().await {
                if matches!(m, Err(_) | Ok(Message::Close(_))) {
                    return;
                }
            }
        })
        .await;
        assert!(
            ended.is_ok(),
            "the coordination stayed open after {bytes:?}"
        );
    }
    let me = owner.user("me").await.unwrap();
    assert_eq!(me.username, "owner");
}

/// The other two ways in: DERP over WebSockets (`CODER_DERP_FORCE_WEBSOCKETS`, for proxies that
/// pass no other upgrade), and direct connections (the default; our relay only introduces).
#[tokio::test]
async fn ssh_over_derp_websockets_and_directly() {
    let Some(bin) = cli_or_skip() else { return };
    for (name, force_ws, block_direct) in [("websockets", true, true), ("direct", false, false)] {
        let srv = TestServer::start_with(|o| {
            o.derp_force_websockets = force_ws;
            o.block_direct = block_direct;
        })
        .await;
        let (owner, first) = srv.owner().await;
        let token = Uuid::new_v4();
        let (t, _) =
            create_template(&owner, first.organization_id, "agent", &agent_echo(token)).await;
        let w = owner.running_workspace(t.id, "dev").await;
        let agent = AgentProcess::start(&bin, &srv.url, token);
        until(&owner, w.id, "connected and ready", Some(&agent), |a| {
            a.status == "connected" && a.lifecycle_state == "ready"
        })
        .await;
        let cli = CoderCli::new(&bin, &srv.url, owner.token().unwrap());
        let out = until_ok(&cli, &["ssh", "dev", "--", "echo", name]).await;
        assert!(
            out.status.success() && out.stdout.trim_end() == name,
            "coder ssh ({name}): {out:#?}\nagent log:\n{}",
            agent.log()
        );
        let out = cli.run_plain(&["ping", "dev", "-n", "3"]).await;
        assert!(out.status.success(), "coder ping ({name}): {out:#?}");
        // Forced, the agent holds its relay connection as a WebSocket.
        let metrics = reqwest::get(format!("{}/metrics", srv.url))
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        let derp_ws: f64 = metrics
            .lines()
            .find_map(|l| l.strip_prefix("coderd_api_concurrent_websockets{path=\"/derp\"} "))
            .and_then(|v| v.trim().parse().ok())
            .unwrap_or(0.0);
        if force_ws {
            assert!(derp_ws >= 1.0, "no DERP WebSocket open:\n{metrics}");
        } else {
            assert_eq!(
                derp_ws, 0.0,
                "DERP went over WebSockets unasked:\n{metrics}"
            );
        }
        drop(agent);
    }
}

/// The README's nginx site in front (`tests/api/nginx.rs`): the CLI and the agent both reach
/// the server, and its relay, only through nginx, which must pass `Upgrade: DERP` on.
#[tokio::test]
async fn ssh_through_nginx() {
    let Some(bin) = cli_or_skip() else { return };
    let srv = TestServer::start_with(|o| o.block_direct = true).await;
    let upstream = srv.url.trim_start_matches("http://").to_string();
    let nginx = match crate::nginx::Nginx::start(&[upstream]).await {
        Ok(n) => n,
        Err(why) => {
            eprintln!("SKIPPED: {why}: coder ssh through nginx was not run");
            return;
        }
    };
    let (owner, first) = srv.owner().await;
    let token = Uuid::new_v4();
    let (t, _) = create_template(&owner, first.organization_id, "agent", &agent_echo(token)).await;
    let w = owner.running_workspace(t.id, "dev").await;
    let agent = AgentProcess::start(&bin, &nginx.plain, token);
    until(&owner, w.id, "connected and ready", Some(&agent), |a| {
        a.status == "connected" && a.lifecycle_state == "ready"
    })
    .await;
    let cli = CoderCli::new(&bin, &nginx.plain, owner.token().unwrap());
    let out = until_ok(&cli, &["ssh", "dev", "--", "echo", "via-nginx"]).await;
    assert!(
        out.status.success() && out.stdout.trim_end() == "via-nginx",
        "coder ssh through nginx: {out:#?}\nagent log:\n{}",
        agent.log()
    );
    let access = std::fs::read_to_string(nginx.dir.join("logs/access.log")).unwrap_or_default();
    assert!(
        access
            .lines()
            .any(|l| l.contains("GET /derp ") && l.contains(" 101 ")),
        "the relay was reached through nginx:\n{access}"
    );
    drop(agent);
}
