//! Typed fast paths' building blocks: objects read straight from the parser (serde_json's,
//! or the flat reader's for lines without escapes) into the few fields a decoder uses,
//! accepting exactly the lines a parse into a `serde_json::Value` accepts.
//!
//! A derived `Deserialize` would differ from the tree in three ways, each a line the
//! general path rejects that a fast path would have taken: a struct also reads from
//! a JSON array (`[...]` in field order), a skipped value is only scanned, not
//! parsed (a number beyond `f64` such as `1e400` passes), and a key given twice is an
//! error where the tree keeps the last. Here an object is read only from a JSON
//! object, every value not read is parsed as the tree would parse it ([`Checked`]),
//! and the last of a repeated key wins, as in the tree.

use super::flat::{FromFlat, Reader};
use serde::de::{self, Deserialize, Deserializer, MapAccess, SeqAccess, Visitor};
use std::borrow::Cow;
use std::fmt;

/// A JSON value parsed as `serde_json::Value` would parse it, then dropped: numbers
/// converted (so `1e400` fails as it does there), strings unescaped, nesting counted.
pub struct Checked;

impl<'de> Deserialize<'de> for Checked {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct Any;
        impl<'de> Visitor<'de> for Any {
            type Value = Checked;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("any JSON value")
            }
            fn visit_bool<E: de::Error>(self, _: bool) -> Result<Checked, E> {
                Ok(Checked)
            }
            fn visit_i64<E: de::Error>(self, _: i64) -> Result<Checked, E> {
                Ok(Checked)
            }
            fn visit_u64<E: de::Error>(self, _: u64) -> Result<Checked, E> {
                Ok(Checked)
            }
            fn visit_f64<E: de::Error>(self, _: f64) -> Result<Checked, E> {
                Ok(Checked)
            }
            fn visit_str<E: de::Error>(self, _: &str) -> Result<Checked, E> {
                Ok(Checked)
            }
            fn visit_unit<E: de::Error>(self) -> Result<Checked, E> {
                Ok(Checked)
            }
            fn visit_none<E: de::Error>(self) -> Result<Checked, E> {
                Ok(Checked)
            }
            fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<Checked, D::Error> {
                Checked::deserialize(d)
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Checked, A::Error> {
                while seq.next_element::<Checked>()?.is_some() {}
                Ok(Checked)
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Checked, A::Error> {
                while map.next_entry::<Checked, Checked>()?.is_some() {}
                Ok(Checked)
            }
        }
        d.deserialize_any(Any)
    }
}

/// Whether a key was given at all, whatever its value (`null` included).
#[derive(Default)]
pub struct Given(pub bool);

impl<'de> Deserialize<'de> for Given {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        Checked::deserialize(d).map(|Checked| Given(true))
    }
}

/// A JSON string, borrowed from the line unless it had escapes.
pub struct Text<'a>(pub Cow<'a, str>);

impl<'de: 'a, 'a> Deserialize<'de> for Text<'a> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct Str;
        impl<'de> Visitor<'de> for Str {
            type Value = Text<'de>;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a string")
            }
            fn visit_borrowed_str<E: de::Error>(self, s: &'de str) -> Result<Text<'de>, E> {
                Ok(Text(Cow::Borrowed(s)))
            }
            fn visit_str<E: de::Error>(self, s: &str) -> Result<Text<'de>, E> {
                Ok(Text(Cow::Owned(s.to_string())))
            }
        }
        d.deserialize_str(Str)
    }
}

impl<'a> FromFlat<'a> for Text<'a> {
    fn from_flat(at: &mut Reader<'a>) -> Option<Self> {
        at.string().map(|s| Text(Cow::Borrowed(s)))
    }
}

impl<'a> FromFlat<'a> for Given {
    fn from_flat(at: &mut Reader<'a>) -> Option<Self> {
        at.skip().map(|()| Given(true))
    }
}

impl<'a> FromFlat<'a> for Checked {
    fn from_flat(at: &mut Reader<'a>) -> Option<Self> {
        at.skip().map(|()| Checked)
    }
}

/// A whole line read into a typed object: by the flat reader when the line has its shape
/// (nearly every line), else by serde_json as before.
pub fn read<'a, T: FromFlat<'a> + Deserialize<'a>>(text: &'a str) -> Option<T> {
    super::flat::line::<T>(text).or_else(|| serde_json::from_str(text).ok())
}

/// The text of an optional string field when given and not empty: an empty string
/// counts as absent, as in the general path's `opt_str`.
pub fn present<'t>(field: &'t Option<Text<'_>>) -> Option<&'t str> {
    field.as_ref().map(|t| &*t.0).filter(|s| !s.is_empty())
}

/// A key of an object, borrowed unless it had escapes.
pub struct Key<'a>(pub Cow<'a, str>);

impl<'de: 'a, 'a> Deserialize<'de> for Key<'a> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        Text::deserialize(d).map(|t| Key(t.0))
    }
}

/// Defines a struct read only from a JSON object: each field from its key (the last
/// if given twice; `Default` if absent), every other value [`Checked`]. Two readers fill it
/// from the one key list: serde (`Deserialize`) for any line, and the flat reader
/// (`FromFlat`, `flat::line` for a whole line) for the lines it takes.
macro_rules! json_object {
    ($(#[$meta:meta])* $name:ident<$a:lifetime> { $($field:ident: $ty:ty = $key:literal,)* }) => {
        $(#[$meta])*
        #[derive(Default)]
        struct $name<$a> {
            $($field: $ty,)*
            _line: std::marker::PhantomData<&$a str>,
        }

        impl<'de: $a, $a> serde::Deserialize<'de> for $name<$a> {
            fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                struct Fields<$a>(std::marker::PhantomData<&$a str>);
                impl<'de: $a, $a> serde::de::Visitor<'de> for Fields<$a> {
                    type Value = $name<$a>;
                    fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                        f.write_str("an object")
                    }
                    fn visit_map<M: serde::de::MapAccess<'de>>(self, mut map: M) -> Result<$name<$a>, M::Error> {
                        let mut out = $name::default();
                        while let Some(key) = map.next_key::<$crate::decode::typed::Key>()? {
                            match &*key.0 {
                                $($key => out.$field = map.next_value()?,)*
                                _ => {
                                    map.next_value::<$crate::decode::typed::Checked>()?;
                                }
                            }
                        }
                        Ok(out)
                    }
                }
                d.deserialize_map(Fields(std::marker::PhantomData))
            }
        }

        impl<$a> $crate::decode::flat::FromFlat<$a> for $name<$a> {
            fn from_flat(at: &mut $crate::decode::flat::Reader<$a>) -> Option<Self> {
                let mut out = $name::default();
                at.object(|key, at| {
                    match key {
                        $($key => out.$field = $crate::decode::flat::FromFlat::from_flat(at)?,)*
                        _ => at.skip()?,
                    }
                    Some(())
                })?;
                Some(out)
            }
        }
    };
}
pub(crate) use json_object;

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::Value;

    json_object! {
        Pair<'a> {
            name: Option<Text<'a>> = "name",
            inner: Option<Inner<'a>> = "inner",
            flag: Given = "flag",
        }
    }

    json_object! {
        Inner<'a> {
            id: Option<Text<'a>> = "id",
        }
    }

    type Read = Option<(Option<String>, Option<String>, bool)>;

    fn read(line: &str) -> Read {
        shown(serde_json::from_str(line).ok()?)
    }

    fn read_flat(line: &str) -> Read {
        shown(crate::decode::flat::line(line)?)
    }

    fn shown(p: Pair) -> Read {
        let inner = p.inner.and_then(|i| i.id).map(|t| t.0.into_owned());
        Some((p.name.map(|t| t.0.into_owned()), inner, p.flag.0))
    }

    /// In any order, with keys missing, repeated or unknown, the flat reader reads what serde reads.
    #[test]
    fn the_flat_reader_takes_keys_in_any_order() {
        let lines = [
            r#"{"name":"a","inner":{"id":"x"},"flag":1}"#,
            r#"{"flag":1,"inner":{"id":"x"},"name":"a"}"#,
            r#"{"inner":{"id":"x"},"name":"a"}"#,
            r#"{"name":"a","other":"inner","inner":{"id":"x"},"name":"b"}"#,
            r#"{"nam":"a","names":"b","name":"c","inner":{"idx":"y","id":"x"}}"#,
            r#"{ "name" : "a" , "inner" : { "id" : "x" } }"#,
            r#"{"name":"a","inner":null,"flag":null}"#,
            r#"{"name":"a","inner":{"id":"x"},"flag""#,
        ];
        for line in lines {
            assert_eq!(read_flat(line), read(line), "{line}");
        }
        assert_eq!(read_flat(lines[4]), Some((Some("c".into()), Some("x".into()), false)));
    }

    #[test]
    fn accepts_exactly_what_the_tree_accepts() {
        let lines = [
            r#"{"name":"a","inner":{"id":"x"},"other":[1,{"b":null}]}"#,
            r#"{"name":"a","name":"b"}"#,
            r#"{"name":"a\"b","n\u0061me":"c"}"#,
            r#"{"flag":null}"#,
            r#"{"other":1e400}"#,
            r#"{"other":{"deep":[-1e999]}}"#,
            r#"{"other":"\ud800"}"#,
            r#"["a",{"id":"x"}]"#,
            r#"{"inner":["x"]}"#,
            r#"{"name":"a"} x"#,
            r#"{"name":"a",}"#,
            r#"{"name":7}"#,
        ];
        for line in lines {
            let tree = serde_json::from_str::<Value>(line);
            let typed = read(line);
            if tree.is_err() {
                assert!(typed.is_none(), "{line}: the tree rejects it, the typed read took it");
                continue;
            }
            let Some((name, inner, flag)) = typed else { continue };
            let tree = tree.unwrap();
            assert_eq!(name.as_deref(), tree.get("name").and_then(Value::as_str), "{line}");
            assert_eq!(inner.as_deref(), tree.pointer("/inner/id").and_then(Value::as_str), "{line}");
            assert_eq!(flag, tree.get("flag").is_some(), "{line}");
        }
        assert!(read(r#"["a",{"id":"x"}]"#).is_none(), "an array is not an object");
        assert!(read(r#"{"inner":["x"]}"#).is_none(), "an array is not an object");
        assert_eq!(read(r#"{"name":"a","name":"b"}"#).unwrap().0.as_deref(), Some("b"));
        assert_eq!(read(r#"{"name":"a\"b","n\u0061me":"c"}"#).unwrap().0.as_deref(), Some("c"));
        assert!(read(r#"{"flag":null}"#).unwrap().2);
        assert!(read(r#"{"other":1e400}"#).is_none());
    }
}
