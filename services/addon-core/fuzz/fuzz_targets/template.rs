//! Any template text rendered against any JSON body: parse errors and limit errors are
//! values; rendering stays within its budget and never panics.
#![no_main]

use addon_core::flows::template::{Budget, Template, TemplateContext};
use libfuzzer_sys::fuzz_target;
use serde_json::Value;

fuzz_target!(|data: &[u8]| {
    let (template, body) = match data.iter().position(|b| *b == 0) {
        Some(i) => (&data[..i], &data[i + 1..]),
        None => (data, &br#"{"id":"t1","name":"n","tags":[{"id":"a"},{"id":"b"}]}"#[..]),
    };
    let Ok(text) = std::str::from_utf8(template) else {
        return;
    };
    let body: Value = serde_json::from_slice(body).unwrap_or(Value::Null);
    let Ok(t) = Template::parse(text) else {
        return;
    };
    let ctx = TemplateContext {
        workspace_id: "ws1",
        event_type: "NEW_TAG",
        body: &body,
    };
    let mut budget = Budget::default();
    if let Ok(out) = t.render(&ctx, |s| s.to_owned(), &mut budget) {
        assert!(out.len() <= 1 << 20, "rendered past the budget: {}", out.len());
    }
});
