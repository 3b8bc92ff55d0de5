//! Maps key paths to positions in the TOML source and back, using the spans `toml_edit` keeps.

use std::ops::Range;

use toml_edit::{ImDocument, Item, Table, Value};

use crate::key_path::KeyPath;

/// Every key, table and array element of a document with its position.
pub(crate) struct SourceMap<'a> {
    text: &'a str,
    entries: Vec<Entry>,
}

struct Entry {
    path: KeyPath,
    /// Where an error about this path points: a table's header, else the key, else the value.
    anchor: Option<usize>,
    /// Spans covered by this entry (key, value or table), for finding the path of an error position.
    ranges: Vec<Range<usize>>,
}

// === impl SourceMap ===

impl<'a> SourceMap<'a> {
    /// Indexes `text`. A text that is not TOML yields an empty map (errors then carry no key).
    pub(crate) fn new(text: &'a str) -> Self {
        let mut entries = Vec::new();
        if let Ok(doc) = ImDocument::parse(text) {
            walk_table(doc.as_table(), &KeyPath::root(), &mut entries);
        }
        Self { text, entries }
    }

    /// 1-based line and column (in characters) of a byte offset.
    pub(crate) fn line_col(&self, offset: usize) -> (usize, usize) {
        let mut offset = offset.min(self.text.len());
        while !self.text.is_char_boundary(offset) {
            offset -= 1;
        }
        let before = &self.text[..offset];
        let line = before.matches('\n').count() + 1;
        let line_start = before.rfind('\n').map_or(0, |i| i + 1);
        (line, before[line_start..].chars().count() + 1)
    }

    /// Offset of `path` itself, if it is in the document.
    pub(crate) fn offset_of(&self, path: &KeyPath) -> Option<usize> {
        self.entries
            .iter()
            .find(|e| &e.path == path)
            .and_then(|e| e.anchor)
    }

    /// Offset to report for an error about `candidates[0]`: the first candidate present in the document, else
    /// the closest enclosing table of the first candidate that is present, else the start of the file.
    pub(crate) fn locate(&self, candidates: &[KeyPath]) -> usize {
        if let Some(offset) = candidates.iter().find_map(|p| self.offset_of(p)) {
            return offset;
        }
        let mut path = candidates.first().cloned().unwrap_or_default();
        while !path.is_root() {
            path = path.parent();
            if let Some(offset) = self.offset_of(&path) {
                return offset;
            }
        }
        0
    }

    /// The most specific path whose key, value or table covers `offset`.
    pub(crate) fn path_at(&self, offset: usize) -> Option<&KeyPath> {
        self.entries
            .iter()
            .flat_map(|e| e.ranges.iter().map(move |r| (e, r)))
            .filter(|(_, r)| r.start <= offset && offset < r.end.max(r.start + 1))
            // Smallest range wins; on a tie the deeper path (indexed later) wins.
            .min_by_key(|(e, r)| (r.len(), std::cmp::Reverse(e.path.depth())))
            .map(|(e, _)| &e.path)
    }
}

fn push(
    entries: &mut Vec<Entry>,
    path: &KeyPath,
    anchor: Option<Range<usize>>,
    ranges: &[Option<Range<usize>>],
) {
    entries.push(Entry {
        path: path.clone(),
        anchor: anchor.map(|r| r.start),
        ranges: ranges.iter().flatten().cloned().collect(),
    });
}

fn walk_table(table: &Table, path: &KeyPath, entries: &mut Vec<Entry>) {
    for (name, item) in table.iter() {
        let key_span = table.key(name).and_then(|k| k.span());
        walk_item(item, key_span, &path.key(name), entries);
    }
}

fn walk_item(
    item: &Item,
    key_span: Option<Range<usize>>,
    path: &KeyPath,
    entries: &mut Vec<Entry>,
) {
    match item {
        Item::None => {}
        Item::Value(value) => {
            push(
                entries,
                path,
                key_span.clone().or_else(|| value.span()),
                &[key_span, value.span()],
            );
            walk_value(value, path, entries);
        }
        Item::Table(table) => {
            push(
                entries,
                path,
                table.span().or_else(|| key_span.clone()),
                &[key_span, table.span()],
            );
            walk_table(table, path, entries);
        }
        Item::ArrayOfTables(array) => {
            let first = array.iter().next().and_then(Table::span);
            push(
                entries,
                path,
                first.or_else(|| key_span.clone()),
                &[key_span, array.span()],
            );
            for (i, table) in array.iter().enumerate() {
                let element = path.index(i);
                push(entries, &element, table.span(), &[table.span()]);
                walk_table(table, &element, entries);
            }
        }
    }
}

fn walk_value(value: &Value, path: &KeyPath, entries: &mut Vec<Entry>) {
    match value {
        Value::Array(array) => {
            for (i, element) in array.iter().enumerate() {
                let element_path = path.index(i);
                push(entries, &element_path, element.span(), &[element.span()]);
                walk_value(element, &element_path, entries);
            }
        }
        Value::InlineTable(table) => {
            for (name, inner) in table.iter() {
                let key_span = table.key(name).and_then(|k| k.span());
                let inner_path = path.key(name);
                push(
                    entries,
                    &inner_path,
                    key_span.clone().or_else(|| inner.span()),
                    &[key_span, inner.span()],
                );
                walk_value(inner, &inner_path, entries);
            }
        }
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const DOC: &str = "\
a = 1
[node]
id = \"n1\"

[[cert_modules]]
id = \"iam\"
eku = [\"x\", \"y\"]

[cert_modules.pkcs11]
library = \"/lib.so\"

[[cert_modules]]
id = \"sm\"
pkcs11 = { library = \"/lib.so\", slot_id = 3 }
";

    fn line_of(map: &SourceMap<'_>, path: &KeyPath) -> Option<usize> {
        map.offset_of(path).map(|o| map.line_col(o).0)
    }

    #[test]
    fn finds_keys_tables_and_elements() {
        let map = SourceMap::new(DOC);
        let modules = KeyPath::root().key("cert_modules");
        assert_eq!(line_of(&map, &KeyPath::root().key("a")), Some(1));
        assert_eq!(line_of(&map, &KeyPath::root().key("node")), Some(2));
        assert_eq!(
            line_of(&map, &KeyPath::root().key("node").key("id")),
            Some(3)
        );
        assert_eq!(line_of(&map, &modules.index(0)), Some(5));
        assert_eq!(
            line_of(&map, &modules.index(0).key("eku").index(1)),
            Some(7)
        );
        assert_eq!(line_of(&map, &modules.index(0).key("pkcs11")), Some(9));
        assert_eq!(
            line_of(&map, &modules.index(0).key("pkcs11").key("library")),
            Some(10)
        );
        assert_eq!(line_of(&map, &modules.index(1)), Some(12));
        assert_eq!(
            line_of(&map, &modules.index(1).key("pkcs11").key("slot_id")),
            Some(14)
        );
    }

    #[test]
    fn header_points_at_column_one() {
        let map = SourceMap::new(DOC);
        let offset = map.offset_of(&KeyPath::root().key("cert_modules").index(0).key("pkcs11"));
        assert_eq!(offset.map(|o| map.line_col(o)), Some((9, 1)));
    }

    #[test]
    fn missing_key_falls_back_to_enclosing_table() {
        let map = SourceMap::new(DOC);
        let missing = KeyPath::root()
            .key("cert_modules")
            .index(1)
            .key("max_items");
        assert_eq!(map.line_col(map.locate(&[missing])).0, 12);
        assert_eq!(map.locate(&[KeyPath::root().key("nothing")]), 0);
    }

    #[test]
    fn path_at_offset() {
        let map = SourceMap::new(DOC);
        let slot = DOC.find("slot_id").unwrap_or_default();
        let path = map.path_at(slot).map(ToString::to_string);
        assert_eq!(path.as_deref(), Some("cert_modules[1].pkcs11.slot_id"));
        let value = DOC.find("\"y\"").unwrap_or_default();
        assert_eq!(
            map.path_at(value).map(ToString::to_string).as_deref(),
            Some("cert_modules[0].eku[1]")
        );
    }

    #[test]
    fn columns_count_characters() {
        let map = SourceMap::new("k = \"äö\"\nx");
        assert_eq!(map.line_col(9), (1, 8));
        assert_eq!(map.line_col(11), (2, 1));
    }
}
