//! Request bodies read from their parsed JSON with an error type of our own, so that a
//! missing field is known as such: serde_json words it like any other message and keeps no
//! sign of it. Everything else is serde_json's: scalars are handed to its `Value`
//! deserializer, map keys to its key deserializer, and every error is worded by it. Only
//! arrays, objects and enum variants are walked here, so that what they hold is read by
//! this deserializer too (with the same checks and words as serde_json's).

use serde::de::{
    self, DeserializeSeed, Deserializer, EnumAccess, Expected, IntoDeserializer, MapAccess,
    SeqAccess, Unexpected, VariantAccess, Visitor,
};
use serde_json::{Map, Value};
use std::fmt;

/// Why a body does not deserialize into the route's type.
#[derive(Debug, thiserror::Error)]
pub(crate) enum BodyError {
    /// A required field is absent (serde's `missing_field`).
    #[error("missing field `{0}`")]
    MissingField(&'static str),
    /// Anything else, as serde_json words it.
    #[error(transparent)]
    Json(#[from] serde_json::Error),
}

impl de::Error for BodyError {
    fn custom<T: fmt::Display>(msg: T) -> Self {
        Self::Json(de::Error::custom(msg))
    }

    fn invalid_type(unexp: Unexpected<'_>, exp: &dyn Expected) -> Self {
        Self::Json(de::Error::invalid_type(unexp, exp))
    }

    fn invalid_value(unexp: Unexpected<'_>, exp: &dyn Expected) -> Self {
        Self::Json(de::Error::invalid_value(unexp, exp))
    }

    fn invalid_length(len: usize, exp: &dyn Expected) -> Self {
        Self::Json(de::Error::invalid_length(len, exp))
    }

    fn unknown_variant(variant: &str, expected: &'static [&'static str]) -> Self {
        Self::Json(de::Error::unknown_variant(variant, expected))
    }

    fn unknown_field(field: &str, expected: &'static [&'static str]) -> Self {
        Self::Json(de::Error::unknown_field(field, expected))
    }

    fn missing_field(field: &'static str) -> Self {
        Self::MissingField(field)
    }

    fn duplicate_field(field: &'static str) -> Self {
        Self::Json(de::Error::duplicate_field(field))
    }
}

/// A parsed body (or a part of one), to deserialize from.
pub(crate) struct Body(pub(crate) Value);

/// serde_json's words for what a value is, as its own deserializer says it.
fn unexpected(value: &Value) -> Unexpected<'_> {
    match value {
        Value::Null => Unexpected::Unit,
        Value::Bool(b) => Unexpected::Bool(*b),
        Value::Number(n) => match (n.as_u64(), n.as_i64()) {
            (Some(u), _) => Unexpected::Unsigned(u),
            (None, Some(i)) => Unexpected::Signed(i),
            (None, None) => Unexpected::Float(n.as_f64().unwrap_or(f64::NAN)),
        },
        Value::String(s) => Unexpected::Str(s),
        Value::Array(_) => Unexpected::Seq,
        Value::Object(_) => Unexpected::Map,
    }
}

fn visit_array<'de, V: Visitor<'de>>(items: Vec<Value>, visitor: V) -> Result<V::Value, BodyError> {
    let len = items.len();
    let mut seq = Items(items.into_iter());
    let value = visitor.visit_seq(&mut seq)?;
    if seq.0.len() == 0 {
        Ok(value)
    } else {
        Err(de::Error::invalid_length(len, &"fewer elements in array"))
    }
}

fn visit_object<'de, V: Visitor<'de>>(
    fields: Map<String, Value>,
    visitor: V,
) -> Result<V::Value, BodyError> {
    let len = fields.len();
    let mut map = Fields {
        iter: fields.into_iter(),
        value: None,
    };
    let value = visitor.visit_map(&mut map)?;
    if map.iter.len() == 0 {
        Ok(value)
    } else {
        Err(de::Error::invalid_length(len, &"fewer elements in map"))
    }
}

/// Delegates to serde_json's deserializer of the value (scalars, and the refusals of a
/// container where it does not fit).
macro_rules! delegate {
    ($($method:ident)*) => {
        $(
            fn $method<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, BodyError> {
                Ok(self.0.$method(visitor)?)
            }
        )*
    };
}

impl<'de> Deserializer<'de> for Body {
    type Error = BodyError;

    fn deserialize_any<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, BodyError> {
        match self.0 {
            Value::Array(items) => visit_array(items, visitor),
            Value::Object(fields) => visit_object(fields, visitor),
            scalar => Ok(scalar.deserialize_any(visitor)?),
        }
    }

    delegate! {
        deserialize_bool deserialize_i8 deserialize_i16 deserialize_i32 deserialize_i64
        deserialize_i128 deserialize_u8 deserialize_u16 deserialize_u32 deserialize_u64
        deserialize_u128 deserialize_f32 deserialize_f64 deserialize_char deserialize_str
        deserialize_string deserialize_unit deserialize_identifier deserialize_ignored_any
    }

    fn deserialize_bytes<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, BodyError> {
        self.deserialize_byte_buf(visitor)
    }

    fn deserialize_byte_buf<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, BodyError> {
        match self.0 {
            Value::Array(items) => visit_array(items, visitor),
            other => Ok(other.deserialize_byte_buf(visitor)?),
        }
    }

    fn deserialize_option<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, BodyError> {
        match self.0 {
            Value::Null => visitor.visit_none(),
            _ => visitor.visit_some(self),
        }
    }

    fn deserialize_unit_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        visitor: V,
    ) -> Result<V::Value, BodyError> {
        self.deserialize_unit(visitor)
    }

    fn deserialize_newtype_struct<V: Visitor<'de>>(
        self,
        name: &'static str,
        visitor: V,
    ) -> Result<V::Value, BodyError> {
        match self.0 {
            Value::Array(_) | Value::Object(_) => visitor.visit_newtype_struct(self),
            scalar => Ok(scalar.deserialize_newtype_struct(name, visitor)?),
        }
    }

    fn deserialize_seq<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, BodyError> {
        match self.0 {
            Value::Array(items) => visit_array(items, visitor),
            other => Ok(other.deserialize_seq(visitor)?),
        }
    }

    fn deserialize_tuple<V: Visitor<'de>>(
        self,
        _len: usize,
        visitor: V,
    ) -> Result<V::Value, BodyError> {
        self.deserialize_seq(visitor)
    }

    fn deserialize_tuple_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        _len: usize,
        visitor: V,
    ) -> Result<V::Value, BodyError> {
        self.deserialize_seq(visitor)
    }

    fn deserialize_map<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, BodyError> {
        match self.0 {
            Value::Object(fields) => visit_object(fields, visitor),
            other => Ok(other.deserialize_map(visitor)?),
        }
    }

    fn deserialize_struct<V: Visitor<'de>>(
        self,
        name: &'static str,
        fields: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, BodyError> {
        match self.0 {
            Value::Array(items) => visit_array(items, visitor),
            Value::Object(map) => visit_object(map, visitor),
            other => Ok(other.deserialize_struct(name, fields, visitor)?),
        }
    }

    fn deserialize_enum<V: Visitor<'de>>(
        self,
        name: &'static str,
        variants: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, BodyError> {
        match self.0 {
            // `{"variant": value}`
            Value::Object(fields) => {
                let mut iter = fields.into_iter();
                match (iter.next(), iter.next()) {
                    (Some((name, value)), None) => visitor.visit_enum(Variant { name, value }),
                    _ => Err(de::Error::invalid_value(
                        Unexpected::Map,
                        &"map with a single key",
                    )),
                }
            }
            // a unit variant's name, or a refusal
            other => Ok(other.deserialize_enum(name, variants, visitor)?),
        }
    }
}

struct Items(std::vec::IntoIter<Value>);

impl<'de> SeqAccess<'de> for Items {
    type Error = BodyError;

    fn next_element_seed<T: DeserializeSeed<'de>>(
        &mut self,
        seed: T,
    ) -> Result<Option<T::Value>, BodyError> {
        match self.0.next() {
            Some(value) => seed.deserialize(Body(value)).map(Some),
            None => Ok(None),
        }
    }

    fn size_hint(&self) -> Option<usize> {
        match self.0.size_hint() {
            (lower, Some(upper)) if lower == upper => Some(upper),
            _ => None,
        }
    }
}

struct Fields {
    iter: serde_json::map::IntoIter,
    value: Option<Value>,
}

impl<'de> MapAccess<'de> for Fields {
    type Error = BodyError;

    fn next_key_seed<T: DeserializeSeed<'de>>(
        &mut self,
        seed: T,
    ) -> Result<Option<T::Value>, BodyError> {
        match self.iter.next() {
            Some((key, value)) => {
                self.value = Some(value);
                map_key(key, seed).map(Some)
            }
            None => Ok(None),
        }
    }

    fn next_value_seed<T: DeserializeSeed<'de>>(&mut self, seed: T) -> Result<T::Value, BodyError> {
        match self.value.take() {
            Some(value) => seed.deserialize(Body(value)),
            None => Err(de::Error::custom("value is missing")),
        }
    }

    fn size_hint(&self) -> Option<usize> {
        match self.iter.size_hint() {
            (lower, Some(upper)) if lower == upper => Some(upper),
            _ => None,
        }
    }
}

/// A map key, read by serde_json's own key deserializer (numbers and booleans from their
/// text): it is reached through an object of that one key.
fn map_key<'de, T: DeserializeSeed<'de>>(key: String, seed: T) -> Result<T::Value, BodyError> {
    struct FirstKey<T>(T);

    impl<'de, T: DeserializeSeed<'de>> Visitor<'de> for FirstKey<T> {
        type Value = T::Value;

        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("a map key")
        }

        fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<T::Value, A::Error> {
            map.next_key_seed(self.0)?
                .ok_or_else(|| de::Error::custom("the key is missing"))
        }
    }

    let mut single = Map::new();
    single.insert(key, Value::Null);
    Ok(Value::Object(single).deserialize_map(FirstKey(seed))?)
}

/// `{"variant": value}` as an enum.
struct Variant {
    name: String,
    value: Value,
}

impl<'de> EnumAccess<'de> for Variant {
    type Error = BodyError;
    type Variant = VariantValue;

    fn variant_seed<V: DeserializeSeed<'de>>(
        self,
        seed: V,
    ) -> Result<(V::Value, VariantValue), BodyError> {
        let value = VariantValue(self.value);
        seed.deserialize(self.name.into_deserializer())
            .map(|v| (v, value))
    }
}

struct VariantValue(Value);

impl<'de> VariantAccess<'de> for VariantValue {
    type Error = BodyError;

    fn unit_variant(self) -> Result<(), BodyError> {
        serde::Deserialize::deserialize(Body(self.0))
    }

    fn newtype_variant_seed<T: DeserializeSeed<'de>>(self, seed: T) -> Result<T::Value, BodyError> {
        seed.deserialize(Body(self.0))
    }

    fn tuple_variant<V: Visitor<'de>>(
        self,
        _len: usize,
        visitor: V,
    ) -> Result<V::Value, BodyError> {
        match self.0 {
            Value::Array(items) if items.is_empty() => visitor.visit_unit(),
            Value::Array(items) => visit_array(items, visitor),
            other => Err(de::Error::invalid_type(
                unexpected(&other),
                &"tuple variant",
            )),
        }
    }

    fn struct_variant<V: Visitor<'de>>(
        self,
        _fields: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, BodyError> {
        match self.0 {
            Value::Object(fields) => visit_object(fields, visitor),
            other => Err(de::Error::invalid_type(
                unexpected(&other),
                &"struct variant",
            )),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde::Deserialize;
    use serde_json::json;
    use std::collections::BTreeMap;

    #[derive(Debug, Deserialize, PartialEq)]
    #[serde(rename_all = "snake_case")]
    enum Kind {
        Plain,
        Tagged(u8),
        Pair(u8, u8),
        Shaped { size: u8 },
    }

    #[derive(Debug, Deserialize, PartialEq)]
    struct Inner {
        name: String,
    }

    #[derive(Debug, Deserialize, PartialEq)]
    #[serde(deny_unknown_fields)]
    struct Outer {
        kinds: Vec<Kind>,
        inner: Option<Inner>,
        counts: BTreeMap<u16, bool>,
        pair: (u8, String),
    }

    /// Reads `value` both ways, with this deserializer and with serde_json's own, and shows
    /// each outcome (the value, or the error's text).
    fn both<T: serde::de::DeserializeOwned + fmt::Debug>(value: Value) -> (String, String) {
        let ours = T::deserialize(Body(value.clone())).map_err(|e| e.to_string());
        let theirs = T::deserialize(value).map_err(|e| e.to_string());
        (format!("{ours:?}"), format!("{theirs:?}"))
    }

    #[test]
    fn reads_what_serde_json_reads_and_refuses_it_in_the_same_words() {
        let good = json!({
            "kinds": ["plain", {"tagged": 3}, {"pair": [1, 2]}, {"shaped": {"size": 4}}],
            "inner": {"name": "x"},
            "counts": {"7": true},
            "pair": [1, "a"],
        });
        let (ours, theirs) = both::<Outer>(good);
        assert!(ours.starts_with("Ok("), "{ours}");
        assert_eq!(ours, theirs);
        for bad in [
            json!({"kinds": [{"tagged": "x"}], "counts": {}, "pair": [1, "a"]}),
            json!({"kinds": [{"plain": 1, "tagged": 2}], "counts": {}, "pair": [1, "a"]}),
            json!({"kinds": ["flying"], "counts": {}, "pair": [1, "a"]}),
            json!({"kinds": [], "counts": {"x": true}, "pair": [1, "a"]}),
            json!({"kinds": [], "counts": {}, "pair": [1, "a", 3]}),
            json!({"kinds": [], "counts": {}, "pair": [1, "a"], "extra": 1}),
            json!({"kinds": [{"pair": 5}], "counts": {}, "pair": [1, "a"]}),
            json!({"kinds": 5, "counts": {}, "pair": [1, "a"]}),
            json!({"kinds": [], "counts": {}, "pair": [1, "a"], "inner": {"name": null}}),
        ] {
            let (ours, theirs) = both::<Outer>(bad.clone());
            assert!(ours.starts_with("Err("), "{bad}: {ours}");
            assert_eq!(ours, theirs, "{bad}");
        }
    }

    #[test]
    fn a_missing_field_is_told_apart_wherever_it_is() {
        let missing = |value: Value| match Outer::deserialize(Body(value)) {
            Err(BodyError::MissingField(field)) => field,
            other => panic!("expected a missing field, got {other:?}"),
        };
        assert_eq!(missing(json!({"counts": {}, "pair": [1, "a"]})), "kinds");
        assert_eq!(
            missing(json!({"kinds": [], "counts": {}, "pair": [1, "a"], "inner": {}})),
            "name"
        );
        let (ours, theirs) = both::<Outer>(json!({"kinds": []}));
        assert_eq!(ours, theirs, "worded as serde_json words it");
    }
}
