//! The native text-, date- and math-helper pieces against their packages' source. The
//! packages are not on the npm registry; `tests/fixtures/oracle/*.mjs` re-state each action's
//! source over the libraries the package calls (showdown, slugify, string-strip-html, dayjs),
//! run by Node. Every case is generated (fixed seeds: the same cases every run) and goes
//! through a published flow, templates and all.

use crate::support::*;
use serde_json::{json, Value};

/// The libraries the packages call, at the versions Activepieces pins, installed once per
/// machine beside the oracle's scripts.
fn oracle() -> std::path::PathBuf {
    static DIR: std::sync::OnceLock<std::path::PathBuf> = std::sync::OnceLock::new();
    DIR.get_or_init(install_oracle).clone()
}

fn install_oracle() -> std::path::PathBuf {
    let dir = npm_installed(
        "ap-oracle-v2",
        &[
            "showdown@2.1.0",
            "slugify@1.6.6",
            "string-strip-html@8.5.0",
            "dayjs@1.11.9",
            "zod@4.3.6",
            "@joplin/turndown@4.0.85",
            "@joplin/turndown-plugin-gfm@1.0.67",
            "jsdom@24.1.3",
            "csv-parse@5.6.0",
            "csv-stringify@6.5.2",
            "safe-flat@2.1.0",
        ],
    );
    let scripts = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/fixtures/oracle");
    for entry in std::fs::read_dir(scripts).unwrap() {
        copy_atomically(&entry.unwrap().path(), &dir);
    }
    dir
}

/// What the packages' source gives for `cases` (`{piece, action, props}`): `Ok(output)` or
/// `Err(message)` for each.
fn ask_oracle(cases: &[Value]) -> Vec<Result<Value, String>> {
    let dir = oracle();
    let file = dir.join(format!("cases-{}.json", std::process::id()));
    std::fs::write(&file, Value::from(cases.to_vec()).to_string()).unwrap();
    let out = std::process::Command::new("node")
        .arg(dir.join("run.mjs"))
        .arg(&file)
        .env("TZ", "UTC")
        .output()
        .expect("node runs");
    assert!(out.status.success(), "the oracle failed: {}", String::from_utf8_lossy(&out.stderr));
    let answers: Vec<Value> = serde_json::from_slice(&out.stdout).unwrap();
    answers
        .into_iter()
        .map(|a| match a.get("ok") {
            Some(v) => Ok(v.clone()),
            None => Err(a["error"].as_str().unwrap_or_default().to_string()),
        })
        .collect()
}

/// Runs every case of one action through a flow (a loop over the cases, the step's props
/// templates of the case's), natively: `Ok(output)` or `Err(status)` for each.
async fn run_natively(t: &Troupe, piece: &str, action: &str, cases: &[Value]) -> Vec<Result<Value, String>> {
    let props = cases[0]["props"].as_object().unwrap();
    let input: serde_json::Map<String, Value> =
        props.keys().map(|k| (k.clone(), json!(format!("{{{{each.item.props.{k}}}}}")))).collect();
    let step = json!({"name": "act", "type": "PIECE", "valid": true, "displayName": action,
        "settings": {"pieceName": format!("@activepieces/piece-{piece}"), "pieceVersion": "~0.4.0", "actionName": action,
            "input": input,
            "errorHandlingOptions": {"continueOnFailure": {"value": true}, "retryOnFailure": {"value": false}}}});
    let each = json!({"name": "each", "type": "LOOP_ON_ITEMS", "valid": true, "displayName": "Each",
        "settings": {"items": "{{trigger.body.cases}}"}, "firstLoopAction": step});
    let id = t.publish(webhook_flow(each)).await;
    t.webhook(&id, "", json!({ "cases": cases })).await;
    let run = t.wait_runs(&id, 1).await.remove(0);
    let run = t.run(run["id"].as_str().unwrap()).await;
    assert_eq!(run["status"], "SUCCEEDED", "{action}: {}", run["failedStep"]);
    let iterations = run["steps"]["each"]["output"]["iterations"].as_array().cloned().unwrap_or_default();
    assert_eq!(iterations.len(), cases.len(), "{action}");
    iterations
        .iter()
        .map(|i| match i["act"]["status"].as_str() {
            Some("SUCCEEDED") => Ok(i["act"]["output"].clone()),
            other => Err(format!("{other:?}: {}", i["act"]["errorMessage"])),
        })
        .collect()
}

/// Asserts the native outputs are the oracle's: equal outputs, or both failing.
async fn assert_as_the_source(t: &Troupe, piece: &str, action: &str, props: Vec<Value>) {
    let cases: Vec<Value> = props.into_iter().map(|p| json!({"piece": piece, "action": action, "props": p})).collect();
    let native = run_natively(t, piece, action, &cases).await;
    let source = ask_oracle(&cases);
    let differ: Vec<String> = native
        .iter()
        .zip(&source)
        .zip(&cases)
        .filter(|((n, s), _)| match (n, s) {
            (Ok(a), Ok(b)) => a != b,
            (Err(_), Err(_)) => false,
            _ => true,
        })
        .map(|((n, s), c)| format!("{}\n  native {n:?}\n  source {s:?}", c["props"]))
        .collect();
    assert!(
        differ.is_empty(),
        "{piece} {action}: {} of {} cases differ:\n{}",
        differ.len(),
        cases.len(),
        differ.join("\n")
    );
    assert!(source.iter().any(Result::is_ok), "{action}: no case succeeded");
    eprintln!("{piece} {action}: {} cases agree", cases.len());
}

/// ASCII, Latin-1 and Latin Extended-A letters, Greek, Cyrillic, and what slugify drops.
const LATIN: &str = "abcXYZ019 _-.!$&%<>|@:~*+()'\",;=/#?ÀÉÎÕÜßàéîõüçñÞ×ĘĈŁőαΩΘηжЩЮйЬ漢😀\t";

#[tokio::test]
async fn text_helper_actions_agree_with_the_packages_source_on_generated_inputs() {
    let t = Troupe::start().await;
    let mut g = Gen(20261202);
    let slugs = (0..80).map(|_| json!({"text": g.text(LATIN, 16)})).filter(|p| p["text"] != "").collect();
    assert_as_the_source(&t, "text-helper", "slugify", slugs).await;

    // a bare `<` before a space and a tag name (`a < b`) is left out: string-strip-html takes it
    // for a tag or not by heuristics (docs/compatibility.md)
    let words = ["Hello", "Tom &amp; Jerry", "x", "  ", "\n", "café", "1<2", "&lt;tag&gt;", "end."];
    let tags = [
        ("<b>", "</b>"),
        ("<p>", "</p>"),
        ("<div>", "</div>"),
        ("<i>", "</i>"),
        ("<li>", "</li>"),
        ("<span class=\"c\">", "</span>"),
    ];
    let html: Vec<Value> = (0..60)
        .map(|_| {
            let mut s = String::new();
            for _ in 0..1 + g.below(5) {
                match g.below(6) {
                    0 | 1 => s.push_str(g.choose(&words)),
                    2 => {
                        let (open, close) = *g.pick(&tags);
                        s.push_str(&format!("{open}{}{close}", g.choose(&words)));
                    }
                    3 => s.push_str(g.choose(&["<br>", "<br/>", " ", "<hr>"])),
                    4 => s.push_str(g.choose(&[
                        "<!-- note -->",
                        "<script>var a = 1 < 2;</script>",
                        "<style>p{}</style>",
                    ])),
                    _ => s.push_str(&format!(" {} ", g.choose(&words))),
                }
            }
            json!({ "html": s })
        })
        .collect();
    assert_as_the_source(&t, "text-helper", "stripHtml", html).await;

    let values = [
        json!("x"),
        json!(""),
        json!(12),
        json!(-3.5),
        json!(true),
        json!(null),
        json!(["a", 1, null]),
        json!({"k": 1}),
        json!("日本"),
    ];
    let keys = ["name", "a", "2", "10", "long key"];
    let tables: Vec<Value> = (0..40)
        .map(|_| {
            let rows: Vec<Value> = (0..g.below(4))
                .map(|_| {
                    let mut row = serde_json::Map::new();
                    for _ in 0..1 + g.below(3) {
                        row.insert(g.pick(&keys).to_string(), g.pick(&values).clone());
                    }
                    Value::Object(row)
                })
                .collect();
            json!({ "data": rows })
        })
        .collect();
    assert_as_the_source(&t, "text-helper", "json_to_ascii_table", tables).await;

    let texts: Vec<Value> = (0..30)
        .map(|_| {
            let items: Vec<Value> = (0..g.below(4)).map(|_| g.pick(&values).clone()).collect();
            json!({"texts": items, "separator": g.choose(&["", ", ", "-", " | "])})
        })
        .collect();
    assert_as_the_source(&t, "text-helper", "concat", texts).await;

    let splits: Vec<Value> = (0..30)
        .map(|_| json!({"text": g.text("a,b;c ,;ü", 12), "delimiter": g.choose(&[",", ";", " ", ",;", "ü"])}))
        .collect();
    assert_as_the_source(&t, "text-helper", "split", splits).await;

    let patterns = ["a", "(b)(c)?", "\\d+", "(?<=a)b", "[aeiou]", "x|y", "^a", "b$", "(?<w>\\w)\\k<w>"];
    let replaces: Vec<Value> = (0..40)
        .map(|_| {
            json!({"text": g.text("abcxy12 aab", 14), "searchValue": g.choose(&patterns),
                "replaceValue": g.choose(&["", "-", "[$1]", "$&$&", "<$<w>>"]), "replaceOnlyFirst": g.below(2) == 0})
        })
        .collect();
    assert_as_the_source(&t, "text-helper", "replace", replaces).await;
    let patterns_and_bad = [&patterns[..], &["(", "a{2"]].concat();
    for action in ["find", "find_all"] {
        let finds: Vec<Value> = (0..30)
            .map(|_| {
                json!({"text": g.text("abcxy12 aAB", 14), "expression": g.choose(&patterns_and_bad),
                    "ignoreCase": g.below(2) == 0})
            })
            .collect();
        assert_as_the_source(&t, "text-helper", action, finds).await;
    }
    let defaults: Vec<Value> =
        (0..20).map(|_| json!({"value": g.pick(&values).clone(), "defaultString": g.choose(&["d", "none"])})).collect();
    assert_as_the_source(&t, "text-helper", "defaultValue", defaults).await;

    let pages = [
        "<html><head><title> Home page </title></head><body><h1>Hi <b>there</b></h1><p>One <a href=\"/a\">a</a></p>\
         <p class=\"x\">Two<img src=\"i.png\" alt=\"I\"></p><h3>End</h3></body></html>",
        "<p>alone</p><a href=\"https://x.y/?q=1&amp;r=2\" title=\"t\">link</a><h2>Sub</h2>",
        "<div><p>Tom &amp; Jerry</p><ul><li>1</li><li>2</li></ul></div>",
        "no markup at all",
    ];
    let extracts: Vec<Value> = (0..40)
        .map(|_| {
            let target = g.choose(&["title", "links", "images", "headings", "paragraphs", "custom"]);
            let kind = g.choose(&["textContent", "innerHtml", "outerHtml", "attribute"]);
            json!({"html": g.choose(&pages), "target": target, "selector": g.choose(&["p.x", "li", "ul > li:first-child", "div p", "["]),
                "extractionType": kind, "attributeName": g.choose(&["href", "src", "alt", "class"]), "returnMultiple": g.below(2) == 0})
        })
        .collect();
    assert_as_the_source(&t, "text-helper", "extract_from_html", extracts).await;

    let fragments = [
        "<h1>Title</h1>",
        "<p>Some <strong>bold</strong> and <em>em</em> text.</p>",
        "<p><a href=\"https://x.y/z\">a link</a></p>",
        "<ul><li>one</li><li>two</li></ul>",
        "<ol><li>first</li><li>second</li></ol>",
        "<p>line<br>break</p>",
        "<pre><code>let a = 1;</code></pre>",
        "<p>inline <code>x</code></p>",
        "<blockquote><p>quoted</p></blockquote>",
        "<hr>",
        "<h2>Sub</h2>",
        "<p><img src=\"i.png\" alt=\"I\"></p>",
    ];
    let htmls: Vec<Value> = (0..30)
        .map(|_| {
            let html: Vec<&str> = (0..1 + g.below(4)).map(|_| g.choose(&fragments)).collect();
            json!({"html": html.concat(), "gfm": true})
        })
        .collect();
    assert_as_the_source(&t, "text-helper", "html_to_markdown", htmls).await;

    let blocks = [
        "# Title words",
        "## Sub-title_x 2!",
        "Some *em* and **strong** and `code`.",
        "- one\n- two",
        "1. first\n2. second",
        "[a link](http://x.y/z) after",
        "line one\nline two",
        "plain paragraph",
        "### Title words",
        "> quoted\n> text",
        "```\nlet a = 1;\n\nb < c\n```",
        "```js\nf();\n```",
        "    indented code",
        "~~gone~~ and `x*y*`",
    ];
    let docs: Vec<Value> = (0..40)
        .map(|_| {
            let n = 1 + g.below(4);
            let flavor = g.choose(&["github", "vanilla", "original"]);
            // showdown's original flavor has no fenced code blocks (docs/compatibility.md)
            let markdown: Vec<&str> =
                (0..n).map(|_| g.choose(&blocks)).filter(|b| flavor != "original" || !b.starts_with("```")).collect();
            json!({"markdown": markdown.join("\n\n"), "flavor": flavor,
                "headerLevelStart": 1 + g.below(3), "tables": g.below(2) == 0, "noHeaderId": g.below(2) == 0,
                "simpleLineBreaks": g.below(2) == 0, "openLinksInNewWindow": g.below(2) == 0})
        })
        .collect();
    assert_as_the_source(&t, "text-helper", "markdown_to_html", docs).await;
}

/// Dates written in the package's formats: (dayjs pattern, chrono pattern).
const FORMATS: &[(&str, &str)] = &[
    ("YYYY-MM-DD HH:mm:ss", "%Y-%m-%d %H:%M:%S"),
    ("YYYY-MM-DDTHH:mm:ss", "%Y-%m-%dT%H:%M:%S"),
    ("DDD MMM DD YYYY HH:mm:ss", "%a %b %d %Y %H:%M:%S"),
    ("MMMM DD YYYY HH:mm:ss", "%B %d %Y %H:%M:%S"),
    ("YYYY-MM-DD", "%Y-%m-%d"),
    ("MM/DD/YYYY", "%m/%d/%Y"),
    ("DD-MM-YYYY", "%d-%m-%Y"),
    ("DD/MM/YY", "%d/%m/%y"),
    ("X", "%s"),
];

/// Every format of the package's dropdowns (`format00` … `format14`).
const OUTPUT_FORMATS: &[&str] = &[
    "DDD MMM DD YYYY HH:mm:ss",
    "DDD MMM DD HH:mm:ss YYYY",
    "MMMM DD YYYY HH:mm:ss",
    "MMMM DD YYYY",
    "MMM DD YYYY",
    "YYYY-MM-DDTHH:mm:ss",
    "YYYY-MM-DD HH:mm:ss",
    "YYYY-MM-DD",
    "MM-DD-YYYY",
    "MM/DD/YYYY",
    "MM/DD/YY",
    "DD-MM-YYYY",
    "DD/MM/YYYY",
    "DD/MM/YY",
    "X",
];

const ZONES: &[&str] =
    &["UTC", "Europe/Paris", "America/New_York", "Asia/Kolkata", "Australia/Sydney", "Pacific/Chatham"];

impl Gen {
    /// A date between 1990 and 2040, and a format it is written in.
    fn date(&mut self) -> (String, &'static str) {
        let seconds = 631_152_000 + (self.next() as i64 % 1_577_836_800);
        let date = chrono::DateTime::from_timestamp(seconds, 0).unwrap().naive_utc();
        let (dayjs, chrono) = FORMATS[self.below(FORMATS.len())];
        (date.format(chrono).to_string(), dayjs)
    }
    fn units(&mut self, all: &[&str]) -> Vec<String> {
        let mut units: Vec<String> = all.iter().filter(|_| self.below(3) == 0).map(|u| u.to_string()).collect();
        if units.is_empty() {
            units.push(all[self.below(all.len())].to_string());
        }
        units
    }
}

#[tokio::test]
async fn date_and_math_helper_actions_agree_with_the_packages_source_on_generated_inputs() {
    let t = Troupe::start().await;
    let mut g = Gen(720_261_202);
    let formats: Vec<Value> = (0..60)
        .map(|_| {
            let (date, format) = g.date();
            json!({"inputDate": date, "inputFormat": format, "inputTimeZone": g.choose(ZONES),
                "outputFormat": g.choose(OUTPUT_FORMATS), "outputTimeZone": g.choose(ZONES)})
        })
        .collect();
    assert_as_the_source(&t, "date-helper", "format_date", formats).await;

    const UNITS: &[&str] = &["year", "month", "day", "hour", "minute", "second"];
    let differences: Vec<Value> = (0..50)
        .map(|_| {
            let ((start, f1), (end, f2)) = (g.date(), g.date());
            json!({"startDate": start, "startDateFormat": f1, "endDate": end, "endDateFormat": f2, "unitDifference": g.units(UNITS)})
        })
        .collect();
    assert_as_the_source(&t, "date-helper", "date_difference", differences).await;

    let amounts =
        ["+ 1 year", "- 3 day", "+2 month", "- 13 months", "+ 36 hours", "- 90 minute", "+ 4000 seconds", "+ 2 weeks"];
    // without a time zone, and with one (and a time to set, or none)
    for zoned in [false, true] {
        let moves: Vec<Value> = (0..40)
            .map(|_| {
                let (date, format) = g.date();
                let expression: Vec<&str> = (0..1 + g.below(3)).map(|_| g.choose(&amounts)).collect();
                let mut props = json!({"inputDate": date, "inputDateFormat": format, "expression": expression.join(" "),
                    "outputFormat": g.choose(OUTPUT_FORMATS)});
                if zoned {
                    props["timeZone"] = json!(g.choose(ZONES));
                    props["setTime"] = json!(g.choose(&["", "09:30", "23:05", "9:30", "25:00"]));
                }
                props
            })
            .collect();
        assert_as_the_source(&t, "date-helper", "add_subtract_date", moves).await;
    }

    let parts: Vec<Value> = (0..40)
        .map(|_| {
            let (date, format) = g.date();
            json!({"inputDate": date, "inputFormat": format,
                "unitExtract": g.units(&["year", "month", "day", "hour", "minute", "second", "dayOfWeek", "monthName"])})
        })
        .collect();
    assert_as_the_source(&t, "date-helper", "extract_date_parts", parts).await;

    for action in ["first_day_of_previous_month", "last_day_of_previous_month"] {
        let props: Vec<Value> = (0..12)
            .map(|_| {
                json!({"time": g.choose(&["00:00", "08:15", "23:59", "7:00"]), "timeFormat": g.choose(OUTPUT_FORMATS),
                    "timeZone": g.choose(ZONES), "currentTime": false})
            })
            .collect();
        assert_as_the_source(&t, "date-helper", action, props).await;
    }

    let numbers = [json!(0), json!(7), json!(-3), json!(2.5), json!(-0.1), json!(1e15), json!(0.1), json!(100)];
    for action in ["addition_math", "subtraction_math", "multiplication_math", "division_math", "modulo_math"] {
        let props: Vec<Value> = (0..30)
            .map(|_| json!({"first_number": g.pick(&numbers).clone(), "second_number": g.pick(&numbers).clone()}))
            .collect();
        assert_as_the_source(&t, "math-helper", action, props).await;
    }
}

#[tokio::test]
async fn crypto_csv_and_json_actions_agree_with_the_packages_source_on_generated_inputs() {
    let t = Troupe::start().await;
    let mut g = Gen(4_711);
    const TEXT: &str = "abc XYZ 09 ü漢😀 ,;\"'\n\t";
    for (action, methods) in [
        ("hash-text", &["md5", "sha256", "sha512", "sha3-512"][..]),
        ("hmac-signature", &["md5", "sha256", "sha512"][..]),
    ] {
        let cases: Vec<Value> = (0..30)
            .map(|_| {
                let mut props = json!({"method": g.choose(methods), "text": g.text(TEXT, 20)});
                if action == "hmac-signature" {
                    let encoding = g.choose(&["utf-8", "hex", "base64"]);
                    let key = match encoding {
                        "hex" => g.text("0123456789abcdefXZ", 12),
                        "base64" => g.text("ABCxyz019+/-_= ", 12),
                        _ => g.text(TEXT, 12),
                    };
                    props = json!({"method": props["method"], "text": props["text"], "secretKey": key,
                        "secretKeyEncoding": encoding, "outputEncoding": g.choose(&["hex", "base64"])});
                }
                props
            })
            .collect();
        assert_as_the_source(&t, "crypto", action, cases).await;
    }
    let encodes: Vec<Value> = (0..30).map(|_| json!({"text": g.text(TEXT, 20)})).collect();
    assert_as_the_source(&t, "crypto", "base64-encode", encodes).await;
    let decodes: Vec<Value> = (0..30).map(|_| json!({"text": g.text("QUJDeHl6MDEy+/-_=\n !", 20)})).collect();
    assert_as_the_source(&t, "crypto", "base64-decode", decodes).await;

    let cell = |g: &mut Gen| -> String {
        match g.below(5) {
            0 => format!("\"{}\"", g.text("a, \"\"b\nc", 6)),
            1 => String::new(),
            _ => g.text("abc 123ü", 6),
        }
    };
    for headers in [true, false] {
        let cases: Vec<Value> = (0..30)
            .map(|_| {
                let delimiter = g.choose(&[",", "\t"]);
                let width = 1 + g.below(4);
                let rows = g.below(5);
                // one record in ten has another length, which csv-parse refuses
                let lines: Vec<String> = (0..rows)
                    .map(|_| {
                        let n = if g.below(10) == 0 { width + 1 } else { width };
                        (0..n).map(|_| cell(&mut g).replace(',', if delimiter == "," { "," } else { ";" })).collect::<Vec<_>>().join(delimiter)
                    })
                    .collect();
                let bom = if g.below(4) == 0 { "\u{feff}" } else { "" };
                json!({"csv_text": format!("{bom}{}{}", lines.join("\n"), g.choose(&["", "\n", "\r\n"])), "has_headers": headers, "delimiter_type": delimiter})
            })
            .collect();
        assert_as_the_source(&t, "csv", "convert_csv_to_json", cases).await;
    }
    let values = [
        json!("x"),
        json!("a,b"),
        json!("q\"q"),
        json!(""),
        json!(3),
        json!(2.5),
        json!(true),
        json!(false),
        json!(null),
        json!({"in": 1, "deep": {"er": "y"}}),
        json!([1, "two"]),
        json!({}),
        json!([]),
    ];
    let keys = ["a", "b", "name", "n"];
    let arrays: Vec<Value> = (0..40)
        .map(|_| {
            let rows: Vec<Value> = (0..g.below(4))
                .map(|_| {
                    let mut row = serde_json::Map::new();
                    for _ in 0..1 + g.below(3) {
                        row.insert(g.choose(&keys).to_string(), g.pick(&values).clone());
                    }
                    Value::Object(row)
                })
                .collect();
            json!({"json_array": rows, "delimiter_type": g.choose(&[",", "\t"])})
        })
        .collect();
    assert_as_the_source(&t, "csv", "convert_json_to_csv", arrays).await;

    // (a template that gives null gives an empty text, in Activepieces too: not a case here)
    let texts: Vec<Value> =
        (0..20).map(|_| json!({"json": g.pick(&values).clone()})).filter(|c| !c["json"].is_null()).collect();
    assert_as_the_source(&t, "json", "convert_json_to_text", texts).await;
    let parses: Vec<Value> = (0..20)
        .map(|_| json!({"text": g.choose(&["{\"a\":1}", "[1,2.5]", "\"s\"", "nope", "{", "3", "null"])}))
        .collect();
    assert_as_the_source(&t, "json", "convert_text_to_json", parses).await;
    let strategies = ["first", "last", "most_frequent", "min", "max", "concat"];
    let merges: Vec<Value> = (0..40)
        .map(|_| {
            let objects: Vec<Value> = (0..g.below(5))
                .map(|_| {
                    if g.below(12) == 0 {
                        return json!(null);
                    }
                    let mut row = serde_json::Map::new();
                    for _ in 0..1 + g.below(3) {
                        row.insert(g.choose(&keys).to_string(), g.pick(&values).clone());
                    }
                    Value::Object(row)
                })
                .collect();
            json!({"jsonArray": objects, "defaultStrategy": g.choose(&strategies),
                "fieldStrategies": [{"field": g.choose(&keys), "strategy": g.choose(&strategies)}]})
        })
        .collect();
    assert_as_the_source(&t, "json", "merge_json", merges).await;
}
