//! The command line: every flag, its `GYRUS_*` variable, and its help.

use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, Parser, Subcommand, ValueEnum};

#[derive(Debug, Parser)]
#[command(
    name = "gyrus",
    version,
    about = "Analytics and prediction engine for marketing data",
    long_about = "Gyrus keeps ad, analytics, commerce and CRM data as Delta Lake tables per tenant, \
                  answers SQL over them with DataFusion, and serves them to BI tools and applications."
)]
pub struct Cli {
    #[command(flatten)]
    pub global: GlobalArgs,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Default, Args)]
pub struct GlobalArgs {
    /// Data root: a local folder or an object store URL (s3://bucket/prefix).
    #[arg(long, global = true, env = "GYRUS_DATA", value_name = "DIR|URL")]
    pub data: Option<String>,
    /// Settings file; `gyrus.toml` in the working folder is read when present.
    #[arg(long, global = true, env = "GYRUS_CONFIG", value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Log format on standard error.
    #[arg(long, global = true, env = "GYRUS_LOG_FORMAT", value_enum)]
    pub log_format: Option<LogFormat>,
    /// Log filter, e.g. `info` or `gyrus_engine=debug` (spans for queries and writes are at info).
    #[arg(long, global = true, env = "GYRUS_LOG", value_name = "FILTER")]
    pub log_level: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    Pretty,
    Json,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum OutputFormat {
    Table,
    Csv,
    Json,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Generate demo data for the tenants acme, globex and initech, load it,
    /// and print an admin key for acme with example queries.
    Demo {
        /// How much data: small (seconds), medium, large (10M+ ad rows for each tenant).
        #[arg(long, default_value = "small", env = "GYRUS_DEMO_SCALE")]
        scale: gyrus_datasets::Scale,
        /// Load the data and stop, without serving it.
        #[arg(long)]
        no_serve: bool,
        /// Load the data without training ORACLE on it.
        #[arg(long)]
        no_train: bool,
        /// Only these tenants (comma separated).
        #[arg(long, value_delimiter = ',', default_value = "acme,globex,initech")]
        tenants: Vec<String>,
        #[command(flatten)]
        serve: ServeArgs,
    },
    /// Train model families and write their output tables (`forecasts`, …),
    /// for every tenant unless --tenant. A run that fails or scores worse than
    /// the serving model is recorded and does not replace it.
    Train {
        #[arg(long)]
        tenant: Option<String>,
        /// Families to train, comma separated: oracle (forecasts), curiosity
        /// (insights: anomalies, change points, movers, segments,
        /// benchmarks), memory (customer and lead scores), reflexes
        /// (response curves, and the automatic plan in `budget_plans`).
        #[arg(
            long,
            value_delimiter = ',',
            default_value = "oracle,curiosity,memory,reflexes"
        )]
        family: Vec<String>,
        /// Days ORACLE forecasts into the `forecasts` table.
        #[arg(long, default_value_t = 28, value_name = "DAYS")]
        horizon: usize,
        /// Monthly discount rate of MEMORY's 365-day customer lifetime value.
        #[arg(long, default_value_t = 0.01, value_name = "RATE")]
        monthly_discount_rate: f64,
        /// Days of orders MEMORY holds back to validate its purchase
        /// forecasts (default: a third of the history, at most 182).
        #[arg(long, value_name = "DAYS")]
        holdout_days: Option<u32>,
        /// CURIOSITY's significance level of the anomaly test, per series
        /// (lower reports fewer anomalies).
        #[arg(long, default_value_t = 0.05, value_name = "ALPHA")]
        anomaly_alpha: f64,
        /// Print one JSON object per tenant and family instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// Allocate a budget over response curves given in a JSON file (`-` for
    /// stdin): {"budget", "efficiency"?, "entities": [{"id", "curve":
    /// {"baseline", "beta", "half_saturation", "shape", "adstock"}, "lower"?,
    /// "upper"?, "efficiency_weight"?}]}, or a list of such problems. Prints
    /// one JSON line per problem: the spends, the total response and the
    /// seconds the solve took.
    Allocate {
        /// The problem file.
        input: std::path::PathBuf,
    },
    /// Serve the tenants' tables over Arrow Flight SQL until SIGTERM or Ctrl-C.
    Serve {
        #[command(flatten)]
        serve: ServeArgs,
    },
    /// Run one read-only SQL query over a tenant's tables.
    Sql {
        #[arg(long, env = "GYRUS_TENANT")]
        tenant: String,
        /// How to print the result.
        #[arg(long, value_enum, default_value = "table")]
        format: OutputFormat,
        #[command(flatten)]
        limits: QueryLimitArgs,
        /// The query, e.g. "SELECT platform, sum(spend) FROM ad_performance GROUP BY 1".
        sql: String,
    },
    /// Load CSV, JSON lines or Parquet files into a tenant's table in one atomic write.
    Ingest {
        #[arg(long, env = "GYRUS_TENANT")]
        tenant: String,
        /// The canonical table, e.g. ad_performance.
        #[arg(long)]
        table: String,
        /// A repeated key changes nothing; by default the files' content decides.
        #[arg(long)]
        idempotency_key: Option<String>,
        /// Replace the slice from this day (inclusive) with the files' rows.
        #[arg(long, value_name = "YYYY-MM-DD", requires = "replace_to")]
        replace_from: Option<chrono::NaiveDate>,
        /// Replace the slice up to this day (inclusive).
        #[arg(long, value_name = "YYYY-MM-DD", requires = "replace_from")]
        replace_to: Option<chrono::NaiveDate>,
        /// Narrow the replaced slice, e.g. --match platform=google_ads --match account_id=123.
        #[arg(long = "match", value_name = "COLUMN=VALUE", requires = "replace_from")]
        matches: Vec<String>,
        /// The files.
        #[arg(required = true)]
        files: Vec<PathBuf>,
    },
    /// Add, list, sync, follow and remove platform connectors.
    Connectors {
        #[command(subcommand)]
        command: ConnectorsCommand,
    },
    /// Create, list and revoke API keys.
    Keys {
        #[command(subcommand)]
        command: KeysCommand,
    },
    /// Rows, files, bytes and Delta version of a tenant's tables.
    Tables {
        #[arg(long, env = "GYRUS_TENANT")]
        tenant: String,
    },
    /// Compact small files (all tenants and the system tables unless --tenant).
    Optimize {
        #[arg(long)]
        tenant: Option<String>,
    },
    /// List, export and erase tenants.
    Tenants {
        #[command(subcommand)]
        command: TenantsCommand,
    },
    /// Write a consistent snapshot of the whole store (or one tenant) into an
    /// empty folder or object store prefix: each table at one Delta version,
    /// readable as a store itself, with `backup.json` written last.
    Backup {
        /// Where: a new local folder, file:// or s3:// URL.
        #[arg(long, value_name = "DIR|URL")]
        to: String,
        /// Only this tenant: its tables and its rows of the system tables.
        #[arg(long)]
        tenant: Option<String>,
    },
    /// Restore a snapshot written by `gyrus backup` or `gyrus tenants export`
    /// into this store (empty for a whole-store snapshot; without the
    /// tenant's tables for a tenant's). Running it again after an
    /// interruption finishes it.
    Restore {
        /// The snapshot's folder or URL.
        #[arg(long, value_name = "DIR|URL")]
        from: String,
    },
    /// Delete files that no recent table version references (all tenants and the
    /// system tables unless --tenant).
    Vacuum {
        #[arg(long)]
        tenant: Option<String>,
        /// Keep files referenced within this many hours (readers of older versions may fail).
        #[arg(long, default_value_t = 168)]
        retention_hours: u64,
    },
}

#[derive(Debug, Subcommand)]
pub enum TenantsCommand {
    /// The tenants in the store, with their tables' rows and bytes.
    List,
    /// Write one tenant's snapshot (tables, keys, model runs, connectors)
    /// into an empty folder or prefix; `gyrus restore --from` reads it back.
    Export {
        #[arg(long)]
        tenant: String,
        /// Where: a new local folder, file:// or s3:// URL.
        #[arg(long, value_name = "DIR|URL")]
        to: String,
    },
    /// Remove everything of a tenant: its tables, keys, connectors with their
    /// sealed credentials and cursors, model runs, leases; prints what it
    /// removed. Stop its syncs and training first.
    Erase {
        #[arg(long)]
        tenant: String,
    },
}

#[derive(Debug, Subcommand)]
pub enum KeysCommand {
    /// Create a key; its secret is printed once, as the last line.
    Create {
        #[arg(long)]
        tenant: String,
        /// reader (SQL, predictions), writer (plus ingest) or admin (plus keys, connectors, retraining).
        #[arg(long)]
        role: String,
    },
    /// List keys (never their secrets).
    List,
    /// Revoke a key by its id.
    Revoke { id: String },
}

#[derive(Debug, Subcommand)]
pub enum ConnectorsCommand {
    /// Add a connector; its credentials are encrypted with GYRUS_SECRET_KEY.
    Add {
        #[arg(long, env = "GYRUS_TENANT")]
        tenant: String,
        /// The platform's name: google_ads, youtube_ads, meta_ads, linkedin_ads,
        /// tiktok_ads, ga4, shopify, stripe, hubspot, salesforce, gohighlevel
        /// (an unknown name is answered with the list this build has).
        #[arg(long)]
        platform: String,
        /// The platform account (customer id, ad account, property, shop, ...).
        #[arg(long)]
        account: String,
        /// A JSON object of the platform's credential fields; `-` reads it from
        /// standard input. (Never a flag value: it would land in shell history.)
        #[arg(long, value_name = "FILE")]
        credentials: PathBuf,
        /// The API's base URL (a proxy, a regional endpoint, a test fake).
        #[arg(long)]
        base_url: Option<String>,
        /// The OAuth2 token service's base URL.
        #[arg(long)]
        auth_url: Option<String>,
        /// The first day to read [default: a year ago].
        #[arg(long)]
        start_date: Option<chrono::NaiveDate>,
        /// Days re-read before the cursor on each sync [default: 30].
        #[arg(long)]
        lookback_days: Option<u32>,
        /// Minutes between syncs under `gyrus serve` (0: only when asked) [default: 360].
        #[arg(long)]
        schedule_minutes: Option<u32>,
        /// A platform setting, e.g. --setting conversion_action_types=purchase,lead.
        #[arg(long = "setting", value_name = "KEY=VALUE")]
        settings: Vec<String>,
    },
    /// List connectors (never their credentials).
    List {
        #[arg(long)]
        tenant: Option<String>,
    },
    /// Sync a connector now.
    Sync {
        id: String,
        /// Read everything from the start date again.
        #[arg(long)]
        full: bool,
        /// The last day to read [default: today, UTC].
        #[arg(long)]
        today: Option<chrono::NaiveDate>,
    },
    /// A connector's last run, cursor and next scheduled run.
    Status { id: String },
    /// Remove a connector and its credentials (its data stays).
    Remove { id: String },
}

#[derive(Debug, Args, Clone)]
pub struct ServeArgs {
    /// Flight SQL address (port 0 picks a free port; the address is printed).
    #[arg(long, env = "GYRUS_FLIGHT_ADDR", default_value = "127.0.0.1:50051")]
    pub flight_addr: std::net::SocketAddr,
    /// HTTP API address (port 0 picks a free port; the address is printed).
    #[arg(long, env = "GYRUS_HTTP_ADDR", default_value = "127.0.0.1:8080")]
    pub http_addr: std::net::SocketAddr,
    /// PEM certificate chain: serve Flight SQL over TLS.
    #[arg(
        long,
        env = "GYRUS_TLS_CERT",
        requires = "tls_key",
        value_name = "FILE"
    )]
    pub tls_cert: Option<PathBuf>,
    /// PEM private key of --tls-cert.
    #[arg(
        long,
        env = "GYRUS_TLS_KEY",
        requires = "tls_cert",
        value_name = "FILE"
    )]
    pub tls_key: Option<PathBuf>,
    /// On SIGTERM, how long running result streams may take to finish.
    #[arg(
        long,
        env = "GYRUS_SHUTDOWN_GRACE_SECS",
        default_value_t = 30,
        value_name = "SECONDS"
    )]
    pub shutdown_grace_secs: u64,
    /// Largest Arrow payload one ingest may send.
    #[arg(
        long,
        env = "GYRUS_MAX_INGEST_MB",
        default_value_t = 2048,
        value_name = "MB"
    )]
    pub max_ingest_mb: usize,
    /// HTTP and Flight SQL: requests per second each API key may make (0: no limit).
    #[arg(
        long,
        env = "GYRUS_RATE_LIMIT",
        default_value_t = 100.0,
        value_name = "PER_SECOND"
    )]
    pub rate_limit: f64,
    /// HTTP and Flight SQL: requests a key may make at once after being idle.
    #[arg(
        long,
        env = "GYRUS_RATE_BURST",
        default_value_t = 200.0,
        value_name = "REQUESTS"
    )]
    pub rate_burst: f64,
    /// HTTP and Flight SQL: requests in progress at once; more are answered
    /// 503 (HTTP) or RESOURCE_EXHAUSTED (Flight SQL).
    #[arg(
        long,
        env = "GYRUS_MAX_CONCURRENT",
        default_value_t = 64,
        value_name = "REQUESTS"
    )]
    pub max_concurrent: usize,
    /// HTTP and Flight SQL: ingests in progress at once (each holds its rows
    /// in memory); more get 503 / RESOURCE_EXHAUSTED. One tenant may run half.
    #[arg(
        long,
        env = "GYRUS_MAX_CONCURRENT_INGESTS",
        default_value_t = 4,
        value_name = "REQUESTS"
    )]
    pub max_concurrent_ingests: usize,
    /// HTTP and Flight SQL: requests per second one tenant may make over all
    /// its keys (0: no limit); bursts of twice that.
    #[arg(
        long,
        env = "GYRUS_TENANT_RATE_LIMIT",
        default_value_t = 400.0,
        value_name = "PER_SECOND"
    )]
    pub tenant_rate_limit: f64,
    /// HTTP and Flight SQL: requests one tenant may have in progress
    /// [default: half of --max-concurrent].
    #[arg(long, env = "GYRUS_MAX_CONCURRENT_PER_TENANT", value_name = "REQUESTS")]
    pub max_concurrent_per_tenant: Option<usize>,
    /// Flight SQL: rows of parameters one prepared statement may be bound with.
    #[arg(
        long,
        env = "GYRUS_MAX_BOUND_ROWS",
        default_value_t = 1000,
        value_name = "ROWS"
    )]
    pub max_bound_rows: usize,
    /// Flight SQL: queries one key may have planned and not yet fetched.
    #[arg(
        long,
        env = "GYRUS_MAX_UNCLAIMED_PER_KEY",
        default_value_t = 16,
        value_name = "QUERIES"
    )]
    pub max_unclaimed_per_key: usize,
    /// Flight SQL: prepared statements one key may hold open.
    #[arg(
        long,
        env = "GYRUS_MAX_PREPARED_PER_KEY",
        default_value_t = 64,
        value_name = "STATEMENTS"
    )]
    pub max_prepared_per_key: usize,
    /// HTTP: largest JSON answer, in MiB of Arrow data (CSV and Arrow answers stream).
    #[arg(
        long,
        env = "GYRUS_JSON_MAX_MB",
        default_value_t = 32,
        value_name = "MB"
    )]
    pub json_max_mb: usize,
    /// HTTP: let tenant admins give connectors their own base and token URLs
    /// (proxies, regional endpoints); off, the server only calls the platforms.
    #[arg(long, env = "GYRUS_ALLOW_CONNECTOR_URLS")]
    pub allow_connector_urls: bool,
    /// HTTP: the longest a request may take to get its answer started.
    #[arg(
        long,
        env = "GYRUS_REQUEST_TIMEOUT_SECS",
        default_value_t = 120,
        value_name = "SECONDS"
    )]
    pub request_timeout_secs: u64,
    /// HTTP: largest request body (an ingest of more rows goes in parts, or over Flight SQL).
    #[arg(
        long,
        env = "GYRUS_MAX_BODY_MB",
        default_value_t = 256,
        value_name = "MB"
    )]
    pub max_body_mb: usize,
    /// Retrain every tenant's models this often (e.g. 24h, 90m; 0 turns the
    /// schedule off). A tenant whose data changed since its last run is
    /// retrained sooner, at most every --retrain-min-gap.
    #[arg(
        long,
        env = "GYRUS_RETRAIN_EVERY",
        default_value = "24h",
        value_parser = parse_duration,
        value_name = "DURATION"
    )]
    pub retrain_every: Duration,
    /// The shortest time between two runs of one tenant when new data lands.
    #[arg(
        long,
        env = "GYRUS_RETRAIN_MIN_GAP",
        default_value = "10m",
        value_parser = parse_duration,
        value_name = "DURATION"
    )]
    pub retrain_min_gap: Duration,
    #[command(flatten)]
    pub limits: QueryLimitArgs,
}

#[derive(Debug, Default, Args, Clone)]
pub struct QueryLimitArgs {
    /// Memory a query may hold before it spills or fails.
    #[arg(long, env = "GYRUS_QUERY_MEMORY_MB", value_name = "MB")]
    pub memory_limit_mb: Option<usize>,
    /// Time a query may run.
    #[arg(long, env = "GYRUS_QUERY_TIMEOUT_SECS", value_name = "SECONDS")]
    pub timeout_secs: Option<u64>,
    /// Memory all queries of the process may hold together; each query's
    /// own limit is drawn from it [default: half the machine's memory].
    #[arg(long, env = "GYRUS_MEMORY_BUDGET_MB", value_name = "MB")]
    pub memory_budget_mb: Option<usize>,
    /// Longest SQL statement accepted [default: 1024].
    #[arg(long, env = "GYRUS_MAX_SQL_KB", value_name = "KB")]
    pub max_sql_kb: Option<usize>,
    /// Deepest SQL statement accepted: nested brackets plus operators, casts
    /// and set operations chained inside them [default: 1000].
    #[arg(long, env = "GYRUS_MAX_SQL_DEPTH", value_name = "LEVELS")]
    pub max_sql_depth: Option<usize>,
    /// Most values of one SQL `IN (…)` list [default: 50000].
    #[arg(long, env = "GYRUS_MAX_IN_LIST", value_name = "VALUES")]
    pub max_in_list: Option<usize>,
}

/// Parses `90s`, `10m`, `24h`, `7d` (or plain seconds).
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let text = text.trim();
    let split = text
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(text.len());
    let (number, unit) = text.split_at(split);
    let number: u64 = number
        .parse()
        .map_err(|_| format!("`{text}` is not a duration: use e.g. 90s, 10m, 24h or 7d"))?;
    let seconds = match unit {
        "" | "s" => 1,
        "m" => 60,
        "h" => 3600,
        "d" => 86_400,
        other => {
            return Err(format!(
                "unknown unit `{other}` in `{text}`: use s, m, h or d"
            ));
        }
    };
    Ok(Duration::from_secs(number.saturating_mul(seconds)))
}
