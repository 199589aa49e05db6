//! The matcher against documents written by hand, random walks through it checked by
//! serde_json (an independent parser), and the trie walk against feeding every token.

use super::grammar::Grammar;
use crate::backend::select::has;
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
            "name": {"type": "string", "minLength": 2, "maxLength": 12},
            "age": {"type": "integer", "minimum": 0, "maximum": 120},
            "tags": {"type": "array", "items": {"enum": ["a", "b\"c", 7, null]}, "maxItems": 3},
            "ok": {"type": "boolean"},
            "score": {"type": ["number", "null"], "exclusiveMinimum": 0, "maximum": 1},
            "note": {"type": "string", "minLength": 1}
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
        r#"{"name":"xy","age":120,"ok":false,"score":null}"#,
        r#" {"name":"xy","age":5,"tags":[]}"#,
    ] {
        assert!(accepts(&g, ok), "{ok}");
    }
    for bad in [
        r#"{"age":31,"name":"Ann"}"#,          // order
        r#"{"name":"Ann"}"#,                   // required
        r#"{"name":"a","age":3}"#,             // minLength
        r#"{"name":"abcdefghijklm","age":3}"#, // maxLength
        r#"{"name":"ab","age":121}"#,
        r#"{"name":"ab","age":-1}"#,
        r#"{"name":"ab","age":1.5}"#,
        r#"{"name":"ab","age":1,"tags":["c"]}"#,
        r#"{"name":"ab","age":1,"tags":[7,7,7,7]}"#,
        r#"{"name":"ab","age":1,"score":0}"#,
        r#"{"name":"ab","age":1,"extra":1}"#,
        r#"{"name":"a\ud800","age":1}"#,
        "{\"name\":\"a\u{1}\",\"age\":1}",
        r#"{"name":"ab","age":1} "#,
        r#"{"name":"ab","age":01}"#,
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
        (
            json!({"type": "object", "properties": {"a": {"$ref": "#"}}, "required": ["a"]}),
            "finite",
        ),
        (
            json!({"$defs": {"a": {"$ref": "#/$defs/b"}, "b": {"anyOf": [{"$ref": "#/$defs/a"}, {"type": "null"}]}}, "$ref": "#/$defs/a"}),
            "cycle",
        ),
        (
            json!({"oneOf": [{"type": "integer"}, {"type": "number"}]}),
            "share",
        ),
        (
            json!({"type": "integer", "minimum": 0.2, "maximum": 0.8}),
            "bounds",
        ),
        (json!({"enum": []}), "enum"),
        (
            json!({"type": "object", "properties": {"a": {}}, "additionalProperties": true}),
            "additional",
        ),
        (json!(false), "false"),
        (json!({"$ref": "http://example.com/s"}), "local"),
    ] {
        let e = Grammar::from_schema(&s)
            .err()
            .unwrap_or_else(|| panic!("{why}: accepted {s}"));
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
        seed = seed
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        (seed >> 33) as usize % n
    };
    for walk in 0..300 {
        let mut state = vec![start(&g)];
        let mut text = Vec::new();
        let closed = |st: &[Vec<super::matcher::Frame>]| {
            st.iter()
                .all(|s| matches!(s.last(), Some(super::matcher::Frame::Doc { done: true })))
        };
        while !(state.iter().any(|s| can_end(&g, s)) && (rand(4) == 0 || closed(&state))) {
            let mut options: Vec<(u8, Vec<_>)> = (0..=255u8)
                .map(|b| (b, feed_all(&g, &state, &[b])))
                .filter(|(_, s)| !s.is_empty())
                .collect();
            assert!(
                !options.is_empty(),
                "walk {walk} stuck after {:?}",
                String::from_utf8_lossy(&text)
            );
            let (b, next) = options.swap_remove(rand(options.len()));
            text.push(b);
            state = next;
        }
        let v: Value = serde_json::from_slice(&text)
            .unwrap_or_else(|e| panic!("walk {walk}: {e}: {:?}", String::from_utf8_lossy(&text)));
        let name = v["name"].as_str().unwrap();
        assert!((2..=12).contains(&name.chars().count()));
        assert!((0..=120).contains(&v["age"].as_i64().unwrap()));
        if let Some(s) = v.get("score").and_then(Value::as_f64) {
            assert!(s > 0.0 && s <= 1.0, "{s}");
        }
        if let Some(t) = v.get("tags") {
            let t = t.as_array().unwrap();
            assert!(
                t.len() <= 3
                    && t.iter()
                        .all(|x| [json!("a"), json!("b\"c"), json!(7), Value::Null].contains(x))
            );
        }
    }
}

/// The trie walk (with its plain-text shortcut) allows exactly the tokens that feeding each
/// token's bytes allows, in every state along random documents.
#[test]
fn trie_walk_equals_feeding_each_token() {
    let mut toks: Vec<(Vec<u8>, u32)> = Vec::new();
    let pieces = [
        "{",
        "}",
        "\"",
        "\":",
        "\": \"",
        "\",",
        "\"}",
        ", \"",
        "name",
        "age",
        "tags",
        "ok",
        "score",
        "na",
        "me\"",
        "a",
        "b",
        "c",
        "\\",
        "\\\"",
        "\\u00",
        "e9",
        "d8",
        "0",
        "1",
        "12",
        "120",
        ".",
        "5",
        "-",
        "e",
        "null",
        "true",
        "false",
        "[",
        "]",
        "],",
        " ",
        "\n  ",
        "\u{e9}",
        "x y",
        "\u{1f600}",
        "é\"",
        ", ",
        ":",
        "7",
        "0.",
        "Ann",
    ];
    for (i, p) in pieces.iter().enumerate() {
        toks.push((p.as_bytes().to_vec(), i as u32));
    }
    // Partial UTF-8 and stray bytes.
    let n = pieces.len() as u32;
    toks.extend([
        (vec![0xc3], n),
        (vec![0xa9], n + 1),
        (vec![0x01], n + 2),
        (vec![0xf0, 0x9f], n + 3),
    ]);
    let vocab = Rc::new(Vocab::from_tokens(toks.clone(), n as usize + 4));
    let mut seed = 3u64;
    let mut checked = 0;
    // The person, and an unbounded string that must not close at once.
    let note = json!({"type": "object", "properties": {"note": {"type": "string", "minLength": 2}}, "required": ["note"]});
    for (schema, walks) in [(person(), 40), (note, 10)] {
        let f = Rc::new(JsonFormat::new(
            Grammar::from_schema(&schema).unwrap(),
            vocab.clone(),
        ));
        for _ in 0..walks {
            let mut st = JsonState::new(f.clone());
            for _ in 0..40 {
                let mask = st.mask(&[], None);
                let allowed: Vec<u32> = toks
                    .iter()
                    .filter(|(b, _)| !feed_all(&f.grammar, &st.stacks, b).is_empty())
                    .map(|t| t.1)
                    .collect();
                let from_mask: Vec<u32> = (0..n + 4)
                    .filter(|&t| has(&mask, t as usize))
                    .collect();
                assert_eq!(from_mask, allowed);
                checked += 1;
                if allowed.is_empty() || st.closed() {
                    break;
                }
                seed = seed
                    .wrapping_mul(6364136223846793005)
                    .wrapping_add(1442695040888963407);
                let t = allowed[(seed >> 33) as usize % allowed.len()];
                st.advance(&toks.iter().find(|x| x.1 == t).unwrap().0)
                    .unwrap();
            }
        }
    }
    assert!(checked > 300, "{checked}");
}

/// Inside an unbounded string that may not close yet: plain text is allowed, a quote is not
/// (the plain-text shortcut must not take a subtree that holds one).
#[test]
fn an_open_string_refuses_its_quote() {
    let toks: Vec<(Vec<u8>, u32)> = (0x20..0x7fu8).map(|b| (vec![b], b as u32)).chain([(b"\"}".to_vec(), 200), (b"ab".to_vec(), 201)]).collect();
    let vocab = Rc::new(Vocab::from_tokens(toks, 256));
    let g = Grammar::from_schema(&json!({"type": "object", "properties": {"note": {"type": "string", "minLength": 2}}, "required": ["note"]})).unwrap();
    let mut st = JsonState::new(Rc::new(JsonFormat::new(g, vocab)));
    st.advance(br#"{"note":""#).unwrap();
    let on = |m: &[u32], t: u32| has(m, t as usize);
    let m = st.mask(&[], None);
    assert!(on(&m, b'a' as u32) && on(&m, 201) && !on(&m, b'"' as u32) && !on(&m, 200));
    st.advance(b"ab").unwrap();
    let m = st.mask(&[], None);
    assert!(on(&m, b'"' as u32) && on(&m, 200));
}

/// With a budget of tokens, random choices among the allowed tokens always close the
/// document in time (recursive schemas and free objects included), and the shortest
/// document's length is what `dist` says at the start.
#[test]
fn documents_close_within_their_budget() {
    let mut toks: Vec<(Vec<u8>, u32)> = (0x20..0x7fu8).map(|b| (vec![b], b as u32)).collect();
    for (i, p) in [
        "{\"",
        "\":",
        "\": {\"",
        "[{",
        "}]",
        "\"name\"",
        "children",
        "\": [",
        "hello world",
        ", \"",
        "true",
        "null",
        "12345",
        "\n    ",
    ]
    .iter()
    .enumerate()
    {
        toks.push((p.as_bytes().to_vec(), 200 + i as u32));
    }
    const EOS: u32 = 255;
    let vocab = Rc::new(Vocab::from_tokens(toks.clone(), 256));
    let tree = json!({"$defs": {"n": {"type": "object", "properties": {"name": {"type": "string", "minLength": 2}, "children": {"type": "array", "items": {"$ref": "#/$defs/n"}, "minItems": 1}, "leaf": {"type": "boolean"}}, "required": ["name"]}},
        "type": "object", "properties": {"root": {"$ref": "#/$defs/n"}, "size": {"type": "integer", "minimum": 1000}}, "required": ["root", "size"]});
    for (schema, shortest) in [
        (Some(tree), r#"{"root":{"name":"aa"},"size":1000}"#),
        (None, "{}"),
    ] {
        let g = match &schema {
            Some(s) => Grammar::from_schema(s).unwrap(),
            None => Grammar::any_object(),
        };
        assert_eq!(super::matcher::dist(&g, &start(&g)), shortest.len() as u32);
        assert!(accepts(&g, shortest));
        let f = Rc::new(JsonFormat::new(g, vocab.clone()));
        let mut seed = 11u64;
        for budget in (shortest.len()..shortest.len() + 60).step_by(3) {
            for _ in 0..5 {
                let mut st = JsonState::new(f.clone());
                let mut text = Vec::new();
                let mut used = 0;
                loop {
                    assert!(
                        used < budget,
                        "budget {budget} spent: {}",
                        String::from_utf8_lossy(&text)
                    );
                    let mask = st.mask(&[EOS], Some(budget - used));
                    let allowed: Vec<u32> = (0..256)
                        .filter(|&t| has(&mask, t as usize))
                        .collect();
                    seed = seed
                        .wrapping_mul(6364136223846793005)
                        .wrapping_add(1442695040888963407);
                    let t = allowed[(seed >> 33) as usize % allowed.len()];
                    used += 1;
                    if t == EOS {
                        break;
                    }
                    let bytes = &toks.iter().find(|x| x.1 == t).unwrap().0;
                    st.advance(bytes).unwrap_or_else(|e| {
                        panic!(
                            "{e}: after {:?} (budget {budget}, used {used}) stacks {:?}",
                            String::from_utf8_lossy(&text),
                            st.stacks
                        )
                    });
                    text.extend_from_slice(bytes);
                    if st.closed() {
                        break;
                    }
                }
                let v: Value = serde_json::from_slice(&text)
                    .unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(&text)));
                assert!(v.is_object());
            }
        }
    }
}
