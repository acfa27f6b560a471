//! A wrong config value stops the daemon with one line that names the file
//! and the key; `check-config` says the same and exits 1.

use crate::util::{run, stderr, stdout};

/// A misspelt key and a value out of range are both named, with the file.
#[test]
fn bad_config_names_file_and_key() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("edgecc.toml");
    std::fs::write(&file, "[storage]\ncache_capacity_bytes = 12\n").unwrap();
    let f = file.to_str().unwrap();

    let o = run(&["check-config", f]);
    assert_eq!(o.status.code(), Some(1));
    let e = stderr(&o);
    assert!(
        e.contains(f) && e.contains("storage.cache_capacity_bytes"),
        "{e}"
    );

    let o = run(&[
        "--config",
        f,
        "--data-dir",
        dir.path().to_str().unwrap(),
        "run",
    ]);
    assert_eq!(o.status.code(), Some(1));
    assert!(
        stderr(&o).contains("storage.cache_capacity_bytes"),
        "{}",
        stderr(&o)
    );

    std::fs::write(&file, "[sight]\nid = \"x\"\n").unwrap();
    let o = run(&["check-config", f]);
    assert_eq!(o.status.code(), Some(1));
    assert!(stderr(&o).contains("sight"), "{}", stderr(&o));
}

/// A good file is printed back as the effective configuration.
#[test]
fn good_config_prints_effective_configuration() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("edgecc.toml");
    std::fs::write(&file, "[site]\nid = \"branch-7\"\n").unwrap();
    let o = run(&["check-config", file.to_str().unwrap()]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(stdout(&o).contains("branch-7"), "{}", stdout(&o));
}

/// An empty user id and a password hash that is not a valid argon2 PHC
/// string (only its prefix is right) are refused by `check-config`, with
/// the key named. (Issue 17.)
#[test]
fn users_need_an_id_and_a_valid_hash() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("edgecc.toml");
    let f = file.to_str().unwrap();
    let good = "$argon2id$v=19$m=19456,t=2,p=1$0ahPyPgcygN2wHbEgpxA5g$5TUSVsavWarypr/LrIsk+mVrdHkZa8lKGgbV00PyGVQ";
    for (id, hash, key) in [
        ("", good, "users[0].id"),
        ("sue", "$argon2id$garbage", "users[0].password_hash"),
    ] {
        std::fs::write(
            &file,
            format!(
                "[[users]]\nid = \"{id}\"\nrole = \"supervisor\"\npassword_hash = \"{hash}\"\n"
            ),
        )
        .unwrap();
        let o = run(&["check-config", f]);
        assert_eq!(o.status.code(), Some(1), "{}", stdout(&o));
        assert!(stderr(&o).contains(key), "{key}: {}", stderr(&o));
    }
    std::fs::write(
        &file,
        format!("[[users]]\nid = \"sue\"\nrole = \"supervisor\"\npassword_hash = \"{good}\"\n"),
    )
    .unwrap();
    let o = run(&["check-config", f]);
    assert!(o.status.success(), "{}", stderr(&o));
}

/// `routing.device_refusals_max` out of range or of the wrong type is
/// refused by `check-config` with the file and the key named (issue 16).
#[test]
fn device_refusals_max_is_checked() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("edgecc.toml");
    let f = file.to_str().unwrap();
    for value in ["1000", "-1", "\"three\""] {
        std::fs::write(&file, format!("[routing]\ndevice_refusals_max = {value}\n")).unwrap();
        let o = run(&["check-config", f]);
        assert_eq!(o.status.code(), Some(1), "{value}");
        let e = stderr(&o);
        assert!(
            e.contains(f) && e.contains("device_refusals_max"),
            "{value}: {e}"
        );
    }
    std::fs::write(&file, "[routing]\ndevice_refusals_max = 0\n").unwrap();
    let o = run(&["check-config", f]);
    assert!(o.status.success(), "0 turns the rule off: {}", stderr(&o));
}

/// A config written when skill levels were 0..=10 is refused by
/// `check-config` with the file, the key and what changed named; the same
/// agent at level 5 with escalation steps on its queue passes. (Issue 18.)
#[test]
fn old_skill_levels_are_refused_with_the_key() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("edgecc.toml");
    let f = file.to_str().unwrap();
    let config = |level: u8| {
        format!(
            "[[queues]]\nid = \"q\"\nrequired_skills = [{{ skill = \"en\", level_min = 2 }}]\n\
             [queues.routing]\naging_per_s = 1\nsteps = [{{ after_ms = 20000, level_min = 1 }}, \
             {{ after_ms = 60000, any_member = true }}]\n\
             [[agents]]\nid = \"a\"\nextension = \"100\"\nqueues = [\"q\"]\n\
             skills = [{{ skill = \"en\", level = {level} }}]\n"
        )
    };
    std::fs::write(&file, config(8)).unwrap();
    let o = run(&["check-config", f]);
    assert_eq!(o.status.code(), Some(1), "{}", stdout(&o));
    let e = stderr(&o);
    assert!(
        e.contains(f) && e.contains("agents[0].skills[0].level") && e.contains("1..=5"),
        "{e}"
    );
    std::fs::write(&file, config(5)).unwrap();
    let o = run(&["check-config", f]);
    assert!(o.status.success(), "{}", stderr(&o));
}

/// `[routing.backoff]` problems are named with the file and the key: an
/// unknown key, a cooling-off without a window, and the back-off after a
/// reject set together with the reject delay. (Issue 18.)
#[test]
fn backoff_problems_name_file_and_key() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("edgecc.toml");
    let f = file.to_str().unwrap();
    for (toml, key) in [
        (
            "[routing.backoff]\nafter_rejects_ms = 1\n",
            "routing.backoff.after_rejects_ms",
        ),
        (
            "[routing.backoff]\ncooling_off_no_answers = 3\ncooling_off_window_ms = 0\n",
            "routing.backoff.cooling_off_window_ms",
        ),
        (
            "[timers]\nreject_delay_ms = 1000\n[routing.backoff]\nafter_reject_ms = 3000\n",
            "routing.backoff.after_reject_ms",
        ),
    ] {
        std::fs::write(&file, toml).unwrap();
        let o = run(&["check-config", f]);
        assert_eq!(o.status.code(), Some(1), "{toml}");
        let e = stderr(&o);
        assert!(e.contains(f) && e.contains(key), "{toml}: {e}");
    }
}

/// A queue's announcement interval under the minimum and a callback digit
/// that is not one DTMF digit are refused by `check-config`, naming the
/// file and the key path; the shipped example's values pass (issue 18).
#[test]
fn waiting_keys_are_checked() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("edgecc.toml");
    let f = file.to_str().unwrap();
    let queue = "[[queues]]\nid = \"q\"\ndnis = [\"800\"]\n";
    for (table, key) in [
        (
            "[queues.announcements]\ninterval_ms = 2000\n",
            "queues[0].announcements.interval_ms",
        ),
        (
            "[queues.callback]\ndigit = \"12\"\n",
            "queues[0].callback.digit",
        ),
        (
            "[queues.callback]\ndial_timeout_ms = 0\n",
            "queues[0].callback.dial_timeout_ms",
        ),
    ] {
        std::fs::write(&file, format!("{queue}{table}")).unwrap();
        let o = run(&["check-config", f]);
        assert_eq!(o.status.code(), Some(1), "{table}");
        let e = stderr(&o);
        assert!(e.contains(f) && e.contains(key), "{table}: {e}");
    }
    std::fs::write(
        &file,
        format!(
            "{queue}[queues.announcements]\ninterval_ms = 30000\n\
             [queues.callback]\ndigit = \"#\"\non_hangup = true\nreentry_window_ms = 600000\n"
        ),
    )
    .unwrap();
    let o = run(&["check-config", f]);
    assert!(o.status.success(), "{}", stderr(&o));
}

/// Overflow rules with a range of hours that ends before it starts, a day
/// that is not one, or an offset that is not one are refused by
/// `check-config`, naming the file and the key path; good rules pass.
#[test]
fn overflow_hours_are_checked() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("edgecc.toml");
    let f = file.to_str().unwrap();
    let queues = "[[queues]]\nid = \"spare\"\ndnis = [\"801\"]\n\
                  [[queues]]\nid = \"q\"\ndnis = [\"800\"]\n";
    for (table, key) in [
        (
            "[[queues.routing.overflow.rules]]\nnumber = \"+15550009999\"\n\
             hours = [{ days = [\"mon\"], from = \"18:00\", to = \"08:00\" }]\n",
            "queues[1].routing.overflow.rules[0].hours[0].to",
        ),
        (
            "[[queues.routing.overflow.rules]]\nqueue = \"spare\"\n\
             hours = [{ days = [\"monday\"], from = \"08:00\", to = \"18:00\" }]\n",
            "monday",
        ),
        (
            "[queues.routing.overflow]\nutc_offset = \"CET\"\n",
            "queues[1].routing.overflow.utc_offset",
        ),
        (
            "[[queues.routing.overflow.rules]]\nqueue = \"nowhere\"\n",
            "queues[1].routing.overflow.rules[0].queue",
        ),
    ] {
        std::fs::write(&file, format!("{queues}{table}")).unwrap();
        let o = run(&["check-config", f]);
        assert_eq!(o.status.code(), Some(1), "{table}");
        let e = stderr(&o);
        assert!(e.contains(f) && e.contains(key), "{table}: {e}");
    }
    std::fs::write(
        &file,
        format!(
            "{queues}[queues.routing.overflow]\nstay_ms = 60000\nutc_offset = \"+01:00\"\n\
             [[queues.routing.overflow.rules]]\nqueue = \"spare\"\nmax_calls = 5\n\
             [[queues.routing.overflow.rules]]\nnumber = \"+15550009999\"\nmax_calls = 2\n\
             busy_ms = 600000\n\
             hours = [{{ days = [\"mon\", \"tue\", \"wed\", \"thu\", \"fri\"], from = \"08:00\", to = \"18:00\" }}]\n"
        ),
    )
    .unwrap();
    let o = run(&["check-config", f]);
    assert!(o.status.success(), "{}", stderr(&o));
}

/// A queue's wrap-up codes (issue 20): a duplicate code and an unknown key
/// are both refused by `check-config` with the file and the key named.
#[test]
fn wrap_up_code_errors_name_file_and_key() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("edgecc.toml");
    let f = file.to_str().unwrap();
    let queue =
        "[[queues]]\nid = \"sales\"\ndnis = [\"100\"]\n[queues.wrap_up_codes]\nrequired = true\n";
    std::fs::write(
        &file,
        format!(
            "{queue}codes = [{{ code = \"sale\" }}, {{ code = \"sale\", label = \"Sale\" }}]\n"
        ),
    )
    .unwrap();
    let o = run(&["check-config", f]);
    assert_eq!(o.status.code(), Some(1));
    let e = stderr(&o);
    assert!(
        e.contains(f)
            && e.contains("queues[0].wrap_up_codes.codes[1].code")
            && e.contains("duplicate"),
        "{e}"
    );

    std::fs::write(&file, format!("{queue}mandatory = true\n")).unwrap();
    let o = run(&["check-config", f]);
    assert_eq!(o.status.code(), Some(1));
    let e = stderr(&o);
    assert!(e.contains(f) && e.contains("mandatory"), "{e}");

    std::fs::write(&file, format!("{queue}codes = [{{ code = \"sale\" }}]\n")).unwrap();
    let o = run(&["check-config", f]);
    assert!(o.status.success(), "{}", stderr(&o));
}
