//! Into a workspace through coderd-rs: the real `coder` CLI and the real `coder agent`
//! (`CODERD_CODER_CLI`), coordinated by this server and relayed by its embedded DERP relay.
//! `coder ssh`, OpenSSH through `coder ssh --stdio` (what VS Code and JetBrains run),
//! `coder config-ssh`, `coder port-forward` and `coder ping`, with direct connections blocked
//! so that every packet crosses our relay; then across two replicas.

use std::process::Stdio;
use std::time::{Duration, Instant};

use serde_json::json;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use uuid::Uuid;

use crate::agents::{agent_echo, until, AgentProcess};
use crate::cli::{cli_or_skip, CliOutput, CoderCli};
use crate::harness::echo::create_template;
use crate::harness::workspace::running_ws;
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

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// The everyday ways into a workspace, through the relay only.
#[tokio::test]
async fn ssh_openssh_port_forward_and_ping_through_the_relay() {
    let Some(bin) = cli_or_skip() else { return };
    let srv = TestServer::start_with(|o| o.block_direct = true).await;
    let (owner, first) = srv.owner().await;
    let token = Uuid::new_v4();
    let (t, _) = create_template(&owner, first.organization_id, "agent", &agent_echo(token)).await;
    let w = running_ws(&owner, t.id, "dev", json!({})).await;
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

async fn openssh_and_config_ssh(cli: &CoderCli, bin: &std::path::Path) {
    let proxy = format!("{} ssh --stdio dev", bin.display());
    let out = cli
        .command(
            std::path::Path::new("ssh"),
            &[
                "-o",
                &format!("ProxyCommand={proxy}"),
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
                "through-openssh",
            ],
        )
        .stdin(Stdio::null())
        .output()
        .await
        .unwrap();
    assert!(
        out.status.success()
            && String::from_utf8_lossy(&out.stdout).trim_end() == "through-openssh",
        "ssh --stdio: {}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );

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
    let out = tokio::process::Command::new("ssh")
        .args([
            "-F",
            config.to_str().unwrap(),
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
            "through-config-ssh",
        ])
        .stdin(Stdio::null())
        .output()
        .await
        .unwrap();
    assert!(
        out.status.success()
            && String::from_utf8_lossy(&out.stdout).trim_end() == "through-config-ssh",
        "ssh -F <config-ssh's file>: {}\n{}\n{written}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
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
    use crate::harness::replica::{free_port as replica_port, Replica};
    let Some(bin) = cli_or_skip() else { return };
    let srv = TestServer::start_with(|o| o.block_direct = true).await;
    let (owner, first) = srv.owner().await;
    let token = Uuid::new_v4();
    let (t, _) = create_template(&owner, first.organization_id, "agent", &agent_echo(token)).await;
    let w = running_ws(&owner, t.id, "dev", json!({})).await;
    let mut other = Replica::spawn(
        &srv.db_url,
        replica_port(),
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
    let w = running_ws(&owner, t.id, "dev", json!({})).await;
    let agent_id = w.latest_build.resources[0].agents[0].id;
    let (member, _) = srv.member(&owner, "member").await;

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
