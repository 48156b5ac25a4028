//! The vector format (bytes as hex, patterns and segments, field access) and the failure
//! reports that name the vector and the first difference.

use crate::OFFICIAL_PACKAGE;

use serde_json::Value;

/// `byte[i] = (31 * i + seed) mod 256`, the formula `generate.mjs` uses.
pub(crate) fn pattern(len: usize, seed: u64) -> Vec<u8> {
    (0..len as u64)
        .map(|i| u8::try_from((31 * i + seed) % 256).expect("a value mod 256 fits in a u8"))
        .collect()
}

/// A byte value: a hex string, or a list of `{"hex"}` / `{"pattern": {"len", "seed"}}` segments.
pub(crate) fn expand(v: &Value) -> Vec<u8> {
    match v {
        Value::String(h) => hex::decode(h).unwrap_or_else(|e| panic!("bad hex {h:.40}: {e}")),
        Value::Array(segs) => {
            let mut out = Vec::new();
            for seg in segs {
                if let Some(h) = seg.get("hex") {
                    out.extend(expand(h));
                } else {
                    let p = &seg["pattern"];
                    let len = usize::try_from(p["len"].as_u64().expect("pattern len"))
                        .expect("pattern len fits in usize");
                    out.extend(pattern(len, p["seed"].as_u64().expect("pattern seed")));
                }
            }
            out
        }
        other => panic!("not a byte value: {other}"),
    }
}

/// Whether `v` is a list of byte segments (as opposed to, say, a header list).
pub(crate) fn is_segments(v: &Value) -> bool {
    v.as_array().is_some_and(|a| {
        !a.is_empty()
            && a.iter()
                .all(|s| s.get("hex").is_some() || s.get("pattern").is_some())
    })
}

/// The fields with every byte value as plain hex, the shape [`Msg::to_json`] produces.
pub(crate) fn canon(v: &Value) -> Value {
    if is_segments(v) {
        return Value::String(hex::encode(expand(v)));
    }
    match v {
        Value::Array(a) => Value::Array(a.iter().map(canon).collect()),
        Value::Object(o) => Value::Object(o.iter().map(|(k, x)| (k.clone(), canon(x))).collect()),
        other => other.clone(),
    }
}

pub(crate) fn field<'a>(v: &'a Value, key: &str) -> &'a Value {
    v.get(key)
        .unwrap_or_else(|| panic!("missing field {key:?} in {:.200}", v.to_string()))
}

pub(crate) fn string(v: &Value, key: &str) -> String {
    field(v, key)
        .as_str()
        .unwrap_or_else(|| panic!("{key:?} is not a string"))
        .to_owned()
}

pub(crate) fn boolean(v: &Value, key: &str) -> bool {
    field(v, key)
        .as_bool()
        .unwrap_or_else(|| panic!("{key:?} is not a bool"))
}

pub(crate) fn uint16(v: &Value) -> u16 {
    v.as_u64()
        .and_then(|n| u16::try_from(n).ok())
        .unwrap_or_else(|| panic!("{v} is not a u16"))
}

pub(crate) fn opt<T>(v: &Value, key: &str, f: impl FnOnce(&Value) -> T) -> Option<T> {
    match field(v, key) {
        Value::Null => None,
        x => Some(f(x)),
    }
}

pub(crate) fn id4(v: &Value) -> [u8; 4] {
    expand(v)
        .try_into()
        .unwrap_or_else(|b: Vec<u8>| panic!("an id is 4 bytes, got {}", b.len()))
}

pub(crate) fn i64_of(v: &Value, key: &str) -> i64 {
    string(v, key)
        .parse()
        .unwrap_or_else(|e| panic!("{key:?} is not an i64: {e}"))
}

pub(crate) fn variant(v: &Value) -> (&str, &Value) {
    (
        field(v, "variant").as_str().expect("variant is a string"),
        field(v, "value"),
    )
}

pub(crate) fn short(v: &Value) -> String {
    let s = v.to_string();
    if s.len() > 120 {
        let cut = (0..=120)
            .rev()
            .find(|&i| s.is_char_boundary(i))
            .unwrap_or(0);
        format!("{}… ({} chars)", &s[..cut], s.len())
    } else {
        s
    }
}

/// Path and values of the first difference between two JSON values, if any.
pub(crate) fn first_difference(path: &str, got: &Value, want: &Value) -> Option<String> {
    match (got, want) {
        (Value::Object(a), Value::Object(b)) => {
            for (k, w) in b {
                let p = format!("{path}.{k}");
                match a.get(k) {
                    Some(g) => {
                        if let Some(d) = first_difference(&p, g, w) {
                            return Some(d);
                        }
                    }
                    None => return Some(format!("{p}: missing in hws, expected {}", short(w))),
                }
            }
            a.keys()
                .find(|k| !b.contains_key(*k))
                .map(|k| format!("{path}.{k}: unexpected in hws"))
        }
        (Value::Array(a), Value::Array(b)) if a.len() == b.len() => a
            .iter()
            .zip(b)
            .enumerate()
            .find_map(|(i, (g, w))| first_difference(&format!("{path}[{i}]"), g, w)),
        (Value::String(a), Value::String(b)) if a != b => {
            let at = a
                .bytes()
                .zip(b.bytes())
                .position(|(x, y)| x != y)
                .unwrap_or_else(|| a.len().min(b.len()));
            Some(format!(
                "{path}: strings differ at char offset {at} (hibernating_ws {} vs official {})",
                short(got),
                short(want)
            ))
        }
        _ if got == want => None,
        _ => Some(format!(
            "{path}: hibernating_ws {} vs official {}",
            short(got),
            short(want)
        )),
    }
}

pub(crate) fn assert_json(name: &str, what: &str, got: &Value, want: &Value) {
    if let Some(d) = first_difference("$", got, want) {
        panic!("vector {name}: {what}: {d}");
    }
}

pub(crate) fn assert_bytes(name: &str, what: &str, got: &[u8], want: &[u8]) {
    if got == want {
        return;
    }
    let at = got
        .iter()
        .zip(want)
        .position(|(a, b)| a != b)
        .unwrap_or_else(|| got.len().min(want.len()));
    let window =
        |b: &[u8]| hex::encode(&b[at.saturating_sub(4).min(b.len())..(at + 12).min(b.len())]);
    panic!(
        "vector {name}: {what}: {} bytes vs {} official bytes, first difference at byte {at}: \
         hws …{}… official …{}…",
        got.len(),
        want.len(),
        window(got),
        window(want)
    );
}

pub(crate) fn entries<'a>(doc: &'a Value, key: &str) -> &'a Vec<Value> {
    assert_eq!(
        doc["package"], OFFICIAL_PACKAGE,
        "vectors come from the pinned package"
    );
    doc[key].as_array().expect("a list of entries")
}

pub(crate) fn parse(text: &str) -> Value {
    serde_json::from_str(text).expect("vector files are valid JSON")
}
