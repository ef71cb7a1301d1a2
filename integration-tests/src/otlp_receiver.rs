//! A real OTLP/HTTP receiver on loopback for tests: it accepts protobuf posts on `/v1/logs`,
//! `/v1/traces` and `/v1/metrics` (over plain HTTP, or HTTPS with a test CA), decodes them
//! with the opentelemetry-proto types, and keeps what arrived for the test to assert on. It
//! can be slowed down and stopped mid-session.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::{TokioExecutor, TokioIo};
use opentelemetry_proto::tonic::collector::logs::v1::{
    ExportLogsServiceRequest, ExportLogsServiceResponse,
};
use opentelemetry_proto::tonic::collector::metrics::v1::{
    ExportMetricsServiceRequest, ExportMetricsServiceResponse,
};
use opentelemetry_proto::tonic::collector::trace::v1::{
    ExportTraceServiceRequest, ExportTraceServiceResponse,
};
use opentelemetry_proto::tonic::common::v1::{any_value, KeyValue};
use opentelemetry_proto::tonic::logs::v1::LogRecord;
use opentelemetry_proto::tonic::metrics::v1::Metric;
use opentelemetry_proto::tonic::resource::v1::Resource;
use opentelemetry_proto::tonic::trace::v1::Span;
use prost::Message;
use rcgen::{
    BasicConstraints, CertificateParams, CertifiedIssuer, DnType, IsCa, KeyPair, KeyUsagePurpose,
};
use rustls_pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use tokio::net::TcpListener;
use tokio::sync::oneshot;
use tokio::task::JoinSet;

/// Everything the receiver decoded.
#[derive(Debug, Clone, Default)]
pub struct Received {
    /// Log records, in arrival order.
    pub logs: Vec<LogRecord>,
    /// Spans, in arrival order.
    pub spans: Vec<Span>,
    /// Metrics of the most recent metrics request.
    pub last_metrics: Vec<Metric>,
    /// Resources seen on any signal.
    pub resources: Vec<Resource>,
    /// Requests that were not well-formed OTLP protobuf.
    pub bad_requests: u64,
    /// The headers of the last request (name lowercase, value).
    pub last_headers: Vec<(String, String)>,
}

/// The string or integer value of attribute `key`, as a string.
pub fn attr(attributes: &[KeyValue], key: &str) -> Option<String> {
    attributes.iter().find(|kv| kv.key == key).and_then(|kv| {
        match kv.value.as_ref()?.value.as_ref()? {
            any_value::Value::StringValue(s) => Some(s.clone()),
            any_value::Value::IntValue(i) => Some(i.to_string()),
            any_value::Value::DoubleValue(d) => Some(d.to_string()),
            any_value::Value::BoolValue(b) => Some(b.to_string()),
            _ => None,
        }
    })
}

#[derive(Default)]
struct Shared {
    received: Mutex<Received>,
    delay: Mutex<Duration>,
}

/// A running receiver.
pub struct OtlpReceiver {
    addr: SocketAddr,
    shared: Arc<Shared>,
    stop: Option<oneshot::Sender<()>>,
    task: tokio::task::JoinHandle<()>,
}

fn respond(status: StatusCode, body: Vec<u8>) -> Response<Full<Bytes>> {
    let mut r = Response::new(Full::new(Bytes::from(body)));
    *r.status_mut() = status;
    r.headers_mut().insert(
        hyper::header::CONTENT_TYPE,
        hyper::header::HeaderValue::from_static("application/x-protobuf"),
    );
    r
}

async fn handle(
    shared: Arc<Shared>,
    req: Request<Incoming>,
) -> Result<Response<Full<Bytes>>, Infallible> {
    let delay = *shared.delay.lock().unwrap();
    if !delay.is_zero() {
        tokio::time::sleep(delay).await;
    }
    let path = req.uri().path().to_string();
    shared.received.lock().unwrap().last_headers = req
        .headers()
        .iter()
        .map(|(k, v)| {
            (
                k.as_str().to_string(),
                String::from_utf8_lossy(v.as_bytes()).into_owned(),
            )
        })
        .collect();
    let protobuf = req
        .headers()
        .get(hyper::header::CONTENT_TYPE)
        .is_some_and(|v| v.as_bytes() == b"application/x-protobuf");
    let body = match req.into_body().collect().await {
        Ok(b) => b.to_bytes(),
        Err(_) => return Ok(respond(StatusCode::BAD_REQUEST, Vec::new())),
    };
    let bad = |shared: &Shared| {
        shared.received.lock().unwrap().bad_requests += 1;
        Ok(respond(StatusCode::BAD_REQUEST, Vec::new()))
    };
    if !protobuf {
        return bad(&shared);
    }
    match path.as_str() {
        "/v1/logs" => match ExportLogsServiceRequest::decode(body) {
            Ok(r) => {
                let mut got = shared.received.lock().unwrap();
                for rl in r.resource_logs {
                    got.resources.extend(rl.resource);
                    for sl in rl.scope_logs {
                        got.logs.extend(sl.log_records);
                    }
                }
                Ok(respond(
                    StatusCode::OK,
                    ExportLogsServiceResponse::default().encode_to_vec(),
                ))
            }
            Err(_) => bad(&shared),
        },
        "/v1/traces" => match ExportTraceServiceRequest::decode(body) {
            Ok(r) => {
                let mut got = shared.received.lock().unwrap();
                for rs in r.resource_spans {
                    got.resources.extend(rs.resource);
                    for ss in rs.scope_spans {
                        got.spans.extend(ss.spans);
                    }
                }
                Ok(respond(
                    StatusCode::OK,
                    ExportTraceServiceResponse::default().encode_to_vec(),
                ))
            }
            Err(_) => bad(&shared),
        },
        "/v1/metrics" => match ExportMetricsServiceRequest::decode(body) {
            Ok(r) => {
                let mut got = shared.received.lock().unwrap();
                let mut metrics = Vec::new();
                for rm in r.resource_metrics {
                    got.resources.extend(rm.resource);
                    for sm in rm.scope_metrics {
                        metrics.extend(sm.metrics);
                    }
                }
                got.last_metrics = metrics;
                Ok(respond(
                    StatusCode::OK,
                    ExportMetricsServiceResponse::default().encode_to_vec(),
                ))
            }
            Err(_) => bad(&shared),
        },
        _ => Ok(respond(StatusCode::NOT_FOUND, Vec::new())),
    }
}

impl OtlpReceiver {
    /// Starts a receiver on `127.0.0.1` on a free port.
    pub async fn start() -> std::io::Result<OtlpReceiver> {
        OtlpReceiver::start_on("127.0.0.1:0".parse().expect("loopback address")).await
    }

    /// Starts an HTTPS receiver on `127.0.0.1` with a certificate for `127.0.0.1` and
    /// `localhost` from a fresh test CA; returns it and the CA certificate to trust.
    pub async fn start_tls() -> std::io::Result<(OtlpReceiver, CertificateDer<'static>)> {
        let mut ca_params = CertificateParams::default();
        ca_params
            .distinguished_name
            .push(DnType::CommonName, "otlp receiver test CA");
        ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        ca_params.key_usages = vec![
            KeyUsagePurpose::KeyCertSign,
            KeyUsagePurpose::DigitalSignature,
        ];
        let ca_key = KeyPair::generate().expect("generate the test CA key");
        let issuer =
            CertifiedIssuer::self_signed(ca_params, ca_key).expect("self-sign the test CA");
        let leaf_key = KeyPair::generate().expect("generate the leaf key");
        let mut leaf =
            CertificateParams::new(vec!["127.0.0.1".to_string(), "localhost".to_string()])
                .expect("leaf names");
        leaf.use_authority_key_identifier_extension = true;
        let cert = leaf.signed_by(&leaf_key, &issuer).expect("sign the leaf");
        let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(leaf_key.serialize_der()));
        let config = rustls::ServerConfig::builder_with_provider(Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .expect("TLS versions")
        .with_no_client_auth()
        .with_single_cert(vec![cert.der().clone()], key)
        .expect("receiver certificate");
        let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
        let receiver = OtlpReceiver::serve(
            "127.0.0.1:0".parse().expect("loopback address"),
            Some(acceptor),
        )
        .await?;
        Ok((receiver, issuer.der().clone()))
    }

    /// The base URL to give the exporter for an HTTPS receiver.
    pub fn https_endpoint(&self) -> String {
        format!("https://{}", self.addr)
    }

    /// Starts a receiver on `addr` (loopback only).
    pub async fn start_on(addr: SocketAddr) -> std::io::Result<OtlpReceiver> {
        OtlpReceiver::serve(addr, None).await
    }

    async fn serve(
        addr: SocketAddr,
        tls: Option<tokio_rustls::TlsAcceptor>,
    ) -> std::io::Result<OtlpReceiver> {
        assert!(
            addr.ip().is_loopback(),
            "the test receiver listens on loopback only"
        );
        let listener = TcpListener::bind(addr).await?;
        let addr = listener.local_addr()?;
        let shared = Arc::new(Shared::default());
        let (stop, mut stopped) = oneshot::channel::<()>();
        let serve_shared = shared.clone();
        let task = tokio::spawn(async move {
            // Dropping the set when the loop ends aborts every open connection.
            let mut connections = JoinSet::new();
            loop {
                tokio::select! {
                    _ = &mut stopped => break,
                    accepted = listener.accept() => {
                        let Ok((stream, _)) = accepted else { continue };
                        let shared = serve_shared.clone();
                        let tls = tls.clone();
                        connections.spawn(async move {
                            let service = service_fn(move |req| handle(shared.clone(), req));
                            let builder = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new());
                            match tls {
                                None => {
                                    let _ = builder.serve_connection(TokioIo::new(stream), service).await;
                                }
                                Some(acceptor) => {
                                    let Ok(stream) = acceptor.accept(stream).await else { return };
                                    let _ = builder.serve_connection(TokioIo::new(stream), service).await;
                                }
                            }
                        });
                    }
                }
            }
        });
        Ok(OtlpReceiver {
            addr,
            shared,
            stop: Some(stop),
            task,
        })
    }

    /// The base URL to give the exporter.
    pub fn endpoint(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// The address it listens on.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Delays every answer by `delay` (a slow collector).
    pub fn set_delay(&self, delay: Duration) {
        *self.shared.delay.lock().unwrap() = delay;
    }

    /// A copy of what arrived so far.
    pub fn received(&self) -> Received {
        self.shared.received.lock().unwrap().clone()
    }

    /// Polls (every 20 ms, at most `timeout`) until `done` holds for what arrived.
    pub async fn wait_until(&self, timeout: Duration, done: impl Fn(&Received) -> bool) -> bool {
        let start = Instant::now();
        loop {
            if done(&self.received()) {
                return true;
            }
            if start.elapsed() >= timeout {
                return false;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Stops listening and closes every connection; returns what arrived.
    pub async fn stop(mut self) -> Received {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        let _ = (&mut self.task).await;
        self.received()
    }
}

impl Drop for OtlpReceiver {
    fn drop(&mut self) {
        self.task.abort();
    }
}
