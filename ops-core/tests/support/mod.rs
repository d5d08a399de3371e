//! Routes log events to the capture layer of the test running on the current thread.
//!
//! Tests of one binary run on parallel threads. A subscriber installed per thread with
//! `tracing::subscriber::set_default` races with tracing's per-callsite interest cache: a callsite
//! first hit on a thread without a subscriber can be cached as "never", and the event is then lost
//! for every thread. One global subscriber that is interested in everything removes the race; it
//! hands each event to whatever layer the current thread's test registered, and drops the rest.

use std::cell::RefCell;
use std::sync::Once;

use tracing::Event;
use tracing_subscriber::layer::{Context, Layer, SubscriberExt};
use tracing_subscriber::registry::Registry;

type Sink = Box<dyn Layer<Registry> + Send + Sync>;

thread_local! {
    static SINK: RefCell<Option<Sink>> = const { RefCell::new(None) };
}

struct Router;

impl Layer<Registry> for Router {
    fn on_event(&self, event: &Event<'_>, ctx: Context<'_, Registry>) {
        SINK.with(|sink| {
            if let Some(layer) = sink.borrow().as_ref() {
                layer.on_event(event, ctx);
            }
        });
    }
}

/// Stops routing to the layer when dropped.
#[must_use = "events are routed only while the guard lives"]
pub struct Routed;

impl Drop for Routed {
    fn drop(&mut self) {
        SINK.with(|sink| sink.borrow_mut().take());
    }
}

/// Routes the current thread's events to `layer` until the guard drops.
pub fn route(layer: impl Layer<Registry> + Send + Sync + 'static) -> Routed {
    static INIT: Once = Once::new();
    INIT.call_once(|| {
        tracing::subscriber::set_global_default(tracing_subscriber::registry().with(Router))
            .expect("no other global subscriber is installed in this test binary");
    });
    SINK.with(|sink| *sink.borrow_mut() = Some(Box::new(layer)));
    Routed
}
