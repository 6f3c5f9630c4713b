//! Request plumbing shared by every route: bodies with limits, JSON, queries, auth.

use crate::error::ApiError;
use crate::AppState;
use bytes::Bytes;
use http_body_util::BodyExt;
use hyper::body::Incoming;
use hyper::{Request, StatusCode};
use serde::de::DeserializeOwned;

/// Reads a whole body, refusing more than `limit` bytes with 413.
pub async fn read_body(mut body: Incoming, limit: usize) -> Result<Bytes, ApiError> {
    let mut buf = bytes::BytesMut::new();
    while let Some(frame) = body.frame().await {
        let frame = frame.map_err(|e| ApiError::bad_request(format!("could not read the request body: {e}")))?;
        if let Ok(data) = frame.into_data() {
            if buf.len() + data.len() > limit {
                discard(body).await;
                return Err(too_large(limit));
            }
            buf.extend_from_slice(&data);
        }
    }
    Ok(buf.freeze())
}

/// Most bytes read and dropped from a refused body so the client can read its 413 (a
/// "lingering close", as nginx does); past it, or past the deadline, the connection is cut.
const DISCARD_MAX: usize = 64 * 1024 * 1024;
const DISCARD_DEADLINE: std::time::Duration = std::time::Duration::from_secs(5);

/// Reads and drops the rest of a refused body, within bounds.
pub async fn discard(mut body: Incoming) {
    let drain = async {
        let mut seen = 0usize;
        while let Some(Ok(frame)) = body.frame().await {
            if let Ok(data) = frame.into_data() {
                seen += data.len();
                if seen > DISCARD_MAX {
                    return;
                }
            }
        }
    };
    let _ = tokio::time::timeout(DISCARD_DEADLINE, drain).await;
}

pub fn too_large(limit: usize) -> ApiError {
    ApiError::new(
        StatusCode::PAYLOAD_TOO_LARGE,
        "PAYLOAD_TOO_LARGE",
        format!("request body is larger than the limit of {} bytes", limit),
    )
}

/// Refuses early when the declared length is already over the limit.
pub fn check_content_length(req: &Request<Incoming>, limit: usize) -> Result<(), ApiError> {
    let declared = req
        .headers()
        .get(hyper::header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<usize>().ok());
    match declared {
        Some(n) if n > limit => Err(too_large(limit)),
        _ => Ok(()),
    }
}

/// The head of a request and its whole body, refusing more than `limit` bytes with 413.
pub async fn read_request(
    req: Request<Incoming>,
    limit: usize,
) -> Result<(hyper::http::request::Parts, Bytes), ApiError> {
    if let Err(e) = check_content_length(&req, limit) {
        discard(req.into_body()).await;
        return Err(e);
    }
    let (parts, body) = req.into_parts();
    Ok((parts, read_body(body, limit).await?))
}

pub async fn read_json<T: DeserializeOwned>(req: Request<Incoming>, limit: usize) -> Result<T, ApiError> {
    if let Err(e) = check_content_length(&req, limit) {
        discard(req.into_body()).await;
        return Err(e);
    }
    let body = read_body(req.into_body(), limit).await?;
    parse_json(&body)
}

/// A whole JSON body as `T`, or a 400 saying why not ([`read_json`] once the body is read).
pub(crate) fn parse_json<T: DeserializeOwned>(body: &[u8]) -> Result<T, ApiError> {
    if body.is_empty() {
        return Err(ApiError::new(
            StatusCode::BAD_REQUEST,
            "INVALID_JSON",
            "request body is empty; a JSON object is expected",
        ));
    }
    serde_json::from_slice(body).map_err(ApiError::from_json)
}

/// Query parameters in order; a name may repeat (`status=FAILED&status=TIMEOUT`).
pub fn query_pairs(req: &Request<Incoming>) -> Result<Vec<(String, String)>, ApiError> {
    serde_urlencoded::from_str(req.uri().query().unwrap_or_default())
        .map_err(|e| ApiError::bad_request(format!("query string: {e}")))
}

pub fn query_one<'a>(q: &'a [(String, String)], name: &str) -> Option<&'a str> {
    q.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str())
}

pub fn query_all<'a>(q: &'a [(String, String)], name: &str) -> Vec<&'a str> {
    q.iter().filter(|(k, _)| k == name).map(|(_, v)| v.as_str()).collect()
}

pub fn query_limit(q: &[(String, String)]) -> Result<usize, ApiError> {
    match query_one(q, "limit") {
        None => Ok(10),
        Some(v) => v
            .parse::<usize>()
            .ok()
            .filter(|n| (1..=1000).contains(n))
            .ok_or_else(|| ApiError::bad_request(format!("limit {v:?} must be a whole number from 1 to 1000"))),
    }
}

/// A permission of Activepieces' project roles (its `Permission` names).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Permission {
    ReadFlow,
    WriteFlow,
    UpdateFlowStatus,
    ReadRun,
    WriteRun,
    ReadAppConnection,
    WriteAppConnection,
    ReadFolder,
    WriteFolder,
    ReadProjectMember,
    WriteProjectMember,
    ReadInvitation,
    WriteInvitation,
    ReadProject,
}

/// A project role: the seed's "Project Permissions" (Admin, Editor, Operator, Viewer).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Role {
    Admin,
    Editor,
    Operator,
    Viewer,
}

impl Role {
    pub const ALL: [Role; 4] = [Role::Admin, Role::Editor, Role::Operator, Role::Viewer];

    pub fn name(self) -> &'static str {
        match self {
            Role::Admin => "Admin",
            Role::Editor => "Editor",
            Role::Operator => "Operator",
            Role::Viewer => "Viewer",
        }
    }

    /// `Admin`, `EDITOR`, `operator`…: any case.
    pub fn parse(name: &str) -> Option<Role> {
        Role::ALL.into_iter().find(|r| r.name().eq_ignore_ascii_case(name))
    }

    /// The seed's table: Admin does everything in its project; Editor all but members and
    /// invitations; Operator runs, connections and turning flows on and off (reading them);
    /// Viewer reads.
    pub fn permits(self, p: Permission) -> bool {
        use Permission::*;
        match self {
            Role::Admin => true,
            Role::Editor => !matches!(p, WriteProjectMember | ReadInvitation | WriteInvitation),
            Role::Operator => matches!(
                p,
                ReadFlow
                    | ReadFolder
                    | UpdateFlowStatus
                    | ReadRun
                    | WriteRun
                    | ReadAppConnection
                    | WriteAppConnection
                    | ReadProjectMember
                    | ReadProject
            ),
            Role::Viewer => {
                matches!(p, ReadFlow | ReadFolder | ReadRun | ReadAppConnection | ReadProjectMember | ReadProject)
            }
        }
    }
}

/// What a principal may do: everything (the platform's admin: `AP_API_KEY`, an admin key, a
/// user whose platform role is ADMIN), or what its role allows in each of its projects.
#[derive(Clone, Debug)]
pub enum Grants {
    Platform,
    Projects(std::collections::BTreeMap<String, Role>),
}

/// Who is asking, and what this request needs. Objects of a project the principal may not
/// see (or may not act on as asked) answer 404, as if they did not exist, so that ids do not
/// leak; a request no role of the principal allows answers 403.
#[derive(Clone, Debug)]
pub struct Scope {
    /// The one project of a principal that has one (a project's key, a member of one project).
    pub project: Option<String>,
    /// Who asks, as audit events name them (`{type: API_KEY | USER, id, …}`); `None` for
    /// Troupe itself (a webhook finding its flow).
    pub principal: Option<serde_json::Value>,
    pub grants: Grants,
    /// The permission this request needs in the object's project (set by the router).
    pub need: Option<Permission>,
}

impl Scope {
    /// Troupe itself: every project, no principal.
    pub fn troupe() -> Scope {
        Scope { project: None, principal: None, grants: Grants::Platform, need: None }
    }

    fn with_grants(principal: serde_json::Value, grants: Grants) -> Scope {
        let project = match &grants {
            Grants::Projects(m) if m.len() == 1 => m.keys().next().cloned(),
            _ => None,
        };
        Scope { project, principal: Some(principal), grants, need: None }
    }

    /// This scope for a request that needs `p`: 403 when no project of the principal allows it.
    pub fn needing(&self, p: Permission) -> Result<Scope, ApiError> {
        let allowed = match &self.grants {
            Grants::Platform => true,
            Grants::Projects(m) => m.values().any(|r| r.permits(p)),
        };
        if !allowed {
            return Err(ApiError::new(
                StatusCode::FORBIDDEN,
                "PERMISSION_DENIED",
                format!("your role does not allow this ({p:?})"),
            ));
        }
        Ok(Scope { need: Some(p), ..self.clone() })
    }

    pub fn allows(&self, project: &str) -> bool {
        match &self.grants {
            Grants::Platform => true,
            Grants::Projects(m) => m.get(project).is_some_and(|r| self.need.is_none_or(|p| r.permits(p))),
        }
    }

    /// The projects this scope may act on as it needs (`None`: every project).
    pub fn projects(&self) -> Option<Vec<String>> {
        match &self.grants {
            Grants::Platform => None,
            Grants::Projects(m) => Some(m.keys().filter(|p| self.allows(p)).cloned().collect()),
        }
    }

    /// The project a list is about: the one asked for, which the principal must see; else its
    /// one project; for the platform's admin, the one asked for (if any).
    pub fn list_filter(&self, asked: Option<&str>) -> Result<Option<String>, ApiError> {
        match (&self.grants, asked) {
            (Grants::Platform, asked) => Ok(asked.map(String::from)),
            (Grants::Projects(_), Some(p)) if self.allows(p) => Ok(Some(p.to_string())),
            (Grants::Projects(_), Some(p)) => Err(ApiError::not_found("project", p)),
            (Grants::Projects(_), None) => match self.projects().unwrap_or_default().as_slice() {
                [one] => Ok(Some(one.clone())),
                [] => Err(ApiError::not_found("project", "any")),
                _ => Err(ApiError::bad_request("projectId is required: you are a member of several projects")),
            },
        }
    }

    pub fn require_admin(&self) -> Result<(), ApiError> {
        match self.grants {
            Grants::Platform => Ok(()),
            Grants::Projects(_) => Err(ApiError::new(
                StatusCode::FORBIDDEN,
                "FORBIDDEN",
                "managing projects, keys and pieces needs the platform's admin (an admin key or an admin user)",
            )),
        }
    }
}

/// `Authorization: Bearer <token>`: an API key (stored hashed), or a user's session.
pub fn authenticate(state: &AppState, req: &Request<Incoming>) -> Result<Scope, ApiError> {
    let unauthorized = |m: &str| ApiError::new(StatusCode::UNAUTHORIZED, "UNAUTHORIZED", m);
    let header = req
        .headers()
        .get(hyper::header::AUTHORIZATION)
        .ok_or_else(|| unauthorized("missing Authorization header; send `Authorization: Bearer <api key>`"))?;
    let key = header
        .to_str()
        .ok()
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(str::trim)
        .ok_or_else(|| unauthorized("Authorization header must be `Bearer <api key>`"))?;
    if key.starts_with("ses-") {
        let now = chrono::Utc::now().timestamp();
        let session = state
            .store
            .session(key, now)?
            .ok_or_else(|| unauthorized("the session has expired or ended; sign in again"))?;
        let user = state.store.get_user(&session.user_id)?.ok_or_else(|| unauthorized("the user no longer exists"))?;
        if user.status != "ACTIVE" {
            return Err(unauthorized("the user is not active"));
        }
        let principal = serde_json::json!({"type": "USER", "id": user.id, "userId": user.id, "userEmail": user.email});
        let grants = if user.platform_role == "ADMIN" {
            Grants::Platform
        } else {
            let roles = state.store.list_members(None, Some(&user.id))?;
            Grants::Projects(
                roles.into_iter().filter_map(|m| Role::parse(&m.role).map(|r| (m.project_id, r))).collect(),
            )
        };
        return Ok(Scope::with_grants(principal, grants));
    }
    match state.store.api_key(key)? {
        Some(rec) => {
            let principal = serde_json::json!({"type": "API_KEY", "id": rec.id, "displayName": rec.display_name});
            let grants = match rec.project_id {
                None => Grants::Platform,
                Some(p) => {
                    Grants::Projects([(p, rec.role.as_deref().and_then(Role::parse).unwrap_or(Role::Admin))].into())
                }
            };
            Ok(Scope::with_grants(principal, grants))
        }
        None => Err(unauthorized("invalid API key")),
    }
}
