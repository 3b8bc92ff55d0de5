//! The decoder's invariants as one function, shared by the cargo-fuzz target (`fuzz/`) and the corpus test.

use bytes::BytesMut;
use tokio_util::codec::{Decoder, Encoder};

use super::{Envelope, FrameCodec, FrameError};

/// Maximum frame size the invariant check runs the decoder with (small, so that hostile lengths are common).
const CHECK_MAX_FRAME_SIZE: usize = 4096;

/// Feeds `data` to a [`FrameCodec`] as one stream and checks the decoder's invariants.
///
/// The invariants: decoding never panics; decoding the stream in one piece and in chunks (sizes derived from
/// the data) yields the same envelopes and then the same error or end; every decoded envelope encodes and
/// decodes back to itself; after an error the decoder only reports [`FrameError::Poisoned`]. Returns a
/// description of the first violated invariant. The fuzz target panics on `Err`; tests assert `Ok`.
pub fn check_decoder(data: &[u8]) -> Result<(), String> {
    let whole = run(data, &[data.len().max(1)])?;
    let sizes: Vec<usize> = data
        .iter()
        .take(16)
        .map(|b| usize::from(b % 7) + 1)
        .collect();
    let chunked = run(data, if sizes.is_empty() { &[1] } else { &sizes })?;
    if whole != chunked {
        return Err(format!(
            "decoding in one piece gave {whole:?}, in chunks {chunked:?}"
        ));
    }
    for env in &whole.0 {
        let mut codec = FrameCodec::default();
        let mut buf = BytesMut::new();
        codec
            .encode(env, &mut buf)
            .map_err(|e| format!("re-encoding decoded {env:?} failed: {e}"))?;
        match codec.decode(&mut buf) {
            Ok(Some(back)) if &back == env && buf.is_empty() => {}
            other => return Err(format!("re-encoded {env:?} decoded as {other:?}")),
        }
    }
    Ok(())
}

/// Envelopes decoded, then the final outcome (`None` = clean end, or the error's text).
type Outcome = (Vec<Envelope>, Option<String>);

fn run(data: &[u8], chunk_sizes: &[usize]) -> Result<Outcome, String> {
    let mut codec = FrameCodec::new(CHECK_MAX_FRAME_SIZE).map_err(|e| e.to_string())?;
    let mut buf = BytesMut::new();
    let mut frames = Vec::new();
    let mut rest = data;
    let mut sizes = chunk_sizes.iter().cycle();
    let end = loop {
        let take = sizes.next().copied().unwrap_or(1).min(rest.len());
        let (chunk, tail) = rest.split_at(take);
        rest = tail;
        buf.extend_from_slice(chunk);
        let at_eof = rest.is_empty();
        let step = drain(&mut codec, &mut buf, &mut frames, at_eof);
        match step {
            Err(e) => break Some(e),
            Ok(()) if at_eof => break None,
            Ok(()) => {}
        }
    };
    if let Some(err) = &end {
        if matches!(err, FrameError::Poisoned) {
            return Err("first error reported was Poisoned".into());
        }
        match codec.decode(&mut buf) {
            Err(FrameError::Poisoned) => {}
            other => return Err(format!("decoder answered {other:?} after reporting {err}")),
        }
    }
    Ok((frames, end.map(|e| e.to_string())))
}

fn drain(
    codec: &mut FrameCodec,
    buf: &mut BytesMut,
    frames: &mut Vec<Envelope>,
    at_eof: bool,
) -> Result<(), FrameError> {
    loop {
        let next = if at_eof {
            codec.decode_eof(buf)?
        } else {
            codec.decode(buf)?
        };
        match next {
            Some(env) => frames.push(env),
            None => return Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

    /// The cargo-fuzz target's body over its committed corpus: the fuzz invariants hold on stable Rust too.
    #[test]
    fn decoder_invariants_hold_over_the_fuzz_corpus() {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../fuzz/corpus/frame_decoder");
        let mut seen = 0;
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            let data = std::fs::read(&path).unwrap();
            assert_eq!(check_decoder(&data), Ok(()), "{}", path.display());
            seen += 1;
        }
        assert!(
            seen >= 10,
            "expected the committed seed corpus in {}",
            dir.display()
        );
    }

    #[test]
    fn the_check_itself_reports_frames_and_errors() {
        let mut codec = FrameCodec::default();
        let mut buf = BytesMut::new();
        let e = Envelope::new(
            super::super::Channel::IamOpen,
            1,
            super::super::MessageKind::Event,
            vec![1; 10],
        );
        codec.encode(&e, &mut buf).unwrap();
        let (frames, end) = run(&buf, &[3]).unwrap();
        assert_eq!(frames, vec![e]);
        assert_eq!(end, None);
        let (frames, end) = run(&[0, 0, 0xFF, 0xFF], &[1]).unwrap();
        assert!(frames.is_empty());
        assert!(end.unwrap().contains("exceeds the maximum frame size"));
    }
}
