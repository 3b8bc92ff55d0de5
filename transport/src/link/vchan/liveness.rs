//! Is the peer process still alive? Answered from `/proc/<pid>/stat`.
//!
//! A process counts as gone when its `/proc` entry is missing, when it is a zombie (killed but not yet
//! reaped by its parent) or when the pid now belongs to a process with another start time (pid reuse).
//! Without `/proc` nothing can be told, and the peer counts as alive (it can still close cleanly).

/// The start time (clock ticks since boot) of a running process, `None` if it is gone or a zombie.
pub(super) fn start_time(pid: u32) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // Fields after the command name, which is in parentheses and may itself contain ") ".
    let rest = &stat[stat.rfind(')')? + 1..];
    let mut fields = rest.split_ascii_whitespace();
    let state = fields.next()?;
    if state == "Z" || state == "X" || state == "x" {
        return None;
    }
    // `state` is field 3 of proc(5); `starttime` is field 22, so 18 fields further.
    fields.nth(18)?.parse().ok()
}

/// Our own start time, 0 when `/proc` cannot tell.
pub(super) fn own_start_time() -> u64 {
    start_time(std::process::id()).unwrap_or(0)
}

/// Whether process `pid` that started at `started` (0 = unknown) still runs.
pub(super) fn is_alive(pid: u32, started: u64) -> bool {
    if pid == 0 {
        return true;
    }
    if !std::path::Path::new("/proc/self/stat").exists() {
        return true;
    }
    match start_time(pid) {
        Some(t) => started == 0 || t == started,
        None => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn own_process_is_alive_with_its_start_time() {
        let me = std::process::id();
        let t = own_start_time();
        assert!(t > 0);
        assert!(is_alive(me, t));
        assert!(
            !is_alive(me, t + 1),
            "a different start time means the pid was reused"
        );
    }

    #[test]
    fn reaped_and_zombie_children_are_dead() {
        let mut child = std::process::Command::new("true").spawn().unwrap();
        let pid = child.id();
        // Until reaped the child is a zombie once it exited; wait for that without reaping it.
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        while start_time(pid).is_some() && std::time::Instant::now() < deadline {
            std::thread::sleep(std::time::Duration::from_millis(5));
        }
        assert!(
            !is_alive(pid, 0),
            "an exited, unreaped child is a zombie and counts as dead"
        );
        child.wait().unwrap();
        assert!(!is_alive(pid, 0));
    }
}
