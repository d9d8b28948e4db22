//! The RocksDB log against the model of the log contract
//! (`eventbus_core::log::model`), in both durabilities and across reopens.

use std::time::Duration;

use std::sync::Arc;

use crate::log::RocksTopicLog;
use crate::store::Store;
use eventbus_core::log::Durability;
use eventbus_core::log::TopicLog;
use eventbus_core::log::model::{Backend, check_backend};
use eventbus_core::metrics::Metrics;

/// A RocksDB log on a temp folder that `Reopen` closes and opens again.
struct Rocks {
    dir: tempfile::TempDir,
    durability: Durability,
    log: Option<Arc<RocksTopicLog>>,
}

fn open(dir: &std::path::Path, durability: Durability) -> Arc<RocksTopicLog> {
    let store = Store::open(dir).expect("temp dir opens");
    Arc::new(
        RocksTopicLog::open(
            &store,
            durability,
            // Short, so buffered cases exercise the background sync.
            Duration::from_millis(5),
            Arc::new(Metrics::new()),
        )
        .expect("writer starts"),
    )
}

impl Backend for Rocks {
    fn log(&self) -> Arc<dyn TopicLog> {
        match &self.log {
            Some(log) => log.clone(),
            None => unreachable!("reopen always puts a log back"),
        }
    }
    fn can_reopen(&self) -> bool {
        true
    }
    fn reopen(&mut self) {
        // The caller closed the log (which joins the writer threads), so
        // dropping this last handle releases the RocksDB lock.
        self.log = None;
        self.log = Some(open(self.dir.path(), self.durability));
    }
}

#[test]
fn rocks_log_matches_the_model() {
    check_backend(|| {
        let dir = tempfile::tempdir().expect("temp dir");
        // Alternate durability by case; both must give the same results.
        let durability = if alternating_bit() {
            Durability::Buffered
        } else {
            Durability::Sync
        };
        let log = Some(open(dir.path(), durability));
        Box::new(Rocks {
            dir,
            durability,
            log,
        })
    });
}

fn alternating_bit() -> bool {
    use std::sync::atomic::{AtomicU64, Ordering};
    static N: AtomicU64 = AtomicU64::new(0);
    N.fetch_add(1, Ordering::Relaxed) % 2 == 1
}
