//! Generates the tonic/prost code of every protocol with the vendored protoc
//! (the build machines have no protoc of their own).

fn main() -> Result<(), Box<dyn std::error::Error>> {
    if std::env::var_os("PROTOC").is_none() {
        // SAFETY: build scripts are single-threaded; nothing else reads the env here.
        unsafe { std::env::set_var("PROTOC", protoc_bin_vendored::protoc_bin_path()?) };
    }
    let protos = [
        "proto/shoal/types/v1/objects.proto",
        "proto/shoal/control/v1/control.proto",
        "proto/shoal/dispatcher/v1/dispatcher.proto",
        "proto/shoal/ca/v1/ca.proto",
        "proto/shoal/raft/v1/raft.proto",
        "proto/shoal/netd/v1/netd.proto",
    ];
    tonic_prost_build::configure().compile_protos(&protos, &["proto"])?;
    println!("cargo:rerun-if-changed=proto");
    Ok(())
}
