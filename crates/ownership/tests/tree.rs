//! The ownership tree end to end: reorganisations, inheritance, Appcode permanence,
//! import/export.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use vigil_ownership::{
    export_csv, export_toml, import, owners_for_host, AppNode, Appcode, Document, HostIndex,
    OwnershipError, Tree,
};

fn code(s: &str) -> Appcode {
    Appcode::parse(s).unwrap()
}

fn list(items: &[&str]) -> Vec<String> {
    items.iter().map(|s| s.to_string()).collect()
}

fn node(c: &str, parent: Option<&str>, kind: &str) -> AppNode {
    AppNode {
        parent: parent.map(code),
        ..AppNode::new(code(c), format!("The {c}"), kind)
    }
}

/// travel (owners ceo, oncall noc, approvers cfo)
/// ├── flights (owners flights_lead)
/// │   ├── flight_search_api (oncall search_oncall)
/// │   └── booking
/// └── hotels (owners hotels_lead, oncall hotels_oncall)
///     └── hotel_search
/// Hosts: web-1, web-2 → flight_search_api; book-1 → booking; hs-1 → hotel_search.
fn sample() -> (Tree, HostIndex) {
    let mut tree = Tree::new();
    tree.add(AppNode {
        owners: list(&["ceo"]),
        approvers: list(&["cfo"]),
        oncall: list(&["noc"]),
        ..node("travel", None, "business_unit")
    })
    .unwrap();
    tree.add(AppNode {
        owners: list(&["flights_lead"]),
        ..node("flights", Some("travel"), "department")
    })
    .unwrap();
    tree.add(AppNode {
        oncall: list(&["search_oncall"]),
        ..node("flight_search_api", Some("flights"), "application")
    })
    .unwrap();
    tree.add(node("booking", Some("flights"), "application"))
        .unwrap();
    tree.add(AppNode {
        owners: list(&["hotels_lead"]),
        oncall: list(&["hotels_oncall"]),
        ..node("hotels", Some("travel"), "department")
    })
    .unwrap();
    tree.add(node("hotel_search", Some("hotels"), "application"))
        .unwrap();

    let mut hosts = HostIndex::new();
    for (host, app) in [
        ("web-1", "flight_search_api"),
        ("web-2", "flight_search_api"),
        ("book-1", "booking"),
        ("hs-1", "hotel_search"),
    ] {
        hosts.bind(&tree, host, app).unwrap();
    }
    (tree, hosts)
}

#[test]
fn owner_inheritance_takes_the_nearest_ancestor_per_list() {
    let (tree, hosts) = sample();
    let o = tree.owners_of("flight_search_api").unwrap();
    assert_eq!(
        (o.owners.clone(), o.from.as_str()),
        (list(&["flights_lead"]), "flights")
    );
    assert_eq!(
        (o.oncall.clone(), o.oncall_from.as_str()),
        (list(&["search_oncall"]), "flight_search_api")
    );
    assert_eq!(
        (o.approvers.clone(), o.approvers_from.as_str()),
        (list(&["cfo"]), "travel")
    );

    // booking has nothing of its own: owners from flights, oncall all the way from travel.
    let o = owners_for_host(&tree, &hosts, "book-1").unwrap();
    assert_eq!(o.owners, ["flights_lead"]);
    assert_eq!(o.oncall, ["noc"]);
    assert_eq!(o.oncall_from, "travel");

    assert!(owners_for_host(&tree, &hosts, "unknown-host").is_none());
}

#[test]
fn moving_a_node_keeps_its_hosts_and_reroutes_them() {
    let (mut tree, hosts) = sample();
    tree.move_node("booking", Some("hotels")).unwrap();

    // The binding refers to the Appcode, so it is untouched…
    assert_eq!(hosts.appcode_of("book-1"), Some(&code("booking")));
    // Grouped by Appcode in subtree order: booking sorts before hotel_search.
    assert_eq!(hosts.hosts_in("hotels", &tree), ["book-1", "hs-1"]);
    assert!(hosts
        .hosts_in("flights", &tree)
        .iter()
        .all(|h| h.starts_with("web-")));
    // …and booking, owning nobody itself, now inherits from its new ancestors.
    let o = owners_for_host(&tree, &hosts, "book-1").unwrap();
    assert_eq!(o.owners, ["hotels_lead"]);
    assert_eq!(o.oncall, ["hotels_oncall"]);
    assert_eq!(o.from, "hotels");

    // A node with its own people keeps them wherever it goes.
    tree.move_node("flight_search_api", Some("hotels")).unwrap();
    let o = owners_for_host(&tree, &hosts, "web-1").unwrap();
    assert_eq!(o.oncall, ["search_oncall"]);
    assert_eq!(o.owners, ["hotels_lead"]);
}

#[test]
fn splitting_a_department_keeps_every_host_routed() {
    let (mut tree, mut hosts) = sample();
    // Split flights into flights (search) and a new department "flight_sales" (booking).
    tree.add(AppNode {
        owners: list(&["sales_lead"]),
        oncall: list(&["sales_oncall"]),
        ..node("flight_sales", Some("travel"), "department")
    })
    .unwrap();
    tree.move_node("booking", Some("flight_sales")).unwrap();
    // Split booking's hosts: a new application takes one of them.
    tree.add(node("payments", Some("flight_sales"), "application"))
        .unwrap();
    hosts.bind(&tree, "book-1", "payments").unwrap();
    hosts.bind(&tree, "book-2", "booking").unwrap();

    for host in ["web-1", "web-2", "book-1", "book-2", "hs-1"] {
        assert!(
            owners_for_host(&tree, &hosts, host).is_some(),
            "{host} lost its owners"
        );
    }
    assert_eq!(
        owners_for_host(&tree, &hosts, "book-1").unwrap().owners,
        ["sales_lead"]
    );
    assert_eq!(
        owners_for_host(&tree, &hosts, "book-2").unwrap().oncall,
        ["sales_oncall"]
    );
    assert_eq!(
        owners_for_host(&tree, &hosts, "web-1").unwrap().owners,
        ["flights_lead"]
    );
    assert_eq!(hosts.hosts_in("flight_sales", &tree), ["book-2", "book-1"]); // booking, payments
    assert_eq!(hosts.hosts_in("travel", &tree).len(), 5);
}

#[test]
fn an_appcode_cannot_change_or_be_reused() {
    let (mut tree, mut hosts) = sample();
    tree.rename("booking", "Booking engine v2").unwrap();
    let booking = tree.get("booking").unwrap();
    assert_eq!(
        (booking.appcode.as_str(), booking.name.as_str()),
        ("booking", "Booking engine v2")
    );
    assert_eq!(hosts.appcode_of("book-1"), Some(&code("booking")));

    let err = tree.add(node("booking", None, "application")).unwrap_err();
    assert!(matches!(err, OwnershipError::AlreadyExists(_)), "{err}");

    hosts.unbind("book-1");
    tree.remove("booking").unwrap();
    let err = tree
        .add(node("booking", Some("flights"), "application"))
        .unwrap_err();
    assert!(matches!(err, OwnershipError::Retired(_)), "{err}");
    assert!(err.to_string().contains("never reused"), "{err}");

    // Not through an import either.
    let doc = Document::from_toml(
        "[[apps]]\nappcode = \"booking\"\nname = \"B\"\nkind = \"application\"\n",
    )
    .unwrap();
    let err = import(&mut tree, &mut hosts, &doc).unwrap_err().to_string();
    assert!(
        err.contains("apps entry 1 (line 1)") && err.contains("never reused"),
        "{err}"
    );
}

#[test]
fn cycles_are_refused() {
    let (mut tree, _) = sample();
    let err = tree
        .move_node("travel", Some("flight_search_api"))
        .unwrap_err();
    assert_eq!(
        err,
        OwnershipError::WouldCycle {
            appcode: code("travel"),
            new_parent: code("flight_search_api"),
        }
    );
    assert!(err.to_string().contains("own subtree"), "{err}");
    assert!(matches!(
        tree.move_node("flights", Some("flights")),
        Err(OwnershipError::WouldCycle { .. })
    ));
    // Nothing moved.
    assert_eq!(tree.get("travel").unwrap().parent, None);
    assert!(tree.is_within("flight_search_api", "travel"));
}

#[test]
fn escalation_chain_goes_up_without_repeats() {
    let (tree, _) = sample();
    let chain = tree.escalation_chain("flight_search_api");
    let summary: Vec<(Vec<String>, Vec<String>)> = chain
        .iter()
        .map(|o| (o.owners.clone(), o.oncall.clone()))
        .collect();
    assert_eq!(
        summary,
        [
            (list(&["flights_lead"]), list(&["search_oncall"])), // the app itself
            (list(&["flights_lead"]), list(&["noc"])),           // flights
            (list(&["ceo"]), list(&["noc"])),                    // travel
        ]
    );
    // booking inherits exactly what flights has: that level appears once.
    let chain = tree.escalation_chain("booking");
    assert_eq!(chain.len(), 2);
    assert_eq!(chain[0].from, "flights");
    assert_eq!(chain[1].from, "travel");
    assert!(tree.escalation_chain("nope").is_empty());
}

#[test]
fn is_within_scopes() {
    let (tree, _) = sample();
    assert!(tree.is_within("flight_search_api", "flight_search_api"));
    assert!(tree.is_within("flight_search_api", "flights"));
    assert!(tree.is_within("flight_search_api", "travel"));
    assert!(!tree.is_within("flight_search_api", "hotels"));
    assert!(!tree.is_within("flights", "flight_search_api"));
    assert!(!tree.is_within("nope", "travel"));
    assert!(!tree.is_within("travel", "nope"));
}

const SAMPLE_TOML: &str = r#"
# Children first on purpose: import orders by parent.
[[apps]]
appcode = "flight_search_api"
name = "Flight search API"
kind = "application"
parent = "flights"
oncall = ["search_oncall"]

[[apps]]
appcode = "flights"
name = "Flights"
kind = "department"
parent = "travel"
owners = ["flights_lead"]

[[apps]]
appcode = "travel"
name = "Travel"
kind = "business_unit"
owners = ["ceo"]
approvers = ["cfo"]
oncall = ["noc"]

[[hosts]]
name = "web-1"
appcode = "flight_search_api"

[[hosts]]
name = "web-2"
appcode = "flight_search_api"
"#;

#[test]
fn toml_import_orders_parents_and_is_idempotent() {
    let doc = Document::from_toml(SAMPLE_TOML).unwrap();
    let (mut tree, mut hosts) = (Tree::new(), HostIndex::new());
    let first = import(&mut tree, &mut hosts, &doc).unwrap();
    assert_eq!(
        (first.apps_added, first.hosts_bound, first.changes()),
        (3, 2, 5)
    );
    assert_eq!(
        owners_for_host(&tree, &hosts, "web-2").unwrap().owners,
        ["flights_lead"]
    );

    let again = import(&mut tree, &mut hosts, &doc).unwrap();
    assert_eq!(again.changes(), 0, "{again}");
    assert_eq!(again.unchanged, 5);
}

#[test]
fn import_updates_and_moves_existing_nodes_in_place() {
    let (mut tree, mut hosts) = sample();
    // Reorganise: a new "air" department above flights (declared after its child),
    // booking renamed and given owners, hs-1 rebound.
    let doc = Document::from_toml(
        r#"
[[apps]]
appcode = "flights"
name = "The flights"
kind = "department"
parent = "air"
owners = ["flights_lead"]

[[apps]]
appcode = "air"
name = "Air"
kind = "division"
parent = "travel"

[[apps]]
appcode = "booking"
name = "Booking"
kind = "application"
parent = "flights"
owners = ["booker"]

[[hosts]]
name = "hs-1"
appcode = "booking"
"#,
    )
    .unwrap();
    let report = import(&mut tree, &mut hosts, &doc).unwrap();
    assert_eq!(
        (
            report.apps_added,
            report.apps_updated,
            report.apps_moved,
            report.hosts_bound,
            report.unchanged
        ),
        (1, 1, 1, 1, 0),
        "{report}"
    );
    let up: Vec<&str> = tree
        .ancestors("flight_search_api")
        .iter()
        .map(|n| n.appcode.as_str())
        .collect();
    assert_eq!(up, ["flights", "air", "travel"]);
    assert_eq!(
        owners_for_host(&tree, &hosts, "hs-1").unwrap().owners,
        ["booker"]
    );
    assert_eq!(
        owners_for_host(&tree, &hosts, "web-1").unwrap().owners,
        ["flights_lead"]
    );
    assert_eq!(import(&mut tree, &mut hosts, &doc).unwrap().changes(), 0);
}

#[test]
fn import_can_swap_parent_and_child() {
    // Existing: travel → flights → booking. The file puts booking above flights; only
    // applying by final depth (booking first) makes both moves legal.
    let (mut tree, mut hosts) = sample();
    let doc = Document::from_toml(
        r#"
[[apps]]
appcode = "flights"
name = "The flights"
kind = "department"
parent = "booking"
owners = ["flights_lead"]

[[apps]]
appcode = "booking"
name = "The booking"
kind = "application"
parent = "travel"
"#,
    )
    .unwrap();
    let report = import(&mut tree, &mut hosts, &doc).unwrap();
    assert_eq!(report.apps_moved, 2);
    assert!(tree.is_within("flight_search_api", "booking"));
}

#[test]
fn import_errors_name_the_entry_and_change_nothing() {
    let (mut tree, mut hosts) = sample();
    let before = export_toml(&tree, &hosts, None);
    let mut fail = |text: &str| {
        let doc = Document::from_toml(text).unwrap();
        let err = import(&mut tree, &mut hosts, &doc).unwrap_err().to_string();
        assert_eq!(
            export_toml(&tree, &hosts, None),
            before,
            "a failed import changed the tree"
        );
        err
    };

    let err = fail("[[apps]]\nappcode = \"aa\"\nname = \"A\"\nkind = \"x\"\n\n[[apps]]\nappcode = \"bb\"\nname = \"B\"\nkind = \"x\"\nparent = \"nowhere\"\n");
    assert!(
        err.starts_with("apps entry 2 (line 6): parent `nowhere` of `bb`"),
        "{err}"
    );

    let err = fail("[[apps]]\nappcode = \"aa\"\nname = \"A\"\nkind = \"x\"\nparent = \"bb\"\n[[apps]]\nappcode = \"bb\"\nname = \"B\"\nkind = \"x\"\nparent = \"aa\"\n");
    assert!(
        err.contains("apps entry 1 (line 1)") && err.contains("aa → bb → aa"),
        "{err}"
    );

    // A cycle through an existing node: travel under a new node that sits under flights.
    let err = fail("[[apps]]\nappcode = \"travel\"\nname = \"T\"\nkind = \"x\"\nparent = \"sub\"\n[[apps]]\nappcode = \"sub\"\nname = \"S\"\nkind = \"x\"\nparent = \"flights\"\n");
    assert!(err.contains("travel → sub → flights → travel"), "{err}");

    let err = fail("[[apps]]\nappcode = \"aa\"\nname = \"A\"\nkind = \"x\"\n[[apps]]\nappcode = \"aa\"\nname = \"A\"\nkind = \"x\"\n");
    assert!(
        err.starts_with("apps entry 2 (line 5) duplicates apps entry 1 (line 1)"),
        "{err}"
    );

    let err = fail("[[apps]]\nappcode = \"aa\"\nname = \"A\"\nkind = \"x\"\n\n[[hosts]]\nname = \"h1\"\nappcode = \"zz\"\n");
    assert!(
        err.starts_with("hosts entry 1 (line 6): unknown Appcode `zz`"),
        "{err}"
    );

    let err = fail("[[apps]]\nappcode = \"aa\"\nname = \" \"\nkind = \"x\"\n");
    assert!(
        err.starts_with("apps entry 1 (line 1): invalid name for `aa`"),
        "{err}"
    );

    // Syntax and schema errors come from the parser with their line.
    let err = Document::from_toml("[[apps]]\nappcode = \"Bad-Code\"\nname = \"A\"\nkind = \"x\"\n")
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("line 2") && err.contains("'B' at position 1"),
        "{err}"
    );
    let err = Document::from_toml(
        "[[apps]]\nappcode = \"aa\"\nname = \"A\"\nkind = \"x\"\nowner = [\"x\"]\n",
    )
    .unwrap_err()
    .to_string();
    assert!(
        err.contains("line 5") && err.contains("unknown field `owner`"),
        "{err}"
    );
}

#[test]
fn csv_import_handles_quotes_and_names_bad_lines() {
    let apps = "appcode,name,kind,parent,owners,approvers,oncall\n\
                search,\"Search, \"\"fast\"\" edition\",application,travel,alice; bob,,pager\n\
                travel,Travel,business_unit,,ceo,cfo,noc\n";
    let hosts = "host,appcode\nweb-1,search\n\"web-2\",search\n";
    let mut doc = Document::from_csv(apps).unwrap();
    doc.append(Document::from_csv(hosts).unwrap());
    let (mut tree, mut index) = (Tree::new(), HostIndex::new());
    let report = import(&mut tree, &mut index, &doc).unwrap();
    assert_eq!((report.apps_added, report.hosts_bound), (2, 2));
    let search = tree.get("search").unwrap();
    assert_eq!(search.name, "Search, \"fast\" edition");
    assert_eq!(search.owners, ["alice", "bob"]);
    assert_eq!(
        owners_for_host(&tree, &index, "web-2").unwrap().approvers,
        ["cfo"]
    );
    assert_eq!(import(&mut tree, &mut index, &doc).unwrap().changes(), 0);

    let err = Document::from_csv(
        "appcode,name,kind,parent,owners,approvers,oncall\nok,A,x,,,,\nBad,B,x,,,,\n",
    )
    .unwrap_err()
    .to_string();
    assert!(
        err.starts_with("apps entry 2 (line 3): invalid Appcode \"Bad\""),
        "{err}"
    );
    let err =
        Document::from_csv("appcode,name,kind,parent,owners,approvers,oncall\nok,A, b,x,,,,\n")
            .unwrap_err()
            .to_string();
    assert!(
        err.starts_with("CSV line 2: the row has 8 fields but the header has 7"),
        "{err}"
    );
    let err = Document::from_csv("appcode,name,kind,parent,owner,approvers,oncall\n")
        .unwrap_err()
        .to_string();
    assert!(err.contains("unknown column `owner`"), "{err}");
    let err = Document::from_csv("host,appcode\nweb-1,\"search\n")
        .unwrap_err()
        .to_string();
    assert!(
        err.starts_with("CSV line 2") && err.contains("never closed"),
        "{err}"
    );
}

#[test]
fn csv_without_channels_keeps_channels() {
    let (mut tree, mut hosts) = sample();
    tree.set_channels("booking", list(&["#booking"])).unwrap();
    let doc = Document::from_csv(
        "appcode,name,kind,parent,owners,approvers,oncall\nbooking,The booking,application,flights,,,\n",
    )
    .unwrap();
    assert_eq!(import(&mut tree, &mut hosts, &doc).unwrap().changes(), 0);
    assert_eq!(tree.get("booking").unwrap().channels, ["#booking"]);
}

/// Awkward values on purpose: separators, quotes, non-ASCII, a retired code.
fn awkward() -> (Tree, HostIndex) {
    let (mut tree, mut hosts) = sample();
    tree.rename("hotels", "Hotels, \"Stays\" & Résidences")
        .unwrap();
    tree.set_kind("hotels", "department, EU").unwrap();
    tree.set_channels("flights", list(&["#flights", "mailto:f@example.com"]))
        .unwrap();
    tree.set_people("booking", list(&["o'brien"]), list(&["a,b"]), vec![])
        .unwrap();
    tree.add(node("legacy", Some("travel"), "application"))
        .unwrap();
    tree.remove("legacy").unwrap();
    hosts.bind(&tree, "db,1", "hotels").unwrap();
    (tree, hosts)
}

fn same(a: (&Tree, &HostIndex), b: (&Tree, &HostIndex)) {
    assert_eq!(a.0.nodes(), b.0.nodes());
    assert_eq!(a.1.bindings(), b.1.bindings());
}

#[test]
fn toml_export_import_round_trip() {
    let (tree, hosts) = awkward();
    let text = export_toml(&tree, &hosts, None);
    let (mut copy, mut copy_hosts) = (Tree::new(), HostIndex::new());
    let report = import(
        &mut copy,
        &mut copy_hosts,
        &Document::from_toml(&text).unwrap(),
    )
    .unwrap();
    assert_eq!(
        (report.apps_added, report.hosts_bound, report.codes_retired),
        (6, 5, 1)
    );
    same((&tree, &hosts), (&copy, &copy_hosts));
    assert!(copy.is_retired("legacy"));
    assert_eq!(export_toml(&copy, &copy_hosts, None), text);

    // Importing the export into the original changes nothing.
    let (mut tree, mut hosts) = (tree, hosts);
    let again = import(&mut tree, &mut hosts, &Document::from_toml(&text).unwrap()).unwrap();
    assert_eq!(again.changes(), 0, "{again}");
}

#[test]
fn csv_export_import_round_trip() {
    let (tree, hosts) = awkward();
    let files = export_csv(&tree, &hosts, None);
    assert!(
        files
            .apps
            .contains("\"Hotels, \"\"Stays\"\" & Résidences\""),
        "{}",
        files.apps
    );
    assert!(files.hosts.contains("\"db,1\",hotels"), "{}", files.hosts);

    let mut doc = Document::from_csv(&files.apps).unwrap();
    doc.append(Document::from_csv(&files.hosts).unwrap());
    let (mut copy, mut copy_hosts) = (Tree::new(), HostIndex::new());
    import(&mut copy, &mut copy_hosts, &doc).unwrap();
    same((&tree, &hosts), (&copy, &copy_hosts));
    assert_eq!(export_csv(&copy, &copy_hosts, None), files);

    let (mut tree, mut hosts) = (tree, hosts);
    assert_eq!(import(&mut tree, &mut hosts, &doc).unwrap().changes(), 0);
}

#[test]
fn csv_quoted_newlines_commas_and_quotes_then_a_bad_row_names_its_line() {
    let apps = "appcode,name,kind,parent,owners,approvers,oncall\n\
                travel,\"Travel, \"\"the\"\" unit\",business_unit,,\"ceo;\nchair\",cfo,noc\n\
                search,Search,application,travel,alice,,pager\n";
    let doc = Document::from_csv(apps).unwrap();
    let (mut tree, mut index) = (Tree::new(), HostIndex::new());
    import(&mut tree, &mut index, &doc).unwrap();
    let travel = tree.get("travel").unwrap();
    assert_eq!(travel.name, "Travel, \"the\" unit");
    assert_eq!(travel.owners, ["ceo", "chair"]);
    assert_eq!(doc.apps[1].origin.line, Some(4));

    let bad = format!("{apps}hotels,Hotels,application\n");
    let err = Document::from_csv(&bad).unwrap_err().to_string();
    assert!(
        err.starts_with("CSV line 5: the row has 3 fields but the header has 7"),
        "{err}"
    );
    let bad = format!("{apps}hotels,Ho\"tels,application,travel,,,\n");
    let err = Document::from_csv(&bad).unwrap_err().to_string();
    assert!(
        err.starts_with("CSV line 5") && err.contains("quote inside an unquoted field"),
        "{err}"
    );
}

#[test]
fn a_scoped_export_holds_only_its_subtree() {
    let (tree, hosts) = awkward();
    let text = export_toml(&tree, &hosts, Some("flights"));
    let doc = Document::from_toml(&text).unwrap();
    let (mut copy, mut copy_hosts) = (Tree::new(), HostIndex::new());
    // The subtree's root keeps its parent, which the scoped document does not hold.
    assert!(text.contains("appcode = \"flights\""), "{text}");
    for outside in [
        "appcode = \"travel\"",
        "hotels",
        "legacy",
        "db,1",
        "hotels_lead",
        "ceo",
    ] {
        assert!(!text.contains(outside), "`{outside}` leaked into\n{text}");
    }
    for inside in ["flight_search_api", "booking", "o'brien"] {
        assert!(text.contains(inside), "`{inside}` missing from\n{text}");
    }
    copy.add(node("travel", None, "business_unit")).unwrap();
    import(&mut copy, &mut copy_hosts, &doc).unwrap();
    assert_eq!(copy.subtree("flights").len(), 3);

    let files = export_csv(&tree, &hosts, Some("hotels"));
    assert!(files.apps.contains("hotels,"), "{}", files.apps);
    assert!(!files.apps.contains("booking"), "{}", files.apps);
    assert!(files.hosts.contains("\"db,1\",hotels"), "{}", files.hosts);
    let files = export_csv(&tree, &hosts, Some("flights"));
    assert!(!files.hosts.contains("db,1"), "{}", files.hosts);
}
