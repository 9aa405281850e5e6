//! Who owns what: vigil's application tree.
//!
//! Pure: no I/O, no async, no clock — time comes in as arguments. The server persists
//! and serves this; here are the rules:
//!
//! * An [`Appcode`] (`flight_search_api`) names a business unit, department or
//!   application. It is never renamed and never reused, so hosts, alarms and incidents can
//!   refer to it for good.
//! * The [`Tree`] holds [`AppNode`]s. Owners, approvers and oncall are each inherited from
//!   the nearest ancestor-or-self that has them ([`Tree::owners_of`]).
//! * A [`HostIndex`] binds hosts to Appcodes (explicitly, or via [`BindingRule`]s);
//!   [`owners_for_host`] says whom to call about a host.
//! * [`import`] / [`export_toml`] / [`export_csv`] move the whole thing in and out,
//!   idempotently.
//! * [`report`] summarises incidents for a subtree.
//!
//! ```
//! use vigil_ownership::{owners_for_host, AppNode, Appcode, HostIndex, Tree};
//!
//! let code = |s: &str| Appcode::parse(s).unwrap();
//! let mut tree = Tree::new();
//! let mut travel = AppNode::new(code("travel"), "Travel", "business_unit");
//! travel.owners = vec!["alice".into()];
//! tree.add(travel).unwrap();
//! let mut search = AppNode::new(code("flight_search_api"), "Flight search", "application");
//! search.parent = Some(code("travel"));
//! search.oncall = vec!["search-oncall".into()];
//! tree.add(search).unwrap();
//!
//! let mut hosts = HostIndex::new();
//! hosts.bind(&tree, "web-01", "flight_search_api").unwrap();
//! let who = owners_for_host(&tree, &hosts, "web-01").unwrap();
//! assert_eq!((who.owners, who.from.as_str()), (vec!["alice".to_string()], "travel"));
//! assert_eq!(who.oncall, ["search-oncall"]);
//! ```

mod appcode;
mod csv;
mod error;
mod hosts;
mod io;
mod report;
mod tree;

pub use appcode::{Appcode, MAX_LEN, MIN_LEN};
pub use error::{OwnershipError, Result};
pub use hosts::{bind_by_rules, owners_for_host, BindingRule, HostIndex};
pub use io::{
    export_csv, export_toml, import, AppEntry, CsvExport, Document, HostBinding, ImportReport,
    Origin, Section,
};
pub use report::{report, IncidentRecord, Report};
pub use tree::{AppNode, Owners, Tree};
