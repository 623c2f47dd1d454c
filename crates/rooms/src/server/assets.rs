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

/// Every path the page is served at, with its type and body (`/favicon.ico` is what browsers
/// ask for on their own: the same icon).
const ASSETS: [(&str, &str, &str); 6] = [
    ("/", "text/html; charset=utf-8", INDEX),
    ("/index.html", "text/html; charset=utf-8", INDEX),
    ("/app.js", "text/javascript; charset=utf-8", APP),
    ("/style.css", "text/css; charset=utf-8", STYLE),
    ("/favicon.svg", "image/svg+xml", ICON),
    ("/favicon.ico", "image/svg+xml", ICON),
];

pub(super) fn routes(app: Router<Arc<Shared>>) -> Router<Arc<Shared>> {
    ASSETS.iter().fold(app, |app, &(path, kind, body)| {
        app.route(path, get(move || async move { asset(kind, body) }))
    })
}
