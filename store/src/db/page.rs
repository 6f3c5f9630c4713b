//! Seek pagination, shared by every list that Activepieces pages (flows, runs, connections).

use super::{Result, StoreError};
use serde::Serialize;

/// A page of a list, as Activepieces answers: `{data, next, previous}`.
#[derive(Debug, Serialize)]
pub struct Page<T> {
    pub data: Vec<T>,
    pub next: Option<String>,
    pub previous: Option<String>,
}

/// Seek pagination over an order tree keyed `created (u64 be) ‖ id`, newest first.
/// `next` continues to older records, `previous` back to newer ones; a cursor is a
/// position, so records inserted meanwhile never shift a page.
pub(super) fn paginate<T>(
    order: &sled::Tree,
    limit: usize,
    cursor: Option<&str>,
    mut load: impl FnMut(&str) -> Result<Option<T>>,
) -> Result<Page<T>> {
    let limit = limit.clamp(1, 1000);
    let (backwards, pos) = match cursor {
        None => (false, None),
        Some(c) => {
            let (dir, hexpos) = c.split_once(':').ok_or_else(|| StoreError::BadCursor(c.into()))?;
            let pos = hex::decode(hexpos).map_err(|_| StoreError::BadCursor(c.into()))?;
            match dir {
                "n" => (false, Some(pos)),
                "p" => (true, Some(pos)),
                _ => return Err(StoreError::BadCursor(c.into())),
            }
        }
    };
    let iter: Box<dyn Iterator<Item = sled::Result<(sled::IVec, sled::IVec)>>> = match (&pos, backwards) {
        (None, _) => Box::new(order.iter().rev()),
        (Some(p), false) => Box::new(order.range(..p.clone()).rev()),
        (Some(p), true) => {
            let mut start = p.clone();
            start.push(0);
            Box::new(order.range(start..))
        }
    };
    let mut keys = Vec::new();
    let mut data = Vec::new();
    let mut more = false;
    for item in iter {
        let (k, _) = item?;
        let id = String::from_utf8_lossy(&k[8..]).into_owned();
        if let Some(v) = load(&id)? {
            if data.len() == limit {
                more = true;
                break;
            }
            keys.push(k.to_vec());
            data.push(v);
        }
    }
    if backwards {
        keys.reverse();
        data.reverse();
    }
    let first = keys.first().map(|k| format!("p:{}", hex::encode(k)));
    let last = keys.last().map(|k| format!("n:{}", hex::encode(k)));
    let (next, previous) = if backwards {
        (last, if more { first } else { None })
    } else {
        (if more { last } else { None }, if pos.is_some() { first } else { None })
    };
    Ok(Page { data, next, previous })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::db::{order_key, temp_store};

    #[test]
    fn pages_walk_forward_and_back_and_ignore_new_inserts() {
        let (_d, store) = temp_store();
        let tree = &store.flow_order;
        for i in 0..25u64 {
            tree.insert(order_key(i, &format!("id{i:02}")), &[]).unwrap();
        }
        let load = |id: &str| Ok(Some(id.to_string()));
        let p1 = paginate(tree, 10, None, load).unwrap();
        assert_eq!(p1.data.first().unwrap(), "id24");
        assert!(p1.previous.is_none());
        // a newer record arrives between pages: page 2 does not shift
        tree.insert(order_key(100, "id99"), &[]).unwrap();
        let p2 = paginate(tree, 10, p1.next.as_deref(), load).unwrap();
        assert_eq!(p2.data.first().unwrap(), "id14");
        let p3 = paginate(tree, 10, p2.next.as_deref(), load).unwrap();
        assert_eq!(p3.data.len(), 5);
        assert!(p3.next.is_none());
        let back = paginate(tree, 10, p3.previous.as_deref(), load).unwrap();
        assert_eq!(back.data, p2.data);
    }
}
