//! Flows: webhook-triggered automations over the Clockify API.

pub mod eval;
pub mod model;
pub mod template;

pub use model::{Action, Condition, ConditionMode, ConditionOp, FlowDefinition};
