//! Three replicas of a partition in three processes, replicating over
//! loopback TCP, with a fail-over.
//!
//! ```text
//! cargo run --release --example replication_tcp
//! ```
//!
//! The parent process starts three children (this same program with
//! `node <id> <dir>`), each a [`ReplicaLog`] serving fetches on a TCP port
//! and, as a follower, fetching from the leader through a [`Replicator`]
//! implemented over TCP with a simple framing (a 4-byte big-endian length,
//! then [`FetchRequest::encode`] or [`FetchResponse::encode`] bytes). The
//! parent plays the controller over the children's stdin:
//!
//! 1. node 0 leads epoch 1; 1000 records are appended with `Acks::All`;
//! 2. the followers pause, and node 0 appends 50 records only it has;
//! 3. node 0 is killed (SIGKILL); node 1 leads epoch 2, node 2 follows it,
//!    and 500 more records are appended with `Acks::All`;
//! 4. node 0 restarts as a follower of epoch 2: its first fetch finds the
//!    divergence, it truncates its 50 records, and catches up.
//!
//! At the end all three logs are byte-for-byte identical (same CRC-32C),
//! and every acknowledged record is there.

use embedlog::{
    Acks, Error, FetchRequest, FetchResponse, LogConfig, ReadLimit, Record, ReplicaId, ReplicaLog,
    ReplicationConfig, Replicator, Role,
};
use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, ChildStdout, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

type BoxResult<T> = Result<T, Box<dyn std::error::Error>>;

fn write_frame(s: &mut TcpStream, b: &[u8]) -> std::io::Result<()> {
    s.write_all(&(b.len() as u32).to_be_bytes())?;
    s.write_all(b)
}

fn read_frame(s: &mut TcpStream) -> std::io::Result<Vec<u8>> {
    let mut len = [0u8; 4];
    s.read_exact(&mut len)?;
    let n = u32::from_be_bytes(len) as usize;
    if n > 64 << 20 {
        return Err(std::io::Error::other(format!("frame of {n} bytes")));
    }
    let mut b = vec![0u8; n];
    s.read_exact(&mut b)?;
    Ok(b)
}

/// The host's transport: one TCP connection per leader, reopened after
/// any error.
struct Tcp {
    peers: Mutex<BTreeMap<ReplicaId, SocketAddr>>,
    conns: Mutex<BTreeMap<ReplicaId, TcpStream>>,
}

impl Replicator for Tcp {
    fn fetch(&self, leader: ReplicaId, request: &FetchRequest) -> embedlog::Result<FetchResponse> {
        let lost = |e: std::io::Error| Error::Transport {
            reason: format!("to replica {leader}: {e}"),
        };
        let mut conns = self.conns.lock().map_err(|_| Error::Transport {
            reason: "poisoned".into(),
        })?;
        let s = match conns.entry(leader) {
            std::collections::btree_map::Entry::Occupied(e) => e.into_mut(),
            std::collections::btree_map::Entry::Vacant(e) => {
                let addr = self
                    .peers
                    .lock()
                    .ok()
                    .and_then(|p| p.get(&leader).copied())
                    .ok_or_else(|| Error::Transport {
                        reason: format!("no address for replica {leader}"),
                    })?;
                let s = TcpStream::connect_timeout(&addr, Duration::from_secs(1)).map_err(lost)?;
                s.set_read_timeout(Some(Duration::from_secs(5)))
                    .map_err(lost)?;
                s.set_nodelay(true).map_err(lost)?;
                e.insert(s)
            }
        };
        let r = write_frame(s, &request.encode()).and_then(|()| read_frame(s));
        match r {
            Ok(b) => FetchResponse::decode(&b),
            Err(e) => {
                conns.remove(&leader);
                Err(lost(e))
            }
        }
    }
}

/// CRC-32C of every batch of the log, its end and high watermark.
fn fingerprint(r: &ReplicaLog) -> (u64, u64, u32) {
    let mut crc = 0u32;
    let log = r.log();
    for b in log.reader(log.start_offset(), ReadLimit::bytes(1 << 20)) {
        let Ok(b) = b else { break };
        crc = crc32c::crc32c_append(crc, b.as_bytes());
    }
    (r.log_end_offset(), r.high_watermark(), crc)
}

/// A child: one replica, its TCP server, its follower loop, and commands
/// on stdin.
fn node(id: ReplicaId, dir: &Path) -> BoxResult<()> {
    let config = ReplicationConfig::default()
        .min_insync_replicas(2)
        .replica_lag_time(Duration::from_secs(2))
        .fetch_max_wait(Duration::from_millis(100));
    let replica = Arc::new(ReplicaLog::open(dir, LogConfig::default(), id, config)?);
    let listener = TcpListener::bind("127.0.0.1:0")?;
    println!("port {}", listener.local_addr()?.port());
    {
        let replica = replica.clone();
        std::thread::spawn(move || {
            for conn in listener.incoming() {
                let Ok(mut conn) = conn else { continue };
                let replica = replica.clone();
                std::thread::spawn(move || {
                    while let Ok(b) = read_frame(&mut conn) {
                        let resp = match FetchRequest::decode(&b) {
                            Ok(req) => replica.handle_fetch(&req),
                            Err(_) => return,
                        };
                        if write_frame(&mut conn, &resp.encode()).is_err() {
                            return;
                        }
                    }
                });
            }
        });
    }
    let transport = Arc::new(Tcp {
        peers: Mutex::new(BTreeMap::new()),
        conns: Mutex::new(BTreeMap::new()),
    });
    let paused = Arc::new(AtomicBool::new(false));
    // Held while a fetch is in flight, so that `pause` can wait for it.
    let fetching = Arc::new(Mutex::new(()));
    {
        let (replica, transport, paused) = (replica.clone(), transport.clone(), paused.clone());
        let fetching = fetching.clone();
        std::thread::spawn(move || {
            loop {
                if paused.load(Ordering::SeqCst) || !matches!(replica.role(), Role::Follower { .. })
                {
                    std::thread::sleep(Duration::from_millis(10));
                    continue;
                }
                let in_flight = fetching.lock();
                let r = replica.fetch_once(&*transport);
                drop(in_flight);
                if r.is_err() {
                    std::thread::sleep(Duration::from_millis(50));
                }
            }
        });
    }
    let mut n = 0u64;
    for line in std::io::stdin().lock().lines() {
        let line = line?;
        let w: Vec<&str> = line.split_whitespace().collect();
        let reply = match w.as_slice() {
            ["peers", rest @ ..] => {
                let mut p = transport.peers.lock().map_err(|_| "poisoned")?;
                for kv in rest {
                    if let Some((k, v)) = kv.split_once('=') {
                        p.insert(k.parse()?, format!("127.0.0.1:{v}").parse()?);
                    }
                }
                "ok".to_string()
            }
            ["lead", epoch] => {
                replica.become_leader(epoch.parse()?, &[0, 1, 2])?;
                "ok".into()
            }
            ["follow", epoch, leader] => {
                replica.become_follower(epoch.parse()?, leader.parse()?)?;
                paused.store(false, Ordering::SeqCst);
                "ok".into()
            }
            ["pause"] => {
                paused.store(true, Ordering::SeqCst);
                // The fetch in flight (if any) finishes first.
                drop(fetching.lock());
                "ok".into()
            }
            ["append", count, acks] => {
                let acks = if *acks == "all" {
                    Acks::All
                } else {
                    Acks::Leader
                };
                let mut last = None;
                let mut left = count.parse::<u64>()?;
                while left > 0 {
                    // Batches of up to 10 records, one append each.
                    let batch: Vec<Record> = (0..left.min(10))
                        .map(|_| {
                            n += 1;
                            Record::new(format!("node {id} record {n}")).key(format!("k{}", n % 10))
                        })
                        .collect();
                    left -= batch.len() as u64;
                    last = Some(replica.append(&batch, acks)?.last_offset);
                }
                format!("ok {}", last.map_or(-1, |l| l as i64))
            }
            ["status"] => {
                let (leo, hw, crc) = fingerprint(&replica);
                format!("status {leo} {hw} {crc:08x} {:?}", replica.role())
            }
            ["exit"] => break,
            _ => format!("err unknown command {line:?}"),
        };
        println!("{reply}");
    }
    Ok(())
}

struct Node {
    child: Child,
    stdin: ChildStdin,
    stdout: BufReader<ChildStdout>,
    port: u16,
}

impl Node {
    fn start(id: ReplicaId, dir: &Path) -> BoxResult<Node> {
        let mut child = Command::new(std::env::current_exe()?)
            .args(["node", &id.to_string(), &dir.display().to_string()])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()?;
        let stdin = child.stdin.take().ok_or("no stdin")?;
        let mut stdout = BufReader::new(child.stdout.take().ok_or("no stdout")?);
        let mut line = String::new();
        stdout.read_line(&mut line)?;
        let port = line
            .trim()
            .strip_prefix("port ")
            .ok_or(format!("node {id} said {line:?}"))?
            .parse()?;
        Ok(Node {
            child,
            stdin,
            stdout,
            port,
        })
    }

    fn cmd(&mut self, c: &str) -> BoxResult<String> {
        writeln!(self.stdin, "{c}")?;
        let mut line = String::new();
        self.stdout.read_line(&mut line)?;
        let line = line.trim().to_string();
        if !line.starts_with("ok") && !line.starts_with("status") {
            return Err(format!("{c:?} -> {line:?}").into());
        }
        Ok(line)
    }
}

fn main() -> BoxResult<()> {
    let args: Vec<String> = std::env::args().collect();
    if args.get(1).map(String::as_str) == Some("node") {
        let id = args.get(2).ok_or("node id")?.parse()?;
        return node(id, Path::new(args.get(3).ok_or("node dir")?));
    }
    let root: PathBuf = std::env::temp_dir().join(format!("embedlog-repl-{}", std::process::id()));
    let dir = |id: u32| root.join(format!("replica-{id}"));
    let mut nodes: Vec<Node> = (0..3)
        .map(|id| Node::start(id, &dir(id)))
        .collect::<BoxResult<_>>()?;
    let peers = |nodes: &[Node]| {
        let v: Vec<String> = nodes
            .iter()
            .enumerate()
            .map(|(i, n)| format!("{i}={}", n.port))
            .collect();
        format!("peers {}", v.join(" "))
    };
    let p = peers(&nodes);
    for n in nodes.iter_mut() {
        n.cmd(&p)?;
    }
    println!("1. node 0 leads epoch 1; 1000 records with acks=all");
    nodes[0].cmd("lead 1")?;
    nodes[1].cmd("follow 1 0")?;
    nodes[2].cmd("follow 1 0")?;
    let t = Instant::now();
    let last = nodes[0].cmd("append 1000 all")?;
    println!(
        "   acknowledged up to offset {} in {:.0} ms (100 appends of 10, each waiting for the leader's and both followers' fsyncs)",
        last.trim_start_matches("ok "),
        t.elapsed().as_secs_f64() * 1000.0
    );
    println!("2. followers paused; node 0 appends 50 records only it has (acks=leader)");
    nodes[1].cmd("pause")?;
    nodes[2].cmd("pause")?;
    nodes[0].cmd("append 50 leader")?;
    println!("   node 0: {}", nodes[0].cmd("status")?);
    // A fetch already in flight when the pause came may have copied a
    // batch of them (replicated, never acknowledged).
    let status = nodes[1].cmd("status")?;
    println!("   node 1: {status}");
    let copied: u64 = status.split_whitespace().nth(1).unwrap_or("0").parse()?;
    println!("3. node 0 killed; node 1 leads epoch 2; 500 more with acks=all");
    nodes[0].child.kill()?;
    nodes[0].child.wait()?;
    nodes[1].cmd("lead 2")?;
    nodes[2].cmd("follow 2 1")?;
    nodes[1].cmd("append 500 all")?;
    println!("4. node 0 restarts and follows epoch 2");
    nodes[0] = Node::start(0, &dir(0))?;
    let p = peers(&nodes);
    for n in nodes.iter_mut() {
        n.cmd(&p)?;
    }
    nodes[0].cmd("follow 2 1")?;
    let deadline = Instant::now() + Duration::from_secs(30);
    let statuses = loop {
        let s: Vec<String> = nodes
            .iter_mut()
            .map(|n| n.cmd("status"))
            .collect::<BoxResult<_>>()?;
        let key = |s: &String| s.split_whitespace().take(4).collect::<Vec<_>>().join(" ");
        if s.iter().all(|x| key(x) == key(&s[0])) {
            break s;
        }
        if Instant::now() > deadline {
            return Err(format!("replicas did not converge: {s:?}").into());
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    println!("| node | log end | high watermark | CRC-32C of the log | role |");
    println!("|---|---|---|---|---|");
    for (i, s) in statuses.iter().enumerate() {
        let f: Vec<&str> = s.split_whitespace().collect();
        println!(
            "| {i} | {} | {} | {} | {} |",
            f[1],
            f[2],
            f[3],
            f[4..].join(" ")
        );
    }
    let end: u64 = statuses[0]
        .split_whitespace()
        .nth(1)
        .unwrap_or("0")
        .parse()?;
    if end != copied + 500 {
        return Err(format!("expected {} records, found {end}", copied + 500).into());
    }
    println!(
        "converged: node 0 truncated the {} records the new leader never had; all 1500 acknowledged records are on every replica",
        1050 - copied
    );
    for n in nodes.iter_mut() {
        let _ = writeln!(n.stdin, "exit");
        let _ = n.child.wait();
    }
    std::fs::remove_dir_all(&root)?;
    Ok(())
}
