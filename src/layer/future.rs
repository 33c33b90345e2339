//! [`ResponseFuture`]: what a [`RequireToken`](super::RequireToken) call
//! returns. Usually the inner service's future or a ready refusal; only a
//! token with an unknown `kid` waits for the verifier to refetch the keys
//! before deciding.

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, ready};

use futures_util::future::BoxFuture;
use http::{Request, Response};
use pin_project_lite::pin_project;
use tower::Service;

use super::{Outcome, Shared, VerifiedToken};
use crate::verify::{Claims, VerifyError};

pin_project! {
    /// The response future of [`RequireToken`](super::RequireToken).
    pub struct ResponseFuture<S, ReqBody>
    where
        S: Service<Request<ReqBody>>,
    {
        #[pin]
        kind: Kind<S, ReqBody>,
    }
}

pin_project! {
    #[project = KindProj]
    enum Kind<S, ReqBody>
    where
        S: Service<Request<ReqBody>>,
    {
        /// The request was admitted: the inner service answers.
        Inner { #[pin] future: S::Future },
        /// Refused before reaching the inner service.
        Reject { response: Option<S::Response> },
        /// Waiting for the verifier to refetch the keys.
        Refetch {
            verify: BoxFuture<'static, Result<Arc<Claims>, VerifyError>>,
            shared: Arc<Shared>,
            service: Option<S>,
            request: Option<Request<ReqBody>>,
        },
    }
}

impl<S, ReqBody> fmt::Debug for ResponseFuture<S, ReqBody>
where
    S: Service<Request<ReqBody>>,
{
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let state = match &self.kind {
            Kind::Inner { .. } => "inner",
            Kind::Reject { .. } => "reject",
            Kind::Refetch { .. } => "refetch",
        };
        f.debug_struct("ResponseFuture")
            .field("state", &state)
            .finish()
    }
}

impl<S, ReqBody> ResponseFuture<S, ReqBody>
where
    S: Service<Request<ReqBody>>,
{
    pub(crate) fn inner(future: S::Future) -> Self {
        ResponseFuture {
            kind: Kind::Inner { future },
        }
    }

    pub(crate) fn reject(response: S::Response) -> Self {
        ResponseFuture {
            kind: Kind::Reject {
                response: Some(response),
            },
        }
    }

    pub(crate) fn refetch(
        shared: Arc<Shared>,
        token: String,
        service: S,
        request: Request<ReqBody>,
    ) -> Self {
        let verifier = shared.verifier.clone();
        ResponseFuture {
            kind: Kind::Refetch {
                verify: Box::pin(async move { verifier.verify(&token).await }),
                shared,
                service: Some(service),
                request: Some(request),
            },
        }
    }
}

impl<S, ReqBody, ResBody> Future for ResponseFuture<S, ReqBody>
where
    S: Service<Request<ReqBody>, Response = Response<ResBody>>,
    ResBody: Default,
{
    type Output = Result<Response<ResBody>, S::Error>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let mut this = self.project();
        loop {
            let next = match this.kind.as_mut().project() {
                KindProj::Inner { future } => return future.poll(cx),
                KindProj::Reject { response } => {
                    // Polled again after completion: an empty 500 rather
                    // than a panic.
                    return Poll::Ready(Ok(response.take().unwrap_or_else(|| {
                        let mut response = Response::new(ResBody::default());
                        *response.status_mut() = http::StatusCode::INTERNAL_SERVER_ERROR;
                        response
                    })));
                }
                KindProj::Refetch {
                    verify,
                    shared,
                    service,
                    request,
                } => {
                    let verified = ready!(verify.as_mut().poll(cx));
                    match (shared.admit(verified), service.take(), request.take()) {
                        (Outcome::Allow(claims), Some(mut service), Some(mut request)) => {
                            request.extensions_mut().insert(VerifiedToken(claims));
                            Kind::Inner {
                                future: service.call(request),
                            }
                        }
                        (Outcome::Reject(refusal), _, _) => Kind::Reject {
                            response: Some(shared.response(refusal)),
                        },
                        _ => Kind::Reject { response: None },
                    }
                }
            };
            this.kind.set(next);
        }
    }
}
