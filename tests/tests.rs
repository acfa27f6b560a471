//! End-to-end tests of the `edgecc` binary over its real interfaces: the
//! command line, the admin socket, the data directory.
//!
//! One test binary (ripgrep's layout): each module is named for what it
//! checks; [`util`] starts and stops daemons.

mod advisories;
mod api_fuzz;
mod ari_app_owner;
mod ari_calls;
mod ari_desktop_accept;
mod ari_emulator;
mod ari_harness;
mod ari_link;
mod ari_pbx_lost;
mod ari_pbx_process;
mod ari_restart;
mod ari_supervision;
mod ari_waiting;
mod backup_restore;
mod browser;
mod check_config;
mod config_errors;
mod config_reload;
mod crm_outage;
mod crm_sync;
mod crm_wire;
mod cross_config;
mod deb_package;
mod demo_restart;
mod demo_screen;
mod disk_stall;
mod http_api;
mod http_desk;
mod http_hardening;
mod http_routing;
mod http_sessions;
mod http_tls;
mod http_ui;
mod http_wrap_up;
mod http_ws;
mod journald_logs;
mod module_graph;
mod openapi;
mod outbox_cli;
mod private_files;
mod queue_metrics;
mod reports;
mod restart;
mod servicenow_ccaas;
mod servicenow_install;
mod simulate;
mod sn_rig;
mod sticky_import;
mod storage_health;
mod systemd_notify;
mod systemd_unit;
mod util;
mod wallboard_http;
