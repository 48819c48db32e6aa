//! Capturing the crate's `tracing` events, to assert on the lines an operator reads.

use std::sync::{Arc, Mutex};

use tracing::field::{Field, Visit};
use tracing_subscriber::layer::SubscriberExt as _;

/// One event: its level, target, message and fields, as text.
#[derive(Clone, Debug)]
pub struct Line {
    pub level: tracing::Level,
    pub target: String,
    pub fields: Vec<(String, String)>,
}

impl Line {
    pub fn field(&self, name: &str) -> Option<&str> {
        self.fields
            .iter()
            .find(|(field, _)| field == name)
            .map(|(_, value)| value.as_str())
    }

    pub fn message(&self) -> &str {
        self.field("message").unwrap_or("")
    }
}

/// Keeps every event of the crate.
#[derive(Clone, Default)]
pub struct Recorder(Arc<Mutex<Vec<Line>>>);

impl Recorder {
    pub fn lines(&self) -> Vec<Line> {
        self.0.lock().unwrap().clone()
    }
}

struct Fields<'a>(&'a mut Vec<(String, String)>);

impl Visit for Fields<'_> {
    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        self.0.push((field.name().to_owned(), format!("{value:?}")));
    }

    fn record_str(&mut self, field: &Field, value: &str) {
        self.0.push((field.name().to_owned(), value.to_owned()));
    }
}

impl<S: tracing::Subscriber> tracing_subscriber::Layer<S> for Recorder {
    fn on_event(&self, event: &tracing::Event<'_>, _: tracing_subscriber::layer::Context<'_, S>) {
        let meta = event.metadata();
        if !meta.target().starts_with("tower_bearer") {
            return;
        }
        let mut fields = Vec::new();
        event.record(&mut Fields(&mut fields));
        self.0.lock().unwrap().push(Line {
            level: *meta.level(),
            target: meta.target().to_owned(),
            fields,
        });
    }
}

pub fn recording() -> (Recorder, tracing::subscriber::DefaultGuard) {
    let recorder = Recorder::default();
    let subscriber = tracing_subscriber::registry().with(recorder.clone());
    (recorder, tracing::subscriber::set_default(subscriber))
}
