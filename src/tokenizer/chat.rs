//! Chat templates: the model's own Jinja template (GGUF `tokenizer.chat_template`,
//! tokenizer_config.json), rendered with minijinja; ChatML when a model has none.

use crate::error::{Error, Result};
use serde::{Deserialize, Serialize};

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct Message {
    pub role: String,
    pub content: String,
}

const CHATML: &str = "{% for message in messages %}{{ '<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>' + '\n' }}{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}";

pub struct ChatTemplate {
    source: String,
    bos: String,
    eos: String,
}

impl ChatTemplate {
    pub fn new(source: Option<&str>, bos: &str, eos: &str) -> Result<ChatTemplate> {
        let t = ChatTemplate { source: source.unwrap_or(CHATML).to_string(), bos: bos.into(), eos: eos.into() };
        t.env()?; // fail at load, not at the first chat
        Ok(t)
    }

    fn env(&self) -> Result<minijinja::Environment<'_>> {
        let mut env = minijinja::Environment::new();
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
        .map_err(|e| Error::config(format!("chat template: {e}")))
    }
}
