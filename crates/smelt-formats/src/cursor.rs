//! A bounds-checked little-endian reader over a byte slice that knows its absolute offset, so
//! that every "too short" error can say where.

/// A read ran past the end of the data.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Truncated {
    /// Absolute offset at which the read started.
    pub offset: u64,
    /// Bytes the read needed.
    pub needed: u64,
    /// Bytes that were left.
    pub available: u64,
}

/// Reads primitive values from a byte slice, advancing, never panicking.
#[derive(Clone, Debug)]
pub struct Cursor<'a> {
    data: &'a [u8],
    pos: usize,
}

macro_rules! read_le {
    ($($name:ident -> $t:ty),* $(,)?) => {$(
        #[doc = concat!("Reads a little-endian `", stringify!($t), "`.")]
        pub fn $name(&mut self) -> Result<$t, Truncated> {
            let b = self.take(std::mem::size_of::<$t>() as u64)?;
            Ok(<$t>::from_le_bytes(b.try_into().expect("take returned the requested length")))
        }
    )*};
}

impl<'a> Cursor<'a> {
    /// A cursor at the start of `data`.
    pub fn new(data: &'a [u8]) -> Cursor<'a> {
        Cursor { data, pos: 0 }
    }

    /// Current offset from the start of the data.
    pub fn offset(&self) -> u64 {
        self.pos as u64
    }

    /// Bytes left to read.
    pub fn remaining(&self) -> u64 {
        (self.data.len() - self.pos) as u64
    }

    /// Takes the next `n` bytes.
    pub fn take(&mut self, n: u64) -> Result<&'a [u8], Truncated> {
        if n > self.remaining() {
            return Err(Truncated { offset: self.offset(), needed: n, available: self.remaining() });
        }
        let start = self.pos;
        self.pos += n as usize;
        Ok(&self.data[start..self.pos])
    }

    /// Moves to absolute offset `to` (which may equal the length).
    pub fn seek(&mut self, to: u64) -> Result<(), Truncated> {
        if to > self.data.len() as u64 {
            return Err(Truncated { offset: to, needed: 0, available: 0 });
        }
        self.pos = to as usize;
        Ok(())
    }

    read_le!(
        read_u8 -> u8, read_i8 -> i8, read_u16 -> u16, read_i16 -> i16,
        read_u32 -> u32, read_i32 -> i32, read_u64 -> u64, read_i64 -> i64,
        read_f32 -> f32, read_f64 -> f64,
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_and_reports_truncation_offset() {
        let mut c = Cursor::new(&[1, 0, 0, 0, 2, 0]);
        assert_eq!(c.read_u32(), Ok(1));
        assert_eq!(c.read_u32(), Err(Truncated { offset: 4, needed: 4, available: 2 }));
        assert_eq!(c.read_u16(), Ok(2));
        assert_eq!(c.remaining(), 0);
        assert!(c.seek(7).is_err());
    }
}
