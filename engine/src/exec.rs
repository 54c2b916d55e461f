//! Where query work runs: runtimes of their own, apart from the servers',
//! one lane per active tenant.
//!
//! Planning (constant folding included) and execution of client SQL are CPU
//! work that does not yield while it computes. On the servers' runtime a few
//! such queries would occupy every worker and starve health checks, other
//! tenants' requests and the deadlines themselves. Here they run on a query
//! runtime's threads (deep stacks, named `gyrus-query-<lane>`), the servers
//! wait on them asynchronously, and the operating system shares the cores
//! between all of them. A caller that stops waiting (a deadline, a client
//! gone) aborts the work at its next await; a panic in it becomes an error of
//! that one query.
//!
//! **Fairness between tenants.** Work inside one tokio runtime is scheduled
//! first come, first served: one tenant's many CPU-bound queries would queue
//! every other tenant's work behind theirs. So there are [`LANES`] lanes,
//! each with a thread per core, and each tenant with work in progress holds
//! one lane: all its work (and every task DataFusion spawns for it) runs on
//! that lane's threads. A tenant arriving is given the lane with the fewest
//! tenants, so up to [`LANES`] busy tenants never share one, and the
//! operating system's scheduler, which is fair between threads and favours
//! threads that have been waiting, shares the cores between lanes.
//!
//! Each lane has two runtimes: work a tenant starts while it has nothing
//! else in progress runs at normal priority; work it starts while other
//! work of its own is still running (a flood, a batch, a dashboard's burst)
//! runs on threads with a lower priority (nice [`BACKGROUND_NICE`]). So a
//! tenant asking one thing at a time is served almost as on an idle server
//! however much another tenant runs, and a tenant alone still has every core:
//! priority only matters when the cores are contended. Lanes start on first
//! use; idle threads cost nothing.
//!
//! ```
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() {
//! use gyrus_engine::exec::Lane;
//! use gyrus_engine::store::TenantId;
//!
//! let lane = Lane::of(&TenantId::new("acme").unwrap());
//! let answer = lane.offload(async { 6 * 7 }).await.unwrap();
//! assert_eq!(answer, 42);
//! # }
//! ```

use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, LazyLock, Mutex, OnceLock};
use std::task::{Context, Poll};

use datafusion::arrow::array::RecordBatch;
use datafusion::arrow::datatypes::SchemaRef;
use datafusion::error::DataFusionError;
use datafusion::execution::{RecordBatchStream, SendableRecordBatchStream, TaskContext};
use datafusion::physical_plan::ExecutionPlan;
use futures::{Stream, StreamExt as _};
use tokio::runtime::Runtime;
use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinHandle;

use crate::error::{EngineError, Result};
use crate::store::TenantId;

/// Stack of every thread that walks query trees: far more than the depth
/// bounds of [`crate::shape`] need, so that no accepted statement can
/// overflow it. Measured on a debug build (frames several times larger than
/// in release): 1,000 chained UNIONs need 13 to 32 MiB, an `IN` list of
/// 50,000 values on a Delta scan 55 to 110 MiB. Only the pages touched are
/// ever committed.
pub const QUERY_STACK_BYTES: usize = 256 << 20;

/// Threads each query runtime may start, per core, for blocking work: reads
/// of local table files (the object store reads them on blocking threads)
/// and [`Lane::compute`]. Tokio's default is 512 a runtime. Under a soak of
/// three tenants writing and querying small tables each runtime grew to ~90
/// such threads, and the allocator keeps freed memory with the thread that
/// allocated it: 4 to 6 GB of RSS for a few hundred MB of data (RESULTS,
/// "Where the soak's memory went"). A read of a local file is short; a few
/// threads a core keep the disk and the cores busy.
pub const BLOCKING_THREADS_PER_CORE: usize = 4;

/// The cores this process may use (2 when the system cannot say): each
/// query runtime's workers and Rayon threads, and the basis of its
/// blocking-thread bound.
pub fn cores() -> usize {
    std::thread::available_parallelism().map_or(2, |n| n.get())
}

/// How many lanes there are: up to this many tenants with work in progress
/// each run on threads of their own; beyond it, tenants share.
pub const LANES: usize = 8;

/// The nice value of the threads that run a tenant's work beyond its first
/// piece in progress: about a tenth of the CPU weight of normal threads.
pub const BACKGROUND_NICE: i32 = 10;

struct Lanes {
    /// Per lane, the runtime at normal priority and the background one.
    runtimes: [[OnceLock<std::io::Result<Runtime>>; 2]; LANES],
    /// Per lane and priority, the Rayon pool of [`Lane::compute`].
    pools: [[OnceLock<std::result::Result<rayon::ThreadPool, String>>; 2]; LANES],
    claims: Mutex<Claims>,
}

/// Which lane each tenant with work in progress holds, and for how many
/// pieces of work.
#[derive(Default)]
struct Claims {
    by_tenant: HashMap<String, (usize, usize)>,
    tenants: [usize; LANES],
}

static LANES_: LazyLock<Lanes> = LazyLock::new(|| Lanes {
    runtimes: std::array::from_fn(|_| [OnceLock::new(), OnceLock::new()]),
    pools: std::array::from_fn(|_| [OnceLock::new(), OnceLock::new()]),
    claims: Mutex::new(Claims::default()),
});

fn claims() -> std::sync::MutexGuard<'static, Claims> {
    // The map is updated in single statements: a poisoned lock holds
    // consistent data.
    LANES_
        .claims
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

fn runtime(lane: usize, background: bool) -> Result<&'static Runtime> {
    LANES_.runtimes[lane][usize::from(background)]
        .get_or_init(|| {
            let cores = cores();
            let mut builder = tokio::runtime::Builder::new_multi_thread();
            builder
                .worker_threads(cores)
                .max_blocking_threads(cores * BLOCKING_THREADS_PER_CORE)
                .thread_name(if background {
                    format!("gyrus-query-{lane}b")
                } else {
                    format!("gyrus-query-{lane}")
                })
                .thread_stack_size(QUERY_STACK_BYTES)
                .enable_all();
            if background {
                builder.on_thread_start(lower_priority);
            }
            builder.build()
        })
        .as_ref()
        .map_err(|e| EngineError::Internal(format!("cannot start the query runtime: {e}")))
}

fn pool(lane: usize, background: bool) -> Result<&'static rayon::ThreadPool> {
    LANES_.pools[lane][usize::from(background)]
        .get_or_init(|| {
            let mut builder = rayon::ThreadPoolBuilder::new()
                .num_threads(cores())
                .thread_name(move |i| {
                    if background {
                        format!("gyrus-compute-{lane}b-{i}")
                    } else {
                        format!("gyrus-compute-{lane}-{i}")
                    }
                });
            if background {
                builder = builder.start_handler(|_| lower_priority());
            }
            builder.build().map_err(|e| e.to_string())
        })
        .as_ref()
        .map_err(|e| EngineError::Internal(format!("cannot start the compute pool: {e}")))
}

/// Gives the calling thread the background priority. On Linux the nice
/// value belongs to the thread; elsewhere, or if refused, work still runs at
/// normal priority.
fn lower_priority() {
    #[cfg(target_os = "linux")]
    {
        // SAFETY: setpriority only reads its arguments; `who = 0` with
        // PRIO_PROCESS names the calling thread on Linux.
        let refused = unsafe { libc::setpriority(libc::PRIO_PROCESS, 0, BACKGROUND_NICE) } != 0;
        if refused {
            tracing::warn!(
                error = %std::io::Error::last_os_error(),
                "cannot lower the priority of a background query thread"
            );
        }
    }
}

/// One tenant's hold on its lane: while any clone lives (work holds one
/// until it ends), the tenant's further work goes to the same lane.
#[derive(Clone)]
pub struct Lane(Arc<Claim>);

struct Claim {
    tenant: String,
    lane: usize,
    /// Whether the tenant had other work in progress when this was claimed.
    background: bool,
}

impl Lane {
    /// The lane of `tenant`: the one it already holds (then at background
    /// priority), or else the lane with the fewest tenants.
    pub fn of(tenant: &TenantId) -> Lane {
        let tenant = tenant.as_str().to_string();
        let mut claims = claims();
        let (lane, background) = match claims.by_tenant.get_mut(&tenant) {
            Some((lane, holders)) => {
                *holders += 1;
                (*lane, true)
            }
            None => {
                let lane = (0..LANES)
                    .min_by_key(|&lane| claims.tenants[lane])
                    .unwrap_or(0);
                claims.tenants[lane] += 1;
                claims.by_tenant.insert(tenant.clone(), (lane, 1));
                (lane, false)
            }
        };
        Lane(Arc::new(Claim {
            tenant,
            lane,
            background,
        }))
    }

    /// Which lane this is (0 to [`LANES`] - 1).
    pub fn index(&self) -> usize {
        self.0.lane
    }

    /// Whether this work runs at background priority.
    pub fn is_background(&self) -> bool {
        self.0.background
    }

    fn runtime(&self) -> Result<&'static Runtime> {
        runtime(self.0.lane, self.0.background)
    }

    /// Runs `work` on this lane and waits for it. The work starts at once;
    /// dropping the returned future aborts it; a panic in it is an
    /// [`EngineError::Internal`].
    pub fn offload<F, T>(&self, work: F) -> impl Future<Output = Result<T>> + Send + 'static
    where
        F: Future<Output = T> + Send + 'static,
        T: Send + 'static,
    {
        let hold = self.clone();
        let spawned = self.runtime().map(|runtime| {
            AbortOnDrop(runtime.spawn(async move {
                let _hold = hold;
                work.await
            }))
        });
        async move {
            let mut task = spawned?;
            joined((&mut task.0).await, "query")
        }
    }

    /// Runs the CPU-bound `work` (which may use Rayon: its parallel
    /// iterators run on this lane's own pool, at this lane's priority) and
    /// waits for it. Unlike [`Lane::offload`], dropping the future cannot
    /// stop work that never yields: `work` must bound itself (a deadline
    /// it checks). A panic in it is an [`EngineError::Internal`].
    pub fn compute<F, T>(
        &self,
        work: F,
    ) -> impl Future<Output = Result<T>> + Send + 'static + use<F, T>
    where
        F: FnOnce() -> T + Send + 'static,
        T: Send + 'static,
    {
        let hold = self.clone();
        let spawned = self.runtime().and_then(|runtime| {
            let pool = pool(self.0.lane, self.0.background)?;
            Ok(runtime.spawn_blocking(move || {
                let _hold = hold;
                pool.install(work)
            }))
        });
        async move { joined(spawned?.await, "computation") }
    }

    /// Executes `plan` on this lane; its batches come through a small
    /// channel, so a slow reader holds back the query rather than buffering
    /// it. Dropping the stream stops the query.
    pub fn execute(
        &self,
        plan: Arc<dyn ExecutionPlan>,
        task_ctx: Arc<TaskContext>,
    ) -> Result<SendableRecordBatchStream> {
        let schema = plan.schema();
        let (tx, rx) = mpsc::channel(2);
        let producer = self.produce(std::future::ready(Ok((plan, task_ctx))), None, tx)?;
        Ok(Box::pin(Offloaded {
            schema,
            first: None,
            rx,
            _producer: producer,
        }))
    }

    /// Plans and executes a query on this lane in one hand-off: `planning`
    /// and the first batch run on the lane's threads, and the caller is
    /// woken once, with the schema and that batch (or the planning error);
    /// the remaining batches follow as from [`Lane::execute`]. A small
    /// answer thus costs one round trip between the caller's thread and the
    /// lane's. Dropping the future or the stream stops the query; a panic
    /// is an error of this one query.
    pub fn run<P>(
        &self,
        planning: P,
    ) -> impl Future<Output = Result<SendableRecordBatchStream>> + Send + 'static + use<P>
    where
        P: Future<Output = Result<(Arc<dyn ExecutionPlan>, Arc<TaskContext>)>> + Send + 'static,
    {
        let (started_tx, started) = oneshot::channel();
        let (tx, rx) = mpsc::channel(2);
        let producer = self.produce(planning, Some(started_tx), tx);
        async move {
            let producer = producer?;
            let (schema, first) = started
                .await
                .map_err(|_| EngineError::Internal("the query was aborted".into()))??;
            Ok(Box::pin(Offloaded {
                schema,
                first,
                rx,
                _producer: producer,
            }) as SendableRecordBatchStream)
        }
    }

    /// Spawns on this lane the task that plans a query, executes it and
    /// sends its batches to `tx`; with `started`, the schema and the first
    /// batch (or why there is none) go there instead.
    fn produce<P>(
        &self,
        planning: P,
        mut started: Option<oneshot::Sender<Started>>,
        tx: mpsc::Sender<datafusion::error::Result<RecordBatch>>,
    ) -> Result<AbortOnDrop<()>>
    where
        P: Future<Output = Result<(Arc<dyn ExecutionPlan>, Arc<TaskContext>)>> + Send + 'static,
    {
        let hold = self.clone();
        let producer = self.runtime()?.spawn(async move {
            let _hold = hold;
            let run = async {
                let (plan, task_ctx) = planning.await?;
                let schema = plan.schema();
                let mut batches = match datafusion::physical_plan::execute_stream(plan, task_ctx) {
                    Ok(batches) => batches.boxed(),
                    Err(e) => futures::stream::iter([Err(e)]).boxed(),
                };
                while let Some(batch) = batches.next().await {
                    let delivered = match started.take() {
                        Some(started) => started.send(Ok((schema.clone(), Some(batch)))).is_ok(),
                        None => tx.send(batch).await.is_ok(),
                    };
                    if !delivered {
                        break; // the reader is gone
                    }
                }
                if let Some(started) = started.take() {
                    let _ = started.send(Ok((schema, None)));
                }
                Ok::<_, EngineError>(())
            };
            // A panic while planning or executing ends this query with an
            // error, not the process.
            let outcome = futures::FutureExt::catch_unwind(std::panic::AssertUnwindSafe(run))
                .await
                .unwrap_or_else(|payload| {
                    let message = panic_message(payload);
                    tracing::error!(panic = %message, "a query panicked");
                    Err(EngineError::Internal(format!(
                        "the query failed: {message}"
                    )))
                });
            if let Err(err) = outcome {
                match started.take() {
                    Some(started) => {
                        let _ = started.send(Err(err));
                    }
                    None => {
                        let _ = tx
                            .send(Err(DataFusionError::Execution(err.to_string())))
                            .await;
                    }
                }
            }
        });
        Ok(AbortOnDrop(producer))
    }
}

/// What the reader of a query started by [`Lane::run`] hears first: the
/// plan's schema with its first batch (`None`: there are none), or why the
/// query could not start.
type Started = Result<(SchemaRef, Option<datafusion::error::Result<RecordBatch>>)>;

impl Drop for Claim {
    fn drop(&mut self) {
        let mut claims = claims();
        if let Some((lane, holders)) = claims.by_tenant.get_mut(&self.tenant) {
            *holders -= 1;
            if *holders == 0 {
                let lane = *lane;
                claims.by_tenant.remove(&self.tenant);
                claims.tenants[lane] = claims.tenants[lane].saturating_sub(1);
            }
        }
    }
}

/// Aborts the task when dropped.
struct AbortOnDrop<T>(JoinHandle<T>);

impl<T> Drop for AbortOnDrop<T> {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// The outcome of a task of this module: a panic in it or its abort is an
/// error of that one `what` (query, computation).
fn joined<T>(outcome: std::result::Result<T, tokio::task::JoinError>, what: &str) -> Result<T> {
    match outcome {
        Ok(value) => Ok(value),
        Err(err) if err.is_panic() => {
            let message = panic_message(err.into_panic());
            tracing::error!(panic = %message, "a {what} panicked");
            Err(EngineError::Internal(format!(
                "the {what} failed: {message}"
            )))
        }
        Err(_) => Err(EngineError::Internal(format!("the {what} was aborted"))),
    }
}

/// The message of a caught panic's payload (`"panic"` if it has none).
pub fn panic_message(payload: Box<dyn std::any::Any + Send>) -> String {
    payload
        .downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| payload.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "panic".into())
}

/// The reading end of [`Lane::execute`] and [`Lane::run`].
struct Offloaded {
    schema: SchemaRef,
    /// The batch that came with the start, read before the channel.
    first: Option<datafusion::error::Result<RecordBatch>>,
    rx: mpsc::Receiver<datafusion::error::Result<RecordBatch>>,
    _producer: AbortOnDrop<()>,
}

impl Stream for Offloaded {
    type Item = datafusion::error::Result<RecordBatch>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        if let Some(first) = self.first.take() {
            return Poll::Ready(Some(first));
        }
        self.rx.poll_recv(cx)
    }
}

impl RecordBatchStream for Offloaded {
    fn schema(&self) -> SchemaRef {
        self.schema.clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tenant(name: &str) -> TenantId {
        TenantId::new(name).unwrap()
    }

    fn holders(name: &str) -> Option<(usize, usize)> {
        claims().by_tenant.get(name).copied()
    }

    #[tokio::test]
    async fn a_panic_is_one_query_error_and_dropping_aborts() {
        let lane = Lane::of(&tenant("panicky"));
        let err = lane.offload(async { panic!("boom") }).await.unwrap_err();
        assert!(err.to_string().contains("boom"), "{err}");
        // The runtime still runs work after a panic.
        assert_eq!(lane.offload(async { 1 + 1 }).await.unwrap(), 2);

        let (tx, mut rx) = tokio::sync::oneshot::channel::<()>();
        let waiting = lane.offload(async move {
            tokio::time::sleep(std::time::Duration::from_secs(60)).await;
            drop(tx);
        });
        // Dropped before it finishes: the task is aborted and `tx` dropped.
        drop(tokio::time::timeout(std::time::Duration::from_millis(20), waiting).await);
        let closed = tokio::time::timeout(std::time::Duration::from_secs(5), &mut rx).await;
        assert!(matches!(closed, Ok(Err(_))), "{closed:?}");
    }

    #[tokio::test]
    async fn computations_run_on_the_lanes_pool_at_its_priority() {
        use rayon::prelude::*;
        let first = Lane::of(&tenant("compute-acme"));
        let second = Lane::of(&tenant("compute-acme"));
        let names = |lane: &Lane| {
            lane.compute(|| {
                (0..64)
                    .into_par_iter()
                    .map(|_| std::thread::current().name().map(str::to_string))
                    .collect::<Vec<_>>()
            })
        };
        let index = first.index();
        for name in names(&first).await.unwrap() {
            let name = name.unwrap();
            assert!(
                name.starts_with(&format!("gyrus-compute-{index}-")),
                "{name}"
            );
        }
        for name in names(&second).await.unwrap() {
            let name = name.unwrap();
            assert!(
                name.starts_with(&format!("gyrus-compute-{index}b-")),
                "{name}"
            );
        }
        let nice = second
            // SAFETY: reads the calling thread's nice value.
            .compute(|| {
                rayon::join(
                    || unsafe { libc::getpriority(libc::PRIO_PROCESS, 0) },
                    || (),
                )
                .0
            })
            .await
            .unwrap();
        assert!(nice >= BACKGROUND_NICE, "nice {nice}");
        let err = first.compute(|| panic!("boom")).await.unwrap_err();
        assert!(err.to_string().contains("boom"), "{err}");
        assert_eq!(first.compute(|| 6 * 7).await.unwrap(), 42);
    }

    #[test]
    fn query_threads_have_deep_stacks() {
        // A recursion far deeper than a default 2 MiB stack allows.
        fn depth(n: u64) -> u64 {
            let pad = std::hint::black_box([n; 64]);
            if n == 0 {
                pad[0]
            } else {
                1 + depth(n - 1) + pad[1] - n
            }
        }
        let lane = Lane::of(&tenant("deep"));
        let deep = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap()
            .block_on(async { lane.offload(async { depth(50_000) }).await })
            .unwrap();
        assert_eq!(deep, 50_000);
    }

    #[tokio::test]
    async fn busy_tenants_hold_lanes_of_their_own_and_work_runs_on_them() {
        let acme = Lane::of(&tenant("lanes-acme"));
        let again = Lane::of(&tenant("lanes-acme"));
        let globex = Lane::of(&tenant("lanes-globex"));
        assert_eq!(acme.index(), again.index(), "one tenant, one lane");
        assert!(!acme.is_background() && again.is_background() && !globex.is_background());
        assert_ne!(acme.index(), globex.index(), "two busy tenants never share");
        assert_eq!(holders("lanes-acme"), Some((acme.index(), 2)));

        // Work and the tasks it spawns run on the lane's threads.
        let names = acme
            .offload(async {
                let inner =
                    tokio::spawn(async { std::thread::current().name().map(str::to_string) });
                (
                    std::thread::current().name().map(str::to_string),
                    inner.await.unwrap(),
                )
            })
            .await
            .unwrap();
        let expected = Some(format!("gyrus-query-{}", acme.index()));
        assert_eq!(names, (expected.clone(), expected));
        // Work started beside other work runs on the background threads, at
        // a lower priority.
        let (name, nice) = again
            .offload(async {
                (
                    std::thread::current().name().map(str::to_string),
                    // SAFETY: reads the calling thread's nice value.
                    unsafe { libc::getpriority(libc::PRIO_PROCESS, 0) },
                )
            })
            .await
            .unwrap();
        assert_eq!(name, Some(format!("gyrus-query-{}b", acme.index())));
        assert!(nice >= BACKGROUND_NICE, "nice {nice}");

        // Work in flight holds the lane after the caller's handles are gone.
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        let running = tokio::spawn({
            let lane = acme.clone();
            async move { lane.offload(rx).await }
        });
        drop((acme, again));
        tokio::task::yield_now().await;
        assert!(
            holders("lanes-acme").is_some(),
            "work in flight holds the lane"
        );
        tx.send(()).unwrap();
        running.await.unwrap().unwrap().unwrap();
        assert_eq!(holders("lanes-acme"), None, "an idle tenant holds no lane");
        drop(globex);
        assert_eq!(holders("lanes-globex"), None);
    }

    /// Threads of this process whose name is exactly `name`.
    fn threads_named(name: &str) -> usize {
        std::fs::read_dir("/proc/self/task")
            .unwrap()
            .filter_map(|task| std::fs::read_to_string(task.ok()?.path().join("comm")).ok())
            .filter(|comm| comm.trim_end() == name)
            .count()
    }

    #[tokio::test]
    async fn a_flood_of_blocking_reads_starts_a_bounded_number_of_threads() {
        let cores = cores();
        let bound = cores * (1 + BLOCKING_THREADS_PER_CORE);
        let lane = Lane::of(&tenant("blocking-flood"));
        let name = format!("gyrus-query-{}", lane.index());
        let (done, started) = lane
            .offload({
                let name = name.clone();
                async move {
                    // As the object store reads local files: each read on a
                    // blocking thread of the runtime it is called from.
                    let reads: Vec<_> = (0..10 * bound)
                        .map(|_| {
                            tokio::task::spawn_blocking(|| {
                                std::thread::sleep(std::time::Duration::from_millis(20))
                            })
                        })
                        .collect();
                    tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                    let started = threads_named(&name);
                    let done = futures::future::join_all(reads).await;
                    (done.into_iter().filter(Result::is_ok).count(), started)
                }
            })
            .await
            .unwrap();
        assert_eq!(done, 10 * bound, "every read ran");
        assert!(
            started <= bound,
            "{started} threads named {name} for {cores} cores"
        );
    }

    #[tokio::test]
    async fn a_run_plans_on_the_lane_and_answers_errors_panics_and_batches() {
        use datafusion::prelude::SessionContext;
        let lane = Lane::of(&tenant("lanes-run"));
        let ctx = SessionContext::new();
        let lane_name = format!("gyrus-query-{}", lane.index());
        let planned_on = Arc::new(Mutex::new(None));
        let plan = |sql: &'static str| {
            let ctx = ctx.clone();
            let planned_on = planned_on.clone();
            async move {
                *planned_on.lock().unwrap() = std::thread::current().name().map(str::to_string);
                let df = ctx.sql(sql).await?;
                let task = ctx.task_ctx();
                Ok((df.create_physical_plan().await?, task))
            }
        };

        // Many batches: the first comes with the start, the rest through
        // the channel, in order and complete.
        let stream = lane
            .run(plan("SELECT value FROM range(20000)"))
            .await
            .unwrap();
        assert_eq!(stream.schema().field(0).name(), "value");
        let batches: Vec<RecordBatch> = stream.map(|b| b.unwrap()).collect().await;
        assert!(batches.len() > 1, "{} batches", batches.len());
        let values: Vec<i64> = batches
            .iter()
            .flat_map(|b| {
                b.column(0)
                    .as_any()
                    .downcast_ref::<datafusion::arrow::array::Int64Array>()
                    .unwrap()
                    .values()
                    .to_vec()
            })
            .collect();
        assert_eq!(values, (0..20000).collect::<Vec<_>>());
        assert_eq!(
            planned_on.lock().unwrap().as_deref(),
            Some(lane_name.as_str())
        );

        // No rows: a schema and an end.
        let stream = lane.run(plan("SELECT value FROM range(0)")).await.unwrap();
        assert_eq!(
            stream
                .map(|b| b.unwrap().num_rows())
                .collect::<Vec<_>>()
                .await
                .iter()
                .sum::<usize>(),
            0
        );

        // A planning error is the run's error, not a stream's.
        let err = match lane.run(plan("SELECT nope FROM range(1)")).await {
            Ok(_) => panic!("an unknown column was planned"),
            Err(err) => err,
        };
        assert!(err.to_string().contains("nope"), "{err}");

        // An error while executing comes as the first item.
        let mut stream = lane
            .run(plan("SELECT 1 / CAST(value AS INT) FROM range(3)"))
            .await
            .unwrap();
        assert!(stream.next().await.unwrap().is_err());

        // A panic while planning is this query's error; the lane goes on.
        let panicked = lane
            .run(async {
                if true {
                    panic!("planner boom");
                }
                Err(EngineError::Internal("unreachable".into()))
            })
            .await;
        let Err(err) = panicked else {
            panic!("a panic was not an error")
        };
        assert!(err.to_string().contains("planner boom"), "{err}");
        assert!(lane.run(plan("SELECT 1")).await.is_ok());

        // Dropped while planning: the work is aborted.
        let (tx, mut rx) = tokio::sync::oneshot::channel::<()>();
        let waiting = lane.run(async move {
            tokio::time::sleep(std::time::Duration::from_secs(60)).await;
            drop(tx);
            Err(EngineError::Internal("slept".into()))
        });
        drop(tokio::time::timeout(std::time::Duration::from_millis(20), waiting).await);
        let closed = tokio::time::timeout(std::time::Duration::from_secs(5), &mut rx).await;
        assert!(matches!(closed, Ok(Err(_))), "{closed:?}");
    }

    #[tokio::test]
    async fn a_query_stream_holds_its_lane_until_dropped() {
        use datafusion::prelude::SessionContext;
        let lane = Lane::of(&tenant("lanes-stream"));
        let ctx = SessionContext::new();
        let df = ctx.sql("SELECT * FROM range(100000)").await.unwrap();
        let plan = df.create_physical_plan().await.unwrap();
        let mut stream = lane.execute(plan, ctx.task_ctx()).unwrap();
        drop(lane);
        assert!(stream.next().await.is_some());
        assert!(holders("lanes-stream").is_some());
        drop(stream);
        // The producer is aborted; its hold goes with it.
        for _ in 0..100 {
            if holders("lanes-stream").is_none() {
                return;
            }
            tokio::time::sleep(std::time::Duration::from_millis(10)).await;
        }
        panic!("the lane was not released after the stream was dropped");
    }
}
