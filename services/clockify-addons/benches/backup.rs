//! Backup and restore of a ~1 GB add-on database, against plain pg_dump / pg_restore to a local
//! file in the same run as the base of the ratio.
//!
//!   cargo bench -p clockify-addons --bench backup
//!   BENCH_DB_MB=1024 (database size to reach), BENCH_S3=0 (skip the S3 destination)
//!
//! The database is Universal Webhook's schema filled with webhook deliveries (realistic bodies,
//! distinct ids and hashes). S3 is moto's server (Python, in-memory) on this machine: its
//! figure measures the client and that server together, not a real object store.

mod common;

use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use common::{body_for, fresh_database, postgres_server, psql};

const BIN: &str = env!("CARGO_BIN_EXE_clockify-addons");

/// Runs `c`, sampling its peak RSS (VmHWM) while it runs: (duration, output, peak KiB).
fn timed_rss(mut c: Command) -> (Duration, Output, u64) {
    let started = Instant::now();
    let mut child = c
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run");
    let pid = child.id();
    let mut peak = 0;
    while child.try_wait().expect("wait").is_none() {
        peak = peak.max(common::peak_rss_kib(pid));
        std::thread::sleep(Duration::from_millis(20));
    }
    let took = started.elapsed();
    let out = child.wait_with_output().expect("output");
    assert!(
        out.status.success(),
        "{:?} failed: {}{}",
        c.get_program(),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (took, out, peak)
}

fn timed(mut c: Command) -> (Duration, Output) {
    let started = Instant::now();
    let out = c.output().expect("run");
    let took = started.elapsed();
    assert!(
        out.status.success(),
        "{:?} failed: {}{}",
        c.get_program(),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (took, out)
}

fn scalar(server: &str, db: &str, sql: &str) -> String {
    let out = Command::new("psql")
        .args([&format!("{server}/{db}"), "-XAtq", "-c", sql])
        .output()
        .expect("psql");
    String::from_utf8_lossy(&out.stdout).trim().to_owned()
}

fn mib(bytes: u64) -> f64 {
    bytes as f64 / 1_048_576.0
}

fn dir_size(dir: &Path, suffix: &str) -> u64 {
    std::fs::read_dir(dir)
        .expect("dir")
        .filter_map(|e| e.ok())
        .filter(|e| e.file_name().to_string_lossy().ends_with(suffix))
        .map(|e| e.metadata().map(|m| m.len()).unwrap_or(0))
        .sum()
}

fn row(what: &str, took: Duration, bytes: u64, base: Duration) {
    println!(
        "  {what:<44} {:>7.1} s  {:>8.1} MiB/s of database  {:>5.2}x pg_dump/pg_restore",
        took.as_secs_f64(),
        mib(bytes) / took.as_secs_f64(),
        took.as_secs_f64() / base.as_secs_f64()
    );
}

fn moto() -> Option<(std::process::Child, String)> {
    if std::env::var("BENCH_S3").as_deref() == Ok("0") {
        return None;
    }
    let bin = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../.venv/bin/moto_server");
    if !bin.exists() {
        println!("  (S3 skipped: no moto_server in .venv; ./scripts/test.sh installs it)");
        return None;
    }
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .ok()?
        .local_addr()
        .ok()?
        .port();
    let child = Command::new(bin)
        .args(["-H", "127.0.0.1", "-p", &port.to_string()])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .ok()?;
    let endpoint = format!("http://127.0.0.1:{port}");
    for _ in 0..200 {
        let ok = Command::new("curl")
            .args(["-sf", "-X", "PUT", &format!("{endpoint}/bench")])
            .output()
            .is_ok_and(|o| o.status.success());
        if ok {
            return Some((child, endpoint));
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    None
}

fn main() {
    let target_mb: u64 = std::env::var("BENCH_DB_MB")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1024);
    let server = postgres_server();
    let (db, url) = fresh_database(BIN, &server, "universal-webhook");
    let template = body_for(0, "@@WS@@").replace(&format!("{:024x}", 0), "@@ID@@");
    let filling = Instant::now();
    let mut batch = 0u64;
    loop {
        let size: u64 = scalar(&server, &db, "SELECT pg_database_size(current_database())")
            .parse()
            .unwrap_or(0);
        if size >= target_mb * 1_048_576 {
            break;
        }
        let from = batch * 100_000;
        psql(
            &server,
            &db,
            &format!(
                "INSERT INTO webhook_log (id, workspace_id, event_type, delivery_key, entity_id, body, received_at, status, processed_at, source)
                 SELECT md5('id' || g) || g, 'ws' || (g % 64), 'NEW_TIME_ENTRY', md5('key' || g), md5('entity' || g),
                        replace(replace('{}', '@@ID@@', md5('e' || g)), '@@WS@@', 'ws' || (g % 64)),
                        1700000000000 + g, 'PROCESSED', 1700000000500 + g, 'CLOCKIFY'
                 FROM generate_series({}, {}) g",
                template.replace('\'', "''"),
                from + 1,
                from + 100_000
            ),
        );
        batch += 1;
    }
    psql(&server, &db, "VACUUM ANALYZE");
    let db_bytes: u64 = scalar(&server, &db, "SELECT pg_database_size(current_database())")
        .parse()
        .unwrap_or(0);
    let rows = scalar(&server, &db, "SELECT count(*) FROM webhook_log");
    println!(
        "backup bench: universal-webhook database of {:.0} MiB ({rows} webhook deliveries), filled in {:.0} s",
        mib(db_bytes),
        filling.elapsed().as_secs_f64()
    );

    let work = tempfile::tempdir().expect("tempdir");
    // Base: pg_dump to a local file.
    let plain = work.path().join("plain.dump");
    let mut c = Command::new("pg_dump");
    c.args([
        "--format=custom",
        "--no-password",
        &format!("--dbname={url}"),
        "-f",
    ])
    .arg(&plain);
    let (base_dump, _) = timed(c);
    let plain_size = std::fs::metadata(&plain).map(|m| m.len()).unwrap_or(0);

    // clockify-addons backup to a directory.
    let dir = work.path().join("backups");
    let mut c = Command::new(BIN);
    c.args(["backup", "universal-webhook", "--to"])
        .arg(&dir)
        .env("DATABASE_URL", &url);
    let (ours_dir, _, rss_dir) = timed_rss(c);
    let dump_size = dir_size(&dir, ".dump");

    // And to S3 (moto).
    let s3 = moto().map(|(mut child, endpoint)| {
        let mut c = Command::new(BIN);
        c.args(["backup", "universal-webhook", "--to", "s3://bench/uw"])
            .env("DATABASE_URL", &url)
            .env("BACKUP_S3_ENDPOINT", &endpoint)
            .env("AWS_ACCESS_KEY_ID", "bench")
            .env("AWS_SECRET_ACCESS_KEY", "bench")
            .env("AWS_REGION", "us-east-1");
        let (took, _, rss) = timed_rss(c);
        let _ = child.kill();
        let _ = child.wait();
        (took, rss)
    });

    // Restores into fresh, empty databases: pg_restore (one transaction) as the base.
    let empty = |suffix: &str| {
        let name = format!("{db}_{suffix}");
        psql(&server, "postgres", &format!("CREATE DATABASE {name}"));
        (name.clone(), format!("{server}/{name}"))
    };
    let (base_db, base_url) = empty("base");
    let mut c = Command::new("pg_restore");
    c.args([
        "--no-owner",
        "--no-acl",
        "--single-transaction",
        "--no-password",
        &format!("--dbname={base_url}"),
    ])
    .arg(&plain);
    let (base_restore, _) = timed(c);
    let (ours_db, ours_url) = empty("ours");
    let mut c = Command::new(BIN);
    c.args([
        "restore",
        "universal-webhook",
        "--from",
        "latest",
        "--destination",
    ])
    .arg(&dir)
    .env("DATABASE_URL", &ours_url)
    .env("BACKUP_WORK_DIR", work.path());
    let (ours_restore, out, rss_restore) = timed_rss(c);
    let restored_rows = scalar(&server, &ours_db, "SELECT count(*) FROM webhook_log");
    assert_eq!(restored_rows, rows, "the restore holds every row");

    println!(
        "  dump: pg_dump {:.1} MiB, clockify-addons {:.1} MiB (custom format, compressed)",
        mib(plain_size),
        mib(dump_size)
    );
    println!("backup");
    row(
        "pg_dump -Fc to a local file (base)",
        base_dump,
        db_bytes,
        base_dump,
    );
    row(
        "clockify-addons backup to a directory",
        ours_dir,
        db_bytes,
        base_dump,
    );
    println!(
        "    peak RSS of clockify-addons: {:.1} MiB",
        rss_dir as f64 / 1024.0
    );
    if let Some((t, rss)) = s3 {
        row(
            "clockify-addons backup to S3 (moto)",
            t,
            db_bytes,
            base_dump,
        );
        println!(
            "    peak RSS of clockify-addons: {:.1} MiB",
            rss as f64 / 1024.0
        );
    }
    println!("restore (into an empty database, one transaction)");
    row(
        "pg_restore from a local file (base)",
        base_restore,
        db_bytes,
        base_restore,
    );
    row(
        "clockify-addons restore (verify + apply)",
        ours_restore,
        db_bytes,
        base_restore,
    );
    println!(
        "    peak RSS of clockify-addons: {:.1} MiB",
        rss_restore as f64 / 1024.0
    );
    for line in String::from_utf8_lossy(&out.stdout).lines() {
        println!("    {line}");
    }
    for name in [&db, &base_db, &ours_db] {
        psql(
            &server,
            "postgres",
            &format!("DROP DATABASE {name} WITH (FORCE)"),
        );
    }
}
