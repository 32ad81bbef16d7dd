//! The registry's index of known files: each name's entry (what the file is, who holds it)
//! found by hash, and the same names kept sorted for `LIST`'s pages.
//!
//! It owns the two indexes and keeps them in step (a name is in both or in neither); it must
//! never decide who may hold what (that is `registry.rs`) nor count anyone's quota
//! (`limits.rs`). Pure data: no sockets, no clocks.

use std::collections::{BTreeSet, HashMap};
use std::ops::Bound;

use super::inline_str::InlineStr;
use crate::protocol::Meta;
use crate::tracker::holders::Holders;

#[derive(Debug)]
pub(super) struct FileEntry {
    pub(super) meta: Meta,
    /// Who holds it, completely or while downloading it (`holders.rs`: a reply's window).
    pub(super) holders: Holders,
}

/// The known files: found by name in a hash map (a `WHOHAS` is one hash and a few memory
/// reads while the registry's lock is held, where a sorted map of 100,000 names cost about
/// 17 string comparisons, most of them cache misses), and the same names kept sorted beside
/// it for `LIST`'s pages. Both share a long name's one allocation.
///
/// A table of 100,000 files is far larger than the CPU's caches, so what a `WHOHAS` costs is
/// the memory it reads one after the other: the table's control bytes, then the file's slot.
/// Everything it needs is in that slot: a short name (`InlineStr`) and a lone holder
/// (`holders/ids.rs`) are kept inside it, where an `Arc<str>` name and a `Vec` of holders
/// each sent it to one more place in memory.
#[derive(Debug, Default)]
pub(super) struct Files {
    by_name: HashMap<InlineStr, FileEntry>,
    pub(super) sorted: BTreeSet<InlineStr>,
}

impl Files {
    pub(super) fn get(&self, name: &str) -> Option<&FileEntry> {
        self.by_name.get(name)
    }

    pub(super) fn get_mut(&mut self, name: &str) -> Option<&mut FileEntry> {
        self.by_name.get_mut(name)
    }

    /// The entry of `meta.name`, made for `meta` if there is none.
    pub(super) fn get_or_insert(&mut self, meta: &Meta) -> &mut FileEntry {
        // The map's own key when the name is known (for a long name, an `Arc` clone).
        let name = match self.by_name.get_key_value(meta.name.as_str()) {
            Some((name, _)) => name.clone(),
            None => {
                let name = InlineStr::from(meta.name.as_str());
                self.sorted.insert(name.clone());
                name
            }
        };
        self.by_name.entry(name).or_insert_with(|| FileEntry {
            meta: meta.clone(),
            holders: Holders::new(),
        })
    }

    pub(super) fn remove(&mut self, name: &str) {
        self.by_name.remove(name);
        self.sorted.remove(name);
    }

    pub(super) fn len(&self) -> usize {
        self.by_name.len()
    }

    /// The entries of the first `limit` names after `from`, in order.
    pub(super) fn page<'a>(
        &'a self,
        from: Bound<&'a str>,
        limit: usize,
    ) -> impl Iterator<Item = &'a FileEntry> + 'a {
        self.sorted
            .range::<str, _>((from, Bound::Unbounded))
            .filter_map(|name| self.by_name.get(name))
            .take(limit)
    }
}
