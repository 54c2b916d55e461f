//! The Flight SQL service: each handler authenticates, then hands off to the
//! module that does the work (queries, prepared statements, metadata, ingest).

use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use arrow_flight::encode::FlightDataEncoderBuilder;
use arrow_flight::error::FlightError;
use arrow_flight::flight_service_server::FlightService;
use arrow_flight::sql::server::{FlightSqlService, PeekableFlightDataStream};
use arrow_flight::sql::{
    ActionCancelQueryRequest, ActionCancelQueryResult, ActionClosePreparedStatementRequest,
    ActionCreatePreparedStatementRequest, ActionCreatePreparedStatementResult, Any,
    CommandGetCatalogs, CommandGetCrossReference, CommandGetDbSchemas, CommandGetExportedKeys,
    CommandGetImportedKeys, CommandGetPrimaryKeys, CommandGetSqlInfo, CommandGetTableTypes,
    CommandGetTables, CommandGetXdbcTypeInfo, CommandPreparedStatementQuery,
    CommandPreparedStatementUpdate, CommandStatementIngest, CommandStatementQuery,
    CommandStatementUpdate, DoPutPreparedStatementResult, DoPutUpdateResult, ProstMessageExt,
    SqlInfo, TicketStatementQuery,
};
use arrow_flight::{
    Action, ActionType, CancelFlightInfoRequest, CancelFlightInfoResult, CancelStatus,
    FlightDescriptor, FlightEndpoint, FlightInfo, HandshakeRequest, HandshakeResponse, IpcMessage,
    PutResult, SchemaAsIpc, Ticket, flight_descriptor::DescriptorType,
};
use futures::{Stream, StreamExt as _, TryStreamExt};
use gyrus_engine::admission::{Admission, AdmissionConfig, Permit};
use gyrus_engine::datafusion::arrow::array::RecordBatch;
use gyrus_engine::datafusion::arrow::compute::concat_batches;
use gyrus_engine::datafusion::arrow::datatypes::{Schema, SchemaRef};
use gyrus_engine::datafusion::arrow::ipc::writer::IpcWriteOptions;
use gyrus_engine::{
    EngineError, KeyRingConfig, Refine, Role, ServerCaches, SessionLimits, Store, TableCache,
    TenantSession, WriteRequest,
};
use prost::Message;
use tokio::sync::watch;
use tonic::metadata::MetadataMap;
use tonic::{Request, Response, Status, Streaming};

use crate::auth::{Authenticator, Identity};
use crate::ingest::{IngestTarget, read_batches};
use crate::metadata;
use crate::prepared::{PreparedStatements, bind_rows};
use crate::queries::{BatchStream, PlannedQuery, Queries};
use crate::status::{arrow_status, engine_status, refusal_status};
use gyrus_engine::params::{number_placeholders, parameter_schema};
use gyrus_engine::system::{Asker, Surface, SystemCatalog};
use gyrus_engine::wire::wire_schema;

const CANCEL_FLIGHT_INFO: &str = "CancelFlightInfo";

/// How the service behaves; [`Default`] suits a single machine.
#[derive(Debug, Clone)]
pub struct ServiceConfig {
    /// Memory and time per query.
    pub limits: SessionLimits,
    /// How long a tenant's table snapshot is reused before its Delta logs are read again.
    pub catalog_max_age: Duration,
    /// How the key table is cached.
    pub keys: KeyRingConfig,
    /// Lifetime of a session token from the handshake.
    pub token_ttl: Duration,
    /// Planned queries not fetched within this time are dropped.
    pub unclaimed_query_ttl: Duration,
    /// Largest Arrow payload one ingest may carry.
    pub max_ingest_bytes: usize,
    /// Most rows of parameters one prepared statement may be bound with
    /// (each row is one execution of the statement).
    pub max_bound_rows: usize,
    /// Largest Arrow payload of bound parameters.
    pub max_bound_bytes: usize,
    /// Most queries one key may have planned (GetFlightInfo) and not fetched.
    pub max_unclaimed_per_key: usize,
    /// Most prepared statements one key may hold open.
    pub max_prepared_per_key: usize,
    /// Rates and slots, when the service does not share a process's caches.
    pub admission: AdmissionConfig,
}

impl Default for ServiceConfig {
    fn default() -> Self {
        ServiceConfig {
            limits: SessionLimits::default(),
            catalog_max_age: Duration::from_secs(2),
            keys: KeyRingConfig::default(),
            token_ttl: Duration::from_secs(12 * 3600),
            unclaimed_query_ttl: Duration::from_secs(600),
            max_ingest_bytes: 2 << 30,
            max_bound_rows: 1_000,
            max_bound_bytes: 16 << 20,
            max_unclaimed_per_key: 16,
            max_prepared_per_key: 64,
            admission: AdmissionConfig::default(),
        }
    }
}

/// Gyrus over Flight SQL.
pub struct GyrusFlightSql {
    store: Store,
    auth: Authenticator,
    tables: Arc<TableCache>,
    /// The `system` tables and the query log, shared with the HTTP server.
    system: Arc<SystemCatalog>,
    queries: Arc<Queries>,
    prepared: PreparedStatements,
    /// Rates and slots, shared with the process's other server.
    admission: Arc<Admission>,
    config: ServiceConfig,
}

impl GyrusFlightSql {
    /// A service over `store`; running result streams end with `UNAVAILABLE`
    /// once `shutdown` turns true.
    pub fn new(store: Store, config: ServiceConfig, shutdown: watch::Receiver<bool>) -> Self {
        let caches = ServerCaches::new(
            &store,
            config.keys,
            config.catalog_max_age,
            config.admission,
        );
        Self::sharing(store, caches, config, shutdown)
    }

    /// A service using caches shared with another server of the process.
    pub fn sharing(
        store: Store,
        caches: ServerCaches,
        config: ServiceConfig,
        shutdown: watch::Receiver<bool>,
    ) -> Self {
        GyrusFlightSql {
            auth: Authenticator::new(caches.keys, config.token_ttl),
            tables: caches.tables,
            system: caches.system,
            queries: Arc::new(Queries::new(
                config.unclaimed_query_ttl,
                config.max_unclaimed_per_key,
                shutdown,
            )),
            prepared: PreparedStatements::new(config.max_prepared_per_key),
            admission: caches.admission,
            store,
            config,
        }
    }

    /// The caller, once its key's and tenant's rates allow another call.
    async fn identify(&self, metadata: &MetadataMap) -> Result<Identity, Status> {
        let identity = self.auth.identify(metadata).await?;
        self.admission
            .check_rate(&identity.key_id, &identity.tenant)
            .map_err(refusal_status)?;
        Ok(identity)
    }

    /// A request slot for the caller's tenant, held while it plans or streams.
    fn admit(&self, identity: &Identity) -> Result<Permit, Status> {
        self.admission
            .admit(Some(&identity.tenant))
            .map_err(refusal_status)
    }

    async fn session(&self, identity: &Identity) -> Result<TenantSession, Status> {
        let asker = Asker {
            surface: Surface::FlightSql,
            key_id: Some(identity.key_id.clone()),
            role: identity.role,
        };
        self.tables
            .session(&identity.tenant, &self.config.limits)
            .await
            .and_then(|session| session.with_system(&self.system, asker))
            .map_err(engine_status)
    }

    /// Plans `sql` to the end (with `refine`) and files it; the FlightInfo's
    /// ticket fetches it.
    async fn plan_query(
        &self,
        identity: &Identity,
        session: TenantSession,
        sql: String,
        refine: Option<Refine>,
        descriptor: FlightDescriptor,
    ) -> Result<Response<FlightInfo>, Status> {
        let plan = session.prepare(&sql, refine).await.map_err(engine_status)?;
        let schema = wire_schema(&plan.schema());
        let handle = self.queries.insert(
            identity,
            PlannedQuery {
                session,
                plan,
                schema: schema.clone(),
                sql,
            },
        )?;
        let ticket = TicketStatementQuery {
            statement_handle: handle.into(),
        };
        flight_info(&schema, ticket.as_any(), descriptor)
    }

    /// FlightInfo for a metadata command: its ticket is the command itself.
    async fn metadata_info(
        &self,
        metadata: &MetadataMap,
        schema: &Schema,
        command: Any,
        descriptor: FlightDescriptor,
    ) -> Result<Response<FlightInfo>, Status> {
        self.identify(metadata).await?;
        flight_info(schema, command, descriptor)
    }

    /// Runs an engine write for an ingest and answers with the rows written.
    async fn ingest(
        &self,
        identity: &Identity,
        target: IngestTarget,
        stream: PeekableFlightDataStream,
    ) -> Result<i64, Status> {
        identity.require(Role::Writer)?;
        if target.fail_if_exists
            && self
                .store
                .table(&identity.tenant, target.table)
                .await
                .map_err(engine_status)?
                .is_some()
        {
            return Err(Status::already_exists(format!(
                "{} already exists; ingest with mode \"append\"",
                target.table
            )));
        }
        // Slots first, then the stream: waiting ingests hold no memory.
        let _slot = self.admit(identity)?;
        let _ingest = self
            .admission
            .admit_ingest(&identity.tenant)
            .map_err(refusal_status)?;
        let batches = read_batches(stream, self.config.max_ingest_bytes).await?;
        let mut request = WriteRequest::append(target.table, batches);
        if let Some(key) = target.idempotency_key {
            request = request.with_idempotency_key(key);
        }
        let outcome = self
            .store
            .write(&identity.tenant, request)
            .await
            .map_err(engine_status)?;
        tracing::info!(
            tenant = %identity.tenant, key_id = %identity.key_id, table = %target.table,
            rows = outcome.rows, version = outcome.version, already_applied = outcome.already_applied,
            "flight ingest"
        );
        Ok(if outcome.already_applied {
            0
        } else {
            outcome.rows as i64
        })
    }

    /// Cancels the query behind a FlightInfo's ticket.
    fn cancel(&self, identity: &Identity, info: &FlightInfo) -> CancelStatus {
        let handle = info
            .endpoint
            .first()
            .and_then(|e| e.ticket.as_ref())
            .and_then(|t| Any::decode(&*t.ticket).ok())
            .and_then(|any| any.unpack::<TicketStatementQuery>().ok().flatten());
        match handle {
            Some(ticket) => self.queries.cancel(identity, &ticket.statement_handle),
            None => CancelStatus::NotCancellable,
        }
    }
}

fn flight_info(
    schema: &Schema,
    ticket: Any,
    descriptor: FlightDescriptor,
) -> Result<Response<FlightInfo>, Status> {
    let info = FlightInfo::new()
        .try_with_schema(schema)
        .map_err(arrow_status)?
        .with_endpoint(FlightEndpoint::new().with_ticket(Ticket::new(ticket.encode_to_vec())))
        .with_descriptor(descriptor)
        .with_ordered(true);
    Ok(Response::new(info))
}

type DoGetStream = Pin<Box<dyn Stream<Item = Result<arrow_flight::FlightData, Status>> + Send>>;

/// Encodes batches with exactly `schema` (also sent when there are no rows).
fn encode(schema: SchemaRef, batches: BatchStream) -> Response<DoGetStream> {
    let stream = FlightDataEncoderBuilder::new()
        .with_schema(schema)
        .build(batches.map_err(FlightError::from))
        .map_err(Status::from);
    Response::new(Box::pin(stream))
}

fn one_batch(batch: Result<RecordBatch, FlightError>) -> Result<Response<DoGetStream>, Status> {
    let batch = batch.map_err(Status::from)?;
    let schema = batch.schema();
    Ok(encode(schema, Box::pin(futures::stream::iter([Ok(batch)]))))
}

fn ipc_schema(schema: &Schema) -> Result<bytes::Bytes, Status> {
    let IpcMessage(bytes) = SchemaAsIpc::new(schema, &IpcWriteOptions::default())
        .try_into()
        .map_err(arrow_status)?;
    Ok(bytes)
}

fn read_only_sql() -> Status {
    Status::permission_denied(
        "Gyrus SQL is read-only: no INSERT, UPDATE, DELETE or DDL; load data with bulk ingest (CommandStatementIngest / adbc_ingest)",
    )
}

#[tonic::async_trait]
impl FlightSqlService for GyrusFlightSql {
    type FlightService = GyrusFlightSql;

    async fn do_handshake(
        &self,
        request: Request<Streaming<HandshakeRequest>>,
    ) -> Result<
        Response<Pin<Box<dyn Stream<Item = Result<HandshakeResponse, Status>> + Send>>>,
        Status,
    > {
        let (_, token) = self.auth.handshake(request.metadata()).await?;
        let payload = HandshakeResponse {
            protocol_version: 0,
            payload: token.clone().into(),
        };
        let mut response: Response<
            Pin<Box<dyn Stream<Item = Result<HandshakeResponse, Status>> + Send>>,
        > = Response::new(Box::pin(futures::stream::iter([Ok(payload)])));
        let header = format!("Bearer {token}")
            .parse()
            .map_err(|_| Status::internal("token is not a valid header"))?;
        response.metadata_mut().insert("authorization", header);
        Ok(response)
    }

    // --- queries ---

    async fn get_flight_info_statement(
        &self,
        query: CommandStatementQuery,
        request: Request<FlightDescriptor>,
    ) -> Result<Response<FlightInfo>, Status> {
        let identity = self.identify(request.metadata()).await?;
        if query.transaction_id.is_some() {
            return Err(Status::invalid_argument("transactions are not supported"));
        }
        let _slot = self.admit(&identity)?;
        let session = self.session(&identity).await?;
        self.plan_query(&identity, session, query.query, None, request.into_inner())
            .await
    }

    async fn do_get_statement(
        &self,
        ticket: TicketStatementQuery,
        request: Request<Ticket>,
    ) -> Result<Response<<Self as FlightService>::DoGetStream>, Status> {
        let identity = self.identify(request.metadata()).await?;
        let permit = self.admit(&identity)?;
        let (schema, batches) = self.queries.start(&identity, &ticket.statement_handle)?;
        // The slot is held until the stream ends: it holds the query's memory.
        let batches: BatchStream = Box::pin(batches.map(move |batch| {
            let _held = &permit;
            batch
        }));
        Ok(encode(schema, batches))
    }

    // --- prepared statements ---

    async fn do_action_create_prepared_statement(
        &self,
        query: ActionCreatePreparedStatementRequest,
        request: Request<Action>,
    ) -> Result<ActionCreatePreparedStatementResult, Status> {
        let identity = self.identify(request.metadata()).await?;
        if query.transaction_id.is_some() {
            return Err(Status::invalid_argument("transactions are not supported"));
        }
        let sql = number_placeholders(&query.query).map_err(engine_status)?;
        let session = self.session(&identity).await?;
        let df = session.plan(&sql).await.map_err(engine_status)?;
        let parameters = wire_schema(
            parameter_schema(df.logical_plan())
                .map_err(engine_status)?
                .as_ref(),
        );
        let dataset = wire_schema(df.schema().as_arrow());
        let handle = self.prepared.insert(&identity, sql, parameters.clone())?;
        Ok(ActionCreatePreparedStatementResult {
            prepared_statement_handle: handle.into(),
            dataset_schema: ipc_schema(&dataset)?,
            parameter_schema: ipc_schema(&parameters)?,
        })
    }

    async fn do_put_prepared_statement_query(
        &self,
        query: CommandPreparedStatementQuery,
        request: Request<PeekableFlightDataStream>,
    ) -> Result<DoPutPreparedStatementResult, Status> {
        let identity = self.identify(request.metadata()).await?;
        // Fail before reading the stream when the handle is not the caller's.
        let prepared = self
            .prepared
            .get(&identity, &query.prepared_statement_handle)?;
        let _slot = self.admit(&identity)?;
        let batches = read_batches(request.into_inner(), self.config.max_bound_bytes).await?;
        let schema = batches
            .first()
            .map(|b| b.schema())
            .unwrap_or_else(|| prepared.parameters.clone());
        let values = concat_batches(&schema, &batches)
            .map_err(|e| Status::invalid_argument(format!("parameter batches differ: {e}")))?;
        let max_rows = self.config.max_bound_rows;
        if values.num_rows() > max_rows {
            return Err(engine_status(EngineError::TooLarge {
                what: format!("{} rows of parameters were bound", values.num_rows()),
                limit: format!("{max_rows} rows"),
                setting: "--max-bound-rows",
            }));
        }
        self.prepared
            .bind(&identity, &query.prepared_statement_handle, values)?;
        Ok(DoPutPreparedStatementResult {
            prepared_statement_handle: Some(query.prepared_statement_handle),
        })
    }

    async fn get_flight_info_prepared_statement(
        &self,
        query: CommandPreparedStatementQuery,
        request: Request<FlightDescriptor>,
    ) -> Result<Response<FlightInfo>, Status> {
        let identity = self.identify(request.metadata()).await?;
        let prepared = self
            .prepared
            .get(&identity, &query.prepared_statement_handle)?;
        let _slot = self.admit(&identity)?;
        let session = self.session(&identity).await?;
        let refine: Option<Refine> = if prepared.parameters.fields().is_empty() {
            None
        } else {
            let bound = prepared
                .bound
                .clone()
                .filter(|b| b.num_rows() > 0)
                .ok_or_else(|| {
                    Status::invalid_argument(format!(
                        "the statement takes {} parameters; bind them with DoPut first",
                        prepared.parameters.fields().len()
                    ))
                })?;
            Some(Box::new(move |plan, _| bind_rows(plan, &bound)))
        };
        self.plan_query(
            &identity,
            session,
            prepared.sql,
            refine,
            request.into_inner(),
        )
        .await
    }

    async fn do_action_close_prepared_statement(
        &self,
        query: ActionClosePreparedStatementRequest,
        request: Request<Action>,
    ) -> Result<(), Status> {
        let identity = self.identify(request.metadata()).await?;
        self.prepared
            .close(&identity, &query.prepared_statement_handle)
    }

    // --- writes ---

    async fn do_put_statement_update(
        &self,
        _query: CommandStatementUpdate,
        request: Request<PeekableFlightDataStream>,
    ) -> Result<i64, Status> {
        self.identify(request.metadata()).await?;
        Err(read_only_sql())
    }

    async fn do_put_prepared_statement_update(
        &self,
        _query: CommandPreparedStatementUpdate,
        request: Request<PeekableFlightDataStream>,
    ) -> Result<i64, Status> {
        self.identify(request.metadata()).await?;
        Err(read_only_sql())
    }

    async fn do_put_statement_ingest(
        &self,
        command: CommandStatementIngest,
        request: Request<PeekableFlightDataStream>,
    ) -> Result<i64, Status> {
        let identity = self.identify(request.metadata()).await?;
        let target = IngestTarget::from_command(&command, request.metadata())?;
        self.ingest(&identity, target, request.into_inner()).await
    }

    async fn do_put_fallback(
        &self,
        mut request: Request<PeekableFlightDataStream>,
        message: Any,
    ) -> Result<Response<<Self as FlightService>::DoPutStream>, Status> {
        let identity = self.identify(request.metadata()).await?;
        let descriptor = match request.get_mut().peek().await {
            Some(Ok(first)) => first.flight_descriptor.clone(),
            _ => None,
        };
        let Some(descriptor) = descriptor.filter(|d| d.r#type == DescriptorType::Path as i32)
        else {
            return Err(Status::unimplemented(format!(
                "unknown DoPut command `{}`",
                message.type_url
            )));
        };
        let target = IngestTarget::from_path(&descriptor.path, request.metadata())?;
        let record_count = self.ingest(&identity, target, request.into_inner()).await?;
        let result = DoPutUpdateResult { record_count };
        Ok(Response::new(Box::pin(futures::stream::iter([Ok(
            PutResult {
                app_metadata: result.encode_to_vec().into(),
            },
        )]))))
    }

    // --- metadata ---

    async fn get_flight_info_catalogs(
        &self,
        query: CommandGetCatalogs,
        request: Request<FlightDescriptor>,
    ) -> Result<Response<FlightInfo>, Status> {
        let schema = query.into_builder().schema();
        self.metadata_info(
            request.metadata(),
            &schema,
            query.as_any(),
            request.get_ref().clone(),
        )
        .await
    }

    async fn do_get_catalogs(
        &self,
        _query: CommandGetCatalogs,
        request: Request<Ticket>,
    ) -> Result<Response<<Self as FlightService>::DoGetStream>, Status> {
        let identity = self.identify(request.metadata()).await?;
        let session = self.session(&identity).await?;
        one_batch(metadata::catalogs(session.context()))
    }

    async fn get_flight_info_schemas(
        &self,
        query: CommandGetDbSchemas,
        request: Request<FlightDescriptor>,
    ) -> Result<Response<FlightInfo>, Status> {
        let schema = query.clone().into_builder().schema();
        self.metadata_info(
            request.metadata(),
            &schema,
            query.as_any(),
            request.get_ref().clone(),
        )
        .await
    }

    async fn do_get_schemas(
        &self,
        query: CommandGetDbSchemas,
        request: Request<Ticket>,
    ) -> Result<Response<<Self as FlightService>::DoGetStream>, Status> {
        let identity = self.identify(request.metadata()).await?;
        let session = self.session(&identity).await?;
        one_batch(metadata::db_schemas(session.context(), query).await)
    }

    async fn get_flight_info_tables(
        &self,
        query: CommandGetTables,
        request: Request<FlightDescriptor>,
    ) -> Result<Response<FlightInfo>, Status> {
        let schema = query.clone().into_builder().schema();
        self.metadata_info(
            request.metadata(),
            &schema,
            query.as_any(),
            request.get_ref().clone(),
        )
        .await
    }

    async fn do_get_tables(
        &self,
        query: CommandGetTables,
        request: Request<Ticket>,
    ) -> Result<Response<<Self as FlightService>::DoGetStream>, Status> {
        let identity = self.identify(request.metadata()).await?;
        let session = self.session(&identity).await?;
        one_batch(metadata::tables(session.context(), query).await)
    }

    async fn get_flight_info_table_types(
        &self,
        query: CommandGetTableTypes,
        request: Request<FlightDescriptor>,
    ) -> Result<Response<FlightInfo>, Status> {
        let schema = query.into_builder().schema();
        self.metadata_info(
            request.metadata(),
            &schema,
            query.as_any(),
            request.get_ref().clone(),
        )
        .await
    }

    async fn do_get_table_types(
        &self,
        _query: CommandGetTableTypes,
        request: Request<Ticket>,
    ) -> Result<Response<<Self as FlightService>::DoGetStream>, Status> {
        self.identify(request.metadata()).await?;
        one_batch(metadata::table_types())
    }

    async fn get_flight_info_sql_info(
        &self,
        query: CommandGetSqlInfo,
        request: Request<FlightDescriptor>,
    ) -> Result<Response<FlightInfo>, Status> {
        let schema = metadata::sql_info().schema();
        self.metadata_info(
            request.metadata(),
            &schema,
            query.as_any(),
            request.get_ref().clone(),
        )
        .await
    }

    async fn do_get_sql_info(
        &self,
        query: CommandGetSqlInfo,
        request: Request<Ticket>,
    ) -> Result<Response<<Self as FlightService>::DoGetStream>, Status> {
        self.identify(request.metadata()).await?;
        one_batch(query.into_builder(metadata::sql_info()).build())
    }

    async fn get_flight_info_xdbc_type_info(
        &self,
        query: CommandGetXdbcTypeInfo,
        request: Request<FlightDescriptor>,
    ) -> Result<Response<FlightInfo>, Status> {
        let schema = metadata::xdbc_type_info().schema();
        self.metadata_info(
            request.metadata(),
            &schema,
            query.as_any(),
            request.get_ref().clone(),
        )
        .await
    }

    async fn do_get_xdbc_type_info(
        &self,
        query: CommandGetXdbcTypeInfo,
        request: Request<Ticket>,
    ) -> Result<Response<<Self as FlightService>::DoGetStream>, Status> {
        self.identify(request.metadata()).await?;
        one_batch(query.into_builder(metadata::xdbc_type_info()).build())
    }

    async fn get_flight_info_primary_keys(
        &self,
        query: CommandGetPrimaryKeys,
        request: Request<FlightDescriptor>,
    ) -> Result<Response<FlightInfo>, Status> {
        let schema = metadata::primary_keys_schema();
        self.metadata_info(
            request.metadata(),
            &schema,
            query.as_any(),
            request.get_ref().clone(),
        )
        .await
    }

    async fn do_get_primary_keys(
        &self,
        query: CommandGetPrimaryKeys,
        request: Request<Ticket>,
    ) -> Result<Response<<Self as FlightService>::DoGetStream>, Status> {
        self.identify(request.metadata()).await?;
        one_batch(metadata::primary_keys(
            query.catalog.as_deref(),
            query.db_schema.as_deref(),
            &query.table,
        ))
    }

    async fn get_flight_info_exported_keys(
        &self,
        query: CommandGetExportedKeys,
        request: Request<FlightDescriptor>,
    ) -> Result<Response<FlightInfo>, Status> {
        let schema = metadata::foreign_keys_schema();
        self.metadata_info(
            request.metadata(),
            &schema,
            query.as_any(),
            request.get_ref().clone(),
        )
        .await
    }

    async fn do_get_exported_keys(
        &self,
        _query: CommandGetExportedKeys,
        request: Request<Ticket>,
    ) -> Result<Response<<Self as FlightService>::DoGetStream>, Status> {
        self.identify(request.metadata()).await?;
        one_batch(Ok(metadata::foreign_keys()))
    }

    async fn get_flight_info_imported_keys(
        &self,
        query: CommandGetImportedKeys,
        request: Request<FlightDescriptor>,
    ) -> Result<Response<FlightInfo>, Status> {
        let schema = metadata::foreign_keys_schema();
        self.metadata_info(
            request.metadata(),
            &schema,
            query.as_any(),
            request.get_ref().clone(),
        )
        .await
    }

    async fn do_get_imported_keys(
        &self,
        _query: CommandGetImportedKeys,
        request: Request<Ticket>,
    ) -> Result<Response<<Self as FlightService>::DoGetStream>, Status> {
        self.identify(request.metadata()).await?;
        one_batch(Ok(metadata::foreign_keys()))
    }

    async fn get_flight_info_cross_reference(
        &self,
        query: CommandGetCrossReference,
        request: Request<FlightDescriptor>,
    ) -> Result<Response<FlightInfo>, Status> {
        let schema = metadata::foreign_keys_schema();
        self.metadata_info(
            request.metadata(),
            &schema,
            query.as_any(),
            request.get_ref().clone(),
        )
        .await
    }

    async fn do_get_cross_reference(
        &self,
        _query: CommandGetCrossReference,
        request: Request<Ticket>,
    ) -> Result<Response<<Self as FlightService>::DoGetStream>, Status> {
        self.identify(request.metadata()).await?;
        one_batch(Ok(metadata::foreign_keys()))
    }

    // --- cancellation and anything else ---

    async fn do_action_cancel_query(
        &self,
        query: ActionCancelQueryRequest,
        request: Request<Action>,
    ) -> Result<ActionCancelQueryResult, Status> {
        let identity = self.identify(request.metadata()).await?;
        let info = FlightInfo::decode(&*query.info)
            .map_err(|e| Status::invalid_argument(format!("not a FlightInfo: {e}")))?;
        // CancelResult: 1 = cancelled, 3 = not cancellable (the enum is not re-exported).
        let result = match self.cancel(&identity, &info) {
            CancelStatus::Cancelled => 1,
            _ => 3,
        };
        Ok(ActionCancelQueryResult { result })
    }

    async fn do_action_fallback(
        &self,
        request: Request<Action>,
    ) -> Result<Response<<Self as FlightService>::DoActionStream>, Status> {
        let identity = self.identify(request.metadata()).await?;
        if request.get_ref().r#type != CANCEL_FLIGHT_INFO {
            return Err(Status::unimplemented(format!(
                "unknown action `{}`",
                request.get_ref().r#type
            )));
        }
        let cancel = CancelFlightInfoRequest::decode(&*request.get_ref().body)
            .map_err(|e| Status::invalid_argument(format!("not a CancelFlightInfoRequest: {e}")))?;
        let info = cancel
            .info
            .ok_or_else(|| Status::invalid_argument("CancelFlightInfoRequest without info"))?;
        let result = CancelFlightInfoResult::new(self.cancel(&identity, &info));
        Ok(Response::new(Box::pin(futures::stream::iter([Ok(
            arrow_flight::Result {
                body: result.encode_to_vec().into(),
            },
        )]))))
    }

    async fn list_custom_actions(&self) -> Option<Vec<Result<ActionType, Status>>> {
        Some(vec![Ok(ActionType {
            r#type: CANCEL_FLIGHT_INFO.into(),
            description: "Cancels the query of a FlightInfo.\nRequest: CancelFlightInfoRequest\nResponse: CancelFlightInfoResult".into(),
        })])
    }

    async fn register_sql_info(&self, _id: i32, _result: &SqlInfo) {}
}
