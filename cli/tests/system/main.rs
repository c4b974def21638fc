//! System tests: the whole `tracker run` process on random ports, driven by real
//! HTTP, WebSocket and MQTT clients. One binary, a module per area.

mod access;
mod auth;
mod backends;
mod bad_input;
mod broker_acl;
mod dispatch;
mod fallbacks;
mod faults;
mod helpers;
mod limits;
mod live_path;
mod logistics;
mod metrics;
mod nodes;
mod operations;
mod orders;
mod processes;
mod resume;
mod rider_logins;
mod simulator;
mod stock;
mod tls;
mod trip_reports;
mod trips;
mod views;
mod webhooks;
