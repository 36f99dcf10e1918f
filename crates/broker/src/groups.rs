//! The group coordinator: Kafka's classic consumer-group protocol (JoinGroup, SyncGroup,
//! Heartbeat, LeaveGroup) with rebalances, session expiry and committed offsets.

use std::collections::{BTreeMap, HashMap};
use std::time::{Duration, Instant};

use bytes::Bytes;
use tokio::sync::oneshot;

pub const NONE: i16 = 0;
pub const ILLEGAL_GENERATION: i16 = 22;
pub const INCONSISTENT_GROUP_PROTOCOL: i16 = 23;
pub const INVALID_GROUP_ID: i16 = 24;
pub const UNKNOWN_MEMBER_ID: i16 = 25;
pub const REBALANCE_IN_PROGRESS: i16 = 27;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GroupState {
    Empty,
    PreparingRebalance,
    CompletingRebalance,
    Stable,
}

impl GroupState {
    pub fn name(self) -> &'static str {
        match self {
            GroupState::Empty => "Empty",
            GroupState::PreparingRebalance => "PreparingRebalance",
            GroupState::CompletingRebalance => "CompletingRebalance",
            GroupState::Stable => "Stable",
        }
    }
}

/// What a JoinGroup call is answered with once the rebalance completes.
#[derive(Debug, Clone, Default)]
pub struct JoinOutcome {
    pub error: i16,
    pub generation: i32,
    pub protocol_type: String,
    pub protocol_name: String,
    pub leader: String,
    pub member_id: String,
    /// Every member's (id, chosen protocol's metadata): the leader's answer only.
    pub members: Vec<(String, Bytes)>,
}

/// A SyncGroup call's answer: an error code and the member's assignment.
pub type SyncOutcome = (i16, Bytes);

pub struct Member {
    pub client_id: String,
    pub client_host: String,
    session_timeout: Duration,
    rebalance_timeout: Duration,
    pub protocols: Vec<(String, Bytes)>,
    pub assignment: Bytes,
    last_heard: Instant,
    pending_join: Option<oneshot::Sender<JoinOutcome>>,
    pending_sync: Option<oneshot::Sender<SyncOutcome>>,
}

pub struct Group {
    pub state: GroupState,
    pub generation: i32,
    pub protocol_type: String,
    pub protocol_name: String,
    pub leader: String,
    pub members: BTreeMap<String, Member>,
    rebalance_deadline: Option<Instant>,
    /// While an empty group's first rebalance waits for more members (Kafka's
    /// `group.initial.rebalance.delay.ms`): members started together join one generation
    /// instead of rebalancing once per member.
    initial_join_until: Option<Instant>,
}

impl Group {
    fn new() -> Self {
        Group {
            state: GroupState::Empty,
            generation: 0,
            protocol_type: String::new(),
            protocol_name: String::new(),
            leader: String::new(),
            members: BTreeMap::new(),
            rebalance_deadline: None,
            initial_join_until: None,
        }
    }

    /// Moves to PreparingRebalance: members learn it from their next heartbeat or sync, and
    /// the rebalance completes when all have rejoined (or their rebalance timeout passes).
    fn prepare_rebalance(&mut self) {
        for member in self.members.values_mut() {
            if let Some(sync) = member.pending_sync.take() {
                let _ = sync.send((REBALANCE_IN_PROGRESS, Bytes::new()));
            }
        }
        if self.state != GroupState::PreparingRebalance {
            let timeout = self
                .members
                .values()
                .map(|m| m.rebalance_timeout)
                .max()
                .unwrap_or_default();
            self.rebalance_deadline = Some(Instant::now() + timeout);
        }
        self.state = GroupState::PreparingRebalance;
    }

    /// Completes the join phase if every member has rejoined, or `force`d (a deadline passed:
    /// the members that did not rejoin are dropped).
    fn try_complete_join(&mut self, force: bool) {
        if self.state != GroupState::PreparingRebalance {
            return;
        }
        if !force
            && self
                .initial_join_until
                .is_some_and(|until| Instant::now() < until)
        {
            return;
        }
        let all_joined = self.members.values().all(|m| m.pending_join.is_some());
        if !all_joined && !force {
            return;
        }
        self.initial_join_until = None;
        self.members.retain(|_, m| m.pending_join.is_some());
        self.generation += 1;
        self.rebalance_deadline = None;
        if self.members.is_empty() {
            self.state = GroupState::Empty;
            self.leader.clear();
            self.protocol_name.clear();
            return;
        }
        if !self.members.contains_key(&self.leader) {
            self.leader = self.members.keys().next().cloned().unwrap_or_default();
        }
        // The leader's most preferred protocol that every member supports.
        let leader_protocols = &self.members[&self.leader].protocols;
        let chosen = leader_protocols
            .iter()
            .map(|(name, _)| name.clone())
            .find(|name| {
                self.members
                    .values()
                    .all(|m| m.protocols.iter().any(|(n, _)| n == name))
            })
            .unwrap_or_default();
        self.protocol_name = chosen.clone();
        let member_metadata: Vec<(String, Bytes)> = self
            .members
            .iter()
            .map(|(id, m)| {
                let metadata = m
                    .protocols
                    .iter()
                    .find(|(n, _)| *n == chosen)
                    .map(|(_, md)| md.clone())
                    .unwrap_or_default();
                (id.clone(), metadata)
            })
            .collect();
        self.state = GroupState::CompletingRebalance;
        let now = Instant::now();
        for (id, member) in self.members.iter_mut() {
            member.last_heard = now;
            member.assignment = Bytes::new();
            if let Some(reply) = member.pending_join.take() {
                let _ = reply.send(JoinOutcome {
                    error: NONE,
                    generation: self.generation,
                    protocol_type: self.protocol_type.clone(),
                    protocol_name: chosen.clone(),
                    leader: self.leader.clone(),
                    member_id: id.clone(),
                    members: if *id == self.leader {
                        member_metadata.clone()
                    } else {
                        Vec::new()
                    },
                });
            }
        }
    }

    fn remove_member(&mut self, member_id: &str) {
        if let Some(mut member) = self.members.remove(member_id) {
            if let Some(reply) = member.pending_join.take() {
                let _ = reply.send(JoinOutcome {
                    error: UNKNOWN_MEMBER_ID,
                    member_id: member_id.to_string(),
                    ..JoinOutcome::default()
                });
            }
            if let Some(reply) = member.pending_sync.take() {
                let _ = reply.send((UNKNOWN_MEMBER_ID, Bytes::new()));
            }
        }
        match self.state {
            GroupState::Empty => {}
            GroupState::PreparingRebalance => self.try_complete_join(false),
            GroupState::Stable | GroupState::CompletingRebalance => {
                if self.members.is_empty() {
                    self.state = GroupState::Empty;
                    self.generation += 1;
                    self.leader.clear();
                } else {
                    self.prepare_rebalance();
                }
            }
        }
        if self.state == GroupState::PreparingRebalance && self.members.is_empty() {
            self.try_complete_join(true);
        }
    }
}

/// What a JoinGroup request carries.
pub struct JoinRequest {
    pub group_id: String,
    pub member_id: String,
    pub client_id: String,
    pub client_host: String,
    pub session_timeout: Duration,
    pub rebalance_timeout: Duration,
    pub protocol_type: String,
    pub protocols: Vec<(String, Bytes)>,
}

/// A committed offset and its metadata.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Committed {
    pub offset: i64,
    pub metadata: Option<String>,
}

#[derive(Default)]
pub struct Coordinator {
    /// How long an empty group's first rebalance waits for more members, from each join.
    pub initial_rebalance_delay: Duration,
    pub groups: HashMap<String, Group>,
    /// group -> (topic, partition) -> offset.
    pub offsets: HashMap<String, BTreeMap<(String, i32), Committed>>,
    next_member: u64,
}

impl Coordinator {
    pub fn new(initial_rebalance_delay: Duration) -> Self {
        Coordinator {
            initial_rebalance_delay,
            ..Coordinator::default()
        }
    }

    /// Registers the join; the receiver answers when the rebalance completes.
    pub fn join(&mut self, request: JoinRequest) -> oneshot::Receiver<JoinOutcome> {
        let (reply, answer) = oneshot::channel();
        let refuse = |reply: oneshot::Sender<JoinOutcome>, error: i16, member_id: String| {
            let _ = reply.send(JoinOutcome {
                error,
                member_id,
                ..JoinOutcome::default()
            });
        };
        if request.group_id.is_empty() {
            refuse(reply, INVALID_GROUP_ID, request.member_id);
            return answer;
        }
        self.next_member += 1;
        let fresh_id = format!("{}-{}", request.client_id, self.next_member);
        let group = self
            .groups
            .entry(request.group_id.clone())
            .or_insert_with(Group::new);
        if group.state != GroupState::Empty
            && !group.protocol_type.is_empty()
            && group.protocol_type != request.protocol_type
        {
            refuse(reply, INCONSISTENT_GROUP_PROTOCOL, request.member_id);
            return answer;
        }
        let member_id = if request.member_id.is_empty() {
            fresh_id
        } else if group.members.contains_key(&request.member_id) {
            request.member_id
        } else {
            refuse(reply, UNKNOWN_MEMBER_ID, request.member_id);
            return answer;
        };
        if group.members.is_empty() {
            group.protocol_type = request.protocol_type.clone();
        }
        if !self.initial_rebalance_delay.is_zero()
            && (group.state == GroupState::Empty || group.initial_join_until.is_some())
        {
            group.initial_join_until = Some(Instant::now() + self.initial_rebalance_delay);
        }
        let member = group
            .members
            .entry(member_id.clone())
            .or_insert_with(|| Member {
                client_id: request.client_id.clone(),
                client_host: request.client_host.clone(),
                session_timeout: request.session_timeout,
                rebalance_timeout: request.rebalance_timeout,
                protocols: Vec::new(),
                assignment: Bytes::new(),
                last_heard: Instant::now(),
                pending_join: None,
                pending_sync: None,
            });
        member.session_timeout = request.session_timeout;
        member.rebalance_timeout = request.rebalance_timeout;
        member.protocols = request.protocols;
        member.last_heard = Instant::now();
        if let Some(old) = member.pending_join.replace(reply) {
            let _ = old.send(JoinOutcome {
                error: REBALANCE_IN_PROGRESS,
                member_id: member_id.clone(),
                ..JoinOutcome::default()
            });
        }
        group.prepare_rebalance();
        group.try_complete_join(false);
        answer
    }

    pub fn sync(
        &mut self,
        group_id: &str,
        generation: i32,
        member_id: &str,
        assignments: Vec<(String, Bytes)>,
    ) -> oneshot::Receiver<SyncOutcome> {
        let (reply, answer) = oneshot::channel();
        let Some(group) = self.groups.get_mut(group_id) else {
            let _ = reply.send((UNKNOWN_MEMBER_ID, Bytes::new()));
            return answer;
        };
        let Some(member) = group.members.get_mut(member_id) else {
            let _ = reply.send((UNKNOWN_MEMBER_ID, Bytes::new()));
            return answer;
        };
        member.last_heard = Instant::now();
        if generation != group.generation {
            let _ = reply.send((ILLEGAL_GENERATION, Bytes::new()));
            return answer;
        }
        match group.state {
            GroupState::Empty => {
                let _ = reply.send((UNKNOWN_MEMBER_ID, Bytes::new()));
            }
            GroupState::PreparingRebalance => {
                let _ = reply.send((REBALANCE_IN_PROGRESS, Bytes::new()));
            }
            GroupState::Stable => {
                let _ = reply.send((NONE, member.assignment.clone()));
            }
            GroupState::CompletingRebalance => {
                member.pending_sync = Some(reply);
                if member_id == group.leader {
                    let assigned: HashMap<String, Bytes> = assignments.into_iter().collect();
                    for (id, member) in group.members.iter_mut() {
                        member.assignment = assigned.get(id).cloned().unwrap_or_default();
                        if let Some(waiting) = member.pending_sync.take() {
                            let _ = waiting.send((NONE, member.assignment.clone()));
                        }
                    }
                    group.state = GroupState::Stable;
                }
            }
        }
        answer
    }

    pub fn heartbeat(&mut self, group_id: &str, generation: i32, member_id: &str) -> i16 {
        let Some(group) = self.groups.get_mut(group_id) else {
            return UNKNOWN_MEMBER_ID;
        };
        let Some(member) = group.members.get_mut(member_id) else {
            return UNKNOWN_MEMBER_ID;
        };
        member.last_heard = Instant::now();
        if group.state == GroupState::PreparingRebalance {
            return REBALANCE_IN_PROGRESS;
        }
        if generation != group.generation {
            return ILLEGAL_GENERATION;
        }
        NONE
    }

    pub fn leave(&mut self, group_id: &str, member_id: &str) -> i16 {
        let Some(group) = self.groups.get_mut(group_id) else {
            return UNKNOWN_MEMBER_ID;
        };
        if !group.members.contains_key(member_id) {
            return UNKNOWN_MEMBER_ID;
        }
        group.remove_member(member_id);
        NONE
    }

    /// Whether a commit from (`generation`, `member_id`) may be stored: -1 is a commit from
    /// outside any group generation (a standalone consumer or a tool).
    pub fn may_commit(&self, group_id: &str, generation: i32, member_id: &str) -> i16 {
        if generation < 0 {
            return NONE;
        }
        let Some(group) = self.groups.get(group_id) else {
            return UNKNOWN_MEMBER_ID;
        };
        if !group.members.contains_key(member_id) {
            return UNKNOWN_MEMBER_ID;
        }
        if generation != group.generation {
            return ILLEGAL_GENERATION;
        }
        NONE
    }

    /// Drops members whose session ran out and completes rebalances whose time is up.
    pub fn expire(&mut self, now: Instant) {
        for group in self.groups.values_mut() {
            let expired: Vec<String> = group
                .members
                .iter()
                .filter(|(_, m)| {
                    m.pending_join.is_none()
                        && m.pending_sync.is_none()
                        && now.duration_since(m.last_heard) > m.session_timeout
                })
                .map(|(id, _)| id.clone())
                .collect();
            for id in expired {
                group.remove_member(&id);
            }
            if group.state == GroupState::PreparingRebalance
                && group.rebalance_deadline.is_some_and(|d| now >= d)
            {
                group.try_complete_join(true);
            }
            if group.initial_join_until.is_some_and(|until| now >= until) {
                group.initial_join_until = None;
                group.try_complete_join(false);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn join(c: &mut Coordinator, member: &str) -> oneshot::Receiver<JoinOutcome> {
        c.join(JoinRequest {
            group_id: "g".into(),
            member_id: member.into(),
            client_id: "c".into(),
            client_host: "/127.0.0.1".into(),
            session_timeout: Duration::from_millis(100),
            rebalance_timeout: Duration::from_secs(1),
            protocol_type: "consumer".into(),
            protocols: vec![("range".into(), Bytes::from_static(b"m"))],
        })
    }

    #[test]
    fn two_members_rebalance_and_a_leaver_triggers_another() {
        let mut c = Coordinator::default();
        let first = join(&mut c, "").try_recv().unwrap();
        assert_eq!((first.error, first.generation), (NONE, 1));
        assert_eq!(first.leader, first.member_id);
        let sync = c.sync(
            "g",
            1,
            &first.member_id,
            vec![(first.member_id.clone(), "a".into())],
        );
        assert_eq!(sync.blocking_recv().unwrap(), (NONE, Bytes::from("a")));

        // a second member: the first learns of the rebalance from its heartbeat
        let mut second = join(&mut c, "");
        assert!(second.try_recv().is_err());
        assert_eq!(c.heartbeat("g", 1, &first.member_id), REBALANCE_IN_PROGRESS);
        let again = join(&mut c, &first.member_id).try_recv().unwrap();
        let second = second.try_recv().unwrap();
        assert_eq!((again.generation, second.generation), (2, 2));
        assert_eq!(again.members.len(), 2, "the leader sees every member");
        assert!(second.members.is_empty());
        let mut follower = c.sync("g", 2, &second.member_id, vec![]);
        assert!(
            follower.try_recv().is_err(),
            "a follower waits for the leader"
        );
        let leader = c.sync(
            "g",
            2,
            &again.member_id,
            vec![
                (again.member_id.clone(), "x".into()),
                (second.member_id.clone(), "y".into()),
            ],
        );
        assert_eq!(leader.blocking_recv().unwrap().1, Bytes::from("x"));
        assert_eq!(follower.try_recv().unwrap(), (NONE, Bytes::from("y")));

        // LeaveGroup is honoured at once: the remaining member rejoins alone
        assert_eq!(c.leave("g", &second.member_id), NONE);
        assert_eq!(c.heartbeat("g", 2, &again.member_id), REBALANCE_IN_PROGRESS);
        let alone = join(&mut c, &again.member_id).try_recv().unwrap();
        assert_eq!((alone.generation, alone.members.len()), (3, 1));
        assert_eq!(c.may_commit("g", 3, &again.member_id), NONE);
        assert_eq!(c.may_commit("g", 2, &again.member_id), ILLEGAL_GENERATION);
    }

    #[test]
    fn members_starting_together_join_one_generation() {
        let mut c = Coordinator {
            initial_rebalance_delay: Duration::from_millis(50),
            ..Coordinator::default()
        };
        let mut first = join(&mut c, "");
        let mut second = join(&mut c, "");
        assert!(
            first.try_recv().is_err(),
            "the first rebalance waits for more members"
        );
        std::thread::sleep(Duration::from_millis(60));
        c.expire(Instant::now());
        let (first, second) = (first.try_recv().unwrap(), second.try_recv().unwrap());
        assert_eq!((first.generation, second.generation), (1, 1));
        assert_eq!(first.members.len() + second.members.len(), 2);
    }

    #[test]
    fn a_silent_member_expires() {
        let mut c = Coordinator::default();
        let first = join(&mut c, "").try_recv().unwrap();
        drop(c.sync("g", 1, &first.member_id, vec![]));
        c.expire(Instant::now() + Duration::from_millis(500));
        assert_eq!(c.groups["g"].state, GroupState::Empty);
        assert_eq!(c.heartbeat("g", 1, &first.member_id), UNKNOWN_MEMBER_ID);
    }
}
