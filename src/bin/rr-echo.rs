//! rr-echo: flags → validated config → bind → one `listening on ADDR` line → serve.
//! Exit codes: 0 after `--help`, 2 for a bad command line, 1 when it cannot listen or serve.

use std::io::Write;
use std::process::ExitCode;

use rr_proxy::echo::{self, Command};

fn main() -> ExitCode {
    env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("info")).init();
    let config = match echo::parse_args(std::env::args().skip(1)) {
        Ok(Command::Run(config)) => config,
        Ok(Command::Help) => {
            print!("{}", echo::HELP);
            return ExitCode::SUCCESS;
        }
        Err(e) => {
            eprintln!("rr-echo: {e}\nTry 'rr-echo --help'.");
            return ExitCode::from(2);
        }
    };
    // A descriptor per connection, and a few for the listener, the poller and the logs.
    let wanted = config.max_conns as u64 + 32;
    if let Some(limit) = rr_proxy::net::limit::raise_open_files(wanted) {
        if limit < wanted {
            log::warn!(
                "the open-file limit (ulimit -n {limit}) is below --max-conns {}: \
                 connections past it wait until a descriptor is free",
                config.max_conns
            );
        }
    }
    let listener = match rr_proxy::net::limit::listen((config.host, config.port).into()) {
        Ok(l) => l,
        Err(e) => {
            eprintln!(
                "rr-echo: cannot listen on {}:{}: {e}",
                config.host, config.port
            );
            return ExitCode::FAILURE;
        }
    };
    let addr = match listener.local_addr() {
        Ok(a) => a,
        Err(e) => {
            eprintln!("rr-echo: {e}");
            return ExitCode::FAILURE;
        }
    };
    // Tests and scripts read this line to learn the port; flush so they are not kept waiting.
    let mut out = std::io::stdout().lock();
    if writeln!(out, "listening on {addr}")
        .and_then(|()| out.flush())
        .is_err()
    {
        return ExitCode::FAILURE;
    }
    drop(out);
    match echo::run(listener, config) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            log::error!("rr-echo stopped: {e}");
            ExitCode::FAILURE
        }
    }
}
