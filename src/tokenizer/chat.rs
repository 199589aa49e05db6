//! Chat templates: the model's own Jinja template (GGUF `tokenizer.chat_template`,
//! tokenizer_config.json), rendered with minijinja; ChatML when a model has none. A template
//! comes with the model file, so it is untrusted: every render runs on a budget of VM
//! instructions (minijinja's fuel), and a probe render at load with a sample conversation
//! refuses a template that never finishes before anyone chats with it.

use crate::error::{Error, Result};
use serde::{Deserialize, Serialize};

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct Message {
    pub role: String,
    pub content: String,
}

/// VM instructions one render may take: real templates take a few hundred per message.
/// Fuzzing runs on a smaller budget: the same exhaustion path, reached 20× sooner (a
/// template spinning to 5 M steps held libFuzzer at ~200 inputs/s).
const FUEL: u64 = if cfg!(fuzzing) { 250_000 } else { 5_000_000 };

const CHATML: &str = "{% for message in messages %}{{ '<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>' + '\n' }}{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}";

pub struct ChatTemplate {
    source: String,
    bos: String,
    eos: String,
}

impl ChatTemplate {
    pub fn new(source: Option<&str>, bos: &str, eos: &str) -> Result<ChatTemplate> {
        let t = ChatTemplate { source: source.unwrap_or(CHATML).to_string(), bos: bos.into(), eos: eos.into() };
        // A template that cannot render a sample conversation within its budget is refused
        // at load, not at the first chat. (Other errors wait for a chat: a template may refuse
        // a system message on purpose, or call a function only some apps define.)
        let sample = [("system", "You are helpful."), ("user", "Hello!"), ("assistant", "Hi."), ("user", "Bye.")];
        let sample: Vec<Message> = sample.iter().map(|(r, c)| Message { role: r.to_string(), content: c.to_string() }).collect();
        match t.render(&sample, true) {
            Err(e) if e.kind == crate::error::ErrorKind::Limit => Err(e),
            _ => Ok(t),
        }
    }

    fn env(&self) -> Result<minijinja::Environment<'_>> {
        // As transformers renders templates: blocks trimmed, Python's string and dict
        // methods (Qwen3's `content.split('</think>')`, `.startswith`, ...).
        let mut env = minijinja::Environment::new();
        env.set_trim_blocks(true);
        env.set_lstrip_blocks(true);
        env.set_unknown_method_callback(minijinja_contrib::pycompat::unknown_method_callback);
        env.set_fuel(Some(FUEL));
        env.add_function("raise_exception", |msg: String| -> std::result::Result<String, minijinja::Error> {
            Err(minijinja::Error::new(minijinja::ErrorKind::InvalidOperation, msg))
        });
        env.add_template("chat", &self.source).map_err(|e| Error::unsupported(format!("chat template: {e}")))?;
        Ok(env)
    }

    pub fn render(&self, messages: &[Message], add_generation_prompt: bool) -> Result<String> {
        let env = self.env()?;
        let tmpl = env.get_template("chat").map_err(|e| Error::unsupported(format!("chat template: {e}")))?;
        tmpl.render(minijinja::context! {
            messages => messages,
            add_generation_prompt => add_generation_prompt,
            bos_token => self.bos,
            eos_token => self.eos,
        })
        .map_err(|e| match e.kind() {
            minijinja::ErrorKind::OutOfFuel => Error::limit(format!("chat template: rendering took more than {FUEL} steps")),
            _ => Error::config(format!("chat template: {e}")),
        })
    }
}
