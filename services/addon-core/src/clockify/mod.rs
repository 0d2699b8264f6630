//! Talking to Clockify's API.

pub mod allowlist;
pub mod client;
pub mod ratelimit;

pub use allowlist::HostAllowlist;
pub use client::{ApiError, ApiRequest, ApiResponse, ApiTarget, ClockifyClient};
pub use ratelimit::RateLimiter;
