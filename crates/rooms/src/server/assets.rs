//! The demo page, embedded in the binary.

use std::sync::Arc;

use axum::http::header;
use axum::response::IntoResponse;
use axum::routing::get;
use axum::Router;

use super::Shared;

const INDEX: &str = include_str!("../../assets/index.html");
const APP: &str = include_str!("../../assets/app.js");
const STYLE: &str = include_str!("../../assets/style.css");
const ICON: &str = include_str!("../../assets/favicon.svg");

/// The page's own scripts and styles only; media and downloads from `blob:`; the WebSocket
/// to this server.
const CSP: &str = "default-src 'self'; script-src 'self'; style-src 'self'; \
                   img-src 'self' data: blob:; media-src 'self' blob: mediastream:; \
                   connect-src 'self'; object-src 'none'; base-uri 'none'; frame-ancestors 'none'";

fn asset(content_type: &'static str, body: &'static str) -> impl IntoResponse {
    (
        [
            (header::CONTENT_TYPE, content_type),
            (header::CONTENT_SECURITY_POLICY, CSP),
            (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
            (header::REFERRER_POLICY, "no-referrer"),
            (header::CACHE_CONTROL, "no-cache"),
        ],
        body,
    )
}

pub(super) fn routes(app: Router<Arc<Shared>>) -> Router<Arc<Shared>> {
    app.route(
        "/",
        get(|| async { asset("text/html; charset=utf-8", INDEX) }),
    )
    .route(
        "/index.html",
        get(|| async { asset("text/html; charset=utf-8", INDEX) }),
    )
    .route(
        "/app.js",
        get(|| async { asset("text/javascript; charset=utf-8", APP) }),
    )
    .route(
        "/style.css",
        get(|| async { asset("text/css; charset=utf-8", STYLE) }),
    )
    .route(
        "/favicon.svg",
        get(|| async { asset("image/svg+xml", ICON) }),
    )
    // What browsers ask for on their own: the same icon.
    .route(
        "/favicon.ico",
        get(|| async { asset("image/svg+xml", ICON) }),
    )
}
