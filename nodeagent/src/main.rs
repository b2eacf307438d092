//! emu-nodeagent: see the library docs for its four personalities.
fn main() {
    let args: Vec<String> = std::env::args().collect();
    // The shim and nsexec change namespaces, which needs a process without threads: dispatch
    // before anything else can start one.
    match args.get(1).map(String::as_str) {
        Some("shim") => match args.get(2) {
            Some(pod_dir) => emu_nodeagent::sandbox::shim_main(std::path::Path::new(pod_dir)),
            None => {
                eprintln!("usage: emu-nodeagent shim <pod_dir>");
                std::process::exit(2);
            }
        },
        Some("nsexec") => emu_nodeagent::sandbox::nsexec_main(&args[2..]),
        _ => {}
    }
    let result = match args.get(1).map(String::as_str) {
        Some("agent") => emu_nodeagent::agent::main(args[2..].to_vec()),
        Some("cloud") => emu_nodeagent::cloud::main(args[2..].to_vec()),
        _ => emu_nodeagent::agent::main(args[1..].to_vec()),
    };
    if let Err(err) = result {
        eprintln!("emu-nodeagent: {err:#}");
        std::process::exit(1);
    }
}
