//! Secret files: passwords, client secrets and signing keys are read from
//! files (systemd credentials), never written in the config, so serialising
//! a config never leaks one. Every error names the config key and the file.

use std::path::Path;

use super::SettingError;

/// Largest secret file accepted, in bytes: secrets are short tokens.
pub const SECRET_FILE_BYTES_MAX: u64 = 4 * 1024;

/// Reads a secret from `path` (config key `key`), dropping trailing
/// newlines. An unreadable, oversized or empty file is an error naming the
/// key and the file.
pub fn read_secret_file(key: &str, path: &Path) -> Result<Vec<u8>, SettingError> {
    use std::io::Read;
    use std::os::unix::fs::OpenOptionsExt;
    let unreadable =
        |e: std::io::Error| SettingError::new(key, format!("cannot read {}: {e}", path.display()));
    // Non-blocking, so a FIFO in its place cannot hang the start (or
    // `check-config`); the type is checked on what was opened, not on a
    // name that may change in between.
    let file = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK | libc::O_NOCTTY)
        .open(path)
        .map_err(unreadable)?;
    let meta = file.metadata().map_err(unreadable)?;
    if !meta.is_file() {
        return Err(SettingError::new(
            key,
            format!("{} is not a regular file", path.display()),
        ));
    }
    if meta.len() > SECRET_FILE_BYTES_MAX {
        return Err(SettingError::new(
            key,
            format!(
                "{} is {} bytes, more than the {SECRET_FILE_BYTES_MAX} a secret may be",
                path.display(),
                meta.len()
            ),
        ));
    }
    let mut bytes = Vec::new();
    // Bounded even if the file grows after the check.
    file.take(SECRET_FILE_BYTES_MAX + 1)
        .read_to_end(&mut bytes)
        .map_err(unreadable)?;
    if bytes.len() as u64 > SECRET_FILE_BYTES_MAX {
        return Err(SettingError::new(
            key,
            format!(
                "{} grew past {SECRET_FILE_BYTES_MAX} bytes while read",
                path.display()
            ),
        ));
    }
    while matches!(bytes.last(), Some(b'\n' | b'\r')) {
        bytes.pop();
    }
    if bytes.is_empty() {
        return Err(SettingError::new(
            key,
            format!("{} is empty", path.display()),
        ));
    }
    Ok(bytes)
}

/// Reads a secret file that must be UTF-8 text (passwords, client secrets).
pub fn read_secret_text(key: &str, path: &Path) -> Result<String, SettingError> {
    String::from_utf8(read_secret_file(key, path)?)
        .map_err(|_| SettingError::new(key, format!("{} is not UTF-8 text", path.display())))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A secret loses its trailing newline; an empty, missing or oversized
    /// file is refused with the key and the path in the message.
    #[test]
    fn secret_files() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("s");
        std::fs::write(&path, "k3y\r\n").unwrap();
        assert_eq!(read_secret_file("a.secret_file", &path).unwrap(), b"k3y");
        std::fs::write(&path, "\n").unwrap();
        let e = read_secret_file("a.secret_file", &path).unwrap_err();
        assert_eq!(e.key, "a.secret_file");
        assert!(e.message.ends_with("is empty"), "{e}");
        std::fs::write(&path, vec![b'x'; SECRET_FILE_BYTES_MAX as usize + 1]).unwrap();
        assert!(read_secret_file("a.secret_file", &path)
            .unwrap_err()
            .message
            .contains("more than"));
        std::fs::write(&path, [0xff, 0xfe]).unwrap();
        assert!(read_secret_text("a.secret_file", &path)
            .unwrap_err()
            .message
            .contains("not UTF-8"));
        let missing = dir.path().join("none");
        let e = read_secret_text("a.secret_file", &missing).unwrap_err();
        assert!(e
            .to_string()
            .starts_with("key `a.secret_file`: cannot read "));
        assert!(e.message.contains(&missing.display().to_string()));
    }

    /// A directory, a character device that never ends (`/dev/zero`) and a
    /// FIFO nobody writes to are refused at once as not regular files.
    #[test]
    fn secret_files_that_are_not_regular_files() {
        let dir = tempfile::tempdir().expect("tempdir");
        let fifo = dir.path().join("fifo");
        let c = std::ffi::CString::new(fifo.to_str().unwrap()).unwrap();
        // SAFETY: mkfifo on a NUL-terminated path we own.
        assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o600) }, 0);
        for path in [dir.path(), Path::new("/dev/zero"), fifo.as_path()] {
            let e = read_secret_file("crm.webhook.secret_file", path).expect_err("refused");
            assert!(
                e.message.contains("not a regular file"),
                "{}: {}",
                path.display(),
                e.message
            );
            assert_eq!(e.key, "crm.webhook.secret_file");
        }
    }
}
