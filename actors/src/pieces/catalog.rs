//! The pieces Troupe runs natively: names, actions, triggers and their required inputs, as
//! published by Activepieces. Validation reads this table; a flow that names anything else
//! cannot be published.

pub struct ActionDef {
    pub name: &'static str,
    /// Inputs that must be present (they may be templates).
    pub required: &'static [&'static str],
}

pub struct PieceDef {
    pub name: &'static str,
    pub actions: &'static [ActionDef],
    pub triggers: &'static [&'static str],
}

const fn action(name: &'static str, required: &'static [&'static str]) -> ActionDef {
    ActionDef { name, required }
}

pub const WEBHOOK: &str = "@activepieces/piece-webhook";
pub const HTTP: &str = "@activepieces/piece-http";
pub const STORE: &str = "@activepieces/piece-store";
pub const DATA_MAPPER: &str = "@activepieces/piece-data-mapper";
pub const TEXT_HELPER: &str = "@activepieces/piece-text-helper";
pub const MATH_HELPER: &str = "@activepieces/piece-math-helper";
pub const DATE_HELPER: &str = "@activepieces/piece-date-helper";
pub const DELAY: &str = "@activepieces/piece-delay";
pub const APPROVAL: &str = "@activepieces/piece-approval";
pub const CRYPTO: &str = "@activepieces/piece-crypto";
pub const CSV: &str = "@activepieces/piece-csv";
pub const JSON: &str = "@activepieces/piece-json";
/// `read_connection` is answered by the interpreter, which keeps the connection's secrets out
/// of the journal.
pub const CONNECTIONS: &str = "@activepieces/piece-connections";
/// Trigger-only pieces, run by `troupe-scheduler`.
pub const SCHEDULE: &str = "@activepieces/piece-schedule";
pub const RSS: &str = "@activepieces/piece-rss";
/// Fault injection for tests and drills (`panic`, `sleep`); present only when
/// `TROUPE_DEBUG_PIECES=1`.
pub const DEBUG: &str = "@troupe/piece-debug";

pub static PIECES: &[PieceDef] = &[
    PieceDef {
        name: DELAY,
        actions: &[action("delayFor", &["delayFor"]), action("delay_until", &["delayUntilTimestamp"])],
        triggers: &[],
    },
    PieceDef {
        name: APPROVAL,
        actions: &[action("wait_for_approval", &[]), action("create_approval_links", &[])],
        triggers: &[],
    },
    PieceDef {
        name: SCHEDULE,
        actions: &[],
        triggers: &["every_x_minutes", "every_hour", "every_day", "every_week", "every_month", "cron_expression"],
    },
    PieceDef { name: RSS, actions: &[], triggers: &["new-item"] },
    PieceDef {
        name: WEBHOOK,
        actions: &[action("return_response", &[]), action("return_response_and_wait_for_next_webhook", &[])],
        triggers: &["catch_webhook"],
    },
    PieceDef {
        name: HTTP,
        actions: &[
            action("send_request", &["method", "url"]),
            action("return_response", &[]),
            action("parse_url", &["url"]),
        ],
        triggers: &[],
    },
    PieceDef {
        name: STORE,
        actions: &[
            action("put", &["key", "value"]),
            action("get", &["key"]),
            action("remove_value", &["key"]),
            action("append", &["key", "value"]),
            action("add_to_list", &["key", "value"]),
            action("remove_from_list", &["key", "value"]),
        ],
        triggers: &[],
    },
    PieceDef { name: DATA_MAPPER, actions: &[action("advanced_mapping", &["mapping"])], triggers: &[] },
    PieceDef {
        name: TEXT_HELPER,
        actions: &[
            action("concat", &[]),
            action("replace", &["text", "searchValue"]),
            action("split", &["text", "delimiter"]),
            action("find", &["text", "expression"]),
            action("defaultValue", &["defaultString"]),
            action("markdown_to_html", &["markdown"]),
            action("html_to_markdown", &["html"]),
            action("stripHtml", &["html"]),
            action("slugify", &["text"]),
            action("json_to_ascii_table", &["data"]),
            action("find_all", &["text", "expression"]),
            action("extract_from_html", &["html"]),
        ],
        triggers: &[],
    },
    PieceDef {
        name: MATH_HELPER,
        actions: &[
            action("addition_math", &["first_number", "second_number"]),
            action("generateRandom_math", &["first_number", "second_number"]),
            action("subtraction_math", &["first_number", "second_number"]),
            action("multiplication_math", &["first_number", "second_number"]),
            action("division_math", &["first_number", "second_number"]),
            action("modulo_math", &["first_number", "second_number"]),
        ],
        triggers: &[],
    },
    PieceDef {
        name: DATE_HELPER,
        actions: &[
            action("get_current_date", &[]),
            action("date_difference", &["startDate", "endDate"]),
            action("format_date", &["inputDate"]),
            action("add_subtract_date", &["inputDate", "expression"]),
            action("extract_date_parts", &["inputDate"]),
            action("next_day_of_week", &["weekday"]),
            action("next_day_of_year", &["month", "day"]),
            action("first_day_of_previous_month", &[]),
            action("last_day_of_previous_month", &[]),
        ],
        triggers: &[],
    },
    PieceDef {
        name: CRYPTO,
        actions: &[
            action("hash-text", &["method", "text"]),
            action("hmac-signature", &["secretKey", "secretKeyEncoding", "method", "text"]),
            action("base64-encode", &["text"]),
            action("base64-decode", &["text"]),
            action("generate-password", &["length"]),
        ],
        triggers: &[],
    },
    PieceDef {
        name: CSV,
        actions: &[action("convert_csv_to_json", &["csv_text"]), action("convert_json_to_csv", &["json_array"])],
        triggers: &[],
    },
    PieceDef {
        name: JSON,
        actions: &[
            action("convert_json_to_text", &["json"]),
            action("convert_text_to_json", &["text"]),
            action("merge_json", &["jsonArray"]),
        ],
        triggers: &[],
    },
    PieceDef { name: CONNECTIONS, actions: &[action("read_connection", &["connection_name"])], triggers: &[] },
];

static DEBUG_PIECE: PieceDef = PieceDef {
    name: DEBUG,
    actions: &[action("panic", &[]), action("sleep", &["ms"]), action("fail_unless_flag", &["flag"])],
    triggers: &[],
};

pub fn debug_pieces_enabled() -> bool {
    static ENABLED: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    *ENABLED.get_or_init(|| std::env::var("TROUPE_DEBUG_PIECES").is_ok_and(|v| v == "1"))
}

pub fn piece(name: &str) -> Option<&'static PieceDef> {
    if name == DEBUG {
        return debug_pieces_enabled().then_some(&DEBUG_PIECE);
    }
    PIECES.iter().find(|p| p.name == name)
}

pub fn action_def(piece_name: &str, action: &str) -> Option<&'static ActionDef> {
    piece(piece_name)?.actions.iter().find(|a| a.name == action)
}
