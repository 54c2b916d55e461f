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

impl FileSettings {
    /// `gyrus.toml`'s text as settings; unknown keys and values of the
    /// wrong type are errors that name the line.
    pub fn parse(text: &str) -> Result<FileSettings, toml::de::Error> {
        toml::from_str(text)
    }
}

/// The longest query time limit accepted: a week.
const MAX_TIMEOUT_SECS: u64 = 7 * 24 * 3600;

/// `mb` megabytes in bytes, refused when that does not fit in memory's
/// address space (`what` names the setting in the error).
fn megabytes(mb: usize, what: &str) -> anyhow::Result<usize> {
    mb.max(1)
        .checked_mul(1 << 20)
        .with_context(|| format!("{what} = {mb} MB is more memory than this machine can address"))
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
        Ok(Settings::from_file(global, file))
    }

    /// Flags and variables (`global`) over a settings file already read.
    pub fn from_file(global: &GlobalArgs, file: FileSettings) -> Settings {
        Settings {
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
        }
    }

    /// Query limits: flags and variables over the file over the defaults.
    /// A value too large to mean anything (memory beyond the address space,
    /// a time limit over a week) is an error naming the setting.
    pub fn limits(&self, args: &QueryLimitArgs) -> anyhow::Result<SessionLimits> {
        // The process's budget first: every session's default draws from it.
        if let Some(mb) = args.memory_budget_mb.or(self.file.query.memory_budget_mb) {
            let bytes = megabytes(mb, "memory_budget_mb")?;
            gyrus_engine::budget::ProcessBudget::init_process(bytes, 32 << 30);
        }
        let mut limits = SessionLimits::default();
        if let Some(mb) = args.memory_limit_mb.or(self.file.query.memory_limit_mb) {
            limits.memory_bytes = megabytes(mb, "memory_limit_mb")?;
        }
        if let Some(secs) = args.timeout_secs.or(self.file.query.timeout_secs) {
            if secs > MAX_TIMEOUT_SECS {
                anyhow::bail!(
                    "timeout_secs = {secs} is over the longest query time limit of {MAX_TIMEOUT_SECS} s (a week)"
                );
            }
            limits.timeout = Duration::from_secs(secs.max(1));
        }
        if let Some(kb) = args.max_sql_kb.or(self.file.query.max_sql_kb) {
            limits.sql.max_bytes = kb
                .max(1)
                .checked_mul(1 << 10)
                .with_context(|| format!("max_sql_kb = {kb} is larger than memory"))?;
        }
        if let Some(depth) = args.max_sql_depth.or(self.file.query.max_sql_depth) {
            limits.sql.max_depth = depth.max(8);
        }
        if let Some(values) = args.max_in_list.or(self.file.query.max_in_list) {
            limits.sql.max_in_list = values.max(1);
        }
        Ok(limits)
    }
}

fn read(path: &Path) -> anyhow::Result<FileSettings> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("cannot read settings file {}", path.display()))?;
    FileSettings::parse(&text).with_context(|| format!("invalid settings file {}", path.display()))
}
