//! Embeds migrations/core/*.sql (the schema every add-on shares) so the binary carries it.

use std::fmt::Write as _;
use std::path::Path;

fn main() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../migrations/core");
    println!("cargo:rerun-if-changed={}", dir.display());
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .expect("migrations/core exists")
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "sql"))
        .collect();
    files.sort();
    let mut out = String::from("&[\n");
    for path in files {
        let stem = path
            .file_stem()
            .and_then(|s| s.to_str())
            .expect("UTF-8 file name");
        let (version, description) = stem
            .split_once('_')
            .expect("migration files are named NNNN_description.sql");
        let version: i64 = version.parse().expect("migration version is a number");
        let canonical = path.canonicalize().expect("migration path resolves");
        writeln!(
            out,
            "    crate::db::MigrationFile {{ version: {version}, description: {:?}, sql: include_str!({:?}) }},",
            description.replace('_', " "),
            canonical.display().to_string()
        )
        .expect("write to string");
    }
    out.push(']');
    let dest = Path::new(&std::env::var("OUT_DIR").expect("OUT_DIR is set")).join("migrations.rs");
    std::fs::write(dest, out).expect("write migrations.rs");
}
