//! A metrics recorder for tests: every counter, gauge and histogram ops records, readable by name
//! and labels. Install it once per process, before the first `Db` connects (pool instruments are
//! registered at connect).

use std::sync::atomic::Ordering;
use std::sync::{Arc, OnceLock};

use metrics::{Counter, Gauge, Histogram, Key, KeyName, Metadata, Recorder, SharedString, Unit};
use metrics_util::registry::{AtomicStorage, Registry};

/// The installed recorder's registry.
#[derive(Clone)]
pub struct Recorded {
    registry: Arc<Registry<Key, AtomicStorage>>,
}

impl std::fmt::Debug for Recorded {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Recorded").finish_non_exhaustive()
    }
}

struct TestRecorder(Recorded);

impl Recorder for TestRecorder {
    fn describe_counter(&self, _: KeyName, _: Option<Unit>, _: SharedString) {}
    fn describe_gauge(&self, _: KeyName, _: Option<Unit>, _: SharedString) {}
    fn describe_histogram(&self, _: KeyName, _: Option<Unit>, _: SharedString) {}

    fn register_counter(&self, key: &Key, _: &Metadata<'_>) -> Counter {
        self.0
            .registry
            .get_or_create_counter(key, |c| Counter::from_arc(Arc::clone(c)))
    }

    fn register_gauge(&self, key: &Key, _: &Metadata<'_>) -> Gauge {
        self.0
            .registry
            .get_or_create_gauge(key, |g| Gauge::from_arc(Arc::clone(g)))
    }

    fn register_histogram(&self, key: &Key, _: &Metadata<'_>) -> Histogram {
        self.0
            .registry
            .get_or_create_histogram(key, |h| Histogram::from_arc(Arc::clone(h)))
    }
}

/// Installs the test recorder as the process's global recorder (once) and returns its registry.
pub fn install() -> Recorded {
    static RECORDED: OnceLock<Recorded> = OnceLock::new();
    RECORDED
        .get_or_init(|| {
            let recorded = Recorded {
                registry: Arc::new(Registry::atomic()),
            };
            metrics::set_global_recorder(TestRecorder(recorded.clone()))
                .expect("no other metrics recorder is installed in this test binary");
            recorded
        })
        .clone()
}

/// Whether a key has the name and carries every label given.
fn matches(key: &Key, name: &str, labels: &[(&str, &str)]) -> bool {
    key.name() == name
        && labels.iter().all(|(k, v)| {
            key.labels()
                .any(|label| label.key() == *k && label.value() == *v)
        })
}

impl Recorded {
    /// The sum of the counters named `name` that carry the labels given.
    pub fn counter(&self, name: &str, labels: &[(&str, &str)]) -> u64 {
        self.registry
            .get_counter_handles()
            .into_iter()
            .filter(|(key, _)| matches(key, name, labels))
            .map(|(_, c)| c.load(Ordering::Acquire))
            .sum()
    }

    /// The value of the gauge named `name` with the labels given (the first match), if any.
    pub fn gauge(&self, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
        self.registry
            .get_gauge_handles()
            .into_iter()
            .find(|(key, _)| matches(key, name, labels))
            .map(|(_, g)| f64::from_bits(g.load(Ordering::Acquire)))
    }

    /// The values recorded so far in the histograms named `name` with the labels given.
    pub fn histogram(&self, name: &str, labels: &[(&str, &str)]) -> Vec<f64> {
        self.registry
            .get_histogram_handles()
            .into_iter()
            .filter(|(key, _)| matches(key, name, labels))
            .flat_map(|(_, bucket)| bucket.data())
            .collect()
    }

    /// Every series name recorded, for a failing assertion's message.
    pub fn names(&self) -> Vec<String> {
        let mut names: Vec<String> = self
            .registry
            .get_counter_handles()
            .into_keys()
            .chain(self.registry.get_gauge_handles().into_keys())
            .chain(self.registry.get_histogram_handles().into_keys())
            .map(|key| key.to_string())
            .collect();
        names.sort();
        names.dedup();
        names
    }
}
