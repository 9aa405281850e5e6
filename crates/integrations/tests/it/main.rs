//! The integrations against real counterparts: `../shared/tools/jira_fake.py`, an aiosmtpd
//! SMTP server (`tests/smtp_sink.py`), and scripted HTTP receivers for Slack and webhooks.
//! One test binary, so the heavy dependencies are linked once.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod config;
mod email;
mod jira;
mod slack;
mod support;
mod webhook;
