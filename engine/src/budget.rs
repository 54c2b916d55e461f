//! The memory and spill space all queries of a process share.
//!
//! Each query has a pool of its own (its `SessionLimits::memory_bytes`), and
//! every reservation in it is also drawn from the process's
//! [`ProcessBudget`]: 64 queries with 2 GiB limits cannot reserve 128 GiB
//! between them, they reserve at most the budget and the rest fail cleanly
//! with an error that says the server is busy. Spill files of all queries
//! share one disk manager with a cap on their total size.
//!
//! ```
//! use gyrus_engine::budget::ProcessBudget;
//!
//! let budget = ProcessBudget::new(1 << 30, 4 << 30);
//! assert_eq!(budget.memory_bytes(), 1 << 30);
//! assert_eq!(budget.in_use(), 0);
//! ```

use std::num::NonZeroUsize;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use datafusion::error::{DataFusionError, Result as DfResult};
use datafusion::execution::disk_manager::{DiskManager, DiskManagerBuilder, DiskManagerMode};
use datafusion::execution::memory_pool::{
    GreedyMemoryPool, MemoryConsumer, MemoryLimit, MemoryPool, MemoryReservation,
    TrackConsumersPool,
};

/// Memory and spill space shared by every query of the process; clones share.
#[derive(Clone)]
pub struct ProcessBudget {
    memory: Arc<Shared>,
    memory_bytes: usize,
    disk: Arc<DiskManager>,
    spill_bytes: u64,
}

impl std::fmt::Debug for ProcessBudget {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ProcessBudget")
            .field("memory_bytes", &self.memory_bytes)
            .field("in_use", &self.in_use())
            .field("spill_bytes", &self.spill_bytes)
            .finish()
    }
}

impl ProcessBudget {
    /// A budget of `memory_bytes` for all queries' operators and
    /// `spill_bytes` for all their spill files (none when no temporary
    /// directory can be used: queries then fail instead of spilling).
    pub fn new(memory_bytes: usize, spill_bytes: u64) -> Self {
        let disk = DiskManagerBuilder::default()
            .with_max_temp_directory_size(spill_bytes)
            .build()
            .or_else(|err| {
                tracing::warn!(error = %err, "no spill files: queries past their memory fail");
                DiskManagerBuilder::default()
                    .with_mode(DiskManagerMode::Disabled)
                    .build()
            })
            .map(Arc::new);
        let disk = match disk {
            Ok(disk) => disk,
            Err(_) => unreachable!("a disabled disk manager needs no directory"),
        };
        ProcessBudget {
            memory: Arc::new(Shared::new(memory_bytes)),
            memory_bytes,
            disk,
            spill_bytes,
        }
    }

    /// Half the machine's memory (or 4 GiB when it cannot be read) and 32 GiB
    /// of spill files.
    pub fn for_this_machine() -> Self {
        let memory = total_memory().map_or(4 << 30, |total| total / 2);
        Self::new(memory, 32 << 30)
    }

    pub fn memory_bytes(&self) -> usize {
        self.memory_bytes
    }

    pub fn spill_bytes(&self) -> u64 {
        self.spill_bytes
    }

    /// Bytes reserved by all queries now.
    pub fn in_use(&self) -> usize {
        self.memory.in_use()
    }

    /// The pool of one query: `limit` of its own, within the budget.
    pub(crate) fn query_pool(&self, limit: usize) -> Arc<dyn MemoryPool> {
        Arc::new(QueryPool {
            query: TrackConsumersPool::new(
                GreedyMemoryPool::new(limit),
                NonZeroUsize::new(5).unwrap_or(NonZeroUsize::MIN),
            ),
            budget: self.clone(),
        })
    }

    /// The shared spill files.
    pub(crate) fn disk(&self) -> Arc<DiskManager> {
        self.disk.clone()
    }
}

static PROCESS: std::sync::OnceLock<ProcessBudget> = std::sync::OnceLock::new();

impl ProcessBudget {
    /// The process's budget: the one [`ProcessBudget::init_process`] set, or
    /// [`ProcessBudget::for_this_machine`] made on first use. Every session
    /// of the process (servers, training) draws from it.
    pub fn process() -> ProcessBudget {
        PROCESS.get_or_init(Self::for_this_machine).clone()
    }

    /// Sets the process's budget before any session uses it (the binary's
    /// `--memory-budget-mb`); later calls return the budget already set.
    pub fn init_process(memory_bytes: usize, spill_bytes: u64) -> ProcessBudget {
        PROCESS
            .get_or_init(|| Self::new(memory_bytes, spill_bytes))
            .clone()
    }
}

impl Default for ProcessBudget {
    /// The process's budget, shared (see [`ProcessBudget::process`]).
    fn default() -> Self {
        Self::process()
    }
}

/// `MemTotal` of `/proc/meminfo`, in bytes.
fn total_memory() -> Option<usize> {
    let info = std::fs::read_to_string("/proc/meminfo").ok()?;
    let line = info.lines().find(|l| l.starts_with("MemTotal:"))?;
    let kib: usize = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib * 1024)
}

/// One query's pool: a reservation must fit both its own limit and the
/// process's budget.
#[derive(Debug)]
struct QueryPool {
    query: TrackConsumersPool<GreedyMemoryPool>,
    budget: ProcessBudget,
}

impl QueryPool {
    fn take_from_budget(&self, additional: usize) -> DfResult<()> {
        self.budget.memory.try_take(additional).map_err(|in_use| {
            DataFusionError::ResourcesExhausted(format!(
                "the server's memory for queries ({} MiB, --memory-budget-mb) is taken by \
                     queries in progress ({} MiB); retry shortly",
                self.budget.memory_bytes >> 20,
                in_use >> 20
            ))
        })
    }
}

/// The bytes all queries hold, against the budget.
#[derive(Debug)]
struct Shared {
    used: AtomicUsize,
    limit: usize,
}

impl Shared {
    fn new(limit: usize) -> Self {
        Shared {
            used: AtomicUsize::new(0),
            limit,
        }
    }

    /// Takes `bytes` if they fit; otherwise the bytes in use.
    fn try_take(&self, bytes: usize) -> std::result::Result<(), usize> {
        self.used
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |used| {
                used.checked_add(bytes).filter(|&new| new <= self.limit)
            })
            .map(|_| ())
    }

    fn take(&self, bytes: usize) {
        self.used.fetch_add(bytes, Ordering::Relaxed);
    }

    fn release(&self, bytes: usize) {
        let _ = self
            .used
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |used| {
                Some(used.saturating_sub(bytes))
            });
    }

    fn in_use(&self) -> usize {
        self.used.load(Ordering::Relaxed)
    }
}

impl std::fmt::Display for QueryPool {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "gyrus-query(used: {}, budget in use: {} of {})",
            self.query.reserved(),
            self.budget.in_use(),
            self.budget.memory_bytes
        )
    }
}

impl MemoryPool for QueryPool {
    fn name(&self) -> &str {
        "gyrus-query"
    }

    fn register(&self, consumer: &MemoryConsumer) {
        self.query.register(consumer)
    }

    fn unregister(&self, consumer: &MemoryConsumer) {
        self.query.unregister(consumer)
    }

    fn grow(&self, reservation: &MemoryReservation, additional: usize) {
        self.budget.memory.take(additional);
        self.query.grow(reservation, additional);
    }

    fn shrink(&self, reservation: &MemoryReservation, shrink: usize) {
        self.query.shrink(reservation, shrink);
        self.budget.memory.release(shrink);
    }

    fn try_grow(&self, reservation: &MemoryReservation, additional: usize) -> DfResult<()> {
        self.take_from_budget(additional)?;
        if let Err(err) = self.query.try_grow(reservation, additional) {
            self.budget.memory.release(additional);
            return Err(err);
        }
        Ok(())
    }

    fn reserved(&self) -> usize {
        self.query.reserved()
    }

    fn memory_limit(&self) -> MemoryLimit {
        self.query.memory_limit()
    }
}
