//! `@activepieces/piece-rss`, trigger `new-item` (`rss_feed_url`): new items of an RSS or
//! Atom feed, deduplicated by `LAST_ITEM` like the Activepieces piece.

use crate::polling::{DedupeStrategy, PollItem};
use serde_json::{json, Map, Value};

pub const PIECE: &str = "@activepieces/piece-rss";
pub const TRIGGER: &str = "new-item";
pub const STRATEGY: DedupeStrategy = DedupeStrategy::LastItem;

pub async fn items(http: &reqwest::Client, input: &Map<String, Value>) -> Result<Vec<PollItem>, String> {
    let url = input.get("rss_feed_url").and_then(Value::as_str).ok_or("rss_feed_url is required")?;
    let resp = http.get(url).send().await.map_err(|e| format!("fetching {url}: {e}"))?;
    if !resp.status().is_success() {
        return Err(format!("fetching {url}: status {}", resp.status()));
    }
    let bytes = resp.bytes().await.map_err(|e| format!("reading {url}: {e}"))?;
    let feed = feed_rs::parser::parse(bytes.as_ref()).map_err(|e| format!("{url} is not an RSS or Atom feed: {e}"))?;
    Ok(feed
        .entries
        .into_iter()
        .map(|e| {
            let date = e.published.or(e.updated);
            let link = e.links.first().map(|l| l.href.clone());
            let data = json!({
                "guid": e.id,
                "title": e.title.as_ref().map(|t| t.content.clone()),
                "description": e.summary.as_ref().map(|t| t.content.clone()),
                "link": link,
                "pubdate": date.map(|d| d.to_rfc3339()),
                "pubDate": date.map(|d| d.to_rfc3339()),
                "author": e.authors.first().map(|a| a.name.clone()),
            });
            PollItem { id: e.id, epoch_ms: date.map(|d| d.timestamp_millis()), data }
        })
        .collect())
}
