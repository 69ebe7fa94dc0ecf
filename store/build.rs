//! Rebuilds the crate when a migration is added or changed: `embed_migrations!` reads the directory at
//! compile time, and cargo does not watch it by itself (a new migration directory would be missed).
fn main() {
    println!("cargo:rerun-if-changed=../migrations");
}
