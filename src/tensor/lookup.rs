//! Finding tensors by name without a scan per lookup: matching a request's tensors to a model's stays linear
//! however many a request sends.

use std::collections::HashMap;

/// The items of a slice by name: a plain scan for a few items, a hash map past that.
pub struct NameIndex<'a, T> {
    items: &'a [T],
    map: Option<HashMap<&'a str, &'a T>>,
    name: fn(&T) -> &str,
}

/// Up to this many items a scan is as fast as hashing the name.
const SCAN_UP_TO: usize = 8;

impl<'a, T> NameIndex<'a, T> {
    /// Indexes `items` by `name` (the first of a repeated name wins, as a scan would find it).
    pub fn new(items: &'a [T], name: fn(&T) -> &str) -> NameIndex<'a, T> {
        let map = (items.len() > SCAN_UP_TO).then(|| {
            let mut map = HashMap::with_capacity(items.len());
            for item in items {
                map.entry(name(item)).or_insert(item);
            }
            map
        });
        NameIndex { items, map, name }
    }

    /// The item named `key`.
    pub fn get(&self, key: &str) -> Option<&'a T> {
        match &self.map {
            Some(map) => map.get(key).copied(),
            None => self.items.iter().find(|item| (self.name)(item) == key),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_by_name_small_and_large() {
        for n in [3, 100] {
            let names: Vec<String> = (0..n).map(|i| format!("t{i}")).collect();
            let index = NameIndex::new(&names, |s| s.as_str());
            assert_eq!(index.get("t2").map(String::as_str), Some("t2"));
            assert_eq!(index.get(&format!("t{}", n - 1)), names.last());
            assert!(index.get("nope").is_none());
        }
    }
}
