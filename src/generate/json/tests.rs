//! The matcher against documents written by hand, random walks through it checked by
//! serde_json (an independent parser), and the trie walk against feeding every token.

use super::grammar::Grammar;
use super::matcher::{can_end, feed_all, start};
use super::vocab::Vocab;
use super::{JsonFormat, JsonState};
use serde_json::{json, Value};
use std::rc::Rc;

fn accepts(g: &Grammar, text: &str) -> bool {
    let s = feed_all(g, &[start(g)], text.as_bytes());
    s.iter().any(|s| can_end(g, s))
}

fn person() -> Value {
    json!({
        "type": "object",
        "properties": {
            "name": {"type": "string", "minLength": 1, "maxLength": 12},
            "age": {"type": "integer", "minimum": 0, "maximum": 120},
            "tags": {"type": "array", "items": {"enum": ["a", "b\"c", 7, null]}, "maxItems": 3},
            "ok": {"type": "boolean"},
            "score": {"type": ["number", "null"], "exclusiveMinimum": 0, "maximum": 1}
        },
        "required": ["name", "age"]
    })
}

#[test]
fn documents_by_hand() {
    let g = Grammar::from_schema(&person()).unwrap();
    for ok in [
        r#"{"name":"Ann","age":31}"#,
        "{\n  \"name\": \"\u{e9}\\u00e9\\n\",\n  \"age\": 0,\n  \"tags\": [\"b\\\"c\", 7, null],\n  \"score\": 0.25\n}",
        r#"{"name":"x","age":120,"ok":false,"score":null}"#,
        r#" {"name":"x","age":5,"tags":[]}"#,
    ] {
        assert!(accepts(&g, ok), "{ok}");
    }
    for bad in [
        r#"{"age":31,"name":"Ann"}"#,          // order
        r#"{"name":"Ann"}"#,                   // required
        r#"{"name":"","age":3}"#,              // minLength
        r#"{"name":"abcdefghijklm","age":3}"#, // maxLength
        r#"{"name":"a","age":121}"#,
        r#"{"name":"a","age":-1}"#,
        r#"{"name":"a","age":1.5}"#,
        r#"{"name":"a","age":1,"tags":["c"]}"#,
        r#"{"name":"a","age":1,"tags":[7,7,7,7]}"#,
        r#"{"name":"a","age":1,"score":0}"#,
        r#"{"name":"a","age":1,"extra":1}"#,
        r#"{"name":"a\ud800","age":1}"#,
        "{\"name\":\"a\u{1}\",\"age\":1}",
        r#"{"name":"a","age":1} "#,
        r#"{"name":"a","age":01}"#,
    ] {
        assert!(!accepts(&g, bad), "{bad}");
    }
    let any = Grammar::any_object();
    assert!(accepts(&any, r#"{"a":[1,{"b":null}],"c":"d","a":-0.5e3}"#));
    assert!(!accepts(&any, "[1]") && !accepts(&any, r#"{"a":}"#) && !accepts(&any, r#"{"a":tru}"#));
}

#[test]
fn schemas_refused() {
    for (s, why) in [
        (json!({"type": "string", "pattern": "^a"}), "pattern"),
        (json!({"type": "object", "properties": {"a": {"$ref": "#"}}, "required": ["a"]}), "finite"),
        (json!({"$defs": {"a": {"$ref": "#/$defs/b"}, "b": {"anyOf": [{"$ref": "#/$defs/a"}, {"type": "null"}]}}, "$ref": "#/$defs/a"}), "cycle"),
        (json!({"oneOf": [{"type": "integer"}, {"type": "number"}]}), "share"),
        (json!({"type": "integer", "minimum": 0.2, "maximum": 0.8}), "bounds"),
        (json!({"enum": []}), "enum"),
        (json!({"type": "object", "properties": {"a": {}}, "additionalProperties": true}), "additional"),
        (json!(false), "false"),
        (json!({"$ref": "http://example.com/s"}), "local"),
    ] {
        let e = Grammar::from_schema(&s).err().unwrap_or_else(|| panic!("{why}: accepted {s}"));
        assert!(!e.message.is_empty(), "{why}");
    }
    // A recursive schema that can stop is fine.
    let tree = json!({"type": "object", "properties": {"v": {"type": "integer"}, "kids": {"type": "array", "items": {"$ref": "#"}}}, "required": ["v"]});
    let g = Grammar::from_schema(&tree).unwrap();
    assert!(accepts(&g, r#"{"v":1,"kids":[{"v":2},{"v":3,"kids":[]}]}"#));
}

/// Random bytes fed through the matcher (each chosen among the bytes it accepts) until the
/// document may end: serde_json parses every one, and the schema's rules hold.
#[test]
fn random_walks_parse() {
    let g = Grammar::from_schema(&person()).unwrap();
    let mut seed = 7u64;
    let mut rand = |n: usize| {
        seed = seed.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
        (seed >> 33) as usize % n
    };
    for walk in 0..300 {
        let mut state = vec![start(&g)];
        let mut text = Vec::new();
        let closed = |st: &[Vec<super::matcher::Frame>]| st.iter().all(|s| matches!(s.last(), Some(super::matcher::Frame::Doc { done: true })));
        while !(state.iter().any(|s| can_end(&g, s)) && (rand(4) == 0 || closed(&state))) {
            let mut options: Vec<(u8, Vec<_>)> = (0..=255u8).map(|b| (b, feed_all(&g, &state, &[b]))).filter(|(_, s)| !s.is_empty()).collect();
            assert!(!options.is_empty(), "walk {walk} stuck after {:?}", String::from_utf8_lossy(&text));
            let (b, next) = options.swap_remove(rand(options.len()));
            text.push(b);
            state = next;
        }
        let v: Value = serde_json::from_slice(&text).unwrap_or_else(|e| panic!("walk {walk}: {e}: {:?}", String::from_utf8_lossy(&text)));
        let name = v["name"].as_str().unwrap();
        assert!((1..=12).contains(&name.chars().count()));
        assert!((0..=120).contains(&v["age"].as_i64().unwrap()));
        if let Some(s) = v.get("score").and_then(Value::as_f64) {
            assert!(s > 0.0 && s <= 1.0, "{s}");
        }
        if let Some(t) = v.get("tags") {
            let t = t.as_array().unwrap();
            assert!(t.len() <= 3 && t.iter().all(|x| [json!("a"), json!("b\"c"), json!(7), Value::Null].contains(x)));
        }
    }
}

/// The trie walk (with its plain-text shortcut) allows exactly the tokens that feeding each
/// token's bytes allows, in every state along random documents.
#[test]
fn trie_walk_equals_feeding_each_token() {
    let mut toks: Vec<(Vec<u8>, u32)> = Vec::new();
    let pieces = ["{", "}", "\"", "\":", "\": \"", "\",", "\"}", ", \"", "name", "age", "tags", "ok", "score", "na", "me\"", "a", "b", "c", "\\", "\\\"", "\\u00", "e9", "d8", "0", "1", "12", "120", ".", "5", "-", "e", "null", "true", "false", "[", "]", "],", " ", "\n  ", "\u{e9}", "x y", "\u{1f600}", "é\"", ", ", ":", "7", "0.", "Ann"];
    for (i, p) in pieces.iter().enumerate() {
        toks.push((p.as_bytes().to_vec(), i as u32));
    }
    // Partial UTF-8 and stray bytes.
    let n = pieces.len() as u32;
    toks.extend([(vec![0xc3], n), (vec![0xa9], n + 1), (vec![0x01], n + 2), (vec![0xf0, 0x9f], n + 3)]);
    let vocab = Rc::new(Vocab::from_tokens(toks.clone(), n as usize + 4));
    let grammar = Grammar::from_schema(&person()).unwrap();
    let f = Rc::new(JsonFormat::new(grammar, vocab));
    let mut seed = 3u64;
    let mut checked = 0;
    for _ in 0..40 {
        let mut st = JsonState::new(f.clone());
        for _ in 0..40 {
            let mask = st.mask(&[]);
            let allowed: Vec<u32> = toks.iter().filter(|(b, _)| !feed_all(&f.grammar, &st.stacks, b).is_empty()).map(|t| t.1).collect();
            let from_mask: Vec<u32> = (0..n + 4).filter(|&t| mask[t as usize / 32] >> (t % 32) & 1 == 1).collect();
            assert_eq!(from_mask, allowed);
            checked += 1;
            if allowed.is_empty() || st.closed() {
                break;
            }
            seed = seed.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
            let t = allowed[(seed >> 33) as usize % allowed.len()];
            st.advance(&toks.iter().find(|x| x.1 == t).unwrap().0).unwrap();
        }
    }
    assert!(checked > 300, "{checked}");
}
