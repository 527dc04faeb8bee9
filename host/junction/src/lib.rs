//! The `junction` binary's library: [`serve`] (the host), the
//! client commands, the plugin [`scaffold`], the [`demo`] and the composed
//! [`config`]. The parts it puts together live in their own crates:
//! [`junction_store`] (state and all SQL), [`junction_runtime`] (the
//! engine, capabilities and plugins), [`junction_flows`] (durable flows)
//! and [`junction_api`] (the HTTP API). See `ARCHITECTURE.md`.
//!
//! This is the only crate that depends on `junction-standins`, for the demo.

#![deny(missing_docs)]

pub mod config;
pub mod demo;
pub mod scaffold;
pub mod serve;
pub mod shipped;
pub mod telemetry;
