//! Compiles the etcd v3 protos under proto/ into Rust with protox (a protobuf compiler written in
//! Rust), so building detcd needs no protoc on the machine. The descriptors are kept too
//! (`descriptors.bin` in OUT_DIR): the HTTP/JSON gateway maps JSON to protobuf with them.

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let files = ["proto/etcdserverpb/rpc.proto", "proto/mvccpb/kv.proto"];
    for file in files {
        println!("cargo:rerun-if-changed={file}");
    }
    let descriptors = protox::compile(files, ["proto"])?;
    let out_dir = std::path::PathBuf::from(std::env::var("OUT_DIR")?);
    std::fs::write(
        out_dir.join("descriptors.bin"),
        prost::Message::encode_to_vec(&descriptors),
    )?;
    tonic_prost_build::configure()
        .build_client(true)
        .build_server(true)
        .compile_fds(descriptors)?;
    Ok(())
}
