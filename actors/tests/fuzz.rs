//! Property tests (proptest) of the template resolver: any text resolves to a value (never a
//! panic); text without `{{` is itself; a template of a path that exists gives that value.
//! Bounded here (`PROPTEST_CASES`, default 256 per property); `just fuzz` runs them longer.

use proptest::prelude::*;
use serde_json::{json, Map, Value};
use troupe_actors::template::{self, Evaluations};

fn outputs() -> Map<String, Value> {
    json!({"trigger": {"body": {"a": [1, {"b": "c"}], "n": 5}}, "step_1": {"x": null}}).as_object().unwrap().clone()
}

fn cases() -> u32 {
    std::env::var("PROPTEST_CASES").ok().and_then(|c| c.parse().ok()).unwrap_or(256)
}

proptest! {
    #![proptest_config(ProptestConfig { cases: cases(), failure_persistence: None, ..ProptestConfig::default() })]

    #[test]
    fn any_text_resolves(s in r"(\{\{|\}\}|\[|\]|'|\.|trigger|step_1|body|a|0|9| |[^{}]){0,40}") {
        let evals = Evaluations::new();
        let mut warnings = Vec::new();
        let _ = template::resolve_str(&s, &outputs(), &evals, &mut warnings);
        let _ = template::parse_path(s.trim());
        let (_, _) = template::resolve(&json!({"k": [s.clone()]}), &outputs(), &evals, true);
    }

    #[test]
    fn text_without_templates_is_itself(s in "[^{]{0,40}") {
        let out = template::resolve_str(&s, &outputs(), &Evaluations::new(), &mut Vec::new());
        prop_assert_eq!(out, Value::String(s));
    }

    #[test]
    fn a_path_that_exists_gives_its_value(i in 0usize..2, spaces in " {0,3}") {
        let s = format!("{{{{{spaces}trigger.body.a[{i}]{spaces}}}}}");
        let out = template::resolve_str(&s, &outputs(), &Evaluations::new(), &mut Vec::new());
        prop_assert_eq!(out, outputs()["trigger"]["body"]["a"][i].clone());
    }
}
