//! A serde `Deserializer` over a byte slice, reading bincode 2's standard
//! format (see [`super::encoder`]).
//!
//! The input is untrusted: every read checks what is left, a varint wider than
//! its type is refused, and a string or byte length longer than the input is
//! refused before anything is allocated. Sequence lengths reach serde only as
//! a size hint, which serde caps before it preallocates.

use core::fmt;

use serde::de::{
    self, DeserializeSeed, EnumAccess, IntoDeserializer, MapAccess, SeqAccess, VariantAccess,
    Visitor,
};

use super::FRAME_BYTES_MAX;
use super::varint::{
    SINGLE_BYTE_MAX, U16_MARKER, U32_MARKER, U64_MARKER, U128_MARKER, unzigzag, unzigzag_128,
};

/// Why bytes did not decode; becomes a [`super::DecodeError`].
///
/// Boxed, so that it is one pointer: every `Result` a field's decoding
/// returns then fits in two registers, where a `String` inline sent each one
/// through memory (serde_json boxes its error for the same reason).
#[derive(Debug, PartialEq, Eq)]
pub(super) struct Invalid(Box<Why>);

/// What [`Invalid`] says.
#[derive(Debug, PartialEq, Eq)]
pub(super) enum Why {
    /// The input ended in the middle of a value.
    Truncated,
    /// A sequence claims more elements than any frame could hold.
    TooLong(u64),
    /// Anything else, in words.
    Malformed(String),
}

impl Invalid {
    #[cold]
    fn truncated() -> Self {
        Self(Box::new(Why::Truncated))
    }

    #[cold]
    fn too_long(len: u64) -> Self {
        Self(Box::new(Why::TooLong(len)))
    }

    #[cold]
    fn malformed(reason: String) -> Self {
        Self(Box::new(Why::Malformed(reason)))
    }

    /// What went wrong.
    pub(super) fn why(&self) -> &Why {
        &self.0
    }
}

impl fmt::Display for Invalid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.why() {
            Why::Truncated => f.write_str("input ended in the middle of a value"),
            Why::TooLong(len) => write!(f, "a length of {len} exceeds any frame"),
            Why::Malformed(reason) => f.write_str(reason),
        }
    }
}

impl std::error::Error for Invalid {}

impl de::Error for Invalid {
    fn custom<T: fmt::Display>(message: T) -> Self {
        Self::malformed(message.to_string())
    }
}

/// Reads values from the front of a slice.
pub(super) struct Decoder<'de> {
    input: &'de [u8],
}

impl<'de> Decoder<'de> {
    #[inline]
    pub(super) fn new(input: &'de [u8]) -> Self {
        Self { input }
    }

    /// Bytes not read yet.
    #[inline]
    pub(super) fn remaining(&self) -> usize {
        self.input.len()
    }

    #[inline]
    fn take(&mut self, count: usize) -> Result<&'de [u8], Invalid> {
        if count > self.input.len() {
            return Err(Invalid::truncated());
        }
        let (taken, rest) = self.input.split_at(count);
        self.input = rest;
        Ok(taken)
    }

    #[inline]
    fn array<const N: usize>(&mut self) -> Result<[u8; N], Invalid> {
        let bytes = self.take(N)?;
        Ok(bytes.try_into().expect("took N bytes"))
    }

    #[inline]
    fn byte(&mut self) -> Result<u8, Invalid> {
        let (&first, rest) = self.input.split_first().ok_or_else(Invalid::truncated)?;
        self.input = rest;
        Ok(first)
    }

    /// A varint of at most `width` bytes after its marker. One byte (terms,
    /// lengths, tags, small indexes) and three (indexes and rounds up to
    /// 65,535) are read inline where the field is; the rest is a call.
    #[inline(always)]
    fn varint(&mut self, width: usize, ty: &str) -> Result<u64, Invalid> {
        match *self.input {
            [marker, ref rest @ ..] if marker <= SINGLE_BYTE_MAX => {
                self.input = rest;
                Ok(marker.into())
            }
            [U16_MARKER, low, high, ref rest @ ..] if width >= 2 => {
                self.input = rest;
                Ok(u16::from_le_bytes([low, high]).into())
            }
            _ => self.wide_varint(width, ty),
        }
    }

    /// A varint wider than a byte (or none at all: the input ended).
    #[inline(never)]
    fn wide_varint(&mut self, width: usize, ty: &str) -> Result<u64, Invalid> {
        let marker = self.byte()?;
        let (value, bytes) = match marker {
            0..=SINGLE_BYTE_MAX => return Ok(marker.into()),
            U16_MARKER => (u16::from_le_bytes(self.array()?).into(), 2),
            U32_MARKER => (u32::from_le_bytes(self.array()?).into(), 4),
            U64_MARKER => (u64::from_le_bytes(self.array()?), 8),
            U128_MARKER => return Err(too_wide(ty, 16)),
            _ => {
                return Err(Invalid::malformed(format!(
                    "invalid varint marker {marker}"
                )));
            }
        };
        if bytes > width {
            return Err(too_wide(ty, bytes));
        }
        Ok(value)
    }

    fn varint_128(&mut self) -> Result<u128, Invalid> {
        if self.input.first() == Some(&U128_MARKER) {
            self.byte()?;
            return Ok(u128::from_le_bytes(self.array()?));
        }
        self.varint(8, "u128").map(u128::from)
    }

    #[inline]
    fn length(&mut self) -> Result<usize, Invalid> {
        let len = self.varint(8, "a length")?;
        // A longer sequence could only be of zero-sized elements: refused, so a
        // hostile length cannot keep a decoder looping.
        if len > FRAME_BYTES_MAX as u64 {
            return Err(Invalid::too_long(len));
        }
        Ok(len as usize)
    }

    #[inline]
    fn bytes(&mut self) -> Result<&'de [u8], Invalid> {
        let len = self.length()?;
        self.take(len)
    }

    #[inline]
    fn str(&mut self) -> Result<&'de str, Invalid> {
        core::str::from_utf8(self.bytes()?)
            .map_err(|error| Invalid::malformed(format!("a string is not UTF-8: {error}")))
    }

    fn char(&mut self) -> Result<char, Invalid> {
        let first = self.byte()?;
        let width = match first {
            0x00..=0x7f => return Ok(first.into()),
            0xc2..=0xdf => 2,
            0xe0..=0xef => 3,
            0xf0..=0xf4 => 4,
            _ => return Err(invalid_char(&[first])),
        };
        let mut utf8 = [first, 0, 0, 0];
        utf8[1..width].copy_from_slice(self.take(width - 1)?);
        core::str::from_utf8(&utf8[..width])
            .ok()
            .and_then(|text| text.chars().next())
            .ok_or_else(|| invalid_char(&utf8[..width]))
    }
}

fn too_wide(ty: &str, bytes: usize) -> Invalid {
    Invalid::malformed(format!("a {bytes}-byte varint where {ty} was expected"))
}

fn invalid_char(bytes: &[u8]) -> Invalid {
    Invalid::malformed(format!("{bytes:?} is not a UTF-8 char"))
}

macro_rules! unsigned {
    ($($method:ident $visit:ident $ty:ty, $width:expr;)*) => {$(
        #[inline]
        fn $method<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Invalid> {
            let value = self.varint($width, stringify!($ty))?;
            visitor.$visit(value as $ty)
        }
    )*};
}

macro_rules! signed {
    ($($method:ident $visit:ident $ty:ty, $width:expr;)*) => {$(
        fn $method<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Invalid> {
            let value = unzigzag(self.varint($width, stringify!($ty))?);
            visitor.$visit(value as $ty)
        }
    )*};
}

fn unsupported(what: &str) -> Invalid {
    Invalid::malformed(format!(
        "{what} is not supported: the format does not describe itself"
    ))
}

impl<'de> de::Deserializer<'de> for &mut Decoder<'de> {
    type Error = Invalid;

    fn deserialize_any<V: Visitor<'de>>(self, _visitor: V) -> Result<V::Value, Invalid> {
        Err(unsupported("deserialize_any"))
    }

    fn deserialize_bool<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Invalid> {
        match self.byte()? {
            0 => visitor.visit_bool(false),
            1 => visitor.visit_bool(true),
            other => Err(Invalid::malformed(format!("{other} is not a bool"))),
        }
    }

    fn deserialize_u8<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Invalid> {
        visitor.visit_u8(self.byte()?)
    }

    fn deserialize_i8<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Invalid> {
        visitor.visit_i8(self.byte()? as i8)
    }

    unsigned! {
        deserialize_u16 visit_u16 u16, 2;
        deserialize_u32 visit_u32 u32, 4;
        deserialize_u64 visit_u64 u64, 8;
    }

    signed! {
        deserialize_i16 visit_i16 i16, 2;
        deserialize_i32 visit_i32 i32, 4;
        deserialize_i64 visit_i64 i64, 8;
    }

    fn deserialize_u128<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Invalid> {
        visitor.visit_u128(self.varint_128()?)
    }

    fn deserialize_i128<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Invalid> {
        visitor.visit_i128(unzigzag_128(self.varint_128()?))
    }

    fn deserialize_f32<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Invalid> {
        visitor.visit_f32(f32::from_le_bytes(self.array()?))
    }

    fn deserialize_f64<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Invalid> {
        visitor.visit_f64(f64::from_le_bytes(self.array()?))
    }

    fn deserialize_char<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Invalid> {
        visitor.visit_char(self.char()?)
    }

    #[inline]
    fn deserialize_str<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Invalid> {
        visitor.visit_borrowed_str(self.str()?)
    }

    #[inline]
    fn deserialize_string<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Invalid> {
        // Borrowed: a `String` visitor copies it once, into an allocation of
        // exactly its length.
        visitor.visit_borrowed_str(self.str()?)
    }

    fn deserialize_bytes<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Invalid> {
        visitor.visit_borrowed_bytes(self.bytes()?)
    }

    fn deserialize_byte_buf<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Invalid> {
        visitor.visit_borrowed_bytes(self.bytes()?)
    }

    #[inline]
    fn deserialize_option<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Invalid> {
        match self.byte()? {
            0 => visitor.visit_none(),
            1 => visitor.visit_some(self),
            other => Err(Invalid::malformed(format!(
                "{other} is neither None (0) nor Some (1)"
            ))),
        }
    }

    fn deserialize_unit<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Invalid> {
        visitor.visit_unit()
    }

    fn deserialize_unit_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        visitor: V,
    ) -> Result<V::Value, Invalid> {
        visitor.visit_unit()
    }

    #[inline]
    fn deserialize_newtype_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        visitor: V,
    ) -> Result<V::Value, Invalid> {
        visitor.visit_newtype_struct(self)
    }

    #[inline]
    fn deserialize_seq<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Invalid> {
        let len = self.length()?;
        self.deserialize_tuple(len, visitor)
    }

    #[inline]
    fn deserialize_tuple<V: Visitor<'de>>(
        self,
        len: usize,
        visitor: V,
    ) -> Result<V::Value, Invalid> {
        visitor.visit_seq(Elements {
            decoder: self,
            left: len,
        })
    }

    #[inline]
    fn deserialize_tuple_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        len: usize,
        visitor: V,
    ) -> Result<V::Value, Invalid> {
        self.deserialize_tuple(len, visitor)
    }

    fn deserialize_map<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Invalid> {
        let len = self.length()?;
        visitor.visit_map(Elements {
            decoder: self,
            left: len,
        })
    }

    #[inline]
    fn deserialize_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        fields: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, Invalid> {
        self.deserialize_tuple(fields.len(), visitor)
    }

    #[inline]
    fn deserialize_enum<V: Visitor<'de>>(
        self,
        _name: &'static str,
        _variants: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, Invalid> {
        visitor.visit_enum(self)
    }

    fn deserialize_identifier<V: Visitor<'de>>(self, _visitor: V) -> Result<V::Value, Invalid> {
        Err(unsupported("deserialize_identifier"))
    }

    fn deserialize_ignored_any<V: Visitor<'de>>(self, _visitor: V) -> Result<V::Value, Invalid> {
        Err(unsupported("deserialize_ignored_any"))
    }

    fn is_human_readable(&self) -> bool {
        false
    }
}

/// The elements of a sequence, tuple or struct, or the entries of a map.
struct Elements<'a, 'de> {
    decoder: &'a mut Decoder<'de>,
    left: usize,
}

impl<'de> SeqAccess<'de> for Elements<'_, 'de> {
    type Error = Invalid;

    #[inline]
    fn next_element_seed<T: DeserializeSeed<'de>>(
        &mut self,
        seed: T,
    ) -> Result<Option<T::Value>, Invalid> {
        if self.left == 0 {
            return Ok(None);
        }
        self.left -= 1;
        seed.deserialize(&mut *self.decoder).map(Some)
    }

    fn size_hint(&self) -> Option<usize> {
        Some(self.left)
    }
}

impl<'de> MapAccess<'de> for Elements<'_, 'de> {
    type Error = Invalid;

    fn next_key_seed<K: DeserializeSeed<'de>>(
        &mut self,
        seed: K,
    ) -> Result<Option<K::Value>, Invalid> {
        self.next_element_seed(seed)
    }

    fn next_value_seed<V: DeserializeSeed<'de>>(&mut self, seed: V) -> Result<V::Value, Invalid> {
        seed.deserialize(&mut *self.decoder)
    }

    fn size_hint(&self) -> Option<usize> {
        Some(self.left)
    }
}

impl<'de> EnumAccess<'de> for &mut Decoder<'de> {
    type Error = Invalid;
    type Variant = Self;

    #[inline]
    fn variant_seed<V: DeserializeSeed<'de>>(self, seed: V) -> Result<(V::Value, Self), Invalid> {
        let index = self.varint(4, "a variant index")? as u32;
        let value = seed.deserialize(IntoDeserializer::<Invalid>::into_deserializer(index))?;
        Ok((value, self))
    }
}

impl<'de> VariantAccess<'de> for &mut Decoder<'de> {
    type Error = Invalid;

    #[inline]
    fn unit_variant(self) -> Result<(), Invalid> {
        Ok(())
    }

    #[inline]
    fn newtype_variant_seed<T: DeserializeSeed<'de>>(self, seed: T) -> Result<T::Value, Invalid> {
        seed.deserialize(self)
    }

    #[inline]
    fn tuple_variant<V: Visitor<'de>>(self, len: usize, visitor: V) -> Result<V::Value, Invalid> {
        de::Deserializer::deserialize_tuple(self, len, visitor)
    }

    #[inline]
    fn struct_variant<V: Visitor<'de>>(
        self,
        fields: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, Invalid> {
        de::Deserializer::deserialize_tuple(self, fields.len(), visitor)
    }
}
