//! `@activepieces/piece-text-helper`'s conversions: `markdown_to_html`, `html_to_markdown`,
//! `stripHtml`, `slugify` and `json_to_ascii_table`.
//!
//! The package calls JavaScript libraries (showdown, string-strip-html, slugify); these follow
//! them where a flow can tell: showdown's flavors and options, slugify's defaults, the table's
//! JavaScript string conversions. Where the output's markup differs (showdown's own HTML
//! layout, its HTML-to-markdown writer), docs/compatibility.md says how.

use super::{required_text, ActionError};
use pulldown_cmark::{CodeBlockKind, CowStr, Event, HeadingLevel, Options, Parser, Tag, TagEnd};
use serde_json::{Map, Value};

/// showdown's options as the package sets them, after `setFlavor` (which overrides them:
/// `vanilla` resets every option to showdown's defaults).
struct Markdown {
    header_level_start: usize,
    header_ids: Option<HeaderIds>,
    tables: bool,
    github: bool,
    simple_line_breaks: bool,
    links_in_new_window: bool,
    /// `omitExtraWLInCodeBlocks`: a code block without its last line break.
    trim_code: bool,
}

#[derive(Clone, Copy)]
enum HeaderIds {
    /// showdown's default: the title's word characters, lower-cased.
    Plain,
    /// `ghCompatibleHeaderId`: spaces become `-`, punctuation goes.
    Github,
}

impl Markdown {
    fn from_props(input: &Map<String, Value>) -> Self {
        let flag = |key: &str, default: bool| input.get(key).and_then(Value::as_bool).unwrap_or(default);
        let level = input.get("headerLevelStart").and_then(Value::as_f64).unwrap_or(1.0).clamp(1.0, 6.0) as usize;
        let no_header_id = flag("noHeaderId", false);
        match input.get("flavor").and_then(Value::as_str).unwrap_or("github") {
            "vanilla" => Markdown {
                header_level_start: 1,
                header_ids: Some(HeaderIds::Plain),
                tables: false,
                github: false,
                simple_line_breaks: false,
                links_in_new_window: false,
                trim_code: false,
            },
            "original" => Markdown {
                header_level_start: level,
                header_ids: None,
                tables: flag("tables", true),
                github: false,
                simple_line_breaks: flag("simpleLineBreaks", false),
                links_in_new_window: flag("openLinksInNewWindow", false),
                trim_code: true,
            },
            _ => Markdown {
                header_level_start: level,
                header_ids: (!no_header_id).then_some(HeaderIds::Github),
                tables: true,
                github: true,
                simple_line_breaks: true,
                links_in_new_window: flag("openLinksInNewWindow", false),
                trim_code: true,
            },
        }
    }
}

fn header_id(title: &str, kind: HeaderIds) -> String {
    match kind {
        HeaderIds::Plain => title.chars().filter(|c| c.is_ascii_alphanumeric() || *c == '_').collect::<String>(),
        HeaderIds::Github => title
            .chars()
            .filter(|c| !"&+$,/:;=?@\"#{}|^~[]`\\*)(%.!'<>".contains(*c))
            .map(|c| if c == ' ' { '-' } else { c })
            .collect(),
    }
    .to_lowercase()
}

fn heading_level(n: usize) -> HeadingLevel {
    match n {
        1 => HeadingLevel::H1,
        2 => HeadingLevel::H2,
        3 => HeadingLevel::H3,
        4 => HeadingLevel::H4,
        5 => HeadingLevel::H5,
        _ => HeadingLevel::H6,
    }
}

/// `markdown_to_html`: the markdown as HTML.
pub fn markdown_to_html(input: &Map<String, Value>) -> Result<Value, ActionError> {
    let markdown = required_text(input, "markdown")?;
    // the package's zod check of the header level (before the flavor resets it)
    let level = input.get("headerLevelStart").unwrap_or(&Value::Null);
    let problem = match level.as_f64() {
        None if !level.is_null() => Some(format!("Invalid input: expected number, received {}", js_type(level))),
        Some(n) if n < 1.0 => Some("Too small: expected number to be >=1".to_string()),
        Some(n) if n > 6.0 => Some("Too big: expected number to be <=6".to_string()),
        _ => None,
    };
    if let Some(message) = problem {
        let errors = serde_json::json!({"errors": {"headerLevelStart": message}});
        return Err(serde_json::to_string_pretty(&errors).expect("json").into());
    }
    let opts = Markdown::from_props(input);
    let mut options = Options::empty();
    if opts.tables {
        options.insert(Options::ENABLE_TABLES);
    }
    if opts.github {
        options.insert(Options::ENABLE_STRIKETHROUGH | Options::ENABLE_TASKLISTS);
    }
    let mut events: Vec<Event> = Vec::new();
    let mut heading: Option<usize> = None;
    let mut code: Option<String> = None;
    let mut used_ids: std::collections::HashMap<String, usize> = Default::default();
    for event in Parser::new_ext(&markdown, options) {
        match event {
            Event::Start(Tag::Heading { level, classes, attrs, .. }) => {
                heading = Some(events.len());
                let shifted = (level as usize) + opts.header_level_start - 1;
                events.push(Event::Start(Tag::Heading { level: heading_level(shifted), id: None, classes, attrs }));
            }
            Event::End(TagEnd::Heading(level)) => {
                let start = heading.take().unwrap_or(0);
                if let Some(kind) = opts.header_ids {
                    let title: String = events[start..]
                        .iter()
                        .filter_map(|e| match e {
                            Event::Text(t) | Event::Code(t) => Some(t.as_ref()),
                            _ => None,
                        })
                        .collect();
                    let mut id = header_id(&title, kind);
                    // showdown numbers a repeated id: `title`, `title-1`, …
                    let seen = used_ids.entry(id.clone()).or_insert(0);
                    if *seen > 0 {
                        id = format!("{id}-{seen}");
                    }
                    *seen += 1;
                    if let Event::Start(Tag::Heading { id: slot, .. }) = &mut events[start] {
                        *slot = Some(CowStr::from(id));
                    }
                }
                let shifted = (level as usize) + opts.header_level_start - 1;
                events.push(Event::End(TagEnd::Heading(heading_level(shifted))));
            }
            Event::SoftBreak if opts.simple_line_breaks => events.push(Event::HardBreak),
            Event::Start(Tag::Link { dest_url, title, .. }) if opts.links_in_new_window => {
                let mut a = String::from("<a href=\"");
                pulldown_cmark_escape::escape_href(&mut a, &dest_url).expect("a string");
                a.push('"');
                if !title.is_empty() {
                    a.push_str(" title=\"");
                    pulldown_cmark_escape::escape_html(&mut a, &title).expect("a string");
                    a.push('"');
                }
                a.push_str(" rel=\"noopener noreferrer\" target=\"_blank\">");
                events.push(Event::InlineHtml(a.into()));
            }
            Event::End(TagEnd::Link) if opts.links_in_new_window => events.push(Event::InlineHtml("</a>".into())),
            // showdown's code blocks: the language twice in the class, the last line break
            // dropped with `omitExtraWLInCodeBlocks`
            Event::Start(Tag::CodeBlock(kind)) => {
                let lang = match kind {
                    CodeBlockKind::Fenced(info) => info.split_whitespace().next().unwrap_or_default().to_string(),
                    CodeBlockKind::Indented => String::new(),
                };
                let class = if lang.is_empty() { String::new() } else { format!(" class=\"{lang} language-{lang}\"") };
                code = Some(format!("<pre><code{class}>"));
            }
            Event::Text(t) if code.is_some() => {
                pulldown_cmark_escape::escape_html(code.as_mut().expect("in code"), &t).expect("a string")
            }
            Event::End(TagEnd::CodeBlock) => {
                let mut block = code.take().unwrap_or_default();
                if !block.ends_with('\n') {
                    block.push('\n');
                }
                if opts.trim_code {
                    block.pop();
                }
                block.push_str("</code></pre>\n");
                events.push(Event::Html(block.into()));
            }
            other => events.push(other),
        }
    }
    let mut html = String::new();
    pulldown_cmark::html::push_html(&mut html, events.into_iter());
    // showdown writes a loose list's paragraphs on the item's line
    let html = html.replace("<li>\n<p>", "<li><p>").replace("</p>\n</li>", "</p></li>");
    let html = indent_blockquotes(&html);
    Ok(Value::String(html.trim_end_matches('\n').to_string()))
}

/// showdown indents what a blockquote holds by two spaces a level.
fn indent_blockquotes(html: &str) -> String {
    let mut out = String::with_capacity(html.len());
    let mut depth = 0usize;
    for line in html.split_inclusive('\n') {
        let closes = line.starts_with("</blockquote>");
        if closes {
            depth = depth.saturating_sub(1);
        }
        out.push_str(&"  ".repeat(depth));
        out.push_str(line);
        if line.starts_with("<blockquote>") || (!closes && line.trim_start().starts_with("<blockquote>")) {
            depth += 1;
        }
    }
    out
}

/// JavaScript's `typeof` of a JSON value, as zod names it.
fn js_type(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "boolean",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
}

/// `html_to_markdown`: the HTML as markdown.
pub fn html_to_markdown(input: &Map<String, Value>) -> Result<Value, ActionError> {
    let html = required_text(input, "html")?;
    // turndown's defaults: setext headings, indented code, `* ` bullets, `_` emphasis
    let options = htmd::options::Options {
        heading_style: htmd::options::HeadingStyle::Setex,
        code_block_style: htmd::options::CodeBlockStyle::Indented,
        ul_bullet_spacing: 1,
        ..Default::default()
    };
    let underscores = |handlers: &dyn htmd::element_handler::Handlers, element: htmd::Element| {
        let mut result = handlers.fallback(element)?;
        if let (Some(first), Some(last)) = (result.content.find('*'), result.content.rfind('*')) {
            if first < last {
                result.content.replace_range(last..=last, "_");
                result.content.replace_range(first..=first, "_");
            }
        }
        Some(result)
    };
    let converter = htmd::HtmlToMarkdown::builder()
        .options(options)
        .skip_tags(vec!["script"])
        .add_handler(vec!["em", "i"], underscores)
        .build();
    let markdown = converter.convert(&html).map_err(|e| format!("the HTML could not be read: {e}"))?;
    Ok(Value::String(markdown))
}

/// Tags that string-strip-html removes without a space (inline text).
const INLINE_TAGS: &[&str] = &[
    "a", "abbr", "b", "bdi", "bdo", "big", "cite", "code", "data", "del", "dfn", "em", "font", "i", "ins", "kbd",
    "label", "mark", "q", "s", "samp", "small", "span", "strike", "strong", "sub", "sup", "time", "tt", "u", "var",
];

/// Stand-ins for removed markup while the text is stripped: a tag between words, and an inline
/// tag (which separates nothing).
const BLOCK_MARK: char = '\u{0}';
const INLINE_MARK: char = '\u{1}';

/// `stripHtml`: the text without its tags, as string-strip-html gives it: entities are
/// decoded first (so `&lt;b&gt;` is a tag too), comments, scripts and styles go with their
/// content, a tag between words is a space (none for an inline tag such as `<b>`), the blanks
/// around a removed tag become one space, or the line breaks among them; other blanks stay;
/// the ends are trimmed. A `<` that opens no tag (`1<2`) stays, with what follows it through the
/// next `>` (string-strip-html 8.5, the package's version, keeps `1<2</b>` so).
pub fn strip_html(input: &Map<String, Value>) -> Result<Value, ActionError> {
    let html = html_escape::decode_html_entities(&required_text(input, "html")?).into_owned();
    let mut out = String::with_capacity(html.len());
    let mut rest = html.as_str();
    while let Some(at) = rest.find('<') {
        out.push_str(&rest[..at]);
        let tail = &rest[at..];
        if let Some(after) = tail.strip_prefix("<!--") {
            rest = after.find("-->").map_or("", |end| &after[end + 3..]);
            out.push(BLOCK_MARK);
            continue;
        }
        let name_start = tail[1..].strip_prefix('/').unwrap_or(&tail[1..]);
        let opens_tag = name_start.starts_with(|c: char| c.is_ascii_alphabetic() || c == '!');
        let Some(end) = tail.find('>').filter(|_| opens_tag) else {
            // string-strip-html 8.5 keeps what a `<` that opens no tag reaches, through the next `>`
            let mut keep = tail.find('>').map_or(1, |e| e + 1);
            // …but a script or style in the way is removed still
            let lower = tail[..keep].to_ascii_lowercase();
            if let Some(i) = ["<script", "<style"].iter().filter_map(|t| lower[1..].find(t)).min() {
                keep = i + 1;
            }
            out.push_str(&tail[..keep]);
            rest = &tail[keep..];
            continue;
        };
        let name: String = name_start
            .chars()
            .take_while(|c| c.is_ascii_alphanumeric() || *c == '!')
            .collect::<String>()
            .to_ascii_lowercase();
        rest = &tail[end + 1..];
        if matches!(name.as_str(), "script" | "style") && !tail[1..].starts_with('/') {
            let close = format!("</{name}");
            rest = rest.to_ascii_lowercase().find(&close).map_or("", |i| {
                let from = &rest[i..];
                from.find('>').map_or("", |e| &from[e + 1..])
            });
            out.push(BLOCK_MARK);
        } else {
            out.push(if INLINE_TAGS.contains(&name.as_str()) { INLINE_MARK } else { BLOCK_MARK });
        }
    }
    out.push_str(rest);
    let is_gap = |c: char| c == BLOCK_MARK || c == INLINE_MARK || (c.is_whitespace() && c != '\u{a0}');
    let mut text = String::with_capacity(out.len());
    let mut run = String::new();
    let flush = |run: &mut String, text: &mut String| {
        let marked = run.contains([BLOCK_MARK, INLINE_MARK]);
        if !marked {
            text.push_str(run);
        } else if run.contains('\n') {
            text.extend(run.chars().filter(|c| *c == '\n'));
        } else if run.chars().any(|c| c != INLINE_MARK) {
            text.push(' ');
        }
        run.clear();
    };
    for c in out.chars() {
        if is_gap(c) {
            run.push(c);
        } else {
            flush(&mut run, &mut text);
            text.push(c);
        }
    }
    flush(&mut run, &mut text);
    Ok(Value::String(text.trim().to_string()))
}

/// `slugify`, with the slugify package's defaults: characters it knows are spelled out (`ü`
/// → `u`, `&` → `and`), what is left that is not a word character or `$*_+~.()'"!-:@` goes,
/// the ends are trimmed and blanks become `-`. Case is kept.
pub fn slugify(input: &Map<String, Value>) -> Result<Value, ActionError> {
    let text = required_text(input, "text")?;
    let mut slug = String::with_capacity(text.len());
    for c in text.chars() {
        let spelled: std::borrow::Cow<str> = match c {
            '$' => "dollar".into(),
            '%' => "percent".into(),
            '&' => "and".into(),
            '<' => "less".into(),
            '>' => "greater".into(),
            '|' => "or".into(),
            // the replacement itself counts as a blank
            '-' => " ".into(),
            c if c.is_ascii() => c.to_string().into(),
            c => match slugify_spelling(c) {
                Some(spelled) => spelled.into(),
                // Latin, Greek and Cyrillic letters are in slugify's table, spelled as here
                None if matches!(c, '\u{c0}'..='\u{17f}' | '\u{386}'..='\u{3ce}' | '\u{400}'..='\u{45f}') => {
                    deunicode::deunicode_char(c).unwrap_or("").into()
                }
                None => "".into(),
            },
        };
        slug.extend(
            spelled
                .chars()
                .filter(|c| c.is_ascii_alphanumeric() || c.is_whitespace() || "_$*+~.()'\"!-:@".contains(*c)),
        );
    }
    let slug = slug.trim();
    let mut out = String::with_capacity(slug.len());
    let mut blank = false;
    for c in slug.chars() {
        if c.is_whitespace() {
            blank = true;
            continue;
        }
        if blank {
            out.push('-');
            blank = false;
        }
        out.push(c);
    }
    Ok(Value::String(out))
}

/// Where slugify's table spells a letter otherwise than the common transliteration, or lacks
/// it (`""`: the letter is dropped).
fn slugify_spelling(c: char) -> Option<&'static str> {
    const DROPPED: &str = "×ĈĉĊċĔĕĜĝĠġĤĥĦħĬĭĲĳĴĵĸĹĺĿŀŉŊŋŎŏŖŗŜŝŦŧŬŭſЀЃЅЌЍЎѐѓѕќўЬь";
    if DROPPED.contains(c) {
        return Some("");
    }
    Some(match c {
        'Þ' => "TH",
        'Đ' => "DJ",
        'đ' => "dj",
        'Ę' => "e",
        'Ī' => "i",
        'Ķ' => "k",
        'Ū' => "u",
        'Η' => "H",
        'η' | 'ή' => "h",
        'Θ' | 'θ' => "8",
        'Ξ' | 'ξ' => "3",
        'Υ' | 'Ϋ' => "Y",
        'υ' | 'ϋ' | 'ύ' | 'ΰ' => "y",
        'Φ' => "F",
        'φ' => "f",
        'Χ' => "X",
        'χ' => "x",
        'Ψ' => "PS",
        'Ω' => "W",
        'ω' | 'ώ' => "w",
        'Ё' => "Yo",
        'ё' => "yo",
        'Ђ' => "DJ",
        'Є' => "Ye",
        'є' => "ye",
        'Љ' => "LJ",
        'Њ' => "NJ",
        'Ћ' | 'Ц' => "C",
        'ћ' | 'ц' => "c",
        'Џ' => "DZ",
        'џ' => "dz",
        'Й' => "J",
        'й' => "j",
        'Х' => "H",
        'х' => "h",
        'Щ' => "Sh",
        'щ' => "sh",
        'Ъ' => "U",
        'ъ' | 'ѝ' => "u",
        'Ю' => "Yu",
        'ю' => "yu",
        'Я' => "Ya",
        'я' => "ya",
        _ => return None,
    })
}

/// `extract_from_html`: what the elements a CSS selector finds hold (their text, inner or
/// outer HTML, or an attribute): the first one's, or every one's with `returnMultiple`.
pub fn extract_from_html(input: &Map<String, Value>) -> Result<Value, ActionError> {
    let html = required_text(input, "html")?;
    let text_of = |key: &str, default: &str| {
        super::text(input, key).filter(|t| !t.is_empty()).unwrap_or_else(|| default.to_string())
    };
    let selector = match text_of("target", "title").as_str() {
        "custom" => super::text(input, "selector")
            .filter(|s| !s.is_empty())
            .ok_or("You must provide a \"Custom CSS Selector\" when the target is set to Custom.")?,
        "links" => "a[href]".into(),
        "images" => "img[src]".into(),
        "headings" => "h1, h2, h3".into(),
        "paragraphs" => "p".into(),
        _ => "title".into(),
    };
    let multiple = input.get("returnMultiple").and_then(Value::as_bool).unwrap_or(false);
    let parsed = scraper::Selector::parse(&selector).map_err(|e| {
        format!("Invalid CSS selector: \"{selector}\". Error: '{selector}' is not a valid selector ({e})")
    })?;
    let document = scraper::Html::parse_document(&html);
    let kind = text_of("extractionType", "textContent");
    let attribute = super::text(input, "attributeName").filter(|a| !a.is_empty());
    let mut out = Vec::new();
    for element in document.select(&parsed) {
        out.push(Value::String(match kind.as_str() {
            "textContent" => element.text().collect::<String>().trim().to_string(),
            "innerHtml" => element.inner_html(),
            "outerHtml" => element.html(),
            "attribute" => {
                let name = attribute
                    .as_deref()
                    .ok_or("You must provide an \"Attribute Name\" when the extraction type is Attribute.")?;
                element.value().attr(name).unwrap_or_default().to_string()
            }
            _ => String::new(),
        }));
        if !multiple {
            break;
        }
    }
    Ok(if multiple { Value::Array(out) } else { out.into_iter().next().unwrap_or(Value::Null) })
}

/// JavaScript's `String(value ?? '')` for a JSON value.
pub(super) fn js_string(value: Option<&Value>) -> String {
    match value {
        None | Some(Value::Null) => String::new(),
        Some(Value::String(s)) => s.clone(),
        Some(Value::Bool(b)) => b.to_string(),
        Some(Value::Number(n)) => super::json::js_json(&Value::Number(n.clone())),
        Some(Value::Array(items)) => items
            .iter()
            .map(|v| match v {
                Value::Null => String::new(),
                v => js_string(Some(v)),
            })
            .collect::<Vec<_>>()
            .join(","),
        Some(Value::Object(_)) => "[object Object]".into(),
    }
}

/// `json_to_ascii_table`: a list of objects as a text table, columns in the order keys first
/// appear, widths in JavaScript's string lengths (UTF-16 units).
pub fn json_to_ascii_table(input: &Map<String, Value>) -> Result<Value, ActionError> {
    // a JSON prop given as text is parsed, as the framework's processor does
    let parsed = match input.get("data") {
        Some(Value::String(s)) => serde_json::from_str(s).ok(),
        other => other.cloned(),
    };
    let Some(Value::Array(rows)) = &parsed else {
        return Err("Input must be an array of objects".into());
    };
    if rows.is_empty() {
        return Ok(Value::String(String::new()));
    }
    let mut keys: Vec<String> = Vec::new();
    for row in rows {
        for key in js_keys(row) {
            if !keys.contains(&key) {
                keys.push(key);
            }
        }
    }
    let len = |s: &str| s.encode_utf16().count();
    let cell = |row: &Value, key: &str| -> String {
        match row {
            Value::Object(m) => js_string(m.get(key)),
            Value::Array(a) => js_string(key.parse::<usize>().ok().and_then(|i| a.get(i))),
            Value::String(s) => {
                key.parse::<usize>().ok().and_then(|i| s.chars().nth(i)).map(String::from).unwrap_or_default()
            }
            _ => String::new(),
        }
    };
    let widths: Vec<usize> =
        keys.iter().map(|k| rows.iter().map(|r| len(&cell(r, k))).max().unwrap_or(0).max(len(k))).collect();
    let pad = |s: &str, w: usize| format!(" {s}{} ", " ".repeat(w - len(s)));
    let line = |cells: Vec<String>| format!("|{}|", cells.join("|"));
    let separator = format!("+{}+", widths.iter().map(|w| "-".repeat(w + 2)).collect::<Vec<_>>().join("+"));
    let mut out =
        vec![separator.clone(), line(keys.iter().zip(&widths).map(|(k, w)| pad(k, *w)).collect()), separator.clone()];
    for row in rows {
        out.push(line(keys.iter().zip(&widths).map(|(k, w)| pad(&cell(row, k), *w)).collect()));
    }
    out.push(separator);
    Ok(Value::String(out.join("\n")))
}

/// `Object.keys` of a JSON value: an object's keys with integer-like keys first, ascending, as
/// JavaScript orders them; a list's and a text's indices.
fn js_keys(value: &Value) -> Vec<String> {
    match value {
        Value::Object(m) => {
            let index = |k: &str| k.parse::<u32>().ok().filter(|n| n.to_string() == k);
            let mut ints: Vec<(u32, String)> = m.keys().filter_map(|k| index(k).map(|n| (n, k.clone()))).collect();
            ints.sort();
            ints.into_iter().map(|(_, k)| k).chain(m.keys().filter(|k| index(k).is_none()).cloned()).collect()
        }
        Value::Array(a) => (0..a.len()).map(|i| i.to_string()).collect(),
        Value::String(s) => (0..s.chars().count()).map(|i| i.to_string()).collect(),
        _ => Vec::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn run(f: fn(&Map<String, Value>) -> Result<Value, ActionError>, input: Value) -> String {
        f(input.as_object().unwrap()).unwrap().as_str().unwrap().to_string()
    }

    #[test]
    fn markdown_to_html_follows_showdowns_flavors() {
        // what showdown 2.1.0 gives for these, with the package's options
        let md = "# Hello World!\n\nSome *em* and **strong**.\n\n[link](http://x.y) line\nbreak";
        assert_eq!(
            run(markdown_to_html, json!({"markdown": md})),
            "<h1 id=\"hello-world\">Hello World!</h1>\n<p>Some <em>em</em> and <strong>strong</strong>.</p>\n\
             <p><a href=\"http://x.y\">link</a> line<br />\nbreak</p>"
        );
        assert_eq!(
            run(markdown_to_html, json!({"markdown": md, "flavor": "vanilla", "headerLevelStart": 3})),
            "<h1 id=\"helloworld\">Hello World!</h1>\n<p>Some <em>em</em> and <strong>strong</strong>.</p>\n\
             <p><a href=\"http://x.y\">link</a> line\nbreak</p>",
            "vanilla resets the options"
        );
        assert_eq!(
            run(markdown_to_html, json!({"markdown": "## T", "flavor": "original", "headerLevelStart": 3})),
            "<h4>T</h4>"
        );
        assert_eq!(
            run(
                markdown_to_html,
                json!({"markdown": "[a](http://x)", "openLinksInNewWindow": true, "noHeaderId": true})
            ),
            "<p><a href=\"http://x\" rel=\"noopener noreferrer\" target=\"_blank\">a</a></p>"
        );
        assert_eq!(
            run(markdown_to_html, json!({"markdown": "# A\n# A"})),
            "<h1 id=\"a\">A</h1>\n<h1 id=\"a-1\">A</h1>"
        );
        let table = run(markdown_to_html, json!({"markdown": "| a |\n|---|\n| 1 |"}));
        assert!(table.starts_with("<table>") && table.contains("<td>1</td>"), "{table}");
    }

    #[test]
    fn strip_html_as_string_strip_html() {
        // what string-strip-html 13 gives for these
        for (html, text) in [
            ("<p>Hello <b>World</b></p>", "Hello World"),
            ("a<br>b", "a b"),
            ("<div>one</div><div>two</div>", "one two"),
            ("x <script>alert(1)</script> y", "x y"),
            ("<p>Tom &amp; Jerry</p>", "Tom & Jerry"),
            ("  <i>spaced</i>   text  ", "spaced text"),
            ("line1\n<p>line2</p>\n\nline3", "line1\nline2\n\nline3"),
            ("a < b and c > d", "a < b and c > d"),
            ("<a href='x'>link</a>text", "linktext"),
            ("<ul><li>1</li><li>2</li></ul>", "1 2"),
            ("<!-- c -->z", "z"),
            ("<style>p{}</style>q", "q"),
            ("1<2", "1<2"),
        ] {
            assert_eq!(run(strip_html, json!({"html": html})), text, "{html:?}");
        }
    }

    #[test]
    fn slugify_as_the_slugify_package() {
        // what slugify 1.6 gives for these
        for (text, slug) in [
            ("Hello World", "Hello-World"),
            ("  a  b  ", "a-b"),
            ("Ünïcödé ß", "Unicode-ss"),
            ("foo & bar $5 50%", "foo-and-bar-dollar5-50percent"),
            ("a-b--c", "a-b-c"),
            ("x_y.z(1)!'\"", "x_y.z(1)!'\""),
            ("漢字 text", "text"),
            ("Привет мир", "Privet-mir"),
            ("a<b>c|d", "alessbgreatercord"),
            ("tab\there", "tab-here"),
            ("a - b", "a-b"),
        ] {
            assert_eq!(run(slugify, json!({"text": text})), slug, "{text:?}");
        }
    }

    #[test]
    fn json_to_ascii_table_as_the_package() {
        let simple = run(json_to_ascii_table, json!({"data": [{"a": "x", "b": 10}, {"a": "long", "c": null}]}));
        assert_eq!(
            simple,
            "+------+----+---+\n| a    | b  | c |\n+------+----+---+\n| x    | 10 |   |\n| long |    |   |\n+------+----+---+"
        );
        assert_eq!(run(json_to_ascii_table, json!({"data": []})), "");
        assert!(json_to_ascii_table(json!({"data": {"a": 1}}).as_object().unwrap()).is_err());
        let keys = run(json_to_ascii_table, json!({"data": [{"b": 1, "10": 2, "2": 3, "a": [1.5, 3.0]}]}));
        assert_eq!(keys.lines().nth(1).unwrap(), "| 2 | 10 | b | a     |", "integer keys first, as Object.keys");
        assert!(keys.contains("| 3 | 2  | 1 | 1.5,3 |"), "{keys}");
    }
}
