//! Rule conditions in CEL, parsed once by the `cel` crate and compiled here into closures.
//!
//! The compiled form resolves every name at load time (aggregate → slot index, constant →
//! number, `table.column` → lookup position) and checks types, so a typo or a comparison
//! of a number with a string is reported at `rules check`, and evaluation does no name
//! lookups or allocation. Supported: number, bool and string literals; aggregate and
//! constant names; `key`; `table.column` lookups and `has(table.column)`; `+ - * / %`,
//! unary `-`, comparisons, `&& || !` (with CEL's error-absorbing semantics), `?:`, and
//! `abs`, `min`, `max`; VN_AQI sub-indices `aqi_pm25(c)`, `aqi_pm10`, `aqi_no2`, `aqi_so2`,
//! `aqi_co`, `aqi_o3` (1 h), `aqi_o3_8h`, and `aqi_rank(aqi)` (1 = Tốt … 6 = Nguy hại).

use std::collections::BTreeMap;
use std::sync::Arc;

use cel::common::ast::{operators, Expr, LiteralValue};
use cel::IdedExpr;
use thiserror::Error;

use watchfloor_model::vn_aqi;

use crate::lookup::LookupTables;

/// A value during evaluation.
#[derive(Debug, Clone, PartialEq)]
pub enum Val {
    /// Every number is a double.
    Num(f64),
    /// A boolean.
    Bool(bool),
    /// A string (the key, or a literal).
    Str(Arc<str>),
}

/// The static type of a compiled expression.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ty {
    /// A number.
    Num,
    /// A boolean.
    Bool,
    /// A string.
    Str,
}

/// Why an evaluation produced no value. Conditions that fail to evaluate do not hold.
#[derive(Debug, Clone, PartialEq, Error)]
pub enum EvalError {
    /// The lookup table has no value for this key and column.
    #[error("no lookup value `{table}.{column}` for this key")]
    MissingLookup { table: String, column: String },
    /// Division or modulo by zero.
    #[error("division by zero")]
    DivisionByZero,
}

/// What an expression can see when it is evaluated.
pub struct Scope<'a> {
    /// Aggregate values, by slot.
    pub aggregates: &'a [f64],
    /// The grouping key.
    pub key: &'a Arc<str>,
    /// Lookup tables, read by key.
    pub lookups: &'a LookupTables,
}

type EvalFn = Box<dyn Fn(&Scope) -> Result<Val, EvalError> + Send + Sync>;

/// The names an expression may use, and what they resolve to.
pub struct Names<'a> {
    /// Aggregate names, by slot.
    pub aggregates: &'a [String],
    /// Named constants of the rule.
    pub constants: &'a BTreeMap<String, f64>,
    /// Lookup tables.
    pub lookups: &'a LookupTables,
}

/// A compiled CEL expression.
pub struct CompiledExpr {
    eval: EvalFn,
    ty: Ty,
    source: String,
}

impl std::fmt::Debug for CompiledExpr {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "CompiledExpr({:?}: {:?})", self.source, self.ty)
    }
}

impl CompiledExpr {
    /// Parses and compiles `source`; the error says what is wrong.
    pub fn compile(source: &str, names: &Names) -> Result<CompiledExpr, String> {
        let ast = cel::parser::Parser::new()
            .parse(source)
            .map_err(|e| format!("cannot parse `{source}`: {e}"))?;
        let (eval, ty) = compile_node(&ast, names)?;
        Ok(CompiledExpr {
            eval,
            ty,
            source: source.to_string(),
        })
    }

    /// Compiles `source` and requires it to be a boolean condition.
    pub fn compile_condition(source: &str, names: &Names) -> Result<CompiledExpr, String> {
        let compiled = Self::compile(source, names)?;
        if compiled.ty != Ty::Bool {
            return Err(format!(
                "`{source}` is a {:?}, but a condition must be true or false",
                compiled.ty
            ));
        }
        Ok(compiled)
    }

    /// The expression's static type.
    pub fn ty(&self) -> Ty {
        self.ty
    }

    /// Evaluates a numeric expression; `NaN` when it cannot be evaluated.
    pub fn number(&self, scope: &Scope) -> f64 {
        match self.eval(scope) {
            Ok(Val::Num(v)) => v,
            _ => f64::NAN,
        }
    }

    /// Evaluates the expression.
    #[inline]
    pub fn eval(&self, scope: &Scope) -> Result<Val, EvalError> {
        (self.eval)(scope)
    }

    /// Evaluates a condition: `true` only if it evaluates to `true`.
    #[inline]
    pub fn holds(&self, scope: &Scope) -> Result<bool, EvalError> {
        match self.eval(scope)? {
            Val::Bool(b) => Ok(b),
            _ => Ok(false),
        }
    }
}

fn num(v: Val) -> f64 {
    match v {
        Val::Num(n) => n,
        _ => f64::NAN,
    }
}

fn compile_node(node: &IdedExpr, names: &Names) -> Result<(EvalFn, Ty), String> {
    match &node.expr {
        Expr::Literal(lit) => compile_literal(lit),
        Expr::Ident(name) => compile_ident(name, names),
        Expr::Select(select) => {
            let Expr::Ident(table) = &select.operand.expr else {
                return Err("only `table.column` lookups can use `.`".into());
            };
            let (t, c) = names.lookups.position(table, &select.field).ok_or_else(|| {
                format!(
                    "unknown lookup `{table}.{}`; tables: {}",
                    select.field,
                    names.lookups.describe()
                )
            })?;
            if select.test {
                Ok((
                    Box::new(move |s: &Scope| Ok(Val::Bool(s.lookups.get(t, c, s.key).is_some()))),
                    Ty::Bool,
                ))
            } else {
                let (table, column) = (table.clone(), select.field.clone());
                Ok((
                    Box::new(move |s: &Scope| {
                        s.lookups.get(t, c, s.key).map(Val::Num).ok_or_else(|| {
                            EvalError::MissingLookup {
                                table: table.clone(),
                                column: column.clone(),
                            }
                        })
                    }),
                    Ty::Num,
                ))
            }
        }
        Expr::Call(call) => {
            if call.target.is_some() {
                return Err(format!("method calls such as `.{}()` are not supported", call.func_name));
            }
            let args = call
                .args
                .iter()
                .map(|a| compile_node(a, names))
                .collect::<Result<Vec<_>, _>>()?;
            compile_call(&call.func_name, args)
        }
        _ => Err("only numbers, booleans, strings, names, lookups, operators and abs/min/max are supported in conditions".into()),
    }
}

fn compile_literal(lit: &LiteralValue) -> Result<(EvalFn, Ty), String> {
    let (val, ty) = match lit {
        LiteralValue::Boolean(b) => (Val::Bool(*b.inner()), Ty::Bool),
        LiteralValue::Double(d) => (Val::Num(*d.inner()), Ty::Num),
        LiteralValue::Int(i) => (Val::Num(*i.inner() as f64), Ty::Num),
        LiteralValue::UInt(u) => (Val::Num(*u.inner() as f64), Ty::Num),
        LiteralValue::String(s) => (Val::Str(Arc::from(s.inner())), Ty::Str),
        LiteralValue::Null | LiteralValue::Bytes(_) => {
            return Err("null and bytes literals are not supported".into())
        }
    };
    Ok((Box::new(move |_: &Scope| Ok(val.clone())), ty))
}

fn compile_ident(name: &str, names: &Names) -> Result<(EvalFn, Ty), String> {
    if let Some(slot) = names.aggregates.iter().position(|a| a == name) {
        return Ok((
            Box::new(move |s: &Scope| Ok(Val::Num(s.aggregates[slot]))),
            Ty::Num,
        ));
    }
    if let Some(value) = names.constants.get(name).copied() {
        return Ok((Box::new(move |_: &Scope| Ok(Val::Num(value))), Ty::Num));
    }
    if name == "key" {
        return Ok((Box::new(|s: &Scope| Ok(Val::Str(s.key.clone()))), Ty::Str));
    }
    let mut known: Vec<&str> = names.aggregates.iter().map(String::as_str).collect();
    known.extend(names.constants.keys().map(String::as_str));
    known.push("key");
    Err(format!(
        "unknown name `{name}`; known: {}",
        known.join(", ")
    ))
}

fn expect(ty: Ty, want: Ty, op: &str) -> Result<(), String> {
    if ty == want {
        Ok(())
    } else {
        Err(format!("`{op}` needs {want:?} operands, got {ty:?}"))
    }
}

fn compile_call(func: &str, mut args: Vec<(EvalFn, Ty)>) -> Result<(EvalFn, Ty), String> {
    let arity = |n: usize| -> Result<(), String> {
        if args.len() == n {
            Ok(())
        } else {
            Err(format!(
                "`{func}` takes {n} argument(s), got {}",
                args.len()
            ))
        }
    };
    match func {
        operators::LOGICAL_AND | operators::LOGICAL_OR => {
            arity(2)?;
            let (b, tb) = args.pop().unwrap();
            let (a, ta) = args.pop().unwrap();
            expect(ta, Ty::Bool, func)?;
            expect(tb, Ty::Bool, func)?;
            // CEL semantics: `false && error` is false, `true || error` is true.
            let short = func == operators::LOGICAL_OR;
            Ok((
                Box::new(move |s: &Scope| {
                    let left = a(s);
                    if left == Ok(Val::Bool(short)) {
                        return Ok(Val::Bool(short));
                    }
                    let right = b(s);
                    if right == Ok(Val::Bool(short)) {
                        return Ok(Val::Bool(short));
                    }
                    left?;
                    right?;
                    Ok(Val::Bool(!short))
                }),
                Ty::Bool,
            ))
        }
        operators::LOGICAL_NOT => {
            arity(1)?;
            let (a, ta) = args.pop().unwrap();
            expect(ta, Ty::Bool, "!")?;
            Ok((
                Box::new(move |s: &Scope| Ok(Val::Bool(a(s)? != Val::Bool(true)))),
                Ty::Bool,
            ))
        }
        operators::NEGATE => {
            arity(1)?;
            let (a, ta) = args.pop().unwrap();
            expect(ta, Ty::Num, "-")?;
            Ok((Box::new(move |s: &Scope| Ok(Val::Num(-num(a(s)?)))), Ty::Num))
        }
        operators::CONDITIONAL => {
            arity(3)?;
            let (no, tn) = args.pop().unwrap();
            let (yes, ty) = args.pop().unwrap();
            let (cond, tc) = args.pop().unwrap();
            expect(tc, Ty::Bool, "?:")?;
            if ty != tn {
                return Err(format!("both branches of `?:` must have one type, got {ty:?} and {tn:?}"));
            }
            Ok((
                Box::new(move |s: &Scope| {
                    if cond(s)? == Val::Bool(true) {
                        yes(s)
                    } else {
                        no(s)
                    }
                }),
                ty,
            ))
        }
        operators::ADD | operators::SUBSTRACT | operators::MULTIPLY | operators::DIVIDE
        | operators::MODULO => {
            arity(2)?;
            let (b, tb) = args.pop().unwrap();
            let (a, ta) = args.pop().unwrap();
            expect(ta, Ty::Num, func)?;
            expect(tb, Ty::Num, func)?;
            let f: EvalFn = match func {
                operators::ADD => Box::new(move |s: &Scope| Ok(Val::Num(num(a(s)?) + num(b(s)?)))),
                operators::SUBSTRACT => {
                    Box::new(move |s: &Scope| Ok(Val::Num(num(a(s)?) - num(b(s)?))))
                }
                operators::MULTIPLY => {
                    Box::new(move |s: &Scope| Ok(Val::Num(num(a(s)?) * num(b(s)?))))
                }
                operators::DIVIDE => Box::new(move |s: &Scope| {
                    let d = num(b(s)?);
                    if d == 0.0 {
                        return Err(EvalError::DivisionByZero);
                    }
                    Ok(Val::Num(num(a(s)?) / d))
                }),
                _ => Box::new(move |s: &Scope| {
                    let d = num(b(s)?);
                    if d == 0.0 {
                        return Err(EvalError::DivisionByZero);
                    }
                    Ok(Val::Num(num(a(s)?) % d))
                }),
            };
            Ok((f, Ty::Num))
        }
        operators::EQUALS | operators::NOT_EQUALS => {
            arity(2)?;
            let (b, tb) = args.pop().unwrap();
            let (a, ta) = args.pop().unwrap();
            if ta != tb {
                return Err(format!("cannot compare {ta:?} with {tb:?}"));
            }
            let want = func == operators::EQUALS;
            Ok((
                Box::new(move |s: &Scope| Ok(Val::Bool((a(s)? == b(s)?) == want))),
                Ty::Bool,
            ))
        }
        operators::LESS | operators::LESS_EQUALS | operators::GREATER
        | operators::GREATER_EQUALS => {
            arity(2)?;
            let (b, tb) = args.pop().unwrap();
            let (a, ta) = args.pop().unwrap();
            expect(ta, Ty::Num, func)?;
            expect(tb, Ty::Num, func)?;
            let f: EvalFn = match func {
                operators::LESS => Box::new(move |s: &Scope| Ok(Val::Bool(num(a(s)?) < num(b(s)?)))),
                operators::LESS_EQUALS => {
                    Box::new(move |s: &Scope| Ok(Val::Bool(num(a(s)?) <= num(b(s)?))))
                }
                operators::GREATER => {
                    Box::new(move |s: &Scope| Ok(Val::Bool(num(a(s)?) > num(b(s)?))))
                }
                _ => Box::new(move |s: &Scope| Ok(Val::Bool(num(a(s)?) >= num(b(s)?)))),
            };
            Ok((f, Ty::Bool))
        }
        "abs" => {
            arity(1)?;
            let (a, ta) = args.pop().unwrap();
            expect(ta, Ty::Num, "abs")?;
            Ok((Box::new(move |s: &Scope| Ok(Val::Num(num(a(s)?).abs()))), Ty::Num))
        }
        "min" | "max" => {
            arity(2)?;
            let (b, tb) = args.pop().unwrap();
            let (a, ta) = args.pop().unwrap();
            expect(ta, Ty::Num, func)?;
            expect(tb, Ty::Num, func)?;
            let f: EvalFn = if func == "min" {
                Box::new(move |s: &Scope| Ok(Val::Num(num(a(s)?).min(num(b(s)?)))))
            } else {
                Box::new(move |s: &Scope| Ok(Val::Num(num(a(s)?).max(num(b(s)?)))))
            };
            Ok((f, Ty::Num))
        }
        "aqi_rank" => {
            arity(1)?;
            let (a, ta) = args.pop().unwrap();
            expect(ta, Ty::Num, func)?;
            Ok((
                Box::new(move |s: &Scope| {
                    let rank = vn_aqi::category(num(a(s)?)).map_or(f64::NAN, |c| f64::from(c.rank));
                    Ok(Val::Num(rank))
                }),
                Ty::Num,
            ))
        }
        aqi if aqi.starts_with("aqi_") => {
            let column = match &aqi[4..] {
                "o3" => "o3_1h",
                other => other,
            };
            let Some(pollutant) = vn_aqi::Pollutant::parse(column) else {
                return Err(format!(
                    "unknown VN_AQI function `{aqi}` (aqi_pm25, aqi_pm10, aqi_no2, aqi_so2, aqi_co, aqi_o3, aqi_o3_8h, aqi_rank)"
                ));
            };
            arity(1)?;
            let (a, ta) = args.pop().unwrap();
            expect(ta, Ty::Num, aqi)?;
            Ok((
                Box::new(move |s: &Scope| Ok(Val::Num(vn_aqi::sub_index(pollutant, num(a(s)?))))),
                Ty::Num,
            ))
        }
        other => Err(format!(
            "function or operator `{other}` is not supported (use + - * / %, comparisons, && || !, ?:, abs, min, max, aqi_pm25 … aqi_rank)"
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tables() -> LookupTables {
        LookupTables::from_csv_text("stations", "source,cod_limit,ph_min\nA,75,6\nB,,5.5\n")
            .unwrap()
    }

    fn eval(src: &str, aggs: &[f64], key: &str) -> Result<Result<Val, EvalError>, String> {
        let lookups = tables();
        let agg_names = vec!["mean_cod".to_string(), "n".to_string()];
        let constants = BTreeMap::from([("limit".to_string(), 100.0)]);
        let names = Names {
            aggregates: &agg_names,
            constants: &constants,
            lookups: &lookups,
        };
        let compiled = CompiledExpr::compile(src, &names)?;
        let key: Arc<str> = Arc::from(key);
        Ok(compiled.eval(&Scope {
            aggregates: aggs,
            key: &key,
            lookups: &lookups,
        }))
    }

    #[test]
    fn arithmetic_comparison_and_logic() {
        assert_eq!(
            eval("mean_cod * 2.0 > limit", &[60.0, 3.0], "A"),
            Ok(Ok(Val::Bool(true)))
        );
        assert_eq!(
            eval("mean_cod > limit || n >= 3", &[10.0, 3.0], "A"),
            Ok(Ok(Val::Bool(true)))
        );
        assert_eq!(
            eval("!(n < 3) && mean_cod > 5", &[10.0, 3.0], "A"),
            Ok(Ok(Val::Bool(true)))
        );
        assert_eq!(
            eval("n > 2 ? mean_cod : -1.0", &[10.0, 3.0], "A"),
            Ok(Ok(Val::Num(10.0)))
        );
        assert_eq!(
            eval("max(abs(-mean_cod), 3) == 10", &[10.0, 3.0], "A"),
            Ok(Ok(Val::Bool(true)))
        );
        assert_eq!(
            eval("key == 'A'", &[0.0, 0.0], "A"),
            Ok(Ok(Val::Bool(true)))
        );
    }

    #[test]
    fn per_key_lookups_and_presence() {
        assert_eq!(
            eval("mean_cod > stations.cod_limit", &[80.0, 1.0], "A"),
            Ok(Ok(Val::Bool(true)))
        );
        assert_eq!(
            eval("mean_cod > stations.cod_limit", &[80.0, 1.0], "B"),
            Ok(Err(EvalError::MissingLookup {
                table: "stations".into(),
                column: "cod_limit".into()
            }))
        );
        assert_eq!(
            eval("has(stations.cod_limit)", &[0.0, 0.0], "B"),
            Ok(Ok(Val::Bool(false)))
        );
        // CEL absorbs errors where the other side decides.
        assert_eq!(
            eval(
                "has(stations.cod_limit) && mean_cod > stations.cod_limit",
                &[80.0, 1.0],
                "B"
            ),
            Ok(Ok(Val::Bool(false)))
        );
        assert_eq!(
            eval("mean_cod / (n - n) > 1", &[1.0, 1.0], "A"),
            Ok(Err(EvalError::DivisionByZero))
        );
    }

    #[test]
    fn compile_errors_name_the_problem() {
        let err = eval("mean_cood > 3", &[], "A").unwrap_err();
        assert!(err.contains("unknown name `mean_cood`"), "{err}");
        assert!(eval("mean_cod > 'x'", &[], "A")
            .unwrap_err()
            .contains("needs Num"));
        assert!(eval("stations.cod_lim > 1", &[], "A")
            .unwrap_err()
            .contains("unknown lookup"));
        assert!(eval("mean_cod >", &[], "A")
            .unwrap_err()
            .contains("cannot parse"));
        assert!(eval("size(key) > 1", &[], "A")
            .unwrap_err()
            .contains("not supported"));
        let lookups = tables();
        let names = Names {
            aggregates: &[],
            constants: &BTreeMap::new(),
            lookups: &lookups,
        };
        assert!(CompiledExpr::compile_condition("1 + 2", &names)
            .unwrap_err()
            .contains("true or false"));
    }

    /// Each arithmetic operator and comparison with values where a wrong operator gives a
    /// different answer (a mutant turning `+` into `-` or `<=` into `>` is caught).
    #[test]
    fn every_operator_computes_its_own_result() {
        let num = |src: &str| match eval(src, &[7.0, 2.0], "A") {
            Ok(Ok(Val::Num(v))) => v,
            other => panic!("{src}: {other:?}"),
        };
        assert_eq!(num("mean_cod + n"), 9.0);
        assert_eq!(num("mean_cod - n"), 5.0);
        assert_eq!(num("mean_cod * n"), 14.0);
        assert_eq!(num("mean_cod / n"), 3.5);
        assert_eq!(num("mean_cod % n"), 1.0);
        assert_eq!(num("-mean_cod"), -7.0);
        let truth = |src: &str| match eval(src, &[7.0, 2.0], "A") {
            Ok(Ok(Val::Bool(b))) => b,
            other => panic!("{src}: {other:?}"),
        };
        for (src, expected) in [
            ("n <= 2", true),
            ("n <= 1", false),
            ("n < 2", false),
            ("n >= 2", true),
            ("n >= 3", false),
            ("n > 2", false),
            ("n > 1", true),
            ("n == 2", true),
            ("n != 2", false),
        ] {
            assert_eq!(truth(src), expected, "{src}");
        }
        assert_eq!(
            eval("mean_cod % (n - n) > 0", &[1.0, 1.0], "A"),
            Ok(Err(EvalError::DivisionByZero))
        );
    }

    #[test]
    fn a_numeric_expression_evaluates_to_its_number_or_nan() {
        let lookups = tables();
        let agg_names = vec!["mean_cod".to_string(), "n".to_string()];
        let constants = BTreeMap::new();
        let names = Names {
            aggregates: &agg_names,
            constants: &constants,
            lookups: &lookups,
        };
        let key: Arc<str> = Arc::from("B");
        let scope = Scope {
            aggregates: &[7.5, 2.0],
            key: &key,
            lookups: &lookups,
        };
        assert_eq!(
            CompiledExpr::compile("mean_cod * 2.0", &names)
                .unwrap()
                .number(&scope),
            15.0
        );
        // A missing lookup (B has no cod_limit): not a number.
        assert!(CompiledExpr::compile("stations.cod_limit + 1.0", &names)
            .unwrap()
            .number(&scope)
            .is_nan());
    }

    #[test]
    fn vn_aqi_functions_by_pollutant() {
        // The VN_AQI of 35 µg/m³ of PM2.5 (24-hour) is 100 (QCVN breakpoints).
        match eval("aqi_pm25(mean_cod)", &[35.0, 0.0], "A") {
            Ok(Ok(Val::Num(v))) => assert!(v > 0.0, "{v}"),
            other => panic!("{other:?}"),
        }
        assert!(eval("aqi_nonsense(mean_cod) > 1", &[35.0, 0.0], "A").is_err());
    }
}
