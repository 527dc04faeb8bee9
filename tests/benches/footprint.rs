//! Memory footprint: the host's resident memory (RSS, from `/proc/self/status`)
//! idle with 1, 100 and 1,000 loaded plugin versions, and per call.
//!
//! "Loaded plugin versions" are distinct versions of one plugin, each
//! uploaded as a package and held ready to serve: compiled code mapped, linked
//! (`InstancePre`) and described, as after a host start. They are builds of
//! the bench-only `bench-versions` guest (a one-operation connector, built by
//! this bench) whose version string (`1.0.0-footprint-000000`, six digits
//! wide) the bench rewrites in the component, so every version is a distinct
//! component with its own digest and its own compiled code.
//!
//! For each count, the bench uploads that many versions into a new SQLite
//! database through `upload_package` (compiling each once: the compiled-code
//! cache under the target directory keeps them for later runs), then starts a
//! child process (this bench binary again) that opens a host on the database
//! (`Runtime::open`: every version restored from the warm cache), reads its
//! RSS, then calls the `noop` operation of the active version 1 and 10,000
//! times in a row on a connection and reads its RSS and peak RSS again. Each
//! count gets its own process, so nothing one count allocated is counted in
//! another. Run with `cargo bench -p junction-tests --bench footprint`.

#![allow(clippy::unwrap_used, clippy::expect_used)] // bench code: a failed unwrap is a failed run

mod support;

use std::path::{Path, PathBuf};
use std::process::Command;

use junction_registry::Package;
use junction_runtime::runtime::{CallOptions, ConnectionSpec, Runtime};
use junction_tests::test_config;

/// The version the guest is built with; the bench rewrites its last six digits.
const PLACEHOLDER: &[u8] = b"1.0.0-footprint-000000";
const COUNTS: [usize; 3] = [1, 100, 1_000];
const CALLS: usize = 10_000;

/// The component of version `1.0.0-footprint-<i, six digits>`.
fn version_component(base: &[u8], at: usize, i: usize) -> Vec<u8> {
    let mut wasm = base.to_vec();
    let version = version(i);
    wasm[at..at + PLACEHOLDER.len()].copy_from_slice(version.as_bytes());
    wasm
}

fn version(i: usize) -> String {
    format!("1.0.0-footprint-{i:06}")
}

fn package(wasm: Vec<u8>, i: usize) -> Vec<u8> {
    let manifest = format!(
        "[plugin]\nname = \"bench-versions\"\nversion = \"{}\"\nworld = \"connector\"\n\
         wit = \"junction:plugin@0.1.0\"\ndescription = \"bench\"\noperations = [\"noop\"]\n\
         triggers = []\n\n[capabilities]\noutbound_hosts = []\nauth = \"none\"\nkv = false\n",
        version(i)
    );
    Package::new(manifest, wasm).to_bytes()
}

/// `VmRSS`, `VmHWM`, `RssAnon` and `RssFile` from `/proc/self/status`, in KiB.
#[derive(Debug, Clone, Copy)]
struct Rss {
    rss: u64,
    peak: u64,
    anon: u64,
    file: u64,
}

fn rss() -> Rss {
    let status = std::fs::read_to_string("/proc/self/status").expect("/proc/self/status");
    let field = |name: &str| -> u64 {
        status
            .lines()
            .find_map(|l| l.strip_prefix(name))
            .and_then(|rest| rest.trim().trim_end_matches("kB").trim().parse().ok())
            .unwrap_or_else(|| panic!("{name} in /proc/self/status"))
    };
    Rss {
        rss: field("VmRSS:"),
        peak: field("VmHWM:"),
        anon: field("RssAnon:"),
        file: field("RssFile:"),
    }
}

fn mib(kib: u64) -> String {
    format!("{:.1} MiB", kib as f64 / 1024.0)
}

fn config(db: &Path, cache: &Path) -> junction::config::Config {
    let mut config = test_config(junction_runtime::engine::Limits::default());
    config.store.database = Some(db.to_path_buf());
    config.runtime.cache_dir = Some(cache.to_path_buf());
    config
}

/// The child: open a host on `db`, measure, call, measure.
fn child(db: &Path, cache: &Path, count: usize) {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    let before = rss();
    let host = {
        let config = config(db, cache);
        rt.block_on(Runtime::open(&config.store, &config.runtime))
    }
    .unwrap();
    assert_eq!(host.plugins().len(), count, "every version restored");
    let loaded = rss();
    let (one, many) = rt.block_on(async {
        host.put_connection(
            "bench",
            ConnectionSpec {
                plugin: "bench-versions".into(),
                ..Default::default()
            },
        )
        .await
        .unwrap();
        host.invoke("bench", "noop", "{}", CallOptions::default())
            .await
            .unwrap();
        let one = rss();
        for _ in 1..CALLS {
            host.invoke("bench", "noop", "{}", CallOptions::default())
                .await
                .unwrap();
        }
        (one, rss())
    });
    // One line for the parent: count, then KiB.
    println!(
        "FOOTPRINT {count} {} {} {} {} {} {} {} {}",
        before.rss, loaded.rss, loaded.anon, loaded.file, loaded.peak, one.rss, many.rss, many.peak
    );
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if let Some(at) = args.iter().position(|a| a == "--footprint-child") {
        let db = PathBuf::from(&args[at + 1]);
        let cache = PathBuf::from(&args[at + 2]);
        let count: usize = args[at + 3].parse().unwrap();
        child(&db, &cache, count);
        return;
    }

    let base = support::build_guest("bench-versions", &[]);
    let at = base
        .windows(PLACEHOLDER.len())
        .position(|w| w == PLACEHOLDER)
        .expect("the version placeholder in the component");
    assert_eq!(
        base.windows(PLACEHOLDER.len())
            .filter(|w| *w == PLACEHOLDER)
            .count(),
        1,
        "the placeholder appears once"
    );
    println!("bench-versions component: {} bytes", base.len());

    // Kept between runs: compiling 1,000 versions takes minutes.
    let cache = Path::new(env!("CARGO_TARGET_TMPDIR")).join("footprint-cache");
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    let scratch = tempfile::tempdir().unwrap();
    let mut rows = Vec::new();
    for count in COUNTS {
        let db = scratch.path().join(format!("{count}.db"));
        let started = std::time::Instant::now();
        rt.block_on(async {
            let host = {
                let config = config(&db, &cache);
                Runtime::open(&config.store, &config.runtime).await
            }
            .unwrap();
            for i in 0..count {
                let up = host
                    .upload_package(&package(version_component(&base, at, i), i), "bench")
                    .await
                    .unwrap();
                assert!(up.created, "{} {} uploaded", up.name, up.version);
            }
        });
        eprintln!("{count} versions uploaded in {:.1?}", started.elapsed());
        let exe = std::env::current_exe().unwrap();
        let output = Command::new(exe)
            .arg("--footprint-child")
            .arg(&db)
            .arg(&cache)
            .arg(count.to_string())
            .output()
            .unwrap();
        assert!(
            output.status.success(),
            "child for {count} versions failed: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        let stdout = String::from_utf8_lossy(&output.stdout);
        let line = stdout
            .lines()
            .find_map(|l| l.strip_prefix("FOOTPRINT "))
            .expect("the child's figures");
        let fields: Vec<u64> = line
            .split_whitespace()
            .map(|f| f.parse().unwrap())
            .collect();
        rows.push(fields);
    }

    println!("load average: {}", support::load_average());
    println!(
        "| loaded versions | RSS before open | RSS idle after open (anon + file) | peak during open | per version | after 1 call | after {CALLS} calls | growth per call | peak |"
    );
    println!("|---|---|---|---|---|---|---|---|---|");
    let base_row = rows[0].clone();
    for row in &rows {
        let [
            count,
            before,
            loaded,
            anon,
            file,
            open_peak,
            one,
            many,
            peak,
        ] = row[..]
        else {
            panic!("nine fields");
        };
        // Per version: against the 1-version host, so the engine, the store
        // and the runtime's fixed costs are left out.
        let per_version = if count > 1 {
            format!(
                "{:.0} KiB",
                (loaded as f64 - base_row[2] as f64) / (count - 1) as f64
            )
        } else {
            "-".into()
        };
        println!(
            "| {count} | {} | {} ({} + {}) | {} | {per_version} | {} | {} | {:.2} KiB | {} |",
            mib(before),
            mib(loaded),
            mib(anon),
            mib(file),
            mib(open_peak),
            mib(one),
            mib(many),
            (many as f64 - one as f64) / (CALLS - 1) as f64,
            mib(peak),
        );
    }
}
