//! stub
use std::sync::Arc;
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct DialogKey {
    pub call_id: String,
    pub local_tag: String,
}
pub struct SessionTable<V> {
    m: std::sync::Mutex<std::collections::HashMap<String, Arc<V>>>,
}
impl<V: Send + Sync + 'static> Default for SessionTable<V> {
    fn default() -> Self {
        Self::new()
    }
}
impl<V: Send + Sync + 'static> SessionTable<V> {
    pub fn new() -> Self {
        SessionTable {
            m: Default::default(),
        }
    }
    pub fn insert(&self, call: &str, record: Arc<V>, _i: Option<&str>) {
        self.m.lock().unwrap().insert(call.into(), record);
    }
    pub fn update(&self, call: &str, record: Arc<V>) -> bool {
        self.m.lock().unwrap().insert(call.into(), record).is_some()
    }
    pub fn remove(&self, call: &str) -> Option<Arc<V>> {
        self.m.lock().unwrap().remove(call)
    }
    pub fn get(&self, call: &str) -> Option<Arc<V>> {
        self.m.lock().unwrap().get(call).cloned()
    }
    pub fn add_dialog(&self, _call: &str, _key: DialogKey) {}
    pub fn by_interaction(&self, _i: &str) -> Vec<(String, Arc<V>)> {
        vec![]
    }
    pub fn snapshot(&self) -> Vec<(String, Arc<V>)> {
        self.m
            .lock()
            .unwrap()
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect()
    }
}
