//! What a visitor or an auditor may ask for: a visitor's export and erasure (`visitors`), and
//! the audit log of admin actions and exports (`audit`); and identifiers that are personal data
//! stored as keyed hashes (`pseudonym`); a project's whole data deleted at the end of a
//! contract (`projects`), and returned as a whole (`exports`, each part written by
//! `export_part`).

pub mod audit;
pub mod export_part;
pub mod exports;
pub mod projects;
pub mod pseudonym;
pub mod visitors;
