//! `cross.toml` (ARM builds) against cross 0.2.5's configuration schema,
//! with unknown keys denied, and `scripts/cross-build.sh` against fake
//! `cross` and `rustup` commands (the real cross is never run here).
//!
//! Why: cross 0.2.5 parses its configuration with `serde_ignored` and only
//! warns about keys it does not know ("Warning: found unused key(s) in Cross
//! configuration"), then builds without them, so a misspelt `image` silently
//! falls back to another image. The types below mirror cross 0.2.5's, from
//! `src/cross_toml.rs` of the cross 0.2.5 crate (crates.io): `CrossToml`
//! (`target` map, `build`), `CrossBuildConfig` (`env`, `xargo`, `build-std`,
//! `default-target`, `pre-build`, `dockerfile`), `CrossTargetConfig`
//! (`xargo`, `build-std`, `image`, `dockerfile`, `pre-build`, `runner`,
//! `env`), `CrossEnvConfig` (`volumes`, `passthrough`) and
//! `CrossTargetDockerfileConfig` (`file`, `context`, `build-args`); keys are
//! kebab-case (`#[serde(rename_all = "kebab-case")]`), `pre-build` is a string
//! or a list of strings (`opt_string_or_string_vec`) and `dockerfile` a string
//! or a table (`opt_string_or_struct`). Here every struct adds
//! `deny_unknown_fields`. A newer cross has more keys (`zig`, `image.name`,
//! ...): bump `CROSS_VERSION` in the script only after re-checking this mirror.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;

use serde::Deserialize;

/// The targets the product ships for.
const TARGETS: [&str; 2] = ["aarch64-unknown-linux-gnu", "armv7-unknown-linux-gnueabihf"];

/// cross 0.2.5's `CrossToml`, strict.
#[allow(dead_code)]
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct CrossToml {
    #[serde(default)]
    target: BTreeMap<String, TargetConfig>,
    #[serde(default)]
    build: Option<BuildConfig>,
}

/// cross 0.2.5's `CrossBuildConfig`, strict. Fields are only parsed: their
/// presence and types are what the schema checks.
#[allow(dead_code)]
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
struct BuildConfig {
    env: Option<EnvConfig>,
    xargo: Option<bool>,
    build_std: Option<bool>,
    default_target: Option<String>,
    pre_build: Option<StringOrLines>,
    dockerfile: Option<Dockerfile>,
}

/// cross 0.2.5's `CrossTargetConfig`, strict.
#[allow(dead_code)]
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
struct TargetConfig {
    xargo: Option<bool>,
    build_std: Option<bool>,
    image: Option<String>,
    dockerfile: Option<Dockerfile>,
    pre_build: Option<StringOrLines>,
    runner: Option<String>,
    env: Option<EnvConfig>,
}

/// cross 0.2.5's `CrossEnvConfig`, strict.
#[allow(dead_code)]
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct EnvConfig {
    volumes: Option<Vec<String>>,
    passthrough: Option<Vec<String>>,
}

/// `pre-build`: a script path or lines to run.
#[allow(dead_code)]
#[derive(Debug, Deserialize)]
#[serde(untagged)]
enum StringOrLines {
    One(String),
    Lines(Vec<String>),
}

/// `dockerfile`: a path or cross 0.2.5's `CrossTargetDockerfileConfig`.
#[allow(dead_code)]
#[derive(Debug, Deserialize)]
#[serde(untagged)]
enum Dockerfile {
    Path(String),
    Table(DockerfileTable),
}

/// cross 0.2.5's `CrossTargetDockerfileConfig`, strict.
#[allow(dead_code)]
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
struct DockerfileTable {
    file: String,
    context: Option<String>,
    build_args: Option<BTreeMap<String, String>>,
}

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn cross_toml() -> String {
    std::fs::read_to_string(root().join("cross.toml")).expect("cross.toml at the top level")
}

/// `CROSS_VERSION="x.y.z"` from scripts/cross-build.sh: the one place the
/// cross version is pinned.
fn pinned_cross_version() -> String {
    let script = std::fs::read_to_string(root().join("scripts/cross-build.sh")).unwrap();
    script
        .lines()
        .find_map(|l| l.strip_prefix("CROSS_VERSION=\""))
        .and_then(|rest| rest.strip_suffix('"'))
        .expect("CROSS_VERSION=\"...\" in scripts/cross-build.sh")
        .to_string()
}

/// Parses `text` with the strict schema, then checks our own rules: exactly
/// the shipped targets (a misspelt triple is a valid key to cross, a
/// "custom target" it never uses for the real one), each with the image of
/// the pinned cross release.
fn check(text: &str) -> Result<(), String> {
    let parsed: CrossToml = toml::from_str(text).map_err(|e| e.to_string())?;
    let version = pinned_cross_version();
    let names: Vec<&str> = parsed.target.keys().map(String::as_str).collect();
    let mut want = TARGETS.to_vec();
    want.sort_unstable();
    if names != want {
        return Err(format!("targets {names:?}, want {want:?}"));
    }
    for (triple, t) in &parsed.target {
        let want = format!("ghcr.io/cross-rs/{triple}:{version}");
        if t.image.as_deref() != Some(want.as_str()) {
            return Err(format!(
                "target.{triple}.image is {:?}, want {want:?}",
                t.image
            ));
        }
    }
    Ok(())
}

/// `text` with `from` replaced once; panics when `from` is absent, so a
/// mutation that no longer applies fails loudly instead of testing nothing.
fn mutate(text: &str, from: &str, to: &str) -> String {
    assert!(
        text.contains(from),
        "mutation source {from:?} not in cross.toml"
    );
    let out = text.replacen(from, to, 1);
    assert_ne!(out, text);
    out
}

/// The real cross.toml parses under cross 0.2.5's schema with unknown keys
/// denied, names both ARM targets, and pins their images to the cross
/// release the build script requires.
#[test]
fn cross_toml_fits_cross_0_2_5_schema_and_pins_images() {
    assert_eq!(
        pinned_cross_version(),
        "0.2.5",
        "the schema mirror is cross 0.2.5's"
    );
    check(&cross_toml()).unwrap();
}

/// The strict schema accepts every key cross 0.2.5 knows (so rejections
/// below are about the misspelling, not a schema that refuses everything).
#[test]
fn strict_schema_accepts_every_cross_0_2_5_key() {
    let all = r#"
        [build]
        xargo = false
        build-std = false
        default-target = "aarch64-unknown-linux-gnu"
        pre-build = ["apt-get update"]
        dockerfile = "Dockerfile"
        [build.env]
        volumes = ["A"]
        passthrough = ["B=1"]
        [target.aarch64-unknown-linux-gnu]
        xargo = false
        build-std = false
        image = "ghcr.io/cross-rs/aarch64-unknown-linux-gnu:0.2.5"
        pre-build = "./scripts/pre.sh"
        runner = "qemu-user"
        [target.aarch64-unknown-linux-gnu.dockerfile]
        file = "Dockerfile.arm"
        context = "."
        build-args = { X = "1" }
        [target.aarch64-unknown-linux-gnu.env]
        passthrough = ["C"]
    "#;
    toml::from_str::<CrossToml>(all).unwrap();
}

/// A misspelt key, a snake_case key and a key in the wrong table are each
/// rejected with the key named; cross 0.2.5 itself would only warn and build
/// with its defaults. A misspelt target triple or an unpinned image fails
/// our rules.
#[test]
fn misspelt_cross_toml_is_rejected() {
    let real = cross_toml();
    for (from, to, named) in [
        ("image =", "imgae =", "imgae"),
        ("image =", "docker-image =", "docker-image"),
        (
            "[target.aarch64-unknown-linux-gnu]",
            "[target.aarch64-unknown-linux-gnu]\npre_build = [\"true\"]",
            "pre_build",
        ),
        (
            "[target.armv7-unknown-linux-gnueabihf]",
            "[build]\nimage = \"x\"\n[target.armv7-unknown-linux-gnueabihf]",
            "image",
        ),
        (
            "[target.aarch64-unknown-linux-gnu]",
            "[target.aarch64-unknown-linux-gnu.env]\npassthru = [\"X\"]\n[target.aarch64-unknown-linux-gnu]",
            "passthru",
        ),
    ] {
        let bad = mutate(&real, from, to);
        let err = check(&bad).expect_err(&format!("accepted:\n{bad}"));
        assert!(
            err.contains("unknown field") && err.contains(named),
            "{named}: {err}"
        );
    }
    for (from, to, named) in [
        (
            "[target.aarch64-unknown-linux-gnu]",
            "[target.aarch64-unknown-linux-gun]",
            "aarch64-unknown-linux-gun",
        ),
        (
            "armv7-unknown-linux-gnueabihf:0.2.5",
            "armv7-unknown-linux-gnueabihf:latest",
            "latest",
        ),
    ] {
        let bad = mutate(&real, from, to);
        let err = check(&bad).expect_err(&format!("accepted:\n{bad}"));
        assert!(err.contains(named), "{named}: {err}");
    }
}

/// A directory of fake tools for the script: `rustup` prints `toolchains`,
/// `cross` prints `version` and records its arguments and CROSS_CONFIG.
fn fake_tools(dir: &Path, toolchains: &str, version: &str) {
    let write = |name: &str, body: String| {
        let path = dir.join(name);
        std::fs::write(&path, body).unwrap();
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
    };
    write(
        "rustup",
        format!("#!/bin/sh\n[ \"$1 $2\" = \"toolchain list\" ] || exit 9\nprintf '%s\\n' {toolchains}\n"),
    );
    let log = dir.join("cross.log");
    write(
        "cross",
        format!(
            "#!/bin/sh\necho \"$* CROSS_CONFIG=$CROSS_CONFIG\" >> {}\ncase \"$2\" in --version) echo '{version}';; esac\nexit 0\n",
            log.display()
        ),
    );
}

/// Runs scripts/cross-build.sh with the fake tools first on PATH.
fn run_script(dir: &Path, args: &[&str]) -> (bool, String, String) {
    let path = format!(
        "{}:{}",
        dir.display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let out = Command::new("bash")
        .arg(root().join("scripts/cross-build.sh"))
        .args(args)
        .env("PATH", path)
        .env("EDGECC_CROSS_TOOLCHAIN", "1.95.0")
        .output()
        .expect("bash");
    let log = std::fs::read_to_string(dir.join("cross.log")).unwrap_or_default();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
        log,
    )
}

/// The build script hands cross the absolute path of cross.toml in
/// CROSS_CONFIG, an explicit `+TOOLCHAIN`, `--release --locked` and the
/// target; it refuses a toolchain cross 0.2.5 would re-install (rustup ≥
/// 1.28's "(active, default)" marker), and a cross other than 0.2.5.
#[test]
fn cross_build_script_sets_config_and_guards_toolchain() {
    let host = String::from_utf8(Command::new("rustc").arg("-vV").output().unwrap().stdout)
        .unwrap()
        .lines()
        .find_map(|l| l.strip_prefix("host: ").map(str::to_string))
        .unwrap();
    let config = root().join("cross.toml");

    // Pinned toolchain listed plainly: cross runs, with our config.
    let dir = tempfile::tempdir().unwrap();
    let list = format!("'stable-{host} (active, default)' '1.95.0-{host}'");
    fake_tools(dir.path(), &list, "cross 0.2.5");
    let (ok, err, log) = run_script(dir.path(), &["aarch64-unknown-linux-gnu"]);
    assert!(ok, "{err}");
    assert!(
        log.contains(&format!(
            "+1.95.0 --version CROSS_CONFIG={}",
            config.display()
        )),
        "{log}"
    );
    assert!(
        log.contains(&format!(
            "+1.95.0 build --release --locked --target aarch64-unknown-linux-gnu CROSS_CONFIG={}",
            config.display()
        )),
        "{log}"
    );

    // The only matching toolchain carries rustup 1.28's marker: refused
    // before cross is run at all.
    let dir = tempfile::tempdir().unwrap();
    fake_tools(
        dir.path(),
        &format!("'1.95.0-{host} (active, default)'"),
        "cross 0.2.5",
    );
    let (ok, err, log) = run_script(dir.path(), &["aarch64-unknown-linux-gnu"]);
    assert!(!ok && err.contains("rustup toolchain add"), "{err}");
    assert!(log.is_empty(), "cross was run: {log}");

    // Another cross release: refused after --version, nothing built.
    let dir = tempfile::tempdir().unwrap();
    fake_tools(dir.path(), &format!("'1.95.0-{host}'"), "cross 0.2.4");
    let (ok, err, log) = run_script(dir.path(), &[]);
    assert!(!ok && err.contains("expected 'cross 0.2.5'"), "{err}");
    assert!(!log.contains(" build "), "{log}");
}
