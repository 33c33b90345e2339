//! A real `redis-server` for tests and benches: started on a free loopback
//! port, killed by its pid when dropped, restartable on the same port to
//! simulate crashes and empty restarts.
//!
//! Every server gets its own temp directory (removed on drop, kept when the
//! thread is panicking so its `redis.log` can be read). Also the shared
//! helpers of `sentinel.rs` and `cluster.rs` ([`TempDir`], [`spawn_redis`],
//! [`wait_ready`], [`connect`], [`info_field`]), which expect this file to be
//! included as a sibling module named `redis_server`.

#![allow(
    dead_code,
    unreachable_pub,
    clippy::expect_used,
    clippy::unwrap_used,
    clippy::panic
)]

use std::collections::HashSet;
use std::ffi::OsString;
use std::fs::{File, OpenOptions};
use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// A redis-server child process on 127.0.0.1.
pub struct RedisServer {
    port: u16,
    extra_args: Vec<String>,
    persistent: bool,
    child: Option<Child>,
    dir: TempDir,
}

impl RedisServer {
    /// Starts a redis-server with no persistence on a free loopback port.
    pub fn start() -> RedisServer {
        RedisServer::start_with(&[])
    }

    /// Starts one with extra command-line arguments (e.g. `--client-output-buffer-limit`).
    pub fn start_with(extra_args: &[&str]) -> RedisServer {
        RedisServer::launch(extra_args, false)
    }

    /// Starts one whose RDB file (`dump.rdb` in its own data dir) survives
    /// [`RedisServer::kill9`]: no automatic save points (`--save ""`), no AOF;
    /// write it with [`RedisServer::save`], load it with
    /// [`RedisServer::start_again`].
    pub fn start_persistent() -> RedisServer {
        RedisServer::launch(&[], true)
    }

    fn launch(extra_args: &[&str], persistent: bool) -> RedisServer {
        let port = free_port();
        let mut server = RedisServer {
            port,
            extra_args: extra_args.iter().map(ToString::to_string).collect(),
            persistent,
            child: None,
            dir: TempDir::new(&format!("redis-{port}")),
        };
        server.spawn();
        server
    }

    /// The `redis://` URL of this server.
    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    /// The TCP port.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The pid of the running server, if any.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// This server's own directory (data dir and `redis.log`).
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// Kills the server (SIGKILL) and reaps it. A non-persistent server
    /// keeps nothing; a persistent one keeps its last `SAVE`d RDB.
    pub fn kill(&mut self) {
        stop_child(&mut self.child);
    }

    /// SIGKILL by pid ([`Child::kill`]) and reap; the data dir stays.
    pub fn kill9(&mut self) {
        self.kill();
    }

    /// Starts the server again on the same port. Empty unless it was started
    /// with [`RedisServer::start_persistent`], in which case it loads the
    /// last saved RDB (same as [`RedisServer::start_again`]).
    pub fn restart(&mut self) {
        self.kill();
        self.spawn();
    }

    /// Starts the server again on the same port from the same dir, so a
    /// persistent server loads its `dump.rdb`. Kills it first if running.
    pub fn start_again(&mut self) {
        self.restart();
    }

    /// Runs `SAVE` (a synchronous RDB write) and panics if it fails.
    pub fn save(&self) {
        let mut con = connect(self.port).expect("connect for SAVE");
        let reply: String = redis::cmd("SAVE")
            .query(&mut con)
            .unwrap_or_else(|err| panic!("SAVE on port {}: {err}", self.port));
        assert_eq!(reply, "OK", "SAVE on port {}", self.port);
    }

    /// Sends a signal to the server process (`STOP` / `CONT` simulate a partition).
    pub fn signal(&self, signal: &str) {
        let pid = self.pid().expect("server is running");
        let status = Command::new("kill")
            .args([&format!("-{signal}"), &pid.to_string()])
            .status()
            .expect("kill runs");
        assert!(status.success(), "kill -{signal} {pid}");
    }

    fn spawn(&mut self) {
        let dir = self.dir.path().to_path_buf();
        if !self.persistent {
            // Nothing may survive a restart of a non-persistent server.
            let _ = std::fs::remove_file(dir.join("dump.rdb"));
        }
        let mut args: Vec<OsString> = strings(&["--port", &self.port.to_string()]);
        args.extend(strings(&["--save", "", "--appendonly", "no"]));
        args.extend(strings(&["--dbfilename", "dump.rdb", "--dir"]));
        args.push(dir.clone().into_os_string());
        args.extend(self.extra_args.iter().map(OsString::from));
        let mut child = spawn_redis(&args, &dir.join("redis.log"));
        wait_ready(self.port, &mut child, &dir.join("redis.log"));
        self.child = Some(child);
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        self.kill();
    }
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

/// Strings as command-line arguments.
pub fn strings(args: &[&str]) -> Vec<OsString> {
    args.iter().map(OsString::from).collect()
}

/// Spawns `redis-server <args>` bound to 127.0.0.1 (prepended unless `args`
/// starts with a config file) with stdout and stderr appended to `log`.
pub fn spawn_redis(args: &[OsString], log: &Path) -> Child {
    let mut command = Command::new("redis-server");
    let starts_with_conf = args
        .first()
        .is_some_and(|first| !first.to_string_lossy().starts_with("--"));
    if starts_with_conf {
        command.args(args);
    } else {
        command.args(["--bind", "127.0.0.1"]).args(args);
    }
    let out = append(log);
    let err = out.try_clone().expect("clone log file handle");
    command
        .stdin(Stdio::null())
        .stdout(out)
        .stderr(err)
        .spawn()
        .expect("redis-server must be installed (scripts/test installs it)")
}

/// Opens `path` for appending (created if missing).
pub fn append(path: &Path) -> File {
    OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .unwrap_or_else(|err| panic!("open {}: {err}", path.display()))
}

/// Kills a child by pid (SIGKILL) and reaps it.
pub fn stop_child(child: &mut Option<Child>) {
    if let Some(mut child) = child.take() {
        let _ = child.kill();
        let _ = child.wait();
    }
}

/// The last `lines` lines of a log file, for panic messages.
pub fn log_tail(log: &Path, lines: usize) -> String {
    let text = std::fs::read_to_string(log).unwrap_or_default();
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}

/// Waits (up to 10 s) until the server on `port` answers PING; panics with
/// the log's tail if the child exits first or the deadline passes.
pub fn wait_ready(port: u16, child: &mut Child, log: &Path) {
    let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, port));
    let deadline = Instant::now() + Duration::from_secs(10);
    while Instant::now() < deadline {
        if let Ok(Some(status)) = child.try_wait() {
            panic!(
                "redis-server on port {port} exited ({status}); {}:\n{}",
                log.display(),
                log_tail(log, 20)
            );
        }
        if let Ok(mut stream) = TcpStream::connect_timeout(&addr, Duration::from_millis(100)) {
            use std::io::{Read, Write};
            let _ = stream.set_read_timeout(Some(Duration::from_millis(200)));
            let mut reply = [0u8; 7];
            if stream.write_all(b"PING\r\n").is_ok()
                && stream.read_exact(&mut reply).is_ok()
                && &reply == b"+PONG\r\n"
            {
                return;
            }
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let _ = child.kill();
    let _ = child.wait();
    panic!(
        "redis-server on port {port} did not become ready; {}:\n{}",
        log.display(),
        log_tail(log, 20)
    );
}

/// A sync connection to 127.0.0.1:`port`, with 1 s connect/read/write timeouts.
pub fn connect(port: u16) -> redis::RedisResult<redis::Connection> {
    let client = redis::Client::open(format!("redis://127.0.0.1:{port}"))?;
    let con = client.get_connection_with_timeout(Duration::from_secs(1))?;
    con.set_read_timeout(Some(Duration::from_secs(1)))?;
    con.set_write_timeout(Some(Duration::from_secs(1)))?;
    Ok(con)
}

/// `INFO <section>` of the server on `port`, if it answers.
pub fn info(port: u16, section: &str) -> Option<String> {
    let mut con = connect(port).ok()?;
    redis::cmd("INFO").arg(section).query(&mut con).ok()
}

/// The value of `field` (`field:value` lines) in an `INFO` text.
pub fn info_field(info: &str, field: &str) -> Option<String> {
    info.lines().find_map(|line| {
        line.strip_prefix(field)
            .and_then(|rest| rest.strip_prefix(':'))
            .map(|value| value.trim().to_string())
    })
}

/// The first element of `ROLE` ("master", "slave", "sentinel"), if it answers.
pub fn role(port: u16) -> Option<String> {
    let mut con = connect(port).ok()?;
    let reply: redis::Value = redis::cmd("ROLE").query(&mut con).ok()?;
    match reply {
        redis::Value::Array(items) => items
            .into_iter()
            .next()
            .and_then(|first| redis::from_redis_value::<String>(first).ok()),
        _ => None,
    }
}

/// Polls `check` every 50 ms until it returns `Some` or `timeout` passes.
pub fn poll<T>(timeout: Duration, mut check: impl FnMut() -> Option<T>) -> Option<T> {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(value) = check() {
            return Some(value);
        }
        if Instant::now() >= deadline {
            return None;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}
