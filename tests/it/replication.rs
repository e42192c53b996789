//! Replication over the in-process transport: replicas converge byte for
//! byte; readers never see above the high watermark; `Acks::All` waits for
//! the ISR and fails without enough of it; a lagging follower leaves the
//! ISR and rejoins; fail-over truncates divergent tails (KIP-101 / KIP-279
//! cases); and a randomized test with message loss, delayed (stale)
//! messages, outages, restarts and leader changes never loses an
//! acknowledged record and ends with identical replicas.

use crate::common;
use embedlog::{
    Acks, Error, FetchOutcome, FetchResponse, LocalTransport, LogConfig, ManualClock, Offset,
    ReadLimit, Record, ReplicaId, ReplicaLog, ReplicationConfig, Role,
};
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

struct Cluster {
    _dir: tempfile::TempDir,
    root: PathBuf,
    clock: Arc<ManualClock>,
    config: ReplicationConfig,
    transport: Arc<LocalTransport>,
    replicas: BTreeMap<ReplicaId, Arc<ReplicaLog>>,
}

impl Cluster {
    fn new(n: u32, min_isr: usize) -> Cluster {
        let dir = common::tempdir();
        let clock = Arc::new(ManualClock::new(1_000_000));
        let config = ReplicationConfig::default()
            .min_insync_replicas(min_isr)
            .replica_lag_time(Duration::from_secs(10))
            .ack_timeout(Duration::from_secs(20))
            .fetch_max_wait(Duration::ZERO)
            .fetch_max_bytes(700)
            .clock(clock.clone());
        let mut c = Cluster {
            root: dir.path().to_path_buf(),
            _dir: dir,
            clock,
            config,
            transport: Arc::new(LocalTransport::new()),
            replicas: BTreeMap::new(),
        };
        for id in 0..n {
            c.start(id);
        }
        c
    }

    fn start(&mut self, id: ReplicaId) {
        let log_config = LogConfig::default().segment_bytes(2048);
        let r = Arc::new(
            ReplicaLog::open(
                self.root.join(id.to_string()),
                log_config,
                id,
                self.config.clone(),
            )
            .unwrap(),
        );
        self.transport.register(r.clone());
        self.replicas.insert(id, r);
    }

    fn stop(&mut self, id: ReplicaId) {
        self.transport.unregister(id);
        let r = self.replicas.remove(&id).unwrap();
        Arc::try_unwrap(r).unwrap().close().unwrap();
    }

    fn r(&self, id: ReplicaId) -> &Arc<ReplicaLog> {
        &self.replicas[&id]
    }

    fn elect(&self, leader: ReplicaId, epoch: i32) {
        let ids: Vec<ReplicaId> = self.replicas.keys().copied().collect();
        self.r(leader).become_leader(epoch, &ids).unwrap();
        for &id in &ids {
            if id != leader {
                self.r(id).become_follower(epoch, leader).unwrap();
            }
        }
    }

    /// Fetches on every follower until nothing changes.
    fn sync(&self) {
        for _ in 0..200 {
            let mut progress = false;
            for r in self.replicas.values() {
                if !matches!(r.role(), Role::Follower { .. }) {
                    continue;
                }
                match r.fetch_once(&*self.transport).unwrap() {
                    FetchOutcome::Appended { batches, .. } => progress |= batches > 0,
                    FetchOutcome::Truncated { .. } => progress = true,
                    FetchOutcome::Stale => {}
                }
            }
            if !progress {
                // Two more rounds: one reports the last appends as durable,
                // the next brings every follower the resulting high
                // watermark.
                for _ in 0..2 {
                    for r in self.replicas.values() {
                        if matches!(r.role(), Role::Follower { .. }) {
                            r.fetch_once(&*self.transport).unwrap();
                        }
                    }
                }
                return;
            }
        }
        panic!("replicas did not converge");
    }
}

fn rec(s: &str) -> Record {
    Record::new(s.to_string()).key("k").timestamp(7)
}

/// Every batch of a replica's log, as bytes.
fn log_bytes(r: &ReplicaLog) -> Vec<u8> {
    let mut out = Vec::new();
    let mut at = r.log().start_offset();
    while at < r.log_end_offset() {
        let b = r.log().read(at, ReadLimit::bytes(1 << 20)).unwrap();
        out.extend_from_slice(b.as_bytes());
        at = b.iter().last().unwrap().unwrap().last_offset() + 1;
    }
    out
}

fn values(r: &ReplicaLog) -> Vec<(Offset, String)> {
    common::read_all(r.log())
        .unwrap()
        .into_iter()
        .map(|x| {
            (
                x.offset,
                String::from_utf8(x.value.unwrap().to_vec()).unwrap(),
            )
        })
        .collect()
}

#[test]
fn replicas_converge_byte_for_byte() {
    let c = Cluster::new(3, 1);
    c.elect(0, 1);
    for i in 0..200 {
        let n = 1 + i % 4;
        let recs: Vec<Record> = (0..n).map(|j| rec(&format!("{i}-{j}"))).collect();
        c.r(0).append(&recs, Acks::Leader).unwrap();
        if i % 37 == 0 {
            c.sync();
        }
    }
    c.sync();
    let leader = log_bytes(c.r(0));
    assert!(leader.len() > 10_000);
    for id in [1, 2] {
        assert_eq!(log_bytes(c.r(id)), leader, "replica {id}");
        assert_eq!(c.r(id).epoch_history(), vec![(1, 0)]);
    }
    let end = c.r(0).log_end_offset();
    for r in c.replicas.values() {
        assert_eq!(r.high_watermark(), end);
    }
}

#[test]
fn readers_never_see_above_the_high_watermark() {
    let c = Cluster::new(2, 1);
    c.elect(0, 1);
    c.r(0).append(&[rec("a"), rec("b")], Acks::Leader).unwrap();
    assert_eq!(c.r(0).high_watermark(), 0);
    assert!(c.r(0).read(0, ReadLimit::default()).unwrap().is_empty());
    // Not from the middle of the batch either.
    assert!(c.r(0).read(1, ReadLimit::default()).unwrap().is_empty());
    // The follower has it but does not know it is committed yet.
    c.r(1).fetch_once(&*c.transport).unwrap();
    assert_eq!(c.r(1).log_end_offset(), 2);
    assert!(c.r(1).read(0, ReadLimit::default()).unwrap().is_empty());
    // Its next fetch reports it durable; the leader's answer carries the
    // new high watermark.
    c.r(1).fetch_once(&*c.transport).unwrap();
    assert_eq!(c.r(0).high_watermark(), 2);
    assert_eq!(c.r(1).high_watermark(), 2);
    for id in [0, 1] {
        assert_eq!(
            c.r(id)
                .read(0, ReadLimit::default())
                .unwrap()
                .records()
                .count(),
            2
        );
    }
    // A third record: visible nowhere until replicated.
    c.r(0).append(&[rec("c")], Acks::Leader).unwrap();
    let n = c
        .r(0)
        .read(0, ReadLimit::default())
        .unwrap()
        .records()
        .count();
    assert_eq!(n, 2);
}

#[test]
fn acks_all_waits_for_the_isr_and_needs_enough_of_it() {
    let mut c = Cluster::new(3, 2);
    c.elect(0, 1);
    let leader = c.r(0).clone();
    let writer = std::thread::spawn(move || leader.append(&[rec("x")], Acks::All));
    // Not acknowledged while the followers have not fetched it (wait for
    // the leader to hold it: the followers can only fetch it then).
    assert!(
        c.r(0).log().wait_for(0, Duration::from_secs(60)),
        "the writer never appended"
    );
    assert!(!writer.is_finished());
    c.sync();
    let info = writer.join().unwrap().unwrap();
    assert_eq!(info.last_offset, 0);
    assert!(c.r(0).high_watermark() > 0);
    // Both followers go away; after the lag time they leave the ISR.
    c.transport.set_down(1, true);
    c.transport.set_down(2, true);
    c.r(0).append(&[rec("y")], Acks::Leader).unwrap();
    c.clock.advance(11_000);
    c.r(0).tick();
    assert_eq!(c.r(0).isr(), vec![0]);
    let e = c.r(0).append(&[rec("z")], Acks::All).unwrap_err();
    assert!(
        matches!(
            e,
            Error::NotEnoughReplicas {
                isr: 1,
                required: 2
            }
        ),
        "{e}"
    );
    // Append on a follower is refused.
    assert!(matches!(
        c.r(1).append(&[rec("f")], Acks::Leader),
        Err(Error::NotLeader { .. })
    ));
    // One comes back, catches up, rejoins: acks=All works again.
    c.transport.set_down(1, false);
    c.stop(2);
    c.sync();
    assert_eq!(c.r(0).isr(), vec![0, 1]);
    let leader = c.r(0).clone();
    let writer = std::thread::spawn(move || leader.append(&[rec("w")], Acks::All));
    while !writer.is_finished() {
        c.r(1).fetch_once(&*c.transport).unwrap();
        std::thread::sleep(Duration::from_millis(1));
    }
    // x, y, then w (z was refused before it was appended).
    assert_eq!(writer.join().unwrap().unwrap().last_offset, 2);
}

#[test]
fn a_lagging_follower_leaves_the_isr_and_rejoins_after_catching_up() {
    let c = Cluster::new(3, 1);
    c.elect(0, 1);
    c.r(0).append(&[rec("a")], Acks::Leader).unwrap();
    c.sync();
    assert_eq!(c.r(0).isr(), vec![0, 1, 2]);
    // Replica 2 stops fetching while writes go on.
    for i in 0..20 {
        c.r(0)
            .append(&[rec(&format!("b{i}"))], Acks::Leader)
            .unwrap();
        c.r(1).fetch_once(&*c.transport).unwrap();
        c.r(1).fetch_once(&*c.transport).unwrap();
        c.clock.advance(1_000);
    }
    c.r(0).tick();
    assert_eq!(c.r(0).isr(), vec![0, 1]);
    // Without 2 in the ISR the high watermark follows replica 1.
    assert_eq!(c.r(0).high_watermark(), c.r(0).log_end_offset());
    // Replica 2 catches up and rejoins.
    c.sync();
    assert_eq!(c.r(0).isr(), vec![0, 1, 2]);
    assert_eq!(log_bytes(c.r(2)), log_bytes(c.r(0)));
}

/// KIP-101: the leader crashes with a record only it has; a follower
/// becomes leader and writes its own; the old leader comes back and must
/// truncate its divergent record rather than keep it at a position the new
/// leader used for another.
#[test]
fn failover_truncates_the_old_leaders_divergent_tail() {
    let mut c = Cluster::new(2, 1);
    c.elect(0, 1);
    c.r(0)
        .append(&[rec("m0"), rec("m1")], Acks::Leader)
        .unwrap();
    c.sync();
    // m2 reaches only the leader.
    c.r(0).append(&[rec("m2")], Acks::Leader).unwrap();
    c.stop(0);
    c.r(1).become_leader(2, &[0, 1]).unwrap();
    c.r(1)
        .append(&[rec("n2"), rec("n3")], Acks::Leader)
        .unwrap();
    c.start(0);
    c.r(0).become_follower(2, 1).unwrap();
    let first = c.r(0).fetch_once(&*c.transport).unwrap();
    assert_eq!(first, FetchOutcome::Truncated { end: 2 });
    c.sync();
    let want = vec![
        (0, "m0".to_string()),
        (1, "m1".to_string()),
        (2, "n2".to_string()),
        (3, "n3".to_string()),
    ];
    assert_eq!(values(c.r(0)), want);
    assert_eq!(log_bytes(c.r(0)), log_bytes(c.r(1)));
    assert_eq!(c.r(0).epoch_history(), vec![(1, 0), (2, 2)]);
}

/// KIP-279: divergence over several epochs. A (epoch 1) writes m1 only to
/// itself; B leads epoch 2 and writes n1 only to itself; A leads epoch 3
/// and writes m2. B, following again, must find that its epoch 2 is not in
/// A's history and truncate to where epoch 1 ended in both logs.
#[test]
fn failover_through_several_epochs_finds_the_common_prefix() {
    let mut c = Cluster::new(2, 1);
    c.elect(0, 1);
    c.r(0).append(&[rec("m0")], Acks::Leader).unwrap();
    c.sync();
    c.r(0).append(&[rec("m1")], Acks::Leader).unwrap();
    c.stop(0);
    c.r(1).become_leader(2, &[0, 1]).unwrap();
    c.r(1).append(&[rec("n1")], Acks::Leader).unwrap();
    c.stop(1);
    c.start(0);
    c.start(1);
    c.r(0).become_leader(3, &[0, 1]).unwrap();
    c.r(0).append(&[rec("m2")], Acks::Leader).unwrap();
    c.r(1).become_follower(3, 0).unwrap();
    c.sync();
    assert_eq!(
        values(c.r(1)),
        vec![(0, "m0".into()), (1, "m1".into()), (2, "m2".into())]
    );
    assert_eq!(log_bytes(c.r(1)), log_bytes(c.r(0)));
    assert_eq!(c.r(1).epoch_history(), vec![(1, 0), (3, 2)]);
}

/// Leadership changes need a newer epoch; answers to requests the
/// follower has moved past, and requests of another epoch, do nothing.
#[test]
fn stale_epochs_and_answers_are_refused() {
    let c = Cluster::new(2, 1);
    c.elect(0, 1);
    assert!(c.r(0).become_leader(1, &[0, 1]).is_ok(), "idempotent");
    assert!(
        c.r(1).become_leader(1, &[0, 1]).is_err(),
        "not above the epoch seen"
    );
    assert!(c.r(1).become_follower(0, 0).is_err());
    c.r(0).append(&[rec("a")], Acks::Leader).unwrap();
    let (leader, req) = c.r(1).fetch_request().unwrap();
    assert_eq!(leader, 0);
    let resp = c.r(0).handle_fetch(&req);
    // A delayed answer applied after the follower moved on is ignored.
    c.sync();
    assert_eq!(
        c.r(1).apply_fetch_response(&req, resp).unwrap(),
        FetchOutcome::Stale
    );
    // A request for another epoch is answered NotLeader.
    let mut old = c.r(1).fetch_request().unwrap().1;
    old.leader_epoch = 0;
    assert_eq!(
        c.r(0).handle_fetch(&old),
        FetchResponse::NotLeader { current: 1 }
    );
}

/// The randomized test: appends (acks all or leader), fetches, lost
/// messages, delayed answers, outages, restarts and clean leader changes
/// (the new leader is an in-sync, running replica). Invariants: every
/// acknowledged (`Acks::All`) record stays in the current leader's log at
/// its offset; high watermarks never pass a log's end; and once healed, all
/// replicas hold identical bytes.
#[test]
fn randomized_failures_never_lose_an_acknowledged_record() {
    let seeds: u64 = std::env::var("EMBEDLOG_REPLICATION_SEEDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(12);
    for seed in 0..seeds {
        randomized(seed);
    }
}

fn randomized(seed: u64) {
    let mut rng = seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1;
    let mut next = move |n: u64| {
        rng ^= rng << 13;
        rng ^= rng >> 7;
        rng ^= rng << 17;
        rng % n
    };
    let mut c = Cluster::new(3, 2);
    c.transport.set_loss(5, seed + 1);
    let mut leader: ReplicaId = 0;
    let mut epoch = 1;
    c.elect(leader, epoch);
    let mut acked: BTreeMap<Offset, String> = BTreeMap::new();
    let mut delayed = Vec::new();
    let mut n = 0;
    for step in 0..300 {
        match next(10) {
            0..=2 => {
                n += 1;
                let v = format!("s{seed}-{n}");
                let acks = if next(2) == 0 {
                    Acks::All
                } else {
                    Acks::Leader
                };
                if acks == Acks::All {
                    // Drive the followers while the append waits.
                    let l = c.r(leader).clone();
                    let w =
                        std::thread::spawn(move || l.append(&[rec(&v)], Acks::All).map(|i| (i, v)));
                    for _ in 0..50 {
                        if w.is_finished() {
                            break;
                        }
                        for r in c.replicas.values() {
                            if matches!(r.role(), Role::Follower { .. }) {
                                let _ = r.fetch_once(&*c.transport);
                            }
                        }
                        c.clock.advance(300);
                        std::thread::sleep(Duration::from_millis(1));
                    }
                    match w.join().unwrap() {
                        Ok((info, v)) => {
                            acked.insert(info.base_offset, v);
                        }
                        Err(Error::NotEnoughReplicas { .. } | Error::ReplicationTimeout { .. }) => {
                        }
                        Err(e) => panic!("seed {seed} step {step}: {e}"),
                    }
                } else {
                    c.r(leader).append(&[rec(&v)], Acks::Leader).unwrap();
                }
            }
            3..=5 => {
                let ids: Vec<_> = c.replicas.keys().copied().collect();
                let id = ids[next(ids.len() as u64) as usize];
                let r = c.r(id);
                if next(4) == 0 {
                    // A request answered now, applied much later.
                    if let Some((l, req)) = r.fetch_request()
                        && let Some(target) = c.replicas.get(&l)
                    {
                        delayed.push((id, req.clone(), target.handle_fetch(&req)));
                    }
                } else if matches!(r.role(), Role::Follower { .. }) {
                    match r.fetch_once(&*c.transport) {
                        Ok(_) | Err(Error::Transport { .. } | Error::NotLeader { .. }) => {}
                        Err(e) => panic!("seed {seed} step {step}: {e}"),
                    }
                }
            }
            6 => {
                if let Some((id, req, resp)) = delayed.pop()
                    && let Some(r) = c.replicas.get(&id)
                {
                    match r.apply_fetch_response(&req, resp) {
                        Ok(_) | Err(Error::NotLeader { .. }) => {}
                        Err(e) => panic!("seed {seed} step {step}: delayed: {e}"),
                    }
                }
            }
            7 => c.clock.advance(next(4000) as i64),
            8 => {
                // Restart a follower.
                let id = (leader + 1 + next(2) as u32) % 3;
                c.stop(id);
                c.start(id);
                c.r(id).become_follower(epoch, leader).unwrap();
            }
            _ => {
                // Clean leader change: an in-sync follower takes over.
                let isr = c.r(leader).isr();
                let candidates: Vec<_> = isr.iter().copied().filter(|&i| i != leader).collect();
                if candidates.is_empty() {
                    continue;
                }
                let new = candidates[next(candidates.len() as u64) as usize];
                epoch += 1;
                leader = new;
                c.elect(leader, epoch);
            }
        }
        // Acknowledged records are in the leader's log, where they were.
        let have: BTreeMap<Offset, String> = values(c.r(leader)).into_iter().collect();
        for (o, v) in &acked {
            assert_eq!(
                have.get(o),
                Some(v),
                "seed {seed} step {step}: acked offset {o} lost"
            );
        }
        for r in c.replicas.values() {
            assert!(r.high_watermark() <= r.log_end_offset());
        }
    }
    // Heal: no loss, everyone fetches until converged.
    c.transport.set_loss(0, 0);
    c.sync();
    let want = log_bytes(c.r(leader));
    for (id, r) in &c.replicas {
        assert_eq!(log_bytes(r), want, "seed {seed}: replica {id} differs");
        assert_eq!(
            r.high_watermark(),
            c.r(leader).log_end_offset(),
            "seed {seed}: replica {id} ({:?}) high watermark; leader ISR {:?}",
            r.role(),
            c.r(leader).isr()
        );
    }
}
