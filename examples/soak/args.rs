//! The soak's command line (`scripts/soak` passes `--seconds`, `--revokd`
//! and, when built, `--resource-server`; extra flags follow).

use crate::chaos::Kind;

/// What the run was asked to do.
pub(crate) struct Args {
    /// `--seconds` of traffic (default 600).
    pub(crate) seconds: u64,
    /// `--revokd`: the issuer binary (default `target/release/revokd`).
    pub(crate) revokd: String,
    /// `--resource-server`: the example resource server's binary, if any.
    pub(crate) resource_server: Option<String>,
    /// `--access-ttl` in seconds (default 60).
    pub(crate) access_ttl: u64,
    /// `--refresh-ttl` in seconds (default 150).
    pub(crate) refresh_ttl: u64,
    /// `--topology single|sentinel|cluster` (default single).
    pub(crate) kind: Kind,
}

impl Args {
    /// Reads the process's arguments; an unknown topology is an error
    /// message.
    pub(crate) fn parse() -> Result<Args, String> {
        let seconds: u64 = arg("--seconds").and_then(|s| s.parse().ok()).unwrap_or(600);
        let revokd = arg("--revokd").unwrap_or_else(|| "target/release/revokd".into());
        let resource_server = arg("--resource-server");
        // Short lifetimes by default: rules expire within the run, so the live
        // rule count reaches a plateau and memory can be judged flat or not.
        let access_ttl: u64 = arg("--access-ttl")
            .and_then(|s| s.parse().ok())
            .unwrap_or(60);
        let refresh_ttl: u64 = arg("--refresh-ttl")
            .and_then(|s| s.parse().ok())
            .unwrap_or(150);
        let topology = arg("--topology").unwrap_or_else(|| "single".into());
        let Some(kind) = Kind::parse(&topology) else {
            return Err(format!(
                "soak: --topology single|sentinel|cluster, not {topology}"
            ));
        };
        Ok(Args {
            seconds,
            revokd,
            resource_server,
            access_ttl,
            refresh_ttl,
            kind,
        })
    }
}

/// The value after `name` on the command line.
fn arg(name: &str) -> Option<String> {
    let args: Vec<String> = std::env::args().collect();
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1).cloned())
}
