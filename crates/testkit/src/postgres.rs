//! A throwaway PostgreSQL cluster per test process, and a fresh database per test.
//!
//! [`database`] starts the process's shared cluster on first use (`initdb` into a temp directory,
//! durability off, loopback TCP only, on a free port) and creates an empty database that is dropped
//! when the returned [`TestDatabase`] is. The cluster stops when the process exits: normally through
//! an exit hook; if the process is killed, through the parent-death signal, and its directory is
//! swept by the next test process. PostgreSQL refuses to run as root, so when the tests run as root
//! the server runs as the `postgres` user (uid switch at spawn).

use std::{
    os::unix::{fs::chown, process::CommandExt},
    path::{Path, PathBuf},
    process::Command,
    sync::{
        Arc, Mutex, OnceLock,
        atomic::{AtomicU64, Ordering},
    },
    time::Duration,
};

use nix::{sys::signal::Signal, unistd::User};
use tempfile::TempDir;

use crate::{Error, Result, process::Process, rpc, tools, wait::Watched};

const STARTUP_TIMEOUT: Duration = Duration::from_secs(60);
const TEMP_PREFIX: &str = "covenant-pg-";
const PORT_ATTEMPTS: usize = 5;
const SUPERUSER: &str = "postgres";

/// Options for a cluster; finish with [`PgClusterBuilder::start`] or [`PgClusterBuilder::try_start`].
#[derive(Clone, Debug, Default)]
pub struct PgClusterBuilder {
    port: Option<u16>,
    settings: Vec<(String, String)>,
}

impl PgClusterBuilder {
    /// Asks for a specific port first; if it is taken, a free one is used instead.
    pub fn with_port(mut self, port: u16) -> Self {
        self.port = Some(port);
        self
    }

    /// Adds a `postgresql.conf` setting.
    pub fn with_setting(mut self, name: impl Into<String>, value: impl Into<String>) -> Self {
        self.settings.push((name.into(), value.into()));
        self
    }

    /// Starts the cluster; panics on failure.
    #[allow(clippy::expect_used)]
    pub fn start(self) -> PgCluster {
        self.try_start().expect("start a PostgreSQL cluster")
    }

    /// Initialises a cluster in a new temp directory, starts it and waits until it accepts
    /// connections.
    pub fn try_start(self) -> Result<PgCluster> {
        sweep_orphaned_directories();
        let bin = tools::pg_bin_dir()?;
        let owner = server_user()?;
        let dir = tempfile::Builder::new()
            .prefix(&format!("{TEMP_PREFIX}{}-", std::process::id()))
            .tempdir()
            .map_err(|source| Error::Io {
                what: "create temp dir",
                path: "$TMPDIR".into(),
                source,
            })?;
        let data = dir.path().join("data");
        if let Some(user) = &owner {
            chown(dir.path(), Some(user.uid.as_raw()), Some(user.gid.as_raw())).map_err(
                |source| Error::Io {
                    what: "chown",
                    path: dir.path().to_owned(),
                    source,
                },
            )?;
        }
        let mut initdb = Command::new(bin.join("initdb"));
        initdb
            .arg("-D")
            .arg(&data)
            .args([
                "-U",
                SUPERUSER,
                "--auth=trust",
                "--no-sync",
                "--no-instructions",
            ])
            .args(["--encoding=UTF8", "--no-locale"]);
        run_as(&mut initdb, owner.as_ref());
        run_to_completion("initdb", &mut initdb)?;
        write_settings(&data, &self.settings)?;

        let mut last_error = None;
        let requested = self.port.into_iter().map(Ok);
        let candidates = requested
            .chain(std::iter::repeat_with(rpc::free_port))
            .take(PORT_ATTEMPTS);
        for port in candidates {
            let port = port?;
            let mut server = Command::new(bin.join("postgres"));
            server.arg("-D").arg(&data).args(["-p", &port.to_string()]);
            run_as(&mut server, owner.as_ref());
            // SIGQUIT is PostgreSQL's immediate shutdown: it also ends the backends.
            let process = Process::spawn("postgres", server, Signal::SIGQUIT)?;
            match process.wait_for_line("readiness", STARTUP_TIMEOUT, |line| {
                line.contains("database system is ready to accept connections")
            }) {
                Ok(_) => {
                    return Ok(PgCluster {
                        process: Mutex::new(process),
                        owner,
                        data,
                        port,
                        bin,
                        dir: Mutex::new(Some(dir)),
                        next_database: AtomicU64::new(0),
                    });
                }
                Err(e) if process.log_contains("Address already in use") => last_error = Some(e),
                Err(e) => return Err(e),
            }
        }
        Err(last_error.unwrap_or(Error::Timeout {
            what: "a free port for PostgreSQL".into(),
            after: STARTUP_TIMEOUT,
            last: None,
        }))
    }
}

/// A running PostgreSQL cluster in a temp directory. Dropping it (or process exit, for the shared
/// one) stops the server and deletes the directory.
#[derive(Debug)]
pub struct PgCluster {
    process: Mutex<Process>,
    owner: Option<nix::unistd::User>,
    data: PathBuf,
    port: u16,
    bin: PathBuf,
    dir: Mutex<Option<TempDir>>,
    next_database: AtomicU64,
}

impl PgCluster {
    /// Options for a private cluster (most tests want the shared one, through [`database`]).
    pub fn builder() -> PgClusterBuilder {
        PgClusterBuilder::default()
    }

    /// The TCP port on 127.0.0.1.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The postmaster's process id.
    pub fn pid(&self) -> u32 {
        self.server().pid()
    }

    fn server(&self) -> std::sync::MutexGuard<'_, Process> {
        self.process
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Crashes the server (immediate shutdown: backends end, connections break) and starts it
    /// again on the same data and port, as after a database host restart.
    pub fn restart(&self) -> Result<()> {
        let mut server = self.server();
        server.stop();
        let mut command = Command::new(self.bin.join("postgres"));
        command
            .arg("-D")
            .arg(&self.data)
            .args(["-p", &self.port.to_string()]);
        run_as(&mut command, self.owner.as_ref());
        let process = Process::spawn("postgres", command, Signal::SIGQUIT)?;
        process.wait_for_line("readiness after restart", STARTUP_TIMEOUT, |line| {
            line.contains("database system is ready to accept connections")
        })?;
        *server = process;
        Ok(())
    }

    /// A connection URL for `database` as the superuser.
    pub fn url(&self, database: &str) -> String {
        format!("postgres://{SUPERUSER}@127.0.0.1:{}/{database}", self.port)
    }

    /// The last lines of the server log.
    pub fn log(&self) -> String {
        self.server().log_tail(200)
    }

    /// Creates a new, empty database that is dropped when the returned handle is.
    pub fn try_create_database(self: &Arc<Self>) -> Result<TestDatabase> {
        self.ensure_alive()?;
        let n = self.next_database.fetch_add(1, Ordering::Relaxed);
        let name = format!("covenant_test_{}_{n}", std::process::id());
        self.psql(&format!("CREATE DATABASE {name}"))?;
        Ok(TestDatabase {
            url: self.url(&name),
            name,
            cluster: Arc::clone(self),
        })
    }

    /// Whether a database of that name exists.
    pub fn database_exists(&self, name: &str) -> Result<bool> {
        let answer = self.psql(&format!(
            "SELECT count(*) FROM pg_database WHERE datname = '{}'",
            name.replace('\'', "''")
        ))?;
        Ok(answer.trim() == "1")
    }

    /// Runs one SQL statement as the superuser in the `postgres` database and returns psql's
    /// unaligned, tuples-only output.
    pub fn psql(&self, sql: &str) -> Result<String> {
        let mut psql = Command::new(self.bin.join("psql"));
        psql.args(["-X", "-q", "-A", "-t", "-v", "ON_ERROR_STOP=1"])
            .args([
                "-h",
                "127.0.0.1",
                "-p",
                &self.port.to_string(),
                "-U",
                SUPERUSER,
            ])
            .args(["-d", "postgres", "-c", sql])
            .env("PGCONNECT_TIMEOUT", "10");
        match run_to_completion("psql", &mut psql) {
            Ok(output) => Ok(output),
            // A refused connection to a dead server is reported with the server's own log. Its
            // exit may not be observed yet (the log readers see EOF a moment later): give that a
            // short while before reporting psql's own error.
            Err(e) => {
                let _ = crate::wait_for("a failed psql's server to be seen exiting")
                    .timeout(std::time::Duration::from_secs(2))
                    .until(|| self.ensure_alive().is_err());
                Err(self.ensure_alive().err().unwrap_or(e))
            }
        }
    }

    /// Forgets what `pg_stat_statements` counted so far (the cluster must have been started
    /// with [`STATEMENT_STATS_ENV`] set).
    pub fn statement_stats_reset(&self) -> Result<()> {
        self.psql("CREATE EXTENSION IF NOT EXISTS pg_stat_statements")?;
        self.psql("SELECT pg_stat_statements_reset()")?;
        Ok(())
    }

    /// The `top` statements by planning + execution time since the last reset, as a table:
    /// calls, planning and execution milliseconds in all, and the statement's first 160 bytes.
    pub fn statement_stats(&self, top: usize) -> Result<String> {
        self.psql(&format!(
            "SELECT calls, round(total_plan_time::numeric, 1) AS plan_ms, \
               round(total_exec_time::numeric, 1) AS exec_ms, \
               regexp_replace(left(query, 160), '\\s+', ' ', 'g') AS query \
             FROM pg_stat_statements ORDER BY total_plan_time + total_exec_time DESC LIMIT {top}"
        ))
    }

    /// Stops the server and deletes its directory. Idempotent.
    pub fn stop(&self) {
        self.server().stop();
        let dir = self
            .dir
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .take();
        if let Some(dir) = dir {
            let _ = dir.close();
        }
    }
}

impl Watched for PgCluster {
    fn ensure_alive(&self) -> Result<()> {
        self.server().ensure_alive()
    }
}

impl Drop for PgCluster {
    fn drop(&mut self) {
        self.stop();
    }
}

/// A database of its own for one test; dropped (connections terminated) when this is dropped,
/// also when the test panics.
#[derive(Debug)]
pub struct TestDatabase {
    cluster: Arc<PgCluster>,
    name: String,
    url: String,
}

impl TestDatabase {
    /// The connection URL (`postgres://postgres@127.0.0.1:<port>/<name>`).
    pub fn url(&self) -> &str {
        &self.url
    }

    /// The database name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The cluster the database lives in.
    pub fn cluster(&self) -> &Arc<PgCluster> {
        &self.cluster
    }
}

impl Drop for TestDatabase {
    fn drop(&mut self) {
        if self.cluster.ensure_alive().is_err() {
            return;
        }
        if let Err(e) = self
            .cluster
            .psql(&format!("DROP DATABASE {} WITH (FORCE)", self.name))
        {
            eprintln!(
                "covenant-testkit: could not drop database {}: {e}",
                self.name
            );
        }
    }
}

/// A fresh database in this test process's shared cluster; panics if it cannot be had.
#[allow(clippy::expect_used)]
pub fn database() -> TestDatabase {
    try_database().expect("a fresh test database")
}

/// A fresh database in this test process's shared cluster, starting the cluster on first use.
pub fn try_database() -> Result<TestDatabase> {
    shared_cluster()?.try_create_database()
}

/// This test process's shared cluster, started on first use and stopped at process exit.
pub fn shared_cluster() -> Result<Arc<PgCluster>> {
    static SHARED: OnceLock<Result<Arc<PgCluster>, String>> = OnceLock::new();
    let shared = SHARED.get_or_init(|| {
        let cluster = PgCluster::builder()
            .try_start()
            .map_err(|e| e.to_string())?;
        let cluster = Arc::new(cluster);
        let _ = EXIT_HOOK_CLUSTER.set(Arc::clone(&cluster));
        register_exit_hook();
        Ok(cluster)
    });
    shared.clone().map_err(Error::SharedClusterUnavailable)
}

static EXIT_HOOK_CLUSTER: OnceLock<Arc<PgCluster>> = OnceLock::new();

extern "C" fn stop_shared_cluster() {
    if let Some(cluster) = EXIT_HOOK_CLUSTER.get() {
        cluster.stop();
    }
}

fn register_exit_hook() {
    // SAFETY: atexit(3) only stores the function pointer; the function is a plain `extern "C"` fn
    // that does not unwind (stop() swallows every error).
    #[allow(unsafe_code)]
    unsafe {
        libc::atexit(stop_shared_cluster);
    }
}

/// The user the server runs as: `postgres` when we are root (PostgreSQL refuses root), else us.
fn server_user() -> Result<Option<User>> {
    if !nix::unistd::geteuid().is_root() {
        return Ok(None);
    }
    match User::from_name(SUPERUSER) {
        Ok(Some(user)) => Ok(Some(user)),
        _ => Err(Error::ToolMissing {
            tool: "the postgres system user",
            path: "/etc/passwd".into(),
            hint: "PostgreSQL refuses to run as root; `apt-get install -y postgresql` creates the \
                   postgres user",
        }),
    }
}

fn run_as(command: &mut Command, user: Option<&User>) {
    if let Some(user) = user {
        command.uid(user.uid.as_raw()).gid(user.gid.as_raw());
    }
}

fn run_to_completion(what: &str, command: &mut Command) -> Result<String> {
    let output = command.output().map_err(|source| Error::Spawn {
        program: command.get_program().into(),
        source,
    })?;
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    if output.status.success() {
        Ok(stdout)
    } else {
        Err(Error::Command {
            what: what.to_owned(),
            status: output.status.to_string(),
            output: format!("{stdout}{}", String::from_utf8_lossy(&output.stderr)),
        })
    }
}

/// Set (non-empty) to start every cluster with `pg_stat_statements` loaded and planning tracked;
/// see [`PgCluster::statement_stats_reset`] and [`PgCluster::statement_stats`].
pub const STATEMENT_STATS_ENV: &str = "COVENANT_TEST_PG_STATEMENT_STATS";

fn write_settings(data: &Path, extra: &[(String, String)]) -> Result<()> {
    let mut conf = String::from(
        "\n# covenant-testkit: a throwaway cluster, loopback TCP only, no durability\n\
         listen_addresses = '127.0.0.1'\nunix_socket_directories = ''\nfsync = off\n\
         synchronous_commit = off\nfull_page_writes = off\nmax_connections = 300\n",
    );
    // A benchmark that wants PostgreSQL's cost per statement (planning and execution) sets
    // this before its first cluster starts; it is off otherwise, so no test pays for it.
    if std::env::var_os(STATEMENT_STATS_ENV).is_some_and(|v| !v.is_empty()) {
        conf.push_str(
            "shared_preload_libraries = 'pg_stat_statements'\n\
             pg_stat_statements.track_planning = on\n",
        );
    }
    for (name, value) in extra {
        conf.push_str(&format!("{name} = '{}'\n", value.replace('\'', "''")));
    }
    let path = data.join("postgresql.conf");
    let mut current = std::fs::read_to_string(&path).map_err(|source| Error::Io {
        what: "read",
        path: path.clone(),
        source,
    })?;
    current.push_str(&conf);
    std::fs::write(&path, current).map_err(|source| Error::Io {
        what: "write",
        path,
        source,
    })
}

/// Removes cluster directories left by test processes that were killed (their pid is gone).
fn sweep_orphaned_directories() {
    let Ok(entries) = std::fs::read_dir(std::env::temp_dir()) else {
        return;
    };
    for entry in entries.flatten() {
        let name = entry.file_name();
        let Some(pid) = name
            .to_str()
            .and_then(|name| name.strip_prefix(TEMP_PREFIX))
            .and_then(|rest| rest.split('-').next())
            .and_then(|pid| pid.parse::<u32>().ok())
        else {
            continue;
        };
        if !Path::new(&format!("/proc/{pid}")).exists() {
            let _ = std::fs::remove_dir_all(entry.path());
        }
    }
}
