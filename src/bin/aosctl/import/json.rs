//! Reading AosCore's JSON with case-insensitive keys, naming every value by its path (`certModules[2].plugin`)
//! and remembering which keys were read, so the ones nobody read can be reported.

use std::cell::RefCell;
use std::collections::BTreeMap;

use serde_json::Value;

use super::ImportError;

/// One JSON object, keys matched case-insensitively.
pub struct Obj<'a> {
    path: String,
    fields: BTreeMap<String, (&'a str, &'a Value)>,
    read: RefCell<Vec<String>>,
}

// === impl Obj ===

impl<'a> Obj<'a> {
    /// The object `value` found at `path` (empty for the document).
    pub fn new(path: &str, value: &'a Value) -> Result<Obj<'a>, ImportError> {
        let Value::Object(map) = value else {
            return Err(ImportError::WrongType {
                key: display_path(path),
                expected: "an object",
            });
        };
        let mut fields = BTreeMap::new();
        for (key, value) in map {
            let lower = key.to_ascii_lowercase();
            if let Some((first, _)) = fields.insert(lower, (key.as_str(), value)) {
                return Err(ImportError::Invalid {
                    key: join(path, key),
                    reason: format!("the same key as `{first}` in another case"),
                });
            }
        }
        Ok(Obj {
            path: path.to_owned(),
            fields,
            read: RefCell::new(Vec::new()),
        })
    }

    /// The path of `key` in this object, as the file spells it when present.
    pub fn key_path(&self, key: &str) -> String {
        let spelled = self
            .fields
            .get(&key.to_ascii_lowercase())
            .map(|(k, _)| *k)
            .unwrap_or(key);
        join(&self.path, spelled)
    }

    /// The value of `key`, if present and not null.
    pub fn get(&self, key: &str) -> Option<&'a Value> {
        let lower = key.to_ascii_lowercase();
        self.read.borrow_mut().push(lower.clone());
        match self.fields.get(&lower) {
            Some((_, Value::Null)) | None => None,
            Some((_, value)) => Some(value),
        }
    }

    /// A string value.
    pub fn str(&self, key: &str) -> Result<Option<&'a str>, ImportError> {
        match self.get(key) {
            None => Ok(None),
            Some(Value::String(s)) => Ok(Some(s.as_str())),
            Some(_) => Err(self.wrong(key, "a string")),
        }
    }

    /// A string value that must be present.
    pub fn required_str(&self, key: &str) -> Result<&'a str, ImportError> {
        self.str(key)?.ok_or_else(|| ImportError::Missing {
            key: self.key_path(key),
        })
    }

    /// A boolean value.
    pub fn bool(&self, key: &str) -> Result<Option<bool>, ImportError> {
        match self.get(key) {
            None => Ok(None),
            Some(Value::Bool(b)) => Ok(Some(*b)),
            Some(_) => Err(self.wrong(key, "true or false")),
        }
    }

    /// A non-negative integer value.
    pub fn u64(&self, key: &str) -> Result<Option<u64>, ImportError> {
        match self.get(key) {
            None => Ok(None),
            Some(value) => value
                .as_u64()
                .map(Some)
                .ok_or_else(|| self.wrong(key, "a non-negative integer")),
        }
    }

    /// An array of strings.
    pub fn strings(&self, key: &str) -> Result<Option<Vec<String>>, ImportError> {
        match self.get(key) {
            None => Ok(None),
            Some(Value::Array(items)) => items
                .iter()
                .enumerate()
                .map(|(i, item)| match item {
                    Value::String(s) => Ok(s.clone()),
                    _ => Err(ImportError::WrongType {
                        key: format!("{}[{i}]", self.key_path(key)),
                        expected: "a string",
                    }),
                })
                .collect::<Result<Vec<_>, _>>()
                .map(Some),
            Some(_) => Err(self.wrong(key, "an array of strings")),
        }
    }

    /// A nested object.
    pub fn obj(&self, key: &str) -> Result<Option<Obj<'a>>, ImportError> {
        match self.get(key) {
            None => Ok(None),
            Some(value) => Obj::new(&self.key_path(key), value).map(Some),
        }
    }

    /// An array of objects.
    pub fn objs(&self, key: &str) -> Result<Vec<Obj<'a>>, ImportError> {
        match self.get(key) {
            None => Ok(Vec::new()),
            Some(Value::Array(items)) => items
                .iter()
                .enumerate()
                .map(|(i, item)| Obj::new(&format!("{}[{i}]", self.key_path(key)), item))
                .collect(),
            Some(_) => Err(self.wrong(key, "an array of objects")),
        }
    }

    /// The keys (as spelled in the file, with their path) nobody read.
    pub fn unread(&self) -> Vec<String> {
        let read = self.read.borrow();
        self.fields
            .iter()
            .filter(|(lower, _)| !read.contains(lower))
            .map(|(_, (key, _))| join(&self.path, key))
            .collect()
    }

    fn wrong(&self, key: &str, expected: &'static str) -> ImportError {
        ImportError::WrongType {
            key: self.key_path(key),
            expected,
        }
    }
}

fn join(path: &str, key: &str) -> String {
    if path.is_empty() {
        key.to_owned()
    } else {
        format!("{path}.{key}")
    }
}

fn display_path(path: &str) -> String {
    if path.is_empty() {
        "(document)".to_owned()
    } else {
        path.to_owned()
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn keys_match_in_any_case_and_errors_name_the_path() {
        let doc = json!({"CertModules": [{"ID": "iam", "MaxItems": "two"}], "extra": 1});
        let top = Obj::new("", &doc).unwrap();
        let modules = top.objs("certModules").unwrap();
        assert_eq!(modules[0].str("id").unwrap(), Some("iam"));
        let err = modules[0].u64("maxitems").unwrap_err();
        assert_eq!(
            err.to_string(),
            "CertModules[0].MaxItems: expected a non-negative integer"
        );
        assert_eq!(top.unread(), vec!["extra".to_owned()]);
    }

    #[test]
    fn the_same_key_twice_in_two_cases_is_refused() {
        let doc = json!({"caCert": "a", "CACERT": "b"});
        assert!(matches!(
            Obj::new("", &doc),
            Err(ImportError::Invalid { .. })
        ));
    }
}
