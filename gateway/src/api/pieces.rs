//! `/api/v1/pieces`: Activepieces' "Install Piece" and the list of installed pieces.
//!
//! `POST` installs `pieceName`@`pieceVersion` (a version or a semver range) from the npm
//! registry with `packageType: "REGISTRY"` (a JSON body), or an uploaded `.tgz` with
//! `packageType: "ARCHIVE"` (`multipart/form-data` with the file in `pieceArchive`). The whole
//! dependency closure is fetched and every tarball checked against its integrity; a package
//! with native code is refused (400, naming it). `scope: "PROJECT"` installs for the caller's
//! project; a project key may install for its own project only.
//!
//! An install loads the piece in the sandbox once to read its metadata (display name, auth,
//! actions and triggers with their props: Activepieces' piece metadata); a package that
//! cannot load there is refused (400, saying why) and not kept.

use crate::error::{json_response, ApiError};
use crate::http::{query_one, query_pairs, read_request, Scope};
use crate::AppState;
use bytes::Bytes;
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::{Request, Response, StatusCode};
use serde_json::{json, Value};
use troupe_actors::npm::NpmPieces;
use troupe_pieces::install::InstallError;
use troupe_pieces::installed::PiecesError;
use troupe_store::piece::PieceRecord;

type Resp = Result<Response<Full<Bytes>>, ApiError>;

/// Largest install request (an archive with its form).
const MAX_UPLOAD_BYTES: usize = 64 << 20;

#[derive(serde::Deserialize, Default)]
#[serde(rename_all = "camelCase")]
struct InstallRequest {
    piece_name: Option<String>,
    piece_version: Option<String>,
    package_type: Option<String>,
    scope: Option<String>,
    project_id: Option<String>,
}

/// The answer for one installed piece version: Activepieces' piece metadata model with the
/// package facts; `summary` counts actions and triggers instead of listing them (the list).
pub fn piece_json(r: &PieceRecord, summary: bool) -> Value {
    let root = r.lock.root();
    let mut out = match &r.metadata {
        Some(Value::Object(m)) => m.clone(),
        _ => serde_json::Map::new(),
    };
    if summary {
        for key in ["actions", "triggers"] {
            if let Some(Value::Object(m)) = out.get(key) {
                let n = m.len();
                out.insert(key.into(), n.into());
            }
        }
    }
    let facts = json!({
        "id": r.id,
        "name": r.name,
        "version": r.version,
        "packageType": r.package_type,
        "pieceType": if r.name.starts_with("@activepieces/") { "OFFICIAL" } else { "CUSTOM" },
        "projectId": r.project_id,
        "created": r.created,
        "updated": r.created,
        "dependencies": root.dependencies,
        "packages": r.lock.packages.len(),
    });
    out.extend(facts.as_object().expect("an object").clone());
    Value::Object(out)
}

pub async fn install(state: &AppState, scope: &Scope, req: Request<Incoming>) -> Resp {
    let multipart = req
        .headers()
        .get(hyper::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|ct| multer::parse_boundary(ct).ok());
    let (_, body) = read_request(req, MAX_UPLOAD_BYTES).await?;
    let (form, archive) = match multipart {
        Some(boundary) => read_form(body, boundary).await?,
        None => (
            serde_json::from_slice::<InstallRequest>(&body).map_err(|e| {
                ApiError::bad_request(format!("the body must be JSON with pieceName and pieceVersion: {e}"))
            })?,
            None,
        ),
    };
    let project_id = match form.scope.as_deref().unwrap_or("PLATFORM") {
        "PROJECT" => Some(match (&scope.project, form.project_id) {
            (Some(own), Some(asked)) if *own != asked => {
                return Err(ApiError::new(
                    StatusCode::FORBIDDEN,
                    "FORBIDDEN",
                    "a project key installs for its own project only",
                ))
            }
            (Some(own), _) => own.clone(),
            (None, Some(asked)) => asked,
            (None, None) => state.default_project.clone(),
        }),
        "PLATFORM" if scope.project.is_some() => {
            return Err(ApiError::new(
                StatusCode::FORBIDDEN,
                "FORBIDDEN",
                "a project key installs pieces with scope PROJECT only",
            ))
        }
        "PLATFORM" => None,
        other => return Err(ApiError::bad_request(format!("scope must be PLATFORM or PROJECT, not {other:?}"))),
    };
    let record = match form.package_type.as_deref().unwrap_or("REGISTRY") {
        "REGISTRY" => {
            let name = form
                .piece_name
                .filter(|n| !n.is_empty())
                .ok_or_else(|| ApiError::bad_request("pieceName is required"))?;
            let version = form.piece_version.unwrap_or_else(|| "latest".into());
            state.npm.installed.add(&name, &version, project_id).await
        }
        "ARCHIVE" => {
            let archive = archive.ok_or_else(|| {
                ApiError::bad_request("packageType ARCHIVE needs the .tgz in the form field pieceArchive")
            })?;
            state.npm.installed.add_archive(archive, project_id).await
        }
        other => return Err(ApiError::bad_request(format!("packageType must be REGISTRY or ARCHIVE, not {other:?}"))),
    }
    .map_err(install_error)?;
    // loading it once gives its metadata, and tells a package that cannot run here
    let record = match state.npm.load(&state.store, &state.code, state.egress.clone(), &record).await {
        Ok(_) => state.store.get_piece(&record.name, &record.version)?.unwrap_or(record),
        Err(e) => {
            if record.metadata.is_none() {
                state.store.delete_piece(&record.name, &record.version)?;
            }
            state.store.flush().await?;
            return Err(ApiError::new(StatusCode::BAD_REQUEST, "PIECE_NOT_INSTALLABLE", e.to_string()));
        }
    };
    state.store.flush().await?;
    Ok(json_response(StatusCode::CREATED, &piece_json(&record, false)))
}

/// The form fields and the archive of a multipart install request.
async fn read_form(body: Bytes, boundary: String) -> Result<(InstallRequest, Option<Vec<u8>>), ApiError> {
    let bad = |e: multer::Error| ApiError::bad_request(format!("the multipart form: {e}"));
    let mut parts =
        multer::Multipart::new(futures::stream::once(async move { Ok::<_, std::io::Error>(body) }), boundary);
    let (mut form, mut archive) = (InstallRequest::default(), None);
    while let Some(field) = parts.next_field().await.map_err(bad)? {
        let name = field.name().unwrap_or_default().to_string();
        let bytes = field.bytes().await.map_err(bad)?;
        let text = || String::from_utf8_lossy(&bytes).into_owned();
        match name.as_str() {
            "pieceArchive" => archive = Some(bytes.to_vec()),
            "pieceName" => form.piece_name = Some(text()),
            "pieceVersion" => form.piece_version = Some(text()),
            "packageType" => form.package_type = Some(text()),
            "scope" => form.scope = Some(text()),
            "projectId" => form.project_id = Some(text()),
            _ => {}
        }
    }
    Ok((form, archive))
}

/// What the user did wrong (400) or what failed on the way (502 for the registry).
fn install_error(e: PiecesError) -> ApiError {
    use troupe_pieces::registry::RegistryError as R;
    use troupe_pieces::resolve::ResolveError as V;
    let message = e.to_string();
    let bad_gateway = || ApiError::new(StatusCode::BAD_GATEWAY, "REGISTRY_UNAVAILABLE", message.clone());
    match e {
        PiecesError::Store(s) => s.into(),
        PiecesError::Install(InstallError::Registry(R::Fetch { .. }))
        | PiecesError::Install(InstallError::Resolve(V::Registry(R::Fetch { .. })))
        | PiecesError::Registry(R::Fetch { .. }) => bad_gateway(),
        _ => ApiError::new(StatusCode::BAD_REQUEST, "PIECE_NOT_INSTALLABLE", message),
    }
}

/// A platform piece is seen by every caller; a project's only by callers of that project.
fn visible(scope: &Scope, r: &PieceRecord) -> bool {
    r.project_id.as_deref().is_none_or(|p| scope.allows(p))
}

pub async fn list(state: &AppState, scope: &Scope) -> Resp {
    let mut pieces: Vec<PieceRecord> = state.store.list_pieces()?.into_iter().filter(|r| visible(scope, r)).collect();
    pieces.sort_by(|a, b| (&a.name, &a.created).cmp(&(&b.name, &b.created)));
    Ok(json_response(StatusCode::OK, &Value::Array(pieces.iter().map(|r| piece_json(r, true)).collect())))
}

/// `GET /pieces/{name}` (`@scope/name` as two segments), the newest installed version or the
/// one `?version=` names.
pub async fn get(state: &AppState, scope: &Scope, name: &str, req: &Request<Incoming>) -> Resp {
    let q = query_pairs(req)?;
    // `%40scope%2Fname` as one segment
    let name = &name.replace("%40", "@").replace("%2F", "/").replace("%2f", "/");
    let mut versions: Vec<PieceRecord> =
        state.store.piece_versions(name)?.into_iter().filter(|r| visible(scope, r)).collect();
    if let Some(v) = query_one(&q, "version") {
        versions.retain(|r| r.version == v);
    }
    versions.sort_by(|a, b| troupe_pieces::version_order(&a.version, &b.version));
    match versions.last() {
        Some(r) => Ok(json_response(StatusCode::OK, &piece_json(r, false))),
        None => Err(ApiError::not_found("piece", name)),
    }
}

/// `DELETE /pieces/{id}`.
pub async fn delete(state: &AppState, scope: &Scope, id: &str) -> Resp {
    let found = state.store.list_pieces()?.into_iter().find(|r| r.id == id);
    let Some(r) = found.filter(|r| visible(scope, r)) else {
        return Err(ApiError::not_found("piece", id));
    };
    if scope.project.is_some() && r.project_id.is_none() {
        return Err(ApiError::new(StatusCode::FORBIDDEN, "FORBIDDEN", "a project key cannot remove a platform piece"));
    }
    state.store.delete_piece(&r.name, &r.version)?;
    state.store.flush().await?;
    Ok(Response::builder().status(StatusCode::NO_CONTENT).body(Full::new(Bytes::new())).expect("valid response"))
}

#[derive(serde::Deserialize)]
#[serde(rename_all = "camelCase")]
struct OptionsRequest {
    piece_name: String,
    #[serde(default)]
    piece_version: Option<String>,
    action_or_trigger_name: String,
    property_name: String,
    #[serde(default)]
    input: serde_json::Map<String, Value>,
    #[serde(default)]
    search_value: Option<String>,
    #[serde(default)]
    flow_id: Option<String>,
    #[serde(default)]
    flow_version_id: Option<String>,
    #[serde(default)]
    project_id: Option<String>,
}

/// `POST /pieces/options` (Activepieces' Execute Property): runs a `Dropdown`'s or
/// `MultiSelectDropdown`'s `options`, or a `DynamicProperties` prop's `props`, in the sandbox
/// with the props entered so far (`input`, whose `auth` may name a connection) and answers as
/// Activepieces does: `{options, disabled, placeholder}` for a dropdown, the props for a
/// dynamic prop.
pub async fn options(state: &AppState, scope: &Scope, req: Request<Incoming>) -> Resp {
    let body: OptionsRequest = crate::http::read_json(req, state.config.api_body_limit).await?;
    let project_id = body.project_id.or_else(|| scope.project.clone()).unwrap_or_else(|| state.default_project.clone());
    if !scope.allows(&project_id) {
        return Err(ApiError::not_found("project", &project_id));
    }
    let record = NpmPieces::resolve_installed(&state.store, &body.piece_name, body.piece_version.as_deref())?
        .filter(|r| visible(scope, r))
        .ok_or_else(|| ApiError::not_found("piece", &body.piece_name))?;
    let piece = state
        .npm
        .load(&state.store, &state.code, state.egress.clone(), &record)
        .await
        .map_err(|e| ApiError::new(StatusCode::BAD_REQUEST, "PIECE_NOT_LOADABLE", e.to_string()))?;
    let lookup = troupe_actors::npm::connection_lookup(&state.store, &project_id);
    let mut input = body.input;
    if let Some(name) = input.get("auth").and_then(troupe_actors::npm::connection_template).map(str::to_string) {
        let value = lookup(&name)?.ok_or_else(|| ApiError::not_found("connection", &name))?;
        input.insert("auth".into(), value);
    }
    let flow_id = body.flow_id.unwrap_or_default();
    let request = json!({
        "actionOrTriggerName": body.action_or_trigger_name,
        "propertyName": body.property_name,
        "input": input,
        "searchValue": body.search_value,
        "projectId": project_id,
        "flowId": flow_id,
        "flowVersionId": body.flow_version_id,
        "storeKeyMax": state.config.store_key_max_chars,
        "server": troupe_actors::npm::server_context(&state.config, ""),
    });
    let facts = troupe_actors::npm::RunFacts::of(&state.store, &state.config, &project_id, &flow_id);
    let deadline = std::time::Instant::now() + OPTIONS_BUDGET;
    let outcome = troupe_actors::npm::call(
        &state.code,
        piece,
        troupe_pieces::runtime::Operation::Options,
        request,
        deadline,
        state.egress.clone(),
        troupe_actors::npm::host_ops(facts),
    )
    .await
    .map_err(|e| ApiError::new(StatusCode::BAD_REQUEST, "PROPERTY_FAILED", e.to_string()))?;
    Ok(json_response(StatusCode::OK, &outcome.output["options"]))
}

/// How long a dropdown's `options` may take: a user waits for it.
const OPTIONS_BUDGET: std::time::Duration = std::time::Duration::from_secs(30);

/// The piece's `auth.validate` on a connection value about to be saved: `Err` with the
/// piece's own message when it says the value is not valid. Pieces Troupe runs natively, or
/// that are not installed, are not asked.
pub async fn validate_auth(
    state: &AppState,
    piece_name: &str,
    piece_version: Option<&str>,
    value: &Value,
) -> Result<(), ApiError> {
    if troupe_actors::pieces::runs_natively(&state.config, piece_name) {
        return Ok(());
    }
    let Some(record) = NpmPieces::resolve_installed(&state.store, piece_name, piece_version)? else {
        return Ok(());
    };
    let piece = state
        .npm
        .load(&state.store, &state.code, state.egress.clone(), &record)
        .await
        .map_err(|e| ApiError::new(StatusCode::BAD_REQUEST, "PIECE_NOT_LOADABLE", e.to_string()))?;
    let request = json!({"value": value, "storeKeyMax": state.config.store_key_max_chars});
    let facts = troupe_actors::npm::RunFacts::of(&state.store, &state.config, "", "");
    let outcome = troupe_actors::npm::call(
        &state.code,
        piece,
        troupe_pieces::runtime::Operation::ValidateAuth,
        request,
        std::time::Instant::now() + OPTIONS_BUDGET,
        state.egress.clone(),
        troupe_actors::npm::host_ops(facts),
    )
    .await
    .map_err(|e| {
        ApiError::new(
            StatusCode::BAD_REQUEST,
            "CONNECTION_INVALID",
            format!("the piece could not check the connection: {e}"),
        )
    })?;
    if outcome.output["valid"] == false {
        let why = outcome.output["error"].as_str().unwrap_or("the piece says the connection is not valid");
        return Err(ApiError::new(StatusCode::BAD_REQUEST, "CONNECTION_INVALID", why.to_string()));
    }
    Ok(())
}
