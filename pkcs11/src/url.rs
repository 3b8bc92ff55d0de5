//! Object references: RFC 7512 `pkcs11:` URLs and `file:` URLs.
//!
//! Certificates and keys are referred to by URL, as AosCore does:
//!
//! ```text
//! pkcs11:token=aoscore;object=iam;id=%01%AB...?module-path=/usr/lib/softhsm/libsofthsm2.so&pin-source=/var/aos/.pin
//! file:///var/aos/crypt/ca.pem
//! ```
//!
//! Parsing ([`FromStr`]) is strict: attribute names are case-sensitive, every value byte outside
//! the RFC 7512 character set of its component must be percent-encoded, an attribute may appear
//! only once, and unknown path attributes (other than vendor `x-` ones) are refused rather than
//! silently ignored. Formatting ([`fmt::Display`]) emits a canonical form that parses back to an
//! equal value. PINs are never accepted inside a URL (`pin-value` is refused), and error messages
//! name the offending attribute and its byte offset but never echo a value.

use std::borrow::Cow;
use std::fmt::{self, Write as _};
use std::path::{Path, PathBuf};
use std::str::FromStr;

/// Path attributes defined by RFC 7512 that are kept verbatim in [`Pkcs11Url::other`].
const OTHER_PATH_ATTRS: &[&str] = &[
    "manufacturer",
    "model",
    "library-manufacturer",
    "library-description",
    "library-version",
    "slot-description",
    "slot-manufacturer",
    "slot-id",
];

/// Values of the `type` path attribute (RFC 7512 `pk11-type`).
const OBJECT_TYPES: &[&str] = &["cert", "private", "public", "secret-key", "data"];

/// An object reference: an RFC 7512 `pkcs11:` URL or a `file:` URL.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum ObjectUrl {
    /// An object on a PKCS#11 token.
    Pkcs11(Pkcs11Url),
    /// A (PEM) file on the local file system; always an absolute path when parsed.
    File(PathBuf),
}

impl ObjectUrl {
    /// The PKCS#11 URL, when this is one.
    pub fn as_pkcs11(&self) -> Option<&Pkcs11Url> {
        match self {
            ObjectUrl::Pkcs11(url) => Some(url),
            ObjectUrl::File(_) => None,
        }
    }

    /// The file path, when this is a `file:` URL.
    pub fn as_file(&self) -> Option<&Path> {
        match self {
            ObjectUrl::Pkcs11(_) => None,
            ObjectUrl::File(path) => Some(path),
        }
    }
}

impl From<Pkcs11Url> for ObjectUrl {
    fn from(url: Pkcs11Url) -> Self {
        ObjectUrl::Pkcs11(url)
    }
}

impl FromStr for ObjectUrl {
    type Err = UrlError;

    /// Parses a `pkcs11:` or `file:` URL (schemes are case-insensitive).
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let (scheme, body, base) = split_scheme(s)?;
        if scheme.eq_ignore_ascii_case("pkcs11") {
            parse_pkcs11_body(body, base).map(ObjectUrl::Pkcs11)
        } else if scheme.eq_ignore_ascii_case("file") {
            parse_file_body(body, base).map(ObjectUrl::File)
        } else {
            Err(UrlError::UnknownScheme(scheme.to_owned()))
        }
    }
}

impl fmt::Display for ObjectUrl {
    /// Formats as a canonical `pkcs11:` URL or as `file:///abs/path` (bytes outside the URL
    /// unreserved set and `/` percent-encoded). A relative path is written as `file:rel/path`,
    /// which does not parse back.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ObjectUrl::Pkcs11(url) => url.fmt(f),
            ObjectUrl::File(path) => {
                let bytes = path_bytes(path);
                if bytes.first() == Some(&b'/') {
                    f.write_str("file://")?;
                } else {
                    f.write_str("file:")?;
                }
                encode(f, &bytes, is_file_out)
            }
        }
    }
}

/// An RFC 7512 PKCS#11 URL.
///
/// Formatting emits the path attributes in the order `token`, `serial`, `object`, `type`, `id`,
/// then [`other`](Self::other), and the query attributes `module-path`, `pin-source`. A URL
/// parsed from text formats back to text that parses to an equal value. Values set by hand must
/// respect the parsing rules to round-trip (e.g. a known `type`, non-empty `module-path`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash)]
pub struct Pkcs11Url {
    /// Token label (path attribute `token`).
    pub token: Option<String>,
    /// Token serial number (path attribute `serial`).
    pub serial: Option<String>,
    /// Object label, `CKA_LABEL` (path attribute `object`).
    pub object: Option<String>,
    /// Object id, `CKA_ID`, as raw bytes (path attribute `id`; always formatted as `%XX` per byte).
    pub id: Option<Vec<u8>>,
    /// Object class (path attribute `type`): `cert`, `private`, `public`, `secret-key` or `data`.
    pub object_type: Option<String>,
    /// PKCS#11 module library (query attribute `module-path`).
    pub module_path: Option<PathBuf>,
    /// Where the user PIN comes from, usually a file path (query attribute `pin-source`).
    pub pin_source: Option<String>,
    /// Further path attributes, decoded, in their original order: `manufacturer`, `model`,
    /// `library-manufacturer`, `library-description`, `library-version`, `slot-description`,
    /// `slot-manufacturer`, `slot-id` and vendor `x-…` attributes. Formatted after `id`.
    pub other: Vec<(String, String)>,
}

impl Pkcs11Url {
    /// An empty URL (`pkcs11:`), every attribute absent.
    pub fn new() -> Self {
        Self::default()
    }

    /// Sets the token label.
    #[must_use]
    pub fn with_token(mut self, token: impl Into<String>) -> Self {
        self.token = Some(token.into());
        self
    }

    /// Sets the token serial number.
    #[must_use]
    pub fn with_serial(mut self, serial: impl Into<String>) -> Self {
        self.serial = Some(serial.into());
        self
    }

    /// Sets the object label.
    #[must_use]
    pub fn with_object(mut self, object: impl Into<String>) -> Self {
        self.object = Some(object.into());
        self
    }

    /// Sets the object id (`CKA_ID`).
    #[must_use]
    pub fn with_id(mut self, id: impl Into<Vec<u8>>) -> Self {
        self.id = Some(id.into());
        self
    }

    /// Sets the object type (`cert`, `private`, `public`, `secret-key` or `data`).
    #[must_use]
    pub fn with_object_type(mut self, object_type: impl Into<String>) -> Self {
        self.object_type = Some(object_type.into());
        self
    }

    /// Sets the PKCS#11 module library path.
    #[must_use]
    pub fn with_module_path(mut self, module_path: impl Into<PathBuf>) -> Self {
        self.module_path = Some(module_path.into());
        self
    }

    /// Sets the PIN source (normally the path of a PIN file).
    #[must_use]
    pub fn with_pin_source(mut self, pin_source: impl Into<String>) -> Self {
        self.pin_source = Some(pin_source.into());
        self
    }

    /// The value of a path attribute kept in [`other`](Self::other), by name.
    pub fn other_value(&self, name: &str) -> Option<&str> {
        self.other
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }
}

impl FromStr for Pkcs11Url {
    type Err = UrlError;

    /// Parses a `pkcs11:` URL (scheme case-insensitive); any other scheme is refused.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let (scheme, body, base) = split_scheme(s)?;
        if scheme.eq_ignore_ascii_case("pkcs11") {
            parse_pkcs11_body(body, base)
        } else {
            Err(UrlError::UnknownScheme(scheme.to_owned()))
        }
    }
}

impl fmt::Display for Pkcs11Url {
    /// Formats the canonical URL, percent-encoding every byte outside `pk11-pchar` (path) or
    /// `pk11-qchar` (query), and every byte of `id`, with uppercase hex digits.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("pkcs11:")?;
        let mut path = AttrWriter::new(f, ';');
        if let Some(token) = &self.token {
            path.attr("token", token.as_bytes(), is_pchar)?;
        }
        if let Some(serial) = &self.serial {
            path.attr("serial", serial.as_bytes(), is_pchar)?;
        }
        if let Some(object) = &self.object {
            path.attr("object", object.as_bytes(), is_pchar)?;
        }
        if let Some(object_type) = &self.object_type {
            path.attr("type", object_type.as_bytes(), is_pchar)?;
        }
        if let Some(id) = &self.id {
            path.attr("id", id, |_| false)?;
        }
        for (name, value) in &self.other {
            path.attr(name, value.as_bytes(), is_pchar)?;
        }

        if self.module_path.is_none() && self.pin_source.is_none() {
            return Ok(());
        }
        f.write_char('?')?;
        let mut query = AttrWriter::new(f, '&');
        if let Some(module_path) = &self.module_path {
            query.attr("module-path", &path_bytes(module_path), is_qchar)?;
        }
        if let Some(pin_source) = &self.pin_source {
            query.attr("pin-source", pin_source.as_bytes(), is_qchar)?;
        }
        Ok(())
    }
}

/// Why a URL was refused. Messages name the attribute and byte offset, never a value.
#[derive(Debug, Clone, thiserror::Error, PartialEq, Eq)]
#[non_exhaustive]
pub enum UrlError {
    /// The text does not start with a URL scheme.
    #[error("not a URL: expected a `pkcs11:` or `file:` URL")]
    MissingScheme,
    /// The scheme is neither `pkcs11` nor `file` (or not `pkcs11` where only that is accepted).
    #[error("unsupported URL scheme `{0}`")]
    UnknownScheme(String),
    /// An attribute is not of the form `name=value` (including empty `;;` or a trailing `?`).
    #[error("malformed PKCS#11 URL attribute at byte {offset}: expected `name=value`")]
    MalformedAttribute {
        /// Byte offset of the attribute in the URL.
        offset: usize,
    },
    /// An attribute name holds characters other than ASCII letters, digits, `-` and `_`.
    #[error("invalid PKCS#11 URL attribute name at byte {offset}")]
    InvalidAttributeName {
        /// Byte offset of the attribute in the URL.
        offset: usize,
    },
    /// An unknown path attribute that is not a vendor `x-` one (RFC 7512: it could never match).
    #[error("unknown PKCS#11 URL path attribute `{0}`")]
    UnknownAttribute(String),
    /// An unknown query attribute that is not a vendor `x-` one.
    #[error("unknown PKCS#11 URL query attribute `{0}`")]
    UnknownQueryAttribute(String),
    /// A standard attribute this implementation does not support (`module-name`).
    #[error("PKCS#11 URL attribute `{0}` is not supported; give the module with `module-path`")]
    UnsupportedAttribute(String),
    /// An attribute appears more than once.
    #[error("PKCS#11 URL attribute `{0}` appears more than once")]
    DuplicateAttribute(String),
    /// A `%` is not followed by two hexadecimal digits.
    #[error(
        "bad percent-encoding in `{attr}` at byte {offset}: `%` must be followed by two hex digits"
    )]
    BadPercentEncoding {
        /// The attribute (`path` for a `file:` URL).
        attr: String,
        /// Byte offset of the `%` in the URL.
        offset: usize,
    },
    /// A character that must be percent-encoded appears literally.
    #[error("invalid character in `{attr}` at byte {offset}: it must be percent-encoded")]
    InvalidCharacter {
        /// The attribute (`path` for a `file:` URL).
        attr: String,
        /// Byte offset of the character in the URL.
        offset: usize,
    },
    /// A text attribute does not decode to UTF-8.
    #[error("PKCS#11 URL attribute `{attr}` is not valid UTF-8 once percent-decoded")]
    InvalidUtf8 {
        /// The attribute.
        attr: String,
    },
    /// An attribute that needs a value has an empty one.
    #[error("PKCS#11 URL attribute `{0}` must not be empty")]
    EmptyValue(String),
    /// A value is outside what the attribute allows.
    #[error("invalid value for `{attr}`: {reason}")]
    InvalidValue {
        /// The attribute (`path` for a `file:` URL).
        attr: String,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// The URL carries a `pin-value`; secrets must not sit in URLs, which get logged.
    #[error("PINs must not be embedded in URLs; use pin-source")]
    PinValueNotAllowed,
    /// A `file:` URL with a relative (or no) path.
    #[error("file URL must hold an absolute path (file:///abs/path)")]
    RelativeFilePath,
    /// A `file:` URL naming a host other than `localhost`.
    #[error("file URL host `{0}` is not local")]
    NonLocalFileHost(String),
}

// ---------------------------------------------------------------------------------------------
// Character classes (RFC 7512 section 2.3).

fn is_unreserved(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~')
}

fn is_res_avail(b: u8) -> bool {
    matches!(
        b,
        b':' | b'[' | b']' | b'@' | b'!' | b'$' | b'\'' | b'(' | b')' | b'*' | b'+' | b',' | b'='
    )
}

/// `pk11-pchar` without `pct-encoded`.
fn is_pchar(b: u8) -> bool {
    is_unreserved(b) || is_res_avail(b) || b == b'&'
}

/// `pk11-qchar` without `pct-encoded`.
fn is_qchar(b: u8) -> bool {
    is_unreserved(b) || is_res_avail(b) || matches!(b, b'/' | b'?' | b'|')
}

/// Characters accepted literally in a `file:` URL path (RFC 3986 `pchar` and `/`).
fn is_file_in(b: u8) -> bool {
    is_unreserved(b)
        || matches!(
            b,
            b'!' | b'$'
                | b'&'
                | b'\''
                | b'('
                | b')'
                | b'*'
                | b'+'
                | b','
                | b';'
                | b'='
                | b':'
                | b'@'
                | b'/'
        )
}

/// Characters written literally in a `file:` URL path.
fn is_file_out(b: u8) -> bool {
    is_unreserved(b) || b == b'/'
}

fn is_name_char(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b'-' || b == b'_'
}

fn is_vendor(name: &str) -> bool {
    name.len() > 2 && name.starts_with("x-")
}

// ---------------------------------------------------------------------------------------------
// Percent-encoding.

fn encode<W: fmt::Write + ?Sized>(out: &mut W, bytes: &[u8], keep: fn(u8) -> bool) -> fmt::Result {
    const HEX: &[u8; 16] = b"0123456789ABCDEF";
    for &b in bytes {
        if keep(b) {
            out.write_char(char::from(b))?;
        } else {
            out.write_char('%')?;
            out.write_char(char::from(HEX[usize::from(b >> 4)]))?;
            out.write_char(char::from(HEX[usize::from(b & 0x0f)]))?;
        }
    }
    Ok(())
}

fn hex_val(c: u8) -> Option<u8> {
    match c {
        b'0'..=b'9' => Some(c - b'0'),
        b'a'..=b'f' => Some(c - b'a' + 10),
        b'A'..=b'F' => Some(c - b'A' + 10),
        _ => None,
    }
}

/// Percent-decodes `raw` (found at byte `offset` of the URL), refusing literal bytes outside
/// `allowed`.
fn decode(
    raw: &str,
    offset: usize,
    attr: &str,
    allowed: fn(u8) -> bool,
) -> Result<Vec<u8>, UrlError> {
    let bytes = raw.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while let Some(&b) = bytes.get(i) {
        if b == b'%' {
            let hi = bytes.get(i + 1).copied().and_then(hex_val);
            let lo = bytes.get(i + 2).copied().and_then(hex_val);
            match (hi, lo) {
                (Some(hi), Some(lo)) => {
                    out.push((hi << 4) | lo);
                    i += 3;
                }
                _ => {
                    return Err(UrlError::BadPercentEncoding {
                        attr: attr.to_owned(),
                        offset: offset + i,
                    })
                }
            }
        } else if allowed(b) {
            out.push(b);
            i += 1;
        } else {
            return Err(UrlError::InvalidCharacter {
                attr: attr.to_owned(),
                offset: offset + i,
            });
        }
    }
    Ok(out)
}

// ---------------------------------------------------------------------------------------------
// Paths as bytes.

#[cfg(unix)]
fn path_bytes(path: &Path) -> Cow<'_, [u8]> {
    use std::os::unix::ffi::OsStrExt;
    Cow::Borrowed(path.as_os_str().as_bytes())
}

#[cfg(not(unix))]
fn path_bytes(path: &Path) -> Cow<'_, [u8]> {
    match path.to_string_lossy() {
        Cow::Borrowed(s) => Cow::Borrowed(s.as_bytes()),
        Cow::Owned(s) => Cow::Owned(s.into_bytes()),
    }
}

/// Turns decoded bytes into a path, refusing NUL bytes (and non-UTF-8 off Unix).
fn bytes_to_path(bytes: Vec<u8>, attr: &str) -> Result<PathBuf, UrlError> {
    if bytes.contains(&0) {
        return Err(UrlError::InvalidValue {
            attr: attr.to_owned(),
            reason: "a path must not contain a NUL byte",
        });
    }
    #[cfg(unix)]
    {
        use std::os::unix::ffi::OsStringExt;
        Ok(PathBuf::from(std::ffi::OsString::from_vec(bytes)))
    }
    #[cfg(not(unix))]
    {
        String::from_utf8(bytes)
            .map(PathBuf::from)
            .map_err(|_| UrlError::InvalidUtf8 {
                attr: attr.to_owned(),
            })
    }
}

// ---------------------------------------------------------------------------------------------
// Parsing.

/// Splits `scheme:rest`; returns the scheme, the rest and the byte offset of the rest.
fn split_scheme(s: &str) -> Result<(&str, &str, usize), UrlError> {
    let colon = s.find(':').ok_or(UrlError::MissingScheme)?;
    let scheme = &s[..colon];
    let mut bytes = scheme.bytes();
    let valid = bytes.next().is_some_and(|b| b.is_ascii_alphabetic())
        && bytes.all(|b| b.is_ascii_alphanumeric() || matches!(b, b'+' | b'-' | b'.'));
    if !valid {
        return Err(UrlError::MissingScheme);
    }
    Ok((scheme, &s[colon + 1..], colon + 1))
}

/// One `name=value` attribute, still percent-encoded.
struct RawAttr<'a> {
    name: &'a str,
    value: &'a str,
    /// Byte offset of `value` in the URL.
    value_offset: usize,
}

impl RawAttr<'_> {
    fn bytes(&self, allowed: fn(u8) -> bool) -> Result<Vec<u8>, UrlError> {
        decode(self.value, self.value_offset, self.name, allowed)
    }

    fn text(&self, allowed: fn(u8) -> bool) -> Result<String, UrlError> {
        String::from_utf8(self.bytes(allowed)?).map_err(|_| UrlError::InvalidUtf8 {
            attr: self.name.to_owned(),
        })
    }

    fn non_empty_text(&self, allowed: fn(u8) -> bool) -> Result<String, UrlError> {
        let text = self.text(allowed)?;
        if text.is_empty() {
            return Err(UrlError::EmptyValue(self.name.to_owned()));
        }
        Ok(text)
    }
}

/// Splits a component (found at byte `base` of the URL) into `name=value` attributes.
fn split_attrs(component: &str, base: usize, sep: char) -> Result<Vec<RawAttr<'_>>, UrlError> {
    let mut attrs = Vec::new();
    let mut offset = base;
    for segment in component.split(sep) {
        let Some(eq) = segment.find('=') else {
            return Err(UrlError::MalformedAttribute { offset });
        };
        let name = &segment[..eq];
        if name.is_empty() {
            return Err(UrlError::MalformedAttribute { offset });
        }
        if !name.bytes().all(is_name_char) {
            return Err(UrlError::InvalidAttributeName { offset });
        }
        attrs.push(RawAttr {
            name,
            value: &segment[eq + 1..],
            value_offset: offset + eq + 1,
        });
        offset += segment.len() + sep.len_utf8();
    }
    Ok(attrs)
}

fn check_duplicate<'a>(seen: &mut Vec<&'a str>, name: &'a str) -> Result<(), UrlError> {
    if seen.contains(&name) {
        return Err(UrlError::DuplicateAttribute(name.to_owned()));
    }
    seen.push(name);
    Ok(())
}

/// Checks the values of the RFC 7512 attributes kept in `other` that have a syntax.
fn check_other_value(name: &str, value: &str) -> Result<(), UrlError> {
    let digits = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
    match name {
        "slot-id" => {
            if value.is_empty() {
                return Err(UrlError::EmptyValue(name.to_owned()));
            }
            if !digits(value) || value.parse::<u64>().is_err() {
                return Err(UrlError::InvalidValue {
                    attr: name.to_owned(),
                    reason: "expected a decimal slot number",
                });
            }
        }
        "library-version" => {
            if value.is_empty() {
                return Err(UrlError::EmptyValue(name.to_owned()));
            }
            let valid = match value.split_once('.') {
                Some((major, minor)) => digits(major) && digits(minor),
                None => digits(value),
            };
            if !valid {
                return Err(UrlError::InvalidValue {
                    attr: name.to_owned(),
                    reason: "expected `major` or `major.minor` in decimal digits",
                });
            }
        }
        _ => {}
    }
    Ok(())
}

/// Parses what follows `pkcs11:` (found at byte `base` of the URL).
fn parse_pkcs11_body(body: &str, base: usize) -> Result<Pkcs11Url, UrlError> {
    let (path, query) = match body.find('?') {
        Some(q) => (&body[..q], Some((&body[q + 1..], base + q + 1))),
        None => (body, None),
    };
    let mut url = Pkcs11Url::new();

    if !path.is_empty() {
        let mut seen = Vec::new();
        for attr in split_attrs(path, base, ';')? {
            let name = attr.name;
            let known = matches!(name, "token" | "serial" | "object" | "id" | "type")
                || OTHER_PATH_ATTRS.contains(&name)
                || is_vendor(name);
            if name == "pin-value" {
                return Err(UrlError::PinValueNotAllowed);
            }
            if !known {
                return Err(UrlError::UnknownAttribute(name.to_owned()));
            }
            check_duplicate(&mut seen, name)?;
            match name {
                "token" => url.token = Some(attr.text(is_pchar)?),
                "serial" => url.serial = Some(attr.text(is_pchar)?),
                "object" => url.object = Some(attr.text(is_pchar)?),
                "id" => url.id = Some(attr.bytes(is_pchar)?),
                "type" => {
                    let object_type = attr.non_empty_text(is_pchar)?;
                    if !OBJECT_TYPES.contains(&object_type.as_str()) {
                        return Err(UrlError::InvalidValue {
                            attr: name.to_owned(),
                            reason: "expected cert, private, public, secret-key or data",
                        });
                    }
                    url.object_type = Some(object_type);
                }
                _ => {
                    let value = attr.text(is_pchar)?;
                    check_other_value(name, &value)?;
                    url.other.push((name.to_owned(), value));
                }
            }
        }
    }

    if let Some((query, query_base)) = query {
        let mut seen = Vec::new();
        for attr in split_attrs(query, query_base, '&')? {
            let name = attr.name;
            match name {
                "pin-value" => return Err(UrlError::PinValueNotAllowed),
                "module-name" => return Err(UrlError::UnsupportedAttribute(name.to_owned())),
                "module-path" | "pin-source" => {}
                // Vendor query attributes are hints to other consumers: ignored.
                _ if is_vendor(name) => continue,
                _ => return Err(UrlError::UnknownQueryAttribute(name.to_owned())),
            }
            check_duplicate(&mut seen, name)?;
            if name == "module-path" {
                let bytes = attr.bytes(is_qchar)?;
                if bytes.is_empty() {
                    return Err(UrlError::EmptyValue(name.to_owned()));
                }
                url.module_path = Some(bytes_to_path(bytes, name)?);
            } else {
                url.pin_source = Some(attr.non_empty_text(is_qchar)?);
            }
        }
    }
    Ok(url)
}

/// Parses what follows `file:` (found at byte `base` of the URL).
fn parse_file_body(body: &str, base: usize) -> Result<PathBuf, UrlError> {
    let (path, path_base) = match body.strip_prefix("//") {
        Some(rest) => {
            let end = rest.find('/').unwrap_or(rest.len());
            let host = &rest[..end];
            if !host.is_empty() && !host.eq_ignore_ascii_case("localhost") {
                return Err(UrlError::NonLocalFileHost(host.to_owned()));
            }
            (&rest[end..], base + 2 + end)
        }
        None => (body, base),
    };
    if !path.starts_with('/') {
        return Err(UrlError::RelativeFilePath);
    }
    let bytes = decode(path, path_base, "path", is_file_in)?;
    bytes_to_path(bytes, "path")
}

// ---------------------------------------------------------------------------------------------
// Formatting helper.

/// Writes `name=value` attributes separated by `sep`.
struct AttrWriter<'a, 'b> {
    f: &'a mut fmt::Formatter<'b>,
    sep: char,
    first: bool,
}

impl<'a, 'b> AttrWriter<'a, 'b> {
    fn new(f: &'a mut fmt::Formatter<'b>, sep: char) -> Self {
        Self {
            f,
            sep,
            first: true,
        }
    }

    fn attr(&mut self, name: &str, value: &[u8], keep: fn(u8) -> bool) -> fmt::Result {
        if !self.first {
            self.f.write_char(self.sep)?;
        }
        self.first = false;
        self.f.write_str(name)?;
        self.f.write_char('=')?;
        encode(self.f, value, keep)
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;

    const AOS_URL: &str = "pkcs11:token=aoscore;object=iam;\
        id=%01%AB%23%45%67%89%AB%CD%EF%00%11%22%33%44%55%66\
        ?module-path=/usr/lib/softhsm/libsofthsm2.so&pin-source=/var/aos/.pin";

    fn parse(s: &str) -> Result<Pkcs11Url, UrlError> {
        s.parse::<Pkcs11Url>()
    }

    fn round_trip(url: &Pkcs11Url) -> Pkcs11Url {
        let text = url.to_string();
        let back = parse(&text).unwrap_or_else(|e| panic!("{text:?} does not parse: {e}"));
        assert_eq!(&back, url, "round trip through {text:?}");
        // The canonical form is a fixed point.
        assert_eq!(back.to_string(), text);
        back
    }

    /// xorshift64 pseudo-random generator (deterministic, no dependencies).
    struct XorShift(u64);

    impl XorShift {
        fn next(&mut self) -> u64 {
            let mut x = self.0;
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            self.0 = x;
            x
        }

        fn below(&mut self, n: u64) -> u64 {
            self.next() % n
        }

        fn bytes(&mut self, max_len: u64) -> Vec<u8> {
            let len = self.below(max_len + 1);
            (0..len).map(|_| self.next().to_le_bytes()[3]).collect()
        }

        fn text(&mut self, max_len: u64) -> String {
            const SPECIAL: &[char] = &[
                ';', '?', '&', '=', '%', '/', ' ', '#', '|', ':', '@', '[', ']', '\'', '"', '\\',
                '+', ',', '~', '\0', '\n', 'é', 'ü', '€', '中', '😀',
            ];
            let len = self.below(max_len + 1);
            (0..len)
                .map(|_| match self.below(3) {
                    0 => SPECIAL[self.below(SPECIAL.len() as u64) as usize],
                    1 => char::from(b' ' + self.below(95) as u8),
                    _ => char::from_u32(self.below(0x11_0000) as u32).unwrap_or('?'),
                })
                .collect()
        }
    }

    #[test]
    fn aoscore_url_round_trips() {
        let url = parse(AOS_URL).unwrap();
        assert_eq!(url.token.as_deref(), Some("aoscore"));
        assert_eq!(url.serial, None);
        assert_eq!(url.object.as_deref(), Some("iam"));
        assert_eq!(
            url.id.as_deref(),
            Some(
                &[
                    0x01, 0xAB, 0x23, 0x45, 0x67, 0x89, 0xAB, 0xCD, 0xEF, 0x00, 0x11, 0x22, 0x33,
                    0x44, 0x55, 0x66
                ][..]
            )
        );
        assert_eq!(url.object_type, None);
        assert_eq!(
            url.module_path.as_deref(),
            Some(Path::new("/usr/lib/softhsm/libsofthsm2.so"))
        );
        assert_eq!(url.pin_source.as_deref(), Some("/var/aos/.pin"));
        assert!(url.other.is_empty());
        assert_eq!(url.to_string(), AOS_URL);
        round_trip(&url);

        let object: ObjectUrl = AOS_URL.parse().unwrap();
        assert_eq!(object.as_pkcs11(), Some(&url));
        assert_eq!(object.as_file(), None);
        assert_eq!(object.to_string(), AOS_URL);
    }

    #[test]
    fn builder_formats_in_canonical_order() {
        let url = Pkcs11Url::new()
            .with_pin_source("/var/aos/.pin")
            .with_module_path("/usr/lib/softhsm/libsofthsm2.so")
            .with_id([0x01, 0xab])
            .with_object_type("private")
            .with_object("iam")
            .with_serial("0a1b")
            .with_token("aoscore");
        assert_eq!(
            url.to_string(),
            "pkcs11:token=aoscore;serial=0a1b;object=iam;type=private;id=%01%AB\
             ?module-path=/usr/lib/softhsm/libsofthsm2.so&pin-source=/var/aos/.pin"
        );
        round_trip(&url);
        assert_eq!(Pkcs11Url::new().to_string(), "pkcs11:");
        assert_eq!(parse("pkcs11:").unwrap(), Pkcs11Url::new());
        assert_eq!(
            Pkcs11Url::new().with_pin_source("/p").to_string(),
            "pkcs11:?pin-source=/p"
        );
    }

    #[test]
    fn id_with_odd_bytes_round_trips() {
        let id = vec![0x00, 0x25, 0xFF, 0x2F, 0x3B];
        let url = Pkcs11Url::new().with_token("t").with_id(id.clone());
        assert_eq!(url.to_string(), "pkcs11:token=t;id=%00%25%FF%2F%3B");
        assert_eq!(round_trip(&url).id, Some(id));
        // Lowercase hex and literal characters are accepted on input.
        assert_eq!(
            parse("pkcs11:id=%ff%2fA").unwrap().id,
            Some(vec![0xFF, 0x2F, b'A'])
        );
        // An empty id is a valid (empty) CKA_ID.
        assert_eq!(parse("pkcs11:id=").unwrap().id, Some(Vec::new()));
    }

    #[test]
    fn label_with_special_characters_round_trips() {
        let label = "a;b?c%d/e f&g=h ü€😀";
        let url = Pkcs11Url::new()
            .with_object(label)
            .with_token("tok;en")
            .with_pin_source("file:/x?y&z");
        let text = url.to_string();
        assert_eq!(
            text,
            "pkcs11:token=tok%3Ben;object=a%3Bb%3Fc%25d%2Fe%20f&g=h%20%C3%BC%E2%82%AC%F0%9F%98%80\
             ?pin-source=file:/x?y%26z"
        );
        assert_eq!(round_trip(&url).object.as_deref(), Some(label));
    }

    #[test]
    fn random_ids_and_labels_round_trip() {
        let mut rng = XorShift(0x9E37_79B9_7F4A_7C15);
        for _ in 0..3000 {
            let mut url = Pkcs11Url::new()
                .with_id(rng.bytes(40))
                .with_object(rng.text(24));
            if rng.below(2) == 0 {
                url.token = Some(rng.text(12));
            }
            if rng.below(2) == 0 {
                let mut pin_source = rng.text(16);
                pin_source.insert(0, '/');
                url.pin_source = Some(pin_source);
            }
            #[cfg(unix)]
            if rng.below(2) == 0 {
                use std::os::unix::ffi::OsStringExt;
                let mut bytes = rng.bytes(30);
                bytes.retain(|&b| b != 0);
                bytes.insert(0, b'/');
                url.module_path = Some(PathBuf::from(std::ffi::OsString::from_vec(bytes)));
            }
            round_trip(&url);
            let object = ObjectUrl::Pkcs11(url.clone());
            assert_eq!(object.to_string().parse::<ObjectUrl>().unwrap(), object);
        }
    }

    #[test]
    fn other_and_vendor_attributes_are_kept_in_order() {
        let text = "pkcs11:x-vendor=a%20b;model=SoftHSM%20v2;token=t;slot-id=3;\
                    library-version=2.6;manufacturer=SoftHSM%20project;id=%01";
        let url = parse(text).unwrap();
        assert_eq!(url.token.as_deref(), Some("t"));
        assert_eq!(url.id, Some(vec![1]));
        assert_eq!(
            url.other,
            vec![
                ("x-vendor".to_owned(), "a b".to_owned()),
                ("model".to_owned(), "SoftHSM v2".to_owned()),
                ("slot-id".to_owned(), "3".to_owned()),
                ("library-version".to_owned(), "2.6".to_owned()),
                ("manufacturer".to_owned(), "SoftHSM project".to_owned()),
            ]
        );
        assert_eq!(url.other_value("slot-id"), Some("3"));
        assert_eq!(url.other_value("serial"), None);
        assert_eq!(
            url.to_string(),
            "pkcs11:token=t;id=%01;x-vendor=a%20b;model=SoftHSM%20v2;slot-id=3;\
             library-version=2.6;manufacturer=SoftHSM%20project"
        );
        round_trip(&url);
        // Vendor query attributes are ignored.
        assert_eq!(
            parse("pkcs11:token=t?x-hint=1&pin-source=/p").unwrap(),
            Pkcs11Url::new().with_token("t").with_pin_source("/p")
        );
    }

    #[test]
    fn scheme_is_case_insensitive_names_are_not() {
        assert_eq!(
            parse("PKCS11:token=t").unwrap(),
            Pkcs11Url::new().with_token("t")
        );
        assert_eq!(
            parse("pkcs11:Token=t"),
            Err(UrlError::UnknownAttribute("Token".into()))
        );
    }

    #[test]
    fn file_urls() {
        for text in [
            "file:///var/aos/ca.pem",
            "file:/var/aos/ca.pem",
            "FILE://localhost/var/aos/ca.pem",
            "file:///var/aos/%63a.pem",
        ] {
            let url: ObjectUrl = text.parse().unwrap();
            assert_eq!(url.as_file(), Some(Path::new("/var/aos/ca.pem")), "{text}");
            assert_eq!(url.to_string(), "file:///var/aos/ca.pem");
        }
        let odd = ObjectUrl::File(PathBuf::from("/tmp/a b/%c;d?é#.pem"));
        let text = odd.to_string();
        assert_eq!(text, "file:///tmp/a%20b/%25c%3Bd%3F%C3%A9%23.pem");
        assert_eq!(text.parse::<ObjectUrl>().unwrap(), odd);
        assert_eq!(
            "file://server/x".parse::<ObjectUrl>(),
            Err(UrlError::NonLocalFileHost("server".into()))
        );
        assert_eq!(
            "file:".parse::<ObjectUrl>(),
            Err(UrlError::RelativeFilePath)
        );
        assert_eq!(
            "file:///a%2".parse::<ObjectUrl>(),
            Err(UrlError::BadPercentEncoding {
                attr: "path".into(),
                offset: 9
            })
        );
        assert!(matches!(
            "file:///a%00b".parse::<ObjectUrl>(),
            Err(UrlError::InvalidValue { ref attr, .. }) if attr == "path"
        ));
        // A relative PathBuf formats to something that is refused, never to a host name.
        let relative = ObjectUrl::File(PathBuf::from("rel/x"));
        assert_eq!(relative.to_string(), "file:rel/x");
        assert_eq!(
            relative.to_string().parse::<ObjectUrl>(),
            Err(UrlError::RelativeFilePath)
        );
    }

    #[test]
    fn required_malformed_inputs_give_typed_errors() {
        assert_eq!(
            parse("pkcs11:id=%G1"),
            Err(UrlError::BadPercentEncoding {
                attr: "id".into(),
                offset: 10
            })
        );
        assert_eq!(
            parse("pkcs11:id=%1"),
            Err(UrlError::BadPercentEncoding {
                attr: "id".into(),
                offset: 10
            })
        );
        assert_eq!(
            parse("pkcs11:token=a;token=b"),
            Err(UrlError::DuplicateAttribute("token".into()))
        );
        assert_eq!(
            "http://x".parse::<ObjectUrl>(),
            Err(UrlError::UnknownScheme("http".into()))
        );
        assert_eq!(
            parse("http://x"),
            Err(UrlError::UnknownScheme("http".into()))
        );
        assert_eq!(
            parse("pkcs11:foo=bar"),
            Err(UrlError::UnknownAttribute("foo".into()))
        );
        assert_eq!(
            parse("pkcs11:object=%FF%FE"),
            Err(UrlError::InvalidUtf8 {
                attr: "object".into()
            })
        );
        assert_eq!(
            "file:relative/path".parse::<ObjectUrl>(),
            Err(UrlError::RelativeFilePath)
        );
    }

    #[test]
    fn pin_value_is_refused_without_echo() {
        for text in [
            "pkcs11:?pin-value=1234",
            "pkcs11:token=t?module-path=/m&pin-value=1234",
            "pkcs11:pin-value=1234",
            "pkcs11:?pin-value=1234&pin-value=1234",
            "pkcs11:?pin-value=12%G34",
        ] {
            let err = parse(text).unwrap_err();
            assert_eq!(err, UrlError::PinValueNotAllowed, "{text}");
            let message = err.to_string();
            assert!(!message.contains("1234"), "{message}");
            assert!(message.contains("pin-source"), "{message}");
            assert!(!format!("{err:?}").contains("1234"));
            let err = text.parse::<ObjectUrl>().unwrap_err();
            assert!(!err.to_string().contains("1234"));
        }
    }

    #[test]
    fn other_malformed_inputs_give_typed_errors() {
        let cases: &[(&str, UrlError)] = &[
            ("/etc/x.pem", UrlError::MissingScheme),
            ("no scheme", UrlError::MissingScheme),
            ("pkcs11:file:/x", UrlError::MalformedAttribute { offset: 7 }),
            (
                "file:/x",
                UrlError::UnknownScheme("file".into()), // Pkcs11Url only takes pkcs11:
            ),
            ("pkcs11:token", UrlError::MalformedAttribute { offset: 7 }),
            (
                "pkcs11:token=a;;id=",
                UrlError::MalformedAttribute { offset: 15 },
            ),
            (
                "pkcs11:token=a;",
                UrlError::MalformedAttribute { offset: 15 },
            ),
            (
                "pkcs11:token=a?",
                UrlError::MalformedAttribute { offset: 15 },
            ),
            ("pkcs11:=a", UrlError::MalformedAttribute { offset: 7 }),
            (
                "pkcs11:to%6Ben=a",
                UrlError::InvalidAttributeName { offset: 7 },
            ),
            (
                "pkcs11:object=a b",
                UrlError::InvalidCharacter {
                    attr: "object".into(),
                    offset: 15,
                },
            ),
            (
                "pkcs11:object=a/b",
                UrlError::InvalidCharacter {
                    attr: "object".into(),
                    offset: 15,
                },
            ),
            (
                "pkcs11:object=é",
                UrlError::InvalidCharacter {
                    attr: "object".into(),
                    offset: 14,
                },
            ),
            (
                "pkcs11:?pin-source=/a;b",
                UrlError::InvalidCharacter {
                    attr: "pin-source".into(),
                    offset: 21,
                },
            ),
            (
                "pkcs11:?module-path=/a%zz",
                UrlError::BadPercentEncoding {
                    attr: "module-path".into(),
                    offset: 22,
                },
            ),
            ("pkcs11:type=", UrlError::EmptyValue("type".into())),
            (
                "pkcs11:type=key",
                UrlError::InvalidValue {
                    attr: "type".into(),
                    reason: "expected cert, private, public, secret-key or data",
                },
            ),
            (
                "pkcs11:slot-id=1a",
                UrlError::InvalidValue {
                    attr: "slot-id".into(),
                    reason: "expected a decimal slot number",
                },
            ),
            ("pkcs11:slot-id=", UrlError::EmptyValue("slot-id".into())),
            (
                "pkcs11:library-version=1.",
                UrlError::InvalidValue {
                    attr: "library-version".into(),
                    reason: "expected `major` or `major.minor` in decimal digits",
                },
            ),
            (
                "pkcs11:?module-path=",
                UrlError::EmptyValue("module-path".into()),
            ),
            (
                "pkcs11:?pin-source=",
                UrlError::EmptyValue("pin-source".into()),
            ),
            (
                "pkcs11:?module-path=/a&module-path=/b",
                UrlError::DuplicateAttribute("module-path".into()),
            ),
            (
                "pkcs11:x-a=1;x-a=2",
                UrlError::DuplicateAttribute("x-a".into()),
            ),
            (
                "pkcs11:?module-name=softhsm2",
                UrlError::UnsupportedAttribute("module-name".into()),
            ),
            (
                "pkcs11:?pin-sourse=/p",
                UrlError::UnknownQueryAttribute("pin-sourse".into()),
            ),
            (
                "pkcs11:module-path=/m",
                UrlError::UnknownAttribute("module-path".into()),
            ),
            ("pkcs11:x-=1", UrlError::UnknownAttribute("x-".into())),
            (
                "pkcs11:token=a#frag",
                UrlError::InvalidCharacter {
                    attr: "token".into(),
                    offset: 14,
                },
            ),
        ];
        for (text, expected) in cases {
            assert_eq!(parse(text).as_ref(), Err(expected), "{text}");
        }
        #[cfg(unix)]
        assert!(matches!(
            parse("pkcs11:?module-path=/a%00"),
            Err(UrlError::InvalidValue { ref attr, .. }) if attr == "module-path"
        ));
    }

    #[test]
    fn messages_name_the_attribute_not_the_value() {
        let cases = [
            ("pkcs11:id=%G1", "`id`"),
            ("pkcs11:token=s3kr1t1;token=s3kr1t2", "`token`"),
            ("pkcs11:foo=s3kr1t", "`foo`"),
            ("pkcs11:object=%FFs3kr1t", "`object`"),
            ("pkcs11:object=s3kr1t%", "`object`"),
            ("pkcs11:type=s3kr1t", "`type`"),
            ("pkcs11:?pin-source=", "`pin-source`"),
            ("pkcs11:?pin-source=/s3kr1t;", "`pin-source`"),
        ];
        for (text, attr) in cases {
            let message = parse(text).unwrap_err().to_string();
            assert!(message.contains(attr), "{message}");
            assert!(!message.contains("s3kr1t"), "{message}");
        }
    }

    #[test]
    fn error_is_send_sync_static() {
        fn check<E: std::error::Error + Send + Sync + 'static>() {}
        check::<UrlError>();
    }
}
