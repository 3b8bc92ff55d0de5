//! Provisioning hooks: external commands run at fixed steps, with a timeout; their output goes to the log.

use std::process::Stdio;
use std::time::Duration;

use super::ProvisionError;

/// Run `argv` (no shell) and wait at most `timeout`. A non-zero exit, a failure to start, or the timeout is
/// an error naming the hook; the child is killed on timeout.
pub async fn run_hook(
    name: &'static str,
    argv: &[String],
    timeout: Duration,
) -> Result<(), ProvisionError> {
    let Some((program, args)) = argv.split_first() else {
        return Ok(());
    };
    tracing::info!(hook = name, program = %program, "running provisioning hook");
    let child = tokio::process::Command::new(program)
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .map_err(|e| ProvisionError::Hook {
            hook: name,
            message: format!("cannot start {program}: {e}"),
        })?;
    let output = match tokio::time::timeout(timeout, child.wait_with_output()).await {
        Ok(Ok(output)) => output,
        Ok(Err(e)) => {
            return Err(ProvisionError::Hook {
                hook: name,
                message: format!("{program}: {e}"),
            })
        }
        Err(_) => {
            return Err(ProvisionError::Hook {
                hook: name,
                message: format!("{program} did not finish within {timeout:?} and was killed"),
            })
        }
    };
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    for line in stdout.lines() {
        tracing::info!(hook = name, "{line}");
    }
    for line in stderr.lines() {
        tracing::warn!(hook = name, "{line}");
    }
    if output.status.success() {
        Ok(())
    } else {
        let tail: String = stderr
            .lines()
            .last()
            .unwrap_or("")
            .chars()
            .take(200)
            .collect();
        Err(ProvisionError::Hook {
            hook: name,
            message: format!("{program} exited with {}: {tail}", output.status),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[actix_rt::test]
    async fn success_failure_and_timeout() {
        let ok = vec![
            "/bin/sh".to_owned(),
            "-c".to_owned(),
            "echo fine".to_owned(),
        ];
        run_hook("start", &ok, Duration::from_secs(5))
            .await
            .unwrap();

        let fail = vec![
            "/bin/sh".to_owned(),
            "-c".to_owned(),
            "echo broken >&2; exit 3".to_owned(),
        ];
        let err = run_hook("finish", &fail, Duration::from_secs(5))
            .await
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("finish") && err.contains("3") && err.contains("broken"),
            "{err}"
        );

        let slow = vec!["/bin/sleep".to_owned(), "30".to_owned()];
        let err = run_hook("deprovision", &slow, Duration::from_millis(200))
            .await
            .unwrap_err()
            .to_string();
        assert!(err.contains("did not finish"), "{err}");

        let missing = vec!["/nonexistent/hook".to_owned()];
        let err = run_hook("start", &missing, Duration::from_secs(1))
            .await
            .unwrap_err()
            .to_string();
        assert!(err.contains("cannot start"), "{err}");
    }
}
