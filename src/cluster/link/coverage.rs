//! How much of the cluster this node sees (issue 16, item 3 and its bad input
//! "Redis unreachable"): the [`FloorCoverage`] the coordinator gives consoles.
//!
//! The links' loop reads the members every tick and hands the result here:
//! - Redis does not answer: the floor is partial (`redis-unreachable`). Rings
//!   reach this node's seats only — the other nodes' seats are read from Redis
//!   presence — until a read succeeds again.
//! - An alive node with no live link: its seats, calls and parked calls are not
//!   in this node's floor (`node-unlinked:ID`). A link takes a moment to come up
//!   after a node joins, so a node counts as unlinked only after
//!   [`UNLINKED_TICKS`] ticks in a row without one.

use std::collections::HashMap;

use switchboard_actors::coordinator::FloorCoverage;

use crate::cluster::Member;

/// Ticks in a row an alive node must be without a link to count as unlinked.
pub const UNLINKED_TICKS: u32 = 3;

/// The reason given while Redis does not answer.
pub const REDIS_UNREACHABLE: &str = "redis-unreachable";

/// Follows the members, tick after tick.
#[derive(Default)]
pub struct CoverageWatch {
    /// Alive nodes seen without a link, and for how many ticks in a row.
    unlinked: HashMap<String, u32>,
}

impl CoverageWatch {
    /// Redis did not answer this tick.
    pub fn redis_unreachable(&self) -> FloorCoverage {
        FloorCoverage::with_reasons(vec![REDIS_UNREACHABLE.to_owned()])
    }

    /// The members as read this tick; `linked` says whether a node has a live link.
    pub fn observed(
        &mut self,
        me: &str,
        members: &[Member],
        linked: impl Fn(&str) -> bool,
    ) -> FloorCoverage {
        let mut still = HashMap::new();
        for member in members.iter().filter(|m| m.alive && m.record.id != me) {
            let id = &member.record.id;
            if !linked(id) {
                let ticks = self.unlinked.get(id).copied().unwrap_or(0) + 1;
                still.insert(id.clone(), ticks);
            }
        }
        self.unlinked = still;
        let mut reasons: Vec<String> = self
            .unlinked
            .iter()
            .filter(|(_, ticks)| **ticks >= UNLINKED_TICKS)
            .map(|(id, _)| format!("node-unlinked:{id}"))
            .collect();
        reasons.sort();
        FloorCoverage::with_reasons(reasons)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cluster::NodeRecord;

    fn member(id: &str, alive: bool) -> Member {
        Member {
            record: NodeRecord {
                id: id.into(),
                url: format!("http://{id}"),
                incarnation: "i".into(),
                started_at_ms: 0,
                last_heartbeat_ms: 0,
                calls: 0,
                seats: 0,
                left: false,
            },
            alive,
        }
    }

    #[test]
    fn a_node_without_a_link_makes_the_floor_partial_only_after_three_ticks_in_a_row() {
        let mut watch = CoverageWatch::default();
        let members = [member("a", true), member("b", true), member("c", false)];
        let unlinked_b = |id: &str| id != "b";
        for _ in 1..UNLINKED_TICKS {
            assert_eq!(
                watch.observed("a", &members, unlinked_b),
                FloorCoverage::default()
            );
        }
        let partial = watch.observed("a", &members, unlinked_b);
        assert!(partial.partial);
        assert_eq!(partial.partial_reasons, ["node-unlinked:b"]);
        // Linked again: whole at once, and the count starts over.
        assert_eq!(
            watch.observed("a", &members, |_| true),
            FloorCoverage::default()
        );
        assert_eq!(
            watch.observed("a", &members, unlinked_b),
            FloorCoverage::default()
        );
    }

    #[test]
    fn a_dead_node_or_this_one_never_counts_as_unlinked_and_redis_away_is_partial() {
        let mut watch = CoverageWatch::default();
        let members = [member("a", true), member("c", false)];
        for _ in 0..UNLINKED_TICKS + 1 {
            assert_eq!(
                watch.observed("a", &members, |_| false),
                FloorCoverage::default()
            );
        }
        let away = watch.redis_unreachable();
        assert!(away.partial);
        assert_eq!(away.partial_reasons, [REDIS_UNREACHABLE]);
    }
}
