fn main() {
    eprintln!("rkt-stage1: not implemented yet");
    std::process::exit(stage1_abi::exit::RKT_FAILURE);
}
