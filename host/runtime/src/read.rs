//! Incremental reads: the connector's `read` export, one page of a stream
//! after a cursor. The host checks the page as it checks any output (within
//! the plugin's output cap, every record a JSON object) before anyone sees
//! it.

use std::sync::Arc;
use std::time::Instant;

use crate::plugins::{Plugin, Pre};
use crate::runtime::{
    CallError, CallOptions, Runtime, admit, call_span, check_output, conclude, record_plugin,
    run_with_deadline, settle, traced, wrong_world,
};
use junction_registry::World;

/// One page of a stream, as the plugin returned it and the host checked it.
#[derive(Debug, Clone)]
pub struct Page {
    /// The records, JSON objects as text.
    pub records: Vec<String>,
    /// The cursor to read on from; `None` when the stream has no position.
    pub next_cursor: Option<String>,
    /// True when the stream has no more records for now.
    pub done: bool,
    /// The plugin version that read it.
    pub plugin: Arc<Plugin>,
}

impl Runtime {
    /// Reads the page of `stream` after `cursor` (`None`: from the start)
    /// from the connection's system.
    pub async fn read(
        &self,
        connection: &str,
        stream: &str,
        cursor: Option<&str>,
        options: CallOptions,
    ) -> Result<Page, CallError> {
        let (started, mut seen) = (Instant::now(), None);
        // The stream names no metric series or span: callers name it, so
        // its values are unbounded.
        let span = call_span("read", connection, "read");
        let call = self.read_on(connection, stream, cursor, options, &mut seen);
        let result = traced(span, call).await;
        let m = &self.metrics;
        m.record_call(seen.as_deref(), connection, "read", started, &result);
        result
    }

    async fn read_on(
        &self,
        connection: &str,
        stream: &str,
        cursor: Option<&str>,
        options: CallOptions,
        seen: &mut Option<Arc<Plugin>>,
    ) -> Result<Page, CallError> {
        let (conn, plugin) = self.connector_for(connection).await?;
        record_plugin(&plugin);
        *seen = Some(plugin.clone());
        let Pre::Connector(pre) = &plugin.pre else {
            return Err(wrong_world(&plugin, World::Connector));
        };
        let _admitted = admit(&plugin, &self.pool).await?;
        let (mut store, ctx) = self.connector_store(&conn, &plugin, options)?;
        let result = run_with_deadline(&mut store, plugin.limits.deadline(), async |store| {
            pre.instantiate_async(&mut *store)
                .await?
                .call_read(&mut *store, &ctx, stream, cursor)
                .await
        })
        .await;
        let page = conclude(settle(result, &store, plugin.limits.deadline_ms), &store)?;
        let cursor = page.next_cursor.as_deref().map_or(0, str::len);
        let size = page.records.iter().map(String::len).sum::<usize>() + cursor;
        let limit = plugin.limits.output_bytes;
        if u64::try_from(size).unwrap_or(u64::MAX) > limit {
            return Err(CallError::OutputTooLarge { size, limit });
        }
        check_output(&plugin.limits, page.records.iter().map(String::as_str))?;
        if let Some(at) = page
            .records
            .iter()
            .position(|r| !r.trim_start().starts_with('{'))
        {
            return Err(CallError::BadOutput(format!(
                "record {at} of stream `{stream}` is not a JSON object"
            )));
        }
        Ok(Page {
            records: page.records,
            next_cursor: page.next_cursor,
            done: page.done,
            plugin,
        })
    }
}
