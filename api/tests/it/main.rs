//! Integration tests of the API: real Postgres (one throwaway database per test), requests through the
//! router (`tower::ServiceExt::oneshot`) or over a real socket, a property run of malformed requests, the
//! dashboard in headless Chromium, and the webhook views and redelivery.

mod admin;
mod browser;
mod browser_campaigns;
mod campaign_ops;
mod campaigns;
mod cdp;
mod config;
mod fuzz;
mod http;
mod incidents;
mod read;
mod send;
mod stall;
mod status;
mod support;
mod tokens;
mod webhooks;
