//! The shipped unit, `systemd/edgecc.service`, checked by systemd's own
//! tool: `systemd-analyze verify` must print nothing (it exits 0 on
//! unknown keys and bad values, so any output fails the test) and
//! `systemd-analyze security --offline=yes --threshold=2` must pass. Both
//! need ExecStart to exist, so they check a copy pointing at the binary
//! under test. `.ci/install-deploy-tools.sh` installs the tool.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;

use crate::util::{edgecc, stderr};

/// Where the package installs the binary (the unit's ExecStart).
const INSTALLED_BINARY: &str = "/usr/bin/edgecc";

fn unit_source() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("systemd/edgecc.service")
}

/// The unit with every `/usr/bin/edgecc` pointed at the built binary, in
/// a temporary directory.
fn unit_copy() -> (tempfile::TempDir, PathBuf) {
    let text = std::fs::read_to_string(unit_source()).expect("read unit");
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("edgecc.service");
    let text = text.replace(INSTALLED_BINARY, env!("CARGO_BIN_EXE_edgecc"));
    std::fs::write(&path, text).expect("write unit copy");
    (dir, path)
}

fn systemd_analyze() -> Command {
    let found = std::env::var_os("PATH")
        .map(|p| std::env::split_paths(&p).any(|d| d.join("systemd-analyze").is_file()))
        .unwrap_or(false);
    assert!(
        found,
        "systemd-analyze is missing: run `bash .ci/install-deploy-tools.sh` (Debian package `systemd`)"
    );
    Command::new("systemd-analyze")
}

/// `key=value` lines of the unit, several values per key in order.
fn directives(text: &str) -> BTreeMap<String, Vec<String>> {
    let mut out: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for line in text.lines().map(str::trim) {
        if line.starts_with('#') || line.starts_with('[') {
            continue;
        }
        if let Some((k, v)) = line.split_once('=') {
            out.entry(k.to_string()).or_default().push(v.to_string());
        }
    }
    out
}

/// Goal: systemd accepts every line of the unit. Method: `verify` on the
/// copy; any output at all (unknown key, bad value, missing binary) fails.
#[test]
fn unit_verifies_without_a_word() {
    let (_dir, path) = unit_copy();
    let o = systemd_analyze()
        .arg("verify")
        .arg(&path)
        .output()
        .expect("run systemd-analyze verify");
    let said = format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
    assert!(
        said.trim().is_empty(),
        "systemd-analyze verify said:\n{said}"
    );
    assert!(o.status.success(), "exit {}", o.status);
}

/// `--threshold=` compares with the exposure on systemd's internal 0-100
/// scale, while the report prints it divided by ten ("1.1 OK"): the level
/// 2.0 that issue 7 asks for is `--threshold=20`. (`--threshold=2` would
/// demand 0.2, which even a unit without network access does not reach
/// on systemd 252: RootDirectory, AF_UNIX, AF_INET and ProtectClock's rtc
/// access alone add up to 0.4.)
const EXPOSURE_THRESHOLD: &str = "--threshold=20";

/// Goal: the hardening holds: overall exposure at most 2.0. Method:
/// `security --offline=yes` with the threshold at 2.0 on the copy must
/// exit 0, and the printed level must be at most 2.0.
#[test]
fn unit_exposure_is_within_threshold() {
    let (_dir, path) = unit_copy();
    let o = systemd_analyze()
        .args(["security", "--offline=yes", EXPOSURE_THRESHOLD])
        .arg(&path)
        .output()
        .expect("run systemd-analyze security");
    let text = String::from_utf8_lossy(&o.stdout);
    assert!(
        o.status.success(),
        "exposure above 2:\n{}",
        text.lines()
            .filter(|l| l.contains('✗') || l.contains("Overall"))
            .collect::<Vec<_>>()
            .join("\n")
    );
    let level: f64 = text
        .lines()
        .find(|l| l.contains("Overall exposure level"))
        .and_then(|l| l.rsplit(':').next())
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("no overall level in:\n{text}"));
    assert!(level <= 2.0, "overall exposure {level}");
}

/// Goal: the unit says what issue 7 asks of it, and its commands are
/// ones this binary accepts. Method: read the directives; run the
/// ExecStartPre command on the example config shipped as the conffile.
#[test]
fn unit_has_the_promised_settings_and_valid_commands() {
    let text = std::fs::read_to_string(unit_source()).expect("read unit");
    let d = directives(&text);
    let one = |k: &str| d.get(k).and_then(|v| v.first()).map(String::as_str);
    assert_eq!(one("Type"), Some("notify"));
    assert!(one("WatchdogSec").is_some());
    assert_eq!(one("Restart"), Some("on-failure"));
    assert_eq!(one("StateDirectory"), Some("edgecc"));
    assert_eq!(one("ConfigurationDirectory"), Some("edgecc"));
    assert_eq!(one("RuntimeDirectory"), Some("edgecc"));
    assert_eq!(one("CapabilityBoundingSet"), Some(""));
    assert_eq!(
        one("RestrictAddressFamilies"),
        Some("AF_UNIX AF_INET AF_INET6")
    );
    assert_eq!(one("ProtectProc"), Some("invisible"));
    assert_eq!(one("UMask"), Some("0077"));
    for yes in [
        "NoNewPrivileges",
        "ProtectHome",
        "PrivateTmp",
        "PrivateDevices",
        "PrivateUsers",
        "ProtectKernelTunables",
        "ProtectKernelModules",
        "ProtectKernelLogs",
        "ProtectControlGroups",
        "RestrictNamespaces",
        "MemoryDenyWriteExecute",
        "LockPersonality",
    ] {
        assert_eq!(one(yes), Some("yes"), "{yes}");
    }
    assert_eq!(one("ProtectSystem"), Some("strict"));
    assert!(d["SystemCallFilter"].iter().any(|v| v == "@system-service"));
    let creds = &d["LoadCredential"];
    for c in [
        "edgecc.webhook_secret",
        "edgecc.tls_cert",
        "edgecc.tls_key",
        "edgecc.ari_password",
    ] {
        assert!(creds.iter().any(|v| v == c), "LoadCredential={c}");
    }
    // Reload: validate first, then SIGHUP.
    let reload = &d["ExecReload"];
    assert!(reload[0].contains("check-config"), "{reload:?}");
    assert!(reload[1].contains("-HUP $MAINPID"), "{reload:?}");
    let start = one("ExecStart").expect("ExecStart");
    assert!(
        start.starts_with(INSTALLED_BINARY) && start.ends_with(" run"),
        "{start}"
    );
    assert!(start.contains("/etc/edgecc/edgecc.toml"), "{start}");

    // The pre-start check, as the unit words it, on the shipped config.
    let pre = one("ExecStartPre").expect("ExecStartPre");
    let args: Vec<&str> = pre.split_whitespace().skip(1).collect();
    let example = Path::new(env!("CARGO_MANIFEST_DIR")).join("systemd/edgecc.toml");
    let args: Vec<String> = args
        .iter()
        .map(|a| {
            if *a == "/etc/edgecc/edgecc.toml" {
                example.display().to_string()
            } else {
                a.to_string()
            }
        })
        .collect();
    let o = edgecc().args(&args).output().expect("run ExecStartPre");
    assert!(o.status.success(), "{pre}: {}", stderr(&o));
    assert!(o.stdout.is_empty(), "--quiet printed something");
}
