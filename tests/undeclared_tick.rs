//! Forgetting `tick` is not silent: a `#[supervised]` loop without it logs
//! one WARN per subsystem that it can never be reported stale, and
//! `tick = "none"` (a loop that waits on events) says it is meant.

use std::sync::{Arc, Mutex};

use supervised::{supervised, CancellationToken};
use tracing::field::{Field, Visit};
use tracing_subscriber::layer::{Context, Layer, SubscriberExt};

/// The WARN events' subsystems and messages.
#[derive(Clone, Default)]
struct Warnings(Arc<Mutex<Vec<(String, String)>>>);

struct Fields {
    subsystem: String,
    message: String,
}

impl Visit for Fields {
    fn record_str(&mut self, field: &Field, value: &str) {
        if field.name() == "subsystem" {
            self.subsystem = value.to_string();
        }
    }
    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        match field.name() {
            "message" => self.message = format!("{value:?}"),
            "subsystem" => self.subsystem = format!("{value:?}"),
            _ => {}
        }
    }
}

impl<S: tracing::Subscriber> Layer<S> for Warnings {
    fn on_event(&self, event: &tracing::Event<'_>, _: Context<'_, S>) {
        if *event.metadata().level() == tracing::Level::WARN {
            let mut fields = Fields {
                subsystem: String::new(),
                message: String::new(),
            };
            event.record(&mut fields);
            self.0
                .lock()
                .unwrap()
                .push((fields.subsystem, fields.message));
        }
    }
}

#[supervised(name = "forgot-tick")]
async fn forgot_tick(cancel: CancellationToken) {
    while !cancel.is_cancelled() {
        cancel.cancelled().await;
    }
}

#[supervised(name = "event-driven", tick = "none")]
async fn event_driven(cancel: CancellationToken) {
    while !cancel.is_cancelled() {
        cancel.cancelled().await;
    }
}

#[supervised(name = "ticking", tick = "1s")]
async fn ticking(cancel: CancellationToken) {
    while !cancel.is_cancelled() {
        cancel.cancelled().await;
    }
}

#[tokio::test(start_paused = true)]
async fn a_loop_without_tick_warns_once_and_tick_none_says_it_is_meant() {
    let warnings = Warnings::default();
    let _guard =
        tracing::subscriber::set_default(tracing_subscriber::registry().with(warnings.clone()));
    let cancelled = CancellationToken::new();
    cancelled.cancel();
    for _ in 0..3 {
        forgot_tick(cancelled.clone()).await;
        event_driven(cancelled.clone()).await;
        ticking(cancelled.clone()).await;
    }
    let seen = warnings.0.lock().unwrap().clone();
    assert_eq!(seen.len(), 1, "{seen:?}");
    let (subsystem, message) = &seen[0];
    assert_eq!(subsystem, "forgot-tick");
    assert!(
        message.contains("can never be reported stale") && message.contains("tick = \"none\""),
        "{message}"
    );
    assert_eq!(
        supervised::registry()
            .get("event-driven")
            .unwrap()
            .status()
            .tick,
        None
    );
}
