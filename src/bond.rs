//! Bonding: the handshake two members run before any Raft message passes
//! between them. Sans-IO, so the simulator and the tokio runtime run the same
//! code over their own transports.
//!
//! ```text
//!   A                                      B
//!   Hello { version, A, nonce_a }  ──▶
//!                                  ◀──     Hello { version, B, nonce_b }
//!   Proof { mac_A }                ──▶     mac over (A, B, nonce_a, nonce_b) keyed by
//!                                  ◀──     Proof { mac_B }   the group key
//!   Identity { inputs_A }          ──▶     sent only after the peer's proof verified
//!                                  ◀──     Identity { inputs_B }
//!   bonded iff inputs_A and inputs_B derive the same GroupId
//! ```
//!
//! * The key never crosses the wire: a proof is a keyed blake3 hash over both
//!   peers' ids and both nonces, so a recorded handshake cannot be replayed
//!   against a fresh nonce.
//! * A peer with the wrong key sees a Hello and a proof and nothing else: the
//!   GroupId inputs are sent only to a peer that proved the key.
//! * A mismatch names what differs ([`GroupIdInput`]): the machine signature
//!   after a bad rolling upgrade, the sync signature, the consensus parameters.
//!
//! After the handshake, frames carry Raft messages: [`WireFrame`].

use core::fmt;

use serde::{Deserialize, Serialize};

use crate::id::{GroupIdInput, GroupIdInputs, GroupKey, PeerId};
use crate::raft::{LentAppendEntries, LogEntry, Message};

/// The handshake's protocol version; peers of different versions refuse.
/// Version 2: a refusal of AppendEntries names the `prev` it refused.
/// Version 3: proposals and command entries carry their session's stamp.
/// Version 4: every frame on a bond ends with its CRC32C.
pub const PROTOCOL_VERSION: u32 = 4;

const CONTEXT_PROOF: &str = "quorate 2026 bond proof v1";

/// A handshake message.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum HandshakeFrame {
    /// Who I am, and a fresh nonce for you to prove the key over.
    Hello {
        /// [`PROTOCOL_VERSION`] of the sender.
        version: u32,
        /// The sender's member id.
        peer: PeerId,
        /// Fresh randomness from the sender.
        nonce: [u8; 32],
    },
    /// Proof of the group key over both ids and both nonces.
    Proof {
        /// The keyed hash.
        mac: [u8; 32],
    },
    /// The sender's GroupId inputs; sent only to a peer whose proof verified.
    Identity {
        /// What the sender's GroupId is derived from.
        inputs: GroupIdInputs,
    },
    /// The sender refuses the bond.
    Refused {
        /// Why.
        reason: Refusal,
    },
}

/// Why a bond was refused, as told to the peer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Refusal {
    /// Different protocol versions.
    Version,
    /// The proof did not verify: not the same group key. Nothing more is said.
    Authentication,
    /// Same key, different GroupId; the inputs that differ.
    Mismatch(Vec<GroupIdInput>),
    /// The peer broke the protocol (unexpected frame, wrong id).
    Protocol,
}

/// A frame on a bond: the handshake, then Raft messages.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum WireFrame<C> {
    /// A handshake message.
    Handshake(HandshakeFrame),
    /// A Raft message, accepted only on an established bond.
    Raft(Message<C>),
}

/// The place of `Raft` among [`WireFrame`]'s variants, as serde numbers it.
const RAFT_VARIANT: u32 = 1;

/// A [`WireFrame::Raft`] frame of an AppendEntries whose entries are lent by
/// the log: the same bytes as the owned frame (see [`LentAppendEntries`]).
#[derive(Debug, Clone, Copy)]
pub struct LentFrame<'a, E>(pub LentAppendEntries<'a, E>);

impl<C: Serialize> Serialize for LentFrame<'_, LogEntry<C>> {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_newtype_variant("WireFrame", RAFT_VARIANT, "Raft", &self.0)
    }
}

/// A [`WireFrame::Raft`] frame of a borrowed message: the same bytes as the
/// owned frame, encoded without moving the message into one.
#[derive(Debug, Clone, Copy)]
pub(crate) struct RaftFrame<'a, C>(pub &'a Message<C>);

impl<C: Serialize> Serialize for RaftFrame<'_, C> {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_newtype_variant("WireFrame", RAFT_VARIANT, "Raft", self.0)
    }
}

/// Why a bond could not be established.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BondError {
    /// The peer speaks another protocol version.
    Version {
        /// Our version.
        ours: u32,
        /// Theirs.
        theirs: u32,
    },
    /// The peer does not hold the group key.
    WrongKey {
        /// The peer's claimed id.
        peer: PeerId,
    },
    /// The peer holds the key but belongs to another group.
    Mismatch {
        /// The peer.
        peer: PeerId,
        /// Which GroupId inputs differ.
        differences: Vec<GroupIdInput>,
    },
    /// The peer answered with an id other than the one expected.
    UnexpectedPeer {
        /// The id we expected.
        expected: PeerId,
        /// The id it claimed.
        claimed: PeerId,
    },
    /// The peer refused the bond.
    Refused {
        /// Why, as the peer said.
        reason: Refusal,
    },
    /// The peer sent a frame out of order.
    Protocol(&'static str),
}

impl fmt::Display for BondError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Version { ours, theirs } => {
                write!(f, "protocol version mismatch: ours {ours}, theirs {theirs}")
            }
            Self::WrongKey { peer } => write!(f, "{peer} does not hold the group key"),
            Self::Mismatch { peer, differences } => {
                write!(f, "{peer} belongs to another group: different ")?;
                for (position, input) in differences.iter().enumerate() {
                    if position > 0 {
                        f.write_str(", ")?;
                    }
                    write!(f, "{input}")?;
                }
                Ok(())
            }
            Self::UnexpectedPeer { expected, claimed } => {
                write!(f, "expected {expected} but the peer says it is {claimed}")
            }
            Self::Refused { reason } => write!(f, "the peer refused the bond: {reason:?}"),
            Self::Protocol(problem) => write!(f, "handshake protocol violation: {problem}"),
        }
    }
}

impl std::error::Error for BondError {}

/// Where a handshake stands.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Stage {
    AwaitingHello,
    AwaitingProof { peer: PeerId, peer_nonce: [u8; 32] },
    AwaitingIdentity { peer: PeerId },
    Bonded { peer: PeerId },
    Failed,
}

/// A failed handshake: the error, and the refusal to send the peer (if any)
/// before closing the connection.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HandshakeFailure {
    /// What went wrong.
    pub error: BondError,
    /// What to tell the peer.
    pub refusal: Option<Refusal>,
}

/// What a handshake step produced.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HandshakeStep {
    /// Send these frames and wait for more.
    Continue(Vec<HandshakeFrame>),
    /// Send these frames; the bond with `peer` is established.
    Bonded {
        /// Frames still to send.
        frames: Vec<HandshakeFrame>,
        /// The peer.
        peer: PeerId,
    },
}

/// One side of a handshake.
#[derive(Debug, Clone)]
pub struct Handshake {
    local: PeerId,
    expected_peer: Option<PeerId>,
    key: GroupKey,
    inputs: GroupIdInputs,
    nonce: [u8; 32],
    stage: Stage,
}

impl Handshake {
    /// Starts a handshake as `local`, expecting `expected_peer` if dialing a known
    /// peer. Returns the handshake and the Hello to send. `nonce` must be fresh
    /// randomness (from the seed in simulation, the OS in production).
    pub fn start(
        local: PeerId,
        expected_peer: Option<PeerId>,
        key: GroupKey,
        inputs: GroupIdInputs,
        nonce: [u8; 32],
    ) -> (Self, HandshakeFrame) {
        let hello = HandshakeFrame::Hello {
            version: PROTOCOL_VERSION,
            peer: local,
            nonce,
        };
        let handshake = Self {
            local,
            expected_peer,
            key,
            inputs,
            nonce,
            stage: Stage::AwaitingHello,
        };
        (handshake, hello)
    }

    /// The peer, once bonded.
    pub fn bonded_peer(&self) -> Option<PeerId> {
        match self.stage {
            Stage::Bonded { peer } => Some(peer),
            _ => None,
        }
    }

    /// Handles a frame from the peer.
    ///
    /// # Errors
    ///
    /// A [`HandshakeFailure`] ends the handshake; its refusal (if any) should still
    /// be sent so the peer learns why, then the connection closed.
    pub fn on_frame(&mut self, frame: HandshakeFrame) -> Result<HandshakeStep, HandshakeFailure> {
        let stage = core::mem::replace(&mut self.stage, Stage::Failed);
        let (stage, step) = self.step(stage, frame)?;
        self.stage = stage;
        Ok(step)
    }

    fn step(
        &self,
        stage: Stage,
        frame: HandshakeFrame,
    ) -> Result<(Stage, HandshakeStep), HandshakeFailure> {
        let fail = |error: BondError, refusal: Option<Refusal>| HandshakeFailure { error, refusal };
        match (stage, frame) {
            (_, HandshakeFrame::Refused { reason }) => {
                Err(fail(BondError::Refused { reason }, None))
            }
            (
                Stage::AwaitingHello,
                HandshakeFrame::Hello {
                    version,
                    peer,
                    nonce,
                },
            ) => {
                if version != PROTOCOL_VERSION {
                    let error = BondError::Version {
                        ours: PROTOCOL_VERSION,
                        theirs: version,
                    };
                    return Err(fail(error, Some(Refusal::Version)));
                }
                if let Some(expected) = self.expected_peer
                    && expected != peer
                {
                    let error = BondError::UnexpectedPeer {
                        expected,
                        claimed: peer,
                    };
                    return Err(fail(error, Some(Refusal::Protocol)));
                }
                if peer == self.local {
                    return Err(fail(
                        BondError::Protocol("the peer claims our own id"),
                        Some(Refusal::Protocol),
                    ));
                }
                let mac = self.proof(self.local, peer, self.nonce, nonce);
                let stage = Stage::AwaitingProof {
                    peer,
                    peer_nonce: nonce,
                };
                Ok((
                    stage,
                    HandshakeStep::Continue(vec![HandshakeFrame::Proof { mac }]),
                ))
            }
            (Stage::AwaitingProof { peer, peer_nonce }, HandshakeFrame::Proof { mac }) => {
                let expected = self.proof(peer, self.local, peer_nonce, self.nonce);
                // blake3::Hash compares in constant time.
                if blake3::Hash::from(mac) != blake3::Hash::from(expected) {
                    return Err(fail(
                        BondError::WrongKey { peer },
                        Some(Refusal::Authentication),
                    ));
                }
                let identity = HandshakeFrame::Identity {
                    inputs: self.inputs,
                };
                Ok((
                    Stage::AwaitingIdentity { peer },
                    HandshakeStep::Continue(vec![identity]),
                ))
            }
            (Stage::AwaitingIdentity { peer }, HandshakeFrame::Identity { inputs }) => {
                let differences = self.inputs.differences(&inputs);
                if differences.is_empty() {
                    Ok((
                        Stage::Bonded { peer },
                        HandshakeStep::Bonded {
                            frames: Vec::new(),
                            peer,
                        },
                    ))
                } else {
                    let refusal = Some(Refusal::Mismatch(differences.clone()));
                    Err(fail(BondError::Mismatch { peer, differences }, refusal))
                }
            }
            _ => Err(fail(
                BondError::Protocol("frame out of order"),
                Some(Refusal::Protocol),
            )),
        }
    }

    /// The keyed hash `prover` sends `verifier`: over both ids and both nonces, in
    /// prover-then-verifier order so a proof cannot be reflected back.
    fn proof(
        &self,
        prover: PeerId,
        verifier: PeerId,
        prover_nonce: [u8; 32],
        verifier_nonce: [u8; 32],
    ) -> [u8; 32] {
        let key = blake3::derive_key(CONTEXT_PROOF, self.key.secret_bytes());
        let mut hasher = blake3::Hasher::new_keyed(&key);
        hasher.update(&prover.0.to_le_bytes());
        hasher.update(&verifier.0.to_le_bytes());
        hasher.update(&prover_nonce);
        hasher.update(&verifier_nonce);
        *hasher.finalize().as_bytes()
    }
}

/// Runs a whole handshake between two in-memory sides, passing every frame
/// through the codec: what the simulator does when two nodes meet. Returns the
/// outcome on each side.
pub fn handshake_in_memory(
    a: (PeerId, GroupKey, GroupIdInputs, [u8; 32]),
    b: (PeerId, GroupKey, GroupIdInputs, [u8; 32]),
) -> (Result<PeerId, BondError>, Result<PeerId, BondError>) {
    let (mut side_a, hello_a) = Handshake::start(a.0, Some(b.0), a.1, a.2, a.3);
    let (mut side_b, hello_b) = Handshake::start(b.0, Some(a.0), b.1, b.2, b.3);
    let mut to_a = vec![hello_b];
    let mut to_b = vec![hello_a];
    let mut result_a: Option<Result<PeerId, BondError>> = None;
    let mut result_b: Option<Result<PeerId, BondError>> = None;
    // Each side sends at most four frames; a few rounds always settle it.
    for _ in 0..8 {
        let mut next_to_a = Vec::new();
        let mut next_to_b = Vec::new();
        deliver(&mut side_a, &mut to_a, &mut next_to_b, &mut result_a);
        deliver(&mut side_b, &mut to_b, &mut next_to_a, &mut result_b);
        to_a = next_to_a;
        to_b = next_to_b;
        if to_a.is_empty() && to_b.is_empty() {
            break;
        }
    }
    let unfinished = || Err(BondError::Protocol("handshake did not finish"));
    (
        result_a.unwrap_or_else(unfinished),
        result_b.unwrap_or_else(unfinished),
    )
}

fn deliver(
    side: &mut Handshake,
    inbox: &mut Vec<HandshakeFrame>,
    outbox: &mut Vec<HandshakeFrame>,
    result: &mut Option<Result<PeerId, BondError>>,
) {
    for frame in inbox.drain(..) {
        if result.is_some() {
            // A side that finished ignores the rest; a refusal it sent is final.
            if !matches!(result, Some(Ok(_))) {
                continue;
            }
            if let HandshakeFrame::Refused { reason } = frame {
                *result = Some(Err(BondError::Refused { reason }));
            }
            continue;
        }
        // Sealed and unsealed, as a bond's frames are on TCP.
        let Ok(bytes) = crate::codec::seal(&frame) else {
            *result = Some(Err(BondError::Protocol("unencodable frame")));
            continue;
        };
        let Ok(frame) = crate::codec::unseal::<HandshakeFrame>(&bytes) else {
            *result = Some(Err(BondError::Protocol("undecodable frame")));
            continue;
        };
        match side.on_frame(frame) {
            Ok(HandshakeStep::Continue(frames)) => outbox.extend(frames),
            Ok(HandshakeStep::Bonded { frames, peer }) => {
                outbox.extend(frames);
                *result = Some(Ok(peer));
            }
            Err(failure) => {
                outbox.extend(
                    failure
                        .refusal
                        .map(|reason| HandshakeFrame::Refused { reason }),
                );
                *result = Some(Err(failure.error));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::id::UniqueId;
    use crate::log::{Cursor, Index, Term};
    use crate::raft::AppendHeader;

    #[test]
    fn a_lent_frame_is_sealed_and_unsealed_as_the_owned_frame() {
        let held: Vec<(LogEntry<u64>, Term)> =
            (1..=5).map(|n| (LogEntry::Blank, Term(n))).collect();
        let header = AppendHeader {
            term: Term(9),
            prev: Cursor::new(Term(1), Index(300)),
            leader_commit: Index(299),
            read_round: 1 << 50,
        };
        let owned = WireFrame::Raft(
            header.with_entries(
                held.iter()
                    .map(|(entry, term)| (*term, entry.clone()))
                    .collect(),
            ),
        );
        let lent = LentFrame(LentAppendEntries {
            header,
            entries: &held,
        });
        let sealed = crate::codec::seal(&lent).expect("encodes");
        assert_eq!(sealed, crate::codec::seal(&owned).expect("encodes"));
        assert_eq!(crate::codec::unseal::<WireFrame<u64>>(&sealed), Ok(owned));
    }

    #[test]
    fn a_borrowed_raft_frame_is_sealed_as_the_owned_frame() {
        let header = AppendHeader {
            term: Term(4),
            prev: Cursor::new(Term(3), Index(41)),
            leader_commit: Index(40),
            read_round: 7,
        };
        let messages: [Message<u64>; 3] = [
            Message::PreVote {
                term: Term(5),
                last_log: Cursor::new(Term(2), Index(9)),
            },
            header.with_entries(Vec::new()),
            header.with_entries(vec![(Term(4), LogEntry::Blank); 3]),
        ];
        for message in messages {
            let sealed = crate::codec::seal(&RaftFrame(&message)).expect("encodes");
            let owned = WireFrame::Raft(message);
            assert_eq!(sealed, crate::codec::seal(&owned).expect("encodes"));
            assert_eq!(crate::codec::unseal::<WireFrame<u64>>(&sealed), Ok(owned));
        }
    }

    fn inputs(key: &GroupKey, machine: &str) -> GroupIdInputs {
        GroupIdInputs::new(
            key,
            [3; 32],
            UniqueId::from(machine),
            UniqueId::from("sync"),
        )
    }

    fn side(
        id: u64,
        secret: &str,
        machine: &str,
        nonce: u8,
    ) -> (PeerId, GroupKey, GroupIdInputs, [u8; 32]) {
        let key = GroupKey::from_secret(secret);
        let inputs = inputs(&key, machine);
        (PeerId(id), key, inputs, [nonce; 32])
    }

    #[test]
    fn same_group_bonds() {
        let (a, b) = handshake_in_memory(side(1, "k", "m1", 1), side(2, "k", "m1", 2));
        assert_eq!(a, Ok(PeerId(2)));
        assert_eq!(b, Ok(PeerId(1)));
    }

    #[test]
    fn a_different_signature_is_refused_and_named() {
        let (a, b) = handshake_in_memory(side(1, "k", "m1", 1), side(2, "k", "m2", 2));
        let expected = vec![GroupIdInput::MachineSignature];
        assert_eq!(
            a,
            Err(BondError::Mismatch {
                peer: PeerId(2),
                differences: expected.clone()
            })
        );
        assert_eq!(
            b,
            Err(BondError::Mismatch {
                peer: PeerId(1),
                differences: expected
            })
        );
        assert!(
            a.unwrap_err()
                .to_string()
                .contains("state machine signature")
        );
    }

    #[test]
    fn a_wrong_key_learns_nothing_about_the_group() {
        let key = GroupKey::from_secret("right");
        let inputs = inputs(&key, "m1");
        let (mut honest, _) = Handshake::start(PeerId(1), None, key, inputs, [1; 32]);
        // The attacker sends a Hello and a guessed proof.
        let step = honest.on_frame(HandshakeFrame::Hello {
            version: PROTOCOL_VERSION,
            peer: PeerId(2),
            nonce: [2; 32],
        });
        assert!(
            matches!(step, Ok(HandshakeStep::Continue(ref frames)) if matches!(frames[..], [HandshakeFrame::Proof { .. }]))
        );
        let refused = honest.on_frame(HandshakeFrame::Proof { mac: [0; 32] });
        let Err(failure) = refused else {
            panic!("a bad proof must be refused");
        };
        assert_eq!(failure.error, BondError::WrongKey { peer: PeerId(2) });
        assert_eq!(failure.refusal, Some(Refusal::Authentication));
    }

    #[test]
    fn a_recorded_proof_does_not_replay_against_a_new_nonce() {
        let key = GroupKey::from_secret("k");
        let inputs = inputs(&key, "m1");
        // Record a proof that node 2 made for nonce 1.
        let (mut first, _) = Handshake::start(PeerId(2), None, key.clone(), inputs, [9; 32]);
        let Ok(HandshakeStep::Continue(frames)) = first.on_frame(HandshakeFrame::Hello {
            version: PROTOCOL_VERSION,
            peer: PeerId(1),
            nonce: [1; 32],
        }) else {
            panic!("hello accepted");
        };
        let recorded = frames[0].clone();
        // Node 1 now uses a fresh nonce; the replayed proof fails.
        let (mut verifier, _) = Handshake::start(PeerId(1), None, key, inputs, [7; 32]);
        verifier
            .on_frame(HandshakeFrame::Hello {
                version: PROTOCOL_VERSION,
                peer: PeerId(2),
                nonce: [9; 32],
            })
            .expect("hello accepted");
        assert!(matches!(
            verifier.on_frame(recorded),
            Err(HandshakeFailure {
                error: BondError::WrongKey { .. },
                ..
            })
        ));
    }

    #[test]
    fn a_wrong_key_is_refused_on_both_sides() {
        let (a, b) = handshake_in_memory(side(1, "k1", "m1", 1), side(2, "k2", "m1", 2));
        assert_eq!(a, Err(BondError::WrongKey { peer: PeerId(2) }));
        assert_eq!(b, Err(BondError::WrongKey { peer: PeerId(1) }));
    }
}
