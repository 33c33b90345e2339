//! `RuleKey` parsing (`str::parse`) and `RuleKey::new`: never a panic, and
//! every key that parses prints back as exactly its input and parses again to
//! the same key.
#![no_main]

use libfuzzer_sys::fuzz_target;
use revokd::rule::{KeyKind, MAX_KEY_VALUE_LEN, RuleKey};

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };

    if let Ok(key) = text.parse::<RuleKey>() {
        let shown = key.to_string();
        assert_eq!(shown, text, "Display is not the parsed text");
        assert_eq!(shown.parse::<RuleKey>(), Ok(key.clone()), "round trip");
        let (prefix, value) = text.split_once(':').expect("a parsed key has a prefix");
        assert_eq!(prefix, key.kind().as_str());
        assert!(!value.is_empty() && value.len() <= MAX_KEY_VALUE_LEN);
        assert!(!value.chars().any(char::is_control));
    }

    for kind in KeyKind::ALL {
        if let Ok(key) = RuleKey::new(kind, text) {
            assert_eq!(key.kind(), kind);
            let shown = key.to_string();
            assert_eq!(shown, format!("{kind}:{text}"));
            assert_eq!(
                shown.parse::<RuleKey>(),
                Ok(key),
                "round trip of new({kind}, ..)"
            );
        }
    }
});
