//! The cluster file: which trackers are members, by id and cluster address.
//!
//! It owns parsing and checking that file (pure: it is handed the text, it never opens a
//! socket) and the cluster's fingerprint, which a state folder records so that a folder
//! written for another cluster is refused. One member a line:
//!
//! ```text
//! # id  cluster address (the port trackers talk Raft on, not the port peers use)
//! 1 127.0.0.1:9101
//! 2 127.0.0.1:9102
//! 3 127.0.0.1:9103
//! ```

use std::collections::BTreeMap;

use crate::raft::NodeId;
use crate::sha1::Sha1;

/// Most members a cluster may list (Raft works with more; a course never needs them).
pub const MAX_MEMBERS: usize = 15;

/// The members of a cluster, by id.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ClusterConfig {
    /// Id to cluster address (`host:port`), sorted by id.
    pub members: BTreeMap<NodeId, String>,
}

impl ClusterConfig {
    /// Parse a cluster file's text; `file` names it in errors (`cluster.txt line 3: ...`).
    pub fn parse(text: &str, file: &str) -> Result<ClusterConfig, String> {
        let mut members = BTreeMap::new();
        let mut first_line: BTreeMap<NodeId, usize> = BTreeMap::new();
        for (n, raw) in text.lines().enumerate() {
            let n = n + 1;
            let line = raw.split('#').next().unwrap_or("").trim();
            if line.is_empty() {
                continue;
            }
            let at = |why: String| format!("{file} line {n}: {why}");
            let words: Vec<&str> = line.split_whitespace().collect();
            let [id, addr] = words[..] else {
                return Err(at(format!(
                    "{line:?} is not `<id> <host:port>` (e.g. `1 127.0.0.1:9101`)"
                )));
            };
            let id: NodeId = match id.parse() {
                Ok(id) if id > 0 => id,
                _ => {
                    return Err(at(format!(
                        "the id {id:?} must be a whole number from 1 up"
                    )));
                }
            };
            check_addr(addr).map_err(at)?;
            if let Some(first) = first_line.get(&id) {
                return Err(at(format!(
                    "duplicate id {id} (line {first} has it already)"
                )));
            }
            if let Some((other, _)) = members.iter().find(|(_, a)| *a == addr) {
                return Err(at(format!("{addr} is already member {other}'s address")));
            }
            first_line.insert(id, n);
            members.insert(id, addr.to_string());
        }
        if members.is_empty() {
            return Err(format!(
                "{file} lists no member: write one `<id> <host:port>` line per tracker"
            ));
        }
        if members.len() > MAX_MEMBERS {
            return Err(format!(
                "{file} lists {} members; at most {MAX_MEMBERS}",
                members.len()
            ));
        }
        Ok(ClusterConfig { members })
    }

    /// Check that `id` is a member; the error says which ids are.
    pub fn check_member(&self, id: NodeId, file: &str) -> Result<(), String> {
        if self.members.contains_key(&id) {
            return Ok(());
        }
        let ids: Vec<String> = self.members.keys().map(|k| k.to_string()).collect();
        Err(format!(
            "--id {id} is not in {file} (its members are {})",
            ids.join(", ")
        ))
    }

    /// The other members' ids.
    pub fn peers_of(&self, id: NodeId) -> Vec<NodeId> {
        self.members.keys().copied().filter(|&k| k != id).collect()
    }

    /// A short digest of the member list (ids and addresses, in id order): two trackers agree
    /// on the cluster only if their fingerprints match.
    pub fn fingerprint(&self) -> String {
        let mut h = Sha1::new();
        for (id, addr) in &self.members {
            h.update(format!("{id} {addr}\n").as_bytes());
        }
        h.digest().to_string()[..16].to_string()
    }

    /// How many members make a majority.
    pub fn quorum(&self) -> usize {
        self.members.len() / 2 + 1
    }
}

fn check_addr(addr: &str) -> Result<(), String> {
    let ok = addr
        .rsplit_once(':')
        .is_some_and(|(host, port)| !host.is_empty() && port.parse::<u16>().is_ok_and(|p| p > 0));
    if ok {
        Ok(())
    } else {
        Err(format!("{addr:?} is not host:port (e.g. 127.0.0.1:9101)"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn members_comments_and_blank_lines() {
        let text =
            "# three trackers\n1 127.0.0.1:9101\n\n2 127.0.0.1:9102  # second\n3 127.0.0.1:9103\n";
        let c = ClusterConfig::parse(text, "c.txt").unwrap();
        assert_eq!(c.members.len(), 3);
        assert_eq!(c.members[&2], "127.0.0.1:9102");
        assert_eq!(c.peers_of(2), vec![1, 3]);
        assert_eq!(c.quorum(), 2);
        assert!(c.check_member(3, "c.txt").is_ok());
        assert_eq!(
            c.check_member(4, "c.txt").unwrap_err(),
            "--id 4 is not in c.txt (its members are 1, 2, 3)"
        );
    }

    #[test]
    fn bad_lines_are_named() {
        let cases = [
            (
                "1 127.0.0.1:9101\n127.0.0.1:9102\n",
                "c line 2: \"127.0.0.1:9102\" is not `<id> <host:port>` (e.g. `1 127.0.0.1:9101`)",
            ),
            (
                "x 127.0.0.1:9101\n",
                "c line 1: the id \"x\" must be a whole number from 1 up",
            ),
            (
                "0 127.0.0.1:9101\n",
                "c line 1: the id \"0\" must be a whole number from 1 up",
            ),
            (
                "1 127.0.0.1:9101\n#\n1 127.0.0.1:9102\n",
                "c line 3: duplicate id 1 (line 1 has it already)",
            ),
            (
                "1 127.0.0.1:9101\n2 127.0.0.1:9101\n",
                "c line 2: 127.0.0.1:9101 is already member 1's address",
            ),
            (
                "1 localhost\n",
                "c line 1: \"localhost\" is not host:port (e.g. 127.0.0.1:9101)",
            ),
            (
                "# nothing\n",
                "c lists no member: write one `<id> <host:port>` line per tracker",
            ),
        ];
        for (text, want) in cases {
            assert_eq!(ClusterConfig::parse(text, "c").unwrap_err(), want);
        }
    }

    #[test]
    fn fingerprint_depends_on_members_not_layout() {
        let a = ClusterConfig::parse("1 h:1\n2 h:2\n", "a").unwrap();
        let b = ClusterConfig::parse("# same\n2 h:2\n1 h:1\n", "b").unwrap();
        let c = ClusterConfig::parse("1 h:1\n2 h:3\n", "c").unwrap();
        assert_eq!(a.fingerprint(), b.fingerprint());
        assert_ne!(a.fingerprint(), c.fingerprint());
        assert_eq!(a.fingerprint().len(), 16);
    }
}
