//! The listen API (`docs/protocol.md`, section 5): which groups, rooms, users and
//! events the server pushes to this connection.
//!
//! The server keeps listen state per connection, so the client keeps a copy
//! (updated only when the server accepted a change) and restores it on
//! every new connection, before any user call can use that connection: one
//! `setlisten` with the non-empty id and event sets (as arrays), then one
//! with the all-flags when any is set. A server error while restoring is
//! logged and the connection is kept; a connection error fails the connect.

use std::collections::BTreeSet;
use std::sync::{Arc, Mutex};

use super::client::{RtmServerClient, Signer};
use super::params::{Params, Strs};
use crate::error::Result;
use crate::fpnn::conn::lock;
use crate::fpnn::{ConnectHook, FpnnSession};

/// What this connection listens to.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct ListenState {
    /// Group ids.
    pub gids: BTreeSet<i64>,
    /// Room ids.
    pub rids: BTreeSet<i64>,
    /// User ids (P2P messages).
    pub uids: BTreeSet<i64>,
    /// Event names (`login`, `logout`, ...).
    pub events: BTreeSet<String>,
    /// Every group (`group`).
    pub all_groups: bool,
    /// Every room (`room`).
    pub all_rooms: bool,
    /// Every P2P message (`p2p`).
    pub all_p2p: bool,
    /// Every event (`ev`).
    pub all_events: bool,
}

impl ListenState {
    fn has_sets(&self) -> bool {
        !(self.gids.is_empty()
            && self.rids.is_empty()
            && self.uids.is_empty()
            && self.events.is_empty())
    }

    fn has_flags(&self) -> bool {
        self.all_groups || self.all_rooms || self.all_p2p || self.all_events
    }
}

/// One change of the listen state: the quest that asks for it and the local
/// update made once the server accepted it.
#[derive(Debug, Clone)]
enum Change {
    Add(Sets),
    Remove(Sets),
    Set(OptSets),
    Status([bool; 4]),
}

#[derive(Debug, Clone, Default)]
struct Sets {
    gids: Vec<i64>,
    rids: Vec<i64>,
    uids: Vec<i64>,
    events: Vec<String>,
}

#[derive(Debug, Clone, Default)]
struct OptSets {
    gids: Option<Vec<i64>>,
    rids: Option<Vec<i64>>,
    uids: Option<Vec<i64>>,
    events: Option<Vec<String>>,
}

fn non_empty<T>(v: &[T]) -> Option<&[T]> {
    (!v.is_empty()).then_some(v)
}

impl Change {
    fn method(&self) -> &'static str {
        match self {
            Change::Add(_) => "addlisten",
            Change::Remove(_) => "removelisten",
            Change::Set(_) | Change::Status(_) => "setlisten",
        }
    }

    fn params(&self) -> Params {
        let mut p = Params::new();
        match self {
            Change::Add(s) | Change::Remove(s) => {
                p.put("gids", non_empty(&s.gids))
                    .put("rids", non_empty(&s.rids))
                    .put("uids", non_empty(&s.uids))
                    .put("events", non_empty(&s.events).map(Strs));
            }
            Change::Set(s) => {
                p.put("gids", s.gids.as_deref())
                    .put("rids", s.rids.as_deref())
                    .put("uids", s.uids.as_deref())
                    .put("events", s.events.as_deref().map(Strs));
            }
            Change::Status([group, room, p2p, ev]) => {
                p.put("group", *group)
                    .put("room", *room)
                    .put("p2p", *p2p)
                    .put("ev", *ev);
            }
        }
        p
    }

    fn apply(&self, state: &mut ListenState) {
        match self {
            Change::Add(s) => {
                state.gids.extend(&s.gids);
                state.rids.extend(&s.rids);
                state.uids.extend(&s.uids);
                state.events.extend(s.events.iter().cloned());
            }
            Change::Remove(s) => {
                state.gids.retain(|v| !s.gids.contains(v));
                state.rids.retain(|v| !s.rids.contains(v));
                state.uids.retain(|v| !s.uids.contains(v));
                state.events.retain(|v| !s.events.contains(v));
            }
            Change::Set(s) => {
                if let Some(v) = &s.gids {
                    state.gids = v.iter().copied().collect();
                }
                if let Some(v) = &s.rids {
                    state.rids = v.iter().copied().collect();
                }
                if let Some(v) = &s.uids {
                    state.uids = v.iter().copied().collect();
                }
                if let Some(v) = &s.events {
                    state.events = v.iter().cloned().collect();
                }
            }
            Change::Status([group, room, p2p, ev]) => {
                state.all_groups = *group;
                state.all_rooms = *room;
                state.all_p2p = *p2p;
                state.all_events = *ev;
            }
        }
    }

    fn is_empty(&self) -> bool {
        match self {
            Change::Add(s) | Change::Remove(s) => {
                s.gids.is_empty() && s.rids.is_empty() && s.uids.is_empty() && s.events.is_empty()
            }
            _ => false,
        }
    }
}

/// Groups, rooms, users and events to listen to (or to stop listening
/// to), built with chained setters:
///
/// ```
/// use rtm_server_sdk::rtm::ListenTargets;
/// let targets = ListenTargets::new().rooms([42]).events(["login", "logout"]);
/// assert_eq!(targets.rids, vec![42]);
/// ```
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct ListenTargets {
    /// Group ids.
    pub gids: Vec<i64>,
    /// Room ids.
    pub rids: Vec<i64>,
    /// User ids (P2P messages).
    pub uids: Vec<i64>,
    /// Event names (`login`, `logout`, ...).
    pub events: Vec<String>,
}

impl ListenTargets {
    /// Nothing yet.
    #[must_use]
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds group ids.
    #[must_use]
    pub fn groups(mut self, gids: impl IntoIterator<Item = i64>) -> Self {
        self.gids.extend(gids);
        self
    }

    /// Adds room ids.
    #[must_use]
    pub fn rooms(mut self, rids: impl IntoIterator<Item = i64>) -> Self {
        self.rids.extend(rids);
        self
    }

    /// Adds user ids.
    #[must_use]
    pub fn users(mut self, uids: impl IntoIterator<Item = i64>) -> Self {
        self.uids.extend(uids);
        self
    }

    /// Adds event names.
    #[must_use]
    pub fn events<S: Into<String>>(mut self, events: impl IntoIterator<Item = S>) -> Self {
        self.events.extend(events.into_iter().map(Into::into));
        self
    }

    fn sets(&self) -> Sets {
        Sets {
            gids: self.gids.clone(),
            rids: self.rids.clone(),
            uids: self.uids.clone(),
            events: self.events.clone(),
        }
    }

    fn opt_sets(&self) -> OptSets {
        OptSets {
            gids: Some(self.gids.clone()),
            rids: Some(self.rids.clone()),
            uids: Some(self.uids.clone()),
            events: Some(self.events.clone()),
        }
    }
}

/// Whether to listen to everything of a kind (quest `setlisten` with
/// `group`, `room`, `p2p` and `ev`):
///
/// ```
/// use rtm_server_sdk::rtm::ListenStatus;
/// let status = ListenStatus { p2p: true, ..Default::default() };
/// assert!(!status.groups);
/// ```
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub struct ListenStatus {
    /// Every group (`group`).
    pub groups: bool,
    /// Every room (`room`).
    pub rooms: bool,
    /// Every P2P message (`p2p`).
    pub p2p: bool,
    /// Every event (`ev`).
    pub events: bool,
}

impl ListenStatus {
    fn flags(self) -> [bool; 4] {
        [self.groups, self.rooms, self.p2p, self.events]
    }
}

impl RtmServerClient {
    /// A copy of what the client listens to (as the server accepted it).
    #[must_use]
    pub fn listen_state(&self) -> ListenState {
        lock(&self.inner_listen()).clone()
    }

    /// Adds groups, rooms, users and events to what this connection
    /// listens to (quest `addlisten`; empty lists are left out, and a call
    /// with every list empty sends nothing).
    ///
    /// ```
    /// # let emulator = rtm_server_sdk::emulator::RtmEmulator::start(1, "s").unwrap();
    /// # let client = rtm_server_sdk::RtmServerClient::new(1, "s", emulator.endpoint()).unwrap();
    /// use rtm_server_sdk::rtm::ListenTargets;
    /// client.add_listen(&ListenTargets::new().groups([7]).events(["login"]))?;
    /// assert!(client.listen_state().gids.contains(&7));
    /// # Ok::<(), rtm_server_sdk::Error>(())
    /// ```
    ///
    /// # Errors
    ///
    /// As every RTM method: the server's refusal
    /// ([`Error::Server`](crate::Error::Server)), a timeout, a connection
    /// error, or [`Error::InvalidArgument`](crate::Error::InvalidArgument)
    /// for a list the wire cannot carry (nothing is sent then). After an
    /// error the client's copy ([`listen_state`](Self::listen_state), what
    /// it restores on a new connection) is unchanged, though after a
    /// timeout or a lost connection the server may have applied the
    /// change: the call can safely be made again.
    pub fn add_listen(&self, targets: &ListenTargets) -> Result<()> {
        self.change_listen(Change::Add(targets.sets()))
    }

    /// The callback form of [`add_listen`](Self::add_listen).
    pub fn add_listen_with_callback<F>(&self, targets: &ListenTargets, callback: F)
    where
        F: FnOnce(Result<()>) + Send + 'static,
    {
        self.change_listen_with_callback(Change::Add(targets.sets()), callback)
    }

    /// Removes groups, rooms, users and events from what this connection
    /// listens to (quest `removelisten`; empty lists are left out, and a
    /// call with every list empty sends nothing).
    ///
    /// # Errors
    ///
    /// As every RTM method: the server's refusal
    /// ([`Error::Server`](crate::Error::Server)), a timeout, a connection
    /// error, or [`Error::InvalidArgument`](crate::Error::InvalidArgument)
    /// for a list the wire cannot carry (nothing is sent then). After an
    /// error the client's copy ([`listen_state`](Self::listen_state), what
    /// it restores on a new connection) is unchanged, though after a
    /// timeout or a lost connection the server may have applied the
    /// change: the call can safely be made again.
    pub fn remove_listen(&self, targets: &ListenTargets) -> Result<()> {
        self.change_listen(Change::Remove(targets.sets()))
    }

    /// The callback form of [`remove_listen`](Self::remove_listen).
    pub fn remove_listen_with_callback<F>(&self, targets: &ListenTargets, callback: F)
    where
        F: FnOnce(Result<()>) + Send + 'static,
    {
        self.change_listen_with_callback(Change::Remove(targets.sets()), callback)
    }

    /// Replaces the four listened sets with exactly `targets` (quest
    /// `setlisten` with all four lists; an empty list clears that set).
    ///
    /// # Errors
    ///
    /// As every RTM method: the server's refusal
    /// ([`Error::Server`](crate::Error::Server)), a timeout, a connection
    /// error, or [`Error::InvalidArgument`](crate::Error::InvalidArgument)
    /// for a list the wire cannot carry (nothing is sent then). After an
    /// error the client's copy ([`listen_state`](Self::listen_state), what
    /// it restores on a new connection) is unchanged, though after a
    /// timeout or a lost connection the server may have applied the
    /// change: the call can safely be made again.
    pub fn set_listen(&self, targets: &ListenTargets) -> Result<()> {
        self.change_listen(Change::Set(targets.opt_sets()))
    }

    /// The callback form of [`set_listen`](Self::set_listen).
    pub fn set_listen_with_callback<F>(&self, targets: &ListenTargets, callback: F)
    where
        F: FnOnce(Result<()>) + Send + 'static,
    {
        self.change_listen_with_callback(Change::Set(targets.opt_sets()), callback)
    }

    /// Listens to everything of a kind (quest `setlisten` with `group`,
    /// `room`, `p2p` and `ev`; all four are always sent).
    ///
    /// ```
    /// # let emulator = rtm_server_sdk::emulator::RtmEmulator::start(1, "s").unwrap();
    /// # let client = rtm_server_sdk::RtmServerClient::new(1, "s", emulator.endpoint()).unwrap();
    /// use rtm_server_sdk::rtm::ListenStatus;
    /// client.set_listen_status(ListenStatus { events: true, ..Default::default() })?;
    /// assert!(client.listen_state().all_events);
    /// # Ok::<(), rtm_server_sdk::Error>(())
    /// ```
    ///
    /// # Errors
    ///
    /// As every RTM method: the server's refusal
    /// ([`Error::Server`](crate::Error::Server)), a timeout, a connection
    /// error, or [`Error::InvalidArgument`](crate::Error::InvalidArgument)
    /// for a list the wire cannot carry (nothing is sent then). After an
    /// error the client's copy ([`listen_state`](Self::listen_state), what
    /// it restores on a new connection) is unchanged, though after a
    /// timeout or a lost connection the server may have applied the
    /// change: the call can safely be made again.
    pub fn set_listen_status(&self, status: ListenStatus) -> Result<()> {
        self.change_listen(Change::Status(status.flags()))
    }

    /// The callback form of [`set_listen_status`](Self::set_listen_status).
    pub fn set_listen_status_with_callback<F>(&self, status: ListenStatus, callback: F)
    where
        F: FnOnce(Result<()>) + Send + 'static,
    {
        self.change_listen_with_callback(Change::Status(status.flags()), callback)
    }

    fn change_listen(&self, change: Change) -> Result<()> {
        if change.is_empty() {
            return Ok(());
        }
        self.invoke(change.method(), &change.params(), |_| Ok(()))?;
        change.apply(&mut lock(&self.inner_listen()));
        Ok(())
    }

    fn change_listen_with_callback<F>(&self, change: Change, callback: F)
    where
        F: FnOnce(Result<()>) + Send + 'static,
    {
        if change.is_empty() {
            return self.on_pool(move || callback(Ok(())));
        }
        let state = self.inner_listen();
        let params = change.params();
        self.invoke_with_callback(
            crate::fpnn::conn::MethodName::Static(change.method()),
            params,
            |_| Ok(()),
            Box::new(move |result: Result<()>| {
                if result.is_ok() {
                    change.apply(&mut lock(&state));
                }
                callback(result)
            }),
        )
    }
}

/// The connect hook that restores the listen state on a new connection.
pub(crate) fn restore_hook(signer: Arc<Signer>, state: Arc<Mutex<ListenState>>) -> ConnectHook {
    Arc::new(move |session: &FpnnSession<'_>| {
        let snapshot = lock(&state).clone();
        let mut changes = Vec::new();
        if snapshot.has_sets() {
            let v = |s: &BTreeSet<i64>| s.iter().copied().collect::<Vec<_>>();
            changes.push(Change::Set(OptSets {
                gids: Some(v(&snapshot.gids)).filter(|l| !l.is_empty()),
                rids: Some(v(&snapshot.rids)).filter(|l| !l.is_empty()),
                uids: Some(v(&snapshot.uids)).filter(|l| !l.is_empty()),
                events: Some(snapshot.events.iter().cloned().collect::<Vec<_>>())
                    .filter(|l| !l.is_empty()),
            }));
        }
        if snapshot.has_flags() {
            changes.push(Change::Status([
                snapshot.all_groups,
                snapshot.all_rooms,
                snapshot.all_p2p,
                snapshot.all_events,
            ]));
        }
        for change in changes {
            let frame = signer.frame(session.core(), change.method(), &change.params())?;
            match session.call_frame(change.method(), frame) {
                Ok(_) => {}
                Err(e) if e.is_server_error() => {
                    log::warn!(
                        "restoring the listen state: the server refused `{}`: {e}",
                        change.method()
                    )
                }
                Err(e) => return Err(e),
            }
        }
        Ok(())
    })
}
