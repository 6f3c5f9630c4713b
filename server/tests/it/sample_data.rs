//! Test step, test trigger and sample data, as Activepieces' builder uses them: a step tested
//! alone with the sample data of the others, its output kept as its own; no run is made.

use crate::support::*;
use serde_json::{json, Value};

fn npm_cache() -> String {
    std::path::Path::new(BUILD.tmpdir).join("npm-cache").display().to_string()
}

/// The settings of `version`'s step `name` (the trigger included).
fn settings<'a>(version: &'a Value, name: &str) -> &'a Value {
    let mut cur = &version["trigger"];
    while !cur.is_null() {
        if cur["name"] == name {
            return &cur["settings"];
        }
        cur = &cur["nextAction"];
    }
    panic!("no step {name} in {version}")
}

#[tokio::test]
async fn a_tested_step_keeps_its_output_as_sample_data_which_the_next_tested_step_uses() {
    // data-mapper from the registry: the core pieces but it run natively
    let natives = "webhook,http,store,text-helper,math-helper,date-helper,delay,approval,schedule,rss";
    let t = Troupe::start_with(&[("NPM_CONFIG_CACHE", &npm_cache()), ("AP_NATIVE_PIECES", natives)]).await;
    let mapper = json!({"name": "step_2", "type": "PIECE", "valid": true, "displayName": "Map",
        "settings": {"pieceName": "@activepieces/piece-data-mapper", "pieceVersion": "0.3.15", "actionName": "advanced_mapping",
            "input": {"mapping": {"doubled": "{{step_1.n}}", "who": "{{trigger.body.name}}"}}}});
    let flow = webhook_flow(chain(vec![
        code(
            "step_1",
            "export const code = async (inputs) => { console.log('doubling', inputs.x); return { n: inputs.x * 2 }; }",
            json!({"x": "{{trigger.body.x}}"}),
        ),
        mapper,
        code("step_3", "export const code = async () => { throw new Error('no luck'); }", json!({})),
    ]));
    let id = t.import(flow).await;
    let (_, populated) = t.get(&format!("/flows/{id}")).await;
    let draft = populated["version"]["id"].as_str().unwrap().to_string();

    // a sample request to the test URL becomes the trigger's sample data, not a run
    let r = t.webhook(&id, "/test", json!({"x": 21, "name": "Ada"})).await;
    assert_eq!(r.status().as_u16(), 200);
    let (status, sample) = t.get(&format!("/sample-data?flowId={id}&stepName=trigger&type=OUTPUT")).await;
    assert_eq!((status, &sample["body"]), (200, &json!({"x": 21, "name": "Ada"})), "{sample}");
    let (_, events) = t.get(&format!("/trigger-events?flowId={id}")).await;
    assert_eq!(events["data"][0]["payload"]["body"]["x"], 21, "{events}");

    // the code step runs alone on that sample: its input, output and logs come back
    let (status, step_1) = t.post("/step-run", json!({"flowVersionId": draft, "stepName": "step_1"})).await;
    assert_eq!(status, 200, "{step_1}");
    assert_eq!(
        (&step_1["success"], &step_1["input"], &step_1["output"]),
        (&json!(true), &json!({"x": 21}), &json!({"n": 42}))
    );
    assert!(step_1["standardOutput"].as_str().unwrap().contains("doubling 21"), "{step_1}");
    // the npm step after it reads step_1's sample data
    let (status, step_2) =
        t.post("/sample-data/test-step", json!({"flowVersionId": draft, "stepName": "step_2"})).await;
    assert_eq!(status, 200, "{step_2}");
    assert_eq!(step_2["output"], json!({"doubled": 42, "who": "Ada"}), "{step_2}");
    // which the draft now points to
    let (_, populated) = t.get(&format!("/flows/{id}")).await;
    let file =
        settings(&populated["version"], "step_2")["sampleData"]["sampleDataFileId"].as_str().unwrap().to_string();
    assert_eq!(step_2["sampleDataFileId"], file.as_str());
    let (_, kept) = t.get(&format!("/sample-data?flowId={id}&stepName=step_2")).await;
    assert_eq!(kept, json!({"doubled": 42, "who": "Ada"}));
    let (_, input) = t.get(&format!("/sample-data?flowId={id}&stepName=step_2&type=INPUT")).await;
    assert_eq!(input["mapping"]["doubled"], 42, "{input}");

    // a failing step says why and keeps no output
    let (status, step_3) = t.post("/step-run", json!({"flowVersionId": draft, "stepName": "step_3"})).await;
    assert_eq!((status, &step_3["success"]), (200, &json!(false)), "{step_3}");
    assert!(step_3["output"].as_str().unwrap().contains("no luck"), "{step_3}");
    let (_, populated) = t.get(&format!("/flows/{id}")).await;
    assert!(settings(&populated["version"], "step_3")["sampleData"].get("sampleDataFileId").is_none());

    // sample data a client saves (SAVE_SAMPLE_DATA) feeds the next test
    let (status, body) = t
        .post(&format!("/flows/{id}"), json!({"type": "SAVE_SAMPLE_DATA", "request": {"stepName": "step_1", "payload": {"n": 5}, "type": "OUTPUT"}}))
        .await;
    assert_eq!(status, 200, "{body}");
    let (_, step_2) = t.post("/step-run", json!({"flowVersionId": draft, "stepName": "step_2"})).await;
    assert_eq!(step_2["output"]["doubled"], 5, "{step_2}");
    // UPDATE_SAMPLE_DATA_INFO points a step elsewhere (here: nowhere)
    let (status, body) = t
        .post(
            &format!("/flows/{id}"),
            json!({"type": "UPDATE_SAMPLE_DATA_INFO", "request": {"stepName": "step_1", "sampleDataSettings": {}}}),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    let (_, gone) = t.get(&format!("/sample-data?flowId={id}&stepName=step_1")).await;
    assert_eq!(gone, json!({}));

    // the seed's Save Sample Data
    let (status, saved) = t
        .post(
            "/sample-data",
            json!({"flowId": id, "flowVersionId": draft, "stepName": "step_1", "payload": {"n": 7}, "type": "OUTPUT"}),
        )
        .await;
    assert_eq!((status, &saved["type"]), (200, &json!("SAMPLE_DATA")), "{saved}");
    let (_, step_2) = t.post("/step-run", json!({"flowVersionId": draft, "stepName": "step_2"})).await;
    assert_eq!(step_2["output"]["doubled"], 7, "{step_2}");

    // bad requests say what is wrong
    let (status, body) = t.post("/step-run", json!({"flowVersionId": draft, "stepName": "nope"})).await;
    assert_eq!(status, 400, "{body}");
    assert!(body["message"].as_str().unwrap().contains("\"nope\""), "{body}");
    let (status, body) = t.post("/step-run", json!({"flowVersionId": draft, "stepName": "trigger"})).await;
    assert!(status == 400 && body["message"].as_str().unwrap().contains("test-trigger"), "{body}");
    let (status, _) = t.post("/test-trigger", json!({"flowId": id, "testStrategy": "TEST_FUNCTION"})).await;
    assert_eq!(status, 400, "the catch-webhook trigger is tested by a sample request");
    let (status, sim) =
        t.post("/test-trigger", json!({"flowId": id, "flowVersionId": draft, "testStrategy": "SIMULATION"})).await;
    assert_eq!(status, 200, "{sim}");
    assert!(sim["webhookUrl"].as_str().unwrap().ends_with(&format!("/api/v1/webhooks/{id}/test")), "{sim}");

    // nothing of this made a run
    assert!(t.all_runs(&id).await.is_empty());
}
