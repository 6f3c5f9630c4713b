//! The streams on a nats-server with little room: JetStream reserves a stream's byte limit up
//! front, so on a small disk Troupe keeps the largest limits that fit instead of refusing to
//! start, and says so; with no room at all it fails with an error that names the cause.

use troupe_store::names::subjects;
use troupe_store::streams::{ensure_streams, EVENT_MAX_BYTES, MIN_STREAM_BYTES};
use troupe_testkit::{NatsCluster, NatsServer};

const MIB: i64 = 1024 * 1024;

async fn jetstream(url: &str) -> async_nats::jetstream::Context {
    async_nats::jetstream::new(async_nats::connect(url).await.unwrap())
}

fn limit(kept: &[(String, i64)], name: &str) -> i64 {
    kept.iter().find(|(n, _)| n == name).unwrap_or_else(|| panic!("no stream {name} in {kept:?}")).1
}

#[tokio::test]
async fn byte_limits_shrink_to_what_jetstream_can_reserve_and_stay_the_same_on_restart() {
    let nats = NatsServer::with_max_file_store(100 * MIB as u64).await;
    let js = jetstream(&nats.url).await;

    let kept = ensure_streams(&js, 1024 * MIB, 1, true).await.expect("streams fit after shrinking");
    // 1 GiB halves to 64 MiB, then the events' 256 MiB to the 32 MiB left
    assert_eq!(limit(&kept, subjects::WEBHOOK_STREAM), 64 * MIB);
    assert_eq!(limit(&kept, subjects::EVENT_STREAM), 32 * MIB);
    let mut stream = js.get_stream(subjects::WEBHOOK_STREAM).await.unwrap();
    assert_eq!(stream.info().await.unwrap().config.max_bytes, 64 * MIB);

    // the streams work: a message is stored
    js.publish("ap.webhook.0", "{}".into()).await.unwrap().await.unwrap();
    assert_eq!(stream.info().await.unwrap().state.messages, 1);

    // a second start (streams exist: updated, not created) keeps the same limits and the message
    let again = ensure_streams(&js, 1024 * MIB, 1, true).await.expect("update fits too");
    assert_eq!(again, kept);
    assert_eq!(stream.info().await.unwrap().state.messages, 1);
}

#[tokio::test]
async fn on_a_cluster_r3_limits_shrink_to_what_every_peer_can_reserve() {
    let nats = NatsCluster::start(Some(100 * MIB as u64)).await;
    let js = jetstream(nats.url.split(',').next().unwrap()).await;
    // a cluster says "no suitable peers for placement, insufficient storage" instead
    let kept = ensure_streams(&js, 1024 * MIB, 3, true).await.expect("streams fit after shrinking");
    assert_eq!(limit(&kept, subjects::WEBHOOK_STREAM), 64 * MIB);
    assert_eq!(limit(&kept, subjects::EVENT_STREAM), 32 * MIB);
    let info = js.get_stream(subjects::WEBHOOK_STREAM).await.unwrap().info().await.unwrap().clone();
    assert_eq!((info.config.max_bytes, info.config.num_replicas), (64 * MIB, 3));
}

#[tokio::test]
async fn limits_that_fit_are_kept_as_asked() {
    let nats = NatsServer::with_max_file_store(1024 * MIB as u64).await;
    let js = jetstream(&nats.url).await;
    let kept = ensure_streams(&js, 128 * MIB, 1, false).await.unwrap();
    assert_eq!(limit(&kept, subjects::WEBHOOK_STREAM), 128 * MIB);
    assert_eq!(limit(&kept, subjects::EVENT_STREAM), EVENT_MAX_BYTES);
}

#[tokio::test]
async fn with_no_room_at_all_the_error_says_why() {
    let nats = NatsServer::with_max_file_store((MIN_STREAM_BYTES / 2) as u64).await;
    let js = jetstream(&nats.url).await;
    let err = ensure_streams(&js, 1024 * MIB, 1, false).await.expect_err("nothing fits").to_string();
    assert!(err.contains("no room for stream") && err.contains("max_file_store"), "{err}");
}
