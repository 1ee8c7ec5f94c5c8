//! The sectors (departments, Sở) a city's operations split by, from `city/sectors.csv`:
//! each with Vietnamese and English names, its owning unit, the station kinds it watches
//! and the rule packs whose alerts are its own.
//!
//! Invariants: ids are unique and non-empty; every kind named is a known kind; a kind or
//! pack may belong to several sectors (a traffic camera serves the police and transport).
//! What a thing's sectors are: a station's from its registry row (`sectors` column) or
//! else from its kind; an alert's from its rule's `sector` label, else the sectors naming
//! its rule, else its pack, else the station it is about (see [`crate::City::alert_sectors`]).

use std::collections::BTreeMap;
use std::path::Path;

use serde::Serialize;
use watchfloor_model::Kind;

use crate::{read_csv, CityError};

/// One sector.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Sector {
    /// Stable id (`environment`), used in account scopes and indicator files.
    pub id: String,
    /// Vietnamese name.
    pub name_vi: String,
    /// English name.
    pub name_en: String,
    /// The unit that owns it (Vietnamese), e.g. `Sở Nông nghiệp và Môi trường`.
    pub unit_vi: String,
    /// The unit in English.
    pub unit_en: String,
    /// Station kinds it watches.
    pub kinds: Vec<Kind>,
    /// Rule packs (`labels.pack`) whose alerts are its own.
    pub packs: Vec<String>,
    /// Rules whose alerts are its own whatever their pack (a camera pack's wrong-way
    /// rule belongs to transport).
    pub rules: Vec<String>,
    /// Its line in the file (for errors about it).
    #[serde(skip)]
    pub line: u64,
}

/// The configured sectors, in file order.
#[derive(Debug, Clone, Default, Serialize)]
#[serde(transparent)]
pub struct Sectors {
    list: Vec<Sector>,
}

fn words(cell: Option<&String>) -> Vec<String> {
    cell.map(|c| {
        c.split([' ', ';'])
            .filter(|w| !w.is_empty())
            .map(str::to_string)
            .collect()
    })
    .unwrap_or_default()
}

impl Sectors {
    /// Reads `sectors.csv` (`id,name_vi,name_en,unit_vi,unit_en,kinds,packs,rules`; lists
    /// separated by spaces).
    pub fn load(file: &Path) -> Result<Sectors, CityError> {
        let mut list: Vec<Sector> = Vec::new();
        for (line, row) in read_csv(file)? {
            let text = |k: &str| row.get(k).cloned().unwrap_or_default();
            let id = text("id");
            if id.is_empty()
                || !id
                    .chars()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
            {
                return Err(CityError::at(
                    file,
                    line,
                    format!("sector id `{id}` must be lowercase letters, digits and `_`"),
                ));
            }
            if list.iter().any(|s| s.id == id) {
                return Err(CityError::at(
                    file,
                    line,
                    format!("sector `{id}` appears twice"),
                ));
            }
            let mut kinds = Vec::new();
            for k in words(row.get("kinds")) {
                kinds.push(Kind::parse(&k).ok_or_else(|| {
                    CityError::at(file, line, format!("unknown station kind `{k}`"))
                })?);
            }
            let name_vi = text("name_vi");
            list.push(Sector {
                name_en: Some(text("name_en"))
                    .filter(|n| !n.is_empty())
                    .unwrap_or_else(|| name_vi.clone()),
                name_vi,
                unit_vi: text("unit_vi"),
                unit_en: text("unit_en"),
                kinds,
                packs: words(row.get("packs")),
                rules: words(row.get("rules")),
                line,
                id,
            });
        }
        Ok(Sectors { list })
    }

    /// Every sector, in file order.
    pub fn all(&self) -> &[Sector] {
        &self.list
    }

    /// Whether `id` is a configured sector.
    pub fn knows(&self, id: &str) -> bool {
        self.list.iter().any(|s| s.id == id)
    }

    /// The sectors watching stations of `kind`.
    pub fn of_kind(&self, kind: Kind) -> Vec<String> {
        self.list
            .iter()
            .filter(|s| s.kinds.contains(&kind))
            .map(|s| s.id.clone())
            .collect()
    }

    /// The sectors that name rule `rule` itself.
    pub fn of_rule(&self, rule: &str) -> Vec<String> {
        self.list
            .iter()
            .filter(|s| s.rules.iter().any(|r| r == rule))
            .map(|s| s.id.clone())
            .collect()
    }

    /// The sectors owning alerts of rule pack `pack`.
    pub fn of_pack(&self, pack: &str) -> Vec<String> {
        self.list
            .iter()
            .filter(|s| s.packs.iter().any(|p| p == pack))
            .map(|s| s.id.clone())
            .collect()
    }

    /// The sectors named in a `sector` label or registry cell (space or comma separated),
    /// or the first unknown one.
    pub fn parse_list(&self, text: &str) -> Result<Vec<String>, String> {
        let mut out = Vec::new();
        for id in text.split([' ', ',', ';']).filter(|w| !w.is_empty()) {
            if !self.knows(id) {
                return Err(id.to_string());
            }
            if !out.iter().any(|o| o == id) {
                out.push(id.to_string());
            }
        }
        Ok(out)
    }

    /// Vietnamese and English names by id, for screens.
    pub fn names(&self) -> BTreeMap<&str, (&str, &str)> {
        self.list
            .iter()
            .map(|s| (s.id.as_str(), (s.name_vi.as_str(), s.name_en.as_str())))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Writes `text` to a file of its own (removed when the guard drops).
    struct Written(std::path::PathBuf);
    impl Drop for Written {
        fn drop(&mut self) {
            let _ = std::fs::remove_file(&self.0);
        }
    }
    fn write(text: &str) -> (Written, std::path::PathBuf) {
        use std::sync::atomic::{AtomicU32, Ordering};
        static N: AtomicU32 = AtomicU32::new(0);
        let file = std::env::temp_dir().join(format!(
            "watchfloor-sectors-{}-{}.csv",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
        ));
        std::fs::write(&file, text).unwrap();
        (Written(file.clone()), file)
    }

    #[test]
    fn sectors_map_kinds_and_packs_and_refuse_mistakes_with_their_line() {
        let (_d, file) = write(
            "id,name_vi,name_en,unit_vi,unit_en,kinds,packs\n\
             environment,Môi trường,Environment,Sở NN&MT,DAE,discharge air,discharge air\n\
             transport,Giao thông,Transport,Sở XD,DOC,traffic camera,traffic\n\
             public_safety,An ninh,Public safety,CA,Police,camera,camera\n",
        );
        let s = Sectors::load(&file).unwrap();
        assert_eq!(s.of_kind(Kind::Camera), ["transport", "public_safety"]);
        assert_eq!(s.of_pack("air"), ["environment"]);
        assert!(s.of_pack("flood").is_empty());
        assert_eq!(
            s.parse_list("transport, environment"),
            Ok(vec!["transport".into(), "environment".into()])
        );
        assert_eq!(s.parse_list("health"), Err("health".into()));
        let (_d, file) =
            write("id,name_vi,name_en,unit_vi,unit_en,kinds,packs\nx,X,X,,,spaceships,\n");
        let e = Sectors::load(&file).unwrap_err();
        assert!(
            e.to_string()
                .ends_with(":2: unknown station kind `spaceships`"),
            "{e}"
        );
        let (_d, file) = write(
            "id,name_vi,name_en,unit_vi,unit_en,kinds,packs\nx,X,X,,,,\ny,Y,Y,,,,\nx,X,X,,,,\n",
        );
        let e = Sectors::load(&file).unwrap_err();
        assert!(
            e.to_string().ends_with(":4: sector `x` appears twice"),
            "{e}"
        );
    }
}
