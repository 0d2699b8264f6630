//! The original reference service's per-event webhook routes. Each route receives only its own
//! event types (checked against `Clockify-Webhook-Event-Type`); otherwise a delivery is
//! verified, stored and de-duplicated exactly as on `/webhooks/clockify`.

use addon_core::addon::WEBHOOK_PATH;
use addon_core::openapi::{ApiRouter, documented};
use addon_core::routes::webhooks::{__path_clockify_webhook_doc, receiver};

/// Path → the event types it receives (the original service's route map).
pub const ROUTES: &[(&str, &[&str])] = &[
    ("/webhooks/time/new", &["NEW_TIME_ENTRY"]),
    ("/webhooks/time/updated", &["TIME_ENTRY_UPDATED"]),
    ("/webhooks/time/deleted", &["TIME_ENTRY_DELETED"]),
    (
        "/webhooks/time",
        &[
            "NEW_TIMER_STARTED",
            "TIMER_STOPPED",
            "TIME_ENTRY_RESTORED",
            "TIME_ENTRY_SPLIT",
            "TIME_ENTRY_BATCH_DELETED",
        ],
    ),
    ("/webhooks/project/new", &["NEW_PROJECT"]),
    ("/webhooks/project/updated", &["PROJECT_UPDATED"]),
    ("/webhooks/project/deleted", &["PROJECT_DELETED"]),
    ("/webhooks/user/updated", &["USER_UPDATED"]),
    (
        "/webhooks/user",
        &[
            "USER_JOINED_WORKSPACE",
            "USER_ACTIVATED_ON_WORKSPACE",
            "USER_DEACTIVATED_ON_WORKSPACE",
            "USER_DELETED_FROM_WORKSPACE",
            "USER_EMAIL_CHANGED",
        ],
    ),
    (
        "/webhooks/workspace",
        &[
            "LIMITED_USERS_ADDED_TO_WORKSPACE",
            "USERS_INVITED_TO_WORKSPACE",
        ],
    ),
    (
        "/webhooks/user-group",
        &[
            "USER_GROUP_CREATED",
            "USER_GROUP_UPDATED",
            "USER_GROUP_DELETED",
        ],
    ),
    ("/webhooks/expense/created", &["EXPENSE_CREATED"]),
    ("/webhooks/expense/updated", &["EXPENSE_UPDATED"]),
    ("/webhooks/expense/deleted", &["EXPENSE_DELETED"]),
    ("/webhooks/expense", &["EXPENSE_RESTORED"]),
    ("/webhooks/balance", &["BALANCE_UPDATED"]),
    (
        "/webhooks/rate",
        &["BILLABLE_RATE_UPDATED", "COST_RATE_UPDATED"],
    ),
    ("/webhooks/invoice", &["NEW_INVOICE", "INVOICE_UPDATED"]),
    ("/webhooks/assignment/created", &["ASSIGNMENT_CREATED"]),
    ("/webhooks/assignment/updated", &["ASSIGNMENT_UPDATED"]),
    ("/webhooks/assignment/deleted", &["ASSIGNMENT_DELETED"]),
    ("/webhooks/assignment", &["ASSIGNMENT_PUBLISHED"]),
    (
        "/webhooks/approval/status-updated",
        &["APPROVAL_REQUEST_STATUS_UPDATED"],
    ),
    ("/webhooks/approval", &["NEW_APPROVAL_REQUEST"]),
    (
        "/webhooks/generic",
        &[
            "NEW_CLIENT",
            "CLIENT_UPDATED",
            "CLIENT_DELETED",
            "NEW_TAG",
            "TAG_UPDATED",
            "TAG_DELETED",
            "NEW_TASK",
            "TASK_UPDATED",
            "TASK_DELETED",
        ],
    ),
    (
        "/webhooks/timeoff",
        &[
            "TIME_OFF_REQUESTED",
            "TIME_OFF_REQUEST_APPROVED",
            "TIME_OFF_REQUEST_REJECTED",
            "TIME_OFF_REQUEST_WITHDRAWN",
        ],
    ),
];

/// The route an event is delivered to (`/webhooks/clockify` for an event no route names).
pub fn path_of(event: &str) -> &'static str {
    ROUTES
        .iter()
        .find(|(_, events)| events.contains(&event))
        .map(|(path, _)| *path)
        .unwrap_or(WEBHOOK_PATH)
}

/// One receiver per route, each described as Clockify's webhook route narrowed to its events.
pub fn routes() -> ApiRouter {
    ROUTES.iter().fold(ApiRouter::new(), |router, (path, events)| {
        router.routes(documented::<__path_clockify_webhook_doc>(
            path,
            receiver(Some(events)),
            |op| {
                op.operation_id = Some(format!(
                    "webhook_{}",
                    path.trim_start_matches("/webhooks/").replace(['/', '-'], "_")
                ));
                op.summary = Some(format!("A {} delivery from Clockify", events.join(" or ")));
                // The event types this route takes, as an enum of its header.
                for param in op.parameters.iter_mut().flatten() {
                    let utoipa::openapi::RefOr::T(param) = param else {
                        continue;
                    };
                    if param.name == "Clockify-Webhook-Event-Type" {
                        param.schema = Some(
                            utoipa::openapi::ObjectBuilder::new()
                                .schema_type(utoipa::openapi::schema::Type::String)
                                .enum_values(Some(events.iter().copied()))
                                .into(),
                        );
                    }
                }
                op.description = Some(format!(
                    "Takes only {}: any other `Clockify-Webhook-Event-Type` is refused with 400 and nothing is stored. Otherwise as `/webhooks/clockify`.",
                    events.join(", ")
                ));
            },
        ))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_event_has_exactly_one_route() {
        let mut seen = std::collections::HashSet::new();
        for (path, events) in ROUTES {
            assert!(path.starts_with("/webhooks/"), "{path}");
            for e in *events {
                assert!(seen.insert(*e), "{e} is routed twice");
                assert_eq!(path_of(e), *path);
            }
        }
        assert_eq!(path_of("SOMETHING_NEW"), WEBHOOK_PATH);
    }
}
