//! `vigil rule bench`: matching throughput over a corpus, per rule set.

use std::io::Write;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::{bail, ensure, Context, Result};
use serde_json::Value;
use vigil_pattern::{MatchState, Matcher};

use crate::rules::abbreviate;
use crate::{generate_rules, load_events, load_rule_sets, Corpus, RuleSet};

/// Sets with more rules than this print a digest of their match counts unless `--counts`.
const MAX_LISTED_RULES: usize = 200;

/// Arguments of `vigil rule bench`.
#[derive(clap::Args, Debug, Clone)]
pub struct BenchArgs {
    /// Events, one JSON object per line; read as gzip if the name ends in .gz or the file
    /// starts with the gzip magic bytes
    #[arg(long, value_name = "FILE")]
    pub events: PathBuf,

    /// Rule sets: an object {"SET": [{"pattern": …}, …], …}, or a plain array of patterns
    /// (one set named after the file). Without it only the generated sets run
    #[arg(long, value_name = "FILE")]
    pub rules: Option<PathBuf>,

    /// Run only this set (repeatable). Generated sets are named generated-1,
    /// generated-100 and generated-N
    #[arg(long = "set", value_name = "NAME")]
    pub sets: Vec<String>,

    /// Timed passes over all events, per set, after one untimed warm-up pass
    #[arg(long, value_name = "N", default_value_t = 5,
          value_parser = clap::value_parser!(u32).range(1..))]
    pub passes: u32,

    /// Also run N rules generated from the corpus, and the first 1 and 100 of them, to show
    /// how cost grows with rules (0 disables). Built from rare field values (in at most 0.1%
    /// of events) of randomly picked events, fixed seed: 70% exact, 10% prefix, 10% numeric
    /// range, 10% exact AND anything-but
    #[arg(long, value_name = "N", default_value_t = 10_000)]
    pub generated: usize,

    /// In the warm-up pass, check every event's matches against matching the parsed event
    /// (Matcher::matches_value) and fail on any difference
    #[arg(long)]
    pub check: bool,

    /// Print every rule's match count even for sets of more than 200 rules
    #[arg(long)]
    pub counts: bool,
}

/// The measurements of one rule set.
#[derive(Debug, Clone)]
pub struct SetReport {
    pub name: String,
    pub rules: usize,
    pub events: usize,
    /// Events per second of each timed pass, in pass order.
    pub rates: Vec<f64>,
    /// Matches per rule (by index in the set): the same in the warm-up and every timed pass.
    pub counts: Vec<u64>,
}

impl SetReport {
    /// Median events/s over the timed passes (mean of the middle two for an even count).
    pub fn median(&self) -> f64 {
        let mut rates = self.rates.clone();
        rates.sort_by(f64::total_cmp);
        match rates.len() {
            0 => 0.0,
            n if n % 2 == 1 => rates[n / 2],
            n => (rates[n / 2 - 1] + rates[n / 2]) / 2.0,
        }
    }

    pub fn min(&self) -> f64 {
        self.rates.iter().copied().fold(f64::INFINITY, f64::min)
    }

    pub fn max(&self) -> f64 {
        self.rates.iter().copied().fold(0.0, f64::max)
    }

    pub fn total_matches(&self) -> u64 {
        self.counts.iter().sum()
    }
}

/// Runs `vigil rule bench`, printing to stdout.
pub fn rule_bench(args: &BenchArgs) -> Result<()> {
    run_bench(args, &mut std::io::stdout().lock()).map(|_| ())
}

/// Runs the benchmark, printing progress and results to `out`; returns one report per set run.
pub fn run_bench(args: &BenchArgs, out: &mut dyn Write) -> Result<Vec<SetReport>> {
    let started = Instant::now();
    let corpus = load_events(&args.events)?;
    writeln!(
        out,
        "events: {}: {} events, {} in memory, loaded in {}",
        corpus.path.display(),
        corpus.events.len(),
        fmt_bytes(corpus.bytes() as f64),
        fmt_duration(started.elapsed())
    )?;

    let file_sets = match &args.rules {
        Some(path) => load_rule_sets(path)?,
        None => Vec::new(),
    };
    let generated_sizes = generated_sizes(args.generated);
    let generated_names: Vec<String> = generated_sizes
        .iter()
        .map(|n| format!("generated-{n}"))
        .collect();

    // Resolve --set against every set there is before spending time on any of them.
    let wanted = |name: &str| args.sets.is_empty() || args.sets.iter().any(|s| s == name);
    for name in &args.sets {
        let known = file_sets.iter().any(|s| &s.name == name) || generated_names.contains(name);
        if !known {
            let mut available: Vec<&str> = file_sets.iter().map(|s| s.name.as_str()).collect();
            available.extend(generated_names.iter().map(String::as_str));
            bail!(
                "no rule set named `{name}`; available: {}",
                available.join(", ")
            );
        }
    }
    let mut sets: Vec<RuleSet> = file_sets.into_iter().filter(|s| wanted(&s.name)).collect();

    if generated_names.iter().any(|n| wanted(n)) {
        let started = Instant::now();
        let rules = generate_rules(&corpus, args.generated)?;
        if rules.is_empty() {
            writeln!(
                out,
                "generated: none; no event has a string or number field to build rules from"
            )?;
        } else {
            writeln!(
                out,
                "generated: {} rules from rare values of the events in {} (70% exact, \
                 10% prefix, 10% numeric range, 10% exact AND anything-but; fixed seed)",
                rules.len(),
                fmt_duration(started.elapsed())
            )?;
            for (size, name) in generated_sizes.iter().zip(&generated_names) {
                if wanted(name) {
                    sets.push(RuleSet {
                        name: name.clone(),
                        patterns: rules[..(*size).min(rules.len())].to_vec(),
                    });
                }
            }
        }
    }
    if sets.is_empty() {
        bail!("no rule sets to run: give --rules FILE, or --generated N with N > 0");
    }

    let mut reports = Vec::with_capacity(sets.len());
    for set in &sets {
        writeln!(out)?;
        reports.push(bench_set(set, &corpus, args, out)?);
    }
    write_summary(&reports, &corpus, args.passes, out)?;
    Ok(reports)
}

/// 1, 100 and `n` rules, as far as they do not exceed `n`; none for 0.
fn generated_sizes(n: usize) -> Vec<usize> {
    let mut sizes: Vec<usize> = [1, 100, n]
        .into_iter()
        .filter(|&s| s > 0 && s <= n)
        .collect();
    sizes.dedup();
    sizes
}

fn bench_set(
    set: &RuleSet,
    corpus: &Corpus,
    args: &BenchArgs,
    out: &mut dyn Write,
) -> Result<SetReport> {
    let name = &set.name;
    let started = Instant::now();
    let mut matcher = Matcher::<usize>::new();
    for (i, pattern) in set.patterns.iter().enumerate() {
        let index = matcher.add(i, pattern).with_context(|| {
            format!(
                "rule set `{name}`, rule {i}: {}",
                abbreviate(&pattern.to_string(), 100)
            )
        })?;
        // Counts are kept by the index matches_json reports; it must be the position in the set.
        ensure!(
            index == i,
            "rule set `{name}`: rule {i} was given index {index}"
        );
    }
    let compiled = started.elapsed();
    writeln!(
        out,
        "{name}: {} rules, compiled in {}",
        matcher.len(),
        fmt_duration(compiled)
    )?;
    // A large set takes a while; show what is running.
    out.flush()?;

    let counts = warm_up(&matcher, corpus, name, args.check)?;
    let mut rates = Vec::with_capacity(args.passes as usize);
    for pass in 1..=args.passes {
        let (pass_counts, elapsed) = timed_pass(&matcher, corpus, name)?;
        compare_counts(name, pass, &counts, &pass_counts)?;
        // Clamped so a tiny corpus on a coarse clock cannot divide by zero.
        let seconds = elapsed.as_secs_f64().max(1e-9);
        rates.push(corpus.events.len() as f64 / seconds);
    }

    let report = SetReport {
        name: name.clone(),
        rules: matcher.len(),
        events: corpus.events.len(),
        rates,
        counts,
    };
    let median = report.median();
    writeln!(
        out,
        "  events/s: median {}, min {}, max {} over {} passes ({} ns/event, {}/s)",
        fmt_rate(median),
        fmt_rate(report.min()),
        fmt_rate(report.max()),
        args.passes,
        fmt_rate(1e9 / median.max(1e-9)),
        fmt_bytes(corpus.bytes() as f64 / report.events as f64 * median),
    )?;
    if args.check {
        writeln!(out, "  check: byte and value matching agree on every event")?;
    }
    write_counts(set, &report, args.counts, out)?;
    Ok(report)
}

/// The untimed first pass: counts matches per rule, checks what matches_json reports, and
/// with `check` compares it with matching the parsed event.
fn warm_up(matcher: &Matcher<usize>, corpus: &Corpus, set: &str, check: bool) -> Result<Vec<u64>> {
    let mut counts = vec![0u64; matcher.len()];
    let mut state = MatchState::default();
    let mut hits = Vec::new();
    for (index, event) in corpus.events.iter().enumerate() {
        matcher
            .matches_json(event, &mut state, &mut hits)
            .with_context(|| format!("{}: set `{set}`", corpus.location(index)))?;
        // Counting trusts these, so verify them once here instead of in the timed loop.
        ensure!(
            hits.windows(2).all(|w| w[0] < w[1]) && hits.last().is_none_or(|&i| i < counts.len()),
            "{}: set `{set}`: matcher reported rules {hits:?}, not ascending indexes below {}",
            corpus.location(index),
            counts.len()
        );
        for &rule in &hits {
            counts[rule] += 1;
        }
        if check {
            let value: Value = serde_json::from_slice(event)
                .with_context(|| format!("{}: not valid JSON", corpus.location(index)))?;
            let by_value = matcher.matches_value(&value);
            ensure!(
                by_value == hits,
                "{}: set `{set}`: matching the bytes gives rules {hits:?}, \
                 matching the parsed event gives {by_value:?}",
                corpus.location(index)
            );
        }
    }
    Ok(counts)
}

/// One timed pass over every event: match counts per rule and the time taken.
fn timed_pass(
    matcher: &Matcher<usize>,
    corpus: &Corpus,
    set: &str,
) -> Result<(Vec<u64>, Duration)> {
    let mut counts = vec![0u64; matcher.len()];
    let mut state = MatchState::default();
    let mut hits = Vec::new();
    let started = Instant::now();
    for (index, event) in corpus.events.iter().enumerate() {
        if let Err(e) = matcher.matches_json(event, &mut state, &mut hits) {
            bail!("{}: set `{set}`: {e}", corpus.location(index));
        }
        // Indexes were checked in the warm-up pass; `get_mut` keeps a surprise from panicking.
        for &rule in &hits {
            match counts.get_mut(rule) {
                Some(count) => *count += 1,
                None => bail!("{}: set `{set}`: no rule {rule}", corpus.location(index)),
            }
        }
    }
    Ok((counts, started.elapsed()))
}

/// Fails when a timed pass counted differently from the warm-up pass.
fn compare_counts(set: &str, pass: u32, warm_up: &[u64], pass_counts: &[u64]) -> Result<()> {
    if let Some((rule, (a, b))) = warm_up
        .iter()
        .zip(pass_counts)
        .enumerate()
        .find(|(_, (a, b))| a != b)
    {
        bail!(
            "set `{set}`, pass {pass}: rule {rule} matched {b} events, \
             but {a} in the warm-up pass"
        );
    }
    ensure!(
        warm_up.len() == pass_counts.len(),
        "set `{set}`, pass {pass}: counted {} rules, but {} in the warm-up pass",
        pass_counts.len(),
        warm_up.len()
    );
    Ok(())
}

fn write_counts(set: &RuleSet, report: &SetReport, all: bool, out: &mut dyn Write) -> Result<()> {
    let total = report.total_matches();
    writeln!(
        out,
        "  matches: {total} in total, {:.3} per event",
        total as f64 / report.events as f64
    )?;
    if report.counts.len() > MAX_LISTED_RULES && !all {
        let matching = report.counts.iter().filter(|&&c| c > 0).count();
        let (top, most) = report
            .counts
            .iter()
            .enumerate()
            .max_by_key(|&(i, c)| (c, std::cmp::Reverse(i)))
            .map_or((0, 0), |(i, &c)| (i, c));
        writeln!(
            out,
            "  {matching} of {} rules match something; most: rule {top}, {most} matches \
             (--counts lists every rule)",
            report.counts.len()
        )?;
        return Ok(());
    }
    let index_width = report.counts.len().saturating_sub(1).to_string().len();
    let count_width = report
        .counts
        .iter()
        .max()
        .map_or(1, |c| c.to_string().len());
    for (i, (count, pattern)) in report.counts.iter().zip(&set.patterns).enumerate() {
        writeln!(
            out,
            "  rule {i:>index_width$}: {count:>count_width$} matches  {}",
            abbreviate(&pattern.to_string(), 80)
        )?;
    }
    Ok(())
}

fn write_summary(
    reports: &[SetReport],
    corpus: &Corpus,
    passes: u32,
    out: &mut dyn Write,
) -> Result<()> {
    let width = reports
        .iter()
        .map(|r| r.name.len())
        .chain([3])
        .max()
        .unwrap_or(3);
    writeln!(out)?;
    writeln!(
        out,
        "summary: {}, {} events, events/s over {passes} timed passes",
        corpus.path.display(),
        corpus.events.len()
    )?;
    writeln!(
        out,
        "{:<width$}  {:>6}  {:>9}  {:>9}  {:>9}  {:>11}",
        "set", "rules", "median", "min", "max", "matches"
    )?;
    for r in reports {
        writeln!(
            out,
            "{:<width$}  {:>6}  {:>9}  {:>9}  {:>9}  {:>11}",
            r.name,
            r.rules,
            fmt_rate(r.median()),
            fmt_rate(r.min()),
            fmt_rate(r.max()),
            r.total_matches()
        )?;
    }
    out.flush()?;
    Ok(())
}

/// Three significant digits with K/M/G, the way the reference figures are written.
fn fmt_rate(v: f64) -> String {
    let (scaled, unit) = if v >= 1e9 {
        (v / 1e9, "G")
    } else if v >= 1e6 {
        (v / 1e6, "M")
    } else if v >= 1e3 {
        (v / 1e3, "K")
    } else {
        (v, "")
    };
    let decimals = if scaled >= 100.0 {
        0
    } else if scaled >= 10.0 {
        1
    } else {
        2
    };
    format!("{scaled:.decimals$}{unit}")
}

fn fmt_bytes(v: f64) -> String {
    format!("{}B", fmt_rate(v))
}

fn fmt_duration(d: Duration) -> String {
    let s = d.as_secs_f64();
    if s >= 1.0 {
        format!("{s:.2} s")
    } else if s >= 1e-3 {
        format!("{:.1} ms", s * 1e3)
    } else {
        format!("{:.0} µs", s * 1e6)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_util::{gzip, TempDir};
    use serde_json::json;

    const COLORS: [&str; 3] = ["red", "green", "blue"];

    /// 300 events with known fields, one line each, gzip-compressed.
    fn corpus_lines() -> Vec<String> {
        (0..300)
            .map(|i| {
                json!({
                    "id": i,
                    "color": COLORS[i % 3],
                    "size": i % 7,
                    "name": format!("item-{i}"),
                    "detail": {"shape": if i % 5 == 0 { "square" } else { "round" }}
                })
                .to_string()
            })
            .collect()
    }

    fn args(dir: &TempDir, rules: serde_json::Value) -> BenchArgs {
        let events = dir.write(
            "events.jsonl.gz",
            &gzip(corpus_lines().join("\n").as_bytes()),
        );
        let rules = dir.write("rules.json", rules.to_string().as_bytes());
        BenchArgs {
            events,
            rules: Some(rules),
            sets: Vec::new(),
            passes: 2,
            generated: 0,
            check: true,
            counts: false,
        }
    }

    /// Counts events satisfying `test`, by reading the corpus independently of the matcher.
    fn count_where(test: impl Fn(&Value) -> bool) -> u64 {
        corpus_lines()
            .iter()
            .map(|l| serde_json::from_str::<Value>(l).unwrap())
            .filter(|v| test(v))
            .count() as u64
    }

    #[test]
    fn match_counts_equal_independent_counts() {
        let dir = TempDir::new();
        let args = args(
            &dir,
            json!({
                "EXACT": [
                    {"pattern": {"color": ["red"]}},
                    {"pattern": {"detail": {"shape": ["square"]}}},
                    {"pattern": {"color": ["purple"]}}
                ],
                "MIXED": [
                    {"pattern": {"size": [{"numeric": [">=", 5]}]}},
                    {"pattern": {"name": [{"prefix": "item-1"}], "color": [{"anything-but": ["red"]}]}}
                ]
            }),
        );
        let mut out = Vec::new();
        let reports = run_bench(&args, &mut out).unwrap();
        let text = String::from_utf8(out).unwrap();

        let red = count_where(|v| v["color"] == "red");
        let square = count_where(|v| v["detail"]["shape"] == "square");
        let big = count_where(|v| v["size"].as_u64().unwrap() >= 5);
        let item1_not_red = count_where(|v| {
            v["name"].as_str().unwrap().starts_with("item-1") && v["color"] != "red"
        });
        assert_eq!((red, square), (100, 60)); // the corpus is what the counts assume
        assert!(big > 0 && item1_not_red > 0);

        assert_eq!(reports.len(), 2);
        assert_eq!(reports[0].name, "EXACT");
        assert_eq!(reports[0].counts, [red, square, 0]);
        assert_eq!(reports[1].name, "MIXED");
        assert_eq!(reports[1].counts, [big, item1_not_red]);
        for r in &reports {
            assert_eq!(r.events, 300);
            assert_eq!(r.rates.len(), 2);
            assert!(r.rates.iter().all(|&x| x > 0.0 && x.is_finite()));
        }

        assert!(text.contains(&format!("rule 0: {red} matches")), "{text}");
        assert!(text.contains("rule 2:   0 matches"), "{text}");
        assert!(
            text.contains("check: byte and value matching agree"),
            "{text}"
        );
        let summary = &text[text.find("summary:").expect("a summary")..];
        assert!(
            summary.contains("EXACT") && summary.contains("MIXED"),
            "{summary}"
        );
    }

    #[test]
    fn set_filter_and_generated_sets() {
        let dir = TempDir::new();
        let mut args = args(&dir, json!([{"color": ["blue"]}]));
        args.generated = 150;
        args.sets = vec!["rules".into(), "generated-1".into(), "generated-150".into()];
        let reports = run_bench(&args, &mut Vec::new()).unwrap();
        let names: Vec<&str> = reports.iter().map(|r| r.name.as_str()).collect();
        assert_eq!(names, ["rules", "generated-1", "generated-150"]);
        assert_eq!(reports[0].counts, [count_where(|v| v["color"] == "blue")]);
        assert_eq!(reports[1].rules, 1);
        assert_eq!(reports[2].rules, 150);
        // The 1-rule set is the first rule of the larger one, so it counts the same.
        assert_eq!(reports[1].counts[0], reports[2].counts[0]);
        assert!(
            reports[1].counts[0] > 0,
            "a generated exact rule matches its own event"
        );

        args.sets = vec!["nope".into()];
        let err = run_bench(&args, &mut Vec::new()).unwrap_err().to_string();
        assert!(err.contains("no rule set named `nope`"), "{err}");
        assert!(
            err.contains("rules, generated-1, generated-100, generated-150"),
            "{err}"
        );
    }

    #[test]
    fn large_sets_print_a_digest_unless_counts() {
        let dir = TempDir::new();
        let patterns: Vec<Value> = (0..250).map(|i| json!({ "id": [i] })).collect();
        let mut args = args(&dir, Value::Array(patterns));
        args.check = false;
        let mut out = Vec::new();
        let reports = run_bench(&args, &mut out).unwrap();
        // ids 0..250 each appear once among the 300 events.
        assert_eq!(reports[0].counts, vec![1; 250]);
        let text = String::from_utf8(out).unwrap();
        assert!(text.contains("250 of 250 rules match something"), "{text}");
        assert!(!text.contains("rule 249:"), "{text}");

        args.counts = true;
        let mut out = Vec::new();
        run_bench(&args, &mut out).unwrap();
        assert!(String::from_utf8(out)
            .unwrap()
            .contains("rule 249: 1 matches"));
    }

    #[test]
    fn bad_patterns_and_empty_runs_are_errors() {
        let dir = TempDir::new();
        // AWS refuses this wildcard as too complex; the operator reads AWS's reason.
        let wild = args(
            &dir,
            json!({"WILD": [{"pattern": {"city": [{"wildcard": "a*a*a*a*a*a*"}]}}]}),
        );
        let err = format!("{:#}", run_bench(&wild, &mut Vec::new()).unwrap_err());
        assert!(err.contains("rule set `WILD`, rule 0"), "{err}");
        assert!(
            err.ends_with("invalid pattern at `city`: Rule is too complex - try using fewer wildcard characters or fewer repeating character sequences after a wildcard character"),
            "{err}"
        );

        let args = args(&dir, json!({"BAD": [{"pattern": {"color": "red"}}]}));
        let err = format!("{:#}", run_bench(&args, &mut Vec::new()).unwrap_err());
        assert!(err.contains("rule set `BAD`, rule 0"), "{err}");

        let mut args = args;
        args.rules = None;
        let err = run_bench(&args, &mut Vec::new()).unwrap_err().to_string();
        assert!(err.contains("no rule sets to run"), "{err}");
    }

    #[test]
    fn differing_pass_counts_are_errors() {
        assert!(compare_counts("S", 1, &[1, 2, 3], &[1, 2, 3]).is_ok());
        let err = compare_counts("S", 2, &[1, 2, 3], &[1, 5, 3]).unwrap_err();
        assert_eq!(
            err.to_string(),
            "set `S`, pass 2: rule 1 matched 5 events, but 2 in the warm-up pass"
        );
        assert!(compare_counts("S", 1, &[1, 2], &[1, 2, 0]).is_err());
    }

    #[test]
    fn statistics_and_formatting() {
        let report = SetReport {
            name: "x".into(),
            rules: 1,
            events: 10,
            rates: vec![3.0, 1.0, 4.0, 2.0],
            counts: vec![4, 6],
        };
        assert_eq!(report.median(), 2.5);
        assert_eq!((report.min(), report.max()), (1.0, 4.0));
        assert_eq!(report.total_matches(), 10);
        assert_eq!(fmt_rate(939_000.0), "939K");
        assert_eq!(fmt_rate(1_740_000.0), "1.74M");
        assert_eq!(fmt_rate(31_040.0), "31.0K");
        assert_eq!(fmt_rate(12.0), "12.0");
        assert_eq!(generated_sizes(0), Vec::<usize>::new());
        assert_eq!(generated_sizes(50), [1, 50]);
        assert_eq!(generated_sizes(100), [1, 100]);
        assert_eq!(generated_sizes(10_000), [1, 100, 10_000]);
    }

    #[test]
    fn clap_defaults() {
        use clap::Parser;
        #[derive(clap::Parser)]
        struct Cli {
            #[command(flatten)]
            bench: BenchArgs,
        }
        let cli =
            Cli::try_parse_from(["x", "--events", "e.jsonl", "--set", "A", "--set", "B"]).unwrap();
        assert_eq!(cli.bench.passes, 5);
        assert_eq!(cli.bench.generated, 10_000);
        assert_eq!(cli.bench.sets, ["A", "B"]);
        assert!(!cli.bench.check && cli.bench.rules.is_none());
        assert!(Cli::try_parse_from(["x", "--events", "e", "--passes", "0"]).is_err());
    }
}
