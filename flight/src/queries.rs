//! Planned queries waiting for their DoGet, and the streams that run them.
//!
//! GetFlightInfo plans a query (physical plan included, so the schema it
//! announces is exactly the one the stream carries) and files it under a
//! random handle; the ticket holds only that handle. DoGet claims the entry —
//! only with the key that planned it — and streams the result batch by batch
//! under the query's deadline. CancelFlightInfo, the deadline and server
//! shutdown end a stream with a gRPC status, never with a cut connection.

use std::collections::HashMap;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use arrow_flight::CancelStatus;
use futures::Stream;
use gyrus_engine::datafusion::arrow::array::RecordBatch;
use gyrus_engine::datafusion::arrow::datatypes::SchemaRef;
use gyrus_engine::datafusion::physical_plan::ExecutionPlan;
use gyrus_engine::{QueryStream, TenantSession};
use rand::RngExt as _;
use tokio::sync::watch;
use tonic::Status;

use crate::auth::Identity;
use crate::status::engine_status;
use gyrus_engine::wire::to_wire;

/// Result batches on their way to the client.
pub type BatchStream = Pin<Box<dyn Stream<Item = Result<RecordBatch, Status>> + Send>>;

/// A query planned by GetFlightInfo, not yet fetched.
pub struct PlannedQuery {
    pub session: TenantSession,
    pub plan: Arc<dyn ExecutionPlan>,
    /// The wire schema announced in FlightInfo.
    pub schema: SchemaRef,
    pub sql: String,
}

enum State {
    Planned(Box<PlannedQuery>),
    Running,
}

struct Entry {
    owner: String,
    state: State,
    cancel: watch::Sender<bool>,
    created: Instant,
}

/// The open queries of the server.
pub struct Queries {
    entries: Mutex<HashMap<Vec<u8>, Entry>>,
    /// Planned queries nobody fetched are dropped after this long.
    unclaimed_ttl: Duration,
    /// Most planned, unfetched queries one key may have.
    max_unclaimed_per_key: usize,
    /// Flips to true when running streams must stop (end of graceful shutdown).
    shutdown: watch::Receiver<bool>,
}

impl Queries {
    pub fn new(
        unclaimed_ttl: Duration,
        max_unclaimed_per_key: usize,
        shutdown: watch::Receiver<bool>,
    ) -> Self {
        Queries {
            entries: Default::default(),
            unclaimed_ttl,
            max_unclaimed_per_key,
            shutdown,
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<Vec<u8>, Entry>> {
        self.entries.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Files a planned query for `owner`; returns its opaque handle. A key
    /// with `max_unclaimed_per_key` queries planned and not fetched gets
    /// `RESOURCE_EXHAUSTED`: planned queries hold sessions and plans.
    pub fn insert(&self, owner: &Identity, query: PlannedQuery) -> Result<Vec<u8>, Status> {
        let handle = rand::rng().random::<[u8; 16]>().to_vec();
        let mut entries = self.lock();
        let ttl = self.unclaimed_ttl;
        entries.retain(|_, e| matches!(e.state, State::Running) || e.created.elapsed() < ttl);
        let unclaimed = entries
            .values()
            .filter(|e| e.owner == owner.key_id && matches!(e.state, State::Planned(_)))
            .count();
        if unclaimed >= self.max_unclaimed_per_key {
            return Err(Status::resource_exhausted(format!(
                "this key has {unclaimed} planned queries not yet fetched, the most it may hold \
                 (--max-unclaimed-per-key); fetch (DoGet) or cancel them first"
            )));
        }
        entries.insert(
            handle.clone(),
            Entry {
                owner: owner.key_id.clone(),
                state: State::Planned(Box::new(query)),
                cancel: watch::channel(false).0,
                created: Instant::now(),
            },
        );
        Ok(handle)
    }

    /// Claims a planned query and starts it. Tickets of other keys, tickets
    /// already fetched and unknown tickets all answer `NOT_FOUND` alike, so a
    /// ticket reveals nothing to anyone but its owner.
    pub fn start(
        self: &Arc<Self>,
        owner: &Identity,
        handle: &[u8],
    ) -> Result<(SchemaRef, BatchStream), Status> {
        let (query, cancelled) = {
            let mut entries = self.lock();
            let entry = entries
                .get_mut(handle)
                .filter(|e| e.owner == owner.key_id && matches!(e.state, State::Planned(_)))
                .ok_or_else(|| {
                    Status::not_found(
                        "unknown, expired or already fetched ticket; run the query again",
                    )
                })?;
            let State::Planned(query) = std::mem::replace(&mut entry.state, State::Running) else {
                unreachable!("checked above")
            };
            (query, entry.cancel.subscribe())
        };
        let PlannedQuery {
            session,
            plan,
            schema,
            sql,
        } = *query;
        // From here on the entry is removed however the query ends.
        let guard = Running {
            queries: self.clone(),
            handle: handle.to_vec(),
            rows: 0,
            started: Instant::now(),
            sql,
        };
        // The deadline counts from the fetch: planning had its own.
        let batches = session
            .execute_plan(plan, session.deadline())
            .map_err(engine_status)?;
        let wire_schema = schema.clone();
        let state = StreamState {
            batches,
            cancelled,
            shutdown: self.shutdown.clone(),
            guard,
            done: false,
        };
        let stream = futures::stream::unfold(state, move |mut state| {
            let schema = wire_schema.clone();
            async move {
                let item = state.next().await?;
                let item = item.and_then(|batch| {
                    state.guard.rows += batch.num_rows();
                    to_wire(batch, &schema).map_err(|e| Status::internal(e.to_string()))
                });
                Some((item, state))
            }
        });
        Ok((schema, Box::pin(stream)))
    }

    /// Cancels the query a ticket handle names, if `owner` owns it.
    pub fn cancel(&self, owner: &Identity, handle: &[u8]) -> CancelStatus {
        let mut entries = self.lock();
        match entries.get(handle) {
            Some(e) if e.owner == owner.key_id => {
                let _ = e.cancel.send(true);
                if matches!(e.state, State::Planned(_)) {
                    entries.remove(handle);
                }
                CancelStatus::Cancelled
            }
            _ => CancelStatus::NotCancellable,
        }
    }
}

/// Removes a running query from the registry when its stream ends or is dropped.
struct Running {
    queries: Arc<Queries>,
    handle: Vec<u8>,
    rows: usize,
    started: Instant,
    sql: String,
}

impl Drop for Running {
    fn drop(&mut self) {
        self.queries.lock().remove(&self.handle);
        tracing::info!(
            rows = self.rows,
            elapsed_ms = self.started.elapsed().as_millis() as u64,
            sql = %self.sql.chars().take(200).collect::<String>(),
            "flight query finished"
        );
    }
}

struct StreamState {
    batches: QueryStream,
    cancelled: watch::Receiver<bool>,
    shutdown: watch::Receiver<bool>,
    guard: Running,
    done: bool,
}

impl StreamState {
    /// The next batch, or the status that ends the stream.
    async fn next(&mut self) -> Option<Result<RecordBatch, Status>> {
        if self.done {
            return None;
        }
        let outcome = tokio::select! {
            biased;
            Ok(_) = self.cancelled.wait_for(|c| *c) => Some(Err(Status::cancelled("the query was cancelled"))),
            Ok(_) = self.shutdown.wait_for(|s| *s) => Some(Err(Status::unavailable(
                "the server is shutting down; run the query again",
            ))),
            next = self.batches.next() => match next {
                None => None,
                Some(Ok(batch)) => return Some(Ok(batch)),
                Some(Err(e)) => Some(Err(engine_status(e))),
            },
        };
        self.done = true;
        outcome
    }
}
