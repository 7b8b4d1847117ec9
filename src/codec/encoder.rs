//! A serde `Serializer` that writes bincode 2's standard format (see
//! [`super::varint`]) straight into a `Vec`: integers wider than a byte as
//! varints, `u8`/`i8`/`bool` as one byte, strings and sequences behind a varint
//! length, struct and tuple fields in order with nothing between them, enum
//! variants as a varint index, `Option` as a 0 or 1 byte.

use core::fmt;

use serde::Serialize;
use serde::ser::{self, SerializeMap};

use super::varint::{write_u64, write_u128, zigzag, zigzag_128};

/// Why a value could not be written; becomes an [`super::EncodeError`].
///
/// A boxed `str`, so that the `Result` every field's writing returns fits in
/// two registers, where a `String` sent it through memory.
#[derive(Debug)]
pub(super) struct Refused(Box<str>);

impl Refused {
    #[cold]
    fn new(reason: String) -> Self {
        Self(reason.into_boxed_str())
    }

    /// Why, in words.
    pub(super) fn into_reason(self) -> String {
        self.0.into_string()
    }
}

impl fmt::Display for Refused {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for Refused {}

impl ser::Error for Refused {
    fn custom<T: fmt::Display>(message: T) -> Self {
        Self::new(message.to_string())
    }
}

/// Writes values to the end of a buffer.
pub(super) struct Encoder<'a> {
    pub out: &'a mut Vec<u8>,
}

impl Encoder<'_> {
    #[inline]
    fn length(&mut self, len: Option<usize>) -> Result<(), Refused> {
        let len =
            len.ok_or_else(|| Refused::new("a sequence or map must know its length".into()))?;
        write_u64(self.out, len as u64);
        Ok(())
    }
}

impl<'a, 'b> ser::Serializer for &'a mut Encoder<'b> {
    type Ok = ();
    type Error = Refused;
    type SerializeSeq = Self;
    type SerializeTuple = Self;
    type SerializeTupleStruct = Self;
    type SerializeTupleVariant = Self;
    type SerializeMap = Self;
    type SerializeStruct = Self;
    type SerializeStructVariant = Self;

    #[inline]
    fn serialize_bool(self, value: bool) -> Result<(), Refused> {
        self.out.push(u8::from(value));
        Ok(())
    }

    #[inline]
    fn serialize_i8(self, value: i8) -> Result<(), Refused> {
        self.out.push(value as u8);
        Ok(())
    }

    #[inline]
    fn serialize_i16(self, value: i16) -> Result<(), Refused> {
        self.serialize_i64(value.into())
    }

    #[inline]
    fn serialize_i32(self, value: i32) -> Result<(), Refused> {
        self.serialize_i64(value.into())
    }

    #[inline]
    fn serialize_i64(self, value: i64) -> Result<(), Refused> {
        write_u64(self.out, zigzag(value));
        Ok(())
    }

    fn serialize_i128(self, value: i128) -> Result<(), Refused> {
        write_u128(self.out, zigzag_128(value));
        Ok(())
    }

    #[inline]
    fn serialize_u8(self, value: u8) -> Result<(), Refused> {
        self.out.push(value);
        Ok(())
    }

    #[inline]
    fn serialize_u16(self, value: u16) -> Result<(), Refused> {
        self.serialize_u64(value.into())
    }

    #[inline]
    fn serialize_u32(self, value: u32) -> Result<(), Refused> {
        self.serialize_u64(value.into())
    }

    #[inline]
    fn serialize_u64(self, value: u64) -> Result<(), Refused> {
        write_u64(self.out, value);
        Ok(())
    }

    fn serialize_u128(self, value: u128) -> Result<(), Refused> {
        write_u128(self.out, value);
        Ok(())
    }

    fn serialize_f32(self, value: f32) -> Result<(), Refused> {
        self.out.extend_from_slice(&value.to_le_bytes());
        Ok(())
    }

    fn serialize_f64(self, value: f64) -> Result<(), Refused> {
        self.out.extend_from_slice(&value.to_le_bytes());
        Ok(())
    }

    fn serialize_char(self, value: char) -> Result<(), Refused> {
        let mut utf8 = [0; 4];
        self.out
            .extend_from_slice(value.encode_utf8(&mut utf8).as_bytes());
        Ok(())
    }

    #[inline]
    fn serialize_str(self, value: &str) -> Result<(), Refused> {
        self.serialize_bytes(value.as_bytes())
    }

    #[inline]
    fn serialize_bytes(self, value: &[u8]) -> Result<(), Refused> {
        write_u64(self.out, value.len() as u64);
        self.out.extend_from_slice(value);
        Ok(())
    }

    #[inline]
    fn serialize_none(self) -> Result<(), Refused> {
        self.out.push(0);
        Ok(())
    }

    #[inline]
    fn serialize_some<T: Serialize + ?Sized>(self, value: &T) -> Result<(), Refused> {
        self.out.push(1);
        value.serialize(self)
    }

    #[inline]
    fn serialize_unit(self) -> Result<(), Refused> {
        Ok(())
    }

    #[inline]
    fn serialize_unit_struct(self, _name: &'static str) -> Result<(), Refused> {
        Ok(())
    }

    #[inline]
    fn serialize_unit_variant(
        self,
        _name: &'static str,
        variant_index: u32,
        _variant: &'static str,
    ) -> Result<(), Refused> {
        self.serialize_u64(variant_index.into())
    }

    #[inline]
    fn serialize_newtype_struct<T: Serialize + ?Sized>(
        self,
        _name: &'static str,
        value: &T,
    ) -> Result<(), Refused> {
        value.serialize(self)
    }

    #[inline]
    fn serialize_newtype_variant<T: Serialize + ?Sized>(
        self,
        _name: &'static str,
        variant_index: u32,
        _variant: &'static str,
        value: &T,
    ) -> Result<(), Refused> {
        write_u64(self.out, variant_index.into());
        value.serialize(self)
    }

    #[inline]
    fn serialize_seq(self, len: Option<usize>) -> Result<Self, Refused> {
        self.length(len)?;
        Ok(self)
    }

    #[inline]
    fn serialize_tuple(self, _len: usize) -> Result<Self, Refused> {
        Ok(self)
    }

    #[inline]
    fn serialize_tuple_struct(self, _name: &'static str, _len: usize) -> Result<Self, Refused> {
        Ok(self)
    }

    #[inline]
    fn serialize_tuple_variant(
        self,
        _name: &'static str,
        variant_index: u32,
        _variant: &'static str,
        _len: usize,
    ) -> Result<Self, Refused> {
        write_u64(self.out, variant_index.into());
        Ok(self)
    }

    #[inline]
    fn serialize_map(self, len: Option<usize>) -> Result<Self, Refused> {
        self.length(len)?;
        Ok(self)
    }

    #[inline]
    fn serialize_struct(self, _name: &'static str, _len: usize) -> Result<Self, Refused> {
        Ok(self)
    }

    #[inline]
    fn serialize_struct_variant(
        self,
        _name: &'static str,
        variant_index: u32,
        _variant: &'static str,
        _len: usize,
    ) -> Result<Self, Refused> {
        write_u64(self.out, variant_index.into());
        Ok(self)
    }

    fn is_human_readable(&self) -> bool {
        false
    }
}

/// Sequences, tuples and struct fields alike: each element in turn.
macro_rules! elements {
    ($($trait:ident :: $method:ident ($($name:ident)?)),* $(,)?) => {$(
        impl ser::$trait for &mut Encoder<'_> {
            type Ok = ();
            type Error = Refused;

            #[inline]
            fn $method<T: Serialize + ?Sized>(
                &mut self,
                $($name: &'static str,)?
                value: &T,
            ) -> Result<(), Refused> {
                value.serialize(&mut **self)
            }

            #[inline]
            fn end(self) -> Result<(), Refused> {
                Ok(())
            }
        }
    )*};
}

elements! {
    SerializeSeq::serialize_element(),
    SerializeTuple::serialize_element(),
    SerializeTupleStruct::serialize_field(),
    SerializeTupleVariant::serialize_field(),
    SerializeStruct::serialize_field(_key),
    SerializeStructVariant::serialize_field(_key),
}

impl SerializeMap for &mut Encoder<'_> {
    type Ok = ();
    type Error = Refused;

    fn serialize_key<T: Serialize + ?Sized>(&mut self, key: &T) -> Result<(), Refused> {
        key.serialize(&mut **self)
    }

    fn serialize_value<T: Serialize + ?Sized>(&mut self, value: &T) -> Result<(), Refused> {
        value.serialize(&mut **self)
    }

    fn end(self) -> Result<(), Refused> {
        Ok(())
    }
}
