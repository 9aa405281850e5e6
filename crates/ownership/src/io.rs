//! Import and export of the tree and host bindings: TOML and two CSV shapes.
//!
//! Import is idempotent and additive: entries in the file are added, updated or moved to
//! match it; nothing absent from the file is removed. An existing Appcode is never
//! re-created. The whole import is applied or none of it.

use std::collections::HashMap;
use std::fmt;

use serde::{Deserialize, Serialize};

use crate::csv;
use crate::error::{OwnershipError, Result};
use crate::{AppNode, Appcode, HostIndex, Tree};

/// Which list of a [`Document`] an entry comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Section {
    Apps,
    Hosts,
}

/// Where an entry was read: its 1-based position in its section and, when known, the line
/// it starts on. Displayed as `apps entry 3 (line 12)`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Origin {
    pub section: Section,
    pub entry: usize,
    pub line: Option<usize>,
}

impl fmt::Display for Origin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let section = match self.section {
            Section::Apps => "apps",
            Section::Hosts => "hosts",
        };
        write!(f, "{section} entry {}", self.entry)?;
        if let Some(line) = self.line {
            write!(f, " (line {line})")?;
        }
        Ok(())
    }
}

/// One application in a [`Document`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AppEntry {
    pub origin: Origin,
    pub node: AppNode,
    /// Whether the file mentions channels at all. The documented shapes don't, and an
    /// import from them must not wipe channels configured elsewhere.
    pub channels_given: bool,
}

/// One host binding in a [`Document`]: `[[hosts]] name = …, appcode = …`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HostBinding {
    pub name: String,
    pub appcode: Appcode,
}

/// What a file says, parsed and checked for syntax, ready for [`import`].
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Document {
    pub apps: Vec<AppEntry>,
    pub hosts: Vec<(Origin, HostBinding)>,
    /// Appcodes used before and removed: never to be reused (TOML only).
    pub retired: Vec<Appcode>,
}

/// The TOML shape of an application: [`AppNode`] with `channels` optional so a file that
/// doesn't mention them leaves them alone.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct TomlApp {
    appcode: Appcode,
    name: String,
    kind: String,
    #[serde(default)]
    parent: Option<Appcode>,
    #[serde(default)]
    owners: Vec<String>,
    #[serde(default)]
    approvers: Vec<String>,
    #[serde(default)]
    oncall: Vec<String>,
    #[serde(default)]
    channels: Option<Vec<String>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct TomlFile {
    #[serde(default)]
    retired: Vec<Appcode>,
    #[serde(default)]
    apps: Vec<toml::Spanned<TomlApp>>,
    #[serde(default)]
    hosts: Vec<toml::Spanned<HostBinding>>,
}

const APP_COLUMNS: [&str; 8] = [
    "appcode",
    "name",
    "kind",
    "parent",
    "owners",
    "approvers",
    "oncall",
    "channels",
];
const HOST_COLUMNS: [&str; 2] = ["host", "appcode"];

impl Document {
    /// Parses `retired = […]`, `[[apps]]` and `[[hosts]]`. Unknown keys are refused so a
    /// typo can't silently drop a field; errors carry TOML's line and column.
    pub fn from_toml(text: &str) -> Result<Document> {
        let file: TomlFile =
            toml::from_str(text).map_err(|e| OwnershipError::Toml(e.to_string()))?;
        let lines = LineIndex::new(text);
        let apps = file
            .apps
            .into_iter()
            .enumerate()
            .map(|(i, spanned)| {
                let origin = Origin {
                    section: Section::Apps,
                    entry: i + 1,
                    line: Some(lines.line_of(spanned.span().start)),
                };
                let app = spanned.into_inner();
                AppEntry {
                    origin,
                    channels_given: app.channels.is_some(),
                    node: AppNode {
                        appcode: app.appcode,
                        name: app.name,
                        kind: app.kind,
                        parent: app.parent,
                        owners: app.owners,
                        approvers: app.approvers,
                        oncall: app.oncall,
                        channels: app.channels.unwrap_or_default(),
                    },
                }
            })
            .collect();
        let hosts = file
            .hosts
            .into_iter()
            .enumerate()
            .map(|(i, spanned)| {
                let origin = Origin {
                    section: Section::Hosts,
                    entry: i + 1,
                    line: Some(lines.line_of(spanned.span().start)),
                };
                (origin, spanned.into_inner())
            })
            .collect();
        Ok(Document {
            apps,
            hosts,
            retired: file.retired,
        })
    }

    /// Parses either CSV shape, told apart by the header row:
    /// `appcode,name,kind,parent,owners,approvers,oncall[,channels]` (lists separated by
    /// `;`, empty parent = root) or `host,appcode`. Columns may come in any order.
    pub fn from_csv(text: &str) -> Result<Document> {
        let mut records = csv::read(text)?.into_iter();
        let Some(header) = records.next() else {
            return Ok(Document::default());
        };
        let names: Vec<String> = header.fields.iter().map(|f| f.to_lowercase()).collect();
        if names.iter().any(|n| n == "host") {
            let columns = Columns::new(&names, header.line, &HOST_COLUMNS, &HOST_COLUMNS)?;
            let mut doc = Document::default();
            for (i, record) in records.enumerate() {
                let origin = Origin {
                    section: Section::Hosts,
                    entry: i + 1,
                    line: Some(record.line),
                };
                let row = columns.row(&record)?;
                let appcode = parse_code(row.get("appcode"), origin)?;
                let name = row.get("host").to_string();
                doc.hosts.push((origin, HostBinding { name, appcode }));
            }
            Ok(doc)
        } else {
            let columns = Columns::new(&names, header.line, &APP_COLUMNS, &APP_COLUMNS[..7])?;
            let channels_given = columns.has("channels");
            let mut doc = Document::default();
            for (i, record) in records.enumerate() {
                let origin = Origin {
                    section: Section::Apps,
                    entry: i + 1,
                    line: Some(record.line),
                };
                let row = columns.row(&record)?;
                let parent = match row.get("parent") {
                    "" => None,
                    parent => Some(parse_code(parent, origin)?),
                };
                let node = AppNode {
                    appcode: parse_code(row.get("appcode"), origin)?,
                    name: row.get("name").to_string(),
                    kind: row.get("kind").to_string(),
                    parent,
                    owners: split_list(row.get("owners")),
                    approvers: split_list(row.get("approvers")),
                    oncall: split_list(row.get("oncall")),
                    channels: split_list(row.get("channels")),
                };
                doc.apps.push(AppEntry {
                    origin,
                    node,
                    channels_given,
                });
            }
            Ok(doc)
        }
    }

    /// Adds another document's entries (e.g. the hosts CSV after the apps CSV).
    pub fn append(&mut self, other: Document) {
        self.apps.extend(other.apps);
        self.hosts.extend(other.hosts);
        self.retired.extend(other.retired);
    }
}

/// The header of a CSV file: which column holds which field.
struct Columns {
    index: HashMap<String, usize>,
    width: usize,
}

impl Columns {
    fn new(names: &[String], line: usize, known: &[&str], required: &[&str]) -> Result<Columns> {
        let csv_error = |reason: String| OwnershipError::Csv { line, reason };
        let mut index = HashMap::new();
        for (i, name) in names.iter().enumerate() {
            if !known.contains(&name.as_str()) {
                return Err(csv_error(format!(
                    "unknown column `{name}`; the columns are {}",
                    known.join(",")
                )));
            }
            if index.insert(name.clone(), i).is_some() {
                return Err(csv_error(format!("column `{name}` appears twice")));
            }
        }
        if let Some(missing) = required.iter().find(|c| !index.contains_key(**c)) {
            return Err(csv_error(format!(
                "missing column `{missing}`; the header must name {}",
                required.join(",")
            )));
        }
        Ok(Columns {
            index,
            width: names.len(),
        })
    }

    fn has(&self, column: &str) -> bool {
        self.index.contains_key(column)
    }

    fn row<'a>(&'a self, record: &'a csv::Record) -> Result<Row<'a>> {
        if record.fields.len() != self.width {
            return Err(OwnershipError::Csv {
                line: record.line,
                reason: format!(
                    "the row has {} fields but the header has {}; quote fields that contain ','",
                    record.fields.len(),
                    self.width
                ),
            });
        }
        Ok(Row {
            columns: self,
            fields: &record.fields,
        })
    }
}

struct Row<'a> {
    columns: &'a Columns,
    fields: &'a [String],
}

impl Row<'_> {
    /// The cell of `column`, or "" when the optional column is absent.
    fn get(&self, column: &str) -> &str {
        self.columns
            .index
            .get(column)
            .and_then(|&i| self.fields.get(i))
            .map_or("", String::as_str)
    }
}

fn parse_code(text: &str, origin: Origin) -> Result<Appcode> {
    Appcode::parse(text).map_err(|e| entry_error(origin, e))
}

fn split_list(cell: &str) -> Vec<String> {
    cell.split(';')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(str::to_string)
        .collect()
}

fn entry_error(origin: Origin, source: OwnershipError) -> OwnershipError {
    OwnershipError::Entry {
        at: origin.to_string(),
        source: Box::new(source),
    }
}

/// Byte offset → 1-based line, for TOML spans.
struct LineIndex {
    starts: Vec<usize>,
}

impl LineIndex {
    fn new(text: &str) -> LineIndex {
        let starts = std::iter::once(0)
            .chain(text.match_indices('\n').map(|(i, _)| i + 1))
            .collect();
        LineIndex { starts }
    }

    fn line_of(&self, offset: usize) -> usize {
        // Number of line starts at or before `offset`; the first is 0, so this is ≥ 1.
        self.starts.partition_point(|&start| start <= offset)
    }
}

/// What an [`import`] changed. Importing the same document again gives
/// [`ImportReport::changes`] = 0.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ImportReport {
    pub apps_added: usize,
    /// Existing applications whose name, kind, people or channels changed.
    pub apps_updated: usize,
    /// Existing applications given another parent (may also count as updated).
    pub apps_moved: usize,
    /// Hosts newly bound or bound to another Appcode.
    pub hosts_bound: usize,
    pub codes_retired: usize,
    /// Entries that already matched the tree.
    pub unchanged: usize,
}

impl ImportReport {
    pub fn changes(&self) -> usize {
        self.apps_added
            + self.apps_updated
            + self.apps_moved
            + self.hosts_bound
            + self.codes_retired
    }
}

impl fmt::Display for ImportReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} apps added, {} updated, {} moved, {} hosts bound, {} codes retired, {} unchanged",
            self.apps_added,
            self.apps_updated,
            self.apps_moved,
            self.hosts_bound,
            self.codes_retired,
            self.unchanged
        )
    }
}

/// Applies `doc` to the tree and host index: all of it, or — on the first error, which
/// names the entry — none of it.
///
/// Parents may come after their children in the file: entries are applied in order of
/// their depth in the resulting tree, so every parent exists (and every move is legal)
/// when its children are applied. A cycle or an unknown parent is refused up front.
pub fn import(tree: &mut Tree, hosts: &mut HostIndex, doc: &Document) -> Result<ImportReport> {
    let order = plan(tree, doc)?;
    // Work on copies and swap them in at the end: an error halfway leaves nothing behind.
    let mut new_tree = tree.clone();
    let mut new_hosts = hosts.clone();
    let mut report = ImportReport::default();

    for code in &doc.retired {
        let retired = new_tree
            .retire(code.clone())
            .map_err(|e| OwnershipError::Entry {
                at: "retired".to_string(),
                source: Box::new(e),
            })?;
        if retired {
            report.codes_retired += 1;
        }
    }
    for &i in &order {
        let entry = &doc.apps[i];
        apply_app(&mut new_tree, entry, &mut report).map_err(|e| entry_error(entry.origin, e))?;
    }

    let mut seen_hosts: HashMap<&str, Origin> = HashMap::with_capacity(doc.hosts.len());
    for (origin, binding) in &doc.hosts {
        if let Some(first) = seen_hosts.insert(&binding.name, *origin) {
            return Err(OwnershipError::Duplicate {
                what: "host",
                at: origin.to_string(),
                first: first.to_string(),
            });
        }
        if new_hosts.appcode_of(&binding.name) == Some(&binding.appcode) {
            report.unchanged += 1;
            continue;
        }
        new_hosts
            .bind(&new_tree, &binding.name, &binding.appcode)
            .map_err(|e| entry_error(*origin, e))?;
        report.hosts_bound += 1;
    }

    *tree = new_tree;
    *hosts = new_hosts;
    Ok(report)
}

/// Checks parents and duplicates and returns the indices of `doc.apps` sorted by depth in
/// the tree as it will be after the import (parents first; file order among equals).
fn plan(tree: &Tree, doc: &Document) -> Result<Vec<usize>> {
    let mut in_doc: HashMap<&str, usize> = HashMap::with_capacity(doc.apps.len());
    for (i, entry) in doc.apps.iter().enumerate() {
        if let Some(first) = in_doc.insert(&entry.node.appcode, i) {
            return Err(OwnershipError::Duplicate {
                what: "Appcode",
                at: entry.origin.to_string(),
                first: doc.apps[first].origin.to_string(),
            });
        }
    }
    for entry in &doc.apps {
        if let Some(parent) = &entry.node.parent {
            if !in_doc.contains_key(parent.as_str()) && tree.get(parent).is_none() {
                return Err(entry_error(
                    entry.origin,
                    OwnershipError::UnknownParent {
                        appcode: entry.node.appcode.clone(),
                        parent: parent.to_string(),
                    },
                ));
            }
        }
    }

    // The parent each node will have after the import: the file's word where it has one.
    let final_parent = |code: &str| -> Option<&Appcode> {
        match in_doc.get(code) {
            Some(&i) => doc.apps[i].node.parent.as_ref(),
            None => tree.get(code).and_then(|node| node.parent.as_ref()),
        }
    };
    let mut depth: HashMap<&str, usize> = HashMap::with_capacity(doc.apps.len());
    for entry in &doc.apps {
        // Walk up until a node of known depth or a root, then fill in the path.
        let mut path: Vec<&Appcode> = vec![&entry.node.appcode];
        let mut base = 0;
        while let Some(parent) = path.last().and_then(|code| final_parent(code)) {
            if let Some(&known) = depth.get(parent.as_str()) {
                base = known + 1;
                break;
            }
            if let Some(start) = path.iter().position(|code| *code == parent) {
                let cycle = path[start..].iter().map(|c| (*c).clone()).collect();
                return Err(entry_error(
                    entry.origin,
                    OwnershipError::ParentCycle(cycle),
                ));
            }
            path.push(parent);
        }
        for (up, code) in path.iter().rev().enumerate() {
            depth.insert(code.as_str(), base + up);
        }
    }
    let mut order: Vec<usize> = (0..doc.apps.len()).collect();
    order.sort_by_key(|&i| depth.get(doc.apps[i].node.appcode.as_str()).copied());
    Ok(order)
}

fn apply_app(tree: &mut Tree, entry: &AppEntry, report: &mut ImportReport) -> Result<()> {
    let want = &entry.node;
    let Some(have) = tree.get(&want.appcode) else {
        tree.add(want.clone())?;
        report.apps_added += 1;
        return Ok(());
    };
    let parent_differs = have.parent != want.parent;
    let people_differ = have.owners != want.owners
        || have.approvers != want.approvers
        || have.oncall != want.oncall;
    let channels_differ = entry.channels_given && have.channels != want.channels;
    let name_differs = have.name != want.name;
    let kind_differs = have.kind != want.kind;

    if name_differs {
        tree.rename(&want.appcode, want.name.clone())?;
    }
    if kind_differs {
        tree.set_kind(&want.appcode, want.kind.clone())?;
    }
    if people_differ {
        tree.set_people(
            &want.appcode,
            want.owners.clone(),
            want.approvers.clone(),
            want.oncall.clone(),
        )?;
    }
    if channels_differ {
        tree.set_channels(&want.appcode, want.channels.clone())?;
    }
    if parent_differs {
        tree.move_node(&want.appcode, want.parent.as_deref())?;
        report.apps_moved += 1;
    }
    if name_differs || kind_differs || people_differ || channels_differ {
        report.apps_updated += 1;
    } else if !parent_differs {
        report.unchanged += 1;
    }
    Ok(())
}

/// Whether an export limited to `scope` (a subtree) includes `appcode`.
fn exported(tree: &Tree, scope: Option<&str>, appcode: &str) -> bool {
    scope.is_none_or(|scope| tree.is_within(appcode, scope))
}

/// The tree and bindings as a TOML document [`Document::from_toml`] reads back: retired
/// codes, then `[[apps]]` parents first, then `[[hosts]]` sorted by name. With a `scope`,
/// only that subtree and the hosts bound inside it (and no retired codes: they belong to
/// no subtree any more).
pub fn export_toml(tree: &Tree, hosts: &HostIndex, scope: Option<&str>) -> String {
    let mut out = String::new();
    let retired = tree.retired();
    if !retired.is_empty() && scope.is_none() {
        let codes: Vec<&str> = retired.iter().map(|c| c.as_str()).collect();
        out.push_str(&format!("retired = {}\n", toml_list(&codes)));
    }
    for node in tree.nodes() {
        if !exported(tree, scope, &node.appcode) {
            continue;
        }
        out.push_str("\n[[apps]]\n");
        out.push_str(&format!("appcode = {}\n", toml_string(&node.appcode)));
        out.push_str(&format!("name = {}\n", toml_string(&node.name)));
        out.push_str(&format!("kind = {}\n", toml_string(&node.kind)));
        if let Some(parent) = &node.parent {
            out.push_str(&format!("parent = {}\n", toml_string(parent)));
        }
        for (key, list) in [
            ("owners", &node.owners),
            ("approvers", &node.approvers),
            ("oncall", &node.oncall),
            ("channels", &node.channels),
        ] {
            if !list.is_empty() {
                let items: Vec<&str> = list.iter().map(String::as_str).collect();
                out.push_str(&format!("{key} = {}\n", toml_list(&items)));
            }
        }
    }
    for (host, code) in hosts.bindings() {
        if !exported(tree, scope, code) {
            continue;
        }
        out.push_str("\n[[hosts]]\n");
        out.push_str(&format!("name = {}\n", toml_string(host)));
        out.push_str(&format!("appcode = {}\n", toml_string(code)));
    }
    out
}

/// A TOML basic string. Written by hand so export cannot fail and stays byte-stable.
fn toml_string(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\t' => out.push_str("\\t"),
            '\r' => out.push_str("\\r"),
            c if c.is_control() => out.push_str(&format!("\\u{:04X}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

fn toml_list(items: &[&str]) -> String {
    let quoted: Vec<String> = items.iter().map(|s| toml_string(s)).collect();
    format!("[{}]", quoted.join(", "))
}

/// The two CSV files of [`export_csv`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CsvExport {
    /// `appcode,name,kind,parent,owners,approvers,oncall,channels`, parents first.
    pub apps: String,
    /// `host,appcode`, sorted by host.
    pub hosts: String,
}

/// The tree and bindings as the two CSV shapes [`Document::from_csv`] reads back.
/// Retired codes are not part of CSV; keep them with [`export_toml`]. With a `scope`, only
/// that subtree and the hosts bound inside it.
pub fn export_csv(tree: &Tree, hosts: &HostIndex, scope: Option<&str>) -> CsvExport {
    let mut apps = String::new();
    csv::write_record(&mut apps, &APP_COLUMNS);
    for node in tree.nodes() {
        if !exported(tree, scope, &node.appcode) {
            continue;
        }
        let parent = node.parent.as_deref().unwrap_or("");
        let lists =
            [&node.owners, &node.approvers, &node.oncall, &node.channels].map(|l| l.join(";"));
        let [owners, approvers, oncall, channels] = &lists;
        csv::write_record(
            &mut apps,
            &[
                &node.appcode,
                &node.name,
                &node.kind,
                parent,
                owners,
                approvers,
                oncall,
                channels,
            ],
        );
    }
    let mut out_hosts = String::new();
    csv::write_record(&mut out_hosts, &HOST_COLUMNS);
    for (host, code) in hosts.bindings() {
        if !exported(tree, scope, code) {
            continue;
        }
        csv::write_record(&mut out_hosts, &[host, code]);
    }
    CsvExport {
        apps,
        hosts: out_hosts,
    }
}
