//! Where query work runs: a runtime of its own, apart from the servers'.
//!
//! Planning (constant folding included) and execution of client SQL are CPU
//! work that does not yield while it computes. On the servers' runtime a few
//! such queries would occupy every worker and starve health checks, other
//! tenants' requests and the deadlines themselves. Here they run on the
//! query runtime's threads (deep stacks, named `gyrus-query`), the servers
//! wait on them asynchronously, and the operating system shares the cores
//! between both. A caller that stops waiting (a deadline, a client gone)
//! aborts the work at its next await; a panic in it becomes an error of that
//! one query.
//!
//! ```
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() {
//! let answer = gyrus_engine::exec::offload(async { 6 * 7 }).await.unwrap();
//! assert_eq!(answer, 42);
//! # }
//! ```

use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, LazyLock};
use std::task::{Context, Poll};

use datafusion::arrow::array::RecordBatch;
use datafusion::arrow::datatypes::SchemaRef;
use datafusion::error::DataFusionError;
use datafusion::execution::{RecordBatchStream, SendableRecordBatchStream, TaskContext};
use datafusion::physical_plan::ExecutionPlan;
use futures::{Stream, StreamExt as _};
use tokio::runtime::Runtime;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

use crate::error::{EngineError, Result};

/// Stack of every thread that walks query trees: far more than the depth
/// bounds of [`crate::shape`] need, so that no accepted statement can
/// overflow it. Measured on a debug build (frames several times larger than
/// in release): 1,000 chained UNIONs need 13 to 32 MiB, an `IN` list of
/// 50,000 values on a Delta scan 55 to 110 MiB. Only the pages touched are
/// ever committed.
pub const QUERY_STACK_BYTES: usize = 256 << 20;

static QUERY_RUNTIME: LazyLock<std::io::Result<Runtime>> = LazyLock::new(|| {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(std::thread::available_parallelism().map_or(2, |n| n.get()))
        .thread_name("gyrus-query")
        .thread_stack_size(QUERY_STACK_BYTES)
        .enable_all()
        .build()
});

fn runtime() -> Result<&'static Runtime> {
    QUERY_RUNTIME
        .as_ref()
        .map_err(|e| EngineError::Internal(format!("cannot start the query runtime: {e}")))
}

/// Aborts the task when dropped.
struct AbortOnDrop<T>(JoinHandle<T>);

impl<T> Drop for AbortOnDrop<T> {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// Runs `work` on the query runtime and waits for it. Dropping the returned
/// future aborts the work; a panic in it is an [`EngineError::Internal`].
pub async fn offload<F, T>(work: F) -> Result<T>
where
    F: Future<Output = T> + Send + 'static,
    T: Send + 'static,
{
    let mut task = AbortOnDrop(runtime()?.spawn(work));
    match (&mut task.0).await {
        Ok(value) => Ok(value),
        Err(err) if err.is_panic() => {
            let message = panic_message(err.into_panic());
            tracing::error!(panic = %message, "a query panicked");
            Err(EngineError::Internal(format!(
                "the query failed: {message}"
            )))
        }
        Err(_) => Err(EngineError::Internal("the query was aborted".into())),
    }
}

fn panic_message(payload: Box<dyn std::any::Any + Send>) -> String {
    payload
        .downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| payload.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "panic".into())
}

/// Executes `plan` on the query runtime; its batches come through a small
/// channel, so a slow reader holds back the query rather than buffering it.
/// Dropping the stream stops the query.
pub fn execute(
    plan: Arc<dyn ExecutionPlan>,
    task_ctx: Arc<TaskContext>,
) -> Result<SendableRecordBatchStream> {
    let schema = plan.schema();
    let (tx, rx) = mpsc::channel::<datafusion::error::Result<RecordBatch>>(2);
    let producer = runtime()?.spawn(async move {
        let run = async {
            let mut batches = datafusion::physical_plan::execute_stream(plan, task_ctx)?;
            while let Some(batch) = batches.next().await {
                if tx.send(batch).await.is_err() {
                    break; // the reader is gone
                }
            }
            Ok::<_, DataFusionError>(())
        };
        // A panic while executing ends this query with an error, not the process.
        if let Err(err) = futures::FutureExt::catch_unwind(std::panic::AssertUnwindSafe(run))
            .await
            .unwrap_or_else(|payload| {
                let message = panic_message(payload);
                tracing::error!(panic = %message, "a query panicked");
                Err(DataFusionError::Execution(format!(
                    "the query failed: {message}"
                )))
            })
        {
            let _ = tx.send(Err(err)).await;
        }
    });
    Ok(Box::pin(Offloaded {
        schema,
        rx,
        _producer: AbortOnDrop(producer),
    }))
}

/// The reading end of [`execute`].
struct Offloaded {
    schema: SchemaRef,
    rx: mpsc::Receiver<datafusion::error::Result<RecordBatch>>,
    _producer: AbortOnDrop<()>,
}

impl Stream for Offloaded {
    type Item = datafusion::error::Result<RecordBatch>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
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

    #[tokio::test]
    async fn a_panic_is_one_query_error_and_dropping_aborts() {
        let err = offload(async { panic!("boom") }).await.unwrap_err();
        assert!(err.to_string().contains("boom"), "{err}");
        // The runtime still runs work after a panic.
        assert_eq!(offload(async { 1 + 1 }).await.unwrap(), 2);

        let (tx, mut rx) = tokio::sync::oneshot::channel::<()>();
        let waiting = offload(async move {
            tokio::time::sleep(std::time::Duration::from_secs(60)).await;
            drop(tx);
        });
        // Dropped before it finishes: the task is aborted and `tx` dropped.
        drop(tokio::time::timeout(std::time::Duration::from_millis(20), waiting).await);
        let closed = tokio::time::timeout(std::time::Duration::from_secs(5), &mut rx).await;
        assert!(matches!(closed, Ok(Err(_))), "{closed:?}");
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
        let deep = runtime()
            .unwrap()
            .block_on(async { offload(async { depth(50_000) }).await })
            .unwrap();
        assert_eq!(deep, 50_000);
    }
}
