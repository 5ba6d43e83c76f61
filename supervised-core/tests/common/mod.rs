//! Test helpers shared by the behaviour tests.
#![allow(dead_code)]

use std::collections::BTreeMap;
use std::fmt;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use tracing::field::{Field, Visit};
use tracing::{Event, Level, Subscriber};
use tracing_subscriber::layer::{Context, SubscriberExt};
use tracing_subscriber::Layer;

/// One captured tracing event: level, message and fields rendered as strings.
#[derive(Debug, Clone)]
pub struct Captured {
    pub level: Level,
    /// The event's or span's `target` (what `RUST_LOG` filters match).
    pub target: String,
    pub fields: BTreeMap<String, String>,
}

impl Captured {
    pub fn field(&self, name: &str) -> Option<&str> {
        self.fields.get(name).map(String::as_str)
    }
    pub fn message(&self) -> &str {
        self.field("message").unwrap_or("")
    }
}

#[derive(Clone, Default)]
pub struct Events(Arc<Mutex<Vec<Captured>>>);

impl Events {
    pub fn all(&self) -> Vec<Captured> {
        self.0.lock().unwrap().clone()
    }
    pub fn at(&self, level: Level) -> Vec<Captured> {
        self.all()
            .into_iter()
            .filter(|e| e.level == level && e.field("span").is_none())
            .collect()
    }
    pub fn spans(&self, name: &str) -> Vec<Captured> {
        self.all()
            .into_iter()
            .filter(|e| e.field("span") == Some(name))
            .collect()
    }
}

struct Recorder(BTreeMap<String, String>);

/// A span's fields, kept in its extensions for the events inside it.
struct SpanFields(BTreeMap<String, String>);

impl Visit for Recorder {
    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        self.0
            .insert(field.name().to_string(), format!("{value:?}"));
    }
    fn record_str(&mut self, field: &Field, value: &str) {
        self.0.insert(field.name().to_string(), value.to_string());
    }
}

thread_local! {
    static SINK: std::cell::RefCell<Option<Events>> = const { std::cell::RefCell::new(None) };
}

/// Sends each event to the sink of the thread that emitted it, if any.
///
/// A global subscriber routing through a thread-local, rather than
/// `set_default` per test: tracing caches callsite interest process-wide, and
/// tests running in parallel threads would race on that cache.
struct CaptureLayer;

impl<S> Layer<S> for CaptureLayer
where
    S: Subscriber + for<'a> tracing_subscriber::registry::LookupSpan<'a>,
{
    /// New spans are recorded too, with their name in a `span` field.
    fn on_new_span(
        &self,
        attrs: &tracing::span::Attributes<'_>,
        id: &tracing::span::Id,
        ctx: Context<'_, S>,
    ) {
        SINK.with(|sink| {
            if let Some(events) = &*sink.borrow() {
                let mut rec = Recorder(BTreeMap::new());
                attrs.record(&mut rec);
                if let Some(span) = ctx.span(id) {
                    span.extensions_mut().insert(SpanFields(rec.0.clone()));
                }
                // Its parent's name, as `parent`.
                let parent = match attrs.parent() {
                    Some(parent) => ctx.span(parent),
                    None if attrs.is_contextual() => ctx.lookup_current(),
                    None => None,
                };
                if let Some(parent) = parent {
                    rec.0
                        .insert("parent".to_string(), parent.name().to_string());
                }
                rec.0
                    .insert("span".to_string(), attrs.metadata().name().to_string());
                events.0.lock().unwrap().push(Captured {
                    level: *attrs.metadata().level(),
                    target: attrs.metadata().target().to_string(),
                    fields: rec.0,
                });
            }
        });
    }

    fn on_event(&self, event: &Event<'_>, ctx: Context<'_, S>) {
        SINK.with(|sink| {
            if let Some(events) = &*sink.borrow() {
                let mut rec = Recorder(BTreeMap::new());
                event.record(&mut rec);
                // The span the event is in: its name, and its fields as
                // `in.<field>`.
                if let Some(span) = ctx.event_span(event) {
                    rec.0.insert("in".to_string(), span.name().to_string());
                    if let Some(SpanFields(fields)) = span.extensions().get::<SpanFields>() {
                        for (k, v) in fields {
                            rec.0.insert(format!("in.{k}"), v.clone());
                        }
                    }
                }
                events.0.lock().unwrap().push(Captured {
                    level: *event.metadata().level(),
                    target: event.metadata().target().to_string(),
                    fields: rec.0,
                });
            }
        });
    }
}

/// Stops capturing on this thread when dropped.
pub struct CaptureGuard;

impl Drop for CaptureGuard {
    fn drop(&mut self) {
        SINK.with(|sink| sink.borrow_mut().take());
    }
}

/// Captures every event emitted on this thread until the guard drops (use a
/// current-thread runtime so the code under test runs on this thread).
pub fn capture() -> (Events, CaptureGuard) {
    static INSTALL: std::sync::Once = std::sync::Once::new();
    INSTALL.call_once(|| {
        tracing::subscriber::set_global_default(tracing_subscriber::registry().with(CaptureLayer))
            .expect("no other global subscriber in tests");
    });
    let events = Events::default();
    SINK.with(|sink| *sink.borrow_mut() = Some(events.clone()));
    (events, CaptureGuard)
}

/// Counts live instances: incremented on creation, decremented on drop.
#[derive(Clone, Default)]
pub struct DropCounter {
    pub created: Arc<AtomicUsize>,
    pub dropped: Arc<AtomicUsize>,
}

pub struct Token(DropCounter);

impl DropCounter {
    pub fn token(&self) -> Token {
        self.created.fetch_add(1, Ordering::SeqCst);
        Token(self.clone())
    }
    pub fn created(&self) -> usize {
        self.created.load(Ordering::SeqCst)
    }
    pub fn dropped(&self) -> usize {
        self.dropped.load(Ordering::SeqCst)
    }
}

impl Drop for Token {
    fn drop(&mut self) {
        self.0.dropped.fetch_add(1, Ordering::SeqCst);
    }
}

/// A Prometheus text exposition as `metric{k=v,...}` (labels sorted) to
/// value, parsed rather than compared as a string.
pub fn prometheus_samples(text: &str) -> BTreeMap<String, f64> {
    use prometheus_parse::{Scrape, Value};
    let scrape = Scrape::parse(text.lines().map(|l| Ok(l.to_string()))).unwrap();
    scrape
        .samples
        .iter()
        .map(|s| {
            let mut labels: Vec<String> =
                s.labels.iter().map(|(k, v)| format!("{k}={v}")).collect();
            labels.sort();
            let value = match s.value {
                Value::Counter(v) | Value::Gauge(v) | Value::Untyped(v) => v,
                _ => panic!("unexpected sample {s:?}"),
            };
            (format!("{}{{{}}}", s.metric, labels.join(",")), value)
        })
        .collect()
}
