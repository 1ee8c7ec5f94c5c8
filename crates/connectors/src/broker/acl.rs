//! Topic rights of the embedded broker's users: which topics a user may publish on and which
//! filters it may subscribe to, as MQTT topic filters where `%u` stands for the user's name
//! (Mosquitto's `pattern`).
//!
//! Invariants: a user's own lists replace the defaults (`[acl]`), never add to them; `%u`
//! is never filled with a name holding `+`, `#` or `/` (such a name would widen the
//! pattern), the pattern then grants nothing; a subscription is allowed only when every
//! topic it can match is allowed (`ioc/#` is not covered by `ioc/+/%u/telemetry`); topics
//! starting with `$` match only patterns that name them literally (MQTT §4.7.2).

use std::collections::HashMap;

/// What a user may do: topic filter patterns (with `%u`) for publishing and subscribing.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Rights {
    /// Patterns a published topic (and a will topic) must match.
    pub publish: Vec<String>,
    /// Patterns a subscription filter must be covered by.
    pub subscribe: Vec<String>,
}

/// The broker's access rules: per-user rights, and defaults for users without their own.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Acl {
    /// The `[acl]` table: rights of a user without its own lists.
    pub defaults: Rights,
    /// Users with their own `publish`/`subscribe` lists.
    pub users: HashMap<String, Rights>,
}

impl Acl {
    /// The rights of `user` (`None`: a client without a name, which gets the defaults; an
    /// authenticated broker refuses it at CONNECT anyway).
    pub fn rights(&self, user: Option<&str>) -> &Rights {
        user.and_then(|u| self.users.get(u))
            .unwrap_or(&self.defaults)
    }

    /// May `user` publish on `topic`?
    pub fn may_publish(&self, user: Option<&str>, topic: &str) -> bool {
        self.rights(user)
            .publish
            .iter()
            .filter_map(|p| fill(p, user))
            .any(|filter| matches(&filter, topic))
    }

    /// May `user` subscribe to `filter`?
    pub fn may_subscribe(&self, user: Option<&str>, filter: &str) -> bool {
        self.rights(user)
            .subscribe
            .iter()
            .filter_map(|p| fill(p, user))
            .any(|pattern| covers(&pattern, filter))
    }
}

/// `pattern` with `%u` replaced by `user`; `None` when it needs a name that is missing or
/// would widen it.
fn fill(pattern: &str, user: Option<&str>) -> Option<String> {
    if !pattern.contains("%u") {
        return Some(pattern.to_string());
    }
    let user = user?;
    if user.is_empty() || user.contains(['+', '#', '/']) {
        return None;
    }
    Some(pattern.replace("%u", user))
}

/// A pattern is a valid topic filter (`#` only last and alone in its level, `+` alone in its
/// level), `%u` allowed in any level.
pub fn check_pattern(pattern: &str) -> Result<(), String> {
    if pattern.is_empty() {
        return Err("an empty topic pattern".into());
    }
    let levels: Vec<&str> = pattern.split('/').collect();
    for (i, level) in levels.iter().enumerate() {
        if level.contains('#') && (*level != "#" || i + 1 != levels.len()) {
            return Err(format!("`{pattern}`: `#` is a whole level, and the last"));
        }
        if level.contains('+') && *level != "+" {
            return Err(format!("`{pattern}`: `+` is a whole level"));
        }
    }
    Ok(())
}

/// Does the topic filter `filter` match the topic name `topic`?
pub fn matches(filter: &str, topic: &str) -> bool {
    if topic.starts_with('$') && (filter.starts_with('+') || filter.starts_with('#')) {
        return false;
    }
    let mut f = filter.split('/');
    let mut t = topic.split('/');
    loop {
        match (f.next(), t.next()) {
            (Some("#"), _) => return true,
            (Some("+"), Some(_)) => {}
            (Some(a), Some(b)) if a == b => {}
            (None, None) => return true,
            _ => return false,
        }
    }
}

/// Is every topic that `filter` matches also matched by `pattern`?
pub fn covers(pattern: &str, filter: &str) -> bool {
    if filter.starts_with('$') && (pattern.starts_with('+') || pattern.starts_with('#')) {
        return false;
    }
    let mut p = pattern.split('/');
    let mut f = filter.split('/');
    loop {
        match (p.next(), f.next()) {
            (Some("#"), _) => return true,
            (_, Some("#")) => return false,
            (Some("+"), Some(_)) => {}
            (Some(a), Some(b)) if a == b && b != "+" => {}
            (None, None) => return true,
            _ => return false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn station_acl() -> Acl {
        let mut users = HashMap::new();
        users.insert(
            "watchfloor".to_string(),
            Rights {
                publish: vec!["ioc/alerts/#".into()],
                subscribe: vec!["ioc/#".into()],
            },
        );
        Acl {
            defaults: Rights {
                publish: vec!["ioc/+/%u/telemetry".into()],
                subscribe: vec!["ioc/commands/%u".into()],
            },
            users,
        }
    }

    #[test]
    fn a_station_publishes_on_its_own_topic_only() {
        let acl = station_acl();
        let me = Some("CT-AIR-01");
        assert!(acl.may_publish(me, "ioc/air/CT-AIR-01/telemetry"));
        assert!(!acl.may_publish(me, "ioc/air/CT-AIR-02/telemetry"));
        assert!(!acl.may_publish(me, "ioc/air/CT-AIR-01/telemetry/x"));
        assert!(!acl.may_publish(me, "ioc/alerts/critical/x"));
        assert!(acl.may_subscribe(me, "ioc/commands/CT-AIR-01"));
        assert!(!acl.may_subscribe(me, "ioc/#"));
        assert!(!acl.may_subscribe(me, "ioc/commands/+"));
        assert!(!acl.may_subscribe(me, "#"));
        // A user's own lists replace the defaults.
        assert!(acl.may_subscribe(Some("watchfloor"), "ioc/+/+/telemetry"));
        assert!(!acl.may_publish(Some("watchfloor"), "ioc/air/watchfloor/telemetry"));
        // No name, or a name that would widen `%u`: nothing through `%u`.
        assert!(!acl.may_publish(None, "ioc/air/CT-AIR-01/telemetry"));
        assert!(!acl.may_publish(Some("#"), "ioc/air/x/telemetry"));
        assert!(!acl.may_publish(Some("a/b"), "ioc/air/a/b/telemetry"));
    }

    #[test]
    fn dollar_topics_need_a_literal_pattern() {
        assert!(!matches("#", "$SYS/x"));
        assert!(!matches("+/x", "$SYS/x"));
        assert!(matches("$SYS/#", "$SYS/x"));
        assert!(!covers("#", "$SYS/#"));
        assert!(covers("$SYS/#", "$SYS/broker/+"));
    }

    #[test]
    fn patterns_are_checked() {
        assert!(check_pattern("ioc/+/%u/telemetry").is_ok());
        assert!(check_pattern("ioc/#").is_ok());
        assert!(check_pattern("ioc/#/x").is_err());
        assert!(check_pattern("ioc/a+").is_err());
        assert!(check_pattern("").is_err());
    }

    fn level() -> impl Strategy<Value = String> {
        prop_oneof![
            Just("a".to_string()),
            Just("b".to_string()),
            Just("+".to_string())
        ]
    }

    fn filter() -> impl Strategy<Value = String> {
        (prop::collection::vec(level(), 1..4), any::<bool>()).prop_map(|(levels, hash)| {
            let mut f = levels.join("/");
            if hash {
                f.push_str("/#");
            }
            f
        })
    }

    fn topic() -> impl Strategy<Value = String> {
        prop::collection::vec(prop_oneof![Just("a"), Just("b"), Just("c")], 1..6)
            .prop_map(|l| l.join("/"))
    }

    proptest! {
        /// Coverage is sound: when `pattern` covers `filter`, every topic the filter matches
        /// the pattern matches too.
        #[test]
        fn covering_is_sound(pattern in filter(), f in filter(), topics in prop::collection::vec(topic(), 1..40)) {
            if covers(&pattern, &f) {
                for t in &topics {
                    if matches(&f, t) {
                        prop_assert!(matches(&pattern, t), "{pattern} covers {f} but not {t}");
                    }
                }
            }
        }

        /// A filter covers itself, and `#` covers every filter of ordinary topics.
        #[test]
        fn covering_is_reflexive(f in filter()) {
            prop_assert!(covers(&f, &f));
            prop_assert!(covers("#", &f));
        }
    }
}
