//! Talking to Clockify's API.

pub mod allowlist;
pub mod client;
pub mod ratelimit;

pub use allowlist::HostAllowlist;
pub use client::{ApiError, ApiRequest, ApiResponse, ApiTarget, ClockifyClient, FormField};
pub use ratelimit::RateLimiter;
