//! Raft's safety properties, checked online after every event (§5.4, Figure 3):
//!
//! * **election safety**: at most one leader per term;
//! * **log matching**: two logs with an entry of the same index and term are
//!   identical up to it (checked with a chain hash over each log's prefix);
//! * **leader completeness**: a new leader holds every committed entry;
//! * **state machine safety**: every node that commits or applies index `i` has
//!   the same entry there, so no committed entry is ever lost or replaced, across
//!   crashes too.

use core::hash::{Hash, Hasher};
use std::collections::BTreeMap;

use crate::id::PeerId;
use crate::log::{Index, Storage, Term};
use crate::machine::Command;
use crate::raft::{LogEntry, Role, Status};

/// A node's log as last seen: per entry, its term and the chain hash of the
/// prefix ending there.
#[derive(Debug, Clone, Default)]
struct Mirror {
    entries: Vec<(Term, u64)>,
}

impl Mirror {
    fn chain_at(&self, index: Index) -> Option<u64> {
        if index.is_zero() {
            return Some(0);
        }
        self.entries
            .get(index.0 as usize - 1)
            .map(|(_, chain)| *chain)
    }
}

/// The checker's memory of everything seen so far.
#[derive(Debug, Default)]
pub(crate) struct Invariants {
    leaders: BTreeMap<Term, PeerId>,
    /// Chain hash of the prefix ending at (index, term), as first seen anywhere.
    chains: BTreeMap<(Index, Term), u64>,
    /// Chain hashes of the committed log.
    committed: Vec<u64>,
    /// For each committed index, the term of the node that first reported it
    /// committed: it was committed in that term or earlier.
    committed_by_term: Vec<Term>,
    mirrors: BTreeMap<PeerId, Mirror>,
}

impl Invariants {
    /// The longest committed index seen on any node.
    pub(crate) fn committed_index(&self) -> Index {
        Index(self.committed.len() as u64)
    }

    /// The leader of each term seen, in term order.
    pub(crate) fn leaders(&self) -> Vec<(Term, PeerId)> {
        self.leaders
            .iter()
            .map(|(term, leader)| (*term, *leader))
            .collect()
    }

    /// Forgets a node's log (it crashed); its storage will be read again.
    pub(crate) fn forget(&mut self, node: PeerId) {
        self.mirrors.remove(&node);
    }

    /// Checks `node` after an event. Returns the violations found.
    pub(crate) fn observe<C: Command + Hash, S: Storage<LogEntry<C>>>(
        &mut self,
        node: PeerId,
        status: &Status,
        became_leader: bool,
        storage: &S,
    ) -> Vec<String> {
        let mut violations = Vec::new();
        if status.role == Role::Leader {
            let leader = *self.leaders.entry(status.term).or_insert(node);
            if leader != node {
                violations.push(format!(
                    "election safety: {leader} and {node} both lead term {}",
                    status.term
                ));
            }
        }
        let mirror = self.mirrors.entry(node).or_default();
        let added_from = sync_mirror(mirror, status, storage);
        // Log matching: the same (index, term) means the same prefix.
        for (position, (term, chain)) in mirror.entries.iter().enumerate().skip(added_from) {
            let index = Index(position as u64 + 1);
            let first = *self.chains.entry((index, *term)).or_insert(*chain);
            if first != *chain {
                violations.push(format!(
                    "log matching: {node}'s entry {index} of term {term} differs from another node's"
                ));
                break;
            }
        }
        // State machine safety: the committed prefix never changes.
        let commit = status.commit_index;
        let known = Index(self.committed.len() as u64);
        let overlap = commit.min(known);
        if !overlap.is_zero()
            && mirror.chain_at(overlap) != Some(self.committed[overlap.0 as usize - 1])
        {
            violations.push(format!(
                "state machine safety: {node} committed a different entry at or before {overlap}"
            ));
        } else if commit > known {
            for index in known.0 + 1..=commit.0 {
                match mirror.chain_at(Index(index)) {
                    Some(chain) => {
                        self.committed.push(chain);
                        self.committed_by_term.push(status.term);
                    }
                    None => {
                        violations.push(format!("{node} commits {index} it does not hold"));
                        break;
                    }
                }
            }
        }
        // Leader completeness (§5.4): a leader of term T holds every entry
        // committed in a term before T. (A node can win an election of an old
        // term late, after a later term committed more; those it need not hold.)
        if became_leader {
            let committed = self
                .committed_by_term
                .iter()
                .rposition(|term| *term < status.term)
                .map_or(Index::ZERO, |position| Index(position as u64 + 1));
            if !committed.is_zero()
                && mirror.chain_at(committed) != Some(self.committed[committed.0 as usize - 1])
            {
                violations.push(format!(
                    "leader completeness: {node} leads term {} without committed entry {committed}",
                    status.term
                ));
            }
        }
        violations
    }

    /// Whether `node`'s log holds the whole committed log, for the end-of-run check.
    pub(crate) fn holds_committed(&self, node: PeerId) -> bool {
        let committed = self.committed_index();
        committed.is_zero()
            || self
                .mirrors
                .get(&node)
                .and_then(|mirror| mirror.chain_at(committed))
                == Some(self.committed[committed.0 as usize - 1])
    }
}

/// Brings `mirror` up to date with the node's log: cut where it diverged (a
/// truncation), then read the entries it lacks. Returns how many entries were
/// kept (the new ones follow).
fn sync_mirror<C: Command + Hash, S: Storage<LogEntry<C>>>(
    mirror: &mut Mirror,
    status: &Status,
    storage: &S,
) -> usize {
    let last = status.last_log;
    let mut keep = mirror.entries.len().min(last.index().0 as usize);
    // The last kept entry must still have the term we saw; walk back until so.
    while keep > 0 {
        let index = Index(keep as u64);
        let term = if index == last.index() {
            Some(last.term())
        } else {
            storage.term_at(index)
        };
        if term == Some(mirror.entries[keep - 1].0) {
            break;
        }
        keep -= 1;
    }
    mirror.entries.truncate(keep);
    if (keep as u64) < last.index().0 {
        let from = Index(keep as u64 + 1);
        let mut chain = mirror.chain_at(Index(keep as u64)).unwrap_or(0);
        for (term, _, entry) in storage.get_range(&(from..=last.index())) {
            let mut hasher = std::hash::DefaultHasher::new();
            chain.hash(&mut hasher);
            term.hash(&mut hasher);
            entry.hash(&mut hasher);
            chain = hasher.finish();
            mirror.entries.push((term, chain));
        }
    }
    keep
}
