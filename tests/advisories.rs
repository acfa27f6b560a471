//! `Cargo.lock` against the RustSec advisory database shipped in
//! `.ci/advisory-db` (CI has no network but the package registries): a
//! vulnerability fails the suite unless `.ci/audit-exceptions.toml` excuses
//! it with a reason and a review date that has not passed.

use std::path::Path;

/// One excused advisory.
#[derive(serde::Deserialize)]
struct Exception {
    /// The advisory id (`RUSTSEC-…`).
    id: String,
    /// The affected package.
    package: String,
    /// Why it does not reach edgecc.
    reason: String,
    /// When it was excused (YYYY-MM-DD).
    date: String,
    /// When it must be looked at again (YYYY-MM-DD); past it the test fails.
    review_by: String,
}

/// The exceptions file.
#[derive(serde::Deserialize)]
struct Exceptions {
    /// Every excused advisory.
    exception: Vec<Exception>,
}

/// Today as YYYY-MM-DD (UTC), from the system clock.
fn today() -> String {
    let secs = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock after 1970")
        .as_secs();
    let ts = time::OffsetDateTime::from_unix_timestamp(secs as i64).expect("timestamp");
    format!(
        "{:04}-{:02}-{:02}",
        ts.year(),
        u8::from(ts.month()),
        ts.day()
    )
}

/// Goal: no known vulnerability ships in edgecc's dependency tree without a
/// written, dated reason. Method: rustsec's own query over the lock file
/// and the shipped database; every finding must be excused, every excuse
/// must still match a finding and be inside its review date.
#[test]
fn no_unexcused_vulnerability_in_the_lock_file() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let db = rustsec::Database::open(&root.join(".ci/advisory-db")).expect("advisory database");
    assert!(
        db.iter().count() > 500,
        "the shipped advisory database looks empty"
    );
    let lockfile = rustsec::Lockfile::load(root.join("Cargo.lock")).expect("Cargo.lock");
    let exceptions: Exceptions = toml::from_str(
        &std::fs::read_to_string(root.join(".ci/audit-exceptions.toml")).expect("exceptions"),
    )
    .expect("exceptions file");
    let found: Vec<(String, String, String)> = db
        .vulnerabilities(&lockfile)
        .into_iter()
        .filter(|v| v.advisory.informational.is_none())
        .map(|v| {
            (
                v.advisory.id.to_string(),
                v.package.name.to_string(),
                v.package.version.to_string(),
            )
        })
        .collect();
    let today = today();
    let mut problems = Vec::new();
    for (id, package, version) in &found {
        match exceptions.exception.iter().find(|e| &e.id == id) {
            None => problems.push(format!("{id}: {package} {version} is vulnerable")),
            Some(e) if &e.package != package => problems.push(format!(
                "{id}: excused for {}, found in {package}",
                e.package
            )),
            Some(_) => {}
        }
    }
    for e in &exceptions.exception {
        assert!(
            !e.reason.trim().is_empty() && !e.date.is_empty(),
            "{}: no reason or date",
            e.id
        );
        if !found.iter().any(|(id, _, _)| id == &e.id) {
            problems.push(format!(
                "{}: excused but no longer found; remove the exception",
                e.id
            ));
        }
        if e.review_by.as_str() < today.as_str() {
            problems.push(format!("{}: review date {} has passed", e.id, e.review_by));
        }
    }
    assert!(problems.is_empty(), "advisories:\n{}", problems.join("\n"));
}
