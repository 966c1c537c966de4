//! Child processes: started so that they die with the test process, their output captured into a
//! bounded log, stopped on drop. Anvil and PostgreSQL are built on this; tests use it directly to
//! run the project's own binaries and scripts.
//!
//! Linux delivers `PR_SET_PDEATHSIG` when the *thread* that forked the child exits, not the
//! process. Test harnesses run each test on its own short-lived thread, so every child is forked by
//! one kit-owned thread that lives as long as the process: the signal then means "the test process
//! is gone" (also after SIGKILL, when no destructor runs).

use std::{
    collections::VecDeque,
    io::{BufRead, BufReader, Read},
    os::unix::process::CommandExt,
    path::PathBuf,
    process::{Child, Command, Stdio},
    sync::{Arc, Condvar, Mutex, MutexGuard, OnceLock, mpsc},
    thread,
    time::{Duration, Instant},
};

use nix::{
    sys::signal::{self, Signal},
    unistd::Pid,
};

use crate::{
    Error, Result,
    wait::{Watched, wait_for},
};

/// Lines of output kept per process; older lines are dropped (and counted).
const MAX_LOG_LINES: usize = 5_000;
/// Lines of output quoted in an error.
const ERROR_LOG_LINES: usize = 80;
/// How long a process gets to exit after its stop signal before SIGTERM follows.
const STOP_GRACE: Duration = Duration::from_secs(10);
/// How long it gets after SIGTERM before its whole process group is killed.
const TERM_GRACE: Duration = Duration::from_secs(30);
/// How long the output of a stopped process may take to reach its end.
const OUTPUT_GRACE: Duration = Duration::from_secs(5);

/// A running child process owned by a test. Dropping it stops the process.
pub struct Process {
    name: String,
    pid: u32,
    child: Mutex<Option<Child>>,
    log: Arc<Log>,
    stop_signal: Signal,
}

impl Process {
    /// Starts `command` with stdout and stderr captured. `stop_signal` is sent on [`Process::stop`],
    /// on drop, and by the kernel when the test process dies. `name` labels logs and errors.
    pub fn spawn(name: &str, mut command: Command, stop_signal: Signal) -> Result<Self> {
        let program = PathBuf::from(command.get_program());
        command
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            // A process group of its own: stopping reaches everything it started.
            .process_group(0);
        let parent = nix::unistd::getpid();
        // SAFETY: the closure runs in the forked child before exec and only makes the
        // async-signal-safe system calls prctl(2) and getppid(2).
        #[allow(unsafe_code)]
        unsafe {
            command.pre_exec(move || {
                nix::sys::prctl::set_pdeathsig(stop_signal)?;
                // The parent may have died between fork and prctl; then nobody would signal us.
                if nix::unistd::getppid() != parent {
                    return Err(std::io::Error::other("parent exited during spawn"));
                }
                Ok(())
            });
        }
        let mut child =
            spawn_from_kit_thread(command).map_err(|source| Error::Spawn { program, source })?;
        let log = Arc::new(Log::default());
        for stream in [
            child.stdout.take().map(boxed),
            child.stderr.take().map(boxed),
        ]
        .into_iter()
        .flatten()
        {
            let log = Arc::clone(&log);
            log.open_stream();
            thread::Builder::new()
                .name(format!("{name}-output"))
                .spawn(move || log.collect(stream))
                .map_err(|source| Error::Spawn {
                    program: "log reader thread".into(),
                    source,
                })?;
        }
        Ok(Self {
            name: name.to_owned(),
            pid: child.id(),
            child: Mutex::new(Some(child)),
            log,
            stop_signal,
        })
    }

    /// The process id.
    pub fn pid(&self) -> u32 {
        self.pid
    }

    /// Waits until the process writes a line for which `matches` holds, and returns that line.
    /// Fails as soon as the process closes its output (it exited), or at the timeout; both errors
    /// carry the process's log.
    pub fn wait_for_line(
        &self,
        what: &str,
        timeout: Duration,
        matches: impl Fn(&str) -> bool,
    ) -> Result<String> {
        let deadline = Instant::now() + timeout;
        let mut state = self.log.lock();
        loop {
            if let Some(line) = state.lines.iter().find(|line| matches(line)) {
                return Ok(line.clone());
            }
            if state.open_streams == 0 {
                drop(state);
                return Err(self.exited_error());
            }
            let now = Instant::now();
            if now >= deadline {
                drop(state);
                return Err(Error::Timeout {
                    what: format!("{} to report {what}", self.name),
                    after: timeout,
                    last: Some(format!("its output:\n{}", self.log.tail(ERROR_LOG_LINES))),
                });
            }
            state = self
                .log
                .changed
                .wait_timeout(state, deadline - now)
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .0;
        }
    }

    /// The last lines the process wrote.
    pub fn log_tail(&self, lines: usize) -> String {
        self.log.tail(lines)
    }

    /// Whether any captured line contains `needle`.
    pub fn log_contains(&self, needle: &str) -> bool {
        self.log
            .lock()
            .lines
            .iter()
            .any(|line| line.contains(needle))
    }

    /// Stops the process and everything it started (its process group): the stop signal, then
    /// SIGTERM if it is still running after a grace period (a child may start with the stop
    /// signal ignored, as commands a non-interactive shell puts in the background do), then
    /// SIGKILL to whatever is left of the group. Reaps it and reads its output to the end, so
    /// [`Process::log_contains`] sees everything afterwards. Idempotent.
    pub fn stop(&self) {
        let Some(mut child) = lock(&self.child).take() else {
            return;
        };
        let group = Pid::from_raw(self.pid as i32);
        for (stop, grace) in [
            (self.stop_signal, STOP_GRACE),
            (Signal::SIGTERM, TERM_GRACE),
        ] {
            if !matches!(child.try_wait(), Ok(None)) {
                break;
            }
            let _ = signal::killpg(group, stop);
            let _ = wait_for(format!("{} to exit after {stop}", self.name))
                .timeout(grace)
                .until(|| !matches!(child.try_wait(), Ok(None)));
        }
        // The leader has exited or is past every grace: nothing of the group may outlive it.
        let _ = signal::killpg(group, Signal::SIGKILL);
        let _ = child.wait();
        self.log.wait_closed(OUTPUT_GRACE);
    }

    fn exited_error(&self) -> Error {
        let status = match lock(&self.child).as_mut().map(Child::try_wait) {
            None => "stopped by the test kit".to_owned(),
            Some(Ok(Some(status))) => status.to_string(),
            Some(Ok(None)) => "closed its output but is still running".to_owned(),
            Some(Err(e)) => format!("status unknown: {e}"),
        };
        Error::Exited {
            name: self.name.clone(),
            pid: self.pid,
            status,
            log: self.log.tail(ERROR_LOG_LINES),
        }
    }
}

impl Watched for Process {
    fn ensure_alive(&self) -> Result<()> {
        let running = match lock(&self.child).as_mut() {
            Some(child) => matches!(child.try_wait(), Ok(None)),
            None => false,
        };
        if running {
            Ok(())
        } else {
            Err(self.exited_error())
        }
    }
}

impl Drop for Process {
    fn drop(&mut self) {
        self.stop();
    }
}

impl std::fmt::Debug for Process {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Process")
            .field("name", &self.name)
            .field("pid", &self.pid)
            .finish()
    }
}

/// Captured output of one process (stdout and stderr interleaved by arrival).
#[derive(Default)]
struct Log {
    state: Mutex<LogState>,
    changed: Condvar,
}

#[derive(Default)]
struct LogState {
    lines: VecDeque<String>,
    dropped: usize,
    open_streams: usize,
}

impl Log {
    fn lock(&self) -> MutexGuard<'_, LogState> {
        lock(&self.state)
    }

    fn open_stream(&self) {
        self.lock().open_streams += 1;
    }

    /// Waits (at most `timeout`) until every stream reached its end.
    fn wait_closed(&self, timeout: Duration) {
        let deadline = Instant::now() + timeout;
        let mut state = self.lock();
        while state.open_streams > 0 {
            let now = Instant::now();
            if now >= deadline {
                return;
            }
            state = self
                .changed
                .wait_timeout(state, deadline - now)
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .0;
        }
    }

    fn collect(&self, stream: Box<dyn Read + Send>) {
        let mut reader = BufReader::new(stream);
        let mut buf = Vec::new();
        loop {
            buf.clear();
            match reader.read_until(b'\n', &mut buf) {
                Ok(0) | Err(_) => break,
                Ok(_) => {
                    let line = String::from_utf8_lossy(&buf).trim_end().to_owned();
                    let mut state = self.lock();
                    if state.lines.len() == MAX_LOG_LINES {
                        state.lines.pop_front();
                        state.dropped += 1;
                    }
                    state.lines.push_back(line);
                    drop(state);
                    self.changed.notify_all();
                }
            }
        }
        self.lock().open_streams -= 1;
        self.changed.notify_all();
    }

    fn tail(&self, count: usize) -> String {
        let state = self.lock();
        let skip = state.lines.len().saturating_sub(count);
        let omitted = state.dropped + skip;
        let mut out = String::new();
        if omitted > 0 {
            out.push_str(&format!("[{omitted} earlier lines omitted]\n"));
        }
        for line in state.lines.iter().skip(skip) {
            out.push_str(line);
            out.push('\n');
        }
        out
    }
}

fn boxed(stream: impl Read + Send + 'static) -> Box<dyn Read + Send> {
    Box::new(stream)
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    // A panicking test must not poison cleanup for the others.
    mutex
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

type SpawnRequest = (Command, mpsc::Sender<std::io::Result<Child>>);

/// Forks `command` from the kit's spawner thread, which lives as long as the process.
fn spawn_from_kit_thread(command: Command) -> std::io::Result<Child> {
    static SPAWNER: OnceLock<std::io::Result<mpsc::Sender<SpawnRequest>>> = OnceLock::new();
    let spawner = SPAWNER.get_or_init(|| {
        let (requests, incoming) = mpsc::channel::<SpawnRequest>();
        thread::Builder::new()
            .name("testkit-spawner".into())
            .spawn(move || {
                // The sender lives in a static, so this loop (and the thread) never ends.
                for (mut command, reply) in incoming {
                    let _ = reply.send(command.spawn());
                }
            })?;
        Ok(requests)
    });
    let spawner = spawner
        .as_ref()
        .map_err(|e| std::io::Error::new(e.kind(), e.to_string()))?;
    let (reply, answer) = mpsc::channel();
    spawner
        .send((command, reply))
        .map_err(|_| std::io::Error::other("the kit's spawner thread is gone"))?;
    answer
        .recv()
        .map_err(|_| std::io::Error::other("the kit's spawner thread is gone"))?
}
