//! Who may see and do what: bearer tokens, stored as SHA-256 hashes, each with a role and
//! a scope: an area in the two-tier government (the city, or one or more communes/wards —
//! a cluster centre; a district only for legacy city data) times a set of sectors
//! (departments; all when not given). A thing is seen when it is inside the area and
//! shares a sector with the account; things of no sector are seen by all-sector accounts
//! only.

use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;

use serde::Deserialize;
use sha2::{Digest, Sha256};
use thiserror::Error;

/// What an account may do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Deserialize, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// Watches alerts, KPIs and stations.
    Viewer,
    /// A machine client subscribing to alert streams.
    Integrator,
    /// Acknowledges, resolves, comments on and assigns alerts.
    Operator,
    /// Starts, pauses, resumes and aborts drills, and reads their reports (watches like a
    /// viewer otherwise: the players act, the leader runs the exercise).
    #[serde(rename = "drill_leader")]
    DrillLeader,
    /// Everything, including rule reloads and the audit log.
    Admin,
}

impl Role {
    /// The role's name as written in the accounts file.
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Viewer => "viewer",
            Role::Integrator => "integrator",
            Role::Operator => "operator",
            Role::DrillLeader => "drill_leader",
            Role::Admin => "admin",
        }
    }
}

/// The part of the city an account sees.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
#[serde(tag = "level", content = "id", rename_all = "lowercase")]
pub enum Scope {
    /// The whole city.
    City,
    /// One district and its wards (legacy data: the district tier was abolished in 2025).
    District(String),
    /// One or more communes or wards (the commune tier; several for a cluster centre).
    /// Serialised as `{"level": "commune", "id": [ids]}`.
    #[serde(rename = "commune")]
    Communes(Vec<String>),
}

impl Scope {
    /// Parses `city`, `commune:<id>[,<id>…]` (`ward:` is the same), or `district:<id>`.
    pub fn parse(text: &str) -> Option<Scope> {
        match text.split_once(':') {
            None if text == "city" => Some(Scope::City),
            Some(("district", id)) if !id.is_empty() => Some(Scope::District(id.into())),
            Some(("commune" | "ward", ids)) => {
                let ids: Vec<String> = ids.split(',').map(|i| i.trim().to_string()).collect();
                let mut unique = ids.clone();
                unique.sort();
                unique.dedup();
                (ids.iter().all(|i| !i.is_empty()) && unique.len() == ids.len())
                    .then_some(Scope::Communes(ids))
            }
            _ => None,
        }
    }

    /// The communes of a commune scope (empty for the others).
    pub fn communes(&self) -> &[String] {
        match self {
            Scope::Communes(ids) => ids,
            _ => &[],
        }
    }
}

/// An authenticated account.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Account {
    /// Its name, written to the audit log.
    pub name: String,
    /// Its role.
    pub role: Role,
    /// Its area.
    pub scope: Scope,
    /// Its sectors (`None`: every sector).
    pub sectors: Option<Vec<String>>,
}

impl Account {
    /// Whether something placed in `ward` of `district`, belonging to `sectors`, is within
    /// the scope. Things with no ward (a city-wide rule) are seen by the city area only;
    /// things of no sector by all-sector accounts only.
    pub fn sees(&self, ward: Option<&str>, district: Option<&str>, sectors: &[String]) -> bool {
        self.sees_area(ward, district) && self.sees_sectors(sectors)
    }

    /// The area half of [`Account::sees`].
    pub fn sees_area(&self, ward: Option<&str>, district: Option<&str>) -> bool {
        match &self.scope {
            Scope::City => true,
            Scope::District(d) => district == Some(d.as_str()),
            Scope::Communes(ids) => ward.is_some_and(|w| ids.iter().any(|c| c == w)),
        }
    }

    /// The sector half of [`Account::sees`].
    pub fn sees_sectors(&self, sectors: &[String]) -> bool {
        match &self.sectors {
            None => true,
            Some(mine) => sectors.iter().any(|s| mine.contains(s)),
        }
    }

    /// The account's sector view: `*` for every sector, else its sectors joined by `+`
    /// (KPIs and indicators are computed per view).
    pub fn sector_view(&self) -> String {
        sector_view(self.sectors.as_deref())
    }

    /// May acknowledge, resolve, comment and assign.
    pub fn may_act(&self) -> bool {
        matches!(self.role, Role::Operator | Role::Admin)
    }

    /// May reload rules and read the audit log.
    pub fn is_admin(&self) -> bool {
        self.role == Role::Admin
    }

    /// May change what the whole centre runs (rule and indicator reloads): an admin of the
    /// whole city and every sector, not of one commune or one department.
    pub fn is_city_admin(&self) -> bool {
        self.is_admin() && self.scope == Scope::City && self.sectors.is_none()
    }

    /// May start, pause, resume and abort drills.
    pub fn may_lead_drills(&self) -> bool {
        matches!(self.role, Role::DrillLeader | Role::Admin)
    }

    /// May see personal data in camera events (licence plates, faces).
    pub fn sees_personal_data(&self) -> bool {
        matches!(self.role, Role::Operator | Role::Admin)
    }
}

/// The name of a sector view: `*` for every sector, else the sorted ids joined by `+`.
pub fn sector_view(sectors: Option<&[String]>) -> String {
    match sectors {
        None => "*".into(),
        Some(list) => {
            let mut list = list.to_vec();
            list.sort();
            list.join("+")
        }
    }
}

/// A problem in the accounts file.
#[derive(Debug, Error)]
#[error("accounts: {0}")]
pub struct AccountsError(String);

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct AccountsFile {
    account: Vec<AccountSpec>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct AccountSpec {
    name: String,
    role: Role,
    scope: String,
    #[serde(default)]
    sectors: Option<Vec<String>>,
    token_sha256: String,
}

/// Every account, by token hash.
#[derive(Debug, Default)]
pub struct Accounts {
    by_hash: HashMap<[u8; 32], Arc<Account>>,
}

/// The SHA-256 of a token, as stored.
pub fn token_hash(token: &str) -> [u8; 32] {
    Sha256::digest(token.as_bytes()).into()
}

/// The hex form of [`token_hash`], as written in accounts files.
pub fn token_hash_hex(token: &str) -> String {
    token_hash(token)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

impl Accounts {
    /// Parses an accounts file (`[[account]] name, role, scope, token_sha256`).
    pub fn from_toml(text: &str) -> Result<Accounts, AccountsError> {
        let file: AccountsFile = toml::from_str(text).map_err(|e| AccountsError(e.to_string()))?;
        let mut accounts = Accounts::default();
        for spec in file.account {
            let scope = Scope::parse(&spec.scope).ok_or_else(|| {
                AccountsError(format!(
                    "`{}`: scope `{}` is not city, district:<id> or ward:<id>",
                    spec.name, spec.scope
                ))
            })?;
            let bytes: Vec<u8> = (0..spec.token_sha256.len())
                .step_by(2)
                .filter_map(|i| u8::from_str_radix(spec.token_sha256.get(i..i + 2)?, 16).ok())
                .collect();
            let hash: [u8; 32] = bytes.try_into().map_err(|_| {
                AccountsError(format!(
                    "`{}`: token_sha256 must be 64 hex digits",
                    spec.name
                ))
            })?;
            if spec.sectors.as_ref().is_some_and(Vec::is_empty) {
                return Err(AccountsError(format!(
                    "`{}`: `sectors` is empty (leave it out for every sector)",
                    spec.name
                )));
            }
            let account = Arc::new(Account {
                name: spec.name,
                role: spec.role,
                scope,
                sectors: spec.sectors,
            });
            if accounts.by_hash.insert(hash, account.clone()).is_some() {
                return Err(AccountsError(format!(
                    "`{}`: the same token twice",
                    account.name
                )));
            }
        }
        Ok(accounts)
    }

    /// Loads an accounts file.
    pub fn load(path: &Path) -> Result<Accounts, AccountsError> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| AccountsError(format!("{}: {e}", path.display())))?;
        Self::from_toml(&text)
    }

    /// Every sector an account names that `known` does not know, as `account: sector`.
    pub fn unknown_sectors(&self, known: impl Fn(&str) -> bool) -> Vec<String> {
        let mut out: Vec<String> = self
            .by_hash
            .values()
            .flat_map(|a| {
                a.sectors
                    .iter()
                    .flatten()
                    .filter(|s| !known(s))
                    .map(|s| format!("{}: {s}", a.name))
            })
            .collect();
        out.sort();
        out
    }

    /// The distinct sector views of the accounts (see [`Account::sector_view`]), with
    /// their sectors; always includes the all-sector view `*`.
    pub fn sector_views(&self) -> Vec<(String, Option<Vec<String>>)> {
        let mut views: Vec<(String, Option<Vec<String>>)> = vec![("*".into(), None)];
        for a in self.by_hash.values() {
            let view = a.sector_view();
            if !views.iter().any(|(v, _)| *v == view) {
                let mut list = a.sectors.clone().unwrap_or_default();
                list.sort();
                views.push((view, Some(list)));
            }
        }
        views.sort();
        views
    }

    /// Every account, in no particular order.
    pub fn all(&self) -> Vec<Arc<Account>> {
        self.by_hash.values().cloned().collect()
    }

    /// The account a bearer token belongs to.
    pub fn authenticate(&self, token: &str) -> Option<Arc<Account>> {
        self.by_hash.get(&token_hash(token)).cloned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scopes_are_the_city_communes_or_a_legacy_district() {
        assert_eq!(Scope::parse("city"), Some(Scope::City));
        assert_eq!(
            Scope::parse("commune:long_hoa,tan_an"),
            Some(Scope::Communes(vec!["long_hoa".into(), "tan_an".into()]))
        );
        assert_eq!(
            Scope::parse("ward:long_hoa"),
            Some(Scope::Communes(vec!["long_hoa".into()])),
            "ward: is the commune tier's other name"
        );
        assert_eq!(
            Scope::parse("district:binh_thuy"),
            Some(Scope::District("binh_thuy".into()))
        );
        for bad in [
            "commune:",
            "commune:a,,b",
            "commune:a,a",
            "province:x",
            "ward",
            "",
        ] {
            assert_eq!(Scope::parse(bad), None, "{bad}");
        }
        let cluster = Account {
            name: "c".into(),
            role: Role::Operator,
            scope: Scope::parse("commune:long_hoa,tan_an").unwrap(),
            sectors: None,
        };
        let env = ["environment".to_string()];
        assert!(cluster.sees(Some("tan_an"), Some("ninh_kieu"), &env));
        assert!(cluster.sees(Some("tan_an"), Some("ninh_kieu"), &[]));
        assert!(!cluster.sees(Some("an_binh"), Some("ninh_kieu"), &env));
        assert!(
            !cluster.sees(None, None, &env),
            "city-wide things are the city's"
        );
        let department = Account {
            name: "env".into(),
            role: Role::Operator,
            scope: Scope::City,
            sectors: Some(vec!["environment".into()]),
        };
        assert!(department.sees(Some("an_binh"), None, &env));
        assert!(department.sees(None, None, &["transport".into(), "environment".into()]));
        assert!(!department.sees(Some("an_binh"), None, &["transport".into()]));
        assert!(
            !department.sees(Some("an_binh"), None, &[]),
            "no sector: all-sector accounts only"
        );
        assert_eq!(department.sector_view(), "environment");
        assert_eq!(cluster.sector_view(), "*");
    }

    #[test]
    fn tokens_are_checked_by_hash_and_scopes_nest() {
        let text = format!(
            "[[account]]\nname = \"w\"\nrole = \"operator\"\nscope = \"ward:tan_an\"\ntoken_sha256 = \"{}\"\n",
            token_hash_hex("secret")
        );
        let accounts = Accounts::from_toml(&text).unwrap();
        assert!(accounts.authenticate("wrong").is_none());
        let w = accounts.authenticate("secret").unwrap();
        assert!(w.sees(Some("tan_an"), Some("ninh_kieu"), &[]));
        assert!(!w.sees(Some("an_binh"), Some("ninh_kieu"), &[]));
        assert!(!w.sees(None, None, &[]));
        let d = Account {
            name: "d".into(),
            role: Role::Viewer,
            scope: Scope::District("ninh_kieu".into()),
            sectors: None,
        };
        assert!(d.sees(Some("an_binh"), Some("ninh_kieu"), &[]));
        assert!(!d.sees(Some("ba_lang"), Some("cai_rang"), &[]));
        assert!(!d.may_act() && !d.sees_personal_data());
        assert!(Accounts::from_toml(
            "[[account]]\nname=\"x\"\nrole=\"admin\"\nscope=\"planet\"\ntoken_sha256=\"00\"\n"
        )
        .is_err());
    }
}
