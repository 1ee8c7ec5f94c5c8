//! Personal data by policy: what a viewer, an integrator or a report may not see of a
//! reading (a camera's plate, a driver's name). Two parts, both configurable in
//! `[server.privacy]`:
//! - **paths**: dotted attribute paths, matched case-insensitively, with `*` for any part
//!   of one key (`attrs.*plate*`) and `**` for any number of levels (`attrs.**.driver*`);
//!   a matching value (a string, a number, a whole object) becomes `"***"`;
//! - **detectors**: `plate`, a Vietnamese vehicle plate (`65A-123.45`, `51G12345`,
//!   `29A1 234.56`) anywhere in any string value, replaced by `***` inside the string.
//!
//! Applied to readings over REST and WebSocket (every WebSocket delta goes through it).
//! Alerts carry no reading attributes unless a rule keys its alerts by one (`key:
//! attrs.…`): never do that with personal data. Invariants: masking never fails and never adds a key; a
//! value it masks is masked in every copy served (the policy is set once, at start).

use std::sync::OnceLock;

use serde_json::Value;

/// The mask.
pub const MASK: &str = "***";

/// One compiled path: its parts.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Part {
    /// Any number of levels (zero or more).
    Deep,
    /// One key, lower case, `*` a wildcard within it.
    Key(String),
}

/// The privacy policy.
#[derive(Debug, Clone)]
pub struct Policy {
    paths: Vec<Vec<Part>>,
    plates: bool,
}

/// The paths masked when the configuration names none.
pub const DEFAULT_PATHS: &[&str] = &[
    "attrs.**.*plate*",
    "attrs.**.*bien_so*",
    "attrs.**.face*",
    "attrs.**.person*",
    "attrs.**.*driver*",
    "attrs.**.*owner*",
    "attrs.**.*name*",
    "attrs.**.*phone*",
    "attrs.**.cccd*",
    "attrs.**.cmnd*",
    "attrs.**.*id_number*",
    "attrs.**.*idnumber*",
    "attrs.**.*bienso*",
    "attrs.**.*ho_ten*",
    "attrs.**.*hoten*",
    "attrs.**.*tai_xe*",
    "attrs.**.*taixe*",
    "attrs.**.*chu_xe*",
    "attrs.**.*chuxe*",
    "attrs.**.sdt",
    "attrs.**.*so_dien_thoai*",
    "attrs.**.*dia_chi*",
    "attrs.**.*email*",
    "attrs.**.*address*",
    "attrs.**.*mobile*",
    "attrs.**.tel",
];

impl Default for Policy {
    fn default() -> Self {
        Policy::new(
            &DEFAULT_PATHS
                .iter()
                .map(|p| p.to_string())
                .collect::<Vec<_>>(),
            &["plate".into()],
        )
        .expect("the default policy compiles")
    }
}

static POLICY: OnceLock<Policy> = OnceLock::new();

/// Sets the policy (once, at start, before anything is served; the default otherwise).
pub fn configure(policy: Policy) {
    let _ = POLICY.set(policy);
}

/// The policy in force.
pub fn policy() -> &'static Policy {
    POLICY.get_or_init(Policy::default)
}

impl Policy {
    /// The policy of `[server.privacy]`: its paths and detectors, each list the shipped
    /// one when not given.
    pub fn from_settings(
        paths: Option<&[String]>,
        detectors: Option<&[String]>,
    ) -> Result<Policy, String> {
        let default_paths: Vec<String> = DEFAULT_PATHS.iter().map(|p| p.to_string()).collect();
        Policy::new(
            paths.unwrap_or(&default_paths),
            detectors.unwrap_or(&["plate".to_string()]),
        )
    }

    /// Compiles `paths` and `detectors` (only `plate` is known); says what is wrong.
    pub fn new(paths: &[String], detectors: &[String]) -> Result<Policy, String> {
        let mut compiled = Vec::new();
        for path in paths {
            if path.trim().is_empty() || path.split('.').any(str::is_empty) {
                return Err(format!("privacy path `{path}`: empty part"));
            }
            compiled.push(
                path.split('.')
                    .map(|p| match p {
                        "**" => Part::Deep,
                        key => Part::Key(key.to_lowercase()),
                    })
                    .collect(),
            );
        }
        let mut plates = false;
        for d in detectors {
            match d.as_str() {
                "plate" => plates = true,
                other => return Err(format!("privacy detector `{other}`: only `plate` is known")),
            }
        }
        Ok(Policy {
            paths: compiled,
            plates,
        })
    }

    /// `value` with what the policy names masked.
    pub fn masked(&self, value: &Value) -> Value {
        let mut v = value.clone();
        self.mask(&mut v);
        v
    }

    /// Masks `value` in place.
    pub fn mask(&self, value: &mut Value) {
        for path in &self.paths {
            mask_path(value, path);
        }
        if self.plates {
            scrub(value);
        }
    }
}

/// Whether `key` (lower case) matches `pattern` with `*` wildcards.
fn glob(pattern: &str, key: &str) -> bool {
    let parts: Vec<&str> = pattern.split('*').collect();
    if parts.len() == 1 {
        return pattern == key;
    }
    let mut rest = key;
    for (i, part) in parts.iter().enumerate() {
        if i == 0 {
            let Some(r) = rest.strip_prefix(part) else {
                return false;
            };
            rest = r;
        } else if i == parts.len() - 1 {
            return rest.ends_with(part);
        } else {
            match rest.find(part) {
                Some(at) => rest = &rest[at + part.len()..],
                None => return false,
            }
        }
    }
    true
}

fn mask_path(value: &mut Value, path: &[Part]) {
    let Some((first, rest)) = path.split_first() else {
        *value = Value::String(MASK.into());
        return;
    };
    match first {
        Part::Deep => {
            // Zero levels: the rest here; or one more level down, still deep.
            mask_path(value, rest);
            match value {
                Value::Object(map) => map.values_mut().for_each(|v| mask_path(v, path)),
                Value::Array(items) => items.iter_mut().for_each(|v| mask_path(v, path)),
                _ => {}
            }
        }
        Part::Key(pattern) => match value {
            Value::Object(map) => {
                for (k, v) in map.iter_mut() {
                    if glob(pattern, &k.to_lowercase()) {
                        mask_path(v, rest);
                    }
                }
            }
            Value::Array(items) => items.iter_mut().for_each(|v| mask_path(v, path)),
            _ => {}
        },
    }
}

/// Replaces plates inside every string of `value`.
fn scrub(value: &mut Value) {
    match value {
        Value::String(s) => {
            if let Some(clean) = without_plates(s) {
                *s = clean;
            }
        }
        Value::Object(map) => map.values_mut().for_each(scrub),
        Value::Array(items) => items.iter_mut().for_each(scrub),
        _ => {}
    }
}

fn is_letter(c: char) -> bool {
    c.is_ascii_alphabetic() || c == 'Đ' || c == 'đ'
}

fn is_sep(c: char) -> bool {
    matches!(c, '-' | '.' | ' ')
}

/// How many characters of `c` from `i` are a Vietnamese vehicle plate: two digits
/// (province), an optional separator, one or two letters (any case, `Đ` too), an optional
/// series digit, an optional separator, then four or five digits with at most two
/// separators among them (`65A-123.45`, `51G12345`, `29A1 234.56`, `59-X1 123.45`,
/// `59X112345`, `51A.123.45`, `51a-123-45`, `30LD-0123.4`); not inside a longer word or
/// number.
fn plate_at(c: &[char], i: usize) -> Option<usize> {
    let at = |j: usize| c.get(j).copied();
    let digit = |j: usize| at(j).is_some_and(|x| x.is_ascii_digit());
    if i > 0 && c[i - 1].is_alphanumeric() {
        return None;
    }
    if !(digit(i) && digit(i + 1)) {
        return None;
    }
    let mut j = i + 2;
    if at(j).is_some_and(is_sep) && at(j + 1).is_some_and(is_letter) {
        j += 1;
    }
    if !at(j).is_some_and(is_letter) {
        return None;
    }
    j += 1;
    if at(j).is_some_and(is_letter) {
        j += 1;
    }
    // The digits after the letters: a series digit and the number, separators allowed.
    let (mut digits, mut seps, mut end) = (0, 0, j);
    while let Some(x) = at(j) {
        if x.is_ascii_digit() {
            digits += 1;
            j += 1;
            end = j;
        } else if is_sep(x) && seps < 3 && digit(j + 1) && digits <= 5 {
            seps += 1;
            j += 1;
        } else {
            break;
        }
        if digits == 6 {
            break;
        }
    }
    if !(4..=6).contains(&digits) {
        return None;
    }
    if at(end).is_some_and(char::is_alphanumeric) {
        return None;
    }
    Some(end - i)
}

/// `s` with its plates masked, when it has any.
fn without_plates(s: &str) -> Option<String> {
    let c: Vec<char> = s.chars().collect();
    let mut out = String::new();
    let (mut i, mut found) = (0, false);
    while i < c.len() {
        match plate_at(&c, i) {
            Some(n) => {
                out.push_str(MASK);
                i += n;
                found = true;
            }
            None => {
                out.push(c[i]);
                i += 1;
            }
        }
    }
    found.then_some(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn plates_in_any_string() {
        for (text, want) in [
            ("65A-123.45", "***"),
            ("xe 51G-12345 vượt đèn đỏ", "xe *** vượt đèn đỏ"),
            ("29A1 234.56", "***"),
            ("30LD-0123.4", "***"),
            ("51G12345", "***"),
            ("65A12345 và 65B-999.99", "*** và ***"),
            ("59-X1 123.45", "***"),
            ("59 X1 12345", "***"),
            ("59X112345", "***"),
            ("51A.123.45", "***"),
            ("51a-123-45", "***"),
            ("29Đ1-234.56", "***"),
        ] {
            assert_eq!(without_plates(text).as_deref(), Some(want), "{text}");
        }
        for text in [
            "CT-CAM-01",
            "2026-12-01T08:00:00Z",
            "PM2.5 35.2",
            "CT_NM01_KT01",
            "1795712400000",
            "QL91",
        ] {
            assert_eq!(without_plates(text), None, "{text}");
        }
    }

    #[test]
    fn paths_with_wildcards_and_any_depth() {
        let p = Policy::default();
        let v = p.masked(&json!({
            "source": "CT-CAM-01",
            "attrs": {
                "license_plate": "x", "licensePlate": "x", "vehicle": {"plate": "x", "colour": "red"},
                "driver_name": "Nguyễn Văn A", "Owner": {"full": "B"}, "people": [{"name": "C"}],
                "confidence": 0.9, "note": "seen 65A-123.45 at the gate"
            }
        }));
        assert_eq!(v["source"], "CT-CAM-01");
        for path in [
            "/attrs/license_plate",
            "/attrs/licensePlate",
            "/attrs/vehicle/plate",
            "/attrs/driver_name",
            "/attrs/Owner",
            "/attrs/people/0/name",
        ] {
            assert_eq!(v.pointer(path).unwrap(), MASK, "{path}: {v}");
        }
        assert_eq!(v["attrs"]["vehicle"]["colour"], "red");
        assert_eq!(v["attrs"]["confidence"], 0.9);
        assert_eq!(v["attrs"]["note"], "seen *** at the gate");
        assert!(Policy::new(&["a..b".into()], &[]).is_err());
        assert!(Policy::new(&[], &["faces".into()]).is_err());
        let only = Policy::new(&["attrs.secret".into()], &[]).unwrap();
        assert_eq!(
            only.masked(&json!({"attrs": {"secret": 1, "plate": "65A-123.45"}}))["attrs"]["plate"],
            "65A-123.45"
        );
    }
}
