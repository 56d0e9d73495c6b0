//! The OpenAI-compatible chat-completions client: one blocking request at a time, from the
//! generation worker's thread (never from `assemble`). llama.cpp's server, Ollama, vLLM and hosted
//! APIs all accept `POST {base_url}/chat/completions` with `{model, messages, max_tokens}`.
//!
//! HTTPS needs the `tls` feature (rustls); plain HTTP (loopback servers) works without it.

use std::time::Duration;

use serde_json::{Value, json};

use crate::error::{Error, Result};

/// Where and how to ask for summaries. Only a host that builds one of these causes network I/O.
#[derive(Debug, Clone, PartialEq)]
pub struct EndpointConfig {
    /// Base URL up to the API version, e.g. `http://127.0.0.1:8080/v1`; `/chat/completions` is appended.
    pub(crate) base_url: String,
    /// The model name sent in each request (and part of the summary cache key).
    pub(crate) model: String,
    /// Name of the environment variable holding the API key (sent as `Authorization: Bearer`), if any.
    pub(crate) api_key_env: Option<String>,
    /// Hard cap on output tokens per request (the window's allowance is lower when it is smaller).
    pub(crate) max_output_tokens: usize,
    /// Timeout of one request, connecting included.
    pub(crate) timeout: Duration,
    /// Retries after a failed request (transport errors, 429 and 5xx).
    pub(crate) retries: u32,
    /// Wait before the first retry; doubled for each further one.
    pub(crate) backoff: Duration,
}

impl EndpointConfig {
    /// An endpoint at `base_url` serving `model`, with the defaults: no API key, 512 output tokens,
    /// 60 s timeout, 2 retries starting at 500 ms.
    pub fn new(base_url: impl Into<String>, model: impl Into<String>) -> Self {
        EndpointConfig {
            base_url: base_url.into().trim_end_matches('/').to_string(),
            model: model.into(),
            api_key_env: None,
            max_output_tokens: 512,
            timeout: Duration::from_secs(60),
            retries: 2,
            backoff: Duration::from_millis(500),
        }
    }
    /// Read the API key from this environment variable at each request.
    pub fn api_key_env(mut self, var: impl Into<String>) -> Self {
        self.api_key_env = Some(var.into());
        self
    }
    /// Hard cap on output tokens per request.
    pub fn max_output_tokens(mut self, n: usize) -> Self {
        self.max_output_tokens = n.max(1);
        self
    }
    /// Timeout of one request.
    pub fn timeout(mut self, t: Duration) -> Self {
        self.timeout = t;
        self
    }
    /// Retries after a failed request, and the first wait (doubled each time).
    pub fn retries(mut self, n: u32, backoff: Duration) -> Self {
        self.retries = n;
        self.backoff = backoff;
        self
    }
    /// The model name.
    pub fn model(&self) -> &str {
        &self.model
    }
    /// The base URL.
    pub fn base_url(&self) -> &str {
        &self.base_url
    }
}

/// A blocking chat-completions client for one endpoint.
pub(crate) struct Client {
    config: EndpointConfig,
    agent: ureq::Agent,
}

/// Whether a failed request is worth retrying.
enum Failure {
    Retry(String),
    Final(String),
}

impl Client {
    pub(crate) fn new(config: EndpointConfig) -> Self {
        let agent: ureq::Agent = ureq::Agent::config_builder().timeout_global(Some(config.timeout)).http_status_as_error(false).build().into();
        Client { config, agent }
    }

    /// The assistant's reply to `system` + `user`, in at most `max_tokens` output tokens (capped by
    /// the config). Retries with exponential backoff; the error names the endpoint and the last failure.
    pub(crate) fn complete(&self, system: &str, user: &str, max_tokens: usize) -> Result<String> {
        let body = json!({
            "model": self.config.model,
            "messages": [{"role": "system", "content": system}, {"role": "user", "content": user}],
            "max_tokens": max_tokens.min(self.config.max_output_tokens).max(1),
            "temperature": 0,
            "stream": false,
        });
        let mut wait = self.config.backoff;
        let mut attempt = 0;
        loop {
            match self.once(&body) {
                Ok(text) => return Ok(text),
                Err(Failure::Retry(_)) if attempt < self.config.retries => {
                    attempt += 1;
                    std::thread::sleep(wait);
                    wait = wait.saturating_mul(2);
                }
                Err(Failure::Retry(m) | Failure::Final(m)) => {
                    return Err(Error::Endpoint { url: self.url(), attempts: attempt + 1, message: m });
                }
            }
        }
    }

    fn url(&self) -> String {
        format!("{}/chat/completions", self.config.base_url)
    }

    fn once(&self, body: &Value) -> std::result::Result<String, Failure> {
        let mut req = self.agent.post(self.url()).header("Content-Type", "application/json");
        if let Some(var) = &self.config.api_key_env {
            let key = std::env::var(var).map_err(|_| Failure::Final(format!("environment variable {var} (the API key) is not set")))?;
            req = req.header("Authorization", format!("Bearer {key}"));
        }
        let mut resp = req.send_json(body).map_err(|e| Failure::Retry(e.to_string()))?;
        let status = resp.status().as_u16();
        if status == 429 || status >= 500 {
            return Err(Failure::Retry(format!("HTTP {status}")));
        }
        if status != 200 {
            let text = resp.body_mut().read_to_string().unwrap_or_default();
            return Err(Failure::Final(format!("HTTP {status}: {}", crate::text::take_bytes_at_char_boundary(&text, 300))));
        }
        let v: Value = resp.body_mut().read_json().map_err(|e| Failure::Retry(format!("unreadable response: {e}")))?;
        v.pointer("/choices/0/message/content")
            .and_then(Value::as_str)
            .map(|s| s.trim().to_string())
            .ok_or_else(|| Failure::Final("response has no choices[0].message.content".to_string()))
    }
}
