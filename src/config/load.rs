//! Loading: the file, then the `REVOKD_*` overrides, then validation, with
//! every problem found on the way reported at once.
//!
//! - A TOML syntax error names the file, line and column. Nothing else of
//!   that file can be read, but the overrides are still checked.
//! - A key that is unknown, or whose value does not fit, is named with where
//!   it came from (the file and line, or the variable); it is then dropped
//!   (its default stands) and the rest is read again, so the next such key
//!   is found too.
//! - What parses is validated ([`Config::validate`]), with the defaults
//!   standing in for the keys dropped.

use std::ops::Range;
use std::path::{Path, PathBuf};

use figment::providers::{Format, Serialized, Toml};
use figment::value::{Dict, Map, Value};
use figment::{Figment, Metadata, Profile, Provider};
use toml_edit::{ImDocument, Item, TableLike};

use serde::de::DeserializeOwned;

use super::Config;

/// A configuration file's type: what serde reads, plus what it cannot check.
pub(super) trait Loadable: DeserializeOwned + Default {
    /// The prefix of the environment variables that override its keys.
    const ENV_PREFIX: &'static str;

    /// Every problem of a parsed configuration, in the order of the file.
    fn problems(&self) -> Vec<String>;
}

/// Reads `file` (if any), then applies every variable of `env` under
/// `T::ENV_PREFIX` (`__` separates nesting levels), then `adjust` (command
/// line flags), then validates the result; every problem found, from the
/// file's syntax to the validation, is reported at once.
pub(super) fn load<T: Loadable>(
    file: Option<&Path>,
    env: impl IntoIterator<Item = (String, String)>,
    adjust: impl FnOnce(&mut T),
) -> Result<T, ConfigError> {
    let mut layers = Layers::default();
    if let Some(path) = file {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_owned(),
            source,
        })?;
        layers.file(Some(path.display().to_string()), text);
    }
    for (name, value) in env {
        layers.env(T::ENV_PREFIX, name, &value);
    }
    layers.finish(adjust)
}

/// Keys that do not fit reported before giving up on finding more (each
/// costs one more pass over the document).
const MAX_PARSE_PROBLEMS: usize = 64;

/// The figment metadata name of the file's values; an override's is its
/// variable's name.
const FILE_SOURCE: &str = "the configuration file";

/// Why the configuration could not be read.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    /// The file could not be read.
    #[error("configuration: cannot read {}", path.display())]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// Every problem found, in one list: TOML syntax, unknown keys and
    /// values that do not parse (each with the file and line, or the
    /// variable, it came from), then values that parse but are not usable.
    #[error("configuration: {}", .0.join("; "))]
    Invalid(Vec<String>),
}

impl Config {
    /// Reads `file` (if any), then applies every `REVOKD_*` variable of `env`
    /// (`__` separates nesting levels), then validates the result; every
    /// problem found is reported at once.
    ///
    /// Pass `std::env::vars()` in production and a list in tests.
    pub fn load(
        file: Option<&Path>,
        env: impl IntoIterator<Item = (String, String)>,
    ) -> Result<Config, ConfigError> {
        load(file, env, |_| {})
    }

    /// Parses a TOML document with no environment overrides (tests, tools).
    pub fn from_toml(text: &str) -> Result<Config, ConfigError> {
        let mut layers = Layers::default();
        layers.file(None, text.to_owned());
        layers.finish(|_| {})
    }
}

/// The layers of one configuration, and the problems found reading them.
#[derive(Default)]
struct Layers {
    figment: Figment,
    /// The file, for the lines of its keys.
    file: Option<File>,
    problems: Vec<String>,
}

/// The file's name in problems (none for a bare TOML string) and its
/// document, which knows where each key is.
struct File {
    name: Option<String>,
    document: ImDocument<String>,
}

impl File {
    /// `revokd.toml line 3: ` (or `line 3: `) for a span of the document.
    fn place(name: Option<&str>, text: &str, span: Option<Range<usize>>) -> String {
        let name = name.map(|n| format!("{n} ")).unwrap_or_default();
        match span {
            Some(span) => {
                let before = text.get(..span.start).unwrap_or(text);
                let line = before.matches('\n').count() + 1;
                let line_start = before.rfind('\n').map_or(0, |i| i + 1);
                let column = before[line_start..].chars().count() + 1;
                format!("{name}line {line}, column {column}: ")
            }
            None if name.is_empty() => String::new(),
            None => format!("{}: ", name.trim_end()),
        }
    }
}

/// A provider under a name of ours, so a figment error says which layer
/// the value came from.
struct Named<P> {
    name: String,
    provider: P,
}

impl<P: Provider> Provider for Named<P> {
    fn metadata(&self) -> Metadata {
        Metadata::named(self.name.clone())
    }

    fn data(&self) -> Result<Map<Profile, Dict>, figment::Error> {
        self.provider.data()
    }

    fn profile(&self) -> Option<Profile> {
        self.provider.profile()
    }
}

impl Layers {
    /// Adds the file, once its TOML syntax is known to be sound.
    fn file(&mut self, name: Option<String>, text: String) {
        match ImDocument::parse(text.clone()) {
            Ok(document) => {
                self.figment = std::mem::take(&mut self.figment).merge(Named {
                    name: FILE_SOURCE.to_owned(),
                    provider: Toml::string(&text),
                });
                self.file = Some(File { name, document });
            }
            Err(error) => {
                let place = File::place(name.as_deref(), &text, error.span());
                let message = one_line(error.message());
                self.problems.push(format!("{place}TOML syntax: {message}"));
            }
        }
    }

    /// Adds one variable when it is an override (its name starts with
    /// `prefix`).
    fn env(&mut self, prefix: &str, name: String, value: &str) {
        let Some(rest) = name.strip_prefix(prefix) else {
            return;
        };
        if rest.is_empty() {
            return;
        }
        let key = rest.to_ascii_lowercase().replace("__", ".");
        let Ok(value) = value.parse::<Value>();
        self.figment = std::mem::take(&mut self.figment).merge(Named {
            name,
            provider: Serialized::default(&key, value),
        });
    }

    /// The configuration, or every problem found.
    fn finish<T: Loadable>(mut self, adjust: impl FnOnce(&mut T)) -> Result<T, ConfigError> {
        let mut config: T = self.extract();
        adjust(&mut config);
        self.problems.extend(config.problems());
        if self.problems.is_empty() {
            Ok(config)
        } else {
            Err(ConfigError::Invalid(self.problems))
        }
    }

    /// Deserializes the layers; each key that does not fit is reported and
    /// dropped, and the rest read again, until it fits.
    fn extract<T: Loadable>(&mut self) -> T {
        let error = match self.figment.extract::<T>() {
            Ok(config) => return config,
            Err(error) => error,
        };
        let Ok(root) = self.figment.find_value("") else {
            // A layer itself failed: nothing to take apart.
            let (_, problem) = self.problem(&error, &error.path, None);
            self.problems.push(problem);
            return T::default();
        };
        let mut pruned = Pruned::new(root);
        let mut error = error;
        let mut found = Vec::new();
        let config = loop {
            if found.len() == MAX_PARSE_PROBLEMS {
                found.push((
                    Order::Last,
                    format!("more than {MAX_PARSE_PROBLEMS} keys do not parse"),
                ));
                break T::default();
            }
            let original = pruned.original(&error.path);
            if !pruned.follows_removal(&error, &original) {
                found.push(self.problem(&error, &original, pruned.at(&error.path)));
            }
            if !pruned.remove(&error.path, original) {
                break T::default();
            }
            match pruned.root.deserialize::<T>() {
                Ok(config) => break config,
                Err(next) => error = next,
            }
        };
        // In the order of the file, then the overrides.
        found.sort_by_key(|(order, _)| *order);
        self.problems
            .extend(found.into_iter().map(|(_, problem)| problem));
        config
    }

    /// One figment error as a problem: where (the layer `value`, the one at
    /// the error's `path` in the original document, came from), which key,
    /// what.
    fn problem(
        &self,
        error: &figment::Error,
        path: &[String],
        value: Option<&Value>,
    ) -> (Order, String) {
        let key = key_path(path);
        let metadata = value.and_then(|v| self.figment.get_metadata(v.tag()));
        let source = metadata.or(error.metadata.as_ref()).map(|m| &*m.name);
        let (order, place) = match (source, &self.file) {
            (Some(FILE_SOURCE), Some(file)) => {
                let span = span_of(file.document.as_table(), path);
                let order = Order::File(span.as_ref().map_or(0, |s| s.start));
                (
                    order,
                    File::place(file.name.as_deref(), file.document.raw(), span),
                )
            }
            (Some(variable), _) => (Order::Override, format!("{variable}: ")),
            (None, _) => (Order::Last, String::new()),
        };
        let what = match &error.kind {
            figment::error::Kind::UnknownField(_, expected) => {
                format!(
                    "unknown key `{key}`, expected {}",
                    figment::error::OneOf(expected)
                )
            }
            _ if key.is_empty() => one_line(&error.kind.to_string()),
            kind => format!("{key}: {}", one_line(&kind.to_string())),
        };
        (order, format!("{place}{what}"))
    }
}

/// Where a problem goes in the list: the file's in the order of the file,
/// then the overrides', then the rest.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Order {
    /// At this byte of the file.
    File(usize),
    /// From a `REVOKD_*` variable.
    Override,
    /// Anywhere else.
    Last,
}

/// The merged document with the values that did not fit taken out, and
/// what was taken, so that paths into it can be told in the original's
/// terms (an array entry removed shifts the ones after it).
struct Pruned {
    root: Value,
    /// Original paths of the values removed.
    removed: Vec<Vec<String>>,
}

impl Pruned {
    fn new(root: Value) -> Pruned {
        Pruned {
            root,
            removed: Vec::new(),
        }
    }

    /// The value at `path`.
    fn at(&self, path: &[String]) -> Option<&Value> {
        at(&self.root, path)
    }

    /// `path` (into the pruned document) as a path into the original.
    fn original(&self, path: &[String]) -> Vec<String> {
        let mut original: Vec<String> = Vec::with_capacity(path.len());
        let mut value = Some(&self.root);
        for segment in path {
            let index = match value {
                Some(Value::Array(_, items)) => segment.parse::<usize>().ok().map(|i| (i, items)),
                _ => None,
            };
            match index {
                Some((pruned, items)) => {
                    let mut index = pruned;
                    let mut gone: Vec<usize> = self
                        .removed
                        .iter()
                        .filter(|p| p.len() == original.len() + 1 && p.starts_with(&original))
                        .filter_map(|p| p.last()?.parse().ok())
                        .collect();
                    gone.sort_unstable();
                    for g in gone {
                        if g <= index {
                            index += 1;
                        }
                    }
                    original.push(index.to_string());
                    value = items.get(pruned);
                }
                None => {
                    original.push(segment.clone());
                    value = match value {
                        Some(Value::Dict(_, dict)) => dict.get(segment),
                        _ => None,
                    };
                }
            }
        }
        original
    }

    /// Whether `error` only follows from a value already removed: a field
    /// missing because its bad value was taken out.
    fn follows_removal(&self, error: &figment::Error, original: &[String]) -> bool {
        let figment::error::Kind::MissingField(field) = &error.kind else {
            return false;
        };
        self.removed.iter().any(|p| {
            p.len() == original.len() + 1
                && p.starts_with(original)
                && p.last().is_some_and(|l| l == field)
        })
    }

    /// Removes the value at `path`, known in the original as `original`.
    fn remove(&mut self, path: &[String], original: Vec<String>) -> bool {
        let removed = remove(&mut self.root, path);
        if removed {
            self.removed.push(original);
        }
        removed
    }
}

/// `clients[1].secret_hash` for `["clients", "1", "secret_hash"]`.
fn key_path(path: &[String]) -> String {
    let mut out = String::new();
    for segment in path {
        if segment.parse::<usize>().is_ok() {
            out.push_str(&format!("[{segment}]"));
        } else {
            if !out.is_empty() {
                out.push('.');
            }
            out.push_str(segment);
        }
    }
    out
}

/// The value at `path` (dictionary keys, array indices) in `root`.
fn at<'a>(root: &'a Value, path: &[String]) -> Option<&'a Value> {
    path.iter().try_fold(root, |value, segment| match value {
        Value::Dict(_, dict) => dict.get(segment),
        Value::Array(_, items) => items.get(segment.parse::<usize>().ok()?),
        _ => None,
    })
}

/// Removes the value at `path` from `root`; `false` when there is none.
fn remove(root: &mut Value, path: &[String]) -> bool {
    let Some((last, parents)) = path.split_last() else {
        return false;
    };
    let mut value = root;
    for segment in parents {
        let next = match value {
            Value::Dict(_, dict) => dict.get_mut(segment),
            Value::Array(_, items) => segment.parse().ok().and_then(|i: usize| items.get_mut(i)),
            _ => None,
        };
        let Some(next) = next else {
            return false;
        };
        value = next;
    }
    match value {
        Value::Dict(_, dict) => dict.remove(last).is_some(),
        Value::Array(_, items) => match last.parse::<usize>() {
            Ok(i) if i < items.len() => {
                items.remove(i);
                true
            }
            _ => false,
        },
        _ => false,
    }
}

/// Where the deepest part of `path` found in the document is: a key, or an
/// entry of an array of tables.
fn span_of(table: &dyn TableLike, path: &[String]) -> Option<Range<usize>> {
    let (first, rest) = path.split_first()?;
    let (key, item) = table.get_key_value(first)?;
    let entry = |rest: &[String]| -> Option<(usize, Vec<String>)> {
        let (index, rest) = rest.split_first()?;
        Some((index.parse().ok()?, rest.to_vec()))
    };
    let deeper = match item {
        _ if rest.is_empty() => None,
        Item::Table(table) => span_of(table, rest),
        Item::Value(toml_edit::Value::InlineTable(table)) => span_of(table, rest),
        Item::ArrayOfTables(tables) => entry(rest).and_then(|(index, rest)| {
            let table = tables.get(index)?;
            span_of(table, &rest).or_else(|| table.span())
        }),
        Item::Value(toml_edit::Value::Array(values)) => entry(rest).and_then(|(index, rest)| {
            let value = values.get(index)?;
            value
                .as_inline_table()
                .and_then(|table| span_of(table, &rest))
                .or_else(|| value.span())
        }),
        _ => None,
    };
    deeper.or_else(|| key.span())
}

/// A message on one line (toml_edit's span several).
fn one_line(message: &str) -> String {
    message
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .collect::<Vec<_>>()
        .join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn problems(error: ConfigError) -> Vec<String> {
        match error {
            ConfigError::Invalid(problems) => problems,
            other => panic!("not a list of problems: {other}"),
        }
    }

    #[test]
    fn parse_and_validation_problems_are_reported_together_with_their_lines() {
        let text = "issuer = \"\"\nlisten_addr = \"x\"\n[limits]\nburst = \"many\"\n\
                    max_concurrent_requests = 0\n[revocation]\nrefresh_token = \"all\"\n";
        let got = problems(Config::from_toml(text).unwrap_err());
        assert_eq!(got.len(), 5, "{got:#?}");
        assert!(
            got[0].starts_with("line 2, column 1: unknown key `listen_addr`"),
            "{got:#?}"
        );
        assert!(
            got[1].starts_with("line 4, column 1: limits.burst: invalid type"),
            "{got:#?}"
        );
        assert!(got[2].starts_with("line 7, column 1: revocation.refresh_token: unknown variant"));
        assert_eq!(got[3], "issuer is empty");
        assert_eq!(got[4], "limits.max_concurrent_requests must be at least 1");
    }

    #[test]
    fn a_syntax_error_names_the_file_and_line_beside_the_overrides_problems() {
        let dir = std::env::temp_dir().join(format!("revokd-load-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("revokd.toml");
        std::fs::write(&file, "issuer = \"x\"\n[limits\nburst = 1\n").unwrap();
        let env = [
            ("REVOKD_LIMITS__BURST".to_owned(), "lots".to_owned()),
            ("REVOKD_NOPE".to_owned(), "1".to_owned()),
        ];
        let got = problems(Config::load(Some(&file), env).unwrap_err());
        let name = file.display().to_string();
        assert_eq!(got.len(), 3, "{got:#?}");
        assert!(
            got[0].starts_with(&format!("{name} line 2, column 8: TOML syntax: ")),
            "{got:#?}"
        );
        assert!(got[1].starts_with("REVOKD_LIMITS__BURST: limits.burst: invalid type"));
        assert!(got[2].starts_with("REVOKD_NOPE: unknown key `nope`"));
        let text = ConfigError::Invalid(got).to_string();
        assert!(
            text.starts_with("configuration: ") && text.contains("; "),
            "{text}"
        );
    }

    #[test]
    fn entries_of_arrays_keep_their_index_and_line_when_an_earlier_one_is_dropped() {
        let text = "[[clients]]\nsecret_hash = \"sha256:00\"\n\n[[clients]]\nid = \"b\"\nsecret_hash = \"sha256:00\"\n\
                    scopes = 3\n[[signing_keys]]\nkid = 7\nprivate_key_file = \"k.pem\"\n";
        let got = problems(Config::from_toml(text).unwrap_err());
        assert_eq!(
            got,
            [
                "line 1, column 1: clients[0]: missing field `id`",
                "line 7, column 1: clients[1].scopes: invalid type: found signed int `3`, \
                 expected a sequence",
                "line 9, column 1: signing_keys[0].kid: invalid type: found signed int `7`, \
                 expected a string",
            ],
            "no second problem for the kid taken out"
        );
    }

    #[test]
    fn store_urls_that_do_not_parse_are_named_by_key_without_their_secret() {
        let text = "[store]\nsentinels = [\"redis://10.0.0.1:26379\", \"sentinel:26379\"]\n\
                    sentinel_master = \"revokd\"\n\
                    sentinel_master_url = \"redis//revokd:s3cret@master\"\n";
        let got = problems(Config::from_toml(text).unwrap_err());
        assert_eq!(got.len(), 2, "{got:#?}");
        assert!(
            got[0].starts_with("store.sentinels: not a redis URL"),
            "{got:#?}"
        );
        assert!(
            got[1].starts_with("store.sentinel_master_url: not a redis URL"),
            "{got:#?}"
        );
        assert!(!got.iter().any(|p| p.contains("s3cret")), "{got:#?}");

        let text = "[store]\nredis_url = \"redis://127.0.0.1:6379\"\n\
                    sentinel_master_url = \"redis://revokd:s3cret@master\"\n";
        let got = problems(Config::from_toml(text).unwrap_err());
        assert_eq!(
            got,
            ["store: a sentinel master URL needs sentinels \
              (redis_url, sentinels + sentinel_master [+ sentinel_master_url], cluster)"]
        );

        let text = "[store]\ncluster = [\"redis://10.0.0.1:7000\"]\nsubscribe_on_replica = true\n";
        let got = problems(Config::from_toml(text).unwrap_err());
        assert_eq!(got, ["store.subscribe_on_replica needs sentinels"]);

        let text = "[store]\nsentinels = [\"redis://10.0.0.1:26379\"]\nsentinel_master = \"revokd\"\n\
                    sentinel_master_url = \"rediss://revokd:s3cret@master/0\"\n";
        let config = Config::from_toml(text).unwrap();
        assert!(matches!(
            config.store.topology(),
            Some(crate::store::redis::Topology::Sentinel { master_url: Some(url), .. })
                if url == "rediss://revokd:s3cret@master/0"
        ));
    }

    #[test]
    fn an_unreadable_file_keeps_its_io_error() {
        use std::error::Error;
        let missing = std::env::temp_dir().join("revokd-no-such-dir/revokd.toml");
        let error = Config::load(Some(&missing), []).unwrap_err();
        assert!(matches!(error, ConfigError::Read { .. }), "{error}");
        let source = error
            .source()
            .and_then(|s| s.downcast_ref::<std::io::Error>());
        assert_eq!(
            source.map(std::io::Error::kind),
            Some(std::io::ErrorKind::NotFound)
        );
    }
}
