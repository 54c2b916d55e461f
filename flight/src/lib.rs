//! Gyrus over Arrow Flight SQL, for BI tools (JDBC), notebooks (ADBC) and
//! `pyarrow.flight`.
//!
//! - [`auth`]: bearer API keys on every call; the basic-auth handshake issues
//!   session tokens. The tenant is the key's, always.
//! - [`service`]: the Flight SQL commands — queries, prepared statements,
//!   catalog metadata, SqlInfo, XDBC types, bulk ingest, cancellation.
//! - [`queries`]: planned queries behind opaque tickets, streamed batch by
//!   batch under a deadline.
//! - [`schema`]: `GetSchema`, which arrow-flight leaves out of reach.
//! - [`server`]: the tonic server: TLS, message limits, graceful shutdown.
//!
//! ```no_run
//! # async fn run() -> Result<(), Box<dyn std::error::Error>> {
//! use gyrus_engine::Store;
//! use gyrus_flight::{ServerConfig, serve};
//!
//! let store = Store::open("./gyrus-data").await?;
//! let config = ServerConfig::new("127.0.0.1:50051".parse()?);
//! serve(store, config, async { let _ = tokio::signal::ctrl_c().await; }).await?;
//! # Ok(()) }
//! ```

pub mod auth;
pub mod ingest;
pub mod linger;
pub mod metadata;
pub mod prepared;
pub mod queries;
pub mod schema;
pub mod server;
pub mod service;
mod status;

pub use server::{ServerConfig, ServerError, TlsFiles, serve, serve_on};
pub use service::{GyrusFlightSql, ServiceConfig};
