//! Three nodes on loopback in one process: replication through any node,
//! leader failover without losing acknowledged writes, restart and catch-up,
//! and bond ports that survive garbage, wrong keys and foreign groups.
#![cfg(feature = "tokio")]

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use quorate::bond::{HandshakeFrame, PROTOCOL_VERSION, Refusal, WireFrame};
use quorate::examples::{KvCmd, KvQuery, KvResult, KvStore};
use quorate::raft::{GroupConfig, NodeOptions};
use quorate::runtime::{
    Backoff, FileLogOptions, FileLogStore, Group, GroupError, RuntimeConfig, frame,
};
use quorate::{
    Consistency, GroupIdInput, GroupIdInputs, GroupKey, PeerId, StateMachine, StateSync, UniqueId,
};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::{TcpListener, TcpStream};

const KEY: &str = "cluster test key";

struct TempDir(PathBuf);

impl TempDir {
    fn new(name: &str) -> Self {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_nanos();
        let path =
            std::env::temp_dir().join(format!("quorate-{name}-{}-{nanos}", std::process::id()));
        std::fs::create_dir_all(&path).unwrap();
        Self(path)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn group_config(count: u64) -> GroupConfig {
    GroupConfig {
        heartbeat_interval: Duration::from_millis(20),
        election_timeout_min: Duration::from_millis(100),
        election_timeout_max: Duration::from_millis(200),
        ..GroupConfig::with_voter_count(count)
    }
}

struct Cluster {
    dir: TempDir,
    addresses: BTreeMap<PeerId, SocketAddr>,
    groups: BTreeMap<PeerId, Group<KvStore>>,
    /// Client sessions each node keeps.
    sessions_max: usize,
}

impl Cluster {
    async fn start(name: &str, count: u64) -> Self {
        Self::start_with_sessions(name, count, quorate::raft::SESSIONS_MAX_DEFAULT).await
    }

    async fn start_with_sessions(name: &str, count: u64, sessions_max: usize) -> Self {
        let mut listeners = BTreeMap::new();
        for id in 1..=count {
            let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
            listeners.insert(PeerId(id), listener);
        }
        let addresses = listeners
            .iter()
            .map(|(id, listener)| (*id, listener.local_addr().unwrap()))
            .collect();
        let mut cluster = Self {
            dir: TempDir::new(name),
            addresses,
            groups: BTreeMap::new(),
            sessions_max,
        };
        for (id, listener) in listeners {
            cluster.start_on(id, listener);
        }
        cluster
    }

    fn config(&self, id: PeerId) -> RuntimeConfig {
        let peers = self
            .addresses
            .iter()
            .filter(|(peer, _)| **peer != id)
            .map(|(peer, address)| (*peer, *address))
            .collect();
        let mut config = RuntimeConfig::new(
            id,
            group_config(self.addresses.len() as u64),
            GroupKey::from_secret(KEY),
            peers,
        );
        config.options = NodeOptions {
            proposal_timeout: Duration::from_millis(1000),
            query_timeout: Duration::from_millis(1000),
            // Odd nodes lend their entries (the runtime then builds the owned
            // message itself): whichever leads, the others must not notice.
            lend_entries: id.0 % 2 == 1,
            sessions_max: self.sessions_max,
            ..NodeOptions::default()
        };
        config.backoff = Backoff {
            min: Duration::from_millis(10),
            max: Duration::from_millis(200),
        };
        config.call_timeout = Duration::from_secs(5);
        config.blocking_sync = false;
        config
    }

    fn start_on(&mut self, id: PeerId, listener: TcpListener) {
        let options = FileLogOptions {
            fsync: false,
            ..FileLogOptions::default()
        };
        let storage = FileLogStore::open(self.dir.0.join(id.to_string()), options).unwrap();
        let group = quorate::runtime::start_with_listener(
            self.config(id),
            listener,
            KvStore::default(),
            storage,
        )
        .unwrap();
        self.groups.insert(id, group);
    }

    async fn restart(&mut self, id: PeerId) {
        let listener = TcpListener::bind(self.addresses[&id]).await.unwrap();
        self.start_on(id, listener);
    }

    async fn stop(&mut self, id: PeerId) {
        let group = self.groups.remove(&id).unwrap();
        group.terminate().await;
    }

    fn group(&self, id: u64) -> &Group<KvStore> {
        &self.groups[&PeerId(id)]
    }

    /// Waits until one running node leads and every running node follows it.
    async fn leader(&self) -> PeerId {
        for _ in 0..500 {
            let leaders: Vec<PeerId> = self
                .groups
                .values()
                .filter(|g| g.is_leader())
                .map(|g| g.node_id())
                .collect();
            if let [leader] = leaders[..]
                && self.groups.values().all(|g| g.leader() == Some(leader))
            {
                return leader;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        panic!("no stable leader within 5 s");
    }
}

fn put(key: &str, value: &str) -> KvCmd {
    KvCmd::Put {
        key: key.into(),
        value: value.into(),
    }
}

async fn get(group: &Group<KvStore>, key: &str, consistency: Consistency) -> Option<String> {
    group
        .query(KvQuery::Get { key: key.into() }, consistency)
        .await
        .expect("query answered")
        .result
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn writes_through_leader_and_followers_are_applied_everywhere() {
    let cluster = Cluster::start("everywhere", 3).await;
    let leader = cluster.leader().await;
    let mut last = quorate::Index(0);
    for id in 1..=3u64 {
        for n in 0..10 {
            let index = cluster
                .group(id)
                .execute(put(&format!("k{id}-{n}"), &format!("v{n}")))
                .await
                .unwrap_or_else(|error| panic!("write via n{id} (leader {leader}): {error}"));
            last = last.max(index);
        }
    }
    let fed = cluster
        .group(2)
        .feed(put("fed", "yes"))
        .await
        .expect("feed");
    assert!(fed > last);
    for group in cluster.groups.values() {
        group
            .when()
            .reaches(fed)
            .await
            .expect("commit reaches every node");
        for id in 1..=3u64 {
            for n in 0..10 {
                assert_eq!(
                    get(group, &format!("k{id}-{n}"), Consistency::Weak)
                        .await
                        .as_deref(),
                    Some(format!("v{n}").as_str())
                );
            }
        }
        let answer = group
            .query(KvQuery::Get { key: "fed".into() }, Consistency::Strong)
            .await
            .unwrap();
        assert_eq!(answer.result.as_deref(), Some("yes"));
        assert!(answer.position.index() >= fed);
    }
    let many = cluster
        .group(3)
        .execute_many((0..20).map(|n| put(&format!("m{n}"), "x")))
        .await;
    assert!(many.iter().all(Result::is_ok), "{many:?}");
}

/// With one session kept for three nodes' clients, each node's write evicts the
/// other's session: a write of a forgotten session is refused as expired (and
/// not applied), and the next write from that handle opens a new session.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_write_of_a_forgotten_session_is_refused_then_the_next_one_opens_another() {
    let cluster = Cluster::start_with_sessions("sessions", 3, 1).await;
    cluster.leader().await;
    let append = |value: &str| KvCmd::Append {
        key: "a".into(),
        value: value.into(),
    };
    let (one, two) = (cluster.group(1), cluster.group(2));
    one.execute(append("1"))
        .await
        .expect("node 1's first write");
    two.execute(put("b", "1"))
        .await
        .expect("node 2's write evicts node 1's session");
    assert_eq!(
        one.execute(append("refused")).await,
        Err(GroupError::SessionExpired)
    );
    let index = one
        .execute(append("2"))
        .await
        .expect("a write in a new session");
    // The refused append was never applied.
    for group in cluster.groups.values() {
        group
            .when()
            .reaches(index)
            .await
            .expect("commit reaches every node");
        assert_eq!(
            get(group, "a", Consistency::Weak).await.as_deref(),
            Some("12")
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stopped_leader_is_replaced_and_no_acknowledged_write_is_lost() {
    let mut cluster = Cluster::start("failover", 3).await;
    let old_leader = cluster.leader().await;
    let followers: Vec<PeerId> = cluster
        .groups
        .keys()
        .copied()
        .filter(|id| *id != old_leader)
        .collect();
    // Writers on both followers keep writing while the leader goes away.
    let mut writers = Vec::new();
    for (number, follower) in followers.iter().enumerate() {
        let group = cluster.groups[follower].clone();
        writers.push(tokio::spawn(async move {
            let mut acknowledged = Vec::new();
            for n in 0..60 {
                let key = format!("w{number}-{n}");
                match group.execute(put(&key, "v")).await {
                    Ok(_) => acknowledged.push(key),
                    Err(GroupError::Unknown) => {}
                    Err(error) => panic!("{key}: {error}"),
                }
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
            acknowledged
        }));
    }
    tokio::time::sleep(Duration::from_millis(80)).await;
    cluster.stop(old_leader).await;
    let watcher = cluster.groups[&followers[0]].when();
    let new_leader = watcher.leader_changed().await.expect("leader changes");
    let new_leader = match new_leader {
        Some(leader) if leader != old_leader => leader,
        _ => cluster.leader().await,
    };
    assert_ne!(new_leader, old_leader);
    let mut acknowledged = Vec::new();
    for writer in writers {
        acknowledged.extend(writer.await.unwrap());
    }
    assert!(
        acknowledged.len() > 60,
        "writes kept succeeding: {}",
        acknowledged.len()
    );
    for follower in &followers {
        for key in &acknowledged {
            assert_eq!(
                get(&cluster.groups[follower], key, Consistency::Strong)
                    .await
                    .as_deref(),
                Some("v"),
                "{key} lost on {follower}"
            );
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restarted_node_recovers_its_log_and_catches_up() {
    let mut cluster = Cluster::start("restart", 3).await;
    let leader = cluster.leader().await;
    let victim = cluster
        .groups
        .keys()
        .copied()
        .find(|id| *id != leader)
        .unwrap();
    for n in 0..10 {
        cluster.groups[&leader]
            .execute(put(&format!("before-{n}"), "1"))
            .await
            .unwrap();
    }
    cluster.stop(victim).await;
    let mut last = quorate::Index(0);
    for n in 0..10 {
        last = cluster.groups[&leader]
            .execute(put(&format!("during-{n}"), "2"))
            .await
            .unwrap();
    }
    cluster.restart(victim).await;
    let restarted = &cluster.groups[&victim];
    restarted.when().reaches(last).await.expect("catches up");
    for n in 0..10 {
        assert_eq!(
            get(restarted, &format!("before-{n}"), Consistency::Weak)
                .await
                .as_deref(),
            Some("1")
        );
        assert_eq!(
            get(restarted, &format!("during-{n}"), Consistency::Weak)
                .await
                .as_deref(),
            Some("2")
        );
    }
}

/// `INCR key` as `quorate node` runs it: an increment under a fresh tag, then a
/// strong read of the result recorded under that tag.
async fn tagged_increment(group: &Group<KvStore>, key: &str) -> i64 {
    let tag = group.request_tag();
    let command = KvCmd::Increment {
        key: key.into(),
        by: 1,
        tag: Some(tag),
    };
    group.execute(command).await.expect("increment applied");
    let answer = group
        .query(KvQuery::Result { tag }, Consistency::Strong)
        .await
        .expect("result read");
    let text = answer.result.expect("result recorded");
    match KvResult::decode(&text) {
        Some(KvResult::Integer(value)) => value,
        other => panic!("increment refused: {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_increments_of_one_key_each_get_their_own_value() {
    let cluster = Cluster::start("increments", 3).await;
    let leader = cluster.leader().await;
    let group = &cluster.groups[&leader];
    // Both are proposed before either is applied, so a read of the key after
    // each would answer 2 twice.
    let (first, second) = tokio::join!(
        tagged_increment(group, "counter"),
        tagged_increment(group, "counter")
    );
    let mut values = [first, second];
    values.sort_unstable();
    assert_eq!(values, [1, 2]);

    // Many at once through every node, followers included.
    let mut tasks = Vec::new();
    for _ in 0..6 {
        for id in 1..=3u64 {
            let group = cluster.group(id).clone();
            tasks.push(tokio::spawn(async move {
                tagged_increment(&group, "counter").await
            }));
        }
    }
    let mut values = Vec::new();
    for task in tasks {
        values.push(task.await.unwrap());
    }
    values.sort_unstable();
    assert_eq!(values, (3..=20).collect::<Vec<i64>>());
    assert_eq!(
        get(group, "counter", Consistency::Strong).await.as_deref(),
        Some("20")
    );
}

/// Sends one RESP command on a new connection; returns the reply's first line.
async fn resp_call(address: SocketAddr, arguments: &[&str]) -> String {
    let stream = TcpStream::connect(address).await.unwrap();
    let mut stream = BufReader::new(stream);
    let mut request = format!("*{}\r\n", arguments.len());
    for argument in arguments {
        request.push_str(&format!("${}\r\n{argument}\r\n", argument.len()));
    }
    stream
        .get_mut()
        .write_all(request.as_bytes())
        .await
        .unwrap();
    let mut line = String::new();
    stream.read_line(&mut line).await.unwrap();
    line.trim_end().to_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn resp_incr_and_del_replies_are_exact_under_concurrent_writes() {
    let cluster = Cluster::start("resp-exact", 3).await;
    let mut ports = Vec::new();
    for group in cluster.groups.values() {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        ports.push(listener.local_addr().unwrap());
        tokio::spawn(quorate::runtime::resp::serve(listener, group.clone()));
    }
    cluster.leader().await;

    let mut calls = Vec::new();
    for n in 0..12 {
        let address = ports[n % ports.len()];
        calls.push(tokio::spawn(async move {
            resp_call(address, &["INCR", "hits"]).await
        }));
    }
    let mut replies = Vec::new();
    for call in calls {
        replies.push(call.await.unwrap());
    }
    replies.sort_by_key(|reply| reply.trim_start_matches(':').parse::<i64>().ok());
    let expected: Vec<String> = (1..=12).map(|n| format!(":{n}")).collect();
    assert_eq!(replies, expected);

    // Two concurrent DELs of one key: exactly one of them removed it.
    assert_eq!(resp_call(ports[0], &["SET", "doomed", "x"]).await, "+OK");
    let (a, b) = tokio::join!(
        resp_call(ports[1], &["DEL", "doomed", "absent"]),
        resp_call(ports[2], &["DEL", "doomed"])
    );
    let mut replies = [a, b];
    replies.sort();
    assert_eq!(replies, [":0", ":1"]);
    assert_eq!(resp_call(ports[0], &["EXISTS", "doomed"]).await, ":0");
    assert_eq!(resp_call(ports[0], &["DEL", "hits", "hits"]).await, ":1");

    // Refused increments leave the value alone and say why.
    assert_eq!(resp_call(ports[1], &["SET", "word", "text"]).await, "+OK");
    assert_eq!(
        resp_call(ports[1], &["INCR", "word"]).await,
        "-ERR value is not an integer or out of range"
    );
    let max = i64::MAX.to_string();
    assert_eq!(resp_call(ports[2], &["SET", "max", &max]).await, "+OK");
    assert_eq!(
        resp_call(ports[2], &["INCR", "max"]).await,
        "-ERR increment or decrement would overflow"
    );
    assert_eq!(
        resp_call(ports[0], &["GET", "max"]).await,
        format!("${}", max.len())
    );
}

/// Whether the peer closes the connection within ten seconds (generous for a
/// loaded CI box; a passing run returns as soon as it closes).
async fn closed_by_peer(stream: &mut TcpStream) -> bool {
    let mut buffer = [0u8; 4096];
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        match tokio::time::timeout_at(deadline, stream.read(&mut buffer)).await {
            Err(_) => return false,
            Ok(Ok(0)) | Ok(Err(_)) => return true,
            Ok(Ok(_)) => continue,
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn garbage_on_a_bond_port_closes_that_connection_and_the_node_keeps_serving() {
    let cluster = Cluster::start("garbage", 3).await;
    cluster.leader().await;
    let target = cluster.addresses[&PeerId(2)];

    let mut random = TcpStream::connect(target).await.unwrap();
    let mut bytes = [0u8; 512];
    let mut state = 0x9E37_79B9_7F4A_7C15u64;
    for byte in &mut bytes {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        *byte = state as u8;
    }
    bytes[..4].copy_from_slice(&64u32.to_le_bytes()); // a plausible length
    let _ = random.write_all(&bytes).await;
    assert!(
        closed_by_peer(&mut random).await,
        "random bytes close the connection"
    );

    let mut oversized = TcpStream::connect(target).await.unwrap();
    oversized.write_all(&u32::MAX.to_le_bytes()).await.unwrap();
    assert!(
        closed_by_peer(&mut oversized).await,
        "an oversized length closes the connection"
    );

    let index = cluster
        .group(2)
        .execute(put("still", "serving"))
        .await
        .expect("node 2 still serves");
    for group in cluster.groups.values() {
        group.when().reaches(index).await.unwrap();
    }
}

/// Waits until the group serves: a stable leader, and a write every node
/// applied. The nodes' own bonds are then made, so none of them, made late,
/// can clear a refusal a test is waiting to see.
async fn settled(cluster: &Cluster) {
    let leader = cluster.leader().await;
    let index = cluster
        .group(leader.0)
        .execute(put("settled", "yes"))
        .await
        .expect("the leader serves");
    for group in cluster.groups.values() {
        group.when().reaches(index).await.unwrap();
    }
}

/// Plays a peer by hand: sends our Hello, answers with the given proof
/// strategy, returns every handshake frame the node sent.
async fn fake_peer(
    address: SocketAddr,
    claimed: PeerId,
    key: GroupKey,
    inputs: GroupIdInputs,
) -> Vec<HandshakeFrame> {
    let mut stream = TcpStream::connect(address).await.unwrap();
    let (mut handshake, hello) =
        quorate::bond::Handshake::start(claimed, None, key, inputs, [7; 32]);
    let send =
        |frame: HandshakeFrame| frame::encode_frame(&WireFrame::<KvCmd>::Handshake(frame)).unwrap();
    stream.write_all(&send(hello)).await.unwrap();
    let mut received = Vec::new();
    loop {
        let read = tokio::time::timeout(
            Duration::from_secs(2),
            frame::read_message::<WireFrame<KvCmd>, _>(&mut stream, 1 << 16),
        )
        .await;
        let Ok(Ok(WireFrame::Handshake(frame))) = read else {
            return received;
        };
        received.push(frame.clone());
        match handshake.on_frame(frame) {
            Ok(quorate::bond::HandshakeStep::Continue(frames)) => {
                for frame in frames {
                    stream.write_all(&send(frame)).await.unwrap();
                }
            }
            Ok(quorate::bond::HandshakeStep::Bonded { .. }) => return received,
            Err(failure) => {
                if let Some(reason) = failure.refusal {
                    let _ = stream
                        .write_all(&send(HandshakeFrame::Refused { reason }))
                        .await;
                }
            }
        }
    }
}

fn kv_inputs(key: &GroupKey, machine_signature: UniqueId) -> GroupIdInputs {
    let machine = KvStore::default();
    GroupIdInputs::new(
        key,
        group_config(3).digest(),
        machine_signature,
        machine.state_sync().signature(),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wrong_key_is_refused_and_learns_nothing() {
    let cluster = Cluster::start("wrong-key", 3).await;
    settled(&cluster).await;
    let key = GroupKey::from_secret("not the key");
    let inputs = kv_inputs(&key, KvStore::default().signature());
    let frames = fake_peer(cluster.addresses[&PeerId(2)], PeerId(1), key, inputs).await;
    assert!(
        matches!(
            frames.first(),
            Some(HandshakeFrame::Hello {
                version: PROTOCOL_VERSION,
                ..
            })
        ),
        "{frames:?}"
    );
    assert!(
        !frames
            .iter()
            .any(|frame| matches!(frame, HandshakeFrame::Identity { .. })),
        "no identity to a peer without the key: {frames:?}"
    );
    assert!(
        frames.contains(&HandshakeFrame::Refused {
            reason: Refusal::Authentication
        }),
        "{frames:?}"
    );
    let failures = bond_failures_when(cluster.group(2), |failures| {
        failures.contains_key("peer n1")
    })
    .await;
    assert!(
        matches!(
            &failures.get("peer n1").map(|f| &f.error),
            Some(quorate::bond::BondError::WrongKey { .. })
        ),
        "{failures:?}"
    );
    still_serves(cluster.group(2), "wrong key").await;
}

/// Checks that `group` still commits a write after `what` was refused.
async fn still_serves(group: &Group<KvStore>, what: &str) {
    group
        .execute(put("after", what))
        .await
        .unwrap_or_else(|error| panic!("no longer serving after {what}: {error}"));
}

/// The node's bond failures once `ready` holds of them (or after ten seconds,
/// for the assertion that follows to report: a loaded CI box with every test
/// running at once has taken more than two).
async fn bond_failures_when(
    group: &Group<KvStore>,
    ready: impl Fn(&BTreeMap<String, quorate::runtime::BondFailure>) -> bool,
) -> BTreeMap<String, quorate::runtime::BondFailure> {
    for _ in 0..1_000 {
        let failures = group.bond_failures();
        if ready(&failures) {
            return failures;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    group.bond_failures()
}

/// A peer of protocol 3 sent its frames unsealed. Its Hello fails the
/// checksum, yet the bond fails naming both versions, and the node serves on.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unsealed_hello_of_an_older_protocol_is_refused_by_version() {
    let cluster = Cluster::start("old-protocol", 3).await;
    settled(&cluster).await;
    let mut stream = TcpStream::connect(cluster.addresses[&PeerId(2)])
        .await
        .unwrap();
    let hello = WireFrame::<KvCmd>::Handshake(HandshakeFrame::Hello {
        version: 3,
        peer: PeerId(1),
        nonce: [7; 32],
    });
    let payload = quorate::codec::encode(&hello).unwrap();
    let mut unsealed = (payload.len() as u32).to_le_bytes().to_vec();
    unsealed.extend_from_slice(&payload);
    stream.write_all(&unsealed).await.unwrap();
    let failures = bond_failures_when(cluster.group(2), |failures| {
        failures
            .values()
            .any(|failure| matches!(failure.error, quorate::bond::BondError::Version { .. }))
    })
    .await;
    assert!(
        failures.values().any(|failure| failure.error
            == quorate::bond::BondError::Version {
                ours: PROTOCOL_VERSION,
                theirs: 3
            }),
        "{failures:?}"
    );
    still_serves(cluster.group(2), "old protocol").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_mismatched_signature_is_refused_named_and_logged_once() {
    let cluster = Cluster::start("signature", 3).await;
    settled(&cluster).await;
    let key = GroupKey::from_secret(KEY);
    let inputs = kv_inputs(&key, UniqueId::from("kv_store_v1"));
    for attempt in 1..=2u64 {
        let frames = fake_peer(
            cluster.addresses[&PeerId(3)],
            PeerId(1),
            key.clone(),
            inputs,
        )
        .await;
        assert!(
            frames.contains(&HandshakeFrame::Refused {
                reason: Refusal::Mismatch(vec![GroupIdInput::MachineSignature])
            }),
            "{frames:?}"
        );
        // The refusal reaches the peer before the node has recorded it: wait.
        let failures = bond_failures_when(cluster.group(3), |failures| {
            failures
                .get("peer n1")
                .is_some_and(|failure| failure.repeats == attempt)
        })
        .await;
        let failure = failures.get("peer n1").unwrap_or_else(|| {
            panic!("attempt {attempt}: no bond failure recorded for n1 within 10 s: {failures:?}")
        });
        assert!(
            failure
                .error
                .to_string()
                .contains("state machine signature"),
            "{}",
            failure.error
        );
        assert_eq!(
            failure.repeats, attempt,
            "the same refusal is counted, not logged again"
        );
    }
    still_serves(cluster.group(3), "mismatch").await;
}
