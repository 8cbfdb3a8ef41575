fn main() {
    eprintln!("rr-echo: not yet");
    std::process::exit(1);
}
