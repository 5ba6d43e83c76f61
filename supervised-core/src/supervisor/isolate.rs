//! Per-item isolation: one tenant's bad data costs that tenant's item, not
//! the subsystem.

use std::fmt;
use std::future::Future;

use super::failure::ItemPanicked;
use super::panic;
use crate::registry::current;
use crate::text::{displayed, Escaped};

/// Runs one item of a tick (one tenant's job, one message) so that a panic
/// in it costs only that item.
///
/// The panic is caught, logged at ERROR with the item's `label`, the
/// subsystem (when called inside a supervised body), the message and the
/// location, and counted in the subsystem's `item_panics`; the caller gets
/// `Err` and the loop carries on. Works with `join_all`, `JoinSet` or a plain
/// sequential loop alike.
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() {
/// use supervised::isolate;
///
/// let mut done = Vec::new();
/// for tenant in ["acme", "broken", "globex"] {
///     let job = async move {
///         assert!(tenant != "broken", "tenant {tenant} has a null schedule");
///         tenant
///     };
///     if let Ok(t) = isolate(tenant, job).await {
///         done.push(t);
///     }
/// }
/// assert_eq!(done, ["acme", "globex"]);
/// # }
/// ```
///
/// The label is anything `Display` (a tenant id, `format_args!`, a
/// `String`); it is formatted only when the item panics, cut to 4 KiB, and a
/// label whose `Display` panics is replaced by a placeholder.
pub async fn isolate<L, F>(label: L, item: F) -> Result<F::Output, ItemPanicked>
where
    L: fmt::Display,
    F: Future,
{
    panic::catch(item).await.map_err(|panic| {
        // Formatted once, safely: a label's `Display` may panic too.
        let label = displayed(&label);
        let subsystem = current::current();
        if let Some(sub) = &subsystem {
            sub.record_item_panic();
        }
        tracing::error!(
            target: "supervised", subsystem = subsystem.as_ref().map(|s| s.name()),
            item = %Escaped(&label),
            panic_message = %Escaped(&panic.message),
            location = panic.location.as_deref().unwrap_or("<unknown>"),
            "item panicked; isolated, the loop carries on"
        );
        ItemPanicked {
            label,
            message: panic.message,
            location: panic.location,
        }
    })
}
