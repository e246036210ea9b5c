fn main() {
    std::process::exit(rkt_cli::main());
}
