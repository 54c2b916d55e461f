//! The tonic server around the service: TLS, message size limits, graceful shutdown.

use std::future::Future;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use arrow_flight::flight_service_server::FlightServiceServer;
use futures::StreamExt;
use gyrus_engine::Store;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tonic::transport::server::TcpIncoming;
use tonic::transport::{Identity, Server, ServerTlsConfig};

use crate::linger::Lingering;
use crate::schema::GyrusFlightService;
use crate::service::{GyrusFlightSql, ServiceConfig};

/// A PEM certificate chain and its private key.
#[derive(Debug, Clone)]
pub struct TlsFiles {
    pub cert: PathBuf,
    pub key: PathBuf,
}

/// Where and how to serve.
#[derive(Debug, Clone)]
pub struct ServerConfig {
    pub addr: SocketAddr,
    /// Serve TLS (rustls) with this certificate; plain gRPC without.
    pub tls: Option<TlsFiles>,
    pub service: ServiceConfig,
    /// After SIGTERM, running result streams get this long to finish before
    /// they are ended with `UNAVAILABLE`.
    pub shutdown_grace: Duration,
    /// Largest gRPC message accepted or sent (FlightData of one batch).
    pub max_message_bytes: usize,
    /// Key and table caches shared with another server of the process;
    /// `None`: the service keeps its own.
    pub caches: Option<gyrus_engine::ServerCaches>,
}

impl ServerConfig {
    pub fn new(addr: SocketAddr) -> Self {
        ServerConfig {
            addr,
            tls: None,
            service: ServiceConfig::default(),
            shutdown_grace: Duration::from_secs(30),
            max_message_bytes: 64 << 20,
            caches: None,
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ServerError {
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        addr: SocketAddr,
        source: std::io::Error,
    },
    #[error("TLS: {0}")]
    Tls(String),
    #[error("Flight SQL server: {0}")]
    Transport(#[from] tonic::transport::Error),
}

/// Binds `config.addr` and serves until `shutdown` completes.
pub async fn serve(
    store: Store,
    config: ServerConfig,
    shutdown: impl Future<Output = ()> + Send,
) -> Result<(), ServerError> {
    let listener = TcpListener::bind(config.addr)
        .await
        .map_err(|source| ServerError::Bind {
            addr: config.addr,
            source,
        })?;
    serve_on(listener, store, config, shutdown).await
}

/// Serves on a listener already bound (tests bind port 0 and read the port).
///
/// On `shutdown`: no new calls are accepted, running streams get
/// `shutdown_grace` to finish, then end with `UNAVAILABLE`.
pub async fn serve_on(
    listener: TcpListener,
    store: Store,
    config: ServerConfig,
    shutdown: impl Future<Output = ()> + Send,
) -> Result<(), ServerError> {
    let local = listener.local_addr().ok();
    let (stop_streams, streams_stopped) = watch::channel(false);
    let service = match config.caches.clone() {
        Some(caches) => {
            GyrusFlightSql::sharing(store, caches, config.service.clone(), streams_stopped)
        }
        None => GyrusFlightSql::new(store, config.service.clone(), streams_stopped),
    };
    let service = FlightServiceServer::new(GyrusFlightService(Arc::new(service)))
        .max_decoding_message_size(config.max_message_bytes)
        .max_encoding_message_size(config.max_message_bytes);

    let mut builder = Server::builder()
        .initial_connection_window_size(8 << 20)
        .initial_stream_window_size(4 << 20)
        .http2_keepalive_interval(Some(Duration::from_secs(30)));
    if let Some(tls) = &config.tls {
        // Both of rustls's crypto providers are in the tree (object_store
        // enables one, tonic another): name one, or rustls refuses to choose.
        let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
        let read = |path: &PathBuf| {
            std::fs::read(path).map_err(|e| ServerError::Tls(format!("{}: {e}", path.display())))
        };
        let identity = Identity::from_pem(read(&tls.cert)?, read(&tls.key)?);
        builder = builder
            .tls_config(ServerTlsConfig::new().identity(identity))
            .map_err(|e| ServerError::Tls(e.to_string()))?;
    }

    let (signalled, mut on_signal) = watch::channel(false);
    let incoming = TcpIncoming::from(listener)
        .with_nodelay(Some(true))
        .map(|accepted| accepted.map(Lingering::new));
    let server = builder
        .add_service(service)
        .serve_with_incoming_shutdown(incoming, async move {
            shutdown.await;
            let _ = signalled.send(true);
        });
    tokio::pin!(server);
    tracing::info!(
        addr = ?local,
        tls = config.tls.is_some(),
        "Flight SQL server listening"
    );

    tokio::select! {
        result = &mut server => return Ok(result?),
        _ = on_signal.wait_for(|s| *s) => {}
    }
    tracing::info!(
        grace_secs = config.shutdown_grace.as_secs(),
        "shutting down: refusing new calls, letting running streams finish"
    );
    if let Ok(result) = tokio::time::timeout(config.shutdown_grace, &mut server).await {
        return Ok(result?);
    }
    tracing::warn!("grace period over: ending the remaining streams");
    let _ = stop_streams.send(true);
    match tokio::time::timeout(Duration::from_secs(5), &mut server).await {
        Ok(result) => Ok(result?),
        Err(_) => {
            tracing::warn!("connections still open after shutdown; exiting anyway");
            Ok(())
        }
    }
}
