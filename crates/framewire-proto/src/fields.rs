//! The field layout of control bodies: each value a control body holds
//! implements [`Fields`], and lists are a count then the values.

use bytes::{BufMut, BytesMut};

use crate::error::FieldError;
use crate::wire::{Reader, WriteExt};

/// A value with a fixed field layout inside a control body.
pub trait Fields: Sized {
    /// Smallest encoding, used to refuse impossible list counts early.
    const MIN_LEN: usize;
    /// Appends the fields.
    fn put(&self, b: &mut BytesMut) -> Result<(), FieldError>;
    /// Reads the fields.
    fn get(r: &mut Reader) -> Result<Self, FieldError>;
}

pub(crate) fn put_list<T: Fields>(b: &mut BytesMut, field: &'static str, items: &[T]) -> Result<(), FieldError> {
    b.put_count(field, items.len())?;
    for item in items {
        item.put(b)?;
    }
    Ok(())
}

pub(crate) fn get_list<T: Fields>(r: &mut Reader, field: &'static str) -> Result<Vec<T>, FieldError> {
    let n = r.count(T::MIN_LEN, field)?;
    let mut v = Vec::with_capacity(n);
    for _ in 0..n {
        v.push(T::get(r)?);
    }
    Ok(v)
}

pub(crate) fn get_bool(r: &mut Reader, field: &'static str) -> Result<bool, FieldError> {
    match r.u8(field)? {
        0 => Ok(false),
        1 => Ok(true),
        _ => Err(FieldError::OutOfRange { field }),
    }
}

impl Fields for (u32, u32) {
    const MIN_LEN: usize = 8;
    fn put(&self, b: &mut BytesMut) -> Result<(), FieldError> {
        b.put_u32_le(self.0);
        b.put_u32_le(self.1);
        Ok(())
    }
    fn get(r: &mut Reader) -> Result<Self, FieldError> {
        Ok((r.u32("num")?, r.u32("den")?))
    }
}

impl Fields for u32 {
    const MIN_LEN: usize = 4;
    fn put(&self, b: &mut BytesMut) -> Result<(), FieldError> {
        b.put_u32_le(*self);
        Ok(())
    }
    fn get(r: &mut Reader) -> Result<Self, FieldError> {
        r.u32("id")
    }
}

impl Fields for u16 {
    const MIN_LEN: usize = 2;
    fn put(&self, b: &mut BytesMut) -> Result<(), FieldError> {
        b.put_u16_le(*self);
        Ok(())
    }
    fn get(r: &mut Reader) -> Result<Self, FieldError> {
        r.u16("value")
    }
}
