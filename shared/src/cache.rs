//! A small per-instance cache with a time to live, for records a function
//! may serve slightly stale (webhook sources, API keys and tenant plans in
//! the authorizer). Absent records are cached too, so made-up names cannot
//! turn every request into a read. Bounded: past `capacity` entries it
//! starts over rather than grow.

use std::collections::HashMap;
use std::hash::Hash;
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

pub struct TtlCache<K, V> {
    entries: Mutex<HashMap<K, (Instant, V)>>,
    ttl: Duration,
    capacity: usize,
}

impl<K, V> std::fmt::Debug for TtlCache<K, V> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TtlCache").field("ttl", &self.ttl).field("capacity", &self.capacity).finish_non_exhaustive()
    }
}

impl<K: Eq + Hash + Clone, V: Clone> TtlCache<K, V> {
    pub fn new(ttl: Duration, capacity: usize) -> Self {
        Self { entries: Mutex::new(HashMap::new()), ttl, capacity }
    }

    pub fn ttl(&self) -> Duration {
        self.ttl
    }

    /// The cached value, if loaded less than the TTL ago.
    pub fn get(&self, key: &K) -> Option<V> {
        self.lock().get(key).filter(|(at, _)| at.elapsed() < self.ttl).map(|(_, value)| value.clone())
    }

    pub fn insert(&self, key: K, value: V) {
        let mut entries = self.lock();
        if entries.len() >= self.capacity {
            entries.clear();
        }
        entries.insert(key, (Instant::now(), value));
    }

    pub fn remove(&self, key: &K) {
        self.lock().remove(key);
    }

    /// The cached value, or `load`'s (cached when it succeeds).
    pub async fn get_or_load<E, F>(&self, key: &K, load: F) -> Result<V, E>
    where
        F: Future<Output = Result<V, E>>,
    {
        if let Some(value) = self.get(key) {
            return Ok(value);
        }
        let value = load.await?;
        self.insert(key.clone(), value.clone());
        Ok(value)
    }

    fn lock(&self) -> MutexGuard<'_, HashMap<K, (Instant, V)>> {
        self.entries.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn serves_fresh_entries_and_reloads_stale_ones() {
        let cache = TtlCache::new(Duration::from_millis(50), 10);
        let loaded: Result<u32, ()> = cache.get_or_load(&"a", async { Ok(1) }).await;
        assert_eq!(loaded, Ok(1));
        let cached: Result<u32, ()> = cache.get_or_load(&"a", async { Ok(2) }).await;
        assert_eq!(cached, Ok(1), "fresh entry served from the cache");
        tokio::time::sleep(Duration::from_millis(60)).await;
        let reloaded: Result<u32, ()> = cache.get_or_load(&"a", async { Ok(3) }).await;
        assert_eq!(reloaded, Ok(3), "stale entry reloaded");
        let failed: Result<u32, &str> = cache.get_or_load(&"b", async { Err("down") }).await;
        assert_eq!(failed, Err("down"));
        assert_eq!(cache.get(&"b"), None, "a failed load is not cached");
    }

    #[test]
    fn starts_over_at_capacity_and_zero_ttl_never_serves() {
        let cache = TtlCache::new(Duration::from_secs(60), 2);
        cache.insert(1, "one");
        cache.insert(2, "two");
        cache.insert(3, "three");
        assert_eq!((cache.get(&1), cache.get(&3)), (None, Some("three")));
        let uncached = TtlCache::new(Duration::ZERO, 2);
        uncached.insert(1, "one");
        assert_eq!(uncached.get(&1), None);
    }
}
