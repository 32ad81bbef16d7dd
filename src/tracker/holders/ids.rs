//! `Ids`: the holder ids of one file, the first one kept inline.
//!
//! Why: most files have one holder. Kept inline, that holder is read from the same memory
//! the registry's lookup already loaded (the file's slot in the hash table), where a `Vec`
//! would send every `WHOHAS` to one more place in memory, one more cache miss under the lock.
//! A list that grows past one holder becomes an ordinary `Vec`.
//!
//! It owns the storage only: which holder goes where is `Holders`'s business (`holders.rs`).

use crate::tracker::registry::inline_str::InlineStr;

#[derive(Debug, Default)]
pub(super) enum Ids {
    #[default]
    Empty,
    One(InlineStr),
    Many(Vec<InlineStr>),
}

impl Ids {
    pub(super) fn as_slice(&self) -> &[InlineStr] {
        match self {
            Ids::Empty => &[],
            Ids::One(id) => std::slice::from_ref(id),
            Ids::Many(ids) => ids,
        }
    }

    pub(super) fn as_mut_slice(&mut self) -> &mut [InlineStr] {
        match self {
            Ids::Empty => &mut [],
            Ids::One(id) => std::slice::from_mut(id),
            Ids::Many(ids) => ids,
        }
    }

    pub(super) fn len(&self) -> usize {
        self.as_slice().len()
    }

    pub(super) fn push(&mut self, id: InlineStr) {
        *self = match std::mem::take(self) {
            Ids::Empty => Ids::One(id),
            Ids::One(first) => Ids::Many(vec![first, id]),
            Ids::Many(mut ids) => {
                ids.push(id);
                Ids::Many(ids)
            }
        };
    }

    /// Drop the last id; a list back to one holder keeps it inline again.
    pub(super) fn pop(&mut self) {
        *self = match std::mem::take(self) {
            Ids::Empty | Ids::One(_) => Ids::Empty,
            Ids::Many(mut ids) => {
                ids.pop();
                match ids.len() {
                    0 => Ids::Empty,
                    1 => Ids::One(ids.remove(0)),
                    _ => Ids::Many(ids),
                }
            }
        };
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_id_is_inline_more_are_a_vec_and_back() {
        let mut ids = Ids::default();
        let texts =
            |ids: &Ids| -> Vec<String> { ids.as_slice().iter().map(|i| i.to_string()).collect() };
        ids.push("a:1".into());
        assert!(matches!(ids, Ids::One(_)));
        ids.push("b:1".into());
        ids.push("c:1".into());
        assert!(matches!(ids, Ids::Many(_)));
        ids.as_mut_slice().swap(0, 2);
        assert_eq!(texts(&ids), ["c:1", "b:1", "a:1"]);
        ids.pop();
        ids.pop();
        assert!(matches!(ids, Ids::One(_)), "back inline: {ids:?}");
        assert_eq!((texts(&ids), ids.len()), (vec!["c:1".to_string()], 1));
        ids.pop();
        assert!(matches!(ids, Ids::Empty));
        ids.pop();
        assert_eq!(ids.len(), 0);
    }
}
