//! Integration tests of the API: real Postgres (one throwaway database per test), requests through the
//! router (`tower::ServiceExt::oneshot`) or over a real socket, a property run of malformed requests, and
//! the dashboard in headless Chromium.

mod admin;
mod browser;
mod cdp;
mod config;
mod fuzz;
mod http;
mod read;
mod send;
mod status;
mod support;
