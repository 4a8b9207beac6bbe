//! Stand-ins for the parts of the outside world tests cannot reach, each a real network
//! server so that Ironhand's own client code runs unchanged.

pub mod llm;
pub mod s3;
pub mod search;
pub mod smtp;
pub mod stripe;
