//! Where the gate listens: a TCP address, or a Unix-domain socket
//! (`unix:/run/revokd/gate.sock`) for a gateway on the same host, which
//! spares both sides the loopback TCP stack on every check.

use std::fmt;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// A TCP address (`127.0.0.1:8181`) or a Unix-domain socket path
/// (`unix:/run/revokd/gate.sock`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub enum ListenAddr {
    /// `HOST:PORT`.
    Tcp(SocketAddr),
    /// `unix:PATH`: a socket file, replaced if an earlier run left one.
    Unix(PathBuf),
}

impl FromStr for ListenAddr {
    type Err = String;

    fn from_str(text: &str) -> Result<ListenAddr, String> {
        match text.strip_prefix("unix:") {
            Some("") => Err("unix: needs a socket path (unix:/run/revokd/gate.sock)".to_owned()),
            Some(path) => Ok(ListenAddr::Unix(PathBuf::from(path))),
            None => text
                .parse()
                .map(ListenAddr::Tcp)
                .map_err(|_| format!("{text:?} is neither HOST:PORT nor unix:PATH")),
        }
    }
}

impl TryFrom<String> for ListenAddr {
    type Error = String;

    fn try_from(text: String) -> Result<ListenAddr, String> {
        text.parse()
    }
}

impl From<ListenAddr> for String {
    fn from(addr: ListenAddr) -> String {
        addr.to_string()
    }
}

impl From<SocketAddr> for ListenAddr {
    fn from(addr: SocketAddr) -> ListenAddr {
        ListenAddr::Tcp(addr)
    }
}

impl fmt::Display for ListenAddr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ListenAddr::Tcp(addr) => write!(f, "{addr}"),
            ListenAddr::Unix(path) => write!(f, "unix:{}", path.display()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn both_spellings_parse_and_print_back() {
        for text in ["127.0.0.1:8181", "[::1]:9", "unix:/run/revokd/gate.sock"] {
            let addr: ListenAddr = text.parse().unwrap();
            assert_eq!(addr.to_string(), text);
        }
        assert_eq!(
            "unix:/a".parse::<ListenAddr>().unwrap(),
            ListenAddr::Unix("/a".into())
        );
    }

    #[test]
    fn junk_and_an_empty_path_are_refused() {
        for text in ["unix:", "localhost", "8181", ""] {
            assert!(text.parse::<ListenAddr>().is_err(), "{text}");
        }
    }
}
