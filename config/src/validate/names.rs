//! Syntax checks of identifiers, DNS names and `host:port` addresses.

use std::net::SocketAddr;

/// Longest node or unit id.
pub(crate) const MAX_IDENT_LEN: usize = 64;

fn is_ident_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || c == '_' || c == '-'
}

/// A node or unit id: it becomes part of SAN URIs `urn:aos:<unit>:<node>:<role>`, so no `:` or spaces.
pub(crate) fn check_ident(id: &str) -> Result<(), String> {
    if id.is_empty()
        || id.len() > MAX_IDENT_LEN
        || !id.chars().all(|c| is_ident_char(c) || c == '.')
    {
        return Err(format!(
            "{id:?} is not an id: use 1 to {MAX_IDENT_LEN} characters of A-Z a-z 0-9 . _ - (it becomes part of \
             certificate SAN URIs)"
        ));
    }
    Ok(())
}

/// A cert module id: 1 to [`crate::cert_module::MAX_ID_LEN`] characters of `[A-Za-z0-9_-]`.
pub(crate) fn check_module_id(id: &str) -> Result<(), String> {
    let max = crate::cert_module::MAX_ID_LEN;
    let len = id.chars().count();
    if len == 0 || len > max {
        return Err(format!(
            "{id:?} has {len} characters; a cert module id has 1 to {max}"
        ));
    }
    if !id.chars().all(is_ident_char) {
        return Err(format!(
            "{id:?} may only hold A-Z a-z 0-9 _ - (it is a token object label and URL part)"
        ));
    }
    Ok(())
}

/// A DNS name as it may appear in a certificate's DNS SAN: labels of 1 to 63 letters, digits and inner
/// hyphens, 253 characters at most, not an IP address.
pub(crate) fn check_dns_name(name: &str) -> Result<(), &'static str> {
    if name.is_empty() {
        return Err("empty DNS name");
    }
    if name.len() > 253 {
        return Err("DNS name longer than 253 characters");
    }
    for label in name.split('.') {
        if label.is_empty() {
            return Err("empty label (two dots, or a leading or trailing dot)");
        }
        if label.len() > 63 {
            return Err("label longer than 63 characters");
        }
        if !label
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-')
        {
            return Err("only letters, digits, '-' and '.' are allowed");
        }
        if label.starts_with('-') || label.ends_with('-') {
            return Err("a label may not start or end with '-'");
        }
    }
    if name
        .rsplit('.')
        .next()
        .is_some_and(|tld| tld.bytes().all(|b| b.is_ascii_digit()))
    {
        return Err("looks like an IP address; only DNS names are allowed here");
    }
    Ok(())
}

/// `host:port` where host is a DNS name, an IPv4 address or a bracketed IPv6 address, and port is 1..=65535.
pub(crate) fn check_host_port(addr: &str) -> Result<(), String> {
    if let Ok(sock) = addr.parse::<SocketAddr>() {
        return if sock.port() == 0 {
            Err(format!("{addr:?}: port 0"))
        } else {
            Ok(())
        };
    }
    let Some((host, port)) = addr.rsplit_once(':') else {
        return Err(format!("{addr:?} is not host:port"));
    };
    match port.parse::<u16>() {
        Ok(p) if p > 0 => {}
        _ => return Err(format!("{addr:?}: {port:?} is not a port (1 to 65535)")),
    }
    check_dns_name(host).map_err(|why| format!("{addr:?}: host {host:?}: {why}"))
}

/// `two`, `three`, … for messages.
pub(crate) fn count_word(n: usize) -> String {
    match n {
        2 => "two".to_owned(),
        3 => "three".to_owned(),
        4 => "four".to_owned(),
        _ => n.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dns_names() {
        for good in [
            "main",
            "iam.local",
            "node-1.unit.example.com",
            "a1",
            "x".repeat(63).as_str(),
        ] {
            assert_eq!(check_dns_name(good), Ok(()), "{good}");
        }
        let long_label = "x".repeat(64);
        let long_name = ["a"; 127].join(".") + ".bb";
        for bad in [
            "",
            "a..b",
            ".a",
            "a.",
            "-a",
            "a-",
            "a_b",
            "a b",
            "*.x",
            "10.0.0.1",
            &long_label,
            &long_name,
        ] {
            assert!(check_dns_name(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn host_ports() {
        for good in [
            "main:8090",
            "10.0.0.1:8089",
            "[::1]:8090",
            "main.unit.local:1",
        ] {
            assert_eq!(check_host_port(good), Ok(()), "{good}");
        }
        for bad in [
            "main",
            "main:",
            ":8090",
            "main:0",
            "main:70000",
            "ma in:1",
            "10.0.0.1:0",
        ] {
            assert!(check_host_port(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn module_ids() {
        assert!(check_module_id("diskencryption").is_ok());
        assert!(check_module_id("sixteen_chars_ok").is_ok());
        assert!(check_module_id("seventeen_chars_x").is_err());
        assert!(check_module_id("").is_err());
        assert!(check_module_id("a.b").is_err());
    }

    #[test]
    fn idents() {
        assert!(check_ident("node-1.a_b").is_ok());
        assert!(check_ident("").is_err());
        assert!(check_ident("a:b").is_err());
        assert!(check_ident(&"x".repeat(65)).is_err());
    }
}
