//! The daemon's module graph, as `scripts/module-graph.sh` reads it from
//! src/: no import cycle, and no arrow from a lower layer to a higher one,
//! in every top-level module of the crate.

use std::path::Path;
use std::process::{Command, Output};

/// The modules whose layering these tests hold: every top-level module of
/// the crate (session 13 broke the last cycles, in `ari` and
/// `crm::servicenow`).
const CHECKED: &str = "ari,ari_emulator,cli,clock,config,crm,daemon,demo,http,lib,main,memory,net,ops,outbox_port,pbx,reports,simulate,state_port,storage_config,system";

/// Runs the script in check mode on the crate at `root`.
fn check(root: &Path) -> Output {
    Command::new("bash")
        .arg(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/scripts/module-graph.sh"
        ))
        .args(["--check", CHECKED])
        .env("MODULE_GRAPH_ROOT", root)
        .output()
        .expect("run scripts/module-graph.sh")
}

/// Goal: the daemon's layering stays one-way where it was made so.
/// Method: the script's check mode on this crate exits 0; when it does not,
/// its output names the cycle or the upward arrow.
#[test]
fn wiring_modules_have_no_cycle_and_no_upward_arrow() {
    let out = check(Path::new(env!("CARGO_MANIFEST_DIR")));
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{text}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(text.contains("# summary: "), "{text}");
}

/// Goal: the check can fail. Method: a small crate where the composition
/// root imports the config and the daemon (in a `use` group), the daemon
/// the root (inline), and the config the daemon; the script must name the
/// cycle and the upward arrow, read the `use` group but not a comment, and
/// exit 1.
#[test]
fn the_check_names_a_cycle_and_an_upward_arrow() {
    let dir = tempfile::tempdir().expect("tempdir");
    let src = dir.path().join("src");
    std::fs::create_dir_all(src.join("system")).expect("mkdir");
    let files = [
        ("lib.rs", "pub mod config;\npub mod daemon;\npub mod system;\n"),
        (
            "system/mod.rs",
            "pub mod storage;\nuse crate::{config::Config, daemon::{run, DaemonError}};\n",
        ),
        ("system/storage.rs", "pub fn open() {}\n"),
        (
            "daemon.rs",
            "// crate::config in a comment is not an import\npub fn run() { crate::system::storage::open(); let _ = crate::system::PARTS; }\n",
        ),
        ("config.rs", "pub struct Config(crate::daemon::DaemonError);\n"),
    ];
    for (name, text) in files {
        std::fs::write(src.join(name), text).expect("write");
    }
    let out = check(dir.path());
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{text}");
    assert!(
        text.contains("FAIL cycle among: config, daemon, system"),
        "{text}"
    );
    assert!(text.contains("FAIL upward: config -> daemon"), "{text}");
    // The `use` group counts, the comment does not.
    let daemon = text
        .lines()
        .find(|l| l.starts_with("daemon "))
        .unwrap_or("");
    assert!(daemon.ends_with("-> system, system::storage"), "{text}");
    let system = text
        .lines()
        .find(|l| l.starts_with("system "))
        .unwrap_or("");
    assert!(system.ends_with("-> config, daemon"), "{text}");
}
