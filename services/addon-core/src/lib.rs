//! The shared core of the Clockify add-on services.
//!
//! Configuration ([`config`]), the database and its migrations ([`db`], [`store`]), Clockify
//! token verification ([`auth`]), token encryption at rest ([`crypto`]), the Clockify API
//! client with allowlist, rate limit and retries ([`clockify`]), HTTP scaffolding ([`http`]),
//! metrics ([`metrics`]), flows ([`flows`], [`worker`]), bootstrap ([`bootstrap`]), retention
//! ([`retention`]) and the routes every add-on shares ([`routes`]). An add-on is an
//! [`addon::AddonDefinition`] served by [`app::App`].

pub mod addon;
pub mod app;
pub mod auth;
pub mod bootstrap;
pub mod catalog;
pub mod clockify;
pub mod config;
pub mod crypto;
pub mod db;
pub mod explorer;
pub mod flows;
pub mod hostrule;
pub mod http;
pub mod ingest;
pub mod metrics;
pub mod openapi;
pub mod outbound;
pub mod retention;
pub mod routes;
pub mod store;
pub mod telemetry;
pub mod time;
pub mod worker;

pub use addon::AddonDefinition;
pub use app::{App, AppState};
pub use config::{CoreConfig, Env};
