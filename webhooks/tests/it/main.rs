//! Webhook delivery against a real PostgreSQL and real HTTP receivers on 127.0.0.1.

mod delivery;
