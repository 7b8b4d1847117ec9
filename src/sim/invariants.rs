//! Raft's safety properties, checked online after every event (§5.4, Figure 3):
//!
//! * **election safety**: at most one leader per term;
//! * **log matching**: two logs with an entry of the same index and term are
//!   identical up to it (checked with a chain hash over each log's prefix);
//! * **leader completeness**: a new leader holds every committed entry;
//! * **state machine safety**: every node that commits or applies index `i` has
//!   the same entry there, so no committed entry is ever lost or replaced, across
//!   crashes too.

use core::hash::Hash;
use std::collections::BTreeMap;

use super::fingerprint::Fingerprint;
use crate::id::PeerId;
use crate::log::{Cursor, InMemoryLogStore, Index, Storage, Term};
use crate::machine::Command;
use crate::raft::{LogEntry, Role, Status};

/// The chain hash of the prefix ending in `entry` of `term`, after `previous`.
fn chain<C: Hash>(previous: u64, term: Term, entry: &C) -> u64 {
    let mut fingerprint = Fingerprint::new(previous);
    term.hash(&mut fingerprint);
    entry.hash(&mut fingerprint);
    fingerprint.value()
}

/// A node's log as last seen: per entry, its term and the chain hash of the
/// prefix ending there.
#[derive(Debug, Clone, Default)]
struct Mirror {
    entries: Vec<(Term, u64)>,
    /// The node's last entry and commit index when last checked: while both
    /// stay put there is nothing new to check.
    checked: Option<(Cursor, Index)>,
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
    /// The last leader `leaders` confirmed.
    last_leader: Option<(Term, PeerId)>,
    /// What every node's log is checked against.
    agreed: Agreed,
    /// Per node (by id, from 1).
    mirrors: Vec<Mirror>,
}

/// What the nodes' logs are checked against: the first chain hash seen for
/// each index and term, and the committed log. Apart from the mirrors, so
/// that a node's mirror is checked in place.
#[derive(Debug, Default)]
struct Agreed {
    /// Per index (from 1): the first term seen there and the chain hash of the
    /// prefix ending at it, as first seen anywhere.
    chains: Vec<(Term, u64)>,
    /// The same for the other terms seen at an index (after a conflict).
    other_chains: BTreeMap<(Index, Term), u64>,
    /// Chain hashes of the committed log.
    committed: Vec<u64>,
    /// For each committed index, the term of the node that first reported it
    /// committed: it was committed in that term or earlier.
    committed_by_term: Vec<Term>,
}

impl Invariants {
    /// The longest committed index seen on any node.
    pub(crate) fn committed_index(&self) -> Index {
        Index(self.agreed.committed.len() as u64)
    }

    /// The leader of each term seen, in term order.
    pub(crate) fn leaders(&self) -> Vec<(Term, PeerId)> {
        self.leaders
            .iter()
            .map(|(term, leader)| (*term, *leader))
            .collect()
    }

    /// A node restarted from its storage: its next step checks its log
    /// again. A crash changes only the log's end (it undoes the writes not
    /// yet synced), so the mirror is kept and checked from the end back, as
    /// after any step (see `sync_mirror`): a restart costs what the crash
    /// lost, where reading and hashing the whole log again made long runs
    /// with crashes spend a quarter of their time here.
    pub(crate) fn restarted(&mut self, node: PeerId) {
        if let Some(mirror) = self.mirrors.get_mut(slot(node)) {
            mirror.checked = None;
        }
    }

    /// Checks `node` after an event. Returns the violations found.
    #[inline]
    pub(crate) fn observe<C: Command + Hash>(
        &mut self,
        node: PeerId,
        status: &Status,
        became_leader: bool,
        storage: &InMemoryLogStore<LogEntry<C>>,
    ) -> Vec<String> {
        // Most events change neither the node's log nor its commit index nor
        // who leads: answered here, inline, with nothing to check.
        let leader_known =
            status.role != Role::Leader || self.last_leader == Some((status.term, node));
        let checked = Some((status.last_log, status.commit_index));
        let unchanged = !became_leader
            && self
                .mirrors
                .get(slot(node))
                .is_some_and(|mirror| mirror.checked == checked);
        if leader_known && unchanged {
            return Vec::new();
        }
        self.observe_change(node, status, became_leader, storage)
    }

    /// [`observe`](Self::observe) past its shortcut.
    #[inline(never)]
    fn observe_change<C: Command + Hash>(
        &mut self,
        node: PeerId,
        status: &Status,
        became_leader: bool,
        storage: &InMemoryLogStore<LogEntry<C>>,
    ) -> Vec<String> {
        let mut violations = Vec::new();
        // A leader steps often in its term: the last one seen needs no lookup.
        if status.role == Role::Leader && self.last_leader != Some((status.term, node)) {
            let leader = *self.leaders.entry(status.term).or_insert(node);
            if leader == node {
                self.last_leader = Some((status.term, node));
            } else {
                violations.push(format!(
                    "election safety: {leader} and {node} both lead term {}",
                    status.term
                ));
            }
        }
        let slot = slot(node);
        if self.mirrors.len() <= slot {
            self.mirrors.resize_with(slot + 1, Mirror::default);
        }
        let mirror = &mut self.mirrors[slot];
        // A mirror whose last entry still matches is kept whole (see
        // `sync_mirror`), and the committed prefix it is checked against never
        // changes: with the same last entry and commit index, nothing is new.
        let checked = Some((status.last_log, status.commit_index));
        if !became_leader && mirror.checked == checked {
            return violations;
        }
        mirror.checked = checked;
        let added_from = sync_mirror(mirror, status, storage);
        // Log matching: the same (index, term) means the same prefix.
        for (position, (term, chain)) in mirror.entries.iter().enumerate().skip(added_from) {
            let index = Index(position as u64 + 1);
            if self.agreed.first_chain(index, *term, *chain) != *chain {
                violations.push(format!(
                    "log matching: {node}'s entry {index} of term {term} differs from another node's"
                ));
                break;
            }
        }
        self.agreed
            .check_committed(node, status, became_leader, mirror, &mut violations);
        violations
    }

    /// How much of the committed log `node`'s log holds: the last index
    /// through which the two agree, for the end-of-run check. A chain hash
    /// stands for its whole prefix, so agreement at an index means agreement
    /// before it, and a binary search finds the last.
    pub(crate) fn committed_held_through(&self, node: PeerId) -> Index {
        let Some(mirror) = self.mirrors.get(slot(node)) else {
            return Index::ZERO;
        };
        let agrees = |length: usize| {
            length == 0
                || mirror.chain_at(Index(length as u64)) == Some(self.agreed.committed[length - 1])
        };
        // `low` agrees, `high + 1` does not (or is past the committed log).
        let (mut low, mut high) = (0, self.agreed.committed.len());
        while low < high {
            let middle = low + (high - low).div_ceil(2);
            if agrees(middle) {
                low = middle;
            } else {
                high = middle - 1;
            }
        }
        Index(low as u64)
    }
}

impl Agreed {
    /// The first chain hash seen for the prefix ending at (`index`, `term`),
    /// which becomes `chain` if none was.
    fn first_chain(&mut self, index: Index, term: Term, chain: u64) -> u64 {
        let position = index.0 as usize - 1;
        if position == self.chains.len() {
            self.chains.push((term, chain));
            return chain;
        }
        match self.chains.get(position) {
            Some((first_term, first)) if *first_term == term => *first,
            // Another term at this index, or (after a violation cut a mirror's
            // check short) an index past those recorded in order.
            _ => *self.other_chains.entry((index, term)).or_insert(chain),
        }
    }

    /// State machine safety and leader completeness for `node`, whose log
    /// `mirror` mirrors.
    fn check_committed(
        &mut self,
        node: PeerId,
        status: &Status,
        became_leader: bool,
        mirror: &Mirror,
        violations: &mut Vec<String>,
    ) {
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
    }
}

/// Where a node's mirror is kept.
fn slot(node: PeerId) -> usize {
    (node.0 - 1) as usize
}

/// Brings `mirror` up to date with the node's log: cut where it diverged (a
/// truncation), then read the entries it lacks. Returns how many entries were
/// kept (the new ones follow).
fn sync_mirror<C: Command + Hash>(
    mirror: &mut Mirror,
    status: &Status,
    storage: &InMemoryLogStore<LogEntry<C>>,
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
        let mut previous = mirror.chain_at(Index(keep as u64)).unwrap_or(0);
        for (term, entry) in storage.entries_from(from) {
            previous = chain(previous, term, entry);
            mirror.entries.push((term, previous));
        }
    }
    keep
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::raft::{ClientId, CommandEntry, ProposalId};

    type Log = InMemoryLogStore<LogEntry<u64>>;

    fn log(entries: &[(u64, u64)]) -> Log {
        let mut log = Log::default();
        for (sequence, (term, command)) in entries.iter().enumerate() {
            let entry = LogEntry::Command(CommandEntry {
                command: *command,
                proposal: ProposalId {
                    client: ClientId(1),
                    sequence: sequence as u64,
                },
                settled_below: 0,
                session: Index::ZERO,
                batch_end: true,
            });
            log.append(entry, Term(*term));
        }
        log
    }

    fn status(node: u64, log: &Log, commit: u64) -> Status {
        Status {
            id: PeerId(node),
            role: Role::Follower,
            term: log.last().term(),
            leader: None,
            commit_index: Index(commit),
            applied: Cursor::ZERO,
            last_log: log.last(),
        }
    }

    fn observe(invariants: &mut Invariants, node: u64, log: &Log, commit: u64) -> Vec<String> {
        invariants.observe(PeerId(node), &status(node, log, commit), false, log)
    }

    /// Checks that `found` is one violation, starting with `prefix`.
    fn assert_one_violation(found: &[String], prefix: &str) {
        assert_eq!(found.len(), 1, "{found:?}");
        assert!(found[0].starts_with(prefix), "{found:?}");
    }

    #[test]
    fn equal_logs_pass_and_commit() {
        let mut invariants = Invariants::default();
        let entries = [(1, 10), (1, 11), (2, 12)];
        assert!(observe(&mut invariants, 1, &log(&entries), 3).is_empty());
        assert!(observe(&mut invariants, 2, &log(&entries[..2]), 2).is_empty());
        assert_eq!(invariants.committed_index(), Index(3));
        assert_eq!(invariants.committed_held_through(PeerId(1)), Index(3));
        assert_eq!(invariants.committed_held_through(PeerId(2)), Index(2));
        assert_eq!(invariants.committed_held_through(PeerId(3)), Index::ZERO);
    }

    #[test]
    fn the_committed_log_is_held_through_where_a_log_leaves_it() {
        let mut invariants = Invariants::default();
        let committed = [(1, 10), (1, 11), (1, 12), (1, 13)];
        assert!(observe(&mut invariants, 1, &log(&committed), 4).is_empty());
        // Longer, but of another term from index 2 on (uncommitted there).
        let diverged = [(1, 10), (2, 20), (2, 21), (2, 22), (2, 23)];
        assert!(observe(&mut invariants, 2, &log(&diverged), 1).is_empty());
        assert!(observe(&mut invariants, 3, &log(&committed[..3]), 3).is_empty());
        let held: Vec<Index> = (1..=4)
            .map(|node| invariants.committed_held_through(PeerId(node)))
            .collect();
        assert_eq!(held, [Index(4), Index(1), Index(3), Index::ZERO]);
    }

    #[test]
    fn two_leaders_of_one_term_break_election_safety() {
        let mut invariants = Invariants::default();
        let entries = log(&[(2, 10)]);
        let lead = |invariants: &mut Invariants, node: u64| {
            let status = Status {
                role: Role::Leader,
                leader: Some(PeerId(node)),
                ..status(node, &entries, 0)
            };
            invariants.observe(PeerId(node), &status, false, &entries)
        };
        // The same leader stepping again, and again after another node.
        assert!(lead(&mut invariants, 1).is_empty());
        assert!(lead(&mut invariants, 1).is_empty());
        assert!(observe(&mut invariants, 3, &entries, 0).is_empty());
        assert!(lead(&mut invariants, 1).is_empty());
        assert_one_violation(
            &lead(&mut invariants, 2),
            "election safety: n1 and n2 both lead term 2",
        );
        assert_eq!(invariants.leaders(), [(Term(2), PeerId(1))]);
    }

    #[test]
    fn same_index_and_term_with_another_command_breaks_log_matching() {
        let mut invariants = Invariants::default();
        assert!(observe(&mut invariants, 1, &log(&[(1, 10), (1, 11)]), 0).is_empty());
        let found = observe(&mut invariants, 2, &log(&[(1, 10), (1, 99)]), 0);
        assert_one_violation(&found, "log matching: n2's entry 2 of term 1");
    }

    #[test]
    fn another_term_at_an_index_is_allowed_until_committed() {
        let mut invariants = Invariants::default();
        assert!(observe(&mut invariants, 1, &log(&[(1, 10), (2, 11)]), 1).is_empty());
        // A conflicting uncommitted suffix is fine: it will be overwritten.
        assert!(observe(&mut invariants, 2, &log(&[(1, 10), (3, 12)]), 1).is_empty());
        // The first node to commit index 2 fixes it; a node committing another
        // entry there breaks state machine safety.
        assert!(observe(&mut invariants, 2, &log(&[(1, 10), (3, 12)]), 2).is_empty());
        let found = observe(&mut invariants, 1, &log(&[(1, 10), (2, 11)]), 2);
        assert_one_violation(&found, "state machine safety: n1");
    }

    #[test]
    fn a_truncated_and_rewritten_log_is_rehashed() {
        let mut invariants = Invariants::default();
        assert!(observe(&mut invariants, 1, &log(&[(1, 10), (1, 11)]), 1).is_empty());
        // Node 1's log after truncating index 2 and appending term 2's entry.
        assert!(observe(&mut invariants, 1, &log(&[(1, 10), (2, 20)]), 2).is_empty());
        assert!(observe(&mut invariants, 2, &log(&[(1, 10), (2, 20)]), 2).is_empty());
        let found = observe(&mut invariants, 3, &log(&[(1, 10), (2, 21)]), 0);
        assert_one_violation(&found, "log matching: n3's entry 2 of term 2");
    }

    /// A crash undoes a node's unsynced writes: here a truncation, so the
    /// entry it replaced is back. The restarted node's mirror, checked from
    /// the end back, ends as reading its whole log again would leave it.
    #[test]
    fn a_restarted_node_is_checked_against_what_its_crash_left() {
        // The mirror of `log` as read whole, by a checker that saw nothing else.
        let read_whole = |log: &Log| {
            let mut fresh = Invariants::default();
            assert!(observe(&mut fresh, 1, log, 0).is_empty());
            fresh.mirrors[0].entries.clone()
        };
        let mut invariants = Invariants::default();
        let synced = log(&[(1, 10), (1, 11), (1, 12)]);
        assert!(observe(&mut invariants, 1, &synced, 1).is_empty());
        // Not synced yet: index 2 truncated, term 2's entries appended.
        let unsynced = log(&[(1, 10), (2, 20), (2, 21), (2, 22)]);
        assert!(observe(&mut invariants, 1, &unsynced, 1).is_empty());
        assert_eq!(invariants.mirrors[0].entries, read_whole(&unsynced));
        // The crash undid them (checking back from the end takes two steps);
        // the node restarts from what was synced.
        invariants.restarted(PeerId(1));
        assert!(observe(&mut invariants, 1, &synced, 0).is_empty());
        assert_eq!(invariants.mirrors[0].entries, read_whole(&synced));
        // Term 2's entry is committed at index 2 elsewhere: node 1 committing
        // the entry its crash brought back breaks state machine safety.
        assert!(observe(&mut invariants, 2, &log(&[(1, 10), (2, 20)]), 2).is_empty());
        assert_one_violation(
            &observe(&mut invariants, 1, &synced, 2),
            "state machine safety: n1",
        );
    }

    #[test]
    fn chain_hashes_depend_on_every_part() {
        let base = chain(0, Term(1), &5u64);
        assert_ne!(base, chain(1, Term(1), &5u64));
        assert_ne!(base, chain(0, Term(2), &5u64));
        assert_ne!(base, chain(0, Term(1), &6u64));
        assert_ne!(chain(0, Term(1), &"ab"), chain(0, Term(1), &("a", "b")));
    }
}
