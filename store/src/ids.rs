//! Identifiers and timestamps in the Activepieces shapes: 21-character ids, ISO-8601 times.

use rand::Rng;

const ALPHABET: &[u8] = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";
pub const ID_LEN: usize = 21;

/// A new random id, like Activepieces' `apId()`.
pub fn new_id() -> String {
    let mut rng = rand::rng();
    (0..ID_LEN).map(|_| ALPHABET[rng.random_range(0..ALPHABET.len())] as char).collect()
}

/// A new id that sorts by creation time: 9 characters of milliseconds since the epoch (base
/// 62), then 12 random ones. Same length and alphabet as [`new_id`]; runs and webhooks use it
/// so that sled appends their records instead of rewriting nodes at random keys.
pub fn new_ordered_id() -> String {
    let mut ms = chrono::Utc::now().timestamp_millis().max(0) as u64;
    let mut head = [b'0'; 9];
    for slot in head.iter_mut().rev() {
        *slot = ALPHABET[(ms % 62) as usize];
        ms /= 62;
    }
    let mut rng = rand::rng();
    let tail: String = (0..ID_LEN - 9).map(|_| ALPHABET[rng.random_range(0..ALPHABET.len())] as char).collect();
    format!("{}{tail}", std::str::from_utf8(&head).expect("ascii"))
}

/// Now, as the ISO-8601 UTC string Activepieces writes (`2024-01-01T00:00:00.000Z`).
pub fn now_iso() -> String {
    iso(chrono::Utc::now())
}

pub fn iso(t: chrono::DateTime<chrono::Utc>) -> String {
    t.to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}

/// Microseconds since the epoch; orders records created in the same millisecond.
pub fn now_micros() -> u64 {
    chrono::Utc::now().timestamp_micros().max(0) as u64
}

/// `hash(flow_id) % shards` with FNV-1a: stable across processes and releases.
pub fn shard_for_flow(flow_id: &str, shards: u16) -> u16 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in flow_id.as_bytes() {
        h ^= u64::from(*b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    (h % u64::from(shards.max(1))) as u16
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_have_the_activepieces_length_and_differ() {
        let a = new_id();
        assert_eq!(a.len(), ID_LEN);
        assert_ne!(a, new_id());
    }

    #[test]
    fn ordered_ids_sort_by_time() {
        let a = new_ordered_id();
        std::thread::sleep(std::time::Duration::from_millis(2));
        let b = new_ordered_id();
        assert_eq!(a.len(), ID_LEN);
        assert!(a < b, "{a} < {b}");
    }

    #[test]
    fn shard_is_stable_and_in_range() {
        assert_eq!(shard_for_flow("abc", 16), shard_for_flow("abc", 16));
        assert!((0..1000).all(|i| shard_for_flow(&format!("f{i}"), 16) < 16));
    }
}
