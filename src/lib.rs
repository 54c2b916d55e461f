//! The parts of the `gyrus` command line that other crates reach: its
//! flags ([`cli`]) and its settings ([`settings`]: flags, `GYRUS_*`
//! variables, `gyrus.toml`). The fuzz targets parse `gyrus.toml` through
//! [`settings::FileSettings::parse`] exactly as the binary does.
//!
//! ```
//! let file = gyrus::settings::FileSettings::parse("data = \"/srv/gyrus\"\n[query]\ntimeout_secs = 30\n").unwrap();
//! assert_eq!(file.data.as_deref(), Some("/srv/gyrus"));
//! assert!(gyrus::settings::FileSettings::parse("dta = 1").is_err());
//! ```

pub mod cli;
pub mod settings;
