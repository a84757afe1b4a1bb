//! One shared value per key, made (by `Default`) the first time the key is
//! asked for. Memoized work keeps a `OnceCell` per key (an index page, a
//! wheel's metadata, an sdist's build, a wheel's ELF scan); work done one
//! at a time per key keeps a lock per key (a download).

use std::collections::HashMap;
use std::hash::Hash;
use std::sync::{Arc, Mutex};

/// Values by key, each shared by everyone who asks for that key.
pub struct PerKey<K, V> {
    values: Mutex<HashMap<K, Arc<V>>>,
}

impl<K, V> Default for PerKey<K, V> {
    fn default() -> Self {
        PerKey {
            values: Mutex::new(HashMap::new()),
        }
    }
}

impl<K: Eq + Hash + Clone, V: Default> PerKey<K, V> {
    /// The value for `key`, made now if this is the first time it is asked for.
    pub fn get(&self, key: &K) -> Arc<V> {
        let mut values = self.values.lock().expect("poisoned");
        if let Some(v) = values.get(key) {
            return v.clone();
        }
        values.entry(key.clone()).or_default().clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_value_per_key() {
        let map: PerKey<String, Mutex<u32>> = PerKey::default();
        *map.get(&"a".to_string()).lock().unwrap() += 1;
        *map.get(&"a".to_string()).lock().unwrap() += 1;
        *map.get(&"b".to_string()).lock().unwrap() += 5;
        assert_eq!(*map.get(&"a".to_string()).lock().unwrap(), 2);
        assert_eq!(*map.get(&"b".to_string()).lock().unwrap(), 5);
        assert!(Arc::ptr_eq(
            &map.get(&"a".to_string()),
            &map.get(&"a".to_string())
        ));
    }
}
