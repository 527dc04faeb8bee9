//! The wasmtime engine, shared by every plugin of the process, and the limits
//! that keep one plugin call from hurting anything else.
//!
//! Each call gets a fresh [`Store`](wasmtime::Store) that is dropped when the
//! call ends, whether it returned, trapped or ran out of time, so nothing a
//! failed call left behind is ever reused.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use wasmtime::{Config, Enabled, Engine, InstanceAllocationStrategy, PoolingAllocationConfig};

/// How often the engine's epoch advances. A deadline is noticed at most one
/// tick late; a running guest yields to the async executor once per tick.
pub const EPOCH_TICK: Duration = Duration::from_millis(5);

/// Dirty memory (and table) bytes of a freed pool slot that are reset in
/// place and kept resident when the kernel can say which pages are dirty.
const KEEP_RESIDENT_SCANNED: usize = 1024 * 1024;

/// Resource limits applied to every plugin call.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct Limits {
    /// Linear memory a call may use, in MiB.
    pub memory_mib: u64,
    /// Wall-clock time a call may take, in milliseconds.
    pub deadline_ms: u64,
    /// Largest output (JSON text, summed over outputs) a call may return, in bytes.
    pub output_bytes: u64,
    /// Largest single log line or kv value a plugin may pass to the host, in bytes.
    pub hostcall_bytes: u64,
    /// Table elements a call may use.
    pub table_elements: usize,
    /// Core instances a component may create.
    pub instances: usize,
    /// Instances the engine keeps ready in its pool (bounds concurrent calls).
    pub pooled_instances: u32,
    /// Host resources (HTTP fields, streams, pollables...) one call may hold.
    pub resource_handles: usize,
    /// Largest response body a plugin may read from one outbound request, in bytes.
    pub response_bytes: u64,
    /// Calls one plugin version may run at once; more wait in line.
    pub concurrency: u32,
    /// How long a call waits in line for a free slot before it is refused
    /// (503 with `Retry-After`), in milliseconds.
    pub queue_ms: u64,
    /// Log lines one call may write; beyond it lines are dropped and one
    /// line at the end of the call says how many.
    pub log_lines: u64,
    /// Log bytes one call may write (the same).
    pub log_bytes: u64,
    /// Log lines per second one plugin version may write over all its
    /// calls (bursts of one second's worth); beyond it lines are dropped.
    pub log_rate_lines: u32,
    /// Log bytes per second one plugin version may write (the same).
    pub log_rate_bytes: u32,
    /// Keys one plugin's kv may hold on one connection.
    pub kv_keys: u64,
    /// Bytes (keys and values) one plugin's kv may hold on one connection.
    pub kv_bytes: u64,
    /// Outbound requests one call may send.
    pub outbound_requests: u64,
    /// Response body bytes one call may read, over all its requests.
    pub call_response_bytes: u64,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            memory_mib: 64,
            deadline_ms: 10_000,
            output_bytes: 4 * 1024 * 1024,
            hostcall_bytes: 1024 * 1024,
            table_elements: 20_000,
            instances: 64,
            pooled_instances: 256,
            resource_handles: 10_000,
            response_bytes: 8 * 1024 * 1024,
            concurrency: 64,
            queue_ms: 1_000,
            log_lines: 10_000,
            log_bytes: 4 * 1024 * 1024,
            log_rate_lines: 5_000,
            log_rate_bytes: 4 * 1024 * 1024,
            kv_keys: 100_000,
            kv_bytes: 64 * 1024 * 1024,
            outbound_requests: 1_000,
            call_response_bytes: 128 * 1024 * 1024,
        }
    }
}

impl Limits {
    /// Memory cap in bytes.
    pub fn memory_bytes(&self) -> usize {
        usize::try_from(self.memory_mib.saturating_mul(1024 * 1024)).unwrap_or(usize::MAX)
    }

    /// The call deadline.
    pub fn deadline(&self) -> Duration {
        Duration::from_millis(self.deadline_ms)
    }

    /// These limits narrowed by what a plugin's manifest asks for: a plugin
    /// may ask for less than the operator allows, never more.
    pub fn narrowed_by(&self, asked: &junction_registry::manifest::Limits) -> Limits {
        let min = |operator: u64, asked: Option<u64>| asked.map_or(operator, |a| a.min(operator));
        Limits {
            memory_mib: min(self.memory_mib, asked.memory_mib),
            deadline_ms: min(self.deadline_ms, asked.deadline_ms),
            output_bytes: min(self.output_bytes, asked.output_bytes),
            concurrency: u32::try_from(min(u64::from(self.concurrency), asked.concurrency))
                .unwrap_or(self.concurrency),
            log_lines: min(self.log_lines, asked.log_lines),
            log_bytes: min(self.log_bytes, asked.log_bytes),
            kv_keys: min(self.kv_keys, asked.kv_keys),
            kv_bytes: min(self.kv_bytes, asked.kv_bytes),
            outbound_requests: min(self.outbound_requests, asked.outbound_requests),
            call_response_bytes: min(self.call_response_bytes, asked.call_response_bytes),
            ..self.clone()
        }
    }
}

/// The process-wide engine and its epoch ticker.
pub struct Sandbox {
    engine: Engine,
    limits: Limits,
    ticker: Ticker,
}

impl Sandbox {
    /// Builds the engine: Cranelift, epoch interruption (with async calls, a
    /// guest in a loop yields instead of holding an executor thread) and the
    /// pooling allocator sized from `limits`.
    pub fn new(limits: Limits) -> wasmtime::Result<Sandbox> {
        let mut config = Config::new();
        config.wasm_component_model(true);
        config.epoch_interruption(true);
        config.cranelift_opt_level(wasmtime::OptLevel::Speed);

        let mut pool = PoolingAllocationConfig::default();
        pool.total_component_instances(limits.pooled_instances);
        pool.total_core_instances(limits.pooled_instances.saturating_mul(4));
        pool.total_memories(limits.pooled_instances.saturating_mul(2));
        pool.total_tables(limits.pooled_instances.saturating_mul(4));
        pool.total_stacks(limits.pooled_instances);
        pool.max_memory_size(limits.memory_bytes());
        pool.max_core_instances_per_component(u32::try_from(limits.instances).unwrap_or(u32::MAX));
        pool.table_elements(limits.table_elements);
        // A freed slot is reset for the next call. With Linux's PAGEMAP_SCAN
        // (6.7+) only the pages the call dirtied are copied back from the
        // image, up to the keep-resident size, and they stay mapped: no
        // `madvise`, no TLB shootdown, no page faults on the next call. Without
        // it the first keep-resident bytes are reset with `memset` whether
        // dirty or not, so that size is kept small.
        let (memory_resident, table_resident) =
            if PoolingAllocationConfig::is_pagemap_scan_available() {
                pool.pagemap_scan(Enabled::Yes);
                (KEEP_RESIDENT_SCANNED, KEEP_RESIDENT_SCANNED)
            } else {
                (64 * 1024, 16 * 1024)
            };
        pool.linear_memory_keep_resident(memory_resident);
        pool.table_keep_resident(table_resident);
        config.allocation_strategy(InstanceAllocationStrategy::Pooling(pool));

        let engine = Engine::new(&config)?;
        let ticker = Ticker::start(engine.clone());
        Ok(Sandbox {
            engine,
            limits,
            ticker,
        })
    }

    /// The engine.
    pub fn engine(&self) -> &Engine {
        &self.engine
    }

    /// The limits every call runs under.
    pub fn limits(&self) -> &Limits {
        &self.limits
    }

    /// Whether the epoch ticker is still running.
    pub fn ticking(&self) -> bool {
        !self.ticker.stop.load(Ordering::Relaxed)
    }
}

/// A thread that advances the engine's epoch every [`EPOCH_TICK`] until dropped.
struct Ticker {
    stop: Arc<AtomicBool>,
}

impl Ticker {
    fn start(engine: Engine) -> Ticker {
        let stop = Arc::new(AtomicBool::new(false));
        let flag = stop.clone();
        // The thread holds only a weak interest: it stops when the Sandbox drops.
        let spawned = thread::Builder::new()
            .name("junction-epoch".into())
            .spawn(move || {
                while !flag.load(Ordering::Relaxed) {
                    thread::sleep(EPOCH_TICK);
                    engine.increment_epoch();
                }
            });
        if let Err(err) = spawned {
            // Without a ticker no deadline would ever fire: refuse to run plugins.
            tracing::error!(%err, "could not start the epoch ticker thread");
            stop.store(true, Ordering::Relaxed);
        }
        Ticker { stop }
    }
}

impl Drop for Ticker {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

/// The per-store resource limiter. It records which limit refused a growth so
/// that the trap that follows can be reported as that limit.
#[derive(Debug)]
pub struct Limiter {
    memory_bytes: usize,
    table_elements: usize,
    instances: usize,
    /// Set when a memory growth was refused.
    pub memory_refused: bool,
    /// Set when a table growth was refused.
    pub table_refused: bool,
    /// The largest linear memory the guest had, in bytes.
    pub memory_peak: usize,
}

impl Limiter {
    /// A limiter enforcing `limits`.
    pub fn new(limits: &Limits) -> Limiter {
        Limiter {
            memory_bytes: limits.memory_bytes(),
            table_elements: limits.table_elements,
            instances: limits.instances,
            memory_refused: false,
            table_refused: false,
            memory_peak: 0,
        }
    }
}

impl wasmtime::ResourceLimiter for Limiter {
    fn memory_growing(
        &mut self,
        _current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        let allowed = desired <= self.memory_bytes;
        if allowed {
            self.memory_peak = self.memory_peak.max(desired);
        } else {
            self.memory_refused = true;
        }
        Ok(allowed)
    }

    fn table_growing(
        &mut self,
        _current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        let allowed = desired <= self.table_elements;
        if !allowed {
            self.table_refused = true;
        }
        Ok(allowed)
    }

    fn instances(&self) -> usize {
        self.instances
    }

    fn tables(&self) -> usize {
        self.instances.saturating_mul(4)
    }

    fn memories(&self) -> usize {
        self.instances
    }
}
