//! Finds where a key path sits in the source text.
//!
//! The loader works on a parsed tree (interpolation and merge keys need the whole document), which
//! has no positions. To point errors at a line and column, the text is parsed once more with a
//! deserializer that walks down the path and fails on purpose at the target node: serde_norway
//! stamps every error raised inside a node with that node's position.

use std::fmt;

use serde::de::{self, DeserializeSeed, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};

use super::error::Location;
use super::node::{KeyPath, Seg};

const FOUND: &str = "\u{0}shoal-compose-locator-found";

/// Position of the value at `path`, or of its key when `key` is set. `None` when the path
/// is not literally in the text (e.g. it came from a merge key).
pub fn locate(text: &str, path: &KeyPath, key: bool) -> Option<Location> {
    let seed = Walk { rest: &path.0, key };
    let de = serde_norway::Deserializer::from_str(text);
    match seed.deserialize(de) {
        Ok(()) => None,
        Err(err) if err.to_string().contains(FOUND) => err.location().map(|l| Location {
            line: l.line(),
            column: l.column(),
        }),
        Err(_) => None,
    }
}

struct Walk<'p> {
    rest: &'p [Seg],
    key: bool,
}

impl<'de> DeserializeSeed<'de> for Walk<'_> {
    type Value = ();

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for Walk<'_> {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("any value")
    }

    fn visit_bool<E: de::Error>(self, _: bool) -> Result<(), E> {
        self.leaf()
    }
    fn visit_i64<E: de::Error>(self, _: i64) -> Result<(), E> {
        self.leaf()
    }
    fn visit_u64<E: de::Error>(self, _: u64) -> Result<(), E> {
        self.leaf()
    }
    fn visit_f64<E: de::Error>(self, _: f64) -> Result<(), E> {
        self.leaf()
    }
    fn visit_str<E: de::Error>(self, _: &str) -> Result<(), E> {
        self.leaf()
    }
    fn visit_unit<E: de::Error>(self) -> Result<(), E> {
        self.leaf()
    }
    fn visit_none<E: de::Error>(self) -> Result<(), E> {
        self.leaf()
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        if self.rest.is_empty() {
            return Err(de::Error::custom(FOUND));
        }
        let mut i = 0usize;
        loop {
            let hit = matches!(self.rest.first(), Some(Seg::Index(n)) if *n == i);
            if hit {
                let next = Walk {
                    rest: &self.rest[1..],
                    key: self.key,
                };
                if seq.next_element_seed(next)?.is_none() {
                    return Ok(());
                }
            } else if seq.next_element::<IgnoredAny>()?.is_none() {
                return Ok(());
            }
            i += 1;
        }
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        if self.rest.is_empty() {
            return Err(de::Error::custom(FOUND));
        }
        let wanted = match self.rest.first() {
            Some(Seg::Key(k)) => Some(k.as_str()),
            _ => None,
        };
        let last = self.rest.len() == 1;
        loop {
            let probe = KeyProbe {
                wanted,
                fail_on_match: last && self.key,
            };
            let Some(matched) = map.next_key_seed(probe)? else {
                return Ok(());
            };
            if matched {
                map.next_value_seed(Walk {
                    rest: &self.rest[1..],
                    key: self.key,
                })?;
            } else {
                map.next_value::<IgnoredAny>()?;
            }
        }
    }
}

impl Walk<'_> {
    fn leaf<E: de::Error>(&self) -> Result<(), E> {
        if self.rest.is_empty() {
            Err(E::custom(FOUND))
        } else {
            Ok(())
        }
    }
}

/// Reads a mapping key and tells whether it is the wanted one; fails at the key itself when
/// the caller wants the key's position.
struct KeyProbe<'p> {
    wanted: Option<&'p str>,
    fail_on_match: bool,
}

impl<'de> DeserializeSeed<'de> for KeyProbe<'_> {
    type Value = bool;

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<bool, D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for KeyProbe<'_> {
    type Value = bool;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a mapping key")
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<bool, E> {
        let hit = self.wanted == Some(v);
        if hit && self.fail_on_match {
            return Err(E::custom(FOUND));
        }
        Ok(hit)
    }
    fn visit_bool<E: de::Error>(self, _: bool) -> Result<bool, E> {
        Ok(false)
    }
    fn visit_i64<E: de::Error>(self, _: i64) -> Result<bool, E> {
        Ok(false)
    }
    fn visit_u64<E: de::Error>(self, _: u64) -> Result<bool, E> {
        Ok(false)
    }
    fn visit_f64<E: de::Error>(self, _: f64) -> Result<bool, E> {
        Ok(false)
    }
    fn visit_unit<E: de::Error>(self) -> Result<bool, E> {
        Ok(false)
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<bool, A::Error> {
        while seq.next_element::<IgnoredAny>()?.is_some() {}
        Ok(false)
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<bool, A::Error> {
        while map.next_entry::<IgnoredAny, IgnoredAny>()?.is_some() {}
        Ok(false)
    }
}
