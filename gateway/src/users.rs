//! Users and project roles (Activepieces' authentication, project members and user
//! invitations). Sign-up is closed: the first admin comes from `AP_ADMIN_EMAIL` and
//! `AP_ADMIN_PASSWORD`, everyone else is invited into a project with a role and signs up (or
//! in) with the invited email. Passwords are argon2id hashes; sessions are random tokens kept
//! hashed, valid for `SESSION_TTL`.

use crate::error::{json_response, ApiError};
use crate::http::{query_one, query_pairs, read_json, Role, Scope};
use crate::AppState;
use argon2::password_hash::{rand_core::OsRng, PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use argon2::Argon2;
use bytes::Bytes;
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::{Request, Response, StatusCode};
use serde::Deserialize;
use serde_json::{json, Value};
use troupe_store::db::audit::{event, PLATFORM_ID};
use troupe_store::db::users::{Invitation, Member, User};
use troupe_store::ids::{new_id, now_iso};
use troupe_store::Store;

type Resp = Result<Response<Full<Bytes>>, ApiError>;

/// How long a session lasts (Activepieces' tokens last 7 days).
pub const SESSION_TTL: i64 = 7 * 24 * 3600;
/// The shortest password accepted.
pub const MIN_PASSWORD: usize = 8;
/// Failed sign-ins an email may have within [`LOCKOUT`] before it is refused for the rest of it.
pub const MAX_FAILURES: u32 = 5;
pub const LOCKOUT: std::time::Duration = std::time::Duration::from_secs(15 * 60);

/// Failed sign-ins by email in this process: (count, first failure).
static FAILURES: std::sync::LazyLock<dashmap::DashMap<String, (u32, std::time::Instant)>> =
    std::sync::LazyLock::new(Default::default);

fn hash_password(password: &str) -> Result<String, ApiError> {
    let salt = SaltString::generate(&mut OsRng);
    Argon2::default()
        .hash_password(password.as_bytes(), &salt)
        .map(|h| h.to_string())
        .map_err(|e| ApiError::internal(format!("hashing the password: {e}")))
}

fn password_matches(password: &str, hash: &str) -> bool {
    PasswordHash::new(hash).is_ok_and(|h| Argon2::default().verify_password(password.as_bytes(), &h).is_ok())
}

fn check_password(password: &str) -> Result<(), ApiError> {
    if password.chars().count() < MIN_PASSWORD {
        return Err(ApiError::bad_request(format!("the password must have at least {MIN_PASSWORD} characters")));
    }
    Ok(())
}

fn new_user(email: &str, password: &str, first: &str, last: &str, platform_role: &str) -> Result<User, ApiError> {
    let now = now_iso();
    Ok(User {
        id: new_id(),
        created: now.clone(),
        updated: now,
        email: email.trim().to_string(),
        first_name: first.into(),
        last_name: last.into(),
        platform_role: platform_role.into(),
        status: "ACTIVE".into(),
        password_hash: hash_password(password)?,
    })
}

/// The platform's first admin, from `AP_ADMIN_EMAIL` and `AP_ADMIN_PASSWORD`, made once (a
/// user with that email already there is left as it is).
pub fn ensure_first_admin(store: &Store, email: Option<&str>, password: Option<&str>) -> anyhow::Result<()> {
    let (Some(email), Some(password)) = (email, password) else { return Ok(()) };
    if store.user_by_email(email)?.is_some() {
        return Ok(());
    }
    check_password(password).map_err(|e| anyhow::anyhow!("AP_ADMIN_PASSWORD: {}", e.message))?;
    let user = new_user(email, password, "", "", "ADMIN").map_err(|e| anyhow::anyhow!(e.message))?;
    store.put_user(&user)?;
    let data = json!({"source": "credentials", "user": user_meta(&user)});
    store.append_audit(event("user.signed.up", None, Some(&principal_of(&user)), data))?;
    tracing::info!(email, "made the platform's first admin (AP_ADMIN_EMAIL)");
    Ok(())
}

fn user_meta(user: &User) -> Value {
    json!({"id": user.id, "email": user.email, "firstName": user.first_name, "lastName": user.last_name})
}

fn principal_of(user: &User) -> Value {
    json!({"type": "USER", "id": user.id, "userId": user.id, "userEmail": user.email})
}

/// The invitations waiting for `user`'s email become memberships.
fn accept_invitations(state: &AppState, user: &User) -> Result<(), ApiError> {
    for mut invitation in state.store.list_invitations(None, Some(&user.email))? {
        if invitation.status != "PENDING" {
            continue;
        }
        add_member(state, &invitation.project_id, &user.id, &invitation.project_role)?;
        invitation.status = "ACCEPTED".into();
        invitation.updated = now_iso();
        state.store.put_invitation(&invitation)?;
    }
    Ok(())
}

/// Makes `user_id` a member of `project` with `role` (or changes its role there).
fn add_member(state: &AppState, project: &str, user_id: &str, role: &str) -> Result<Member, ApiError> {
    let now = now_iso();
    let existing = state.store.list_members(Some(project), Some(user_id))?.into_iter().next();
    let member = match existing {
        Some(m) => Member { role: role.into(), updated: now, ..m },
        None => Member {
            id: new_id(),
            created: now.clone(),
            updated: now,
            project_id: project.into(),
            user_id: user_id.into(),
            role: role.into(),
        },
    };
    state.store.put_member(&member)?;
    Ok(member)
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Credentials {
    email: String,
    password: String,
    #[serde(default)]
    first_name: String,
    #[serde(default)]
    last_name: String,
}

/// `POST /api/v1/authentication/{sign-in | sign-up | sign-out}`.
pub async fn authentication(state: &AppState, action: &str, req: Request<Incoming>) -> Resp {
    match action {
        "sign-out" => {
            // a valid principal (401 otherwise); only a session has something to end
            crate::http::authenticate(state, &req)?;
            let token = req.headers().get(hyper::header::AUTHORIZATION).and_then(|h| h.to_str().ok());
            if let Some(token) = token.and_then(|h| h.strip_prefix("Bearer ")) {
                state.store.end_session(token.trim())?;
            }
            state.store.flush().await?;
            Ok(Response::builder().status(StatusCode::NO_CONTENT).body(Full::new(Bytes::new())).expect("valid"))
        }
        "sign-in" | "sign-up" => {
            let body: Credentials = read_json(req, state.config.api_body_limit).await?;
            let user = if action == "sign-up" { sign_up(state, &body)? } else { sign_in(state, &body)? };
            accept_invitations(state, &user)?;
            let expires = chrono::Utc::now().timestamp() + SESSION_TTL;
            let token = state.store.create_session(&user.id, expires)?;
            let audit = if action == "sign-up" { "user.signed.up" } else { "user.signed.in" };
            let mut data = json!({"user": user_meta(&user)});
            if action == "sign-up" {
                data["source"] = "credentials".into();
            }
            state.store.append_audit(event(audit, None, Some(&principal_of(&user)), data))?;
            state.store.flush().await?;
            let project = state.store.list_members(None, Some(&user.id))?.into_iter().next().map(|m| m.project_id);
            let status = if action == "sign-up" { StatusCode::CREATED } else { StatusCode::OK };
            Ok(json_response(
                status,
                &json!({"id": user.id, "email": user.email, "firstName": user.first_name, "lastName": user.last_name,
                    "status": user.status, "platformRole": user.platform_role, "platformId": PLATFORM_ID,
                    "projectId": project, "token": token, "verified": true, "created": user.created, "updated": user.updated}),
            ))
        }
        other => Err(ApiError::new(StatusCode::NOT_FOUND, "NOT_FOUND", format!("no route authentication/{other}"))),
    }
}

fn sign_in(state: &AppState, body: &Credentials) -> Result<User, ApiError> {
    let refused = || ApiError::new(StatusCode::UNAUTHORIZED, "INVALID_CREDENTIALS", "invalid email or password");
    // guessing is slowed down: after MAX_FAILURES an email waits out the LOCKOUT
    let email = body.email.trim().to_lowercase();
    if let Some(entry) = FAILURES.get(&email) {
        let (count, since) = *entry;
        if count >= MAX_FAILURES && since.elapsed() < LOCKOUT {
            let wait = (LOCKOUT - since.elapsed()).as_secs();
            let err = ApiError::new(
                StatusCode::TOO_MANY_REQUESTS,
                "TOO_MANY_SIGN_IN_ATTEMPTS",
                format!("too many failed sign-ins for this email; try again in {wait} s"),
            );
            return Err(ApiError { retry_after: Some(wait.max(1)), ..err });
        }
    }
    let user = state.store.user_by_email(&body.email)?;
    match user {
        Some(u) if u.status == "ACTIVE" && password_matches(&body.password, &u.password_hash) => {
            FAILURES.remove(&email);
            Ok(u)
        }
        other => {
            let mut entry = FAILURES.entry(email).or_insert((0, std::time::Instant::now()));
            if entry.1.elapsed() >= LOCKOUT {
                *entry = (0, std::time::Instant::now());
            }
            entry.0 += 1;
            drop(entry);
            // the failed attempt is audited too (who tried, never what password)
            let data = json!({"user": other.as_ref().map(user_meta).unwrap_or_else(|| json!({"email": body.email}))});
            let mut failed = event("user.signed.in", None, None, data);
            failed["outcome"] = "FAILED".into();
            state.store.append_audit(failed)?;
            Err(refused())
        }
    }
}

fn sign_up(state: &AppState, body: &Credentials) -> Result<User, ApiError> {
    if state.store.user_by_email(&body.email)?.is_some() {
        return Err(ApiError::conflict("a user with this email exists; sign in"));
    }
    let invited = state.store.list_invitations(None, Some(&body.email))?.iter().any(|i| i.status == "PENDING");
    if !invited {
        return Err(ApiError::new(
            StatusCode::FORBIDDEN,
            "SIGN_UP_CLOSED",
            "sign-up is closed: ask a project's admin for an invitation to this email",
        ));
    }
    check_password(&body.password)?;
    let user = new_user(&body.email, &body.password, &body.first_name, &body.last_name, "MEMBER")?;
    state.store.put_user(&user)?;
    Ok(user)
}

fn member_dto(state: &AppState, m: &Member) -> Result<Value, ApiError> {
    let user = state.store.get_user(&m.user_id)?;
    Ok(json!({"id": m.id, "created": m.created, "updated": m.updated, "platformId": PLATFORM_ID,
        "projectId": m.project_id, "userId": m.user_id, "projectRole": {"name": m.role},
        "user": user.as_ref().map(user_meta)}))
}

/// `GET /api/v1/project-members?projectId=`.
pub async fn list_members(state: &AppState, scope: &Scope, req: Request<Incoming>) -> Resp {
    let q = query_pairs(&req)?;
    let project = scope.list_filter(query_one(&q, "projectId"))?;
    let data = state
        .store
        .list_members(project.as_deref(), None)?
        .iter()
        .filter(|m| scope.allows(&m.project_id))
        .map(|m| member_dto(state, m))
        .collect::<Result<Vec<_>, _>>()?;
    Ok(json_response(StatusCode::OK, &json!({"data": data, "next": null, "previous": null})))
}

fn load_member(state: &AppState, scope: &Scope, id: &str) -> Result<Member, ApiError> {
    state
        .store
        .get_member(id)?
        .filter(|m| scope.allows(&m.project_id))
        .ok_or_else(|| ApiError::not_found("project member", id))
}

fn parse_role(name: &str) -> Result<Role, ApiError> {
    Role::parse(name)
        .ok_or_else(|| ApiError::bad_request(format!("role {name:?} must be Admin, Editor, Operator or Viewer")))
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct UpdateMember {
    #[serde(alias = "projectRole")]
    role: String,
}

/// `POST /api/v1/project-members/{id}`: a member's new role.
pub async fn update_member(state: &AppState, scope: &Scope, id: &str, req: Request<Incoming>) -> Resp {
    let member = load_member(state, scope, id)?;
    let body: UpdateMember = read_json(req, state.config.api_body_limit).await?;
    let role = parse_role(&body.role)?;
    let member = add_member(state, &member.project_id, &member.user_id, role.name())?;
    state.store.flush().await?;
    Ok(json_response(StatusCode::OK, &member_dto(state, &member)?))
}

pub async fn delete_member(state: &AppState, scope: &Scope, id: &str) -> Resp {
    let member = load_member(state, scope, id)?;
    state.store.delete_member(&member.id)?;
    state.store.flush().await?;
    Ok(Response::builder().status(StatusCode::NO_CONTENT).body(Full::new(Bytes::new())).expect("valid"))
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Invite {
    email: String,
    #[serde(default)]
    project_id: Option<String>,
    #[serde(default)]
    project_role: Option<String>,
    /// Activepieces' `PROJECT` (a platform invitation is the platform admin's business).
    #[serde(default, rename = "type")]
    kind: Option<String>,
}

fn invitation_dto(i: &Invitation) -> Value {
    json!({"id": i.id, "created": i.created, "updated": i.updated, "email": i.email, "status": i.status,
        "type": "PROJECT", "platformId": PLATFORM_ID, "projectId": i.project_id, "projectRole": i.project_role})
}

/// `POST /api/v1/user-invitations`: invites an email into a project with a role; a user who
/// exists becomes a member at once.
pub async fn invite(state: &AppState, scope: &Scope, req: Request<Incoming>) -> Resp {
    let body: Invite = read_json(req, state.config.api_body_limit).await?;
    if body.kind.as_deref().is_some_and(|k| k != "PROJECT") {
        return Err(ApiError::bad_request("only PROJECT invitations are supported"));
    }
    if !body.email.contains('@') {
        return Err(ApiError::bad_request("email must be an email address"));
    }
    let project = body
        .project_id
        .clone()
        .or_else(|| scope.project.clone())
        .ok_or_else(|| ApiError::bad_request("projectId is required"))?;
    if !scope.allows(&project) || !state.store.project_exists(&project)? {
        return Err(ApiError::not_found("project", &project));
    }
    let role = parse_role(body.project_role.as_deref().unwrap_or("Viewer"))?;
    let now = now_iso();
    let existing = state.store.list_invitations(Some(&project), Some(&body.email))?.into_iter().next();
    let mut invitation = match existing {
        Some(i) => Invitation { project_role: role.name().into(), updated: now, status: "PENDING".into(), ..i },
        None => Invitation {
            id: new_id(),
            created: now.clone(),
            updated: now,
            email: body.email.trim().into(),
            project_id: project.clone(),
            project_role: role.name().into(),
            status: "PENDING".into(),
        },
    };
    if let Some(user) = state.store.user_by_email(&body.email)? {
        add_member(state, &project, &user.id, role.name())?;
        invitation.status = "ACCEPTED".into();
    }
    state.store.put_invitation(&invitation)?;
    state.store.flush().await?;
    Ok(json_response(StatusCode::CREATED, &invitation_dto(&invitation)))
}

pub async fn list_invitations(state: &AppState, scope: &Scope, req: Request<Incoming>) -> Resp {
    let q = query_pairs(&req)?;
    let project = scope.list_filter(query_one(&q, "projectId"))?;
    let data: Vec<Value> = state
        .store
        .list_invitations(project.as_deref(), None)?
        .iter()
        .filter(|i| scope.allows(&i.project_id))
        .map(invitation_dto)
        .collect();
    Ok(json_response(StatusCode::OK, &json!({"data": data, "next": null, "previous": null})))
}

pub async fn delete_invitation(state: &AppState, scope: &Scope, id: &str) -> Resp {
    let invitation = state
        .store
        .get_invitation(id)?
        .filter(|i| scope.allows(&i.project_id))
        .ok_or_else(|| ApiError::not_found("user invitation", id))?;
    state.store.delete_invitation(&invitation.id)?;
    state.store.flush().await?;
    Ok(Response::builder().status(StatusCode::NO_CONTENT).body(Full::new(Bytes::new())).expect("valid"))
}
