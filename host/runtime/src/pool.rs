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
//! waits in line, at most the version's `queue_ms`, then gets
//! `plugin_busy`. The line is fair: an instance given back goes to the
//! longest waiting call whose version may take it, and a new call never
//! passes a waiting one that could take the free instance.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use tokio::sync::{OwnedSemaphorePermit, Semaphore, oneshot};

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
    /// The calls waiting for an instance, in the order they came.
    line: Mutex<VecDeque<Waiter>>,
}

/// A call waiting for an instance: the count of its version's instances,
/// and where its grant goes.
#[derive(Debug)]
struct Waiter {
    held: Arc<AtomicUsize>,
    grant: oneshot::Sender<Grant>,
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
            line: Mutex::new(VecDeque::new()),
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

    fn line(&self) -> MutexGuard<'_, VecDeque<Waiter>> {
        // The line holds no invariant a panic could break halfway.
        self.line.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// An instance for a version whose count is `held`, if it may take one now.
    fn take(self: &Arc<Pool>, held: &Arc<AtomicUsize>) -> Option<Grant> {
        if !self.may_take(held.load(Ordering::Acquire) > 0) {
            return None;
        }
        let permit = self.permits.clone().try_acquire_owned().ok()?;
        if held.fetch_add(1, Ordering::AcqRel) == 0 {
            self.versions.fetch_add(1, Ordering::AcqRel);
        }
        Some(Grant {
            permit: Some(permit),
            held: held.clone(),
            pool: self.clone(),
        })
    }

    /// Waits, until `deadline`, for an instance for a version whose count
    /// is `held`; `None` when none came in time.
    async fn enter(
        self: &Arc<Pool>,
        held: &Arc<AtomicUsize>,
        deadline: tokio::time::Instant,
    ) -> Option<Grant> {
        let granted = {
            let mut line = self.line();
            line.retain(|waiter| !waiter.grant.is_closed());
            if line.is_empty()
                && let Some(grant) = self.take(held)
            {
                return Some(grant);
            }
            let (grant, granted) = oneshot::channel();
            line.push_back(Waiter {
                held: held.clone(),
                grant,
            });
            granted
        };
        // Those ahead may all be unable to take what is free: serve the line.
        self.serve();
        tokio::time::timeout_at(deadline, granted).await.ok()?.ok()
    }

    /// Gives free instances to the waiting calls, the longest waiting first,
    /// skipping those whose version holds its share.
    fn serve(self: &Arc<Pool>) {
        // Grants whose call gave up meanwhile; dropped once the line is free.
        let mut unclaimed = Vec::new();
        {
            let mut line = self.line();
            let mut at = 0;
            while at < line.len() && self.permits.available_permits() > 0 {
                if line[at].grant.is_closed() {
                    line.remove(at);
                    continue;
                }
                let Some(grant) = self.take(&line[at].held) else {
                    at += 1;
                    continue;
                };
                if let Some(waiter) = line.remove(at)
                    && let Err(grant) = waiter.grant.send(grant)
                {
                    unclaimed.push(grant);
                }
            }
        }
        drop(unclaimed);
    }
}

/// One instance of the pool, counted for its version; dropping it gives the
/// instance back and serves the line.
#[derive(Debug)]
struct Grant {
    permit: Option<OwnedSemaphorePermit>,
    held: Arc<AtomicUsize>,
    pool: Arc<Pool>,
}

impl Drop for Grant {
    fn drop(&mut self) {
        if self.held.fetch_sub(1, Ordering::AcqRel) == 1 {
            self.pool.versions.fetch_sub(1, Ordering::AcqRel);
        }
        drop(self.permit.take());
        self.pool.serve();
    }
}

/// A call's admission: its version slot and its instance; dropping it
/// gives both back.
#[derive(Debug)]
pub(crate) struct Admission {
    _slot: OwnedSemaphorePermit,
    _instance: Grant,
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
    match pool.enter(&plugin.in_pool, deadline).await {
        Some(instance) => Ok(Admission {
            _slot: slot,
            _instance: instance,
        }),
        None => Err(busy(
            "the plugin holds its share of the host's instance pool",
        )),
    }
}

#[cfg(test)]
mod tests {
    use futures_util::FutureExt;

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

    fn deadline(ms: u64) -> tokio::time::Instant {
        tokio::time::Instant::now() + Duration::from_millis(ms)
    }

    #[tokio::test]
    async fn a_freed_instance_goes_to_the_longest_waiting_call() {
        let pool = Pool::new(1);
        let first = pool
            .enter(&Arc::default(), deadline(0))
            .await
            .expect("the pool is free");
        let order = Arc::new(Mutex::new(Vec::new()));
        let call = |name: &'static str| {
            let (pool, order) = (pool.clone(), order.clone());
            let (queued, is_queued) = oneshot::channel::<()>();
            let task = tokio::spawn(async move {
                let held = Arc::default();
                let entering = pool.enter(&held, deadline(60_000));
                tokio::pin!(entering);
                // Polled once, so the call is in line before the next one starts.
                assert!(entering.as_mut().now_or_never().is_none());
                queued.send(()).unwrap();
                let grant = entering.await.expect("served before the deadline");
                order.lock().unwrap().push(name);
                drop(grant);
            });
            (task, is_queued)
        };
        let mut waiting = Vec::new();
        for name in ["b", "c"] {
            let (task, queued) = call(name);
            queued.await.unwrap();
            waiting.push(task);
        }
        // The freed instance goes to the first in line at once: a call that
        // comes right after (on this one-threaded runtime, before the waiting
        // ones run) finds none free and stands behind them.
        drop(first);
        assert_eq!(pool.permits.available_permits(), 0, "handed to b");
        let (task, queued) = call("newcomer");
        queued.await.unwrap();
        waiting.push(task);
        for task in waiting {
            task.await.unwrap();
        }
        assert_eq!(*order.lock().unwrap(), ["b", "c", "newcomer"]);
        assert_eq!(
            pool.permits.available_permits(),
            1,
            "every instance is back"
        );
        assert!(pool.line().is_empty());
    }

    #[tokio::test]
    async fn a_call_that_gave_up_passes_its_instance_on() {
        let pool = Pool::new(1);
        let (a, b) = (Arc::default(), Arc::default());
        let first = pool.enter(&a, deadline(0)).await.unwrap();
        // This one times out in line.
        assert!(pool.enter(&b, deadline(1)).await.is_none());
        let next = pool.enter(&b, deadline(60_000));
        tokio::pin!(next);
        assert!(next.as_mut().now_or_never().is_none(), "in line");
        drop(first);
        assert!(next.await.is_some(), "the live waiter got the instance");
        assert_eq!(pool.permits.available_permits(), 1);
        assert_eq!(b.load(Ordering::Acquire), 0);
    }
}
