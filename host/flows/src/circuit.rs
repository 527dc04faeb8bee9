//! The circuit breaker as the workers see it: before a step calls a
//! connection whose circuit is open, the run is parked instead (no request,
//! no retry burnt); a call's `unavailable` error or timeout counts toward
//! opening it; a keeper task probes open circuits after their cool-down with
//! the connector's `check` and closes them, which resumes the parked runs in
//! the order they arrived. The state is the store's, shared by every host.

use std::collections::HashSet;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use serde::Serialize;

use super::exec::Failure;
use super::{FlowError, Flows, Result, now_ms, rfc3339};
use junction_store::audit::{Outcome, Record};
use junction_store::{CircuitSettings, FailureOutcome};

/// How old this host's view of which circuits are open may be.
const REFRESH: Duration = Duration::from_millis(250);

/// How long a host holds a probe before another may take it over.
const PROBE_HOLD_MS: i64 = 60_000;

/// The failures that count toward opening a circuit: the system is down or
/// does not answer in time.
pub(crate) fn counts(failure: &Failure) -> bool {
    matches!(failure.kind, "unavailable" | "timeout")
}

/// This host's view of the circuits.
#[derive(Debug, Default)]
pub(crate) struct Circuits {
    /// The connections whose circuit is not closed, and when that was read.
    open: Mutex<Option<(HashSet<String>, Instant)>>,
    /// Connections with failures counted since their last success here.
    failing: Mutex<HashSet<String>>,
}

/// A connection's circuit, as the API shows it.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct CircuitView {
    /// The connection.
    pub connection: String,
    /// `closed`, `open` (steps are parked, not attempted) or `half_open`
    /// (a probe is running).
    pub state: String,
    /// Consecutive `unavailable` errors or timeouts counted while closed.
    pub failures: i64,
    /// When it opened (RFC 3339), while not closed.
    pub opened_at: Option<String>,
    /// When the next probe is due (RFC 3339); none when opened by hand.
    pub next_probe_at: Option<String>,
    /// Opened by hand: stays open until closed by hand.
    pub manual: bool,
    /// Why it last changed.
    pub reason: Option<String>,
    /// Runs parked on it, waiting for it to close.
    pub parked_runs: i64,
    /// When it opens and how long it stays open.
    pub settings: CircuitSettings,
}

impl Flows {
    /// Whether the circuit of `connection` is not closed (this host's view,
    /// at most 250 ms old, and at once for the changes this host made).
    pub(crate) async fn circuit_open(&self, connection: &str) -> Result<bool> {
        {
            let view = self.circuits.open.lock().unwrap_or_else(|e| e.into_inner());
            if let Some((open, read)) = view.as_ref()
                && read.elapsed() < REFRESH
            {
                return Ok(open.contains(connection));
            }
        }
        let open: HashSet<String> = self.store().open_circuits().await?.into_iter().collect();
        let is_open = open.contains(connection);
        *self.circuits.open.lock().unwrap_or_else(|e| e.into_inner()) =
            Some((open, Instant::now()));
        Ok(is_open)
    }

    /// Forgets this host's view, so the next look reads the store.
    fn circuits_changed(&self) {
        *self.circuits.open.lock().unwrap_or_else(|e| e.into_inner()) = None;
    }

    /// A call on `connection` ended (`failure`: how it failed). Returns
    /// whether the circuit is open now, so that the run parks.
    pub(crate) async fn circuit_after_call(
        &self,
        connection: &str,
        failure: Option<&Failure>,
    ) -> Result<bool> {
        let Some(failure) = failure.filter(|f| counts(f)) else {
            let had_failures = self
                .circuits
                .failing
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .remove(connection);
            if had_failures {
                self.store().circuit_success(connection, now_ms()).await?;
            }
            return Ok(false);
        };
        self.circuits
            .failing
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(connection.to_string());
        let settings = self.runtime.circuit_settings(connection).await;
        let outcome = self
            .store()
            .circuit_failure(connection, &settings, now_ms(), &failure.message)
            .await?;
        match outcome {
            FailureOutcome::Counted(_) => Ok(false),
            FailureOutcome::AlreadyOpen => Ok(true),
            FailureOutcome::Opened => {
                self.circuits_changed();
                tracing::warn!(
                    connection,
                    failures = settings.failures,
                    cool_down_ms = settings.cool_down_ms,
                    "circuit opened: steps on the connection are parked until a probe succeeds"
                );
                self.runtime.metrics().record_circuit(connection, "open");
                let detail = format!(
                    "{} consecutive failures within {} ms; last: {}",
                    settings.failures, settings.window_ms, failure.message
                );
                self.audit_circuit("junction", "circuit.open", connection, &detail)
                    .await;
                Ok(true)
            }
        }
    }

    async fn audit_circuit(&self, actor: &str, action: &str, connection: &str, detail: &str) {
        self.store()
            .audit_or_log(Record {
                actor,
                action,
                target: connection,
                digest: None,
                outcome: Outcome::Ok,
                detail,
            })
            .await;
    }

    /// One round of the keeper: probes each circuit whose cool-down is
    /// over, closing it when the connector's `check` passes (resuming its
    /// parked runs) and opening it for another cool-down when it fails.
    pub async fn probe_circuits(&self) -> Result<()> {
        let now = now_ms();
        for connection in self.store().take_due_probes(now, PROBE_HOLD_MS).await? {
            self.circuits_changed();
            self.runtime
                .metrics()
                .record_circuit(&connection, "half_open");
            match self.runtime.check(&connection).await {
                Ok(_) => {
                    self.close(&connection, "probe").await?;
                }
                Err(e) => {
                    let settings = self.runtime.circuit_settings(&connection).await;
                    let cool_down = i64::try_from(settings.cool_down_ms).unwrap_or(i64::MAX / 2);
                    let now = now_ms();
                    let message = e.to_string();
                    self.store()
                        .circuit_probe_failed(
                            &connection,
                            now,
                            now.saturating_add(cool_down),
                            &message,
                        )
                        .await?;
                    self.runtime.metrics().record_circuit(&connection, "open");
                    tracing::warn!(connection = %connection, error = %message, cool_down_ms = settings.cool_down_ms, "circuit probe failed; open for another cool-down");
                }
            }
        }
        Ok(())
    }

    async fn close(&self, connection: &str, by: &str) -> Result<Option<u64>> {
        let released = self.store().close_circuit(connection, by, now_ms()).await?;
        self.circuits_changed();
        if let Some(runs) = released {
            self.circuits
                .failing
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .remove(connection);
            self.runtime.metrics().record_circuit(connection, "closed");
            tracing::info!(
                connection,
                resumed_runs = runs,
                by,
                "circuit closed; parked runs resume in the order they arrived"
            );
            let detail = format!("closed by {by}; {runs} parked runs resume");
            let actor = if by == "probe" { "junction" } else { by };
            self.audit_circuit(actor, "circuit.close", connection, &detail)
                .await;
            self.wake.notify_waiters();
        }
        Ok(released)
    }

    /// Opens the circuit of `connection` by hand for `actor`: steps on it
    /// are parked until it is closed by hand.
    pub async fn open_circuit(&self, connection: &str, actor: &str) -> Result<CircuitView> {
        self.known_connection(connection).await?;
        self.store()
            .open_circuit(connection, actor, now_ms())
            .await?;
        self.circuits_changed();
        self.runtime.metrics().record_circuit(connection, "open");
        tracing::warn!(connection, actor, "circuit opened by hand");
        self.audit_circuit(actor, "circuit.open", connection, "opened by hand")
            .await;
        self.view_of(connection).await
    }

    /// Closes the circuit of `connection` by hand for `actor`; its parked
    /// runs resume.
    pub async fn close_circuit(&self, connection: &str, actor: &str) -> Result<CircuitView> {
        self.known_connection(connection).await?;
        self.close(connection, actor).await?;
        self.view_of(connection).await
    }

    async fn known_connection(&self, connection: &str) -> Result<()> {
        match self.store().connection(connection).await? {
            Some(_) => Ok(()),
            None => Err(FlowError::NotFound(format!(
                "no connection named `{connection}`"
            ))),
        }
    }

    /// The circuit of `connection`.
    pub async fn circuit(&self, connection: &str) -> Result<CircuitView> {
        self.known_connection(connection).await?;
        self.view_of(connection).await
    }

    /// The circuit of `connection`, known to exist.
    async fn view_of(&self, connection: &str) -> Result<CircuitView> {
        let settings = self.runtime.circuit_settings(connection).await;
        let row = self.store().circuit(connection).await?;
        Ok(match row {
            Some(r) => CircuitView {
                connection: r.connection,
                state: r.state,
                failures: r.failures,
                opened_at: r.opened_at.map(rfc3339),
                next_probe_at: r.probe_at.filter(|_| !r.manual).map(rfc3339),
                manual: r.manual,
                reason: r.reason,
                parked_runs: r.parked,
                settings,
            },
            None => CircuitView {
                connection: connection.to_string(),
                state: "closed".into(),
                failures: 0,
                opened_at: None,
                next_probe_at: None,
                manual: false,
                reason: None,
                parked_runs: 0,
                settings,
            },
        })
    }

    /// Starts the keeper on the current Tokio runtime: it probes due
    /// circuits every `idle_poll` (at most 250 ms), until every other handle
    /// to these flows is gone.
    pub(crate) fn spawn_keeper(self: &std::sync::Arc<Self>) -> tokio::task::JoinHandle<()> {
        let weak = std::sync::Arc::downgrade(self);
        let every = self.options.idle_poll.min(REFRESH);
        tokio::spawn(async move {
            loop {
                {
                    let Some(flows) = weak.upgrade() else { return };
                    if let Err(e) = flows.probe_circuits().await {
                        tracing::error!(error = %e, "probing circuits failed");
                    }
                    if let Err(e) = flows.store().release_stranded_runs().await {
                        tracing::error!(error = %e, "releasing runs parked on closed circuits failed");
                    }
                }
                tokio::time::sleep(every).await;
            }
        })
    }
}
