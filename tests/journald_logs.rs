//! Where the daemon's logs go under systemd: journald when
//! `JOURNAL_STREAM` names its stderr, stderr otherwise.

use std::os::unix::fs::MetadataExt;
use std::path::Path;
use std::process::Stdio;
use std::time::{Duration, Instant};

use crate::util::edgecc;

/// Runs `edgecc run` with stderr to a file and `JOURNAL_STREAM` from
/// `journal_stream(file metadata)`, until `edgecc started` was logged
/// (or 20 s), then stops it; answers what it wrote to stderr.
fn run_with_journal_stream(journal_stream: impl Fn(&std::fs::Metadata) -> String) -> String {
    let dir = tempfile::tempdir().expect("tempdir");
    let log = dir.path().join("stderr.log");
    let file = std::fs::File::create(&log).expect("create");
    let value = journal_stream(&file.metadata().expect("metadata"));
    let config = dir.path().join("edgecc.toml");
    std::fs::write(&config, "[http]\nlisten = \"127.0.0.1:0\"\n").expect("config");
    let mut child = edgecc()
        .arg("--config")
        .arg(&config)
        .arg("--data-dir")
        .arg(dir.path().join("data"))
        .arg("--admin-socket")
        .arg(dir.path().join("admin.sock"))
        .arg("run")
        .env("EDGECC_LOG", "info")
        .env("JOURNAL_STREAM", value)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(file)
        .spawn()
        .expect("spawn");
    let deadline = Instant::now() + Duration::from_secs(20);
    let socket = dir.path().join("admin.sock");
    while std::os::unix::net::UnixStream::connect(&socket).is_err() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
    }
    // SAFETY: plain kill(2) on our own child's pid.
    unsafe { libc::kill(child.id() as libc::pid_t, libc::SIGTERM) };
    let status = child.wait().expect("wait");
    assert!(status.success(), "{status}");
    std::fs::read_to_string(&log).expect("read log")
}

/// Goal: with JOURNAL_STREAM naming our stderr, logs go to journald; a
/// JOURNAL_STREAM inherited with another stderr is ignored. Method: run
/// the daemon with stderr to a file, JOURNAL_STREAM set to that file's
/// device:inode, then to another inode. Where no journald listens (this
/// machine, containers) the daemon must say so and fall back to stderr;
/// where one listens, the start-up line must not be on stderr.
#[test]
fn journald_when_the_journal_stream_is_stderr() {
    let matching = run_with_journal_stream(|m| format!("{}:{}", m.dev(), m.ino()));
    if Path::new("/run/systemd/journal/socket").exists() {
        assert!(!matching.contains("edgecc started."), "{matching}");
    } else {
        assert!(
            matching.contains("journald socket unavailable"),
            "{matching}"
        );
        assert!(matching.contains("edgecc started."), "{matching}");
    }
    let other = run_with_journal_stream(|m| format!("{}:{}", m.dev(), m.ino() + 1));
    assert!(!other.contains("journald"), "{other}");
    assert!(other.contains("edgecc started."), "{other}");
}
