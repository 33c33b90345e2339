//! The process kit of tests, benches and the soak: child processes killed by
//! their pid, signals by pid, free loopback ports, temp directories, polling.
//!
//! Included by `redis_server.rs` as its child module `process` (benches
//! include that file alone); a crate that includes `redis_server.rs` names
//! it at its root with `use redis_server::process;`.

use std::collections::HashSet;
use std::io::{BufRead, BufReader};
use std::net::{Ipv4Addr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStderr, ChildStdout, Command, ExitStatus};
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc;
use std::time::{Duration, Instant};

/// A child process, SIGKILLed by its pid and reaped when dropped.
pub struct ChildGuard(Child);

impl ChildGuard {
    /// Guards a child spawned by the caller.
    pub fn new(child: Child) -> ChildGuard {
        ChildGuard(child)
    }

    /// Spawns `command` as configured (stdio included); panics naming it if
    /// it cannot start.
    pub fn spawn(command: &mut Command) -> ChildGuard {
        let child = command
            .spawn()
            .unwrap_or_else(|err| panic!("spawning {command:?}: {err}"));
        ChildGuard::new(child)
    }

    /// The child's pid.
    pub fn pid(&self) -> u32 {
        self.0.id()
    }

    /// Sends `kill -<name>` to the child's pid; panics if `kill` fails.
    pub fn signal(&self, name: &str) {
        signal(self.pid(), name);
    }

    /// The exit status if the child has exited, without blocking.
    pub fn try_wait(&mut self) -> Option<ExitStatus> {
        self.0.try_wait().expect("try_wait on a child")
    }

    /// Takes the child's piped stdout (panics unless it was piped and is
    /// still there).
    pub fn take_stdout(&mut self) -> ChildStdout {
        self.0
            .stdout
            .take()
            .expect("stdout piped and not taken yet")
    }

    /// Takes the child's piped stderr (panics unless it was piped and is
    /// still there).
    pub fn take_stderr(&mut self) -> ChildStderr {
        self.0
            .stderr
            .take()
            .expect("stderr piped and not taken yet")
    }

    /// SIGKILLs the child by its pid and reaps it (what dropping it does).
    pub fn kill(self) {
        drop(self);
    }
}

impl Drop for ChildGuard {
    fn drop(&mut self) {
        // `Child::kill` is SIGKILL to this pid; `wait` reaps it.
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// A child's stdout, line by line, read on a thread of its own.
pub struct StdoutLines(mpsc::Receiver<String>);

impl StdoutLines {
    /// Starts reading `stdout` until it closes.
    pub fn new(stdout: ChildStdout) -> StdoutLines {
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        StdoutLines(rx)
    }

    /// The next line for which `wanted` is true (others are skipped);
    /// panics after `timeout` or when stdout closes first.
    pub fn next_matching(&self, timeout: Duration, wanted: impl Fn(&str) -> bool) -> String {
        let deadline = Instant::now() + timeout;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.0.recv_timeout(left) {
                Ok(line) if wanted(&line) => return line,
                Ok(_) => {}
                Err(error) => panic!("no expected line within {timeout:?}: {error}"),
            }
        }
    }
}

/// Sends `kill -<name> <pid>`; whether `kill` succeeded.
pub fn try_signal(pid: u32, name: &str) -> bool {
    Command::new("kill")
        .args([&format!("-{name}"), &pid.to_string()])
        .status()
        .is_ok_and(|status| status.success())
}

/// Sends `kill -<name> <pid>` (`STOP`, `CONT`, `TERM`…); panics if it fails.
pub fn signal(pid: u32, name: &str) {
    assert!(try_signal(pid, name), "kill -{name} {pid}");
}

/// Ports handed out by [`free_port`] in this process: never handed out twice.
static HANDED_OUT: Mutex<Option<HashSet<u16>>> = Mutex::new(None);

/// A port that was free a moment ago on 127.0.0.1 (and not handed out
/// before by this process).
pub fn free_port() -> u16 {
    loop {
        let port = TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
            .and_then(|listener| listener.local_addr())
            .map(|addr| addr.port())
            .expect("an ephemeral loopback port");
        let mut guard = HANDED_OUT.lock().unwrap_or_else(|p| p.into_inner());
        if guard.get_or_insert_with(HashSet::new).insert(port) {
            return port;
        }
    }
}

/// A unique directory under [`std::env::temp_dir`], removed on drop unless
/// the thread is panicking (then its path is printed, for the logs).
pub struct TempDir {
    path: PathBuf,
}

impl TempDir {
    /// Creates `<tmp>/revokd-<label>-<pid>-<n>` (skipping names left over
    /// by an earlier process with the same pid).
    pub fn new(label: &str) -> TempDir {
        static COUNTER: AtomicU64 = AtomicU64::new(0);
        loop {
            let n = COUNTER.fetch_add(1, Ordering::Relaxed);
            let path =
                std::env::temp_dir().join(format!("revokd-{label}-{}-{n}", std::process::id()));
            match std::fs::create_dir(&path) {
                Ok(()) => return TempDir { path },
                Err(err) if err.kind() == std::io::ErrorKind::AlreadyExists => {}
                Err(err) => panic!("create {}: {err}", path.display()),
            }
        }
    }

    /// The directory.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// `name` inside the directory.
    pub fn join(&self, name: &str) -> PathBuf {
        self.path.join(name)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        if std::thread::panicking() {
            eprintln!("keeping {} for its logs", self.path.display());
        } else {
            let _ = std::fs::remove_dir_all(&self.path);
        }
    }
}

/// Polls `check` every 50 ms until it returns `Some` or `timeout` passes.
pub fn poll<T>(timeout: Duration, check: impl FnMut() -> Option<T>) -> Option<T> {
    poll_every(timeout, Duration::from_millis(50), check)
}

/// Polls `check` every `every` until it returns `Some` or `timeout` passes
/// (it runs at least once).
pub fn poll_every<T>(
    timeout: Duration,
    every: Duration,
    mut check: impl FnMut() -> Option<T>,
) -> Option<T> {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(value) = check() {
            return Some(value);
        }
        if Instant::now() >= deadline {
            return None;
        }
        std::thread::sleep(every);
    }
}
