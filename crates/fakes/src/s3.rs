//! A real S3-compatible server for tests: `s3s` (the S3 protocol, including SigV4
//! verification of headers and payload hashes) over `s3s-fs` (objects as files in a temp
//! directory), served on 127.0.0.1 with hyper. The bucket exists from the start.
//!
//! ```ignore
//! let s3 = ironhand_fakes::s3::S3Server::start().await?;
//! let config = S3Config { endpoint: s3.endpoint(), region: s3.region().into(), bucket: s3.bucket().into(),
//!     access_key_id: s3.access_key().into(), secret_access_key: s3.secret_key().into(),
//!     path_style: true, prefix: None };
//! ```

use hyper_util::rt::TokioIo;
use s3s::auth::SimpleAuth;
use s3s::service::S3ServiceBuilder;
use std::net::SocketAddr;
use std::path::Path;
use tokio::net::TcpListener;
use tokio::task::JoinHandle;

const ACCESS_KEY: &str = "ironhand-test-access-key";
const SECRET_KEY: &str = "ironhand-test-secret-key-0123456789";
const REGION: &str = "us-east-1";
const BUCKET: &str = "ironhand-test";

/// A running server; it stops and its data is removed when this is dropped.
#[derive(Debug)]
pub struct S3Server {
    addr: SocketAddr,
    accept: JoinHandle<()>,
    data: tempfile::TempDir,
}

impl S3Server {
    /// Starts a server on an ephemeral port with the bucket [`S3Server::bucket`] created.
    pub async fn start() -> std::io::Result<Self> {
        let data = tempfile::tempdir()?;
        // s3s-fs keeps a bucket as a directory under its root.
        std::fs::create_dir(data.path().join(BUCKET))?;
        let fs = s3s_fs::FileSystem::new(data.path())
            .map_err(|e| std::io::Error::other(format!("{e:?}")))?;
        let mut builder = S3ServiceBuilder::new(fs);
        builder.set_auth(SimpleAuth::from_single(ACCESS_KEY, SECRET_KEY));
        let service = builder.build();

        let listener = TcpListener::bind(("127.0.0.1", 0)).await?;
        let addr = listener.local_addr()?;
        let accept = tokio::spawn(async move {
            // Connection tasks are detached: they end when the client hangs up.
            while let Ok((socket, _)) = listener.accept().await {
                let service = service.clone();
                tokio::spawn(async move {
                    let conn = hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(socket), service);
                    if let Err(e) = conn.await {
                        tracing::debug!(error = %e, "fake S3 connection ended with an error");
                    }
                });
            }
        });
        Ok(Self { addr, accept, data })
    }

    /// `http://127.0.0.1:<port>` (path-style addressing).
    pub fn endpoint(&self) -> url::Url {
        let text = format!("http://{}", self.addr);
        // A socket address always makes a valid URL.
        url::Url::parse(&text).unwrap_or_else(|_| unreachable!("invalid URL {text}"))
    }

    pub fn access_key(&self) -> &'static str {
        ACCESS_KEY
    }

    pub fn secret_key(&self) -> &'static str {
        SECRET_KEY
    }

    pub fn region(&self) -> &'static str {
        REGION
    }

    pub fn bucket(&self) -> &'static str {
        BUCKET
    }

    /// Where the bucket's objects sit on disk (`<dir>/<bucket>/<key>`), for assertions.
    pub fn data_dir(&self) -> &Path {
        self.data.path()
    }
}

impl Drop for S3Server {
    fn drop(&mut self) {
        self.accept.abort();
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    #[tokio::test]
    async fn serves_the_bucket_and_refuses_unsigned_requests() {
        let server = S3Server::start().await.unwrap();
        assert!(server.data_dir().join(server.bucket()).is_dir());
        let mut socket = tokio::net::TcpStream::connect(server.addr).await.unwrap();
        let request = format!(
            "GET /{}/any-key HTTP/1.1\r\nHost: {}\r\nConnection: close\r\n\r\n",
            server.bucket(),
            server.addr
        );
        socket.write_all(request.as_bytes()).await.unwrap();
        let mut response = String::new();
        socket.read_to_string(&mut response).await.unwrap();
        assert!(response.starts_with("HTTP/1.1 403"), "{response}");
    }
}
