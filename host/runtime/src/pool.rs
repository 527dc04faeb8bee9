//! Admission of calls: a slot of the plugin version (its `concurrency`),
//! then a share of the host-wide instance pool.
//!
//! The engine's pooling allocator holds `pooled_instances` instances for
//! every plugin together. Without a rule, a few plugin versions calling at
//! their own concurrency could take every instance, and an innocent plugin's
//! instantiation would fail as if it had crashed. Here a version that holds
//! no instance may take any free one, and a version that holds some may
//! take another only while `pool / (versions holding instances + 1)` stay
//! free after it: what is held cannot be taken back before its calls end,
//! so the room for the next newcomer is kept free instead. Whatever the
//! others do, a version that has none gets one as long as fewer versions
//! than the pool has instances are calling. A call that finds no room
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

    /// Whether a version may take one more instance now, given whether it
    /// holds any (see the module's documentation).
    fn may_take(&self, holds_some: bool) -> bool {
        let free = self.permits.available_permits();
        if !holds_some {
            return free > 0;
        }
        let holding = self.versions.load(Ordering::Acquire).max(1);
        free > self.size / (holding + 1)
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
        if pool.may_take(held > 0)
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
    fn room_for_a_newcomer_is_kept_free() {
        let pool = Pool::new(256);
        assert_eq!(pool.size, 252);
        let take = |n: usize| {
            for _ in 0..n {
                pool.permits.clone().try_acquire_owned().unwrap().forget();
            }
        };
        // One version alone: it may take until half the pool is left.
        pool.versions.store(1, Ordering::Release);
        take(125);
        assert!(pool.may_take(true));
        take(1);
        assert!(!pool.may_take(true), "126 stay free");
        assert!(pool.may_take(false), "a newcomer gets one");
        // Five versions holding: each may take while a sixth of the pool stays free.
        pool.versions.store(5, Ordering::Release);
        assert!(pool.may_take(true));
        take(126 - 42);
        assert!(!pool.may_take(true), "42 stay free");
        assert!(pool.may_take(false));
        let tiny = Pool::new(2);
        assert_eq!(tiny.size, 2);
        tiny.versions.store(3, Ordering::Release);
        assert!(tiny.may_take(false), "a newcomer takes the last free one");
    }
}
