//! Identities: [`UniqueId`], [`PeerId`], [`GroupKey`] and [`GroupId`].
//!
//! A group's identity is derived, never configured: [`GroupId`] is a blake3 chain
//! over the group key, the digest of the consensus parameters every member must
//! share, the machine's [`signature`](crate::StateMachine::signature) and the
//! state sync's [`signature`](crate::StateSync::signature). Two nodes bond only if
//! their GroupIds are equal; when they are not, [`GroupIdInputs::differences`] names
//! which input differs.

use core::fmt;

use serde::{Deserialize, Serialize};

/// Domain-separation contexts for blake3's key derivation; changing one changes
/// every derived id, so they are versioned.
const CONTEXT_UNIQUE_ID: &str = "quorate 2026 unique id v1";
const CONTEXT_GROUP_KEY: &str = "quorate 2026 group key from secret v1";
const CONTEXT_KEY_FINGERPRINT: &str = "quorate 2026 group key fingerprint v1";

/// A 32-byte identifier derived from a name, for versioning machines and sync
/// strategies: `UniqueId::from("orderbook_v2")`.
///
/// The same string gives the same id on every machine and in every run.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct UniqueId([u8; 32]);

impl UniqueId {
    /// The id of a name.
    pub fn from_name(name: &str) -> Self {
        Self(blake3::derive_key(CONTEXT_UNIQUE_ID, name.as_bytes()))
    }

    /// An id given as raw bytes.
    pub const fn from_bytes(bytes: [u8; 32]) -> Self {
        Self(bytes)
    }

    /// The raw bytes.
    pub const fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }

    /// The id with `other` mixed in: a version of this id specific to `other`.
    #[must_use]
    pub fn derive(&self, other: &[u8]) -> Self {
        let mut hasher = blake3::Hasher::new_keyed(&self.0);
        hasher.update(other);
        Self(*hasher.finalize().as_bytes())
    }
}

impl From<&str> for UniqueId {
    fn from(name: &str) -> Self {
        Self::from_name(name)
    }
}

impl From<String> for UniqueId {
    fn from(name: String) -> Self {
        Self::from_name(&name)
    }
}

impl From<[u8; 32]> for UniqueId {
    fn from(bytes: [u8; 32]) -> Self {
        Self(bytes)
    }
}

impl fmt::Debug for UniqueId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "UniqueId({self})")
    }
}

impl fmt::Display for UniqueId {
    /// The first eight bytes in hex, enough to tell ids apart in a log line.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write_hex(f, &self.0[..8])
    }
}

fn write_hex(f: &mut fmt::Formatter<'_>, bytes: &[u8]) -> fmt::Result {
    for byte in bytes {
        write!(f, "{byte:02x}")?;
    }
    Ok(())
}

/// A member of a group. Ids are chosen by the operator (or the simulator) and are
/// unique within a group.
#[derive(
    Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize,
)]
pub struct PeerId(pub u64);

impl fmt::Display for PeerId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "n{}", self.0)
    }
}

impl From<u64> for PeerId {
    fn from(value: u64) -> Self {
        Self(value)
    }
}

/// The secret every member of a group holds. Derived from a passphrase with
/// [`GroupKey::from_secret`] or given as 32 bytes.
///
/// The key never leaves the node: handshakes prove knowledge of it with a keyed
/// hash over fresh nonces, and [`GroupKey::fingerprint`] is a one-way digest.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct GroupKey([u8; 32]);

impl GroupKey {
    /// A key derived from a passphrase.
    pub fn from_secret(secret: &str) -> Self {
        Self(blake3::derive_key(CONTEXT_GROUP_KEY, secret.as_bytes()))
    }

    /// A key given as 32 secret bytes.
    pub const fn from_bytes(bytes: [u8; 32]) -> Self {
        Self(bytes)
    }

    /// The secret bytes, for keyed hashing.
    pub const fn secret_bytes(&self) -> &[u8; 32] {
        &self.0
    }

    /// A one-way digest of the key: equal for equal keys, revealing nothing else.
    pub fn fingerprint(&self) -> [u8; 32] {
        blake3::derive_key(CONTEXT_KEY_FINGERPRINT, &self.0)
    }
}

impl From<&str> for GroupKey {
    fn from(secret: &str) -> Self {
        Self::from_secret(secret)
    }
}

impl From<[u8; 32]> for GroupKey {
    fn from(bytes: [u8; 32]) -> Self {
        Self(bytes)
    }
}

impl fmt::Debug for GroupKey {
    /// Never prints the secret.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("GroupKey(")?;
        write_hex(f, &self.fingerprint()[..4])?;
        f.write_str("..)")
    }
}

/// Everything a [`GroupId`] is derived from, in public form: the key appears only
/// as its fingerprint.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct GroupIdInputs {
    /// [`GroupKey::fingerprint`] of the group key.
    pub key_fingerprint: [u8; 32],
    /// The digest of the consensus parameters all members must share
    /// ([`GroupConfig::digest`](crate::raft::GroupConfig::digest)).
    pub consensus_digest: [u8; 32],
    /// [`StateMachine::signature`](crate::StateMachine::signature).
    pub machine_signature: UniqueId,
    /// [`StateSync::signature`](crate::StateSync::signature).
    pub sync_signature: UniqueId,
}

/// One of the inputs of a [`GroupId`], for naming what differs between two nodes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum GroupIdInput {
    /// The group key.
    Key,
    /// The consensus parameters (voters, timeouts).
    ConsensusParameters,
    /// The state machine's signature.
    MachineSignature,
    /// The state sync's signature.
    SyncSignature,
}

impl fmt::Display for GroupIdInput {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Key => "group key",
            Self::ConsensusParameters => "consensus parameters",
            Self::MachineSignature => "state machine signature",
            Self::SyncSignature => "state sync signature",
        })
    }
}

impl GroupIdInputs {
    /// The inputs of a group with `key`, running a machine with the given
    /// signatures under consensus parameters with `consensus_digest`.
    pub fn new(
        key: &GroupKey,
        consensus_digest: [u8; 32],
        machine_signature: UniqueId,
        sync_signature: UniqueId,
    ) -> Self {
        Self {
            key_fingerprint: key.fingerprint(),
            consensus_digest,
            machine_signature,
            sync_signature,
        }
    }

    /// The GroupId these inputs derive.
    pub fn group_id(&self) -> GroupId {
        GroupId::derive(self)
    }

    /// Which inputs differ from `other`'s, in a fixed order; empty iff the GroupIds
    /// are equal.
    pub fn differences(&self, other: &Self) -> Vec<GroupIdInput> {
        let mut differences = Vec::new();
        if self.key_fingerprint != other.key_fingerprint {
            differences.push(GroupIdInput::Key);
        }
        if self.consensus_digest != other.consensus_digest {
            differences.push(GroupIdInput::ConsensusParameters);
        }
        if self.machine_signature != other.machine_signature {
            differences.push(GroupIdInput::MachineSignature);
        }
        if self.sync_signature != other.sync_signature {
            differences.push(GroupIdInput::SyncSignature);
        }
        differences
    }
}

/// The identity of a group: nodes bond only with nodes of the same GroupId.
///
/// # Examples
///
/// ```
/// use quorate::{GroupIdInput, GroupIdInputs, GroupKey, UniqueId};
///
/// let key = GroupKey::from_secret("s3cret");
/// let v1 = GroupIdInputs::new(&key, [7; 32], UniqueId::from("orders_v1"), UniqueId::from("sync"));
/// let v2 = GroupIdInputs { machine_signature: UniqueId::from("orders_v2"), ..v1 };
/// assert_ne!(v1.group_id(), v2.group_id());
/// assert_eq!(v1.differences(&v2), vec![GroupIdInput::MachineSignature]);
/// ```
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct GroupId([u8; 32]);

impl GroupId {
    /// Derives the id: a blake3 chain in which each link hashes the previous link
    /// with the next input, starting from the key fingerprint.
    pub fn derive(inputs: &GroupIdInputs) -> Self {
        let link = |previous: [u8; 32], label: &str, input: &[u8]| -> [u8; 32] {
            let mut hasher = blake3::Hasher::new_keyed(&previous);
            hasher.update(label.as_bytes());
            hasher.update(input);
            *hasher.finalize().as_bytes()
        };
        let root = blake3::derive_key("quorate 2026 group id v1", &inputs.key_fingerprint);
        let consensus = link(root, "consensus", &inputs.consensus_digest);
        let machine = link(consensus, "machine", inputs.machine_signature.as_bytes());
        Self(link(machine, "sync", inputs.sync_signature.as_bytes()))
    }

    /// The raw bytes.
    pub const fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }
}

impl fmt::Debug for GroupId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "GroupId({self})")
    }
}

impl fmt::Display for GroupId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write_hex(f, &self.0[..8])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn inputs() -> GroupIdInputs {
        GroupIdInputs::new(
            &GroupKey::from_secret("key"),
            [1; 32],
            UniqueId::from("machine_v1"),
            UniqueId::from("sync_v1"),
        )
    }

    #[test]
    fn unique_id_is_a_stable_function_of_the_name() {
        assert_eq!(UniqueId::from("counter_v1"), UniqueId::from("counter_v1"));
        assert_ne!(UniqueId::from("counter_v1"), UniqueId::from("counter_v2"));
        // Pinned so a change of derivation (which would split every deployed
        // group) cannot go unnoticed.
        assert_eq!(UniqueId::from("counter_v1").to_string(), {
            let bytes = blake3::derive_key(CONTEXT_UNIQUE_ID, b"counter_v1");
            bytes[..8]
                .iter()
                .map(|b| format!("{b:02x}"))
                .collect::<String>()
        });
    }

    #[test]
    fn group_id_is_equal_iff_all_inputs_are_equal() {
        let base = inputs();
        assert_eq!(base.group_id(), inputs().group_id());
        assert!(base.differences(&inputs()).is_empty());

        let other_key = GroupIdInputs {
            key_fingerprint: GroupKey::from_secret("other").fingerprint(),
            ..base
        };
        let other_consensus = GroupIdInputs {
            consensus_digest: [2; 32],
            ..base
        };
        let other_machine = GroupIdInputs {
            machine_signature: UniqueId::from("machine_v2"),
            ..base
        };
        let other_sync = GroupIdInputs {
            sync_signature: UniqueId::from("sync_v2"),
            ..base
        };
        let cases = [
            (other_key, GroupIdInput::Key),
            (other_consensus, GroupIdInput::ConsensusParameters),
            (other_machine, GroupIdInput::MachineSignature),
            (other_sync, GroupIdInput::SyncSignature),
        ];
        for (changed, input) in cases {
            assert_ne!(base.group_id(), changed.group_id(), "{input} must matter");
            assert_eq!(base.differences(&changed), vec![input]);
        }
    }

    #[test]
    fn group_id_chain_is_ordered() {
        // Swapping the two signatures must not give the same id.
        let base = inputs();
        let swapped = GroupIdInputs {
            machine_signature: base.sync_signature,
            sync_signature: base.machine_signature,
            ..base
        };
        assert_ne!(base.group_id(), swapped.group_id());
    }

    #[test]
    fn group_key_debug_hides_the_secret() {
        let key = GroupKey::from_secret("hunter2");
        let shown = format!("{key:?}");
        let secret_hex: String = key.secret_bytes()[..4]
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        assert!(!shown.contains(&secret_hex));
    }
}
