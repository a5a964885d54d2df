//! ferrocdctl: the command-line client (see [`ferrocd::ctl`]).

fn main() {
    std::process::exit(ferrocd::ctl::main(std::env::args_os()));
}
