//! The pages in a real browser: dev mode's `revokd serve` (a real process on
//! 127.0.0.1), and `tests/browser/flow.mjs` driving headless Debian chromium
//! through login, consent, the token exchange, `/account` and Disconnect
//! (what it checks: the script's header). Needs node, chromium and
//! `npm ci` in tests/browser, which scripts/test installs; without them
//! this test fails, saying which is missing.

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::process::{ChildGuard, StdoutLines, TempDir, poll};

const BIN: &str = env!("CARGO_BIN_EXE_revokd");

/// How long the whole browser flow may take (it takes seconds).
const FLOW_BOUND: Duration = Duration::from_secs(180);

/// The word after `prefix` in `line` at `index` (split on whitespace).
fn word(line: &str, prefix: &str, index: usize) -> String {
    let rest = line
        .strip_prefix(prefix)
        .unwrap_or_else(|| panic!("{line}"));
    let words: Vec<&str> = rest.split_whitespace().collect();
    words
        .get(index)
        .unwrap_or_else(|| panic!("no word {index} in {line}"))
        .to_string()
}

/// Panics with how to get node, chromium and playwright-core when one is
/// missing (scripts/test installs all three).
fn require_tools(script_dir: &Path, chromium: &str) {
    let node = Command::new("node").arg("--version").output();
    assert!(
        node.is_ok_and(|out| out.status.success()),
        "node is not installed: the browser test needs it (scripts/test installs Debian's nodejs and npm)"
    );
    assert!(
        Path::new(chromium).exists(),
        "{chromium} is missing: the browser test needs chromium (scripts/test installs Debian's chromium; CHROMIUM names another)"
    );
    assert!(
        script_dir.join("node_modules/playwright-core").is_dir(),
        "playwright-core is not installed: run `npm ci` in {} (scripts/test does)",
        script_dir.display()
    );
}

#[test]
fn the_pages_work_in_a_real_browser() {
    let script_dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/browser");
    let chromium = std::env::var("CHROMIUM").unwrap_or_else(|_| "/usr/bin/chromium".into());
    require_tools(&script_dir, &chromium);

    // Logs (kept when the test fails) and, unless scripts/screenshots
    // names docs/screenshots, the screenshots.
    let logs = TempDir::new("browser");
    let mut server = ChildGuard::spawn(
        Command::new(BIN)
            .args(["serve", "--listen", "127.0.0.1:0"])
            .env_remove("REVOKD_CONFIG")
            .stdout(Stdio::piped())
            .stderr(std::fs::File::create(logs.join("revokd.log")).unwrap()),
    );
    // The banner, in its order.
    let banner = StdoutLines::new(server.take_stdout());
    let next = |prefix: &'static str| {
        banner.next_matching(Duration::from_secs(60), move |l| l.starts_with(prefix))
    };
    let secret = word(&next("demo client_secret:"), "demo client_secret:", 0);
    let password = word(&next("demo user:"), "demo user:", 2);
    let authorize = word(&next("connect demo-app:"), "connect demo-app:", 0);
    let then = next("then:");
    let verifier = then
        .split_whitespace()
        .find_map(|w| w.strip_prefix("code_verifier="))
        .unwrap_or_else(|| panic!("no code_verifier in {then}"))
        .to_owned();
    let issuer = authorize
        .split_once("/oauth2/authorize")
        .unwrap_or_else(|| panic!("{authorize}"))
        .0
        .to_owned();

    let shots = std::env::var("BROWSER_SCREENSHOT_DIR")
        .map(Into::into)
        .unwrap_or_else(|_| logs.path().to_path_buf());
    let stdout_path = logs.join("flow.out");
    let stderr_path = logs.join("flow.err");
    let started = Instant::now();
    let mut node = ChildGuard::spawn(
        Command::new("node")
            .arg(script_dir.join("flow.mjs"))
            .env("REVOKD_ISSUER", &issuer)
            .env("REVOKD_PASSWORD", &password)
            .env("REVOKD_AUTHORIZE_URL", &authorize)
            .env("REVOKD_VERIFIER", &verifier)
            .env("REVOKD_DEMO_SECRET", &secret)
            .env("SCREENSHOT_DIR", &shots)
            .env("CHROMIUM", &chromium)
            .stdin(Stdio::null())
            .stdout(std::fs::File::create(&stdout_path).unwrap())
            .stderr(std::fs::File::create(&stderr_path).unwrap()),
    );
    let status = poll(FLOW_BOUND, || node.try_wait());
    let out = std::fs::read_to_string(&stdout_path).unwrap_or_default();
    let err = std::fs::read_to_string(&stderr_path).unwrap_or_default();
    let status = status.unwrap_or_else(|| {
        panic!("the browser flow did not end within {FLOW_BOUND:?}\n{out}\n{err}")
    });
    eprintln!("browser flow took {:?}", started.elapsed());
    assert!(
        status.success(),
        "the browser flow failed ({status}):\n{out}\n{err}"
    );
    assert!(out.contains("browser flow: all "), "{out}\n{err}");
    assert!(!out.contains("FAIL"), "{out}");
    for name in ["login.png", "consent.png", "account.png"] {
        let png = std::fs::read(shots.join(name)).unwrap_or_else(|e| panic!("{name}: {e}"));
        assert!(png.starts_with(b"\x89PNG\r\n\x1a\n"), "{name} is not a PNG");
    }
    drop(node);
    server.kill();
}
