//! The runner session against the official codec: `tests/vectors/control_session.json` (made by
//! `control_session.mjs` with the pinned `@rivetkit/engine-runner-protocol`) scripts an engine's
//! side of a conversation; the session must answer every step with exactly the frames the
//! official encoder produced, byte for byte, in order.

use hibernating_ws::Timestamp;
use hibernating_ws::session::{Action, Session, SessionConfig};
use serde_json::Value;

fn frames(step: &Value, key: &str) -> Vec<Vec<u8>> {
    step[key]
        .as_array()
        .map(|a| {
            a.iter()
                .map(|h| hex::decode(h.as_str().expect("hex string")).expect("valid hex"))
                .collect()
        })
        .unwrap_or_default()
}

#[test]
fn session_answers_like_the_official_codec() {
    let text = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/vectors/control_session.json"
    ))
    .expect("control_session.json");
    let script: Value = serde_json::from_str(&text).expect("json");
    let actor = script["actor"].as_str().expect("actor");
    let now = Timestamp::from_secs(10);
    let mut session = Session::new(SessionConfig::new("default", 4), now).expect("config");
    let steps = script["steps"].as_array().expect("steps");
    assert!(steps.len() >= 10);
    for (i, step) in steps.iter().enumerate() {
        if let Some(hex) = step["to_client"].as_str() {
            let bytes = hex::decode(hex).expect("hex");
            session
                .handle_frame(now, &bytes)
                .unwrap_or_else(|e| panic!("step {i}: {e}"));
        } else {
            match step["call"].as_str().expect("call or to_client") {
                "connected" => session.connected(now),
                "disconnected" => session.disconnected(now),
                "restore" => {
                    session.restore(now, actor, vec![]).expect("restore");
                }
                "sleep" => session.sleep_actor(now, actor).expect("sleep"),
                other => panic!("unknown call {other}"),
            }
        }
        let mut sent = Vec::new();
        while let Some(action) = session.poll_action() {
            if let Action::Send { frame } = action {
                sent.push(frame);
            }
        }
        let expected = frames(step, "expect_to_server");
        assert_eq!(
            sent.iter().map(hex::encode).collect::<Vec<_>>(),
            expected.iter().map(hex::encode).collect::<Vec<_>>(),
            "step {i}: {step}"
        );
    }
    assert_eq!(session.unacked_events(), 0);
}
