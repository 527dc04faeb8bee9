//! Admission of calls: a slot of the plugin version (its `concurrency`),
//! then a share of the host-wide instance pool.
//!
//! The engine's pooling allocator holds `pooled_instances` instances for
//! every plugin together. Without a share, a few plugin versions calling at
//! their own concurrency could take every instance, and an innocent plugin's
//! instantiation would fail as if it had crashed. Here a version may hold at
//! most `pool / (versions holding instances + 1)` of them: one share is
//! always left for a version that has none yet. A call that finds no room
//! waits, at most the version's `queue_ms`, then gets `plugin_busy`.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use tokio::sync::{Notify, OwnedSemaphorePermit, Semaphore};

use crate::error::CallError;
use crate::plugins::Plugin;

/// Instances kept outside the shares, for loading plugins (a load asks the
/// component for its `info` without a call slot).
const RESERVED_FOR_LOADS: usize = 4;

/// The host-wide instance pool, shared by the plugin versions that call.
#[derive(Debug)]
pub(crate) struct Pool {
    size: usize,
    permits: Arc<Semaphore>,
    /// Plugin versions holding at least one instance.
    versions: AtomicUsize,
    released: Notify,
}

impl Pool {
    /// A pool for the calls of an engine with `pooled_instances` instances.
    pub(crate) fn new(pooled_instances: u32) -> Arc<Pool> {
        let total = usize::try_from(pooled_instances).unwrap_or(usize::MAX);
        let size = total
            .saturating_sub(RESERVED_FOR_LOADS.min(total / 8))
            .max(1);
        Arc::new(Pool {
            size,
            permits: Arc::new(Semaphore::new(size)),
            versions: AtomicUsize::new(0),
            released: Notify::new(),
        })
    }

    /// The most instances one version may hold now, given whether it holds any.
    fn share(&self, holds_some: bool) -> usize {
        let others = self
            .versions
            .load(Ordering::Acquire)
            .saturating_sub(usize::from(holds_some));
        (self.size / (others + 2)).max(1)
    }
}

/// A call's admission: its version slot and its instance; dropping it
/// gives both back.
#[derive(Debug)]
pub(crate) struct Admission {
    _slot: OwnedSemaphorePermit,
    _instance: OwnedSemaphorePermit,
    held: Arc<AtomicUsize>,
    pool: Arc<Pool>,
}

impl Drop for Admission {
    fn drop(&mut self) {
        if self.held.fetch_sub(1, Ordering::AcqRel) == 1 {
            self.pool.versions.fetch_sub(1, Ordering::AcqRel);
        }
        // The permit goes back when `_instance` drops, right after this.
        self.pool.released.notify_waiters();
    }
}

/// Waits, at most the plugin's queue time, for one of its call slots and
/// its share of the instance pool.
pub(crate) async fn admit(plugin: &Plugin, pool: &Arc<Pool>) -> Result<Admission, CallError> {
    let queue = Duration::from_millis(plugin.limits.queue_ms);
    let busy = |why: &str| {
        tracing::warn!(plugin = %plugin.name(), concurrency = plugin.limits.concurrency, "call refused: {why}");
        CallError::Busy {
            plugin: plugin.name().to_string(),
            concurrency: plugin.limits.concurrency,
            retry_after_ms: plugin.limits.queue_ms.max(1_000),
        }
    };
    let deadline = tokio::time::Instant::now() + queue;
    let slot = match tokio::time::timeout_at(deadline, plugin.slots.clone().acquire_owned()).await {
        Ok(Ok(permit)) => permit,
        _ => return Err(busy("every slot of the plugin is busy")),
    };
    loop {
        let released = pool.released.notified();
        tokio::pin!(released);
        // Registered before the check, so a release in between is not missed.
        released.as_mut().enable();
        let held = plugin.in_pool.load(Ordering::Acquire);
        if held < pool.share(held > 0)
            && let Ok(instance) = pool.permits.clone().try_acquire_owned()
        {
            if plugin.in_pool.fetch_add(1, Ordering::AcqRel) == 0 {
                pool.versions.fetch_add(1, Ordering::AcqRel);
            }
            return Ok(Admission {
                _slot: slot,
                _instance: instance,
                held: plugin.in_pool.clone(),
                pool: pool.clone(),
            });
        }
        if tokio::time::timeout_at(deadline, released).await.is_err() {
            return Err(busy(
                "the plugin holds its share of the host's instance pool",
            ));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_share_is_always_left_for_a_newcomer() {
        let pool = Pool::new(256);
        assert_eq!(pool.size, 252);
        assert_eq!(pool.share(false), 126, "alone: half the pool");
        pool.versions.store(5, Ordering::Release);
        assert_eq!(pool.share(true), 42);
        assert_eq!(pool.share(false), 36);
        assert!(5 * pool.share(true) < pool.size, "room for a sixth version");
        let tiny = Pool::new(2);
        assert_eq!(tiny.size, 2);
        tiny.versions.store(3, Ordering::Release);
        assert_eq!(tiny.share(false), 1, "never less than one");
    }
}
