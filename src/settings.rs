//! Settings: flags, then `GYRUS_*` variables (both through clap), then
//! `gyrus.toml`, then defaults.

use std::path::Path;
use std::time::Duration;

use anyhow::Context as _;
use gyrus_engine::SessionLimits;
use serde::Deserialize;

use crate::cli::{GlobalArgs, LogFormat, QueryLimitArgs};

/// The optional `gyrus.toml`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileSettings {
    pub data: Option<String>,
    pub log_format: Option<LogFormat>,
    pub log_level: Option<String>,
    #[serde(default)]
    pub query: QuerySettings,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct QuerySettings {
    pub memory_limit_mb: Option<usize>,
    pub timeout_secs: Option<u64>,
    pub max_sql_kb: Option<usize>,
    pub max_sql_depth: Option<usize>,
    pub max_in_list: Option<usize>,
    pub memory_budget_mb: Option<usize>,
}

/// Everything resolved.
#[derive(Debug)]
pub struct Settings {
    pub data: String,
    pub log_format: LogFormat,
    pub log_level: String,
    file: FileSettings,
}

impl Settings {
    pub fn resolve(global: &GlobalArgs) -> anyhow::Result<Settings> {
        let file = match &global.config {
            Some(path) => read(path)?,
            None if Path::new("gyrus.toml").exists() => read(Path::new("gyrus.toml"))?,
            None => FileSettings::default(),
        };
        Ok(Settings {
            data: global
                .data
                .clone()
                .or_else(|| file.data.clone())
                .unwrap_or_else(|| "./gyrus-data".into()),
            log_format: global
                .log_format
                .or(file.log_format)
                .unwrap_or(LogFormat::Pretty),
            log_level: global
                .log_level
                .clone()
                .or_else(|| file.log_level.clone())
                .unwrap_or_else(|| "warn".into()),
            file,
        })
    }

    /// Query limits: flags and variables over the file over the defaults.
    pub fn limits(&self, args: &QueryLimitArgs) -> SessionLimits {
        // The process's budget first: every session's default draws from it.
        if let Some(mb) = args.memory_budget_mb.or(self.file.query.memory_budget_mb) {
            gyrus_engine::budget::ProcessBudget::init_process(mb.max(1) << 20, 32 << 30);
        }
        let mut limits = SessionLimits::default();
        if let Some(mb) = args.memory_limit_mb.or(self.file.query.memory_limit_mb) {
            limits.memory_bytes = mb.max(1) << 20;
        }
        if let Some(secs) = args.timeout_secs.or(self.file.query.timeout_secs) {
            limits.timeout = Duration::from_secs(secs.max(1));
        }
        if let Some(kb) = args.max_sql_kb.or(self.file.query.max_sql_kb) {
            limits.sql.max_bytes = kb.max(1) << 10;
        }
        if let Some(depth) = args.max_sql_depth.or(self.file.query.max_sql_depth) {
            limits.sql.max_depth = depth.max(8);
        }
        if let Some(values) = args.max_in_list.or(self.file.query.max_in_list) {
            limits.sql.max_in_list = values.max(1);
        }
        limits
    }
}

fn read(path: &Path) -> anyhow::Result<FileSettings> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("cannot read settings file {}", path.display()))?;
    toml::from_str(&text).with_context(|| format!("invalid settings file {}", path.display()))
}
