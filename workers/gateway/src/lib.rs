//! The gateway: one stateless HTTP service (axum) for everything that arrives
//! from outside. ESP webhooks (SendGrid, SES through SNS, Mailgun, our own
//! format) are verified (`verify`), deduplicated by provider event id in Redis
//! and published to the `events` queue, answered 2xx only once the broker
//! confirmed (`server`); one-click unsubscribes are written to the store before
//! the 2xx (`unsubscribe`); the CRM's campaign API goes through [`CampaignApi`],
//! which the `cpo` binary implements with the `cpo enqueue` / `cpo status` code.
//! Any number of replicas may run: all state is in Redis, RabbitMQ and the store.

pub mod api;
pub mod config;
pub mod metrics;
pub mod openapi;
pub mod server;
pub mod store;
pub mod unsubscribe;
pub mod verify;

pub use api::{ApiError, CampaignApi};
pub use config::GatewayConfig;
pub use server::{BuildError, Gateway, Parts};
pub use store::LazyStore;
