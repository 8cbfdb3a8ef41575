//! `rr-proxy`: flags → validated config → bind → run. Exit codes: 0 after `--help` and after a
//! drain (SIGTERM or SIGINT), 1 when the proxy cannot start, stops on an error, or a second
//! signal cut the drain short, 2 for a bad command line.

use std::io::Write;
use std::process::ExitCode;

use rr_proxy::proxy::control::Stop;
use rr_proxy::proxy::{self, config};

fn main() -> ExitCode {
    env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("warn")).init();
    let env_backends = std::env::var("BACKEND_SERVERS").ok();
    let cfg = match config::from_args(std::env::args().skip(1), env_backends) {
        Ok(config::Command::Help) => {
            print!("{}", config::HELP);
            return ExitCode::SUCCESS;
        }
        Ok(config::Command::Run(cfg)) => *cfg,
        Err(e) => {
            eprintln!("rr-proxy: {e}");
            return ExitCode::from(2);
        }
    };
    let listener = match std::net::TcpListener::bind(cfg.listen) {
        Ok(l) => l,
        Err(e) => {
            eprintln!("rr-proxy: cannot listen on {}: {e}", cfg.listen);
            return ExitCode::from(1);
        }
    };
    let addr = listener.local_addr().map_or(cfg.listen, |a| a);
    println!("listening on {addr}");
    let _ = std::io::stdout().flush();
    match proxy::run(listener, cfg) {
        Ok(Stop::Drained | Stop::DrainTimedOut) => ExitCode::SUCCESS,
        // A second signal cut the drain short: requests may have been lost.
        Ok(Stop::Forced) => ExitCode::from(1),
        Err(e) => {
            eprintln!("rr-proxy: {e}");
            ExitCode::from(1)
        }
    }
}
