//! Wear of the engine's records on a 4 KiB-page NOR flash: ten years of hourly usage reporting
//! (the default configuration otherwise), saved after every engine call as the driver contract
//! says, against the lab's service. Prints erases per page, max and mean.
//!
//! ```text
//! cargo run --release -p slup-core --features server,fault-injection --example wear -- [years] [pages]
//! ```
//!
//! Defaults: 10 years, 16 pages (a 64 KiB partition).

#[allow(dead_code)]
#[path = "../tests/power_cut/big_store.rs"]
mod big_store;
#[allow(dead_code)]
#[path = "../tests/common/lab.rs"]
mod lab;
#[path = "../tests/power_cut/wear.rs"]
mod wear;

fn main() {
    let mut args = std::env::args().skip(1);
    let years: u64 = args.next().and_then(|a| a.parse().ok()).unwrap_or(10);
    let pages: usize = args.next().and_then(|a| a.parse().ok()).unwrap_or(16);
    println!(
        "{years} years of hourly reporting, {pages} pages of 4 KiB ({} KiB), 4-byte words",
        pages * 4
    );
    let started = std::time::Instant::now();
    let w = wear::simulate(pages, years * 365 * 24, |w| {
        println!(
            "  year {:>2}: erases per page max {:>6}, mean {:>8.1}; {} saves, {} reports acknowledged",
            w.hours / (365 * 24),
            w.max(),
            w.mean(),
            w.saves,
            w.acked
        );
    });
    println!(
        "after {} hours: {} saves, {} reports acknowledged, {:.1} MiB programmed",
        w.hours,
        w.saves,
        w.acked,
        w.bytes_written as f64 / (1024.0 * 1024.0)
    );
    println!(
        "erases per page: max {}, mean {:.1}, min {}, max/mean {:.3}",
        w.max(),
        w.mean(),
        w.min(),
        f64::from(w.max()) / w.mean().max(1.0)
    );
    println!("per page: {:?}", w.erases);
    println!("({:.0} s)", started.elapsed().as_secs_f64());
}
