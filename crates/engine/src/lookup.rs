//! Per-key lookup tables: numbers a rule reads for the key it is evaluating, such as a
//! discharge station's own COD limit. Loaded from CSV files (`<table>.csv`, first column
//! the key, one numeric column per value; an empty cell means "no value").

use rustc_hash::FxHashMap;

#[derive(Debug, Clone, Default)]
struct LookupTable {
    name: String,
    columns: Vec<String>,
    rows: FxHashMap<Box<str>, Vec<Option<f64>>>,
}

/// All lookup tables of a rule set, by name.
#[derive(Debug, Clone, Default)]
pub struct LookupTables {
    tables: Vec<LookupTable>,
}

/// A CSV problem: the 1-based line and what is wrong.
#[derive(Debug, Clone, PartialEq)]
pub struct LookupError {
    /// 1-based line in the CSV file.
    pub line: usize,
    /// What is wrong.
    pub message: String,
}

impl LookupTables {
    /// No tables.
    pub fn new() -> Self {
        Self::default()
    }

    /// One table parsed from CSV text (for tests and embedded tables).
    pub fn from_csv_text(name: &str, text: &str) -> Result<Self, LookupError> {
        let mut tables = Self::new();
        tables.add_csv(name, text)?;
        Ok(tables)
    }

    /// Adds table `name` from CSV text.
    pub fn add_csv(&mut self, name: &str, text: &str) -> Result<(), LookupError> {
        if self.tables.iter().any(|t| t.name == name) {
            return Err(LookupError {
                line: 1,
                message: format!("lookup table `{name}` is defined twice"),
            });
        }
        let mut reader = csv::ReaderBuilder::new()
            .trim(csv::Trim::All)
            .comment(Some(b'#'))
            .from_reader(text.as_bytes());
        let headers = reader.headers().map_err(|e| LookupError {
            line: 1,
            message: e.to_string(),
        })?;
        if headers.len() < 2 {
            return Err(LookupError {
                line: 1,
                message: "a lookup table needs a key column and at least one value column".into(),
            });
        }
        let columns: Vec<String> = headers.iter().skip(1).map(str::to_string).collect();
        let mut rows = FxHashMap::default();
        for record in reader.records() {
            let record = record.map_err(|e| LookupError {
                line: e.position().map_or(0, |p| p.line() as usize),
                message: e.to_string(),
            })?;
            let line = record.position().map_or(0, |p| p.line() as usize);
            let key = record.get(0).unwrap_or_default();
            let mut values = Vec::with_capacity(columns.len());
            for (i, cell) in record.iter().skip(1).enumerate() {
                if cell.is_empty() {
                    values.push(None);
                    continue;
                }
                let v: f64 = cell.parse().map_err(|_| LookupError {
                    line,
                    message: format!("`{cell}` in column `{}` is not a number", columns[i]),
                })?;
                if !v.is_finite() {
                    return Err(LookupError {
                        line,
                        message: format!("`{cell}` in column `{}` is not finite", columns[i]),
                    });
                }
                values.push(Some(v));
            }
            if rows.insert(Box::from(key), values).is_some() {
                return Err(LookupError {
                    line,
                    message: format!("key `{key}` appears twice"),
                });
            }
        }
        self.tables.push(LookupTable {
            name: name.to_string(),
            columns,
            rows,
        });
        Ok(())
    }

    /// Where `table.column` is, for compiled expressions.
    pub fn position(&self, table: &str, column: &str) -> Option<(usize, usize)> {
        let t = self.tables.iter().position(|t| t.name == table)?;
        let c = self.tables[t].columns.iter().position(|c| c == column)?;
        Some((t, c))
    }

    /// The value at a position for `key`, if there is one.
    #[inline]
    pub fn get(&self, table: usize, column: usize, key: &str) -> Option<f64> {
        self.tables[table]
            .rows
            .get(key)?
            .get(column)
            .copied()
            .flatten()
    }

    /// The tables and their columns, for error messages.
    pub fn describe(&self) -> String {
        if self.tables.is_empty() {
            return "none".into();
        }
        self.tables
            .iter()
            .map(|t| format!("{}({})", t.name, t.columns.join(", ")))
            .collect::<Vec<_>>()
            .join("; ")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_values_and_blanks() {
        let t = LookupTables::from_csv_text("stations", "# limits\nsource, cod_limit\nA, 75\nB,\n")
            .unwrap();
        let (ti, ci) = t.position("stations", "cod_limit").unwrap();
        assert_eq!(t.get(ti, ci, "A"), Some(75.0));
        assert_eq!(t.get(ti, ci, "B"), None);
        assert_eq!(t.get(ti, ci, "C"), None);
        assert_eq!(t.position("stations", "x"), None);
    }

    #[test]
    fn reports_the_line_of_a_bad_cell() {
        let err = LookupTables::from_csv_text("s", "source,limit\nA,1\nB,high\n").unwrap_err();
        assert_eq!(err.line, 3);
        assert!(err.message.contains("not a number"));
        let dup = LookupTables::from_csv_text("s", "source,limit\nA,1\nA,2\n").unwrap_err();
        assert!(dup.message.contains("twice"));
    }

    #[test]
    fn describes_its_tables_for_error_messages_and_refuses_a_second_of_a_name() {
        assert_eq!(LookupTables::new().describe(), "none");
        let mut t =
            LookupTables::from_csv_text("stations", "source,cod_limit,ph_min\nA,75,6\n").unwrap();
        t.add_csv("zones", "zone,threshold\nz,1\n").unwrap();
        assert_eq!(
            t.describe(),
            "stations(cod_limit, ph_min); zones(threshold)"
        );
        let again = t.add_csv("zones", "zone,x\nz,2\n").unwrap_err();
        assert!(again.message.contains("zones"), "{}", again.message);
        assert_eq!(
            t.describe(),
            "stations(cod_limit, ph_min); zones(threshold)",
            "unchanged"
        );
    }
}
