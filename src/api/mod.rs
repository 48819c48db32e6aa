//! What the crate's JSON routes share (the management API, `POST /auth/login` and
//! `/auth/logout`): reading a JSON body strictly, the errors in the configured
//! [`ErrorStyle`](error::ErrorStyle), and the JSON answer with its documented error body.
//!
//! Private: the routes' contracts are theirs ([`admin`](crate::admin),
//! [`exchange`](crate::exchange)); the style is public as
//! [`admin::ErrorStyle`](crate::admin::ErrorStyle).

pub(crate) mod body;
pub(crate) mod error;
pub(crate) mod input;
pub(crate) mod mount;
