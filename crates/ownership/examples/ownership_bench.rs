//! Import and owner-lookup benchmark at the target size: 3 business units → 30
//! departments → 1,500 applications, 40,000 hosts.
//!
//! ```text
//! cargo run --release -p vigil-ownership --example ownership_bench [-- --write FILE]
//! ```
//!
//! `--write FILE` also saves the generated TOML, so the server's import command can be
//! benchmarked on the same data.

use std::hint::black_box;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use vigil_ownership::{import, owners_for_host, Document, HostIndex, Tree};

const BUSINESS_UNITS: usize = 3;
const DEPARTMENTS_PER_UNIT: usize = 10;
const APPS_PER_DEPARTMENT: usize = 50;
const HOSTS: usize = 40_000;
const LOOKUPS: usize = 1_000_000;

/// xorshift64*: deterministic and dependency-free; quality is irrelevant here.
struct Rng(u64);

impl Rng {
    fn below(&mut self, n: usize) -> usize {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        (self.0.wrapping_mul(0x2545_f491_4f6c_dd1d) >> 33) as usize % n
    }
}

/// The document, with people on some levels only so lookups really walk up: units have
/// everyone, every other department has owners, some applications have owners or oncall.
fn generate(rng: &mut Rng) -> (String, Vec<String>) {
    let mut toml = String::new();
    let mut apps = Vec::new();
    for u in 0..BUSINESS_UNITS {
        let unit = format!("bu{u}");
        toml.push_str(&format!(
            "[[apps]]\nappcode = \"{unit}\"\nname = \"Business unit {u}\"\nkind = \"business_unit\"\n\
             owners = [\"head{u}\"]\napprovers = [\"cfo{u}\"]\noncall = [\"noc{u}\", \"noc{u}_backup\"]\n\n"
        ));
        for d in 0..DEPARTMENTS_PER_UNIT {
            let dept = format!("{unit}_dept{d}");
            toml.push_str(&format!(
                "[[apps]]\nappcode = \"{dept}\"\nname = \"Department {u}.{d}\"\nkind = \"department\"\nparent = \"{unit}\"\n"
            ));
            if d % 2 == 0 {
                toml.push_str(&format!("owners = [\"lead_{dept}\"]\n"));
            }
            toml.push('\n');
            for a in 0..APPS_PER_DEPARTMENT {
                let app = format!("{dept}_app{a}");
                toml.push_str(&format!(
                    "[[apps]]\nappcode = \"{app}\"\nname = \"Application {u}.{d}.{a}\"\nkind = \"application\"\nparent = \"{dept}\"\n"
                ));
                if a % 5 == 0 {
                    toml.push_str(&format!("owners = [\"owner_{app}\"]\n"));
                }
                if a % 3 == 0 {
                    toml.push_str(&format!("oncall = [\"oncall_{app}\"]\n"));
                }
                toml.push('\n');
                apps.push(app);
            }
        }
    }
    let mut hosts = Vec::with_capacity(HOSTS);
    for h in 0..HOSTS {
        let host = format!("host-{h:05}.dc{}.example.net", h % 4);
        let app = &apps[rng.below(apps.len())];
        toml.push_str(&format!(
            "[[hosts]]\nname = \"{host}\"\nappcode = \"{app}\"\n\n"
        ));
        hosts.push(host);
    }
    (toml, hosts)
}

fn micros(d: Duration) -> f64 {
    d.as_secs_f64() * 1e6
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let write_to = match args.as_slice() {
        [] => None,
        [flag, file] if flag == "--write" => Some(file.clone()),
        _ => {
            eprintln!("usage: ownership_bench [--write FILE]");
            return ExitCode::from(2);
        }
    };

    let mut rng = Rng(0x5eed_cafe_f00d_d00d);
    let (toml, host_names) = generate(&mut rng);
    if let Some(path) = &write_to {
        if let Err(e) = std::fs::write(path, &toml) {
            eprintln!("cannot write {path}: {e}");
            return ExitCode::FAILURE;
        }
        println!("wrote {path} ({} bytes)", toml.len());
    }

    let (mut tree, mut hosts) = (Tree::new(), HostIndex::new());
    let started = Instant::now();
    let doc = match Document::from_toml(&toml) {
        Ok(doc) => doc,
        Err(e) => {
            eprintln!("generated document does not parse: {e}");
            return ExitCode::FAILURE;
        }
    };
    let parsed = started.elapsed();
    let report = match import(&mut tree, &mut hosts, &doc) {
        Ok(report) => report,
        Err(e) => {
            eprintln!("import failed: {e}");
            return ExitCode::FAILURE;
        }
    };
    let imported = started.elapsed();
    println!(
        "document: {} apps, {} hosts, {:.1} MB of TOML",
        tree.len(),
        hosts.len(),
        toml.len() as f64 / 1e6
    );
    println!(
        "import: {:.3} s (parse {:.3} s + apply {:.3} s) — {report}",
        imported.as_secs_f64(),
        parsed.as_secs_f64(),
        (imported - parsed).as_secs_f64()
    );

    let started = Instant::now();
    let again = match import(&mut tree, &mut hosts, &doc) {
        Ok(report) => report,
        Err(e) => {
            eprintln!("second import failed: {e}");
            return ExitCode::FAILURE;
        }
    };
    println!(
        "re-import (same document): {:.3} s, {} changes",
        started.elapsed().as_secs_f64(),
        again.changes()
    );

    // Pick the hosts first so the timed loop measures the lookup only.
    let picks: Vec<&str> = (0..LOOKUPS)
        .map(|_| host_names[rng.below(host_names.len())].as_str())
        .collect();
    let mut each = Vec::with_capacity(LOOKUPS);
    let mut missing = 0usize;
    let started = Instant::now();
    for host in &picks {
        let t = Instant::now();
        let owners = owners_for_host(&tree, &hosts, black_box(host));
        each.push(t.elapsed());
        if black_box(owners).is_none() {
            missing += 1;
        }
    }
    let total = started.elapsed();
    each.sort_unstable();
    let p = |q: f64| micros(each[((each.len() as f64 * q) as usize).min(each.len() - 1)]);
    println!(
        "owners_for_host x {LOOKUPS}: mean {:.3} µs, p50 {:.3} µs, p99 {:.3} µs, max {:.1} µs (target < 1000 µs); {missing} unanswered",
        micros(total) / LOOKUPS as f64,
        p(0.50),
        p(0.99),
        micros(each[each.len() - 1]),
    );
    if missing > 0 {
        eprintln!("every generated host should have owners");
        return ExitCode::FAILURE;
    }
    ExitCode::SUCCESS
}
