//! Other hosts' data for `hostvars`: what each runner of a batch reports it learned
//! while running (facts, registered and `set_fact` values, in `vars` events), kept in
//! order with where the host stood, and answered to the other hosts' `hostvars`
//! requests as Ansible's linear strategy would show it (`docs/playbooks.md`).
//!
//! A host at its task after `done` finished tasks of play `p` sees another host as that
//! one stood after the same `done` tasks of `p`: everything it set before, nothing it
//! set after. So the asking host waits until the other has got that far, unless the
//! other cannot get further without it (it waits on the deployer itself: a barrier, a
//! `run_once` result, a throttle turn), has ended, or does not run in this batch; it
//! is then seen as it stands. A host waiting for another's `hostvars` still moves (the
//! one it reads is behind it), so it is waited for.

use serde_json::{Map, Value};
use std::collections::HashMap;

/// Where a host stands: the play's number in the deploy (`Play::number`) and the path
/// of the task it is starting in that play (the runner's position: its index in each
/// list, section and inclusion that holds it). Later plays and later tasks, in the
/// order Ansible's linear strategy runs them, compare greater.
pub type Position = (usize, Vec<u32>);

/// The most a host's reported variables may add up to (JSON bytes); a host that
/// reports more is refused.
pub const MAX_PEER_BYTES: usize = 64 << 20;

/// The deepest task path a host may report (blocks, includes and roles within each
/// other); deeper is no plan's.
pub const MAX_DEPTH: usize = 256;

/// What the hosts of a batch reported, by host.
#[derive(Debug, Default)]
pub struct Peers {
    hosts: HashMap<String, Peer>,
}

#[derive(Debug, Default)]
struct Peer {
    /// What it learned, in the order it reported it, each with where it stood then; a
    /// `None` value is a variable removed (`meta: clear_facts`).
    log: Vec<(Position, String, Option<Value>)>,
    /// Where it stood at its last report.
    at: Option<Position>,
    /// How many of its requests the deployer is holding (it cannot move meanwhile).
    waiting: u32,
    /// Its runner has ended.
    ended: bool,
    /// The JSON size of `log`'s values.
    bytes: usize,
}

impl Peers {
    /// `host` runs in this batch: others reading it wait for it from now on.
    pub fn join(&mut self, host: &str) {
        self.hosts.entry(host.to_string()).or_default();
    }

    /// `host` stands at `at` and learned `set` and forgot `unset` since its last report.
    pub fn record(
        &mut self,
        host: &str,
        at: Position,
        set: Map<String, Value>,
        unset: Vec<String>,
    ) -> Result<(), String> {
        let peer = self.hosts.entry(host.to_string()).or_default();
        if at.1.len() > MAX_DEPTH {
            return Err(format!(
                "a report of what the host learned at a task {} levels deep (at most {MAX_DEPTH})",
                at.1.len()
            ));
        }
        if let Some(before) = &peer.at
            && at < *before
        {
            return Err(format!(
                "a report of what the host learned at task {:?} of play {} after one at task {:?} of play {}",
                at.1, at.0, before.1, before.0
            ));
        }
        let size: usize = set
            .iter()
            .map(|(k, v)| k.len() + serde_json::to_string(v).map_or(0, |t| t.len()))
            .sum();
        if peer.bytes.saturating_add(size) > MAX_PEER_BYTES {
            return Err(format!(
                "the host reported more than the {} MiB of variables other hosts' hostvars may hold",
                MAX_PEER_BYTES >> 20
            ));
        }
        peer.bytes += size;
        peer.log
            .extend(set.into_iter().map(|(k, v)| (at.clone(), k, Some(v))));
        peer.log
            .extend(unset.into_iter().map(|k| (at.clone(), k, None)));
        peer.at = Some(at);
        Ok(())
    }

    /// `host` waits on the deployer (`true`) or no longer (`false`).
    pub fn wait(&mut self, host: &str, waiting: bool) {
        let peer = self.hosts.entry(host.to_string()).or_default();
        if waiting {
            peer.waiting += 1;
        } else {
            peer.waiting = peer.waiting.saturating_sub(1);
        }
    }

    /// `host`'s runner has ended.
    pub fn end(&mut self, host: &str) {
        self.hosts.entry(host.to_string()).or_default().ended = true;
    }

    /// What `host` learned up to `at`, once that is settled: it got there (or further),
    /// waits on the deployer, has ended, or never ran in this batch (nothing, then).
    /// `None` while it may still get there.
    pub fn view(&self, host: &str, at: &Position) -> Option<Map<String, Value>> {
        let Some(peer) = self.hosts.get(host) else {
            return Some(Map::new());
        };
        let settled = peer.ended || peer.waiting > 0 || peer.at.as_ref().is_some_and(|a| a >= at);
        if !settled {
            return None;
        }
        let mut vars = Map::new();
        for (pos, name, value) in &peer.log {
            if pos > at {
                break;
            }
            match value {
                Some(v) => {
                    vars.insert(name.clone(), v.clone());
                }
                None => {
                    vars.shift_remove(name);
                }
            }
        }
        Some(vars)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
    use super::*;
    use serde_json::json;

    fn map(v: Value) -> Map<String, Value> {
        v.as_object().cloned().unwrap()
    }

    #[test]
    fn a_host_is_seen_as_it_stood_after_the_same_tasks_and_not_before_it_got_there() {
        let mut peers = Peers::default();
        peers.join("b");
        peers
            .record("b", (0, vec![1]), map(json!({"ansible_os": "L"})), vec![])
            .unwrap();
        // `a` is at its second task (one done): b's gathered facts are there.
        assert_eq!(peers.view("b", &(0, vec![1])).unwrap()["ansible_os"], "L");
        // At its third task, `a` waits for b to finish its second.
        assert_eq!(peers.view("b", &(0, vec![2])), None);
        peers
            .record("b", (0, vec![2]), map(json!({"x": 1})), vec![])
            .unwrap();
        peers
            .record(
                "b",
                (0, vec![3]),
                map(json!({"x": 2})),
                vec!["ansible_os".into()],
            )
            .unwrap();
        // b ran ahead: what it set after the point asked about is not seen.
        let seen = peers.view("b", &(0, vec![2])).unwrap();
        assert_eq!(seen, map(json!({"ansible_os": "L", "x": 1})));
        assert_eq!(
            peers.view("b", &(0, vec![3])).unwrap(),
            map(json!({"x": 2}))
        );
        // A later play waits for b to start it, then sees everything of the earlier one.
        assert_eq!(peers.view("b", &(1, vec![0])), None);
        peers.record("b", (1, vec![0]), Map::new(), vec![]).unwrap();
        assert_eq!(
            peers.view("b", &(1, vec![0])).unwrap(),
            map(json!({"x": 2}))
        );
        // Reports never go back.
        assert!(peers.record("b", (0, vec![3]), Map::new(), vec![]).is_err());
    }

    #[test]
    fn a_host_that_waits_or_ended_or_never_ran_is_seen_as_it_stands() {
        let mut peers = Peers::default();
        peers.join("b");
        peers
            .record("b", (0, vec![1]), map(json!({"x": 1})), vec![])
            .unwrap();
        assert_eq!(peers.view("b", &(0, vec![5])), None);
        peers.wait("b", true);
        assert_eq!(peers.view("b", &(0, vec![5])).unwrap()["x"], 1);
        peers.wait("b", false);
        assert_eq!(peers.view("b", &(0, vec![5])), None);
        peers.end("b");
        assert_eq!(peers.view("b", &(0, vec![5])).unwrap()["x"], 1);
        assert_eq!(peers.view("never", &(0, vec![5])).unwrap(), Map::new());
    }

    #[test]
    fn a_host_cannot_report_without_bound() {
        let mut peers = Peers::default();
        let big = "x".repeat(MAX_PEER_BYTES / 2);
        peers
            .record("b", (0, vec![1]), map(json!({"a": big.clone()})), vec![])
            .unwrap();
        let err = peers
            .record(
                "b",
                (0, vec![2]),
                map(json!({"b": big.clone(), "c": big})),
                vec![],
            )
            .unwrap_err();
        assert!(err.contains("MiB"), "{err}");
    }
}
