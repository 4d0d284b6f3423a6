//! The web pages, served by the engine itself: `/` (sign-in), `/agent` (the
//! softphone), `/supervisor` (the console), `/app/…` (a user's pages) and their
//! files under `/assets/…`.
//!
//! Every file of `assets/web/` is embedded in the binary at compile time
//! (`include_dir`), so `switchboard serve` needs nothing beside it and no build
//! step. Each response carries:
//!
//! - its content type from the file's extension (`.js` as
//!   `text/javascript`, which covers ES modules and AudioWorklet modules);
//! - a strong `ETag` (the file's SHA-256, computed once) and
//!   `Cache-Control: no-cache`: file names are not hashed, so a browser keeps
//!   its copy and revalidates it, and `If-None-Match` answers `304` with no body;
//! - a `Content-Security-Policy` that allows only the engine's own origin
//!   (scripts, styles, sockets, worklets), no inline script, nothing framed.

use std::collections::HashMap;
use std::sync::OnceLock;

use actix_web::http::header::{self, HeaderValue};
use actix_web::{web, HttpRequest, HttpResponse};
use include_dir::{include_dir, Dir};
use sha2::{Digest, Sha256};

static FILES: Dir<'static> = include_dir!("$CARGO_MANIFEST_DIR/assets/web");

/// What the pages may load: their own origin only. `connect-src 'self'` covers
/// `ws:`/`wss:` to the same host and port in Chromium and Firefox (CSP level 3);
/// AudioWorklet modules are governed by `script-src`.
pub const CONTENT_SECURITY_POLICY: &str = "default-src 'none'; script-src 'self'; \
     style-src 'self'; connect-src 'self'; img-src 'self' data:; media-src 'self' blob:; \
     worker-src 'self'; font-src 'self'; manifest-src 'self'; base-uri 'none'; \
     form-action 'self'; frame-ancestors 'none'";

struct Asset {
    body: &'static [u8],
    etag: HeaderValue,
    content_type: &'static str,
}

fn assets() -> &'static HashMap<String, Asset> {
    static ASSETS: OnceLock<HashMap<String, Asset>> = OnceLock::new();
    ASSETS.get_or_init(|| {
        let mut found = HashMap::new();
        collect(&FILES, &mut found);
        found
    })
}

fn collect(dir: &'static Dir<'static>, found: &mut HashMap<String, Asset>) {
    for file in dir.files() {
        let path = file.path().to_string_lossy().replace('\\', "/");
        let digest = Sha256::digest(file.contents());
        let etag = format!("\"{}\"", hex::encode(&digest[..16]));
        let asset = Asset {
            body: file.contents(),
            etag: HeaderValue::from_str(&etag).expect("hex is a valid header value"),
            content_type: content_type(&path),
        };
        found.insert(path, asset);
    }
    for sub in dir.dirs() {
        collect(sub, found);
    }
}

/// The content type of a served file, from its extension.
pub fn content_type(path: &str) -> &'static str {
    let extension = path.rsplit_once('.').map_or("", |(_, ext)| ext);
    match extension {
        "html" => "text/html; charset=utf-8",
        "js" | "mjs" => "text/javascript; charset=utf-8",
        "css" => "text/css; charset=utf-8",
        "json" | "map" => "application/json",
        "svg" => "image/svg+xml",
        "png" => "image/png",
        "ico" => "image/x-icon",
        "wav" => "audio/wav",
        "txt" => "text/plain; charset=utf-8",
        "woff2" => "font/woff2",
        _ => "application/octet-stream",
    }
}

pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.route("/", web::get().to(sign_in))
        .route("/agent", web::get().to(agent))
        .route("/supervisor", web::get().to(supervisor))
        .route("/app/admin", web::get().to(admin_app))
        .route("/app/admin/{view:.*}", web::get().to(admin_app))
        .route("/app", web::get().to(user_app))
        .route("/app/{view:.*}", web::get().to(user_app))
        .route("/assets/{path:.*}", web::get().to(asset));
}

async fn sign_in(req: HttpRequest) -> HttpResponse {
    serve(&req, "index.html")
}

async fn agent(req: HttpRequest) -> HttpResponse {
    serve(&req, "agent.html")
}

async fn supervisor(req: HttpRequest) -> HttpResponse {
    serve(&req, "supervisor.html")
}

/// The user's pages (`/app`, `/app/calls`, `/app/calls/{id}`): one page that
/// shows the view its path names.
async fn user_app(req: HttpRequest) -> HttpResponse {
    serve(&req, "app.html")
}

/// The admin's pages (`/app/admin`, `…/flags/{id}`, `…/users`, `…/numbers`, `…/audit`).
async fn admin_app(req: HttpRequest) -> HttpResponse {
    serve(&req, "admin.html")
}

async fn asset(req: HttpRequest, path: web::Path<String>) -> HttpResponse {
    serve(&req, &path)
}

fn serve(req: &HttpRequest, path: &str) -> HttpResponse {
    let Some(asset) = assets().get(path) else {
        return with_security_headers(HttpResponse::NotFound())
            .content_type("text/plain; charset=utf-8")
            .body("not found");
    };
    if not_modified(req, &asset.etag) {
        return with_security_headers(HttpResponse::NotModified())
            .insert_header((header::ETAG, asset.etag.clone()))
            .insert_header((header::CACHE_CONTROL, "no-cache"))
            .finish();
    }
    with_security_headers(HttpResponse::Ok())
        .insert_header((header::ETAG, asset.etag.clone()))
        .insert_header((header::CACHE_CONTROL, "no-cache"))
        .content_type(asset.content_type)
        .body(asset.body)
}

fn with_security_headers(
    mut builder: actix_web::HttpResponseBuilder,
) -> actix_web::HttpResponseBuilder {
    builder
        .insert_header((header::CONTENT_SECURITY_POLICY, CONTENT_SECURITY_POLICY))
        .insert_header((header::X_CONTENT_TYPE_OPTIONS, "nosniff"))
        .insert_header((header::REFERRER_POLICY, "no-referrer"));
    builder
}

/// `If-None-Match` names this version (`*`, or a list holding its tag; a weak
/// `W/` tag compares equal, as RFC 9110 §13.1.2 asks for this header).
fn not_modified(req: &HttpRequest, etag: &HeaderValue) -> bool {
    let Some(value) = req
        .headers()
        .get(header::IF_NONE_MATCH)
        .and_then(|value| value.to_str().ok())
    else {
        return false;
    };
    let ours = etag.to_str().unwrap_or_default();
    value
        .split(',')
        .map(str::trim)
        .any(|tag| tag == "*" || tag.strip_prefix("W/").unwrap_or(tag) == ours)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_embedded_file_has_a_known_content_type() {
        for path in assets().keys() {
            assert_ne!(
                content_type(path),
                "application/octet-stream",
                "{path} has no content type"
            );
        }
        assert!(assets().contains_key("index.html"));
        assert!(assets().contains_key("js/signin.js"));
    }
}
