//! Every name that crosses a process boundary: sled trees and `meta` keys, NATS subjects,
//! streams, consumers and message headers.

/// sled trees.
pub mod trees {
    pub const META: &str = "meta";
    pub const PROJECTS: &str = "projects";
    pub const FLOWS: &str = "flows";
    /// `created (u64 be) ‖ flow id` → `()`: the seek-pagination order of flows.
    pub const FLOW_ORDER: &str = "flow_order";
    /// Ids of deleted flows, so that their webhooks answer 410.
    pub const DELETED_FLOWS: &str = "deleted_flows";
    pub const FLOW_VERSIONS: &str = "flow_versions";
    pub const RUNS: &str = "runs";
    /// `created (u64 be) ‖ run id` → `()`: the seek-pagination order of runs.
    pub const RUN_ORDER: &str = "run_order";
    /// `shard (u16 be) ‖ run id ‖ seq (u32 be)` → one self-contained step record.
    pub const RUN_JOURNAL: &str = "run_journal";
    /// webhook id (the JetStream message id) → run id: a redelivery finds its run.
    pub const WEBHOOK_RUNS: &str = "webhook_runs";
    /// `shard (u16 be) ‖ run id` for runs that are not terminal yet; recovery scans it.
    pub const ACTIVE_RUNS: &str = "active_runs";
    pub const STORE_ENTRIES: &str = "store_entries";
    /// sha-256 of the key (hex) → API key record.
    pub const API_KEYS: &str = "api_keys";
    /// `due (u64 be, ms since epoch) ‖ timer id` → timer: the scheduler's queue.
    pub const TIMERS: &str = "timers";
    /// `owner ‖ 0 ‖ timer id` → timer key: a flow's or run's timers, to remove them together.
    pub const TIMER_OWNERS: &str = "timer_owners";
    /// sha-256 of a WASI module (hex) → the module's bytes, as uploaded.
    pub const WASM_MODULES: &str = "wasm_modules";
    /// Installed piece versions: `name@version` → the record with its lock.
    pub const PIECES: &str = "pieces";
    /// Package tarballs by digest (`sha512-<hex>`): what every installed piece is made of.
    pub const PIECE_BLOBS: &str = "piece_blobs";
    /// connection id → connection (metadata, and the value sealed with AES-256-GCM).
    pub const CONNECTIONS: &str = "connections";
    /// `project id ‖ 0 ‖ externalId` → connection id: what `{{connections['name']}}` finds.
    pub const CONNECTION_NAMES: &str = "connection_names";
    /// `created (u64 be) ‖ connection id` → `()`: the seek-pagination order of connections.
    pub const CONNECTION_ORDER: &str = "connection_order";
    /// file id → sample data of a step (what a tested step gave, or what a client saved).
    pub const SAMPLE_DATA: &str = "sample_data";
    /// `flow id ‖ 0 ‖ ordered id` → a trigger event kept by a trigger test (not a run).
    pub const TRIGGER_EVENTS: &str = "trigger_events";
    /// `piece name ‖ 0 ‖ flow id` → the app webhook listeners of an enabled flow's trigger
    /// (`[{events, identifierValue}]`, what its `onEnable` asked for).
    pub const APP_LISTENERS: &str = "app_listeners";
    /// folder id → folder (Activepieces' folders of flows, per project).
    pub const FOLDERS: &str = "folders";
    /// event id → audit event (who did what to which object, when).
    pub const AUDIT_EVENTS: &str = "audit_events";
    /// `created (u64 be) ‖ event id` → `()`: the seek-pagination order of audit events.
    pub const AUDIT_ORDER: &str = "audit_order";
    /// user id → user (email, argon2id password hash, platform role).
    pub const USERS: &str = "users";
    /// lower-cased email → user id.
    pub const USER_EMAILS: &str = "user_emails";
    /// sha-256 of a session token (hex) → session (user, expiry).
    pub const SESSIONS: &str = "sessions";
    /// member id → project member (project, user, role).
    pub const MEMBERS: &str = "project_members";
    /// `user id ‖ 0 ‖ member id` → `()`: a user's memberships, read on each of its requests.
    pub const MEMBERS_BY_USER: &str = "project_members_by_user";
    /// invitation id → user invitation (email, project, role, status).
    pub const INVITATIONS: &str = "user_invitations";
}

/// JetStream streams and subjects.
pub mod subjects {
    pub const WEBHOOK_STREAM: &str = "AP_WEBHOOKS";
    pub const EVENT_STREAM: &str = "AP_EVENTS";
    pub const WEBHOOK_WILDCARD: &str = "ap.webhook.*";
    pub const EVENT_WILDCARD: &str = "ap.event.*";

    pub fn webhook(shard: u16) -> String {
        format!("ap.webhook.{shard}")
    }

    pub fn event(shard: u16) -> String {
        format!("ap.event.{shard}")
    }

    /// The durable pull consumer of one shard.
    pub fn shard_consumer(shard: u16) -> String {
        format!("shard-{shard}")
    }

    /// JetStream's de-duplication header: a message id seen within the stream's duplicate
    /// window is stored once.
    pub const MSG_ID_HEADER: &str = "Nats-Msg-Id";
    /// JetStream's per-message time to live (`<n>s`), on streams that allow it.
    pub const TTL_HEADER: &str = "Nats-TTL";

    /// Header carrying the core-NATS subject a sync webhook waits on.
    pub const REPLY_HEADER: &str = "Troupe-Reply-To";

    /// The replicated state of a cluster: `ap.state.<tree>.k<hex key>`, last value per subject.
    pub const STATE_STREAM: &str = "AP_STATE";
    pub const STATE_PREFIX: &str = "ap.state";
    pub const STATE_WILDCARD: &str = "ap.state.>";
    /// Header carrying the state position of the publisher of a shard message: its consumer
    /// applies the replicated state that far before it handles the message.
    pub const STATE_REV_HEADER: &str = "Troupe-State-Rev";
    /// Header naming the process that wrote a state message.
    pub const STATE_ORIGIN_HEADER: &str = "Troupe-Origin";
    /// Header marking a state message as a removal (it has no value) with [`STATE_OP_REMOVE`].
    pub const STATE_OP_HEADER: &str = "Troupe-Op";
    pub const STATE_OP_REMOVE: &str = "del";
}

/// JetStream KV buckets and keys of a cluster's coordination.
pub mod cluster {
    /// Leases (`shard.<n>`, `scheduler`) and worker heartbeats (`worker.<id>`); entries expire
    /// with the bucket's max age unless renewed.
    pub const LEASE_BUCKET: &str = "AP_LEASES";
    /// Values decided once for the whole cluster (`default-project`).
    pub const CLUSTER_BUCKET: &str = "AP_CLUSTER";
    pub const SCHEDULER_LEASE: &str = "scheduler";
    pub const DEFAULT_PROJECT: &str = "default-project";
    pub const WORKER_PREFIX: &str = "worker.";

    pub fn shard_lease(shard: u16) -> String {
        format!("shard.{shard}")
    }

    pub fn worker(id: &str) -> String {
        format!("{WORKER_PREFIX}{id}")
    }
}

/// Keys inside the `meta` tree.
pub mod meta {
    pub const DEFAULT_PROJECT: &str = "default_project_id";
    /// This process's id in a cluster (its worker id), chosen at first start.
    pub const NODE_ID: &str = "node_id";
    /// A constant sealed with the first encryption key ever used: a different key fails to open it.
    pub const ENCRYPTION_CHECK: &str = "encryption_check";
    /// The stream sequence of the replicated state applied so far (u64 be).
    pub const STATE_APPLIED: &str = "state_applied_seq";
}

/// Keys of store entries that Troupe itself keeps beside the users' (`store_entries`).
pub mod entries {
    /// A polling trigger's state (the items it has seen, its consecutive failures).
    pub fn poll_state(flow_id: &str) -> String {
        format!("flow/{flow_id}/__trigger_poll_state")
    }
}

/// What each role's NATS user may not publish (the rest is allowed): no process may delete
/// or purge a stream, a bucket or a consumer; a WORKER may not publish webhooks either (APP
/// processes ingest them). The embedded server is configured with these, and
/// docs/deployment.md shows them for a cluster you run.
pub mod nats_permissions {
    /// Denied to every Troupe process.
    pub const DESTRUCTIVE: &[&str] = &[
        "$JS.API.STREAM.DELETE.>",
        "$JS.API.STREAM.PURGE.>",
        "$JS.API.CONSUMER.DELETE.>",
        "$JS.API.ACCOUNT.PURGE.>",
        "$JS.API.STREAM.MSG.DELETE.AP_STATE",
        "$JS.API.STREAM.MSG.DELETE.AP_EVENTS",
    ];
    /// Denied to WORKER processes besides.
    pub const WORKER_ONLY: &[&str] = &["ap.webhook.>"];
    /// The users of the embedded server.
    pub const APP_USER: &str = "troupe-app";
    pub const WORKER_USER: &str = "troupe-worker";
    /// For an operator (maintenance, `nats` CLI): no restriction; no Troupe process uses it.
    pub const ADMIN_USER: &str = "troupe-admin";
}
