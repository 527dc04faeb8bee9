//! jq expressions of flows (`input`, `when`, `map`), through the `jaq` crates.
//!
//! Filters that reach outside the value are left out: `env` (and so `$ENV`)
//! would hand the host's environment, secrets included, to a step; `input`,
//! `inputs`, `halt`, `debug` and `stderr` talk to the process.

use std::cell::RefCell;
use std::collections::HashMap;
use std::rc::Rc;

use jaq_core::load::{Arena, File, Loader};
use jaq_core::{Compiler, Ctx, Vars, data};
use jaq_json::Val;
use serde_json::Value;

/// Filters a flow expression may not use (natives, and the definitions built on them).
const DENIED: [&str; 9] = [
    "env",
    "halt",
    "halt_error",
    "input",
    "inputs",
    "stderr",
    "stderr_empty",
    "debug",
    "debug_empty",
];

type Filter = jaq_core::Filter<data::JustLut<Val>>;

fn compile(code: &str) -> Result<Filter, String> {
    let defs = jaq_core::defs()
        .chain(jaq_std::defs())
        .chain(jaq_json::defs())
        .filter(|def| !DENIED.contains(&def.name));
    let funs = jaq_core::funs()
        .chain(jaq_std::funs())
        .chain(jaq_json::funs())
        .filter(|(name, _, _)| !DENIED.contains(name));
    let loader = Loader::new(defs);
    let arena = Arena::default();
    let modules = loader
        .load(&arena, File { code, path: () })
        .map_err(|errors| {
            let mut messages = Vec::new();
            for (_, error) in errors {
                match error {
                    jaq_core::load::Error::Io(items) => {
                        messages.extend(items.into_iter().map(|(_, m)| m));
                    }
                    jaq_core::load::Error::Lex(items) => {
                        messages.extend(items.into_iter().map(|(expect, at)| {
                            format!("expected {} at `{}`", expect.as_str(), snippet(at))
                        }))
                    }
                    jaq_core::load::Error::Parse(items) => {
                        messages.extend(items.into_iter().map(|(expect, at)| {
                            format!("expected {} at `{}`", expect.as_str(), snippet(at))
                        }))
                    }
                }
            }
            format!("not a valid jq expression: {}", messages.join("; "))
        })?;
    Compiler::default()
        .with_funs(funs)
        .compile(modules)
        .map_err(|errors| {
            let names: Vec<String> = errors
                .into_iter()
                .flat_map(|(_, errs)| errs)
                .map(|(name, undefined)| format!("undefined {} `{name}`", undefined.as_str()))
                .collect();
            format!("not a valid jq expression: {}", names.join("; "))
        })
}

/// The most compiled programs kept per thread; the cache is emptied when full.
const CACHED: usize = 512;

thread_local! {
    /// Compiled programs by source: a flow's expressions are compiled once
    /// per worker thread, not once per step. (Compiled filters may hold
    /// values that are not `Send`, so each thread keeps its own.)
    static COMPILED: RefCell<HashMap<String, Rc<Filter>>> = RefCell::new(HashMap::new());
}

/// `code` compiled, from this thread's cache when it is there.
fn compiled(code: &str) -> Result<Rc<Filter>, String> {
    if let Some(filter) = COMPILED.with(|c| c.borrow().get(code).cloned()) {
        return Ok(filter);
    }
    let filter = Rc::new(compile(code)?);
    COMPILED.with(|c| {
        let mut cache = c.borrow_mut();
        if cache.len() >= CACHED {
            cache.clear();
        }
        cache.insert(code.to_string(), Rc::clone(&filter));
    });
    Ok(filter)
}

fn snippet(at: &str) -> String {
    let s: String = at.chars().take(20).collect();
    if s.is_empty() {
        "end of input".into()
    } else {
        s
    }
}

/// Checks that `code` parses and names only known filters.
pub fn check(code: &str) -> Result<(), String> {
    compile(code).map(drop)
}

/// Runs `code` on `input`; the first result, or an error when it yields none.
pub fn first(code: &str, input: &Value) -> Result<Value, String> {
    let filter = compiled(code)?;
    let input: Val = serde_json::from_value(input.clone())
        .map_err(|e| format!("the expression's input does not convert: {e}"))?;
    let ctx = Ctx::<data::JustLut<Val>>::new(&filter.lut, Vars::new([]));
    let mut out = filter.id.run((ctx, input));
    match out.next() {
        None => Err("the expression yielded no value".into()),
        Some(Ok(value)) => serde_json::from_str(&value.to_string())
            .map_err(|e| format!("the expression yielded a value that is not JSON: {e}")),
        Some(Err(exn)) => Err(match exn.get_err() {
            Ok(error) => format!("the expression failed: {error}"),
            Err(_) => "the expression stopped the program, which flows do not allow".into(),
        }),
    }
}

/// Runs a `when` condition: jq truthiness (`false` and `null` are false).
pub fn truthy(code: &str, input: &Value) -> Result<bool, String> {
    Ok(!matches!(
        first(code, input)?,
        Value::Null | Value::Bool(false)
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn maps_and_conditions() {
        let ctx = json!({"trigger": {"n": 2, "name": "acme"}});
        assert_eq!(
            first(
                "{key: (.trigger.name | ascii_upcase), n: (.trigger.n * 2)}",
                &ctx
            )
            .unwrap(),
            json!({"key": "ACME", "n": 4})
        );
        assert!(truthy(".trigger.n > 1", &ctx).unwrap());
        assert!(!truthy(".trigger.missing", &ctx).unwrap());
    }

    #[test]
    fn bad_expressions_are_refused() {
        assert!(check("{a: }").unwrap_err().contains("not a valid jq"));
        assert!(check("nosuchfn(1)").unwrap_err().contains("nosuchfn"));
        assert!(check("[.[] | map(. + 1)]").is_ok());
    }

    #[test]
    fn host_access_is_refused() {
        assert!(check("env").is_err());
        assert!(check("$ENV").is_err());
        assert!(check("halt").is_err());
        assert!(check("input").is_err());
        assert!(check("debug").is_err());
    }

    #[test]
    fn runtime_errors_and_empty_results_are_errors() {
        assert!(
            first("error(\"boom\")", &json!(null))
                .unwrap_err()
                .contains("boom")
        );
        assert!(
            first("empty", &json!(null))
                .unwrap_err()
                .contains("no value")
        );
    }
}
