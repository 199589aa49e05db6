//! Writes a GGUF model as a Hugging Face folder (dequantized f32 or f16 safetensors):
//! `cargo run --release --example gguf_to_hf -- model.gguf out_dir [f32|f16]`.

use lorafuse::dev::export::gguf_to_hf;
use lorafuse::formats::gguf::GgufStream;
use lorafuse::WeightFormat;
use std::io::Read;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [input, out, rest @ ..] = args.as_slice() else {
        return Err("usage: gguf_to_hf model.gguf out_dir [f32|f16]".into());
    };
    let format = WeightFormat::parse(rest.first().map_or("f32", String::as_str))?;
    let name = std::path::Path::new(input).file_name().map_or(input.clone(), |n| n.to_string_lossy().into_owned());
    let mut s = GgufStream::new(&name);
    let mut f = std::fs::File::open(input)?;
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = f.read(&mut buf)?;
        if n == 0 {
            break;
        }
        s.push(&buf[..n])?;
    }
    std::fs::create_dir_all(out)?;
    for (file, bytes) in gguf_to_hf(s, &name, format)? {
        std::fs::write(std::path::Path::new(out).join(file), bytes)?;
    }
    Ok(())
}
