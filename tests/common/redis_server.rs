//! A real `redis-server` for tests and benches: started on a free loopback
//! port, killed by its pid when dropped, restartable on the same port to
//! simulate crashes and empty restarts.
//!
//! Every server gets its own temp directory (removed on drop, kept when the
//! thread is panicking so its `redis.log` can be read). Also the shared
//! helpers of `sentinel.rs` and `cluster.rs` ([`spawn_redis`],
//! [`wait_ready`], [`connect`], [`info_field`]), which expect this file to be
//! included as a sibling module named `redis_server`, and the process kit
//! ([`process`]: child guard, free port, temp dir, polling) as its child
//! module, so that benches including this file alone have it too.

#![allow(
    dead_code,
    unreachable_pub,
    clippy::expect_used,
    clippy::unwrap_used,
    clippy::panic
)]

#[path = "process.rs"]
pub mod process;

use std::ffi::OsString;
use std::fs::{File, OpenOptions};
use std::net::{Ipv4Addr, SocketAddr, TcpStream};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use process::{ChildGuard, TempDir, free_port, poll_every};

/// A redis-server child process on 127.0.0.1.
pub struct RedisServer {
    port: u16,
    extra_args: Vec<String>,
    persistent: bool,
    child: Option<ChildGuard>,
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
        self.child.as_ref().map(ChildGuard::pid)
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

    /// SIGKILL by pid ([`ChildGuard::kill`]) and reap; the data dir stays.
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
        self.child
            .as_ref()
            .expect("server is running")
            .signal(signal);
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

/// Strings as command-line arguments.
pub fn strings(args: &[&str]) -> Vec<OsString> {
    args.iter().map(OsString::from).collect()
}

/// Spawns `redis-server <args>` bound to 127.0.0.1 (prepended unless `args`
/// starts with a config file) with stdout and stderr appended to `log`.
pub fn spawn_redis(args: &[OsString], log: &Path) -> ChildGuard {
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
    let child = command
        .stdin(Stdio::null())
        .stdout(out)
        .stderr(err)
        .spawn()
        .expect("redis-server must be installed (scripts/test installs it)");
    ChildGuard::new(child)
}

/// Opens `path` for appending (created if missing).
pub fn append(path: &Path) -> File {
    OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .unwrap_or_else(|err| panic!("open {}: {err}", path.display()))
}

/// Kills a child by pid (SIGKILL) and reaps it, if there is one.
pub fn stop_child(child: &mut Option<ChildGuard>) {
    if let Some(child) = child.take() {
        child.kill();
    }
}

/// The last `lines` lines of a log file, for panic messages.
pub fn log_tail(log: &Path, lines: usize) -> String {
    let text = std::fs::read_to_string(log).unwrap_or_default();
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}

/// Waits (up to 10 s) until the server on `port` answers PING; panics with
/// the log's tail if the child exits first or the deadline passes (the
/// caller's guard then kills it).
pub fn wait_ready(port: u16, child: &mut ChildGuard, log: &Path) {
    let ready = poll_every(Duration::from_secs(10), Duration::from_millis(20), || {
        if let Some(status) = child.try_wait() {
            panic!(
                "redis-server on port {port} exited ({status}); {}:\n{}",
                log.display(),
                log_tail(log, 20)
            );
        }
        answers_ping(port).then_some(())
    });
    assert!(
        ready.is_some(),
        "redis-server on port {port} did not become ready; {}:\n{}",
        log.display(),
        log_tail(log, 20)
    );
}

/// Whether 127.0.0.1:`port` answers a raw `PING` with `+PONG`.
fn answers_ping(port: u16) -> bool {
    use std::io::{Read, Write};
    let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, port));
    let Ok(mut stream) = TcpStream::connect_timeout(&addr, Duration::from_millis(100)) else {
        return false;
    };
    let _ = stream.set_read_timeout(Some(Duration::from_millis(200)));
    let mut reply = [0u8; 7];
    stream.write_all(b"PING\r\n").is_ok()
        && stream.read_exact(&mut reply).is_ok()
        && &reply == b"+PONG\r\n"
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
