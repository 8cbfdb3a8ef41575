//! The `/control` endpoint's JSON: the state it reports and the changes it accepts.
//!
//! Control is not a hot path, so this builds `serde_json::Value` trees freely. A change is
//! checked whole before anything is applied: a request with one bad field changes nothing.

use serde_json::{json, Map, Value};

use super::behaviour::{Behaviour, DelayMs, Settings};

/// The fields `POST /control` accepts; anything else is refused so a typo is not silently
/// ignored.
const FIELDS: [&str; 5] = ["healthy", "error_rate", "delay_ms", "fail_every", "seed"];

/// The state as `GET /control` reports it:
/// `{"name":..,"healthy":..,"error_rate":..,"delay_ms":[min,max],"fail_every":..,"seed":..,"requests":..}`.
pub fn state_json(name: &str, b: &Behaviour) -> Vec<u8> {
    let s = b.settings();
    let v = json!({
        "name": name,
        "healthy": s.healthy,
        "error_rate": s.error_rate,
        "delay_ms": [s.delay.min, s.delay.max],
        "fail_every": s.fail_every,
        "seed": s.seed,
        "requests": b.requests(),
    });
    // Serialising a Value into a Vec cannot fail.
    serde_json::to_vec(&v).unwrap_or_default()
}

/// `{"error":"<msg>"}`, with the message escaped as JSON requires.
pub fn error_json(msg: &str) -> Vec<u8> {
    serde_json::to_vec(&json!({ "error": msg })).unwrap_or_default()
}

/// Applies the change in `body` to `b`, or explains why it was refused.
pub fn apply(body: &[u8], b: &mut Behaviour) -> Result<(), String> {
    let v: Value = serde_json::from_slice(body).map_err(|e| format!("invalid JSON: {e}"))?;
    let Value::Object(fields) = v else {
        return Err("expected a JSON object".into());
    };
    let (settings, reseed) = merge(b.settings(), &fields)?;
    b.replace(settings).map_err(|e| {
        let field = match e {
            super::behaviour::SettingsError::ErrorRate => "error_rate",
            _ => "delay_ms",
        };
        format!("{field}: {e}")
    })?;
    if let Some(seed) = reseed {
        b.reseed(seed);
    }
    Ok(())
}

/// The settings with the given fields replaced, and the seed to restart from if one was given.
fn merge(old: &Settings, fields: &Map<String, Value>) -> Result<(Settings, Option<u64>), String> {
    if let Some(k) = fields.keys().find(|k| !FIELDS.contains(&k.as_str())) {
        return Err(format!(
            "unknown field {k:?}; expected any of {}",
            FIELDS.join(", ")
        ));
    }
    let mut s = *old;
    let mut reseed = None;
    for (k, v) in fields {
        let bad = |what: &str| format!("{k}: expected {what}");
        match k.as_str() {
            "healthy" => s.healthy = v.as_bool().ok_or_else(|| bad("true or false"))?,
            "error_rate" => s.error_rate = v.as_f64().ok_or_else(|| bad("a number"))?,
            "delay_ms" => s.delay = delay(v).ok_or_else(|| bad("ms or [min, max] in ms"))?,
            "fail_every" => s.fail_every = v.as_u64().ok_or_else(|| bad("a count, 0 for off"))?,
            _ => {
                let seed = v.as_u64().ok_or_else(|| bad("a non-negative integer"))?;
                s.seed = seed;
                reseed = Some(seed);
            }
        }
    }
    Ok((s, reseed))
}

fn delay(v: &Value) -> Option<DelayMs> {
    match v {
        Value::Number(n) => n.as_u64().map(|d| DelayMs { min: d, max: d }),
        Value::Array(a) => match a.as_slice() {
            [lo, hi] => Some(DelayMs {
                min: lo.as_u64()?,
                max: hi.as_u64()?,
            }),
            _ => None,
        },
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn state(b: &Behaviour) -> Value {
        serde_json::from_slice(&state_json("e1", b)).unwrap()
    }

    #[test]
    fn reports_every_setting() {
        let b = Behaviour::new(Settings::default());
        assert_eq!(
            state(&b),
            json!({"name":"e1","healthy":true,"error_rate":0.0,"delay_ms":[0,0],
                   "fail_every":0,"seed":1,"requests":0})
        );
    }

    #[test]
    fn applies_any_subset() {
        let mut b = Behaviour::new(Settings::default());
        apply(br#"{"healthy":false}"#, &mut b).unwrap();
        assert!(!b.is_healthy());
        apply(
            br#"{"error_rate":0.5,"delay_ms":[5,10],"fail_every":3,"seed":42}"#,
            &mut b,
        )
        .unwrap();
        let s = *b.settings();
        assert_eq!(
            (s.error_rate, s.fail_every, s.seed, s.healthy),
            (0.5, 3, 42, false)
        );
        assert_eq!(s.delay, DelayMs { min: 5, max: 10 });
        apply(br#"{"delay_ms":7}"#, &mut b).unwrap();
        assert_eq!(b.settings().delay, DelayMs { min: 7, max: 7 });
        apply(b"{}", &mut b).unwrap();
    }

    #[test]
    fn the_same_seed_replays() {
        let mut b = Behaviour::new(Settings::default());
        apply(br#"{"error_rate":0.5,"seed":3}"#, &mut b).unwrap();
        let first: Vec<bool> = (0..20).map(|_| b.decide().fail).collect();
        apply(br#"{"seed":3}"#, &mut b).unwrap();
        let again: Vec<bool> = (0..20).map(|_| b.decide().fail).collect();
        assert_eq!(first, again);
    }

    #[test]
    fn refuses_and_changes_nothing() {
        let cases: &[(&[u8], &str)] = &[
            (b"nope", "invalid JSON"),
            (b"[1]", "object"),
            (br#"{"healthy":"no"}"#, "healthy"),
            (br#"{"error_rate":2}"#, "error_rate"),
            (br#"{"healthy":false,"error_rate":-1}"#, "error_rate"),
            (br#"{"delay_ms":[9,3]}"#, "delay_ms"),
            (br#"{"delay_ms":[1,2,3]}"#, "delay_ms"),
            (br#"{"delay_ms":-5}"#, "delay_ms"),
            (br#"{"fail_every":1.5}"#, "fail_every"),
            (br#"{"seed":-1}"#, "seed"),
            (br#"{"helthy":true}"#, "unknown field"),
        ];
        for (body, needle) in cases {
            let mut b = Behaviour::new(Settings::default());
            let err = apply(body, &mut b).unwrap_err();
            assert!(
                err.contains(needle),
                "{:?}: {err}",
                String::from_utf8_lossy(body)
            );
            assert_eq!(*b.settings(), Settings::default());
        }
        let e: Value = serde_json::from_slice(&error_json("say \"hi\"")).unwrap();
        assert_eq!(e, json!({"error": "say \"hi\""}));
    }
}
