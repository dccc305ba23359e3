//! The model repository extension: the index, and loading and unloading models while the server runs.
//!
//! - Load rescans the repository root, so a model added after start, a new version or a changed file is
//!   picked up. A version already serving keeps serving until its replacement is ready (and keeps serving if
//!   the replacement fails to load); versions no longer on disk are unloaded. A version that fails to load and
//!   was not serving is dropped, as MLServer does: requests get 404 and readiness is not held back by it (one
//!   bad model loaded by Seldon's agent must not take the other models of the server out of service); the
//!   index shows it UNAVAILABLE with the error.
//! - Unload refuses new requests for the model (503, "is unloading"), waits for those in flight (they all get
//!   their answers), then drops its sessions; from then on the model is unknown (404, as MLServer answers and
//!   Seldon's agent expects).

use std::sync::Arc;
use std::time::Duration;

use serde::Serialize;

use super::discovery::{self, ModelSource};
use super::load_config::LoadOptions;
use super::{compare_versions, label, LoadedModel, ModelState, Repository, Slot};
use crate::error::Error;

/// Longest an unload waits for in-flight requests; past it the sessions go when the last request finishes.
const DRAIN_LIMIT: Duration = Duration::from_secs(120);

/// The state names of the repository extension.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "UPPERCASE")]
pub enum IndexState {
    Unknown,
    Ready,
    Unavailable,
    Loading,
    Unloading,
}

impl IndexState {
    pub fn as_str(self) -> &'static str {
        match self {
            IndexState::Unknown => "UNKNOWN",
            IndexState::Ready => "READY",
            IndexState::Unavailable => "UNAVAILABLE",
            IndexState::Loading => "LOADING",
            IndexState::Unloading => "UNLOADING",
        }
    }
}

/// One entry of the repository index.
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct IndexEntry {
    pub name: String,
    /// The version; empty for an unversioned model.
    pub version: String,
    pub state: IndexState,
    /// Why the model is not ready (its load error, "unloaded", "not loaded"); empty otherwise.
    pub reason: String,
}

impl Repository {
    /// Every model known, loaded or only on disk, sorted by name then version; with `ready_only`, only the
    /// versions ready to serve.
    pub async fn index(&self, ready_only: bool) -> Result<Vec<IndexEntry>, Error> {
        let mut entries: Vec<IndexEntry> = self
            .slots()
            .iter()
            .map(|slot| entry(slot))
            .filter(|e| !ready_only || e.state == IndexState::Ready)
            .collect();
        if !ready_only {
            let on_disk = self.scan().await?;
            // Reasons of models no longer on disk go (the map only ever holds names found on disk).
            self.lock_not_loaded()
                .retain(|name, _| on_disk.iter().any(|s| &s.name == name));
            for source in on_disk {
                let version = source.version.clone().unwrap_or_default();
                if entries
                    .iter()
                    .any(|e| e.name == source.name && e.version == version)
                {
                    continue;
                }
                let reason = self
                    .lock_not_loaded()
                    .get(&source.name)
                    .cloned()
                    .unwrap_or_else(|| "not loaded".into());
                entries.push(IndexEntry {
                    name: source.name,
                    version,
                    state: IndexState::Unavailable,
                    reason,
                });
            }
        }
        entries.sort_by(|a, b| {
            a.name
                .cmp(&b.name)
                .then_with(|| compare_versions(&a.version, &b.version))
        });
        Ok(entries)
    }

    /// Loads (or reloads) every version of `name` found on disk now; with a configuration override (Triton's
    /// `config` parameter) the versions load with those settings instead of model-settings.json's.
    pub async fn load_model(
        self: &Arc<Self>,
        name: &str,
        options: LoadOptions,
    ) -> Result<(), Error> {
        super::check_name_length(name)?;
        let _guard = self.admin_lock(name).await;
        let mut sources: Vec<ModelSource> = Vec::new();
        for source in self.scan().await? {
            if source.name != name {
                continue;
            }
            if sources.iter().any(|s| s.version == source.version) {
                tracing::error!(
                    model = %source.label(),
                    file = %source.settings_path.display(),
                    "a model with this name and version is already found; skipped"
                );
                continue;
            }
            sources.push(source);
        }
        if sources.is_empty() {
            return Err(Error::LoadNotFound(name.to_string()));
        }
        if let Some(config) = &options.config {
            for source in &mut sources {
                config.check_model_file(name, source)?;
                config.apply(&mut source.settings);
            }
        }
        self.lock_not_loaded().remove(name);
        // Versions no longer on disk go; the others load (side by side), each into its slot.
        let current = self.versions_of(name);
        let stale: Vec<Arc<Slot>> = current
            .iter()
            .filter(|slot| !sources.iter().any(|s| s.version == slot.version))
            .cloned()
            .collect();
        let mut tasks = Vec::new();
        for source in sources {
            let slot = current
                .iter()
                .find(|s| s.version == source.version)
                .cloned()
                .unwrap_or_else(|| self.add_slot(&source));
            let repo = self.clone();
            tasks.push(tokio::task::spawn_blocking(move || {
                let replaced = repo.reload_slot(&slot, source);
                (slot, replaced)
            }));
        }
        let mut failures = Vec::new();
        let mut failed_slots = Vec::new();
        for task in tasks {
            let (slot, outcome) = task
                .await
                .map_err(|e| Error::Internal(format!("loading {name} failed: {e}")))?;
            match outcome {
                Ok(Some(old)) => drain_and_drop(old).await,
                Ok(None) => {}
                Err(reason) => {
                    failures.push(format!("{}: {reason}", slot.label()));
                    if matches!(slot.state(), ModelState::Unavailable(_)) {
                        failed_slots.push(slot);
                    }
                }
            }
        }
        self.unload_slots(name, stale).await;
        self.remove_slots(name, &failed_slots);
        if failures.is_empty() {
            return Ok(());
        }
        let message = format!("Model {name} failed to load: {}", failures.join("; "));
        if !failed_slots.is_empty() {
            self.lock_not_loaded()
                .insert(name.to_string(), message.clone());
        }
        Err(Error::ModelLoad(message))
    }

    /// Unloads every version of `name`: new requests are refused, those in flight are answered, then the
    /// sessions are dropped and the model is forgotten. An unknown model is 404.
    pub async fn unload_model(&self, name: &str) -> Result<(), Error> {
        super::check_name_length(name)?;
        // Neither registered nor being loaded: 404 without touching the lock map.
        if self.versions_of(name).is_empty() && !self.admin_busy(name) {
            return Err(Error::ModelNotFound(name.to_string()));
        }
        let _guard = self.admin_lock(name).await;
        let slots = self.versions_of(name);
        if slots.is_empty() {
            return Err(Error::ModelNotFound(name.to_string()));
        }
        self.unload_slots(name, slots).await;
        self.lock_not_loaded()
            .insert(name.to_string(), "unloaded".into());
        Ok(())
    }

    /// Marks the slots unloading, waits for their requests, drops them and removes them from the repository.
    async fn unload_slots(&self, name: &str, slots: Vec<Arc<Slot>>) {
        let mut models = Vec::new();
        for slot in &slots {
            if let ModelState::Ready(model) = slot.state() {
                models.push(model);
            }
            slot.set_state(ModelState::Unloading);
        }
        for model in models {
            drain_and_drop(model).await;
        }
        self.remove_slots(name, &slots);
        for slot in &slots {
            tracing::info!(model = %slot.label(), "model unloaded");
        }
    }

    /// Forgets these slots of `name`.
    fn remove_slots(&self, name: &str, slots: &[Arc<Slot>]) {
        if slots.is_empty() {
            return;
        }
        let mut all = self.models.write().unwrap_or_else(|e| e.into_inner());
        if let Some(versions) = all.get_mut(name) {
            versions.retain(|v| !slots.iter().any(|s| Arc::ptr_eq(s, v)));
            if versions.is_empty() {
                all.remove(name);
            }
        }
    }

    /// Loads `source` into `slot` (blocking). A ready slot keeps serving its current model until the new one
    /// is ready and keeps it if the new one fails; the replaced model is returned for draining.
    fn reload_slot(
        &self,
        slot: &Slot,
        source: ModelSource,
    ) -> Result<Option<Arc<LoadedModel>>, String> {
        let serving = match slot.state() {
            ModelState::Ready(model) => Some(model),
            _ => {
                slot.set_state(ModelState::Loading);
                None
            }
        };
        match (self.load_source(&slot.label(), source), serving) {
            (Ok(model), old) => {
                slot.set_state(ModelState::Ready(model));
                Ok(old)
            }
            (Err(reason), Some(_)) => Err(format!("{reason} (the loaded copy keeps serving)")),
            (Err(reason), None) => {
                slot.set_state(ModelState::Unavailable(reason.clone()));
                Err(reason)
            }
        }
    }

    /// A new `Loading` slot for `source`, visible at once (the index shows it loading, readiness waits for it).
    fn add_slot(&self, source: &ModelSource) -> Arc<Slot> {
        let slot = Arc::new(Slot {
            name: source.name.clone(),
            version: source.version.clone(),
            state: std::sync::RwLock::new(ModelState::Loading),
        });
        self.models
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .entry(source.name.clone())
            .or_default()
            .push(slot.clone());
        slot
    }

    /// The slots registered under `name`.
    fn versions_of(&self, name: &str) -> Vec<Arc<Slot>> {
        let models = self.models.read().unwrap_or_else(|e| e.into_inner());
        models.get(name).cloned().unwrap_or_default()
    }

    /// The models on disk now (off the async runtime).
    async fn scan(&self) -> Result<Vec<ModelSource>, Error> {
        let (root, defaults) = (self.root.clone(), self.defaults.clone());
        tokio::task::spawn_blocking(move || discovery::discover_all(&root, defaults.as_ref()))
            .await
            .map_err(|e| Error::Internal(format!("scanning the model repository failed: {e}")))
    }

    /// Whether a load or unload of `name` is running or waiting.
    fn admin_busy(&self, name: &str) -> bool {
        self.admin_locks
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .contains_key(name)
    }

    /// Waits for `name`'s admin lock; its entry goes when the last holder or waiter is done.
    async fn admin_lock(&self, name: &str) -> AdminGuard<'_> {
        let lock = self
            .admin_locks
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .entry(name.to_string())
            .or_default()
            .clone();
        // The guard exists before the wait, so a cancelled request (client gone) also removes the entry.
        let mut guard = AdminGuard {
            repository: self,
            name: name.to_string(),
            lock: Some(lock.clone()),
            held: None,
        };
        guard.held = Some(lock.lock_owned().await);
        guard
    }

    fn lock_not_loaded(
        &self,
    ) -> std::sync::MutexGuard<'_, std::collections::HashMap<String, String>> {
        self.not_loaded.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// Holds a model name's admin lock; on drop, releases it and removes the name's entry unless someone else
/// holds or waits for it, so the map only holds the names being loaded or unloaded now.
struct AdminGuard<'a> {
    repository: &'a Repository,
    name: String,
    /// This guard's reference to the lock (counted in the entry's reference count).
    lock: Option<Arc<tokio::sync::Mutex<()>>>,
    held: Option<tokio::sync::OwnedMutexGuard<()>>,
}

impl Drop for AdminGuard<'_> {
    fn drop(&mut self) {
        self.held.take();
        self.lock.take();
        let mut locks = self
            .repository
            .admin_locks
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        // Only the map's own reference left: nobody holds or waits for it (new waiters clone under this lock).
        if locks
            .get(&self.name)
            .is_some_and(|lock| Arc::strong_count(lock) == 1)
        {
            locks.remove(&self.name);
        }
    }
}

/// The index entry of a registered slot.
fn entry(slot: &Slot) -> IndexEntry {
    let (state, reason) = match slot.state() {
        ModelState::Loading => (IndexState::Loading, String::new()),
        ModelState::Ready(_) => (IndexState::Ready, String::new()),
        ModelState::Unavailable(reason) => (IndexState::Unavailable, reason),
        ModelState::Unloading => (IndexState::Unloading, String::new()),
    };
    IndexEntry {
        name: slot.name.clone(),
        version: slot.version.clone().unwrap_or_default(),
        state,
        reason,
    }
}

/// Waits until no request holds `model` any more (it is no longer reachable from the repository, so the count
/// only falls), then drops its sessions off the async runtime.
async fn drain_and_drop(model: Arc<LoadedModel>) {
    let released = model.workers.on_release();
    let shown = label(&model.name, model.version.as_deref());
    drop(model);
    match tokio::time::timeout(DRAIN_LIMIT, released).await {
        Ok(Ok(workers)) => {
            let _ = tokio::task::spawn_blocking(move || drop(workers)).await;
        }
        // The waiter is dropped only after the value was sent; nothing else to do.
        Ok(Err(_)) => {}
        Err(_) => tracing::warn!(
            model = %shown,
            "requests still running after {DRAIN_LIMIT:?}; the model is dropped when the last one ends"
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn admin_entries(repo: &Repository) -> usize {
        repo.admin_locks
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .len()
    }

    #[tokio::test]
    async fn names_that_are_not_models_leave_nothing_behind() {
        let dir = tempfile::tempdir().unwrap();
        let repo = Arc::new(Repository::new(4, 1, dir.path().to_path_buf(), None));
        for i in 0..200 {
            let name = format!("{i}-{}", "x".repeat(300));
            assert_eq!(
                repo.load_model(&name, LoadOptions::default()).await,
                Err(Error::LoadNotFound(name.clone()))
            );
            assert_eq!(
                repo.unload_model(&name).await,
                Err(Error::ModelNotFound(name))
            );
        }
        assert_eq!(admin_entries(&repo), 0);
        assert!(repo.lock_not_loaded().is_empty());
        // An over-long name is unknown at once, and shown cut short.
        let huge = "n".repeat(10 << 20);
        let err = repo
            .load_model(&huge, LoadOptions::default())
            .await
            .unwrap_err()
            .to_string();
        assert!(err.len() < 300 && err.contains("10485760 bytes"), "{err}");
        let err = repo.unload_model(&huge).await.unwrap_err().to_string();
        assert!(err.len() < 300, "{err}");
        assert!(repo.resolve(&huge, None).is_err());
        assert_eq!(admin_entries(&repo), 0);
    }

    #[tokio::test]
    async fn a_waiting_request_keeps_the_entry_until_it_is_done() {
        let dir = tempfile::tempdir().unwrap();
        let repo = Arc::new(Repository::new(4, 1, dir.path().to_path_buf(), None));
        let first = repo.admin_lock("m").await;
        let waiter = {
            let repo = repo.clone();
            tokio::spawn(async move {
                let _second = repo.admin_lock("m").await;
            })
        };
        tokio::task::yield_now().await;
        drop(first);
        assert!(admin_entries(&repo) <= 1);
        waiter.await.unwrap();
        assert_eq!(admin_entries(&repo), 0);
    }
}
