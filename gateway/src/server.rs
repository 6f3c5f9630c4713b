//! The listener: plain HTTP/1.1 or TLS through rustls, one task per connection under a
//! connection cap, and the routing table.

use crate::error::{json_response, ApiError};
use crate::http::Permission;
use crate::{api, http, webhooks, AppState};
use anyhow::Context;
use bytes::Bytes;
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use serde_json::json;
use std::convert::Infallible;
use std::path::Path;
use std::sync::Arc;
use tokio::net::TcpListener;
use tokio::sync::Semaphore;
use troupe_store::config::ContainerType;
use troupe_store::tasks::StopSignal;

/// Open connections beyond this wait to be accepted: a flood cannot grow memory unbounded.
pub const MAX_CONNECTIONS: usize = 4096;

pub fn load_tls(cert: &Path, key: &Path) -> anyhow::Result<tokio_rustls::TlsAcceptor> {
    let certs = rustls_pemfile::certs(&mut std::io::BufReader::new(
        std::fs::File::open(cert).with_context(|| format!("opening AP_TLS_CERT {}", cert.display()))?,
    ))
    .collect::<Result<Vec<_>, _>>()
    .context("reading AP_TLS_CERT")?;
    let key = rustls_pemfile::private_key(&mut std::io::BufReader::new(
        std::fs::File::open(key).with_context(|| format!("opening AP_TLS_KEY {}", key.display()))?,
    ))
    .context("reading AP_TLS_KEY")?
    .context("AP_TLS_KEY holds no private key")?;
    let config = rustls::ServerConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
        .with_safe_default_protocol_versions()?
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .context("AP_TLS_CERT and AP_TLS_KEY do not form a valid pair")?;
    Ok(tokio_rustls::TlsAcceptor::from(Arc::new(config)))
}

/// How long a shutdown waits for the requests in flight (a sync webhook waiting for its run,
/// an upload) before the process goes on stopping.
pub const SHUTDOWN_GRACE: std::time::Duration = std::time::Duration::from_secs(30);

/// Serves one connection until it ends; when `stop` turns true, an idle connection closes at
/// once and a busy one after its response (hyper's graceful shutdown).
macro_rules! serve_until_stopped {
    ($conn:expr, $stop:expr) => {{
        let conn = $conn;
        tokio::pin!(conn);
        tokio::select! {
            r = conn.as_mut() => r,
            _ = $stop.wait() => {
                conn.as_mut().graceful_shutdown();
                conn.await
            }
        }
    }};
}

/// Serves until `shutdown` is set, then stops accepting and waits (up to [`SHUTDOWN_GRACE`])
/// for the open connections to finish what they were answering. The connections are this
/// task's own: it waits for them, and a request whose handler panics is answered 500.
pub async fn serve(
    listener: TcpListener,
    tls: Option<tokio_rustls::TlsAcceptor>,
    state: Arc<AppState>,
    mut shutdown: StopSignal,
) {
    let permits = Arc::new(Semaphore::new(MAX_CONNECTIONS));
    loop {
        let permit = tokio::select! {
            p = permits.clone().acquire_owned() => p.expect("never closed"),
            _ = shutdown.wait() => break,
        };
        let (stream, _) = tokio::select! {
            r = listener.accept() => match r {
                Ok(c) => c,
                Err(e) => { tracing::warn!(error = %e, "accept failed"); continue; }
            },
            _ = shutdown.wait() => break,
        };
        let _ = stream.set_nodelay(true);
        let state = state.clone();
        let tls = tls.clone();
        let mut stop = shutdown.clone();
        tokio::spawn(async move {
            let svc = service_fn(move |req| {
                let state = state.clone();
                async move { Ok::<_, Infallible>(handle(&state, req).await) }
            });
            let result = match tls {
                Some(acceptor) => match acceptor.accept(stream).await {
                    Ok(s) => serve_until_stopped!(http1::Builder::new().serve_connection(TokioIo::new(s), svc), stop),
                    Err(e) => {
                        tracing::debug!(error = %e, "TLS handshake failed");
                        return;
                    }
                },
                None => serve_until_stopped!(http1::Builder::new().serve_connection(TokioIo::new(stream), svc), stop),
            };
            if let Err(e) = result {
                tracing::debug!(error = %e, "connection ended with an error");
            }
            drop(permit);
        });
    }
    drop(listener);
    // every permit back: every connection has ended
    let open = MAX_CONNECTIONS - permits.available_permits();
    if open > 0 {
        tracing::info!(open, "waiting for open HTTP connections to finish");
        let all = permits.acquire_many(MAX_CONNECTIONS as u32);
        if tokio::time::timeout(SHUTDOWN_GRACE, all).await.is_err() {
            let left = MAX_CONNECTIONS - permits.available_permits();
            tracing::warn!(left, "HTTP connections still open after the grace period; closing them");
        }
    }
}

pub async fn handle(state: &AppState, req: Request<Incoming>) -> Response<Full<Bytes>> {
    use futures::FutureExt;
    let (method, path) = (req.method().clone(), req.uri().path().to_string());
    let routed = async {
        if path.starts_with("/api/") && troupe_store::tasks::fault_injected("http request").is_some() {
            panic!("TROUPE_FAULT_TASK_PANIC: a request's handler panics");
        }
        route(state, req).await
    };
    match std::panic::AssertUnwindSafe(routed).catch_unwind().await {
        Ok(Ok(r)) => r,
        Ok(Err(e)) => e.into_response(),
        Err(_) => {
            // the panic's message went to the log through the panic hook; the caller gets no
            // detail of it (it may hold request data)
            troupe_store::metric_definitions::TASK_PANICS.with_label_values(&["http request"]).inc();
            tracing::error!(%method, path, "a request's handler panicked; answered 500");
            ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "INTERNAL_ERROR", "the request failed unexpectedly")
                .into_response()
        }
    }
}

fn method_not_allowed(allowed: &str) -> ApiError {
    ApiError::new(
        StatusCode::METHOD_NOT_ALLOWED,
        "METHOD_NOT_ALLOWED",
        format!("method not allowed here; use {allowed}"),
    )
}

/// What a route of `/api/v1` needs of the principal.
#[derive(Debug, PartialEq)]
pub enum Need {
    /// A permission of the principal's role in the object's project.
    Permission(Permission),
    /// The platform's admin (projects, keys, pieces, modules).
    PlatformAdmin,
    /// Any principal (what it reads is filtered to its projects; flow operations check their
    /// own permission: publishing and turning on or off is `UpdateFlowStatus`).
    Authenticated,
}

/// The permission table of the API: every route of `/api/v1` and what it needs.
pub fn need(rest: &[&str], method: &Method) -> Need {
    use Permission::*;
    let read = method == Method::GET;
    let p = Need::Permission;
    match rest {
        ["flows", _] if method == Method::POST => Need::Authenticated,
        ["flows", ..] => p(if read { ReadFlow } else { WriteFlow }),
        ["folders", ..] => p(if read { ReadFolder } else { WriteFolder }),
        ["flow-runs", ..] => p(if read { ReadRun } else { WriteRun }),
        ["app-connections", ..] => p(if read { ReadAppConnection } else { WriteAppConnection }),
        ["project-members", ..] => p(if read { ReadProjectMember } else { WriteProjectMember }),
        ["user-invitations", ..] => p(if read { ReadInvitation } else { WriteInvitation }),
        ["audit-events", ..] => p(WriteProjectMember),
        ["sample-data" | "trigger-events", ..] => p(if read { ReadFlow } else { WriteFlow }),
        ["step-run" | "test-trigger", ..] => p(WriteFlow),
        ["pieces", "options"] => p(WriteFlow),
        ["projects"] | ["pieces", ..] if read => Need::Authenticated,
        ["projects", _] if read => p(ReadProject),
        ["wasm-modules", ..] if read => p(ReadFlow),
        _ => Need::PlatformAdmin,
    }
}

async fn route(state: &AppState, req: Request<Incoming>) -> Result<Response<Full<Bytes>>, ApiError> {
    let path = req.uri().path().to_string();
    let segs: Vec<&str> = path.trim_matches('/').split('/').collect();
    let method = req.method().clone();
    match segs.as_slice() {
        ["health"] => Ok(json_response(StatusCode::OK, &json!({"status": "ok"}))),
        ["ready"] => {
            let nats_ok = state.nats.connection_state() == async_nats::connection::State::Connected;
            let status = if nats_ok { StatusCode::OK } else { StatusCode::SERVICE_UNAVAILABLE };
            Ok(json_response(status, &json!({"nats": nats_ok, "store": true})))
        }
        ["metrics"] => Ok(Response::builder()
            .header("content-type", "text/plain; version=0.0.4")
            .body(Full::new(Bytes::from(crate::metric_definitions::render())))
            .expect("valid response")),
        ["api", ..] if state.config.container_type == ContainerType::Worker => Err(ApiError::new(
            StatusCode::NOT_FOUND,
            "NOT_FOUND",
            "this process is a WORKER (AP_CONTAINER_TYPE); webhooks and the API are served by APP processes",
        )),
        ["api", "v1", "webhooks", flow_id, rest @ ..] => {
            use crate::metric_definitions::{INGRESS_LATENCY, WEBHOOKS_RECEIVED, WEBHOOKS_REJECTED};
            WEBHOOKS_RECEIVED.inc();
            let timer = INGRESS_LATENCY.start_timer();
            let result = webhooks::handle(state, req, flow_id, rest).await;
            timer.observe_duration();
            if let Err(e) = &result {
                let reason = match (e.status.as_u16(), e.code) {
                    (404, "FLOW_DISABLED") => "disabled",
                    (404, _) => "not_found",
                    (410, _) => "gone",
                    (413, _) => "too_large",
                    (503, _) => "unavailable",
                    _ => "bad_request",
                };
                WEBHOOKS_REJECTED.with_label_values(&[reason]).inc();
            }
            result
        }
        ["api", "v1", "app-events", alias] if method == Method::POST => {
            crate::metric_definitions::WEBHOOKS_RECEIVED.inc();
            crate::app_events::handle(state, req, alias).await
        }
        // `/waitpoints/{id}` is today's name of the resume URL; `/requests/{id}` the older one
        ["api", "v1", "flow-runs", run_id, "requests" | "waitpoints", request_id, rest @ ..] => {
            let sync = match rest {
                [] => false,
                ["sync"] => true,
                _ => return Err(ApiError::new(StatusCode::NOT_FOUND, "NOT_FOUND", format!("no route {path}"))),
            };
            crate::resume::handle(state, req, run_id, troupe_store::run::ResumeBy::Request(request_id), sync).await
        }
        ["api", "v1", "flow-runs", run_id, "resume"] => {
            crate::resume::handle(state, req, run_id, troupe_store::run::ResumeBy::AnyWebhook, false).await
        }
        ["api", "v1", "store-entries"] if api::engine::token(state, &req)?.is_some() => {
            let token = api::engine::token(state, &req)?.expect("checked");
            api::engine::store_entries(state, &token, req).await
        }
        ["api", "v1", "authentication", action] if method == Method::POST => {
            crate::users::authentication(state, action, req).await
        }
        ["api", "v1", rest @ ..] => {
            let scope = &http::authenticate(state, &req)?;
            // push-back: writes wait for the replicated state to catch up
            if method != Method::GET && state.store.replication_backlog() > troupe_store::db::MAX_REPLICATION_BACKLOG {
                return Err(ApiError::unavailable("the replicated state is behind; retry shortly"));
            }
            let scope = &match need(rest, &method) {
                Need::Permission(p) => scope.needing(p)?,
                Need::PlatformAdmin => {
                    scope.require_admin()?;
                    scope.clone()
                }
                Need::Authenticated => scope.clone(),
            };
            match (rest, &method) {
                (["flows"], &Method::POST) => api::flows::create(state, scope, req).await,
                (["flows"], &Method::GET) => api::flows::list(state, scope, req).await,
                (["flows"], _) => Err(method_not_allowed("GET or POST")),
                (["flows", "count"], &Method::GET) => api::flows::count(state, scope, req).await,
                (["flows", id], &Method::GET) => api::flows::get(state, scope, id, &req).await,
                (["flows", id, "versions"], &Method::GET) => api::flows::versions(state, scope, id, req).await,
                (["flows", id], &Method::POST) => api::flows::operate(state, scope, id, req).await,
                (["flows", id], &Method::DELETE) => api::flows::delete(state, scope, id).await,
                (["flows", _], _) => Err(method_not_allowed("GET, POST or DELETE")),
                (["folders"], &Method::POST) => api::folders::create(state, scope, req).await,
                (["folders"], &Method::GET) => api::folders::list(state, scope, req).await,
                (["folders"], _) => Err(method_not_allowed("GET or POST")),
                (["folders", id], &Method::GET) => api::folders::get(state, scope, id).await,
                (["folders", id], &Method::POST) => api::folders::update(state, scope, id, req).await,
                (["folders", id], &Method::DELETE) => api::folders::delete(state, scope, id).await,
                (["folders", _], _) => Err(method_not_allowed("GET, POST or DELETE")),
                (["flow-runs", "cancel"], &Method::POST) => api::runs::bulk_cancel(state, scope, req).await,
                (["flow-runs", "retry"], &Method::POST) => api::runs::bulk_retry(state, scope, req).await,
                (["flow-runs", "archive"], &Method::POST) => api::runs::bulk_archive(state, scope, req).await,
                (["flow-runs", "count-by-status"], &Method::GET) => api::runs::count_by_status(state, scope, req).await,
                (["flow-runs"], &Method::GET) => api::runs::list(state, scope, req).await,
                (["flow-runs"], _) => Err(method_not_allowed("GET")),
                (["flow-runs", id], &Method::GET) => api::runs::get(state, scope, id).await,
                (["flow-runs", _], _) => Err(method_not_allowed("GET")),
                (["flow-runs", id, "retry"], &Method::POST) => api::runs::retry(state, scope, id, req).await,
                (["flow-runs", id, "cancel"], &Method::POST) => api::runs::cancel(state, scope, id).await,
                (["app-connections"], &Method::POST) => api::connections::upsert(state, scope, req).await,
                (["app-connections", "oauth2", "authorization-url"], &Method::POST) => {
                    api::connections::authorization_url(state, req).await
                }
                (["app-connections", "replace"], &Method::POST) => api::connections::replace(state, scope, req).await,
                (["app-connections"], &Method::GET) => api::connections::list(state, scope, req).await,
                (["app-connections"], _) => Err(method_not_allowed("GET or POST")),
                (["app-connections", id], &Method::GET) => api::connections::get(state, scope, id).await,
                (["app-connections", id], &Method::DELETE) => api::connections::delete(state, scope, id).await,
                (["app-connections", id], &Method::POST) => api::connections::rename(state, scope, id, req).await,
                (["app-connections", _], _) => Err(method_not_allowed("GET, POST or DELETE")),
                (["projects"], &Method::POST) => api::admin::create_project(state, scope, req).await,
                (["projects"], &Method::GET) => api::admin::list_projects(state, scope).await,
                (["projects"], _) => Err(method_not_allowed("GET or POST")),
                (["projects", id], &Method::GET) => api::admin::get_project(state, scope, id).await,
                (["projects", id], &Method::POST) => api::admin::update_project(state, scope, id, req).await,
                (["projects", id], &Method::DELETE) => api::admin::delete_project(state, scope, id).await,
                (["projects", _], _) => Err(method_not_allowed("GET, POST or DELETE")),
                (["api-keys"], &Method::POST) => api::admin::create_key(state, scope, req).await,
                (["api-keys"], &Method::GET) => api::admin::list_keys(state, scope).await,
                (["api-keys"], _) => Err(method_not_allowed("GET or POST")),
                (["api-keys", id], &Method::DELETE) => api::admin::revoke_key(state, scope, id).await,
                (["api-keys", _], _) => Err(method_not_allowed("DELETE")),
                (["flow-runs", _, "retry" | "cancel"], _) => Err(method_not_allowed("POST")),
                (["pieces"], &Method::POST) => api::pieces::install(state, scope, req).await,
                (["pieces"], &Method::GET) => api::pieces::list(state, scope).await,
                (["pieces"], _) => Err(method_not_allowed("GET or POST")),
                (["pieces", "options"], &Method::POST) => api::pieces::options(state, scope, req).await,
                (["pieces", name], &Method::GET) => api::pieces::get(state, scope, name, &req).await,
                (["pieces", id], &Method::DELETE) => api::pieces::delete(state, scope, id).await,
                (["pieces", org, name], &Method::GET) if org.starts_with('@') => {
                    api::pieces::get(state, scope, &format!("{org}/{name}"), &req).await
                }
                (["pieces", ..], _) => Err(method_not_allowed("GET or DELETE")),
                (["sample-data"], &Method::GET) => api::sample_data::get(state, scope, req).await,
                (["sample-data"], &Method::POST) => api::sample_data::save(state, scope, req).await,
                (["sample-data"], _) => Err(method_not_allowed("GET or POST")),
                (["step-run"] | ["sample-data", "test-step"], &Method::POST) => {
                    api::sample_data::test_step(state, scope, req).await
                }
                (["test-trigger"], &Method::POST) => api::sample_data::test_trigger(state, scope, req).await,
                (["trigger-events"], &Method::GET) => api::sample_data::trigger_events(state, scope, req).await,
                (["trigger-events"], &Method::POST) => api::sample_data::save_trigger_event(state, scope, req).await,
                (["step-run" | "test-trigger"] | ["sample-data", "test-step"], _) => Err(method_not_allowed("POST")),
                (["trigger-events"], _) => Err(method_not_allowed("GET or POST")),
                (["project-members"], &Method::GET) => crate::users::list_members(state, scope, req).await,
                (["project-members", id], &Method::POST) => crate::users::update_member(state, scope, id, req).await,
                (["project-members", id], &Method::DELETE) => crate::users::delete_member(state, scope, id).await,
                (["project-members", ..], _) => Err(method_not_allowed("GET, POST or DELETE")),
                (["user-invitations"], &Method::POST) => crate::users::invite(state, scope, req).await,
                (["user-invitations"], &Method::GET) => crate::users::list_invitations(state, scope, req).await,
                (["user-invitations", id], &Method::DELETE) => crate::users::delete_invitation(state, scope, id).await,
                (["user-invitations", ..], _) => Err(method_not_allowed("GET, POST or DELETE")),
                (["audit-events"], &Method::GET) => crate::audit::list(state, scope, req).await,
                (["audit-events"], _) => Err(method_not_allowed("GET")),
                (["wasm-modules"], &Method::POST) => api::wasm_modules::upload(state, req).await,
                (["wasm-modules"], _) => Err(method_not_allowed("POST")),
                (["wasm-modules", id], &Method::GET) => api::wasm_modules::get(state, id).await,
                (["wasm-modules", _], _) => Err(method_not_allowed("GET")),
                _ => Err(ApiError::new(StatusCode::NOT_FOUND, "NOT_FOUND", format!("no route {path}"))),
            }
        }
        _ => Err(ApiError::new(StatusCode::NOT_FOUND, "NOT_FOUND", format!("no route {path}"))),
    }
}
