//! The embedded broker's users file: accounts (name and password hash) and their topic
//! rights.
//!
//! ```toml
//! [acl]                                  # rights of every user without its own lists
//! publish = ["ioc/+/%u/telemetry"]       # a station writes its own topic only
//! subscribe = []
//!
//! [[user]]
//! name = "CT-AIR-01"
//! password_sha256 = "…"                  # SHA-256 of "watchfloor-mqtt:<name>:<password>"
//!
//! [[user]]
//! name = "watchfloor"
//! password_sha256 = "…"
//! publish = ["ioc/alerts/#"]
//! subscribe = ["ioc/#"]
//! ```
//!
//! Invariants: passwords are never stored, only their hashes salted by the name; a file
//! with neither `[acl]` nor any user list has no topic rules (every authenticated client
//! may use every topic, as before); once there are rules, a user without its own lists has
//! exactly `[acl]`'s (nothing when there is no `[acl]`); every pattern is a valid topic
//! filter, checked at load.

use std::collections::HashMap;
use std::path::Path;

use super::acl::{check_pattern, Acl, Rights};
use super::BrokerError;

/// The accounts of an authenticated broker and, when the file has any, their topic rules.
#[derive(Debug, Clone)]
pub struct BrokerUsers {
    /// Name → [`password_hash`].
    pub passwords: HashMap<String, String>,
    /// Topic rules; `None`: any topic for any authenticated client.
    pub acl: Option<Acl>,
}

/// The stored form of `user`'s `password`: SHA-256 of `watchfloor-mqtt:<user>:<password>`,
/// hex.
pub fn password_hash(user: &str, password: &str) -> String {
    use sha2::{Digest, Sha256};
    Sha256::digest(format!("watchfloor-mqtt:{user}:{password}").as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct File {
    #[serde(default)]
    acl: Option<Lists>,
    #[serde(default)]
    user: Vec<User>,
}

#[derive(serde::Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct Lists {
    #[serde(default)]
    publish: Option<Vec<String>>,
    #[serde(default)]
    subscribe: Option<Vec<String>>,
}

#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct User {
    name: String,
    password_sha256: String,
    #[serde(default)]
    publish: Option<Vec<String>>,
    #[serde(default)]
    subscribe: Option<Vec<String>>,
}

impl User {
    fn lists(&self) -> Lists {
        Lists {
            publish: self.publish.clone(),
            subscribe: self.subscribe.clone(),
        }
    }
}

impl Lists {
    fn is_set(&self) -> bool {
        self.publish.is_some() || self.subscribe.is_some()
    }

    fn rights(self, path: &Path, whose: &str) -> Result<Rights, BrokerError> {
        let rights = Rights {
            publish: self.publish.unwrap_or_default(),
            subscribe: self.subscribe.unwrap_or_default(),
        };
        for pattern in rights.publish.iter().chain(&rights.subscribe) {
            check_pattern(pattern)
                .map_err(|e| BrokerError(format!("{}: {whose}: {e}", path.display())))?;
        }
        Ok(rights)
    }
}

/// Reads a users file (see the module documentation).
pub fn load_users(path: &Path) -> Result<BrokerUsers, BrokerError> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| BrokerError(format!("{}: {e}", path.display())))?;
    parse_users(&text, path)
}

fn parse_users(text: &str, path: &Path) -> Result<BrokerUsers, BrokerError> {
    let file: File =
        toml::from_str(text).map_err(|e| BrokerError(format!("{}: {e}", path.display())))?;
    let has_rules = file.acl.is_some() || file.user.iter().any(|u| u.lists().is_set());
    let mut passwords = HashMap::new();
    let mut acl = Acl {
        defaults: file.acl.unwrap_or_default().rights(path, "[acl]")?,
        users: HashMap::new(),
    };
    for u in file.user {
        if u.password_sha256.len() != 64
            || !u.password_sha256.chars().all(|c| c.is_ascii_hexdigit())
        {
            return Err(BrokerError(format!(
                "{}: user {}: password_sha256 is 64 hex digits",
                path.display(),
                u.name
            )));
        }
        if passwords
            .insert(u.name.clone(), u.password_sha256.to_ascii_lowercase())
            .is_some()
        {
            return Err(BrokerError(format!(
                "{}: user {} is listed twice",
                path.display(),
                u.name
            )));
        }
        let lists = u.lists();
        if lists.is_set() {
            let rights = lists.rights(path, &format!("user {}", u.name))?;
            acl.users.insert(u.name, rights);
        }
    }
    if passwords.is_empty() {
        return Err(BrokerError(format!("{}: no [[user]]", path.display())));
    }
    // A user's client ids are its name and `<name>-…`: no other user's name may be one of
    // them, or that account could take over the other's session (and its subscriptions).
    for name in passwords.keys() {
        let prefix = format!("{name}-");
        if let Some(other) = passwords.keys().find(|o| o.starts_with(&prefix)) {
            return Err(BrokerError(format!(
                "{}: user {other} begins with `{prefix}`, so user {name} could use its client id (rename one)",
                path.display()
            )));
        }
    }
    Ok(BrokerUsers {
        passwords,
        acl: has_rules.then_some(acl),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<BrokerUsers, String> {
        parse_users(text, Path::new("users.toml")).map_err(|e| e.to_string())
    }

    #[test]
    fn a_users_file_holds_hashes_only() {
        let ok = format!(
            "[[user]]\nname = \"a\"\npassword_sha256 = \"{}\"\n",
            password_hash("a", "p")
        );
        let users = parse(&ok).unwrap();
        assert_eq!(users.passwords["a"], password_hash("a", "p"));
        assert!(users.acl.is_none(), "no lists: no rules");
        assert!(parse("[[user]]\nname = \"a\"\npassword_sha256 = \"p\"\n")
            .unwrap_err()
            .contains("64 hex"));
        assert!(parse(&format!("{ok}{ok}")).unwrap_err().contains("twice"));
        assert!(parse("").unwrap_err().contains("no [[user]]"));
        let b = format!(
            "[[user]]\nname = \"CT-AIR-01\"\npassword_sha256 = \"{}\"\n",
            password_hash("CT-AIR-01", "p")
        );
        let a = ok.replace("\"a\"", "\"CT-AIR\"");
        assert!(parse(&format!("{a}{b}"))
            .unwrap_err()
            .contains("could use its client id"));
    }

    #[test]
    fn rules_come_from_acl_and_user_lists() {
        let hash = password_hash("x", "y");
        let text = format!(
            "[acl]\npublish = [\"ioc/+/%u/telemetry\"]\n\n\
             [[user]]\nname = \"CT-AIR-01\"\npassword_sha256 = \"{hash}\"\n\n\
             [[user]]\nname = \"watchfloor\"\npassword_sha256 = \"{hash}\"\nsubscribe = [\"ioc/#\"]\n"
        );
        let acl = parse(&text).unwrap().acl.expect("rules");
        assert!(acl.may_publish(Some("CT-AIR-01"), "ioc/air/CT-AIR-01/telemetry"));
        assert!(!acl.may_subscribe(Some("CT-AIR-01"), "ioc/#"));
        assert!(acl.may_subscribe(Some("watchfloor"), "ioc/#"));
        // watchfloor's own lists replace the defaults: it publishes nothing.
        assert!(!acl.may_publish(Some("watchfloor"), "ioc/air/watchfloor/telemetry"));
        // A bad pattern or an unknown key is refused with the file's name.
        let bad = format!("[acl]\npublish = [\"ioc/#/x\"]\n[[user]]\nname = \"a\"\npassword_sha256 = \"{hash}\"\n");
        assert!(parse(&bad).unwrap_err().contains("users.toml: [acl]"));
        let unknown = format!("[[user]]\nname = \"a\"\npassword_sha256 = \"{hash}\"\nwrite = []\n");
        assert!(parse(&unknown).is_err());
    }
}
