//! The serving model of each tenant, kept in memory for the HTTP API: the
//! registry is asked at most every `max_age` whether a newer good version
//! exists, and a model is read (and deserialised) only when it changed.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use gyrus_engine::TenantId;

use crate::error::{ModelError, Result};
use crate::family::TrainedModel;
use crate::registry::{Entry, Registry};

/// A serving model with its registry entry.
pub struct Served<M> {
    pub entry: Entry,
    pub model: M,
}

struct Slot<M> {
    checked: Instant,
    served: Arc<Served<M>>,
}

type Slots<M> = HashMap<String, Arc<tokio::sync::Mutex<Option<Slot<M>>>>>;

/// Serving models of one family, per tenant.
pub struct ServingCache<M> {
    registry: Registry,
    max_age: Duration,
    slots: Mutex<Slots<M>>,
}

impl<M: TrainedModel> ServingCache<M> {
    pub fn new(registry: Registry, max_age: Duration) -> Self {
        ServingCache {
            registry,
            max_age,
            slots: Mutex::new(HashMap::new()),
        }
    }

    /// The tenant's serving model; [`ModelError::NoModel`] when none was
    /// trained. Concurrent callers for one tenant wait for one read.
    pub async fn get(&self, tenant: &TenantId) -> Result<Arc<Served<M>>> {
        let slot = {
            let mut slots = self
                .slots
                .lock()
                .map_err(|_| ModelError::Registry("the model cache lock is poisoned".into()))?;
            slots
                .entry(tenant.as_str().to_string())
                .or_default()
                .clone()
        };
        let mut slot = slot.lock().await;
        if let Some(cached) = slot.as_ref()
            && cached.checked.elapsed() < self.max_age
        {
            return Ok(cached.served.clone());
        }
        let no_model = || ModelError::NoModel {
            tenant: tenant.as_str().to_string(),
            family: M::FAMILY.to_string(),
        };
        let entry = self
            .registry
            .serving_entry(tenant, M::FAMILY)
            .await?
            .ok_or_else(no_model)?;
        if let Some(cached) = slot.as_mut()
            && cached.served.entry.version == entry.version
        {
            cached.checked = Instant::now();
            return Ok(cached.served.clone());
        }
        let (entry, model) = self
            .registry
            .load::<M>(tenant, entry.version)
            .await?
            .ok_or_else(no_model)?;
        let served = Arc::new(Served { entry, model });
        *slot = Some(Slot {
            checked: Instant::now(),
            served: served.clone(),
        });
        Ok(served)
    }
}
