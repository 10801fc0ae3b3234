//! How profile settings map onto the registrar's and the transaction
//! layer's own settings. (What the endpoint answers by itself is
//! `sip::answer`, shared with the call layer.)

use std::time::Duration;

use crate::config::{Algorithm, NamedProfile, Profile};
use crate::registrar::{
    AlgorithmPolicy, Credentials, DigestAlgorithm, GuardSettings, RegistrarSettings, UserDirectory,
};
use crate::transaction::TimerSettings;

pub fn timer_settings(profile: &Profile) -> TimerSettings {
    TimerSettings {
        t1: Duration::from_millis(profile.timers.t1_ms),
        t2: Duration::from_millis(profile.timers.t2_ms),
        t4: Duration::from_millis(profile.timers.t4_ms),
    }
}

fn digest_algorithms(list: &[Algorithm]) -> Vec<DigestAlgorithm> {
    list.iter()
        .map(|a| match a {
            Algorithm::Md5 => DigestAlgorithm::Md5,
            Algorithm::Sha256 => DigestAlgorithm::Sha256,
        })
        .collect()
}

/// The profile's algorithms, its `User-Agent` rules and its users' own lists.
fn algorithm_policy(np: &NamedProfile) -> AlgorithmPolicy {
    let r = &np.profile.registration;
    let mut policy = AlgorithmPolicy::new(digest_algorithms(&r.algorithms));
    for rule in &r.user_agent_algorithms {
        // Validated when the configuration was loaded.
        if let Ok(re) = regex::Regex::new(&rule.user_agent) {
            policy = policy.with_user_agent(re, digest_algorithms(&rule.algorithms));
        }
    }
    for u in &np.profile.users {
        // A user known only by stored HA1s can answer only those hashes:
        // offering it another would turn its phone's right answer into a
        // failure against the guard.
        let stored: Vec<Algorithm> = [
            (Algorithm::Md5, u.ha1_md5.is_some()),
            (Algorithm::Sha256, u.ha1_sha256.is_some()),
        ]
        .into_iter()
        .filter_map(|(a, has)| has.then_some(a))
        .collect();
        let own = match (&u.algorithms, u.password.is_some()) {
            (Some(a), true) => Some(a.clone()),
            (Some(a), false) => Some(a.iter().copied().filter(|x| stored.contains(x)).collect()),
            (None, false) if stored.len() == 1 => Some(stored),
            (None, _) => None,
        };
        if let Some(a) = own {
            policy = policy.with_user(u.username.clone(), digest_algorithms(&a));
        }
    }
    policy
}

pub fn registrar_settings(np: &NamedProfile) -> RegistrarSettings {
    let p = &np.profile;
    let mut users = UserDirectory::default();
    for u in &p.users {
        let mut c = match &u.password {
            Some(pw) => Credentials::password(pw.clone()),
            None => Credentials::default(),
        };
        if let Some(h) = &u.ha1_md5 {
            c = c.with_ha1(DigestAlgorithm::Md5, h.clone());
        }
        if let Some(h) = &u.ha1_sha256 {
            c = c.with_ha1(DigestAlgorithm::Sha256, h.clone());
        }
        users.insert(u.username.clone(), c);
    }
    let r = &p.registration;
    let g = &p.auth_guard;
    RegistrarSettings {
        realm: p.realm.clone(),
        min_expires: r.min_expires,
        max_expires: r.max_expires,
        default_expires: r.default_expires,
        nonce_lifetime: Duration::from_secs(r.nonce_lifetime_secs),
        algorithms: algorithm_policy(np),
        users,
        guard: GuardSettings {
            max_failures: g.max_failures,
            max_users: g.max_users_per_source,
            window: Duration::from_secs(g.window_secs),
            block: Duration::from_secs(g.block_secs),
            ..GuardSettings::default()
        },
        ..RegistrarSettings::default()
    }
}
