//! Reading a configuration file: TOML parsing, then validation, with every error located in the source.

use std::path::Path;

use crate::locate::SourceMap;
use crate::validate::{validate, ValidationIssue};
use crate::{Config, ConfigError};

// === impl Config ===

impl Config {
    /// Reads, parses and validates the file at `path`. Errors name the file, line, column and key.
    pub fn load(path: impl AsRef<Path>) -> Result<Config, ConfigError> {
        let path = path.as_ref();
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Io {
            path: path.to_owned(),
            source,
        })?;
        Self::from_str(&text, &path.display().to_string())
    }

    /// Parses and validates `text`; `origin` names the source in errors (a file name, `<stdin>`, …). Returns the
    /// first problem in file order; [`Config::diagnose`] returns all of them.
    pub fn from_str(text: &str, origin: &str) -> Result<Config, ConfigError> {
        let config = parse(text, origin)?;
        let mut errors = invalid(&config, text, origin);
        if errors.is_empty() {
            Ok(config)
        } else {
            Err(errors.swap_remove(0))
        }
    }

    /// Like [`Config::from_str`] but reports every validation problem, sorted by position (a syntax or schema
    /// error stops parsing, so it comes alone).
    pub fn diagnose(text: &str, origin: &str) -> Result<Config, Vec<ConfigError>> {
        let config = parse(text, origin).map_err(|e| vec![e])?;
        let errors = invalid(&config, text, origin);
        if errors.is_empty() {
            Ok(config)
        } else {
            Err(errors)
        }
    }
}

/// TOML syntax and schema (types, unknown keys, enum values, durations).
fn parse(text: &str, origin: &str) -> Result<Config, ConfigError> {
    toml::from_str(text).map_err(|err: toml::de::Error| {
        let map = SourceMap::new(text);
        let offset = err.span().map_or(0, |span| span.start);
        let (line, column) = map.line_col(offset);
        let key = err
            .span()
            .and_then(|_| map.path_at(offset))
            .map(ToString::to_string);
        let message = err
            .message()
            .lines()
            .map(str::trim)
            .filter(|l| !l.is_empty())
            .collect::<Vec<_>>()
            .join("; ");
        ConfigError::Parse {
            file: origin.to_owned(),
            line,
            column,
            key,
            message,
        }
    })
}

/// Validation issues as located errors, in file order.
fn invalid(config: &Config, text: &str, origin: &str) -> Vec<ConfigError> {
    let issues = validate(config);
    if issues.is_empty() {
        return Vec::new();
    }
    let map = SourceMap::new(text);
    let mut located: Vec<(usize, ValidationIssue)> = issues
        .into_iter()
        .map(|issue| (map.locate(&issue.locations()), issue))
        .collect();
    located.sort_by_key(|(offset, _)| *offset);
    located
        .into_iter()
        .map(|(offset, issue)| {
            let (line, column) = map.line_col(offset);
            ConfigError::Invalid {
                file: origin.to_owned(),
                line,
                column,
                key: issue.key(),
                message: issue.message().to_owned(),
            }
        })
        .collect()
}

#[cfg(test)]
mod tests;
