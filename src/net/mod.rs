//! Network plumbing shared by the engine's WebSockets: awc's connector for its
//! clients (the realtime relay, the cluster's node links), and the server socket
//! whose response body drains an outbox ([`socket`]: the softphone, supervisor,
//! Twilio media and node-link sockets).

pub mod socket;

/// awc's TCP connector with `TCP_NODELAY` on: audio goes out every 20 ms in small
/// frames and must not wait for the peer's delayed ACK (Nagle).
pub fn nodelay_tcp() -> impl actix_service::Service<
    actix_tls::connect::ConnectInfo<awc::http::Uri>,
    Response = actix_tls::connect::Connection<awc::http::Uri, actix_rt::net::TcpStream>,
    Error = actix_tls::connect::ConnectError,
> + Clone {
    use actix_service::ServiceExt as _;
    actix_tls::connect::Connector::new(actix_tls::connect::Resolver::default())
        .service()
        .map(
            |connection: actix_tls::connect::Connection<
                awc::http::Uri,
                actix_rt::net::TcpStream,
            >| {
                if let Err(e) = connection.io_ref().set_nodelay(true) {
                    tracing::debug!(error = %e, "TCP_NODELAY could not be set");
                }
                connection
            },
        )
}
