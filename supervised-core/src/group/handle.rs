//! [`GroupHandle`]: what code outside a group's run holds to add, remove and
//! list children and to stop it, and the roster of children it reads.
//!
//! Adds are checked and booked here, synchronously, then sent to the run
//! over a channel; removals wait for the run's answer.

use std::collections::BTreeMap;
use std::fmt;
use std::sync::{Arc, Mutex, MutexGuard};

use foldhash::HashMap;
use tokio::sync::{mpsc, oneshot};
use tokio_util::sync::CancellationToken;

use super::child::Child;
use crate::SubsystemState;

/// Where a group's run is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum RunPhase {
    NotStarted,
    Running,
    ShuttingDown,
    Ended,
}

/// What a run is asked by its handles.
pub(super) enum Command {
    Add(Child),
    Remove(String, oneshot::Sender<Result<(), RemoveError>>),
    /// Pause (`true`) or resume (`false`) a child.
    Pause(String, bool, oneshot::Sender<Result<(), PauseError>>),
}

/// One child as the roster lists it.
pub(super) struct Listed {
    pub(super) name: Arc<str>,
    pub(super) state: SubsystemState,
}

/// The children as handles see them, in start order, indexed by name: a
/// group of ten thousand tenants adds, finds and removes each in
/// logarithmic time, not by a scan of the others.
pub(super) struct Roster {
    pub(super) phase: RunPhase,
    /// Keyed by the order they were booked in.
    children: BTreeMap<u64, Listed>,
    by_name: HashMap<Arc<str>, u64>,
    next: u64,
    /// Cancelled by [`GroupHandle::shutdown`]; a fresh one for each run.
    pub(super) shutdown: CancellationToken,
}

impl Roster {
    pub(super) fn new() -> Self {
        Roster {
            phase: RunPhase::NotStarted,
            children: BTreeMap::new(),
            by_name: HashMap::default(),
            next: 0,
            shutdown: CancellationToken::new(),
        }
    }

    pub(super) fn contains(&self, name: &str) -> bool {
        self.by_name.contains_key(name)
    }

    /// Books `name` last, stopped; `false` (and nothing booked) if the name
    /// is taken.
    pub(super) fn insert(&mut self, name: Arc<str>) -> bool {
        if self.by_name.contains_key(&*name) {
            return false;
        }
        let key = self.next;
        self.next += 1;
        self.by_name.insert(Arc::clone(&name), key);
        self.children.insert(
            key,
            Listed {
                name,
                state: SubsystemState::Stopped,
            },
        );
        true
    }

    pub(super) fn remove(&mut self, name: &str) {
        if let Some(key) = self.by_name.remove(name) {
            self.children.remove(&key);
        }
    }

    pub(super) fn set_state(&mut self, name: &str, state: SubsystemState) {
        if let Some(child) = self
            .by_name
            .get(name)
            .and_then(|key| self.children.get_mut(key))
        {
            child.state = state;
        }
    }

    /// In start order.
    pub(super) fn children(&self) -> impl Iterator<Item = &Listed> {
        self.children.values()
    }
}

pub(super) struct Shared {
    pub(super) name: String,
    pub(super) commands: mpsc::UnboundedSender<Command>,
    pub(super) roster: Mutex<Roster>,
}

impl Shared {
    pub(super) fn roster(&self) -> MutexGuard<'_, Roster> {
        // Only plain data is behind it; a panic elsewhere cannot leave it torn.
        self.roster.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub(super) fn set_state(&self, name: &str, state: SubsystemState) {
        self.roster().set_state(name, state);
    }
}

/// A handle to a [`Group`](crate::Group), from
/// [`Group::handle`](crate::Group::handle), before or after its run began:
/// cheap to clone, and `Send + Sync`.
///
/// ```
/// # #[tokio::main(flavor = "current_thread", start_paused = true)]
/// # async fn main() {
/// use supervised::{CancellationToken, Child, Group, Registry};
///
/// let registry = Registry::new();
/// let group = Group::new("channels").registry(&registry);
/// let handle = group.handle();
/// let run = tokio::spawn(group.run(CancellationToken::new()));
///
/// let worker = |cancel: CancellationToken| async move { cancel.cancelled().await };
/// handle.add(Child::new("channel/telegram", worker)).unwrap();
/// assert!(handle.add(Child::new("channel/telegram", worker)).is_err()); // a duplicate
/// tokio::task::yield_now().await;
/// assert!(registry.get("channel/telegram").is_some());
///
/// handle.remove("channel/telegram").await.unwrap();
/// assert!(registry.get("channel/telegram").is_none()); // gone from /admin/liveness
/// handle.shutdown();
/// assert!(run.await.unwrap().is_clean());
/// # }
/// ```
#[derive(Clone)]
pub struct GroupHandle(pub(super) Arc<Shared>);

impl fmt::Debug for GroupHandle {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("GroupHandle")
            .field("group", &self.0.name)
            .finish_non_exhaustive()
    }
}

/// Why [`GroupHandle::add`] refused a child.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum AddError {
    /// The group has a child of that name already.
    Duplicate(String),
    /// The group is shutting down.
    ShuttingDown,
    /// The group's run has ended (or, for a nested group, is stopped until
    /// its parent restarts it).
    Ended,
}

impl fmt::Display for AddError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            AddError::Duplicate(name) => write!(f, "the group has a child named {name:?} already"),
            AddError::ShuttingDown => f.write_str("the group is shutting down"),
            AddError::Ended => f.write_str("the group's run has ended"),
        }
    }
}

impl std::error::Error for AddError {}

/// Why [`GroupHandle::remove`] did not remove a child.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum RemoveError {
    /// The group has no child of that name.
    NotFound(String),
    /// The group's run ended (or is shutting down, which stops every child)
    /// before the removal was carried out.
    Ended,
}

impl fmt::Display for RemoveError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RemoveError::NotFound(name) => write!(f, "the group has no child named {name:?}"),
            RemoveError::Ended => f.write_str("the group's run ended before the child was removed"),
        }
    }
}

impl std::error::Error for RemoveError {}

/// Why [`GroupHandle::pause`] or [`GroupHandle::resume`] did not act.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum PauseError {
    /// The group has no child of that name.
    NotFound(String),
    /// The child is a nested group, which is not paused as a whole: pause
    /// its children through its own handle.
    NestedGroup(String),
    /// The group's run ended (or is shutting down) before the command was
    /// carried out.
    Ended,
}

impl fmt::Display for PauseError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PauseError::NotFound(name) => write!(f, "the group has no child named {name:?}"),
            PauseError::NestedGroup(name) => {
                write!(
                    f,
                    "{name:?} is a nested group: pause its children through its own handle"
                )
            }
            PauseError::Ended => {
                f.write_str("the group's run ended before the command was carried out")
            }
        }
    }
}

impl std::error::Error for PauseError {}

/// A child as [`GroupHandle::children`] lists it.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct ChildInfo {
    /// Its name (its registry name).
    pub name: String,
    /// What the group is doing with it: running; backing off before the
    /// group restarts it; stopped (ended normally, stopped by the group, or
    /// not started yet); failed (its last run failed and it will not be
    /// restarted).
    pub state: SubsystemState,
}

impl GroupHandle {
    /// The group's name.
    pub fn name(&self) -> &str {
        &self.0.name
    }

    /// Adds a child at the end of the start order and starts it (at once if
    /// the group is running, with the others if it has not started).
    ///
    /// # Errors
    ///
    /// [`AddError::Duplicate`] if the group has a child of that name (a
    /// removed one's name is free again), [`AddError::ShuttingDown`] or
    /// [`AddError::Ended`] if the group will not run it.
    pub fn add(&self, child: Child) -> Result<(), AddError> {
        let mut roster = self.0.roster();
        match roster.phase {
            RunPhase::ShuttingDown => return Err(AddError::ShuttingDown),
            RunPhase::Ended => return Err(AddError::Ended),
            RunPhase::NotStarted | RunPhase::Running => {}
        }
        if !roster.insert(Arc::from(child.name.as_str())) {
            return Err(AddError::Duplicate(child.name));
        }
        // The receiver lives as long as the group (it is in the `Group`),
        // and the roster says the group is not ended.
        if let Err(mpsc::error::SendError(Command::Add(child))) =
            self.0.commands.send(Command::Add(child))
        {
            roster.remove(&child.name);
            return Err(AddError::Ended);
        }
        Ok(())
    }

    /// Stops the child `name` (its token cancelled, then up to its stop
    /// timeout before its task is aborted) and removes it and its registry
    /// entry, so it leaves `/admin/liveness`. Resolves once it is gone.
    ///
    /// # Errors
    ///
    /// [`RemoveError::NotFound`] if the group has no such child,
    /// [`RemoveError::Ended`] if the group is not running, or stops before
    /// it carries the removal out (a shutdown stops every child anyway).
    ///
    /// A child that removes itself is stopped like any other, so its own
    /// `remove(..).await` waits out its stop timeout: end the child instead
    /// (a [`Restart::Transient`](crate::Restart::Transient) child that
    /// returns `Ok` is not restarted), or remove it from another task.
    pub async fn remove(&self, name: &str) -> Result<(), RemoveError> {
        {
            let roster = self.0.roster();
            if !roster.contains(name) {
                return Err(RemoveError::NotFound(name.to_string()));
            }
            if roster.phase != RunPhase::Running && roster.phase != RunPhase::NotStarted {
                return Err(RemoveError::Ended);
            }
        }
        let (answer, answered) = oneshot::channel();
        if self
            .0
            .commands
            .send(Command::Remove(name.to_string(), answer))
            .is_err()
        {
            return Err(RemoveError::Ended);
        }
        answered.await.unwrap_or(Err(RemoveError::Ended))
    }

    /// Stops the child `name` as [`remove`](GroupHandle::remove) does, but
    /// keeps it: it is listed as [`SubsystemState::Paused`] in
    /// [`children`](GroupHandle::children) and `/admin/liveness`, with its
    /// restarts and last failure, and is not restarted (not even with its
    /// siblings under `OneForAll`) until [`resume`](GroupHandle::resume).
    /// A paused child is neither stale nor failed, and readiness does not
    /// wait for it: pause a tenant whose data makes its worker misbehave,
    /// without losing its record. Pausing a paused child does nothing.
    /// Resolves once it has stopped.
    ///
    /// # Errors
    ///
    /// [`PauseError::NotFound`] if the group has no such child,
    /// [`PauseError::NestedGroup`] for a nested group, [`PauseError::Ended`]
    /// if the group is not running.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread", start_paused = true)]
    /// # async fn main() {
    /// use supervised::{CancellationToken, Child, Group, SubsystemState};
    ///
    /// let group = Group::new("tenants");
    /// let tenants = group.handle();
    /// let cancel = CancellationToken::new();
    /// let run = tokio::spawn(group.run(cancel.clone()));
    /// tenants.add(Child::new("tenant/acme", |cancel: CancellationToken| async move {
    ///     cancel.cancelled().await;
    /// })).unwrap();
    /// tokio::task::yield_now().await;
    ///
    /// tenants.pause("tenant/acme").await.unwrap();
    /// assert_eq!(tenants.children()[0].state, SubsystemState::Paused);
    /// tenants.resume("tenant/acme").await.unwrap();
    /// assert_eq!(tenants.children()[0].state, SubsystemState::Running);
    /// cancel.cancel();
    /// run.await.unwrap();
    /// # }
    /// ```
    pub async fn pause(&self, name: &str) -> Result<(), PauseError> {
        self.pause_or_resume(name, true).await
    }

    /// Starts a [`pause`](GroupHandle::pause)d child again, at its place
    /// in the start order, with its count of failures in a row reset.
    /// Resuming a child that is not paused does nothing.
    ///
    /// # Errors
    ///
    /// As for [`pause`](GroupHandle::pause).
    pub async fn resume(&self, name: &str) -> Result<(), PauseError> {
        self.pause_or_resume(name, false).await
    }

    async fn pause_or_resume(&self, name: &str, pause: bool) -> Result<(), PauseError> {
        {
            let roster = self.0.roster();
            if !roster.contains(name) {
                return Err(PauseError::NotFound(name.to_string()));
            }
            if roster.phase != RunPhase::Running && roster.phase != RunPhase::NotStarted {
                return Err(PauseError::Ended);
            }
        }
        let (answer, answered) = oneshot::channel();
        if self
            .0
            .commands
            .send(Command::Pause(name.to_string(), pause, answer))
            .is_err()
        {
            return Err(PauseError::Ended);
        }
        answered.await.unwrap_or(Err(PauseError::Ended))
    }

    /// The children, in start order, with what the group is doing with each.
    pub fn children(&self) -> Vec<ChildInfo> {
        self.0
            .roster()
            .children()
            .map(|c| ChildInfo {
                name: c.name.to_string(),
                state: c.state,
            })
            .collect()
    }

    /// Begins the group's shutdown (or, before its run, makes the run shut
    /// down at once). Returns at once; the run's future resolves when the
    /// shutdown is done. A nested group shut down this way ends normally:
    /// its parent restarts it only if it is [`Restart::Permanent`](crate::Restart::Permanent).
    pub fn shutdown(&self) {
        self.0.roster().shutdown.cancel();
    }
}
