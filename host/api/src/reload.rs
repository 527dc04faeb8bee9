//! Reloading the trusted signing keys, the signature requirement and the
//! API tokens from the host's configuration while it runs:
//! `POST /v1/admin/reload` (admin scope) and, in `junction serve`, SIGHUP.
//! Both go through [`Reloader::reload`]; each reload, refused ones
//! included, is audited. Everything else in the configuration needs a
//! restart.

use std::sync::{Arc, RwLock};

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use serde::Serialize;

use junction_runtime::{Runtime, RuntimeConfig};
use junction_store::audit::{Outcome, Record};

use crate::config::{ApiConfig, Scope};
use crate::error::{ApiError, ErrorCode, Refused};
use crate::extract::{ApiState, Caller, Tokens};

/// Reads the configuration again: the API's and the runtime's settings.
pub type ReloadSource = Arc<dyn Fn() -> Result<(ApiConfig, RuntimeConfig), String> + Send + Sync>;

/// What a reload applied.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct Reloaded {
    /// API tokens now accepted.
    pub tokens: usize,
    /// Signing keys now trusted.
    pub trusted_keys: usize,
    /// Whether uploads must be signed by a trusted key.
    pub require_signatures: bool,
}

/// Applies a reload to a running host; cheap to clone.
#[derive(Clone)]
pub struct Reloader {
    runtime: Arc<Runtime>,
    tokens: Arc<RwLock<Arc<Tokens>>>,
    source: Option<ReloadSource>,
}

impl std::fmt::Debug for Reloader {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Reloader")
            .field("configured", &self.source.is_some())
            .finish_non_exhaustive()
    }
}

impl Reloader {
    pub(crate) fn new(
        runtime: Arc<Runtime>,
        tokens: Arc<RwLock<Arc<Tokens>>>,
        source: Option<ReloadSource>,
    ) -> Reloader {
        Reloader {
            runtime,
            tokens,
            source,
        }
    }

    /// Reads the configuration again and applies its trusted keys,
    /// signature requirement and tokens, as `actor`. A configuration that
    /// does not read or parse changes nothing.
    pub async fn reload(&self, actor: &str) -> Result<Reloaded, ApiError> {
        let result = self.apply();
        let record = Record {
            actor,
            action: "config.reload",
            target: "configuration",
            digest: None,
            outcome: Outcome::of(&result),
            detail: &match &result {
                Ok(r) => format!(
                    "{} tokens, {} trusted keys, signatures {}",
                    r.tokens,
                    r.trusted_keys,
                    if r.require_signatures {
                        "required"
                    } else {
                        "optional"
                    }
                ),
                Err(e) => e.clone(),
            },
        };
        self.runtime.store().audit_or_log(record).await;
        match result {
            Ok(reloaded) => {
                tracing::info!(
                    actor,
                    tokens = reloaded.tokens,
                    trusted_keys = reloaded.trusted_keys,
                    "configuration reloaded"
                );
                Ok(reloaded)
            }
            Err(message) => Err(ApiError::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                ErrorCode::InvalidConfig,
                message,
            )),
        }
    }

    fn apply(&self) -> Result<Reloaded, String> {
        let source = self.source.as_ref().ok_or(
            "this host was started without a configuration to reload (an embedded host); restart it instead",
        )?;
        let (api, runtime) = source()?;
        let tokens = Tokens::of(&api);
        let count = tokens.len();
        let trusted_keys = self
            .runtime
            .set_signature_policy(runtime.require_signatures, &runtime.trusted_keys)?;
        *self.tokens.write().unwrap_or_else(|e| e.into_inner()) = Arc::new(tokens);
        Ok(Reloaded {
            tokens: count,
            trusted_keys,
            require_signatures: runtime.require_signatures,
        })
    }
}

/// Reloads the trusted signing keys, whether signatures are required, and
/// the API tokens from the host's configuration, without a restart (as
/// SIGHUP does). The rest of the configuration needs a restart.
#[utoipa::path(post, path = "/v1/admin/reload", tag = "host",
    security(("bearer" = ["admin"])),
    responses(Refused,
        (status = 200, description = "What the reload applied", body = Reloaded),
        (status = 422, description = "The configuration does not read or is invalid \
            (`invalid_config`); nothing changed", body = crate::error::ErrorBody)))]
pub(crate) async fn reload_config(
    State(state): State<ApiState>,
    caller: Caller,
) -> Result<Json<Reloaded>, ApiError> {
    caller.require(Scope::Admin)?;
    Ok(Json(state.reloader.reload(&caller.name).await?))
}
