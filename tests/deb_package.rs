//! The Debian package, built by the real packaging path (`cargo deb` with
//! the `[package.metadata.deb]` of Cargo.toml and the scripts in
//! `debian/`), checked with `dpkg-deb`: control data, contents, the
//! maintainer scripts, and an unpacked tree where the files are where the
//! unit expects them.
//!
//! To keep CI short the package wraps the binary under test instead of a
//! release build: `cargo deb --no-build` is pointed at a target directory
//! whose `release/edgecc` is that binary (cargo-deb maps the
//! `target/release/` asset prefix to the target directory in use).

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use crate::util::{stderr, stdout};

fn manifest_dir() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

fn run(cmd: &mut Command) -> Output {
    let o = cmd.output().unwrap_or_else(|e| panic!("{cmd:?}: {e}"));
    assert!(
        o.status.success(),
        "{cmd:?} failed: {}{}",
        stdout(&o),
        stderr(&o)
    );
    o
}

/// Builds the package into `dir`; answers its path.
fn build_package(dir: &Path) -> PathBuf {
    let cargo = env!("CARGO");
    let has_cargo_deb = Command::new(cargo)
        .args(["deb", "--version"])
        .output()
        .is_ok_and(|o| o.status.success());
    assert!(
        has_cargo_deb,
        "cargo-deb is missing: run `bash .ci/install-deploy-tools.sh`"
    );
    let target = dir.join("target");
    std::fs::create_dir_all(target.join("release")).expect("mkdir");
    std::os::unix::fs::symlink(env!("CARGO_BIN_EXE_edgecc"), target.join("release/edgecc"))
        .expect("link binary");
    let out = dir.join("out");
    run(Command::new(cargo)
        .current_dir(manifest_dir())
        .env("CARGO_TARGET_DIR", &target)
        .args(["deb", "--no-build", "--no-strip", "--fast", "--quiet", "-o"])
        .arg(&out));
    let debs: Vec<PathBuf> = std::fs::read_dir(&out)
        .expect("out dir")
        .map(|e| e.expect("entry").path())
        .filter(|p| p.extension().is_some_and(|e| e == "deb"))
        .collect();
    assert_eq!(debs.len(), 1, "{debs:?}");
    debs.into_iter().next().expect("one deb")
}

/// Goal: `cargo deb` makes a package an installer can use. Method: build
/// it, read its control data, file list and maintainer scripts with
/// dpkg-deb, unpack it into a throwaway root and check that the unit's
/// ExecStart binary and config file are there, and that the unpacked
/// binary accepts the unpacked config.
#[test]
fn package_has_binary_unit_config_and_scripts() {
    let dir = tempfile::tempdir().expect("tempdir");
    let deb = build_package(dir.path());

    // Control data.
    let field = |name: &str| {
        let o = run(Command::new("dpkg-deb").arg("-f").arg(&deb).arg(name));
        stdout(&o).trim().to_string()
    };
    assert_eq!(field("Package"), "edgecc");
    assert_eq!(field("Version"), format!("{}-1", env!("CARGO_PKG_VERSION")));
    assert_eq!(field("Section"), "net");
    let depends = field("Depends");
    assert!(depends.contains("adduser"), "{depends}");
    assert!(depends.contains("libc6"), "{depends}");
    assert!(!field("Maintainer").is_empty());

    // Contents: the binary executable, the config, the unit.
    let listing = stdout(&run(Command::new("dpkg-deb").arg("-c").arg(&deb)));
    let mode_of = |path: &str| {
        listing
            .lines()
            .find(|l| l.ends_with(&format!(" .{path}")))
            .map(|l| l.split_whitespace().next().unwrap_or("").to_string())
            .unwrap_or_else(|| panic!("{path} not in the package:\n{listing}"))
    };
    assert_eq!(mode_of("/usr/bin/edgecc"), "-rwxr-xr-x");
    assert_eq!(mode_of("/etc/edgecc/edgecc.toml"), "-rw-r--r--");
    let unit_path = [
        "/usr/lib/systemd/system/edgecc.service",
        "/lib/systemd/system/edgecc.service",
    ]
    .into_iter()
    .find(|p| listing.contains(&format!(" .{p}")))
    .unwrap_or_else(|| panic!("no unit in the package:\n{listing}"));
    assert_eq!(mode_of(unit_path), "-rw-r--r--");

    // Maintainer scripts: the config is a conffile; the user is created;
    // the unit is enabled, never started on install, try-restarted on
    // upgrade; the scripts are valid sh with every placeholder filled.
    let control = dir.path().join("control");
    run(Command::new("dpkg-deb").arg("-e").arg(&deb).arg(&control));
    let read = |name: &str| std::fs::read_to_string(control.join(name)).unwrap_or_default();
    assert_eq!(read("conffiles").trim(), "/etc/edgecc/edgecc.toml");
    let postinst = read("postinst");
    assert!(postinst.contains("adduser --system"), "{postinst}");
    assert!(
        postinst.contains("deb-systemd-helper enable edgecc.service"),
        "{postinst}"
    );
    assert!(
        postinst.contains("try-restart edgecc.service"),
        "{postinst}"
    );
    assert!(
        !postinst.contains(" start edgecc.service"),
        "started on install:\n{postinst}"
    );
    for script in ["postinst", "postrm", "prerm"] {
        let text = read(script);
        assert!(!text.is_empty(), "no {script}");
        assert!(!text.contains("#DEBHELPER#"), "{script} placeholder left");
        run(Command::new("sh").arg("-n").arg(control.join(script)));
    }

    // Unpacked: the files are where the unit says.
    let root = dir.path().join("root");
    run(Command::new("dpkg-deb").arg("-x").arg(&deb).arg(&root));
    let unit = std::fs::read_to_string(root.join(&unit_path[1..])).expect("unit");
    assert_eq!(
        unit,
        std::fs::read_to_string(manifest_dir().join("systemd/edgecc.service"))
            .expect("source unit")
    );
    let exec_start = unit
        .lines()
        .find_map(|l| l.strip_prefix("ExecStart="))
        .expect("ExecStart");
    let mut words = exec_start.split_whitespace();
    let binary = words.next().expect("binary");
    let config = words
        .skip_while(|w| *w != "--config")
        .nth(1)
        .expect("--config FILE");
    let installed = root.join(&binary[1..]);
    let meta = std::fs::metadata(&installed).unwrap_or_else(|e| panic!("{binary}: {e}"));
    assert!(std::os::unix::fs::PermissionsExt::mode(&meta.permissions()) & 0o111 != 0);
    assert!(
        root.join(&config[1..]).is_file(),
        "{config} not in the package"
    );
    // The packaged binary accepts the packaged config.
    let o = run(Command::new(&installed)
        .args(["check-config", "--quiet"])
        .arg(root.join(&config[1..])));
    assert_eq!(stdout(&o), "");
    // The documentation the unit names is there too.
    assert!(root.join("usr/share/doc/edgecc/README.md").is_file());
}
