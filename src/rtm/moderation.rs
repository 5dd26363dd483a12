//! Translation and moderation `translate`, `profanity`,
//! `speech2text`, and the text, image, audio and video checks.
//!
//! Languages are codes (`"en"`, `"zh-CN"`, ...). A `uid` of 0 or less is
//! left out of the quest (it names the user on whose behalf the call is
//! made, for the service's statistics). Speech to text and the image,
//! audio and video checks wait 120 s for their answer by default (as the
//! official SDKs), unless the handle has its own timeout
//! ([`with_timeout`](RtmServerClient::with_timeout)).
//!
//! ```
//! # let emulator = rtm_server_sdk::emulator::RtmEmulator::start(1, "s").unwrap();
//! # let client = rtm_server_sdk::RtmServerClient::new(1, "s", emulator.endpoint()).unwrap();
//! use rtm_server_sdk::rtm::TranslateOptions;
//! let t = client.translate("hello", None, "fr", TranslateOptions::default(), 0)?;
//! assert_eq!(t.target, "fr");
//! // The emulator marks the text with the target language.
//! assert_eq!(t.target_text, "[fr] hello");
//! let check = client.text_check("a clean text", 1001)?;
//! assert_eq!(check.result, 0);
//! # Ok::<(), rtm_server_sdk::Error>(())
//! ```

use std::time::Duration;

use rmpv::Value;

use super::client::rtm_methods;
use super::params::{AnswerReader, ToParam};
#[allow(unused_imports)]
use super::RtmServerClient;
use crate::Result;

/// The default timeout of speech to text and the image, audio and video
/// checks.
const SLOW: Duration = Duration::from_secs(120);

/// The kind of text to translate (`type`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum TextType {
    /// A chat text (`"chat"`).
    Chat,
    /// A mail (`"mail"`).
    Mail,
}

impl TextType {
    /// The wire value.
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            TextType::Chat => "chat",
            TextType::Mail => "mail",
        }
    }
}

impl ToParam for TextType {
    fn write(&self, out: &mut Vec<u8>) -> Result<bool> {
        self.as_str().write(out)
    }
}

/// What translation does with profanity (`profanity`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ProfanityAction {
    /// Nothing (`"off"`).
    Off,
    /// Refuse the text (`"stop"`).
    Stop,
    /// Mask the words (`"censor"`).
    Censor,
}

impl ProfanityAction {
    /// The wire value.
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            ProfanityAction::Off => "off",
            ProfanityAction::Stop => "stop",
            ProfanityAction::Censor => "censor",
        }
    }
}

impl ToParam for ProfanityAction {
    fn write(&self, out: &mut Vec<u8>) -> Result<bool> {
        self.as_str().write(out)
    }
}

/// The optional settings of [`translate`](RtmServerClient::translate);
/// each is sent only when set (`post_profanity` only when true), as Go
/// does.
///
/// ```
/// use rtm_server_sdk::rtm::{ProfanityAction, TranslateOptions};
/// let options = TranslateOptions {
///     profanity: Some(ProfanityAction::Censor),
///     ..Default::default()
/// };
/// # let _ = options;
/// ```
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub struct TranslateOptions {
    /// `type`: chat or mail (the service's default: chat).
    pub text_type: Option<TextType>,
    /// `profanity`: what to do with profanity (the service's default: off).
    pub profanity: Option<ProfanityAction>,
    /// `postProfanity`: filter profanity in the translated text too.
    pub post_profanity: bool,
}

/// Where the media of a check or of speech to text is (`type`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum MediaSource {
    /// The string is a URL (1).
    Url,
    /// The string is the content itself (2).
    Content,
}

impl MediaSource {
    /// The wire value.
    #[must_use]
    pub fn code(self) -> i64 {
        match self {
            MediaSource::Url => 1,
            MediaSource::Content => 2,
        }
    }
}

impl ToParam for MediaSource {
    fn write(&self, out: &mut Vec<u8>) -> Result<bool> {
        self.code().write(out)
    }
}

/// The optional audio format of [`speech2text`](RtmServerClient::speech2text)
/// and [`audio_check`](RtmServerClient::audio_check); each is sent only
/// when set (the rate when above 0).
///
/// ```
/// use rtm_server_sdk::rtm::AudioOptions;
/// let options = AudioOptions { codec: Some("amr-wb".into()), sample_rate: 16000 };
/// # let _ = options;
/// ```
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash)]
pub struct AudioOptions {
    /// `codec`, e.g. `"amr-wb"`.
    pub codec: Option<String>,
    /// `srate`: the sample rate (0: not sent).
    pub sample_rate: i64,
}

/// The answer of [`translate`](RtmServerClient::translate).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct Translation {
    /// The source language (detected when none was given).
    pub source: String,
    /// The target language.
    pub target: String,
    /// The text as given.
    pub source_text: String,
    /// The translation.
    pub target_text: String,
}

/// The answer of [`profanity`](RtmServerClient::profanity).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct Profanity {
    /// The text with profanity masked.
    pub text: String,
    /// The classes found (asked for with `classify`; empty when absent).
    pub classification: Vec<String>,
}

/// The answer of [`speech2text`](RtmServerClient::speech2text).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct SpeechText {
    /// The recognised text.
    pub text: String,
    /// Its language.
    pub lang: String,
}

/// The answer of the checks ([`text_check`](RtmServerClient::text_check),
/// [`image_check`](RtmServerClient::image_check),
/// [`audio_check`](RtmServerClient::audio_check),
/// [`video_check`](RtmServerClient::video_check)).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct CheckResult {
    /// The verdict code (`result`; the emulator answers 0 for passed and 2
    /// for flagged).
    pub result: i64,
    /// The text with the flagged words masked (text check only, when
    /// sent).
    pub text: Option<String>,
    /// The tags of the verdict. The service sends ints or strings: both
    /// are read, ints as their decimal text.
    pub tags: Vec<String>,
    /// The flagged words (`wlist`, text check only; empty when absent).
    pub wlist: Vec<String>,
}

fn tags(a: &AnswerReader<'_>) -> Result<Vec<String>> {
    a.opt_array("tags")?
        .unwrap_or_default()
        .iter()
        .map(|v| match v {
            Value::Integer(i) => Ok(i.to_string()),
            Value::String(_) | Value::Binary(_) => a.str_of("tags", v),
            other => Err(a.bad(format!("`tags` holds {other}, expected ints or strings"))),
        })
        .collect()
}

fn check_result(a: &AnswerReader<'_>) -> Result<CheckResult> {
    Ok(CheckResult {
        result: a.int("result")?,
        text: a.opt_string("text")?,
        tags: tags(a)?,
        wlist: a.opt_strings("wlist")?.unwrap_or_default(),
    })
}

/// `uid` when above 0.
fn opt_uid(uid: i64) -> Option<i64> {
    (uid > 0).then_some(uid)
}

/// A string when set and not empty.
fn non_empty(s: Option<&str>) -> Option<&str> {
    s.filter(|s| !s.is_empty())
}

rtm_methods! {
    /// Translates `text` into language `dst`, from `src` (`None` or empty:
    /// detected by the service), on behalf of `uid` (sent when above 0).
    /// Language codes are strings, so this is also Go's
    /// `TranslateByLanguageCode`.
    fn translate / translate_with_callback
        (text: &str, src: Option<&str>, dst: &str, options: TranslateOptions, uid: i64) -> Translation {
        method: "translate",
        params: {
            "text": text, "dst": dst, "src": non_empty(src),
            "type": options.text_type, "profanity": options.profanity,
            "postProfanity": options.post_profanity.then_some(true),
            "uid": opt_uid(uid),
        },
        answer: |a| Ok(Translation {
            source: a.string("source")?,
            target: a.string("target")?,
            source_text: a.string("sourceText")?,
            target_text: a.string("targetText")?,
        }),
    }

    /// Masks the profanity in `text`; with `classify`, also says which
    /// classes were found.
    fn profanity / profanity_with_callback (text: &str, classify: bool, uid: i64) -> Profanity {
        method: "profanity",
        params: { "text": text, "classify": classify, "uid": opt_uid(uid) },
        answer: |a| Ok(Profanity {
            text: a.string("text")?,
            classification: a.opt_strings("classification")?.unwrap_or_default(),
        }),
    }

    /// Recognises the speech of `audio` (a URL or the content, as `source`
    /// says) in language `lang`. Waits 120 s by default.
    fn speech2text / speech2text_with_callback
        (audio: &str, source: MediaSource, lang: &str, options: &AudioOptions, uid: i64) -> SpeechText {
        method: "speech2text",
        params: {
            "audio": audio, "type": source, "lang": lang,
            "codec": non_empty(options.codec.as_deref()),
            "srate": (options.sample_rate > 0).then_some(options.sample_rate),
            "uid": opt_uid(uid),
        },
        answer: |a| Ok(SpeechText { text: a.string("text")?, lang: a.string("lang")? }),
        timeout: SLOW,
    }

    /// Checks a text.
    fn text_check / text_check_with_callback (text: &str, uid: i64) -> CheckResult {
        method: "tcheck",
        params: { "text": text, "uid": opt_uid(uid) },
        answer: check_result,
    }

    /// Checks an image (a URL or the content, as `source` says). Waits
    /// 120 s by default.
    fn image_check / image_check_with_callback
        (image: &str, source: MediaSource, uid: i64) -> CheckResult {
        method: "icheck",
        params: { "image": image, "type": source, "uid": opt_uid(uid) },
        answer: check_result,
        timeout: SLOW,
    }

    /// Checks an audio (a URL or the content, as `source` says) in
    /// language `lang`. Waits 120 s by default.
    fn audio_check / audio_check_with_callback
        (audio: &str, source: MediaSource, lang: &str, options: &AudioOptions, uid: i64) -> CheckResult {
        method: "acheck",
        params: {
            "audio": audio, "type": source, "lang": lang,
            "codec": non_empty(options.codec.as_deref()),
            "srate": (options.sample_rate > 0).then_some(options.sample_rate),
            "uid": opt_uid(uid),
        },
        answer: check_result,
        timeout: SLOW,
    }

    /// Checks a video (a URL or the content, as `source` says) named
    /// `video_name`. Waits 120 s by default.
    fn video_check / video_check_with_callback
        (video: &str, source: MediaSource, video_name: &str, uid: i64) -> CheckResult {
        method: "vcheck",
        params: { "video": video, "type": source, "videoName": video_name, "uid": opt_uid(uid) },
        answer: check_result,
        timeout: SLOW,
    }
}
