//! What a group's run ends with: [`GroupReport`] and [`GroupExit`], and the
//! process exit code they give.

use std::process::ExitCode;
use std::time::Duration;

/// How a group's run ended.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum GroupExit {
    /// A shutdown was asked for (a signal, the token given to
    /// [`run`](crate::Group::run), or [`GroupHandle::shutdown`](crate::GroupHandle::shutdown))
    /// and carried out.
    Shutdown,
    /// A restart would have exceeded the group's restart intensity: every
    /// child was stopped.
    GaveUp {
        /// The child whose end needed the restart.
        child: String,
        /// Its failure, as logged (or why a normal end needed a restart).
        failure: String,
    },
    /// Every child ended and none is to be restarted.
    Completed,
}

/// What a group's run ended with.
///
/// ```
/// use std::process::ExitCode;
/// use supervised::{CancellationToken, Group, GroupExit};
///
/// # #[tokio::main(flavor = "current_thread", start_paused = true)]
/// # async fn main() {
/// let report = Group::new("doc-report")
///     .child("one-shot", |_cancel: CancellationToken| async {})
///     .run(CancellationToken::new())
///     .await;
/// assert_eq!(report.exit, GroupExit::Completed);
/// assert!(report.is_clean());
/// assert_eq!(ExitCode::from(&report), ExitCode::SUCCESS);
/// # }
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct GroupReport {
    /// Why it ended.
    pub exit: GroupExit,
    /// Children that did not finish within their bound once cancelled (their
    /// stop timeout, the group's shutdown timeout, or a second signal) and
    /// were aborted, in the order they were stopped; a nested group's
    /// unstopped children are listed by name too.
    pub unstopped: Vec<String>,
    /// Children whose last run failed and that were not restarted (the one
    /// a give-up names included), in the order they failed. A
    /// [`Restart::Temporary`](crate::Restart::Temporary) child is not
    /// listed: it is forgotten when it ends, and its ERROR event is the
    /// record of its failure.
    pub failed: Vec<String>,
    /// How long stopping took: from the shutdown's trigger or the give-up to
    /// the end (zero for [`GroupExit::Completed`]).
    pub took: Duration,
}

impl GroupReport {
    /// Whether the run ended as a service should: a shutdown or completion
    /// with every child stopped in time. What [`ExitCode::from`] gives 0 for.
    pub fn is_clean(&self) -> bool {
        !matches!(self.exit, GroupExit::GaveUp { .. }) && self.unstopped.is_empty()
    }
}

/// 0 for a clean shutdown or completion, 1 for a give-up or an unstopped child.
impl From<&GroupReport> for ExitCode {
    fn from(report: &GroupReport) -> Self {
        if report.is_clean() {
            ExitCode::SUCCESS
        } else {
            ExitCode::FAILURE
        }
    }
}

/// As for `&GroupReport`.
impl From<GroupReport> for ExitCode {
    fn from(report: GroupReport) -> Self {
        ExitCode::from(&report)
    }
}
