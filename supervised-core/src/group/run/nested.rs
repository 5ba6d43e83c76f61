//! A nested group as a child's run: its definition is lent to the run and
//! handed back when the run ends or is dropped, so its parent can run it
//! again.

use super::*;

/// A nested group as a child's run: the definition is lent to the run and
/// handed back when it ends, or when it is dropped.
pub(in crate::group) fn nested_run(
    slot: Arc<Mutex<Option<GroupDef>>>,
    registry: Registry,
    parent: Arc<str>,
    cancel: CancellationToken,
    started: oneshot::Sender<()>,
) -> RunFuture {
    Box::pin(async move {
        let mut lent = LentDef::take(slot);
        let Some(def) = lent.def.as_mut() else {
            return ChildEnd::failed(ChildFailure::GaveUp(
                "the nested group's previous run has not ended".to_string(),
            ));
        };
        let mut runner = Runner::new(def, registry, Some(parent), Trigger::Parent(cancel));
        runner.started = Some(started);
        let report = runner.run().await;
        let failure = match &report.exit {
            GroupExit::GaveUp { child, failure } => Some(ChildFailure::GaveUp(format!(
                "the group gave up: its child {child:?} failed: {failure}"
            ))),
            GroupExit::Shutdown | GroupExit::Completed => None,
        };
        ChildEnd {
            failure,
            report: Some(Box::new(report)),
            span: None,
        }
    })
}

struct LentDef {
    slot: Arc<Mutex<Option<GroupDef>>>,
    def: Option<GroupDef>,
}

impl LentDef {
    fn take(slot: Arc<Mutex<Option<GroupDef>>>) -> Self {
        let def = lock(&slot).take();
        LentDef { slot, def }
    }
}

impl Drop for LentDef {
    fn drop(&mut self) {
        if let Some(def) = self.def.take() {
            *lock(&self.slot) = Some(def);
        }
    }
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|e| e.into_inner())
}
