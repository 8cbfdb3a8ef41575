fn main() {
    eprintln!("rr-proxy: not yet");
    std::process::exit(1);
}
