//! Flows: webhook-triggered automations over the Clockify API and outbound HTTP.

pub mod dryrun;
pub mod eval;
pub mod import;
pub mod limits;
pub mod model;
pub mod sealed;
pub mod template;

pub use model::{
    Action, ActionKind, Condition, ConditionMode, ConditionOp, FlowDefinition, FlowFeatures,
    TriggerSource,
};
