//! The built-in PostgreSQL: used when no database URL is configured, as `coder server` does.
//!
//! The cluster lives in `<config dir>/postgres`: `data/` (initdb'd once), `password` (mode 0600)
//! and `port`, both chosen at random on first start and kept, so a second start reuses the same
//! data at the same URL. `postgres` refuses to run as root; when we are root its processes run
//! as the unprivileged `postgres` user (or `nobody`). The postmaster is our child process and
//! gets SIGINT (fast shutdown) when we stop it or when our process dies.

use std::fs;
use std::io::Write;
use std::os::unix::fs::{MetadataExt, OpenOptionsExt, PermissionsExt};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use rand::distributions::Alphanumeric;
use rand::Rng;
use sqlx::{Connection, PgConnection};
use tokio::sync::watch;

#[derive(Debug, thiserror::Error)]
pub enum BuiltinError {
    #[error(
        "the built-in database needs PostgreSQL's server binaries (initdb, pg_ctl, postgres), which were \
         found neither on PATH nor under /usr/lib/postgresql/*/bin. Either install PostgreSQL \
         (for example `apt-get install postgresql`), or set CODER_PG_CONNECTION_URL \
         (--postgres-url) to use an existing database"
    )]
    MissingBinaries,
    #[error(
        "the built-in database runs as the unprivileged user {user:?}, which cannot reach {dir}; \
         set CODER_CONFIG_DIR to a directory that user can traverse (for example under /var/lib), \
         or set CODER_PG_CONNECTION_URL to use an existing database"
    )]
    Unreachable { user: String, dir: String },
    #[error("{what}: {source}")]
    Io {
        what: String,
        #[source]
        source: std::io::Error,
    },
    #[error("{0}")]
    Postgres(String),
}

fn io_err(what: impl Into<String>) -> impl FnOnce(std::io::Error) -> BuiltinError {
    let what = what.into();
    move |source| BuiltinError::Io { what, source }
}

/// Options for starting the built-in database.
#[derive(Clone, Debug, Default)]
pub struct BuiltinOptions {
    /// Turn off fsync: only for throwaway clusters (tests), never for data that matters.
    pub unsafe_no_fsync: bool,
}

/// A running built-in PostgreSQL.
pub struct BuiltinPostgres {
    url: String,
    pid: i32,
    exited: watch::Receiver<bool>,
    stopped: bool,
}

impl std::fmt::Debug for BuiltinPostgres {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BuiltinPostgres")
            .field("url", &crate::redact_url(&self.url))
            .field("pid", &self.pid)
            .field("stopped", &self.stopped)
            .finish_non_exhaustive()
    }
}

const DB_USER: &str = "coder";
const DB_NAME: &str = "coder";

/// The URL of the built-in database kept in `dir` (creating its password and port if new).
pub fn builtin_url(dir: &Path) -> Result<String, BuiltinError> {
    let (password, port) = credentials(dir)?;
    Ok(format!(
        "postgres://{DB_USER}:{password}@127.0.0.1:{port}/{DB_NAME}?sslmode=disable"
    ))
}

fn credentials(dir: &Path) -> Result<(String, u16), BuiltinError> {
    fs::create_dir_all(dir).map_err(io_err(format!("creating {}", dir.display())))?;
    let password = read_or_create(&dir.join("password"), || {
        rand::thread_rng()
            .sample_iter(&Alphanumeric)
            .take(16)
            .map(char::from)
            .collect()
    })?;
    let port = read_or_create(&dir.join("port"), || {
        std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .map(|a| a.port().to_string())
            .unwrap_or_else(|_| "5433".into())
    })?;
    let port = port.trim().parse().map_err(|_| {
        BuiltinError::Postgres(format!(
            "{} holds no port number",
            dir.join("port").display()
        ))
    })?;
    Ok((password.trim().to_string(), port))
}

fn read_or_create(path: &Path, make: impl FnOnce() -> String) -> Result<String, BuiltinError> {
    match fs::read_to_string(path) {
        Ok(s) if !s.trim().is_empty() => Ok(s),
        _ => {
            let value = make();
            let mut f = fs::OpenOptions::new()
                .write(true)
                .create(true)
                .truncate(true)
                .mode(0o600)
                .open(path)
                .map_err(io_err(format!("writing {}", path.display())))?;
            f.write_all(value.as_bytes())
                .map_err(io_err(format!("writing {}", path.display())))?;
            Ok(value)
        }
    }
}

/// Finds the directory holding `initdb`, `pg_ctl` and `postgres`: PATH first, then the newest
/// `/usr/lib/postgresql/<version>/bin`.
pub fn find_binaries() -> Result<PathBuf, BuiltinError> {
    find_binaries_in(std::env::var_os("PATH"), Path::new("/usr/lib/postgresql"))
}

fn find_binaries_in(
    path: Option<std::ffi::OsString>,
    lib_root: &Path,
) -> Result<PathBuf, BuiltinError> {
    let has_all = |d: &Path| {
        ["initdb", "pg_ctl", "postgres"]
            .iter()
            .all(|b| d.join(b).is_file())
    };
    if let Some(path) = path {
        for dir in std::env::split_paths(&path) {
            if has_all(&dir) {
                return Ok(dir);
            }
        }
    }
    let mut versions: Vec<(u32, PathBuf)> = fs::read_dir(lib_root)
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| {
            let v = e.file_name().to_str()?.parse::<u32>().ok()?;
            Some((v, e.path().join("bin")))
        })
        .filter(|(_, d)| has_all(d))
        .collect();
    versions.sort();
    versions
        .pop()
        .map(|(_, d)| d)
        .ok_or(BuiltinError::MissingBinaries)
}

/// The unprivileged account the database runs as when we are root.
#[derive(Clone, Debug)]
struct RunAs {
    name: String,
    uid: u32,
    gid: u32,
}

fn run_as() -> Option<RunAs> {
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        return None;
    }
    let passwd = fs::read_to_string("/etc/passwd").unwrap_or_default();
    ["postgres", "nobody"].iter().find_map(|want| {
        passwd.lines().find_map(|line| {
            let f: Vec<&str> = line.split(':').collect();
            if f.len() < 4 || f[0] != *want {
                return None;
            }
            Some(RunAs {
                name: f[0].to_string(),
                uid: f[2].parse().ok()?,
                gid: f[3].parse().ok()?,
            })
        })
    })
}

/// Every ancestor of `dir` must let `user` search it, or postgres cannot chdir into its data.
fn check_reachable(dir: &Path, user: &RunAs) -> Result<(), BuiltinError> {
    for anc in dir.ancestors().skip(1) {
        let Ok(meta) = fs::metadata(anc) else {
            continue;
        };
        let mode = meta.permissions().mode();
        let ok = if meta.uid() == user.uid {
            mode & 0o100 != 0
        } else if meta.gid() == user.gid {
            mode & 0o010 != 0
        } else {
            mode & 0o001 != 0
        };
        if !ok {
            return Err(BuiltinError::Unreachable {
                user: user.name.clone(),
                dir: dir.display().to_string(),
            });
        }
    }
    Ok(())
}

fn chown_tree(path: &Path, user: &RunAs) -> Result<(), BuiltinError> {
    std::os::unix::fs::chown(path, Some(user.uid), Some(user.gid))
        .map_err(io_err(format!("chown {}", path.display())))?;
    if path.is_dir() {
        for entry in fs::read_dir(path).map_err(io_err(format!("reading {}", path.display())))? {
            let entry = entry.map_err(io_err("reading directory"))?;
            chown_tree(&entry.path(), user)?;
        }
    }
    Ok(())
}

fn command(bin: &Path, user: &Option<RunAs>) -> Command {
    let mut cmd = Command::new(bin);
    if let Some(u) = user {
        cmd.uid(u.uid).gid(u.gid);
    }
    // Locale and timezone of the machine must not leak into the cluster's behaviour.
    cmd.env("LC_ALL", "C").env("TZ", "UTC");
    cmd
}

/// A postmaster just started, not yet known to accept connections.
struct Launched {
    pg: BuiltinPostgres,
    admin_url: String,
    log_path: PathBuf,
    port: u16,
}

/// Everything up to a running postmaster: the binaries, the credentials, the cluster
/// (initdb'd on first use) and the process. All of it blocks.
fn launch(dir: &Path, opts: &BuiltinOptions) -> Result<Launched, BuiltinError> {
    let bin = find_binaries()?;
    let user = run_as();
    fs::create_dir_all(dir).map_err(io_err(format!("creating {}", dir.display())))?;
    let dir = dir
        .canonicalize()
        .map_err(io_err(format!("resolving {}", dir.display())))?;
    let (password, port) = credentials(&dir)?;
    let data = dir.join("data");
    if let Some(u) = &user {
        check_reachable(&data, u)?;
    }

    if !data.join("PG_VERSION").exists() {
        tracing::info!(dir = %data.display(), "initialising the built-in PostgreSQL cluster");
        let _ = fs::remove_dir_all(&data);
        fs::create_dir_all(&data).map_err(io_err(format!("creating {}", data.display())))?;
        fs::set_permissions(&data, fs::Permissions::from_mode(0o700))
            .map_err(io_err("setting data directory permissions"))?;
        let pwfile = dir.join("initdb-password");
        read_or_create(&pwfile, || password.clone())?;
        if let Some(u) = &user {
            chown_tree(&dir, u)?;
        }
        let out = command(&bin.join("initdb"), &user)
            .arg("-D")
            .arg(&data)
            .args([
                "-U",
                DB_USER,
                "-A",
                "scram-sha-256",
                "-E",
                "UTF8",
                "--no-locale",
            ])
            .arg(format!("--pwfile={}", pwfile.display()))
            .args(opts.unsafe_no_fsync.then_some("--no-sync"))
            .output()
            .map_err(io_err("running initdb"))?;
        let _ = fs::remove_file(&pwfile);
        if !out.status.success() {
            let _ = fs::remove_dir_all(&data);
            return Err(BuiltinError::Postgres(format!(
                "initdb failed: {}{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            )));
        }
    } else if let Some(u) = &user {
        chown_tree(&dir, u)?;
    }

    let log_path = dir.join("postgres.log");
    let log = fs::OpenOptions::new()
        .create(true)
        .append(true)
        .mode(0o600)
        .open(&log_path)
        .map_err(io_err(format!("opening {}", log_path.display())))?;
    let mut cmd = command(&bin.join("postgres"), &user);
    cmd.arg("-D")
        .arg(&data)
        .args(["-p", &port.to_string()])
        .args(["-c", "listen_addresses=127.0.0.1"])
        .args(["-c", "unix_socket_directories="])
        .args(["-c", "max_connections=300"])
        .stdin(Stdio::null())
        .stdout(log.try_clone().map_err(io_err("duplicating log handle"))?)
        .stderr(log);
    if opts.unsafe_no_fsync {
        cmd.args([
            "-c",
            "fsync=off",
            "-c",
            "synchronous_commit=off",
            "-c",
            "full_page_writes=off",
        ]);
    }
    // SAFETY: prctl is async-signal-safe. It runs after the uid switch (which would clear it).
    unsafe {
        cmd.pre_exec(|| {
            libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGINT);
            Ok(())
        });
    }

    // The parent-death signal follows the *thread* that forked the child, so the child is
    // spawned and reaped by a thread that lives exactly as long as it does.
    let (pid_tx, pid_rx) = std::sync::mpsc::channel();
    let (exit_tx, exited) = watch::channel(false);
    std::thread::Builder::new()
        .name("builtin-postgres".into())
        .spawn(move || match cmd.spawn() {
            Ok(mut child) => {
                let _ = pid_tx.send(Ok(child.id() as i32));
                let _ = child.wait();
                let _ = exit_tx.send(true);
            }
            Err(e) => {
                let _ = pid_tx.send(Err(e));
            }
        })
        .map_err(io_err("spawning the postgres supervisor thread"))?;
    let pid = pid_rx
        .recv()
        .map_err(|_| BuiltinError::Postgres("postgres supervisor thread died".into()))?
        .map_err(io_err("starting postgres"))?;

    let pg = BuiltinPostgres {
        url: format!("postgres://{DB_USER}:{password}@127.0.0.1:{port}/{DB_NAME}?sslmode=disable"),
        pid,
        exited,
        stopped: false,
    };
    let admin_url =
        format!("postgres://{DB_USER}:{password}@127.0.0.1:{port}/postgres?sslmode=disable");
    Ok(Launched {
        pg,
        admin_url,
        log_path,
        port,
    })
}

impl BuiltinPostgres {
    /// Starts the built-in database in `dir`, initialising it on first use, and waits until it
    /// accepts connections.
    pub async fn start(dir: &Path, opts: &BuiltinOptions) -> Result<BuiltinPostgres, BuiltinError> {
        let (dir, opts) = (dir.to_path_buf(), opts.clone());
        // initdb alone takes seconds: off the async threads.
        let Launched {
            mut pg,
            admin_url,
            log_path,
            port,
        } = tokio::task::spawn_blocking(move || launch(&dir, &opts))
            .await
            .map_err(|e| BuiltinError::Postgres(format!("starting postgres: {e}")))??;
        let pid = pg.pid;
        let started = Instant::now();
        let mut conn = loop {
            if *pg.exited.borrow() {
                pg.stopped = true;
                return Err(BuiltinError::Postgres(format!(
                    "postgres exited during start-up; the end of {}:\n{}",
                    log_path.display(),
                    tail(&log_path, 15).await
                )));
            }
            match PgConnection::connect(&admin_url).await {
                Ok(c) => break c,
                Err(_) if started.elapsed() < Duration::from_secs(60) => {
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
                Err(e) => {
                    pg.stop().await;
                    return Err(BuiltinError::Postgres(format!(
                        "postgres did not accept connections within 60s ({e}); see {}",
                        log_path.display()
                    )));
                }
            }
        };
        let exists: bool =
            sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM pg_database WHERE datname = $1)")
                .bind(DB_NAME)
                .fetch_one(&mut conn)
                .await
                .map_err(|e| BuiltinError::Postgres(format!("checking for database: {e}")))?;
        if !exists {
            sqlx::query(&format!("CREATE DATABASE {DB_NAME}"))
                .execute(&mut conn)
                .await
                .map_err(|e| BuiltinError::Postgres(format!("creating database: {e}")))?;
        }
        let _ = conn.close().await;
        tracing::info!(port, pid, "built-in PostgreSQL is ready");
        Ok(pg)
    }

    /// Connection URL of the `coder` database.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// Fast shutdown: disconnect clients, checkpoint, exit. Waits up to 30 s, then quits hard.
    pub async fn stop(&mut self) {
        if self.stopped {
            return;
        }
        self.stopped = true;
        // SAFETY: kill has no memory-safety preconditions.
        unsafe { libc::kill(self.pid, libc::SIGINT) };
        let mut exited = self.exited.clone();
        if tokio::time::timeout(Duration::from_secs(30), exited.wait_for(|e| *e))
            .await
            .is_err()
        {
            tracing::warn!(
                pid = self.pid,
                "postgres did not stop within 30s; sending SIGQUIT"
            );
            // SAFETY: as above.
            unsafe { libc::kill(self.pid, libc::SIGQUIT) };
            let _ = tokio::time::timeout(Duration::from_secs(5), exited.wait_for(|e| *e)).await;
        }
        tracing::info!("built-in PostgreSQL stopped");
    }
}

impl Drop for BuiltinPostgres {
    fn drop(&mut self) {
        if !self.stopped {
            // SAFETY: kill has no memory-safety preconditions.
            unsafe { libc::kill(self.pid, libc::SIGINT) };
        }
    }
}

async fn tail(path: &Path, lines: usize) -> String {
    let text = tokio::fs::read_to_string(path).await.unwrap_or_default();
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scratch() -> PathBuf {
        let d =
            std::env::temp_dir().join(format!("coderd-db-test-{}", uuid::Uuid::new_v4().simple()));
        fs::create_dir_all(&d).unwrap();
        d
    }

    fn fake_bins(dir: &Path) {
        fs::create_dir_all(dir).unwrap();
        for b in ["initdb", "pg_ctl", "postgres"] {
            fs::write(dir.join(b), "").unwrap();
        }
    }

    #[test]
    fn missing_binaries_name_both_ways_out() {
        let d = scratch();
        let err =
            find_binaries_in(Some(d.join("bin").into_os_string()), &d.join("lib")).unwrap_err();
        let msg = err.to_string();
        assert!(matches!(err, BuiltinError::MissingBinaries));
        assert!(
            msg.contains("install PostgreSQL") && msg.contains("CODER_PG_CONNECTION_URL"),
            "{msg}"
        );
        fs::remove_dir_all(d).unwrap();
    }

    #[test]
    fn path_first_then_newest_versioned_dir() {
        let d = scratch();
        fake_bins(&d.join("lib/13/bin"));
        fake_bins(&d.join("lib/16/bin"));
        fs::create_dir_all(d.join("lib/17/bin")).unwrap(); // incomplete: skipped
        assert_eq!(
            find_binaries_in(None, &d.join("lib")).unwrap(),
            d.join("lib/16/bin")
        );
        fake_bins(&d.join("onpath"));
        let path = std::env::join_paths([d.join("nothing"), d.join("onpath")]).unwrap();
        assert_eq!(
            find_binaries_in(Some(path), &d.join("lib")).unwrap(),
            d.join("onpath")
        );
        fs::remove_dir_all(d).unwrap();
    }

    #[test]
    fn debug_hides_the_password() {
        let (exit_tx, exited) = watch::channel(false);
        let pg = BuiltinPostgres {
            url: "postgres://coder:s3cretpw@127.0.0.1:5433/coder?sslmode=disable".into(),
            pid: 0,
            exited,
            stopped: true,
        };
        let printed = format!("{pg:?}");
        assert!(!printed.contains("s3cretpw"), "{printed}");
        assert!(
            printed.contains("postgres://coder:***@127.0.0.1:5433/coder"),
            "{printed}"
        );
        drop(exit_tx);
    }

    #[test]
    fn credentials_are_created_once_and_private() {
        let d = scratch();
        let first = builtin_url(&d).unwrap();
        assert_eq!(builtin_url(&d).unwrap(), first);
        let mode = fs::metadata(d.join("password"))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
        fs::remove_dir_all(d).unwrap();
    }
}
