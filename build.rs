//! Gives the shared library an SONAME so programs linked against it record a stable name.
fn main() {
    println!("cargo:rustc-cdylib-link-arg=-Wl,-soname,libnnunet_rt.so");
}
