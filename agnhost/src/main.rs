//! emu-agnhost: see the library's documentation (what each name it runs under serves).

fn main() {
    let argv: Vec<String> = std::env::args().collect();
    std::process::exit(emu_agnhost::server::run(emu_agnhost::mode(&argv)));
}
