//! `@activepieces/piece-rss`, trigger `new-item` (`rss_feed_url`): new items of an RSS or
//! Atom feed, deduplicated by `LAST_ITEM` like the Activepieces piece.

use crate::polling::{DedupeStrategy, PollItem};
use serde_json::{json, Map, Value};
use troupe_pieces::egress::{Egress, EgressFailure};

pub const PIECE: &str = "@activepieces/piece-rss";
pub const TRIGGER: &str = "new-item";
pub const STRATEGY: DedupeStrategy = DedupeStrategy::LastItem;

/// Why a feed could not be read (the poll counts a failure).
#[derive(Debug, thiserror::Error)]
pub enum FeedError {
    #[error("rss_feed_url is required")]
    NoUrl,
    #[error("fetching {url}: {source}")]
    Fetch { url: String, source: EgressFailure },
    #[error("fetching {url}: status {status}")]
    Status { url: String, status: reqwest::StatusCode },
    #[error("{url} is not an RSS or Atom feed: {source}")]
    NotAFeed { url: String, source: feed_rs::parser::ParseFeedError },
}

/// The feed's items, fetched through `egress` (the SSRF policy applies to feeds too).
pub async fn items(egress: &Egress, input: &Map<String, Value>) -> Result<Vec<PollItem>, FeedError> {
    let url = input.get("rss_feed_url").and_then(Value::as_str).ok_or(FeedError::NoUrl)?;
    let req = egress.client().get(url).timeout(std::time::Duration::from_secs(30));
    let resp = egress.send(req).await.map_err(|source| FeedError::Fetch { url: url.into(), source })?;
    if !resp.status.is_success() {
        return Err(FeedError::Status { url: url.into(), status: resp.status });
    }
    let feed = feed_rs::parser::parse(resp.body.as_slice())
        .map_err(|source| FeedError::NotAFeed { url: url.into(), source })?;
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
