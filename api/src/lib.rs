//! `payouts-api` owns the HTTP surface: the axum router, auth, JSON errors, Prometheus metrics and the embedded
//! dashboard. It only reads state and inserts manual claims; it never signs or broadcasts. (API issue.)
