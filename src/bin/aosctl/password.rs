//! Secrets aosctl reads: the provisioning password (from a file or a terminal prompt, never from argv) and
//! an instance's secret (from a file).

use std::io::IsTerminal;
use std::path::Path;

use aos_actors::iam::provisioner::Password;
use zeroize::Zeroizing;

use crate::error::CtlError;

/// Largest secret file read, in bytes.
const MAX_SECRET_FILE: u64 = 4096;

/// The provisioning password: the first line of `file`, or typed at a terminal prompt when `file` is `None`.
pub fn provisioning_password(file: Option<&Path>) -> Result<Password, CtlError> {
    let text = match file {
        Some(path) => first_line(path, "password")?,
        None => prompt("Provisioning password: ")?,
    };
    if text.is_empty() {
        return Err(CtlError::Usage(
            "the provisioning password is empty".to_owned(),
        ));
    }
    Ok(Password::new(text.as_str()))
}

/// The first line of `path` (without its line ending), for a secret of kind `what`.
pub fn first_line(path: &Path, what: &str) -> Result<Zeroizing<String>, CtlError> {
    let size = std::fs::metadata(path)
        .map_err(|e| CtlError::read(path, e))?
        .len();
    if size > MAX_SECRET_FILE {
        return Err(CtlError::bad_file(
            path,
            format!("{size} bytes is too large for a {what} file (at most {MAX_SECRET_FILE})"),
        ));
    }
    let bytes = Zeroizing::new(std::fs::read(path).map_err(|e| CtlError::read(path, e))?);
    let text = std::str::from_utf8(&bytes)
        .map_err(|_| CtlError::bad_file(path, format!("the {what} is not UTF-8 text")))?;
    let line = text.lines().next().unwrap_or("");
    if line.is_empty() {
        return Err(CtlError::bad_file(
            path,
            format!("the {what} file is empty"),
        ));
    }
    Ok(Zeroizing::new(line.to_owned()))
}

fn prompt(message: &str) -> Result<Zeroizing<String>, CtlError> {
    if !std::io::stdin().is_terminal() {
        return Err(CtlError::Usage(
            "no --password-file given and no terminal to prompt on: pass --password-file FILE"
                .to_owned(),
        ));
    }
    rpassword::prompt_password(message)
        .map(Zeroizing::new)
        .map_err(|e| CtlError::Usage(format!("cannot read the password from the terminal: {e}")))
}

#[cfg(test)]
mod tests {
    use std::io::Write;

    use super::*;

    #[test]
    fn the_first_line_of_a_file_is_the_password() {
        let mut file = tempfile::NamedTempFile::new().unwrap();
        file.write_all(b"s3cret pass\nignored\n").unwrap();
        let password = provisioning_password(Some(file.path())).unwrap();
        assert_eq!(password.expose(), "s3cret pass");
    }

    #[test]
    fn empty_missing_and_huge_files_are_refused() {
        let empty = tempfile::NamedTempFile::new().unwrap();
        let err = provisioning_password(Some(empty.path())).unwrap_err();
        assert!(err.to_string().contains("empty"), "{err}");
        let missing = Path::new("/nonexistent/aosctl/password");
        assert!(matches!(
            provisioning_password(Some(missing)),
            Err(CtlError::Read { .. })
        ));
        let mut huge = tempfile::NamedTempFile::new().unwrap();
        huge.write_all(&vec![b'a'; 5000]).unwrap();
        let err = first_line(huge.path(), "secret").unwrap_err();
        assert!(err.to_string().contains("too large"), "{err}");
    }
}
