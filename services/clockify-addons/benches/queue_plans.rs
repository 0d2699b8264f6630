//! The plans and times of the statements the ingest, the queue and the consoles issue, on
//! PostgreSQL holding BENCH_ROWS (default 1,000,000) deliveries and as many executions.
//!
//!     cargo bench -p clockify-addons --bench queue_plans
//!
//! A fresh database is migrated by this build, filled server-side (64 workspaces, 0.1% of the
//! deliveries queued for fan-out, executions mostly finished with some queued, retrying and running) and
//! analysed. Each statement is then prepared as the server prepares it and run under
//! `EXPLAIN ANALYZE` twice, once with the plan PostgreSQL would pick for those values (custom)
//! and once with the plan it caches for any values (generic), inside a transaction that is
//! rolled back. It prints each statement's time under both plans and the scans each plan uses;
//! a sequential scan of a large table is flagged.

mod common;

use common::psql;
use sqlx::{Executor, Row};

const BIN: &str = env!("CARGO_BIN_EXE_clockify-addons");

/// The id `bench_id` gives row `i` created at `ms` (UUIDv7-shaped: time first).
fn bench_id(ms: i64, i: i64) -> String {
    let h = format!("{ms:012x}");
    format!("{}-{}-7000-8000-{i:012x}", &h[..8], &h[8..12])
}

/// Ids of stored rows the statements look up.
struct Ids {
    delivery: String,
    delivery2: String,
    execution: String,
}

/// A SQL literal's text without its quotes.
fn unquote(literal: &str) -> &str {
    literal.trim_matches('\'')
}

/// A batch statement's one argument: the JSON text as a SQL literal.
fn json_arg(value: serde_json::Value) -> String {
    format!("'{}'", value.to_string().replace('\'', "''"))
}

/// Statement name → the values to run it with (SQL literals).
fn arguments(name: &str, now: i64, ids: &Ids) -> Option<String> {
    let ws = "'00000000000000000000000a'";
    let flow = "'flow-0000000a'";
    let args = match name {
        "webhooks::dequeue_postgres" => "64".to_owned(),
        "webhooks::claim_for_fan_out_postgres" => format!("{now}, 64"),
        "executions::claim_due_postgres" => format!("'worker-x', {}, {now}, 64", now + 60_000),
        "executions::next_due" => String::new(),
        "executions::backlog" => format!("{now}"),
        "executions::reclaim_expired_postgres" => format!("{now}"),
        "executions::heartbeat_postgres" => format!("{}, 'worker-3'", now + 60_000),
        "executions::fail_stale_unleased" => format!("{now}, {}", now - 300_000),
        "executions::queue_many_postgres" => json_arg(serde_json::json!([{
            "id": "new-exec", "workspace_id": unquote(ws), "flow_id": unquote(flow),
            "webhook_id": "new-webhook", "event_type": "NEW_TIME_ENTRY", "status": "RUNNING",
            "started_at": now, "attempts": 1, "flow_version": now,
            "lease_owner": "worker-x", "lease_until": now + 60_000,
        }])),
        "executions::write_many_postgres" => json_arg(serde_json::json!([{
            "id": unquote(&ids.execution), "owner": "worker-3", "status": "SUCCEEDED",
            "steps": "[]", "set_error": 1, "next_step": 1, "finished_at": now, "give_back": 0,
        }])),
        "webhooks::ingest_many_postgres" => json_arg(serde_json::json!([{
            "id": "new-delivery", "workspace_id": unquote(ws), "event_type": "NEW_TIME_ENTRY",
            "delivery_key": "new-key", "entity_id": "te", "body": "{}", "received_at": now,
            "token_hash": "token-hash",
        }])),
        "webhooks::bodies_postgres" | "webhooks::claimed_postgres" => {
            json_arg(serde_json::json!([
                unquote(&ids.delivery),
                unquote(&ids.delivery2)
            ]))
        }
        "flows::enabled_many_postgres" | "installations::get_many_postgres" => {
            json_arg(serde_json::json!([unquote(ws), "00000000000000000000000b"]))
        }
        "flows::by_ids_postgres" => json_arg(serde_json::json!([unquote(flow), "flow-0000000b"])),
        "executions::counts" | "webhooks::count" => {
            format!("{ws}, '{}'", addon_core::store::id_floor(now - 86_400_000))
        }
        // Retention at 90 days (the defaults keep 7 to 90): nothing stored is that old, as
        // in a sweep that finds nothing to delete; 1,000 rows per batch.
        "retention::webhook_log_postgres" | "retention::flow_executions_postgres" => format!(
            "'{}', 1000",
            addon_core::store::id_floor(now - 90 * 86_400_000)
        ),
        "retention::entity_cache_postgres"
        | "retention::api_calls_postgres"
        | "retention::rate_limit_waits_postgres" => {
            format!("{}, 1000", now - 90 * 86_400_000)
        }
        // The ingest's other statements: custom webhooks, the signature's standing, the
        // rate limiter's record, the wake-up.
        "webhooks::ingest_custom_postgres" => {
            format!("'new-custom', {ws}, 'push', 'custom-key', '{{}}', {now}, 'github'")
        }
        "installations::is_revoked" => "'token-hash'".to_owned(),
        "installations::lifecycle_standing" => format!("'token-hash', {ws}"),
        "installations::webhook_token_known" => format!("{ws}, 'token-hash'"),
        "installations::get" => ws.to_owned(),
        "waits::record" => format!("{ws}, {}, 1, 0, 20", now / 3_600_000 * 3_600_000),
        "worker::announce" => "'clockify_addons_bench', 'work'".to_owned(),
        // The consoles' 24-hour charts.
        "webhooks::per_hour" | "executions::per_hour" | "executions::flow_stats" => {
            format!("{ws}, '{}'", addon_core::store::id_floor(now - 86_400_000))
        }
        "webhooks::refused" => format!("{ws}, 'k-0000500000'"),
        "webhooks::get" => format!("{ws}, {}", ids.delivery),
        "executions::get" => format!("{ws}, {}", ids.execution),
        _ => {
            let since = format!("'{}'", addon_core::store::id_floor(now - 86_400_000));
            let (base, filters) = match name.split_once("_by_") {
                Some((b, f)) => (b, f.split('_').collect::<Vec<_>>()),
                None => (name, Vec::new()),
            };
            let mut a = vec![ws.to_owned()];
            match base {
                "executions::list" => {
                    for f in filters {
                        a.push(match f {
                            "flow" => flow.into(),
                            "webhook" => ids.delivery.clone(),
                            "status" => "'FAILED'".into(),
                            "before" => ids.execution.clone(),
                            "since" => since.clone(),
                            _ => return None,
                        });
                    }
                }
                "webhooks::list" => {
                    for f in filters {
                        match f {
                            "event" => a.push("'TIME_ENTRY_DELETED'".into()),
                            "clockify" => {}
                            "source" => a.push("'github'".into()),
                            "before" => a.push(ids.delivery.clone()),
                            "since" => a.push(since.clone()),
                            _ => return None,
                        }
                    }
                }
                _ => return None,
            }
            a.push("50".into());
            a.join(", ")
        }
    };
    Some(args)
}

const FILL: &str = "
CREATE FUNCTION bench_id(ms BIGINT, i BIGINT) RETURNS TEXT LANGUAGE SQL IMMUTABLE AS $f$
  SELECT substr(lpad(to_hex(ms), 12, '0'), 1, 8) || '-' || substr(lpad(to_hex(ms), 12, '0'), 9, 4) || '-7000-8000-' || lpad(to_hex(i), 12, '0')
$f$;
INSERT INTO installations (workspace_id, addon_id, api_url, status, settings, installed_at, updated_at)
SELECT lpad(to_hex(w), 24, '0'), 'bench', 'https://api.clockify.me/api', 'ACTIVE', '[]', 0, 0 FROM generate_series(0, 63) w;
INSERT INTO flows (id, workspace_id, name, enabled, trigger_events, condition_mode, conditions, actions, created_at, updated_at, trigger_source, trigger_sources)
SELECT 'flow-' || lpad(to_hex(w), 8, '0'), lpad(to_hex(w), 24, '0'), 'f', 1, '[\"NEW_TIME_ENTRY\"]', 'ALL', '[]', '[]', 0, 0, 'CLOCKIFY', '[]' FROM generate_series(0, 63) w;
INSERT INTO webhook_log (id, workspace_id, event_type, delivery_key, entity_id, body, received_at, status, processed_at)
SELECT bench_id($NOW - ($ROWS - i) * 10, i), lpad(to_hex(i % 64), 24, '0'),
       CASE WHEN i % 50 = 0 THEN 'TIME_ENTRY_DELETED' ELSE 'NEW_TIME_ENTRY' END,
       'k-' || lpad(i::text, 10, '0'), md5(i::text), '{\"id\": \"' || md5(i::text) || '\", \"billable\": true, \"description\": \"a time entry of about two hundred bytes, as stored\"}',
       $NOW - ($ROWS - i) * 10,
       CASE WHEN i % 1000 = 0 THEN 'QUEUED' ELSE 'PROCESSED' END,
       CASE WHEN i % 1000 = 0 THEN NULL ELSE $NOW - ($ROWS - i) * 10 END
FROM generate_series(1, $ROWS) i;
INSERT INTO webhook_queue (webhook_id) SELECT id FROM webhook_log WHERE status = 'QUEUED';
INSERT INTO flow_executions (id, workspace_id, flow_id, webhook_id, event_type, status, steps, error, started_at, finished_at, duration_ms, attempts, next_step, next_attempt_at, flow_version, lease_owner, lease_until)
SELECT bench_id($NOW - ($ROWS - i) * 10 + 1, i), lpad(to_hex(i % 64), 24, '0'), 'flow-' || lpad(to_hex(i % 64), 8, '0'), bench_id($NOW - ($ROWS - i) * 10, i), 'NEW_TIME_ENTRY',
       CASE WHEN i % 1000 = 1 THEN 'PENDING' WHEN i % 1000 = 2 THEN 'RETRY' WHEN i % 1000 = 3 THEN 'RUNNING' WHEN i % 100 = 4 THEN 'FAILED' ELSE 'SUCCEEDED' END,
       '[{\"action\": 0, \"status\": 201}]', NULL, $NOW - ($ROWS - i) * 10,
       CASE WHEN i % 1000 IN (1, 2, 3) THEN NULL ELSE $NOW - ($ROWS - i) * 10 + 5 END, 5, 1, 1,
       CASE WHEN i % 1000 IN (1, 2) THEN $NOW - ($ROWS - i) * 10 ELSE NULL END, 0,
       CASE WHEN i % 1000 = 3 THEN 'worker-' || (i / 1000 % 16) ELSE NULL END,
       CASE WHEN i % 1000 = 3 THEN $NOW + 60000 ELSE NULL END
FROM generate_series(1, $ROWS) i;
";

#[tokio::main]
async fn main() {
    let rows: i64 = std::env::var("BENCH_ROWS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(1_000_000);
    let server = common::postgres_server();
    let (db, url) = common::fresh_database(BIN, &server, "universal-webhook");
    let now = addon_core::time::now_millis();
    let started = std::time::Instant::now();
    let at = |i: i64| format!("'{}'", bench_id(now - (rows - i) * 10, i));
    let mid = |i: i64| format!("'{}'", bench_id(now - (rows - i) * 10 + 1, i));
    let ids = Ids {
        delivery: at(rows / 2),
        delivery2: at(rows / 2 + 1),
        execution: mid(rows / 2),
    };
    psql(
        &server,
        &db,
        &FILL
            .replace("$NOW", &now.to_string())
            .replace("$ROWS", &rows.to_string()),
    );
    let pool = sqlx::PgPool::connect(&url).await.expect("connect");
    let mut conn = pool.acquire().await.expect("connection");
    // First as the tables are before any ANALYZE: a database that is new, or whose autovacuum
    // has not reached the tables yet (or is off), plans from the tables' sizes alone.
    println!(
        "{rows} deliveries and {rows} executions stored in {:.0} s, never analysed; times from EXPLAIN ANALYZE (custom plan / generic plan)",
        started.elapsed().as_secs_f64()
    );
    let unmeasured = explain_all(&mut conn, now, &ids).await;
    // Then as autovacuum leaves inserted rows (PostgreSQL 13+): statistics and the visibility
    // map that lets counts read only the index.
    let started = std::time::Instant::now();
    psql(&server, &db, "VACUUM ANALYZE");
    println!(
        "vacuumed and analysed in {:.0} s; times from EXPLAIN ANALYZE (custom plan / generic plan)",
        started.elapsed().as_secs_f64()
    );
    explain_all(&mut conn, now, &ids).await;
    if !unmeasured.is_empty() {
        println!(
            "not measured (no arguments in this benchmark): {}",
            unmeasured.join(", ")
        );
    }
    drop(conn);
    pool.close().await;
    psql(
        &server,
        "postgres",
        &format!("DROP DATABASE {db} WITH (FORCE)"),
    );
}

/// Runs every PostgreSQL statement of the contract under `EXPLAIN ANALYZE` with a custom and a
/// generic plan, prints its times and scans, and flags sequential scans of the large tables.
/// Returns the statements it has no arguments for.
async fn explain_all(conn: &mut sqlx::PgConnection, now: i64, ids: &Ids) -> Vec<String> {
    let mut worst: f64 = 0.0;
    let mut flagged = Vec::new();
    // Statements this benchmark has no arguments for: named, never skipped in silence.
    let mut unmeasured = Vec::new();
    for s in addon_core::store::contract::core_statements() {
        if s.only == Some(addon_core::db::Backend::Sqlite) {
            continue;
        }
        let Some(args) = arguments(&s.name, now, ids) else {
            unmeasured.push(s.name);
            continue;
        };
        let mut times = Vec::new();
        let mut scans = Vec::new();
        for mode in ["force_custom_plan", "force_generic_plan"] {
            conn.execute("BEGIN").await.expect("begin");
            conn.execute(sqlx::AssertSqlSafe(format!(
                "SET LOCAL plan_cache_mode = {mode}"
            )))
            .await
            .expect("mode");
            conn.execute(sqlx::AssertSqlSafe(format!("PREPARE s AS {}", s.sql)))
                .await
                .unwrap_or_else(|e| panic!("{}: {e}", s.name));
            let exec = if args.is_empty() {
                "EXECUTE s".to_owned()
            } else {
                format!("EXECUTE s({args})")
            };
            let plan: Vec<String> = sqlx::query(sqlx::AssertSqlSafe(format!(
                "EXPLAIN (ANALYZE, COSTS OFF, TIMING OFF, SUMMARY ON) {exec}"
            )))
            .fetch_all(&mut *conn)
            .await
            .unwrap_or_else(|e| panic!("{}: {e}", s.name))
            .iter()
            .map(|r| r.get::<String, _>(0))
            .collect();
            conn.execute("ROLLBACK").await.expect("rollback");
            conn.execute("DEALLOCATE s").await.expect("deallocate");
            let ms: f64 = plan
                .iter()
                .find_map(|l| l.trim().strip_prefix("Execution Time: "))
                .and_then(|t| t.trim_end_matches(" ms").parse().ok())
                .unwrap_or(f64::NAN);
            times.push(ms);
            worst = worst.max(ms);
            for l in &plan {
                let l = l.trim().trim_start_matches("-> ").trim();
                if l.contains("Scan") {
                    let node = l.split("  (").next().unwrap_or(l).to_owned();
                    if node.starts_with("Seq Scan on webhook_log")
                        || node.starts_with("Seq Scan on flow_executions")
                    {
                        flagged.push(format!("{} ({mode}): {node}", s.name));
                    }
                    if !scans.contains(&node) {
                        scans.push(node);
                    }
                }
            }
        }
        println!(
            "{:<44} {:>8.2} / {:>8.2} ms  {}",
            s.name,
            times[0],
            times[1],
            scans.join("; ")
        );
    }
    println!("slowest: {worst:.2} ms");
    if flagged.is_empty() {
        println!("no sequential scan of webhook_log or flow_executions");
    } else {
        for f in flagged {
            println!("sequential scan: {f}");
        }
    }
    unmeasured
}
