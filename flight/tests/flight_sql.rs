//! The Flight SQL server end to end, with arrow-flight's own clients: every
//! command, the auth and error paths, tenancy, ingest, limits, TLS, shutdown.

#[path = "../../engine/tests/integration/common/mod.rs"]
mod common;

use std::net::SocketAddr;
use std::time::Duration;

use arrow_flight::decode::FlightRecordBatchStream;
use arrow_flight::encode::FlightDataEncoderBuilder;
use arrow_flight::error::FlightError;
use arrow_flight::flight_service_client::FlightServiceClient;
use arrow_flight::sql::client::FlightSqlServiceClient;
use arrow_flight::sql::{
    ActionClosePreparedStatementRequest, ActionCreatePreparedStatementRequest,
    ActionCreatePreparedStatementResult, Any, CommandGetCatalogs, CommandGetCrossReference,
    CommandGetDbSchemas, CommandGetExportedKeys, CommandGetImportedKeys, CommandGetPrimaryKeys,
    CommandGetSqlInfo, CommandGetTableTypes, CommandGetTables, CommandGetXdbcTypeInfo,
    CommandPreparedStatementQuery, CommandStatementIngest, CommandStatementQuery,
    CommandStatementSubstraitPlan, CommandStatementUpdate, ProstMessageExt, SqlInfo,
    TableDefinitionOptions, TableExistsOption, TableNotExistOption,
};
use arrow_flight::{Action, CancelFlightInfoRequest, CancelFlightInfoResult, CancelStatus};
use arrow_flight::{FlightDescriptor, FlightInfo, Ticket};
use futures::{StreamExt, TryStreamExt};
use gyrus_engine::datafusion::arrow::array::{Array, AsArray, RecordBatch};
use gyrus_engine::datafusion::arrow::datatypes::{DataType, Int64Type, Schema, TimeUnit};
use gyrus_engine::{KeyRingConfig, Role, SessionLimits, Store, TenantId, WriteRequest};
use gyrus_flight::{ServerConfig, serve_on};
use prost::Message;
use tokio::sync::oneshot;
use tonic::transport::Channel;
use tonic::{Code, Request, Status};

use common::{batch, day, rows};

struct Harness {
    addr: SocketAddr,
    store: Store,
    /// `(key id, full key)` per name.
    acme_reader: (String, String),
    acme_writer: (String, String),
    globex_reader: (String, String),
    stop: Option<oneshot::Sender<()>>,
    server: tokio::task::JoinHandle<()>,
    _dir: tempfile::TempDir,
}

async fn start(configure: impl FnOnce(&mut ServerConfig)) -> Harness {
    let (dir, store) = common::temp_store().await;
    let acme = TenantId::new("acme").unwrap();
    let globex = TenantId::new("globex").unwrap();
    // acme: 2 accounts x 10 days x 3 ads; globex: 1 account x 5 days x 2 ads.
    let mut acme_rows = rows("acct-1", "camp-1", day(2026, 3, 1), 10, 3, 10);
    acme_rows.extend(rows("acct-2", "camp-2", day(2026, 3, 1), 10, 3, 20));
    for (tenant, rows) in [
        (&acme, acme_rows),
        (&globex, rows("g-1", "g-camp", day(2026, 3, 1), 5, 2, 1000)),
    ] {
        store
            .write(
                tenant,
                WriteRequest::append(
                    gyrus_engine::schema::CanonicalTable::AdPerformance,
                    vec![batch(&rows)],
                ),
            )
            .await
            .unwrap();
    }
    let key = |k: gyrus_engine::NewKey| (k.key.id, k.secret);
    let acme_reader = key(store.create_key(&acme, Role::Reader).await.unwrap());
    let acme_writer = key(store.create_key(&acme, Role::Writer).await.unwrap());
    let globex_reader = key(store.create_key(&globex, Role::Reader).await.unwrap());

    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let mut config = ServerConfig::new(addr);
    config.service.keys = KeyRingConfig {
        max_age: Duration::from_millis(200),
        min_reload_interval: Duration::from_millis(50),
    };
    configure(&mut config);
    let (stop, stopped) = oneshot::channel::<()>();
    let server_store = store.clone();
    let server = tokio::spawn(async move {
        serve_on(listener, server_store, config, async {
            let _ = stopped.await;
        })
        .await
        .unwrap();
    });
    Harness {
        addr,
        store,
        acme_reader,
        acme_writer,
        globex_reader,
        stop: Some(stop),
        server,
        _dir: dir,
    }
}

impl Harness {
    async fn channel(&self) -> Channel {
        Channel::from_shared(format!("http://{}", self.addr))
            .unwrap()
            .connect()
            .await
            .unwrap()
    }

    /// A Flight SQL client that sends `key` as its bearer token.
    async fn sql(&self, key: &str) -> FlightSqlServiceClient<Channel> {
        let mut client = FlightSqlServiceClient::new(self.channel().await);
        client.set_token(key.to_string());
        client
    }

    /// The plain Flight client, for status codes the SQL client flattens.
    async fn raw(&self) -> FlightServiceClient<Channel> {
        FlightServiceClient::new(self.channel().await)
    }
}

fn authed<T>(message: T, key: Option<&str>) -> Request<T> {
    let mut request = Request::new(message);
    if let Some(key) = key {
        request
            .metadata_mut()
            .insert("authorization", format!("Bearer {key}").parse().unwrap());
    }
    request
}

fn descriptor(command: Any) -> FlightDescriptor {
    FlightDescriptor::new_cmd(command.encode_to_vec())
}

async fn get_info(
    raw: &mut FlightServiceClient<Channel>,
    key: Option<&str>,
    command: Any,
) -> Result<FlightInfo, Status> {
    Ok(raw
        .get_flight_info(authed(descriptor(command), key))
        .await?
        .into_inner())
}

/// DoGet of the first endpoint: the stream's schema and batches.
async fn fetch(
    raw: &mut FlightServiceClient<Channel>,
    key: Option<&str>,
    info: &FlightInfo,
) -> Result<(Schema, Vec<RecordBatch>), Status> {
    let ticket: Ticket = info.endpoint[0].ticket.clone().unwrap();
    let stream = raw.do_get(authed(ticket, key)).await?.into_inner();
    let mut stream =
        FlightRecordBatchStream::new_from_flight_data(stream.map_err(FlightError::from));
    let mut batches = Vec::new();
    while let Some(batch) = stream.next().await {
        batches.push(batch.map_err(into_status)?);
    }
    let schema = stream
        .schema()
        .map(|s| s.as_ref().clone())
        .ok_or_else(|| Status::internal("no schema"))?;
    Ok((schema, batches))
}

fn into_status(err: FlightError) -> Status {
    match err {
        FlightError::Tonic(status) => *status,
        other => Status::internal(other.to_string()),
    }
}

async fn query(
    raw: &mut FlightServiceClient<Channel>,
    key: &str,
    sql: &str,
) -> Result<(FlightInfo, Schema, Vec<RecordBatch>), Status> {
    let command = CommandStatementQuery {
        query: sql.into(),
        transaction_id: None,
    };
    let info = get_info(raw, Some(key), command.as_any()).await?;
    let (schema, batches) = fetch(raw, Some(key), &info).await?;
    Ok((info, schema, batches))
}

/// Plans `sql` and opens its DoGet stream.
async fn open_stream(
    raw: &mut FlightServiceClient<Channel>,
    key: &str,
    sql: &str,
) -> (FlightInfo, tonic::Streaming<arrow_flight::FlightData>) {
    let command = CommandStatementQuery {
        query: sql.into(),
        transaction_id: None,
    };
    let planned = get_info(raw, Some(key), command.as_any()).await.unwrap();
    let ticket = planned.endpoint[0].ticket.clone().unwrap();
    let stream = raw
        .do_get(authed(ticket, Some(key)))
        .await
        .unwrap()
        .into_inner();
    (planned, stream)
}

/// Reads a stream to its end, which must be an error status.
async fn until_error(stream: &mut tonic::Streaming<arrow_flight::FlightData>) -> Status {
    loop {
        match stream.message().await {
            Ok(Some(_)) => continue,
            Ok(None) => panic!("the stream ended without an error"),
            Err(status) => return status,
        }
    }
}

fn int(batches: &[RecordBatch], column: usize) -> i64 {
    let batch = batches.iter().find(|b| b.num_rows() > 0).expect("a row");
    batch.column(column).as_primitive::<Int64Type>().value(0)
}

fn rows_of(batches: &[RecordBatch]) -> usize {
    batches.iter().map(RecordBatch::num_rows).sum()
}

fn assert_code<T: std::fmt::Debug>(result: Result<T, Status>, code: Code, needle: &str) {
    match result {
        Ok(v) => panic!("expected {code:?}, got {v:?}"),
        Err(status) => {
            assert_eq!(status.code(), code, "{status:?}");
            assert!(
                status.message().contains(needle),
                "`{}` lacks `{needle}`",
                status.message()
            );
        }
    }
}

#[tokio::test]
async fn bearer_keys_and_the_basic_handshake_authenticate() {
    let h = start(|_| {}).await;
    let mut raw = h.raw().await;
    let sql = "SELECT count(*) FROM ad_performance";
    let command = CommandStatementQuery {
        query: sql.into(),
        transaction_id: None,
    };

    assert_code(
        get_info(&mut raw, None, command.as_any()).await,
        Code::Unauthenticated,
        "no credentials",
    );
    let forged = format!("gyr_{}_{}", h.acme_reader.0, "0".repeat(64));
    assert_code(
        get_info(&mut raw, Some(&forged), command.as_any()).await,
        Code::Unauthenticated,
        "invalid",
    );
    assert_code(
        get_info(&mut raw, Some("gys_nonsense"), command.as_any()).await,
        Code::Unauthenticated,
        "invalid",
    );

    // Handshake with the key id, then with the tenant name, as user.
    let secret = h.acme_reader.1.rsplit_once('_').unwrap().1.to_string();
    for user in [h.acme_reader.0.as_str(), "acme"] {
        let mut client = FlightSqlServiceClient::new(h.channel().await);
        client.handshake(user, &secret).await.unwrap();
        let token = client.token().unwrap().clone();
        assert!(token.starts_with("gys_"), "{token}");
        let info = client.execute(sql.into(), None).await.unwrap();
        let ticket = info.endpoint[0].ticket.clone().unwrap();
        let batches: Vec<RecordBatch> = client
            .do_get(ticket)
            .await
            .unwrap()
            .try_collect()
            .await
            .unwrap();
        assert_eq!(int(&batches, 0), 60);
    }
    let mut client = FlightSqlServiceClient::new(h.channel().await);
    assert!(client.handshake("acme", &"1".repeat(64)).await.is_err());
    assert!(
        client.handshake("globex", &secret).await.is_err(),
        "another tenant's name"
    );

    // Revocation ends the key and the sessions it opened.
    let mut client = FlightSqlServiceClient::new(h.channel().await);
    client.handshake("acme", &secret).await.unwrap();
    let token = client.token().unwrap().clone();
    h.store.revoke_key(&h.acme_reader.0).await.unwrap();
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_code(
        get_info(&mut raw, Some(&h.acme_reader.1), command.as_any()).await,
        Code::Unauthenticated,
        "revoked",
    );
    assert_code(
        get_info(&mut raw, Some(&token), command.as_any()).await,
        Code::Unauthenticated,
        "revoked",
    );
}

#[tokio::test]
async fn queries_stream_in_batches_with_the_announced_schema_and_tenant_data_only() {
    let h = start(|_| {}).await;
    let mut raw = h.raw().await;
    let (acme, globex) = (&h.acme_reader.1, &h.globex_reader.1);

    let (info, schema, batches) = query(
        &mut raw,
        acme,
        "SELECT * FROM ad_performance ORDER BY date, ad_id",
    )
    .await
    .unwrap();
    assert_eq!(rows_of(&batches), 60);
    let announced = info.try_decode_schema().unwrap();
    assert_eq!(announced, schema, "FlightInfo and DoGet schemas differ");
    for batch in &batches {
        assert_eq!(batch.schema().as_ref(), &announced);
    }
    // Views go out as plain types; dates and money keep their Arrow types.
    let field = |name: &str| announced.field_with_name(name).unwrap().clone();
    assert_eq!(field("platform").data_type(), &DataType::Utf8);
    assert!(!field("platform").is_nullable());
    assert!(field("ad_id").is_nullable());
    assert_eq!(field("date").data_type(), &DataType::Date32);
    assert_eq!(field("spend").data_type(), &DataType::Decimal128(18, 6));
    let (_, _, batches) = query(
        &mut raw,
        acme,
        r#"SELECT arrow_cast(now(), 'Timestamp(Microsecond, Some("UTC"))') AS t, arrow_cast('x', 'LargeUtf8') AS l, arrow_cast('x', 'BinaryView') AS b"#,
    )
    .await
    .unwrap();
    let schema = batches[0].schema();
    assert!(
        matches!(schema.field(0).data_type(), DataType::Timestamp(TimeUnit::Microsecond, Some(tz)) if tz.as_ref() == "UTC"),
        "{schema:?}"
    );
    assert_eq!(schema.field(1).data_type(), &DataType::Utf8);
    assert_eq!(schema.field(2).data_type(), &DataType::Binary);

    // Each key sees its own tenant's rows.
    let (_, _, g) = query(
        &mut raw,
        globex,
        "SELECT count(*), sum(clicks) FROM ad_performance",
    )
    .await
    .unwrap();
    assert_eq!((int(&g, 0), int(&g, 1)), (10, 10_000));

    // A large result arrives in many batches.
    let (_, _, big) = query(
        &mut raw,
        acme,
        "SELECT value FROM generate_series(1, 300000)",
    )
    .await
    .unwrap();
    assert_eq!(rows_of(&big), 300_000);
    assert!(big.len() > 3, "{} batches", big.len());

    // GetSchema answers what GetFlightInfo would announce.
    let command = CommandStatementQuery {
        query: "SELECT platform, spend FROM ad_performance".into(),
        transaction_id: None,
    };
    let announced = get_info(&mut raw, Some(acme), command.as_any())
        .await
        .unwrap()
        .try_decode_schema()
        .unwrap();
    let result = raw
        .get_schema(authed(descriptor(command.as_any()), Some(acme)))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(Schema::try_from(&result).unwrap(), announced);
    assert_eq!(
        raw.get_schema(authed(descriptor(command.as_any()), None))
            .await
            .unwrap_err()
            .code(),
        Code::Unauthenticated
    );

    // Tickets: opaque, single use, and only for the key that asked.
    let command = CommandStatementQuery {
        query: "SELECT 1".into(),
        transaction_id: None,
    };
    let planned = get_info(&mut raw, Some(acme), command.as_any())
        .await
        .unwrap();
    assert_code(
        fetch(&mut raw, Some(globex), &planned).await,
        Code::NotFound,
        "ticket",
    );
    assert_code(
        fetch(&mut raw, Some(&h.acme_writer.1), &planned).await,
        Code::NotFound,
        "ticket",
    );
    assert_code(
        fetch(&mut raw, None, &planned).await,
        Code::Unauthenticated,
        "",
    );
    fetch(&mut raw, Some(acme), &planned).await.unwrap();
    assert_code(
        fetch(&mut raw, Some(acme), &planned).await,
        Code::NotFound,
        "already fetched",
    );
}

#[tokio::test]
async fn sql_errors_writes_and_unknown_commands_get_their_codes() {
    let h = start(|_| {}).await;
    let mut raw = h.raw().await;
    let key = h.acme_writer.1.as_str();
    for (sql, code, needle) in [
        ("SELEC 1", Code::InvalidArgument, "SELEC"),
        (
            "SELECT nope FROM ad_performance",
            Code::InvalidArgument,
            "nope",
        ),
        (
            "SELECT * FROM globex.public.ad_performance",
            Code::InvalidArgument,
            "globex",
        ),
        (
            "DROP TABLE ad_performance",
            Code::PermissionDenied,
            "read-only",
        ),
        (
            "COPY (SELECT 1) TO '/tmp/x.csv'",
            Code::PermissionDenied,
            "COPY",
        ),
    ] {
        assert_code(query(&mut raw, key, sql).await, code, needle);
    }

    // Updates over SQL: refused for every role.
    let mut client = h.sql(key).await;
    let err = client
        .execute_update("DELETE FROM ad_performance".into(), None)
        .await
        .unwrap_err();
    assert!(err.to_string().contains("read-only"), "{err}");
    let update = CommandStatementUpdate {
        query: "DELETE FROM ad_performance".into(),
        transaction_id: None,
    };
    let put = futures::stream::iter([arrow_flight::FlightData {
        flight_descriptor: Some(descriptor(update.as_any())),
        ..Default::default()
    }]);
    assert_code(
        raw.do_put(authed(put, Some(key))).await.map(|_| ()),
        Code::PermissionDenied,
        "read-only",
    );

    // Commands the server does not implement.
    let substrait = CommandStatementSubstraitPlan::default();
    assert_code(
        get_info(&mut raw, Some(key), substrait.as_any()).await,
        Code::Unimplemented,
        "",
    );
    let action = Action {
        r#type: "Frobnicate".into(),
        body: Default::default(),
    };
    assert_code(
        raw.do_action(authed(action, Some(key))).await.map(|_| ()),
        Code::Unimplemented,
        "Frobnicate",
    );
    let transaction = client.begin_transaction().await;
    assert!(transaction.is_err());
}

#[tokio::test]
async fn prepared_statements_bind_parameters_and_run_again() {
    let h = start(|_| {}).await;
    let mut client = h.sql(&h.acme_reader.1).await;
    let mut statement = client
        .prepare(
            "SELECT count(*) AS n, sum(clicks) AS clicks FROM ad_performance WHERE account_id = ? AND date >= ?".into(),
            None,
        )
        .await
        .unwrap();
    let params = statement.parameter_schema().unwrap().clone();
    assert_eq!(params.fields().len(), 2);
    assert_eq!(params.field(0).data_type(), &DataType::Utf8);
    assert_eq!(params.field(1).data_type(), &DataType::Date32);
    assert_eq!(statement.dataset_schema().unwrap().field(0).name(), "n");

    let bind = |account: &str, from: chrono::NaiveDate| {
        RecordBatch::try_from_iter([
            (
                "account_id",
                std::sync::Arc::new(gyrus_engine::datafusion::arrow::array::StringArray::from(
                    vec![account],
                )) as _,
            ),
            (
                "from",
                std::sync::Arc::new(gyrus_engine::datafusion::arrow::array::Date32Array::from(
                    vec![(from - day(1970, 1, 1)).num_days() as i32],
                )) as _,
            ),
        ])
        .unwrap()
    };
    for (account, from, n, clicks) in [
        ("acct-1", day(2026, 3, 1), 30, 300),
        ("acct-2", day(2026, 3, 6), 15, 300),
        ("acct-2", day(2026, 3, 1), 30, 600),
    ] {
        statement.set_parameters(bind(account, from)).unwrap();
        let info = statement.execute().await.unwrap();
        let ticket = info.endpoint[0].ticket.clone().unwrap();
        let batches: Vec<RecordBatch> = client
            .do_get(ticket)
            .await
            .unwrap()
            .try_collect()
            .await
            .unwrap();
        assert_eq!(
            (int(&batches, 0), int(&batches, 1)),
            (n, clicks),
            "{account} from {from}"
        );
    }
    // Parameters of another type are cast to the inferred one.
    let as_text = RecordBatch::try_from_iter([
        (
            "a",
            std::sync::Arc::new(gyrus_engine::datafusion::arrow::array::StringArray::from(
                vec!["acct-1"],
            )) as _,
        ),
        (
            "b",
            std::sync::Arc::new(gyrus_engine::datafusion::arrow::array::StringArray::from(
                vec!["2026-03-09"],
            )) as _,
        ),
    ])
    .unwrap();
    statement.set_parameters(as_text).unwrap();
    let info = statement.execute().await.unwrap();
    let batches: Vec<RecordBatch> = client
        .do_get(info.endpoint[0].ticket.clone().unwrap())
        .await
        .unwrap()
        .try_collect()
        .await
        .unwrap();
    assert_eq!(int(&batches, 0), 6);
    statement.close().await.unwrap();

    // JDBC prepares plain queries too.
    let mut plain = client
        .prepare("SELECT count(*) FROM ad_performance".into(), None)
        .await
        .unwrap();
    assert!(plain.parameter_schema().unwrap().fields().is_empty());
    let info = plain.execute().await.unwrap();
    let batches: Vec<RecordBatch> = client
        .do_get(info.endpoint[0].ticket.clone().unwrap())
        .await
        .unwrap()
        .try_collect()
        .await
        .unwrap();
    assert_eq!(int(&batches, 0), 60);

    // Parameters missing.
    let mut unbound = client
        .prepare("SELECT * FROM ad_performance WHERE clicks > ?".into(), None)
        .await
        .unwrap();
    let err = unbound.execute().await.unwrap_err();
    assert!(err.to_string().contains("bind them"), "{err}");
    plain.close().await.unwrap();

    // Handles belong to the key that prepared them and die with close.
    let mut raw = h.raw().await;
    let create = ActionCreatePreparedStatementRequest {
        query: "SELECT 1".into(),
        transaction_id: None,
    };
    let action = Action {
        r#type: "CreatePreparedStatement".into(),
        body: create.as_any().encode_to_vec().into(),
    };
    let result = raw
        .do_action(authed(action, Some(&h.acme_reader.1)))
        .await
        .unwrap()
        .into_inner()
        .message()
        .await
        .unwrap()
        .unwrap();
    let created: ActionCreatePreparedStatementResult = Any::decode(&*result.body)
        .unwrap()
        .unpack()
        .unwrap()
        .unwrap();
    let execute = CommandPreparedStatementQuery {
        prepared_statement_handle: created.prepared_statement_handle.clone(),
    };
    assert_code(
        get_info(&mut raw, Some(&h.globex_reader.1), execute.as_any()).await,
        Code::NotFound,
        "prepared statement",
    );
    get_info(&mut raw, Some(&h.acme_reader.1), execute.as_any())
        .await
        .unwrap();
    let close = ActionClosePreparedStatementRequest {
        prepared_statement_handle: created.prepared_statement_handle.clone(),
    };
    let action = Action {
        r#type: "ClosePreparedStatement".into(),
        body: close.as_any().encode_to_vec().into(),
    };
    raw.do_action(authed(action, Some(&h.acme_reader.1)))
        .await
        .unwrap();
    assert_code(
        get_info(&mut raw, Some(&h.acme_reader.1), execute.as_any()).await,
        Code::NotFound,
        "prepared statement",
    );
}

#[tokio::test]
async fn metadata_commands_answer_with_the_spec_schemas() {
    let h = start(|_| {}).await;
    let mut raw = h.raw().await;
    let key = Some(h.acme_reader.1.as_str());
    let mut run = async |command: Any| {
        let info = get_info(&mut raw, key, command).await.unwrap();
        let (schema, batches) = fetch(&mut raw, key, &info).await.unwrap();
        assert_eq!(info.try_decode_schema().unwrap(), schema);
        (schema, batches)
    };
    let strings = |batches: &[RecordBatch], column: usize| -> Vec<String> {
        batches
            .iter()
            .flat_map(|b| {
                let c = b.column(column).as_string::<i32>().clone();
                (0..c.len())
                    .map(move |i| c.value(i).to_string())
                    .collect::<Vec<_>>()
            })
            .collect()
    };

    let (_, b) = run(CommandGetCatalogs {}.as_any()).await;
    assert_eq!(strings(&b, 0), ["gyrus"]);
    let (schema, b) = run(CommandGetDbSchemas::default().as_any()).await;
    assert_eq!(schema.field(0).name(), "catalog_name");
    assert_eq!(schema.field(1).name(), "db_schema_name");
    assert_eq!(strings(&b, 1), ["information_schema", "public"]);

    let (schema, b) = run(CommandGetTables {
        table_name_filter_pattern: Some("ad\\_%".into()),
        include_schema: true,
        ..Default::default()
    }
    .as_any())
    .await;
    assert_eq!(
        schema
            .fields()
            .iter()
            .map(|f| f.name().as_str())
            .collect::<Vec<_>>(),
        [
            "catalog_name",
            "db_schema_name",
            "table_name",
            "table_type",
            "table_schema"
        ]
    );
    assert_eq!(strings(&b, 2), ["ad_performance"]);
    let ipc = b[0].column(4).as_binary::<i32>().value(0);
    let table_schema = Schema::try_from(arrow_flight::IpcMessage(ipc.to_vec().into())).unwrap();
    assert_eq!(
        table_schema
            .field_with_name("campaign_id")
            .unwrap()
            .data_type(),
        &DataType::Utf8
    );
    assert_eq!(
        table_schema.field_with_name("spend").unwrap().data_type(),
        &DataType::Decimal128(18, 6)
    );
    let (_, b) = run(CommandGetTables {
        table_types: vec!["TABLE".into()],
        ..Default::default()
    }
    .as_any())
    .await;
    assert_eq!(b[0].num_rows(), 10, "the ten canonical tables");
    let (_, b) = run(CommandGetTables {
        table_types: vec!["VIEW".into()],
        db_schema_filter_pattern: Some("public".into()),
        ..Default::default()
    }
    .as_any())
    .await;
    assert_eq!(rows_of(&b), 0);

    let (_, b) = run(CommandGetTableTypes {}.as_any()).await;
    assert_eq!(strings(&b, 0), ["TABLE", "VIEW"]);

    let (schema, b) = run(CommandGetSqlInfo {
        info: vec![
            SqlInfo::FlightSqlServerName as u32,
            SqlInfo::SqlIdentifierQuoteChar as u32,
        ],
    }
    .as_any())
    .await;
    assert_eq!(schema.field(0).name(), "info_name");
    assert_eq!(b[0].num_rows(), 2);
    let (_, all) = run(CommandGetSqlInfo { info: vec![] }.as_any()).await;
    assert!(
        all[0].num_rows() > 80,
        "{} SqlInfo entries",
        all[0].num_rows()
    );

    let (schema, b) = run(CommandGetXdbcTypeInfo { data_type: None }.as_any()).await;
    assert_eq!(schema.field(0).name(), "type_name");
    assert!(strings(&b, 0).contains(&"DECIMAL".to_string()));

    let (schema, b) = run(CommandGetPrimaryKeys {
        catalog: None,
        db_schema: None,
        table: "ad_performance".into(),
    }
    .as_any())
    .await;
    assert_eq!(schema.field(5).name(), "key_sequence");
    assert!(strings(&b, 3).contains(&"campaign_id".to_string()));
    for command in [
        CommandGetExportedKeys {
            table: "ad_performance".into(),
            ..Default::default()
        }
        .as_any(),
        CommandGetImportedKeys {
            table: "orders".into(),
            ..Default::default()
        }
        .as_any(),
        CommandGetCrossReference {
            pk_table: "customers".into(),
            fk_table: "orders".into(),
            ..Default::default()
        }
        .as_any(),
    ] {
        let (schema, b) = run(command).await;
        assert_eq!(schema.fields().len(), 13);
        assert_eq!(schema.field(11).name(), "update_rule");
        assert_eq!(schema.field(11).data_type(), &DataType::UInt8);
        assert_eq!(rows_of(&b), 0);
    }
    assert_code(
        get_info(&mut raw, None, CommandGetCatalogs {}.as_any()).await,
        Code::Unauthenticated,
        "",
    );
}

fn ingest_command(table: &str, key: Option<&str>) -> CommandStatementIngest {
    CommandStatementIngest {
        table_definition_options: Some(TableDefinitionOptions {
            if_not_exist: TableNotExistOption::Create as i32,
            if_exists: TableExistsOption::Append as i32,
        }),
        table: table.into(),
        options: key
            .map(|k| [("idempotency_key".to_string(), k.to_string())].into())
            .unwrap_or_default(),
        ..Default::default()
    }
}

async fn count(h: &Harness) -> i64 {
    let mut raw = h.raw().await;
    let (_, _, b) = query(
        &mut raw,
        &h.acme_reader.1,
        "SELECT count(*) FROM ad_performance",
    )
    .await
    .unwrap();
    int(&b, 0)
}

#[tokio::test]
async fn bulk_ingest_is_for_writers_validated_atomic_and_idempotent() {
    let h = start(|_| {}).await;
    let new_rows = || batch(&rows("acct-9", "camp-9", day(2026, 4, 1), 4, 2, 5));
    let stream = |b: RecordBatch| futures::stream::iter([Ok(b)]);

    let mut reader = h.sql(&h.acme_reader.1).await;
    let err = reader
        .execute_ingest(ingest_command("ad_performance", None), stream(new_rows()))
        .await
        .unwrap_err();
    assert!(err.to_string().contains("needs a writer key"), "{err}");

    let mut writer = h.sql(&h.acme_writer.1).await;
    let n = writer
        .execute_ingest(
            ingest_command("ad_performance", Some("batch-1")),
            stream(new_rows()),
        )
        .await
        .unwrap();
    assert_eq!(n, 8);
    assert_eq!(count(&h).await, 68);
    let again = writer
        .execute_ingest(
            ingest_command("ad_performance", Some("batch-1")),
            stream(new_rows()),
        )
        .await
        .unwrap();
    assert_eq!(again, 0, "a repeated idempotency key writes nothing");
    assert_eq!(count(&h).await, 68);
    // The key again with other rows: refused, as over HTTP (one rule in the engine).
    let err = writer
        .execute_ingest(
            ingest_command("ad_performance", Some("batch-1")),
            stream(batch(&rows("acct-9", "camp-9", day(2026, 4, 1), 1, 1, 5))),
        )
        .await
        .unwrap_err();
    assert!(
        err.to_string()
            .contains("was first used for a different request"),
        "{err}"
    );
    assert_eq!(count(&h).await, 68);

    // A bad row anywhere in the stream: nothing is written.
    let good = batch(&rows("acct-8", "camp-8", day(2026, 4, 1), 2, 2, 5));
    let mut bad_rows = rows("acct-8", "camp-8", day(2026, 4, 3), 1, 1, 5);
    bad_rows[0].clicks = -3;
    let err = writer
        .execute_ingest(
            ingest_command("ad_performance", None),
            futures::stream::iter([Ok(good), Ok(batch(&bad_rows))]),
        )
        .await
        .unwrap_err();
    assert!(err.to_string().contains("nothing was written"), "{err}");
    assert_eq!(count(&h).await, 68);

    let err = writer
        .execute_ingest(ingest_command("ad_perf", None), stream(new_rows()))
        .await
        .unwrap_err();
    assert!(
        err.to_string().contains("unknown table") && err.to_string().contains("ad_performance"),
        "{err}"
    );
    let mut create = ingest_command("ad_performance", None);
    create.table_definition_options = Some(TableDefinitionOptions {
        if_not_exist: TableNotExistOption::Create as i32,
        if_exists: TableExistsOption::Fail as i32,
    });
    let err = writer
        .execute_ingest(create, stream(new_rows()))
        .await
        .unwrap_err();
    assert!(err.to_string().contains("already exists"), "{err}");

    // A plain DoPut to the table's path.
    let flight_data = FlightDataEncoderBuilder::new()
        .with_flight_descriptor(Some(FlightDescriptor::new_path(vec![
            "ad_performance".into(),
        ])))
        .build(stream(batch(&rows(
            "acct-7",
            "camp-7",
            day(2026, 4, 1),
            1,
            3,
            5,
        ))))
        .map(|r| r.unwrap());
    let mut raw = h.raw().await;
    let mut results = raw
        .do_put(authed(flight_data, Some(&h.acme_writer.1)))
        .await
        .unwrap()
        .into_inner();
    let result = results.message().await.unwrap().unwrap();
    let update = arrow_flight::sql::DoPutUpdateResult::decode(&*result.app_metadata).unwrap();
    assert_eq!(update.record_count, 3);
    assert_eq!(count(&h).await, 71);
}

#[tokio::test]
async fn deadlines_cancellation_and_memory_limits_end_queries_cleanly() {
    let h = start(|c| {
        c.service.limits = SessionLimits {
            timeout: Duration::from_secs(2),
            memory_bytes: 64 << 20,
            ..SessionLimits::default()
        };
    })
    .await;
    let mut raw = h.raw().await;
    let key = h.acme_reader.1.as_str();
    let slow = "SELECT count(*) FROM generate_series(1, 100000000000) a";
    assert_code(
        query(&mut raw, key, slow).await,
        Code::DeadlineExceeded,
        "time limit",
    );
    assert_code(
        query(&mut raw, key, "SELECT count(*) FROM generate_series(1, 20000000) a JOIN generate_series(1, 20000000) b ON a.value = b.value").await,
        Code::ResourceExhausted,
        "memory limit",
    );

    // CancelFlightInfo before the fetch: the ticket is gone.
    let command = CommandStatementQuery {
        query: slow.into(),
        transaction_id: None,
    };
    let planned = get_info(&mut raw, Some(key), command.as_any())
        .await
        .unwrap();
    let cancel = |info: &FlightInfo| Action {
        r#type: "CancelFlightInfo".into(),
        body: CancelFlightInfoRequest::new(info.clone())
            .encode_to_vec()
            .into(),
    };
    let mut other = h.raw().await;
    let answer = other
        .do_action(authed(cancel(&planned), Some(&h.globex_reader.1)))
        .await
        .unwrap()
        .into_inner()
        .message()
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        CancelFlightInfoResult::decode(&*answer.body)
            .unwrap()
            .status,
        CancelStatus::NotCancellable as i32
    );
    let answer = raw
        .do_action(authed(cancel(&planned), Some(key)))
        .await
        .unwrap()
        .into_inner()
        .message()
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        CancelFlightInfoResult::decode(&*answer.body)
            .unwrap()
            .status,
        CancelStatus::Cancelled as i32
    );
    assert_code(
        fetch(&mut raw, Some(key), &planned).await,
        Code::NotFound,
        "ticket",
    );

    // CancelFlightInfo while streaming: the stream ends with CANCELLED.
    let (planned, mut stream) = open_stream(
        &mut raw,
        key,
        "SELECT value FROM generate_series(1, 1000000000)",
    )
    .await;
    assert!(stream.message().await.unwrap().is_some());
    other
        .do_action(authed(cancel(&planned), Some(key)))
        .await
        .unwrap();
    let ended = until_error(&mut stream).await;
    assert_eq!(ended.code(), Code::Cancelled, "{ended:?}");
}

#[tokio::test]
async fn graceful_shutdown_lets_running_streams_finish_then_refuses() {
    let mut h = start(|c| c.shutdown_grace = Duration::from_secs(10)).await;
    let mut raw = h.raw().await;
    let key = h.acme_reader.1.clone();
    let (_, stream) = open_stream(
        &mut raw,
        &key,
        "SELECT value FROM generate_series(1, 2000000)",
    )
    .await;
    let mut stream =
        FlightRecordBatchStream::new_from_flight_data(stream.map_err(FlightError::from));
    let first = stream.next().await.unwrap().unwrap();
    h.stop.take().unwrap().send(()).unwrap();
    let mut rows = first.num_rows();
    while let Some(batch) = stream.next().await {
        rows += batch.unwrap().num_rows();
    }
    assert_eq!(rows, 2_000_000, "the running stream finished");
    tokio::time::timeout(Duration::from_secs(10), &mut h.server)
        .await
        .unwrap()
        .unwrap();
    assert!(
        Channel::from_shared(format!("http://{}", h.addr))
            .unwrap()
            .connect()
            .await
            .is_err()
    );
}

#[tokio::test]
async fn streams_outliving_the_grace_period_end_with_unavailable() {
    let mut h = start(|c| c.shutdown_grace = Duration::from_millis(500)).await;
    let mut raw = h.raw().await;
    let key = h.acme_reader.1.clone();
    let (_, mut stream) = open_stream(
        &mut raw,
        &key,
        "SELECT value FROM generate_series(1, 10000000000)",
    )
    .await;
    assert!(stream.message().await.unwrap().is_some());
    h.stop.take().unwrap().send(()).unwrap();
    let ended = until_error(&mut stream).await;
    assert_eq!(ended.code(), Code::Unavailable, "{ended:?}");
    tokio::time::timeout(Duration::from_secs(10), &mut h.server)
        .await
        .unwrap()
        .unwrap();
}

#[tokio::test]
async fn tls_serves_with_the_given_certificate() {
    let cert = rcgen::generate_simple_self_signed(vec!["localhost".into()]).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let (cert_path, key_path) = (dir.path().join("cert.pem"), dir.path().join("key.pem"));
    std::fs::write(&cert_path, cert.cert.pem()).unwrap();
    std::fs::write(&key_path, cert.signing_key.serialize_pem()).unwrap();
    let h = start(|c| {
        c.tls = Some(gyrus_flight::TlsFiles {
            cert: cert_path.clone(),
            key: key_path.clone(),
        });
    })
    .await;
    let tls = tonic::transport::ClientTlsConfig::new()
        .ca_certificate(tonic::transport::Certificate::from_pem(cert.cert.pem()))
        .domain_name("localhost");
    let channel = Channel::from_shared(format!("https://localhost:{}", h.addr.port()))
        .unwrap()
        .tls_config(tls)
        .unwrap()
        .connect()
        .await
        .unwrap();
    let mut raw = FlightServiceClient::new(channel);
    let (_, _, b) = query(
        &mut raw,
        &h.acme_reader.1,
        "SELECT count(*) FROM ad_performance",
    )
    .await
    .unwrap();
    assert_eq!(int(&b, 0), 60);
    // Plain gRPC against the TLS port fails.
    let plain = Channel::from_shared(format!("http://{}", h.addr))
        .unwrap()
        .connect()
        .await;
    match plain {
        Err(_) => {}
        Ok(channel) => {
            let mut plain = FlightServiceClient::new(channel);
            assert!(
                query(&mut plain, &h.acme_reader.1, "SELECT 1")
                    .await
                    .is_err()
            );
        }
    }
}

fn int_params(values: impl IntoIterator<Item = i64>) -> RecordBatch {
    RecordBatch::try_from_iter([(
        "p",
        std::sync::Arc::new(
            gyrus_engine::datafusion::arrow::array::Int64Array::from_iter_values(values),
        ) as _,
    )])
    .unwrap()
}

#[tokio::test]
async fn hostile_statements_and_bindings_are_refused_and_the_server_keeps_serving() {
    let h = start(|_| {}).await;
    let mut raw = h.raw().await;
    let key = h.acme_reader.1.clone();
    let sum = |terms: usize| format!("SELECT {}", vec!["1"; terms].join("+"));
    assert_code(
        query(&mut raw, &key, &sum(1_500_000)).await,
        Code::InvalidArgument,
        "--max-sql-kb",
    );
    assert_code(
        query(&mut raw, &key, &sum(5_000)).await,
        Code::InvalidArgument,
        "--max-sql-depth",
    );
    assert_code(
        query(&mut raw, &key, "SELECT length(repeat('x', 1000000000))").await,
        Code::InvalidArgument,
        "functions may",
    );

    // Each bound row is one execution: bounded in number, and one flat union.
    let mut client = h.sql(&key).await;
    let mut statement = client
        .prepare(
            "SELECT count(*) AS n FROM ad_performance WHERE clicks > ?".into(),
            None,
        )
        .await
        .unwrap();
    statement.set_parameters(int_params(0..200_000)).unwrap();
    let err = statement.execute().await.unwrap_err();
    assert!(err.to_string().contains("--max-bound-rows"), "{err}");
    statement
        .set_parameters(int_params((0..900).map(|i| i % 30)))
        .unwrap();
    let info = statement.execute().await.unwrap();
    let batches: Vec<RecordBatch> = client
        .do_get(info.endpoint[0].ticket.clone().unwrap())
        .await
        .unwrap()
        .try_collect()
        .await
        .unwrap();
    assert_eq!(rows_of(&batches), 900);

    // The other tenant is served throughout.
    let (_, _, batches) = query(
        &mut raw,
        &h.globex_reader.1,
        "SELECT count(*) FROM ad_performance",
    )
    .await
    .unwrap();
    assert_eq!(int(&batches, 0), 10);
}

#[tokio::test]
async fn flight_has_the_rates_slots_and_caps_of_http() {
    let h = start(|c| {
        c.service.max_unclaimed_per_key = 2;
        c.service.max_prepared_per_key = 2;
        c.service.admission.max_concurrent = 4;
        c.service.admission.max_concurrent_per_tenant = 1;
        c.service.limits.timeout = Duration::from_secs(60);
    })
    .await;
    let mut raw = h.raw().await;
    let key = h.acme_reader.1.clone();
    let plan = |sql: &str| CommandStatementQuery {
        query: sql.into(),
        transaction_id: None,
    };

    // Planned queries nobody fetches are capped per key.
    let first = get_info(&mut raw, Some(&key), plan("SELECT 1").as_any())
        .await
        .unwrap();
    get_info(&mut raw, Some(&key), plan("SELECT 2").as_any())
        .await
        .unwrap();
    assert_code(
        get_info(&mut raw, Some(&key), plan("SELECT 3").as_any()).await,
        Code::ResourceExhausted,
        "--max-unclaimed-per-key",
    );
    fetch(&mut raw, Some(&key), &first).await.unwrap();
    get_info(&mut raw, Some(&key), plan("SELECT 3").as_any())
        .await
        .unwrap();

    // Open prepared statements are capped per key.
    let mut client = h.sql(&h.acme_writer.1).await;
    let _a = client.prepare("SELECT 1".into(), None).await.unwrap();
    let _b = client.prepare("SELECT 2".into(), None).await.unwrap();
    let err = client.prepare("SELECT 3".into(), None).await.unwrap_err();
    assert!(err.to_string().contains("--max-prepared-per-key"), "{err}");

    // A running stream holds acme's one slot: acme is refused, globex is not.
    let (_, running) = open_stream(
        &mut raw,
        &h.acme_writer.1,
        "SELECT count(*) FROM generate_series(1, 100000000000)",
    )
    .await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    let refused = get_info(&mut raw, Some(&key), plan("SELECT 4").as_any()).await;
    let status = refused.unwrap_err();
    assert_eq!(status.code(), Code::ResourceExhausted, "{status:?}");
    assert!(status.message().contains("this tenant"), "{status:?}");
    assert_eq!(
        status
            .metadata()
            .get("retry-after")
            .unwrap()
            .to_str()
            .unwrap(),
        "1"
    );
    let (_, _, batches) = query(
        &mut raw,
        &h.globex_reader.1,
        "SELECT count(*) FROM ad_performance",
    )
    .await
    .unwrap();
    assert_eq!(int(&batches, 0), 10);

    // A client that walks away from its stream gives the slot back (the
    // stream is reset; the server drops it and stops the query).
    drop(running);
    let mut freed = None;
    for _ in 0..100 {
        tokio::time::sleep(Duration::from_millis(100)).await;
        let writer = Some(h.acme_writer.1.as_str());
        freed = Some(get_info(&mut raw, writer, plan("SELECT 4").as_any()).await);
        if matches!(freed, Some(Ok(_))) {
            break;
        }
    }
    assert!(
        matches!(freed, Some(Ok(_))),
        "the slot stayed taken: {freed:?}"
    );
}

#[tokio::test]
async fn flight_rate_limits_each_key_with_retry_after() {
    let h = start(|c| {
        c.service.admission.key_rate = gyrus_engine::admission::RateLimit {
            per_second: 0.2,
            burst: 3.0,
        };
    })
    .await;
    let mut raw = h.raw().await;
    for _ in 0..3 {
        get_info(
            &mut raw,
            Some(&h.acme_reader.1),
            CommandGetCatalogs {}.as_any(),
        )
        .await
        .unwrap();
    }
    let status = get_info(
        &mut raw,
        Some(&h.acme_reader.1),
        CommandGetCatalogs {}.as_any(),
    )
    .await
    .unwrap_err();
    assert_eq!(status.code(), Code::ResourceExhausted, "{status:?}");
    assert!(
        status.message().contains("requests per second"),
        "{status:?}"
    );
    assert_eq!(
        status
            .metadata()
            .get("retry-after")
            .unwrap()
            .to_str()
            .unwrap(),
        "5"
    );
    // Another key has its own bucket.
    get_info(
        &mut raw,
        Some(&h.globex_reader.1),
        CommandGetCatalogs {}.as_any(),
    )
    .await
    .unwrap();
}

/// `system` tables over Flight SQL: an admin sees the tenant's queries on
/// this surface (with the key, rows and end), a reader is refused with the
/// reason, and a ticket planned and never fetched ends cancelled.
#[tokio::test]
async fn system_tables_over_flight_record_queries_and_refuse_readers() {
    let h = start(|c| c.service.unclaimed_query_ttl = Duration::from_millis(200)).await;
    let acme = TenantId::new("acme").unwrap();
    let admin = h.store.create_key(&acme, Role::Admin).await.unwrap();
    let mut raw = h.raw().await;
    let (_, _, batches) = query(&mut raw, &h.acme_reader.1, "SELECT * FROM ad_performance")
        .await
        .unwrap();
    assert_eq!(rows_of(&batches), 60);
    // Planned, never fetched.
    let command = CommandStatementQuery {
        query: "SELECT 'never fetched' AS x".into(),
        transaction_id: None,
    };
    get_info(&mut raw, Some(&h.acme_reader.1), command.as_any())
        .await
        .unwrap();
    // Past its time to be fetched, the next query filed drops it.
    tokio::time::sleep(Duration::from_millis(300)).await;
    query(&mut raw, &h.globex_reader.1, "SELECT 'globex only' AS x")
        .await
        .unwrap();
    assert_code(
        query(&mut raw, &h.acme_reader.1, "SELECT * FROM system.queries").await,
        Code::PermissionDenied,
        "admin key",
    );
    let (_, _, batches) = query(
        &mut raw,
        &admin.secret,
        "SELECT surface, key_id, status, rows, sql FROM system.queries ORDER BY started_at",
    )
    .await
    .unwrap();
    let text = gyrus_engine::datafusion::arrow::util::pretty::pretty_format_batches(&batches)
        .unwrap()
        .to_string();
    let lines: Vec<&str> = text.lines().filter(|l| l.contains("flight_sql")).collect();
    // The reader's query, the ticket never fetched, the refused read, and
    // this one (running); nothing of globex.
    assert_eq!(lines.len(), 4, "{text}");
    assert!(
        lines[0].contains(&h.acme_reader.0)
            && lines[0].contains("| ok ")
            && lines[0].contains("| 60 "),
        "{text}"
    );
    assert!(lines[1].contains("cancelled"), "{text}");
    assert!(lines[2].contains("error"), "{text}");
    assert!(lines[3].contains("running"), "{text}");
    assert!(!text.contains("globex"), "{text}");
}
