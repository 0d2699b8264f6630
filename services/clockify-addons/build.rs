//! The linker of the static builds lays out the functions `hot-symbols.txt` names together
//! (scripts/link-ordered.sh): a new list must relink the binary, and Cargo only relinks what
//! it knows changed.
fn main() {
    println!("cargo:rerun-if-changed=hot-symbols.txt");
}
