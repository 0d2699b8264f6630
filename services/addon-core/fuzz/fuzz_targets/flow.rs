//! A flow definition and a webhook body, as any admin and any sender could write them: the
//! definition is validated as the API does, then (when accepted) its conditions are evaluated
//! and its actions rendered against the body. Nothing may panic, overflow the stack or grow
//! without bound; every refusal is an error value.
#![no_main]

use addon_core::flows::eval::{conditions_match, render_action, render_http};
use addon_core::flows::template::TemplateContext;
use addon_core::flows::{ActionKind, FlowDefinition, FlowFeatures};
use libfuzzer_sys::fuzz_target;
use serde_json::Value;

fuzz_target!(|data: &[u8]| {
    // The flow, a NUL, the webhook body.
    let (flow, body) = match data.iter().position(|b| *b == 0) {
        Some(i) => (&data[..i], &data[i + 1..]),
        None => (data, &b"{}"[..]),
    };
    let Ok(def) = serde_json::from_slice::<FlowDefinition>(flow) else {
        return;
    };
    let features = FlowFeatures {
        custom_sources: true,
        generic_http: true,
    };
    if !def.validate(features).is_empty() {
        return;
    }
    let body: Value = serde_json::from_slice(body).unwrap_or(Value::Null);
    let _ = conditions_match(&def, &body);
    let ctx = TemplateContext {
        workspace_id: "ws1",
        event_type: "NEW_TAG",
        body: &body,
    };
    for action in &def.actions {
        match action.kind {
            ActionKind::ClockifyApi => {
                let _ = render_action(action, &ctx);
            }
            ActionKind::GenericHttp => {
                let _ = render_http(action, &ctx);
            }
        }
    }
});
