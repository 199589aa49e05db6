//! JSON Schema → the grammar the matcher walks: a graph of nodes (a `$ref` may point back up,
//! so recursive schemas work). Every keyword that constrains a value is either enforced while
//! generating or refused with an `UnsupportedError`; annotations (title, description, ...)
//! are ignored. Generated objects list their properties in the schema's order; without
//! `additionalProperties: true` (or a schema) no other keys are written, as OpenAI's
//! structured outputs do.

use crate::error::{Error, Result};
use serde_json::{Map, Value};
use std::collections::HashMap;

pub type NodeId = u32;

/// Whitespace bytes allowed between two tokens of JSON (enough to indent ten levels; a
/// model cannot loop on whitespace).
pub const MAX_WS: u8 = 24;
/// Digits allowed in a number's integer part and fraction (integers stay exact in a double).
pub const MAX_DIGITS: u8 = 15;

#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Bound {
    pub value: f64,
    pub exclusive: bool,
}

#[derive(Debug)]
pub enum Node {
    /// One of these literals (JSON text, as serde_json writes it): enum, const, null, true/false.
    Literals(LitSet),
    /// A string of `min..=max` characters (code points).
    Str { min: u32, max: u32 },
    Number { integer: bool, min: Option<Bound>, max: Option<Bound> },
    Array { items: NodeId, min: u32, max: u32 },
    /// Properties in order (key literal index into `keys`, value, required); `additional`: any
    /// other keys' values (only without declared properties).
    Object { props: Vec<(NodeId, bool)>, keys: LitSet, additional: Option<NodeId> },
    AnyOf(Vec<NodeId>),
    /// A `$ref` not compiled yet (resolved before the grammar is used).
    Pending,
}

/// Literals sorted by bytes, each with a tag (an object key's property index): the literals
/// that share a prefix are one contiguous range.
#[derive(Debug, Default)]
pub struct LitSet {
    pub lits: Vec<(Vec<u8>, u32)>,
}

impl LitSet {
    pub fn new(mut lits: Vec<(Vec<u8>, u32)>) -> LitSet {
        lits.sort();
        lits.dedup_by(|a, b| a.0 == b.0);
        LitSet { lits }
    }
}

pub struct Grammar {
    pub nodes: Vec<Node>,
    pub root: NodeId,
    /// Fewest bytes a value of each node takes (the shortest way to close a document).
    pub min_len: Vec<u32>,
}

/// Bytes of property `p`'s key literal (quotes included).
pub fn key_len(keys: &LitSet, p: u32) -> u32 {
    keys.lits.iter().find(|l| l.1 == p).map_or(0, |l| l.0.len() as u32)
}

/// How deep schemas may nest (their text, not the JSON they generate).
const MAX_SCHEMA_DEPTH: usize = 64;
/// Nodes at most (enum members and properties included).
const MAX_NODES: usize = 1 << 16;

impl Grammar {
    /// The grammar of JSON values valid under `schema`.
    pub fn from_schema(schema: &Value) -> Result<Grammar> {
        let mut c = Compiler { doc: schema, nodes: Vec::new(), refs: HashMap::new(), any: None };
        let root = c.node(schema, 0)?;
        let mut g = Grammar { nodes: c.nodes, root, min_len: vec![] };
        g.check()?;
        Ok(g)
    }

    /// Measures each node's shortest value, and refuses grammars the matcher could not finish
    /// or would loop in: a node every value of which is infinite (a required property or
    /// minimum item that contains itself), and anyOf alternatives that lead back to
    /// themselves without a byte between.
    fn check(&mut self) -> Result<()> {
        // Fewest bytes of a value of each node (u32::MAX: none is finite), to a fixpoint.
        let mut min = vec![u32::MAX; self.nodes.len()];
        loop {
            let mut changed = false;
            for (i, n) in self.nodes.iter().enumerate() {
                let m = |j: NodeId| min[j as usize];
                let v = match n {
                    Node::Literals(s) => s.lits.iter().map(|l| l.0.len() as u32).min().unwrap_or(u32::MAX),
                    Node::Str { min, .. } => min.saturating_add(2),
                    Node::Number { integer, min, max } => super::number::Spec { integer: *integer, min: *min, max: *max }.min_len(),
                    Node::Array { items, min, .. } => match *min {
                        0 => 2,
                        n => m(*items).saturating_mul(n).saturating_add(n + 1),
                    },
                    Node::Object { props, keys, .. } => {
                        // Braces, members, commas between them.
                        let req = props.iter().enumerate().filter(|p| p.1 .1);
                        req.fold(1u32, |acc, (k, p)| acc.saturating_add(key_len(keys, k as u32) + 2).saturating_add(m(p.0))).max(2)
                    }
                    Node::AnyOf(alts) => alts.iter().map(|&a| m(a)).min().unwrap_or(u32::MAX),
                    Node::Pending => u32::MAX,
                };
                if v < min[i] {
                    min[i] = v;
                    changed = true;
                }
            }
            if !changed {
                break;
            }
        }
        let fin: Vec<bool> = min.iter().map(|&m| m < u32::MAX).collect();
        self.min_len = min;
        if fin.iter().any(|f| !f) {
            return Err(unsupported("a schema with no finite value (a required property or item that contains itself)"));
        }
        // anyOf edges only: 0 unvisited, 1 on the path, 2 done.
        let mut mark = vec![0u8; self.nodes.len()];
        fn visit(g: &Grammar, i: usize, mark: &mut [u8]) -> Result<()> {
            match mark[i] {
                1 => return Err(unsupported("a $ref cycle that nests nothing")),
                2 => return Ok(()),
                _ => {}
            }
            mark[i] = 1;
            if let Node::AnyOf(alts) = &g.nodes[i] {
                for &a in alts {
                    visit(g, a as usize, mark)?;
                }
            }
            mark[i] = 2;
            Ok(())
        }
        (0..self.nodes.len()).try_for_each(|i| visit(self, i, &mut mark))
    }

    /// Any JSON object (OpenAI's `json_object` mode).
    pub fn any_object() -> Grammar {
        Grammar::from_schema(&serde_json::json!({"type": "object", "additionalProperties": true})).expect("a fixed schema")
    }

    /// Whether every document closes by itself (an object, array or string at the root):
    /// otherwise (a number) a stop token must end it, one token more.
    pub fn closes_itself(&self) -> bool {
        fn closes(g: &Grammar, n: NodeId, depth: usize) -> bool {
            match g.node(n) {
                Node::Object { .. } | Node::Array { .. } | Node::Str { .. } => true,
                Node::AnyOf(alts) => depth < 64 && alts.iter().all(|&a| closes(g, a, depth + 1)),
                _ => false,
            }
        }
        closes(self, self.root, 0)
    }

    pub fn node(&self, id: NodeId) -> &Node {
        &self.nodes[id as usize]
    }
}

struct Compiler<'a> {
    doc: &'a Value,
    nodes: Vec<Node>,
    /// `$ref` targets compiled (or being compiled: `Pending`).
    refs: HashMap<String, NodeId>,
    any: Option<NodeId>,
}

const TYPES: [&str; 7] = ["object", "array", "string", "number", "integer", "boolean", "null"];
/// Keywords that only annotate.
const ANNOTATIONS: [&str; 11] = ["title", "description", "$schema", "$id", "$comment", "default", "examples", "$defs", "definitions", "deprecated", "readOnly"];

fn unsupported(what: impl std::fmt::Display) -> Error {
    Error::unsupported(format!("JSON schema: {what}"))
}

fn bad(what: impl std::fmt::Display) -> Error {
    Error::config(format!("JSON schema: {what}"))
}

fn count(m: &Map<String, Value>, k: &str) -> Result<Option<u32>> {
    match m.get(k) {
        None => Ok(None),
        Some(v) => v.as_u64().filter(|&n| n <= u32::MAX as u64).map(|n| Some(n as u32)).ok_or_else(|| bad(format!("{k} must be a non-negative integer"))),
    }
}

fn bound(m: &Map<String, Value>, k: &str, exclusive: bool) -> Result<Option<Bound>> {
    match m.get(k) {
        None => Ok(None),
        Some(v) => v.as_f64().filter(|x| x.is_finite()).map(|value| Some(Bound { value, exclusive })).ok_or_else(|| bad(format!("{k} must be a number"))),
    }
}

/// The tighter of two lower (`lower`) or upper bounds.
fn tighter(a: Option<Bound>, b: Option<Bound>, lower: bool) -> Option<Bound> {
    match (a, b) {
        (Some(a), Some(b)) => {
            let a_wins = if a.value == b.value { a.exclusive } else { (a.value > b.value) == lower };
            Some(if a_wins { a } else { b })
        }
        (a, b) => a.or(b),
    }
}

impl Compiler<'_> {
    fn push(&mut self, n: Node) -> Result<NodeId> {
        if self.nodes.len() >= MAX_NODES {
            return Err(Error::limit(format!("JSON schema: more than {MAX_NODES} nodes")));
        }
        self.nodes.push(n);
        Ok((self.nodes.len() - 1) as NodeId)
    }

    fn literals(&mut self, values: &[&Value]) -> Result<NodeId> {
        let lits = values.iter().map(|v| (serde_json::to_vec(v).expect("JSON values serialize"), 0)).collect();
        self.push(Node::Literals(LitSet::new(lits)))
    }

    /// Any JSON value (`true`, `{}`): object, array, string, number or a literal.
    fn any(&mut self) -> Result<NodeId> {
        if let Some(a) = self.any {
            return Ok(a);
        }
        let id = self.push(Node::Pending)?;
        self.any = Some(id);
        let obj = self.push(Node::Object { props: vec![], keys: LitSet::default(), additional: Some(id) })?;
        let arr = self.push(Node::Array { items: id, min: 0, max: u32::MAX })?;
        let s = self.push(Node::Str { min: 0, max: u32::MAX })?;
        let num = self.push(Node::Number { integer: false, min: None, max: None })?;
        let lit = self.literals(&[&Value::Bool(true), &Value::Bool(false), &Value::Null])?;
        self.nodes[id as usize] = Node::AnyOf(vec![obj, arr, s, num, lit]);
        Ok(id)
    }

    fn node(&mut self, s: &Value, depth: usize) -> Result<NodeId> {
        if depth > MAX_SCHEMA_DEPTH {
            return Err(Error::limit(format!("JSON schema nested deeper than {MAX_SCHEMA_DEPTH}")));
        }
        let m = match s {
            Value::Bool(true) => return self.any(),
            Value::Bool(false) => return Err(unsupported("`false` (nothing is valid)")),
            Value::Object(m) => m,
            _ => return Err(bad("a schema must be an object or a boolean")),
        };
        if let Some(r) = m.get("$ref") {
            if m.keys().any(|k| k != "$ref" && !ANNOTATIONS.contains(&k.as_str())) {
                return Err(unsupported("$ref beside other keywords"));
            }
            return self.reference(r.as_str().ok_or_else(|| bad("$ref must be a string"))?, depth);
        }
        for k in m.keys() {
            let known = ANNOTATIONS.contains(&k.as_str())
                || matches!(
                    k.as_str(),
                    "type" | "enum" | "const" | "anyOf" | "oneOf" | "allOf" | "properties" | "required" | "additionalProperties" | "items"
                        | "minItems" | "maxItems" | "minLength" | "maxLength" | "minimum" | "maximum" | "exclusiveMinimum" | "exclusiveMaximum"
                );
            if !known {
                return Err(unsupported(format!("keyword {k:?}")));
            }
        }
        if let Some(e) = m.get("enum") {
            let e = e.as_array().filter(|a| !a.is_empty()).ok_or_else(|| bad("enum must be a non-empty array"))?;
            return self.typed_literals(m, &e.iter().collect::<Vec<_>>());
        }
        if let Some(c) = m.get("const") {
            return self.typed_literals(m, &[c]);
        }
        if let Some(all) = m.get("allOf") {
            match all.as_array().map(Vec::as_slice) {
                Some([one]) if m.len() == 1 => return self.node(one, depth + 1),
                _ => return Err(unsupported("allOf with more than one schema, or beside other keywords")),
            }
        }
        for k in ["anyOf", "oneOf"] {
            if let Some(alts) = m.get(k) {
                let alts = alts.as_array().filter(|a| !a.is_empty()).ok_or_else(|| bad(format!("{k} must be a non-empty array")))?;
                if m.keys().any(|x| x != k && !ANNOTATIONS.contains(&x.as_str())) {
                    return Err(unsupported(format!("{k} beside other keywords")));
                }
                if k == "oneOf" {
                    one_of_disjoint(alts)?;
                }
                let ids = alts.iter().map(|a| self.node(a, depth + 1)).collect::<Result<Vec<_>>>()?;
                return self.push(Node::AnyOf(ids));
            }
        }
        let types: Vec<&str> = match m.get("type") {
            None => TYPES.iter().copied().filter(|t| *t != "integer").collect(),
            Some(Value::String(t)) => vec![t.as_str()],
            Some(Value::Array(ts)) => ts.iter().map(|t| t.as_str().ok_or_else(|| bad("type must be a string or strings"))).collect::<Result<_>>()?,
            Some(_) => return Err(bad("type must be a string or strings")),
        };
        if types.is_empty() {
            return Err(bad("type must name at least one type"));
        }
        let mut ids = Vec::new();
        for t in types {
            let id = match t {
                "object" => self.object(m, depth)?,
                "array" => {
                    let items = match m.get("items") {
                        None => self.any()?,
                        Some(i @ (Value::Object(_) | Value::Bool(true))) => self.node(i, depth + 1)?,
                        Some(_) => return Err(unsupported("items other than one schema")),
                    };
                    let (min, max) = (count(m, "minItems")?.unwrap_or(0), count(m, "maxItems")?.unwrap_or(u32::MAX));
                    if min > max {
                        return Err(bad(format!("minItems {min} > maxItems {max}")));
                    }
                    self.push(Node::Array { items, min, max })?
                }
                "string" => {
                    let (min, max) = (count(m, "minLength")?.unwrap_or(0), count(m, "maxLength")?.unwrap_or(u32::MAX));
                    if min > max {
                        return Err(bad(format!("minLength {min} > maxLength {max}")));
                    }
                    self.push(Node::Str { min, max })?
                }
                "number" | "integer" => {
                    let min = tighter(bound(m, "minimum", false)?, bound(m, "exclusiveMinimum", true)?, true);
                    let max = tighter(bound(m, "maximum", false)?, bound(m, "exclusiveMaximum", true)?, false);
                    let integer = t == "integer";
                    if !super::number::satisfiable(integer, min, max) {
                        return Err(bad(format!("no {t} lies within the bounds")));
                    }
                    self.push(Node::Number { integer, min, max })?
                }
                "boolean" => self.literals(&[&Value::Bool(true), &Value::Bool(false)])?,
                "null" => self.literals(&[&Value::Null])?,
                t => return Err(bad(format!("unknown type {t:?}"))),
            };
            ids.push(id);
        }
        if ids.len() == 1 {
            Ok(ids[0])
        } else {
            self.push(Node::AnyOf(ids))
        }
    }

    /// enum/const members, those of a declared type only (a member of another type would not
    /// validate).
    fn typed_literals(&mut self, m: &Map<String, Value>, values: &[&Value]) -> Result<NodeId> {
        let allowed = |v: &Value| match m.get("type") {
            None => true,
            Some(t) => {
                let ts: Vec<&str> = match t {
                    Value::String(s) => vec![s.as_str()],
                    Value::Array(a) => a.iter().filter_map(Value::as_str).collect(),
                    _ => vec![],
                };
                ts.iter().any(|t| match (*t, v) {
                    ("null", Value::Null) | ("boolean", Value::Bool(_)) | ("string", Value::String(_)) => true,
                    ("number", Value::Number(_)) | ("object", Value::Object(_)) | ("array", Value::Array(_)) => true,
                    ("integer", Value::Number(n)) => n.is_i64() || n.is_u64() || n.as_f64().is_some_and(|x| x.fract() == 0.0),
                    _ => false,
                })
            }
        };
        let kept: Vec<&Value> = values.iter().copied().filter(|v| allowed(v)).collect();
        if kept.is_empty() {
            return Err(bad("no enum/const member has the declared type"));
        }
        self.literals(&kept)
    }

    fn object(&mut self, m: &Map<String, Value>, depth: usize) -> Result<NodeId> {
        let props = match m.get("properties") {
            None => Map::new(),
            Some(Value::Object(p)) => p.clone(),
            Some(_) => return Err(bad("properties must be an object")),
        };
        let required: Vec<&str> = match m.get("required") {
            None => vec![],
            Some(Value::Array(r)) => r.iter().map(|k| k.as_str().ok_or_else(|| bad("required must list strings"))).collect::<Result<_>>()?,
            Some(_) => return Err(bad("required must be an array")),
        };
        if let Some(k) = required.iter().find(|k| !props.contains_key(**k)) {
            return Err(unsupported(format!("required property {k:?} without a schema in properties")));
        }
        let additional = match m.get("additionalProperties") {
            None | Some(Value::Bool(false)) => None,
            Some(a @ (Value::Bool(true) | Value::Object(_))) => Some(a),
            Some(_) => return Err(bad("additionalProperties must be a boolean or a schema")),
        };
        if additional.is_some() && !props.is_empty() {
            return Err(unsupported("additionalProperties beside properties"));
        }
        let additional = additional.map(|a| self.node(a, depth + 1)).transpose()?;
        let mut out = Vec::with_capacity(props.len());
        let mut keys = Vec::with_capacity(props.len());
        for (i, (k, v)) in props.iter().enumerate() {
            keys.push((serde_json::to_vec(k).expect("strings serialize"), i as u32));
            out.push((self.node(v, depth + 1)?, required.contains(&k.as_str())));
        }
        self.push(Node::Object { props: out, keys: LitSet::new(keys), additional })
    }

    /// `#`, `#/$defs/name` or `#/definitions/name` (JSON pointer escapes `~0`, `~1`).
    fn reference(&mut self, r: &str, depth: usize) -> Result<NodeId> {
        if let Some(&id) = self.refs.get(r) {
            return Ok(id);
        }
        let path = r.strip_prefix('#').ok_or_else(|| unsupported(format!("$ref {r:?} (only local references)")))?;
        let mut target = self.doc;
        for part in path.split('/').skip(1) {
            let part = part.replace("~1", "/").replace("~0", "~");
            target = target.get(&part).ok_or_else(|| bad(format!("$ref {r:?} points nowhere")))?;
        }
        let id = self.push(Node::Pending)?;
        self.refs.insert(r.to_string(), id);
        let inner = self.node(target, depth + 1)?;
        // The placeholder stands for the target: an alternative of one.
        self.nodes[id as usize] = Node::AnyOf(vec![inner]);
        if inner == id {
            return Err(bad(format!("$ref {r:?} refers to itself")));
        }
        Ok(id)
    }
}

/// oneOf is generated as anyOf: sound only when no value can match two alternatives, which
/// is checked here by type (each alternative's `type` or its literals' types).
fn one_of_disjoint(alts: &[Value]) -> Result<()> {
    let kinds = |s: &Value| -> Option<Vec<&'static str>> {
        let m = s.as_object()?;
        let of = |v: &Value| match v {
            Value::Null => "null",
            Value::Bool(_) => "boolean",
            Value::Number(_) => "number",
            Value::String(_) => "string",
            Value::Array(_) => "array",
            Value::Object(_) => "object",
        };
        if let Some(e) = m.get("enum").and_then(Value::as_array) {
            return Some(e.iter().map(of).collect());
        }
        if let Some(c) = m.get("const") {
            return Some(vec![of(c)]);
        }
        let name = |t: &str| TYPES.iter().find(|x| **x == t).map(|t| if *t == "integer" { "number" } else { *t });
        match m.get("type")? {
            Value::String(t) => Some(vec![name(t)?]),
            Value::Array(ts) => ts.iter().map(|t| name(t.as_str()?)).collect(),
            _ => None,
        }
    };
    let mut seen: Vec<&str> = Vec::new();
    for a in alts {
        let k = kinds(a).ok_or_else(|| unsupported("oneOf whose alternatives are not told apart by type"))?;
        if k.iter().any(|t| seen.contains(t)) {
            return Err(unsupported("oneOf whose alternatives share a type (use anyOf)"));
        }
        seen.extend(k);
    }
    Ok(())
}
