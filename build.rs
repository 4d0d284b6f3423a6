//! The web pages are embedded with `include_dir!`, which stable Rust cannot tell
//! Cargo about: this makes a change under `assets/web/` rebuild the crate.
fn main() {
    println!("cargo:rerun-if-changed=assets/web");
}
