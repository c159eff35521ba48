//! Re-renders a compare directory's report from its runs (after a change to the report code):
//! `cargo run -p graft-report --example render -- DIR`.

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let dir = std::env::args().nth(1).ok_or("usage: render COMPARE_DIR")?;
    let dir = std::path::Path::new(&dir);
    let results = graft_report::collect(dir)?;
    graft_report::write(dir, &results)?;
    println!("{}", results.conclusion);
    Ok(())
}
