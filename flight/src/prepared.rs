//! Prepared statements: created by an action, parameters bound by DoPut,
//! executed through GetFlightInfo + DoGet (as often as the client likes),
//! closed by an action. Each belongs to the key that created it.
//!
//! A statement keeps its SQL, not a plan: every execution plans afresh over
//! the tenant's current tables, so a statement a BI tool keeps open for
//! hours still sees new data.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use gyrus_engine::EngineError;
use gyrus_engine::datafusion::arrow::array::RecordBatch;
use gyrus_engine::datafusion::arrow::datatypes::SchemaRef;
use gyrus_engine::datafusion::common::ScalarValue;
use gyrus_engine::datafusion::logical_expr::{LogicalPlan, Union};
use gyrus_engine::params;
use rand::RngExt as _;
use tonic::Status;

use crate::auth::Identity;

/// A statement as the server keeps it.
#[derive(Clone)]
pub struct Prepared {
    owner: String,
    /// The SQL with `?` placeholders numbered (`$1`, `$2`, ...).
    pub sql: String,
    /// One field per placeholder, in order, in wire types (what clients see);
    /// Utf8 where the type cannot be inferred.
    pub parameters: SchemaRef,
    /// Rows of bound parameter values (each row runs the statement once).
    pub bound: Option<RecordBatch>,
    last_used: Instant,
}

/// Statements unused for this long are dropped (clients that never close).
const IDLE_TTL: Duration = Duration::from_secs(3600);

/// The prepared statements of the server.
pub struct PreparedStatements {
    entries: Mutex<HashMap<Vec<u8>, Prepared>>,
    /// Most open statements one key may hold.
    max_per_key: usize,
}

impl PreparedStatements {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<Vec<u8>, Prepared>> {
        self.entries.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub fn new(max_per_key: usize) -> Self {
        PreparedStatements {
            entries: Default::default(),
            max_per_key,
        }
    }

    /// Keeps a new statement for `owner`; a key holding `max_per_key` open
    /// statements gets `RESOURCE_EXHAUSTED` until it closes some.
    pub fn insert(
        &self,
        owner: &Identity,
        sql: String,
        parameters: SchemaRef,
    ) -> Result<Vec<u8>, Status> {
        let handle = rand::rng().random::<[u8; 16]>().to_vec();
        let mut entries = self.lock();
        entries.retain(|_, p| p.last_used.elapsed() < IDLE_TTL);
        let open = entries.values().filter(|p| p.owner == owner.key_id).count();
        if open >= self.max_per_key {
            return Err(Status::resource_exhausted(format!(
                "this key holds {open} open prepared statements, the most it may \
                 (--max-prepared-per-key); close some first"
            )));
        }
        entries.insert(
            handle.clone(),
            Prepared {
                owner: owner.key_id.clone(),
                sql,
                parameters,
                bound: None,
                last_used: Instant::now(),
            },
        );
        Ok(handle)
    }

    /// The statement, if `owner` created it.
    pub fn get(&self, owner: &Identity, handle: &[u8]) -> Result<Prepared, Status> {
        let mut entries = self.lock();
        let prepared = entries
            .get_mut(handle)
            .filter(|p| p.owner == owner.key_id)
            .ok_or_else(unknown)?;
        prepared.last_used = Instant::now();
        Ok(prepared.clone())
    }

    pub fn bind(&self, owner: &Identity, handle: &[u8], values: RecordBatch) -> Result<(), Status> {
        let mut entries = self.lock();
        let prepared = entries
            .get_mut(handle)
            .filter(|p| p.owner == owner.key_id)
            .ok_or_else(unknown)?;
        if values.num_columns() != prepared.parameters.fields().len() {
            return Err(Status::invalid_argument(format!(
                "the statement takes {} parameters; {} were bound",
                prepared.parameters.fields().len(),
                values.num_columns()
            )));
        }
        prepared.bound = Some(values);
        Ok(())
    }

    pub fn close(&self, owner: &Identity, handle: &[u8]) -> Result<(), Status> {
        let mut entries = self.lock();
        match entries.get(handle) {
            Some(p) if p.owner == owner.key_id => {
                entries.remove(handle);
                Ok(())
            }
            _ => Err(unknown()),
        }
    }
}

fn unknown() -> Status {
    Status::not_found("unknown or closed prepared statement")
}

/// The statement run once per row of `bound`, with that row as its
/// parameter values, results one after the other: one flat union, not a
/// chain as deep as the rows.
pub fn bind_rows(plan: LogicalPlan, bound: &RecordBatch) -> gyrus_engine::Result<LogicalPlan> {
    let types = params::parameter_schema(&plan)?;
    let mut plans = (0..bound.num_rows())
        .map(|row| {
            let values = bound
                .columns()
                .iter()
                .map(|column| ScalarValue::try_from_array(column, row))
                .collect::<Result<Vec<_>, _>>()
                .map_err(|e| EngineError::Query(format!("parameter row {}: {e}", row + 1)))?;
            params::bind(plan.clone(), &types, values)
        })
        .collect::<gyrus_engine::Result<Vec<_>>>()?;
    match plans.pop() {
        Some(one) if plans.is_empty() => Ok(one),
        last => {
            let inputs = plans.into_iter().chain(last).map(Arc::new).collect();
            Ok(LogicalPlan::Union(Union::try_new_with_loose_types(inputs)?))
        }
    }
}
