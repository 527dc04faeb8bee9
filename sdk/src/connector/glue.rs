//! Conversions between the typed API and the raw bindings, called by the
//! code that [`export_connector!`](crate::export_connector) generates.

use super::{Connector, Context, Event, Page, WebhookRequest};
use crate::__private::Package;
use crate::Error;
use crate::wit::connector::junction::plugin::types as w;

pub use w::{
    CallContext, Error as WitError, Event as WitEvent, Page as WitPage, PluginInfo,
    WebhookRequest as WitWebhookRequest,
};

pub fn info<T: Connector>(package: Package) -> PluginInfo {
    let operations = T::operations()
        .operations
        .into_iter()
        .map(|op| w::OperationInfo {
            name: op.name,
            description: op.description,
            input_schema: op.input_schema.text(),
            output_schema: op.output_schema.text(),
            idempotent: op.idempotent,
            undo: op.undo,
        })
        .collect();
    let triggers = T::triggers()
        .into_iter()
        .map(|t| w::TriggerInfo {
            event_type: t.event_type,
            description: t.description,
            schema: t.schema,
        })
        .collect();
    PluginInfo {
        name: package.name.into(),
        version: package.version.into(),
        description: package.description.into(),
        operations,
        triggers,
        config_schema: T::config_schema(),
    }
}

pub fn check<T: Connector>(ctx: CallContext) -> Result<(), WitError> {
    T::check(&context(ctx)).map_err(error)
}

pub fn invoke<T: Connector>(
    ctx: CallContext,
    operation: String,
    input: String,
) -> Result<String, WitError> {
    T::operations()
        .invoke(&context(ctx), &operation, &input)
        .map_err(error)
}

pub fn read<T: Connector>(
    ctx: CallContext,
    stream: String,
    cursor: Option<String>,
) -> Result<WitPage, WitError> {
    let page: Page = T::read(&context(ctx), &stream, cursor).map_err(error)?;
    Ok(WitPage {
        records: page.records,
        next_cursor: page.next_cursor,
        done: page.done,
    })
}

pub fn handle_webhook<T: Connector>(
    ctx: CallContext,
    request: WitWebhookRequest,
) -> Result<Vec<WitEvent>, WitError> {
    let request = WebhookRequest {
        method: request.method,
        path: request.path,
        headers: request.headers,
        body: request.body,
    };
    let events: Vec<Event> = T::handle_webhook(&context(ctx), request).map_err(error)?;
    Ok(events
        .into_iter()
        .map(|e| WitEvent {
            id: e.id,
            event_type: e.event_type,
            source: e.source,
            subject: e.subject,
            time: e.time,
            data: e.data,
        })
        .collect())
}

fn context(ctx: CallContext) -> Context {
    Context {
        tenant: ctx.tenant,
        connection: ctx.connection,
        run_id: ctx.run_id,
        idempotency_key: ctx.idempotency_key,
        attempt: ctx.attempt,
        trace_id: ctx.trace_id,
        deadline_ms: ctx.deadline_ms,
    }
}

pub(crate) fn error(error: Error) -> WitError {
    match error {
        Error::InvalidInput(m) => WitError::InvalidInput(m),
        Error::Unauthorized(m) => WitError::Unauthorized(m),
        Error::NotFound(m) => WitError::NotFound(m),
        Error::Conflict(m) => WitError::Conflict(m),
        Error::RateLimited { retry_after_ms } => WitError::RateLimited(retry_after_ms),
        Error::Unavailable(m) => WitError::Unavailable(m),
        Error::Internal(m) => WitError::Internal(m),
    }
}
