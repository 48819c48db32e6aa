//! [`RequestPrincipalExt`]: the principal in a tonic handler.

use crate::principal::Principal;

/// Reads the authenticated [`Principal`] from a `tonic::Request`.
///
/// ```
/// use tower_bearer::grpc::RequestPrincipalExt;
///
/// async fn list(request: tonic::Request<()>) -> Result<tonic::Response<String>, tonic::Status> {
///     let principal = request.principal()?;
///     Ok(tonic::Response::new(format!("items of {}", principal.tenant())))
/// }
/// ```
pub trait RequestPrincipalExt {
    /// The principal the layer inserted. Without the layer (a programming error) this is
    /// `Status::unauthenticated`, logged at ERROR, so that nothing is served by mistake.
    fn principal(&self) -> Result<&Principal, tonic::Status>;
}

impl<T> RequestPrincipalExt for tonic::Request<T> {
    fn principal(&self) -> Result<&Principal, tonic::Status> {
        self.extensions().get::<Principal>().ok_or_else(|| {
            tracing::error!(
                target: "tower_bearer::grpc",
                "a gRPC handler asks for the principal, but no BearerAuthLayer ran for this request"
            );
            tonic::Status::unauthenticated("missing or invalid credentials")
        })
    }
}
