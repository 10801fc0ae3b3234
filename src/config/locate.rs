//! Maps between TOML key paths and source lines, so every configuration
//! error names its file, line and key.

use std::fmt;

use toml_edit::{Document, Item, Table, Value};

/// One step of a key path: a table key or an array index.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Seg {
    Key(String),
    Index(usize),
}

/// A dotted key path such as `profiles.internal.listen[1].address`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct KeyPath(pub Vec<Seg>);

impl KeyPath {
    pub fn key(mut self, k: &str) -> Self {
        self.0.push(Seg::Key(k.to_string()));
        self
    }
    pub fn index(mut self, i: usize) -> Self {
        self.0.push(Seg::Index(i));
        self
    }
}

impl fmt::Display for KeyPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (n, seg) in self.0.iter().enumerate() {
            match seg {
                Seg::Key(k) if n == 0 => write!(f, "{k}")?,
                Seg::Key(k) => write!(f, ".{k}")?,
                Seg::Index(i) => write!(f, "[{i}]")?,
            }
        }
        Ok(())
    }
}

/// 1-based line of a byte offset.
pub fn line_of_offset(text: &str, offset: usize) -> usize {
    text.as_bytes()[..offset.min(text.len())]
        .iter()
        .filter(|&&b| b == b'\n')
        .count()
        + 1
}

/// The line where `path` is written: its deepest part that exists in the file.
pub fn line_of(text: &str, path: &KeyPath) -> usize {
    let Ok(doc) = Document::parse(text) else {
        return 1;
    };
    let mut best = 1;
    let mut node = Node::Table(doc.as_table());
    for seg in &path.0 {
        let (next, span) = match (node, seg) {
            (Node::Table(t), Seg::Key(k)) => match t.get_key_value(k) {
                Some((key, item)) => (Node::from_item(item), key.span()),
                None => break,
            },
            (Node::Inline(t), Seg::Key(k)) => match t.get_key_value(k) {
                Some((key, item)) => (Node::from_item(item), key.span()),
                None => break,
            },
            (Node::Array(a), Seg::Index(i)) => match a.get(*i) {
                Some(v) => (Node::from_value(v), v.span()),
                None => break,
            },
            (Node::Tables(a), Seg::Index(i)) => match a.get(*i) {
                Some(t) => (Node::Table(t), t.span()),
                None => break,
            },
            _ => break,
        };
        if let Some(span) = span {
            best = line_of_offset(text, span.start);
        }
        node = next;
    }
    best
}

/// The key path of the deepest key whose entry covers `offset` (for parse errors).
pub fn key_at(text: &str, offset: usize) -> KeyPath {
    let Ok(doc) = Document::parse(text) else {
        return KeyPath::default();
    };
    let mut path = KeyPath::default();
    let mut node = Node::Table(doc.as_table());
    'descend: loop {
        match node {
            Node::Table(t) => {
                for (k, item) in t.iter() {
                    let key_span = t.key(k).and_then(|k| k.span());
                    if covers(key_span, offset) || item_covers(item, offset) {
                        path = path.key(k);
                        node = Node::from_item(item);
                        continue 'descend;
                    }
                }
            }
            Node::Inline(t) => {
                for (k, v) in t.iter() {
                    let key_span = t.key(k).and_then(|k| k.span());
                    if covers(key_span, offset) || covers(v.span(), offset) {
                        path = path.key(k);
                        node = Node::from_value(v);
                        continue 'descend;
                    }
                }
            }
            Node::Array(a) => {
                for (i, v) in a.iter().enumerate() {
                    if covers(v.span(), offset) {
                        path = path.index(i);
                        node = Node::from_value(v);
                        continue 'descend;
                    }
                }
            }
            Node::Tables(a) => {
                for (i, t) in a.iter().enumerate() {
                    if table_covers(t, offset) {
                        path = path.index(i);
                        node = Node::Table(t);
                        continue 'descend;
                    }
                }
            }
            Node::Leaf => {}
        }
        return path;
    }
}

fn covers(span: Option<std::ops::Range<usize>>, offset: usize) -> bool {
    span.is_some_and(|s| s.start <= offset && offset <= s.end)
}

/// Whether an item, or (for `[table]` headers, which have no span over their
/// body) any of its entries, covers `offset`.
fn item_covers(item: &Item, offset: usize) -> bool {
    match item {
        Item::Table(t) => table_covers(t, offset),
        Item::ArrayOfTables(a) => a.iter().any(|t| table_covers(t, offset)),
        _ => covers(item.span(), offset),
    }
}

fn table_covers(t: &Table, offset: usize) -> bool {
    t.iter()
        .any(|(k, i)| covers(t.key(k).and_then(|k| k.span()), offset) || item_covers(i, offset))
}

#[derive(Clone, Copy)]
enum Node<'a> {
    Table(&'a Table),
    Inline(&'a toml_edit::InlineTable),
    Array(&'a toml_edit::Array),
    Tables(&'a toml_edit::ArrayOfTables),
    Leaf,
}

impl<'a> Node<'a> {
    fn from_item(item: &'a Item) -> Self {
        match item {
            Item::Table(t) => Node::Table(t),
            Item::ArrayOfTables(a) => Node::Tables(a),
            Item::Value(v) => Node::from_value(v),
            Item::None => Node::Leaf,
        }
    }
    fn from_value(v: &'a Value) -> Self {
        match v {
            Value::InlineTable(t) => Node::Inline(t),
            Value::Array(a) => Node::Array(a),
            _ => Node::Leaf,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const TEXT: &str = "[profiles.internal]\nrealm = \"x\"\nlisten = [\n  { transport = \"udp\", address = \"127.0.0.1:5060\" },\n  { transport = \"tcp\", address = \"bad\" },\n]\n[[profiles.internal.users]]\nusername = \"1001\"\n";

    #[test]
    fn lines_of_key_paths() {
        let p = KeyPath::default().key("profiles").key("internal");
        assert_eq!(line_of(TEXT, &p.clone().key("realm")), 2);
        assert_eq!(
            line_of(TEXT, &p.clone().key("listen").index(1).key("address")),
            5
        );
        assert_eq!(
            line_of(TEXT, &p.clone().key("users").index(0).key("username")),
            8
        );
        assert_eq!(
            p.key("listen").index(1).key("address").to_string(),
            "profiles.internal.listen[1].address"
        );
    }

    #[test]
    fn key_at_an_offset() {
        let offset = TEXT.find("bad").unwrap();
        assert_eq!(
            key_at(TEXT, offset).to_string(),
            "profiles.internal.listen[1].address"
        );
        let offset = TEXT.find("\"1001\"").unwrap();
        assert_eq!(
            key_at(TEXT, offset).to_string(),
            "profiles.internal.users[0].username"
        );
    }
}
