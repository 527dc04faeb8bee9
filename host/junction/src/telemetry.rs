//! The host's logs and traces.
//!
//! Logs go to stderr, filtered by `JUNCTION_LOG`: readable text on a
//! terminal, JSON lines anywhere else (`JUNCTION_LOG_FORMAT=json|text`
//! decides otherwise); never colour codes in a file. Every line inside a
//! span lists its spans, whose `trace_id` names the trace.
//!
//! Traces are exported over OTLP (HTTP, protobuf or JSON) when the
//! `[telemetry]` section or the standard variables say so, and cost nothing
//! to send otherwise:
//!
//! ```toml
//! [telemetry]
//! traces = true                            # default: on when an OTLP endpoint variable is set
//! otlp_endpoint = "http://collector:4318"  # OTEL_EXPORTER_OTLP_ENDPOINT; /v1/traces is appended
//! otlp_protocol = "http/protobuf"          # OTEL_EXPORTER_OTLP_PROTOCOL: http/protobuf or http/json
//! service_name = "junction"                # OTEL_SERVICE_NAME
//! sampler = "parentbased_always_on"        # OTEL_TRACES_SAMPLER (and OTEL_TRACES_SAMPLER_ARG)
//! ```
//!
//! A value in the file wins over its variable. `OTEL_SDK_DISABLED=true` or
//! `OTEL_TRACES_EXPORTER=none` turn export off; `OTEL_TRACES_EXPORTER=otlp`
//! turns it on at the default endpoint (`http://localhost:4318`).

use std::io::IsTerminal;

use anyhow::Context as _;
use opentelemetry::trace::TracerProvider as _;
use opentelemetry_otlp::{Protocol, WithExportConfig};
use opentelemetry_sdk::trace::{Sampler, SdkTracerProvider};
use serde::{Deserialize, Serialize};
use tracing_subscriber::filter::{LevelFilter, Targets};
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::{EnvFilter, Layer};

/// The `[telemetry]` section.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct TelemetryConfig {
    /// Export traces over OTLP. Unset: when an OTLP endpoint variable is set.
    pub traces: Option<bool>,
    /// The OTLP base URL (`/v1/traces` is appended).
    pub otlp_endpoint: Option<String>,
    /// `http/protobuf` (the default) or `http/json`.
    pub otlp_protocol: Option<String>,
    /// The `service.name` of the spans; `junction` by default.
    pub service_name: Option<String>,
    /// An `OTEL_TRACES_SAMPLER` name; `parentbased_always_on` by default.
    pub sampler: Option<String>,
    /// The ratio of the `traceidratio` samplers, 0 to 1.
    pub sampler_arg: Option<f64>,
}

/// Where and how spans are exported, once the section and the variables
/// are combined.
#[derive(Debug, Clone, PartialEq)]
pub struct Export {
    /// The full URL spans are posted to.
    pub url: String,
    /// The OTLP encoding.
    pub protocol: Protocol,
    /// `service.name`.
    pub service_name: String,
    /// `OTEL_TRACES_SAMPLER` (and its argument).
    pub sampler: (String, Option<f64>),
}

impl TelemetryConfig {
    /// Checks the section on its own (the variables are read at start).
    pub fn validate(&self) -> Result<(), String> {
        self.export(|_| None).map(drop)
    }

    /// Combines the section with the variables `env` reads: `None` when
    /// traces are not exported.
    pub fn export(&self, env: impl Fn(&str) -> Option<String>) -> Result<Option<Export>, String> {
        let var = |name: &str| env(name).filter(|v| !v.trim().is_empty());
        let on = match self.traces {
            Some(on) => on,
            None if var("OTEL_SDK_DISABLED").is_some_and(|v| v.eq_ignore_ascii_case("true")) => {
                false
            }
            None => match var("OTEL_TRACES_EXPORTER").as_deref() {
                Some("none") => false,
                Some("otlp") => true,
                Some(other) => {
                    return Err(format!(
                        "OTEL_TRACES_EXPORTER={other} is not supported: use `otlp` or `none`"
                    ));
                }
                None => {
                    self.otlp_endpoint.is_some()
                        || var("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT").is_some()
                        || var("OTEL_EXPORTER_OTLP_ENDPOINT").is_some()
                }
            },
        };
        let traces_url = |base: &str| format!("{}/v1/traces", base.trim_end_matches('/'));
        let url = match (
            &self.otlp_endpoint,
            var("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"),
        ) {
            (Some(base), _) => traces_url(base),
            (None, Some(full)) => full,
            (None, None) => traces_url(
                &var("OTEL_EXPORTER_OTLP_ENDPOINT")
                    .unwrap_or_else(|| "http://localhost:4318".into()),
            ),
        };
        url::Url::parse(&url)
            .ok()
            .filter(|u| matches!(u.scheme(), "http" | "https"))
            .ok_or_else(|| format!("telemetry: the OTLP endpoint `{url}` is not an http(s) URL"))?;
        let protocol = self
            .otlp_protocol
            .clone()
            .or_else(|| var("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL"))
            .or_else(|| var("OTEL_EXPORTER_OTLP_PROTOCOL"))
            .unwrap_or_else(|| "http/protobuf".into());
        let protocol = match protocol.as_str() {
            "http/protobuf" => Protocol::HttpBinary,
            "http/json" => Protocol::HttpJson,
            "grpc" => {
                return Err(
                    "telemetry: OTLP over gRPC is not built in; use `http/protobuf` \
                            (the collector's port 4318) as otlp_protocol or \
                            OTEL_EXPORTER_OTLP_PROTOCOL"
                        .into(),
                );
            }
            other => {
                return Err(format!(
                    "telemetry: OTLP protocol `{other}` is not one of http/protobuf, http/json"
                ));
            }
        };
        let sampler = self
            .sampler
            .clone()
            .or_else(|| var("OTEL_TRACES_SAMPLER"))
            .unwrap_or_else(|| "parentbased_always_on".into());
        let arg = match self.sampler_arg {
            Some(arg) => Some(arg),
            None => var("OTEL_TRACES_SAMPLER_ARG")
                .map(|a| {
                    a.trim().parse::<f64>().map_err(|_| {
                        format!("telemetry: OTEL_TRACES_SAMPLER_ARG `{a}` is not a number")
                    })
                })
                .transpose()?,
        };
        sampler_of(&sampler, arg)?;
        Ok(on.then(|| Export {
            url,
            protocol,
            service_name: self
                .service_name
                .clone()
                .or_else(|| var("OTEL_SERVICE_NAME"))
                .unwrap_or_else(|| "junction".into()),
            sampler: (sampler, arg),
        }))
    }
}

/// The sampler an `OTEL_TRACES_SAMPLER` name (and argument) names.
fn sampler_of(name: &str, arg: Option<f64>) -> Result<Sampler, String> {
    let ratio = || -> Result<f64, String> {
        match arg {
            None => Ok(1.0),
            Some(r) if (0.0..=1.0).contains(&r) => Ok(r),
            Some(r) => Err(format!(
                "telemetry: sampler ratio {r} is not between 0 and 1"
            )),
        }
    };
    Ok(match name {
        "always_on" => Sampler::AlwaysOn,
        "always_off" => Sampler::AlwaysOff,
        "traceidratio" => Sampler::TraceIdRatioBased(ratio()?),
        "parentbased_always_on" => Sampler::ParentBased(Box::new(Sampler::AlwaysOn)),
        "parentbased_always_off" => Sampler::ParentBased(Box::new(Sampler::AlwaysOff)),
        "parentbased_traceidratio" => {
            Sampler::ParentBased(Box::new(Sampler::TraceIdRatioBased(ratio()?)))
        }
        other => {
            return Err(format!(
                "telemetry: sampler `{other}` is not one of always_on, always_off, traceidratio, \
                 parentbased_always_on, parentbased_always_off, parentbased_traceidratio"
            ));
        }
    })
}

/// The installed logs and traces; flushes the spans not yet sent when dropped.
pub struct Telemetry {
    provider: Option<SdkTracerProvider>,
}

impl Telemetry {
    /// Where spans go, when they are exported.
    pub fn exporting(&self) -> bool {
        self.provider.is_some()
    }

    /// Sends every finished span now (blocking until the exporter answered).
    pub fn flush(&self) -> anyhow::Result<()> {
        if let Some(provider) = &self.provider {
            provider.force_flush().context("flushing spans")?;
        }
        Ok(())
    }
}

impl Drop for Telemetry {
    fn drop(&mut self) {
        if let Some(provider) = self.provider.take()
            && let Err(e) = provider.shutdown()
        {
            eprintln!("warning: sending the last spans failed: {e}");
        }
    }
}

/// How log lines are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum LogFormat {
    Text { ansi: bool },
    Json,
}

fn log_format() -> anyhow::Result<LogFormat> {
    let terminal = std::io::stderr().is_terminal();
    match std::env::var("JUNCTION_LOG_FORMAT").ok().as_deref() {
        None | Some("") | Some("auto") if terminal => Ok(LogFormat::Text { ansi: true }),
        None | Some("") | Some("auto") | Some("json") => Ok(LogFormat::Json),
        Some("text") => Ok(LogFormat::Text { ansi: terminal }),
        Some(other) => {
            anyhow::bail!("JUNCTION_LOG_FORMAT={other} is not one of json, text, auto")
        }
    }
}

/// Installs logging (filtered by `JUNCTION_LOG`, `default` when unset) and,
/// when `config` and the variables say so, trace export. Fails when a
/// subscriber is already installed or the settings are wrong.
pub fn init(config: &TelemetryConfig, default: &str) -> anyhow::Result<Telemetry> {
    let filter =
        EnvFilter::try_from_env("JUNCTION_LOG").unwrap_or_else(|_| EnvFilter::new(default));
    let logs = match log_format()? {
        LogFormat::Json => tracing_subscriber::fmt::layer()
            .json()
            .with_current_span(false)
            .with_span_list(true)
            .with_writer(std::io::stderr)
            .with_filter(filter)
            .boxed(),
        LogFormat::Text { ansi } => tracing_subscriber::fmt::layer()
            .with_ansi(ansi)
            .with_writer(std::io::stderr)
            .with_filter(filter)
            .boxed(),
    };
    let export = config
        .export(|name| std::env::var(name).ok())
        .map_err(anyhow::Error::msg)?;
    let provider = export.map(|e| provider(&e)).transpose()?;
    // The host's own spans; a dependency's internals are not part of a
    // business transaction.
    let traces = provider.as_ref().map(|p| {
        tracing_opentelemetry::layer()
            .with_tracer(p.tracer("junction"))
            .with_filter(Targets::new().with_target("junction", LevelFilter::INFO))
    });
    let exported = traces.is_some();
    tracing_subscriber::registry()
        .with(logs)
        .with(traces)
        .try_init()
        .context("installing the log subscriber")?;
    junction_runtime::trace::set_exported(exported);
    Ok(Telemetry { provider })
}

fn provider(export: &Export) -> anyhow::Result<SdkTracerProvider> {
    let exporter = opentelemetry_otlp::SpanExporter::builder()
        .with_http()
        .with_endpoint(&export.url)
        .with_protocol(export.protocol)
        .build()
        .context("building the OTLP exporter")?;
    let sampler = sampler_of(&export.sampler.0, export.sampler.1).map_err(anyhow::Error::msg)?;
    Ok(SdkTracerProvider::builder()
        .with_batch_exporter(exporter)
        .with_sampler(sampler)
        .with_resource(
            opentelemetry_sdk::Resource::builder()
                .with_service_name(export.service_name.clone())
                .build(),
        )
        .build())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn export(config: &TelemetryConfig, vars: &[(&str, &str)]) -> Result<Option<Export>, String> {
        config.export(|name| {
            vars.iter()
                .find(|(k, _)| *k == name)
                .map(|(_, v)| v.to_string())
        })
    }

    #[test]
    fn off_unless_an_endpoint_or_the_section_says_so() {
        let none = TelemetryConfig::default();
        assert_eq!(export(&none, &[]).unwrap(), None);
        let on = export(&none, &[("OTEL_EXPORTER_OTLP_ENDPOINT", "http://c:4318/")])
            .unwrap()
            .unwrap();
        assert_eq!(on.url, "http://c:4318/v1/traces");
        assert_eq!(on.protocol, Protocol::HttpBinary);
        assert_eq!(on.service_name, "junction");
        let full = export(
            &none,
            &[
                ("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "http://c:4318/custom"),
                ("OTEL_SERVICE_NAME", "junction-eu"),
                ("OTEL_EXPORTER_OTLP_PROTOCOL", "http/json"),
            ],
        )
        .unwrap()
        .unwrap();
        assert_eq!(full.url, "http://c:4318/custom");
        assert_eq!(full.service_name, "junction-eu");
        assert_eq!(full.protocol, Protocol::HttpJson);
        assert_eq!(
            export(
                &none,
                &[
                    ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://c:4318"),
                    ("OTEL_SDK_DISABLED", "true")
                ]
            )
            .unwrap(),
            None
        );
        let section = TelemetryConfig {
            traces: Some(true),
            otlp_endpoint: Some("http://file:4318".into()),
            ..TelemetryConfig::default()
        };
        let from_file = export(
            &section,
            &[("OTEL_EXPORTER_OTLP_ENDPOINT", "http://env:4318")],
        )
        .unwrap()
        .unwrap();
        assert_eq!(from_file.url, "http://file:4318/v1/traces");
        let defaulted = export(&none, &[("OTEL_TRACES_EXPORTER", "otlp")])
            .unwrap()
            .unwrap();
        assert_eq!(defaulted.url, "http://localhost:4318/v1/traces");
    }

    #[test]
    fn wrong_settings_say_what_would_do() {
        let none = TelemetryConfig::default();
        let grpc = export(&none, &[("OTEL_EXPORTER_OTLP_PROTOCOL", "grpc")]).unwrap_err();
        assert!(grpc.contains("http/protobuf"), "{grpc}");
        let sampler = export(&none, &[("OTEL_TRACES_SAMPLER", "sometimes")]).unwrap_err();
        assert!(sampler.contains("parentbased_always_on"), "{sampler}");
        let ratio = export(
            &none,
            &[
                ("OTEL_TRACES_SAMPLER", "traceidratio"),
                ("OTEL_TRACES_SAMPLER_ARG", "2"),
            ],
        )
        .unwrap_err();
        assert!(ratio.contains("between 0 and 1"), "{ratio}");
        let url = TelemetryConfig {
            otlp_endpoint: Some("collector:4318".into()),
            ..TelemetryConfig::default()
        };
        assert!(url.validate().unwrap_err().contains("http(s) URL"));
        assert!(export(&none, &[("OTEL_TRACES_EXPORTER", "zipkin")]).is_err());
    }
}
