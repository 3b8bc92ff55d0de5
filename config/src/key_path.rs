//! Key paths into the TOML document: `cert_modules[2].pkcs11.slot_id`.

use std::fmt;

/// One step of a [`KeyPath`].
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub(crate) enum Segment {
    /// A table key.
    Key(String),
    /// An index into an array (or array of tables).
    Index(usize),
}

/// A path from the document root to a key or array element.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash)]
pub(crate) struct KeyPath(Vec<Segment>);

// === impl KeyPath ===

impl KeyPath {
    /// The document root.
    pub(crate) fn root() -> Self {
        Self::default()
    }

    /// This path extended by a table key.
    pub(crate) fn key(&self, key: &str) -> Self {
        let mut path = self.clone();
        path.0.push(Segment::Key(key.to_owned()));
        path
    }

    /// This path extended by an array index.
    pub(crate) fn index(&self, index: usize) -> Self {
        let mut path = self.clone();
        path.0.push(Segment::Index(index));
        path
    }

    /// The path without its last segment (the root stays the root).
    pub(crate) fn parent(&self) -> Self {
        let mut path = self.clone();
        path.0.pop();
        path
    }

    /// Number of segments.
    pub(crate) fn depth(&self) -> usize {
        self.0.len()
    }

    /// Whether this is the root.
    pub(crate) fn is_root(&self) -> bool {
        self.0.is_empty()
    }
}

/// A key needs quotes unless it is a bare TOML key.
fn is_bare(key: &str) -> bool {
    !key.is_empty()
        && key
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
}

impl fmt::Display for KeyPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, segment) in self.0.iter().enumerate() {
            match segment {
                Segment::Key(key) => {
                    if i > 0 {
                        f.write_str(".")?;
                    }
                    if is_bare(key) {
                        f.write_str(key)?;
                    } else {
                        write!(f, "{key:?}")?;
                    }
                }
                Segment::Index(index) => write!(f, "[{index}]")?,
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn displays_dotted_with_indices() {
        let path = KeyPath::root().key("cert_modules").index(2).key("pkcs11");
        assert_eq!(path.to_string(), "cert_modules[2].pkcs11");
        assert_eq!(path.parent().to_string(), "cert_modules[2]");
        assert_eq!(KeyPath::root().key("a b").to_string(), "\"a b\"");
        assert!(KeyPath::root().is_root());
    }
}
