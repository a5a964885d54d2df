//! Generates, from the files under `proto/`: the gRPC/protobuf code for the
//! etcd v3 API and ferrocd's internal peer service (tonic-prost-build); the
//! protobuf JSON mapping of etcd's messages as etcd's gateway speaks it
//! (pbjson-build: proto field names, 64-bit integers as strings, enum names,
//! defaults omitted); and the table of client-facing gRPC methods with their
//! streaming kinds, which the metrics use.

use std::fmt::Write as _;
use std::path::PathBuf;

use prost::Message as _;
use prost_types::FileDescriptorSet;

const PROTOS: &[&str] = &[
    "proto/mvccpb/kv.proto",
    "proto/authpb/auth.proto",
    "proto/etcdserverpb/rpc.proto",
    "proto/v3lockpb/v3lock.proto",
    "proto/v3electionpb/v3election.proto",
    "proto/peer/peer.proto",
];

/// The packages clients see: JSON mapping and gRPC metrics are for these.
const CLIENT_PACKAGES: &[&str] = &["mvccpb", "authpb", "etcdserverpb", "v3lockpb", "v3electionpb"];

fn main() -> Result<(), Box<dyn std::error::Error>> {
    println!("cargo:rerun-if-changed=proto");
    println!("cargo:rerun-if-env-changed=PROTOC");

    // Use the vendored protoc so the build does not depend on a system
    // installation. An explicitly set PROTOC still wins.
    if std::env::var_os("PROTOC").is_none() {
        let protoc = protoc_bin_vendored::protoc_bin_path()?;
        std::env::set_var("PROTOC", protoc);
    }

    let out_dir = PathBuf::from(std::env::var("OUT_DIR")?);
    let descriptor_path = out_dir.join("descriptors.bin");
    tonic_prost_build::configure()
        .build_server(true)
        .build_client(true)
        .file_descriptor_set_path(&descriptor_path)
        .compile_protos(PROTOS, &["proto"])?;

    let descriptors = std::fs::read(&descriptor_path)?;
    let packages: Vec<String> = CLIENT_PACKAGES.iter().map(|p| format!(".{p}")).collect();
    pbjson_build::Builder::new()
        .register_descriptors(&descriptors)?
        .preserve_proto_field_names()
        .ignore_unknown_fields()
        .build(&packages)?;

    let set = FileDescriptorSet::decode(descriptors.as_slice())?;
    std::fs::write(out_dir.join("grpc_methods.rs"), grpc_methods(&set))?;
    Ok(())
}

/// `(service, method, kind)` for every client-facing RPC, kinds named as
/// grpc-prometheus names them.
fn grpc_methods(set: &FileDescriptorSet) -> String {
    let mut table = String::from("pub const GRPC_METHODS: &[(&str, &str, &str)] = &[\n");
    for file in set.file.iter().filter(|f| CLIENT_PACKAGES.contains(&f.package())) {
        for service in &file.service {
            for method in &service.method {
                let kind = match (method.client_streaming(), method.server_streaming()) {
                    (false, false) => "unary",
                    (true, false) => "client_stream",
                    (false, true) => "server_stream",
                    (true, true) => "bidi_stream",
                };
                let _ = writeln!(
                    table,
                    "    ({:?}, {:?}, {:?}),",
                    format!("{}.{}", file.package(), service.name()),
                    method.name(),
                    kind
                );
            }
        }
    }
    table.push_str("];\n");
    table
}
