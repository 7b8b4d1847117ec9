//! Real `quorate node` processes driven by stock `redis-cli`: writes through
//! every node, a node killed and restarted from its data directory. Skipped,
//! saying so, when `redis-cli` is not installed (`make install-redis-tools`).
//! A node stopped by SIGINT or SIGTERM exits 0 and keeps its writes (a raw
//! RESP client, so that test always runs).
#![cfg(feature = "tokio")]

use std::io::{BufRead, BufReader, Write};
use std::net::{TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

struct Node {
    child: Child,
}

impl Drop for Node {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

struct Cluster {
    data: PathBuf,
    bond_ports: Vec<u16>,
    resp_ports: Vec<u16>,
    nodes: Vec<Option<Node>>,
}

impl Cluster {
    fn new() -> Self {
        let data = std::env::temp_dir().join(format!("quorate-processes-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&data);
        let mut cluster = Self {
            data,
            bond_ports: (0..3).map(|_| free_port()).collect(),
            resp_ports: (0..3).map(|_| free_port()).collect(),
            nodes: Vec::new(),
        };
        for index in 0..3 {
            let node = cluster.spawn(index);
            cluster.nodes.push(Some(node));
        }
        cluster
    }

    fn spawn(&self, index: usize) -> Node {
        let mut command = Command::new(env!("CARGO_BIN_EXE_quorate"));
        command.args([
            "node",
            "--id",
            &(index + 1).to_string(),
            "--listen",
            &format!("127.0.0.1:{}", self.bond_ports[index]),
            "--resp",
            &format!("127.0.0.1:{}", self.resp_ports[index]),
            "--key",
            "process test",
            "--data",
            &self
                .data
                .join((index + 1).to_string())
                .display()
                .to_string(),
            "--heartbeat-ms",
            "20",
            "--election-min-ms",
            "100",
            "--election-max-ms",
            "200",
        ]);
        for peer in (0..3).filter(|peer| *peer != index) {
            command.args([
                "--peer",
                &format!("{}=127.0.0.1:{}", peer + 1, self.bond_ports[peer]),
            ]);
        }
        command.stdout(Stdio::null()).stderr(Stdio::null());
        Node {
            child: command.spawn().expect("quorate node starts"),
        }
    }

    /// Runs redis-cli against node `index` until it answers without an error
    /// (or 10 s pass); returns the answer.
    fn redis(&self, index: usize, arguments: &[&str]) -> String {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let output = Command::new("redis-cli")
                .args(["-p", &self.resp_ports[index].to_string()])
                .args(arguments)
                .output()
                .expect("redis-cli runs");
            let answer = String::from_utf8_lossy(&output.stdout).trim().to_owned();
            let failed = !output.status.success()
                || answer.is_empty() && arguments[0] != "GET"
                || answer.starts_with("ERR")
                || answer.starts_with("CLUSTERDOWN")
                || answer.starts_with("TRYAGAIN")
                || answer.contains("Could not connect");
            if !failed {
                return answer;
            }
            assert!(
                Instant::now() < deadline,
                "node {} never answered {arguments:?}: {answer}",
                index + 1
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        self.nodes.clear();
        let _ = std::fs::remove_dir_all(&self.data);
    }
}

fn redis_cli_installed() -> bool {
    Command::new("redis-cli")
        .arg("--version")
        .output()
        .is_ok_and(|output| output.status.success())
}

#[test]
fn redis_cli_drives_three_node_processes_through_a_restart() {
    if !redis_cli_installed() {
        eprintln!(
            "SKIPPED redis_cli_drives_three_node_processes_through_a_restart: redis-cli is not installed (run `make install-redis-tools`)"
        );
        return;
    }
    let mut cluster = Cluster::new();
    assert_eq!(cluster.redis(0, &["PING"]), "PONG");
    for index in 0..3 {
        assert_eq!(
            cluster.redis(
                index,
                &["SET", &format!("key{index}"), &format!("value{index}")]
            ),
            "OK"
        );
    }
    for index in 0..3 {
        for key in 0..3 {
            assert_eq!(
                cluster.redis(index, &["GET", &format!("key{key}")]),
                format!("value{key}")
            );
        }
    }
    assert_eq!(cluster.redis(1, &["INCR", "counter"]), "1");
    assert_eq!(cluster.redis(2, &["INCR", "counter"]), "2");
    assert_eq!(
        cluster.redis(0, &["EXISTS", "key0", "key1", "nothing"]),
        "2"
    );

    // Kill node 1 (maybe the leader), write through the others, restart it.
    cluster.nodes[0] = None;
    assert_eq!(cluster.redis(1, &["SET", "while-down", "yes"]), "OK");
    assert_eq!(cluster.redis(2, &["DEL", "key2"]), "1");
    cluster.nodes[0] = Some(cluster.spawn(0));
    assert_eq!(cluster.redis(0, &["GET", "while-down"]), "yes");
    assert_eq!(cluster.redis(0, &["GET", "key0"]), "value0");
    assert_eq!(cluster.redis(0, &["EXISTS", "key2"]), "0");
}

/// Sends one RESP command to `port`; the reply's first line, or `None` if the
/// node is not answering yet.
fn resp_call(port: u16, arguments: &[&str]) -> Option<String> {
    let mut stream = TcpStream::connect(("127.0.0.1", port)).ok()?;
    stream.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    let mut request = format!("*{}\r\n", arguments.len());
    for argument in arguments {
        request.push_str(&format!("${}\r\n{argument}\r\n", argument.len()));
    }
    stream.write_all(request.as_bytes()).ok()?;
    let mut reader = BufReader::new(stream);
    let mut line = String::new();
    reader.read_line(&mut line).ok()?;
    if arguments[0] == "GET" && line.starts_with('$') && !line.starts_with("$-1") {
        line.clear();
        reader.read_line(&mut line).ok()?;
    }
    Some(line.trim_end().to_owned())
}

/// Retries `resp_call` until it answers `expected` (or 10 s pass).
fn resp_until(port: u16, arguments: &[&str], expected: &str) {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let answer = resp_call(port, arguments);
        if answer.as_deref() == Some(expected) {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "{arguments:?} answered {answer:?}, not {expected:?}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn wait_for_exit(child: &mut Child) -> ExitStatus {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        if let Some(status) = child.try_wait().expect("waits") {
            return status;
        }
        assert!(
            Instant::now() < deadline,
            "the node did not exit on a signal"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn sigint_and_sigterm_stop_a_node_cleanly_and_its_writes_survive() {
    let data = std::env::temp_dir().join(format!("quorate-signals-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&data);
    let bond_port = free_port();
    let resp_port = free_port();
    let spawn = || {
        Command::new(env!("CARGO_BIN_EXE_quorate"))
            .args(["node", "--id", "1", "--key", "signal test"])
            .args(["--listen", &format!("127.0.0.1:{bond_port}")])
            .args(["--resp", &format!("127.0.0.1:{resp_port}")])
            .args(["--data", &data.display().to_string()])
            .args(["--heartbeat-ms", "20", "--election-min-ms", "100"])
            .args(["--election-max-ms", "200"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("quorate node starts")
    };
    for (round, signal) in ["-INT", "-TERM"].into_iter().enumerate() {
        let mut node = Node { child: spawn() };
        let key = format!("key{round}");
        resp_until(resp_port, &["SET", &key, "kept"], "+OK");
        // Every earlier round's write came back from the data directory.
        for earlier in 0..round {
            resp_until(resp_port, &["GET", &format!("key{earlier}")], "kept");
        }
        let killed = Command::new("kill")
            .args([signal, &node.child.id().to_string()])
            .status()
            .expect("kill runs");
        assert!(killed.success());
        let status = wait_for_exit(&mut node.child);
        assert!(status.success(), "kill {signal}: exited with {status}");
        assert!(
            resp_call(resp_port, &["PING"]).is_none(),
            "the RESP port is closed"
        );
    }
    let node = Node { child: spawn() };
    resp_until(resp_port, &["GET", "key0"], "kept");
    resp_until(resp_port, &["GET", "key1"], "kept");
    drop(node);
    let _ = std::fs::remove_dir_all(&data);
}
