//! smelt's conversion pipeline: a [`recipe::Recipe`] applied to a model gives a
//! [`plan::Plan`] (which scheme each tensor gets, and the predicted size); executing it
//! quantizes tensor after tensor into a writer whose output appears atomically
//! ([`atomic::AtomicFile`]), and a report says what was lost.
#![deny(missing_docs)]
#![forbid(unsafe_code)]

pub mod atomic;
pub mod plan;
pub mod recipe;
pub mod scheme;
