//! Loading: the file, then the `REVOKD_*` overrides, then validation.

use std::path::Path;

use figment::Figment;
use figment::providers::{Format, Serialized, Toml};

use super::Config;

/// Why the configuration could not be read.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    /// The file or an override is malformed, or names an unknown key.
    #[error("configuration: {0}")]
    Parse(String),
    /// The configuration parses but is not usable; every problem is listed.
    #[error("configuration: {}", .0.join("; "))]
    Invalid(Vec<String>),
}

impl Config {
    /// Reads `file` (if any), then applies every `REVOKD_*` variable of `env`
    /// (`__` separates nesting levels), then validates the result.
    ///
    /// Pass `std::env::vars()` in production and a list in tests.
    pub fn load(
        file: Option<&Path>,
        env: impl IntoIterator<Item = (String, String)>,
    ) -> Result<Config, ConfigError> {
        let mut figment = Figment::new();
        if let Some(path) = file {
            let text = std::fs::read_to_string(path)
                .map_err(|e| ConfigError::Parse(format!("{}: {e}", path.display())))?;
            figment = figment.merge(Toml::string(&text));
        }
        for (name, value) in env {
            let Some(rest) = name.strip_prefix("REVOKD_") else {
                continue;
            };
            if rest.is_empty() {
                continue;
            }
            let key = rest.to_ascii_lowercase().replace("__", ".");
            let value: figment::value::Value = value
                .parse()
                .map_err(|_| ConfigError::Parse(format!("{name}: unreadable value")))?;
            figment = figment.merge(Serialized::default(&key, value));
        }
        let config: Config = figment
            .extract()
            .map_err(|e| ConfigError::Parse(e.to_string()))?;
        config.validate()?;
        Ok(config)
    }

    /// Parses a TOML document with no environment overrides (tests, tools).
    pub fn from_toml(text: &str) -> Result<Config, ConfigError> {
        let config: Config = Figment::new()
            .merge(Toml::string(text))
            .extract()
            .map_err(|e| ConfigError::Parse(e.to_string()))?;
        config.validate()?;
        Ok(config)
    }
}
