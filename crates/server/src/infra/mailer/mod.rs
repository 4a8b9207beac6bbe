//! The `Mailer` port: SMTP through lettre, or the development mailer that writes each mail
//! to the server log (never silently dropped, never in an API response).

pub mod dev;
pub mod smtp;

pub use dev::DevMailer;
pub use smtp::SmtpMailer;
