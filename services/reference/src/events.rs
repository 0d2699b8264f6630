//! The original reference service's per-event webhook routes. Each route receives only its own
//! event types (checked against `Clockify-Webhook-Event-Type`); otherwise a delivery is
//! verified, stored and de-duplicated exactly as on `/webhooks/clockify`.

use addon_core::addon::WEBHOOK_PATH;
use addon_core::app::AppState;
use addon_core::routes::webhooks::receiver;
use axum::Router;

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

pub fn routes() -> Router<AppState> {
    ROUTES.iter().fold(Router::new(), |router, (path, events)| {
        router.route(path, receiver(Some(events)))
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
