//! Translation and moderation: deterministic answers for tests.
//!
//! # Rules
//!
//! * Languages: the codes of [`RtmEmulator::LANGUAGES`]; another `dst`,
//!   `src` or `lang` gives 200050 (`RTM_EC_UNSUPPORTED_LANGUAGE`).
//! * Profanity: the words of [`RtmEmulator::PROFANE_WORDS`], matched as
//!   whole words (ASCII letters and digits), in any case. Masking replaces
//!   each character of such a word with `*`.
//! * `translate`: `targetText` is `"[<dst>] "` followed by the text (the
//!   text masked first with `profanity: "censor"` or `postProfanity:
//!   true`); `source` is `src`, or when absent `"zh-CN"` for a text with
//!   a CJK character and `"en"` otherwise; `sourceText` is the text as
//!   given. `profanity: "stop"` on a text with profanity gives 200057
//!   (`RTM_EC_PROFANITY_STOP`). `type` must be `"chat"` or `"mail"` and
//!   `profanity` `"off"`, `"stop"` or `"censor"` (otherwise 200034); an
//!   empty text gives 200033 (`RTM_EC_EMPTY_PARAMETER`).
//! * `profanity`: the masked text; with `classify`, `classification` is
//!   `["profanity"]` when a word was found and `[]` otherwise.
//! * `speech2text`: for content (`type` 2) the text is the content itself;
//!   for a URL (`type` 1) it is `"transcript of <url>"`; `lang` is echoed.
//!   Another `type` gives 200061 (`RTM_EC_UNSUPPORTED_TRANSCRIBE_TYPE`).
//! * `tcheck`: a text with profanity gets `result` 2, `text` masked,
//!   `tags` `[1]` (ints, as the service may send them) and `wlist` the
//!   words found (lower case, in order of appearance); a clean text gets
//!   `result` 0 alone.
//! * `icheck`, `acheck`, `vcheck`: the media string (URL or content) is
//!   flagged when it holds a profane word or the word `nsfw`: `result` 2
//!   and `tags` `["profanity"]` and/or `["nsfw"]` (strings); otherwise
//!   `result` 0. `type` must be 1 (URL) or 2 (content), otherwise 200034.
//!
//! # Lenient
//!
//! `codec`, `srate`, `videoName` and `uid` are only type-checked.

use rmpv::Value;
use serde::{Deserialize, Serialize};

use super::params::*;
use super::rtm::{Ctx, Family, RtmEmulator, RtmState};
use super::server::Reply;
use crate::codes;

/// This family's state (part of the emulator's one state): none, every
/// answer is a function of the quest.
#[derive(Debug, Default, Clone, Serialize, Deserialize)]
pub(crate) struct Moderation {}

impl RtmEmulator {
    /// The words the emulator's moderation treats as profanity (see
    /// `translate`, `profanity`, `tcheck` and the media checks in the
    /// emulator's rules: whole words, any case, masked with `*`).
    pub const PROFANE_WORDS: &'static [&'static str] = &["damn", "crap", "badword"];

    /// The language codes the emulator's translation, speech to text and
    /// audio check accept.
    pub const LANGUAGES: &'static [&'static str] = &[
        "ar", "de", "en", "es", "fr", "hi", "id", "it", "ja", "ko", "pt", "ru", "th", "tr", "vi",
        "zh-CN", "zh-TW",
    ];
}

/// The methods of this family.
pub(crate) const FAMILY: Family = Family {
    methods: &[
        "translate",
        "profanity",
        "speech2text",
        "tcheck",
        "icheck",
        "acheck",
        "vcheck",
    ],
    dispatch,
};

/// The text with every profane word masked, and the words found (lower
/// case, in order).
fn mask(text: &str) -> (String, Vec<String>) {
    let mut out = String::with_capacity(text.len());
    let mut found = Vec::new();
    let mut word = String::new();
    let flush = |word: &mut String, out: &mut String, found: &mut Vec<String>| {
        let lower = word.to_ascii_lowercase();
        if RtmEmulator::PROFANE_WORDS.contains(&lower.as_str()) {
            out.extend(std::iter::repeat_n('*', word.chars().count()));
            found.push(lower);
        } else {
            out.push_str(word);
        }
        word.clear();
    };
    for c in text.chars() {
        if c.is_ascii_alphanumeric() {
            word.push(c);
        } else {
            flush(&mut word, &mut out, &mut found);
            out.push(c);
        }
    }
    flush(&mut word, &mut out, &mut found);
    (out, found)
}

fn has_word(text: &str, word: &str) -> bool {
    text.split(|c: char| !c.is_ascii_alphanumeric())
        .any(|w| w.eq_ignore_ascii_case(word))
}

/// `value` when it is a supported language (or absent).
fn language(key: &str, value: Option<String>) -> R<Option<String>> {
    match value {
        Some(l) if !RtmEmulator::LANGUAGES.contains(&l.as_str()) => Err(Reply::error(
            codes::RTM_EC_UNSUPPORTED_LANGUAGE,
            format!("`{key}`: unsupported language {l:?}"),
        )),
        other => Ok(other),
    }
}

fn media_type(p: &Value) -> R<i64> {
    let t = int(p, "type")?;
    if t != 1 && t != 2 {
        return Err(bad_value("type", "1 (URL) or 2 (content)"));
    }
    Ok(t)
}

/// The answer of a media check on `media`.
fn media_check(media: &str) -> Value {
    let mut tags = Vec::new();
    if !mask(media).1.is_empty() {
        tags.push(Value::from("profanity"));
    }
    if has_word(media, "nsfw") {
        tags.push(Value::from("nsfw"));
    }
    if tags.is_empty() {
        obj(vec![("result", Value::from(0))])
    } else {
        obj(vec![
            ("result", Value::from(2)),
            ("tags", Value::Array(tags)),
        ])
    }
}

fn dispatch(_st: &mut RtmState, _cx: &mut Ctx<'_>, method: &str, p: &Value) -> R<Value> {
    let _uid = opt_int(p, "uid")?;
    match method {
        "translate" => {
            let text = string(p, "text")?;
            let dst = language("dst", Some(string(p, "dst")?))?.unwrap_or_default();
            let src = language("src", opt_str(p, "src")?.filter(|s| !s.is_empty()))?;
            let text_type = opt_str(p, "type")?;
            if text_type
                .as_deref()
                .is_some_and(|t| t != "chat" && t != "mail")
            {
                return Err(bad_value("type", "\"chat\" or \"mail\""));
            }
            let action = opt_str(p, "profanity")?;
            if action
                .as_deref()
                .is_some_and(|a| !matches!(a, "off" | "stop" | "censor"))
            {
                return Err(bad_value("profanity", "\"off\", \"stop\" or \"censor\""));
            }
            let post = opt_bool(p, "postProfanity")?.unwrap_or(false);
            if text.is_empty() {
                return Err(Reply::error(
                    codes::RTM_EC_EMPTY_PARAMETER,
                    "`text` is empty",
                ));
            }
            let (masked, found) = mask(&text);
            if action.as_deref() == Some("stop") && !found.is_empty() {
                return Err(Reply::error(
                    codes::RTM_EC_PROFANITY_STOP,
                    "the text holds profanity",
                ));
            }
            let source = src.unwrap_or_else(|| {
                let cjk = text.chars().any(|c| ('\u{4e00}'..='\u{9fff}').contains(&c));
                if cjk { "zh-CN" } else { "en" }.to_string()
            });
            let body = if action.as_deref() == Some("censor") || post {
                masked
            } else {
                text.clone()
            };
            Ok(obj(vec![
                ("source", Value::from(source)),
                ("target", Value::from(dst.as_str())),
                ("sourceText", Value::from(text)),
                ("targetText", Value::from(format!("[{dst}] {body}"))),
            ]))
        }
        "profanity" => {
            let text = string(p, "text")?;
            let classify = boolean(p, "classify")?;
            let (masked, found) = mask(&text);
            let mut answer = vec![("text", Value::from(masked))];
            if classify {
                let classes = if found.is_empty() {
                    vec![]
                } else {
                    vec![Value::from("profanity")]
                };
                answer.push(("classification", Value::Array(classes)));
            }
            Ok(obj(answer))
        }
        "speech2text" => {
            let audio = string(p, "audio")?;
            let t = int(p, "type")?;
            let lang = language("lang", Some(string(p, "lang")?))?.unwrap_or_default();
            opt_str(p, "codec")?;
            opt_int(p, "srate")?;
            let text = match t {
                1 => format!("transcript of {audio}"),
                2 => audio,
                _ => {
                    return Err(Reply::error(
                        codes::RTM_EC_UNSUPPORTED_TRANSCRIBE_TYPE,
                        format!("`type` {t} is neither 1 (URL) nor 2 (content)"),
                    ))
                }
            };
            Ok(obj(vec![
                ("text", Value::from(text)),
                ("lang", Value::from(lang)),
            ]))
        }
        "tcheck" => {
            let text = string(p, "text")?;
            let (masked, found) = mask(&text);
            if found.is_empty() {
                return Ok(obj(vec![("result", Value::from(0))]));
            }
            Ok(obj(vec![
                ("result", Value::from(2)),
                ("text", Value::from(masked)),
                ("tags", Value::Array(vec![Value::from(1)])),
                (
                    "wlist",
                    Value::Array(found.into_iter().map(Value::from).collect()),
                ),
            ]))
        }
        "icheck" => {
            let image = string(p, "image")?;
            media_type(p)?;
            Ok(media_check(&image))
        }
        "acheck" => {
            let audio = string(p, "audio")?;
            media_type(p)?;
            language("lang", Some(string(p, "lang")?))?;
            opt_str(p, "codec")?;
            opt_int(p, "srate")?;
            Ok(media_check(&audio))
        }
        "vcheck" => {
            let video = string(p, "video")?;
            media_type(p)?;
            string(p, "videoName")?;
            Ok(media_check(&video))
        }
        _ => Err(unknown_method(method)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn masking_is_by_whole_word() {
        let (masked, found) = mask("Damn, this crappy BADWORD crap!");
        assert_eq!(masked, "****, this crappy ******* ****!");
        assert_eq!(found, ["damn", "badword", "crap"]);
        assert_eq!(mask("clean text").1.len(), 0);
        assert!(has_word("a NSFW.png", "nsfw"));
        assert!(!has_word("nsfwx", "nsfw"));
    }
}
