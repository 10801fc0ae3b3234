//! What the endpoint is built from: per profile its transaction timers,
//! its registrar's settings (when it is a registrar) and its cap on
//! transactions per source; and the call layer's settings. `config/`
//! builds it (`Config::endpoint_settings`). (What the endpoint answers by
//! itself is `sip::answer`, shared with the call layer.)

use crate::call::settings::CallSettings;
use crate::registrar::RegistrarSettings;
use crate::transaction::TimerSettings;

#[derive(Debug, Clone)]
pub struct EndpointSettings {
    /// In configuration order: a profile's index is its `ProfileId`.
    pub profiles: Vec<EndpointProfile>,
    pub calls: CallSettings,
}

#[derive(Debug, Clone)]
pub struct EndpointProfile {
    pub name: String,
    pub timers: TimerSettings,
    /// `None`: the profile is not a registrar (REGISTER gets 405).
    pub registrar: Option<RegistrarSettings>,
    /// More from one source (not a trunk peer) get 503.
    pub max_transactions_per_source: usize,
}
