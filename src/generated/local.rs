//! A fully offline summary model (feature `local-llm`): llama.cpp through the `llama-cpp-2` crate,
//! serving the same OpenAI-compatible `POST /v1/chat/completions` the endpoint client speaks, on
//! loopback. Tests run the client against it (a real model, not a mock), and `ctxbench
//! summarizer-server` starts it for users without an endpoint.
//!
//! The server is `tiny_http`: a blocking HTTP/1.1 server with no async runtime, which is all one
//! model on one thread needs (requests are answered one at a time, as llama.cpp decodes one
//! sequence at a time here). Decoding is greedy with a repetition penalty, so a summary of the same
//! prompt is the same text every time.

use std::net::SocketAddr;
use std::num::NonZeroU32;
use std::path::{Path, PathBuf};
use std::sync::mpsc;
use std::sync::{Arc, OnceLock};

use llama_cpp_2::context::LlamaContext;
use llama_cpp_2::context::params::LlamaContextParams;
use llama_cpp_2::llama_backend::LlamaBackend;
use llama_cpp_2::llama_batch::LlamaBatch;
use llama_cpp_2::model::params::LlamaModelParams;
use llama_cpp_2::model::{LlamaChatMessage, LlamaChatTemplate, LlamaModel};
use llama_cpp_2::sampling::LlamaSampler;
use serde_json::{Value, json};

use crate::error::{Error, Result};

/// Context size of the served model (prompt + output tokens).
const N_CTX: u32 = 8192;

/// llama.cpp's backend, initialized once per process.
fn backend() -> std::result::Result<&'static LlamaBackend, String> {
    static BACKEND: OnceLock<std::result::Result<LlamaBackend, String>> = OnceLock::new();
    BACKEND
        .get_or_init(|| {
            let mut b = LlamaBackend::init().map_err(|e| e.to_string())?;
            b.void_logs();
            Ok(b)
        })
        .as_ref()
        .map_err(Clone::clone)
}

/// A local model serving chat completions on `127.0.0.1`. Dropping it stops the server.
pub struct LocalModelServer {
    addr: SocketAddr,
    model_name: String,
    server: Arc<tiny_http::Server>,
}

impl std::fmt::Debug for LocalModelServer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LocalModelServer").field("addr", &self.addr).field("model", &self.model_name).finish()
    }
}

impl LocalModelServer {
    /// Loads the GGUF model at `path` and serves it on `127.0.0.1:port` (0: any free port) with
    /// `threads` threads. Returns once the model is loaded and the port is open.
    pub fn start(path: &Path, port: u16, threads: usize) -> Result<LocalModelServer> {
        let err = |m: String| Error::LocalModel { path: path.to_path_buf(), message: m };
        let server = Arc::new(tiny_http::Server::http(("127.0.0.1", port)).map_err(|e| err(format!("cannot listen on 127.0.0.1:{port}: {e}")))?);
        let addr = server.server_addr().to_ip().ok_or_else(|| err("the server has no IP address".into()))?;
        let model_name = path.file_stem().map_or_else(|| "local".to_string(), |s| s.to_string_lossy().into_owned());
        let (ready_tx, ready_rx) = mpsc::channel();
        let (srv, name, file) = (Arc::clone(&server), model_name.clone(), path.to_path_buf());
        std::thread::Builder::new()
            .name("ctxwin-local-llm".into())
            .spawn(move || serve(&srv, &file, &name, threads, &ready_tx))
            .map_err(|e| err(format!("cannot start the server thread: {e}")))?;
        match ready_rx.recv() {
            Ok(Ok(())) => Ok(LocalModelServer { addr, model_name, server }),
            Ok(Err(m)) => Err(err(m)),
            Err(_) => Err(err("the server thread ended while loading the model".into())),
        }
    }
    /// The base URL to give [`crate::EndpointConfig::new`] (`http://127.0.0.1:PORT/v1`).
    pub fn base_url(&self) -> String {
        format!("http://{}/v1", self.addr)
    }
    /// The model name it answers to (the file name without `.gguf`; any name is accepted).
    pub fn model_name(&self) -> &str {
        &self.model_name
    }
}

impl Drop for LocalModelServer {
    fn drop(&mut self) {
        self.server.unblock();
    }
}

/// The loaded model and its one context, reused for every request.
struct Loaded<'m> {
    model: &'m LlamaModel,
    template: LlamaChatTemplate,
    ctx: LlamaContext<'m>,
}

fn serve(server: &tiny_http::Server, path: &PathBuf, name: &str, threads: usize, ready: &mpsc::Sender<std::result::Result<(), String>>) {
    let model = match backend().and_then(|b| LlamaModel::load_from_file(b, path, &LlamaModelParams::default()).map_err(|e| e.to_string())) {
        Ok(m) => m,
        Err(m) => {
            let _ = ready.send(Err(format!("cannot load: {m}")));
            return;
        }
    };
    let loaded = backend().and_then(|b| {
        let threads = i32::try_from(threads.max(1)).unwrap_or(1);
        let params = LlamaContextParams::default().with_n_ctx(NonZeroU32::new(N_CTX)).with_n_batch(N_CTX).with_n_threads(threads).with_n_threads_batch(threads);
        let ctx = model.new_context(b, params).map_err(|e| e.to_string())?;
        let template = model.chat_template(None).map_err(|e| format!("no chat template: {e}"))?;
        Ok(Loaded { model: &model, template, ctx })
    });
    let mut loaded = match loaded {
        Ok(l) => l,
        Err(m) => {
            let _ = ready.send(Err(m));
            return;
        }
    };
    let _ = ready.send(Ok(()));
    for mut req in server.incoming_requests() {
        let (status, body) = if req.url().ends_with("/models") {
            (200, json!({"object": "list", "data": [{"id": name, "object": "model"}]}))
        } else if *req.method() == tiny_http::Method::Post && req.url().ends_with("/chat/completions") {
            let mut text = String::new();
            match req
                .as_reader()
                .read_to_string(&mut text)
                .map_err(|e| e.to_string())
                .and_then(|_| serde_json::from_str::<Value>(&text).map_err(|e| e.to_string()))
            {
                Ok(v) => match loaded.complete(&v) {
                    Ok(reply) => (200, reply),
                    Err(m) => (400, json!({"error": {"message": m}})),
                },
                Err(m) => (400, json!({"error": {"message": format!("bad request body: {m}")}})),
            }
        } else {
            (404, json!({"error": {"message": "not found"}}))
        };
        let header = tiny_http::Header::from_bytes(&b"Content-Type"[..], &b"application/json"[..]);
        let mut resp = tiny_http::Response::from_string(body.to_string()).with_status_code(status);
        if let Ok(h) = header {
            resp = resp.with_header(h);
        }
        let _ = req.respond(resp);
    }
}

impl Loaded<'_> {
    /// Answers one chat-completions request body.
    fn complete(&mut self, req: &Value) -> std::result::Result<Value, String> {
        let messages = req.get("messages").and_then(Value::as_array).ok_or("messages is missing")?;
        let chat = messages
            .iter()
            .map(|m| {
                let role = m.get("role").and_then(Value::as_str).unwrap_or("user");
                let content = m.get("content").and_then(Value::as_str).unwrap_or_default();
                LlamaChatMessage::new(role.to_string(), content.to_string()).map_err(|e| e.to_string())
            })
            .collect::<std::result::Result<Vec<_>, _>>()?;
        let max_tokens = req.get("max_tokens").and_then(Value::as_u64).unwrap_or(256).clamp(1, u64::from(N_CTX) / 2) as usize;
        let prompt = self.model.apply_chat_template(&self.template, &chat, true).map_err(|e| e.to_string())?;
        let tokens = self.model.vocab().tokenize(prompt.as_bytes(), true, true);
        if tokens.len() + max_tokens > N_CTX as usize {
            return Err(format!("prompt of {} tokens + max_tokens {max_tokens} exceeds the context of {N_CTX}", tokens.len()));
        }
        let (text, n_out, finish) = self.generate(&tokens, max_tokens)?;
        Ok(json!({
            "object": "chat.completion",
            "model": req.get("model").cloned().unwrap_or(Value::Null),
            "choices": [{"index": 0, "message": {"role": "assistant", "content": text}, "finish_reason": finish}],
            "usage": {"prompt_tokens": tokens.len(), "completion_tokens": n_out, "total_tokens": tokens.len() + n_out},
        }))
    }

    /// Greedy decoding (with a repetition penalty) of at most `max_tokens` after `prompt`.
    fn generate(&mut self, prompt: &[llama_cpp_2::token::LlamaToken], max_tokens: usize) -> std::result::Result<(String, usize, &'static str), String> {
        self.ctx.clear_kv_cache();
        let mut batch = LlamaBatch::new(N_CTX as usize, 1);
        let last = prompt.len().saturating_sub(1);
        for (i, &t) in prompt.iter().enumerate() {
            batch.add(t, i as i32, &[0], i == last).map_err(|e| e.to_string())?;
        }
        self.ctx.decode(&mut batch).map_err(|e| e.to_string())?;
        let vocab = self.model.vocab();
        let mut sampler = LlamaSampler::chain_simple([LlamaSampler::penalties(self.model.n_vocab(), 64, 1.3, 0.0, 0.0), LlamaSampler::greedy()]);
        let mut bytes = Vec::new();
        for (n, pos) in (0..max_tokens).zip(prompt.len()..) {
            let tok = sampler.sample(&self.ctx, batch.n_tokens() - 1);
            if vocab.is_eog(tok) {
                return Ok((String::from_utf8_lossy(&bytes).trim().to_string(), n, "stop"));
            }
            bytes.extend(vocab.token_to_piece(tok, false, None));
            batch.clear();
            batch.add(tok, pos as i32, &[0], true).map_err(|e| e.to_string())?;
            self.ctx.decode(&mut batch).map_err(|e| e.to_string())?;
        }
        Ok((String::from_utf8_lossy(&bytes).trim().to_string(), max_tokens, "length"))
    }
}
