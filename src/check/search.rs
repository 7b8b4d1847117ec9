//! The search: Wing and Gong's backtracking with Lowe's memoization.
//!
//! Operations become call and return entries in one list sorted by time
//! (calls before returns at equal times, so touching intervals are
//! concurrent; indeterminate operations return at +infinity). The search
//! walks the list from its head: at a call entry it tries to linearize that
//! operation now (the model must allow the step, and the pair (set of
//! linearized operations, state) must be new to the cache); on success it
//! lifts the operation's two entries out of the list in O(1) and starts over
//! from the head, so candidates are always tried in call-time order. Reaching
//! a return entry means an operation that has already returned is still not
//! linearized: the search backtracks, restoring the last lifted operation in
//! O(1) and trying the next candidate after it.
//!
//! Indeterminate operations (those that never returned) are tried last: the
//! walk first tries only the operations that returned, and only when it
//! reaches a return entry with none of them placeable does it walk again from
//! the head trying the indeterminate ones. The set of candidates is the same
//! as in one walk, so the search is as complete; only the order differs. An
//! indeterminate operation that never took effect stays a candidate at every
//! later step, and tried first it was placed, wrongly, over and over before
//! each read showed it absent: on Porcupine's etcd histories (many `:info`
//! writes) trying them last halves the time.
//!
//! One pruning beyond Porcupine's: an operation that cannot change the state
//! ([`Model::leaves_state_unchanged`], such as a read) is placed as soon as it
//! can be, and the search never tries the alternatives to placing it there:
//! any linearization that places it later can place it now instead, since it
//! changes nothing for the operations in between, and every operation that
//! must precede it in real time is already placed. So when the configuration
//! after placing it fails, the configuration before fails too.
//!
//! The linearized set is a bitset of `u64` words; its hash is kept
//! incrementally (Zobrist: the XOR of a fixed random word per operation), and
//! the cache is an open-addressing table over an arena of bitsets and states,
//! so a probe allocates nothing.
//!
//! # Memory bound
//!
//! The cache holds at most [`SearchOptions::cache_entries_max`] entries and
//! [`SearchOptions::cache_bytes_max`] bytes of its own; when a search would
//! insert past either it stops with [`PartitionOutcome::Unknown`]
//! ([`UnknownReason::CacheFull`]). An entry costs `8 * ceil(n / 64)` bytes of
//! bitset for `n` operations, 8 bytes of hash, 4 of state number and about 8
//! of table slot (the byte bound counts these), plus one state when it brings
//! a new one (`size_of::<State>()` plus whatever the state shares or owns);
//! the backtracking stack holds at most `n` states besides. The distinct
//! states together may take at most [`SearchOptions::state_bytes_max`] bytes,
//! as [`Model::state_bytes`] counts them; past that the search stops the same
//! way. The entry bound alone is no memory bound: a 10,000-operation
//! partition makes each entry 1.3 KB, and 2^24 of them 21 GB. These bounds are
//! per search; when partitions take turns ([`turns`](super::turns)), a
//! thread's paused searches together stay within them too (checked between
//! turns), so a thread holds at most about twice one search's bound.
//!
//! What a state owns counts: a key-value state whose values grow with each
//! append costs its strings in every entry that brought a new state. The kv
//! model counts them for the byte bound. `StateMachineModel` cannot see its
//! machine's heap and counts the value alone, so only the entry bound holds
//! it: under the default, a madsim history of 140 appends and reads on one
//! key, a few of them indeterminate, filled over 20 GiB. (The kv model
//! decides that history at once: it leaves out the appends no read saw, see
//! [`Model::unobservable`].)

use core::hash::{Hash, Hasher};

use super::history::{History, Outcome, Time};
use super::model::Model;

/// The default of [`SearchOptions::cache_entries_max`]: 2^24 entries, about
/// 1.3 GiB for a 1000-operation history with a 16-byte state.
pub const CACHE_ENTRIES_MAX_DEFAULT: usize = 1 << 24;

/// The default of [`SearchOptions::state_bytes_max`]: 1 GiB.
pub const STATE_BYTES_MAX_DEFAULT: usize = 1 << 30;

/// The default of [`SearchOptions::cache_bytes_max`]: 2 GiB.
pub const CACHE_BYTES_MAX_DEFAULT: usize = 1 << 31;

/// How often (in search steps) the caller's `should_stop` is consulted.
const STOP_POLL_STEPS: u64 = 1 << 12;

/// Limits of one search.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SearchOptions {
    /// The most (linearized set, state) pairs the cache may hold.
    pub cache_entries_max: usize,
    /// The most bytes of distinct states the cache may hold, as the model's
    /// [`Model::state_bytes`] counts them.
    pub state_bytes_max: usize,
    /// The most bytes the cache's entries may take besides the states: their
    /// linearized sets (which grow with the partition), hashes and table.
    pub cache_bytes_max: usize,
}

impl Default for SearchOptions {
    fn default() -> Self {
        Self {
            cache_entries_max: CACHE_ENTRIES_MAX_DEFAULT,
            state_bytes_max: STATE_BYTES_MAX_DEFAULT,
            cache_bytes_max: CACHE_BYTES_MAX_DEFAULT,
        }
    }
}

/// Why a search gave up without a verdict.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum UnknownReason {
    /// The caller's `should_stop` returned true (a deadline passed).
    Stopped,
    /// The cache reached [`SearchOptions::cache_entries_max`] entries, its
    /// entries [`SearchOptions::cache_bytes_max`] bytes, or its states
    /// [`SearchOptions::state_bytes_max`] bytes.
    CacheFull,
}

impl core::fmt::Display for UnknownReason {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            Self::Stopped => f.write_str("stopped (deadline)"),
            Self::CacheFull => f.write_str("cache full"),
        }
    }
}

/// The verdict on one partition. Operations are named by their index in the
/// history.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum PartitionOutcome {
    /// The partition is linearizable; `order` is one linearization of the
    /// operations the search kept (definite failures, indeterminate
    /// read-only operations and indeterminate operations no output could
    /// show are dropped; indeterminate operations placed at the end of
    /// `order` may as well never have happened).
    Linearizable {
        /// A valid linearization order.
        order: Vec<usize>,
    },
    /// No linearization exists.
    NotLinearizable {
        /// The operation that could not be placed after the longest prefix:
        /// it returned before the search could linearize it.
        op: usize,
        /// The longest linearizable prefix the search found.
        prefix: Vec<usize>,
    },
    /// The search gave up.
    Unknown {
        /// Why.
        reason: UnknownReason,
    },
}

/// A 64-bit FxHash (the multiply-rotate hash of rustc and Firefox). Fast on
/// small keys and deterministic across processes, unlike std's `RandomState`.
#[derive(Debug, Clone, Copy, Default)]
pub struct FxHasher {
    hash: u64,
}

const FX_SEED: u64 = 0x51_7c_c1_b7_27_22_0a_95;

impl FxHasher {
    #[inline]
    fn add(&mut self, word: u64) {
        self.hash = (self.hash.rotate_left(5) ^ word).wrapping_mul(FX_SEED);
    }
}

impl Hasher for FxHasher {
    #[inline]
    fn write(&mut self, bytes: &[u8]) {
        let mut chunks = bytes.chunks_exact(8);
        for chunk in &mut chunks {
            let mut word = [0u8; 8];
            word.copy_from_slice(chunk);
            self.add(u64::from_le_bytes(word));
        }
        let rest = chunks.remainder();
        if !rest.is_empty() {
            let mut word = [0u8; 8];
            word[..rest.len()].copy_from_slice(rest);
            self.add(u64::from_le_bytes(word) ^ ((rest.len() as u64) << 59));
        }
    }

    #[inline]
    fn write_u8(&mut self, value: u8) {
        self.add(u64::from(value));
    }

    #[inline]
    fn write_u32(&mut self, value: u32) {
        self.add(u64::from(value));
    }

    #[inline]
    fn write_u64(&mut self, value: u64) {
        self.add(value);
    }

    #[inline]
    fn write_usize(&mut self, value: usize) {
        self.add(value as u64);
    }

    #[inline]
    fn write_i64(&mut self, value: i64) {
        self.add(value as u64);
    }

    #[inline]
    fn finish(&self) -> u64 {
        self.hash
    }
}

/// FxHash of one value.
pub fn fx_hash<T: Hash + ?Sized>(value: &T) -> u64 {
    let mut hasher = FxHasher::default();
    value.hash(&mut hasher);
    hasher.finish()
}

/// SplitMix64: the fixed pseudo-random word of operation `index` (Zobrist key).
fn zobrist(index: usize) -> u64 {
    let mut z = (index as u64)
        .wrapping_add(1)
        .wrapping_mul(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// The memo cache: (linearized bitset, state) pairs seen so far.
///
/// States live once in an arena and entries name them by number, so the
/// search's current state and its stack are numbers too: an operation that
/// leaves the state unchanged adds an entry without copying the state, and a
/// new state is moved in, never cloned.
struct Cache<S> {
    words: usize,
    /// Per entry: its bitset (`words` words), hash and state.
    bits: Vec<u64>,
    hashes: Vec<u64>,
    entry_states: Vec<u32>,
    /// The states, the initial one first.
    states: Vec<S>,
    /// Open addressing, linear probing: entry index + 1, or 0 for empty.
    slots: Vec<u32>,
    mask: usize,
    entries_max: usize,
    bytes_max: usize,
}

enum Insert {
    Added,
    Present,
    Full,
}

impl<S: Eq> Cache<S> {
    fn new(words: usize, entries_max: usize, bytes_max: usize) -> Self {
        let capacity = 1 << 10;
        Self {
            words,
            bits: Vec::new(),
            hashes: Vec::new(),
            entry_states: Vec::new(),
            states: Vec::new(),
            slots: vec![0; capacity],
            mask: capacity - 1,
            entries_max: entries_max.min(u32::MAX as usize - 1),
            bytes_max,
        }
    }

    /// Bytes an entry adds: its bitset, hash and state number, and two table
    /// slots (the table is kept at most half full).
    fn entry_bytes(&self) -> usize {
        8 * self.words + 8 + 4 + 2 * 4
    }

    /// Bytes the entries take, by [`entry_bytes`](Self::entry_bytes).
    fn bytes(&self) -> usize {
        self.hashes.len() * self.entry_bytes()
    }

    /// Keeps `state` in the arena; returns its number.
    fn add_state(&mut self, state: S) -> u32 {
        self.states.push(state);
        (self.states.len() - 1) as u32
    }

    fn state(&self, number: u32) -> &S {
        &self.states[number as usize]
    }

    /// Inserts (bits, state number `state`) unless an equal pair is present.
    /// A state added just before for this insertion is dropped again if the
    /// pair is not added (`fresh`).
    fn insert(&mut self, bits: &[u64], state: u32, fresh: bool, hash: u64) -> Insert {
        let mut slot = (hash as usize) & self.mask;
        loop {
            let entry = self.slots[slot];
            if entry == 0 {
                break;
            }
            let index = (entry - 1) as usize;
            let other = self.entry_states[index];
            if self.hashes[index] == hash
                && self.bits[index * self.words..(index + 1) * self.words] == *bits
                && (other == state || self.state(other) == self.state(state))
            {
                if fresh {
                    self.states.pop();
                }
                return Insert::Present;
            }
            slot = (slot + 1) & self.mask;
        }
        if self.hashes.len() >= self.entries_max
            || self.bytes() + self.entry_bytes() > self.bytes_max
        {
            if fresh {
                self.states.pop();
            }
            return Insert::Full;
        }
        let index = self.hashes.len();
        self.bits.extend_from_slice(bits);
        self.entry_states.push(state);
        self.hashes.push(hash);
        self.slots[slot] = (index + 1) as u32;
        if self.hashes.len() * 2 > self.slots.len() {
            self.grow();
        }
        Insert::Added
    }

    fn grow(&mut self) {
        let capacity = self.slots.len() * 2;
        self.slots = vec![0; capacity];
        self.mask = capacity - 1;
        for (index, hash) in self.hashes.iter().enumerate() {
            let mut slot = (*hash as usize) & self.mask;
            while self.slots[slot] != 0 {
                slot = (slot + 1) & self.mask;
            }
            self.slots[slot] = (index + 1) as u32;
        }
    }
}

/// The entry list: node 0 is the head sentinel, the last node the tail
/// sentinel; between them a call and a return node per operation.
struct Entries {
    next: Vec<u32>,
    prev: Vec<u32>,
    /// Local operation index of each node (unused for sentinels).
    op: Vec<u32>,
    /// Whether each node is a call (else a return or a sentinel).
    is_call: Vec<bool>,
    /// The return node of each local operation.
    return_node: Vec<u32>,
}

const HEAD: u32 = 0;

impl Entries {
    fn new(times: &[(Time, Option<Time>)]) -> Self {
        // (time, kind: 0 call / 1 return, local op); None return = +infinity.
        let mut events: Vec<(Time, u8, u32)> = Vec::with_capacity(times.len() * 2);
        for (local, (call, ret)) in times.iter().enumerate() {
            events.push((*call, 0, local as u32));
            events.push((ret.unwrap_or(Time::MAX), 1, local as u32));
        }
        events.sort_unstable();
        let nodes = events.len() + 2;
        let mut entries = Self {
            next: (1..=nodes as u32).collect(),
            prev: (0..nodes as u32).map(|n| n.wrapping_sub(1)).collect(),
            op: vec![0; nodes],
            is_call: vec![false; nodes],
            return_node: vec![0; times.len()],
        };
        for (position, (_, kind, local)) in events.iter().enumerate() {
            let node = position + 1;
            entries.op[node] = *local;
            entries.is_call[node] = *kind == 0;
            if *kind == 1 {
                entries.return_node[*local as usize] = node as u32;
            }
        }
        entries
    }

    fn tail(&self) -> u32 {
        (self.next.len() - 1) as u32
    }

    #[inline]
    fn unlink(&mut self, node: u32) {
        let (prev, next) = (self.prev[node as usize], self.next[node as usize]);
        self.next[prev as usize] = next;
        self.prev[next as usize] = prev;
    }

    #[inline]
    fn relink(&mut self, node: u32) {
        let (prev, next) = (self.prev[node as usize], self.next[node as usize]);
        self.next[prev as usize] = node;
        self.prev[next as usize] = node;
    }

    /// Removes an operation (its call node and its return node).
    #[inline]
    fn lift(&mut self, call: u32) {
        let ret = self.return_node[self.op[call as usize] as usize];
        self.unlink(call);
        self.unlink(ret);
    }

    /// Restores the operation most recently lifted.
    #[inline]
    fn unlift(&mut self, call: u32) {
        let ret = self.return_node[self.op[call as usize] as usize];
        self.relink(ret);
        self.relink(call);
    }
}

/// Which operations of `ops` the search must place: definite failures,
/// indeterminate read-only operations and indeterminate operations no output
/// could show ([`Model::unobservable`]) are dropped.
pub fn kept_operations<M: Model>(
    model: &M,
    history: &History<M::Input, M::Output>,
    ops: &[usize],
) -> Vec<usize> {
    let operations = || {
        ops.iter()
            .filter_map(|&index| history.operations.get(index))
    };
    let returned: Vec<(&M::Input, &M::Output)> = if operations()
        .any(|operation| matches!(operation.outcome, Outcome::Indeterminate { .. }))
    {
        operations()
            .filter_map(|operation| match &operation.outcome {
                Outcome::Returned { output, .. } => Some((&operation.input, output)),
                _ => None,
            })
            .collect()
    } else {
        Vec::new()
    };
    ops.iter()
        .copied()
        .filter(|&index| match history.operations.get(index) {
            None => false,
            Some(operation) => match &operation.outcome {
                Outcome::Returned { .. } => true,
                Outcome::Failed { .. } => false,
                Outcome::Indeterminate { .. } => {
                    !model.is_read_only(&operation.input)
                        && !model.unobservable(&operation.input, &returned)
                }
            },
        })
        .collect()
}

/// Checks one partition: the operations `ops` (indexes into `history`).
///
/// `should_stop` is polled every few thousand steps; when it returns true the
/// search ends with [`PartitionOutcome::Unknown`]. Never panics: indexes out
/// of range are ignored, and an operation that returns before its call can
/// never be placed.
pub fn check_operations<M: Model>(
    model: &M,
    history: &History<M::Input, M::Output>,
    ops: &[usize],
    options: SearchOptions,
    should_stop: &dyn Fn() -> bool,
) -> PartitionOutcome {
    let mut search = PartitionSearch::new(model, history, ops, options);
    loop {
        if let Some(outcome) = search.run_until(u64::MAX, should_stop) {
            return outcome;
        }
    }
}

/// The search of one partition, which can pause after a number of steps and
/// go on later: [`check`](super::check) takes turns among partitions with
/// it, so that one whose failure is quick to find is not kept waiting
/// behind one that takes long (or never ends). A step places or tries one
/// operation; the steps a search takes depend on nothing but its partition,
/// so where it stands after `n` steps is the same in every run.
pub struct PartitionSearch<'h, M: Model> {
    model: &'h M,
    options: SearchOptions,
    /// The operations searched (indexes into the history) and, by position
    /// among them, each one and whether it leaves the state unchanged.
    kept: Vec<usize>,
    operations: Vec<&'h crate::check::history::Operation<M::Input, M::Output>>,
    unchanging: Vec<bool>,
    /// By position: whether the operation's outcome is unknown (it never
    /// returned), and whether the history has any such operation.
    indeterminate: Vec<bool>,
    any_indeterminate: bool,
    /// Whether the walk is past its first pass, in which it tries only
    /// operations that returned, and now tries the indeterminate ones.
    deferred: bool,
    entries: Entries,
    tail: u32,
    keys: Vec<u64>,
    cache: Cache<M::State>,
    /// The linearized set as bits, and its hash.
    bits: Vec<u64>,
    set_hash: u64,
    /// The current state (a number in the cache's arena), its hash, and the
    /// bytes of the states kept so far.
    state: u32,
    state_hash: u64,
    state_bytes: usize,
    /// Per placed operation: its call entry, the state before it and that
    /// state's hash.
    stack: Vec<(u32, u32, u64)>,
    /// The operation that could not be placed after the longest prefix.
    best: Option<(usize, Vec<usize>)>,
    steps: u64,
    node: u32,
    /// The outcome, once known.
    finished: Option<PartitionOutcome>,
}

impl<'h, M: Model> PartitionSearch<'h, M> {
    /// A search of the operations `ops` of `history`, not yet started.
    pub fn new(
        model: &'h M,
        history: &'h History<M::Input, M::Output>,
        ops: &[usize],
        options: SearchOptions,
    ) -> Self {
        let kept = kept_operations(model, history, ops);
        let operations: Vec<_> = kept
            .iter()
            .map(|&index| &history.operations[index])
            .collect();
        let times: Vec<(Time, Option<Time>)> = operations
            .iter()
            .map(|operation| {
                let ret = match operation.outcome {
                    Outcome::Returned { time, .. } | Outcome::Failed { time } => Some(time),
                    Outcome::Indeterminate { .. } => None,
                };
                (operation.call, ret)
            })
            .collect();
        let unchanging: Vec<bool> = operations
            .iter()
            .map(|operation| match operation.outcome.output() {
                Some(output) => model.leaves_state_unchanged(&operation.input, output),
                None => false,
            })
            .collect();
        let indeterminate: Vec<bool> = times.iter().map(|(_, ret)| ret.is_none()).collect();
        let any_indeterminate = indeterminate.contains(&true);
        let entries = Entries::new(&times);
        let tail = entries.tail();
        let words = kept.len().div_ceil(64).max(1);
        let keys: Vec<u64> = (0..kept.len()).map(zobrist).collect();
        let mut cache: Cache<M::State> =
            Cache::new(words, options.cache_entries_max, options.cache_bytes_max);
        // The current state and those on the stack are numbers in the cache's
        // arena, each with its hash: an operation that leaves the state
        // unchanged costs neither a copy nor a rehash.
        let init = model.init();
        let state_bytes = model.state_bytes(&init);
        let state_hash = fx_hash(&init);
        let state = cache.add_state(init);
        let node = entries.next[HEAD as usize];
        let stack = Vec::with_capacity(kept.len());
        Self {
            model,
            options,
            kept,
            operations,
            unchanging,
            indeterminate,
            any_indeterminate,
            deferred: false,
            entries,
            tail,
            keys,
            cache,
            bits: vec![0u64; words],
            set_hash: 0,
            state,
            state_hash,
            state_bytes,
            stack,
            best: None,
            steps: 0,
            node,
            finished: None,
        }
    }

    /// The steps taken so far.
    pub fn steps(&self) -> u64 {
        self.steps
    }

    /// The (linearized set, state) pairs cached so far: the memory the
    /// search holds, in the unit of [`SearchOptions::cache_entries_max`].
    pub fn cache_entries(&self) -> usize {
        self.cache.hashes.len()
    }

    /// The bytes the cached entries take besides their states (the unit of
    /// [`SearchOptions::cache_bytes_max`]).
    pub fn cache_bytes(&self) -> usize {
        self.cache.bytes()
    }

    /// The bytes of the states cached so far, as [`Model::state_bytes`]
    /// counts them (the unit of [`SearchOptions::state_bytes_max`]).
    pub fn state_bytes(&self) -> usize {
        self.state_bytes
    }

    /// Searches on until the outcome is known, or until `limit` steps have
    /// been taken in all (then `None`: call again to go on). Once known, the
    /// outcome is returned again by every later call.
    pub fn run_until(
        &mut self,
        limit: u64,
        should_stop: &dyn Fn() -> bool,
    ) -> Option<PartitionOutcome> {
        if self.finished.is_none() {
            self.finished = self.search(limit, should_stop);
        }
        self.finished.clone()
    }

    /// The search itself: [`run_until`](Self::run_until) before an outcome.
    fn search(&mut self, limit: u64, should_stop: &dyn Fn() -> bool) -> Option<PartitionOutcome> {
        let model = self.model;
        while self.entries.next[HEAD as usize] != self.tail {
            if self.steps >= limit {
                return None;
            }
            self.steps += 1;
            if self.steps.is_multiple_of(STOP_POLL_STEPS) && should_stop() {
                return Some(PartitionOutcome::Unknown {
                    reason: UnknownReason::Stopped,
                });
            }
            let node = self.node;
            let local = self.entries.op[node as usize] as usize;
            if self.entries.is_call[node as usize] {
                if self.indeterminate[local] != self.deferred {
                    // Not tried in this pass.
                    self.node = self.entries.next[node as usize];
                    continue;
                }
                let operation = self.operations[local];
                let output = operation.outcome.output();
                let current = self.cache.state(self.state);
                let next = match output {
                    Some(output) if self.unchanging[local] => model
                        .explains(current, &operation.input, output)
                        .then_some((self.state, false, self.state_hash, 0)),
                    _ => model
                        .step(current, &operation.input, output)
                        .map(|next_state| {
                            let hash = fx_hash(&next_state);
                            let bytes = model.state_bytes(&next_state);
                            (self.cache.add_state(next_state), true, hash, bytes)
                        }),
                };
                let Some((next_state, fresh, next_hash, next_bytes)) = next else {
                    self.node = self.entries.next[node as usize];
                    continue;
                };
                self.bits[local / 64] ^= 1 << (local % 64);
                self.set_hash ^= self.keys[local];
                let hash = self.set_hash ^ next_hash.wrapping_mul(0x9e37_79b9_7f4a_7c15);
                match self.cache.insert(&self.bits, next_state, fresh, hash) {
                    Insert::Added => {
                        // A fresh state stays in the arena with its entry.
                        self.state_bytes = self.state_bytes.saturating_add(next_bytes);
                        if self.state_bytes > self.options.state_bytes_max {
                            return Some(PartitionOutcome::Unknown {
                                reason: UnknownReason::CacheFull,
                            });
                        }
                        let previous = core::mem::replace(&mut self.state, next_state);
                        self.stack.push((node, previous, self.state_hash));
                        self.state_hash = next_hash;
                        self.entries.lift(node);
                        self.node = self.entries.next[HEAD as usize];
                        self.deferred = false;
                        continue;
                    }
                    Insert::Present => {
                        self.bits[local / 64] ^= 1 << (local % 64);
                        self.set_hash ^= self.keys[local];
                        if !self.unchanging[local] {
                            self.node = self.entries.next[node as usize];
                            continue;
                        }
                        // Placing an unchanging operation now is never worse
                        // than later (see `Model::leaves_state_unchanged`), so
                        // the current configuration fails with it.
                    }
                    Insert::Full => {
                        return Some(PartitionOutcome::Unknown {
                            reason: UnknownReason::CacheFull,
                        });
                    }
                }
            } else if self.any_indeterminate && !self.deferred {
                // Every operation that returned and could go next failed:
                // now the indeterminate ones, from the head again.
                self.deferred = true;
                self.node = self.entries.next[HEAD as usize];
                continue;
            } else if self
                .best
                .as_ref()
                .is_none_or(|(_, prefix)| self.stack.len() > prefix.len())
            {
                // A return entry: this operation returned and is not linearized.
                let prefix = self
                    .stack
                    .iter()
                    .map(|(call, ..)| self.kept[self.entries.op[*call as usize] as usize])
                    .collect();
                self.best = Some((self.kept[local], prefix));
            }
            // Dead end: undo the last placement. An unchanging operation was
            // placed greedily, so undoing it leaves a configuration that fails
            // too: keep undoing.
            loop {
                let Some((call, previous, previous_hash)) = self.stack.pop() else {
                    let (op, prefix) = self.best.take().unwrap_or((self.kept[local], Vec::new()));
                    return Some(PartitionOutcome::NotLinearizable { op, prefix });
                };
                self.state = previous;
                self.state_hash = previous_hash;
                let undone = self.entries.op[call as usize] as usize;
                self.bits[undone / 64] ^= 1 << (undone % 64);
                self.set_hash ^= self.keys[undone];
                self.entries.unlift(call);
                self.node = self.entries.next[call as usize];
                // Resume the pass that placed it.
                self.deferred = self.indeterminate[undone];
                if !self.unchanging[undone] {
                    break;
                }
            }
        }
        Some(PartitionOutcome::Linearizable {
            order: self
                .stack
                .iter()
                .map(|(call, ..)| self.kept[self.entries.op[*call as usize] as usize])
                .collect(),
        })
    }
}
